/*
 * value.c -- values: construction, reference counting, equality, hashing,
 * and the str, bytes, tuple and list kinds.  Dicts are in dict.c, error
 * values in errname.c, the debugging repr in repr.c.
 *
 * Ownership is the rule stated at the top of remo.h: constructors return
 * new references, getters lend borrowed ones, and setters steal, on
 * failure too, so that nested constructor calls cannot leak.
 */
#include "value/value.h"

#include <math.h>
#include <stdarg.h>

remo_value remo__invalid(void)
{
	remo_value v = {REMO_INVALID, {0}};
	return v;
}

static remo_value value_heap(remo_kind kind, struct remo__obj *o)
{
	remo_value v = {kind, {0}};
	atomic_init(&o->refs, 1);
	o->kind = (uint8_t)kind;
	atomic_init(&o->lock, 0);
	o->flags = 0;
	atomic_init(&o->peer_ro, 0);
	v.as.p = o;
	return v;
}

int remo_readonly(remo_value c, bool readonly)
{
	if (c.kind != REMO_LIST && c.kind != REMO_DICT)
		return REMO_ETYPE;
	atomic_store(&c.as.p->peer_ro, readonly ? 1 : 0);
	return REMO_OK;
}

/* ==== reference counting ============================================== */

remo_value remo_value_retain(remo_value v)
{
	if (remo__is_heap(v.kind))
		atomic_fetch_add_explicit(&v.as.p->refs, 1, memory_order_relaxed);
	return v;
}

static void value_free(remo_value v)
{
	switch (v.kind) {
	case REMO_TUPLE: {
		struct remo__tuple *t = REMO__TUPLE(v);
		for (size_t i = 0; i < t->len; i++)
			remo_value_release(t->items[i]);
		break;
	}
	case REMO_LIST: {
		struct remo__list *l = REMO__LIST(v);
		remo__watch_free(&l->hdr, l->watch);
		for (size_t i = 0; i < l->len; i++)
			remo_value_release(l->items[i]);
		remo__free(l->items);
		break;
	}
	case REMO_DICT:
		remo__watch_free(v.as.p, REMO__DICT(v)->watch);
		remo__dict_free(REMO__DICT(v));
		break;
	case REMO_ERROR: {
		struct remo__error *e = REMO__ERROR(v);
		remo_value_release(e->name);
		remo_value_release(e->message);
		remo_value_release(e->attrs);
		remo_value_release(e->tb);
		break;
	}
	case REMO_STR:
	case REMO_BYTES: {
		struct remo__str *x = REMO__STR(v);
		if (x->own_ext)
			remo__free((void *)x->ext);
		remo_value_release(x->base);
		break;
	}
	case REMO_OBJECT:
	case REMO_CALLABLE:
	case REMO_FRAME:
	case REMO_TRACEBACK: {
		struct remo__ref *r = REMO__REF(v);
		/* what a higher layer hung on it: a proxy tells its peer (in
		 * a batch), a promise lets go of its future, a function value
		 * frees its function (value.h, struct remo__ref_ops) */
		if (r->ops != NULL && r->ops->gone != NULL)
			r->ops->gone(r);
		if (r->dtor != NULL)
			r->dtor(r->ptr);
		remo_value_release(r->self);
		break;
	}
	default:
		break;
	}
	remo__free(v.as.p);
}

void remo_value_release(remo_value v)
{
	if (!remo__is_heap(v.kind))
		return;
	/* acq_rel: the thread that frees must see every other thread's
	 * writes to the value made before their release. */
	if (atomic_fetch_sub_explicit(&v.as.p->refs, 1,
	                              memory_order_acq_rel) == 1)
		value_free(v);
}

/* ==== kinds ============================================================ */

const char *remo_kind_name(remo_kind k)
{
	static const char *const names[] = {
		[REMO_NIL] = "nil",         [REMO_BOOL] = "bool",
		[REMO_INT] = "int",         [REMO_DOUBLE] = "double",
		[REMO_STR] = "str",         [REMO_BYTES] = "bytes",
		[REMO_TUPLE] = "tuple",     [REMO_LIST] = "list",
		[REMO_DICT] = "dict",       [REMO_ERROR] = "error",
		[REMO_OBJECT] = "object",   [REMO_CALLABLE] = "callable",
		[REMO_FRAME] = "frame",     [REMO_TRACEBACK] = "traceback",
	};
	if ((size_t)k < sizeof names / sizeof names[0] && names[k] != NULL)
		return names[k];
	return "invalid";
}

bool remo_is_mutable(remo_value v)
{
	return v.kind == REMO_LIST || v.kind == REMO_DICT;
}

bool remo_hashable(remo_value v)
{
	switch (v.kind) {
	case REMO_NIL: case REMO_BOOL: case REMO_INT: case REMO_DOUBLE:
	case REMO_STR: case REMO_BYTES:
		return true;
	case REMO_TUPLE: {
		const struct remo__tuple *t = REMO__TUPLE(v);
		for (size_t i = 0; i < t->len; i++)
			if (!remo_hashable(t->items[i]))
				return false;
		return true;
	}
	default:
		return false;
	}
}

/* ==== equality and hashing ============================================ */

static bool double_equal(double a, double b)
{
	return a == b || (isnan(a) && isnan(b));
}

/*
 * Lists and dicts compare by snapshots: their locks are never held
 * together, and never while comparing (an item's comparison may lock
 * another container).  A snapshot that cannot be taken compares
 * unequal.
 */
#define EQ_BUF 16
static bool equal(remo_value a, remo_value b, unsigned depth);

static bool container_equal(remo_value a, remo_value b, unsigned depth)
{
	remo_value bufa[EQ_BUF], bufb[EQ_BUF];
	size_t na = 0, nb = 0;
	bool dict = a.kind == REMO_DICT;
	remo_value *(*snap)(remo_value, size_t, size_t, remo_value *, size_t,
	                    size_t *) = dict ? remo__dict_snapshot
	                                     : remo__list_snapshot;
	remo_value *x = snap(a, 0, SIZE_MAX, bufa, EQ_BUF, &na);
	remo_value *y = snap(b, 0, SIZE_MAX, bufb, EQ_BUF, &nb);
	bool eq = x != NULL && y != NULL && na == nb;
	if (eq && !dict) {
		for (size_t i = 0; eq && i < na; i++)
			eq = equal(x[i], y[i], depth + 1);
	} else if (eq) {
		/* same length; each key of a maps to an equal value in b */
		for (size_t i = 0; eq && i < na; i += 2) {
			remo_value w;
			eq = remo_dict_get_new(b, x[i], &w) == REMO_OK;
			if (eq) {
				eq = equal(x[i + 1], w, depth + 1);
				remo_value_release(w);
			}
		}
	}
	if (x != NULL)
		remo__snapshot_free(x, na, bufa);
	if (y != NULL)
		remo__snapshot_free(y, nb, bufb);
	return eq;
}

bool remo_equal(remo_value a, remo_value b)
{
	return equal(a, b, 0);
}

/*
 * A container is equal to itself without a look inside (as Python's
 * `is` check in containers): a dict that holds itself compares.  Past
 * REMO_MAX_DEPTH of nesting (two containers that hold each other),
 * unequal, never a stack overflow.
 */
static bool equal(remo_value a, remo_value b, unsigned depth)
{
	if (a.kind != b.kind || depth > REMO_MAX_DEPTH)
		return false;
	if ((a.kind == REMO_LIST || a.kind == REMO_DICT) && a.as.p == b.as.p)
		return true;
	switch (a.kind) {
	case REMO_NIL:
	case REMO_INVALID:
		return true;
	case REMO_BOOL:
		return a.as.b == b.as.b;
	case REMO_INT:
		return a.as.i == b.as.i;
	case REMO_DOUBLE:
		return double_equal(a.as.d, b.as.d);
	case REMO_STR:
	case REMO_BYTES: {
		const struct remo__str *x = REMO__STR(a), *y = REMO__STR(b);
		return x->len == y->len &&
		       memcmp(remo__str_ptr(x), remo__str_ptr(y), x->len) == 0;
	}
	case REMO_TUPLE: {
		const struct remo__tuple *x = REMO__TUPLE(a), *y = REMO__TUPLE(b);
		if (x->len != y->len)
			return false;
		for (size_t i = 0; i < x->len; i++)
			if (!equal(x->items[i], y->items[i], depth + 1))
				return false;
		return true;
	}
	case REMO_LIST:
	case REMO_DICT:
		return container_equal(a, b, depth);
	case REMO_ERROR: {
		const struct remo__error *x = REMO__ERROR(a), *y = REMO__ERROR(b);
		return equal(x->name, y->name, depth + 1) &&
		       equal(x->message, y->message, depth + 1) &&
		       equal(x->attrs, y->attrs, depth + 1) &&
		       equal(x->tb, y->tb, depth + 1);
	}
	default: {
		/* identity: the same proxy target, the same local object or
		 * function, the same bound method */
		const struct remo__ref *x = REMO__REF(a), *y = REMO__REF(b);
		if (x == y)
			return true;
		if (x->owner != y->owner || x->id != y->id || x->home != y->home ||
		    x->ptr != y->ptr || x->func != y->func)
			return false;
		/* no bound self (most): nothing deeper to compare, even at
		 * the deepest level a message may have (the fuzzer found a
		 * bare reference there unequal to its own copy) */
		if (x->self.kind == REMO_NIL || y->self.kind == REMO_NIL)
			return x->self.kind == y->self.kind;
		return equal(x->self, y->self, depth + 1);
	}
	}
}

uint64_t remo_hash(remo_value v)
{
	switch (v.kind) {
	case REMO_NIL:
		return remo__hash_u64(0x6e696c);
	case REMO_BOOL:
		return remo__hash_u64(v.as.b ? 0x74 : 0x66);
	case REMO_INT:
		return remo__hash_u64((uint64_t)v.as.i);
	case REMO_DOUBLE: {
		/* Equal doubles must hash alike: one NaN, one zero. */
		double d = isnan(v.as.d) ? NAN : v.as.d == 0 ? 0.0 : v.as.d;
		uint64_t u;
		memcpy(&u, &d, sizeof u);
		return remo__hash_u64(u ^ 0xd0d0d0d0u);
	}
	case REMO_STR:
	case REMO_BYTES: {
		const struct remo__str *s = REMO__STR(v);
		return remo__siphash(remo__str_ptr(s), s->len) ^ (uint64_t)v.kind;
	}
	case REMO_TUPLE: {
		const struct remo__tuple *t = REMO__TUPLE(v);
		uint64_t h = t->len;
		for (size_t i = 0; i < t->len; i++) {
			if (!remo_hashable(t->items[i]))
				return 0;
			h = remo__hash_u64(h ^ remo_hash(t->items[i]));
		}
		return h;
	}
	default:
		return 0;
	}
}

/* ==== str and bytes ==================================================== */

/* utf8: for a str, whether p holds UTF-8: 1 yes, 0 no, -1 check it */
static remo_value value_str(remo_kind kind, const void *p, size_t n,
                            int utf8)
{
	if (n > SIZE_MAX - sizeof(struct remo__str) - 1)
		return remo__invalid();
	struct remo__str *s = remo__malloc(sizeof *s + n + 1);
	if (s == NULL)
		return remo__invalid();
	s->len = n;
	s->ext = NULL;
	s->own_ext = false;
	s->base = remo_nil();
	if (n != 0)
		memcpy(s->data, p, n);
	s->data[n] = '\0';
	remo_value v = value_heap(kind, &s->hdr);
	if (kind == REMO_STR &&
	    (utf8 < 0 ? remo__utf8_valid((const uint8_t *)p, n) : utf8 > 0))
		s->hdr.flags |= REMO__OBJ_UTF8;
	return v;
}

static remo_value value_bytes_ext(const void *p, size_t n, bool own,
                                  remo_value base)
{
	struct remo__str *s = remo__malloc(sizeof *s + 1);
	if (s == NULL)
		return remo__invalid();
	s->len = n;
	s->ext = p;
	s->own_ext = own;
	s->base = remo_value_retain(base);
	s->data[0] = '\0';
	return value_heap(REMO_BYTES, &s->hdr);
}

remo_value remo__bytes_own(void *p, size_t n)
{
	/* on failure the caller still owns p */
	return value_bytes_ext(p, n, true, remo_nil());
}

remo_value remo__bytes_view(remo_value base, const void *p, size_t n)
{
	return value_bytes_ext(p, n, false, base);
}

remo_value remo_str(const char *s)
{
	return s ? value_str(REMO_STR, s, strlen(s), -1)
	         : value_str(REMO_STR, "", 0, 1);
}

remo_value remo_strn(const char *s, size_t n)
{
	return value_str(REMO_STR, s, n, -1);
}

remo_value remo__str_utf8(const char *s, size_t n)
{
	return value_str(REMO_STR, s, n, 1);
}

remo_value remo_bytes(const void *p, size_t n)
{
	return value_str(REMO_BYTES, p, n, 0);
}

const char *remo_str_data(remo_value v, size_t *len)
{
	if (v.kind != REMO_STR)
		return NULL;
	if (len != NULL)
		*len = REMO__STR(v)->len;
	return remo__str_ptr(REMO__STR(v));
}

const void *remo_bytes_data(remo_value v, size_t *len)
{
	if (v.kind != REMO_BYTES)
		return NULL;
	if (len != NULL)
		*len = REMO__STR(v)->len;
	return remo__str_ptr(REMO__STR(v));
}

/* ==== tuple ============================================================ */

remo_value remo_tuple(size_t n)
{
	if (n > (SIZE_MAX - sizeof(struct remo__tuple)) / sizeof(remo_value))
		return remo__invalid();
	struct remo__tuple *t = remo__malloc(sizeof *t + n * sizeof(remo_value));
	if (t == NULL)
		return remo__invalid();
	t->len = n;
	for (size_t i = 0; i < n; i++)
		t->items[i] = remo_nil();
	return value_heap(REMO_TUPLE, &t->hdr);
}

remo_value remo_tuple_of(size_t n, ...)
{
	va_list ap;
	remo_value t = remo_tuple(n);
	bool failed = !remo_ok(t);

	va_start(ap, n);
	for (size_t i = 0; i < n; i++) {
		remo_value v = va_arg(ap, remo_value);
		if (!remo_ok(v))
			failed = true;
		if (failed)
			remo_value_release(v);
		else
			REMO__TUPLE(t)->items[i] = v;
	}
	va_end(ap);
	if (failed) {
		remo_value_release(t);
		return remo__invalid();
	}
	return t;
}

size_t remo_tuple_len(remo_value t)
{
	return t.kind == REMO_TUPLE ? REMO__TUPLE(t)->len : 0;
}

remo_value remo_tuple_get(remo_value t, size_t i)
{
	if (t.kind != REMO_TUPLE || i >= REMO__TUPLE(t)->len)
		return remo_nil();
	return REMO__TUPLE(t)->items[i];
}

int remo_tuple_set(remo_value t, size_t i, remo_value v)
{
	int rc = REMO_OK;
	if (!remo_ok(v))
		rc = REMO_ENOMEM;
	else if (t.kind != REMO_TUPLE)
		rc = REMO_ETYPE;
	else if (i >= REMO__TUPLE(t)->len)
		rc = REMO_ERANGE;
	else if (atomic_load(&t.as.p->refs) != 1)
		rc = REMO_EINVAL; /* shared: immutable now */
	if (rc != REMO_OK) {
		remo_value_release(v);
		return rc;
	}
	remo_value_release(REMO__TUPLE(t)->items[i]);
	REMO__TUPLE(t)->items[i] = v;
	return REMO_OK;
}

/* ==== list ============================================================= */

remo_value remo_list(void)
{
	struct remo__list *l = remo__malloc(sizeof *l);
	if (l == NULL)
		return remo__invalid();
	l->len = l->cap = 0;
	l->items = NULL;
	l->watch = NULL;
	return value_heap(REMO_LIST, &l->hdr);
}

/*
 * The local list and dict functions on an object (a proxy standing for a
 * remote list, say) used to give 0 and nil without a word.  Now
 * TypeError says why, for the functions without a status to return it
 * in as well.
 */
void remo__not_local(const char *fn, remo_value v)
{
	/* only for an object: nil and the rest stay silent, as internal
	 * callers (an error being built) rely on */
	if (v.kind == REMO_OBJECT)
		remo__raisef("TypeError", "%s: not a local list or dict (a "
		             "proxy? remo_len, remo_getitem and the container "
		             "methods work on both)", fn);
}

size_t remo_list_len(remo_value l)
{
	if (l.kind != REMO_LIST) {
		remo__not_local("remo_list_len", l);
		return 0;
	}
	struct remo__list *x = REMO__LIST(l);
	remo__lock(&x->hdr);
	size_t n = x->len;
	remo__unlock(&x->hdr);
	return n;
}

remo_value remo_list_get(remo_value l, size_t i)
{
	if (l.kind != REMO_LIST) {
		remo__not_local("remo_list_get", l);
		return remo_nil();
	}
	struct remo__list *x = REMO__LIST(l);
	remo__lock(&x->hdr);
	remo_value v = i < x->len ? x->items[i] : remo_nil();
	remo__unlock(&x->hdr);
	return v;
}

int remo_list_get_new(remo_value l, size_t i, remo_value *out)
{
	*out = remo_nil();
	if (l.kind != REMO_LIST)
		return REMO_ETYPE;
	struct remo__list *x = REMO__LIST(l);
	remo__lock(&x->hdr);
	int rc = i < x->len ? REMO_OK : REMO_ERANGE;
	if (rc == REMO_OK)
		*out = remo_value_retain(x->items[i]);
	remo__unlock(&x->hdr);
	return rc;
}

int remo_list_set(remo_value l, size_t i, remo_value v)
{
	int rc = !remo_ok(v) ? REMO_ENOMEM
	         : l.kind != REMO_LIST ? REMO_ETYPE : REMO_OK;
	remo_value old = v; /* released last: old may own l */
	if (rc == REMO_OK) {
		struct remo__list *x = REMO__LIST(l);
		remo__lock(&x->hdr);
		bool watched = false;
		if (i < x->len) {
			old = x->items[i];
			x->items[i] = v;
			/* v is the list's now: a count of our own to report it */
			if ((watched = remo__watched(l)))
				remo_value_retain(v);
		} else {
			rc = REMO_ERANGE;
		}
		remo__unlock(&x->hdr);
		if (watched) {
			remo__watch_changed(l, "set", remo_int((int64_t)i), v);
			remo_value_release(v);
		}
	}
	remo_value_release(old);
	return rc;
}

/* Room for one more item.  Under x's lock. */
static int list_grow(struct remo__list *x)
{
	size_t cap = x->cap ? x->cap * 2 : 4;
	remo_value *items = cap > SIZE_MAX / sizeof *items ? NULL
	                    : remo__realloc(x->items, cap * sizeof *items);
	if (items == NULL)
		return REMO_ENOMEM;
	x->items = items;
	x->cap = cap;
	return REMO_OK;
}

/* Puts v (stolen) before item i (past the end: appends) and tells an
 * observer (op). */
static int list_put(remo_value l, size_t i, remo_value v, const char *op)
{
	if (!remo_ok(v))
		return REMO_ENOMEM;
	if (l.kind != REMO_LIST) {
		remo_value_release(v);
		return REMO_ETYPE;
	}
	struct remo__list *x = REMO__LIST(l);
	remo__lock(&x->hdr);
	if (x->len == x->cap && list_grow(x) != REMO_OK) {
		remo__unlock(&x->hdr);
		remo_value_release(v);
		return REMO_ENOMEM;
	}
	size_t at = i < x->len ? i : x->len;
	memmove(&x->items[at + 1], &x->items[at],
	        (x->len - at) * sizeof x->items[0]);
	x->items[at] = v;
	x->len++;
	bool watched = remo__watched(l);
	if (watched) /* v is the list's now: a count to report it */
		remo_value_retain(v);
	remo__unlock(&x->hdr);
	if (watched) {
		remo__watch_changed(l, op, remo_int((int64_t)at), v);
		remo_value_release(v);
	}
	return REMO_OK;
}

int remo_list_append(remo_value l, remo_value v)
{
	return list_put(l, SIZE_MAX, v, "append");
}

int remo_list_del(remo_value l, size_t i)
{
	remo_value old;
	int rc = remo_list_pop(l, i, &old);
	remo_value_release(old);
	return rc;
}

int remo_list_insert(remo_value l, size_t i, remo_value v)
{
	return list_put(l, i, v, "insert");
}

int remo_list_pop(remo_value l, size_t i, remo_value *out)
{
	*out = remo_nil();
	if (l.kind != REMO_LIST)
		return REMO_ETYPE;
	struct remo__list *x = REMO__LIST(l);
	remo__lock(&x->hdr);
	if (i >= x->len) {
		remo__unlock(&x->hdr);
		return REMO_ERANGE;
	}
	*out = x->items[i]; /* the list's count becomes the caller's */
	memmove(&x->items[i], &x->items[i + 1],
	        (x->len - i - 1) * sizeof x->items[0]);
	x->len--;
	remo__unlock(&x->hdr);
	if (remo__watched(l))
		remo__watch_changed(l, "delete", remo_int((int64_t)i), remo_nil());
	return REMO_OK;
}

int remo__list_del_same(remo_value l, size_t i, remo_value expect)
{
	struct remo__list *x = REMO__LIST(l);
	remo__lock(&x->hdr);
	bool same = i < x->len && x->items[i].kind == expect.kind &&
	            memcmp(&x->items[i].as, &expect.as, sizeof expect.as) == 0;
	remo_value old = remo_nil();
	if (same) {
		old = x->items[i];
		memmove(&x->items[i], &x->items[i + 1],
		        (x->len - i - 1) * sizeof x->items[0]);
		x->len--;
	}
	remo__unlock(&x->hdr);
	if (same && remo__watched(l))
		remo__watch_changed(l, "delete", remo_int((int64_t)i), remo_nil());
	remo_value_release(old);
	return same ? REMO_OK : REMO_ENOTFOUND;
}

void remo_list_clear(remo_value l)
{
	if (l.kind != REMO_LIST)
		return;
	struct remo__list *x = REMO__LIST(l);
	remo__lock(&x->hdr);
	remo_value *items = x->items;
	size_t n = x->len;
	x->items = NULL;
	x->len = x->cap = 0;
	remo__unlock(&x->hdr);
	if (remo__watched(l))
		remo__watch_changed(l, "clear", remo_nil(), remo_nil());
	for (size_t i = 0; i < n; i++) /* unlocked: an item may own l */
		remo_value_release(items[i]);
	remo__free(items);
}

remo_value *remo__list_snapshot(remo_value l, size_t start, size_t max,
                                remo_value *buf, size_t nbuf, size_t *n)
{
	struct remo__list *x = REMO__LIST(l);
	remo_value *items = buf;
	size_t cap = nbuf, k;
	remo__lock(&x->hdr);
	for (;;) {
		k = start >= x->len ? 0 : x->len - start;
		if (k > max)
			k = max;
		if (k <= cap)
			break;
		if (!remo__snapshot_room(&x->hdr, &items, buf, &cap, k))
			return NULL;
	}
	for (size_t i = 0; i < k; i++)
		items[i] = remo_value_retain(x->items[start + i]);
	remo__unlock(&x->hdr);
	*n = k;
	return items;
}

bool remo__snapshot_room(struct remo__obj *o, remo_value **items,
                         remo_value *buf, size_t *cap, size_t want)
{
	remo__unlock(o);
	if (*items != buf)
		remo__free(*items);
	*items = remo__malloc(want * sizeof **items);
	if (*items == NULL)
		return false;
	*cap = want;
	remo__lock(o);
	return true;
}

void remo__snapshot_free(remo_value *items, size_t n, remo_value *buf)
{
	for (size_t i = 0; i < n; i++)
		remo_value_release(items[i]);
	if (items != buf)
		remo__free(items);
}

remo_value remo_list_copy(remo_value l)
{
	if (l.kind != REMO_LIST)
		return remo__invalid();
	size_t n;
	remo_value one[1];
	remo_value *items = remo__list_snapshot(l, 0, SIZE_MAX, one, 1, &n);
	remo_value c = remo_list();
	if (items == NULL || !remo_ok(c)) {
		if (items != NULL)
			remo__snapshot_free(items, n, one);
		remo_value_release(c);
		return remo__invalid();
	}
	for (size_t i = 0; i < n; i++) /* the copy takes the counts */
		if (remo_list_append(c, items[i]) != REMO_OK) {
			/* append released items[i] */
			for (size_t j = i + 1; j < n; j++)
				remo_value_release(items[j]);
			if (items != one)
				remo__free(items);
			remo_value_release(c);
			return remo__invalid();
		}
	if (items != one)
		remo__free(items);
	return c;
}

/* ==== by value ========================================================= */

/* Set when a copy below gave up past REMO_MAX_DEPTH (not for memory):
 * remo_by_value names its failure by it. */
static _Thread_local bool copy_too_deep;

static size_t weight(remo_value v, unsigned depth)
{
	size_t w = 16, n;
	switch (v.kind) {
	case REMO_STR:
		remo_str_data(v, &n);
		return w + n;
	case REMO_BYTES:
		remo_bytes_data(v, &n);
		return w + n;
	case REMO_TUPLE:
		n = remo_tuple_len(v);
		for (size_t i = 0; i < n && depth < REMO_MAX_DEPTH; i++)
			w += weight(remo_tuple_get(v, i), depth + 1);
		return w;
	case REMO_LIST:
		return w + 16 * remo_list_len(v);
	case REMO_DICT:
		return w + 32 * remo_dict_len(v);
	default:
		return w;
	}
}

size_t remo__value_weight(remo_value v)
{
	return weight(v, 0);
}

remo_value remo__deep_copy(remo_value v, bool tuples, unsigned depth)
{
	if (depth > REMO_MAX_DEPTH) {
		copy_too_deep = true;
		return remo__invalid();
	}
	if (tuples && v.kind == REMO_TUPLE) {
		size_t n = remo_tuple_len(v);
		remo_value t = remo_tuple(n);
		for (size_t i = 0; remo_ok(t) && i < n; i++)
			if (remo_tuple_set(t, i, remo__deep_copy(remo_tuple_get(v, i),
			                   tuples, depth + 1)) != REMO_OK) {
				remo_value_release(t);
				return remo__invalid();
			}
		return t;
	}
	if (v.kind != REMO_LIST && v.kind != REMO_DICT)
		return remo_value_retain(v);
	/* a copy first, taken at one instant (v may be shared), then its
	 * items copied in turn: the copy is ours alone */
	bool list = v.kind == REMO_LIST;
	remo_value c = list ? remo_list_copy(v) : remo_dict_copy(v);
	size_t n = list ? remo_list_len(c) : 0, pos = 0;
	remo_value k, x;
	for (size_t i = 0; remo_ok(c) && i < n; i++)
		if (remo_list_set(c, i, remo__deep_copy(remo_list_get(c, i), tuples,
		                                        depth + 1)) != REMO_OK) {
			remo_value_release(c);
			return remo__invalid();
		}
	while (!list && remo_ok(c) && remo_dict_next(c, &pos, &k, &x))
		if (remo_dict_set(c, remo_value_retain(k),
		                  remo__deep_copy(x, tuples, depth + 1)) != REMO_OK) {
			remo_value_release(c);
			return remo__invalid();
		}
	return c;
}

/* v with its lists and dicts (in tuples too) made by-value copies. */
static remo_value by_value(remo_value v, unsigned depth)
{
	if (depth > REMO_MAX_DEPTH) {
		copy_too_deep = true;
		return remo__invalid();
	}
	if (v.kind == REMO_TUPLE) {
		size_t n = remo_tuple_len(v);
		remo_value t = remo_tuple(n);
		for (size_t i = 0; remo_ok(t) && i < n; i++)
			if (remo_tuple_set(t, i, by_value(remo_tuple_get(v, i),
			                                  depth + 1)) != REMO_OK) {
				remo_value_release(t);
				return remo__invalid();
			}
		return t;
	}
	if (v.kind != REMO_LIST && v.kind != REMO_DICT)
		return remo_value_retain(v);
	remo_value c = remo__deep_copy(v, false, depth);
	if (remo_ok(c))
		c.as.p->flags |= REMO__OBJ_BYVALUE;
	return c;
}

remo_value remo_by_value(remo_value v)
{
	if (v.kind != REMO_LIST && v.kind != REMO_DICT && v.kind != REMO_TUPLE) {
		remo__raisef("TypeError", "remo_by_value takes a list, dict or "
		             "tuple, not %s", remo_kind_name(v.kind));
		return remo__invalid();
	}
	copy_too_deep = false;
	remo_value c = by_value(v, 0);
	if (!remo_ok(c) && copy_too_deep)
		remo__raisef("RecursionError", "remo_by_value: nested deeper than "
		             "%d levels", REMO_MAX_DEPTH);
	else if (!remo_ok(c))
		remo__raisef("MemoryError", "remo_by_value: out of memory");
	return c;
}

/* ==== references ======================================================= */

remo_value remo__ref_alloc(remo_kind kind)
{
	REMO__ASSERT(remo__is_ref(kind));
	struct remo__ref *r = remo__malloc(sizeof *r);
	if (r == NULL)
		return remo__invalid();
	memset(r, 0, sizeof *r);
	r->self = remo_nil();
	return value_heap(kind, &r->hdr);
}

remo_value remo__ref_new(remo_kind kind, uint64_t id, bool home)
{
	REMO__ASSERT(id != 0 && id < (UINT64_C(1) << 63));
	remo_value v = remo__ref_alloc(kind);
	if (remo_ok(v)) {
		REMO__REF(v)->id = id;
		REMO__REF(v)->home = home;
	}
	return v;
}
