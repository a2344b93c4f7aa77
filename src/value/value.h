/*
 * value/value.h -- the value layer: the heap layout of values, reference
 * counting, dicts, error names and error values, and the per-thread error
 * slot (raising).  Above base/; below the codec (wire/).
 *
 * Files: value.c (values, refcounts, equality, hash, str/bytes/tuple/
 * list, references), dict.c, errname.c (names, hierarchy, error values),
 * raise.c (the error slot).
 */
#ifndef REMO_VALUE_H
#define REMO_VALUE_H

#include "base/base.h"

#include <sched.h>

/* ---- heap values (value.c) --------------------------------------------- */

/*
 * Every heap kind starts with this header.  The count is atomic because
 * later layers hand values between threads; a value is freed by whichever
 * thread drops the last reference.
 */
struct remo__obj {
	atomic_uint refs;
	uint8_t kind;
	atomic_uchar lock; /* lists and dicts: remo__lock (in the padding) */
	uint8_t flags;     /* REMO__OBJ_*, set before the value is shared */
	atomic_uchar peer_ro; /* lists and dicts: peers' writes are refused
	                         (remo_readonly); any time, any thread */
};

/* remo_readonly's mark, read by the operations layer when it applies a
 * peer's request: a cheap relaxed load. */
static inline bool remo__peer_readonly(remo_value v)
{
	return (v.kind == REMO_LIST || v.kind == REMO_DICT) &&
	       atomic_load_explicit(&v.as.p->peer_ro, memory_order_relaxed);
}

/* A list or dict made by remo_by_value: a session packs it, and all it
 * holds, by value instead of by reference. */
#define REMO__OBJ_BYVALUE 1u
/* a str whose bytes are UTF-8 (checked once, when it was made: a str
 * never changes), so that encoding it need not check again */
#define REMO__OBJ_UTF8 2u

/*
 * Lists and dicts can be shared by threads and by sessions (an exported
 * dict is written by every client), so every operation on one holds its
 * lock: a test-and-test-and-set byte in the header's padding, which
 * costs no memory.  Sections under it are short and run no code of
 * anyone else's: no value is released (a release can run a destructor
 * that reaches back), no other container is locked (so no order between
 * containers is needed, and a dict that holds itself cannot deadlock),
 * and readers that need more than one item take a snapshot
 * (remo__list_snapshot, remo__dict_snapshot) and work on it unlocked.
 * A holder that is descheduled is waited for with sched_yield.
 */
static inline void remo__lock(struct remo__obj *o)
{
	for (unsigned spins = 0;; spins++) {
		if (atomic_load_explicit(&o->lock, memory_order_relaxed) == 0 &&
		    atomic_exchange_explicit(&o->lock, 1,
		                             memory_order_acquire) == 0)
			return;
		if (spins >= 64)
			sched_yield();
	}
}

static inline void remo__unlock(struct remo__obj *o)
{
	atomic_store_explicit(&o->lock, 0, memory_order_release);
}

struct remo__str { /* REMO_STR and REMO_BYTES */
	struct remo__obj hdr;
	size_t len;
	/*
	 * ext, when set, is where the bytes are instead of data: a view into
	 * a received message (base, retained, owns that memory), or memory
	 * this value owns (own_ext).  Views let a large bytes argument reach
	 * the C function without a copy.  A view has no NUL after it.
	 */
	const char *ext;
	bool own_ext;
	remo_value base;
	char data[]; /* len bytes, then a NUL (when ext is NULL) */
};

static inline const char *remo__str_ptr(const struct remo__str *s)
{
	return s->ext ? s->ext : s->data;
}

struct remo__tuple {
	struct remo__obj hdr;
	size_t len;
	remo_value items[];
};

struct remo__watch;

struct remo__list {
	struct remo__obj hdr;
	size_t len, cap;
	remo_value *items;
	struct remo__watch *watch; /* observe.c; under the lock */
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
	int32_t *index; /* -1 empty, -2 deleted, else an entry number;
	                   in the block of entries, after them        */
	struct remo__watch *watch; /* observe.c; under the lock          */
};

/*
 * A consistent copy of part of a container, taken under its lock: a
 * list's items [start, start + max), or a dict's entries from its
 * start-th live one on, at most max, as keys and values interleaved
 * (k0, v0, k1, v1...).  Each value is retained.  Into buf when nbuf
 * values are enough, else into a new array; *n is the count of values.
 * NULL: REMO_ENOMEM.  remo__snapshot_free releases the values and frees
 * the array unless it is buf.  (start 0, max SIZE_MAX: all of it.)
 */
remo_value *remo__list_snapshot(remo_value l, size_t start, size_t max,
                                remo_value *buf, size_t nbuf, size_t *n);
remo_value *remo__dict_snapshot(remo_value d, size_t start, size_t max,
                                remo_value *buf, size_t nbuf, size_t *n);
void remo__snapshot_free(remo_value *items, size_t n, remo_value *buf);
/* observe.c: a change to the list or dict c (op, at key: an index or a
 * key; nil for clear), with stored the value put there if any; tells
 * c's observer, if it has one.  Called after the change, unlocked. */
void remo__watch_changed(remo_value c, const char *op, remo_value key,
                         remo_value stored);
/* Frees the watch w of o (o is being freed). */
void remo__watch_free(struct remo__obj *o, struct remo__watch *w);
/* Cheap: is c watched? (a racy look; the change path locks) */
static inline bool remo__watched(remo_value c)
{
	struct remo__watch **slot = c.kind == REMO_LIST
	                            ? &((struct remo__list *)c.as.p)->watch
	                            : &((struct remo__dict *)c.as.p)->watch;
	return __atomic_load_n(slot, __ATOMIC_RELAXED) != NULL;
}
/* What holding v costs, roughly, in bytes: strings' and bytes' lengths,
 * 16 a value, tuples' items in full (to REMO_MAX_DEPTH), a list's or a
 * dict's own items but not what containers inside them hold (shared, or
 * counted where they are held).  For budgets (kept results). */
size_t remo__value_weight(remo_value v);

/* A deep copy of the lists and dicts in v (and of tuples, if tuples),
 * other values shared; REMO_INVALID past REMO_MAX_DEPTH or without
 * memory.  remo_by_value's, and a read-only field's copy (api/ops.c). */
remo_value remo__deep_copy(remo_value v, bool tuples, unsigned depth);
/* Raises TypeError for fn called on v if v is an object (a proxy of a
 * remote list, say); silent for anything else. */
void remo__not_local(const char *fn, remo_value v);
/* Deletes item i of l if it is still expect (the same value: a remove()
 * found it on a snapshot); REMO_ENOTFOUND if the list changed there. */
int remo__list_del_same(remo_value l, size_t i, remo_value expect);
/* For the snapshots: under o's lock, room for want values in *items (a
 * new array; the old one freed unless it is buf), the lock dropped
 * while allocating (the container may change meanwhile: the caller
 * looks again).  false without memory, unlocked. */
bool remo__snapshot_room(struct remo__obj *o, remo_value **items,
                         remo_value *buf, size_t *cap, size_t want);

struct remo__error {
	struct remo__obj hdr;
	remo_value name;    /* str */
	remo_value message; /* str */
	remo_value attrs;   /* dict */
	remo_value tb;      /* nil, or a traceback reference */
};

/* ---- references: objects, callables, proxies (value.c) --------------- */

struct remo_session;
struct remo_future;
struct remo__func;
struct remo__ref;

/*
 * What the layer that made a reference does when the reference's last
 * count is gone: the session forgets a proxy and tells the peer (in a
 * batch), a promise lets go of its future, a function value frees the
 * function it owns.  This layer frees only what it made itself (the
 * struct, self) and runs a local object's dtor; everything a higher
 * layer hung on the reference is undone by that layer's hook, so value.c
 * never calls upward.  NULL ops, or a NULL gone: nothing to undo.
 */
struct remo__ref_ops {
	void (*gone)(struct remo__ref *r);
};

/*
 * One struct for every reference kind, local or remote:
 *   local object     type, ptr, dtor                 (owner NULL)
 *   local function   func                            (owner NULL)
 *   bound method     func, self (an object: local or proxy)
 *   proxy            owner, id, type or func shape, received
 *   bare reference   id, home, shape_id only: what remo_unpack gives
 *                    without a session
 */
struct remo__ref {
	struct remo__obj hdr;
	const struct remo__ref_ops *ops; /* set by the layer that made it */
	uint64_t id;             /* on the wire; 1 .. 2^63 - 1; 0 if local */
	bool home;               /* the id is in the receiver's own table */
	uint32_t shape_id;       /* on the wire */
	struct remo_session *owner; /* proxies: the session (retained)    */
	uint32_t received;       /* proxies: times the peer sent it       */
	const remo_type *type;   /* objects: local type or peer's shape   */
	const struct remo__func *func; /* callables                       */
	struct remo__func *own_func;   /* a local function value owns it  */
	void *ptr;               /* local objects                         */
	void (*dtor)(void *);
	remo_value self;         /* bound methods: the object (retained)  */
	struct remo_future *promise; /* a promise: the call it stands for
	                                (retained); owner and id are 0 */
};

static inline bool remo__is_heap(remo_kind k)
{
	return k >= REMO_STR && k != REMO_INVALID;
}

static inline bool remo__is_ref(remo_kind k)
{
	return k >= REMO_OBJECT && k <= REMO_TRACEBACK;
}

/* Kinds that are objects of a type: objects, and the frames and
 * tracebacks of remote tracebacks (objects of the types Frame and
 * Traceback, with kinds of their own on the wire). */
static inline bool remo__is_objlike(remo_kind k)
{
	return k == REMO_OBJECT || k == REMO_FRAME || k == REMO_TRACEBACK;
}

#define REMO__STR(v) ((struct remo__str *)(v).as.p)
#define REMO__TUPLE(v) ((struct remo__tuple *)(v).as.p)
#define REMO__LIST(v) ((struct remo__list *)(v).as.p)
#define REMO__DICT(v) ((struct remo__dict *)(v).as.p)
#define REMO__ERROR(v) ((struct remo__error *)(v).as.p)
#define REMO__REF(v) ((struct remo__ref *)(v).as.p)

remo_value remo__invalid(void);
/* remo__bytes_own: a bytes value taking ownership of n bytes at p
 * (remo__malloc'd), freed with it: no copy.  On failure (REMO_INVALID)
 * the caller still owns p. */
remo_value remo__bytes_own(void *p, size_t n);
/* A str of n bytes at s that the caller has checked are UTF-8 (the
 * decoder). */
remo_value remo__str_utf8(const char *s, size_t n);
/* remo__bytes_view: bytes at p inside base's memory; base retained. */
remo_value remo__bytes_view(remo_value base, const void *p, size_t n);
/* remo__ref_new: a new bare reference value (no session). */
remo_value remo__ref_new(remo_kind kind, uint64_t id, bool home);
/* remo__ref_alloc: a new zeroed reference value of kind. */
remo_value remo__ref_alloc(remo_kind kind);

/* remo__dict_free / remo__dict_reserve: for value.c and the decoder. */
void remo__dict_free(struct remo__dict *d);
int remo__dict_reserve(remo_value d, size_t n);
/* remo__dict_insert_new: adds key (stolen) and val (stolen); REMO_EEXIST
 * (both released) if key is there already.  Used by the decoder, which
 * must reject duplicate keys. */
int remo__dict_insert_new(remo_value d, remo_value key, remo_value val);


/* ---- raising (raise.c) ------------------------------------------------- */

/* remo__raise: sets this thread's last error (stolen) and returns
 * REMO_ERAISED, so "return remo__raise(...)" reads well. */
int remo__raise(remo_value err);
/* remo__raisef: the same from a name and a printf-style message. */
int remo__raisef(const char *name, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* remo__fail: sets last error for a status code (PeerLost for
 * REMO_EPEERLOST, ...) and returns the code. */
int remo__fail(int status, const char *what);
/* remo__fail_pending: after a plugin's operation failed with status: keep
 * the error it raised since remo__clear_pending, or raise one for status.
 * Returns status. */
int remo__fail_pending(int status, const char *what);
/* remo__take_pending: the error a C function raised during a call, or
 * nil; clears it. */
remo_value remo__take_pending(void);
void remo__clear_pending(void);
/* remo__take_raised_by_program: the same, but only an error the program
 * raised itself (remo_raise, remo_raise_errno, remo_raise_value): the
 * failure of an operation a C function called, and handled, leaves its
 * error in remo_last_error and does not fail the function's call. */
remo_value remo__take_raised_by_program(void);
/* remo__raised_by_program: marks the error just raised (remo__raisef,
 * remo__fail) as the program's: for the library's own C functions,
 * the traceback's methods, that raise without a traceback. */
void remo__raised_by_program(void);

/* remo__raise_hook: the traceback layer's, installed at start-up
 * (traceback.c): given an error a C function raises (stolen), returns it
 * with a traceback attached when this thread serves a request that keeps
 * tracebacks (stolen, returned); skip frames above the raising
 * function's.  NULL: errors are raised as they are. */
extern remo_value (*remo__raise_hook)(remo_value err, int skip);

/* ---- error names (errname.c) ------------------------------------------- */

bool remo__errname_valid(const char *name, size_t len);
/* remo__error_from_parts: an error value from its four parts, all stolen
 * and all checked by the caller (str, str, dict, nil-or-traceback). */
remo_value remo__error_from_parts(remo_value name, remo_value message,
                                  remo_value attrs, remo_value tb);

#endif /* REMO_VALUE_H */
