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

#include <ffi.h>

#include "remo/remo.h"
#include "remo/transport.h"

/* Bugs are asserted; anything a peer can cause returns a status code. */
#define REMO__ASSERT(x) assert(x)

/* ---- memory (alloc.c) -------------------------------------------------- */

void *remo__malloc(size_t n);
void *remo__realloc(void *p, size_t n);
void remo__free(void *p);
/* remo__strdup: a remo__malloc'd copy of s; NULL for NULL or no memory. */
char *remo__strdup(const char *s);

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

/* ---- types, signatures, functions (types.c, sig.c) ---------------------- */

/* One parameter or result of a signature. */
struct remo__param {
	char code;               /* a type letter, or '<' for an object */
	bool deref;              /* "&q": a pointer to it (closures only) */
	char *name;              /* NULL if the signature gave none      */
	char *type_name;         /* for '<': the type's name             */
	const remo_type *type;   /* for '<': resolved, or NULL (remote)  */
};

struct remo__sig {
	char *text;
	struct remo__param ret;
	size_t nargs;
	struct remo__param *args;
	bool method;          /* the C function takes self first        */
	bool has_cif;         /* prepared for libffi (local functions)  */
	unsigned nc;          /* C-level parameters                     */
	ffi_type **ctypes;
	ffi_cif cif;
};

/* A function: local (fn set) or a peer's function shape (fn NULL). */
struct remo__func {
	char *name;
	char *doc;
	uint32_t shape_id;
	struct remo__sig sig;
	void (*fn)(void);
};

struct remo__field {
	char *name;
	struct remo__param p;
	size_t offset;
	unsigned flags;
};

/* A type: registered here (remote false) or a peer's shape. */
struct remo_type {
	char *name;
	char *doc;
	const remo_type *base;
	uint32_t shape_id;
	bool remote;
	size_t nfields, nmethods;
	struct remo__field *fields;
	struct remo__func *methods;
};

/* Shape ids 1 and 2 are the built-in list and dict; others are >= 16. */
#define REMO__SHAPE_LIST 1
#define REMO__SHAPE_DICT 2
extern const remo_type remo__type_list, remo__type_dict;

/* remo__sig_parse: parses text.  resolve: look up <T> names (local
 * registration); otherwise they are kept as names (a peer's shape).  With
 * resolve, the libffi interface is prepared too.  REMO_ESIGNATURE,
 * REMO_ENOTFOUND (unknown type), REMO_ENOMEM. */
int remo__sig_parse(struct remo__sig *sig, const char *text, bool method,
                    bool resolve);
void remo__sig_free(struct remo__sig *sig);
/* remo__sig_check: the arguments fit (count, kinds); raises TypeError. */
int remo__sig_check(const struct remo__sig *sig, const char *fname,
                    remo_value args);
/* remo__func_call: converts args (tuple, borrowed), calls fn with self
 * (NULL for functions), converts the result into *out.  Failures are
 * raised (remo__raise) and give REMO_ERAISED. */
int remo__func_call(const struct remo__func *f, void *self, remo_value args,
                    remo_value *out);
/* remo__sig_has_deref: some argument is "&X" (allowed in closures only). */
bool remo__sig_has_deref(const struct remo__sig *sig);
/* remo__field_store: converts v and stores it in the field of obj;
 * raises TypeError or OverflowError. */
int remo__field_store(const struct remo__field *f, void *obj, remo_value v);
/* remo__type_isa: t is base or derives from it (by name for shapes). */
bool remo__type_isa(const remo_type *t, const char *name);
uint32_t remo__next_shape_id(void);
void remo__func_free(struct remo__func *f);
const struct remo__field *remo__type_field(const remo_type *t,
                                           const char *name);
const struct remo__func *remo__type_method(const remo_type *t,
                                           const char *name);

/* ---- references: objects, callables, proxies (value.c, session.c) ------ */

struct remo_session;

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
/* remo__bytes_view: bytes at p inside base's memory; base retained. */
remo_value remo__bytes_view(remo_value base, const void *p, size_t n);
/* remo__ref_new: a new bare reference value (no session). */
remo_value remo__ref_new(remo_kind kind, uint64_t id, bool home);
/* remo__ref_alloc: a new zeroed reference value of kind. */
remo_value remo__ref_alloc(remo_kind kind);
/* session.c: a proxy's last reference is gone. */
void remo__session_proxy_gone(struct remo__ref *r);

/* ---- sessions (session.c) and operations (ops.c) ------------------------ */

/* The operations a request can ask for; on the wire, so never renumber. */
enum {
	REMO__OP_LOOKUP = 1,   /* a: name                       */
	REMO__OP_GETATTR = 2,  /* target, a: name               */
	REMO__OP_SETATTR = 3,  /* target, a: name, b: value     */
	REMO__OP_CALL = 4,     /* target: callable, a: args     */
	REMO__OP_CALLM = 5,    /* target, a: method name, b: args */
	REMO__OP_LEN = 6,      /* target                        */
	REMO__OP_GETITEM = 7,  /* target, a: key                */
	REMO__OP_SETITEM = 8,  /* target, a: key, b: value      */
	REMO__OP_CONTAINS = 9, /* target, a: key                */
	REMO__OP_CHUNK = 10,   /* target, a: start index        */
};

/* remo__session_request: sends one request and waits for its reply,
 * serving nested requests meanwhile.  Values are borrowed; *out is new.
 * Failures are raised (remo_last_error) and returned as a status. */
int remo__session_request(struct remo_session *s, int op, remo_value target,
                          remo_value a, remo_value b, remo_value *out);
/* remo__session_request_timed: the same with this call's timeout (0:
 * the session's timeout_ms; -1: none). */
int remo__session_request_timed(struct remo_session *s, int op,
                                remo_value target, remo_value a, remo_value b,
                                int timeout_ms, remo_value *out);
/*
 * Call styles other than a plain call (remo.h section 11).  flags are
 * REMO__REQ_KEEP (async: the peer keeps the result so pipelined requests
 * can name it) or REMO__REQ_ONEWAY; *fut (async) gets the started future.
 * Values are borrowed (an async call retains them until it settles).
 */
#define REMO__REQ_KEEP 0x100
#define REMO__REQ_ONEWAY 0x200
#define REMO__REQ_PIPE 0x400
int remo__session_start(struct remo_session *s, int op, remo_value target,
                        remo_value a, remo_value b, unsigned flags,
                        int timeout_ms, struct remo_future **fut);
/* A batch's calls, sent in one message by remo__session_send_batch. */
struct remo__breq {
	int op;
	remo_value target, a, b;     /* retained */
	struct remo_future *fut;     /* NULL: one-way */
};
int remo__session_send_batch(struct remo_session *s, struct remo__breq *r,
                             size_t n);
/* remo__future_new_batch: an unstarted future of s, for a batch item,
 * with two counts: the batch's and the caller's. */
struct remo_future *remo__future_new_batch(struct remo_session *s);
/* remo__future_abandon: a batch future that was never sent settles with
 * status (no callback: it never started). */
void remo__future_abandon(struct remo_future *f, int status);
/* remo__future_settled: a future that is already settled (a call that ran
 * locally): status and value (stolen; the error for REMO_ERAISED). */
struct remo_future *remo__future_settled(int status, remo_value value);
/* remo__promise_session: the session a pipelined request on promise p
 * goes to, or NULL when p cannot be pipelined (its call ran locally, or
 * its result is not kept, or it is a batch's call not sent yet and this
 * request is not batching) and must be waited for. */
struct remo_session *remo__promise_session(remo_value p, bool batching);
void remo__future_release(struct remo_future *f);
/* remo__op_apply: operation op on a local value, as serving a request
 * does (any op but LOOKUP). */
int remo__op_apply(int op, remo_value target, remo_value a, remo_value b,
                   remo_value *out);
/* For tracebacks (traceback.c <-> session.c). */
struct remo__recover;
/* remo__serving: the session whose request this thread serves, or NULL. */
struct remo_session *remo__serving(void);
const remo_session_opts *remo__session_opts(struct remo_session *s);
/* remo__serving_reply_error: sends err as the ERROR reply of the request
 * this thread serves, now; its ordinary reply is then skipped.  try_only:
 * give up (REMO_ELIMIT) rather than wait for the send lock. */
int remo__serving_reply_error(remo_value err, bool try_only);
/* remo__serving_park: serves that session on this thread until done(arg)
 * is true, the session ends, or the monotonic ms deadline passes. */
void remo__serving_park(bool (*done)(void *), void *arg, int64_t deadline);
int64_t remo__now_ms(void);
/* remo__serving_locals_mark: the REMO_LOCAL mark of the request this
 * thread serves (remo__locals_take). */
size_t remo__serving_locals_mark(void);
/* traceback.c: the error of a call that crashed under recovery (raised);
 * installs the crash handlers (once; a session with tracebacks does:
 * they report a crash to the caller, and recover when asked); attaches
 * a traceback
 * to an error raised by a function this thread serves (stolen, returned),
 * skip frames above the raising function's. */
int remo__tb_crashed(struct remo__recover *r);
int remo__tb_init_handlers(void);
remo_value remo__tb_attach(remo_value err, int skip);
/* remo__chunk: up to REMO_FORCE_CHUNK items of a local list from start
 * (a dict: key, value, key, value...) as a new tuple. */
int remo__chunk(remo_value v, size_t start, remo_value *out);
/* transport.c: a connection in the core's memory, as a channel. */
struct remo__conn;
struct remo__conn *remo__conn_alloc(const remo_transport_ops *t);
void *remo__conn_state(struct remo__conn *c);
/* remo__conn_session_opts: opts (may be NULL) with the defaults of a
 * session over a transport: a lease, the spin, the transport's limit. */
remo_session_opts remo__conn_session_opts(const struct remo__conn *c,
                                          const remo_session_opts *opts);
/* remo__conn_channel: the channel owns c from now on (destroy frees). */
void remo__conn_channel(struct remo__conn *c, remo_channel *out);

/* For tests: sizes of a session's tables, and sending what is batched. */
size_t remo__session_table_len(struct remo_session *s);
size_t remo__session_proxies_len(struct remo_session *s);
int remo__session_flush(struct remo_session *s);
void remo__session_set_max_queued(struct remo_session *s, size_t n);
int remo__spin_us(void);
/* remo__dict_free / remo__dict_reserve: for value.c and the decoder. */
void remo__dict_free(struct remo__dict *d);
int remo__dict_reserve(remo_value d, size_t n);
/* remo__dict_insert_new: adds key (stolen) and val (stolen); REMO_EEXIST
 * (both released) if key is there already.  Used by the decoder, which
 * must reject duplicate keys. */
int remo__dict_insert_new(remo_value d, remo_value key, remo_value val);

/* ---- uint64 -> pointer maps (map.c) ------------------------------------ */

struct remo__map_slot {
	uint64_t key;
	void *val; /* NULL: empty */
};

/* Zero-fill to start.  Values must not be NULL. */
struct remo__map {
	struct remo__map_slot *slots;
	size_t mask; /* slots - 1, or 0 before the first put */
	size_t len;
};

void *remo__map_get(const struct remo__map *m, uint64_t key);
/* remo__map_put: inserts or replaces.  REMO_ENOMEM (map unchanged). */
int remo__map_put(struct remo__map *m, uint64_t key, void *val);
/* remo__map_del: removes key; returns its value or NULL. */
void *remo__map_del(struct remo__map *m, uint64_t key);
/* remo__map_next: iteration from *pos = 0; no changes meanwhile. */
bool remo__map_next(const struct remo__map *m, size_t *pos, uint64_t *key,
                    void **val);
void remo__map_free(struct remo__map *m);

/* ---- hashing (hash.c) -------------------------------------------------- */

/* SipHash-1-3 of n bytes with the per-process key. */
uint64_t remo__siphash(const void *p, size_t n);
/* A keyed mix of one 64-bit word, for ints and for combining hashes. */
uint64_t remo__hash_u64(uint64_t x);

/* ---- UTF-8 (utf8.c) ---------------------------------------------------- */

bool remo__utf8_valid(const uint8_t *p, size_t n);

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

/* ---- error names (errname.c) ------------------------------------------- */

bool remo__errname_valid(const char *name, size_t len);
/* remo__error_from_parts: an error value from its four parts, all stolen
 * and all checked by the caller (str, str, dict, nil-or-traceback). */
remo_value remo__error_from_parts(remo_value name, remo_value message,
                                  remo_value attrs, remo_value tb);

#endif /* REMO_IMPL_H */
