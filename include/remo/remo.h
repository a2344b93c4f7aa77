/*
 * remo.h -- the public interface of libremo, transparent remote objects.
 *
 * Read it top to bottom; it is in sections:
 *
 *   1. Status codes        every function that can fail returns one
 *   2. Memory              the one allocator indirection
 *   3. Values              nil, bool, int, double, str, bytes, tuple,
 *                          list, dict, and the reserved reference kinds
 *   4. Error values        named errors, the name hierarchy, raising,
 *                          remo_last_error
 *   5. Wire codec          values to MessagePack bytes and back
 *   6. Channels            the smallest transport: send, receive, a pointer
 *   7. Types and functions registering C code, signatures
 *   8. Sessions            two peers joined by a channel; exports
 *   9. Operations          getattr, call, len, getitem...: local or remote
 *  10. C function pointers remote callables as plain C functions; ops
 *                          structs filled from a remote object
 *  11. Call styles         async calls and futures, pipelining, one-way
 *                          calls, batches
 *  12. Connecting, serving sessions over transports: remo_connect and
 *                          remo_server
 *
 * Ownership words, used the same way in every comment below:
 *
 *   new       the caller receives a reference and must give it back with
 *             remo_value_release() (or pass it to a "stealing" function).
 *   borrowed  the caller may use the value while the container it came
 *             from is alive and unchanged; it must not release it.
 *   stolen    the function takes the caller's reference ALWAYS, on success
 *             and on failure alike (on failure it releases it), so that
 *             nested constructors such as
 *                 remo_list_append(l, remo_str("x"))
 *             can never leak.
 *
 * How a function fails, one convention for each kind of function:
 *
 *   values    a function that makes a remo_value returns one of kind
 *             REMO_INVALID (remo_ok() is false) when it cannot make it;
 *             every stealing function accepts REMO_INVALID and fails
 *             with REMO_ENOMEM, so a chain of calls reports it once.
 *             (Getters that lend a part, remo_tuple_get and the like,
 *             return nil for a part that is not there, as each says.)
 *   handles   a function returning a pointer (remo_session *,
 *             remo_future *, remo_server *...) returns NULL, and sets
 *             *status when it takes a status pointer.
 *   the rest  returns a status (section 1): REMO_OK or why not.  The
 *             operations on values and proxies (sections 9 to 11) also
 *             leave an error value saying why in remo_last_error()
 *             (section 4); REMO_ERAISED means the call itself raised it.
 *
 * Each function's comment lists the codes it can return.
 *
 * Everything not named remo_* or REMO_* is private.  The layers, the value
 * model and the reasons behind them are in doc/design.md; the bytes on the
 * wire are in doc/wire.md.
 */
#ifndef REMO_REMO_H
#define REMO_REMO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define REMO_API __attribute__((visibility("default")))
#else
#define REMO_API
#endif

/* ======================================================================
 * 1. Status codes
 * ======================================================================
 *
 * REMO_OK is 0; every other code is a small positive number that never
 * changes meaning.  The codes a peer or the network can cause (the
 * REMO_EWIRE_* family, later the session codes) are errors to handle,
 * never crashes.
 */
enum remo_status {
	REMO_OK = 0,
	REMO_ENOMEM = 1,      /* an allocation failed                         */
	REMO_EINVAL = 2,      /* an argument is invalid (see the function)    */
	REMO_ETYPE = 3,       /* a value is of the wrong kind                 */
	REMO_ERANGE = 4,      /* an index or a number is out of range         */
	REMO_ENOTFOUND = 5,   /* no such key or name                          */
	REMO_EEXIST = 6,      /* the name is registered already, differently  */
	REMO_EUNHASHABLE = 7, /* a mutable value was used as a dict key       */
	REMO_EDEPTH = 8,      /* a value nests deeper than REMO_MAX_DEPTH     */
	REMO_ETOOBIG = 9,     /* a value holds more than REMO_MAX_VALUES, or a
	                         string or message over 4 GiB - 1 bytes       */
	REMO_ELIMIT = 10,     /* a stated limit was reached (see its #define) */
	REMO_ERAISED = 11,    /* the operation raised an error value: see
	                         remo_last_error()                           */
	REMO_ECLOSED = 12,    /* the session or channel was closed here       */
	REMO_EPEERLOST = 13,  /* the peer went away (closed, died, vanished)  */
	REMO_ETIMEDOUT = 14,  /* the operation's timeout passed               */
	REMO_EPROTO = 15,     /* the peer broke the protocol; session closed  */
	REMO_ESIGNATURE = 16, /* a signature string that does not parse       */
	REMO_ECANCELED = 17,  /* the call was cancelled here (remo_future_cancel) */
	REMO_EAUTH = 18,      /* the peer did not prove the shared secret, or
	                         asked for one this side does not have      */

	/* Malformed MessagePack: one code for each kind of bad input. */
	REMO_EWIRE_TRUNCATED = 20, /* the message ends before its value does  */
	REMO_EWIRE_RESERVED = 21,  /* the never-used type byte 0xc1           */
	REMO_EWIRE_LENGTH = 22,    /* str, bin or ext longer than bytes left  */
	REMO_EWIRE_COUNT = 23,     /* array or map count larger than the
	                              bytes left could hold                   */
	REMO_EWIRE_DEPTH = 24,     /* nesting deeper than REMO_MAX_DEPTH      */
	REMO_EWIRE_VALUES = 25,    /* more than REMO_MAX_VALUES values        */
	REMO_EWIRE_TRAILING = 26,  /* bytes left over after the value         */
	REMO_EWIRE_INTRANGE = 27,  /* a uint64 above INT64_MAX                */
	REMO_EWIRE_EXTTYPE = 28,   /* an extension type remo does not define  */
	REMO_EWIRE_EXTBODY = 29,   /* a remo extension with a malformed body  */
	REMO_EWIRE_KEY = 30,       /* a map key that is not immutable         */
	REMO_EWIRE_DUPKEY = 31,    /* the same map key twice                  */
	REMO_EWIRE_UTF8 = 32,      /* a str that is not valid UTF-8           */
};

/*
 * remo_strerror: a short English sentence for a status code; never NULL.
 * Unknown codes give "unknown remo status".  The string is static.
 */
REMO_API const char *remo_strerror(int status);

/*
 * remo_status_name: the code's C name ("REMO_EWIRE_COUNT"), or NULL for an
 * unknown code.  The string is static.
 */
REMO_API const char *remo_status_name(int status);

/* ======================================================================
 * 2. Memory
 * ======================================================================
 *
 * Every allocation libremo makes goes through these three functions, so a
 * program (or a test) can count allocations or make them fail.  Call
 * remo_set_allocator() before any other remo function, or not at all;
 * passing NULL restores malloc, realloc and free.
 */
typedef struct remo_allocator {
	void *(*malloc)(size_t size);
	void *(*realloc)(void *ptr, size_t size);
	void (*free)(void *ptr);
} remo_allocator;

REMO_API void remo_set_allocator(const remo_allocator *a);

/* remo_free: frees memory that a remo function returned (remo_repr()). */
REMO_API void remo_free(void *ptr);

/* ======================================================================
 * 3. Values
 * ======================================================================
 *
 * A remo_value is a small struct passed by value.  nil, bool, int and
 * double live inside it and cost no allocation; every other kind points
 * to a reference-counted heap part.  A zero-filled remo_value is nil.
 *
 * Kinds, and how each crosses to a peer (doc/design.md, "value model"):
 *   immutable, copied:       nil bool int double str bytes tuple
 *   mutable, by reference:   list dict
 *   references:              object callable frame traceback
 *   error:                   name, message, attributes, traceback slot
 *
 * REMO_INVALID is what a constructor returns when it could not allocate;
 * every function that steals a value accepts it and returns REMO_ENOMEM.
 */
typedef enum remo_kind {
	REMO_NIL = 0,
	REMO_BOOL,
	REMO_INT,
	REMO_DOUBLE,
	REMO_STR,
	REMO_BYTES,
	REMO_TUPLE,
	REMO_LIST,
	REMO_DICT,
	REMO_ERROR,
	REMO_OBJECT,    /* reserved: a reference to a registered object */
	REMO_CALLABLE,  /* reserved: a reference to a callable           */
	REMO_FRAME,     /* reserved: a reference to a stack frame        */
	REMO_TRACEBACK, /* reserved: a reference to a traceback          */
	REMO_INVALID = 0xff
} remo_kind;

struct remo__obj; /* the heap part; private */

typedef struct remo_value {
	remo_kind kind;
	union {
		bool b;
		int64_t i;
		double d;
		struct remo__obj *p;
	} as;
} remo_value;

/* Limits that every value, every encoder and every decoder enforces. */
/*
 * REMO_MAX_DEPTH: levels of nesting.  Each tuple, list, dict and error
 * is a level (on the wire: each array and map, the outermost counted;
 * an error is two, its array and its attrs map).
 * REMO_MAX_VALUES: MessagePack items in one message: every scalar and
 * every array or map header, each extension once plus the items of its
 * body (a list of n nils is n + 2).  doc/wire.md section 4 has examples.
 * The encoder refuses what the decoder would: REMO_EDEPTH, REMO_ETOOBIG.
 */
#define REMO_MAX_DEPTH 64
#define REMO_MAX_VALUES (1u << 20)

/* ---- constructors: each returns a new value, or REMO_INVALID ---------- */

static inline remo_value remo_nil(void)
{
	remo_value v = {REMO_NIL, {0}};
	return v;
}

static inline remo_value remo_bool(bool b)
{
	remo_value v = {REMO_BOOL, {0}};
	v.as.b = b;
	return v;
}

static inline remo_value remo_int(int64_t i)
{
	remo_value v = {REMO_INT, {0}};
	v.as.i = i;
	return v;
}

static inline remo_value remo_double(double d)
{
	remo_value v = {REMO_DOUBLE, {0}};
	v.as.d = d;
	return v;
}

/* remo_str: a copy of the NUL-terminated string s (NULL gives ""). */
REMO_API remo_value remo_str(const char *s);
/* remo_strn: a copy of n bytes at s; they may hold NUL bytes. */
REMO_API remo_value remo_strn(const char *s, size_t n);
/* remo_bytes: a copy of n bytes at p. */
REMO_API remo_value remo_bytes(const void *p, size_t n);
/* remo_tuple: a tuple of n nils, to be filled with remo_tuple_set(). */
REMO_API remo_value remo_tuple(size_t n);
/* remo_tuple_of: a tuple of n values, each stolen. */
REMO_API remo_value remo_tuple_of(size_t n, ...);
/* remo_list: an empty list. */
REMO_API remo_value remo_list(void);
/* remo_dict: an empty dict. */
REMO_API remo_value remo_dict(void);

/* ---- reference counting ------------------------------------------------ */

/* remo_value_retain: returns v as a new reference (v itself stays). */
REMO_API remo_value remo_value_retain(remo_value v);
/* remo_value_release: gives back one reference; v must not be used after. */
REMO_API void remo_value_release(remo_value v);

/* ---- inspection --------------------------------------------------------- */

static inline bool remo_ok(remo_value v)
{
	return v.kind != REMO_INVALID;
}

/* remo_kind_name: "nil", "int", ..., for messages. */
REMO_API const char *remo_kind_name(remo_kind k);

/* remo_is_mutable: true for list and dict (they cross by reference). */
REMO_API bool remo_is_mutable(remo_value v);

/*
 * remo_hashable: true if v can be a dict key: nil, bool, int, double,
 * str, bytes, and tuples of hashable values.
 */
REMO_API bool remo_hashable(remo_value v);

/*
 * remo_equal: structural equality.  Kinds must match (1 and 1.0 differ,
 * as they do on the wire); NaN equals NaN and 0.0 equals -0.0, so that
 * every value equals itself as a dict key must; dicts compare without
 * regard to order; references compare by owner and id.
 */
REMO_API bool remo_equal(remo_value a, remo_value b);

/*
 * remo_hash: a hash consistent with remo_equal, keyed with a secret
 * chosen per process (SipHash-1-3), so that a peer cannot send keys that
 * collide on purpose.  Returns 0 for an unhashable value.
 */
REMO_API uint64_t remo_hash(remo_value v);

/*
 * remo_repr: a new NUL-terminated string for debugging, in a notation
 * like Python's: nil true 42 1.5 "a\n" b"\x00" (1,) [1, 2] {"k": 1}
 * KeyError("msg").  Free it with remo_free().  NULL on allocation failure.
 */
REMO_API char *remo_repr(remo_value v);

/* ---- str and bytes ------------------------------------------------------ */

/*
 * remo_str_data / remo_bytes_data: borrowed pointer to the bytes; *len
 * (if not NULL) gets the length.  NULL if v is not of that kind.  A str
 * is always followed by a NUL byte.  Bytes need not be: a large bytes
 * value received in a session is a view into the message it came in
 * (which it keeps alive), so that it is never copied.
 */
REMO_API const char *remo_str_data(remo_value v, size_t *len);
REMO_API const void *remo_bytes_data(remo_value v, size_t *len);

/* ---- tuple -------------------------------------------------------------- */

REMO_API size_t remo_tuple_len(remo_value t);
/* remo_tuple_get: borrowed item i; nil if i is out of range. */
REMO_API remo_value remo_tuple_get(remo_value t, size_t i);
/*
 * remo_tuple_set: stores item i, stealing v.  Only while building: the
 * caller must hold the only reference to t (tuples are immutable once
 * shared).  REMO_ETYPE, REMO_ERANGE, REMO_EINVAL if t is shared,
 * REMO_ENOMEM if v is REMO_INVALID.
 */
REMO_API int remo_tuple_set(remo_value t, size_t i, remo_value v);

/* ---- list --------------------------------------------------------------- */

/*
 * Lists and dicts are safe to share between threads and sessions: each
 * operation below is atomic with respect to the others (a lock per
 * container, doc/design.md "Shared containers").  What a borrowed result
 * points to is only safe while no other thread can change the container:
 * on a shared one, use the _new getters (a reference of your own) and
 * iterate over a copy (remo_list_copy, remo_dict_copy: one consistent
 * view).
 */
REMO_API size_t remo_list_len(remo_value l);
/* remo_list_get: borrowed item i; nil if i is out of range. */
REMO_API remo_value remo_list_get(remo_value l, size_t i);
/* remo_list_get_new: *out gets item i (new).  REMO_ETYPE, REMO_ERANGE. */
REMO_API int remo_list_get_new(remo_value l, size_t i, remo_value *out);
/* remo_list_copy: a new list with l's items (shallow), taken at one
 * instant; REMO_INVALID if l is not a list or memory ran out. */
REMO_API remo_value remo_list_copy(remo_value l);
/* remo_list_set: replaces item i, stealing v.  REMO_ETYPE, REMO_ERANGE,
 * REMO_ENOMEM if v is REMO_INVALID. */
REMO_API int remo_list_set(remo_value l, size_t i, remo_value v);
/* remo_list_append: appends v, stealing it.  REMO_ETYPE, REMO_ENOMEM. */
REMO_API int remo_list_append(remo_value l, remo_value v);
/* remo_list_del: removes item i.  REMO_ETYPE, REMO_ERANGE. */
REMO_API int remo_list_del(remo_value l, size_t i);
/* remo_list_insert: inserts v (stolen) before item i (past the end:
 * appends).  REMO_ETYPE, REMO_ENOMEM. */
REMO_API int remo_list_insert(remo_value l, size_t i, remo_value v);
/* remo_list_pop: removes item i, into *out (new).  REMO_ETYPE,
 * REMO_ERANGE. */
REMO_API int remo_list_pop(remo_value l, size_t i, remo_value *out);
/* remo_list_clear: removes every item (nothing for a non-list). */
REMO_API void remo_list_clear(remo_value l);

/* ---- dict --------------------------------------------------------------- */

REMO_API size_t remo_dict_len(remo_value d);
/*
 * remo_dict_set: maps key to val, stealing both.  Insertion order is kept
 * (and is the order on the wire); setting an existing key replaces its
 * value in place.  REMO_ETYPE, REMO_EUNHASHABLE, REMO_ENOMEM.
 */
REMO_API int remo_dict_set(remo_value d, remo_value key, remo_value val);
/* remo_dict_set_str: remo_dict_set() with a C-string key; val stolen. */
REMO_API int remo_dict_set_str(remo_value d, const char *key, remo_value val);
/*
 * remo_dict_get: *out gets the borrowed value for key.  REMO_ENOTFOUND,
 * REMO_ETYPE.  key is borrowed.
 */
REMO_API int remo_dict_get(remo_value d, remo_value key, remo_value *out);
/* remo_dict_get_new: remo_dict_get(), *out new (nil on failure). */
REMO_API int remo_dict_get_new(remo_value d, remo_value key, remo_value *out);
/* remo_dict_get_str: remo_dict_get() with a C-string key; REMO_ENOMEM
 * too (the key is made as a str). */
REMO_API int remo_dict_get_str(remo_value d, const char *key, remo_value *out);
/* remo_dict_del: removes key.  REMO_ENOTFOUND, REMO_ETYPE. */
REMO_API int remo_dict_del(remo_value d, remo_value key);
/* remo_dict_pop: removes key, its value into *out (new): take-if-there
 * in one step.  REMO_ENOTFOUND, REMO_ETYPE. */
REMO_API int remo_dict_pop(remo_value d, remo_value key, remo_value *out);
/* remo_dict_copy: a new dict with d's entries (shallow, in order), taken
 * at one instant; REMO_INVALID if d is not a dict or memory ran out. */
REMO_API remo_value remo_dict_copy(remo_value d);
/* remo_dict_setdefault: key's value into *out (new), after mapping key
 * to dflt if it was not there, in one step (key and dflt borrowed).
 * REMO_ETYPE, REMO_EUNHASHABLE, REMO_ENOMEM. */
REMO_API int remo_dict_setdefault(remo_value d, remo_value key,
                                  remo_value dflt, remo_value *out);
/* remo_dict_clear: removes every entry (nothing for a non-dict). */
REMO_API void remo_dict_clear(remo_value d);

/*
 * Observers.  remo_observe(c, fn, user): fn is told of every change to
 * the list or dict c and to any list or dict nested in it (now, or
 * stored into it later), whoever makes it: this process's code or any
 * peer through a proxy.  It runs in the thread that made the change,
 * after the change and before the call that made it returns (so before
 * a peer's reply goes), with root (c, or nil if it is being freed), the
 * path from root to the changed container (a tuple of keys: dict keys,
 * and list indices as they were when the container was stored), op
 * ("set", "append", "insert", "delete", "clear") and key (the dict key
 * or list index; nil for clear), all borrowed.  It must not block, and
 * may change the tree (the change is reported in turn).  A container is
 * in one observed tree at a time: one observed already keeps its
 * observer.  fn NULL stops it (changes to nested containers are then
 * reported to nobody).  REMO_ETYPE (not a list or dict), REMO_EEXIST
 * (observed already), REMO_ENOMEM.
 */
typedef void remo_observer_fn(remo_value root, remo_value path,
                              const char *op, remo_value key, void *user);
REMO_API int remo_observe(remo_value c, remo_observer_fn *fn, void *user);
/*
 * remo_readonly: while readonly is true, a peer's writes to the list or
 * dict c (setitem, and the container protocol's append, extend, insert,
 * pop, delete, remove, clear, setdefault, update), through a proxy or
 * relayed by a middle process, fail with PermissionError; reads go on,
 * and this process's own code writes as before.  For a store that must
 * rebuild itself (a persistent dict reverting), or detach a container
 * that its clients may still hold.  Any time, any thread.  REMO_ETYPE
 * (not a list or dict).
 */
REMO_API int remo_readonly(remo_value c, bool readonly);
/*
 * remo_dict_next: iteration in insertion order.  Start with *pos = 0;
 * each call gives borrowed *key and *val and returns true, or returns
 * false at the end.  The dict must not change during the iteration (a
 * shared one: iterate over remo_dict_copy).
 */
REMO_API bool remo_dict_next(remo_value d, size_t *pos, remo_value *key,
                             remo_value *val);

/* ======================================================================
 * 4. Error values, error names, raising
 * ======================================================================
 *
 * An error crosses between processes by NAME, with a message, a dict of
 * attributes and (filled in by the traceback layer) a traceback.  Names
 * form a hierarchy with "Error" at the root:
 *
 *   Error
 *     TypeError  ValueError  AttributeError  MemoryError  TimeoutError
 *     PermissionError -> AuthenticationError (a peer that did not prove
 *                        the shared secret)
 *     ProtocolError  NotFound
 *     RecursionError (callbacks nested past the limit)
 *     LimitError (any other stated limit)
 *     LookupError      -> KeyError, IndexError, ReferenceError (a
 *                         stale or forged object id)
 *     ArithmeticError  -> ZeroDivisionError, OverflowError
 *     ConnectionError  -> PeerLost
 *     OSError          -> every errno name this C library knows (ENOENT...)
 *
 * A name nobody registered is still a valid error name: it is kept as it
 * came, and it is-a "Error" and itself only.
 */

/*
 * remo_error: a new error value with the given name and message (both
 * copied; NULL message gives "").  The name must be 1 to 255 bytes of
 * letters, digits, '_' and '.'; otherwise REMO_INVALID.
 */
REMO_API remo_value remo_error(const char *name, const char *message);

/* Borrowed parts of an error value; NULL or nil if e is not an error. */
REMO_API const char *remo_error_name(remo_value e);
REMO_API const char *remo_error_message(remo_value e);
/* remo_error_attrs: the borrowed attribute dict; add with remo_dict_set. */
REMO_API remo_value remo_error_attrs(remo_value e);
/* remo_error_traceback: borrowed; nil until the traceback layer sets it. */
REMO_API remo_value remo_error_traceback(remo_value e);
/* remo_error_isa: remo_errname_isa() on the error's name. */
REMO_API bool remo_error_isa(remo_value e, const char *ancestor);

/* Built-in, errno and registered error names together, at most. */
#define REMO_MAX_ERROR_NAMES 4096

/*
 * remo_errname_register: adds name under parent (which must be known).
 * Registering the same name with the same parent again is REMO_OK;
 * with another parent it is REMO_EEXIST.  REMO_ENOTFOUND for an unknown
 * parent, REMO_EINVAL for a malformed name or a NULL parent, REMO_ELIMIT past
 * REMO_MAX_ERROR_NAMES, REMO_ENOMEM.  Names are never removed.
 * Thread-safe.
 */
REMO_API int remo_errname_register(const char *name, const char *parent);

/* remo_errname_known: true if name is built in or registered. */
REMO_API bool remo_errname_known(const char *name);

/*
 * remo_errname_parent: the parent's name (static or registry-owned, valid
 * for the life of the process); NULL for "Error" and for unknown names.
 */
REMO_API const char *remo_errname_parent(const char *name);

/*
 * remo_errname_isa: true if name is ancestor or descends from it.  An
 * unknown name is-a itself and "Error".
 */
REMO_API bool remo_errname_isa(const char *name, const char *ancestor);

/* remo_errno_name: "ENOENT" for ENOENT; NULL if this C library has none. */
REMO_API const char *remo_errno_name(int errnum);
/* remo_errno_value: ENOENT for "ENOENT"; 0 for a name that is no errno. */
REMO_API int remo_errno_value(const char *name);

/* ---- raising, and the error of the last failure ------------------------ */

/*
 * remo_raise: called from inside a registered C function to make the
 * call fail with an error of that name and a printf-style message.  The
 * function should then return at once; its result is ignored.  Only
 * these (remo_raise, remo_raise_value, remo_raise_errno) fail a call:
 * an operation the function calls that fails leaves its error in
 * remo_last_error(), and the function may handle it and return
 * normally, or pass it on with
 * remo_raise_value(remo_value_retain(remo_last_error())).
 */
REMO_API void remo_raise(const char *name, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 2, 3)))
#endif
	;

/* remo_raise_value: the same with an error value (stolen), for attrs. */
REMO_API void remo_raise_value(remo_value error);

/*
 * remo_raise_errno: remo_raise with the errno's name ("ENOENT", an
 * OSError), so that it crosses as a name and the caller gets its own
 * value back with remo_errno_value(remo_error_name(e)); the message is
 * fmt's, then ": " and strerror.  A number this C library has no name
 * for is raised as OSError with attrs "errno" set to the number.
 */
REMO_API void remo_raise_errno(int errnum, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 2, 3)))
#endif
	;

/*
 * remo_last_error: the error value of the last operation of sections 9
 * to 11 that failed on this thread (borrowed; nil if none).  Like errno, it is
 * only meaningful right after a failure.
 */
REMO_API remo_value remo_last_error(void);

/* ======================================================================
 * 5. Wire codec
 * ======================================================================
 *
 * MessagePack, as specified byte by byte in doc/wire.md.  nil, bool,
 * int, double, str, bytes, tuple (array) and dict (map) are plain
 * MessagePack; list, error and the references are extension types.
 */

/* A growable byte buffer.  Zero-fill to start; remo_buf_free to end. */
typedef struct remo_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
} remo_buf;

REMO_API void remo_buf_free(remo_buf *b);

/*
 * remo_pack: appends v's MessagePack encoding to out.  v is borrowed.
 * Errors: REMO_EDEPTH past REMO_MAX_DEPTH (which also stops a list that
 * contains itself); REMO_ETOOBIG past REMO_MAX_VALUES items, or for a
 * string or container over 2^32 - 1 bytes or items; REMO_EWIRE_UTF8 for
 * a str that is not UTF-8 (a peer would refuse it); REMO_EINVAL for
 * REMO_INVALID, and (with TypeError in remo_last_error) for a local
 * object, callable, frame or traceback, or a proxy of a live session (a
 * reference has an id only inside its session: packed, it would read
 * back as an inert reference); REMO_ENOMEM.  On failure out->len is as
 * it was.  A reference remo_unpack made (no session) packs as it came.
 */
REMO_API int remo_pack(remo_value v, remo_buf *out);

/*
 * remo_by_value: a deep copy of the list or dict v (every list and dict
 * in it copied too; objects and callables shared), marked to cross by
 * value: passed to a peer (an argument, a reply, an item), it and all it
 * holds arrive as local values, one message, no references to come back
 * for.  For a tuple, the same tuple with every list and dict in it (at
 * any depth) so copied.  For messages, tuples of a tuple space, anything
 * that is data.  REMO_INVALID if v is not a list, dict or tuple
 * (TypeError in remo_last_error), nests deeper than REMO_MAX_DEPTH
 * (RecursionError), or memory ran out (MemoryError).
 */
REMO_API remo_value remo_by_value(remo_value v);

/*
 * remo_unpack: decodes exactly one value filling all n bytes at data into
 * *out (a new value; nil on failure).  The message's structure and every
 * limit are checked first, without allocating, so a hostile message costs
 * no memory; what needs the values themselves (UTF-8, keys, the shape of
 * an error) is checked while building, and a failure frees what was
 * built.  Strings and bytes are copied out of the message.  Returns
 * REMO_OK, a REMO_EWIRE_* code, REMO_EINVAL (data NULL), REMO_ENOMEM.
 */
REMO_API int remo_unpack(const void *data, size_t n, remo_value *out);

/* ======================================================================
 * 6. Channels
 * ======================================================================
 *
 * A channel is a reliable, ordered, message-framed, two-way link to one
 * peer.  The smallest one is two functions and a pointer; the transports
 * (nanomsg, sockets, exec) are channels too.  remo calls send from one
 * thread at a time and recv from one thread at a time (possibly a
 * different one each time, and concurrently with send).
 */
/* One piece of a message sent in pieces (remo_channel.sendv). */
typedef struct remo_iov {
	const void *p;
	size_t n;
} remo_iov;

typedef struct remo_channel {
	/*
	 * send: sends the n bytes at msg as one message.  The bytes are
	 * borrowed for the call.  REMO_OK, or REMO_EPEERLOST / REMO_ECLOSED,
	 * or REMO_ETOOBIG for a message over the channel's own limit.
	 */
	int (*send)(void *user, const void *msg, size_t n);
	/*
	 * recv: waits up to timeout_ms (-1: forever) for one message and
	 * appends it to msg (grow it with remo_buf_reserve).  A timeout
	 * of 0 means one look and no wait: remo polls with it while it
	 * spins, so it must cost microseconds, not a millisecond.  REMO_OK,
	 * REMO_ETIMEDOUT, REMO_EPEERLOST when the peer closed, REMO_ECLOSED
	 * after close, REMO_EPROTO when the framing is broken (the session
	 * then ends with REMO_EPROTO), REMO_ENOMEM.  A recv that times out
	 * in the middle of a message keeps what it read for the next call.
	 */
	int (*recv)(void *user, remo_buf *msg, int timeout_ms);
	/*
	 * close (optional): makes a blocked or later recv return REMO_ECLOSED
	 * and tells the peer, if the channel can.  Without it, closing a
	 * session waits for the peer to close.
	 */
	void (*close)(void *user);
	/* destroy (optional): frees user; called once, when the session that
	 * owns the channel is freed. */
	void (*destroy)(void *user);
	void *user;
	/*
	 * peer (optional): what the channel knows of the peer, as one line of
	 * text into buf (len bytes, NUL-terminated): for remo_caller.  Called
	 * from the thread serving a request, while the channel is open.
	 * REMO_OK, or REMO_ENOTFOUND (nothing known).
	 */
	int (*peer)(void *user, char *buf, size_t len);
	/*
	 * limit (optional): from now on, refuse to receive a message over n
	 * bytes (recv: REMO_EPROTO) before holding more than n bytes of it.
	 * The session lowers it to a few KiB while a peer has not proved
	 * its secret, and sets it to max_message after, so that a stranger
	 * cannot make it hold a transport's whole limit (64 MiB) per
	 * connection.
	 */
	void (*limit)(void *user, size_t n);
	/*
	 * sendv (optional): send, for one message in n pieces (at most
	 * REMO_IOV_MAX), sent as the one message they make together.  The
	 * session uses it for a message with a large bytes value, which
	 * then goes from where it lives instead of being copied into the
	 * message first.  Without it, such a message is encoded whole.
	 */
	int (*sendv)(void *user, const remo_iov *iov, int n);
} remo_channel;

#define REMO_IOV_MAX 64

/* remo_buf_reserve: makes room for n more bytes at b->data + b->len.
 * REMO_ENOMEM (b unchanged). */
REMO_API int remo_buf_reserve(remo_buf *b, size_t n);

/*
 * remo_pipe: two connected in-process channels, a and b: what one sends
 * the other receives.  Each end is given to one session, which destroys
 * it.  Messages are copied.  REMO_ENOMEM.
 */
REMO_API int remo_pipe(remo_channel *a, remo_channel *b);

/* ======================================================================
 * 7. Types and functions
 * ======================================================================
 *
 * No IDL: C functions and structs are registered with a signature string,
 * and libffi makes the call.  A signature is "R(A...)": the result type,
 * then the argument types in parentheses, each optionally named
 * ("d(x:d y:d)"; names make error messages clearer).  Types:
 *
 *   v void (result only)   ? bool      f float        d double
 *   b B  int8 / uint8      h H  short / unsigned short
 *   i I  int / unsigned    l L  long / unsigned long
 *   q Q  int64 / uint64    n N  ssize_t / size_t
 *   s    const char *: a str in, copied out (NULL <-> nil)
 *   y    bytes: as an argument two C parameters (const void *, size_t);
 *        as a result the function returns const void * and takes one
 *        more, last parameter size_t * for the length; copied out
 *   r    remo_value: borrowed as an argument, a new reference as a result
 *   <T>  pointer to an object of registered type T (or a subtype); nil
 *        is NULL
 *
 * A method's C function takes the object pointer first; its signature
 * leaves it out.  A call with the wrong count or kinds of arguments is
 * refused with TypeError naming the parameter, before the C function
 * runs; an integer that does not fit its C type is OverflowError.
 */
typedef struct remo_type remo_type;

/*
 * remo_type_new: registers a type.  name must be unique in the process
 * (REMO_EEXIST), base may be NULL, doc may be NULL.  Types are never
 * freed.  NULL on failure, with *status set if status is not NULL:
 * REMO_EEXIST, REMO_EINVAL (name NULL or not a valid name), REMO_ENOMEM.
 */
REMO_API remo_type *remo_type_new(const char *name, const remo_type *base,
                                  const char *doc, int *status);

/* remo_type_find: a registered type by name, or NULL. */
REMO_API const remo_type *remo_type_find(const char *name);

#define REMO_READONLY 1u

/*
 * remo_type_field: a field of code (one type letter, or "<T>") at offset
 * in the C struct.  flags: REMO_READONLY.  s and <T> fields are always
 * read-only (remo would not know who owns what it stored).
 * REMO_ESIGNATURE, REMO_ENOTFOUND (an unknown <T>), REMO_EEXIST (name
 * taken), REMO_EINVAL (t NULL or a peer's, name or code NULL or
 * malformed), REMO_ENOMEM.
 */
REMO_API int remo_type_field(remo_type *t, const char *name,
                             const char *code, size_t offset,
                             unsigned flags);

/*
 * remo_type_method: a method; fn takes the object pointer first, then
 * the arguments of sig.  REMO_ESIGNATURE, REMO_ENOTFOUND (an unknown
 * <T>), REMO_EEXIST, REMO_EINVAL (t NULL or a peer's, name malformed, fn
 * NULL), REMO_ENOMEM.
 */
REMO_API int remo_type_method(remo_type *t, const char *name,
                              const char *sig, void (*fn)(void),
                              const char *doc);

/*
 * remo_object: a new value standing for the C object ptr of type t.  The
 * program keeps ownership of ptr unless dtor is given: then dtor(ptr)
 * runs when the last reference, local or remote, is gone.  REMO_INVALID
 * if t or ptr is NULL, or without memory.
 */
REMO_API remo_value remo_object(const remo_type *t, void *ptr,
                                void (*dtor)(void *));

/*
 * remo_object_ptr: the C pointer of a local object value if its type is
 * t or derives from t; NULL otherwise (also for proxies).
 */
REMO_API void *remo_object_ptr(remo_value v, const remo_type *t);

/*
 * remo_function: a new callable value for the C function fn with
 * signature sig.  REMO_INVALID if name is NULL or malformed, fn is NULL,
 * sig does not parse, names an unknown <T> or uses "&X" (closures
 * only), or without memory.
 */
REMO_API remo_value remo_function(const char *name, const char *sig,
                                  void (*fn)(void), const char *doc);

/* ======================================================================
 * 8. Sessions
 * ======================================================================
 *
 * A session joins two peers over one channel.  Peers are symmetric: each
 * side can call the other.  What a side makes reachable is its exports
 * (names) and whatever objects it passes in calls (references).
 *
 * Threads: any number of threads may make calls on one session.  A thread
 * that waits for its reply also serves the requests that belong to its
 * call (callbacks), so callbacks nest both ways in the threads that made
 * the calls.  Requests that belong to no call of this side are served by
 * threads in remo_session_serve(), or, if none is serving, by any waiting
 * thread.  doc/design.md "thread model" says why.
 */
typedef struct remo_session remo_session;
typedef struct remo_exports remo_exports;

/* remo_exports_new: an empty name table, to share between sessions;
 * NULL without memory. */
REMO_API remo_exports *remo_exports_new(void);
/* remo_export: makes v (borrowed) reachable as name.  REMO_EINVAL (e or
 * name NULL, or v REMO_INVALID), REMO_EEXIST (name is taken),
 * REMO_ENOMEM. */
REMO_API int remo_export(remo_exports *e, const char *name, remo_value v);
/*
 * remo_export_to: remo_export for the named identities only (who: a
 * NULL-terminated list): "secret" (a peer that proved the session's
 * secret), "uid=N" (a unix socket's peer of that uid, by SO_PEERCRED),
 * "subject=S" (a tls:// peer that proved a certificate of subject S,
 * as remo_caller shows it).  Any other peer's lookup is NotFound, as
 * for a name never exported.  who NULL: for everyone.  REMO_EINVAL (who
 * empty, or as remo_export), REMO_EEXIST, REMO_ENOMEM.
 */
REMO_API int remo_export_to(remo_exports *e, const char *name, remo_value v,
                            const char *const *who);
REMO_API void remo_exports_free(remo_exports *e);

/* Limits, each with its default; 0 in a field means the default. */
typedef struct remo_session_opts {
	size_t max_message;     /* bytes in one message: 16 MiB           */
	unsigned max_call_depth;/* callbacks nested across both peers: 32 */
	size_t max_refs;        /* objects the peer may hold: 1 << 20     */
	int timeout_ms;         /* default per-call timeout: -1 (none)    */
	int lease_ms;           /* T: a heartbeat after T idle, the peer
	                           lost after 3T of silence.  0: none for
	                           remo_session_new, REMO_DEFAULT_LEASE_MS
	                           for remo_connect and servers; -1: none */
	int spin_us;            /* before a waiting thread blocks in recv, it
	                           polls, yielding, for this long: a reply
	                           from a peer on another core then costs
	                           ~5 us instead of ~60 (doc/design.md).  0:
	                           none for remo_session_new, $REMO_SPIN_US
	                           or 20 for remo_connect and servers; -1:
	                           none */
	int traceback;          /* what a call that fails here sends with its
	                           error (remo/trace.h): REMO_TB_SNAPSHOT
	                           (0): a traceback, by reference;
	                           REMO_TB_LIVE: and the failing thread
	                           stays parked, serving, until the caller
	                           releases it or live_ms pass;
	                           REMO_TB_NONE: none */
	int live_ms;            /* REMO_TB_LIVE: how long at most; 0:
	                           REMO_DEFAULT_LIVE_MS */
	int traceback_detail;   /* what a traceback shows the peer:
	                           REMO_TB_FULL: the process, thread, files,
	                           modules and locals; REMO_TB_NAMES: the
	                           functions and lines only, never live.  0
	                           (REMO_TB_AUTO): full for a peer that
	                           proved the secret or a certificate, or is
	                           on this machine (unix socket, pipe, a
	                           channel that says nothing); names only
	                           for any other (tcp://, tls:// without a
	                           client certificate) */
	bool recover;           /* catch SIGSEGV, SIGBUS, SIGFPE, SIGABRT in
	                           the calls this session serves: the call
	                           fails with Crash and the process is marked
	                           tainted (remo_tainted).  Off by default:
	                           a crash can leave locks held */
	const void *secret;     /* authentication: a secret both peers share,
	                           REMO_MIN_SECRET bytes or more (copied), or
	                           NULL: none.  Then remo_session_new proves
	                           it to the peer and checks the peer's proof
	                           before anything is sent or served, without
	                           the secret ever crossing (doc/design.md
	                           "Authentication"); a peer that cannot is
	                           REMO_EAUTH.  A side without a secret meets
	                           one with a secret: REMO_EAUTH on both */
	size_t secret_len;
	int handshake_ms;       /* how long that proof may take: 0:
	                           REMO_DEFAULT_HANDSHAKE_MS */
	unsigned max_concurrent;/* the peer's calls served at once: past the
	                           threads in remo_session_serve, helper
	                           threads start when calls wait behind a
	                           busy one (doc/design.md "Serving").  0:
	                           1 (one at a time, in order) for
	                           remo_session_new, REMO_DEFAULT_MAX_CONCURRENT
	                           for remo_connect and servers */
	size_t max_queued_bytes;/* bytes of the peer's requests received and
	                           not yet served (waiting for a thread):
	                           at it the session is not read until one
	                           is served (the peer's sends block); past
	                           twice it (read by a thread waiting for its
	                           reply) the session ends with REMO_ELIMIT.  0:
	                           REMO_DEFAULT_MAX_QUEUED_BYTES; never less
	                           than twice max_message */
	size_t max_kept_bytes;  /* results kept for the peer's pipelined
	                           calls (KEEP, until its DROP), by weight:
	                           strings' and bytes' lengths, 16 a value;
	                           a list or dict 16 an item, not what it
	                           nests.  Past it a result is not kept:
	                           calls pipelined on it fail with
	                           LimitError (its own reply is sent).  0:
	                           REMO_DEFAULT_MAX_KEPT_BYTES */
} remo_session_opts;

#define REMO_DEFAULT_MAX_QUEUED_BYTES (64u << 20)

/*
 * The process's budget for its peers' requests received and not yet
 * served, over all its sessions (each also has max_queued_bytes): past
 * it, a session that holds such requests is not read until the total is
 * under the budget again (its peer's sends block), while one that holds
 * none reads on, so a client whose calls are served as they come is not
 * held up by flooding ones.  remo_queue_set_budget: 0 puts the default
 * back.  remo_queue_budget_used: the bytes held now.
 */
#define REMO_DEFAULT_QUEUE_BUDGET (256u << 20)
REMO_API void remo_queue_set_budget(size_t bytes);
REMO_API size_t remo_queue_budget_used(void);
#define REMO_DEFAULT_MAX_KEPT_BYTES (64u << 20)

#define REMO_MIN_SECRET 16
#define REMO_MAX_SECRET 1024
#define REMO_DEFAULT_HANDSHAKE_MS 5000

#define REMO_TB_SNAPSHOT 0
#define REMO_TB_LIVE 1
#define REMO_TB_NONE 2
/* traceback_detail's values: numbers of their own, so that one of the
 * traceback modes above given by mistake is not taken for them (any
 * value but these is REMO_TB_NAMES: the safe reading) */
#define REMO_TB_AUTO 0
#define REMO_TB_FULL 16
#define REMO_TB_NAMES 17
#define REMO_DEFAULT_LIVE_MS 60000
/* Threads one session keeps parked with live tracebacks at once.  Past
 * it, and for a failure served inside a parked thread (parks never nest
 * on one stack), the traceback is a snapshot: live is false. */
#define REMO_MAX_LIVE_PARKED 16

#define REMO_DEFAULT_LEASE_MS 10000
#define REMO_DEFAULT_MAX_CONCURRENT 16
/* Helper threads in a process, over all sessions: past it, calls wait
 * for a serving thread (none is refused). */
#define REMO_MAX_HELPERS 256

#define REMO_DEFAULT_MAX_MESSAGE (16u << 20)
#define REMO_DEFAULT_MAX_CALL_DEPTH 32
#define REMO_DEFAULT_MAX_REFS (1u << 20)

/*
 * remo_session_new: starts a session on ch (the session takes ownership
 * of the channel: it calls ch->destroy when freed) and sends the opening
 * handshake.  exports may be NULL and must outlive the session.  With a
 * secret it waits, up to handshake_ms, for the peer's proof.  NULL on
 * failure with *status set (if status is not NULL); ch is then destroyed:
 * REMO_EINVAL (ch lacks send or recv; a secret shorter than
 * REMO_MIN_SECRET or longer than REMO_MAX_SECRET; or the crash handlers
 * a session with tracebacks needs could not be installed), REMO_ENOMEM,
 * REMO_EAUTH (the peer did not prove the secret, or has none, or asks
 * for one this side does not have), REMO_ETIMEDOUT (no proof within
 * handshake_ms), REMO_EPROTO, or the handshake's send or receive failure
 * (REMO_EPEERLOST, REMO_ECLOSED).
 */
REMO_API remo_session *remo_session_new(const remo_channel *ch,
                                        remo_exports *exports,
                                        const remo_session_opts *opts,
                                        int *status);

/*
 * remo_session_serve: serves requests until the session ends, or for at
 * most timeout_ms (-1: until it ends).  Returns REMO_ETIMEDOUT when time
 * ran out, otherwise why the session ended: REMO_ECLOSED (closed here),
 * REMO_EPEERLOST, REMO_EPROTO, REMO_ENOMEM.
 */
REMO_API int remo_session_serve(remo_session *s, int timeout_ms);

/*
 * remo_session_close: ends the session in order: tells the peer (unless
 * a send is stuck on a peer that stopped reading: then closing the
 * channel is what frees it), fails every pending call with
 * REMO_ECLOSED, releases every reference the peer held.  Safe to call
 * more than once and from any thread.
 */
REMO_API void remo_session_close(remo_session *s);

/* remo_session_free: closes (if needed) and drops the caller's handle.
 * Proxies keep the session's memory until they are released. */
REMO_API void remo_session_free(remo_session *s);

/*
 * remo_secret_load: reads a secret for remo_session_opts.secret from
 * path into buf (cap bytes), *len its length; one trailing newline is
 * not part of it.  The file must be a regular file owned by this user
 * and readable by nobody else (mode 0600 or 0400), as ssh asks of a
 * private key.  REMO_EINVAL with PermissionError (group or others may
 * read it, or another user owns it), REMO_EINVAL with ValueError
 * (shorter than REMO_MIN_SECRET, or longer than cap), REMO_ENOTFOUND
 * (no such file), both in remo_last_error().
 */
REMO_API int remo_secret_load(const char *path, void *buf, size_t cap,
                              size_t *len);

/*
 * Who is calling: for the request the calling thread serves (a function
 * remo called for a peer asks it of its own caller).
 *
 *   authenticated  the session proved its shared secret (opts.secret)
 *   peer           what the transport knows of the peer, one line:
 *                  "unix uid=1000 gid=1000 pid=4242" (SO_PEERCRED),
 *                  "tcp 10.213.77.2:40312", "tls subject=CN=client,...
 *                  10.213.77.2:40312" (the certificate it proved); "" if
 *                  the channel says nothing
 *
 * remo_caller: fills *out.  REMO_ENOTFOUND when this thread serves no
 * request.
 */
typedef struct remo_caller_info {
	bool authenticated;
	char peer[512];
	remo_session *session; /* the caller's session (borrowed: valid
	                          while the call is served; retain it by
	                          keeping a proxy, or do not keep it) */
} remo_caller_info;
REMO_API int remo_caller(remo_caller_info *out);

/*
 * Cancellation and deadlines, seen from the callee.  A caller's timeout
 * travels with its request; a caller that times out or calls
 * remo_future_cancel tells the peer (a CANCEL message), and a session
 * that ends cancels every call it was serving.  A request cancelled
 * before it started never runs; the caller gets TimeoutError (or
 * REMO_ECANCELED) unless the reply had already left, in which case it
 * gets the reply: nothing is lost in between (doc/design.md,
 * "Cancellation").
 *
 * remo_cancelled: true if the request this thread serves was cancelled
 * (by its caller, or by the end of its session): a cheap check for a
 * long-running function, which may then stop (what it returns goes
 * nowhere).  False when serving nothing.
 * remo_deadline_ms: the ms the caller has left for the request this
 * thread serves (0 if past), or -1 for none or when serving nothing.
 */
REMO_API bool remo_cancelled(void);
REMO_API int64_t remo_deadline_ms(void);
/* How long a caller waits, after its timeout or remo_future_cancel, for
 * the peer to confirm the cancellation (or send the reply it had made). */
#define REMO_CANCEL_GRACE_MS 1000

/*
 * Deferred replies: a function can take its call and answer later, from
 * any thread, so that a blocking operation (a tuple space's in(), an
 * actor's receive) holds no thread while it waits.
 *
 * remo_defer: called by a function remo is serving for a peer; the
 * function then returns (what it returns is ignored) and the session
 * goes on serving others.  on_cancel (may be NULL) runs once, in some
 * remo thread, if the caller cancels or times out or its session ends
 * before the call is answered, and not before the function that
 * deferred returned: it should take d out of wherever the program keeps
 * it and answer it (an answer after cancellation sends nothing and
 * frees d).  NULL when this thread serves no request (REMO_EINVAL in
 * remo_last_error) or without memory.
 *
 * remo_deferred_reply / remo_deferred_fail: answer d with v (borrowed),
 * or with err (borrowed: an error value, see remo_error), exactly once;
 * both free d.  REMO_OK if the answer went; REMO_ECANCELED if the call
 * was cancelled first or REMO_ECLOSED / REMO_EPEERLOST if its session
 * ended: nothing was sent, and v is still the program's (put the item
 * back); else the send's failure.  A one-way request's answer goes
 * nowhere (REMO_OK).
 *
 * remo_deferred_deadline_ms: as remo_deadline_ms, for d.
 */
typedef struct remo_deferred remo_deferred;
typedef void remo_deferred_cancel_fn(remo_deferred *d, void *user);
REMO_API remo_deferred *remo_defer(remo_deferred_cancel_fn *on_cancel,
                                   void *user);
REMO_API int remo_deferred_reply(remo_deferred *d, remo_value v);
REMO_API int remo_deferred_fail(remo_deferred *d, remo_value err);
REMO_API int64_t remo_deferred_deadline_ms(const remo_deferred *d);

/* remo_session_status: REMO_OK while open, else why it ended. */
REMO_API int remo_session_status(const remo_session *s);

/* remo_lookup: a new proxy for what the peer exported as name.
 * REMO_EINVAL (name NULL), REMO_ENOMEM, or a request's failures
 * (section 9): an unknown name is REMO_ERAISED with NotFound. */
REMO_API int remo_lookup(remo_session *s, const char *name, remo_value *out);
/* remo_lookup_names: a new tuple of the names the peer exports that this
 * side may look up (remo_export_to's restrictions hold: a name kept
 * from us is not listed), in the order they were exported.  REMO_EINVAL
 * (s NULL), or a request's failures; a peer older than this call
 * answers TypeError. */
REMO_API int remo_lookup_names(remo_session *s, remo_value *out);

/* ======================================================================
 * 9. Operations
 * ======================================================================
 *
 * Each works on local values and on proxies alike; on a proxy it is one
 * round trip (or none, where the shape answers).  Each returns REMO_OK or
 * a status; on failure *out (if any) is nil and remo_last_error() holds an
 * error value: the remote error by name for REMO_ERAISED, PeerLost for
 * REMO_EPEERLOST, TimeoutError for REMO_ETIMEDOUT, and so on.  Arguments
 * are borrowed; results are new.
 *
 * The codes, for every function of this section (and of section 11):
 *
 *   REMO_ERAISED   the operation raised: TypeError, AttributeError,
 *                  KeyError, IndexError, OverflowError..., here or in
 *                  the peer (its error, by name), or RecursionError
 *   REMO_EINVAL    a NULL name, or a REMO_INVALID value to store; on a
 *                  proxy, a bare reference (remo_unpack's) as argument
 *   REMO_ENOMEM
 *   and on a proxy, what a request can meet:
 *   REMO_ECLOSED, REMO_EPEERLOST, REMO_EPROTO   the session ended (why)
 *   REMO_ETIMEDOUT  the call's timeout passed (remo_call_with)
 *   REMO_ETOOBIG, REMO_ELIMIT, REMO_EDEPTH, REMO_EWIRE_UTF8
 *                  an argument that cannot be sent (too big, past the
 *                  peer's max_refs, too deep, not UTF-8)
 *   REMO_EWIRE_*   a reply that does not decode
 *
 * Transfer: immutable values are copied; lists, dicts and objects cross as
 * references (proxies); a proxy that comes home arrives as the original.
 */
REMO_API int remo_getattr(remo_value obj, const char *name, remo_value *out);
REMO_API int remo_setattr(remo_value obj, const char *name, remo_value val);
/* remo_call: calls fn with args, a tuple (or nil for none). */
REMO_API int remo_call(remo_value fn, remo_value args, remo_value *out);
REMO_API int remo_call_method(remo_value obj, const char *name,
                              remo_value args, remo_value *out);

/*
 * Per-call options.  timeout_ms: 0 uses the session's timeout_ms, -1
 * waits for ever, more than 0 fails this call with REMO_ETIMEDOUT
 * (TimeoutError) after that long.  The timeout travels with the request
 * (remo_deadline_ms), and when it passes the peer is told (remo_cancelled,
 * a deferred call's cancel hook); if the reply had already left, the
 * call returns it, up to REMO_CANCEL_GRACE_MS late, rather than lose
 * it.  There is no hidden short default.
 */
typedef struct remo_call_opts {
	int timeout_ms;
} remo_call_opts;
REMO_API int remo_call_with(remo_value fn, remo_value args,
                            const remo_call_opts *opts, remo_value *out);
REMO_API int remo_call_method_with(remo_value obj, const char *name,
                                   remo_value args,
                                   const remo_call_opts *opts,
                                   remo_value *out);
REMO_API int remo_len(remo_value v, size_t *out);
REMO_API int remo_getitem(remo_value v, remo_value key, remo_value *out);
REMO_API int remo_setitem(remo_value v, remo_value key, remo_value val);
REMO_API int remo_contains(remo_value v, remo_value key, bool *out);
/* remo_delitem: removes item key (a list index, negative from the end,
 * or a dict key) of a list or dict, local or remote, or of an object
 * whose type has a __delitem__ slot.  IndexError, KeyError, TypeError. */
REMO_API int remo_delitem(remo_value v, remo_value key);
/*
 * Container slots: a registered type can act as a container by having
 * methods named __len__ ("N()"), __getitem__ ("r(key:r)"), __setitem__
 * ("v(key:r value:r)"), __delitem__ ("v(key:r)") and __contains__
 * ("?(key:r)"): remo_len, remo_getitem, remo_setitem, remo_delitem and
 * remo_contains call them on a local object, and on a proxy (its shape
 * carries them) send the same one request as for a remote list.  List
 * methods (append...) are ordinary methods of such a type.
 */

/*
 * remo_force: a local copy of a list or dict, local or remote: a remote
 * one is fetched in chunks of at most REMO_FORCE_CHUNK items.  Elements
 * that are themselves lists, dicts or objects stay references.
 */
#define REMO_FORCE_CHUNK 4096
#define REMO_MAX_FORCE (1u << 24) /* items: past it, LimitError */
REMO_API int remo_force(remo_value v, remo_value *out);

/* Iteration over a list or dict (its keys), local or remote (fetched in
 * chunks).  remo_iter_init: REMO_ERAISED (TypeError) for anything else.
 * remo_iter_next gives a new item and true, or false at the end or on
 * failure: then it->status says which (REMO_OK at the end). */
typedef struct remo_iter {
	remo_value src;    /* retained */
	remo_value chunk;  /* the current local chunk */
	size_t pos, base;
	bool done;
	int status;
} remo_iter;
REMO_API int remo_iter_init(remo_iter *it, remo_value v);
REMO_API bool remo_iter_next(remo_iter *it, remo_value *item);
REMO_API void remo_iter_free(remo_iter *it);

/* From the shape: no round trip. */
/* remo_type_name: "int", "list", "Calc"...; static or shape-owned. */
REMO_API const char *remo_type_name(remo_value v);
/* remo_isinstance: v's type is type_name or derives from it. */
REMO_API bool remo_isinstance(remo_value v, const char *type_name);
/* remo_dir: a new tuple of the member names (fields, then methods).
 * REMO_ENOMEM. */
REMO_API int remo_dir(remo_value v, remo_value *out);
/* remo_signature: a callable's signature string (borrowed), or NULL. */
REMO_API const char *remo_signature(remo_value fn);
/* remo_is_proxy: true if v stands for an object in a peer. */
REMO_API bool remo_is_proxy(remo_value v);
/*
 * remo_describe: what v is, from its shape (no round trip), as a new
 * dict.  An object (or a proxy of one): {"kind": "object", "type": name,
 * "bases": (names of its base types, nearest first), "doc": str, "fields":
 * ((name, code, readonly), ...), "methods": ((name, signature, doc),
 * ...)}, the base types' members included after its own.  A callable:
 * {"kind": "function", "name", "signature", "doc"}.  Anything else:
 * {"kind": remo_kind_name(kind), "proxy": bool}.  REMO_ENOMEM.
 */
REMO_API int remo_describe(remo_value v, remo_value *out);

/* ======================================================================
 * 10. C function pointers
 * ======================================================================
 *
 * A callable -- a proxy of a peer's function or method, or a local one --
 * as a real C function pointer (a libffi closure): pass it to qsort, a
 * plugin API, pthread_create.  Each call converts the C arguments by the
 * signature, calls (one round trip for a proxy) and converts the result.
 * Signatures are those of section 7, plus "&X" for an argument that is a
 * pointer to a number X, read through (qsort's comparator: "i(&q &q)").
 *
 * Errors: C callers have no error channel, so a failed call returns zero
 * (0, 0.0, NULL) and sets this thread's remo_closure_status() (REMO_OK
 * after a call that worked) and remo_last_error(), like errno.  A str or
 * bytes result stays valid until the same thread's next closure call that
 * returns one.  The pointer is valid until remo_closure_free; any thread
 * may call it, as any thread may use a session.
 */
typedef struct remo_closure remo_closure;

/* remo_closure_new: fn is retained.  NULL on failure, with *status (if
 * not NULL): REMO_EINVAL (not a callable), REMO_ESIGNATURE,
 * REMO_ENOTFOUND (unknown <T>), REMO_ENOMEM; no error value is set. */
REMO_API remo_closure *remo_closure_new(remo_value fn, const char *sig,
                                        int *status);
/* remo_closure_fn: the function pointer; cast it to its C type. */
REMO_API void (*remo_closure_fn(const remo_closure *c))(void);
REMO_API void remo_closure_free(remo_closure *c);
/* remo_closure_status: the status of this thread's last closure call. */
REMO_API int remo_closure_status(void);

/*
 * Ops structs: a struct of function pointers described once, in order,
 * filled from an object's methods so that a host calls a plugin in
 * another process through its usual table.  remo_ops_fill sets table[i]
 * to a closure calling obj's method slots[i].name with slots[i].sig, for
 * i < n; the handle owns the closures (remo_ops_free).  NULL on failure,
 * with *status (if not NULL): a missing method is REMO_ERAISED with
 * AttributeError, answered from the shape (TypeError if the member is
 * not a method); remo_getattr's and remo_closure_new's codes otherwise.
 */
typedef struct remo_ops_slot {
	const char *name;
	const char *sig;
} remo_ops_slot;
typedef struct remo_ops remo_ops;
REMO_API remo_ops *remo_ops_fill(remo_value obj, const remo_ops_slot *slots,
                                 size_t n, void (**table)(void), int *status);
REMO_API void remo_ops_free(remo_ops *ops);

/* ======================================================================
 * 11. Call styles: async calls, promise pipelining, one-way, batches
 * ======================================================================
 *
 * A plain call (section 9) waits for its reply.  These start a call and
 * return at once.  All of them work on proxies.  On a local object the
 * call runs now: its result or its error (even a TypeError for a value
 * that is not callable) settles the future, and a one-way call's error
 * is dropped, as a remote one's would be.
 *
 * Futures.  remo_call_async starts a call and gives a future.  If it
 * fails (a bad argument, a signature check, a closed session) it returns
 * the status, *out is NULL, and no callback ever fires.  A started call
 * settles exactly once: with a value (REMO_OK), an error (REMO_ERAISED),
 * or why it could not finish (REMO_EPEERLOST, REMO_ECLOSED, REMO_EPROTO or
 * REMO_ENOMEM: the session ended so; REMO_ECANCELED, REMO_ETIMEDOUT; a
 * reply that did not decode: REMO_EWIRE_*, REMO_ENOMEM; a batch's send
 * failure: its status).  Starting one (remo_call_async, _oneway,
 * remo_batch_call, remo_batch_send) fails with the codes of section 9,
 * and REMO_EINVAL (a NULL name, batch or future pointer), REMO_ERAISED
 * with ValueError or LimitError for what a batch cannot hold.  Replies
 * reach a future when some thread reads the
 * session: one waiting in remo_future_wait or a call, a remo_session_serve
 * thread, remo_future_poll, or the lease thread (every 20 ms).  Requests
 * the peer makes while serving an async call (callbacks) are served by a
 * thread waiting in remo_future_wait or a call, by remo_future_poll (what
 * has arrived), or by a remo_session_serve thread; the lease thread reads
 * but serves nothing.  A deadline is noticed by a wait or a poll (or the
 * wait for room below) and, on a session with a lease (remo_connect,
 * servers), by the lease thread within 20 ms, which then runs the
 * callback.  At most REMO_MAX_INFLIGHT async
 * calls are in flight per session; starting one more first waits for the
 * oldest that went (until its deadline, if it has one).
 *
 * Pipelining.  remo_future_promise gives a value that stands for the
 * call's result before it arrives.  Used as the target of any operation
 * of section 9 or 11 (a call, a method call, getattr, getitem...), the
 * request names the earlier request and the peer resolves it, so a chain
 * of N dependent calls costs one round trip.  If the earlier call failed,
 * the pipelined one fails with the same error.  A promise can only be a
 * target, not an argument.  The peer keeps each async result until the
 * future and its promises are all freed, at most REMO_MAX_KEPT per
 * session; past that a promise is waited for instead (still correct,
 * one more round trip).  Cancelling a call does not cancel its promises:
 * a pipelined call still runs on the peer's real result.
 *
 * One-way calls send no reply: no result, no error, no confirmation that
 * the call ran, or even arrived if the session dies.  Every
 * REMO_ONEWAY_WINDOW-th one-way call waits for the peer to catch up, so
 * a caller cannot flood the peer's queue (4096 requests).
 *
 * Batches collect calls and send them in one message (at most
 * REMO_MAX_BATCH, all to one session); each call may have a future, or
 * none (then it is one-way).  Replies come one per call.
 */
/* 256: measured over unix://, 512 calls in flight could fill both
 * sockets' buffers, each side blocked sending and neither reading. */
#define REMO_MAX_INFLIGHT 256
#define REMO_MAX_KEPT 65536
#define REMO_ONEWAY_WINDOW 1024
/* How long that wait lasts when the session has no timeout_ms: past it,
 * the one-way call is not sent and fails with TimeoutError. */
#define REMO_ONEWAY_WAIT_MS 30000
#define REMO_MAX_BATCH 1024

typedef struct remo_future remo_future;
/* A completion callback: runs once, in the thread that settled the
 * future (usually the one that read its reply), so it must not block. */
typedef void remo_future_fn(remo_future *f, void *user);

/* opts->timeout_ms > 0 gives the call a deadline: a wait that reaches it
 * settles the future with REMO_ETIMEDOUT (the late reply is dropped).
 * NULL or 0: no deadline. */
REMO_API int remo_call_async(remo_value fn, remo_value args,
                             const remo_call_opts *opts, remo_future **out);
REMO_API int remo_call_method_async(remo_value obj, const char *name,
                                    remo_value args,
                                    const remo_call_opts *opts,
                                    remo_future **out);
/*
 * remo_future_wait: waits up to timeout_ms (-1: for ever, 0: not at all)
 * for f to settle, serving callbacks meanwhile.  Then returns its status
 * and (REMO_OK) a new reference to its value in *out (if out is not
 * NULL); REMO_ERAISED puts the error in remo_last_error().  REMO_ETIMEDOUT
 * with f still pending if the wait timed out (not the call's deadline:
 * then f settles with REMO_ETIMEDOUT and later waits return it too).  A
 * call of a batch not sent yet: REMO_ERAISED (ValueError) at once.
 * REMO_EINVAL for f NULL.  May be called again, from any thread.
 */
REMO_API int remo_future_wait(remo_future *f, int timeout_ms,
                              remo_value *out);
/* remo_future_poll: reads what has arrived and serves the callbacks
 * among it, without waiting for more; true if f has settled. */
REMO_API bool remo_future_poll(remo_future *f);
/* remo_future_then: fn(f, user) when f settles; at once, in this
 * thread, if it has.  One callback per future: REMO_EEXIST for a second;
 * REMO_EINVAL for f or fn NULL. */
REMO_API int remo_future_then(remo_future *f, remo_future_fn *fn,
                              void *user);
/*
 * remo_future_cancel: tells the peer the call is no longer wanted (a
 * call not started there does not run; a running one sees
 * remo_cancelled(); a deferred one's cancel hook runs) and waits up to
 * REMO_CANCEL_GRACE_MS for the peer to confirm, serving meanwhile (a
 * deferred call's cancel hook has run at the peer before it confirms,
 * unless the function that deferred was still running).  Then
 * f has settled, its callback has run: REMO_OK, f settled with
 * REMO_ECANCELED; REMO_EINVAL (remo_last_error untouched) if the call
 * finished first (its result, which had already left the peer, is f's:
 * nothing is lost), or if f is not a started remote call that is still
 * pending: settled, run locally, or of a batch not sent.
 */
REMO_API int remo_future_cancel(remo_future *f);
/* remo_future_promise: a new value standing for f's result (above);
 * REMO_INVALID for f NULL or without memory. */
REMO_API remo_value remo_future_promise(remo_future *f);
/* remo_future_free: drops the caller's handle; a pending call goes on
 * (its callback still runs) and its reply is dropped. */
REMO_API void remo_future_free(remo_future *f);

REMO_API int remo_call_oneway(remo_value fn, remo_value args);
REMO_API int remo_call_method_oneway(remo_value obj, const char *name,
                                     remo_value args);

typedef struct remo_batch remo_batch;
/* remo_batch_new: an empty batch; NULL without memory. */
REMO_API remo_batch *remo_batch_new(void);
/* Adds a call; out NULL makes it one-way.  Checked now (signature, the
 * session open and the same for every call), sent by remo_batch_send.
 * A promise target must stand for a remote value (ValueError if its
 * call ran here).  The future's callback can be set now and runs only if
 * the batch is sent. */
REMO_API int remo_batch_call(remo_batch *b, remo_value fn, remo_value args,
                             remo_future **out);
REMO_API int remo_batch_call_method(remo_batch *b, remo_value obj,
                                    const char *name, remo_value args,
                                    remo_future **out);
/* remo_batch_send: sends the calls added since the last send, in one
 * message.  On failure the batch's futures settle with the status. */
REMO_API int remo_batch_send(remo_batch *b);
/* remo_batch_free: calls not sent are dropped (their futures settle with
 * REMO_ECANCELED). */
REMO_API void remo_batch_free(remo_batch *b);

/* ======================================================================
 * 12. Connecting and serving
 * ======================================================================
 *
 * Sessions over a transport, named by URL.  A client connects; a server
 * listens on one or more addresses and serves every session until
 * remo_server_stop: one event loop reads them all, a pool of threads
 * serves their calls (doc/design.md, "Servers").  A client that vanishes
 * ends only its own session; its references are released.  remo_connect(3)
 * is the manual page.
 * Writing a transport of one's own is remo/transport.h's subject.
 */

/*
 * remo_channel_connect: a channel connected to url, through the transport
 * its scheme names (remo/transport.h: unix://, tcp://, exec://, nn+...).
 * The channel owns the connection; give it to remo_session_new.
 * REMO_ENOTFOUND, REMO_EINVAL, REMO_EEXIST or REMO_ELIMIT (no usable
 * transport for the scheme: remo_transport_find's), or the transport's
 * own: REMO_EINVAL (a malformed URL, a program exec:// cannot run),
 * REMO_EPEERLOST (refused, unreachable), REMO_ETIMEDOUT, REMO_ENOMEM;
 * the reason is in remo_last_error().
 */
REMO_API int remo_channel_connect(const char *url, int timeout_ms,
                                  remo_channel *out);

/*
 * remo_connect: remo_channel_connect then remo_session_new: a session
 * with the peer at url.  exports may be NULL.  The codes of both.
 */
REMO_API int remo_connect(const char *url, int timeout_ms,
                          remo_exports *exports,
                          const remo_session_opts *opts,
                          remo_session **out);

/* ---- servers ------------------------------------------------------------ */

typedef struct remo_server remo_server;

/*
 * Sessions one server serves at once; more are accepted, told so
 * (LimitError) and closed.  An idle session over unix://, tcp:// or
 * tls:// holds no thread, about 7 KiB, and one descriptor: the process's
 * descriptor limit (ulimit -n, often 1024 soft) is the other bound, and
 * a program that wants more raises it (setrlimit RLIMIT_NOFILE).
 * nanomsg sessions hold a thread each.
 */
#define REMO_DEFAULT_MAX_SESSIONS 16384

typedef struct remo_server_opts {
	remo_session_opts session;  /* for every session (its secret too) */
	unsigned max_sessions;      /* 0: REMO_DEFAULT_MAX_SESSIONS       */
	unsigned max_per_address;   /* sessions from one peer at once: a
	                               tcp:// or tls:// peer by its IP
	                               address, a unix:// one by its uid;
	                               more are told LimitError and closed,
	                               as by a full server.  0: no bound
	                               but max_sessions                   */
	bool open;                  /* serve anyone on an address other
	                               machines reach: without it (and
	                               without a secret), listening there
	                               is refused (remo_server_listen)   */
} remo_server_opts;

/*
 * remo_server_new: a server of exports (may be NULL; must outlive the
 * server) with opts (may be NULL: the defaults).  NULL on failure, with
 * *status REMO_ENOMEM (if status is not NULL).
 */
REMO_API remo_server *remo_server_new(remo_exports *exports,
                                      const remo_server_opts *opts,
                                      int *status);
/*
 * remo_server_listen: adds an address to listen on, before
 * remo_server_run.  bound (may be NULL) gets the address really bound,
 * in URL form (the port chosen for tcp://...:0), in boundlen bytes at
 * most.  Default deny: an address other machines can reach (tcp://,
 * nn+tcp:// or tls:// on every interface, or on a host that is not
 * loopback) is REMO_EINVAL with PermissionError unless the sessions have
 * a secret or opts.open is true.  REMO_ENOTFOUND or REMO_EINVAL (no
 * transport for the scheme, or one that cannot listen), REMO_ELIMIT
 * (past 16 addresses, or
 * called after run), REMO_ENOMEM, or the transport's listen errors:
 * REMO_EINVAL (malformed, not permitted), REMO_EEXIST (in use).
 */
REMO_API int remo_server_listen(remo_server *srv, const char *url,
                                char *bound, size_t boundlen);
/* remo_server_run: serves until remo_server_stop; returns REMO_OK. */
REMO_API int remo_server_run(remo_server *srv);
/*
 * remo_server_stop: makes remo_server_run return after closing every
 * listener and session.  Async-signal-safe, so a SIGINT or SIGTERM
 * handler may call it, in any thread, until remo_server_free is called
 * (which waits for a stop already in progress to finish its write).
 */
REMO_API void remo_server_stop(remo_server *srv);
/* remo_server_sessions: sessions being served now. */
REMO_API unsigned remo_server_sessions(remo_server *srv);
/* remo_server_free: if remo_server_run is running in another thread,
 * stops it and waits for it to return first; that thread must not use
 * srv after remo_server_run returns.  (Freeing a server whose run has
 * not started yet is the caller's race, as with any object.) */
REMO_API void remo_server_free(remo_server *srv);

#ifdef __cplusplus
}
#endif
#endif /* REMO_REMO_H */
