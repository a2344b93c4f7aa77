/*
 * table.c -- exports and imports: the names a program exports, the
 * object table (each value we sent, with the count the peer holds), the
 * proxies (each reference we received, by id, weak), which shapes the
 * peer has been sent, and the codec's hooks that turn references into
 * ids and back.  Releases due to the peer are queued here (struct due)
 * and go out with the next message (send.c).
 */
#include "session/session_impl.h"

static const struct remo__ref_ops session_proxy_ops;

/* ==== exports ========================================================== */

remo_exports *remo_exports_new(void)
{
	remo_exports *e = remo__malloc(sizeof *e);
	if (e == NULL)
		return NULL;
	e->names = remo_dict();
	e->who = remo_dict();
	if (!remo_ok(e->names) || !remo_ok(e->who)) {
		remo_value_release(e->names);
		remo_value_release(e->who);
		remo__free(e);
		return NULL;
	}
	pthread_mutex_init(&e->lock, NULL);
	return e;
}

int remo_export(remo_exports *e, const char *name, remo_value v)
{
	return remo_export_to(e, name, v, NULL);
}

int remo_export_to(remo_exports *e, const char *name, remo_value v,
                   const char *const *who)
{
	if (e == NULL || name == NULL || !remo_ok(v))
		return REMO_EINVAL;
	size_t n = 0;
	while (who != NULL && who[n] != NULL)
		n++;
	if (who != NULL && n == 0)
		return REMO_EINVAL; /* nobody at all: do not export it */
	remo_value key = remo_str(name), old, ids = remo_nil();
	if (who != NULL) {
		ids = remo_tuple(n);
		for (size_t i = 0; remo_ok(ids) && i < n; i++)
			remo_tuple_set(ids, i, remo_str(who[i]));
	}
	if (!remo_ok(key) || !remo_ok(ids)) {
		remo_value_release(key);
		remo_value_release(ids);
		return REMO_ENOMEM;
	}
	pthread_mutex_lock(&e->lock);
	int rc = remo_dict_get(e->names, key, &old) == REMO_OK ? REMO_EEXIST
	         : who != NULL ? remo_dict_set(e->who, remo_value_retain(key),
	                                       remo_value_retain(ids))
	         : REMO_OK;
	if (rc == REMO_OK)
		rc = remo_dict_set(e->names, remo_value_retain(key),
		                   remo_value_retain(v));
	if (rc != REMO_OK && rc != REMO_EEXIST && who != NULL)
		remo_dict_del(e->who, key);
	pthread_mutex_unlock(&e->lock);
	remo_value_release(key);
	remo_value_release(ids);
	return rc;
}

void remo_exports_free(remo_exports *e)
{
	if (e == NULL)
		return;
	remo_value_release(e->names);
	remo_value_release(e->who);
	pthread_mutex_destroy(&e->lock);
	remo__free(e);
}

/*
 * Whether s's peer has identity id: "secret" (it proved the session's
 * secret), "uid=N" (a unix socket's peer, by the kernel's word), or
 * "subject=S" (the certificate it proved over tls://): the tokens of
 * remo_caller's account, never anything the peer says of itself.
 */
static bool exports_peer_is(remo_session *s, const char *id)
{
	if (strcmp(id, "secret") == 0)
		return s->secret != NULL;
	char peer[512];
	if (!remo__session_peer(s, peer, sizeof peer))
		return false;
	size_t n = strlen(id);
	if (strncmp(id, "uid=", 4) == 0 && strncmp(peer, "unix ", 5) == 0) {
		const char *u = strstr(peer, " uid=");
		return u != NULL && strncmp(u + 1, id, n) == 0 && u[1 + n] == ' ';
	}
	if (strncmp(id, "subject=", 8) == 0 &&
	    strncmp(peer, "tls subject=", 12) == 0) {
		/* the subject runs to the last space, before the address */
		const char *end = strrchr(peer, ' ');
		return end != NULL && (size_t)(end - (peer + 4)) == n &&
		       strncmp(peer + 4, id, n) == 0;
	}
	return false;
}

/* Whether s's peer may look up the export whose who-list is ids (nil:
 * anyone). */
static bool exports_allowed(remo_session *s, remo_value ids)
{
	if (ids.kind == REMO_NIL)
		return true;
	for (size_t i = 0; i < remo_tuple_len(ids); i++)
		if (exports_peer_is(s, remo_str_data(remo_tuple_get(ids, i),
		                                     NULL)))
			return true;
	return false;
}

int remo__exports_names(remo_session *s, remo_value *out)
{
	remo_exports *e = s->exports;
	*out = remo_tuple(0);
	if (e == NULL)
		return remo_ok(*out) ? REMO_OK : REMO_ENOMEM;
	remo_value_release(*out);
	pthread_mutex_lock(&e->lock);
	remo_value names = remo_dict_copy(e->names);
	remo_value who = remo_dict_copy(e->who);
	pthread_mutex_unlock(&e->lock);
	remo_value list = remo_list();
	size_t pos = 0;
	remo_value k, v, ids;
	int rc = remo_ok(names) && remo_ok(who) && remo_ok(list) ? REMO_OK
	                                                        : REMO_ENOMEM;
	while (rc == REMO_OK && remo_dict_next(names, &pos, &k, &v))
		if (exports_allowed(s, remo_dict_get(who, k, &ids) == REMO_OK
		                       ? ids : remo_nil()))
			rc = remo_list_append(list, remo_value_retain(k));
	size_t n = rc == REMO_OK ? remo_list_len(list) : 0;
	*out = rc == REMO_OK ? remo_tuple(n) : remo_nil();
	for (size_t i = 0; remo_ok(*out) && i < n; i++)
		remo_tuple_set(*out, i, remo_value_retain(remo_list_get(list, i)));
	if (rc == REMO_OK && !remo_ok(*out))
		rc = REMO_ENOMEM;
	remo_value_release(names);
	remo_value_release(who);
	remo_value_release(list);
	return rc;
}

int remo__exports_get(remo_session *s, remo_value name, remo_value *out)
{
	remo_exports *e = s->exports;
	if (e == NULL)
		return REMO_ENOTFOUND;
	pthread_mutex_lock(&e->lock);
	remo_value ids = remo_nil();
	int rc = remo_dict_get(e->names, name, out);
	if (rc == REMO_OK) {
		*out = remo_value_retain(*out);
		if (remo_dict_get(e->who, name, &ids) == REMO_OK)
			ids = remo_value_retain(ids);
		else
			ids = remo_nil();
	}
	pthread_mutex_unlock(&e->lock);
	if (rc != REMO_OK || ids.kind == REMO_NIL)
		return rc;
	bool allowed = false;
	for (size_t i = 0; !allowed && i < remo_tuple_len(ids); i++)
		allowed = exports_peer_is(s, remo_str_data(remo_tuple_get(ids, i),
		                                           NULL));
	remo_value_release(ids);
	if (!allowed) {
		remo_value_release(*out);
		*out = remo_nil();
		return REMO_ENOTFOUND; /* it need not learn the name exists */
	}
	return REMO_OK;
}

/* ==== shapes =========================================================== */

/* Queue the shape of t (and its bases, first) if the peer lacks it.
 * Under send_lock. */
static int shape_need(remo_session *s, const void *p, bool is_type)
{
	uint32_t id;
	/* a peer's type or function (t->remote, f->fn NULL) is another
	 * session's proxy passed on: its shape goes too, under our id */
	if (is_type) {
		const remo_type *t = p;
		if (t->shape_id < 16)
			return REMO_OK; /* built in */
		if (t->base != NULL) {
			int rc = shape_need(s, t->base, true);
			if (rc != REMO_OK)
				return rc;
		}
		id = remo__type_out_id(t);
	} else {
		id = remo__func_out_id(p);
	}
	if (id == 0)
		return REMO_EINVAL; /* nothing that can be sent */
	/* Marked as sent only once it is sent (remo__send_preamble): a message
	 * that fails to go must not leave its shapes marked. */
	if (remo__map_get(&s->shapes_out, id) != NULL)
		return REMO_OK;
	for (size_t i = 0; i < s->nshape_queue; i++)
		if (s->shape_queue[i] == p)
			return REMO_OK;
	if (s->nshape_queue == s->capshape_queue) {
		size_t cap = s->capshape_queue ? s->capshape_queue * 2 : 8;
		const void **q = remo__realloc(s->shape_queue, cap * sizeof *q);
		if (q == NULL)
			return REMO_ENOMEM;
		s->shape_queue = q;
		bool *k = remo__realloc(s->shape_queue_is_type, cap * sizeof *k);
		if (k == NULL)
			return REMO_ENOMEM;
		s->shape_queue_is_type = k;
		s->capshape_queue = cap;
	}
	s->shape_queue[s->nshape_queue] = p;
	s->shape_queue_is_type[s->nshape_queue++] = is_type;
	return REMO_OK;
}

/* A peer's type of shape id, for the base of a type it sends
 * (remo__shape_from_value). */
const remo_type *remo__shape_base(void *ctx, uint32_t id)
{
	remo_session *s = ctx;
	pthread_mutex_lock(&s->lock);
	struct remo__shape *b = remo__map_get(&s->shapes_in, id);
	pthread_mutex_unlock(&s->lock);
	return b != NULL ? b->type : NULL;
}

/* ==== the codec hooks ================================================== */

/*
 * An object's identity is its type and its C pointer: two values made by
 * remo_object on the same pointer with the same type are one object
 * (sent with one id), but two types on one pointer (a struct and its
 * first member, say) are two.  Anything else is the value itself.  The
 * table is keyed by the pointer; entries that share it are chained
 * through same.
 */
static uint64_t entry_key(remo_value v)
{
	if (remo__is_objlike(v.kind) && REMO__REF(v)->ptr != NULL)
		return (uint64_t)(uintptr_t)REMO__REF(v)->ptr;
	return (uint64_t)(uintptr_t)v.as.p;
}

static bool entry_is(const struct entry *e, remo_value v)
{
	if (e->value.as.p == v.as.p)
		return true;
	return remo__is_objlike(v.kind) && REMO__REF(v)->ptr != NULL &&
	       remo__is_objlike(e->value.kind) &&
	       REMO__REF(e->value)->ptr == REMO__REF(v)->ptr &&
	       REMO__REF(e->value)->type == REMO__REF(v)->type;
}

/* Takes e out of its key's chain.  Under s->lock. */
static void entry_unkey(remo_session *s, struct entry *e)
{
	struct entry *head = remo__map_get(&s->table_key, e->key);
	if (head == e) {
		if (e->same != NULL) /* replacing never allocates */
			remo__map_put(&s->table_key, e->key, e->same);
		else
			remo__map_del(&s->table_key, e->key);
		return;
	}
	for (struct entry *p = head; p != NULL; p = p->same)
		if (p->same == e) {
			p->same = e->same;
			return;
		}
}

/*
 * Takes count from id's entry (if it has that many: a peer cannot free
 * what it was not given) and drops the entry at 0.  The value is released
 * after unlocking, since a release can run a program's destructor.
 */
void remo__table_uncount(remo_session *s, uint64_t id, uint64_t count)
{
	remo_value drop = remo_nil();
	pthread_mutex_lock(&s->lock);
	struct entry *e = remo__map_get(&s->table, id);
	if (e != NULL && count <= e->count) {
		e->count -= count;
		if (e->count == 0) {
			remo__map_del(&s->table, id);
			entry_unkey(s, e);
			drop = e->value;
			remo__free(e);
		}
	}
	pthread_mutex_unlock(&s->lock);
	remo_value_release(drop);
}

static void put_undo(remo_session *s, uint64_t id)
{
	remo__table_uncount(s, id, 1);
}

/* Takes back one count of each id the message being encoded counted (it
 * did not go). */
void remo__put_rollback(remo_session *s)
{
	for (size_t i = 0; i < s->nput_ids; i++)
		put_undo(s, s->put_ids[i]);
	s->nput_ids = 0;
}

/* The shape id v goes out with, queueing its shape if the peer lacks it
 * (REMO_EINVAL: not something that crosses by reference). */
static int put_shape(remo_session *s, remo_value v, uint32_t *shape)
{
	*shape = 0;
	if (v.kind == REMO_LIST) {
		*shape = REMO__SHAPE_LIST;
	} else if (v.kind == REMO_DICT) {
		*shape = REMO__SHAPE_DICT;
	} else if (remo__is_objlike(v.kind)) {
		const remo_type *t = REMO__REF(v)->type;
		if (t == &remo__type_list || t == &remo__type_dict) {
			*shape = t->shape_id; /* a proxy of a list or dict */
		} else if (t != NULL) {
			*shape = remo__type_out_id(t);
			return shape_need(s, t, true);
		}
	} else if (v.kind == REMO_CALLABLE) {
		const struct remo__func *f = REMO__REF(v)->func;
		if (f != NULL) {
			*shape = remo__func_out_id(f);
			return shape_need(s, f, false);
		}
	} else {
		return REMO_EINVAL;
	}
	return REMO_OK;
}

/* v's entry in the object table, made if v is not there yet, counted
 * once more for the message being encoded: its id in *id.  REMO_ELIMIT
 * past max_refs, REMO_ENOMEM.  Takes s->lock. */
static int put_count(remo_session *s, remo_value v, uint64_t *id)
{
	int rc = REMO_OK;
	uint64_t key = entry_key(v);
	pthread_mutex_lock(&s->lock);
	struct entry *head = remo__map_get(&s->table_key, key), *e = head;
	while (e != NULL && !entry_is(e, v))
		e = e->same;
	if (e == NULL) {
		if (s->table.len >= s->opts.max_refs) {
			rc = REMO_ELIMIT;
		} else if ((e = remo__malloc(sizeof *e)) == NULL) {
			rc = REMO_ENOMEM;
		} else {
			e->id = ++s->next_id;
			e->key = key;
			e->count = 0;
			e->value = remo_value_retain(v);
			e->same = head;
			if ((rc = remo__map_put(&s->table, e->id, e)) == REMO_OK &&
			    (rc = remo__map_put(&s->table_key, key, e)) != REMO_OK)
				remo__map_del(&s->table, e->id);
			if (rc != REMO_OK) {
				/* retained above and not in the table: the release
				 * cannot free it (v is still alive) */
				remo_value_release(e->value);
				remo__free(e);
				e = NULL;
			}
		}
	}
	*id = 0;
	if (e != NULL) {
		e->count++;
		*id = e->id;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* Notes id as counted by the message being encoded, so that a message
 * that does not go takes its counts back (remo__put_rollback). */
static int put_note(remo_session *s, uint64_t id)
{
	if (s->nput_ids == s->capput_ids) {
		size_t cap = s->capput_ids ? s->capput_ids * 2 : 16;
		uint64_t *ids = remo__realloc(s->put_ids, cap * sizeof *ids);
		if (ids == NULL)
			return REMO_ENOMEM;
		s->put_ids = ids;
		s->capput_ids = cap;
	}
	s->put_ids[s->nput_ids++] = id;
	return REMO_OK;
}

/* Encoding: export v (or send a proxy home).  Under send_lock. */
int remo__hook_put_ref(void *ctx, remo_buf *b, remo_value v)
{
	remo_session *s = ctx;
	remo_kind kind = v.kind == REMO_LIST || v.kind == REMO_DICT ? REMO_OBJECT
	                                                             : v.kind;
	if (remo__is_ref(v.kind) && REMO__REF(v)->owner == s)
		return remo__put_ref(b, kind, REMO__REF(v)->id, true, 0);
	if (remo__is_ref(v.kind) && REMO__REF(v)->id != 0 &&
	    REMO__REF(v)->owner == NULL)
		return REMO_EINVAL; /* a bare reference has no meaning here */
	if (remo__is_ref(v.kind) && REMO__REF(v)->promise != NULL)
		return REMO_ETYPE; /* a promise is only ever a target */

	uint32_t shape;
	uint64_t id = 0;
	int rc = put_shape(s, v, &shape);
	if (rc != REMO_OK)
		return rc; /* nothing counted yet: nothing to take back */
	rc = put_count(s, v, &id);
	if (rc == REMO_OK && (rc = put_note(s, id)) != REMO_OK)
		put_undo(s, id);
	if (rc != REMO_OK) {
		s->put_error = rc;
		return rc;
	}
	return remo__put_ref(b, kind, id, false, shape);
}

/* Try to take a reference to a proxy that may be dying. */
static bool ref_retain_live(struct remo__ref *r)
{
	unsigned n = atomic_load(&r->hdr.refs);
	while (n != 0)
		if (atomic_compare_exchange_weak(&r->hdr.refs, &n, n + 1))
			return true;
	return false;
}

/* Decoding: a reference read off the wire becomes a value. */
int remo__hook_get_ref(void *ctx, remo_kind kind, uint64_t id, bool home,
                        uint32_t shape_id, remo_value *out)
{
	remo_session *s = ctx;
	*out = remo_nil();
	if (home) {
		pthread_mutex_lock(&s->lock);
		struct entry *e = remo__map_get(&s->table, id);
		if (e != NULL)
			*out = remo_value_retain(e->value);
		pthread_mutex_unlock(&s->lock);
		return e != NULL ? REMO_OK : REMO_ENOTFOUND;
	}

	pthread_mutex_lock(&s->lock);
	struct remo__ref *r = remo__map_get(&s->proxies, id);
	if (r != NULL && r->hdr.kind == kind && ref_retain_live(r)) {
		r->received++;
		out->kind = kind;
		out->as.p = &r->hdr;
		pthread_mutex_unlock(&s->lock);
		return REMO_OK;
	}
	const remo_type *type = NULL;
	const struct remo__func *func = NULL;
	int rc = REMO_OK;
	if (kind == REMO_OBJECT && shape_id == REMO__SHAPE_LIST) {
		type = &remo__type_list;
	} else if (kind == REMO_OBJECT && shape_id == REMO__SHAPE_DICT) {
		type = &remo__type_dict;
	} else {
		struct remo__shape *sh = remo__map_get(&s->shapes_in, shape_id);
		if (remo__is_objlike(kind) && sh != NULL && sh->type != NULL)
			type = sh->type;
		else if (kind == REMO_CALLABLE && sh != NULL && sh->func != NULL)
			func = sh->func;
		else
			rc = REMO_EPROTO; /* a shape must come before its use */
	}
	remo_value v = rc == REMO_OK ? remo__ref_alloc(kind) : remo_nil();
	if (rc == REMO_OK && !remo_ok(v))
		rc = REMO_ENOMEM;
	if (rc == REMO_OK) {
		struct remo__ref *nr = REMO__REF(v);
		nr->id = id;
		nr->shape_id = shape_id;
		nr->type = type;
		nr->func = func;
		nr->received = 1;
		nr->owner = s;
		nr->ops = &session_proxy_ops;
		remo__session_retain(s);
		if (remo__map_put(&s->proxies, id, nr) != REMO_OK) {
			/* still a working proxy, just not shared by identity */
		}
		*out = v;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/*
 * Queues k ints to go with the next message sent.  Under s->lock.
 * Without memory they are lost, which is safe: the peer keeps what they
 * name until the session ends.  True when a full batch (RELEASE_BATCH
 * items) waits: then remo__due_flush, after unlocking.
 */
bool remo__due_push(remo_session *s, struct due *d, const uint64_t *v,
                     size_t k)
{
	if (s->status != REMO_OK)
		return false;
	if (d->n + k > d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 32;
		uint64_t *p = remo__realloc(d->v, cap * sizeof *p);
		if (p != NULL) {
			d->v = p;
			d->cap = cap;
		}
	}
	if (d->n + k <= d->cap) {
		memcpy(d->v + d->n, v, k * sizeof *v);
		d->n += k;
		atomic_fetch_add(&s->ndue, 1);
	}
	return d->n >= k * RELEASE_BATCH;
}

/* A full batch goes now if nobody is sending; otherwise the thread that
 * is sending takes it with its next message. */
void remo__due_flush(remo_session *s)
{
	if (pthread_mutex_trylock(&s->send_lock) == 0) {
		remo__send_preamble(s, NULL, NULL, 0);
		pthread_mutex_unlock(&s->send_lock);
	}
}

/* A proxy's last reference is gone (value.c, through its ops): it
 * leaves the proxy table, and its release goes to the peer in a batch. */
static void session_proxy_gone(struct remo__ref *r)
{
	remo_session *s = r->owner;
	pthread_mutex_lock(&s->lock);
	if (remo__map_get(&s->proxies, r->id) == r)
		remo__map_del(&s->proxies, r->id);
	const uint64_t pair[2] = {r->id, r->received};
	bool flush = remo__due_push(s, &s->releases, pair, 2);
	pthread_mutex_unlock(&s->lock);
	r->owner = NULL;
	if (flush)
		remo__due_flush(s);
	remo__session_release(s);
}

static const struct remo__ref_ops session_proxy_ops = {
	.gone = session_proxy_gone,
};
