/*
 * types/types.h -- the types layer: registered types, signatures, libffi
 * calls of C functions and C function pointers made by libffi, object
 * and function values, the shape questions (type, dir, isinstance), the
 * shape codec and the debugging repr, which names references by their
 * type.  Above the codec (wire/).
 *
 * Files: types.c (types, objects, functions, shape questions), sig.c
 * (signatures, calling C through libffi), cfn.c (C function pointers
 * whose calls become value calls), shape.c, repr.c (remo_repr).  libffi
 * is this folder's alone: <ffi.h> is included by its private cif.h, so
 * no other layer sees it (tests/check_layers.sh checks).
 */
#ifndef REMO_TYPES_H
#define REMO_TYPES_H

#include "wire/wire.h"

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
	unsigned nc;          /* C-level parameters                     */
	struct remo__cif *cif; /* prepared for libffi (local functions and
	                          closures; cif.h), or NULL: a peer's */
};

/* A function: local (fn set) or a peer's function shape (fn NULL). */
struct remo__func {
	char *name;
	char *doc;
	uint32_t shape_id;
	uint32_t fwd_shape_id; /* a peer's function: the id this process
	                          gives its shape when it passes it on to
	                          a third (forwarding); else 0 */
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
	uint32_t fwd_shape_id; /* remote: as remo__func's */
	bool remote;
	size_t nfields, nmethods;
	struct remo__field *fields;
	struct remo__func *methods;
};

/*
 * The shape id a type or function goes out with: its own, or, for a
 * peer's (a proxy passed on to a third process), the id this process
 * numbered its copy of the shape with, since the peer's ids mean nothing
 * to the third (and could clash with ours).
 */
static inline uint32_t remo__type_out_id(const remo_type *t)
{
	return t->remote ? t->fwd_shape_id : t->shape_id;
}
static inline uint32_t remo__func_out_id(const struct remo__func *f)
{
	return f->fn == NULL ? f->fwd_shape_id : f->shape_id;
}

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

/* ---- C function pointers (cfn.c) --------------------------------------- */

/*
 * A C function pointer of signature sig whose calls, made by any C code,
 * become call(user, args, &out): the C arguments converted to a tuple of
 * values by the signature, out converted back to the C result.  A C
 * caller has no error channel: a failed call returns zero (0, 0.0, NULL,
 * nil) and leaves its status for remo__cfn_status() (per thread) and its
 * error in remo_last_error().
 */
typedef int remo__cfn_call(void *user, remo_value args, remo_value *out);
struct remo__cfn;
/* remo__cfn_new: *out a new function pointer.  REMO_ESIGNATURE,
 * REMO_ENOTFOUND (an unknown <T>), REMO_ENOMEM. */
int remo__cfn_new(const char *sig, remo__cfn_call *call, void *user,
                  struct remo__cfn **out);
/* remo__cfn_code: the pointer to call; cast it to its C type. */
void (*remo__cfn_code(const struct remo__cfn *f))(void);
void remo__cfn_free(struct remo__cfn *f);
/* remo__cfn_status: the status of this thread's last call through one. */
int remo__cfn_status(void);

/* ---- shapes (shape.c) ------------------------------------------------- */

/* A peer's shape: a type or a function (one of the two is set). */
struct remo__shape {
	remo_type *type;
	struct remo__func *func;
};

/* remo__shape_value: the shape of a registered type (is_type) or function
 * p, as a new value (REMO_INVALID without memory). */
remo_value remo__shape_value(const void *p, bool is_type);
/* remo__shape_base_fn: the peer's type of shape id, or NULL if the peer
 * has sent no type of that id. */
typedef const remo_type *remo__shape_base_fn(void *ctx, uint32_t id);
/* remo__shape_from_value: a peer's shape id from its value v (borrowed),
 * as a new remo__shape in *out; a type's base is looked up with base_of.
 * REMO_EPROTO if malformed, REMO_ENOMEM; on failure nothing is kept. */
int remo__shape_from_value(uint32_t id, remo_value v,
                           remo__shape_base_fn *base_of, void *ctx,
                           struct remo__shape **out);
/* remo__shape_free: frees sh and the type or function it holds. */
void remo__shape_free(struct remo__shape *sh);

#endif /* REMO_TYPES_H */
