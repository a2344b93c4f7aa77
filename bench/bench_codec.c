/*
 * bench_codec.c -- remo's codec (src/wire.c, src/pack.c) against msgpack-c
 * on one typical remote call message, both in the same run.  bench.h has
 * the method (batches, medians, A/B interleaving) and the output format.
 *
 * The message, 114 bytes, is what a call looks like on the wire:
 *
 *   [1,                       message type CALL
 *    123456,                  request id
 *    ext 3 (8 bytes),         target: object reference, home bit + id 7
 *    "compute_statistics",    method name
 *    ["hello remote world", 42, -7, 3.14159, true, nil, bin 16 bytes],
 *    {"timeout": 1.5, "retries": 3}]
 *
 * The target is a real REMO_OBJECT value (remo__ref_new), so remo_pack
 * writes it as the fixext 8 a peer would send.
 *
 * Lines printed (figures are median ns per operation; ratio is
 * msgpack_ns / remo_ns, how many times faster remo is):
 *
 *   codec.encode         remo_pack of the prebuilt value tree into a
 *                        reused remo_buf, against msgpack_pack_* of the
 *                        same content (from constants: msgpack-c has no
 *                        tree to walk) into a reused msgpack_sbuffer.
 *   codec.decode.view    one pass of the validating reader (remo__vrd:
 *                        every limit and rule checked) handing out every
 *                        item, no allocation; against
 *                        msgpack_unpack into a reused, cleared zone and
 *                        the same walk over the msgpack_object tree.
 *   codec.decode.values  remo_unpack into owned values and their release;
 *                        against the same msgpack_unpack, without a walk
 *                        (both sides produce a tree and stop).
 *   codec.roundtrip      encode then decode.view, for each side.
 *
 * The baseline is msgpack-c's fastest decoding path: msgpack_unpack with
 * a zone cleared and reused, which allocates nothing once warm.
 * msgpack_unpack_next was rejected as the baseline because it frees and
 * allocates a fresh zone for every message, which would flatter remo.
 * Both decoders read the same bytes (remo's encoding), and both leave
 * str, bin and ext bodies in the message rather than copying them.
 *
 * Before timing anything, each codec decodes the other's bytes and the
 * results are compared; any disagreement exits non-zero.
 */
#include "config.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

#include <msgpack.h>

#include "wire/wire.h"

#include "bench.h"

/* ==== the message ======================================================= */

#define MSG_CALL 1
#define MSG_REQID 123456
#define MSG_TARGET_ID 7 /* with the home bit: the receiver's object */
#define MSG_METHOD "compute_statistics"
#define MSG_ARG_STR "hello remote world"
#define MSG_TIMEOUT 1.5
#define MSG_RETRIES 3

static const uint8_t msg_bin[16] = {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
	0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
};

static void die(const char *what)
{
	fprintf(stderr, "bench_codec: %s\n", what);
	exit(1);
}

/* The message as a remo value tree; aborts if it cannot be built. */
static remo_value msg_build_remo(void)
{
	remo_value args = remo_tuple_of(7,
		remo_str(MSG_ARG_STR), remo_int(42), remo_int(-7),
		remo_double(3.14159), remo_bool(true), remo_nil(),
		remo_bytes(msg_bin, sizeof msg_bin));
	remo_value kwargs = remo_dict();
	if (remo_dict_set_str(kwargs, "timeout", remo_double(MSG_TIMEOUT)) ||
	    remo_dict_set_str(kwargs, "retries", remo_int(MSG_RETRIES)))
		die("cannot build kwargs");
	remo_value msg = remo_tuple_of(6,
		remo_int(MSG_CALL), remo_int(MSG_REQID),
		remo__ref_new(REMO_OBJECT, MSG_TARGET_ID, true),
		remo_str(MSG_METHOD), args, kwargs);
	if (!remo_ok(msg))
		die("cannot build the message");
	return msg;
}

/* The same message through msgpack-c's packer; aborts on failure. */
static void msg_pack_msgpack(msgpack_packer *pk)
{
	uint8_t ref[REMO__REF_BODY] = {0}; /* id word, then shape id 0 */
	uint64_t word = MSG_TARGET_ID | REMO__REF_HOME;
	for (int i = 0; i < 8; i++)
		ref[i] = (uint8_t)(word >> (56 - 8 * i));

	int rc = msgpack_pack_array(pk, 6);
	rc |= msgpack_pack_int64(pk, MSG_CALL);
	rc |= msgpack_pack_int64(pk, MSG_REQID);
	rc |= msgpack_pack_ext_with_body(pk, ref, sizeof ref, REMO__EXT_OBJECT);
	rc |= msgpack_pack_str_with_body(pk, MSG_METHOD, sizeof MSG_METHOD - 1);
	rc |= msgpack_pack_array(pk, 7);
	rc |= msgpack_pack_str_with_body(pk, MSG_ARG_STR, sizeof MSG_ARG_STR - 1);
	rc |= msgpack_pack_int64(pk, 42);
	rc |= msgpack_pack_int64(pk, -7);
	rc |= msgpack_pack_double(pk, 3.14159);
	rc |= msgpack_pack_true(pk);
	rc |= msgpack_pack_nil(pk);
	rc |= msgpack_pack_bin_with_body(pk, msg_bin, sizeof msg_bin);
	rc |= msgpack_pack_map(pk, 2);
	rc |= msgpack_pack_str_with_body(pk, "timeout", 7);
	rc |= msgpack_pack_double(pk, MSG_TIMEOUT);
	rc |= msgpack_pack_str_with_body(pk, "retries", 7);
	rc |= msgpack_pack_int64(pk, MSG_RETRIES);
	if (rc != 0)
		die("msgpack-c could not pack the message");
}

/* ==== the walks ========================================================== */

/*
 * Both walks visit every item in the same (pre-)order and fold the same
 * digest of it, so the digest also proves that the two decoders saw the
 * same structure.  Strings, bin and ext bodies contribute their length
 * and first and last bytes: reading them, as a caller of a view would.
 * Ext bodies are opaque to both walks (the message has only a reference).
 */
enum { D_NIL = 1, D_BOOL, D_INT, D_DOUBLE, D_STR, D_BIN, D_ARRAY, D_MAP,
       D_EXT };

/* A rotate and two xors: order-sensitive, and cheap (about 2 cycles of
 * dependency a step) so that the consumer's work, the same on both
 * sides, does not hide the decoders' difference; a multiply here cost
 * more than remo's whole read of an item. */
static inline uint64_t digest(uint64_t h, unsigned tag, uint64_t x)
{
	return (h << 7 | h >> 57) ^ tag ^ x;
}

static inline uint64_t digest_bytes(uint64_t h, unsigned tag,
                                    const void *body, uint32_t n)
{
	const uint8_t *p = body;
	uint64_t x = n;
	if (n != 0)
		x |= (uint64_t)p[0] << 32 | (uint64_t)p[n - 1] << 40;
	return digest(h, tag, x);
}

static inline uint64_t double_bits(double d)
{
	uint64_t u;
	memcpy(&u, &d, sizeof u);
	return u;
}

/*
 * Walks one whole value with the validating reader: one pass that both
 * checks every rule and hands out every item, as the session reads a
 * message.  The list and error extensions' bodies are walked as part of
 * the value (the message holds neither).
 */
static uint64_t remo_walk(const uint8_t *p, size_t n)
{
	remo__vrd r;
	remo__tok t;
	uint64_t h = 0;
	int rc = remo__vrd_begin(&r, p, n);

	while (rc == REMO_OK && (rc = remo__vrd_read(&r, &t)) == REMO_OK) {
		switch (t.type) {
		case REMO__T_NIL:
			h = digest(h, D_NIL, 0);
			break;
		case REMO__T_BOOL:
			h = digest(h, D_BOOL, t.v.b);
			break;
		case REMO__T_INT:
			h = digest(h, D_INT, (uint64_t)t.v.i);
			break;
		case REMO__T_DOUBLE:
			h = digest(h, D_DOUBLE, double_bits(t.v.d));
			break;
		case REMO__T_STR:
			h = digest_bytes(h, D_STR, t.v.p, t.n);
			break;
		case REMO__T_BIN:
			h = digest_bytes(h, D_BIN, t.v.p, t.n);
			break;
		case REMO__T_ARRAY:
			h = digest(h, D_ARRAY, t.n);
			break;
		case REMO__T_MAP:
			h = digest(h, D_MAP, t.n);
			break;
		case REMO__T_EXT:
			h = digest_bytes(h, D_EXT + (uint8_t)t.ext, t.v.p, t.n);
			break;
		}
	}
	if (rc != REMO__VRD_END || remo__vrd_end(&r) != REMO_OK)
		die("the validating reader refused the message");
	return h;
}

/* The same walk over a msgpack_object tree. */
static uint64_t mp_walk(const msgpack_object *o, uint64_t h)
{
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return digest(h, D_NIL, 0);
	case MSGPACK_OBJECT_BOOLEAN:
		return digest(h, D_BOOL, o->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		return digest(h, D_INT, o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return digest(h, D_INT, (uint64_t)o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return digest(h, D_DOUBLE, double_bits(o->via.f64));
	case MSGPACK_OBJECT_STR:
		return digest_bytes(h, D_STR, o->via.str.ptr, o->via.str.size);
	case MSGPACK_OBJECT_BIN:
		return digest_bytes(h, D_BIN, o->via.bin.ptr, o->via.bin.size);
	case MSGPACK_OBJECT_ARRAY:
		h = digest(h, D_ARRAY, o->via.array.size);
		for (uint32_t i = 0; i < o->via.array.size; i++)
			h = mp_walk(&o->via.array.ptr[i], h);
		return h;
	case MSGPACK_OBJECT_MAP:
		h = digest(h, D_MAP, o->via.map.size);
		for (uint32_t i = 0; i < o->via.map.size; i++) {
			h = mp_walk(&o->via.map.ptr[i].key, h);
			h = mp_walk(&o->via.map.ptr[i].val, h);
		}
		return h;
	case MSGPACK_OBJECT_EXT:
		return digest_bytes(h, D_EXT + (uint8_t)o->via.ext.type,
		                    o->via.ext.ptr, o->via.ext.size);
	}
	die("msgpack-c returned an unknown object type");
	return 0;
}

/* ==== the operations ===================================================== */

struct codec {
	remo_value msg;        /* the prebuilt tree remo encodes         */
	remo_buf rbuf;         /* remo's reused output buffer            */
	msgpack_sbuffer sbuf;  /* msgpack-c's reused output buffer       */
	msgpack_packer pk;     /* writes into sbuf                       */
	msgpack_zone zone;     /* msgpack-c's reused decoding arena      */
	uint8_t *wire;         /* the bytes both decoders read (a copy)  */
	size_t n;
};

/* Decoding with remo, without allocating: one validating pass. */
static inline uint64_t remo_view(const uint8_t *p, size_t n)
{
	return remo_walk(p, n);
}

/* Decoding with msgpack-c into the reused zone; o lives until the next. */
static inline void mp_decode(struct codec *c, const void *p, size_t n,
                             msgpack_object *o)
{
	size_t off = 0;
	msgpack_zone_clear(&c->zone);
	if (msgpack_unpack(p, n, &off, &c->zone, o) != MSGPACK_UNPACK_SUCCESS)
		die("msgpack_unpack refused the message");
}

static inline void remo_encode(struct codec *c)
{
	c->rbuf.len = 0;
	if (remo_pack(c->msg, &c->rbuf) != REMO_OK)
		die("remo_pack failed");
}

static inline void mp_encode(struct codec *c)
{
	c->sbuf.size = 0;
	msg_pack_msgpack(&c->pk);
}

static void op_remo_encode(void *ctx, uint64_t iters)
{
	struct codec *c = ctx;
	for (uint64_t i = 0; i < iters; i++) {
		remo_encode(c);
		bench_sink += c->rbuf.len;
	}
}

static void op_mp_encode(void *ctx, uint64_t iters)
{
	struct codec *c = ctx;
	for (uint64_t i = 0; i < iters; i++) {
		mp_encode(c);
		bench_sink += c->sbuf.size;
	}
}

static void op_remo_view(void *ctx, uint64_t iters)
{
	struct codec *c = ctx;
	for (uint64_t i = 0; i < iters; i++)
		bench_sink += remo_view(c->wire, c->n);
}

static void op_mp_view(void *ctx, uint64_t iters)
{
	struct codec *c = ctx;
	msgpack_object o;
	for (uint64_t i = 0; i < iters; i++) {
		mp_decode(c, c->wire, c->n, &o);
		bench_sink += mp_walk(&o, 0);
	}
}

static void op_remo_values(void *ctx, uint64_t iters)
{
	struct codec *c = ctx;
	remo_value v;
	for (uint64_t i = 0; i < iters; i++) {
		if (remo_unpack(c->wire, c->n, &v) != REMO_OK)
			die("remo_unpack failed");
		bench_sink += v.kind;
		remo_value_release(v);
	}
}

static void op_mp_values(void *ctx, uint64_t iters)
{
	struct codec *c = ctx;
	msgpack_object o;
	for (uint64_t i = 0; i < iters; i++) {
		mp_decode(c, c->wire, c->n, &o);
		bench_sink += o.type;
	}
}

static void op_remo_roundtrip(void *ctx, uint64_t iters)
{
	struct codec *c = ctx;
	for (uint64_t i = 0; i < iters; i++) {
		remo_encode(c);
		bench_sink += remo_view(c->rbuf.data, c->rbuf.len);
	}
}

static void op_mp_roundtrip(void *ctx, uint64_t iters)
{
	struct codec *c = ctx;
	msgpack_object o;
	for (uint64_t i = 0; i < iters; i++) {
		mp_encode(c);
		mp_decode(c, c->sbuf.data, c->sbuf.size, &o);
		bench_sink += mp_walk(&o, 0);
	}
}

/* ==== agreement ========================================================= */

/*
 * Each codec decodes both encodings and they must agree: remo_unpack of
 * msgpack-c's bytes equals the tree remo encoded, msgpack-c finds the
 * same objects in both, all four walks give one digest, and re-encoding
 * what remo decoded gives remo's bytes again.  Returns whether the two
 * encodings are byte-identical (which is allowed to be false).
 */
static bool codec_agree(struct codec *c)
{
	const uint8_t *r = c->rbuf.data, *m = (const uint8_t *)c->sbuf.data;
	size_t rn = c->rbuf.len, mn = c->sbuf.size;
	msgpack_zone zr, zm;
	msgpack_object o_r, o_m;
	size_t off;
	remo_value v;
	remo_buf again = {0};

	if (remo__wire_check(m, mn) != REMO_OK)
		die("remo refuses msgpack-c's encoding");
	if (remo_unpack(m, mn, &v) != REMO_OK)
		die("remo_unpack failed on msgpack-c's encoding");
	if (!remo_equal(v, c->msg))
		die("remo decodes msgpack-c's encoding to another value");
	if (remo_pack(v, &again) != REMO_OK || again.len != rn ||
	    memcmp(again.data, r, rn) != 0)
		die("remo re-encodes msgpack-c's message differently");
	remo_value_release(v);
	remo_buf_free(&again);

	if (!msgpack_zone_init(&zr, MSGPACK_ZONE_CHUNK_SIZE) ||
	    !msgpack_zone_init(&zm, MSGPACK_ZONE_CHUNK_SIZE))
		die("out of memory");
	off = 0;
	if (msgpack_unpack((const char *)r, rn, &off, &zr, &o_r) !=
	    MSGPACK_UNPACK_SUCCESS)
		die("msgpack-c refuses remo's encoding");
	off = 0;
	if (msgpack_unpack((const char *)m, mn, &off, &zm, &o_m) !=
	    MSGPACK_UNPACK_SUCCESS)
		die("msgpack-c refuses its own encoding");
	if (!msgpack_object_equal(o_r, o_m))
		die("msgpack-c decodes remo's encoding to other objects");

	uint64_t h = mp_walk(&o_m, 0);
	if (mp_walk(&o_r, 0) != h || remo_view(r, rn) != h ||
	    remo_view(m, mn) != h)
		die("the walks over the two encodings disagree");
	msgpack_zone_destroy(&zr);
	msgpack_zone_destroy(&zm);

	return rn == mn && memcmp(r, m, rn) == 0;
}

/* ==== main ============================================================== */

int main(void)
{
	struct codec c = {0};
	struct bench_ab ab;

	c.msg = msg_build_remo();
	msgpack_sbuffer_init(&c.sbuf);
	msgpack_packer_init(&c.pk, &c.sbuf, msgpack_sbuffer_write);
	if (!msgpack_zone_init(&c.zone, MSGPACK_ZONE_CHUNK_SIZE))
		die("out of memory");

	remo_encode(&c);
	mp_encode(&c);
	bool same = codec_agree(&c);
	c.n = c.rbuf.len;
	if ((c.wire = malloc(c.n)) == NULL)
		die("out of memory");
	memcpy(c.wire, c.rbuf.data, c.n);

	printf("# cpu %d; call message %zu bytes (msgpack-c: %zu), "
	       "encodings %s\n", sched_getcpu(), c.n, c.sbuf.size,
	       same ? "byte-identical" : "DIFFERENT (both decode alike)");
	fflush(stdout);

	ab = bench_ab(op_remo_encode, &c, op_mp_encode, &c);
	bench_print("codec.encode", ab.b_ns / ab.a_ns,
	            "remo_ns=%.1f msgpack_ns=%.1f bytes=%zu",
	            ab.a_ns, ab.b_ns, c.n);
	ab = bench_ab(op_remo_view, &c, op_mp_view, &c);
	bench_print("codec.decode.view", ab.b_ns / ab.a_ns,
	            "remo_ns=%.1f msgpack_ns=%.1f bytes=%zu",
	            ab.a_ns, ab.b_ns, c.n);
	ab = bench_ab(op_remo_values, &c, op_mp_values, &c);
	bench_print("codec.decode.values", ab.b_ns / ab.a_ns,
	            "remo_ns=%.1f msgpack_ns=%.1f bytes=%zu",
	            ab.a_ns, ab.b_ns, c.n);
	ab = bench_ab(op_remo_roundtrip, &c, op_mp_roundtrip, &c);
	bench_print("codec.roundtrip", ab.b_ns / ab.a_ns,
	            "remo_ns=%.1f msgpack_ns=%.1f bytes=%zu",
	            ab.a_ns, ab.b_ns, c.n);

	free(c.wire);
	msgpack_zone_destroy(&c.zone);
	msgpack_sbuffer_destroy(&c.sbuf);
	remo_buf_free(&c.rbuf);
	remo_value_release(c.msg);
	return 0;
}
