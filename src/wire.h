/*
 * wire.h -- MessagePack reader and writer (wire.c), and the value codec
 * built on them (pack.c).  doc/wire.md is the specification.
 *
 * The reader is a pull tokenizer over a caller's buffer: it allocates
 * nothing, never reads past the end, and hands out str, bin and ext
 * bodies as pointers into the message.  remo__wire_check() walks one
 * whole value with it and enforces every limit before anybody allocates
 * a byte for that value; callers then read the same bytes again, trusting
 * the structure (but still bounds-checked, so a caller that skipped the
 * check is wrong, never unsafe).
 *
 * The writer appends to a remo_buf and always picks the shortest form,
 * which is also what msgpack-c does, so the differential tests can
 * compare bytes.
 */
#ifndef REMO_WIRE_H
#define REMO_WIRE_H

#include "remo_impl.h"

/* remo's extension types; doc/wire.md section 3 gives each body. */
enum {
	REMO__EXT_LIST = 1,      /* body: one array, the elements          */
	REMO__EXT_ERROR = 2,     /* body: [name, message, attrs, traceback] */
	REMO__EXT_OBJECT = 3,    /* body: 8 bytes, home bit + 63-bit id    */
	REMO__EXT_CALLABLE = 4,
	REMO__EXT_FRAME = 5,
	REMO__EXT_TRACEBACK = 6,
};

#define REMO__REF_HOME (UINT64_C(1) << 63)

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
int remo__wire_next(remo__rd *rd, remo__tok *t);

/*
 * remo__wire_check: validates that the n bytes at p are exactly one
 * value: every header complete, every length and count within the bytes
 * left, depth at most REMO_MAX_DEPTH, at most REMO_MAX_VALUES items,
 * every remo extension well formed, nothing left over.  Allocates
 * nothing.  Returns REMO_OK or a REMO_EWIRE_* code.
 */
int remo__wire_check(const uint8_t *p, size_t n);

/* ---- writer ------------------------------------------------------------- */

/* remo__buf_grow: makes room for extra more bytes.  REMO_ENOMEM. */
int remo__buf_grow(remo_buf *b, size_t extra);

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
int remo__wire_put_array(remo_buf *b, uint32_t n);
int remo__wire_put_map(remo_buf *b, uint32_t n);
/* remo__wire_put_ext: header of an ext of n body bytes; body follows. */
int remo__wire_put_ext(remo_buf *b, int8_t type, uint32_t n);

#endif /* REMO_WIRE_H */
