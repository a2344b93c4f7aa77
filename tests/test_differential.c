/*
 * test_differential.c -- remo's MessagePack codec checked against an
 * independent implementation of the format, msgpack-c.
 *
 * On the kinds both libraries know (nil, bool, int, double, str, bin,
 * array as remo's tuple, map as remo's dict) they must agree three ways:
 * remo writes the very bytes msgpack-c writes, msgpack-c reads remo's
 * bytes as the value remo meant, and remo reads msgpack-c's bytes as the
 * value msgpack-c meant.  Bytes can be compared exactly because both
 * encoders pick the shortest form of every int and every str, bin, array
 * and map header, and both always write a double as float64 (remo chose
 * both on purpose: remo__wire_put_int and remo__wire_put_double).
 *
 * Neither library judges the other.  Each value tree is first made in a
 * model of this file's own (struct node) by a seeded generator; from the
 * model the tree is built once through remo's public API and once through
 * msgpack-c's packer, and whatever either side decodes is compared with
 * the model, bit for bit for doubles and in order for maps.
 *
 * The second half covers where the two legitimately part: forms
 * msgpack-c writes or accepts that are not the shortest (float32, a
 * positive int in a signed or wider form, long headers on short strings
 * and containers), which remo must read as the same value; input both
 * refuse; and input msgpack-c accepts that remo refuses on purpose, each
 * with its exact status code.  remo's own extension kinds (list, error,
 * references) are opaque bytes to msgpack-c, so the generator leaves
 * them out.
 *
 * Every random tree has its own seed, printed when a check fails.  Replay
 * that tree alone with REMO_DIFF_SEED=<seed> REMO_DIFF_ITERATIONS=1.
 * REMO_DIFF_ITERATIONS sets how many trees each random test makes
 * (default DIFF_DEFAULT_ITERATIONS, which takes a few seconds under
 * valgrind).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "testutil.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Trees per random test: a fraction of a second natively, a few seconds
 * under valgrind. */
#define DIFF_DEFAULT_ITERATIONS 3000
/* First seed of the random tests; tree i uses DIFF_SEED + i. */
#define DIFF_SEED UINT64_C(0x7e57d1ff00000000)

/* ==== the model ========================================================= */

/*
 * A value as this file understands it, independent of both libraries.
 * Map keys are distinct by remo's rule (kinds must match, NaN equals NaN,
 * 0.0 equals -0.0), since remo refuses duplicates on decode.
 */
enum node_kind {
	N_NIL,
	N_BOOL,
	N_INT,
	N_DOUBLE,
	N_STR,
	N_BIN,
	N_ARRAY,
	N_MAP,
};

struct node {
	enum node_kind kind;
	bool b;
	int64_t i;
	double d;
	size_t n;          /* str, bin: bytes; array: items; map: pairs      */
	uint8_t *bytes;    /* str, bin body; never NULL, even when n is 0    */
	struct node *kids; /* array: n items; map: 2n, each key then value   */
};

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	assert_non_null(p);
	return p;
}

static size_t node_kids(const struct node *x)
{
	return x->kind == N_MAP ? 2 * x->n : x->kind == N_ARRAY ? x->n : 0;
}

/* Frees what x owns and leaves it a zero-filled nil. */
static void node_free(struct node *x)
{
	for (size_t i = 0; i < node_kids(x); i++)
		node_free(&x->kids[i]);
	free(x->kids);
	free(x->bytes);
	memset(x, 0, sizeof *x);
}

static double bits_double(uint64_t u)
{
	double d;
	memcpy(&d, &u, sizeof d);
	return d;
}

static uint64_t double_bits(double d)
{
	uint64_t u;
	memcpy(&u, &d, sizeof u);
	return u;
}

/* Equality as remo's dict sees keys; maps are never keys here. */
static bool node_key_equal(const struct node *a, const struct node *b)
{
	if (a->kind != b->kind)
		return false;
	switch (a->kind) {
	case N_NIL:
		return true;
	case N_BOOL:
		return a->b == b->b;
	case N_INT:
		return a->i == b->i;
	case N_DOUBLE:
		return a->d == b->d || (isnan(a->d) && isnan(b->d));
	case N_STR:
	case N_BIN:
		return a->n == b->n && memcmp(a->bytes, b->bytes, a->n) == 0;
	case N_ARRAY:
		if (a->n != b->n)
			return false;
		for (size_t i = 0; i < a->n; i++)
			if (!node_key_equal(&a->kids[i], &b->kids[i]))
				return false;
		return true;
	default:
		return false;
	}
}

/* ==== a seeded generator =============================================== */

/*
 * splitmix64: one word of state, and good streams from sequential seeds,
 * so tree i of a run can simply be seed base + i.
 */
struct rng {
	uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
	uint64_t z = (r->s += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* Uniform enough in [0, n) for a test; n > 0. */
static uint64_t rng_below(struct rng *r, uint64_t n)
{
	return rng_next(r) % n;
}

static bool rng_chance(struct rng *r, unsigned percent)
{
	return rng_below(r, 100) < percent;
}

/* Every int boundary where a shortest form changes, from both sides. */
static const int64_t int_edges[] = {
	0, 1, 31, 126, 127, 128, 129, 254, 255, 256, 32767, 32768, 65534,
	65535, 65536, INT32_MAX, (int64_t)INT32_MAX + 1, (int64_t)UINT32_MAX - 1,
	(int64_t)UINT32_MAX, (int64_t)UINT32_MAX + 1, INT64_MAX - 1, INT64_MAX,
	-1, -2, -31, -32, -33, -127, -128, -129, -255, -256, -32767, -32768,
	-32769, INT32_MIN + 1, INT32_MIN, (int64_t)INT32_MIN - 1,
	INT64_MIN + 1, INT64_MIN,
};

/* Doubles whose bits are easy to lose: zeros, infinities, NaNs with
 * sign and payload (one signalling), subnormals, the extremes. */
static const uint64_t double_edges[] = {
	UINT64_C(0x0000000000000000), /* 0.0                       */
	UINT64_C(0x8000000000000000), /* -0.0                      */
	UINT64_C(0x3ff0000000000000), /* 1.0                       */
	UINT64_C(0xbff0000000000000), /* -1.0                      */
	UINT64_C(0x3fb999999999999a), /* 0.1                       */
	UINT64_C(0x7ff0000000000000), /* +inf                      */
	UINT64_C(0xfff0000000000000), /* -inf                      */
	UINT64_C(0x7ff8000000000000), /* NaN                       */
	UINT64_C(0xfff8000000000000), /* -NaN                      */
	UINT64_C(0x7ff8000000000001), /* NaN with a payload        */
	UINT64_C(0x7ff0000000000001), /* signalling NaN            */
	UINT64_C(0x7fffffffffffffff), /* NaN, every bit set        */
	UINT64_C(0x0000000000000001), /* smallest subnormal        */
	UINT64_C(0x800fffffffffffff), /* largest negative subnormal */
	UINT64_C(0x0010000000000000), /* DBL_MIN                   */
	UINT64_C(0x7fefffffffffffff), /* DBL_MAX                   */
	UINT64_C(0xffefffffffffffff), /* -DBL_MAX                  */
	UINT64_C(0x4330000000000000), /* 2^52                      */
	UINT64_C(0x43e0000000000000), /* 2^63                      */
	UINT64_C(0xc3e0000000000000), /* -2^63                     */
};

/* Lengths where a str, bin, array or map header changes form.  The last
 * three are the 16/32-bit boundary, kept rare because they are big. */
static const size_t len_edges[] = {
	0, 1, 15, 16, 17, 31, 32, 33, 127, 128, 255, 256, 257,
	65535, 65536, 65537,
};
#define LEN_SMALL_EDGES (ARRAY_LEN(len_edges) - 3)

/* UTF-8 boundaries: each width's first and last, around the surrogates. */
static const uint32_t cp_edges[] = {
	0x0, 0x7f, 0x80, 0x7ff, 0x800, 0xd7ff, 0xe000, 0xfffd, 0xffff,
	0x10000, 0x10ffff,
};

struct gen {
	struct rng rng;
	unsigned max_depth; /* containers only at depth < max_depth */
	size_t budget;      /* str and bin bytes this tree may still use */
};

/* Room for two 64 KiB bodies in one tree, and no more. */
#define GEN_BUDGET (2 * 65537 + 8192)

static size_t gen_len(struct gen *g)
{
	struct rng *r = &g->rng;
	uint64_t c = rng_below(r, 100);
	size_t n;

	if (c < 45)
		n = rng_below(r, 41);
	else if (c < 90)
		n = len_edges[rng_below(r, LEN_SMALL_EDGES)];
	else if (c < 99)
		n = 258 + rng_below(r, 1800);
	else
		n = len_edges[LEN_SMALL_EDGES + rng_below(r, 3)];
	if (n > g->budget)
		n = rng_below(r, (g->budget < 40 ? g->budget : 40) + 1);
	g->budget -= n;
	return n;
}

static uint32_t gen_codepoint(struct rng *r)
{
	switch (rng_below(r, 10)) {
	case 0:
		return cp_edges[rng_below(r, ARRAY_LEN(cp_edges))];
	case 1:
	case 2:
		return 0x80 + (uint32_t)rng_below(r, 0x800 - 0x80);
	case 3:
	case 4: {
		/* Three bytes, stepping over the surrogates. */
		uint32_t cp = 0x800 + (uint32_t)rng_below(r, 0xf000);
		return cp >= 0xd800 ? cp + 0x800 : cp;
	}
	case 5:
		return 0x10000 + (uint32_t)rng_below(r, 0x100000);
	default:
		return (uint32_t)rng_below(r, 0x80); /* NUL included */
	}
}

static size_t utf8_width(uint32_t cp)
{
	return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

static void utf8_put(uint8_t *p, uint32_t cp, size_t w)
{
	switch (w) {
	case 1:
		p[0] = (uint8_t)cp;
		break;
	case 2:
		p[0] = (uint8_t)(0xc0 | cp >> 6);
		p[1] = (uint8_t)(0x80 | (cp & 0x3f));
		break;
	case 3:
		p[0] = (uint8_t)(0xe0 | cp >> 12);
		p[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
		p[2] = (uint8_t)(0x80 | (cp & 0x3f));
		break;
	default:
		p[0] = (uint8_t)(0xf0 | cp >> 18);
		p[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f));
		p[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
		p[3] = (uint8_t)(0x80 | (cp & 0x3f));
		break;
	}
}

/* Exactly n bytes of valid UTF-8; ASCII fills a gap too small for the
 * code point drawn. */
static void gen_utf8(struct rng *r, uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint32_t cp = gen_codepoint(r);
		size_t w = utf8_width(cp);
		if (w > n - i) {
			cp = (uint32_t)rng_below(r, 0x80);
			w = 1;
		}
		utf8_put(p + i, cp, w);
		i += w;
	}
}

static void gen_bin(struct rng *r, uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rng_next(r);
}

static void node_set_str(struct node *x, struct rng *r, size_t n)
{
	x->kind = N_STR;
	x->n = n;
	x->bytes = xcalloc(n, 1);
	gen_utf8(r, x->bytes, n);
}

static void node_set_bin(struct node *x, struct rng *r, size_t n)
{
	x->kind = N_BIN;
	x->n = n;
	x->bytes = xcalloc(n, 1);
	gen_bin(r, x->bytes, n);
}

static int64_t gen_int(struct rng *r)
{
	if (rng_chance(r, 40))
		return int_edges[rng_below(r, ARRAY_LEN(int_edges))];
	/* Otherwise uniform in the number of magnitude bits, so that every
	 * width is as likely as every other. */
	unsigned bits = (unsigned)rng_below(r, 64);
	uint64_t u = bits == 0 ? 0 : rng_next(r) >> (64 - bits);
	return rng_chance(r, 50) ? -(int64_t)u - 1 : (int64_t)u;
}

static double gen_double(struct rng *r)
{
	switch (rng_below(r, 4)) {
	case 0:
		return bits_double(double_edges[rng_below(r, ARRAY_LEN(double_edges))]);
	case 1: /* any pattern at all, NaN payloads included */
		return bits_double(rng_next(r));
	case 2: /* subnormal or zero, either sign */
		return bits_double(rng_next(r) & UINT64_C(0x800fffffffffffff));
	default: /* short decimals, integral ones among them */
		return (double)(int32_t)rng_next(r) / (double)(1u << rng_below(r, 8));
	}
}

static void gen_scalar(struct gen *g, struct node *x, enum node_kind k)
{
	struct rng *r = &g->rng;
	x->kind = k;
	switch (k) {
	case N_BOOL:
		x->b = rng_chance(r, 50);
		break;
	case N_INT:
		x->i = gen_int(r);
		break;
	case N_DOUBLE:
		x->d = gen_double(r);
		break;
	case N_STR:
		node_set_str(x, r, gen_len(g));
		break;
	case N_BIN:
		node_set_bin(x, r, gen_len(g));
		break;
	default:
		break;
	}
}

/* Items in a container: mostly few, sometimes the fixarray/fixmap edge. */
static size_t gen_count(struct gen *g, unsigned depth)
{
	if (depth <= 1 && rng_chance(&g->rng, 5))
		return 15 + rng_below(&g->rng, 3);
	return rng_below(&g->rng, 6);
}

/* A dict key: any hashable kind, tuples of hashable kinds included. */
static void gen_key(struct gen *g, struct node *x, unsigned depth)
{
	static const enum node_kind kinds[] = {N_NIL, N_BOOL, N_INT, N_DOUBLE,
	                                       N_STR, N_BIN, N_ARRAY};
	size_t nk = depth < g->max_depth ? ARRAY_LEN(kinds) : ARRAY_LEN(kinds) - 1;
	enum node_kind k = kinds[rng_below(&g->rng, nk)];

	if (k != N_ARRAY) {
		gen_scalar(g, x, k);
		return;
	}
	x->kind = N_ARRAY;
	x->n = rng_below(&g->rng, 4);
	x->kids = xcalloc(x->n, sizeof *x->kids);
	for (size_t i = 0; i < x->n; i++)
		gen_key(g, &x->kids[i], depth + 1);
}

static bool key_taken(const struct node *pairs, size_t n, const struct node *k)
{
	for (size_t i = 0; i < n; i++)
		if (node_key_equal(&pairs[2 * i], k))
			return true;
	return false;
}

static void gen_value(struct gen *g, struct node *x, unsigned depth)
{
	static const enum node_kind scalars[] = {N_NIL, N_BOOL, N_INT,
	                                         N_DOUBLE, N_STR, N_BIN};
	struct rng *r = &g->rng;
	bool nest = depth < g->max_depth &&
	            rng_chance(r, depth == 0 ? 90 : 40);

	if (!nest) {
		gen_scalar(g, x, scalars[rng_below(r, ARRAY_LEN(scalars))]);
		return;
	}
	size_t want = gen_count(g, depth);
	if (rng_chance(r, 50)) {
		x->kind = N_ARRAY;
		x->n = want;
		x->kids = xcalloc(want, sizeof *x->kids);
		for (size_t i = 0; i < want; i++)
			gen_value(g, &x->kids[i], depth + 1);
		return;
	}
	/* A map: draw keys until want distinct ones, giving up on a kind
	 * that keeps colliding (there are only three nil-or-bool keys). */
	x->kind = N_MAP;
	x->kids = xcalloc(2 * want, sizeof *x->kids);
	for (size_t tries = 0; x->n < want && tries < 4 * want; tries++) {
		struct node *k = &x->kids[2 * x->n];
		gen_key(g, k, depth + 1);
		if (key_taken(x->kids, x->n, k)) {
			node_free(k);
			continue;
		}
		gen_value(g, &x->kids[2 * x->n + 1], depth + 1);
		x->n++;
	}
}

/* The tree for seed: 1 to 4 levels of containers (tuple keys may add
 * one), far inside msgpack-c's own nesting limit of 32. */
static void gen_tree(uint64_t seed, struct node *out)
{
	struct gen g = {{seed}, 0, GEN_BUDGET};
	g.max_depth = 1 + (unsigned)rng_below(&g.rng, 4);
	gen_value(&g, out, 0);
}

/* ==== the model into each library ====================================== */

static remo_value node_to_remo(const struct node *x)
{
	remo_value v;

	switch (x->kind) {
	case N_NIL:
		return remo_nil();
	case N_BOOL:
		return remo_bool(x->b);
	case N_INT:
		return remo_int(x->i);
	case N_DOUBLE:
		return remo_double(x->d);
	case N_STR:
		v = remo_strn((const char *)x->bytes, x->n);
		break;
	case N_BIN:
		v = remo_bytes(x->bytes, x->n);
		break;
	case N_ARRAY:
		v = remo_tuple(x->n);
		assert_true(remo_ok(v));
		for (size_t i = 0; i < x->n; i++)
			assert_int_equal(remo_tuple_set(v, i, node_to_remo(&x->kids[i])),
			                 REMO_OK);
		break;
	default:
		v = remo_dict();
		assert_true(remo_ok(v));
		for (size_t i = 0; i < x->n; i++) {
			assert_int_equal(remo_dict_set(v, node_to_remo(&x->kids[2 * i]),
			                               node_to_remo(&x->kids[2 * i + 1])),
			                 REMO_OK);
			/* The model's keys are distinct by remo's rule; a dict
			 * that did not grow would be a remo_equal or remo_hash bug. */
			assert_int_equal(remo_dict_len(v), i + 1);
		}
		break;
	}
	assert_true(remo_ok(v));
	return v;
}

static void node_to_msgpack(msgpack_packer *pk, const struct node *x)
{
	switch (x->kind) {
	case N_NIL:
		assert_int_equal(msgpack_pack_nil(pk), 0);
		break;
	case N_BOOL:
		assert_int_equal(x->b ? msgpack_pack_true(pk) : msgpack_pack_false(pk),
		                 0);
		break;
	case N_INT:
		assert_int_equal(msgpack_pack_int64(pk, x->i), 0);
		break;
	case N_DOUBLE:
		assert_int_equal(msgpack_pack_double(pk, x->d), 0);
		break;
	case N_STR:
		assert_int_equal(msgpack_pack_str(pk, x->n), 0);
		assert_int_equal(msgpack_pack_str_body(pk, x->bytes, x->n), 0);
		break;
	case N_BIN:
		assert_int_equal(msgpack_pack_bin(pk, x->n), 0);
		assert_int_equal(msgpack_pack_bin_body(pk, x->bytes, x->n), 0);
		break;
	case N_ARRAY:
		assert_int_equal(msgpack_pack_array(pk, x->n), 0);
		for (size_t i = 0; i < x->n; i++)
			node_to_msgpack(pk, &x->kids[i]);
		break;
	case N_MAP:
		assert_int_equal(msgpack_pack_map(pk, x->n), 0);
		for (size_t i = 0; i < 2 * x->n; i++)
			node_to_msgpack(pk, &x->kids[i]);
		break;
	}
}

/* ==== each library's result against the model ========================== */

/* Why the last comparison failed, for the failure message. */
static char diff_why[256];

static bool why(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static bool why(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(diff_why, sizeof diff_why, fmt, ap);
	va_end(ap);
	return false;
}

static const char *const node_kind_names[] = {
	"nil", "bool", "int", "double", "str", "bin", "array", "map"};

/*
 * Strict: remo_equal is deliberately loose (NaN equals any NaN, -0.0
 * equals 0.0, dicts compare without order), so this compares double bits
 * and dict order as well.
 */
static bool remo_matches(remo_value v, const struct node *x)
{
	static const remo_kind want[] = {
		[N_NIL] = REMO_NIL, [N_BOOL] = REMO_BOOL, [N_INT] = REMO_INT,
		[N_DOUBLE] = REMO_DOUBLE, [N_STR] = REMO_STR, [N_BIN] = REMO_BYTES,
		[N_ARRAY] = REMO_TUPLE, [N_MAP] = REMO_DICT};
	const void *p;
	size_t len;

	if (v.kind != want[x->kind])
		return why("remo kind %s where the tree has %s",
		           remo_kind_name(v.kind), node_kind_names[x->kind]);
	switch (x->kind) {
	case N_NIL:
		return true;
	case N_BOOL:
		return v.as.b == x->b ? true : why("bool %d, want %d", v.as.b, x->b);
	case N_INT:
		return v.as.i == x->i ? true
		       : why("int %" PRId64 ", want %" PRId64, v.as.i, x->i);
	case N_DOUBLE:
		return double_bits(v.as.d) == double_bits(x->d) ? true
		       : why("double bits %016" PRIx64 ", want %016" PRIx64,
		             double_bits(v.as.d), double_bits(x->d));
	case N_STR:
	case N_BIN:
		p = x->kind == N_STR ? (const void *)remo_str_data(v, &len)
		                     : remo_bytes_data(v, &len);
		if (len != x->n || memcmp(p, x->bytes, len) != 0)
			return why("%s of %zu bytes differs from the tree's %zu",
			           node_kind_names[x->kind], len, x->n);
		return true;
	case N_ARRAY:
		if (remo_tuple_len(v) != x->n)
			return why("tuple of %zu, want %zu", remo_tuple_len(v), x->n);
		for (size_t i = 0; i < x->n; i++)
			if (!remo_matches(remo_tuple_get(v, i), &x->kids[i]))
				return false;
		return true;
	case N_MAP: {
		size_t pos = 0, i = 0;
		remo_value k, val;
		if (remo_dict_len(v) != x->n)
			return why("dict of %zu, want %zu", remo_dict_len(v), x->n);
		while (remo_dict_next(v, &pos, &k, &val)) {
			if (!remo_matches(k, &x->kids[2 * i]) ||
			    !remo_matches(val, &x->kids[2 * i + 1]))
				return false;
			i++;
		}
		return i == x->n ? true : why("dict iterated %zu of %zu", i, x->n);
	}
	}
	return why("unknown model kind");
}

static bool object_matches(const msgpack_object *o, const struct node *x)
{
	switch (x->kind) {
	case N_NIL:
		return o->type == MSGPACK_OBJECT_NIL ? true
		       : why("msgpack-c type %d, want nil", o->type);
	case N_BOOL:
		if (o->type != MSGPACK_OBJECT_BOOLEAN || o->via.boolean != x->b)
			return why("msgpack-c type %d, want bool %d", o->type, x->b);
		return true;
	case N_INT:
		/* msgpack-c reads every non-negative int as POSITIVE_INTEGER. */
		if (x->i >= 0 ? o->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		                    o->via.u64 != (uint64_t)x->i
		              : o->type != MSGPACK_OBJECT_NEGATIVE_INTEGER ||
		                    o->via.i64 != x->i)
			return why("msgpack-c type %d value %" PRIu64
			           ", want int %" PRId64,
			           o->type, o->via.u64, x->i);
		return true;
	case N_DOUBLE:
		if (o->type != MSGPACK_OBJECT_FLOAT64 ||
		    double_bits(o->via.f64) != double_bits(x->d))
			return why("msgpack-c type %d bits %016" PRIx64
			           ", want float64 %016" PRIx64,
			           o->type, double_bits(o->via.f64),
			           double_bits(x->d));
		return true;
	case N_STR:
		if (o->type != MSGPACK_OBJECT_STR || o->via.str.size != x->n ||
		    (x->n != 0 && memcmp(o->via.str.ptr, x->bytes, x->n) != 0))
			return why("msgpack-c type %d, want str of %zu bytes",
			           o->type, x->n);
		return true;
	case N_BIN:
		if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size != x->n ||
		    (x->n != 0 && memcmp(o->via.bin.ptr, x->bytes, x->n) != 0))
			return why("msgpack-c type %d, want bin of %zu bytes",
			           o->type, x->n);
		return true;
	case N_ARRAY:
		if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != x->n)
			return why("msgpack-c type %d, want array of %zu",
			           o->type, x->n);
		for (size_t i = 0; i < x->n; i++)
			if (!object_matches(&o->via.array.ptr[i], &x->kids[i]))
				return false;
		return true;
	case N_MAP:
		if (o->type != MSGPACK_OBJECT_MAP || o->via.map.size != x->n)
			return why("msgpack-c type %d, want map of %zu",
			           o->type, x->n);
		for (size_t i = 0; i < x->n; i++)
			if (!object_matches(&o->via.map.ptr[i].key, &x->kids[2 * i]) ||
			    !object_matches(&o->via.map.ptr[i].val, &x->kids[2 * i + 1]))
				return false;
		return true;
	}
	return why("unknown model kind");
}

/* ==== fixture ============================================================ */

struct diff_fixture {
	msgpack_sbuffer sbuf; /* msgpack-c's bytes                      */
	msgpack_packer pk;    /* writes into sbuf                       */
	msgpack_unpacked unp; /* what msgpack-c last read               */
	remo_buf rbuf;        /* remo's bytes                           */
	struct node tree;     /* the current tree                       */
	remo_value built;     /* the tree built through remo's API      */
	remo_value decoded;   /* what remo last decoded                 */
	uint64_t seed;        /* of tree, when it is a random one       */
	bool random;
	char label[128];      /* names a fixed case instead             */
};

/* Releases everything the last case made, keeping the buffers' memory. */
static void diff_clear_codec(struct diff_fixture *f)
{
	remo_value_release(f->built);
	f->built = remo_nil();
	remo_value_release(f->decoded);
	f->decoded = remo_nil();
	f->rbuf.len = 0;
	msgpack_sbuffer_clear(&f->sbuf);
	msgpack_unpacked_destroy(&f->unp);
}

static void diff_clear(struct diff_fixture *f)
{
	diff_clear_codec(f);
	node_free(&f->tree);
	f->random = false;
	f->label[0] = '\0';
}

static int diff_setup(void **state)
{
	struct diff_fixture *f = calloc(1, sizeof *f);
	if (f == NULL)
		return -1;
	msgpack_sbuffer_init(&f->sbuf);
	msgpack_packer_init(&f->pk, &f->sbuf, msgpack_sbuffer_write);
	msgpack_unpacked_init(&f->unp);
	test_alloc_reset(-1);
	*state = f;
	return 0;
}

/* Frees what a test left, also when it failed half way through a tree. */
static int diff_teardown(void **state)
{
	struct diff_fixture *f = *state;
	diff_clear(f);
	remo_buf_free(&f->rbuf);
	msgpack_sbuffer_destroy(&f->sbuf);
	test_alloc_restore();
	free(f);
	return 0;
}

static void diff_blame(const struct diff_fixture *f)
{
	if (f->random)
		print_error("tree seed 0x%016" PRIx64 "; replay with "
		            "REMO_DIFF_SEED=0x%016" PRIx64
		            " REMO_DIFF_ITERATIONS=1\n",
		            f->seed, f->seed);
	else if (f->label[0] != '\0')
		print_error("case: %s\n", f->label);
}

/* Fails the test, first naming the tree or case it failed on. */
#define diff_require(f, cond, ...)                                        \
	do {                                                              \
		if (!(cond)) {                                            \
			diff_blame(f);                                    \
			fail_msg(__VA_ARGS__);                            \
		}                                                         \
	} while (0)

static void dump_bytes(const char *who, const uint8_t *p, size_t n,
                       size_t from)
{
	char line[3 * 24 + 1];
	size_t k = 0;
	line[0] = '\0';
	for (size_t i = from; i < n && i < from + 24; i++)
		k += (size_t)snprintf(line + k, sizeof line - k, " %02x", p[i]);
	print_error("%-9s @%zu:%s\n", who, from, line);
}

static unsigned diff_iterations(void)
{
	const char *s = getenv("REMO_DIFF_ITERATIONS");
	return s != NULL ? (unsigned)strtoul(s, NULL, 0) : DIFF_DEFAULT_ITERATIONS;
}

static uint64_t diff_seed(void)
{
	const char *s = getenv("REMO_DIFF_SEED");
	return s != NULL ? (uint64_t)strtoull(s, NULL, 0) : DIFF_SEED;
}

static void diff_random_tree(struct diff_fixture *f, uint64_t seed)
{
	diff_clear(f);
	f->seed = seed;
	f->random = true;
	gen_tree(seed, &f->tree);
}

/* ==== the three checks, on f->tree ====================================== */

/* Direction A: remo's encoding of the tree is msgpack-c's, byte for byte. */
static void check_same_bytes(struct diff_fixture *f)
{
	diff_clear_codec(f);
	f->built = node_to_remo(&f->tree);
	int rc = remo_pack(f->built, &f->rbuf);
	diff_require(f, rc == REMO_OK, "remo_pack: %s", remo_status_name(rc));
	node_to_msgpack(&f->pk, &f->tree);

	const uint8_t *a = f->rbuf.data, *b = (const uint8_t *)f->sbuf.data;
	size_t na = f->rbuf.len, nb = f->sbuf.size, i = 0;
	while (i < na && i < nb && a[i] == b[i])
		i++;
	if (i < na || i < nb) {
		size_t from = i < 8 ? 0 : i - 8;
		print_error("remo wrote %zu bytes, msgpack-c %zu; first "
		            "difference at offset %zu\n", na, nb, i);
		dump_bytes("remo", a, na, from);
		dump_bytes("msgpack-c", b, nb, from);
	}
	diff_require(f, i == na && i == nb, "remo and msgpack-c bytes differ");
}

/* Direction A: msgpack-c reads remo's bytes as exactly the tree. */
static void check_msgpack_reads_remo(struct diff_fixture *f)
{
	diff_clear_codec(f);
	f->built = node_to_remo(&f->tree);
	int rc = remo_pack(f->built, &f->rbuf);
	diff_require(f, rc == REMO_OK, "remo_pack: %s", remo_status_name(rc));

	size_t off = 0;
	msgpack_unpack_return ret = msgpack_unpack_next(
		&f->unp, (const char *)f->rbuf.data, f->rbuf.len, &off);
	diff_require(f, ret == MSGPACK_UNPACK_SUCCESS,
	             "msgpack_unpack_next returned %d on remo's bytes", ret);
	diff_require(f, off == f->rbuf.len,
	             "msgpack-c read %zu of remo's %zu bytes", off, f->rbuf.len);
	diff_require(f, object_matches(&f->unp.data, &f->tree), "%s", diff_why);
}

/* Direction B: remo reads msgpack-c's bytes as exactly the tree. */
static void check_remo_reads_msgpack(struct diff_fixture *f)
{
	diff_clear_codec(f);
	node_to_msgpack(&f->pk, &f->tree);
	int rc = remo_unpack(f->sbuf.data, f->sbuf.size, &f->decoded);
	diff_require(f, rc == REMO_OK, "remo_unpack of msgpack-c's bytes: %s",
	             remo_status_name(rc));
	f->built = node_to_remo(&f->tree);
	diff_require(f, remo_equal(f->built, f->decoded),
	             "remo_equal: decoded value differs from the built one");
	diff_require(f, remo_matches(f->decoded, &f->tree), "%s", diff_why);
}

/* ==== 1. the generator ================================================== */

/* Things the random trees should reach between them. */
enum feature {
	F_POSFIXINT, F_UINT8, F_UINT16, F_UINT32, F_UINT64,
	F_NEGFIXINT, F_INT8, F_INT16, F_INT32, F_INT64,
	F_INT64_MIN, F_INT64_MAX,
	F_NIL, F_FALSE, F_TRUE,
	F_NAN, F_INF, F_NEG_ZERO, F_SUBNORMAL,
	F_FIXSTR, F_STR8, F_STR16, F_STR32, F_UTF8_4, F_NUL_IN_STR,
	F_BIN8, F_BIN16, F_BIN32,
	F_FIXARRAY, F_ARRAY16, F_FIXMAP, F_MAP16,
	F_TUPLE_KEY, F_DOUBLE_KEY, F_NAN_KEY, F_DEPTH4,
	F_COUNT
};

static const char *const feature_names[F_COUNT] = {
	"positive fixint", "uint8", "uint16", "uint32", "uint64",
	"negative fixint", "int8", "int16", "int32", "int64",
	"INT64_MIN", "INT64_MAX",
	"nil", "false", "true",
	"NaN", "infinity", "-0.0", "subnormal",
	"fixstr", "str8", "str16", "str32", "4-byte UTF-8", "NUL in str",
	"bin8", "bin16", "bin32",
	"fixarray", "array16", "fixmap", "map16",
	"tuple key", "double key", "NaN key", "depth 4",
};

/* The shortest form of an int, as MessagePack defines it. */
static enum feature int_form(int64_t v)
{
	if (v >= 0)
		return v <= 0x7f ? F_POSFIXINT : v <= UINT8_MAX ? F_UINT8
		       : v <= UINT16_MAX ? F_UINT16 : v <= UINT32_MAX ? F_UINT32
		                                                     : F_UINT64;
	return v >= -32 ? F_NEGFIXINT : v >= INT8_MIN ? F_INT8
	       : v >= INT16_MIN ? F_INT16 : v >= INT32_MIN ? F_INT32 : F_INT64;
}

static void note_features(const struct node *x, unsigned depth, bool *seen)
{
	enum feature l8 = x->kind == N_STR ? F_STR8 : F_BIN8;

	if (depth >= 4)
		seen[F_DEPTH4] = true;
	switch (x->kind) {
	case N_NIL:
		seen[F_NIL] = true;
		break;
	case N_BOOL:
		seen[x->b ? F_TRUE : F_FALSE] = true;
		break;
	case N_INT:
		seen[int_form(x->i)] = true;
		seen[F_INT64_MIN] |= x->i == INT64_MIN;
		seen[F_INT64_MAX] |= x->i == INT64_MAX;
		break;
	case N_DOUBLE:
		seen[F_NAN] |= isnan(x->d) != 0;
		seen[F_INF] |= isinf(x->d) != 0;
		seen[F_NEG_ZERO] |= double_bits(x->d) == UINT64_C(0x8000000000000000);
		seen[F_SUBNORMAL] |= fpclassify(x->d) == FP_SUBNORMAL;
		break;
	case N_STR:
		for (size_t i = 0; i < x->n; i++) {
			seen[F_UTF8_4] |= x->bytes[i] >= 0xf0;
			seen[F_NUL_IN_STR] |= x->bytes[i] == 0;
		}
		if (x->n <= 31) {
			seen[F_FIXSTR] = true;
			break;
		}
		/* fall through */
	case N_BIN:
		seen[x->n <= UINT8_MAX ? l8 : x->n <= UINT16_MAX ? l8 + 1 : l8 + 2] =
			true;
		break;
	case N_ARRAY:
		seen[x->n <= 15 ? F_FIXARRAY : F_ARRAY16] = true;
		break;
	case N_MAP:
		seen[x->n <= 15 ? F_FIXMAP : F_MAP16] = true;
		for (size_t i = 0; i < x->n; i++) {
			const struct node *k = &x->kids[2 * i];
			seen[F_TUPLE_KEY] |= k->kind == N_ARRAY;
			seen[F_DOUBLE_KEY] |= k->kind == N_DOUBLE;
			seen[F_NAN_KEY] |= k->kind == N_DOUBLE && isnan(k->d);
		}
		break;
	}
	for (size_t i = 0; i < node_kids(x); i++)
		note_features(&x->kids[i], depth + 1, seen);
}

/*
 * The default run's trees reach every shortest form and every awkward
 * value above, so the differential tests below cannot pass by never
 * meeting one.  (array32 and map32 need 65536 items; the boundary test
 * builds those on purpose.)  Counted over the default number of trees
 * whatever REMO_DIFF_ITERATIONS says, since this is about the generator.
 */
static void generator_reaches_every_form(void **state)
{
	struct diff_fixture *f = *state;
	bool seen[F_COUNT] = {false};

	for (unsigned i = 0; i < DIFF_DEFAULT_ITERATIONS; i++) {
		diff_random_tree(f, DIFF_SEED + i);
		note_features(&f->tree, 0, seen);
	}
	diff_clear(f);
	for (int i = 0; i < F_COUNT; i++)
		if (!seen[i])
			fail_msg("no tree of %u reached: %s", DIFF_DEFAULT_ITERATIONS,
			         feature_names[i]);
}

/* ==== 2, 3. the differential tests ====================================== */

/*
 * Every boundary on purpose, once: each int and double edge, each str and
 * bin length edge, arrays and maps either side of 16 and 65536 items, and
 * a map keyed by every hashable kind.  All three checks on each.
 */
static void run_all_checks(struct diff_fixture *f)
{
	check_same_bytes(f);
	check_msgpack_reads_remo(f);
	check_remo_reads_msgpack(f);
}

static void fixed_case(struct diff_fixture *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Clears f for a fixed case named by fmt; the caller fills f->tree. */
static void fixed_case(struct diff_fixture *f, const char *fmt, ...)
{
	va_list ap;
	diff_clear(f);
	va_start(ap, fmt);
	vsnprintf(f->label, sizeof f->label, fmt, ap);
	va_end(ap);
}

static void boundaries_agree_byte_for_byte(void **state)
{
	struct diff_fixture *f = *state;
	struct rng r = {DIFF_SEED};
	static const size_t counts[] = {0, 1, 15, 16, 17, 65535, 65536};

	for (size_t i = 0; i < ARRAY_LEN(int_edges); i++) {
		fixed_case(f, "int %" PRId64, int_edges[i]);
		f->tree.kind = N_INT;
		f->tree.i = int_edges[i];
		run_all_checks(f);
	}
	for (size_t i = 0; i < ARRAY_LEN(double_edges); i++) {
		fixed_case(f, "double bits %016" PRIx64, double_edges[i]);
		f->tree.kind = N_DOUBLE;
		f->tree.d = bits_double(double_edges[i]);
		run_all_checks(f);
	}
	for (size_t i = 0; i < ARRAY_LEN(len_edges); i++) {
		fixed_case(f, "str of %zu bytes", len_edges[i]);
		node_set_str(&f->tree, &r, len_edges[i]);
		run_all_checks(f);
		fixed_case(f, "bin of %zu bytes", len_edges[i]);
		node_set_bin(&f->tree, &r, len_edges[i]);
		run_all_checks(f);
	}
	for (size_t i = 0; i < ARRAY_LEN(counts); i++) {
		size_t n = counts[i];
		fixed_case(f, "array of %zu", n);
		f->tree.kind = N_ARRAY;
		f->tree.n = n;
		f->tree.kids = xcalloc(n, sizeof *f->tree.kids);
		for (size_t k = 0; k < n; k++) {
			f->tree.kids[k].kind = N_INT;
			f->tree.kids[k].i = (int64_t)(k % 200);
		}
		run_all_checks(f);

		fixed_case(f, "map of %zu", n);
		f->tree.kind = N_MAP;
		f->tree.n = n;
		f->tree.kids = xcalloc(2 * n, sizeof *f->tree.kids);
		for (size_t k = 0; k < n; k++) {
			f->tree.kids[2 * k].kind = N_INT;
			f->tree.kids[2 * k].i = (int64_t)k - 100;
			f->tree.kids[2 * k + 1].kind = N_BOOL;
			f->tree.kids[2 * k + 1].b = k & 1;
		}
		run_all_checks(f);
	}

	/* {nil: 0, false: 1, true: 2, 7: 3, 7.0: 4, NaN: 5, -0.0: 6,
	 *  "k": 7, b"k": 8, (): 9, (1, ("k",)): 10} -- 7 and 7.0 and "k"
	 *  and b"k" are distinct keys, as kinds differ. */
	fixed_case(f, "map keyed by every hashable kind");
	struct node *t = &f->tree, *k;
	t->kind = N_MAP;
	t->n = 11;
	t->kids = xcalloc(2 * t->n, sizeof *t->kids);
	for (size_t i = 0; i < t->n; i++) {
		t->kids[2 * i + 1].kind = N_INT;
		t->kids[2 * i + 1].i = (int64_t)i;
	}
	t->kids[2].kind = t->kids[4].kind = N_BOOL;
	t->kids[4].b = true;
	t->kids[6].kind = N_INT;
	t->kids[6].i = 7;
	t->kids[8].kind = N_DOUBLE;
	t->kids[8].d = 7.0;
	t->kids[10].kind = N_DOUBLE;
	t->kids[10].d = NAN;
	t->kids[12].kind = N_DOUBLE;
	t->kids[12].d = -0.0;
	node_set_str(&t->kids[14], &r, 1);
	t->kids[14].bytes[0] = 'k';
	node_set_bin(&t->kids[16], &r, 1);
	t->kids[16].bytes[0] = 'k';
	t->kids[18].kind = N_ARRAY;
	k = &t->kids[20];
	k->kind = N_ARRAY;
	k->n = 2;
	k->kids = xcalloc(2, sizeof *k->kids);
	k->kids[0].kind = N_INT;
	k->kids[0].i = 1;
	k->kids[1].kind = N_ARRAY;
	k->kids[1].n = 1;
	k->kids[1].kids = xcalloc(1, sizeof *k->kids);
	node_set_str(&k->kids[1].kids[0], &r, 1);
	k->kids[1].kids[0].bytes[0] = 'k';
	run_all_checks(f);
	diff_clear(f);
}

static void remo_writes_msgpack_c_bytes(void **state)
{
	struct diff_fixture *f = *state;
	unsigned n = diff_iterations();
	uint64_t base = diff_seed();

	for (unsigned i = 0; i < n; i++) {
		diff_random_tree(f, base + i);
		check_same_bytes(f);
	}
	diff_clear(f);
}

static void msgpack_c_reads_remo_bytes_as_the_tree(void **state)
{
	struct diff_fixture *f = *state;
	unsigned n = diff_iterations();
	uint64_t base = diff_seed();

	for (unsigned i = 0; i < n; i++) {
		diff_random_tree(f, base + i);
		check_msgpack_reads_remo(f);
	}
	diff_clear(f);
}

static void remo_reads_msgpack_c_bytes_as_the_tree(void **state)
{
	struct diff_fixture *f = *state;
	unsigned n = diff_iterations();
	uint64_t base = diff_seed();

	for (unsigned i = 0; i < n; i++) {
		diff_random_tree(f, base + i);
		check_remo_reads_msgpack(f);
	}
	diff_clear(f);
}

/* ==== 4. forms msgpack-c writes that are not the shortest =============== */

/* remo_unpack n bytes into f->decoded; the status. */
static int remo_read(struct diff_fixture *f, const void *p, size_t n)
{
	remo_value_release(f->decoded);
	f->decoded = remo_nil();
	return remo_unpack(p, n, &f->decoded);
}

/* msgpack_unpack_next n bytes into f->unp; the status, *used the bytes
 * it consumed. */
static msgpack_unpack_return mp_read(struct diff_fixture *f, const void *p,
                                     size_t n, size_t *used)
{
	*used = 0;
	msgpack_unpacked_destroy(&f->unp);
	return msgpack_unpack_next(&f->unp, p, n, used);
}

/* remo re-encodes f->decoded canonically: as msgpack-c's canonical
 * bytes, which the caller put in f->sbuf. */
static void assert_repacks_as_sbuf(struct diff_fixture *f)
{
	f->rbuf.len = 0;
	assert_int_equal(remo_pack(f->decoded, &f->rbuf), REMO_OK);
	assert_int_equal(f->rbuf.len, f->sbuf.size);
	assert_memory_equal(f->rbuf.data, f->sbuf.data, f->sbuf.size);
}

static void float32_decodes_as_that_double(void **state)
{
	struct diff_fixture *f = *state;
	static const float fs[] = {
		0.0f, -0.0f, 1.0f, 1.5f, -2.75f, 0.1f, 3.14159265f, 16777217.0f,
		FLT_MAX, -FLT_MAX, FLT_MIN, FLT_TRUE_MIN, -1e-40f, INFINITY,
		-INFINITY, NAN, -NAN,
	};
	size_t used;

	for (size_t i = 0; i < ARRAY_LEN(fs); i++) {
		double want = (double)fs[i];
		diff_clear_codec(f);
		assert_int_equal(msgpack_pack_float(&f->pk, fs[i]), 0);
		assert_int_equal(f->sbuf.size, 5);
		assert_int_equal((uint8_t)f->sbuf.data[0], 0xca);

		/* Both read the float32 as the double it widens to. */
		assert_int_equal(mp_read(f, f->sbuf.data, 5, &used),
		                 MSGPACK_UNPACK_SUCCESS);
		assert_int_equal(f->unp.data.type, MSGPACK_OBJECT_FLOAT32);
		assert_int_equal(double_bits(f->unp.data.via.f64), double_bits(want));
		assert_int_equal(remo_read(f, f->sbuf.data, 5), REMO_OK);
		assert_int_equal(f->decoded.kind, REMO_DOUBLE);
		assert_int_equal(double_bits(f->decoded.as.d), double_bits(want));

		/* And remo writes it back as msgpack-c writes that double. */
		msgpack_sbuffer_clear(&f->sbuf);
		assert_int_equal(msgpack_pack_double(&f->pk, want), 0);
		assert_repacks_as_sbuf(f);
	}
	diff_clear(f);
}

/* msgpack-c's msgpack_pack_fix_*: a fixed width, whatever the value. */
enum fix_form {
	FIX_U8, FIX_U16, FIX_U32, FIX_U64,
	FIX_I8, FIX_I16, FIX_I32, FIX_I64,
};

static int pack_fix(msgpack_packer *pk, enum fix_form form, int64_t v)
{
	switch (form) {
	case FIX_U8:  return msgpack_pack_fix_uint8(pk, (uint8_t)v);
	case FIX_U16: return msgpack_pack_fix_uint16(pk, (uint16_t)v);
	case FIX_U32: return msgpack_pack_fix_uint32(pk, (uint32_t)v);
	case FIX_U64: return msgpack_pack_fix_uint64(pk, (uint64_t)v);
	case FIX_I8:  return msgpack_pack_fix_int8(pk, (int8_t)v);
	case FIX_I16: return msgpack_pack_fix_int16(pk, (int16_t)v);
	case FIX_I32: return msgpack_pack_fix_int32(pk, (int32_t)v);
	default:      return msgpack_pack_fix_int64(pk, v);
	}
}

static void ints_in_signed_and_wide_forms_decode_alike(void **state)
{
	struct diff_fixture *f = *state;
	static const struct {
		enum fix_form form;
		int64_t v;
		uint8_t first; /* the type byte msgpack-c must write */
	} cases[] = {
		{FIX_I8, 5, 0xd0}, {FIX_I16, 5, 0xd1}, {FIX_I32, 5, 0xd2},
		{FIX_I64, 5, 0xd3}, {FIX_I8, 0, 0xd0}, {FIX_I64, 0, 0xd3},
		{FIX_I8, 127, 0xd0}, {FIX_I16, 32767, 0xd1},
		{FIX_I32, INT32_MAX, 0xd2}, {FIX_I64, INT64_MAX, 0xd3},
		{FIX_I64, (int64_t)UINT32_MAX + 1, 0xd3},
		{FIX_U8, 5, 0xcc}, {FIX_U16, 5, 0xcd}, {FIX_U32, 5, 0xce},
		{FIX_U64, 5, 0xcf}, {FIX_U64, INT64_MAX, 0xcf},
		{FIX_I8, -1, 0xd0}, {FIX_I16, -1, 0xd1}, {FIX_I32, -1, 0xd2},
		{FIX_I64, -1, 0xd3}, {FIX_I16, -100, 0xd1},
		{FIX_I32, INT16_MIN, 0xd2}, {FIX_I64, INT32_MIN, 0xd3},
	};
	/* d0 05 and d3 00 .. 05, checked byte for byte first. */
	static const uint8_t d0_05[] = {0xd0, 0x05};
	static const uint8_t d3_05[] = {0xd3, 0, 0, 0, 0, 0, 0, 0, 0x05};
	size_t used;

	diff_clear_codec(f);
	assert_int_equal(msgpack_pack_fix_int8(&f->pk, 5), 0);
	assert_int_equal(msgpack_pack_fix_int64(&f->pk, 5), 0);
	assert_int_equal(f->sbuf.size, sizeof d0_05 + sizeof d3_05);
	assert_memory_equal(f->sbuf.data, d0_05, sizeof d0_05);
	assert_memory_equal(f->sbuf.data + sizeof d0_05, d3_05, sizeof d3_05);

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		int64_t v = cases[i].v;
		diff_clear_codec(f);
		assert_int_equal(pack_fix(&f->pk, cases[i].form, v), 0);
		assert_int_equal((uint8_t)f->sbuf.data[0], cases[i].first);

		assert_int_equal(mp_read(f, f->sbuf.data, f->sbuf.size, &used),
		                 MSGPACK_UNPACK_SUCCESS);
		assert_int_equal(used, f->sbuf.size);
		if (v >= 0) {
			assert_int_equal(f->unp.data.type,
			                 MSGPACK_OBJECT_POSITIVE_INTEGER);
			assert_int_equal(f->unp.data.via.u64, (uint64_t)v);
		} else {
			assert_int_equal(f->unp.data.type,
			                 MSGPACK_OBJECT_NEGATIVE_INTEGER);
			assert_int_equal(f->unp.data.via.i64, v);
		}
		assert_int_equal(remo_read(f, f->sbuf.data, f->sbuf.size), REMO_OK);
		assert_int_equal(f->decoded.kind, REMO_INT);
		assert_int_equal(f->decoded.as.i, v);

		msgpack_sbuffer_clear(&f->sbuf);
		assert_int_equal(msgpack_pack_int64(&f->pk, v), 0);
		assert_repacks_as_sbuf(f);
	}
	diff_clear(f);
}

/*
 * Long headers on short things.  msgpack-c writes some of these itself
 * (msgpack_pack_v4raw: str16 for a 40-byte string, the pre-2013 format);
 * the rest are by hand.  Each must read, in both libraries, as the value
 * of its canonical form, and remo must write it back canonically.
 */
static void long_forms_decode_as_the_short_ones(void **state)
{
	struct diff_fixture *f = *state;
	static const struct {
		const char *name;
		const char *loose;
		size_t nloose;
		const char *canon;
		size_t ncanon;
	} cases[] = {
#define LF(name, loose, canon) \
	{name, loose, sizeof loose - 1, canon, sizeof canon - 1}
		LF("str8 abc", "\xd9\x03" "abc", "\xa3" "abc"),
		LF("str16 abc", "\xda\x00\x03" "abc", "\xa3" "abc"),
		LF("str32 abc", "\xdb\x00\x00\x00\x03" "abc", "\xa3" "abc"),
		LF("str8 empty", "\xd9\x00", "\xa0"),
		LF("str32 empty", "\xdb\x00\x00\x00\x00", "\xa0"),
		LF("str16 of 40", "\xda\x00\x28" "0123456789012345678901234567890123456789",
		   "\xd9\x28" "0123456789012345678901234567890123456789"),
		LF("bin16 xyz", "\xc5\x00\x03" "xyz", "\xc4\x03" "xyz"),
		LF("bin32 xyz", "\xc6\x00\x00\x00\x03" "xyz", "\xc4\x03" "xyz"),
		LF("bin32 empty", "\xc6\x00\x00\x00\x00", "\xc4\x00"),
		LF("array16 (1, 2)", "\xdc\x00\x02\x01\x02", "\x92\x01\x02"),
		LF("array32 (1, 2)", "\xdd\x00\x00\x00\x02\x01\x02", "\x92\x01\x02"),
		LF("array32 ()", "\xdd\x00\x00\x00\x00", "\x90"),
		LF("map16 {k: 1}", "\xde\x00\x01\xa1k\x01", "\x81\xa1k\x01"),
		LF("map32 {k: 1}", "\xdf\x00\x00\x00\x01\xa1k\x01", "\x81\xa1k\x01"),
		LF("map32 {}", "\xdf\x00\x00\x00\x00", "\x80"),
		LF("array32 of str32 key map",
		   "\xdd\x00\x00\x00\x01\xdf\x00\x00\x00\x01"
		   "\xdb\x00\x00\x00\x01x\xd1\x00\x07",
		   "\x91\x81\xa1x\x07"),
#undef LF
	};
	msgpack_unpacked canon;
	size_t used;

	msgpack_unpacked_init(&canon);
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		fixed_case(f, "%s", cases[i].name);
		size_t n = cases[i].nloose;

		/* msgpack-c: the loose form reads as an object equal to the
		 * canonical form's. */
		msgpack_unpacked_destroy(&canon);
		used = 0;
		diff_require(f, msgpack_unpack_next(&canon, cases[i].canon,
		                                    cases[i].ncanon, &used) ==
		                    MSGPACK_UNPACK_SUCCESS,
		             "msgpack-c refused the canonical form");
		diff_require(f, mp_read(f, cases[i].loose, n, &used) ==
		                    MSGPACK_UNPACK_SUCCESS && used == n,
		             "msgpack-c refused the long form");
		diff_require(f, msgpack_object_equal(f->unp.data, canon.data),
		             "msgpack-c reads the long form differently");

		/* remo: equal to the canonical form's value, and written back
		 * as the canonical bytes. */
		remo_value want;
		assert_int_equal(remo_unpack(cases[i].canon, cases[i].ncanon, &want),
		                 REMO_OK);
		int rc = remo_read(f, cases[i].loose, n);
		bool same = rc == REMO_OK && remo_equal(f->decoded, want);
		remo_value_release(want);
		diff_require(f, rc == REMO_OK, "remo_unpack: %s",
		             remo_status_name(rc));
		diff_require(f, same, "remo reads the long form differently");
		msgpack_sbuffer_write(&f->sbuf, cases[i].canon, cases[i].ncanon);
		assert_repacks_as_sbuf(f);
	}

	/* And the one long form msgpack-c writes by itself. */
	fixed_case(f, "msgpack_pack_v4raw");
	static const char forty[] = "0123456789012345678901234567890123456789";
	assert_int_equal(msgpack_pack_v4raw(&f->pk, 40), 0);
	assert_int_equal(msgpack_pack_v4raw_body(&f->pk, forty, 40), 0);
	assert_int_equal((uint8_t)f->sbuf.data[0], 0xda);
	assert_int_equal(remo_read(f, f->sbuf.data, f->sbuf.size), REMO_OK);
	size_t len;
	const char *s = remo_str_data(f->decoded, &len);
	assert_non_null(s);
	assert_int_equal(len, 40);
	assert_memory_equal(s, forty, 40);

	msgpack_unpacked_destroy(&canon);
	diff_clear(f);
}

/* ==== 5. input refused ================================================== */

/* Both refuse every proper prefix of a message: msgpack-c waits for more
 * (CONTINUE), remo says which header or body was cut short. */
static void truncated_messages_refused_by_both(void **state)
{
	struct diff_fixture *f = *state;
	static const struct {
		const char *bytes;
		size_t n;
		int rc;
	} exact[] = {
		{"", 0, REMO_EWIRE_TRUNCATED},
		{"\xcd\x01", 2, REMO_EWIRE_TRUNCATED},
		{"\xcb\x00\x00\x00", 4, REMO_EWIRE_TRUNCATED},
		{"\xa3" "ab", 3, REMO_EWIRE_LENGTH},
		{"\xc4\x05" "abc", 5, REMO_EWIRE_LENGTH},
		{"\x92\x01", 2, REMO_EWIRE_COUNT},
		{"\x82\x01\x02\x03", 4, REMO_EWIRE_COUNT},
		{"\x92\x01\xcd", 3, REMO_EWIRE_TRUNCATED},
	};
	size_t used;
	unsigned trees = 0;

	for (size_t i = 0; i < ARRAY_LEN(exact); i++) {
		fixed_case(f, "truncated case %zu", i);
		diff_require(f, mp_read(f, exact[i].bytes, exact[i].n, &used) ==
		                    MSGPACK_UNPACK_CONTINUE,
		             "msgpack-c did not wait for more");
		int rc = remo_read(f, exact[i].bytes, exact[i].n);
		diff_require(f, rc == exact[i].rc, "remo_unpack: %s, want %s",
		             remo_status_name(rc), remo_status_name(exact[i].rc));
		assert_int_equal(f->decoded.kind, REMO_NIL);
	}

	/* Every prefix of small random trees. */
	for (uint64_t seed = DIFF_SEED ^ 0x7c; trees < 40; seed++) {
		diff_random_tree(f, seed);
		node_to_msgpack(&f->pk, &f->tree);
		size_t n = f->sbuf.size;
		if (n > 400)
			continue;
		trees++;
		for (size_t k = 0; k < n; k++) {
			msgpack_unpack_return ret = mp_read(f, f->sbuf.data, k, &used);
			diff_require(f, ret == MSGPACK_UNPACK_CONTINUE,
			             "msgpack-c returned %d on %zu of %zu bytes",
			             ret, k, n);
			int rc = remo_read(f, f->sbuf.data, k);
			diff_require(f, rc == REMO_EWIRE_TRUNCATED ||
			                    rc == REMO_EWIRE_LENGTH ||
			                    rc == REMO_EWIRE_COUNT,
			             "remo_unpack returned %s on %zu of %zu bytes",
			             remo_status_name(rc), k, n);
			diff_require(f, f->decoded.kind == REMO_NIL,
			             "remo_unpack failed but gave a value");
		}
	}
	diff_clear(f);
}

/* The never-used type byte, anywhere in a message. */
static void reserved_byte_refused_by_both(void **state)
{
	struct diff_fixture *f = *state;
	static const struct {
		const char *bytes;
		size_t n;
	} cases[] = {
		{"\xc1", 1},
		{"\x91\xc1", 2},
		{"\x92\x01\xc1", 3},
		{"\x81\xc1\x01", 3},
		{"\x81\x01\xc1", 3},
	};
	size_t used;

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		fixed_case(f, "0xc1 case %zu", i);
		diff_require(f, mp_read(f, cases[i].bytes, cases[i].n, &used) ==
		                    MSGPACK_UNPACK_PARSE_ERROR,
		             "msgpack-c accepted 0xc1");
		int rc = remo_read(f, cases[i].bytes, cases[i].n);
		diff_require(f, rc == REMO_EWIRE_RESERVED, "remo_unpack: %s",
		             remo_status_name(rc));
	}
	diff_clear(f);
}

/*
 * msgpack_unpack_next reads one value and reports where it stopped, so
 * a stream can hold many; remo_unpack takes one whole message, and bytes
 * after the value mean the message is not what the sender meant.
 */
static void trailing_bytes_refused_by_remo_only(void **state)
{
	struct diff_fixture *f = *state;
	size_t used;

	assert_int_equal(msgpack_pack_int64(&f->pk, 1), 0);
	assert_int_equal(msgpack_pack_nil(&f->pk), 0);
	assert_int_equal(mp_read(f, f->sbuf.data, 2, &used),
	                 MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(used, 1);
	assert_int_equal(remo_read(f, f->sbuf.data, 2), REMO_EWIRE_TRAILING);
	assert_int_equal(f->decoded.kind, REMO_NIL);
	/* Without the extra byte remo agrees. */
	assert_int_equal(remo_read(f, f->sbuf.data, 1), REMO_OK);
	assert_true(remo_equal(f->decoded, remo_int(1)));
	diff_clear(f);
}

/* f->sbuf holds one message: expects msgpack-c to accept it whole and
 * remo to refuse it with want (and give back nil). */
static void expect_remo_refuses(struct diff_fixture *f, int want)
{
	size_t used;
	msgpack_unpack_return ret =
		mp_read(f, f->sbuf.data, f->sbuf.size, &used);
	diff_require(f, ret == MSGPACK_UNPACK_SUCCESS && used == f->sbuf.size,
	             "msgpack-c refused it too (%d)", ret);
	int rc = remo_read(f, f->sbuf.data, f->sbuf.size);
	diff_require(f, rc == want, "remo_unpack: %s, want %s",
	             remo_status_name(rc), remo_status_name(want));
	diff_require(f, f->decoded.kind == REMO_NIL,
	             "remo_unpack failed but gave a value");
}

/* Expects both libraries to accept f->sbuf whole; remo's value stays in
 * f->decoded. */
static void expect_remo_accepts(struct diff_fixture *f)
{
	size_t used;
	diff_require(f, mp_read(f, f->sbuf.data, f->sbuf.size, &used) ==
	                    MSGPACK_UNPACK_SUCCESS && used == f->sbuf.size,
	             "msgpack-c refused it");
	int rc = remo_read(f, f->sbuf.data, f->sbuf.size);
	diff_require(f, rc == REMO_OK, "remo_unpack: %s", remo_status_name(rc));
}

static void mp_str(msgpack_packer *pk, const char *s, size_t n)
{
	assert_int_equal(msgpack_pack_str(pk, n), 0);
	assert_int_equal(msgpack_pack_str_body(pk, s, n), 0);
}

/* remo's ints are int64: a uint64 above INT64_MAX has no value there. */
static void uint64_above_int64_max_is_intrange(void **state)
{
	struct diff_fixture *f = *state;
	static const uint64_t big[] = {
		(uint64_t)INT64_MAX + 1, (uint64_t)INT64_MAX + 2, UINT64_MAX};

	for (size_t i = 0; i < ARRAY_LEN(big); i++) {
		fixed_case(f, "uint64 %" PRIu64, big[i]);
		assert_int_equal(msgpack_pack_uint64(&f->pk, big[i]), 0);
		assert_int_equal((uint8_t)f->sbuf.data[0], 0xcf);
		expect_remo_refuses(f, REMO_EWIRE_INTRANGE);
		assert_int_equal(f->unp.data.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
		assert_true(f->unp.data.via.u64 == big[i]);

		fixed_case(f, "{\"k\": [1, uint64 %" PRIu64 "]}", big[i]);
		msgpack_pack_map(&f->pk, 1);
		mp_str(&f->pk, "k", 1);
		msgpack_pack_array(&f->pk, 2);
		msgpack_pack_int64(&f->pk, 1);
		msgpack_pack_uint64(&f->pk, big[i]);
		expect_remo_refuses(f, REMO_EWIRE_INTRANGE);
	}

	/* INT64_MAX itself, written as uint64 by msgpack-c, is an int. */
	fixed_case(f, "uint64 INT64_MAX");
	assert_int_equal(msgpack_pack_uint64(&f->pk, INT64_MAX), 0);
	expect_remo_accepts(f);
	assert_int_equal(f->decoded.kind, REMO_INT);
	assert_true(f->decoded.as.i == INT64_MAX);
	diff_clear(f);
}

/*
 * msgpack-c hands over a str's bytes as they came; remo checks them
 * (RFC 3629: no overlong forms, surrogates, or code points past
 * U+10FFFF), so code printing a remote string can trust it.  The same
 * bytes as bin are fine, and the valid neighbours of each bad sequence
 * are accepted, so the refusals are about UTF-8 and nothing else.
 */
static void invalid_utf8_str_is_utf8_error(void **state)
{
	struct diff_fixture *f = *state;
	static const struct {
		const char *s;
		size_t n;
	} bad[] = {
#define S(lit) {lit, sizeof lit - 1}
		S("\xff"), S("\xfe"), S("\x80"), S("a\xbf" "b"),
		S("\xc0\x80"), S("\xc1\xbf"), S("\xe0\x80\xaf"),
		S("\xe0\x9f\xbf"), S("\xf0\x80\x80\xaf"), S("\xf0\x8f\xbf\xbf"),
		S("\xed\xa0\x80"), S("\xed\xbf\xbf"), S("\xed\xa0\x80\xed\xb0\x80"),
		S("\xf4\x90\x80\x80"), S("\xf5\x80\x80\x80"), S("\xf8\x88\x80\x80\x80"),
		S("\xc3"), S("\xe2\x82"), S("a\xe2\x82" "b"), S("\xf0\x9f\x98"),
		S("\xc3\x28"), S("\xe2\x28\xa1"),
	}, good[] = {
		S("\x00"), S("\x7f"), S("\xc2\x80"), S("\xdf\xbf"), S("\xe0\xa0\x80"),
		S("\xed\x9f\xbf"), S("\xee\x80\x80"), S("\xef\xbf\xbf"),
		S("\xf0\x90\x80\x80"), S("\xf4\x8f\xbf\xbf"), S("\xf0\x9f\x98\x80"),
#undef S
	};

	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		fixed_case(f, "bad UTF-8 case %zu", i);
		mp_str(&f->pk, bad[i].s, bad[i].n);
		expect_remo_refuses(f, REMO_EWIRE_UTF8);
		assert_int_equal(f->unp.data.type, MSGPACK_OBJECT_STR);

		fixed_case(f, "bad UTF-8 case %zu nested as a value", i);
		msgpack_pack_array(&f->pk, 2);
		msgpack_pack_nil(&f->pk);
		msgpack_pack_map(&f->pk, 1);
		mp_str(&f->pk, "k", 1);
		mp_str(&f->pk, bad[i].s, bad[i].n);
		expect_remo_refuses(f, REMO_EWIRE_UTF8);

		fixed_case(f, "bad UTF-8 case %zu as a key", i);
		msgpack_pack_map(&f->pk, 1);
		mp_str(&f->pk, bad[i].s, bad[i].n);
		msgpack_pack_true(&f->pk);
		expect_remo_refuses(f, REMO_EWIRE_UTF8);

		fixed_case(f, "bad UTF-8 case %zu as bin", i);
		msgpack_pack_bin(&f->pk, bad[i].n);
		msgpack_pack_bin_body(&f->pk, bad[i].s, bad[i].n);
		expect_remo_accepts(f);
		assert_int_equal(f->decoded.kind, REMO_BYTES);
	}
	for (size_t i = 0; i < ARRAY_LEN(good); i++) {
		fixed_case(f, "good UTF-8 case %zu", i);
		mp_str(&f->pk, good[i].s, good[i].n);
		expect_remo_accepts(f);
		size_t len;
		const char *s = remo_str_data(f->decoded, &len);
		diff_require(f, s != NULL && len == good[i].n &&
		                    memcmp(s, good[i].s, len) == 0,
		             "remo changed a valid str");
	}
	diff_clear(f);
}

/*
 * A map with the same key twice, under remo's equality: msgpack-c keeps
 * both pairs, remo refuses rather than silently pick one.  Keys of
 * different kinds (1 and 1.0, "k" and b"k") are different keys.
 */
static void duplicate_map_key_is_dupkey(void **state)
{
	struct diff_fixture *f = *state;

	fixed_case(f, "{\"a\": 1, \"a\": 2}");
	msgpack_pack_map(&f->pk, 2);
	mp_str(&f->pk, "a", 1);
	msgpack_pack_int64(&f->pk, 1);
	mp_str(&f->pk, "a", 1);
	msgpack_pack_int64(&f->pk, 2);
	expect_remo_refuses(f, REMO_EWIRE_DUPKEY);
	assert_int_equal(f->unp.data.via.map.size, 2);

	fixed_case(f, "{nil: 1, \"b\": 2, nil: 3}");
	msgpack_pack_map(&f->pk, 3);
	msgpack_pack_nil(&f->pk);
	msgpack_pack_int64(&f->pk, 1);
	mp_str(&f->pk, "b", 1);
	msgpack_pack_int64(&f->pk, 2);
	msgpack_pack_nil(&f->pk);
	msgpack_pack_int64(&f->pk, 3);
	expect_remo_refuses(f, REMO_EWIRE_DUPKEY);

	fixed_case(f, "{0.0: 1, -0.0: 2}");
	msgpack_pack_map(&f->pk, 2);
	msgpack_pack_double(&f->pk, 0.0);
	msgpack_pack_int64(&f->pk, 1);
	msgpack_pack_double(&f->pk, -0.0);
	msgpack_pack_int64(&f->pk, 2);
	expect_remo_refuses(f, REMO_EWIRE_DUPKEY);

	fixed_case(f, "{NaN: 1, -NaN with payload: 2}");
	msgpack_pack_map(&f->pk, 2);
	msgpack_pack_double(&f->pk, NAN);
	msgpack_pack_int64(&f->pk, 1);
	msgpack_pack_double(&f->pk, bits_double(UINT64_C(0xfff8000000000123)));
	msgpack_pack_int64(&f->pk, 2);
	expect_remo_refuses(f, REMO_EWIRE_DUPKEY);

	fixed_case(f, "{(1, (\"x\",)): 1, (1, (\"x\",)): 2}");
	msgpack_pack_map(&f->pk, 2);
	for (int i = 1; i <= 2; i++) {
		msgpack_pack_array(&f->pk, 2);
		msgpack_pack_int64(&f->pk, 1);
		msgpack_pack_array(&f->pk, 1);
		mp_str(&f->pk, "x", 1);
		msgpack_pack_int64(&f->pk, i);
	}
	expect_remo_refuses(f, REMO_EWIRE_DUPKEY);

	/* A map16 whose last key repeats its first, past many others. */
	fixed_case(f, "map16 with key 0 first and last");
	msgpack_pack_map(&f->pk, 40);
	for (int i = 0; i < 40; i++) {
		msgpack_pack_int64(&f->pk, i == 39 ? 0 : i);
		msgpack_pack_nil(&f->pk);
	}
	expect_remo_refuses(f, REMO_EWIRE_DUPKEY);

	/* Nested: the duplicate inside a map inside an array. */
	fixed_case(f, "[{\"a\": 1, \"a\": 2}]");
	msgpack_pack_array(&f->pk, 1);
	msgpack_pack_map(&f->pk, 2);
	mp_str(&f->pk, "a", 1);
	msgpack_pack_int64(&f->pk, 1);
	mp_str(&f->pk, "a", 1);
	msgpack_pack_int64(&f->pk, 2);
	expect_remo_refuses(f, REMO_EWIRE_DUPKEY);

	fixed_case(f, "{1: 1, 1.0: 2, \"k\": 3, b\"k\": 4, true: 5, (1,): 6, (1.0,): 7}");
	msgpack_pack_map(&f->pk, 7);
	msgpack_pack_int64(&f->pk, 1);
	msgpack_pack_int64(&f->pk, 1);
	msgpack_pack_double(&f->pk, 1.0);
	msgpack_pack_int64(&f->pk, 2);
	mp_str(&f->pk, "k", 1);
	msgpack_pack_int64(&f->pk, 3);
	msgpack_pack_bin(&f->pk, 1);
	msgpack_pack_bin_body(&f->pk, "k", 1);
	msgpack_pack_int64(&f->pk, 4);
	msgpack_pack_true(&f->pk);
	msgpack_pack_int64(&f->pk, 5);
	msgpack_pack_array(&f->pk, 1);
	msgpack_pack_int64(&f->pk, 1);
	msgpack_pack_int64(&f->pk, 6);
	msgpack_pack_array(&f->pk, 1);
	msgpack_pack_double(&f->pk, 1.0);
	msgpack_pack_int64(&f->pk, 7);
	expect_remo_accepts(f);
	assert_int_equal(remo_dict_len(f->decoded), 7);
	diff_clear(f);
}

/*
 * A key must be immutable to hash.  MessagePack (and msgpack-c) allow any
 * key; remo refuses a map, an array holding a map (a tuple with a dict
 * inside cannot hash), and a list extension.
 */
static void mutable_map_key_is_key_error(void **state)
{
	struct diff_fixture *f = *state;

	fixed_case(f, "{{}: 1}");
	msgpack_pack_map(&f->pk, 1);
	msgpack_pack_map(&f->pk, 0);
	msgpack_pack_int64(&f->pk, 1);
	expect_remo_refuses(f, REMO_EWIRE_KEY);
	assert_int_equal(f->unp.data.via.map.ptr[0].key.type, MSGPACK_OBJECT_MAP);

	fixed_case(f, "{{\"k\": 1}: 1}");
	msgpack_pack_map(&f->pk, 1);
	msgpack_pack_map(&f->pk, 1);
	mp_str(&f->pk, "k", 1);
	msgpack_pack_int64(&f->pk, 1);
	msgpack_pack_int64(&f->pk, 1);
	expect_remo_refuses(f, REMO_EWIRE_KEY);

	fixed_case(f, "{({},): 1}");
	msgpack_pack_map(&f->pk, 1);
	msgpack_pack_array(&f->pk, 1);
	msgpack_pack_map(&f->pk, 0);
	msgpack_pack_int64(&f->pk, 1);
	expect_remo_refuses(f, REMO_EWIRE_KEY);

	fixed_case(f, "{(1, (2, {})): 1}");
	msgpack_pack_map(&f->pk, 1);
	msgpack_pack_array(&f->pk, 2);
	msgpack_pack_int64(&f->pk, 1);
	msgpack_pack_array(&f->pk, 2);
	msgpack_pack_int64(&f->pk, 2);
	msgpack_pack_map(&f->pk, 0);
	msgpack_pack_int64(&f->pk, 1);
	expect_remo_refuses(f, REMO_EWIRE_KEY);

	/* ext 1 around an array is remo's list: mutable, so no key. */
	fixed_case(f, "{list[]: 1}");
	msgpack_pack_map(&f->pk, 1);
	msgpack_pack_ext(&f->pk, 1, 1);
	msgpack_pack_ext_body(&f->pk, "\x90", 1);
	msgpack_pack_int64(&f->pk, 1);
	expect_remo_refuses(f, REMO_EWIRE_KEY);

	/* The map as a value is fine. */
	fixed_case(f, "{1: {}}");
	msgpack_pack_map(&f->pk, 1);
	msgpack_pack_int64(&f->pk, 1);
	msgpack_pack_map(&f->pk, 0);
	expect_remo_accepts(f);
	assert_int_equal(f->decoded.kind, REMO_DICT);
	diff_clear(f);
}

/* msgpack-c reads any extension as opaque bytes; remo defines 1 to 6
 * and refuses the rest, the timestamp (-1) among them. */
static void foreign_extension_is_exttype(void **state)
{
	struct diff_fixture *f = *state;
	static const int8_t types[] = {0, 7, 42, 127, -1, -128};

	for (size_t i = 0; i < ARRAY_LEN(types); i++) {
		fixed_case(f, "ext %d", types[i]);
		msgpack_pack_ext(&f->pk, 4, types[i]);
		msgpack_pack_ext_body(&f->pk, "\0\0\0\1", 4);
		expect_remo_refuses(f, REMO_EWIRE_EXTTYPE);
		assert_int_equal(f->unp.data.type, MSGPACK_OBJECT_EXT);
		assert_int_equal(f->unp.data.via.ext.type, types[i]);

		fixed_case(f, "[nil, ext %d of 3 bytes]", types[i]);
		msgpack_pack_array(&f->pk, 2);
		msgpack_pack_nil(&f->pk);
		msgpack_pack_ext(&f->pk, 3, types[i]);
		msgpack_pack_ext_body(&f->pk, "abc", 3);
		expect_remo_refuses(f, REMO_EWIRE_EXTTYPE);
	}
	diff_clear(f);
}

/*
 * REMO_MAX_VALUES bounds the items of one message (a header counts as
 * one).  An array of REMO_MAX_VALUES - 1 nils is exactly the limit and
 * round-trips byte for byte; one nil more and remo refuses what msgpack-c
 * reads.  Both messages are over REMO_MAX_VALUES bytes, the size from
 * which remo's reader starts counting at all.
 */
static void more_than_max_values_is_values_error(void **state)
{
	struct diff_fixture *f = *state;
	const size_t most = REMO_MAX_VALUES - 1;

	fixed_case(f, "array of %zu nils", most);
	msgpack_pack_array(&f->pk, most);
	for (size_t i = 0; i < most; i++)
		msgpack_pack_nil(&f->pk);
	expect_remo_accepts(f);
	assert_int_equal(remo_tuple_len(f->decoded), most);
	assert_repacks_as_sbuf(f);

	fixed_case(f, "array of %zu nils", most + 1);
	msgpack_pack_array(&f->pk, most + 1);
	for (size_t i = 0; i < most + 1; i++)
		msgpack_pack_nil(&f->pk);
	expect_remo_refuses(f, REMO_EWIRE_VALUES);
	assert_int_equal(f->unp.data.via.array.size, most + 1);
	diff_clear(f);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, diff_setup, diff_teardown)
	const struct CMUnitTest tests[] = {
		T(generator_reaches_every_form),
		T(boundaries_agree_byte_for_byte),
		T(remo_writes_msgpack_c_bytes),
		T(msgpack_c_reads_remo_bytes_as_the_tree),
		T(remo_reads_msgpack_c_bytes_as_the_tree),
		T(float32_decodes_as_that_double),
		T(ints_in_signed_and_wide_forms_decode_alike),
		T(long_forms_decode_as_the_short_ones),
		T(truncated_messages_refused_by_both),
		T(reserved_byte_refused_by_both),
		T(trailing_bytes_refused_by_remo_only),
		T(uint64_above_int64_max_is_intrange),
		T(invalid_utf8_str_is_utf8_error),
		T(duplicate_map_key_is_dupkey),
		T(mutable_map_key_is_key_error),
		T(foreign_extension_is_exttype),
		T(more_than_max_values_is_values_error),
	};
#undef T
	return cmocka_run_group_tests_name("differential", tests, NULL, NULL);
}
