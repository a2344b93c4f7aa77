/*
 * observe.c -- observers of lists and dicts: remo_observe puts one on a
 * container, and every change to it or to a list or dict nested in it,
 * made by anyone (local code, any peer through a proxy), is reported to
 * the observer with the path from the root, after the change and before
 * the call that made it returns (so before a peer's reply is sent).
 *
 * Each watched container has a watch: the observer (shared by the whole
 * tree, counted) and its path from the root (a tuple of keys).  Watches
 * spread down: remo_observe walks what the root holds, and a list or
 * dict stored into a watched container is watched from then on (path:
 * the parent's and the key it went in under).  A container is in one
 * tree at a time: one already watched keeps its first watch.  A list
 * item's path names its index when it was stored (indices move under
 * inserts and deletes: a dict's key is the stable kind of path).
 */
#include "value/value.h"

struct remo__observer {
	atomic_uint refs;
	_Atomic(remo_observer_fn *) fn; /* NULL once stopped */
	void *user;
	struct remo__obj *_Atomic root; /* weak: NULL once it is freed */
};

struct remo__watch {
	struct remo__observer *obs; /* counted */
	remo_value path;            /* tuple of keys from the root */
};

/* path + (key): a new tuple; key stolen, path borrowed. */
static remo_value tuple_append(remo_value path, remo_value key)
{
	size_t n = remo_tuple_len(path);
	remo_value t = remo_tuple(n + 1);
	if (!remo_ok(t)) {
		remo_value_release(key);
		return t;
	}
	for (size_t i = 0; i < n; i++)
		remo_tuple_set(t, i, remo_value_retain(remo_tuple_get(path, i)));
	remo_tuple_set(t, n, key);
	return t;
}

static void observer_release(struct remo__observer *o)
{
	if (o != NULL && atomic_fetch_sub(&o->refs, 1) == 1)
		remo__free(o);
}

static struct remo__watch **watch_slot(remo_value v)
{
	return v.kind == REMO_LIST ? &REMO__LIST(v)->watch
	       : v.kind == REMO_DICT ? &REMO__DICT(v)->watch : NULL;
}

void remo__watch_free(struct remo__obj *o, struct remo__watch *w)
{
	if (w == NULL)
		return;
	/* the root going: its observer hears of no root any more */
	struct remo__obj *self = o;
	atomic_compare_exchange_strong(&w->obs->root, &self, NULL);
	observer_release(w->obs);
	remo_value_release(w->path);
	remo__free(w);
}

/* Watches v (a list or dict, not watched yet) for obs at path (stolen),
 * and what it holds, to depth.  False if it was watched already. */
static bool watch_attach(remo_value v, struct remo__observer *obs,
                         remo_value path, unsigned depth)
{
	struct remo__watch **slot = watch_slot(v);
	struct remo__watch *w = slot ? remo__malloc(sizeof *w) : NULL;
	if (w == NULL || depth > REMO_MAX_DEPTH) {
		remo__free(w);
		remo_value_release(path);
		return false;
	}
	atomic_fetch_add(&obs->refs, 1);
	*w = (struct remo__watch){obs, path};
	remo__lock(v.as.p);
	bool mine = *slot == NULL;
	if (mine) /* atomic: remo__watched looks without the lock */
		__atomic_store_n(slot, w, __ATOMIC_RELEASE);
	remo__unlock(v.as.p);
	if (!mine) {
		remo__watch_free(v.as.p, w);
		return false;
	}
	/* what it holds now: on a snapshot, unlocked */
	remo_value buf[16];
	size_t n;
	remo_value *items = v.kind == REMO_LIST
		? remo__list_snapshot(v, 0, SIZE_MAX, buf, 16, &n)
		: remo__dict_snapshot(v, 0, SIZE_MAX, buf, 16, &n);
	bool dict = v.kind == REMO_DICT;
	for (size_t i = 0; items != NULL && i < n; i += dict ? 2 : 1) {
		remo_value x = dict ? items[i + 1] : items[i];
		if (x.kind != REMO_LIST && x.kind != REMO_DICT)
			continue;
		remo_value key = dict ? remo_value_retain(items[i])
		                      : remo_int((int64_t)i);
		watch_attach(x, obs, tuple_append(path, key), depth + 1);
	}
	if (items != NULL)
		remo__snapshot_free(items, n, buf);
	return true;
}

int remo_observe(remo_value v, remo_observer_fn *fn, void *user)
{
	struct remo__watch **slot = watch_slot(v);
	if (slot == NULL)
		return REMO_ETYPE;
	if (fn == NULL) { /* stop: the root's watch goes (its tree's stay
	                     inert: their observer hears of no root) */
		remo__lock(v.as.p);
		struct remo__watch *w = *slot;
		__atomic_store_n(slot, NULL, __ATOMIC_RELEASE);
		remo__unlock(v.as.p);
		if (w != NULL) {
			atomic_store(&w->obs->fn, NULL);
			remo__watch_free(v.as.p, w);
		}
		return REMO_OK;
	}
	struct remo__observer *obs = remo__malloc(sizeof *obs);
	remo_value path = remo_tuple(0);
	if (obs == NULL || !remo_ok(path)) {
		remo__free(obs);
		return REMO_ENOMEM;
	}
	atomic_init(&obs->refs, 1);
	atomic_init(&obs->fn, fn);
	obs->user = user;
	atomic_init(&obs->root, v.as.p);
	bool ok = watch_attach(v, obs, path, 0);
	observer_release(obs); /* the watches hold it */
	return ok ? REMO_OK : REMO_EEXIST;
}

void remo__watch_changed(remo_value c, const char *op, remo_value key,
                         remo_value stored)
{
	struct remo__watch **slot = watch_slot(c);
	remo__lock(c.as.p);
	struct remo__watch *w = *slot;
	struct remo__observer *obs = w ? w->obs : NULL;
	remo_value path = w ? remo_value_retain(w->path) : remo_nil();
	if (obs != NULL)
		atomic_fetch_add(&obs->refs, 1);
	remo__unlock(c.as.p);
	if (obs == NULL)
		return;
	/* a container stored here joins the tree */
	if (stored.kind == REMO_LIST || stored.kind == REMO_DICT)
		watch_attach(stored, obs, tuple_append(path,
		             remo_value_retain(key)), remo_tuple_len(path) + 1);
	remo_observer_fn *fn = atomic_load(&obs->fn);
	/* the root, if it is still alive (a count taken only from a live
	 * one: it may be going in another thread) */
	remo_value r = remo_nil();
	struct remo__obj *root = atomic_load(&obs->root);
	unsigned n = root != NULL ? atomic_load(&root->refs) : 0;
	while (n != 0 && !atomic_compare_exchange_weak(&root->refs, &n, n + 1))
		;
	if (n != 0) {
		r.kind = root->kind;
		r.as.p = root;
	}
	if (fn != NULL)
		fn(r, path, op, key, obs->user);
	remo_value_release(r);
	remo_value_release(path);
	observer_release(obs);
}
