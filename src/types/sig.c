/*
 * sig.c -- signature strings, and calling C functions through libffi.
 *
 * A signature ("d(x:d y:d)", remo.h section 7) is parsed once, when a
 * function or method is registered, into remo__sig: the parameters with
 * their names and, for a local function, a prepared ffi_cif.  A call then
 * only converts values: each argument is checked against its parameter
 * (TypeError naming it, OverflowError for an integer that does not fit)
 * before the C function runs, so a bad call never reaches C code.
 *
 * A peer's function shapes are parsed without resolving <T> names and
 * without a cif: on that side the signature serves only to check a call
 * before it is sent.
 */
#include "types/cif.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/types.h>

/* ==== parsing ========================================================== */

static bool sig_is_code(char c)
{
	return c != '\0' && strchr("v?bBhHiIlLqQnNfdsyr", c) != NULL;
}

static bool sig_ident_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '.';
}

static char *sig_strndup(const char *p, size_t n)
{
	char *s = remo__malloc(n + 1);
	if (s != NULL) {
		memcpy(s, p, n);
		s[n] = '\0';
	}
	return s;
}

static void sig_param_free(struct remo__param *p)
{
	remo__free(p->name);
	remo__free(p->type_name);
}

/* One type at *pp: a letter or <Name>.  Advances *pp. */
static int sig_type(const char **pp, struct remo__param *p, bool resolve)
{
	const char *s = *pp;
	if (*s == '<') {
		const char *e = s + 1;
		while (sig_ident_char(*e))
			e++;
		if (*e != '>' || e == s + 1)
			return REMO_ESIGNATURE;
		p->code = '<';
		p->type_name = sig_strndup(s + 1, (size_t)(e - s - 1));
		if (p->type_name == NULL)
			return REMO_ENOMEM;
		if (resolve && (p->type = remo_type_find(p->type_name)) == NULL)
			return REMO_ENOTFOUND;
		*pp = e + 1;
		return REMO_OK;
	}
	if (*s == '&') {
		/* a pointer to a number: read (or written) through it */
		if (s[1] == '\0' || strchr("?bBhHiIlLqQnNfd", s[1]) == NULL)
			return REMO_ESIGNATURE;
		p->deref = true;
		s++;
	}
	if (!sig_is_code(*s))
		return REMO_ESIGNATURE;
	p->code = *s;
	*pp = s + 1;
	return REMO_OK;
}

bool remo__sig_has_deref(const struct remo__sig *sig)
{
	for (size_t i = 0; i < sig->nargs; i++)
		if (sig->args[i].deref)
			return true;
	return false;
}

static ffi_type *sig_value_elems[] = {&ffi_type_sint32, &ffi_type_uint64,
                                      NULL};
/* remo_value by value: an int-sized kind, then an 8-byte union that the
 * x86-64 ABI classes as INTEGER (it holds an int64), so two eightbytes. */
static ffi_type sig_value_type = {0, 0, FFI_TYPE_STRUCT, sig_value_elems};

static ffi_type *sig_ffi(char code)
{
	switch (code) {
	case 'v': return &ffi_type_void;
	case '?': return &ffi_type_uint8;
	case 'b': return &ffi_type_sint8;
	case 'B': return &ffi_type_uint8;
	case 'h': return &ffi_type_sshort;
	case 'H': return &ffi_type_ushort;
	case 'i': return &ffi_type_sint;
	case 'I': return &ffi_type_uint;
	case 'l': return &ffi_type_slong;
	case 'L': return &ffi_type_ulong;
	case 'q': return &ffi_type_sint64;
	case 'Q': return &ffi_type_uint64;
	case 'n': return sizeof(ssize_t) == 8 ? &ffi_type_sint64 : &ffi_type_sint32;
	case 'N': return sizeof(size_t) == 8 ? &ffi_type_uint64 : &ffi_type_uint32;
	case 'f': return &ffi_type_float;
	case 'd': return &ffi_type_double;
	case 'r': return &sig_value_type;
	default: return &ffi_type_pointer; /* s y < */
	}
}

static int sig_prep(struct remo__sig *sig)
{
	unsigned nc = sig->method ? 1 : 0;
	for (size_t i = 0; i < sig->nargs; i++)
		nc += sig->args[i].code == 'y' ? 2 : 1;
	if (sig->ret.code == 'y')
		nc++;
	struct remo__cif *c = remo__malloc(sizeof *c +
	                                   (nc + 1) * sizeof c->ctypes[0]);
	if (c == NULL)
		return REMO_ENOMEM;
	unsigned k = 0;
	if (sig->method)
		c->ctypes[k++] = &ffi_type_pointer;
	for (size_t i = 0; i < sig->nargs; i++) {
		c->ctypes[k++] = sig->args[i].deref ? &ffi_type_pointer
		                                    : sig_ffi(sig->args[i].code);
		if (sig->args[i].code == 'y')
			c->ctypes[k++] = sig_ffi('N');
	}
	if (sig->ret.code == 'y')
		c->ctypes[k++] = &ffi_type_pointer;
	sig->nc = nc;
	sig->cif = c; /* freed with sig, prepared or not */
	if (ffi_prep_cif(&c->cif, FFI_DEFAULT_ABI, nc, sig_ffi(sig->ret.code),
	                 c->ctypes) != FFI_OK)
		return REMO_ESIGNATURE;
	return REMO_OK;
}

int remo__sig_parse(struct remo__sig *sig, const char *text, bool method,
                    bool resolve)
{
	memset(sig, 0, sizeof *sig);
	sig->method = method;
	if (text == NULL)
		return REMO_ESIGNATURE;
	int rc = REMO_ENOMEM;
	if ((sig->text = sig_strndup(text, strlen(text))) == NULL)
		goto fail;

	const char *p = text;
	while (*p == ' ')
		p++;
	if ((rc = sig_type(&p, &sig->ret, resolve)) != REMO_OK)
		goto fail;
	rc = REMO_ESIGNATURE;
	if (sig->ret.deref)
		goto fail; /* a result is a value, not a pointer to one */
	while (*p == ' ')
		p++;
	rc = REMO_ESIGNATURE;
	if (*p++ != '(')
		goto fail;
	for (;;) {
		while (*p == ' ' || *p == ',')
			p++;
		if (*p == ')')
			break;
		struct remo__param prm = {0};
		/* an optional name: identifier characters, then ':' */
		const char *e = p;
		while (sig_ident_char(*e))
			e++;
		if (e > p && *e == ':') {
			if ((prm.name = sig_strndup(p, (size_t)(e - p))) == NULL) {
				rc = REMO_ENOMEM;
				goto fail;
			}
			p = e + 1;
		}
		rc = sig_type(&p, &prm, resolve);
		if (rc == REMO_OK && prm.code == 'v')
			rc = REMO_ESIGNATURE; /* void is a result only */
		struct remo__param *args = rc == REMO_OK
			? remo__realloc(sig->args, (sig->nargs + 1) * sizeof *args)
			: NULL;
		if (args == NULL) {
			sig_param_free(&prm);
			rc = rc == REMO_OK ? REMO_ENOMEM : rc;
			goto fail;
		}
		sig->args = args;
		sig->args[sig->nargs++] = prm;
	}
	p++;
	while (*p == ' ')
		p++;
	rc = REMO_ESIGNATURE;
	if (*p != '\0' || sig->nargs > 64)
		goto fail;
	if (resolve && (rc = sig_prep(sig)) != REMO_OK)
		goto fail;
	return REMO_OK;
fail:
	remo__sig_free(sig);
	return rc;
}

void remo__sig_free(struct remo__sig *sig)
{
	sig_param_free(&sig->ret);
	for (size_t i = 0; i < sig->nargs; i++)
		sig_param_free(&sig->args[i]);
	remo__free(sig->args);
	remo__free(sig->cif);
	remo__free(sig->text);
	memset(sig, 0, sizeof *sig);
}

/* ==== checking and converting ========================================== */

static const char *sig_want(char code)
{
	switch (code) {
	case '?': return "bool";
	case 'f': case 'd': return "double";
	case 's': return "str";
	case 'y': return "bytes";
	case '<': return "object";
	case 'r': return "value";
	default: return "int";
	}
}

/* fname NULL: the parameter is a field, named p->name. */
static int sig_type_error(const char *fname, size_t i,
                          const struct remo__param *p, remo_value v)
{
	const char *want = p->code == '<' ? p->type_name : sig_want(p->code);
	if (fname == NULL)
		return remo__raisef("TypeError", "field '%s' must be %s, not %s",
		                    p->name, want, remo_type_name(v));
	if (p->name != NULL)
		return remo__raisef("TypeError",
		                    "%s() argument %zu '%s' must be %s, not %s",
		                    fname, i + 1, p->name, want,
		                    remo_type_name(v));
	return remo__raisef("TypeError", "%s() argument %zu must be %s, not %s",
	                    fname, i + 1, want, remo_type_name(v));
}

/* The kind check, shared by the local call and the proxy's pre-check. */
static bool sig_kind_fits(const struct remo__param *p, remo_value v)
{
	switch (p->code) {
	case '?':
		return v.kind == REMO_BOOL;
	case 'f': case 'd':
		return v.kind == REMO_DOUBLE || v.kind == REMO_INT;
	case 's':
		return v.kind == REMO_STR || v.kind == REMO_NIL;
	case 'y':
		return v.kind == REMO_BYTES;
	case '<':
		return v.kind == REMO_OBJECT || v.kind == REMO_NIL;
	case 'r':
		return true;
	default:
		return v.kind == REMO_INT;
	}
}

static size_t sig_nargs_given(remo_value args)
{
	return args.kind == REMO_TUPLE ? remo_tuple_len(args) : 0;
}

int remo__sig_check(const struct remo__sig *sig, const char *fname,
                    remo_value args)
{
	if (args.kind != REMO_TUPLE && args.kind != REMO_NIL)
		return remo__raisef("TypeError", "%s() arguments must be a tuple",
		                    fname);
	size_t n = sig_nargs_given(args);
	if (n != sig->nargs)
		return remo__raisef("TypeError",
		                    "%s() takes %zu argument%s (%zu given)", fname,
		                    sig->nargs, sig->nargs == 1 ? "" : "s", n);
	for (size_t i = 0; i < n; i++)
		if (!sig_kind_fits(&sig->args[i], remo_tuple_get(args, i)))
			return sig_type_error(fname, i, &sig->args[i],
			                      remo_tuple_get(args, i));
	return REMO_OK;
}

/* Storage for one C argument. */
union sig_slot {
	int8_t i8;
	uint8_t u8;
	short s;
	unsigned short us;
	int i;
	unsigned u;
	long l;
	unsigned long ul;
	int64_t q;
	uint64_t uq;
	float f;
	double d;
	const void *p;
	size_t z;
	remo_value v;
};

static int sig_overflow(const char *fname, size_t i, const struct remo__param *p)
{
	if (fname == NULL)
		return remo__raisef("OverflowError",
		                    "field '%s': value out of range for its C type",
		                    p->name);
	return remo__raisef("OverflowError",
	                    "%s() argument %zu%s%s%s out of range for its C type",
	                    fname, i + 1, p->name ? " '" : "",
	                    p->name ? p->name : "", p->name ? "'" : "");
}

/* Converts argument v into slot (and, for y, the length into *len). */
static int sig_arg(const char *fname, size_t i, const struct remo__param *p,
                   remo_value v, union sig_slot *slot, union sig_slot *len)
{
	if (!sig_kind_fits(p, v))
		return sig_type_error(fname, i, p, v);
	int64_t x = v.as.i;
	switch (p->code) {
#define RANGE(lo, hi)                                                       \
	if (x < (lo) || x > (hi))                                           \
		return sig_overflow(fname, i, p)
	case 'b': RANGE(INT8_MIN, INT8_MAX); slot->i8 = (int8_t)x; break;
	case 'B': RANGE(0, UINT8_MAX); slot->u8 = (uint8_t)x; break;
	case 'h': RANGE(SHRT_MIN, SHRT_MAX); slot->s = (short)x; break;
	case 'H': RANGE(0, USHRT_MAX); slot->us = (unsigned short)x; break;
	case 'i': RANGE(INT_MIN, INT_MAX); slot->i = (int)x; break;
	case 'I': RANGE(0, (int64_t)UINT_MAX); slot->u = (unsigned)x; break;
	case 'l': slot->l = (long)x; break;
	case 'L': RANGE(0, INT64_MAX); slot->ul = (unsigned long)x; break;
	case 'q': slot->q = x; break;
	case 'Q': RANGE(0, INT64_MAX); slot->uq = (uint64_t)x; break;
	case 'n': slot->q = x; break;
	case 'N': RANGE(0, INT64_MAX); slot->z = (size_t)x; break;
#undef RANGE
	case '?': slot->u8 = v.as.b; break;
	case 'f':
		slot->f = (float)(v.kind == REMO_INT ? (double)v.as.i : v.as.d);
		break;
	case 'd':
		slot->d = v.kind == REMO_INT ? (double)v.as.i : v.as.d;
		break;
	case 's':
		slot->p = v.kind == REMO_NIL ? NULL : remo_str_data(v, NULL);
		break;
	case 'y': {
		size_t n;
		slot->p = remo_bytes_data(v, &n);
		len->z = n;
		break;
	}
	case '<':
		if (v.kind == REMO_NIL) {
			slot->p = NULL;
		} else if ((slot->p = remo_object_ptr(v, p->type)) == NULL) {
			return remo__raisef("TypeError",
			                    "%s() argument %zu must be a local %s, "
			                    "not %s", fname, i + 1, p->type_name,
			                    remo_type_name(v));
		}
		break;
	case 'r':
		slot->v = v;
		break;
	}
	return REMO_OK;
}

static size_t sig_csize(char code)
{
	switch (code) {
	case '?': case 'b': case 'B': return 1;
	case 'h': case 'H': return sizeof(short);
	case 'i': case 'I': return sizeof(int);
	case 'l': case 'L': return sizeof(long);
	case 'q': case 'Q': return 8;
	case 'n': case 'N': return sizeof(size_t);
	case 'f': return sizeof(float);
	case 'd': return sizeof(double);
	case 'r': return sizeof(remo_value);
	default: return sizeof(void *);
	}
}

int remo__field_store(const struct remo__field *f, void *obj, remo_value v)
{
	union sig_slot slot, len;
	/* the field's parameter carries the field's name for messages */
	struct remo__param p = f->p;
	p.name = f->name;
	int rc = sig_arg(NULL, 0, &p, v, &slot, &len);
	if (rc != REMO_OK)
		return rc;
	char *dst = (char *)obj + f->offset;
	if (p.code == 'r') {
		remo_value old;
		memcpy(&old, dst, sizeof old);
		slot.v = remo_value_retain(v);
		memcpy(dst, &slot.v, sizeof slot.v);
		remo_value_release(old);
		return REMO_OK;
	}
	memcpy(dst, &slot, sig_csize(p.code));
	return REMO_OK;
}

/* The result in rv, converted to a new value. */
static int sig_result(const struct remo__func *f, void *rv, size_t ylen,
                      remo_value *out)
{
	const struct remo__param *p = &f->sig.ret;
	ffi_arg a = *(ffi_arg *)rv;
	ffi_sarg sa = *(ffi_sarg *)rv;
	switch (p->code) {
	case 'v': *out = remo_nil(); return REMO_OK;
	case '?': *out = remo_bool((uint8_t)a != 0); return REMO_OK;
	case 'b': *out = remo_int((int8_t)sa); return REMO_OK;
	case 'B': *out = remo_int((uint8_t)a); return REMO_OK;
	case 'h': *out = remo_int((short)sa); return REMO_OK;
	case 'H': *out = remo_int((unsigned short)a); return REMO_OK;
	case 'i': *out = remo_int((int)sa); return REMO_OK;
	case 'I': *out = remo_int((unsigned)a); return REMO_OK;
	case 'l': case 'q': case 'n':
		*out = remo_int(*(int64_t *)rv);
		return REMO_OK;
	case 'L': case 'Q': case 'N': {
		uint64_t u = *(uint64_t *)rv;
		if (u > INT64_MAX)
			return remo__raisef("OverflowError",
			                    "%s() returned %llu, above INT64_MAX",
			                    f->name, (unsigned long long)u);
		*out = remo_int((int64_t)u);
		return REMO_OK;
	}
	case 'f': *out = remo_double(*(float *)rv); return REMO_OK;
	case 'd': *out = remo_double(*(double *)rv); return REMO_OK;
	case 's': {
		const char *s = *(const char **)rv;
		*out = s ? remo_str(s) : remo_nil();
		break;
	}
	case 'y': {
		const void *b = *(const void **)rv;
		*out = b ? remo_bytes(b, ylen) : remo_nil();
		break;
	}
	case 'r':
		*out = *(remo_value *)rv;
		return REMO_OK;
	case '<': {
		void *obj = *(void **)rv;
		*out = obj ? remo_object(p->type, obj, NULL) : remo_nil();
		break;
	}
	}
	return remo_ok(*out) ? REMO_OK : remo__fail(REMO_ENOMEM, f->name);
}

int remo__func_call(const struct remo__func *f, void *self, remo_value args,
                    remo_value *out)
{
	const struct remo__sig *sig = &f->sig;
	union sig_slot slots[2 * 64 + 2];
	void *avalues[2 * 64 + 2];
	union {
		ffi_arg a;
		double d;
		remo_value v;
		uint64_t q[2];
	} rv;
	size_t ylen = 0;
	size_t *ylenp = &ylen;
	unsigned k = 0;
	int rc;

	*out = remo_nil();
	REMO__ASSERT(sig->cif != NULL && f->fn != NULL);
	if (args.kind != REMO_TUPLE && args.kind != REMO_NIL)
		return remo__raisef("TypeError", "%s() arguments must be a tuple",
		                    f->name);
	size_t n = sig_nargs_given(args);
	if (n != sig->nargs)
		return remo__raisef("TypeError",
		                    "%s() takes %zu argument%s (%zu given)",
		                    f->name, sig->nargs,
		                    sig->nargs == 1 ? "" : "s", n);
	if (sig->method) {
		slots[k].p = self;
		avalues[k] = &slots[k];
		k++;
	}
	for (size_t i = 0; i < n; i++) {
		union sig_slot *len = &slots[k + 1];
		rc = sig_arg(f->name, i, &sig->args[i], remo_tuple_get(args, i),
		             &slots[k], len);
		if (rc != REMO_OK)
			return rc;
		avalues[k] = &slots[k];
		k++;
		if (sig->args[i].code == 'y') {
			avalues[k] = &slots[k];
			k++;
		}
	}
	if (sig->ret.code == 'y') {
		slots[k].p = ylenp;
		avalues[k] = &slots[k];
		k++;
	}
	REMO__ASSERT(k == sig->nc);

	memset(&rv, 0, sizeof rv);
	remo__clear_pending();
	ffi_call(&sig->cif->cif, f->fn, &rv, avalues);

	remo_value raised = remo__take_raised_by_program();
	if (raised.kind != REMO_NIL) {
		if (sig->ret.code == 'r')
			remo_value_release(rv.v);
		return remo__raise(raised);
	}
	return sig_result(f, &rv, ylen, out);
}
