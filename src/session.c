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
#include "wire.h"

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
};

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
	remo__rd rest; /* the fields after the header, inside buf */
};

struct waiter {
	uint64_t reqid;          /* our request; 0 for a serving thread */
	struct msg *head, *tail; /* requests that belong to our call    */
	struct msg *reply;
};

struct entry {
	uint64_t id;
	uint64_t key;      /* identity */
	uint64_t count;    /* sent to the peer, minus released */
	remo_value value;  /* retained */
};

/* A peer's shape: a type or a function. */
struct shape {
	remo_type *type;
	struct remo__func *func;
};

struct remo_session {
	atomic_uint refs;
	struct remo_session *lease_next; /* in the lease list, if leased */
	atomic_llong last_recv_ms, last_send_ms;
	remo_channel ch;
	remo_exports *exports;
	remo_session_opts opts;
	_Atomic size_t peer_max_message; /* written by the reader, read by senders */

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
	uint64_t *releases;         /* (id, count) pairs to send */
	size_t nreleases, capreleases;

	pthread_mutex_t send_lock;
	remo_buf sendbuf, shapebuf;
	struct remo__map shapes_out; /* shape id -> (void *)1, sent */
	const void **shape_queue;    /* types or funcs to send first */
	bool *shape_queue_is_type;
	size_t nshape_queue, capshape_queue;
	int put_error;               /* a put_ref failure while encoding */
	uint64_t *put_ids;           /* ids counted by the message being  */
	size_t nput_ids, capput_ids; /* encoded, to undo if it fails      */
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
};
static _Thread_local struct serving *tls_serving;

static const char *const op_names[] = {
	[REMO__OP_LOOKUP] = "lookup",     [REMO__OP_GETATTR] = "getattr",
	[REMO__OP_SETATTR] = "setattr",   [REMO__OP_CALL] = "call",
	[REMO__OP_CALLM] = "call_method", [REMO__OP_LEN] = "len",
	[REMO__OP_GETITEM] = "getitem",   [REMO__OP_SETITEM] = "setitem",
	[REMO__OP_CONTAINS] = "contains", [REMO__OP_CHUNK] = "chunk",
};

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

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

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

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void msg_free(struct msg *m)
{
	if (m != NULL) {
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
static int send_preamble(remo_session *s);

static void session_release(remo_session *s)
{
	if (atomic_fetch_sub(&s->refs, 1) == 1)
		session_destroy(s);
}

/* ==== ending =========================================================== */

/*
 * Ends the session with status (if it is still open): every waiter wakes
 * and fails, and every reference the peer held is released.  Called
 * without s->lock.
 */
static void session_end(remo_session *s, int status)
{
	struct remo__map table;
	pthread_mutex_lock(&s->lock);
	if (s->status == REMO_OK)
		s->status = status;
	table = s->table;
	memset(&s->table, 0, sizeof s->table);
	remo__map_free(&s->table_key);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);

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

/*
 * A function's shape: ["F", name, signature, doc].
 * A type's shape: ["T", name, base shape id or 0, doc,
 *                  ((name, code, readonly), ...),
 *                  ((name, signature, doc), ...)]
 */
static remo_value shape_func_value(const struct remo__func *f)
{
	return remo_tuple_of(4, remo_str("F"), remo_str(f->name),
	                     remo_str(f->sig.text), remo_str(f->doc));
}

static remo_value shape_code_str(const struct remo__param *p)
{
	char code[300];
	if (p->code == '<')
		snprintf(code, sizeof code, "<%s>", p->type_name);
	else
		snprintf(code, sizeof code, "%c", p->code);
	return remo_str(code);
}

static remo_value shape_type_value(const remo_type *t)
{
	remo_value fields = remo_tuple(t->nfields);
	remo_value methods = remo_tuple(t->nmethods);
	for (size_t i = 0; remo_ok(fields) && i < t->nfields; i++)
		remo_tuple_set(fields, i, remo_tuple_of(3,
			remo_str(t->fields[i].name), shape_code_str(&t->fields[i].p),
			remo_bool(t->fields[i].flags & REMO_READONLY)));
	for (size_t i = 0; remo_ok(methods) && i < t->nmethods; i++)
		remo_tuple_set(methods, i, remo_tuple_of(3,
			remo_str(t->methods[i].name),
			remo_str(t->methods[i].sig.text),
			remo_str(t->methods[i].doc)));
	return remo_tuple_of(6, remo_str("T"), remo_str(t->name),
	                     remo_int(t->base ? t->base->shape_id : 0),
	                     remo_str(t->doc), fields, methods);
}

static void shape_free(struct shape *sh)
{
	if (sh->func != NULL) {
		remo__func_free(sh->func);
		remo__free(sh->func);
	}
	if (sh->type != NULL) {
		remo_type *t = sh->type;
		for (size_t i = 0; i < t->nfields; i++) {
			remo__free(t->fields[i].name);
			remo__free(t->fields[i].p.type_name);
		}
		for (size_t i = 0; i < t->nmethods; i++)
			remo__func_free(&t->methods[i]);
		remo__free(t->fields);
		remo__free(t->methods);
		remo__free(t->name);
		remo__free(t->doc);
		remo__free(t);
	}
	remo__free(sh);
}

static char *shape_strdup(remo_value v)
{
	size_t n;
	const char *p = remo_str_data(v, &n);
	if (p == NULL)
		return NULL;
	char *d = remo__malloc(n + 1);
	if (d != NULL)
		memcpy(d, p, n + 1);
	return d;
}

static int shape_func_init(struct remo__func *f, remo_value name,
                           remo_value sig, remo_value doc, bool method)
{
	memset(f, 0, sizeof *f);
	if (name.kind != REMO_STR || sig.kind != REMO_STR || doc.kind != REMO_STR)
		return REMO_EPROTO;
	if (remo__sig_parse(&f->sig, remo_str_data(sig, NULL), method, false) !=
	    REMO_OK)
		return REMO_EPROTO;
	f->name = shape_strdup(name);
	f->doc = shape_strdup(doc);
	if (f->name == NULL || f->doc == NULL) {
		remo__func_free(f);
		return REMO_ENOMEM;
	}
	return REMO_OK;
}

/* Builds a peer's shape from its value; REMO_EPROTO if malformed. */
static int shape_from_value(remo_session *s, uint32_t id, remo_value v,
                            struct shape **out)
{
	struct shape *sh = remo__malloc(sizeof *sh);
	if (sh == NULL)
		return REMO_ENOMEM;
	memset(sh, 0, sizeof *sh);
	const char *tag = remo_str_data(remo_tuple_get(v, 0), NULL);
	int rc = REMO_EPROTO;
	if (tag != NULL && strcmp(tag, "F") == 0 && remo_tuple_len(v) == 4) {
		sh->func = remo__malloc(sizeof *sh->func);
		rc = sh->func == NULL ? REMO_ENOMEM
		     : shape_func_init(sh->func, remo_tuple_get(v, 1),
		                       remo_tuple_get(v, 2), remo_tuple_get(v, 3),
		                       false);
		if (rc != REMO_OK) {
			remo__free(sh->func);
			sh->func = NULL;
		} else {
			sh->func->shape_id = id;
		}
	} else if (tag != NULL && strcmp(tag, "T") == 0 &&
	           remo_tuple_len(v) == 6) {
		remo_value name = remo_tuple_get(v, 1), base = remo_tuple_get(v, 2);
		remo_value doc = remo_tuple_get(v, 3);
		remo_value fields = remo_tuple_get(v, 4);
		remo_value methods = remo_tuple_get(v, 5);
		if (name.kind != REMO_STR || base.kind != REMO_INT ||
		    doc.kind != REMO_STR || fields.kind != REMO_TUPLE ||
		    methods.kind != REMO_TUPLE)
			goto out;
		remo_type *t = remo__malloc(sizeof *t);
		if (t == NULL) {
			rc = REMO_ENOMEM;
			goto out;
		}
		memset(t, 0, sizeof *t);
		sh->type = t;
		t->remote = true;
		t->shape_id = id;
		t->name = shape_strdup(name);
		t->doc = shape_strdup(doc);
		if (t->name == NULL || t->doc == NULL) {
			rc = REMO_ENOMEM;
			goto out;
		}
		if (base.as.i != 0) {
			pthread_mutex_lock(&s->lock);
			struct shape *b = remo__map_get(&s->shapes_in,
			                                (uint64_t)base.as.i);
			pthread_mutex_unlock(&s->lock);
			if (b == NULL || b->type == NULL)
				goto out; /* bases come first */
			t->base = b->type;
		}
		size_t nf = remo_tuple_len(fields), nm = remo_tuple_len(methods);
		t->fields = nf ? remo__malloc(nf * sizeof *t->fields) : NULL;
		t->methods = nm ? remo__malloc(nm * sizeof *t->methods) : NULL;
		if ((nf && !t->fields) || (nm && !t->methods)) {
			rc = REMO_ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < nf; i++) {
			remo_value f = remo_tuple_get(fields, i);
			struct remo__sig one;
			char text[300];
			const char *code = remo_str_data(remo_tuple_get(f, 1), NULL);
			if (remo_tuple_len(f) != 3 || code == NULL ||
			    remo_tuple_get(f, 0).kind != REMO_STR ||
			    remo_tuple_get(f, 2).kind != REMO_BOOL ||
			    strlen(code) > 256)
				goto out;
			snprintf(text, sizeof text, "v(%s)", code);
			if (remo__sig_parse(&one, text, false, false) != REMO_OK)
				goto out;
			if (one.nargs != 1) {
				remo__sig_free(&one);
				goto out;
			}
			struct remo__field *fld = &t->fields[t->nfields];
			fld->name = shape_strdup(remo_tuple_get(f, 0));
			fld->p = one.args[0];
			one.args[0] = (struct remo__param){0};
			remo__sig_free(&one);
			fld->flags = remo_tuple_get(f, 2).as.b ? REMO_READONLY : 0;
			t->nfields++;
			if (fld->name == NULL) {
				rc = REMO_ENOMEM;
				goto out;
			}
		}
		for (size_t i = 0; i < nm; i++) {
			remo_value m = remo_tuple_get(methods, i);
			if (remo_tuple_len(m) != 3) {
				rc = REMO_EPROTO; /* a method parsed before set rc */
				goto out;
			}
			rc = shape_func_init(&t->methods[i], remo_tuple_get(m, 0),
			                     remo_tuple_get(m, 1), remo_tuple_get(m, 2),
			                     true);
			if (rc != REMO_OK)
				goto out;
			t->nmethods++;
		}
		rc = REMO_OK;
	}
out:
	if (rc != REMO_OK) {
		shape_free(sh);
		return rc;
	}
	*out = sh;
	return REMO_OK;
}

/* ==== the codec hooks ================================================== */

static uint64_t entry_key(remo_value v)
{
	if (v.kind == REMO_OBJECT && REMO__REF(v)->ptr != NULL)
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

	uint32_t shape;
	int rc = REMO_OK;
	if (v.kind == REMO_LIST) {
		shape = REMO__SHAPE_LIST;
	} else if (v.kind == REMO_DICT) {
		shape = REMO__SHAPE_DICT;
	} else if (v.kind == REMO_OBJECT) {
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
		return REMO_EINVAL; /* frames and tracebacks: a later layer */
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
		struct shape *sh = remo__map_get(&s->shapes_in, shape_id);
		if (kind == REMO_OBJECT && sh != NULL && sh->type != NULL)
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
		session_retain(s);
		if (remo__map_put(&s->proxies, id, nr) != REMO_OK) {
			/* still a working proxy, just not shared by identity */
		}
		*out = v;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

void remo__session_proxy_gone(struct remo__ref *r)
{
	remo_session *s = r->owner;
	pthread_mutex_lock(&s->lock);
	if (remo__map_get(&s->proxies, r->id) == r)
		remo__map_del(&s->proxies, r->id);
	if (s->status == REMO_OK) {
		if (s->nreleases + 2 > s->capreleases) {
			size_t cap = s->capreleases ? s->capreleases * 2 : 32;
			uint64_t *p = remo__realloc(s->releases, cap * sizeof *p);
			if (p != NULL) {
				s->releases = p;
				s->capreleases = cap;
			}
		}
		/* Without memory the release is lost: the peer keeps the
		 * object until the session ends, which is safe. */
		if (s->nreleases + 2 <= s->capreleases) {
			s->releases[s->nreleases++] = r->id;
			s->releases[s->nreleases++] = r->received;
		}
	}
	bool flush = s->nreleases >= 2 * RELEASE_BATCH && s->status == REMO_OK;
	pthread_mutex_unlock(&s->lock);
	r->owner = NULL;
	/* A full batch goes now if nobody is sending; otherwise the thread
	 * that is sending takes it with its next message. */
	if (flush && pthread_mutex_trylock(&s->send_lock) == 0) {
		send_preamble(s);
		pthread_mutex_unlock(&s->send_lock);
	}
	session_release(s);
}

/* ==== sending ========================================================== */

static int send_raw(remo_session *s, const remo_buf *b)
{
	if (b->len > s->peer_max_message)
		return REMO_ETOOBIG;
	int rc = s->ch.send(s->ch.user, b->data, b->len);
	if (rc == REMO_OK)
		atomic_store(&s->last_send_ms, now_ms());
	return rc;
}

/* Sends queued shapes and the release batch.  Under send_lock. */
static int send_preamble(remo_session *s)
{
	int rc = REMO_OK;
	for (size_t i = 0; rc == REMO_OK && i < s->nshape_queue; i++) {
		const void *p = s->shape_queue[i];
		bool is_type = s->shape_queue_is_type[i];
		uint32_t id = is_type ? ((const remo_type *)p)->shape_id
		                      : ((const struct remo__func *)p)->shape_id;
		remo_value shape = is_type ? shape_type_value(p)
		                           : shape_func_value(p);
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

	pthread_mutex_lock(&s->lock);
	uint64_t *rel = s->releases;
	size_t n = s->nreleases;
	s->releases = NULL;
	s->nreleases = s->capreleases = 0;
	pthread_mutex_unlock(&s->lock);

	/* In messages that fit the peer's limit: a pair takes at most 18
	 * bytes (two uint64), the header at most 8. */
	size_t per = (atomic_load(&s->peer_max_message) - 8) / 18;
	for (size_t at = 0; rc == REMO_OK && at < n;) {
		size_t k = n - at > 2 * per ? 2 * per : n - at;
		s->shapebuf.len = 0;
		rc = remo__wire_put_array(&s->shapebuf, 2);
		if (rc == REMO_OK)
			rc = remo__wire_put_int(&s->shapebuf, MSG_RELEASE);
		if (rc == REMO_OK)
			rc = remo__wire_put_array(&s->shapebuf, (uint32_t)k);
		for (size_t i = 0; rc == REMO_OK && i < k; i++)
			rc = remo__wire_put_int(&s->shapebuf, (int64_t)rel[at + i]);
		if (rc == REMO_OK)
			rc = send_raw(s, &s->shapebuf);
		at += k;
	}
	remo__free(rel);
	return rc;
}

/*
 * Encodes the message [fields..., values...] and sends it, shapes and
 * releases first.  ints are the leading integer fields; vals are encoded
 * with the session's hooks.  Returns a status; ETOOBIG and encoding
 * failures leave the session open, send failures end it.
 */
static int send_msg(remo_session *s, const int64_t *ints, size_t nints,
                    const remo_value *vals, size_t nvals)
{
	remo__codec codec = {.ctx = s, .put_ref = hook_put_ref,
	                     .get_ref = hook_get_ref};
	pthread_mutex_lock(&s->send_lock);
	remo_buf *b = &s->sendbuf;
	b->len = 0;
	s->put_error = REMO_OK;
	int rc = remo__wire_put_array(b, (uint32_t)(nints + nvals));
	for (size_t i = 0; rc == REMO_OK && i < nints; i++)
		rc = remo__wire_put_int(b, ints[i]);
	for (size_t i = 0; rc == REMO_OK && i < nvals; i++)
		rc = remo__pack_with(vals[i], b, &codec);
	if (rc == REMO_OK && b->len > s->peer_max_message)
		rc = REMO_ETOOBIG;
	if (rc == REMO_OK)
		rc = send_preamble(s);
	if (rc == REMO_OK)
		rc = send_raw(s, b);
	int sent = rc;
	/* A message that did not go gave the peer nothing: undo what its
	 * encoding counted, or the peer could never release it. */
	s->nshape_queue = 0;
	if (rc != REMO_OK)
		put_rollback(s);
	s->nput_ids = 0;
	if (s->sendbuf.cap > (1u << 20)) /* do not keep a huge buffer */
		remo_buf_free(&s->sendbuf);
	pthread_mutex_unlock(&s->send_lock);
	if (sent == REMO_EPEERLOST || sent == REMO_ECLOSED)
		session_end(s, sent);
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
		    !read_uint(&rd, &m->op) || m->reqid == 0 ||
		    m->op < REMO__OP_LOOKUP || m->op > REMO__OP_CHUNK)
			return REMO_EPROTO;
		break;
	case MSG_REPLY:
	case MSG_ERROR:
		if (n != 3 || !read_uint(&rd, &m->reqid))
			return REMO_EPROTO;
		break;
	case MSG_RELEASE:
	case MSG_SHAPE:
		if (n != (type == MSG_RELEASE ? 2u : 3u))
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
	struct shape *sh = NULL;
	if (!read_uint(&m->rest, &id) || id < 16 || id > UINT32_MAX ||
	    remo__unpack_with(&m->rest, NULL, &v) != REMO_OK) {
		session_end(s, REMO_EPROTO);
		return;
	}
	int rc = v.kind == REMO_TUPLE ? shape_from_value(s, (uint32_t)id, v, &sh)
	                              : REMO_EPROTO;
	remo_value_release(v);
	if (rc == REMO_OK) {
		pthread_mutex_lock(&s->lock);
		struct shape *old = remo__map_get(&s->shapes_in, id);
		rc = old != NULL || s->shapes_in.len >= MAX_SHAPES
		     ? REMO_EPROTO /* shapes are sent once, and not without end */
		     : remo__map_put(&s->shapes_in, id, sh);
		pthread_mutex_unlock(&s->lock);
		if (rc != REMO_OK)
			shape_free(sh);
	}
	if (rc != REMO_OK)
		session_end(s, rc == REMO_ENOMEM ? REMO_ENOMEM : REMO_EPROTO);
}

/*
 * Routes a request or a reply to the thread that waits for it.  Under
 * s->lock.
 */
static void route(remo_session *s, struct msg *m)
{
	if (m->type == MSG_REQ) {
		s->nqueued++;
		struct waiter *w = m->cause ? remo__map_get(&s->pending, m->cause)
		                            : NULL;
		if (w != NULL)
			queue_push(&w->head, &w->tail, m);
		else
			queue_push(&s->top_head, &s->top_tail, m);
		return;
	}
	struct waiter *w = remo__map_get(&s->pending, m->reqid);
	if (w != NULL && w->reply == NULL)
		w->reply = m;
	else
		msg_free(m); /* the call timed out, or a stray reply: dropped */
}

/*
 * The reader's work on one received message, done while it still holds
 * the reader role and not s->lock: parse it, and handle what belongs to
 * the session itself (hello, shapes, releases) before anyone can read the
 * next message, because a shape must be known before the message that
 * uses it is decoded.  Returns a request or reply to route, or NULL;
 * sets *end when the session must end.
 */
static struct msg *reader_take(remo_session *s, remo_buf buf, int *end)
{
	struct msg *m = remo__malloc(sizeof *m);
	if (m == NULL) {
		remo_buf_free(&buf);
		*end = REMO_ENOMEM;
		return NULL;
	}
	memset(m, 0, sizeof *m);
	m->buf = buf;
	if (buf.len > s->opts.max_message || msg_parse(m) != REMO_OK) {
		msg_free(m);
		*end = REMO_EPROTO;
		return NULL;
	}
	atomic_store(&s->last_recv_ms, now_ms());
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
	case MSG_REPLY:
	case MSG_ERROR:
		return m;
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
	switch (op) {
	case REMO__OP_LOOKUP: {
		if (a.kind != REMO_STR)
			return remo__raisef("TypeError", "lookup needs a str");
		int rc = exports_get(s->exports, a, out);
		if (rc != REMO_OK)
			return remo__raisef("NotFound", "nothing is exported as '%s'",
			                    remo_str_data(a, NULL));
		return REMO_OK;
	}
	case REMO__OP_GETATTR:
		if (a.kind != REMO_STR)
			return remo__raisef("TypeError", "attribute names are str");
		return remo_getattr(target, remo_str_data(a, NULL), out);
	case REMO__OP_SETATTR:
		if (a.kind != REMO_STR)
			return remo__raisef("TypeError", "attribute names are str");
		return remo_setattr(target, remo_str_data(a, NULL), b);
	case REMO__OP_CALL:
		return remo_call(target, a, out);
	case REMO__OP_CALLM:
		if (a.kind != REMO_STR)
			return remo__raisef("TypeError", "method names are str");
		return remo_call_method(target, remo_str_data(a, NULL), b, out);
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
		return remo__chunk(target, (size_t)a.as.i, out);
	}
	return remo__raisef("ProtocolError", "unknown operation");
}

/* Serves one request and sends its reply.  Takes ownership of m. */
static void serve(remo_session *s, struct msg *m)
{
	struct serving ctx = {s, m->reqid, m->depth, tls_serving};
	remo__codec codec;
	remo_value vals[3] = {{0}}, result = remo_nil();
	int rc = REMO_OK;

	tls_serving = &ctx;
	if (m->depth > s->opts.max_call_depth) {
		rc = remo__raisef("RecursionError",
		                  "callbacks nested %llu deep, past the limit %u",
		                  (unsigned long long)m->depth,
		                  s->opts.max_call_depth);
	}
	remo_value base;
	session_codec_for(s, &codec, m, &base);
	for (int i = 0; rc == REMO_OK && i < 3; i++) {
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
		rc = serve_op(s, (int)m->op, vals[0], vals[1], vals[2], &result);
	for (int i = 0; i < 3; i++)
		remo_value_release(vals[i]);

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
		int64_t until = now_us() + spin;
		do {
			rc = s->ch.recv(s->ch.user, &buf, 0);
			if (rc != REMO_ETIMEDOUT)
				break;
			sched_yield();
		} while (now_us() < until);
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
	pthread_mutex_lock(&s->lock);
	if (got != NULL)
		route(s, got);
	if (s->nqueued > s->max_queued)
		end = REMO_EPROTO; /* a peer flooding us with requests */
	s->reading = false;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
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
		if (w->reply != NULL) {
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
		int64_t left = deadline < 0 ? -1 : deadline - now_ms();
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
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
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

int remo__session_request_timed(remo_session *s, int op, remo_value target,
                                remo_value a, remo_value b, int timeout_ms,
                                remo_value *out)
{
	struct serving *ctx = tls_serving;
	uint64_t cause = 0, depth = 1;
	*out = remo_nil();
	while (ctx != NULL && ctx->s != s)
		ctx = ctx->prev;
	if (ctx != NULL) {
		cause = ctx->reqid;
		depth = ctx->depth + 1;
	}
	if (depth > s->opts.max_call_depth)
		return remo__raisef("RecursionError",
		                    "callbacks nested %llu deep, past the limit %u",
		                    (unsigned long long)depth,
		                    s->opts.max_call_depth);

	struct waiter w = {0};
	pthread_mutex_lock(&s->lock);
	int st = s->status;
	w.reqid = ++s->next_reqid;
	int rc = st == REMO_OK ? remo__map_put(&s->pending, w.reqid, &w) : st;
	pthread_mutex_unlock(&s->lock);
	if (rc != REMO_OK)
		return remo__fail(rc, op_names[op]);

	int64_t ints[5] = {MSG_REQ, (int64_t)w.reqid, (int64_t)cause,
	                   (int64_t)depth, op};
	remo_value vals[3] = {target, a, b};
	rc = send_msg(s, ints, 5, vals, 3);
	struct msg *reply = NULL;
	if (rc == REMO_OK) {
		/* 0: the session's default; -1: none; else this call's */
		int t = timeout_ms != 0 ? timeout_ms : s->opts.timeout_ms;
		int64_t deadline = t < 0 ? -1 : now_ms() + t;
		rc = wait_for(s, &w, deadline, &reply);
	}

	pthread_mutex_lock(&s->lock);
	remo__map_del(&s->pending, w.reqid);
	/* requests for a call that gave up go to whoever serves */
	struct msg *m;
	while ((m = queue_pop(&w.head, &w.tail)) != NULL) {
		queue_push(&s->top_head, &s->top_tail, m);
		pthread_cond_broadcast(&s->cond); /* someone must serve it */
	}
	if (w.reply != NULL && reply == NULL)
		reply = w.reply;
	pthread_mutex_unlock(&s->lock);

	if (rc != REMO_OK) {
		msg_free(reply);
		if (rc == REMO_ELIMIT || rc == REMO_ENOMEM || rc == REMO_ETOOBIG ||
		    rc == REMO_EINVAL || rc == REMO_EDEPTH || rc == REMO_EWIRE_UTF8)
			return remo__fail(rc, "sending the request");
		return remo__fail(rc, op_names[op]);
	}
	remo__codec codec;
	remo_value v, base;
	session_codec_for(s, &codec, reply, &base);
	rc = remo__unpack_with(&reply->rest, &codec, &v);
	remo_value_release(base);
	int type = reply->type;
	msg_done(s, reply);
	if (rc != REMO_OK) {
		if (rc == REMO_ENOTFOUND || rc == REMO_EPROTO) {
			session_end(s, REMO_EPROTO);
			return remo__fail(REMO_EPROTO, "a reply with a bad reference");
		}
		return remo__fail(rc, "decoding the reply");
	}
	if (type == MSG_ERROR) {
		if (v.kind != REMO_ERROR) {
			remo_value_release(v);
			session_end(s, REMO_EPROTO);
			return remo__fail(REMO_EPROTO, "an error reply without an error");
		}
		return remo__raise(v);
	}
	*out = v;
	return REMO_OK;
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
		int64_t now = now_ms();
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
			    now - atomic_load(&s->last_recv_ms) < 3 * T && !unread)
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
			now = now_ms();
			if (now - atomic_load(&s->last_recv_ms) >= 3 * T) {
				session_end(s, REMO_EPEERLOST);
			} else if (remo_session_status(s) == REMO_OK &&
			           now - atomic_load(&s->last_send_ms) >= T &&
			           pthread_mutex_trylock(&s->send_lock) == 0) {
				/* busy sending means not idle: skip it then */
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
	atomic_init(&s->last_recv_ms, now_ms());
	atomic_init(&s->last_send_ms, now_ms());
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
		shape_free(p);
	remo__map_free(&s->shapes_in);
	remo__map_free(&s->proxies);
	remo__map_free(&s->pending);
	remo__map_free(&s->shapes_out);
	struct msg *m;
	while ((m = queue_pop(&s->top_head, &s->top_tail)) != NULL)
		msg_free(m);
	remo__free(s->releases);
	remo__free(s->shape_queue);
	remo__free(s->shape_queue_is_type);
	remo__free(s->put_ids);
	remo_buf_free(&s->sendbuf);
	remo_buf_free(&s->shapebuf);
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
	int rc = send_preamble(s);
	pthread_mutex_unlock(&s->send_lock);
	return rc;
}
