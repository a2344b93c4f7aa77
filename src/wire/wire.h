/*
 * wire.h -- MessagePack reader and writer (wire.c), and the value codec
 * built on them (pack.c).  doc/wire.md is the specification.
 *
 * Two readers, both pull tokenizers over a caller's buffer that allocate
 * nothing, never read past the end, and hand out str, bin and ext bodies
 * as pointers into the message:
 *
 *   remo__wire_next   one item, bounds-checked; no memory of nesting.
 *   remo__vrd_read    one item of a whole value, with every rule and limit
 *                     enforced as it goes: the one-pass decoder.
 *
 * remo_unpack (pack.c) runs the validating reader over the whole message
 * first (remo__wire_check), so hostile input is refused before anything
 * is allocated, then builds values with remo__wire_next.  A reader that
 * needs no values (the session reading a call's header) reads once with
 * remo__vrd_read.  Both are inline: measured with bench/bench_codec, a
 * call per item cost as much as the work itself.
 *
 * The writer appends to a remo_buf and always picks the shortest form,
 * which is also what msgpack-c does, so the differential tests can
 * compare bytes.
 */
#ifndef REMO_WIRE_H
#define REMO_WIRE_H

#include "value/value.h"

/* remo's extension types; doc/wire.md sections 2.7 to 2.9 give each body. */
enum {
	REMO__EXT_LIST = 1,      /* body: one array, the elements          */
	REMO__EXT_ERROR = 2,     /* body: [name, message, attrs, traceback] */
	REMO__EXT_OBJECT = 3,    /* body: 12 bytes, home bit + 63-bit id,
	                            then the 32-bit shape id              */
	REMO__EXT_CALLABLE = 4,
	REMO__EXT_FRAME = 5,
	REMO__EXT_TRACEBACK = 6,
};

#define REMO__REF_HOME (UINT64_C(1) << 63)
#define REMO__REF_BODY 12

enum remo__tok_type {
	REMO__T_NIL,
	REMO__T_BOOL,
	REMO__T_INT,
	REMO__T_DOUBLE,
	REMO__T_STR,
	REMO__T_BIN,
	REMO__T_ARRAY,
	REMO__T_MAP,
	REMO__T_EXT,
};

typedef struct remo__tok {
	uint8_t type;  /* enum remo__tok_type */
	int8_t ext;    /* extension type, for REMO__T_EXT */
	uint32_t n;    /* bytes of str/bin/ext body; items of array; pairs of map */
	union {
		bool b;
		int64_t i;
		double d;
		const uint8_t *p; /* str/bin/ext body, inside the message */
	} v;
} remo__tok;

typedef struct remo__rd {
	const uint8_t *p;
	const uint8_t *end;
} remo__rd;

/*
 * remo__wire_next: reads one item at rd->p.  For str, bin and ext it also
 * steps over the body; for array and map it stops after the header (the
 * items follow).  Returns REMO_OK or REMO_EWIRE_TRUNCATED, _RESERVED,
 * _LENGTH, _COUNT or _INTRANGE; on failure rd is unchanged.
 */

static inline uint16_t remo__get16(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t remo__get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline uint64_t remo__get64(const uint8_t *p)
{
	return (uint64_t)remo__get32(p) << 32 | remo__get32(p + 4);
}

/*
 * Size of the header that starts with byte 0xc0 + i, not counting the
 * type byte: how many length or value bytes follow it (for ext, the
 * length and then the type byte).  0xc1 (never used) is handled apart.
 */
extern const uint8_t remo__wire_extra[32];

/* Read a big-endian length of 1, 2 or 4 bytes. */
static inline uint32_t remo__wire_len(const uint8_t *p, unsigned size)
{
	return size == 1 ? p[0] : size == 2 ? remo__get16(p) : remo__get32(p);
}

static inline int remo__wire_next(remo__rd *rd, remo__tok *t)
{
	const uint8_t *p = rd->p;
	size_t left = (size_t)(rd->end - p);

	if (left == 0)
		return REMO_EWIRE_TRUNCATED;
	uint8_t c = *p++;
	left--;

	/* The one-byte forms first: they are most of a typical message. */
	if (c <= 0x7f) {
		t->type = REMO__T_INT;
		t->v.i = c;
		rd->p = p;
		return REMO_OK;
	}
	if (c >= 0xe0) {
		t->type = REMO__T_INT;
		t->v.i = (int8_t)c;
		rd->p = p;
		return REMO_OK;
	}
	if (c <= 0x8f || (c >= 0x90 && c <= 0x9f)) {
		uint32_t n = c & 0x0f;
		t->type = c <= 0x8f ? REMO__T_MAP : REMO__T_ARRAY;
		t->n = n;
		/* Every item takes at least one byte: a count the rest of the
		 * message cannot hold is a lie, refused before anyone trusts it. */
		if ((uint64_t)n * (c <= 0x8f ? 2 : 1) > left)
			return REMO_EWIRE_COUNT;
		rd->p = p;
		return REMO_OK;
	}
	if (c <= 0xbf) { /* fixstr */
		uint32_t n = c & 0x1f;
		if (n > left)
			return REMO_EWIRE_LENGTH;
		t->type = REMO__T_STR;
		t->n = n;
		t->v.p = p;
		rd->p = p + n;
		return REMO_OK;
	}
	if (c == 0xc1)
		return REMO_EWIRE_RESERVED;

	unsigned extra = remo__wire_extra[c - 0xc0];
	if (extra > left)
		return REMO_EWIRE_TRUNCATED;
	const uint8_t *q = p + extra; /* first byte after the header */
	left -= extra;
	uint32_t n;

	switch (c) {
	case 0xc0:
		t->type = REMO__T_NIL;
		break;
	case 0xc2:
	case 0xc3:
		t->type = REMO__T_BOOL;
		t->v.b = c == 0xc3;
		break;
	case 0xca: {
		uint32_t u = remo__get32(p);
		float f;
		memcpy(&f, &u, sizeof f);
		t->type = REMO__T_DOUBLE;
		t->v.d = f;
		break;
	}
	case 0xcb: {
		uint64_t u = remo__get64(p);
		t->type = REMO__T_DOUBLE;
		memcpy(&t->v.d, &u, sizeof t->v.d);
		break;
	}
	case 0xcc:
	case 0xcd:
	case 0xce:
		t->type = REMO__T_INT;
		t->v.i = remo__wire_len(p, extra);
		break;
	case 0xcf: {
		uint64_t u = remo__get64(p);
		/* remo's integers are int64: a larger uint64 has no value. */
		if (u > INT64_MAX)
			return REMO_EWIRE_INTRANGE;
		t->type = REMO__T_INT;
		t->v.i = (int64_t)u;
		break;
	}
	case 0xd0:
		t->type = REMO__T_INT;
		t->v.i = (int8_t)p[0];
		break;
	case 0xd1:
		t->type = REMO__T_INT;
		t->v.i = (int16_t)remo__get16(p);
		break;
	case 0xd2:
		t->type = REMO__T_INT;
		t->v.i = (int32_t)remo__get32(p);
		break;
	case 0xd3:
		t->type = REMO__T_INT;
		t->v.i = (int64_t)remo__get64(p);
		break;
	case 0xc4:
	case 0xc5:
	case 0xc6:
	case 0xd9:
	case 0xda:
	case 0xdb:
		n = remo__wire_len(p, extra);
		if (n > left)
			return REMO_EWIRE_LENGTH;
		t->type = c >= 0xd9 ? REMO__T_STR : REMO__T_BIN;
		t->n = n;
		t->v.p = q;
		q += n;
		break;
	case 0xc7:
	case 0xc8:
	case 0xc9:
		n = remo__wire_len(p, extra - 1);
		if (n > left)
			return REMO_EWIRE_LENGTH;
		t->type = REMO__T_EXT;
		t->ext = (int8_t)p[extra - 1];
		t->n = n;
		t->v.p = q;
		q += n;
		break;
	case 0xd4:
	case 0xd5:
	case 0xd6:
	case 0xd7:
	case 0xd8:
		n = 1u << (c - 0xd4);
		if (n > left)
			return REMO_EWIRE_LENGTH;
		t->type = REMO__T_EXT;
		t->ext = (int8_t)p[0];
		t->n = n;
		t->v.p = q;
		q += n;
		break;
	case 0xdc:
	case 0xdd:
	case 0xde:
	case 0xdf:
		n = remo__wire_len(p, extra);
		t->type = c <= 0xdd ? REMO__T_ARRAY : REMO__T_MAP;
		if ((uint64_t)n * (c <= 0xdd ? 1 : 2) > left)
			return REMO_EWIRE_COUNT;
		t->n = n;
		break;
	default:
		REMO__ASSERT(!"unreachable MessagePack byte");
		return REMO_EWIRE_RESERVED;
	}
	rd->p = q;
	return REMO_OK;
}

/* ---- the validating reader ----------------------------------------------- */

/*
 * remo__vrd reads one whole value item by item, like remo__wire_next,
 * and enforces every rule as it goes: depth at most REMO_MAX_DEPTH, at
 * most REMO_MAX_VALUES items, remo's extensions well formed (a list or
 * error body holds exactly one value, a reference body is 8 bytes with a
 * non-zero id), and nothing left over.  It allocates nothing; its state
 * lives in the struct, on the caller's stack.
 *
 * Items come in pre-order.  A list or error extension is returned as its
 * REMO__T_EXT item, and the items of its body follow it.
 *
 * Use: remo__vrd_begin, then remo__vrd_read once per item, then
 * remo__vrd_end, which checks that the value is complete and that no
 * bytes follow.  This is the one-pass decoder for messages whose shape
 * the reader knows (the session's); remo__wire_check is a loop of it.
 */
struct remo__vrd_frame {
	uint64_t items;            /* still to read in this container   */
	const uint8_t *end;        /* extension body end; NULL otherwise */
	const uint8_t *outer_end;  /* the reader's end outside the body  */
};

typedef struct remo__vrd {
	remo__rd rd;
	unsigned top, depth;
	bool count;    /* the message is long enough to pass the item limit */
	size_t values;
	/* Valid nesting needs at most two frames a level (an extension and
	 * its body's array), plus the outermost frame. */
	struct remo__vrd_frame stack[2 * REMO_MAX_DEPTH + 2];
} remo__vrd;

/* The sentinel remo__vrd_read returns when the value is complete. */
#define REMO__VRD_END (-1)

static inline int remo__vrd_begin(remo__vrd *r, const uint8_t *p, size_t n)
{
	if (n == 0)
		return REMO_EWIRE_TRUNCATED;
	r->rd.p = p;
	r->rd.end = p + n;
	r->top = 0;
	r->depth = 0;
	/* Every item takes at least one byte of the message (an extension's
	 * header takes two or more, its body's items lie inside its body), so
	 * a message of at most REMO_MAX_VALUES bytes cannot pass the limit
	 * and need not count. */
	r->count = n > REMO_MAX_VALUES;
	r->values = 0;
	r->stack[0].items = 1;
	r->stack[0].end = NULL;
	return REMO_OK;
}

/*
 * Pops every finished frame: an extension body must end exactly where
 * its value ended.  Returns REMO__VRD_END when the outermost value is
 * done, REMO_OK when an open frame has items left.
 */
static inline int remo__vrd_close_frames(remo__vrd *r)
{
	while (r->stack[r->top].items == 0) {
		struct remo__vrd_frame *f = &r->stack[r->top];
		if (f->end != NULL) {
			if (r->rd.p != f->end)
				return REMO_EWIRE_EXTBODY;
			r->rd.end = f->outer_end;
		} else if (r->top != 0) {
			r->depth--;
		}
		if (r->top == 0)
			return REMO__VRD_END;
		r->top--;
	}
	return REMO_OK;
}

static inline int remo__vrd_push(remo__vrd *r, uint64_t items, const uint8_t *end,
                    const uint8_t *outer_end)
{
	/* Only a hostile chain of extensions directly inside extensions can
	 * fill the stack without passing the depth check. */
	if (r->top + 1 >= sizeof r->stack / sizeof r->stack[0])
		return REMO_EWIRE_DEPTH;
	struct remo__vrd_frame *f = &r->stack[++r->top];
	f->items = items;
	f->end = end;
	f->outer_end = outer_end;
	return REMO_OK;
}

/* An array, map or extension was read: open it, or check its body. */
static inline int remo__vrd_container(remo__vrd *r, const remo__tok *t)
{
	switch (t->type) {
	case REMO__T_ARRAY:
	case REMO__T_MAP:
		if (++r->depth > REMO_MAX_DEPTH)
			return REMO_EWIRE_DEPTH;
		return remo__vrd_push(r, t->type == REMO__T_MAP ? 2 * (uint64_t)t->n
		                                          : t->n,
		                NULL, NULL);
	case REMO__T_EXT:
		switch (t->ext) {
		case REMO__EXT_LIST:
		case REMO__EXT_ERROR: {
			/* Step back into the body the tokenizer stepped over. */
			int rc = remo__vrd_push(r, 1, t->v.p + t->n, r->rd.end);
			if (rc == REMO_OK) {
				r->rd.p = t->v.p;
				r->rd.end = t->v.p + t->n;
			}
			return rc;
		}
		case REMO__EXT_OBJECT:
		case REMO__EXT_CALLABLE:
		case REMO__EXT_FRAME:
		case REMO__EXT_TRACEBACK:
			/* Id 0 is never handed out, so it can only be forged. */
			if (t->n != REMO__REF_BODY ||
			    (remo__get64(t->v.p) & ~REMO__REF_HOME) == 0)
				return REMO_EWIRE_EXTBODY;
			return REMO_OK;
		default:
			return REMO_EWIRE_EXTTYPE;
		}
	default:
		return REMO_OK;
	}
}


/*
 * remo__vrd_read: the next item, validated.  Returns REMO_OK with *t, or
 * REMO__VRD_END when the value is complete, or a REMO_EWIRE_* code.  After
 * an error the reader must not be used again.
 */
static inline int remo__vrd_read(remo__vrd *r, remo__tok *t)
{
	int rc;
	if (r->stack[r->top].items == 0 &&
	    (rc = remo__vrd_close_frames(r)) != REMO_OK)
		return rc;
	r->stack[r->top].items--;
	if ((rc = remo__wire_next(&r->rd, t)) != REMO_OK)
		return rc;
	if (r->count && ++r->values > REMO_MAX_VALUES)
		return REMO_EWIRE_VALUES;
	if (t->type < REMO__T_ARRAY)
		return REMO_OK;
	if (t->type != REMO__T_EXT && r->depth < REMO_MAX_DEPTH &&
	    r->top + 1 < sizeof r->stack / sizeof r->stack[0]) {
		/* the common container, opened here without a call */
		struct remo__vrd_frame *f = &r->stack[++r->top];
		r->depth++;
		f->items = t->type == REMO__T_MAP ? 2 * (uint64_t)t->n : t->n;
		f->end = NULL;
		return REMO_OK;
	}
	return remo__vrd_container(r, t);
}

/* remo__vrd_end: REMO_OK if every item was read and no bytes follow. */
int remo__vrd_end(remo__vrd *r);

/*
 * remo__wire_check: validates that the n bytes at p are exactly one
 * value, by reading it through a remo__vrd.  Allocates nothing.  Returns
 * REMO_OK or a REMO_EWIRE_* code.
 */
int remo__wire_check(const uint8_t *p, size_t n);
/* remo__wire_skip: steps rd over one whole value, its items included
 * (extension bodies are one item), in a message checked already: how a
 * container of whole messages (BATCH, MULTI) is cut into them. */
int remo__wire_skip(remo__rd *rd);

/* ---- the value codec with a session's references (pack.c) ---------------- */

/*
 * Hooks a session gives the value codec, so the codec stays ignorant of
 * object tables: put_ref writes a reference for a list, dict, object or
 * callable (the session exports it and picks the id); get_ref turns a
 * reference read off the wire into a value (a proxy, or the original
 * object when it comes home).  Both return a status; get_ref may refuse
 * a stale or forged id.
 */
/* bytes at least this long decode as views when the codec has a base */
#define REMO__VIEW_MIN 4096

/*
 * Large bytes left out of an encoded message (its bin header written,
 * not its body), to be sent from where they live with the buffer's
 * pieces around them (remo_channel.sendv): at[i] is where bytes i go in
 * the buffer.  Only bytes reached through tuples from the value packed
 * (which the sender holds until the send is done), never from inside a
 * list or a dict another thread could change meanwhile.
 */
#define REMO__GATHER_MIN (64u << 10)
#define REMO__GATHER_MAX 16
struct remo__gather {
	unsigned n;
	size_t total; /* bytes left out */
	size_t at[REMO__GATHER_MAX];
	const void *p[REMO__GATHER_MAX];
	size_t len[REMO__GATHER_MAX];
};

typedef struct remo__codec {
	void *ctx;
	remo_value base; /* the message, as a bytes value, or nil */
	struct remo__gather *gather; /* encoding: large bytes, or NULL */
	int (*put_ref)(void *ctx, remo_buf *b, remo_value v);
	int (*get_ref)(void *ctx, remo_kind kind, uint64_t id, bool home,
	               uint32_t shape, remo_value *out);
} remo__codec;

/* remo__pack_with: remo_pack with hooks (NULL: none). */
int remo__pack_with(remo_value v, remo_buf *out, const remo__codec *c);
/* remo__unpack_with: builds the value at rd, whose bytes a validating
 * reader has accepted, with hooks (NULL: none). */
int remo__unpack_with(remo__rd *rd, const remo__codec *c, remo_value *out);
/* remo__put_ref: writes a reference ext: kind, id, home, shape. */
int remo__put_ref(remo_buf *b, remo_kind kind, uint64_t id, bool home,
                  uint32_t shape);

/* ---- writer ------------------------------------------------------------- */

/*
 * The put functions append one item header (and body, for str and bin).
 * Each returns REMO_OK or REMO_ENOMEM; str, bin and ext refuse lengths
 * over UINT32_MAX with REMO_ETOOBIG.
 */
int remo__wire_put_nil(remo_buf *b);
int remo__wire_put_bool(remo_buf *b, bool v);
int remo__wire_put_int(remo_buf *b, int64_t v);
int remo__wire_put_double(remo_buf *b, double v);
int remo__wire_put_str(remo_buf *b, const void *p, size_t n);
int remo__wire_put_bin(remo_buf *b, const void *p, size_t n);
/* remo__wire_put_bin_head: bin's header alone, the n bytes to follow
 * (a body sent from elsewhere: struct remo__gather). */
int remo__wire_put_bin_head(remo_buf *b, size_t n);
int remo__wire_put_array(remo_buf *b, uint32_t n);
int remo__wire_put_map(remo_buf *b, uint32_t n);
/* remo__wire_put_ext: header of an ext of n body bytes; body follows. */
int remo__wire_put_ext(remo_buf *b, int8_t type, uint32_t n);

#endif /* REMO_WIRE_H */
