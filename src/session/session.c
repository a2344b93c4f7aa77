/*
 * session.c -- one session per peer: the handshake, request ids, routing
 * replies and nested requests to the threads that wait for them, the
 * object table, proxies, shapes, and releasing references in batches.
 *
 * Neighbours: below, a remo_channel (send, recv) and the codec (wire.h),
 * which this file gives hooks for references; above, ops.c, which turns
 * remo_getattr and friends on a proxy into remo__session_request.
 *
 * Thread model (doc/design.md, "thread model"): there is no reader
 * thread.  Whichever waiting thread finds nobody reading becomes the
 * reader, receives one message, routes it, and goes back to waiting:
 *
 *   reply or error  -> the waiter whose request id it names
 *   request with a cause that is one of our pending calls
 *                   -> that call's waiter, which serves it in its own
 *                      thread: a callback runs in the thread that made
 *                      the call, so callbacks nest both ways, and a
 *                      callback that needs a lock its caller holds (a
 *                      recursive mutex, say) still works
 *   other request   -> the top-level queue, served by remo_session_serve
 *                      threads, or by any waiter if nobody serves
 *
 * The rejected design, a reader thread per session, costs a thread and
 * two context switches per call, and makes callbacks run in a thread the
 * program did not choose.
 *
 * Locks: s->lock guards everything but sending; s->send_lock serialises
 * encoding and sending, so that a shape is always sent before the first
 * message that uses it.  Order: send_lock, then lock.  No value is
 * released under s->lock (a release can run a destructor or reach
 * another session).
 */
#include "session/session.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define PROTO_VERSION 1

enum msg_type {
	MSG_HELLO = 0,   /* [0, version, max_message, max_call_depth]       */
	MSG_REQ = 1,     /* [1, reqid, cause, depth, op, target, a, b]      */
	MSG_REPLY = 2,   /* [2, reqid, value]                               */
	MSG_ERROR = 3,   /* [3, reqid, error]                               */
	MSG_RELEASE = 4, /* [4, (id, count, id, count, ...)]                */
	MSG_SHAPE = 5,   /* [5, shape_id, shape]                            */
	MSG_BYE = 6,     /* [6]                                             */
	MSG_PING = 7,    /* [7]: a heartbeat, for the lease               */
	MSG_DROP = 8,    /* [8, (reqid, ...)]: kept results not needed    */
	MSG_BATCH = 9,   /* [9, request, request, ...]: each a whole REQ  */
	MSG_MULTI = 10,  /* [10, message, ...]: what would have gone in
	                    frames of their own, in one (a request and the
	                    releases sent before it)                      */
};

/* A message this small takes the releases and drops due before it into
 * its own frame (MSG_MULTI): measured, a pipelined call sent its
 * future's DROP as a frame of its own (1.94 frames per call). */
#define MULTI_MAX 4096
#define MULTI_PARTS 8 /* messages one MULTI may hold */

/* A request's op field: the operation in the low 8 bits, flags above
 * (remo_impl.h: REMO__REQ_KEEP, _ONEWAY, _PIPE; doc/wire.md). */
#define REQ_FLAGS (REMO__REQ_KEEP | REMO__REQ_ONEWAY | REMO__REQ_PIPE)

/* Release batches go out when this many ids wait, or with the next
 * message sent, whichever is first. */
#define RELEASE_BATCH 64

/* What a peer may make us hold: shapes it sent, and requests waiting to
 * be served.  A remo peer makes calls one per thread and shapes one per
 * type, so these are far above real use; past them the peer is flooding
 * and the session ends (REMO_EPROTO). */
#define MAX_SHAPES 65536
#define MAX_QUEUED 4096

struct msg {
	struct msg *next;
	remo_buf buf;
	int type;
	uint64_t reqid, cause;
	uint64_t depth, op;
	unsigned flags;  /* a request's REMO__REQ_* flags */
	uint64_t pipe;   /* REMO__REQ_PIPE: the request whose result is the
	                    target */
	remo__rd rest; /* the fields after the header, inside buf */
	/* Decoded by the reader (replies, one-way requests): see msg_decode */
	bool decoded;
	int drc;
	remo_value vals[3];
};

struct waiter {
	uint64_t reqid;          /* our request; 0 for a serving thread */
	struct msg *head, *tail; /* requests that belong to our call    */
	struct msg *reply;
	struct remo_future *fut; /* an async call: route settles it     */
	bool done;               /* fut settled                         */
};

/*
 * An async call.  Counted: the caller's handle, the session's while it is
 * in flight, and each promise made from it.  Everything but refs is
 * under s->lock once started.
 */
struct remo_future {
	atomic_uint refs;
	remo_session *s;         /* retained; NULL for a call that ran here */
	struct waiter w;
	bool keep;               /* the peer keeps the result (pipelining) */
	bool started;            /* sent: only then can fn be called       */
	int status;              /* REMO_OK, REMO_ERAISED, or the failure  */
	remo_value value;        /* the result, or the error               */
	remo_value args[3];      /* retained while in flight               */
	int64_t deadline;        /* ms, or -1                              */
	remo_future_fn *fn;
	void *user;
	bool then_set;           /* remo_future_then was called           */
	struct remo_future *prev, *next; /* s->inflight, oldest first      */
	struct remo_future *settled_next;
};

/* A result kept for pipelined requests (callee side). */
struct kept {
	bool done, failed, dropped;
	uint32_t uses;           /* pipelined requests routed, not served */
	remo_value val;
	struct msg *wait_head, *wait_tail; /* pipelined requests that came
	                                      to be served before it was
	                                      done: queued when it is */
};

/* Ints waiting to go to the peer in the next preamble (send_preamble):
 * RELEASE's (id, count) pairs, DROP's reqids.  Under s->lock. */
struct due {
	uint64_t *v;
	size_t n, cap;
};

struct entry {
	uint64_t id;
	uint64_t key;      /* identity */
	uint64_t count;    /* sent to the peer, minus released */
	remo_value value;  /* retained */
};

struct remo_session {
	atomic_uint refs;
	struct remo_session *lease_next; /* in the lease list, if leased */
	atomic_llong last_recv_ms, last_send_ms;
	remo_channel ch;
	remo_exports *exports;
	remo_session_opts opts;
	_Atomic size_t peer_max_message; /* written by the reader, read by senders */
	atomic_int nparked;    /* threads parked with a live traceback */
	atomic_int ndeadlines; /* async calls in flight with a deadline */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	int status;            /* REMO_OK while open */
	atomic_bool reading;   /* written under lock; the lease thread peeks */
	bool hello_seen;
	uint64_t next_reqid;
	uint64_t next_id;
	unsigned nservers;     /* threads in remo_session_serve */
	struct remo__map pending;   /* reqid -> waiter */
	struct msg *top_head, *top_tail;
	size_t nqueued;             /* requests in all queues */
	remo_buf rxspare;           /* a used receive buffer, kept */
	size_t max_queued;          /* MAX_QUEUED; lower in tests */
	struct remo__map table;     /* id -> entry */
	struct remo__map table_key; /* identity -> entry */
	struct remo__map proxies;   /* id -> remo__ref, weak */
	struct remo__map shapes_in; /* shape id -> shape */
	struct due releases;        /* (id, count) pairs to send */

	pthread_mutex_t send_lock;
	remo_buf sendbuf, shapebuf;
	remo_buf multibuf, framebuf; /* a MULTI's parts, and the MULTI */
	struct remo__map shapes_out; /* shape id -> (void *)1, sent */
	const void **shape_queue;    /* types or funcs to send first */
	bool *shape_queue_is_type;
	size_t nshape_queue, capshape_queue;
	int put_error;               /* a put_ref failure while encoding */
	uint64_t *put_ids;           /* ids counted by the message being  */
	size_t nput_ids, capput_ids; /* encoded, to undo if it fails      */

	/* Call styles (under lock) */
	struct remo_future *inflight_head, *inflight_tail;
	size_t ninflight;            /* async calls in flight             */
	size_t nkept_out;            /* our futures the peer keeps        */
	unsigned oneway_since;       /* one-way calls since the last wait */
	struct remo__map kept;       /* peer's reqid -> struct kept       */
	struct due drops;            /* reqids to send in MSG_DROP        */
};

struct remo_exports {
	pthread_mutex_t lock;
	remo_value names; /* dict: str -> value */
};

/* The request this thread is serving, innermost first, per session. */
struct serving {
	remo_session *s;
	uint64_t reqid;
	uint64_t depth;
	struct serving *prev;
	bool oneway;      /* the request wants no reply                  */
	bool replied;     /* its ERROR went early (a live traceback)     */
	size_t lmark;     /* where its REMO_LOCAL records start          */
	bool keep;        /* the peer may pipeline on its result         */
};
static _Thread_local struct serving *tls_serving;

static const char *const op_names[] = {
	[REMO__OP_LOOKUP] = "lookup",     [REMO__OP_GETATTR] = "getattr",
	[REMO__OP_SETATTR] = "setattr",   [REMO__OP_CALL] = "call",
	[REMO__OP_CALLM] = "call_method", [REMO__OP_LEN] = "len",
	[REMO__OP_GETITEM] = "getitem",   [REMO__OP_SETITEM] = "setitem",
	[REMO__OP_CONTAINS] = "contains", [REMO__OP_CHUNK] = "chunk",
};

struct remo__session_hooks remo__session_hooks;
static const struct remo__ref_ops session_proxy_ops;

/* ==== exports ========================================================== */

remo_exports *remo_exports_new(void)
{
	remo_exports *e = remo__malloc(sizeof *e);
	if (e == NULL)
		return NULL;
	e->names = remo_dict();
	if (!remo_ok(e->names)) {
		remo__free(e);
		return NULL;
	}
	pthread_mutex_init(&e->lock, NULL);
	return e;
}

int remo_export(remo_exports *e, const char *name, remo_value v)
{
	if (e == NULL || name == NULL || !remo_ok(v))
		return REMO_EINVAL;
	remo_value key = remo_str(name), old;
	if (!remo_ok(key))
		return REMO_ENOMEM;
	pthread_mutex_lock(&e->lock);
	int rc = remo_dict_get(e->names, key, &old) == REMO_OK
	         ? REMO_EEXIST
	         : remo_dict_set(e->names, remo_value_retain(key),
	                         remo_value_retain(v));
	pthread_mutex_unlock(&e->lock);
	remo_value_release(key);
	return rc;
}

void remo_exports_free(remo_exports *e)
{
	if (e == NULL)
		return;
	remo_value_release(e->names);
	pthread_mutex_destroy(&e->lock);
	remo__free(e);
}

static int exports_get(remo_exports *e, remo_value name, remo_value *out)
{
	if (e == NULL)
		return REMO_ENOTFOUND;
	pthread_mutex_lock(&e->lock);
	int rc = remo_dict_get(e->names, name, out);
	if (rc == REMO_OK)
		*out = remo_value_retain(*out);
	pthread_mutex_unlock(&e->lock);
	return rc;
}

/* ==== small helpers ==================================================== */

/* The default spin window for transport sessions: $REMO_SPIN_US, or 20. */
int remo__spin_us(void)
{
	static atomic_int cached = -1;
	int v = atomic_load(&cached);
	if (v < 0) {
		const char *e = getenv("REMO_SPIN_US");
		v = e ? atoi(e) : 20;
		if (v < 0)
			v = 0; /* REMO_SPIN_US=0 or negative: no spinning */
		if (v > 10000)
			v = 10000;
		atomic_store(&cached, v);
	}
	return v;
}

/* Not under s->lock: decoded values may be proxies. */
static void msg_free(struct msg *m)
{
	if (m != NULL) {
		for (int i = 0; i < 3; i++)
			remo_value_release(m->vals[i]);
		remo_buf_free(&m->buf);
		remo__free(m);
	}
}

/*
 * Frees m but keeps its buffer for the next receive: a transport that
 * hands over a whole buffer (the stream transport swaps) then has a
 * buffer of the right size already, instead of allocating one per
 * message (measured: a malloc of 1 MiB per 1 MiB call).  Not under
 * s->lock.
 */
#define RX_KEEP_MAX (8u << 20)
static void msg_done(remo_session *s, struct msg *m)
{
	if (m == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	if (s->rxspare.data == NULL && m->buf.cap <= RX_KEEP_MAX) {
		s->rxspare = m->buf;
		s->rxspare.len = 0;
		m->buf = (remo_buf){0};
	}
	pthread_mutex_unlock(&s->lock);
	msg_free(m);
}

static void queue_push(struct msg **head, struct msg **tail, struct msg *m)
{
	m->next = NULL;
	if (*tail)
		(*tail)->next = m;
	else
		*head = m;
	*tail = m;
}

static struct msg *queue_pop(struct msg **head, struct msg **tail)
{
	struct msg *m = *head;
	if (m != NULL && (*head = m->next) == NULL)
		*tail = NULL;
	return m;
}

static void session_retain(remo_session *s)
{
	atomic_fetch_add(&s->refs, 1);
}

static void session_destroy(remo_session *s);
static int send_preamble(remo_session *s, remo_buf *into, uint32_t *parts,
                         size_t budget);

static void session_release(remo_session *s)
{
	if (atomic_fetch_sub(&s->refs, 1) == 1)
		session_destroy(s);
}

/* ==== ending =========================================================== */

static void future_settle(remo_session *s, struct remo_future *f, int status,
                          remo_value value, struct remo_future **settled);
static void futures_notify(struct remo_future *settled);

static void kept_free_all(struct remo__map *kept)
{
	size_t pos = 0;
	uint64_t id;
	void *p;
	while (remo__map_next(kept, &pos, &id, &p)) {
		struct kept *k = p;
		remo_value_release(k->val);
		struct msg *m;
		while ((m = queue_pop(&k->wait_head, &k->wait_tail)) != NULL)
			msg_free(m);
		remo__free(k);
	}
	remo__map_free(kept);
}

/*
 * Ends the session with status (if it is still open): every waiter wakes
 * and fails, and every reference the peer held is released.  Called
 * without s->lock.
 */
static void session_end(remo_session *s, int status)
{
	struct remo__map table, kept;
	pthread_mutex_lock(&s->lock);
	if (s->status == REMO_OK)
		s->status = status;
	table = s->table;
	memset(&s->table, 0, sizeof s->table);
	remo__map_free(&s->table_key);
	kept = s->kept;
	memset(&s->kept, 0, sizeof s->kept);
	/* an ended session serves nothing more, even what was queued */
	struct msg *queued = s->top_head;
	s->top_head = s->top_tail = NULL;
	struct remo_future *settled = NULL;
	while (s->inflight_head != NULL) {
		struct remo_future *f = s->inflight_head;
		remo__map_del(&s->pending, f->w.reqid);
		future_settle(s, f, s->status, remo_nil(), &settled);
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	futures_notify(settled);
	while (queued != NULL) {
		struct msg *next = queued->next;
		msg_free(queued);
		queued = next;
	}
	kept_free_all(&kept);

	/* Close the channel so a blocked reader wakes and sends fail fast. */
	if (s->ch.close != NULL)
		s->ch.close(s->ch.user);

	size_t pos = 0;
	uint64_t id;
	void *p;
	while (remo__map_next(&table, &pos, &id, &p)) {
		struct entry *e = p;
		remo_value_release(e->value);
		remo__free(e);
	}
	remo__map_free(&table);
}

/* ==== shapes =========================================================== */

/* Queue the shape of t (and its bases, first) if the peer lacks it.
 * Under send_lock. */
static int shape_need(remo_session *s, const void *p, bool is_type)
{
	uint32_t id;
	if (is_type) {
		const remo_type *t = p;
		if (t->shape_id < 16 || t->remote)
			return REMO_OK; /* built in, or the peer's own */
		if (t->base != NULL) {
			int rc = shape_need(s, t->base, true);
			if (rc != REMO_OK)
				return rc;
		}
		id = t->shape_id;
	} else {
		const struct remo__func *f = p;
		if (f->fn == NULL)
			return REMO_OK;
		id = f->shape_id;
	}
	/* Marked as sent only once it is sent (send_preamble): a message
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
static const remo_type *shape_base(void *ctx, uint32_t id)
{
	remo_session *s = ctx;
	pthread_mutex_lock(&s->lock);
	struct remo__shape *b = remo__map_get(&s->shapes_in, id);
	pthread_mutex_unlock(&s->lock);
	return b != NULL ? b->type : NULL;
}

/* ==== the codec hooks ================================================== */

static uint64_t entry_key(remo_value v)
{
	if (remo__is_objlike(v.kind) && REMO__REF(v)->ptr != NULL)
		return (uint64_t)(uintptr_t)REMO__REF(v)->ptr;
	return (uint64_t)(uintptr_t)v.as.p;
}

/* Takes back one count of id (a message that carried it did not go). */
/*
 * Takes count from id's entry (if it has that many: a peer cannot free
 * what it was not given) and drops the entry at 0.  The value is released
 * after unlocking, since a release can run a program's destructor.
 */
static void table_uncount(remo_session *s, uint64_t id, uint64_t count)
{
	remo_value drop = remo_nil();
	pthread_mutex_lock(&s->lock);
	struct entry *e = remo__map_get(&s->table, id);
	if (e != NULL && count <= e->count) {
		e->count -= count;
		if (e->count == 0) {
			remo__map_del(&s->table, id);
			remo__map_del(&s->table_key, e->key);
			drop = e->value;
			remo__free(e);
		}
	}
	pthread_mutex_unlock(&s->lock);
	remo_value_release(drop);
}

static void put_undo(remo_session *s, uint64_t id)
{
	table_uncount(s, id, 1);
}

static void put_rollback(remo_session *s)
{
	for (size_t i = 0; i < s->nput_ids; i++)
		put_undo(s, s->put_ids[i]);
	s->nput_ids = 0;
}

/* Encoding: export v (or send a proxy home).  Under send_lock. */
static int hook_put_ref(void *ctx, remo_buf *b, remo_value v)
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
	int rc = REMO_OK;
	if (v.kind == REMO_LIST) {
		shape = REMO__SHAPE_LIST;
	} else if (v.kind == REMO_DICT) {
		shape = REMO__SHAPE_DICT;
	} else if (remo__is_objlike(v.kind)) {
		const remo_type *t = REMO__REF(v)->type;
		shape = t ? t->shape_id : 0;
		if (t != NULL)
			rc = shape_need(s, t, true);
	} else if (v.kind == REMO_CALLABLE) {
		const struct remo__func *f = REMO__REF(v)->func;
		shape = f ? f->shape_id : 0;
		if (f != NULL)
			rc = shape_need(s, f, false);
	} else {
		return REMO_EINVAL;
	}
	if (rc != REMO_OK)
		return rc;

	uint64_t key = entry_key(v);
	pthread_mutex_lock(&s->lock);
	struct entry *e = remo__map_get(&s->table_key, key);
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
	uint64_t id = 0;
	if (e != NULL) {
		e->count++;
		id = e->id;
	}
	pthread_mutex_unlock(&s->lock);
	if (rc == REMO_OK && s->nput_ids == s->capput_ids) {
		size_t cap = s->capput_ids ? s->capput_ids * 2 : 16;
		uint64_t *ids = remo__realloc(s->put_ids, cap * sizeof *ids);
		if (ids == NULL)
			rc = REMO_ENOMEM;
		else {
			s->put_ids = ids;
			s->capput_ids = cap;
		}
	}
	if (rc == REMO_OK)
		s->put_ids[s->nput_ids++] = id;
	else if (e != NULL)
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
static int hook_get_ref(void *ctx, remo_kind kind, uint64_t id, bool home,
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
		session_retain(s);
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
 * items) waits: then due_flush, after unlocking.
 */
static bool due_push(remo_session *s, struct due *d, const uint64_t *v,
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
	}
	return d->n >= k * RELEASE_BATCH;
}

/* A full batch goes now if nobody is sending; otherwise the thread that
 * is sending takes it with its next message. */
static void due_flush(remo_session *s)
{
	if (pthread_mutex_trylock(&s->send_lock) == 0) {
		send_preamble(s, NULL, NULL, 0);
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
	bool flush = due_push(s, &s->releases, pair, 2);
	pthread_mutex_unlock(&s->lock);
	r->owner = NULL;
	if (flush)
		due_flush(s);
	session_release(s);
}

static const struct remo__ref_ops session_proxy_ops = {
	.gone = session_proxy_gone,
};

/* ==== sending ========================================================== */

static int send_raw(remo_session *s, const remo_buf *b)
{
	if (b->len > s->peer_max_message)
		return REMO_ETOOBIG;
	int rc = s->ch.send(s->ch.user, b->data, b->len);
	if (rc == REMO_OK)
		atomic_store(&s->last_send_ms, remo__now_ms());
	return rc;
}

/*
 * One message of the preamble, in s->shapebuf: appended to into (the
 * parts of a MULTI: the message these go before takes them into its
 * frame) while it fits budget and MULTI_PARTS, else sent as a frame.
 */
static int preamble_put(remo_session *s, remo_buf *into, uint32_t *parts,
                        size_t *budget)
{
	remo_buf *m = &s->shapebuf;
	if (into == NULL || m->len > *budget || *parts + 1 >= MULTI_PARTS)
		return send_raw(s, m);
	int rc = remo__buf_grow(into, m->len);
	if (rc != REMO_OK)
		return send_raw(s, m);
	memcpy(into->data + into->len, m->data, m->len);
	into->len += m->len;
	*budget -= m->len;
	(*parts)++;
	return REMO_OK;
}

/*
 * The ints due in d (taken under s->lock) as [type, (int, ...)]
 * messages that fit the peer's limit, group ints never split between
 * two (a RELEASE pair): an int takes at most 9 bytes, the header 8.
 */
static int preamble_due(remo_session *s, int type, struct due *d,
                        size_t group, remo_buf *into, uint32_t *parts,
                        size_t *budget)
{
	pthread_mutex_lock(&s->lock);
	struct due took = *d;
	memset(d, 0, sizeof *d);
	pthread_mutex_unlock(&s->lock);

	size_t per = (atomic_load(&s->peer_max_message) - 8) / 9 / group * group;
	int rc = REMO_OK;
	for (size_t at = 0; rc == REMO_OK && at < took.n;) {
		size_t k = took.n - at > per ? per : took.n - at;
		s->shapebuf.len = 0;
		rc = remo__wire_put_array(&s->shapebuf, 2);
		if (rc == REMO_OK)
			rc = remo__wire_put_int(&s->shapebuf, type);
		if (rc == REMO_OK)
			rc = remo__wire_put_array(&s->shapebuf, (uint32_t)k);
		for (size_t i = 0; rc == REMO_OK && i < k; i++)
			rc = remo__wire_put_int(&s->shapebuf,
			                        (int64_t)took.v[at + i]);
		if (rc == REMO_OK)
			rc = preamble_put(s, into, parts, budget);
		at += k;
	}
	remo__free(took.v);
	return rc;
}

/* Sends queued shapes (always frames of their own: they are rare), the
 * release batch and the drops, or with into, appends those that fit to
 * it (see preamble_put).  Under send_lock. */
static int send_preamble(remo_session *s, remo_buf *into, uint32_t *parts,
                         size_t budget)
{
	int rc = REMO_OK;
	for (size_t i = 0; rc == REMO_OK && i < s->nshape_queue; i++) {
		const void *p = s->shape_queue[i];
		bool is_type = s->shape_queue_is_type[i];
		uint32_t id = is_type ? ((const remo_type *)p)->shape_id
		                      : ((const struct remo__func *)p)->shape_id;
		remo_value shape = remo__shape_value(p, is_type);
		remo_value m = remo_tuple_of(3, remo_int(MSG_SHAPE), remo_int(id),
		                             shape);
		s->shapebuf.len = 0;
		rc = remo_ok(m) ? remo_pack(m, &s->shapebuf) : REMO_ENOMEM;
		remo_value_release(m);
		if (rc == REMO_OK)
			rc = send_raw(s, &s->shapebuf);
		if (rc == REMO_OK)
			rc = remo__map_put(&s->shapes_out, id, (void *)1);
	}
	s->nshape_queue = 0;
	if (rc != REMO_OK)
		return rc; /* the release batch waits for a message that goes */

	rc = preamble_due(s, MSG_RELEASE, &s->releases, 2, into, parts,
	                  &budget);
	if (rc == REMO_OK) /* kept results we no longer need */
		rc = preamble_due(s, MSG_DROP, &s->drops, 1, into, parts,
		                  &budget);
	return rc;
}

/*
 * Encodes the message [fields..., values...] and sends it, shapes and
 * releases first.  ints are the leading integer fields; vals are encoded
 * with the session's hooks.  Returns a status; ETOOBIG and encoding
 * failures leave the session open, send failures end it.
 */
struct msg_parts {
	const int64_t *ints;
	size_t nints;
	const remo_value *vals;
	size_t nvals;
};

static int put_parts(remo_buf *b, const remo__codec *c,
                     const struct msg_parts *m)
{
	int rc = remo__wire_put_array(b, (uint32_t)(m->nints + m->nvals));
	for (size_t i = 0; rc == REMO_OK && i < m->nints; i++)
		rc = remo__wire_put_int(b, m->ints[i]);
	for (size_t i = 0; rc == REMO_OK && i < m->nvals; i++)
		rc = remo__pack_with(m->vals[i], b, c);
	return rc;
}

static int send_parts(remo_session *s, const struct msg_parts *m, size_t n,
                      bool batch);

static int send_msg(remo_session *s, const int64_t *ints, size_t nints,
                    const remo_value *vals, size_t nvals)
{
	struct msg_parts m = {ints, nints, vals, nvals};
	return send_parts(s, &m, 1, false);
}

/* b, after the parts of a MULTI (into, parts of them), as one MULTI. */
static int send_multi(remo_session *s, const remo_buf *into, uint32_t parts,
                      const remo_buf *b)
{
	remo_buf *f = &s->framebuf;
	f->len = 0;
	int rc = remo__wire_put_array(f, parts + 2);
	if (rc == REMO_OK)
		rc = remo__wire_put_int(f, MSG_MULTI);
	if (rc == REMO_OK)
		rc = remo__buf_grow(f, into->len + b->len);
	if (rc != REMO_OK)
		return rc;
	memcpy(f->data + f->len, into->data, into->len);
	memcpy(f->data + f->len + into->len, b->data, b->len);
	f->len += into->len + b->len;
	return send_raw(s, f);
}

/* send_parts with send_lock held by the caller. */
static int send_parts_locked(remo_session *s, const struct msg_parts *m,
                             size_t n, bool batch)
{
	remo__codec codec = {.ctx = s, .put_ref = hook_put_ref,
	                     .get_ref = hook_get_ref};
	remo_buf *b = &s->sendbuf;
	b->len = 0;
	s->put_error = REMO_OK;
	int rc = REMO_OK;
	if (batch) {
		rc = remo__wire_put_array(b, (uint32_t)(n + 1));
		if (rc == REMO_OK)
			rc = remo__wire_put_int(b, MSG_BATCH);
	}
	for (size_t i = 0; rc == REMO_OK && i < n; i++)
		rc = put_parts(b, &codec, &m[i]);
	size_t peer_max = atomic_load(&s->peer_max_message);
	if (rc == REMO_OK && b->len > peer_max)
		rc = REMO_ETOOBIG;
	/* a small message takes the releases and drops due before it into
	 * its own frame, as a MULTI: one frame instead of two or three */
	remo_buf *into = NULL;
	uint32_t parts = 0;
	if (rc == REMO_OK && b->len <= MULTI_MAX && peer_max > b->len + 16) {
		into = &s->multibuf;
		into->len = 0;
	}
	if (rc == REMO_OK)
		rc = send_preamble(s, into, &parts,
		                   into ? peer_max - b->len - 16 : 0);
	if (rc == REMO_OK)
		rc = parts > 0 ? send_multi(s, into, parts, b) : send_raw(s, b);
	/* A message that did not go gave the peer nothing: undo what its
	 * encoding counted, or the peer could never release it. */
	s->nshape_queue = 0;
	if (rc != REMO_OK)
		put_rollback(s);
	s->nput_ids = 0;
	if (s->sendbuf.cap > (1u << 20)) /* do not keep a huge buffer */
		remo_buf_free(&s->sendbuf);
	return rc;
}

/* send_msg for n messages; batch: as one MSG_BATCH message. */
static int send_parts(remo_session *s, const struct msg_parts *m, size_t n,
                      bool batch)
{
	pthread_mutex_lock(&s->send_lock);
	int rc = send_parts_locked(s, m, n, batch);
	pthread_mutex_unlock(&s->send_lock);
	if (rc == REMO_EPEERLOST || rc == REMO_ECLOSED)
		session_end(s, rc);
	return rc;
}

/* ==== receiving and routing ============================================ */

static bool read_uint(remo__rd *rd, uint64_t *out)
{
	remo__tok t;
	if (remo__wire_next(rd, &t) != REMO_OK || t.type != REMO__T_INT ||
	    t.v.i < 0)
		return false;
	*out = (uint64_t)t.v.i;
	return true;
}

/* Parses the header of a message the reader received.  REMO_EPROTO. */
static int msg_parse(struct msg *m)
{
	if (remo__wire_check(m->buf.data, m->buf.len) != REMO_OK)
		return REMO_EPROTO;
	remo__rd rd = {m->buf.data, m->buf.data + m->buf.len};
	remo__tok t;
	uint64_t type;
	if (remo__wire_next(&rd, &t) != REMO_OK || t.type != REMO__T_ARRAY ||
	    t.n < 1 || !read_uint(&rd, &type))
		return REMO_EPROTO;
	uint32_t n = t.n;
	m->type = (int)type;
	switch (type) {
	case MSG_HELLO:
		if (n != 4)
			return REMO_EPROTO;
		break;
	case MSG_REQ:
		if (n != 8 || !read_uint(&rd, &m->reqid) ||
		    !read_uint(&rd, &m->cause) || !read_uint(&rd, &m->depth) ||
		    !read_uint(&rd, &m->op) || m->reqid == 0)
			return REMO_EPROTO;
		if ((m->op & ~(uint64_t)(0xff | REQ_FLAGS)) != 0)
			return REMO_EPROTO; /* a flag we do not know */
		m->flags = (unsigned)(m->op & REQ_FLAGS);
		m->op &= 0xff;
		if (m->op < REMO__OP_LOOKUP || m->op > REMO__OP_CHUNK)
			return REMO_EPROTO;
		/* a pipelined request's target is the id of an earlier one */
		if ((m->flags & REMO__REQ_PIPE) &&
		    (!read_uint(&rd, &m->pipe) || m->pipe == 0 ||
		     m->pipe >= m->reqid))
			return REMO_EPROTO; /* it names an earlier request */
		break;
	case MSG_REPLY:
	case MSG_ERROR:
		if (n != 3 || !read_uint(&rd, &m->reqid))
			return REMO_EPROTO;
		break;
	case MSG_RELEASE:
	case MSG_SHAPE:
	case MSG_DROP:
		if (n != (type == MSG_SHAPE ? 3u : 2u))
			return REMO_EPROTO;
		break;
	case MSG_BATCH:
		if (n < 2 || n > REMO_MAX_BATCH + 1)
			return REMO_EPROTO;
		break;
	case MSG_MULTI:
		if (n < 2 || n > MULTI_PARTS + 1)
			return REMO_EPROTO;
		break;
	case MSG_BYE:
	case MSG_PING:
		if (n != 1)
			return REMO_EPROTO;
		break;
	default:
		return REMO_EPROTO;
	}
	m->rest = rd;
	return REMO_OK;
}

static void handle_hello(remo_session *s, struct msg *m)
{
	uint64_t version, max_message, max_depth;
	if (!read_uint(&m->rest, &version) || !read_uint(&m->rest, &max_message) ||
	    !read_uint(&m->rest, &max_depth) || version != PROTO_VERSION ||
	    max_message < 64) {
		session_end(s, REMO_EPROTO);
		return;
	}
	s->peer_max_message = max_message;
}

static void handle_release(remo_session *s, struct msg *m)
{
	remo__tok t;
	if (remo__wire_next(&m->rest, &t) != REMO_OK ||
	    t.type != REMO__T_ARRAY || t.n % 2 != 0) {
		session_end(s, REMO_EPROTO);
		return;
	}
	for (uint32_t i = 0; i < t.n; i += 2) {
		uint64_t id, count;
		if (!read_uint(&m->rest, &id) || !read_uint(&m->rest, &count)) {
			session_end(s, REMO_EPROTO);
			return;
		}
		table_uncount(s, id, count);
	}
}

static void handle_shape(remo_session *s, struct msg *m)
{
	uint64_t id;
	remo_value v;
	struct remo__shape *sh = NULL;
	if (!read_uint(&m->rest, &id) || id < 16 || id > UINT32_MAX ||
	    remo__unpack_with(&m->rest, NULL, &v) != REMO_OK) {
		session_end(s, REMO_EPROTO);
		return;
	}
	int rc = remo__shape_from_value((uint32_t)id, v, shape_base, s, &sh);
	remo_value_release(v);
	if (rc == REMO_OK) {
		pthread_mutex_lock(&s->lock);
		struct remo__shape *old = remo__map_get(&s->shapes_in, id);
		rc = old != NULL || s->shapes_in.len >= MAX_SHAPES
		     ? REMO_EPROTO /* shapes are sent once, and not without end */
		     : remo__map_put(&s->shapes_in, id, sh);
		pthread_mutex_unlock(&s->lock);
		if (rc != REMO_OK)
			remo__shape_free(sh);
	}
	if (rc != REMO_OK)
		session_end(s, rc == REMO_ENOMEM ? REMO_ENOMEM : REMO_EPROTO);
}

/* Frees a kept result nobody can name any more.  Under s->lock; returns
 * the value to release after unlocking. */
static remo_value kept_maybe_free(remo_session *s, uint64_t reqid,
                                  struct kept *k)
{
	remo_value v = remo_nil();
	if (k->done && k->dropped && k->uses == 0) {
		remo__map_del(&s->kept, reqid);
		v = k->val;
		remo__free(k);
	}
	return v;
}

static void handle_drop(remo_session *s, struct msg *m)
{
	remo__tok t;
	if (remo__wire_next(&m->rest, &t) != REMO_OK ||
	    t.type != REMO__T_ARRAY) {
		session_end(s, REMO_EPROTO);
		return;
	}
	for (uint32_t i = 0; i < t.n; i++) {
		uint64_t reqid;
		if (!read_uint(&m->rest, &reqid)) {
			session_end(s, REMO_EPROTO);
			return;
		}
		pthread_mutex_lock(&s->lock);
		struct kept *k = remo__map_get(&s->kept, reqid);
		remo_value v = remo_nil();
		if (k != NULL) {
			k->dropped = true;
			v = kept_maybe_free(s, reqid, k);
		}
		pthread_mutex_unlock(&s->lock);
		remo_value_release(v);
	}
}

/*
 * Routes a request or a reply to the thread that waits for it, and does
 * the bookkeeping of kept results.  Under s->lock.  A reply nobody waits
 * for (the call timed out or was cancelled, or a stray) is returned, to
 * be freed after unlocking; an async call's reply settles its future,
 * added to *settled.
 */
static struct msg *route(remo_session *s, struct msg *m,
                         struct remo_future **settled)
{
	if (m->type == MSG_REQ) {
		s->nqueued++;
		if ((m->flags & REMO__REQ_KEEP) && s->kept.len < REMO_MAX_KEPT &&
		    remo__map_get(&s->kept, m->reqid) == NULL) {
			/* kept from arrival on, so a pipelined request routed
			 * after it always finds it (without memory, or past the
			 * limit, such requests get ReferenceError) */
			struct kept *k = remo__malloc(sizeof *k);
			if (k != NULL) {
				memset(k, 0, sizeof *k);
				if (remo__map_put(&s->kept, m->reqid, k) != REMO_OK)
					remo__free(k);
			}
		}
		if (m->flags & REMO__REQ_PIPE) {
			struct kept *k = remo__map_get(&s->kept, m->pipe);
			if (k != NULL)
				k->uses++;
			else
				m->pipe = 0; /* served as a ReferenceError */
		}
		struct waiter *w = m->cause ? remo__map_get(&s->pending, m->cause)
		                            : NULL;
		/* an async call has no thread of its own waiting: its
		 * callbacks go to whoever serves */
		if (w != NULL && w->fut == NULL)
			queue_push(&w->head, &w->tail, m);
		else
			queue_push(&s->top_head, &s->top_tail, m);
		return NULL;
	}
	struct waiter *w = remo__map_get(&s->pending, m->reqid);
	if (w == NULL || w->reply != NULL || w->done)
		return m; /* the call timed out, or a stray reply: dropped */
	if (w->fut != NULL) {
		remo__map_del(&s->pending, m->reqid);
		int st = m->drc != REMO_OK ? m->drc
		         : m->type == MSG_ERROR ? REMO_ERAISED : REMO_OK;
		future_settle(s, w->fut, st, m->vals[0], settled);
		m->vals[0] = remo_nil();
		return m;
	}
	w->reply = m;
	return NULL;
}

/*
 * The reader's work on one received message, done while it still holds
 * the reader role and not s->lock: parse it, and handle what belongs to
 * the session itself (hello, shapes, releases) before anyone can read the
 * next message, because a shape must be known before the message that
 * uses it is decoded.  Returns a request or reply to route, or NULL;
 * sets *end when the session must end.
 */
static const remo__codec *session_codec_for(remo_session *s, remo__codec *c,
                                            struct msg *m, remo_value *base);

/*
 * Decodes the n values left in m, in the reader, before the next message
 * is read.  Replies, because a RELEASE read after a reply could free an
 * object the reply names before its waiter decoded it (the peer drops its
 * proxy once it sent the reply); and one-way requests, because their
 * caller keeps nothing alive for them.  Other requests are decoded by the
 * thread that serves them: their caller keeps their values alive until
 * the reply.  Returns the codec's status (also in m->drc).
 */
static int msg_decode(remo_session *s, struct msg *m, int n)
{
	remo__codec codec;
	remo_value base;
	session_codec_for(s, &codec, m, &base);
	int rc = REMO_OK;
	for (int i = 0; rc == REMO_OK && i < n; i++)
		rc = remo__unpack_with(&m->rest, &codec, &m->vals[i]);
	remo_value_release(base); /* views keep what they need */
	m->decoded = true;
	m->drc = rc;
	return rc;
}

/* Where a message came from: a frame of its own, a BATCH (requests
 * only), a MULTI (anything but HELLO and MULTI). */
enum { IN_FRAME, IN_BATCH, IN_MULTI };

static struct msg *reader_take_one(remo_session *s, remo_buf buf, int *end,
                                   int in);

/* A batch becomes its requests, each a message of its own (a copy:
 * requests are small, and each is served and freed on its own); a multi
 * its messages, handled in order as if each had come alone. */
static struct msg *batch_split(remo_session *s, struct msg *b, int *end,
                               int in)
{
	struct msg *head = NULL, **tail = &head;
	while (b->rest.p < b->rest.end && *end == REMO_OK) {
		const uint8_t *start = b->rest.p;
		if (remo__wire_skip(&b->rest) != REMO_OK) {
			*end = REMO_EPROTO;
			break;
		}
		remo_buf one = {0};
		size_t len = (size_t)(b->rest.p - start);
		if (remo_buf_reserve(&one, len) != REMO_OK) {
			*end = REMO_ENOMEM;
			break;
		}
		memcpy(one.data, start, len);
		one.len = len;
		struct msg *m = reader_take_one(s, one, end, in);
		*tail = m; /* a chain, when a multi holds a batch */
		while (*tail != NULL)
			tail = &(*tail)->next;
	}
	if (*end != REMO_OK) {
		while (head != NULL) {
			struct msg *next = head->next;
			msg_free(head);
			head = next;
		}
	}
	return head;
}

/* reader_take: the messages to route (a chain through next), or NULL. */
static struct msg *reader_take(remo_session *s, remo_buf buf, int *end)
{
	return reader_take_one(s, buf, end, IN_FRAME);
}

static struct msg *reader_take_one(remo_session *s, remo_buf buf, int *end,
                                   int in)
{
	struct msg *m = remo__malloc(sizeof *m);
	if (m == NULL) {
		remo_buf_free(&buf);
		*end = REMO_ENOMEM;
		return NULL;
	}
	memset(m, 0, sizeof *m);
	m->buf = buf;
	if (buf.len > s->opts.max_message || msg_parse(m) != REMO_OK ||
	    (in == IN_BATCH && m->type != MSG_REQ) ||
	    (in == IN_MULTI && (m->type == MSG_HELLO || m->type == MSG_MULTI))) {
		msg_free(m);
		*end = REMO_EPROTO;
		return NULL;
	}
	atomic_store(&s->last_recv_ms, remo__now_ms());
	if (!s->hello_seen || m->type == MSG_HELLO) {
		if (s->hello_seen || m->type != MSG_HELLO)
			*end = REMO_EPROTO; /* first, and only once */
		else
			handle_hello(s, m);
		s->hello_seen = true;
		msg_free(m);
		return NULL;
	}
	switch (m->type) {
	case MSG_REQ:
		if (m->flags & REMO__REQ_ONEWAY)
			msg_decode(s, m, m->flags & REMO__REQ_PIPE ? 2 : 3);
		return m;
	case MSG_REPLY:
	case MSG_ERROR: {
		int rc = msg_decode(s, m, 1);
		if (rc == REMO_ENOTFOUND || rc == REMO_EPROTO ||
		    (rc == REMO_OK && m->type == MSG_ERROR &&
		     m->vals[0].kind != REMO_ERROR)) {
			/* a reference we never sent, a shape never sent, or
			 * an error reply without an error */
			msg_free(m);
			*end = REMO_EPROTO;
			return NULL;
		}
		return m;
	}
	case MSG_BATCH:
	case MSG_MULTI: {
		struct msg *got = batch_split(s, m, end, m->type == MSG_BATCH
		                                         ? IN_BATCH : IN_MULTI);
		msg_done(s, m);
		return got;
	}
	case MSG_DROP:
		handle_drop(s, m);
		break;
	case MSG_BYE:
		*end = REMO_EPEERLOST;
		break;
	case MSG_RELEASE:
		handle_release(s, m);
		break;
	case MSG_SHAPE:
		handle_shape(s, m);
		break;
	case MSG_PING:
		break; /* its arrival was the point */
	}
	msg_done(s, m);
	return NULL;
}

/* ==== serving ========================================================== */

/*
 * The codec for decoding m.  A large message becomes a bytes value that
 * owns its buffer (no copy), and large bytes inside it decode as views of
 * it: a 1 MiB argument reaches the C function without being copied.
 * *base gets that value (or nil), to release after decoding.
 */
#define VIEW_MSG_MIN (64u << 10)
static const remo__codec *session_codec_for(remo_session *s, remo__codec *c,
                                            struct msg *m, remo_value *base)
{
	*c = (remo__codec){.ctx = s, .put_ref = hook_put_ref,
	                   .get_ref = hook_get_ref};
	*base = remo_nil();
	if (m->buf.len >= VIEW_MSG_MIN) {
		remo_value b = remo__bytes_own(m->buf.data, m->buf.len);
		if (remo_ok(b)) {
			m->buf = (remo_buf){0}; /* the value owns it now */
			c->base = b;
			*base = b;
		}
	}
	return c;
}

static int serve_op(remo_session *s, int op, remo_value target, remo_value a,
                    remo_value b, remo_value *out)
{
	*out = remo_nil();
	if (op != REMO__OP_LOOKUP) {
		/* installed by api/ops.c before main: a build without the API
		 * layer is a bug, not something a peer can cause */
		REMO__ASSERT(remo__session_hooks.apply != NULL);
		return remo__session_hooks.apply(op, target, a, b, out);
	}
	if (a.kind != REMO_STR)
		return remo__raisef("TypeError", "lookup needs a str");
	if (exports_get(s->exports, a, out) != REMO_OK)
		return remo__raisef("NotFound", "nothing is exported as '%s'",
		                    remo_str_data(a, NULL));
	return REMO_OK;
}

/*
 * serve_op with crash recovery (remo_session_opts.recover): a SIGSEGV,
 * SIGBUS, SIGFPE or SIGABRT in the call returns here, and the call fails
 * with a Crash error whose traceback starts at the faulting instruction
 * (traceback.c).  What the call had allocated is lost, and a lock it
 * held stays held: hence opt-in, and the process is marked tainted.
 */
static int serve_op_guarded(remo_session *s, int op, remo_value *vals,
                            remo_value *out)
{
	struct remo__recover r;
	memset(&r, 0, sizeof r);
	r.dlocals = remo_nil();
	r.want_dlocals = s->opts.traceback == REMO_TB_LIVE;
	*out = remo_nil();
	/* 0: not saving the signal mask costs 5 ns instead of 130; the
	 * handler runs with SA_NODEFER, so nothing stays blocked after the
	 * jump (test_trace checks it) */
	if (sigsetjmp(r.jb, 0) == 0) {
		remo__recover_arm(&r);
		int rc = serve_op(s, op, vals[0], vals[1], vals[2], out);
		remo__recover_disarm(&r);
		return rc;
	}
	REMO__ASSERT(remo__session_hooks.crashed != NULL);
	return remo__session_hooks.crashed(&r);
}

/*
 * The target of a pipelined request: the result the peer asked us to
 * keep for its request reqid (0: none was kept).  Waits while that
 * request is still being served by another thread; requests are served
 * in arrival order, so with one serving thread it is always done.  A
 * failed request's error is raised again.
 */
static int kept_take(remo_session *s, uint64_t reqid, remo_value *out)
{
	pthread_mutex_lock(&s->lock);
	struct kept *k = reqid ? remo__map_get(&s->kept, reqid) : NULL;
	if (k == NULL) {
		pthread_mutex_unlock(&s->lock);
		return remo__raisef("ReferenceError",
		                    "a pipelined request names a result that "
		                    "was not kept (limit %u per session)",
		                    REMO_MAX_KEPT);
	}
	if (!k->done) { /* kept_defer saw to that: not reached */
		pthread_mutex_unlock(&s->lock);
		return remo__raisef("ReferenceError", "a pipelined request "
		                    "names a result not made yet");
	}
	bool failed = k->failed;
	remo_value v = remo_value_retain(k->val);
	k->uses--;
	remo_value gone = kept_maybe_free(s, reqid, k);
	pthread_mutex_unlock(&s->lock);
	remo_value_release(gone);
	if (failed)
		return remo__raise(v);
	*out = v;
	return REMO_OK;
}

/* A kept request is done: its result (or its error) is what pipelined
 * requests naming it get. */
static void kept_settle_value(remo_session *s, uint64_t reqid, bool failed,
                              remo_value v)
{
	pthread_mutex_lock(&s->lock);
	struct kept *k = remo__map_get(&s->kept, reqid);
	remo_value gone = v;
	if (k != NULL && !k->done) {
		k->done = true;
		k->failed = failed;
		k->val = v;
		/* the pipelined requests that waited for it can be served */
		struct msg *w;
		while ((w = queue_pop(&k->wait_head, &k->wait_tail)) != NULL) {
			s->nqueued++;
			queue_push(&s->top_head, &s->top_tail, w);
		}
		gone = kept_maybe_free(s, reqid, k);
		pthread_cond_broadcast(&s->cond);
	}
	pthread_mutex_unlock(&s->lock);
	remo_value_release(gone);
}

static void kept_settle(remo_session *s, uint64_t reqid, int rc,
                        remo_value result)
{
	remo_value v = rc == REMO_OK ? remo_value_retain(result)
	                             : remo_value_retain(remo_last_error());
	if (rc != REMO_OK && v.kind != REMO_ERROR) {
		remo_value_release(v);
		v = remo_error("Error", remo_strerror(rc));
	}
	kept_settle_value(s, reqid, rc != REMO_OK, v);
}

/*
 * A pipelined request whose kept result is not done yet (the request
 * it names is being served by another thread, or is parked with a live
 * traceback) waits on the kept entry, not in a thread: kept_settle
 * queues it.  A thread that blocked here could wait on work queued
 * behind it, or on itself.  True if m was set aside.
 */
static bool kept_defer(remo_session *s, struct msg *m)
{
	pthread_mutex_lock(&s->lock);
	struct kept *k = remo__map_get(&s->kept, m->pipe);
	bool defer = k != NULL && !k->done && s->status == REMO_OK;
	if (defer)
		queue_push(&k->wait_head, &k->wait_tail, m);
	pthread_mutex_unlock(&s->lock);
	return defer;
}

/* Serves one request and sends its reply.  Takes ownership of m. */
static void serve(remo_session *s, struct msg *m)
{
	if ((m->flags & REMO__REQ_PIPE) && m->pipe != 0 && kept_defer(s, m))
		return;
	struct serving ctx = {s, m->reqid, m->depth, tls_serving,
	                      (m->flags & REMO__REQ_ONEWAY) != 0, false,
	                      remo__locals_mark(),
	                      (m->flags & REMO__REQ_KEEP) != 0};
	remo__codec codec;
	remo_value vals[3] = {{0}}, result = remo_nil();
	int rc = REMO_OK;

	tls_serving = &ctx;
	/* first, so the kept result's count of uses always goes down */
	bool pipe = (m->flags & REMO__REQ_PIPE) != 0;
	if (pipe)
		rc = kept_take(s, m->pipe, &vals[0]);
	if (rc == REMO_OK && m->depth > s->opts.max_call_depth) {
		rc = remo__raisef("RecursionError",
		                  "callbacks nested %llu deep, past the limit %u",
		                  (unsigned long long)m->depth,
		                  s->opts.max_call_depth);
	}
	remo_value base = remo_nil();
	if (m->decoded) {
		for (int i = pipe; i < 3; i++) {
			vals[i] = m->vals[i - pipe];
			m->vals[i - pipe] = remo_nil();
		}
		if (rc == REMO_OK && m->drc != REMO_OK)
			rc = m->drc;
	} else {
		session_codec_for(s, &codec, m, &base);
	}
	for (int i = pipe; rc == REMO_OK && i < 3; i++) {
		if (!m->decoded)
			rc = remo__unpack_with(&m->rest, &codec, &vals[i]);
		if (rc == REMO_ENOTFOUND)
			rc = remo__raisef("ReferenceError",
			                  "no object with that id in this session "
			                  "(released, or never sent)");
		else if (rc == REMO_EPROTO)
			rc = remo__raisef("ProtocolError",
			                  "a reference to a shape never sent");
		else if (rc != REMO_OK)
			rc = remo__fail(rc, "decoding the arguments");
	}
	remo_value_release(base); /* views keep what they need */
	if (rc == REMO_OK)
		rc = s->opts.recover ? serve_op_guarded(s, (int)m->op, vals,
		                                        &result)
		                     : serve_op(s, (int)m->op, vals[0], vals[1],
		                                vals[2], &result);
	remo__locals_reset(ctx.lmark);
	for (int i = 0; i < 3; i++)
		remo_value_release(vals[i]);
	if (m->flags & REMO__REQ_KEEP)
		kept_settle(s, m->reqid, rc, result);
	if ((m->flags & REMO__REQ_ONEWAY) || ctx.replied) {
		/* no reply, by definition: not even the error (or the
		 * error went already, with a live traceback) */
		remo_value_release(result);
		tls_serving = ctx.prev;
		msg_done(s, m);
		return;
	}

	int64_t hdr[2] = {rc == REMO_OK ? MSG_REPLY : MSG_ERROR,
	                  (int64_t)m->reqid};
	remo_value payload = rc == REMO_OK ? result
	                                   : remo_value_retain(remo_last_error());
	if (payload.kind == REMO_NIL && rc != REMO_OK)
		payload = remo_error("Error", remo_strerror(rc));
	int src = send_msg(s, hdr, 2, &payload, 1);
	if (src != REMO_OK && src != REMO_EPEERLOST && src != REMO_ECLOSED &&
	    rc == REMO_OK) {
		/* The result could not be sent (too big, not encodable): say
		 * so, so the caller does not wait for ever. */
		remo_value e = remo_error(src == REMO_ETOOBIG ? "LimitError"
		                                              : "TypeError",
		                          remo_strerror(src));
		hdr[0] = MSG_ERROR;
		send_msg(s, hdr, 2, &e, 1);
		remo_value_release(e);
	}
	remo_value_release(payload);
	tls_serving = ctx.prev;
	msg_done(s, m);
}

/* ==== for tracebacks (traceback.c) ===================================== */

static int wait_for(remo_session *s, struct waiter *w, int64_t deadline,
                    struct msg **reply);

remo_session *remo__serving(void)
{
	return tls_serving != NULL ? tls_serving->s : NULL;
}

const remo_session_opts *remo__session_opts(remo_session *s)
{
	return &s->opts;
}

int remo__serving_reply_error(remo_value err, bool try_only)
{
	struct serving *ctx = tls_serving;
	if (ctx == NULL || ctx->replied || ctx->oneway)
		return REMO_EINVAL;
	remo_session *s = ctx->s;
	int64_t hdr[2] = {MSG_ERROR, (int64_t)ctx->reqid};
	int rc;
	if (try_only) {
		/* from a crash handler: never wait for a lock the crash may
		 * hold (and the process is about to die: no session_end) */
		struct msg_parts m = {hdr, 2, &err, 1};
		if (pthread_mutex_trylock(&s->send_lock) != 0)
			return REMO_ELIMIT;
		rc = send_parts_locked(s, &m, 1, false);
		pthread_mutex_unlock(&s->send_lock);
	} else {
		rc = send_msg(s, hdr, 2, &err, 1);
	}
	if (rc == REMO_OK)
		ctx->replied = true;
	/* calls pipelined on it fail with it now, not when the thread
	 * that raised it goes on (a live traceback parks it) */
	if (rc == REMO_OK && ctx->keep && !try_only)
		kept_settle_value(s, ctx->reqid, true, remo_value_retain(err));
	return rc;
}

void remo__serving_park(bool (*done)(void *), void *arg, int64_t deadline)
{
	remo_session *s = remo__serving();
	struct waiter w = {0}; /* reqid 0: serves the top-level queue */
	struct msg *none = NULL;
	/* A debugger may stop this thread, which reads for the session, for
	 * longer than the lease: the lease thread must not take the silence
	 * that follows for a dead peer (it still sends our heartbeats). */
	atomic_fetch_add(&s->nparked, 1);
	while (!done(arg) && remo_session_status(s) == REMO_OK) {
		int64_t now = remo__now_ms();
		if (now >= deadline)
			break;
		/* slices, to look at done() between them */
		int64_t until = now + 20 < deadline ? now + 20 : deadline;
		wait_for(s, &w, until, &none);
	}
	atomic_fetch_sub(&s->nparked, 1);
}

size_t remo__serving_locals_mark(void)
{
	return tls_serving != NULL ? tls_serving->lmark : 0;
}

/* ==== waiting ========================================================== */

/*
 * One turn as the reader: the caller set s->reading under s->lock.
 * Receives at most one message within timeout_ms, handles or routes it,
 * and only then gives the role back: a waiter must never block in recv
 * while its reply sits routed but unseen.  Returns recv's status.
 */
static int reader_turn(remo_session *s, int timeout_ms)
{
	int end = REMO_OK;
	struct msg *got = NULL;
	pthread_mutex_lock(&s->lock);
	remo_buf buf = s->rxspare;
	s->rxspare = (remo_buf){0};
	pthread_mutex_unlock(&s->lock);

	/*
	 * Spin, yielding, for a moment before blocking.  Measured with
	 * bench_transport: a blocking round trip between processes on
	 * different cores costs about 60 us, nearly all of it waking the
	 * idle core; polling for up to 20 us with sched_yield between polls
	 * brought it to about 5 us, and, because each poll yields, costs
	 * nothing when both processes share one core (a spin without the
	 * yield cost 110 us there).  But threads of one process sharing a
	 * core through remo_pipe lost 4x to it, so it is the session's
	 * option: on for transports (remo_connect, servers), off otherwise.
	 */
	int rc = REMO_ETIMEDOUT;
	int spin = s->opts.spin_us;
	if (timeout_ms != 0 && spin > 0) {
		int64_t until = remo__now_us() + spin;
		do {
			rc = s->ch.recv(s->ch.user, &buf, 0);
			if (rc != REMO_ETIMEDOUT)
				break;
			sched_yield();
		} while (remo__now_us() < until);
	}
	if (rc == REMO_ETIMEDOUT)
		rc = s->ch.recv(s->ch.user, &buf, timeout_ms);
	if (rc == REMO_OK) {
		got = reader_take(s, buf, &end);
	} else {
		pthread_mutex_lock(&s->lock);
		if (s->rxspare.data == NULL)
			s->rxspare = buf, buf = (remo_buf){0};
		pthread_mutex_unlock(&s->lock);
		remo_buf_free(&buf);
	}
	if (rc != REMO_OK && rc != REMO_ETIMEDOUT)
		end = rc == REMO_ECLOSED || rc == REMO_ENOMEM || rc == REMO_EPROTO
		      ? rc : REMO_EPEERLOST;
	struct msg *drop = NULL;
	struct remo_future *settled = NULL;
	pthread_mutex_lock(&s->lock);
	while (got != NULL) {
		struct msg *next = got->next;
		struct msg *d = route(s, got, &settled);
		if (d != NULL) {
			d->next = drop;
			drop = d;
		}
		got = next;
	}
	if (s->nqueued > s->max_queued)
		end = REMO_EPROTO; /* a peer flooding us with requests */
	s->reading = false;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	/* A dropped reply's values are released here, so what it named is
	 * released to the peer as well. */
	while (drop != NULL) {
		struct msg *next = drop->next;
		msg_done(s, drop);
		drop = next;
	}
	futures_notify(settled);
	if (end != REMO_OK)
		session_end(s, end);
	return rc;
}

/*
 * Waits until w has a reply (call waiters) or the deadline passes (serve
 * waiters), serving what belongs to w meanwhile and reading for everyone
 * when nobody else is.  Returns REMO_OK (a reply is in *reply), or
 * REMO_ETIMEDOUT, or the session's end status.
 */
static int wait_for(remo_session *s, struct waiter *w, int64_t deadline,
                    struct msg **reply)
{
	pthread_mutex_lock(&s->lock);
	for (;;) {
		if (w->reply != NULL || w->done) {
			*reply = w->reply;
			w->reply = NULL;
			pthread_mutex_unlock(&s->lock);
			return REMO_OK;
		}
		/* an ended session serves nothing more, even what was queued */
		if (s->status != REMO_OK) {
			int st = s->status;
			pthread_mutex_unlock(&s->lock);
			return st;
		}
		struct msg *m = queue_pop(&w->head, &w->tail);
		if (m == NULL && (w->reqid == 0 || s->nservers == 0))
			m = queue_pop(&s->top_head, &s->top_tail);
		if (m != NULL) {
			s->nqueued--;
			pthread_mutex_unlock(&s->lock);
			serve(s, m);
			pthread_mutex_lock(&s->lock);
			continue;
		}
		int64_t left = deadline < 0 ? -1 : deadline - remo__now_ms();
		if (deadline >= 0 && left <= 0) {
			pthread_mutex_unlock(&s->lock);
			return REMO_ETIMEDOUT;
		}
		if (!s->reading) {
			s->reading = true;
			pthread_mutex_unlock(&s->lock);
			reader_turn(s, left > INT32_MAX ? INT32_MAX : (int)left);
			pthread_mutex_lock(&s->lock);
			continue;
		}
		if (deadline < 0) {
			pthread_cond_wait(&s->cond, &s->lock);
		} else {
			struct timespec ts = {deadline / 1000,
			                      (long)(deadline % 1000) * 1000000};
			pthread_cond_timedwait(&s->cond, &s->lock, &ts);
		}
	}
}

int remo_session_serve(remo_session *s, int timeout_ms)
{
	struct waiter w = {0};
	struct msg *none = NULL;
	int64_t deadline = remo__deadline_ms(timeout_ms);
	pthread_mutex_lock(&s->lock);
	s->nservers++;
	pthread_mutex_unlock(&s->lock);
	int rc = wait_for(s, &w, deadline, &none);
	pthread_mutex_lock(&s->lock);
	/* with no server left, callers serve the top-level queue: wake them */
	if (--s->nservers == 0)
		pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* ==== requests ========================================================= */

int remo__session_request(remo_session *s, int op, remo_value target,
                          remo_value a, remo_value b, remo_value *out)
{
	return remo__session_request_timed(s, op, target, a, b, 0, out);
}

/*
 * Where a request of this thread belongs: the request it is serving on s
 * (its cause) and how deep callbacks nest.  RecursionError past the
 * session's limit.
 */
static int req_context(remo_session *s, uint64_t *cause, uint64_t *depth)
{
	struct serving *ctx = tls_serving;
	*cause = 0;
	*depth = 1;
	while (ctx != NULL && ctx->s != s)
		ctx = ctx->prev;
	if (ctx != NULL) {
		*cause = ctx->reqid;
		*depth = ctx->depth + 1;
	}
	if (*depth > s->opts.max_call_depth)
		return remo__raisef("RecursionError",
		                    "callbacks nested %llu deep, past the limit %u",
		                    (unsigned long long)*depth,
		                    s->opts.max_call_depth);
	return REMO_OK;
}

/* One request's fields, ready for send_parts. */
struct req {
	int64_t ints[6];
	remo_value vals[3];
	struct msg_parts parts;
};

/*
 * Fills r for request reqid.  A promise target becomes the id of the
 * request it stands for (REMO__REQ_PIPE); the caller checked that the
 * promise belongs to s and is kept (remo__promise_session).
 */
static void req_fill(struct req *r, uint64_t reqid, uint64_t cause,
                     uint64_t depth, int op, unsigned flags,
                     remo_value target, remo_value a, remo_value b)
{
	const struct remo_future *p = remo__is_ref(target.kind)
	                              ? REMO__REF(target)->promise : NULL;
	size_t ni = 5, nv = 0;
	if (p != NULL)
		flags |= REMO__REQ_PIPE;
	r->ints[0] = MSG_REQ;
	r->ints[1] = (int64_t)reqid;
	r->ints[2] = (int64_t)cause;
	r->ints[3] = (int64_t)depth;
	r->ints[4] = op | (int64_t)flags;
	if (p != NULL)
		r->ints[ni++] = (int64_t)p->w.reqid;
	else
		r->vals[nv++] = target;
	r->vals[nv++] = a;
	r->vals[nv++] = b;
	r->parts = (struct msg_parts){r->ints, ni, r->vals, nv};
}

/* The status of a request that could not be sent, raised. */
static int req_send_failed(int rc, int op)
{
	if (rc == REMO_ETYPE)
		return remo__raisef("TypeError", "a promise can only be the "
		                    "target of an operation, not an argument");
	if (rc == REMO_ELIMIT || rc == REMO_ENOMEM || rc == REMO_ETOOBIG ||
	    rc == REMO_EINVAL || rc == REMO_EDEPTH || rc == REMO_EWIRE_UTF8)
		return remo__fail(rc, "sending the request");
	return remo__fail(rc, op_names[op]);
}

/* Requests that arrived for a call that is over go to whoever serves,
 * or nowhere once the session ended.  Under s->lock; returns what to
 * free after unlocking. */
static struct msg *req_orphans(remo_session *s, struct waiter *w)
{
	struct msg *m, *gone = NULL;
	while ((m = queue_pop(&w->head, &w->tail)) != NULL) {
		if (s->status != REMO_OK) {
			m->next = gone;
			gone = m;
			continue;
		}
		queue_push(&s->top_head, &s->top_tail, m);
		pthread_cond_broadcast(&s->cond); /* someone must serve it */
	}
	return gone;
}

static void msgs_free(struct msg *m)
{
	while (m != NULL) {
		struct msg *next = m->next;
		msg_free(m);
		m = next;
	}
}

int remo__session_request_timed(remo_session *s, int op, remo_value target,
                                remo_value a, remo_value b, int timeout_ms,
                                remo_value *out)
{
	uint64_t cause, depth;
	*out = remo_nil();
	int rc = req_context(s, &cause, &depth);
	if (rc != REMO_OK)
		return rc;

	struct waiter w = {0};
	pthread_mutex_lock(&s->lock);
	int st = s->status;
	w.reqid = ++s->next_reqid;
	rc = st == REMO_OK ? remo__map_put(&s->pending, w.reqid, &w) : st;
	pthread_mutex_unlock(&s->lock);
	if (rc != REMO_OK)
		return remo__fail(rc, op_names[op]);

	struct req r;
	req_fill(&r, w.reqid, cause, depth, op, 0, target, a, b);
	rc = send_parts(s, &r.parts, 1, false);
	struct msg *reply = NULL;
	if (rc == REMO_OK) {
		/* 0: the session's default; -1: none; else this call's */
		int t = timeout_ms != 0 ? timeout_ms : s->opts.timeout_ms;
		int64_t deadline = remo__deadline_ms(t);
		rc = wait_for(s, &w, deadline, &reply);
	}

	pthread_mutex_lock(&s->lock);
	remo__map_del(&s->pending, w.reqid);
	struct msg *gone = req_orphans(s, &w);
	if (w.reply != NULL && reply == NULL)
		reply = w.reply;
	pthread_mutex_unlock(&s->lock);
	msgs_free(gone);

	if (rc != REMO_OK) {
		msg_free(reply);
		return req_send_failed(rc, op);
	}
	/* the reader decoded it (msg_decode) */
	remo_value v = reply->vals[0];
	reply->vals[0] = remo_nil();
	rc = reply->drc;
	int type = reply->type;
	msg_done(s, reply);
	if (rc != REMO_OK)
		return remo__fail(rc, "decoding the reply");
	if (type == MSG_ERROR)
		return remo__raise(v);
	*out = v;
	return REMO_OK;
}

/* ==== futures ========================================================== */

static void future_retain(struct remo_future *f)
{
	atomic_fetch_add(&f->refs, 1);
}

void remo__future_release(struct remo_future *f)
{
	if (f == NULL || atomic_fetch_sub(&f->refs, 1) != 1)
		return;
	remo_session *s = f->s;
	if (s != NULL && f->keep) {
		/* Nothing can name the result any more: the peer may drop it,
		 * with our next message. */
		pthread_mutex_lock(&s->lock);
		s->nkept_out--;
		bool flush = due_push(s, &s->drops, &f->w.reqid, 1);
		pthread_mutex_unlock(&s->lock);
		if (flush) /* the peer holds each result until it hears */
			due_flush(s);
	}
	remo_value_release(f->value);
	for (int i = 0; i < 3; i++)
		remo_value_release(f->args[i]);
	if (s != NULL)
		session_release(s);
	remo__free(f);
}

static struct remo_future *future_alloc(remo_session *s)
{
	struct remo_future *f = remo__malloc(sizeof *f);
	if (f == NULL)
		return NULL;
	memset(f, 0, sizeof *f);
	atomic_init(&f->refs, 1);
	f->w.fut = f;
	f->deadline = -1;
	if ((f->s = s) != NULL)
		session_retain(s);
	return f;
}

struct remo_future *remo__future_settled(int status, remo_value value)
{
	struct remo_future *f = future_alloc(NULL);
	if (f == NULL) {
		remo_value_release(value);
		return NULL;
	}
	f->w.done = true;
	f->started = true;
	f->status = status;
	f->value = value;
	return f;
}

struct remo_future *remo__future_new_batch(remo_session *s)
{
	struct remo_future *f = future_alloc(s);
	if (f == NULL)
		return NULL;
	future_retain(f); /* the batch's count and the caller's */
	/* its id now, and always kept: later calls of the same batch can
	 * be pipelined on it */
	pthread_mutex_lock(&s->lock);
	f->w.reqid = ++s->next_reqid;
	f->keep = s->nkept_out < REMO_MAX_KEPT;
	s->nkept_out += f->keep;
	pthread_mutex_unlock(&s->lock);
	return f;
}

void remo__future_abandon(struct remo_future *f, int status)
{
	remo_session *s = f->s;
	remo_value err = status == REMO_ERAISED
	                 ? remo_value_retain(remo_last_error()) : remo_nil();
	pthread_mutex_lock(&s->lock);
	if (!f->started && !f->w.done) {
		f->w.done = true;
		f->status = status;
		f->value = err;
		err = remo_nil();
		pthread_cond_broadcast(&s->cond);
	}
	pthread_mutex_unlock(&s->lock);
	remo_value_release(err);
}

/*
 * Settles f with status and value (stolen).  Under s->lock; f is no
 * longer pending.  The session's count of f, its arguments and its
 * callback are handled by futures_notify, after unlocking.
 */
static void future_settle(remo_session *s, struct remo_future *f, int status,
                          remo_value value, struct remo_future **settled)
{
	f->w.done = true;
	f->status = status;
	f->value = value;
	if (f->deadline >= 0)
		atomic_fetch_sub(&s->ndeadlines, 1);
	if (f->prev != NULL)
		f->prev->next = f->next;
	else
		s->inflight_head = f->next;
	if (f->next != NULL)
		f->next->prev = f->prev;
	else
		s->inflight_tail = f->prev;
	f->prev = f->next = NULL;
	s->ninflight--;
	f->settled_next = *settled;
	*settled = f;
	pthread_cond_broadcast(&s->cond);
}

/* After future_settle, not under s->lock: callbacks, in the order the
 * futures settled. */
static void futures_notify(struct remo_future *settled)
{
	struct remo_future *order = NULL;
	while (settled != NULL) { /* reverse: settled is newest first */
		struct remo_future *next = settled->settled_next;
		settled->settled_next = order;
		order = settled;
		settled = next;
	}
	while (order != NULL) {
		struct remo_future *f = order, *next = f->settled_next;
		remo_session *s = f->s;
		remo_value args[3];
		pthread_mutex_lock(&s->lock);
		memcpy(args, f->args, sizeof args);
		memset(f->args, 0, sizeof f->args);
		remo_future_fn *fn = f->started ? f->fn : NULL;
		f->fn = NULL;
		pthread_mutex_unlock(&s->lock);
		for (int i = 0; i < 3; i++)
			remo_value_release(args[i]);
		if (fn != NULL)
			fn(f, f->user);
		remo__future_release(f); /* the session's count */
		order = next;
	}
}

/*
 * Registers f as in flight: pending, counted, its values retained.
 * Waits first while REMO_MAX_INFLIGHT calls are in flight.  Assigns
 * f->w.reqid unless it has one.  The caller sends it next.
 */
static void future_check_deadline(remo_session *s, struct remo_future *f,
                                  struct remo_future **settled);

static int future_begin(remo_session *s, struct remo_future *f,
                        remo_value target, remo_value a, remo_value b)
{
	pthread_mutex_lock(&s->lock);
	while (s->ninflight >= REMO_MAX_INFLIGHT && s->status == REMO_OK) {
		/* the oldest call that went: one of another thread's batch
		 * may be begun but not sent, and that thread may be waiting
		 * here too */
		struct remo_future *old = s->inflight_head;
		while (old != NULL && !old->started)
			old = old->next;
		if (old == NULL)
			break;
		future_retain(old);
		pthread_mutex_unlock(&s->lock);
		struct msg *none = NULL;
		wait_for(s, &old->w, old->deadline, &none);
		struct remo_future *settled = NULL;
		pthread_mutex_lock(&s->lock);
		future_check_deadline(s, old, &settled);
		pthread_mutex_unlock(&s->lock);
		futures_notify(settled);
		remo__future_release(old);
		pthread_mutex_lock(&s->lock);
	}
	int rc = s->status;
	if (rc == REMO_OK && f->w.reqid == 0)
		f->w.reqid = ++s->next_reqid;
	if (rc == REMO_OK)
		rc = remo__map_put(&s->pending, f->w.reqid, &f->w);
	if (rc == REMO_OK) {
		f->prev = s->inflight_tail;
		if (s->inflight_tail != NULL)
			s->inflight_tail->next = f;
		else
			s->inflight_head = f;
		s->inflight_tail = f;
		s->ninflight++;
		if (f->deadline >= 0)
			atomic_fetch_add(&s->ndeadlines, 1);
		future_retain(f); /* the session's count */
		if (!f->keep) { /* a batch's future is kept already */
			f->keep = s->nkept_out < REMO_MAX_KEPT;
			s->nkept_out += f->keep;
		}
		f->args[0] = remo_value_retain(target);
		f->args[1] = remo_value_retain(a);
		f->args[2] = remo_value_retain(b);
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* The send of a begun future failed: it settles with rc, quietly (it
 * never started, so no callback). */
static void future_abort(remo_session *s, struct remo_future *f, int rc)
{
	struct remo_future *settled = NULL;
	pthread_mutex_lock(&s->lock);
	if (!f->w.done) {
		remo__map_del(&s->pending, f->w.reqid);
		future_settle(s, f, rc, remo_nil(), &settled);
	}
	pthread_mutex_unlock(&s->lock);
	futures_notify(settled);
}

/*
 * k one-way calls went.  Every REMO_ONEWAY_WINDOW of them, wait until
 * the peer has read (and queued in order) everything sent before, so a
 * caller cannot flood its queue: a lookup of a name nobody exports,
 * answered NotFound.
 */
static void oneway_sent(remo_session *s, size_t k)
{
	pthread_mutex_lock(&s->lock);
	s->oneway_since += (unsigned)k;
	bool window = s->oneway_since >= REMO_ONEWAY_WINDOW;
	if (window)
		s->oneway_since = 0;
	pthread_mutex_unlock(&s->lock);
	if (!window)
		return;
	remo_value name = remo_str(""), ignored;
	if (remo_ok(name))
		remo__session_request_timed(s, REMO__OP_LOOKUP, remo_nil(), name,
		                            remo_nil(), -1, &ignored);
	remo_value_release(name);
}

int remo__session_start(remo_session *s, int op, remo_value target,
                        remo_value a, remo_value b, unsigned flags,
                        int timeout_ms, struct remo_future **fut)
{
	uint64_t cause, depth;
	int rc = req_context(s, &cause, &depth);
	if (rc != REMO_OK)
		return rc;
	struct req r;
	if (flags & REMO__REQ_ONEWAY) {
		pthread_mutex_lock(&s->lock);
		rc = s->status;
		uint64_t reqid = ++s->next_reqid;
		pthread_mutex_unlock(&s->lock);
		if (rc != REMO_OK)
			return remo__fail(rc, op_names[op]);
		req_fill(&r, reqid, cause, depth, op, flags, target, a, b);
		rc = send_parts(s, &r.parts, 1, false);
		if (rc != REMO_OK)
			return req_send_failed(rc, op);
		oneway_sent(s, 1);
		return REMO_OK;
	}

	struct remo_future *f = future_alloc(s);
	if (f == NULL)
		return remo__fail(REMO_ENOMEM, op_names[op]);
	if (timeout_ms > 0)
		f->deadline = remo__now_ms() + timeout_ms;
	rc = future_begin(s, f, target, a, b);
	if (rc != REMO_OK) {
		remo__future_release(f);
		return remo__fail(rc, op_names[op]);
	}
	req_fill(&r, f->w.reqid, cause, depth, op,
	         flags | (f->keep ? REMO__REQ_KEEP : 0), target, a, b);
	pthread_mutex_lock(&s->lock);
	f->started = true; /* before the send: the reply can come at once */
	pthread_mutex_unlock(&s->lock);
	rc = send_parts(s, &r.parts, 1, false);
	if (rc != REMO_OK) {
		pthread_mutex_lock(&s->lock);
		f->started = false;
		pthread_mutex_unlock(&s->lock);
		future_abort(s, f, rc);
		remo__future_release(f);
		return req_send_failed(rc, op);
	}
	*fut = f;
	return REMO_OK;
}

int remo__session_send_batch(remo_session *s, struct remo__breq *items,
                             size_t n)
{
	uint64_t cause, depth;
	int rc = req_context(s, &cause, &depth);
	if (rc != REMO_OK)
		return rc;
	struct req *r = remo__malloc(n * sizeof *r);
	struct msg_parts *parts = remo__malloc(n * sizeof *parts);
	if (r == NULL || parts == NULL) {
		remo__free(r);
		remo__free(parts);
		return remo__fail(REMO_ENOMEM, "sending a batch");
	}
	size_t begun = 0;
	for (; rc == REMO_OK && begun < n; begun++) {
		struct remo__breq *it = &items[begun];
		unsigned flags = REMO__REQ_ONEWAY;
		uint64_t reqid;
		if (it->fut != NULL) {
			rc = future_begin(s, it->fut, it->target, it->a, it->b);
			if (rc != REMO_OK)
				break;
			flags = it->fut->keep ? REMO__REQ_KEEP : 0;
			reqid = it->fut->w.reqid;
		} else {
			pthread_mutex_lock(&s->lock);
			reqid = ++s->next_reqid;
			pthread_mutex_unlock(&s->lock);
		}
		req_fill(&r[begun], reqid, cause, depth, it->op, flags,
		         it->target, it->a, it->b);
		parts[begun] = r[begun].parts;
	}
	size_t oneway = 0;
	if (rc == REMO_OK) {
		pthread_mutex_lock(&s->lock);
		for (size_t i = 0; i < n; i++)
			if (items[i].fut != NULL)
				items[i].fut->started = true;
			else
				oneway++;
		pthread_mutex_unlock(&s->lock);
		rc = send_parts(s, parts, n, true);
	}
	if (rc == REMO_OK && oneway > 0)
		oneway_sent(s, oneway); /* a batch's count too */
	if (rc != REMO_OK) {
		for (size_t i = 0; i < begun; i++)
			if (items[i].fut != NULL) {
				pthread_mutex_lock(&s->lock);
				items[i].fut->started = false;
				pthread_mutex_unlock(&s->lock);
				future_abort(s, items[i].fut, rc);
			}
	}
	remo__free(r);
	remo__free(parts);
	return rc == REMO_OK ? REMO_OK : req_send_failed(rc, REMO__OP_CALL);
}

struct remo_session *remo__promise_session(remo_value p, bool batching)
{
	const struct remo_future *f = REMO__REF(p)->promise;
	/* a batch's future not sent yet: only later calls of a batch */
	return f->s != NULL && f->keep && (f->started || batching) ? f->s
	                                                           : NULL;
}

/* Settles f with TimeoutError if its deadline passed.  Under s->lock. */
static void future_check_deadline(remo_session *s, struct remo_future *f,
                                  struct remo_future **settled)
{
	if (!f->w.done && f->deadline >= 0 && remo__now_ms() >= f->deadline) {
		remo__map_del(&s->pending, f->w.reqid);
		future_settle(s, f, REMO_ETIMEDOUT, remo_nil(), settled);
	}
}

/* Settles every async call of s past its deadline (the lease thread's
 * tick). */
static void futures_expire(remo_session *s)
{
	struct remo_future *settled = NULL;
	pthread_mutex_lock(&s->lock);
	for (struct remo_future *f = s->inflight_head, *next; f != NULL;
	     f = next) {
		next = f->next;
		if (f->started)
			future_check_deadline(s, f, &settled);
	}
	pthread_mutex_unlock(&s->lock);
	futures_notify(settled);
}

int remo_future_wait(remo_future *f, int timeout_ms, remo_value *out)
{
	if (out != NULL)
		*out = remo_nil();
	if (f == NULL)
		return remo__fail(REMO_EINVAL, "remo_future_wait");
	remo_session *s = f->s;
	if (s != NULL) {
		int64_t deadline = remo__deadline_ms(timeout_ms);
		if (f->deadline >= 0 && (deadline < 0 || f->deadline < deadline))
			deadline = f->deadline;
		struct msg *none = NULL;
		pthread_mutex_lock(&s->lock);
		bool done = f->w.done, started = f->started;
		pthread_mutex_unlock(&s->lock);
		if (!done && !started)
			return remo__raisef("ValueError", "waiting for a call of a "
			                    "batch that was not sent");
		if (!done && timeout_ms != 0)
			wait_for(s, &f->w, deadline, &none);
		struct remo_future *settled = NULL;
		pthread_mutex_lock(&s->lock);
		future_check_deadline(s, f, &settled);
		done = f->w.done;
		pthread_mutex_unlock(&s->lock);
		futures_notify(settled);
		if (!done)
			return remo__fail(REMO_ETIMEDOUT, "waiting for a call");
	}
	/* settled: status and value no longer change */
	if (f->status == REMO_ERAISED)
		return remo__raise(remo_value_retain(f->value));
	if (f->status != REMO_OK)
		return remo__fail(f->status, "an async call");
	if (out != NULL)
		*out = remo_value_retain(f->value);
	return REMO_OK;
}

bool remo_future_poll(remo_future *f)
{
	if (f == NULL)
		return false;
	remo_session *s = f->s;
	if (s == NULL)
		return true;
	struct remo_future *settled = NULL;
	pthread_mutex_lock(&s->lock);
	/* read what has arrived, if nobody else is reading */
	for (int i = 0; i < 64 && !f->w.done && !s->reading &&
	                s->status == REMO_OK; i++) {
		s->reading = true;
		pthread_mutex_unlock(&s->lock);
		int rc = reader_turn(s, 0);
		pthread_mutex_lock(&s->lock);
		if (rc != REMO_OK)
			break;
	}
	bool done = f->w.done, serve_too = s->nservers == 0;
	pthread_mutex_unlock(&s->lock);
	if (!done && serve_too) {
		/* serve the callbacks that came (the call may be waiting for
		 * one), without waiting for more; with serving threads,
		 * they do it */
		struct waiter w = {0};
		struct msg *none = NULL;
		wait_for(s, &w, remo__now_ms(), &none);
	}
	pthread_mutex_lock(&s->lock);
	future_check_deadline(s, f, &settled);
	done = f->w.done;
	pthread_mutex_unlock(&s->lock);
	futures_notify(settled);
	return done;
}

int remo_future_then(remo_future *f, remo_future_fn *fn, void *user)
{
	if (f == NULL || fn == NULL)
		return remo__fail(REMO_EINVAL, "remo_future_then");
	remo_session *s = f->s;
	if (s != NULL)
		pthread_mutex_lock(&s->lock);
	int rc = f->then_set ? REMO_EEXIST : REMO_OK;
	bool now = rc == REMO_OK && f->w.done;
	if (rc == REMO_OK) {
		f->then_set = true;
		if (!now) {
			f->fn = fn;
			f->user = user;
		}
	}
	if (s != NULL)
		pthread_mutex_unlock(&s->lock);
	if (now)
		fn(f, user);
	return rc == REMO_OK ? REMO_OK : remo__fail(rc, "remo_future_then");
}

int remo_future_cancel(remo_future *f)
{
	if (f == NULL || f->s == NULL)
		return REMO_EINVAL;
	remo_session *s = f->s;
	struct remo_future *settled = NULL;
	pthread_mutex_lock(&s->lock);
	bool pending = f->started && !f->w.done;
	if (pending) {
		remo__map_del(&s->pending, f->w.reqid);
		future_settle(s, f, REMO_ECANCELED, remo_nil(), &settled);
	}
	pthread_mutex_unlock(&s->lock);
	futures_notify(settled);
	return pending ? REMO_OK : REMO_EINVAL;
}

static void session_promise_gone(struct remo__ref *r)
{
	remo__future_release(r->promise);
	r->promise = NULL;
}

static const struct remo__ref_ops session_promise_ops = {
	.gone = session_promise_gone,
};

remo_value remo_future_promise(remo_future *f)
{
	if (f == NULL)
		return remo__invalid();
	remo_value v = remo__ref_alloc(REMO_OBJECT);
	if (remo_ok(v)) {
		future_retain(f);
		REMO__REF(v)->ops = &session_promise_ops;
		REMO__REF(v)->promise = f;
	}
	return v;
}

void remo_future_free(remo_future *f)
{
	remo__future_release(f);
}

/* ==== leases =========================================================== */

/*
 * One thread per process keeps every leased session's lease: it sends a
 * PING on a session that sent nothing for T, and ends a session that
 * heard nothing for 3T with REMO_EPEERLOST.  It must be a thread of its
 * own: the threads of a session may all be busy in a long call, and the
 * peer must still hear from us (and we must still notice a peer that
 * stopped, say by SIGSTOP, while we wait).  The thread starts with the
 * first leased session and ticks every LEASE_TICK_MS.
 */
#define LEASE_TICK_MS 20

static pthread_mutex_t lease_lock = PTHREAD_MUTEX_INITIALIZER;
static remo_session *lease_list;
static bool lease_running;

static void *lease_main(void *arg)
{
	(void)arg;
	for (;;) {
		usleep(LEASE_TICK_MS * 1000);
		remo_session *due[256];
		int ndue = 0;
		int64_t now = remo__now_ms();
		pthread_mutex_lock(&lease_lock);
		for (remo_session *s = lease_list; s && ndue < 256;
		     s = s->lease_next) {
			int64_t T = s->opts.lease_ms;
			/* Due: time for a heartbeat, or silence to judge, or
			 * nobody reading it (all its threads busy in calls, or
			 * an idle client), so that a peer that died is noticed
			 * within a tick instead of when a call returns. */
			bool unread = !atomic_load(&s->reading);
			if (now - atomic_load(&s->last_send_ms) < T &&
			    now - atomic_load(&s->last_recv_ms) < 3 * T && !unread &&
			    atomic_load(&s->ndeadlines) == 0)
				continue;
			/* a session whose count reached 0 is being destroyed
			 * (and waits for lease_lock to leave this list) */
			unsigned n = atomic_load(&s->refs);
			while (n != 0 &&
			       !atomic_compare_exchange_weak(&s->refs, &n, n + 1))
				;
			if (n != 0)
				due[ndue++] = s;
		}
		pthread_mutex_unlock(&lease_lock);
		for (int i = 0; i < ndue; i++) {
			remo_session *s = due[i];
			int64_t T = s->opts.lease_ms;
			/* Async calls past their deadline settle here too, so
			 * a future with only a callback times out (within a
			 * tick) even if nobody waits for it. */
			if (atomic_load(&s->ndeadlines) > 0)
				futures_expire(s);
			/* Nobody may be reading (an idle client): read what has
			 * arrived, so heartbeats count and requests get queued. */
			for (int k = 0; k < 16; k++) {
				pthread_mutex_lock(&s->lock);
				bool mine = !s->reading && s->status == REMO_OK;
				if (mine)
					s->reading = true;
				pthread_mutex_unlock(&s->lock);
				if (!mine || reader_turn(s, 0) != REMO_OK)
					break;
			}
			now = remo__now_ms();
			if (now - atomic_load(&s->last_recv_ms) >= 3 * T &&
			    atomic_load(&s->nparked) == 0) {
				session_end(s, REMO_EPEERLOST);
			} else if (remo_session_status(s) == REMO_OK &&
			           now - atomic_load(&s->last_send_ms) >= T &&
			           pthread_mutex_trylock(&s->send_lock) == 0) {
				/* busy sending means not idle: skip it then.
				 * Releases and drops due go first: an idle
				 * session still lets the peer free them. */
				send_preamble(s, NULL, NULL, 0);
				s->shapebuf.len = 0;
				if (remo__wire_put_array(&s->shapebuf, 1) == REMO_OK &&
				    remo__wire_put_int(&s->shapebuf, MSG_PING) == REMO_OK)
					send_raw(s, &s->shapebuf);
				pthread_mutex_unlock(&s->send_lock);
			}
			session_release(s);
		}
	}
	return NULL;
}

static void lease_add(remo_session *s)
{
	pthread_mutex_lock(&lease_lock);
	s->lease_next = lease_list;
	lease_list = s;
	if (!lease_running) {
		pthread_t th;
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		lease_running = pthread_create(&th, &a, lease_main, NULL) == 0;
		pthread_attr_destroy(&a);
	}
	pthread_mutex_unlock(&lease_lock);
}

static void lease_remove(remo_session *s)
{
	pthread_mutex_lock(&lease_lock);
	for (remo_session **pp = &lease_list; *pp; pp = &(*pp)->lease_next)
		if (*pp == s) {
			*pp = s->lease_next;
			break;
		}
	pthread_mutex_unlock(&lease_lock);
}

/* ==== lifetime ========================================================= */

remo_session *remo_session_new(const remo_channel *ch, remo_exports *exports,
                               const remo_session_opts *opts, int *status)
{
	int rc = REMO_EINVAL;
	remo_session *s = NULL;
	if (ch == NULL || ch->send == NULL || ch->recv == NULL)
		goto fail;
	rc = REMO_ENOMEM;
	if ((s = remo__malloc(sizeof *s)) == NULL)
		goto fail;
	memset(s, 0, sizeof *s);
	atomic_init(&s->refs, 1);
	s->ch = *ch;
	s->exports = exports;
	if (opts != NULL)
		s->opts = *opts;
	if (s->opts.max_message == 0)
		s->opts.max_message = REMO_DEFAULT_MAX_MESSAGE;
	if (s->opts.max_call_depth == 0)
		s->opts.max_call_depth = REMO_DEFAULT_MAX_CALL_DEPTH;
	if (s->opts.max_refs == 0)
		s->opts.max_refs = REMO_DEFAULT_MAX_REFS;
	if (opts == NULL || opts->timeout_ms == 0)
		s->opts.timeout_ms = -1;
	if (s->opts.lease_ms < 0)
		s->opts.lease_ms = 0;
	if (s->opts.spin_us < 0 || s->opts.spin_us > 10000)
		s->opts.spin_us = 0;
	if (s->opts.live_ms <= 0)
		s->opts.live_ms = REMO_DEFAULT_LIVE_MS;
	if (s->opts.traceback != REMO_TB_NONE &&
	    (remo__session_hooks.init_handlers == NULL ||
	     (rc = remo__session_hooks.init_handlers()) != REMO_OK))
		goto fail;
	atomic_init(&s->last_recv_ms, remo__now_ms());
	atomic_init(&s->last_send_ms, remo__now_ms());
	s->peer_max_message = s->opts.max_message;
	s->max_queued = MAX_QUEUED;
	s->status = REMO_OK;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->send_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);

	int64_t hello[4] = {MSG_HELLO, PROTO_VERSION,
	                    (int64_t)s->opts.max_message,
	                    (int64_t)s->opts.max_call_depth};
	rc = send_msg(s, hello, 4, NULL, 0);
	if (rc != REMO_OK) {
		remo_session_free(s);
		if (status != NULL)
			*status = rc;
		return NULL;
	}
	if (s->opts.lease_ms > 0)
		lease_add(s);
	if (status != NULL)
		*status = REMO_OK;
	return s;
fail:
	remo__free(s);
	if (ch != NULL && ch->destroy != NULL)
		ch->destroy(ch->user);
	if (status != NULL)
		*status = rc;
	return NULL;
}

void remo_session_close(remo_session *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	bool open = s->status == REMO_OK;
	pthread_mutex_unlock(&s->lock);
	/* A BYE is a courtesy: if a send is stuck (a peer that stopped
	 * reading), closing the channel below is what unsticks it, so do
	 * not wait behind it for the send lock. */
	if (open && pthread_mutex_trylock(&s->send_lock) == 0) {
		pthread_mutex_unlock(&s->send_lock);
		int64_t bye[1] = {MSG_BYE};
		send_msg(s, bye, 1, NULL, 0);
	}
	session_end(s, REMO_ECLOSED);
}

int remo_session_status(const remo_session *s)
{
	pthread_mutex_lock((pthread_mutex_t *)&s->lock);
	int st = s->status;
	pthread_mutex_unlock((pthread_mutex_t *)&s->lock);
	return st;
}

static void session_destroy(remo_session *s)
{
	size_t pos = 0;
	uint64_t id;
	void *p;
	if (s->opts.lease_ms > 0)
		lease_remove(s);
	session_end(s, REMO_ECLOSED);
	while (remo__map_next(&s->shapes_in, &pos, &id, &p))
		remo__shape_free(p);
	remo__map_free(&s->shapes_in);
	remo__map_free(&s->proxies);
	remo__map_free(&s->pending);
	remo__map_free(&s->shapes_out);
	struct msg *m;
	while ((m = queue_pop(&s->top_head, &s->top_tail)) != NULL)
		msg_free(m);
	remo__free(s->releases.v);
	remo__free(s->drops.v);
	remo__free(s->shape_queue);
	remo__free(s->shape_queue_is_type);
	remo__free(s->put_ids);
	remo_buf_free(&s->sendbuf);
	remo_buf_free(&s->shapebuf);
	remo_buf_free(&s->multibuf);
	remo_buf_free(&s->framebuf);
	remo_buf_free(&s->rxspare);
	if (s->ch.destroy != NULL)
		s->ch.destroy(s->ch.user);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->send_lock);
	pthread_cond_destroy(&s->cond);
	remo__free(s);
}

void remo_session_free(remo_session *s)
{
	if (s == NULL)
		return;
	remo_session_close(s);
	session_release(s);
}

int remo_lookup(remo_session *s, const char *name, remo_value *out)
{
	*out = remo_nil();
	if (s == NULL || name == NULL)
		return remo__fail(REMO_EINVAL, "lookup");
	remo_value n = remo_str(name);
	if (!remo_ok(n))
		return remo__fail(REMO_ENOMEM, "lookup");
	int rc = remo__session_request(s, REMO__OP_LOOKUP, remo_nil(), n,
	                               remo_nil(), out);
	remo_value_release(n);
	return rc;
}

/* ==== for tests ======================================================== */

size_t remo__session_table_len(remo_session *s)
{
	pthread_mutex_lock(&s->lock);
	size_t n = s->table.len;
	pthread_mutex_unlock(&s->lock);
	return n;
}

size_t remo__session_proxies_len(remo_session *s)
{
	pthread_mutex_lock(&s->lock);
	size_t n = s->proxies.len;
	pthread_mutex_unlock(&s->lock);
	return n;
}

void remo__session_set_max_queued(remo_session *s, size_t n)
{
	pthread_mutex_lock(&s->lock);
	s->max_queued = n;
	pthread_mutex_unlock(&s->lock);
}

int remo__session_flush(remo_session *s)
{
	pthread_mutex_lock(&s->send_lock);
	int rc = send_preamble(s, NULL, NULL, 0);
	pthread_mutex_unlock(&s->send_lock);
	return rc;
}
