/*
 * ops.c -- the operations of remo.h section 9, on local values and on
 * proxies alike.
 *
 * One mechanism serves both sides of a call: on a proxy, an operation
 * becomes a request (remo__session_request); on the peer, the request is
 * served by calling the very same operation on the local value it names.
 * So the rules for a field, a method or an index live in one place.
 *
 * What the shape can answer is answered here without a round trip: a
 * method of a proxy becomes a bound method locally, a member the shape
 * does not have is AttributeError, and a call is checked against the
 * signature before it is sent.
 */
#include "api/api.h"

#include <stdio.h>

static bool ops_is_promise(remo_value v)
{
	return remo__is_ref(v.kind) && REMO__REF(v)->promise != NULL;
}

/* A proxy, or a promise: what an operation sends as a request. */
static bool ops_is_proxy(remo_value v)
{
	return remo__is_ref(v.kind) &&
	       (REMO__REF(v)->owner != NULL || REMO__REF(v)->promise != NULL);
}

/*
 * How the operation under way sends its request.  The public functions
 * of sections 9 and 11 are thin: each passes its style to the one
 * internal operation (ops_call, ops_call_method, ops_apply), so every
 * rule of an operation (shape checks, signatures) is the same in every
 * call style.  The mode is passed, never kept per thread: a C function
 * the call runs here, or a callback served while it waits, makes its own
 * calls through the public functions, in the plain style.  NULL: plain.
 */
enum { STYLE_CALL, STYLE_ASYNC, STYLE_ONEWAY, STYLE_BATCH };
struct call_mode {
	int style;
	int timeout_ms;          /* STYLE_CALL, STYLE_ASYNC              */
	bool sent;               /* ops_request made the request         */
	bool here;               /* a promise resolved to a local value:
	                            the operation ran here               */
	remo_future *fut;        /* STYLE_ASYNC, STYLE_BATCH: the future */
	remo_batch *batch;       /* STYLE_BATCH                          */
	bool want_future;        /* STYLE_BATCH: not one-way             */
};

struct remo_batch {
	remo_session *s;         /* retained, once the first call is added */
	struct remo__breq *items;
	size_t n, cap;
};

static int batch_add(struct call_mode *m, remo_session *s, int op,
                     remo_value target, remo_value a, remo_value b);

static int ops_apply(struct call_mode *m, int op, remo_value target,
                     remo_value a, remo_value b, remo_value *out);

static int ops_request(struct call_mode *m, remo_value target, int op,
                       remo_value a, remo_value b, remo_value *out)
{
	remo_value ignored;
	struct call_mode plain = {.style = STYLE_CALL};
	if (m == NULL)
		m = &plain;
	if (out == NULL)
		out = &ignored;
	*out = remo_nil();

	remo_session *s = REMO__REF(target)->owner;
	if (ops_is_promise(target) &&
	    (s = remo__promise_session(target, m->style == STYLE_BATCH)) ==
	    NULL) {
		/* Not pipelinable (its call ran here, or the peer did not
		 * keep its result): wait for the value, then apply the
		 * operation to it, in this call's style. */
		remo_value v;
		int rc = remo_future_wait(REMO__REF(target)->promise, -1, &v);
		if (rc != REMO_OK)
			return rc;
		rc = ops_apply(m, op, v, a, b, out);
		m->here = !m->sent;
		remo_value_release(v);
		return rc;
	}
	m->sent = true;
	switch (m->style) {
	case STYLE_ASYNC:
		return remo__session_start(s, op, target, a, b, 0,
		                           m->timeout_ms, &m->fut);
	case STYLE_ONEWAY:
		return remo__session_start(s, op, target, a, b,
		                           REMO__REQ_ONEWAY, 0, NULL);
	case STYLE_BATCH:
		return batch_add(m, s, op, target, a, b);
	default:
		return remo__session_request_timed(s, op, target, a, b,
		                                   m->timeout_ms, out);
	}
}

static int ops_no_attr(remo_value obj, const char *name)
{
	return remo__raisef("AttributeError", "'%s' object has no attribute '%s'",
	                    remo_type_name(obj), name);
}

/* ==== fields of local objects ========================================== */

static int field_read(const struct remo__field *f, const void *obj,
                      remo_value *out)
{
	const char *p = (const char *)obj + f->offset;
	int64_t x = 0;
	switch (f->p.code) {
	case 'b': x = *(const int8_t *)p; break;
	case 'B': x = *(const uint8_t *)p; break;
	case 'h': x = *(const short *)p; break;
	case 'H': x = *(const unsigned short *)p; break;
	case 'i': x = *(const int *)p; break;
	case 'I': x = *(const unsigned *)p; break;
	case 'l': x = *(const long *)p; break;
	case 'q': case 'n': x = *(const int64_t *)p; break;
	case 'L': case 'Q': case 'N': {
		uint64_t u = *(const uint64_t *)p;
		if (u > INT64_MAX)
			return remo__raisef("OverflowError",
			                    "field '%s' holds %llu, above INT64_MAX",
			                    f->name, (unsigned long long)u);
		x = (int64_t)u;
		break;
	}
	case '?': *out = remo_bool(*(const bool *)p); return REMO_OK;
	case 'f': *out = remo_double(*(const float *)p); return REMO_OK;
	case 'd': *out = remo_double(*(const double *)p); return REMO_OK;
	case 's': {
		const char *s = *(const char *const *)p;
		*out = s ? remo_str(s) : remo_nil();
		return remo_ok(*out) ? REMO_OK : remo__fail(REMO_ENOMEM, f->name);
	}
	case 'r':
		*out = remo_value_retain(*(const remo_value *)p);
		return REMO_OK;
	case '<': {
		void *o = *(void *const *)p;
		*out = o ? remo_object(f->p.type, o, NULL) : remo_nil();
		return remo_ok(*out) ? REMO_OK : remo__fail(REMO_ENOMEM, f->name);
	}
	}
	*out = remo_int(x);
	return REMO_OK;
}

/* ==== attributes ======================================================= */

static int ops_bound(remo_value obj, const struct remo__func *m,
                     remo_value *out)
{
	remo_value v = remo__ref_alloc(REMO_CALLABLE);
	if (!remo_ok(v))
		return remo__fail(REMO_ENOMEM, m->name);
	REMO__REF(v)->func = m;
	REMO__REF(v)->self = remo_value_retain(obj);
	*out = v;
	return REMO_OK;
}

int remo_getattr(remo_value obj, const char *name, remo_value *out)
{
	*out = remo_nil();
	if (name == NULL)
		return remo__fail(REMO_EINVAL, "getattr");
	if (!remo__is_objlike(obj.kind))
		return ops_no_attr(obj, name);
	const struct remo__ref *r = REMO__REF(obj);
	const struct remo__func *m = remo__type_method(r->type, name);
	if (m != NULL)
		return ops_bound(obj, m, out); /* no round trip, even remote */
	const struct remo__field *f = remo__type_field(r->type, name);
	if (ops_is_proxy(obj)) {
		if (f == NULL && r->type != NULL)
			return ops_no_attr(obj, name); /* the shape says so */
		remo_value n = remo_str(name);
		if (!remo_ok(n))
			return remo__fail(REMO_ENOMEM, "getattr");
		int rc = ops_request(NULL, obj, REMO__OP_GETATTR, n, remo_nil(),
		                     out);
		remo_value_release(n);
		return rc;
	}
	if (f == NULL || r->ptr == NULL)
		return ops_no_attr(obj, name);
	return field_read(f, r->ptr, out);
}

int remo_setattr(remo_value obj, const char *name, remo_value val)
{
	if (name == NULL || !remo_ok(val))
		return remo__fail(REMO_EINVAL, "setattr");
	if (!remo__is_objlike(obj.kind))
		return ops_no_attr(obj, name);
	const struct remo__ref *r = REMO__REF(obj);
	const struct remo__field *f = remo__type_field(r->type, name);
	if (f == NULL && (r->type != NULL || !ops_is_proxy(obj))) {
		if (remo__type_method(r->type, name) != NULL)
			return remo__raisef("AttributeError",
			                    "'%s' is a method of '%s', not a field",
			                    name, remo_type_name(obj));
		return ops_no_attr(obj, name);
	}
	if (f != NULL && (f->flags & REMO_READONLY))
		return remo__raisef("AttributeError",
		                    "field '%s' of '%s' is read-only", name,
		                    remo_type_name(obj));
	if (ops_is_proxy(obj)) {
		remo_value n = remo_str(name);
		if (!remo_ok(n))
			return remo__fail(REMO_ENOMEM, "setattr");
		int rc = ops_request(NULL, obj, REMO__OP_SETATTR, n, val, NULL);
		remo_value_release(n);
		return rc;
	}
	return remo__field_store(f, r->ptr, val);
}

/* ==== calls ============================================================ */

static int ops_call_method(struct call_mode *mode, remo_value obj,
                           const char *name, remo_value args,
                           remo_value *out);

/* remo_call in the style m (NULL: plain). */
static int ops_call(struct call_mode *m, remo_value fn, remo_value args,
                    remo_value *out)
{
	*out = remo_nil();
	if (ops_is_promise(fn))
		return ops_request(m, fn, REMO__OP_CALL, args, remo_nil(), out);
	if (fn.kind != REMO_CALLABLE)
		return remo__raisef("TypeError", "'%s' object is not callable",
		                    remo_type_name(fn));
	const struct remo__ref *r = REMO__REF(fn);
	if (r->self.kind != REMO_NIL)
		return ops_call_method(m, r->self, r->func->name, args, out);
	if (ops_is_proxy(fn)) {
		if (r->func != NULL &&
		    remo__sig_check(&r->func->sig, r->func->name, args) != REMO_OK)
			return REMO_ERAISED;
		return ops_request(m, fn, REMO__OP_CALL, args, remo_nil(), out);
	}
	if (r->func == NULL || r->func->fn == NULL)
		return remo__raisef("TypeError", "not a callable remo can call");
	return remo__func_call(r->func, NULL, args, out);
}

int remo_call(remo_value fn, remo_value args, remo_value *out)
{
	return ops_call(NULL, fn, args, out);
}

/* A call (name NULL) or method call in style m. */
static int ops_call_styled(struct call_mode *m, remo_value target,
                           const char *name, remo_value args,
                           remo_value *out)
{
	return name ? ops_call_method(m, target, name, args, out)
	            : ops_call(m, target, args, out);
}

int remo_call_with(remo_value fn, remo_value args, const remo_call_opts *o,
                   remo_value *out)
{
	struct call_mode m = {.style = STYLE_CALL,
	                      .timeout_ms = o ? o->timeout_ms : 0};
	return ops_call_styled(&m, fn, NULL, args, out);
}

int remo_call_method_with(remo_value obj, const char *name, remo_value args,
                          const remo_call_opts *o, remo_value *out)
{
	struct call_mode m = {.style = STYLE_CALL,
	                      .timeout_ms = o ? o->timeout_ms : 0};
	return ops_call_styled(&m, obj, name, args, out);
}

/* remo_call_method in the style mode (NULL: plain). */
/* ==== the container protocol: methods of lists and dicts ================ */

static int ops_index(remo_value v, remo_value key, size_t n, size_t *at);
static int ops_key_error(remo_value key);

static const char *const ops_list_methods[] = {
	"append", "extend", "insert", "pop", "remove", "clear", "index",
	"slice", "delete", NULL};
static const char *const ops_dict_methods[] = {
	"pop", "setdefault", "clear", "update", "keys", "values", "items",
	"get", "delete", NULL};

static bool ops_container_has(bool dict, const char *name)
{
	for (const char *const *m = dict ? ops_dict_methods : ops_list_methods;
	     *m != NULL; m++)
		if (strcmp(*m, name) == 0)
			return true;
	return false;
}

/* Argument i of args (a tuple; nil for none), or *dflt when absent
 * (dflt NULL: TypeError naming the method). */
static int ops_arg(const char *name, remo_value args, size_t i,
                   const remo_value *dflt, remo_value *out)
{
	size_t n = args.kind == REMO_TUPLE ? remo_tuple_len(args) : 0;
	if (i < n) {
		*out = remo_tuple_get(args, i);
		return REMO_OK;
	}
	if (dflt != NULL) {
		*out = *dflt;
		return REMO_OK;
	}
	return remo__raisef("TypeError", "%s() missing argument %zu", name,
	                    i + 1);
}

/* A local copy of a list, tuple or dict (local or remote), to read. */
static int ops_items_of(remo_value v, remo_value *out)
{
	if (v.kind == REMO_TUPLE) {
		*out = remo_value_retain(v);
		return REMO_OK;
	}
	return remo_force(v, out);
}

/* The index of the first item equal to x, on a snapshot; -1 if none. */
static long ops_list_find(remo_value l, remo_value x, remo_value *found)
{
	remo_value c = remo_list_copy(l);
	long at = -1;
	for (size_t i = 0; remo_ok(c) && at < 0 && i < remo_list_len(c); i++)
		if (remo_equal(remo_list_get(c, i), x)) {
			at = (long)i;
			if (found != NULL)
				*found = remo_value_retain(remo_list_get(c, i));
		}
	remo_value_release(c);
	return at;
}

/* keys, values or items of d, as a list that crosses by value. */
static int ops_dict_view(remo_value d, int which, remo_value *out)
{
	remo_value c = remo_dict_copy(d), l = remo_list(), k, v;
	size_t pos = 0;
	int rc = remo_ok(c) && remo_ok(l) ? REMO_OK : REMO_ENOMEM;
	while (rc == REMO_OK && remo_dict_next(c, &pos, &k, &v))
		rc = remo_list_append(l, which == 0 ? remo_value_retain(k)
		                         : which == 1 ? remo_value_retain(v)
		                         : remo_tuple_of(2, remo_value_retain(k),
		                                         remo_value_retain(v)));
	remo_value_release(c);
	if (rc == REMO_OK) {
		*out = remo_by_value(l);
		rc = remo_ok(*out) ? REMO_OK : REMO_ENOMEM;
	}
	remo_value_release(l);
	return rc == REMO_OK ? REMO_OK : remo__fail(rc, "dict view");
}

static int ops_list_method(remo_value l, const char *name, remo_value args,
                           remo_value *out)
{
	remo_value a, b;
	size_t at;
	int rc;
	if (strcmp(name, "append") == 0) {
		if ((rc = ops_arg(name, args, 0, NULL, &a)) != REMO_OK)
			return rc;
		return remo_list_append(l, remo_value_retain(a)) == REMO_OK
		       ? REMO_OK : remo__fail(REMO_ENOMEM, "append");
	}
	if (strcmp(name, "extend") == 0) {
		remo_value items;
		if ((rc = ops_arg(name, args, 0, NULL, &a)) != REMO_OK ||
		    (rc = ops_items_of(a, &items)) != REMO_OK)
			return rc;
		size_t n = items.kind == REMO_TUPLE ? remo_tuple_len(items)
		                                    : remo_list_len(items);
		for (size_t i = 0; rc == REMO_OK && i < n; i++)
			rc = remo_list_append(l, remo_value_retain(
				items.kind == REMO_TUPLE ? remo_tuple_get(items, i)
				                         : remo_list_get(items, i)));
		remo_value_release(items);
		return rc == REMO_OK ? REMO_OK : remo__fail(rc, "extend");
	}
	if (strcmp(name, "insert") == 0) {
		if ((rc = ops_arg(name, args, 0, NULL, &a)) != REMO_OK ||
		    (rc = ops_arg(name, args, 1, NULL, &b)) != REMO_OK)
			return rc;
		if (a.kind != REMO_INT)
			return remo__raisef("TypeError", "insert() index must be int");
		int64_t i = a.as.i, n = (int64_t)remo_list_len(l);
		if (i < 0)
			i = i + n < 0 ? 0 : i + n;
		return remo_list_insert(l, (size_t)i, remo_value_retain(b)) ==
		       REMO_OK ? REMO_OK : remo__fail(REMO_ENOMEM, "insert");
	}
	if (strcmp(name, "pop") == 0 || strcmp(name, "delete") == 0) {
		remo_value last = remo_int(-1);
		if ((rc = ops_arg(name, args, 0, name[0] == 'p' ? &last : NULL,
		                  &a)) != REMO_OK ||
		    (rc = ops_index(l, a, remo_list_len(l), &at)) != REMO_OK)
			return rc;
		if (remo_list_pop(l, at, out) != REMO_OK)
			return remo__raisef("IndexError", "%s index out of range",
			                    name);
		if (name[0] == 'd') {
			remo_value_release(*out);
			*out = remo_nil();
		}
		return REMO_OK;
	}
	if (strcmp(name, "remove") == 0 || strcmp(name, "index") == 0) {
		if ((rc = ops_arg(name, args, 0, NULL, &a)) != REMO_OK)
			return rc;
		for (;;) {
			remo_value found = remo_nil();
			long i = ops_list_find(l, a, &found);
			if (i < 0)
				return remo__raisef("ValueError", "%s(x): x not in "
				                    "list", name);
			if (name[0] == 'i') {
				remo_value_release(found);
				*out = remo_int(i);
				return REMO_OK;
			}
			/* still there, unchanged? else look again */
			rc = remo__list_del_same(l, (size_t)i, found);
			remo_value_release(found);
			if (rc == REMO_OK)
				return REMO_OK;
		}
	}
	if (strcmp(name, "clear") == 0) {
		remo_list_clear(l);
		return REMO_OK;
	}
	if (strcmp(name, "slice") == 0) {
		remo_value zero = remo_int(0), end = remo_int(INT64_MAX);
		if ((rc = ops_arg(name, args, 0, &zero, &a)) != REMO_OK ||
		    (rc = ops_arg(name, args, 1, &end, &b)) != REMO_OK)
			return rc;
		if (a.kind != REMO_INT || b.kind != REMO_INT)
			return remo__raisef("TypeError", "slice() bounds must be int");
		remo_value c = remo_list_copy(l), r = remo_list();
		int64_t n = (int64_t)remo_list_len(c);
		int64_t lo = a.as.i < 0 ? a.as.i + n : a.as.i;
		int64_t hi = b.as.i < 0 ? b.as.i + n : b.as.i;
		lo = lo < 0 ? 0 : lo > n ? n : lo;
		hi = hi < lo ? lo : hi > n ? n : hi;
		for (int64_t i = lo; remo_ok(r) && i < hi; i++)
			remo_list_append(r, remo_value_retain(
				remo_list_get(c, (size_t)i)));
		remo_value_release(c);
		*out = remo_by_value(r); /* a slice is data: a copy */
		remo_value_release(r);
		return remo_ok(*out) ? REMO_OK : remo__fail(REMO_ENOMEM, "slice");
	}
	return ops_no_attr(l, name);
}

static int ops_dict_method(remo_value d, const char *name, remo_value args,
                           remo_value *out)
{
	remo_value a, b, nil = remo_nil();
	int rc;
	if (strcmp(name, "keys") == 0)
		return ops_dict_view(d, 0, out);
	if (strcmp(name, "values") == 0)
		return ops_dict_view(d, 1, out);
	if (strcmp(name, "items") == 0)
		return ops_dict_view(d, 2, out);
	if (strcmp(name, "clear") == 0) {
		remo_dict_clear(d);
		return REMO_OK;
	}
	if (strcmp(name, "update") == 0) {
		remo_value items, k, v;
		if ((rc = ops_arg(name, args, 0, NULL, &a)) != REMO_OK ||
		    (rc = ops_items_of(a, &items)) != REMO_OK)
			return rc;
		size_t pos = 0;
		if (items.kind != REMO_DICT)
			rc = remo__raisef("TypeError", "update() takes a dict");
		while (rc == REMO_OK && remo_dict_next(items, &pos, &k, &v))
			rc = remo_dict_set(d, remo_value_retain(k),
			                   remo_value_retain(v));
		remo_value_release(items);
		return rc == REMO_OK || rc == REMO_ERAISED ? rc
		       : remo__fail(rc, "update");
	}
	if ((rc = ops_arg(name, args, 0, NULL, &a)) != REMO_OK)
		return rc;
	if (!remo_hashable(a))
		return remo__raisef("TypeError", "unhashable key: '%s'",
		                    remo_type_name(a));
	if (strcmp(name, "setdefault") == 0) {
		if ((rc = ops_arg(name, args, 1, &nil, &b)) != REMO_OK)
			return rc;
		return remo_dict_setdefault(d, a, b, out) == REMO_OK
		       ? REMO_OK : remo__fail(REMO_ENOMEM, "setdefault");
	}
	bool has_dflt = args.kind == REMO_TUPLE && remo_tuple_len(args) > 1;
	if (strcmp(name, "get") == 0) {
		if (remo_dict_get_new(d, a, out) == REMO_OK)
			return REMO_OK;
		*out = has_dflt ? remo_value_retain(remo_tuple_get(args, 1))
		                : remo_nil();
		return REMO_OK;
	}
	if (strcmp(name, "pop") == 0 || strcmp(name, "delete") == 0) {
		if (remo_dict_pop(d, a, out) == REMO_OK) {
			if (name[0] == 'd') {
				remo_value_release(*out);
				*out = remo_nil();
			}
			return REMO_OK;
		}
		if (name[0] == 'p' && has_dflt) {
			*out = remo_value_retain(remo_tuple_get(args, 1));
			return REMO_OK;
		}
		return ops_key_error(a);
	}
	return ops_no_attr(d, name);
}

/* A method of a local list or dict: the container protocol. */
static int ops_container_method(remo_value v, const char *name,
                                remo_value args, remo_value *out)
{
	if (!ops_container_has(v.kind == REMO_DICT, name))
		return ops_no_attr(v, name);
	return v.kind == REMO_LIST ? ops_list_method(v, name, args, out)
	                           : ops_dict_method(v, name, args, out);
}

static int ops_call_method(struct call_mode *mode, remo_value obj,
                           const char *name, remo_value args,
                           remo_value *out)
{
	*out = remo_nil();
	if (name == NULL)
		return remo__fail(REMO_EINVAL, "call_method");
	if (obj.kind == REMO_LIST || obj.kind == REMO_DICT)
		return ops_container_method(obj, name, args, out);
	if (!remo__is_objlike(obj.kind))
		return ops_no_attr(obj, name);
	const struct remo__ref *r = REMO__REF(obj);
	const struct remo__func *m = remo__type_method(r->type, name);
	if (ops_is_proxy(obj)) {
		/* a remote list's or dict's methods are the container
		 * protocol's, known here without a shape */
		bool builtin = (r->type == &remo__type_list ||
		                r->type == &remo__type_dict) &&
		               ops_container_has(r->type == &remo__type_dict, name);
		if (m == NULL && r->type != NULL && !builtin)
			return ops_no_attr(obj, name);
		if (m != NULL && remo__sig_check(&m->sig, m->name, args) != REMO_OK)
			return REMO_ERAISED;
		remo_value n = remo_str(name);
		if (!remo_ok(n))
			return remo__fail(REMO_ENOMEM, "call_method");
		int rc = ops_request(mode, obj, REMO__OP_CALLM, n, args, out);
		remo_value_release(n);
		return rc;
	}
	if (m == NULL || r->ptr == NULL)
		return ops_no_attr(obj, name);
	return remo__func_call(m, r->ptr, args, out);
}

int remo_call_method(remo_value obj, const char *name, remo_value args,
                     remo_value *out)
{
	return ops_call_method(NULL, obj, name, args, out);
}

/* ==== containers ======================================================= */

/*
 * Container slots: a registered type whose methods include __len__,
 * __getitem__, __setitem__, __delitem__ or __contains__ is used like a
 * list or dict by remo_len, remo_getitem and the rest, locally (the
 * method is called) and through a proxy (the shape carries the methods:
 * the request goes as for a remote list, and the peer calls them).
 */
static const struct remo__func *ops_slot(remo_value v, const char *slot)
{
	return remo__is_objlike(v.kind) && slot != NULL
	       ? remo__type_method(REMO__REF(v)->type, slot) : NULL;
}

/* A local object's slot, called with args (a tuple, stolen); false if v
 * has no such slot here (then *rc is untouched). */
static bool ops_local_slot(remo_value v, const char *slot, remo_value args,
                           remo_value *out, int *rc)
{
	const struct remo__func *m = ops_slot(v, slot);
	if (m == NULL || ops_is_proxy(v) || REMO__REF(v)->ptr == NULL) {
		remo_value_release(args);
		return false;
	}
	*rc = remo__func_call(m, REMO__REF(v)->ptr, args, out);
	remo_value_release(args);
	return true;
}

static bool ops_is_remote_container_slot(remo_value v, const char *slot)
{
	return v.kind == REMO_OBJECT && ops_is_proxy(v) &&
	       (REMO__REF(v)->type == &remo__type_list ||
	        REMO__REF(v)->type == &remo__type_dict || ops_is_promise(v) ||
	        ops_slot(v, slot) != NULL);
}
#define ops_is_remote_container(v) ops_is_remote_container_slot(v, NULL)

int remo_len(remo_value v, size_t *out)
{
	*out = 0;
	switch (v.kind) {
	case REMO_TUPLE: *out = remo_tuple_len(v); return REMO_OK;
	case REMO_LIST: *out = remo_list_len(v); return REMO_OK;
	case REMO_DICT: *out = remo_dict_len(v); return REMO_OK;
	case REMO_STR: case REMO_BYTES: *out = REMO__STR(v)->len; return REMO_OK;
	default: break;
	}
	remo_value n = remo_nil();
	int rc;
	if (ops_local_slot(v, "__len__", remo_nil(), &n, &rc)) {
		if (rc != REMO_OK)
			return rc;
	} else if (!ops_is_remote_container_slot(v, "__len__")) {
		return remo__raisef("TypeError", "'%s' object has no len()",
		                    remo_type_name(v));
	} else {
		rc = ops_request(NULL, v, REMO__OP_LEN, remo_nil(), remo_nil(), &n);
	}
	if (rc != REMO_OK)
		return rc;
	if (n.kind != REMO_INT || n.as.i < 0) {
		remo_value_release(n);
		return remo__raisef("ProtocolError", "len() returned no length");
	}
	*out = (size_t)n.as.i;
	return REMO_OK;
}

/* An index into n items: ints, negative from the end. */
static int ops_index(remo_value v, remo_value key, size_t n, size_t *at)
{
	if (key.kind != REMO_INT)
		return remo__raisef("TypeError", "%s indices must be int, not %s",
		                    remo_type_name(v), remo_type_name(key));
	int64_t i = key.as.i;
	if (i < 0)
		i += (int64_t)n;
	if (i < 0 || (uint64_t)i >= n)
		return remo__raisef("IndexError", "%s index %lld out of range",
		                    remo_type_name(v), (long long)key.as.i);
	*at = (size_t)i;
	return REMO_OK;
}

static int ops_key_error(remo_value key)
{
	char *r = remo_repr(key);
	remo_value e = remo_error("KeyError", r ? r : "?");
	remo_free(r);
	if (remo_ok(e))
		remo_dict_set_str(remo_error_attrs(e), "key", remo_value_retain(key));
	return remo__raise(e);
}

int remo_getitem(remo_value v, remo_value key, remo_value *out)
{
	size_t at;
	int rc;
	*out = remo_nil();
	switch (v.kind) {
	case REMO_TUPLE:
	case REMO_LIST: {
		size_t n = v.kind == REMO_TUPLE ? remo_tuple_len(v) : remo_list_len(v);
		if ((rc = ops_index(v, key, n, &at)) != REMO_OK)
			return rc;
		if (v.kind == REMO_TUPLE) {
			*out = remo_value_retain(remo_tuple_get(v, at));
			return REMO_OK;
		}
		/* a shared list may have shrunk since its length was read */
		if (remo_list_get_new(v, at, out) != REMO_OK)
			return remo__raisef("IndexError", "list index out of range");
		return REMO_OK;
	}
	case REMO_DICT:
		if (!remo_hashable(key))
			return remo__raisef("TypeError", "unhashable key: '%s'",
			                    remo_type_name(key));
		if (remo_dict_get_new(v, key, out) != REMO_OK)
			return ops_key_error(key);
		return REMO_OK;
	default:
		break;
	}
	if (ops_local_slot(v, "__getitem__",
	                   remo_tuple_of(1, remo_value_retain(key)), out, &rc))
		return rc;
	if (!ops_is_remote_container_slot(v, "__getitem__"))
		return remo__raisef("TypeError", "'%s' object is not subscriptable",
		                    remo_type_name(v));
	return ops_request(NULL, v, REMO__OP_GETITEM, key, remo_nil(), out);
}

int remo_setitem(remo_value v, remo_value key, remo_value val)
{
	size_t at;
	int rc;
	if (!remo_ok(val))
		return remo__fail(REMO_EINVAL, "setitem");
	switch (v.kind) {
	case REMO_LIST:
		if ((rc = ops_index(v, key, remo_list_len(v), &at)) != REMO_OK)
			return rc;
		rc = remo_list_set(v, at, remo_value_retain(val));
		if (rc == REMO_ERANGE) /* it shrank since */
			return remo__raisef("IndexError",
			                    "list assignment index out of range");
		return rc == REMO_OK ? REMO_OK : remo__fail(rc, "setitem");
	case REMO_DICT:
		rc = remo_dict_set(v, remo_value_retain(key), remo_value_retain(val));
		if (rc == REMO_EUNHASHABLE)
			return remo__raisef("TypeError", "unhashable key: '%s'",
			                    remo_type_name(key));
		return rc == REMO_OK ? REMO_OK : remo__fail(rc, "setitem");
	default:
		break;
	}
	remo_value ignored;
	if (ops_local_slot(v, "__setitem__", remo_tuple_of(2,
	                   remo_value_retain(key), remo_value_retain(val)),
	                   &ignored, &rc)) {
		remo_value_release(ignored);
		return rc;
	}
	if (!ops_is_remote_container_slot(v, "__setitem__"))
		return remo__raisef("TypeError",
		                    "'%s' object does not support item assignment",
		                    remo_type_name(v));
	return ops_request(NULL, v, REMO__OP_SETITEM, key, val, NULL);
}

int remo_contains(remo_value v, remo_value key, bool *out)
{
	remo_value ignored;
	*out = false;
	switch (v.kind) {
	case REMO_TUPLE:
		for (size_t i = 0; i < remo_tuple_len(v) && !*out; i++)
			*out = remo_equal(key, remo_tuple_get(v, i));
		return REMO_OK;
	case REMO_LIST: {
		/* compared on a snapshot: an item's comparison may lock
		 * another list, never while this one is locked */
		remo_value buf[16];
		size_t n;
		remo_value *items = remo__list_snapshot(v, 0, SIZE_MAX, buf, 16,
		                                        &n);
		if (items == NULL)
			return remo__fail(REMO_ENOMEM, "contains");
		for (size_t i = 0; i < n && !*out; i++)
			*out = remo_equal(key, items[i]);
		remo__snapshot_free(items, n, buf);
		return REMO_OK;
	}
	case REMO_DICT:
		*out = remo_hashable(key) && remo_dict_get(v, key, &ignored) == REMO_OK;
		return REMO_OK;
	default:
		break;
	}
	remo_value b = remo_nil();
	int rc;
	if (ops_local_slot(v, "__contains__",
	                   remo_tuple_of(1, remo_value_retain(key)), &b, &rc)) {
		*out = rc == REMO_OK && b.kind == REMO_BOOL && b.as.b;
		remo_value_release(b);
		return rc;
	}
	if (!ops_is_remote_container_slot(v, "__contains__"))
		return remo__raisef("TypeError", "'%s' object is not a container",
		                    remo_type_name(v));
	rc = ops_request(NULL, v, REMO__OP_CONTAINS, key, remo_nil(), &b);
	if (rc == REMO_OK)
		*out = b.kind == REMO_BOOL && b.as.b;
	remo_value_release(b);
	return rc;
}

int remo_delitem(remo_value v, remo_value key)
{
	remo_value ignored = remo_nil();
	int rc;
	if (v.kind == REMO_LIST || v.kind == REMO_DICT) {
		remo_value args = remo_tuple_of(1, remo_value_retain(key));
		rc = ops_container_method(v, "delete", args, &ignored);
		remo_value_release(args);
	} else if (ops_local_slot(v, "__delitem__",
	                          remo_tuple_of(1, remo_value_retain(key)),
	                          &ignored, &rc)) {
		/* done */
	} else if (ops_is_remote_container_slot(v, "__delitem__")) {
		/* one round trip: the container protocol's delete, or the
		 * type's slot */
		bool slot = ops_slot(v, "__delitem__") != NULL;
		remo_value args = remo_tuple_of(1, remo_value_retain(key));
		rc = ops_call_method(NULL, v, slot ? "__delitem__" : "delete",
		                     args, &ignored);
		remo_value_release(args);
	} else {
		rc = remo__raisef("TypeError", "'%s' object does not support "
		                  "item deletion", remo_type_name(v));
	}
	remo_value_release(ignored);
	return rc;
}

/* ==== chunks, force, iteration ========================================= */

int remo__chunk(remo_value v, size_t start, remo_value *out)
{
	*out = remo_nil();
	if (v.kind == REMO_TUPLE) {
		size_t n = remo_tuple_len(v);
		size_t k = start >= n ? 0 : n - start;
		if (k > REMO_FORCE_CHUNK)
			k = REMO_FORCE_CHUNK;
		remo_value t = remo_tuple(k);
		if (!remo_ok(t))
			return remo__fail(REMO_ENOMEM, "chunk");
		for (size_t i = 0; i < k; i++)
			remo_tuple_set(t, i, remo_value_retain(
				remo_tuple_get(v, start + i)));
		*out = t;
		return REMO_OK;
	}
	if (v.kind == REMO_LIST || v.kind == REMO_DICT) {
		/* one chunk is one snapshot: a container that fits in one
		 * is seen at one instant, even while others change it */
		size_t n;
		remo_value one[2];
		remo_value *items = v.kind == REMO_LIST
			? remo__list_snapshot(v, start, REMO_FORCE_CHUNK, one, 2, &n)
			: remo__dict_snapshot(v, start, REMO_FORCE_CHUNK / 2, one, 2,
			                      &n);
		remo_value t = items != NULL ? remo_tuple(n) : remo__invalid();
		if (remo_ok(t))
			for (size_t i = 0; i < n; i++) /* the tuple takes them */
				remo_tuple_set(t, i, items[i]);
		else if (items != NULL)
			remo__snapshot_free(items, n, one), items = one;
		if (items != one)
			remo__free(items);
		if (!remo_ok(t))
			return remo__fail(REMO_ENOMEM, "chunk");
		*out = t;
		return REMO_OK;
	}
	return remo__raisef("TypeError", "'%s' object is not iterable",
	                    remo_type_name(v));
}

/* A chunk of v from start: local or one round trip. */
static int ops_chunk(remo_value v, size_t start, remo_value *out)
{
	if (!ops_is_proxy(v))
		return remo__chunk(v, start, out);
	remo_value s = remo_int((int64_t)start);
	int rc = ops_request(NULL, v, REMO__OP_CHUNK, s, remo_nil(), out);
	if (rc == REMO_OK && out->kind != REMO_TUPLE) {
		remo_value_release(*out);
		*out = remo_nil();
		return remo__raisef("ProtocolError", "a chunk that is no tuple");
	}
	return rc;
}

static bool ops_is_dict(remo_value v)
{
	return v.kind == REMO_DICT ||
	       (v.kind == REMO_OBJECT && REMO__REF(v)->type == &remo__type_dict);
}

int remo_force(remo_value v, remo_value *out)
{
	*out = remo_nil();
	bool dict = ops_is_dict(v);
	if (v.kind != REMO_LIST && v.kind != REMO_DICT &&
	    !ops_is_remote_container(v))
		return remo__raisef("TypeError", "cannot force a '%s'",
		                    remo_type_name(v));
	remo_value copy = dict ? remo_dict() : remo_list();
	if (!remo_ok(copy))
		return remo__fail(REMO_ENOMEM, "force");
	size_t start = 0;
	for (;;) {
		remo_value c;
		int rc = ops_chunk(v, start, &c);
		if (rc != REMO_OK) {
			remo_value_release(copy);
			return rc;
		}
		size_t n = remo_tuple_len(c);
		for (size_t i = 0; rc == REMO_OK && i < n; i += dict ? 2 : 1)
			rc = dict ? remo_dict_set(copy,
			                          remo_value_retain(remo_tuple_get(c, i)),
			                          remo_value_retain(remo_tuple_get(c, i + 1)))
			          : remo_list_append(copy,
			                             remo_value_retain(remo_tuple_get(c, i)));
		remo_value_release(c);
		if (rc != REMO_OK) {
			remo_value_release(copy);
			return remo__fail(rc, "force");
		}
		start += dict ? n / 2 : n;
		if (n < (dict ? REMO_FORCE_CHUNK / 2 * 2 : REMO_FORCE_CHUNK) || n == 0)
			break;
		/* a peer that never stops sending full chunks is not a list */
		if (start > REMO_MAX_FORCE) {
			remo_value_release(copy);
			return remo__raisef("LimitError", "force: more than %u items",
			                    (unsigned)REMO_MAX_FORCE);
		}
	}
	*out = copy;
	return REMO_OK;
}

int remo_iter_init(remo_iter *it, remo_value v)
{
	memset(it, 0, sizeof *it);
	if (v.kind != REMO_LIST && v.kind != REMO_DICT && v.kind != REMO_TUPLE &&
	    !ops_is_remote_container(v)) {
		it->done = true;
		it->status = remo__raisef("TypeError", "'%s' object is not iterable",
		                          remo_type_name(v));
		return it->status;
	}
	it->src = remo_value_retain(v);
	return REMO_OK;
}

bool remo_iter_next(remo_iter *it, remo_value *item)
{
	bool dict = ops_is_dict(it->src);
	size_t step = dict ? 2 : 1;
	*item = remo_nil();
	if (it->done)
		return false;
	if (it->pos >= remo_tuple_len(it->chunk)) {
		size_t n = remo_tuple_len(it->chunk);
		if (it->chunk.kind == REMO_TUPLE &&
		    n < (dict ? REMO_FORCE_CHUNK / 2 * 2 : REMO_FORCE_CHUNK)) {
			it->done = true;
			return false;
		}
		it->base += n / step;
		remo_value_release(it->chunk);
		it->chunk = remo_nil();
		it->pos = 0;
		int rc = ops_chunk(it->src, it->base, &it->chunk);
		if (rc != REMO_OK || remo_tuple_len(it->chunk) == 0) {
			it->status = rc;
			it->done = true;
			return false;
		}
	}
	*item = remo_value_retain(remo_tuple_get(it->chunk, it->pos));
	it->pos += step;
	return true;
}

void remo_iter_free(remo_iter *it)
{
	remo_value_release(it->src);
	remo_value_release(it->chunk);
	memset(it, 0, sizeof *it);
}

/* ==== one operation by number (serving a request, promises) ============ */

/*
 * A peer's getattr of a read-only field that holds a list or dict gets
 * a deep copy (*out replaced; remo__deep_copy, tuples rebuilt too): a
 * reference to the container itself would let the peer change what the
 * field says is read-only (issue 11: the calc demo's history).  Only for
 * peers: the program's own code sees its objects as they are.
 */
static int ops_readonly_out(remo_value obj, const char *name,
                            remo_value *out)
{
	if (!remo__is_objlike(obj.kind) || ops_is_proxy(obj) ||
	    REMO__REF(obj)->ptr == NULL ||
	    (out->kind != REMO_LIST && out->kind != REMO_DICT &&
	     out->kind != REMO_TUPLE))
		return REMO_OK;
	const struct remo__field *f = remo__type_field(REMO__REF(obj)->type,
	                                               name);
	if (f == NULL || !(f->flags & REMO_READONLY))
		return REMO_OK;
	remo_value copy = remo__deep_copy(*out, true, 0);
	remo_value_release(*out);
	*out = remo_nil();
	if (!remo_ok(copy))
		return remo__raisef("LimitError", "field '%s' could not be copied "
		                    "(out of memory, or nested past %d)", name,
		                    REMO_MAX_DEPTH);
	*out = copy;
	return REMO_OK;
}

/* Operation op in the style m: a call or method call keeps it (a
 * promise's call in that style, applied here once its value came); the
 * other operations have the plain style only. */
static int ops_apply(struct call_mode *m, int op, remo_value target,
                     remo_value a, remo_value b, remo_value *out)
{
	*out = remo_nil();
	/* a member name is a C string to the code below: one with a NUL
	 * inside would be cut there ("n\0junk" read as "n") */
	size_t len;
	const char *name = a.kind == REMO_STR ? remo_str_data(a, &len) : NULL;
	if ((op == REMO__OP_GETATTR || op == REMO__OP_SETATTR ||
	     op == REMO__OP_CALLM) && name != NULL &&
	    memchr(name, 0, len) != NULL)
		return remo__raisef("AttributeError", "'%s...' is not a member "
		                    "name: it holds a NUL", name);
	switch (op) {
	case REMO__OP_GETATTR: {
		if (a.kind != REMO_STR)
			return remo__raisef("TypeError", "attribute names are str");
		int rc = remo_getattr(target, remo_str_data(a, NULL), out);
		return rc == REMO_OK ? ops_readonly_out(target,
		                                        remo_str_data(a, NULL), out)
		                     : rc;
	}
	case REMO__OP_SETATTR:
		if (a.kind != REMO_STR)
			return remo__raisef("TypeError", "attribute names are str");
		return remo_setattr(target, remo_str_data(a, NULL), b);
	case REMO__OP_CALL:
		return ops_call(m, target, a, out);
	case REMO__OP_CALLM:
		if (a.kind != REMO_STR)
			return remo__raisef("TypeError", "method names are str");
		return ops_call_method(m, target, remo_str_data(a, NULL), b, out);
	case REMO__OP_LEN: {
		size_t n;
		int rc = remo_len(target, &n);
		if (rc == REMO_OK)
			*out = remo_int((int64_t)n);
		return rc;
	}
	case REMO__OP_GETITEM:
		return remo_getitem(target, a, out);
	case REMO__OP_SETITEM:
		return remo_setitem(target, a, b);
	case REMO__OP_CONTAINS: {
		bool yes;
		int rc = remo_contains(target, a, &yes);
		if (rc == REMO_OK)
			*out = remo_bool(yes);
		return rc;
	}
	case REMO__OP_CHUNK:
		if (a.kind != REMO_INT || a.as.i < 0)
			return remo__raisef("TypeError", "chunk start must be an int");
		/* a forwarded container: the chunk comes from its home */
		return ops_chunk(target, (size_t)a.as.i, out);
	}
	return remo__raisef("ProtocolError", "unknown operation");
}

/* A method of the container protocol that writes. */
static bool ops_writes(remo_value v, remo_value name)
{
	static const char *const list_w[] = {"append", "extend", "insert",
		"pop", "delete", "remove", "clear", NULL};
	static const char *const dict_w[] = {"pop", "setdefault", "delete",
		"clear", "update", NULL};
	if (name.kind != REMO_STR)
		return false;
	const char *n = remo_str_data(name, NULL);
	for (const char *const *w = v.kind == REMO_LIST ? list_w : dict_w;
	     *w != NULL; w++)
		if (strcmp(*w, n) == 0)
			return true;
	return false;
}

/*
 * A request forwarded to a proxy (its target lives in a third peer): the
 * lists and dicts in it that arrived by value were decoded fresh, and
 * only the request holds them (a reference to a container of this
 * process's own is held by its export table too).  They go on by value,
 * as their sender asked, not as references to this process's copies.
 */
static void forward_by_value(remo_value v, unsigned depth)
{
	if (depth > REMO_MAX_DEPTH)
		return;
	if (v.kind == REMO_TUPLE) {
		for (size_t i = 0; i < remo_tuple_len(v); i++)
			forward_by_value(remo_tuple_get(v, i), depth + 1);
	} else if ((v.kind == REMO_LIST || v.kind == REMO_DICT) &&
	           !remo_is_proxy(v) && atomic_load(&v.as.p->refs) == 1) {
		v.as.p->flags |= REMO__OBJ_BYVALUE;
	}
}

/* A peer's request (the serving hook): refused here if it writes to a
 * list or dict this process made read-only to peers (remo_readonly). */
int remo__op_apply(int op, remo_value target, remo_value a, remo_value b,
                   remo_value *out)
{
	if (remo_is_proxy(target)) {
		forward_by_value(a, 0);
		forward_by_value(b, 0);
	}
	if (remo__peer_readonly(target) &&
	    (op == REMO__OP_SETITEM ||
	     (op == REMO__OP_CALLM && ops_writes(target, a)))) {
		*out = remo_nil();
		return remo__raisef("PermissionError", "this %s is read-only "
		                    "to peers now (remo_readonly)",
		                    remo_type_name(target));
	}
	return ops_apply(NULL, op, target, a, b, out);
}

/* Serving a request applies the operation here (session/session.h). */
__attribute__((constructor)) static void ops_install_hooks(void)
{
	remo__session_hooks.apply = remo__op_apply;
}

/* ==== call styles (remo.h section 11) =================================== */

/* Does a call on target send a request (rather than run here)? */
static bool ops_goes_remote(remo_value target)
{
	if (ops_is_proxy(target))
		return true;
	return target.kind == REMO_CALLABLE &&
	       ops_is_proxy(REMO__REF(target)->self);
}

static int ops_async(remo_value target, const char *name, remo_value args,
                     const remo_call_opts *o, remo_future **out)
{
	struct call_mode m = {.style = STYLE_ASYNC,
	                      .timeout_ms = o ? o->timeout_ms : 0};
	*out = NULL;
	remo_value v;
	bool remote = ops_goes_remote(target);
	int rc = ops_call_styled(&m, target, name, args, &v);
	if (m.sent || (remote && !m.here)) {
		/* a request went (or could not start: no future then) */
		if (rc == REMO_OK)
			*out = m.fut;
		remo_value_release(v);
		return rc;
	}
	/* it ran here, now: a settled future */
	remo_value err = remo_value_retain(remo_last_error());
	remo_future *f = rc == REMO_OK ? remo__future_settled(rc, v)
	                 : rc == REMO_ERAISED ? remo__future_settled(rc, err)
	                 : NULL;
	if (rc != REMO_ERAISED)
		remo_value_release(err);
	if (f == NULL)
		return rc == REMO_OK || rc == REMO_ERAISED
		       ? remo__fail(REMO_ENOMEM, "an async call") : rc;
	*out = f;
	return REMO_OK;
}

int remo_call_async(remo_value fn, remo_value args, const remo_call_opts *o,
                    remo_future **out)
{
	return ops_async(fn, NULL, args, o, out);
}

int remo_call_method_async(remo_value obj, const char *name, remo_value args,
                           const remo_call_opts *o, remo_future **out)
{
	if (name == NULL) {
		*out = NULL;
		return remo__fail(REMO_EINVAL, "call_method");
	}
	return ops_async(obj, name, args, o, out);
}

/* One-way on a local object runs the call now and forgets the result. */
static int ops_oneway(remo_value target, const char *name, remo_value args)
{
	struct call_mode m = {.style = STYLE_ONEWAY};
	remo_value v;
	bool remote = ops_goes_remote(target);
	int rc = ops_call_styled(&m, target, name, args, &v);
	remo_value_release(v);
	return m.sent || (remote && !m.here) || rc != REMO_ERAISED ? rc
	                                                           : REMO_OK;
}

int remo_call_oneway(remo_value fn, remo_value args)
{
	return ops_oneway(fn, NULL, args);
}

int remo_call_method_oneway(remo_value obj, const char *name,
                            remo_value args)
{
	if (name == NULL)
		return remo__fail(REMO_EINVAL, "call_method");
	return ops_oneway(obj, name, args);
}

remo_batch *remo_batch_new(void)
{
	remo_batch *b = remo__malloc(sizeof *b);
	if (b != NULL)
		memset(b, 0, sizeof *b);
	return b;
}

static int batch_add(struct call_mode *m, remo_session *s, int op,
                     remo_value target, remo_value a, remo_value b)
{
	remo_batch *bt = m->batch;
	int st = remo_session_status(s);
	if (st != REMO_OK)
		return remo__fail(st, "a batch");
	if (bt->s != NULL && bt->s != s)
		return remo__raisef("ValueError",
		                    "the calls of a batch go to one session");
	if (bt->n == REMO_MAX_BATCH)
		return remo__raisef("LimitError", "a batch holds at most %u calls",
		                    REMO_MAX_BATCH);
	if (bt->n == bt->cap) {
		size_t cap = bt->cap ? bt->cap * 2 : 16;
		struct remo__breq *it = remo__realloc(bt->items,
		                                      cap * sizeof *it);
		if (it == NULL)
			return remo__fail(REMO_ENOMEM, "a batch");
		bt->items = it;
		bt->cap = cap;
	}
	remo_future *f = NULL;
	if (m->want_future && (f = remo__future_new_batch(s)) == NULL)
		return remo__fail(REMO_ENOMEM, "a batch");
	if (bt->s == NULL) {
		/* the batch holds the session through a proxy it retains */
		bt->s = s;
	}
	bt->items[bt->n++] = (struct remo__breq){
		op, remo_value_retain(target), remo_value_retain(a),
		remo_value_retain(b), f};
	m->fut = f;
	return REMO_OK;
}

static int ops_batch(remo_batch *b, remo_value target, const char *name,
                     remo_value args, remo_future **out)
{
	struct call_mode m = {.style = STYLE_BATCH, .batch = b,
	                      .want_future = out != NULL};
	if (out != NULL)
		*out = NULL;
	if (b == NULL)
		return remo__fail(REMO_EINVAL, "a batch");
	if (!ops_goes_remote(target))
		return remo__raisef("ValueError",
		                    "a batch holds calls on proxies only");
	remo_value v;
	int rc = ops_call_styled(&m, target, name, args, &v);
	remo_value_release(v);
	if (rc == REMO_OK && !m.sent) /* a promise whose value is local */
		return remo__raisef("ValueError", "a batch holds calls on "
		                    "proxies only (this promise stands for a "
		                    "local value; the call ran now)");
	if (rc == REMO_OK && out != NULL)
		*out = m.fut;
	return rc;
}

int remo_batch_call(remo_batch *b, remo_value fn, remo_value args,
                    remo_future **out)
{
	return ops_batch(b, fn, NULL, args, out);
}

int remo_batch_call_method(remo_batch *b, remo_value obj, const char *name,
                           remo_value args, remo_future **out)
{
	if (name == NULL)
		return remo__fail(REMO_EINVAL, "call_method");
	return ops_batch(b, obj, name, args, out);
}

static void batch_clear(remo_batch *b, int status)
{
	for (size_t i = 0; i < b->n; i++) {
		if (b->items[i].fut != NULL) /* if it never went */
			remo__future_abandon(b->items[i].fut, status);
		remo_value_release(b->items[i].target);
		remo_value_release(b->items[i].a);
		remo_value_release(b->items[i].b);
		/* drops the batch's count of the future; the caller has
		 * its own */
		remo__future_release(b->items[i].fut);
	}
	b->n = 0;
	b->s = NULL;
}

int remo_batch_send(remo_batch *b)
{
	if (b == NULL)
		return remo__fail(REMO_EINVAL, "a batch");
	if (b->n == 0)
		return REMO_OK;
	int rc = remo__session_send_batch(b->s, b->items, b->n);
	batch_clear(b, rc == REMO_OK ? REMO_ECANCELED : rc);
	return rc;
}

void remo_batch_free(remo_batch *b)
{
	if (b == NULL)
		return;
	batch_clear(b, REMO_ECANCELED);
	remo__free(b->items);
	remo__free(b);
}
