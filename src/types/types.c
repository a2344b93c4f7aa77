/*
 * types.c -- registered types, local objects and functions, and the
 * questions a value's shape answers without a round trip: type name,
 * isinstance, dir, signature.
 *
 * Types live for the whole process (a registry of names, like error
 * names), so a shape id handed to a peer never dangles.  Each type and
 * each function gets a shape id from one process-wide counter; a session
 * sends a shape to its peer the first time it sends a reference of it.
 */
#include "types/types.h"

#include <pthread.h>
#include <stdio.h>

static pthread_mutex_t types_lock = PTHREAD_MUTEX_INITIALIZER;
static struct remo__map types_by_hash; /* name hash -> remo_type */
static atomic_uint types_next_shape = 16;

const remo_type remo__type_list = {.name = "list",
                                   .shape_id = REMO__SHAPE_LIST};
const remo_type remo__type_dict = {.name = "dict",
                                   .shape_id = REMO__SHAPE_DICT};

uint32_t remo__next_shape_id(void)
{
	return atomic_fetch_add(&types_next_shape, 1);
}

static char *types_strdup(const char *s)
{
	if (s == NULL)
		return NULL;
	size_t n = strlen(s);
	char *d = remo__malloc(n + 1);
	if (d != NULL)
		memcpy(d, s, n + 1);
	return d;
}

static uint64_t types_key(const char *name)
{
	return remo__siphash(name, strlen(name));
}

const remo_type *remo_type_find(const char *name)
{
	if (name == NULL)
		return NULL;
	if (strcmp(name, "list") == 0)
		return &remo__type_list;
	if (strcmp(name, "dict") == 0)
		return &remo__type_dict;
	pthread_mutex_lock(&types_lock);
	const remo_type *t = remo__map_get(&types_by_hash, types_key(name));
	if (t != NULL && strcmp(t->name, name) != 0)
		t = NULL; /* a 64-bit hash collision: treat as absent */
	pthread_mutex_unlock(&types_lock);
	return t;
}

remo_type *remo_type_new(const char *name, const remo_type *base,
                         const char *doc, int *status)
{
	int rc = REMO_OK;
	remo_type *t = NULL;
	if (name == NULL || !remo__errname_valid(name, strlen(name))) {
		rc = REMO_EINVAL;
		goto out;
	}
	if (remo_type_find(name) != NULL) {
		rc = REMO_EEXIST;
		goto out;
	}
	t = remo__malloc(sizeof *t);
	if (t == NULL) {
		rc = REMO_ENOMEM;
		goto out;
	}
	memset(t, 0, sizeof *t);
	t->name = types_strdup(name);
	t->doc = types_strdup(doc ? doc : "");
	t->base = base;
	t->shape_id = remo__next_shape_id();
	if (t->name == NULL || t->doc == NULL) {
		rc = REMO_ENOMEM;
	} else {
		pthread_mutex_lock(&types_lock);
		if (remo__map_get(&types_by_hash, types_key(name)) != NULL)
			rc = REMO_EEXIST; /* lost a race with the same name */
		else
			rc = remo__map_put(&types_by_hash, types_key(name), t);
		pthread_mutex_unlock(&types_lock);
	}
	if (rc != REMO_OK) {
		remo__free(t->name);
		remo__free(t->doc);
		remo__free(t);
		t = NULL;
	}
out:
	if (status != NULL)
		*status = rc;
	return t;
}

const struct remo__field *remo__type_field(const remo_type *t,
                                           const char *name)
{
	for (; t != NULL; t = t->base)
		for (size_t i = 0; i < t->nfields; i++)
			if (strcmp(t->fields[i].name, name) == 0)
				return &t->fields[i];
	return NULL;
}

const struct remo__func *remo__type_method(const remo_type *t,
                                           const char *name)
{
	for (; t != NULL; t = t->base)
		for (size_t i = 0; i < t->nmethods; i++)
			if (strcmp(t->methods[i].name, name) == 0)
				return &t->methods[i];
	return NULL;
}

static bool types_member_taken(const remo_type *t, const char *name)
{
	return remo__type_field(t, name) || remo__type_method(t, name);
}

int remo_type_field(remo_type *t, const char *name, const char *code,
                    size_t offset, unsigned flags)
{
	if (t == NULL || t->remote || name == NULL || code == NULL ||
	    !remo__errname_valid(name, strlen(name)))
		return REMO_EINVAL;
	if (types_member_taken(t, name))
		return REMO_EEXIST;
	/* A field's type is a one-parameter signature: parse "v(code)". */
	char text[300];
	if (strlen(code) > 256)
		return REMO_ESIGNATURE;
	snprintf(text, sizeof text, "v(%s)", code);
	struct remo__sig sig;
	int rc = remo__sig_parse(&sig, text, false, true);
	if (rc != REMO_OK)
		return rc;
	if (sig.nargs != 1 || sig.args[0].code == 'y' || sig.args[0].name ||
	    sig.args[0].deref) {
		remo__sig_free(&sig);
		return REMO_ESIGNATURE;
	}
	struct remo__field *f = remo__realloc(t->fields,
	                                      (t->nfields + 1) * sizeof *f);
	char *fname = types_strdup(name);
	if (f == NULL || fname == NULL) {
		if (f != NULL)
			t->fields = f;
		remo__free(fname);
		remo__sig_free(&sig);
		return REMO_ENOMEM;
	}
	t->fields = f;
	f = &t->fields[t->nfields++];
	f->name = fname;
	f->p = sig.args[0];
	f->offset = offset;
	f->flags = flags;
	if (f->p.code == 's' || f->p.code == '<')
		f->flags |= REMO_READONLY;
	/* the parameter now belongs to the field */
	sig.args[0] = (struct remo__param){0};
	remo__sig_free(&sig);
	return REMO_OK;
}

static int types_func_init(struct remo__func *f, const char *name,
                           const char *sig, void (*fn)(void),
                           const char *doc, bool method)
{
	memset(f, 0, sizeof *f);
	int rc = remo__sig_parse(&f->sig, sig, method, true);
	if (rc != REMO_OK)
		return rc;
	if (remo__sig_has_deref(&f->sig)) {
		/* "&X" describes what a caller's pointer points to: it is for
		 * closures (remo_closure_new), where C code passes pointers */
		remo__sig_free(&f->sig);
		return REMO_ESIGNATURE;
	}
	f->name = types_strdup(name);
	f->doc = types_strdup(doc ? doc : "");
	f->fn = fn;
	f->shape_id = remo__next_shape_id();
	if (f->name == NULL || f->doc == NULL) {
		remo__sig_free(&f->sig);
		remo__free(f->name);
		remo__free(f->doc);
		return REMO_ENOMEM;
	}
	return REMO_OK;
}

int remo_type_method(remo_type *t, const char *name, const char *sig,
                     void (*fn)(void), const char *doc)
{
	if (t == NULL || t->remote || name == NULL || fn == NULL ||
	    !remo__errname_valid(name, strlen(name)))
		return REMO_EINVAL;
	if (types_member_taken(t, name))
		return REMO_EEXIST;
	struct remo__func f;
	int rc = types_func_init(&f, name, sig, fn, doc, true);
	if (rc != REMO_OK)
		return rc;
	struct remo__func *m = remo__realloc(t->methods,
	                                     (t->nmethods + 1) * sizeof *m);
	if (m == NULL) {
		remo__sig_free(&f.sig);
		remo__free(f.name);
		remo__free(f.doc);
		return REMO_ENOMEM;
	}
	t->methods = m;
	t->methods[t->nmethods++] = f;
	return REMO_OK;
}

void remo__func_free(struct remo__func *f)
{
	if (f == NULL)
		return;
	remo__sig_free(&f->sig);
	remo__free(f->name);
	remo__free(f->doc);
}

/* ==== object and function values ====================================== */

remo_value remo_object(const remo_type *t, void *ptr, void (*dtor)(void *))
{
	if (t == NULL || ptr == NULL)
		return remo__invalid();
	remo_value v = remo__ref_alloc(REMO_OBJECT);
	if (remo_ok(v)) {
		struct remo__ref *r = REMO__REF(v);
		r->type = t;
		r->ptr = ptr;
		r->dtor = dtor;
		r->shape_id = t->shape_id;
	}
	return v;
}

bool remo__type_isa(const remo_type *t, const char *name)
{
	for (; t != NULL; t = t->base)
		if (strcmp(t->name, name) == 0)
			return true;
	return false;
}

void *remo_object_ptr(remo_value v, const remo_type *t)
{
	if (!remo__is_objlike(v.kind))
		return NULL;
	const struct remo__ref *r = REMO__REF(v);
	if (r->ptr == NULL || r->owner != NULL)
		return NULL;
	for (const remo_type *x = r->type; x != NULL; x = x->base)
		if (x == t)
			return r->ptr;
	return t == NULL ? r->ptr : NULL;
}

/* A function value's last reference frees the function it owns. */
static void types_func_gone(struct remo__ref *r)
{
	remo__func_free(r->own_func);
	remo__free(r->own_func);
	r->own_func = NULL;
}

static const struct remo__ref_ops types_func_ref_ops = {
	.gone = types_func_gone,
};

remo_value remo_function(const char *name, const char *sig,
                         void (*fn)(void), const char *doc)
{
	if (name == NULL || fn == NULL ||
	    !remo__errname_valid(name, strlen(name)))
		return remo__invalid();
	struct remo__func *f = remo__malloc(sizeof *f);
	if (f == NULL)
		return remo__invalid();
	if (types_func_init(f, name, sig, fn, doc, false) != REMO_OK) {
		remo__free(f);
		return remo__invalid();
	}
	remo_value v = remo__ref_alloc(REMO_CALLABLE);
	if (!remo_ok(v)) {
		remo__func_free(f);
		remo__free(f);
		return v;
	}
	REMO__REF(v)->ops = &types_func_ref_ops;
	REMO__REF(v)->func = f;
	REMO__REF(v)->own_func = f;
	REMO__REF(v)->shape_id = f->shape_id;
	return v;
}

/* ==== shape questions ================================================== */

const char *remo_type_name(remo_value v)
{
	switch (v.kind) {
	case REMO_OBJECT:
	case REMO_FRAME:
	case REMO_TRACEBACK: {
		const remo_type *t = REMO__REF(v)->type;
		return t ? t->name : remo_kind_name(v.kind);
	}
	case REMO_CALLABLE: {
		const struct remo__func *f = REMO__REF(v)->func;
		return REMO__REF(v)->self.kind != REMO_NIL ? "method"
		       : f ? "function" : "callable";
	}
	default:
		return remo_kind_name(v.kind);
	}
}

bool remo_isinstance(remo_value v, const char *type_name)
{
	if (type_name == NULL)
		return false;
	if (remo__is_objlike(v.kind))
		return remo__type_isa(REMO__REF(v)->type, type_name);
	return strcmp(remo_type_name(v), type_name) == 0;
}

int remo_dir(remo_value v, remo_value *out)
{
	*out = remo_nil();
	const remo_type *t = remo__is_objlike(v.kind) ? REMO__REF(v)->type
	                                              : NULL;
	remo_value l = remo_list();
	if (!remo_ok(l))
		return remo__fail(REMO_ENOMEM, "dir");
	int rc = REMO_OK;
	/* fields first, then methods, each from the type up to its bases */
	for (int pass = 0; pass < 2 && rc == REMO_OK; pass++)
		for (const remo_type *x = t; x != NULL && rc == REMO_OK; x = x->base) {
			size_t n = pass == 0 ? x->nfields : x->nmethods;
			for (size_t i = 0; i < n && rc == REMO_OK; i++)
				rc = remo_list_append(l, remo_str(
					pass == 0 ? x->fields[i].name
					          : x->methods[i].name));
		}
	if (rc != REMO_OK) {
		remo_value_release(l);
		return remo__fail(rc, "dir");
	}
	size_t n = remo_list_len(l);
	remo_value tup = remo_tuple(n);
	if (!remo_ok(tup)) {
		remo_value_release(l);
		return remo__fail(REMO_ENOMEM, "dir");
	}
	for (size_t i = 0; i < n; i++)
		remo_tuple_set(tup, i, remo_value_retain(remo_list_get(l, i)));
	remo_value_release(l);
	*out = tup;
	return REMO_OK;
}

static remo_value str_or_empty(const char *s)
{
	return remo_str(s != NULL ? s : "");
}

/* The members of t and its bases (fields: pass 0, methods: pass 1) as a
 * tuple of (name, code, readonly) or (name, signature, doc). */
static remo_value describe_members(const remo_type *t, int pass)
{
	size_t n = 0;
	for (const remo_type *x = t; x != NULL; x = x->base)
		n += pass == 0 ? x->nfields : x->nmethods;
	remo_value tup = remo_tuple(n);
	size_t k = 0;
	for (const remo_type *x = t; x != NULL && remo_ok(tup); x = x->base)
		for (size_t i = 0; i < (pass == 0 ? x->nfields : x->nmethods);
		     i++) {
			remo_value m;
			if (pass == 0) {
				const struct remo__field *f = &x->fields[i];
				char code[300];
				if (f->p.code == '<')
					snprintf(code, sizeof code, "<%s>",
					         f->p.type_name);
				else
					snprintf(code, sizeof code, "%c",
					         f->p.code);
				m = remo_tuple_of(3, remo_str(f->name),
				                  remo_str(code),
				                  remo_bool(f->flags &
				                            REMO_READONLY));
			} else {
				const struct remo__func *f = &x->methods[i];
				m = remo_tuple_of(3, remo_str(f->name),
				                  remo_str(f->sig.text),
				                  str_or_empty(f->doc));
			}
			if (remo_tuple_set(tup, k++, m) != REMO_OK) {
				remo_value_release(tup);
				return remo__invalid();
			}
		}
	return tup;
}

int remo_describe(remo_value v, remo_value *out)
{
	*out = remo_nil();
	remo_value d = remo_dict();
	int rc = remo_ok(d) ? REMO_OK : REMO_ENOMEM;
	const remo_type *t = remo__is_objlike(v.kind) ? REMO__REF(v)->type
	                                              : NULL;
	const struct remo__func *f = v.kind == REMO_CALLABLE
	                             ? REMO__REF(v)->func : NULL;
	if (rc == REMO_OK && t != NULL) {
		size_t nb = 0;
		for (const remo_type *x = t->base; x != NULL; x = x->base)
			nb++;
		remo_value bases = remo_tuple(nb);
		size_t i = 0;
		for (const remo_type *x = t->base; x != NULL && remo_ok(bases);
		     x = x->base)
			remo_tuple_set(bases, i++, remo_str(x->name));
		rc |= remo_dict_set_str(d, "kind", remo_str("object"));
		rc |= remo_dict_set_str(d, "type", remo_str(t->name));
		rc |= remo_dict_set_str(d, "bases", bases);
		rc |= remo_dict_set_str(d, "doc", str_or_empty(t->doc));
		rc |= remo_dict_set_str(d, "fields", describe_members(t, 0));
		rc |= remo_dict_set_str(d, "methods", describe_members(t, 1));
	} else if (rc == REMO_OK && f != NULL) {
		rc |= remo_dict_set_str(d, "kind", remo_str("function"));
		rc |= remo_dict_set_str(d, "name", remo_str(f->name));
		rc |= remo_dict_set_str(d, "signature", remo_str(f->sig.text));
		rc |= remo_dict_set_str(d, "doc", str_or_empty(f->doc));
	} else if (rc == REMO_OK) {
		rc |= remo_dict_set_str(d, "kind",
		                        remo_str(remo_kind_name(v.kind)));
		rc |= remo_dict_set_str(d, "proxy", remo_bool(remo_is_proxy(v)));
	}
	if (rc != REMO_OK) {
		remo_value_release(d);
		return remo__fail(REMO_ENOMEM, "describe");
	}
	*out = d;
	return REMO_OK;
}

const char *remo_signature(remo_value fn)
{
	if (fn.kind != REMO_CALLABLE || REMO__REF(fn)->func == NULL)
		return NULL;
	return REMO__REF(fn)->func->sig.text;
}

bool remo_is_proxy(remo_value v)
{
	if (v.kind == REMO_CALLABLE && REMO__REF(v)->self.kind != REMO_NIL)
		return remo_is_proxy(REMO__REF(v)->self);
	return remo__is_ref(v.kind) && REMO__REF(v)->owner != NULL;
}
