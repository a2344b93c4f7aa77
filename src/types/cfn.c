/*
 * cfn.c -- C function pointers made by libffi whose calls become calls
 * on values.
 *
 * libffi can make a function pointer whose calls land in a handler with
 * the arguments in hand (an ffi_closure).  The handler here converts the
 * C arguments to values by the signature, makes the call its maker gave
 * (api/closure.c: remo_call on a callable, one round trip if it is a
 * proxy) and converts the result back.  So qsort, a plugin API or
 * pthread_create can call a function in another process without knowing
 * it.  The conversions need the signature and libffi, which are this
 * layer's; what is called is the caller's business, so this layer never
 * calls up.
 *
 * A C caller has no error channel, so a failed call returns zero (0,
 * 0.0, NULL, nil) and leaves its status in a per-thread slot
 * (remo__cfn_status, public as remo_closure_status) and its error value
 * in remo_last_error(), in the manner of errno.  Pointer arguments C code
 * passes for numbers ("&q") are read through; the pointee must be valid
 * for the call.
 */
#include "types/cif.h"

#include <pthread.h>
#include <stdlib.h>

struct remo__cfn {
	remo__cfn_call *call;
	void *user;
	struct remo__sig sig;
	ffi_closure *closure;
	void *code;
};

static _Thread_local int cfn_last_status;
/*
 * A str or bytes result must outlive the call: each thread keeps its
 * last one, in a cell that a thread-exit destructor releases (a
 * _Thread_local value would leak one result per thread).
 */
static pthread_key_t last_key;
static pthread_once_t last_once = PTHREAD_ONCE_INIT;

static void last_free(void *p)
{
	remo_value *cell = p;
	remo_value_release(*cell);
	free(cell);
}

static void last_init(void)
{
	pthread_key_create(&last_key, last_free);
}

/* Keeps v (retained) as this thread's last result; false without
 * memory. */
static bool keep_last(remo_value v)
{
	pthread_once(&last_once, last_init);
	remo_value *cell = pthread_getspecific(last_key);
	if (cell == NULL) {
		/* plain calloc: freed by the destructor with plain free */
		if ((cell = calloc(1, sizeof *cell)) == NULL ||
		    pthread_setspecific(last_key, cell) != 0) {
			free(cell);
			return false;
		}
	}
	remo_value_release(*cell);
	*cell = remo_value_retain(v);
	return true;
}

int remo__cfn_status(void)
{
	return cfn_last_status;
}

/* One C argument (at a) to a new value, by its parameter. */
static remo_value cfn_arg(const struct remo__param *p, void *a,
                              void *len)
{
	if (p->deref)
		a = *(void **)a; /* the pointer C passed; read through it */
	if (a == NULL && p->deref)
		return remo_nil();
	switch (p->code) {
	case '?': return remo_bool(*(uint8_t *)a != 0);
	case 'b': return remo_int(*(int8_t *)a);
	case 'B': return remo_int(*(uint8_t *)a);
	case 'h': return remo_int(*(short *)a);
	case 'H': return remo_int(*(unsigned short *)a);
	case 'i': return remo_int(*(int *)a);
	case 'I': return remo_int(*(unsigned *)a);
	case 'l': return remo_int(*(long *)a);
	case 'q': case 'n': return remo_int(*(int64_t *)a);
	case 'L': case 'Q': case 'N': {
		uint64_t u = *(uint64_t *)a;
		return u > INT64_MAX ? remo__invalid() : remo_int((int64_t)u);
	}
	case 'f': return remo_double(*(float *)a);
	case 'd': return remo_double(*(double *)a);
	case 's': {
		const char *s = *(const char **)a;
		return s ? remo_str(s) : remo_nil();
	}
	case 'y': {
		const void *b = *(const void **)a;
		size_t n = *(size_t *)len;
		return b ? remo_bytes(b, n) : remo_nil();
	}
	case 'r':
		return remo_value_retain(*(remo_value *)a);
	case '<': {
		void *o = *(void **)a;
		return o ? remo_object(p->type, o, NULL) : remo_nil();
	}
	}
	return remo__invalid();
}

/* The result value into ret, by the signature; false if it does not fit. */
static bool cfn_result(const struct remo__cfn *c, remo_value v,
                           void *ret, void *ylen)
{
	const struct remo__param *p = &c->sig.ret;
	int64_t x = v.kind == REMO_INT ? v.as.i : 0;
	bool is_int = v.kind == REMO_INT;
	switch (p->code) {
	case 'v': return true;
	case '?':
		*(ffi_arg *)ret = v.kind == REMO_BOOL && v.as.b;
		return v.kind == REMO_BOOL;
#define INT_RESULT(lo, hi, signed_)                                         \
	if (!is_int || x < (lo) || x > (hi))                                \
		return false;                                               \
	if (signed_)                                                        \
		*(ffi_sarg *)ret = (ffi_sarg)x;                             \
	else                                                                \
		*(ffi_arg *)ret = (ffi_arg)x;                               \
	return true
	case 'b': INT_RESULT(INT8_MIN, INT8_MAX, 1);
	case 'B': INT_RESULT(0, UINT8_MAX, 0);
	case 'h': INT_RESULT(INT16_MIN, INT16_MAX, 1);
	case 'H': INT_RESULT(0, UINT16_MAX, 0);
	case 'i': INT_RESULT(INT32_MIN, INT32_MAX, 1);
	case 'I': INT_RESULT(0, (int64_t)UINT32_MAX, 0);
#undef INT_RESULT
	case 'l': case 'q': case 'n':
		if (!is_int)
			return false;
		*(int64_t *)ret = x;
		return true;
	case 'L': case 'Q': case 'N':
		if (!is_int || x < 0)
			return false;
		*(uint64_t *)ret = (uint64_t)x;
		return true;
	case 'f':
		if (v.kind != REMO_DOUBLE && !is_int)
			return false;
		*(float *)ret = (float)(is_int ? (double)x : v.as.d);
		return true;
	case 'd':
		if (v.kind != REMO_DOUBLE && !is_int)
			return false;
		*(double *)ret = is_int ? (double)x : v.as.d;
		return true;
	case 's':
		if (v.kind != REMO_STR && v.kind != REMO_NIL)
			return false;
		/* valid until this thread's next str-returning closure call */
		if (!keep_last(v))
			return false;
		*(const char **)ret = remo_str_data(v, NULL);
		return true;
	case 'y': {
		size_t n = 0;
		if (v.kind != REMO_BYTES && v.kind != REMO_NIL)
			return false;
		if (!keep_last(v))
			return false;
		*(const void **)ret = remo_bytes_data(v, &n);
		if (ylen != NULL)
			*(size_t *)ylen = n;
		return true;
	}
	case 'r':
		*(remo_value *)ret = remo_value_retain(v);
		return true;
	case '<':
		*(void **)ret = v.kind == REMO_NIL ? NULL
		                : remo_object_ptr(v, p->type);
		return v.kind == REMO_NIL || *(void **)ret != NULL;
	}
	return false;
}

static void cfn_zero(const struct remo__cfn *c, void *ret)
{
	size_t n = c->sig.ret.code == 'r' ? sizeof(remo_value)
	           : c->sig.cif->cif.rtype->size < sizeof(ffi_arg) ? sizeof(ffi_arg)
	           : c->sig.cif->cif.rtype->size;
	if (c->sig.ret.code != 'v')
		memset(ret, 0, n);
}

static void cfn_handler(ffi_cif *cif, void *ret, void **args, void *user)
{
	struct remo__cfn *c = user;
	(void)cif;
	cfn_zero(c, ret);
	remo_value tuple = remo_tuple(c->sig.nargs), out;
	int rc = remo_ok(tuple) ? REMO_OK : REMO_ENOMEM;
	unsigned k = 0;
	for (size_t i = 0; rc == REMO_OK && i < c->sig.nargs; i++) {
		const struct remo__param *p = &c->sig.args[i];
		void *len = p->code == 'y' ? args[k + 1] : NULL;
		remo_value v = cfn_arg(p, args[k], len);
		k += p->code == 'y' ? 2 : 1;
		if (!remo_ok(v)) {
			rc = remo__raisef("OverflowError", "argument %zu does not fit "
			                  "a remo int", i + 1);
			break;
		}
		remo_tuple_set(tuple, i, v);
	}
	void *ylen = c->sig.ret.code == 'y' ? *(void **)args[k] : NULL;
	if (rc == REMO_OK) {
		rc = c->call(c->user, tuple, &out);
		if (rc == REMO_OK && !cfn_result(c, out, ret, ylen)) {
			cfn_zero(c, ret);
			rc = remo__raisef("TypeError", "the callable returned %s, "
			                  "which does not fit '%c'",
			                  remo_type_name(out), c->sig.ret.code);
		}
		remo_value_release(out);
	} else if (rc == REMO_ENOMEM) {
		rc = remo__fail(rc, "closure");
	}
	remo_value_release(tuple);
	cfn_last_status = rc;
}

int remo__cfn_new(const char *sig, remo__cfn_call *call, void *user,
                  struct remo__cfn **out)
{
	*out = NULL;
	struct remo__cfn *c = remo__malloc(sizeof *c);
	if (c == NULL)
		return REMO_ENOMEM;
	memset(c, 0, sizeof *c);
	c->call = call;
	c->user = user;
	int rc = remo__sig_parse(&c->sig, sig, false, true);
	if (rc == REMO_OK &&
	    (c->closure = ffi_closure_alloc(sizeof(ffi_closure), &c->code)) ==
	    NULL)
		rc = REMO_ENOMEM;
	if (rc == REMO_OK &&
	    ffi_prep_closure_loc(c->closure, &c->sig.cif->cif, cfn_handler, c,
	                         c->code) != FFI_OK)
		rc = REMO_ESIGNATURE;
	if (rc != REMO_OK) {
		remo__cfn_free(c);
		return rc;
	}
	*out = c;
	return REMO_OK;
}

void (*remo__cfn_code(const struct remo__cfn *f))(void)
{
	return (void (*)(void))f->code;
}

void remo__cfn_free(struct remo__cfn *f)
{
	if (f == NULL)
		return;
	if (f->closure != NULL)
		ffi_closure_free(f->closure);
	remo__sig_free(&f->sig);
	remo__free(f);
}
