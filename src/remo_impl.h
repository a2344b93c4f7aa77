/*
 * remo_impl.h -- the one internal header; every src/ file includes it.
 *
 * Naming, stated once for the whole library:
 *   remo_ / REMO_    public, declared in include/remo/remo.h, exported
 *   remo__           internal but shared between files, never exported
 *                    (the build uses -fvisibility=hidden, and a test
 *                    checks the export list)
 *   plain prefix     static to one file: wire_put_u32, dict_probe
 *
 * The internal headers follow in dependency order: memory, the heap
 * layout of values, hashing, the wire reader and writer.
 */
#ifndef REMO_IMPL_H
#define REMO_IMPL_H

#include "config.h"

#include <assert.h>
#include <stdatomic.h>
#include <string.h>

#include "remo/remo.h"

/* Bugs are asserted; anything a peer can cause returns a status code. */
#define REMO__ASSERT(x) assert(x)

/* ---- memory (alloc.c) -------------------------------------------------- */

void *remo__malloc(size_t n);
void *remo__realloc(void *p, size_t n);
void remo__free(void *p);

/* ---- heap values (value.c) --------------------------------------------- */

/*
 * Every heap kind starts with this header.  The count is atomic because
 * later layers hand values between threads; a value is freed by whichever
 * thread drops the last reference.
 */
struct remo__obj {
	atomic_uint refs;
	uint8_t kind;
};

struct remo__str { /* REMO_STR and REMO_BYTES */
	struct remo__obj hdr;
	size_t len;
	char data[]; /* len bytes, then a NUL */
};

struct remo__tuple {
	struct remo__obj hdr;
	size_t len;
	remo_value items[];
};

struct remo__list {
	struct remo__obj hdr;
	size_t len, cap;
	remo_value *items;
};

/*
 * A dict keeps its entries in insertion order in one array and finds them
 * through an open-addressed index of entry numbers, as CPython's compact
 * dict does: iteration order is insertion order for free, and the index
 * (4 bytes a slot) stays small.  A deleted entry keeps its place with an
 * INVALID key until the next resize compacts the array.
 */
struct remo__dict_entry {
	uint64_t hash;
	remo_value key;
	remo_value val;
};

struct remo__dict {
	struct remo__obj hdr;
	size_t len;     /* live entries                                  */
	size_t used;    /* entries[0..used) including deleted ones       */
	size_t cap;     /* entries allocated                             */
	size_t mask;    /* index slots - 1 (a power of two, or 0: none)  */
	struct remo__dict_entry *entries;
	int32_t *index; /* -1 empty, -2 deleted, else an entry number    */
};

struct remo__error {
	struct remo__obj hdr;
	remo_value name;    /* str */
	remo_value message; /* str */
	remo_value attrs;   /* dict */
	remo_value tb;      /* nil, or a traceback reference */
};

/*
 * A reference to an object in a peer's table (or, with home set, in our
 * own).  The session layer (protocol issue) fills in owner; the codec
 * only carries id and home.
 */
struct remo__ref {
	struct remo__obj hdr;
	uint64_t id;  /* 1 .. 2^63 - 1; never 0 */
	bool home;    /* the id is in the table of the side that receives it */
	void *owner;  /* the session it belongs to; NULL in the codec */
};

static inline bool remo__is_heap(remo_kind k)
{
	return k >= REMO_STR && k != REMO_INVALID;
}

static inline bool remo__is_ref(remo_kind k)
{
	return k >= REMO_OBJECT && k <= REMO_TRACEBACK;
}

#define REMO__STR(v) ((struct remo__str *)(v).as.p)
#define REMO__TUPLE(v) ((struct remo__tuple *)(v).as.p)
#define REMO__LIST(v) ((struct remo__list *)(v).as.p)
#define REMO__DICT(v) ((struct remo__dict *)(v).as.p)
#define REMO__ERROR(v) ((struct remo__error *)(v).as.p)
#define REMO__REF(v) ((struct remo__ref *)(v).as.p)

remo_value remo__invalid(void);
/* remo__ref_new: a new reference value of a reserved kind. */
remo_value remo__ref_new(remo_kind kind, uint64_t id, bool home);
/* remo__dict_free / remo__dict_reserve: for value.c and the decoder. */
void remo__dict_free(struct remo__dict *d);
int remo__dict_reserve(remo_value d, size_t n);
/* remo__dict_insert_new: adds key (stolen) and val (stolen); REMO_EEXIST
 * (both released) if key is there already.  Used by the decoder, which
 * must reject duplicate keys. */
int remo__dict_insert_new(remo_value d, remo_value key, remo_value val);

/* ---- hashing (hash.c) -------------------------------------------------- */

/* SipHash-1-3 of n bytes with the per-process key. */
uint64_t remo__siphash(const void *p, size_t n);
/* A keyed mix of one 64-bit word, for ints and for combining hashes. */
uint64_t remo__hash_u64(uint64_t x);

/* ---- UTF-8 (utf8.c) ---------------------------------------------------- */

bool remo__utf8_valid(const uint8_t *p, size_t n);

/* ---- error names (errname.c) ------------------------------------------- */

bool remo__errname_valid(const char *name, size_t len);
/* remo__error_from_parts: an error value from its four parts, all stolen
 * and all checked by the caller (str, str, dict, nil-or-traceback). */
remo_value remo__error_from_parts(remo_value name, remo_value message,
                                  remo_value attrs, remo_value tb);

#endif /* REMO_IMPL_H */
