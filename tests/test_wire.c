/*
 * test_wire.c -- the MessagePack codec: round trips of every kind, the
 * exact bytes of the shortest forms, the limits at and one past their
 * edge, every truncated prefix, hostile headers (with nothing allocated),
 * one test per REMO_EWIRE_* code, and allocation failure while decoding.
 *
 * Differential tests against msgpack-c are in test_differential.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>

#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include <remo/transport.h>

#include "wire/wire.h"
#include "testutil.h"

/* Decode n bytes expecting rc, and check nothing was allocated when the
 * input is refused by the structural check. */
static void expect_unpack(const void *p, size_t n, int want)
{
	remo_value v;
	test_alloc_reset(-1);
	int rc = remo_unpack(p, n, &v);
	size_t allocs = test_alloc_count;
	test_alloc_restore();
	if (rc != want)
		fail_msg("remo_unpack gave %s, wanted %s", remo_status_name(rc),
		         remo_status_name(want));
	if (rc == REMO_OK)
		remo_value_release(v);
	else
		assert_int_equal(v.kind, REMO_NIL);
	if (remo__wire_check(p, n) != REMO_OK)
		assert_int_equal(allocs, 0);
}

#define EXPECT(want, ...)                                                   \
	do {                                                                \
		static const uint8_t msg_[] = {__VA_ARGS__};                \
		expect_unpack(msg_, sizeof msg_, want);                     \
	} while (0)

static void expect_bytes(remo_value v, const uint8_t *want, size_t n)
{
	remo_buf b = test_roundtrip(v);
	assert_int_equal(b.len, n);
	assert_memory_equal(b.data, want, n);
	remo_buf_free(&b);
	remo_value_release(v);
}

#define BYTES(v, ...)                                                       \
	do {                                                                \
		static const uint8_t want_[] = {__VA_ARGS__};               \
		expect_bytes(v, want_, sizeof want_);                       \
	} while (0)

/* ---- round trips and exact bytes ------------------------------------------- */

static void scalars_in_their_shortest_form(void **state)
{
	BYTES(remo_nil(), 0xc0);
	BYTES(remo_bool(false), 0xc2);
	BYTES(remo_bool(true), 0xc3);
	BYTES(remo_int(0), 0x00);
	BYTES(remo_int(127), 0x7f);
	BYTES(remo_int(128), 0xcc, 0x80);
	BYTES(remo_int(256), 0xcd, 0x01, 0x00);
	BYTES(remo_int(65536), 0xce, 0x00, 0x01, 0x00, 0x00);
	BYTES(remo_int(4294967296), 0xcf, 0, 0, 0, 1, 0, 0, 0, 0);
	BYTES(remo_int(INT64_MAX), 0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff,
	      0xff, 0xff);
	BYTES(remo_int(-1), 0xff);
	BYTES(remo_int(-32), 0xe0);
	BYTES(remo_int(-33), 0xd0, 0xdf);
	BYTES(remo_int(-129), 0xd1, 0xff, 0x7f);
	BYTES(remo_int(-32769), 0xd2, 0xff, 0xff, 0x7f, 0xff);
	BYTES(remo_int(INT64_MIN), 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0);
	BYTES(remo_double(1.5), 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0);
	BYTES(remo_str(""), 0xa0);
	BYTES(remo_str("abc"), 0xa3, 'a', 'b', 'c');
	BYTES(remo_bytes("", 0), 0xc4, 0x00);
	BYTES(remo_tuple(0), 0x90);
	BYTES(remo_dict(), 0x80);
	BYTES(remo_list(), 0xd4, 0x01, 0x90);
}

static void doubles_keep_every_bit_that_matters(void **state)
{
	const double d[] = {0.0, -0.0, 1e-310 /* subnormal */, DBL_MAX,
	                    -DBL_MIN, INFINITY, -INFINITY, NAN, M_PI};
	for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
		remo_buf b = test_roundtrip(remo_double(d[i]));
		remo_value back;
		assert_int_equal(remo_unpack(b.data, b.len, &back), REMO_OK);
		if (isnan(d[i]))
			assert_true(isnan(back.as.d));
		else
			assert_memory_equal(&back.as.d, &d[i], sizeof d[i]);
		remo_buf_free(&b);
	}
}

static void float32_input_is_read_as_double(void **state)
{
	remo_value v;
	static const uint8_t f[] = {0xca, 0x3f, 0xc0, 0x00, 0x00}; /* 1.5f */
	assert_int_equal(remo_unpack(f, sizeof f, &v), REMO_OK);
	assert_int_equal(v.kind, REMO_DOUBLE);
	assert_true(v.as.d == 1.5);
}

static void strings_of_every_length_class(void **state)
{
	const size_t lens[] = {0, 31, 32, 255, 256, 65535, 65536, 1 << 20};
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		char *s = malloc(lens[i] + 1);
		memset(s, 'x', lens[i]);
		s[lens[i]] = 0;
		remo_value v = remo_strn(s, lens[i]);
		remo_value b = remo_bytes(s, lens[i]);
		remo_buf w = test_roundtrip(v);
		remo_buf x = test_roundtrip(b);
		/* header size grows with the length class */
		size_t hdr = lens[i] < 32 ? 1 : lens[i] < 256 ? 2
		             : lens[i] < 65536 ? 3 : 5;
		assert_int_equal(w.len, hdr + lens[i]);
		remo_buf_free(&w);
		remo_buf_free(&x);
		remo_value_release(v);
		remo_value_release(b);
		free(s);
	}
}

static void containers_and_refs_round_trip(void **state)
{
	remo_value l = remo_list();
	remo_list_append(l, remo_int(1));
	remo_list_append(l, remo_list());
	remo_value d = remo_dict();
	remo_dict_set_str(d, "list", l);
	remo_dict_set(d, remo_tuple_of(2, remo_int(1), remo_nil()),
	              remo_bytes("\x01", 1));
	remo_value e = remo_error("KeyError", "k");
	remo_dict_set_str(remo_error_attrs(e), "key", remo_str("k"));
	remo_dict_set_str(d, "err", e);
	remo_dict_set_str(d, "obj", remo__ref_new(REMO_OBJECT, 1, false));
	remo_dict_set_str(d, "home", remo__ref_new(REMO_CALLABLE,
	                                           INT64_MAX, true));
	remo_dict_set_str(d, "frame", remo__ref_new(REMO_FRAME, 77, false));
	remo_buf b = test_roundtrip(d);
	remo_buf_free(&b);

	/* the home bit is the top bit of the id word; the shape id follows */
	remo_value tb = remo__ref_new(REMO_TRACEBACK, 5, true);
	REMO__REF(tb)->shape_id = 0x01020304;
	BYTES(tb, 0xc7, 0x0c, 0x06, 0x80, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4);
	remo_value_release(d);
}

static void error_with_a_traceback_reference(void **state)
{
	remo_value e = remo_error("ValueError", "bad");
	REMO__ERROR(e)->tb = remo__ref_new(REMO_TRACEBACK, 3, false);
	remo_buf b = test_roundtrip(e);
	remo_value back;
	assert_int_equal(remo_unpack(b.data, b.len, &back), REMO_OK);
	assert_int_equal(remo_error_traceback(back).kind, REMO_TRACEBACK);
	assert_true(remo_error_isa(back, "ValueError"));
	remo_value_release(back);
	remo_buf_free(&b);
	remo_value_release(e);
}

/* ---- limits: depth and count, at the edge and one past --------------------- */

static remo_value nest_tuples(unsigned depth)
{
	remo_value v = remo_int(1);
	for (unsigned i = 0; i < depth; i++)
		v = remo_tuple_of(1, v);
	return v;
}

static void depth_at_the_limit_and_one_past(void **state)
{
	remo_value ok = nest_tuples(REMO_MAX_DEPTH);
	remo_buf b = test_roundtrip(ok);
	remo_buf_free(&b);
	remo_value_release(ok);

	remo_value deep = nest_tuples(REMO_MAX_DEPTH + 1);
	remo_buf c = {0};
	assert_int_equal(remo_pack(deep, &c), REMO_EDEPTH);
	assert_int_equal(c.len, 0);
	remo_buf_free(&c);
	remo_value_release(deep);

	/* the same one-past nesting written by a hostile peer */
	uint8_t msg[REMO_MAX_DEPTH + 2];
	memset(msg, 0x91, REMO_MAX_DEPTH + 1);
	msg[REMO_MAX_DEPTH + 1] = 0x01;
	expect_unpack(msg, sizeof msg, REMO_EWIRE_DEPTH);
	expect_unpack(msg + 1, sizeof msg - 1, REMO_OK);
}

static void lists_count_depth_like_tuples(void **state)
{
	/* list inside list: each adds one level, the ext wrapper none */
	remo_value v = remo_int(1);
	for (unsigned i = 0; i < REMO_MAX_DEPTH; i++) {
		remo_value l = remo_list();
		remo_list_append(l, v);
		v = l;
	}
	remo_buf b = test_roundtrip(v);
	remo_buf_free(&b);
	remo_value l = remo_list();
	remo_list_append(l, v);
	remo_buf c = {0};
	assert_int_equal(remo_pack(l, &c), REMO_EDEPTH);
	remo_buf_free(&c);
	remo_value_release(l);
}

static void a_list_that_contains_itself_is_refused(void **state)
{
	remo_value l = remo_list();
	remo_list_append(l, remo_value_retain(l));
	remo_buf b = {0};
	assert_int_equal(remo_pack(l, &b), REMO_EDEPTH);
	remo_buf_free(&b);
	remo_list_set(l, 0, remo_nil());
	remo_value_release(l);
}

static void item_count_at_the_limit_and_one_past(void **state)
{
	/* an array of N nils is N + 1 items */
	size_t n = REMO_MAX_VALUES - 1;
	uint8_t *msg = malloc(5 + n + 1);
	msg[0] = 0xdd;
	msg[1] = (uint8_t)(n >> 24);
	msg[2] = (uint8_t)(n >> 16);
	msg[3] = (uint8_t)(n >> 8);
	msg[4] = (uint8_t)n;
	memset(msg + 5, 0xc0, n + 1);
	assert_int_equal(remo__wire_check(msg, 5 + n), REMO_OK);
	n++;
	msg[4] = (uint8_t)n;
	msg[3] = (uint8_t)(n >> 8);
	msg[2] = (uint8_t)(n >> 16);
	expect_unpack(msg, 5 + n, REMO_EWIRE_VALUES);
	free(msg);

	/* and the encoder refuses what the decoder would */
	remo_value t = remo_tuple(REMO_MAX_VALUES);
	remo_buf b = {0};
	assert_int_equal(remo_pack(t, &b), REMO_ETOOBIG);
	assert_int_equal(b.len, 0);
	remo_buf_free(&b);
	remo_value_release(t);
}

/* ---- truncation and hostile input ------------------------------------------- */

static void every_truncated_prefix_is_refused(void **state)
{
	remo_value d = remo_dict();
	remo_value l = remo_list();
	remo_list_append(l, remo_double(2.5));
	remo_list_append(l, remo_str("a string longer than thirty-one bytes"));
	remo_dict_set_str(d, "l", l);
	remo_dict_set_str(d, "i", remo_int(-100000));
	remo_dict_set_str(d, "b", remo_bytes("\0\1\2", 3));
	remo_dict_set_str(d, "e", remo_error("KeyError", "m"));
	remo_dict_set_str(d, "r", remo__ref_new(REMO_OBJECT, 9, false));
	remo_dict_set_str(d, "t", remo_tuple_of(2, remo_nil(), remo_bool(1)));
	remo_buf b = test_roundtrip(d);
	for (size_t n = 0; n < b.len; n++) {
		remo_value v;
		test_alloc_reset(-1);
		int rc = remo_unpack(b.data, n, &v);
		assert_int_equal(test_alloc_count, 0);
		test_alloc_restore();
		assert_int_not_equal(rc, REMO_OK);
		assert_true(rc >= REMO_EWIRE_TRUNCATED);
	}
	remo_buf_free(&b);
	remo_value_release(d);
}

static void hostile_headers_allocate_nothing(void **state)
{
	/* array32 claiming 100 million items, in 5 bytes */
	EXPECT(REMO_EWIRE_COUNT, 0xdd, 0x05, 0xf5, 0xe1, 0x00);
	/* map32 claiming 2^32 - 1 pairs */
	EXPECT(REMO_EWIRE_COUNT, 0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0);
	/* a map count of n needs 2n bytes, not n */
	EXPECT(REMO_EWIRE_COUNT, 0x82, 0xc0, 0xc0, 0xc0);
	/* str32 claiming 4 GiB */
	EXPECT(REMO_EWIRE_LENGTH, 0xdb, 0xff, 0xff, 0xff, 0xff, 'a');
	/* bin32 and ext32 likewise */
	EXPECT(REMO_EWIRE_LENGTH, 0xc6, 0x7f, 0xff, 0xff, 0xff);
	EXPECT(REMO_EWIRE_LENGTH, 0xc9, 0xff, 0xff, 0xff, 0xff, 0x01);

	/* depth bomb: 100000 nested one-item arrays */
	size_t n = 100000;
	uint8_t *bomb = malloc(n + 1);
	memset(bomb, 0x91, n);
	bomb[n] = 0xc0;
	expect_unpack(bomb, n + 1, REMO_EWIRE_DEPTH);
	free(bomb);

	/* extensions directly inside extensions, 20000 deep: no array adds
	 * depth, so only the checker's frame bound can stop it */
	size_t layers = 20000, total = 6 * layers + 1;
	bomb = malloc(total);
	for (size_t i = 0; i < layers; i++) {
		size_t body = total - 6 * (i + 1);
		bomb[6 * i] = 0xc9;
		bomb[6 * i + 1] = (uint8_t)(body >> 24);
		bomb[6 * i + 2] = (uint8_t)(body >> 16);
		bomb[6 * i + 3] = (uint8_t)(body >> 8);
		bomb[6 * i + 4] = (uint8_t)body;
		bomb[6 * i + 5] = 0x01;
	}
	bomb[total - 1] = 0x90;
	expect_unpack(bomb, total, REMO_EWIRE_DEPTH);
	free(bomb);
}

static void one_test_per_wire_error(void **state)
{
	EXPECT(REMO_EWIRE_TRUNCATED, 0xcd, 0x01);          /* uint16, 1 byte */
	EXPECT(REMO_EWIRE_TRUNCATED, 0xcb, 0, 0, 0);       /* float64, 3 bytes */
	expect_unpack("", 0, REMO_EWIRE_TRUNCATED);         /* nothing at all */
	EXPECT(REMO_EWIRE_RESERVED, 0xc1);
	EXPECT(REMO_EWIRE_RESERVED, 0x91, 0xc1);
	EXPECT(REMO_EWIRE_LENGTH, 0xa5, 'a', 'b');
	EXPECT(REMO_EWIRE_COUNT, 0x93, 0x01);
	EXPECT(REMO_EWIRE_TRAILING, 0xc0, 0xc0);
	EXPECT(REMO_EWIRE_INTRANGE, 0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0);
	/* unknown extension types, MessagePack's timestamp (-1) included */
	EXPECT(REMO_EWIRE_EXTTYPE, 0xd4, 0x07, 0x00);
	EXPECT(REMO_EWIRE_EXTTYPE, 0xd6, 0xff, 0, 0, 0, 0);
	/* references: a body of 4 or 8 bytes (not 12), id 0, home id 0 */
	EXPECT(REMO_EWIRE_EXTBODY, 0xd6, 0x03, 0, 0, 0, 1);
	EXPECT(REMO_EWIRE_EXTBODY, 0xd7, 0x03, 0, 0, 0, 0, 0, 0, 0, 1);
	EXPECT(REMO_EWIRE_EXTBODY, 0xc7, 0x0c, 0x03, 0, 0, 0, 0, 0, 0, 0, 0,
	       0, 0, 0, 1);
	EXPECT(REMO_EWIRE_EXTBODY, 0xc7, 0x0c, 0x03, 0x80, 0, 0, 0, 0, 0, 0, 0,
	       0, 0, 0, 1);
	EXPECT(REMO_OK, 0xc7, 0x0c, 0x03, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0);
	/* a list whose body is not an array, or holds two values */
	EXPECT(REMO_EWIRE_EXTBODY, 0xd4, 0x01, 0x05);
	EXPECT(REMO_EWIRE_EXTBODY, 0xd5, 0x01, 0x90, 0xc0);
	/* a list body that runs past its own end */
	EXPECT(REMO_EWIRE_COUNT, 0xd4, 0x01, 0x91, 0xc0);
	/* errors: 3 parts; a name that is not a name; attrs not a map */
	EXPECT(REMO_EWIRE_EXTBODY, 0xc7, 0x05, 0x02, 0x93, 0xa1, 'E', 0xa0,
	       0x80);
	EXPECT(REMO_EWIRE_EXTBODY, 0xc7, 0x06, 0x02, 0x94, 0xa1, ' ', 0xa0,
	       0x80, 0xc0);
	EXPECT(REMO_EWIRE_EXTBODY, 0xc7, 0x06, 0x02, 0x94, 0xa1, 'E', 0xa0,
	       0x90, 0xc0);
	EXPECT(REMO_EWIRE_EXTBODY, 0xc7, 0x06, 0x02, 0x94, 0xa1, 'E', 0xa0,
	       0x80, 0x01);
	/* keys: a list or a map is no key; the same key twice */
	EXPECT(REMO_EWIRE_KEY, 0x81, 0xd4, 0x01, 0x90, 0xc0);
	EXPECT(REMO_EWIRE_KEY, 0x81, 0x80, 0xc0);
	EXPECT(REMO_EWIRE_DUPKEY, 0x82, 0xa1, 'k', 0x01, 0xa1, 'k', 0x02);
	/* UTF-8: a lone continuation byte, an overlong '/', a surrogate */
	EXPECT(REMO_EWIRE_UTF8, 0xa1, 0x80);
	EXPECT(REMO_EWIRE_UTF8, 0xa2, 0xc0, 0xaf);
	EXPECT(REMO_EWIRE_UTF8, 0xa3, 0xed, 0xa0, 0x80);
	EXPECT(REMO_OK, 0xa4, 0xf0, 0x9f, 0x98, 0x80); /* U+1F600 is fine */
	/* and a bad value deep inside a good one still fails cleanly */
	EXPECT(REMO_EWIRE_UTF8, 0x92, 0xa1, 'a', 0x91, 0x81, 0x01, 0xa1, 0xff);
}

static void non_shortest_forms_are_accepted(void **state)
{
	remo_value v;
	static const uint8_t i[] = {0xd3, 0, 0, 0, 0, 0, 0, 0, 5};
	static const uint8_t s[] = {0xdb, 0, 0, 0, 2, 'h', 'i'};
	static const uint8_t a[] = {0xdd, 0, 0, 0, 1, 0x07};
	static const uint8_t r[] = {0xc8, 0x00, 0x0c, 0x03, 0, 0, 0, 0, 0, 0, 0,
	                            9, 0, 0, 0, 0};
	assert_int_equal(remo_unpack(i, sizeof i, &v), REMO_OK);
	assert_int_equal(v.as.i, 5);
	assert_int_equal(remo_unpack(s, sizeof s, &v), REMO_OK);
	assert_string_equal(remo_str_data(v, NULL), "hi");
	remo_value_release(v);
	assert_int_equal(remo_unpack(a, sizeof a, &v), REMO_OK);
	assert_int_equal(remo_tuple_get(v, 0).as.i, 7);
	remo_value_release(v);
	assert_int_equal(remo_unpack(r, sizeof r, &v), REMO_OK);
	assert_int_equal(v.kind, REMO_OBJECT);
	assert_int_equal(REMO__REF(v)->id, 9);
	remo_value_release(v);
}

/* ---- allocation failure while decoding ----------------------------------------- */

static void every_allocation_failure_while_decoding_is_clean(void **state)
{
	remo_value d = remo_dict();
	remo_value l = remo_list();
	for (int i = 0; i < 10; i++)
		remo_list_append(l, remo_tuple_of(2, remo_int(i), remo_str("s")));
	remo_dict_set_str(d, "l", l);
	remo_dict_set_str(d, "e", remo_error("KeyError", "m"));
	remo_dict_set_str(d, "r", remo__ref_new(REMO_OBJECT, 9, false));
	remo_buf b = test_pack(d);
	for (long k = 0;; k++) {
		remo_value v;
		test_alloc_reset(k);
		int rc = remo_unpack(b.data, b.len, &v);
		test_alloc_restore();
		if (rc == REMO_OK) {
			assert_true(remo_equal(v, d));
			remo_value_release(v);
			assert_true(k > 20);
			break;
		}
		assert_int_equal(rc, REMO_ENOMEM);
		assert_int_equal(v.kind, REMO_NIL);
	}
	/* and while encoding: the buffer is left as it was */
	for (long k = 0;; k++) {
		remo_buf out = {0};
		test_alloc_reset(k);
		int rc = remo_pack(d, &out);
		test_alloc_restore();
		if (rc == REMO_OK) {
			assert_int_equal(out.len, b.len);
			remo_buf_free(&out);
			break;
		}
		assert_int_equal(rc, REMO_ENOMEM);
		assert_int_equal(out.len, 0);
		remo_buf_free(&out);
	}
	remo_buf_free(&b);
	remo_value_release(d);
}

static void pack_appends_to_what_is_in_the_buffer(void **state)
{
	remo_buf b = {0};
	assert_int_equal(remo_pack(remo_int(1), &b), REMO_OK);
	assert_int_equal(remo_pack(remo_int(2), &b), REMO_OK);
	assert_int_equal(b.len, 2);
	assert_int_equal(b.data[0], 0x01);
	assert_int_equal(b.data[1], 0x02);
	/* a refused value leaves the earlier bytes alone */
	assert_int_equal(remo_pack(remo__invalid(), &b), REMO_EINVAL);
	assert_int_equal(b.len, 2);
	remo_buf_free(&b);
}

static void encoder_refuses_a_str_that_is_not_utf8(void **state)
{
	remo_buf b = {0};
	remo_value bad = remo_tuple_of(2, remo_int(1), remo_strn("\xff", 1));
	assert_int_equal(remo_pack(bad, &b), REMO_EWIRE_UTF8);
	assert_int_equal(b.len, 0);
	/* the same bytes as bytes are fine */
	remo_value ok = remo_bytes("\xff", 1);
	assert_int_equal(remo_pack(ok, &b), REMO_OK);
	remo_buf_free(&b);
	remo_value_release(bad);
	remo_value_release(ok);
}

static void validating_reader_reads_in_one_pass(void **state)
{
	/* [1, [2], {"k": nil}, ref 9] in pre-order, then the end */
	static const uint8_t msg[] = {0x94, 0x01, 0xd5, 0x01, 0x91, 0x02,
	                              0x81, 0xa1, 'k', 0xc0, 0xc7, 0x0c, 0x03,
	                              0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0};
	static const uint8_t types[] = {
		REMO__T_ARRAY, REMO__T_INT, REMO__T_EXT, REMO__T_ARRAY,
		REMO__T_INT, REMO__T_MAP, REMO__T_STR, REMO__T_NIL, REMO__T_EXT};
	remo__vrd r;
	remo__tok t;
	assert_int_equal(remo__vrd_begin(&r, msg, sizeof msg), REMO_OK);
	for (size_t i = 0; i < sizeof types; i++) {
		assert_int_equal(remo__vrd_read(&r, &t), REMO_OK);
		assert_int_equal(t.type, types[i]);
	}
	assert_int_equal(remo__vrd_read(&r, &t), REMO__VRD_END);
	assert_int_equal(remo__vrd_end(&r), REMO_OK);

	/* stopping early is not the end of the value */
	assert_int_equal(remo__vrd_begin(&r, msg, sizeof msg), REMO_OK);
	assert_int_equal(remo__vrd_read(&r, &t), REMO_OK);
	assert_int_equal(remo__vrd_end(&r), REMO_EWIRE_TRUNCATED);

	/* bytes after the value */
	static const uint8_t two[] = {0x01, 0x02};
	assert_int_equal(remo__vrd_begin(&r, two, sizeof two), REMO_OK);
	assert_int_equal(remo__vrd_read(&r, &t), REMO_OK);
	assert_int_equal(remo__vrd_end(&r), REMO_EWIRE_TRAILING);
	assert_int_equal(remo__vrd_begin(&r, two, 0), REMO_EWIRE_TRUNCATED);
}

/* ==== framing over a descriptor (frame.c) ================================ */

static void put_frame(int fd, const void *p, uint32_t n)
{
	unsigned char h[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
	                      (unsigned char)(n >> 8), (unsigned char)n};
	assert_int_equal(write(fd, h, 4), 4);
	if (n > 0)
		assert_int_equal(write(fd, p, n), (ssize_t)n);
}

/* A header announcing 60 MiB costs what came, not what it announced:
 * the receive buffer grows with the bytes, in steps of at most 1 MiB. */
static void frame_memory_follows_the_bytes(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	char body[100] = "the start of a frame that will never end";
	unsigned char h[4] = {0x03, 0xc0, 0x00, 0x00}; /* 60 MiB */
	assert_int_equal(write(sv[1], h, 4), 4);
	assert_int_equal(write(sv[1], body, sizeof body), (ssize_t)sizeof body);
	remo_frame_rx rx = {0};
	remo_buf out = {0};
	assert_int_equal(remo_frame_recv(sv[0], &rx, &out, 0, 64u << 20),
	                 REMO_ETIMEDOUT);
	assert_int_equal(rx.body.len, sizeof body);
	assert_true(rx.body.cap <= (1u << 20) + 4096);
	assert_int_equal(out.len, 0);
	/* over the limit: refused before any allocation for it */
	remo_frame_rx rx2 = {0};
	int sv2[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv2), 0);
	assert_int_equal(write(sv2[1], h, 4), 4);
	assert_int_equal(remo_frame_recv(sv2[0], &rx2, &out, 0, 1u << 20),
	                 REMO_EPROTO);
	assert_int_equal(rx2.body.cap, 0);
	remo_frame_rx_free(&rx);
	remo_frame_rx_free(&rx2);
	remo_buf_free(&out);
	close(sv[0]);
	close(sv[1]);
	close(sv2[0]);
	close(sv2[1]);
}

/* Many frames read at once come out one by one, in order, whole; a big
 * one among them is received too; a frame split across reads waits. */
static void frames_come_out_in_order(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	size_t big = 200000;
	char *bigp = malloc(big);
	for (size_t i = 0; i < big; i++)
		bigp[i] = (char)(i * 7);
	remo_frame_rx rx = {0};
	for (int round = 0; round < 2; round++) {
		for (uint32_t i = 0; i < 50; i++) {
			char m[32];
			int n = snprintf(m, sizeof m, "frame %u", i);
			put_frame(sv[1], m, (uint32_t)n);
			if (i == 25)
				put_frame(sv[1], "", 0);
		}
		for (uint32_t i = 0; i < 50; i++) {
			remo_buf out = {0};
			char m[32];
			int n = snprintf(m, sizeof m, "frame %u", i);
			assert_int_equal(remo_frame_recv(sv[0], &rx, &out, 1000,
			                                 1u << 20), REMO_OK);
			assert_int_equal(out.len, (size_t)n);
			assert_memory_equal(out.data, m, (size_t)n);
			remo_buf_free(&out);
			if (i == 25) {
				assert_int_equal(remo_frame_recv(sv[0], &rx, &out,
				                                 1000, 1u << 20),
				                 REMO_OK);
				assert_int_equal(out.len, 0);
			}
		}
		/* a frame bigger than the read-ahead, read by a thread-less
		 * loop: write a part, receive (times out), write the rest */
		unsigned char h[4] = {0, (unsigned char)(big >> 16),
		                      (unsigned char)(big >> 8), (unsigned char)big};
		assert_int_equal(write(sv[1], h, 4), 4);
		assert_int_equal(write(sv[1], bigp, 1000), 1000);
		remo_buf out = {0};
		assert_int_equal(remo_frame_recv(sv[0], &rx, &out, 0, 1u << 20),
		                 REMO_ETIMEDOUT);
		size_t sent = 1000;
		while (sent < big) {
			ssize_t w = write(sv[1], bigp + sent, big - sent);
			assert_true(w > 0);
			sent += (size_t)w;
			int rc = remo_frame_recv(sv[0], &rx, &out, 0, 1u << 20);
			assert_true(rc == REMO_OK || rc == REMO_ETIMEDOUT);
			if (rc == REMO_OK)
				break;
		}
		while (out.len == 0)
			assert_int_equal(remo_frame_recv(sv[0], &rx, &out, 1000,
			                                 1u << 20), REMO_OK);
		assert_int_equal(out.len, big);
		assert_memory_equal(out.data, bigp, big);
		remo_buf_free(&out);
	}
	remo_frame_rx_free(&rx);
	free(bigp);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(frame_memory_follows_the_bytes),
		cmocka_unit_test(frames_come_out_in_order),
		cmocka_unit_test(scalars_in_their_shortest_form),
		cmocka_unit_test(doubles_keep_every_bit_that_matters),
		cmocka_unit_test(float32_input_is_read_as_double),
		cmocka_unit_test(strings_of_every_length_class),
		cmocka_unit_test(containers_and_refs_round_trip),
		cmocka_unit_test(error_with_a_traceback_reference),
		cmocka_unit_test(depth_at_the_limit_and_one_past),
		cmocka_unit_test(lists_count_depth_like_tuples),
		cmocka_unit_test(a_list_that_contains_itself_is_refused),
		cmocka_unit_test(item_count_at_the_limit_and_one_past),
		cmocka_unit_test(every_truncated_prefix_is_refused),
		cmocka_unit_test(hostile_headers_allocate_nothing),
		cmocka_unit_test(one_test_per_wire_error),
		cmocka_unit_test(non_shortest_forms_are_accepted),
		cmocka_unit_test(every_allocation_failure_while_decoding_is_clean),
		cmocka_unit_test(pack_appends_to_what_is_in_the_buffer),
		cmocka_unit_test(encoder_refuses_a_str_that_is_not_utf8),
		cmocka_unit_test(validating_reader_reads_in_one_pass),
	};
	return cmocka_run_group_tests_name("wire", tests, NULL, NULL);
}
