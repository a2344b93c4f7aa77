/*
 * actors.c -- actors on remo (actors.h; README.md has the design).
 *
 * An actor is a struct with a mailbox (a list under the actor's lock),
 * run by a thread of its own with a small stack.  Its address is one
 * remo object value (type "Address"); every copy of the address, local
 * or held by another node, is a reference to that value, and the
 * struct is freed when the last one goes (and no remote wait() is
 * pending: refs).  Another node reaches an actor through the Address
 * methods (send, wait, monitor, ...) and a node through its export
 * "node" (spawn).
 *
 * Locks: a node's lock, then an actor's; no remo call is made under
 * either.
 */
#define _GNU_SOURCE
#include "actors.h"

#include <remo/trace.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Watchers one actor keeps at most: past it, monitor is LimitError. */
#define ACTOR_MAX_WATCHERS 65536
/* Other nodes one node keeps track of, gone ones included (a node that
 * went away and came back is two): past it, a new one is LimitError
 * (peer_get) or reached without NodeDown for its monitors (m_hello). */
#define MAX_PEERS 4096 /* live ones */
/* Monitors of one other node's actors a node keeps: past it, LimitError. */
#define MAX_RECS 65536
/* A call to another node (spawn, a checked send, monitor, kill, the
 * lookups of an opening) fails with TimeoutError past it; wait has its
 * own timeout. */
#define PEER_CALL_MS 10000
/* How long actor_node_stop waits for actors to return, in all. */
#define STOP_WAIT_MS 10000

struct msg {
	struct msg *next;
	remo_value v;
};

struct watcher {
	struct watcher *next;
	remo_value addr;
};

struct waiter {
	struct waiter *next;
	remo_deferred *d;
};

struct actor {
	actor_node *node;       /* NULL once the node is gone */
	char id[300];
	pthread_mutex_t lock;
	pthread_cond_t mail;    /* a message arrived, or the actor ended */
	pthread_cond_t done;    /* the actor ended */
	struct msg *head, **tail;
	size_t nmsg, max_mailbox;
	bool ended, killed, adopted;
	remo_value result, error;
	struct watcher *watchers;
	size_t nwatchers;
	struct waiter *waiters;
	size_t nwaiters;
	atomic_int refs;        /* the address value, and each waiter */
	remo_value addr;        /* its address: held while it runs */
	actor_fn *fn;
	remo_value args;
	int64_t next_call;
	actor *prev, *next;     /* the node's running actors */
};

/* A monitor of an actor of another node: told NodeDown if that node's
 * session ends before the actor's exit notice came. */
struct rec {
	struct rec *next;
	remo_value watcher;     /* local actor's address */
	remo_value target;
	char *tid;
};

struct peer {
	struct peer *next;
	actor_node *node;
	char name[256];
	remo_session *s;
	remo_value proxy;       /* its "node" export */
	pthread_t thread;       /* serving s, if this node opened it */
	bool incoming;          /* the peer opened s (m_hello): the
	                           server serves it; no thread here */
	bool down;
	bool counted;           /* in n->npeers (while not down) */
	bool finished;          /* down, and every monitor told */
	unsigned users;         /* peer_get's callers using it (n->lock) */
	remo_future *hello;     /* ours, pending while s lasts */
	struct rec *recs;
	size_t nrecs;
};

struct actor_node {
	char name[256];
	unsigned char cookie[REMO_MAX_SECRET];
	size_t cookie_len;
	actor_node_opts opts;
	remo_exports *ex;
	remo_server *srv;
	pthread_t srv_thread;
	pthread_mutex_t lock;
	pthread_cond_t idle;
	pthread_mutex_t connect_lock; /* one connect at a time */
	unsigned running;
	uint64_t next_num;
	actor *actors;          /* running, with threads */
	actor *adopted;         /* actor_adopt's */
	struct peer *peers;
	unsigned npeers;        /* in peers and not down */
	atomic_uint_least64_t dropped;
	bool stopping;
};

/* ---- registry, types, errors ------------------------------------------- */

#define MAX_FUNCTIONS 256
static struct {
	char name[64];
	actor_fn *fn;
} registry[MAX_FUNCTIONS];
static unsigned nregistry;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;

int actor_register(const char *name, actor_fn *fn)
{
	if (name == NULL || fn == NULL || strlen(name) >= sizeof registry[0].name)
		return REMO_EINVAL;
	pthread_mutex_lock(&registry_lock);
	int rc = nregistry == MAX_FUNCTIONS ? REMO_ENOMEM : REMO_OK;
	for (unsigned i = 0; i < nregistry && rc == REMO_OK; i++)
		if (strcmp(registry[i].name, name) == 0)
			rc = REMO_EEXIST;
	if (rc == REMO_OK) {
		strcpy(registry[nregistry].name, name);
		registry[nregistry++].fn = fn;
	}
	pthread_mutex_unlock(&registry_lock);
	return rc;
}

static actor_fn *registry_find(const char *name)
{
	actor_fn *fn = NULL;
	pthread_mutex_lock(&registry_lock);
	for (unsigned i = 0; i < nregistry && fn == NULL; i++)
		if (strcmp(registry[i].name, name) == 0)
			fn = registry[i].fn;
	pthread_mutex_unlock(&registry_lock);
	return fn;
}

/* Raises err (stolen) as it is: outside a served call, on a thread
 * that traces its errors (an actor's), remo_raise_value would give it
 * a traceback of here, with its own as the cause. */
static void reraise(remo_value err)
{
	bool was = remo_trace_thread(false);
	remo_raise_value(err);
	remo_trace_thread(was);
}

static remo_type *addr_type, *node_type, *pattern_type;
static pthread_once_t types_once = PTHREAD_ONCE_INIT;
static int types_status = REMO_ENOMEM;

/* Patterns: one static record per kind (and one for any). */
struct pat {
	int kind;               /* a remo_kind, or -1: anything */
};
static struct pat pat_any = {-1};
static struct pat pat_kinds[REMO_TRACEBACK + 1];

static void m_send(actor *a, remo_value msg);
static remo_value m_info(actor *a);
static void m_monitor(actor *a, remo_value watcher);
static void m_watch(actor *a, remo_value target);
static void m_notify(actor *a, const char *tid, remo_value msg);
static remo_value m_wait(actor *a);
static void m_kill(actor *a);
static remo_value m_spawn(actor_node *n, const char *fn, remo_value args);
static const char *m_name(actor_node *n);
static remo_value m_stats(actor_node *n);
static void m_hello(actor_node *n, const char *name);

#define FN(f) ((void (*)(void))(f))

static void types_init(void)
{
	for (int k = 0; k <= REMO_TRACEBACK; k++)
		pat_kinds[k].kind = k;
	remo_errname_register("DeadActor", "LookupError");
	remo_errname_register("MailboxFull", "LimitError");
	remo_errname_register("Killed", "Error");
	remo_errname_register("NodeDown", "ConnectionError");
	addr_type = remo_type_new("Address", NULL, "an actor's address", NULL);
	node_type = remo_type_new("ActorNode", NULL, "a node of actors", NULL);
	pattern_type = remo_type_new("ActorPattern", NULL,
	                             "a receive pattern: a kind, or any", NULL);
	if (addr_type == NULL || node_type == NULL || pattern_type == NULL)
		return;
	int rc = remo_type_method(addr_type, "send", "v(msg:r)", FN(m_send),
	                          "puts msg in the actor's mailbox");
	rc |= remo_type_method(addr_type, "info", "r()", FN(m_info),
	                       "(node, id)");
	rc |= remo_type_method(addr_type, "monitor", "v(watcher:r)",
	                       FN(m_monitor), "tells watcher when this ends");
	rc |= remo_type_method(addr_type, "watch", "v(target:r)", FN(m_watch),
	                       "this actor monitors target");
	rc |= remo_type_method(addr_type, "notify", "v(id:s msg:r)",
	                       FN(m_notify), "an exit notice for this actor");
	rc |= remo_type_method(addr_type, "wait", "r()", FN(m_wait),
	                       "the actor's result, once it ends");
	rc |= remo_type_method(addr_type, "kill", "v()", FN(m_kill),
	                       "ends the actor with Killed");
	rc |= remo_type_method(node_type, "spawn", "r(fn:s args:r)",
	                       FN(m_spawn), "starts an actor here");
	rc |= remo_type_method(node_type, "hello", "v(name:s)", FN(m_hello),
	                       "the calling node's name, once per session");
	rc |= remo_type_method(node_type, "name", "s()", FN(m_name),
	                       "HOST:PORT");
	rc |= remo_type_method(node_type, "stats", "r()", FN(m_stats),
	                       "(actors, threads, rss_kib, dropped, peers)");
	types_status = rc == REMO_OK ? REMO_OK : REMO_ENOMEM;
}

static int types_ready(void)
{
	pthread_once(&types_once, types_init);
	return types_status;
}

/* A copy of v for a message: lists and dicts (at any depth) copied. */
static remo_value copy_value(remo_value v)
{
	if ((v.kind == REMO_LIST || v.kind == REMO_DICT ||
	     v.kind == REMO_TUPLE) && !remo_is_proxy(v))
		return remo_by_value(v);
	return remo_value_retain(v);
}

static void deadline_after(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void cond_init(pthread_cond_t *c)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(c, &ca);
	pthread_condattr_destroy(&ca);
}

/* ---- actors --------------------------------------------------------------- */

static void actor_unref(actor *a)
{
	if (atomic_fetch_sub(&a->refs, 1) != 1)
		return;
	struct msg *m = a->head;
	while (m != NULL) {
		struct msg *next = m->next;
		remo_value_release(m->v);
		free(m);
		m = next;
	}
	for (struct watcher *w = a->watchers, *next; w != NULL; w = next) {
		next = w->next;
		remo_value_release(w->addr);
		free(w);
	}
	remo_value_release(a->result);
	remo_value_release(a->error);
	remo_value_release(a->args);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->mail);
	pthread_cond_destroy(&a->done);
	free(a);
}

/* The address value's destructor. */
static void addr_dtor(void *p)
{
	actor_unref(p);
}

static actor *actor_new(actor_node *n)
{
	actor *a = calloc(1, sizeof *a);
	if (a == NULL)
		return NULL;
	a->node = n;
	pthread_mutex_init(&a->lock, NULL);
	cond_init(&a->mail);
	cond_init(&a->done);
	a->tail = &a->head;
	a->max_mailbox = n->opts.max_mailbox;
	atomic_init(&a->refs, 1);
	pthread_mutex_lock(&n->lock);
	uint64_t num = ++n->next_num;
	pthread_mutex_unlock(&n->lock);
	snprintf(a->id, sizeof a->id, "%s#%llu", n->name,
	         (unsigned long long)num);
	a->addr = remo_object(addr_type, a, addr_dtor);
	if (!remo_ok(a->addr)) {
		atomic_store(&a->refs, 0);
		pthread_mutex_destroy(&a->lock);
		pthread_cond_destroy(&a->mail);
		pthread_cond_destroy(&a->done);
		free(a);
		return NULL;
	}
	return a;
}

static actor *local_actor(remo_value addr)
{
	return types_ready() == REMO_OK ? remo_object_ptr(addr, addr_type)
	                                : NULL;
}

/* msg (stolen) into a's mailbox; force: past max_mailbox too. */
static int push(actor *a, remo_value msg, bool force)
{
	if (!remo_ok(msg)) {
		remo_raise("MemoryError", "out of memory copying a message");
		return REMO_ERAISED;
	}
	struct msg *m = malloc(sizeof *m);
	if (m == NULL) {
		remo_value_release(msg);
		remo_raise("MemoryError", "out of memory for a message");
		return REMO_ERAISED;
	}
	m->next = NULL;
	m->v = msg;
	pthread_mutex_lock(&a->lock);
	/* exit notices (force) may fill a mailbox to twice its limit: a
	 * full mailbox still hears of its links, and a node that sends
	 * notices without end still meets a bound */
	size_t max = force ? 2 * a->max_mailbox : a->max_mailbox;
	if (a->ended || a->nmsg >= max) {
		bool ended = a->ended;
		size_t n = a->nmsg;
		pthread_mutex_unlock(&a->lock);
		remo_value_release(msg);
		free(m);
		if (ended)
			remo_raise("DeadActor", "actor %s has ended", a->id);
		else
			remo_raise("MailboxFull", "actor %s has %zu messages "
			           "waiting (max_mailbox)", a->id, n);
		return REMO_ERAISED;
	}
	*a->tail = m;
	a->tail = &m->next;
	a->nmsg++;
	pthread_cond_signal(&a->mail);
	pthread_mutex_unlock(&a->lock);
	return REMO_OK;
}

/* The exit notice of an ended actor: new. */
static remo_value notice_of(actor *a)
{
	remo_value d = remo_dict();
	pthread_mutex_lock(&a->lock);
	if (a->error.kind == REMO_ERROR)
		remo_dict_set_str(d, "exception", remo_value_retain(a->error));
	else
		remo_dict_set_str(d, "exit", remo_value_retain(a->result));
	pthread_mutex_unlock(&a->lock);
	remo_dict_set_str(d, "address", remo_value_retain(a->addr));
	return d;
}

/* Takes the record of watcher w's monitor of tid out of n's peers. */
static void rec_drop(actor_node *n, actor *w, const char *tid)
{
	if (n == NULL)
		return;
	struct rec *found = NULL;
	pthread_mutex_lock(&n->lock);
	for (struct peer *p = n->peers; p != NULL && found == NULL;
	     p = p->next)
		for (struct rec **r = &p->recs; *r != NULL; r = &(*r)->next)
			if (local_actor((*r)->watcher) == w &&
			    strcmp((*r)->tid, tid) == 0) {
				found = *r;
				*r = found->next;
				p->nrecs--;
				break;
			}
	pthread_mutex_unlock(&n->lock);
	if (found != NULL) {
		remo_value_release(found->watcher);
		remo_value_release(found->target);
		free(found->tid);
		free(found);
	}
}

/* Tells the watcher at w (local or not) that the actor tid ended. */
static void deliver_notice(remo_value w, const char *tid, remo_value notice)
{
	actor *t = local_actor(w);
	if (t != NULL) {
		/* a watcher of this process watches an actor of this
		 * process: no record (those are for other nodes' actors),
		 * and t's node may be stopped (t->node gone) */
		push(t, remo_value_retain(notice), true);
		return;
	}
	remo_value args = remo_tuple_of(2, remo_str(tid), copy_value(notice));
	remo_call_method_oneway(w, "notify", args);
	remo_value_release(args);
}

/* Ends a (once): result or error (borrowed) is what it ended with. */
static void actor_end(actor *a, remo_value result, remo_value error)
{
	pthread_mutex_lock(&a->lock);
	if (a->ended) {
		pthread_mutex_unlock(&a->lock);
		return;
	}
	a->ended = true;
	if (error.kind == REMO_ERROR)
		a->error = remo_value_retain(error);
	else
		a->result = copy_value(result);
	struct watcher *ws = a->watchers;
	struct waiter *wt = a->waiters;
	struct msg *ms = a->head;
	a->watchers = NULL;
	a->nwatchers = 0;
	a->waiters = NULL;
	a->nwaiters = 0;
	a->head = NULL;
	a->tail = &a->head;
	a->nmsg = 0;
	pthread_cond_broadcast(&a->mail);
	pthread_cond_broadcast(&a->done);
	pthread_mutex_unlock(&a->lock);

	while (ms != NULL) {
		struct msg *next = ms->next;
		remo_value_release(ms->v);
		free(ms);
		ms = next;
	}
	remo_value notice = notice_of(a);
	for (struct watcher *w = ws, *next; w != NULL; w = next) {
		next = w->next;
		deliver_notice(w->addr, a->id, notice);
		remo_value_release(w->addr);
		free(w);
	}
	remo_value_release(notice);
	for (struct waiter *w = wt, *next; w != NULL; w = next) {
		next = w->next;
		int rc = a->error.kind == REMO_ERROR
		         ? remo_deferred_fail(w->d, a->error)
		         : remo_deferred_reply(w->d, a->result);
		/* answered (or the answer could not be encoded): no cancel
		 * hook will run to drop the waiter's reference.  Cancelled,
		 * or its session ended first: that hook drops it.  (A
		 * session that ends during the send looks the same, and the
		 * actor's memory then stays until the process ends.) */
		if (rc != REMO_ECANCELED && rc != REMO_ECLOSED &&
		    rc != REMO_EPEERLOST)
			actor_unref(a);
		free(w);
	}
}

static void kill_local(actor *a)
{
	pthread_mutex_lock(&a->lock);
	bool was = a->ended;
	a->killed = !was;
	pthread_mutex_unlock(&a->lock);
	if (was)
		return;
	remo_value e = remo_error("Killed", "actor was killed");
	remo_dict_set_str(remo_error_attrs(e), "actor", remo_str(a->id));
	actor_end(a, remo_nil(), e);
	remo_value_release(e);
}

static void node_forget(actor_node *n, actor *a)
{
	pthread_mutex_lock(&n->lock);
	if (a->prev != NULL)
		a->prev->next = a->next;
	else if (n->actors == a)
		n->actors = a->next;
	if (a->next != NULL)
		a->next->prev = a->prev;
	a->prev = a->next = NULL;
	if (--n->running == 0)
		pthread_cond_broadcast(&n->idle);
	pthread_mutex_unlock(&n->lock);
}

static void *actor_main(void *p)
{
	actor *a = p;
	actor_node *n = a->node;
	remo_value self = a->addr;
	remo_trace_thread(true);
	remo_value r = a->fn(a, a->args);
	remo_value err = remo_nil();
	if (!remo_ok(r)) {
		err = remo_value_retain(remo_last_error());
		if (err.kind != REMO_ERROR) {
			remo_value_release(err);
			err = remo_error("Error", "actor function returned "
			                 "REMO_INVALID without raising");
		}
		r = remo_nil();
	}
	actor_end(a, r, err);
	remo_value_release(r);
	remo_value_release(err);
	node_forget(n, a);
	remo_value_release(self);
	return NULL;
}

static int spawn_here(actor_node *n, const char *fname, remo_value args,
                      remo_value *out)
{
	actor_fn *fn = registry_find(fname);
	if (fn == NULL) {
		remo_raise("LookupError", "no actor function '%s' on node %s",
		           fname, n->name);
		return REMO_ERAISED;
	}
	remo_value copy = copy_value(args);
	if (!remo_ok(copy)) {
		reraise(remo_value_retain(remo_last_error()));
		return REMO_ERAISED;
	}
	actor *a = actor_new(n);
	if (a == NULL) {
		remo_value_release(copy);
		remo_raise("MemoryError", "out of memory for an actor");
		return REMO_ERAISED;
	}
	a->fn = fn;
	a->args = copy;
	pthread_mutex_lock(&n->lock);
	int rc = REMO_OK;
	if (n->stopping) {
		rc = REMO_ECLOSED;
	} else if (n->running >= n->opts.max_actors) {
		rc = REMO_ELIMIT;
	} else {
		n->running++;
		a->next = n->actors;
		if (a->next != NULL)
			a->next->prev = a;
		n->actors = a;
	}
	pthread_mutex_unlock(&n->lock);
	if (rc == REMO_OK) {
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		size_t stack = n->opts.stack_size;
		if (stack < (size_t)PTHREAD_STACK_MIN)
			stack = PTHREAD_STACK_MIN;
		pthread_attr_setstacksize(&at, stack);
		pthread_t t;
		/* the new thread may end and release a->addr at once */
		*out = remo_value_retain(a->addr);
		int e = pthread_create(&t, &at, actor_main, a);
		pthread_attr_destroy(&at);
		if (e == 0)
			return REMO_OK;
		remo_value_release(*out);
		*out = remo_nil();
		node_forget(n, a);
		actor_end(a, remo_nil(), remo_nil());
		remo_value_release(a->addr);
		remo_raise("LimitError", "could not start a thread for an "
		           "actor on %s: %s", n->name, strerror(e));
		return REMO_ERAISED;
	}
	actor_end(a, remo_nil(), remo_nil());
	remo_value_release(a->addr);
	if (rc == REMO_ECLOSED)
		remo_raise("NodeDown", "node %s is stopping", n->name);
	else
		remo_raise("LimitError", "node %s runs %u actors (max_actors)",
		           n->name, n->opts.max_actors);
	return REMO_ERAISED;
}

/* ---- peers: sessions with other nodes -------------------------------- */

/* p's session ended: its monitors get NodeDown. */
static void peer_down(struct peer *p, int why)
{
	actor_node *n = p->node;
	pthread_mutex_lock(&n->lock);
	if (!p->down && p->counted)
		n->npeers--;
	p->down = true;
	struct rec *recs = p->recs;
	p->recs = NULL;
	p->nrecs = 0;
	pthread_mutex_unlock(&n->lock);
	for (struct rec *r = recs, *next; r != NULL; r = next) {
		next = r->next;
		char msg[400];
		snprintf(msg, sizeof msg, "node %s went away (%s) before "
		         "actor %s ended", p->name, remo_status_name(why),
		         r->tid);
		remo_value e = remo_error("NodeDown", msg);
		remo_value d = remo_dict();
		remo_dict_set_str(d, "exception", e);
		remo_dict_set_str(d, "address", remo_value_retain(r->target));
		actor *w = local_actor(r->watcher);
		if (w != NULL)
			push(w, d, true);
		else
			remo_value_release(d);
		remo_value_release(r->watcher);
		remo_value_release(r->target);
		free(r->tid);
		free(r);
	}
	/* the last touch: from now on peer_sweep may free p */
	pthread_mutex_lock(&n->lock);
	p->finished = true;
	pthread_mutex_unlock(&n->lock);
}

/* Frees the peers that are down, have told their monitors and that no
 * caller uses: a node that comes and goes costs nothing that stays.
 * Under n->connect_lock (peer_get, actor_node_stop). */
static void peer_sweep(actor_node *n)
{
	struct peer *gone = NULL;
	pthread_mutex_lock(&n->lock);
	/* a stopping node's peers are actor_node_stop's to free */
	for (struct peer **pp = &n->peers; *pp != NULL && !n->stopping;) {
		struct peer *p = *pp;
		if (p->down && p->finished && p->users == 0) {
			*pp = p->next;
			p->next = gone;
			gone = p;
		} else {
			pp = &p->next;
		}
	}
	pthread_mutex_unlock(&n->lock);
	while (gone != NULL) {
		struct peer *p = gone;
		gone = p->next;
		if (!p->incoming) {
			pthread_join(p->thread, NULL);
			remo_future_free(p->hello);
			remo_session_free(p->s);
		}
		remo_value_release(p->proxy);
		free(p);
	}
}

/* Done with a peer peer_get gave. */
static void peer_put(actor_node *n, struct peer *p)
{
	pthread_mutex_lock(&n->lock);
	p->users--;
	pthread_mutex_unlock(&n->lock);
}

/* A session this node opened: served here until it ends. */
static void *peer_main(void *arg)
{
	struct peer *p = arg;
	peer_down(p, remo_session_serve(p->s, -1));
	return NULL;
}

/* A session another node opened, introduced by its hello: it ended. */
static void hello_gone(remo_deferred *d, void *user)
{
	remo_value e = remo_error("CancelledError", "session ended");
	remo_deferred_fail(d, e); /* sends nothing: frees d */
	remo_value_release(e);
	peer_down(user, REMO_EPEERLOST);
}

/*
 * hello: the node named name opened the session this call came on.
 * That session becomes the way to it, both ways, so that its actors'
 * addresses reach this node through one session only (two proxies of one
 * actor through two sessions would not compare equal in a pattern).
 * The call is answered only when the session ends (then its cancel
 * hook tells the monitors); a name already reachable is answered at
 * once and changes nothing.
 */
static void m_hello(actor_node *n, const char *name)
{
	remo_caller_info ci;
	if (remo_caller(&ci) != REMO_OK || strlen(name) >= 256)
		return;
	pthread_mutex_lock(&n->lock);
	struct peer *p = n->peers;
	/* a name already reachable, or this session already introduced
	 * (one hello a session: a node cannot fill the table alone) */
	while (p != NULL && (p->down || (strcmp(p->name, name) != 0 &&
	                                 p->s != ci.session)))
		p = p->next;
	bool known = p != NULL || n->stopping || n->npeers >= MAX_PEERS;
	if (!known)
		n->npeers++; /* taken now: given back below on failure */
	pthread_mutex_unlock(&n->lock);
	if (known)
		return;
	remo_value proxy = remo_nil();
	p = remo_lookup(ci.session, "node", &proxy) == REMO_OK
	    ? calloc(1, sizeof *p) : NULL;
	if (p == NULL) {
		remo_value_release(proxy);
		pthread_mutex_lock(&n->lock);
		n->npeers--;
		pthread_mutex_unlock(&n->lock);
		return;
	}
	p->node = n;
	p->incoming = true;
	p->counted = true; /* npeers was taken above */
	p->s = ci.session; /* its identity only: the server owns it */
	strcpy(p->name, name);
	p->proxy = proxy;
	pthread_mutex_lock(&n->lock);
	p->next = n->peers;
	n->peers = p;
	pthread_mutex_unlock(&n->lock);
	if (remo_defer(hello_gone, p) == NULL)
		peer_down(p, REMO_ENOMEM);
}

/* The session with node where ("HOST:PORT"), connecting if needed. */
static int peer_get(actor_node *n, const char *where, struct peer **out)
{
	pthread_mutex_lock(&n->connect_lock);
	peer_sweep(n);
	pthread_mutex_lock(&n->lock);
	struct peer *p = n->peers;
	while (p != NULL && (p->down || strcmp(p->name, where) != 0))
		p = p->next;
	bool stopping = n->stopping, full = n->npeers >= MAX_PEERS;
	if (p != NULL)
		p->users++; /* peer_put when done */
	pthread_mutex_unlock(&n->lock);
	if (p != NULL || stopping || full) {
		pthread_mutex_unlock(&n->connect_lock);
		*out = p;
		if (p == NULL && stopping)
			remo_raise("NodeDown", "node %s is stopping", n->name);
		else if (p == NULL)
			remo_raise("LimitError", "node %s has known %d other "
			           "nodes (MAX_PEERS)", n->name, MAX_PEERS);
		return p != NULL ? REMO_OK : REMO_ERAISED;
	}
	char url[300];
	snprintf(url, sizeof url, "tcp://%s", where);
	remo_session_opts o = {0};
	o.secret = n->cookie;
	o.secret_len = n->cookie_len;
	o.timeout_ms = PEER_CALL_MS;
	remo_session *s = NULL;
	int rc = strlen(where) < sizeof p->name
	         ? remo_connect(url, 5000, n->ex, &o, &s) : REMO_EINVAL;
	remo_value proxy = remo_nil();
	if (rc == REMO_OK)
		rc = remo_lookup(s, "node", &proxy);
	p = rc == REMO_OK ? calloc(1, sizeof *p) : NULL;
	if (p != NULL) {
		p->node = n;
		strcpy(p->name, where);
		p->s = s;
		p->proxy = proxy;
		if (pthread_create(&p->thread, NULL, peer_main, p) != 0) {
			free(p);
			p = NULL;
		}
	}
	if (p == NULL) {
		char why[256];
		remo_value e = remo_last_error();
		snprintf(why, sizeof why, "%s",
		         rc == REMO_OK ? "out of memory or threads"
		         : e.kind == REMO_ERROR ? remo_error_message(e)
		                                : remo_strerror(rc));
		/* a node that cannot be reached is down, as far as this
		 * node can tell: NodeDown, whatever the transport said */
		const char *name = rc == REMO_OK ? "MemoryError"
		                   : rc == REMO_EAUTH ? "AuthenticationError"
		                   : rc == REMO_ENOMEM ? "MemoryError"
		                                       : "NodeDown";
		remo_value_release(proxy);
		if (s != NULL)
			remo_session_free(s);
		pthread_mutex_unlock(&n->connect_lock);
		remo_raise(name, "node %s: %s", where, why);
		return REMO_ERAISED;
	}
	pthread_mutex_lock(&n->lock);
	p->next = n->peers;
	n->peers = p;
	if (!p->down) { /* (its session may have ended already) */
		n->npeers++;
		p->counted = true;
	}
	p->users = 1; /* peer_put when done */
	pthread_mutex_unlock(&n->lock);
	/* introduce this node: the peer then reaches it on s too */
	remo_value args = remo_tuple_of(1, remo_str(n->name));
	remo_call_method_async(p->proxy, "hello", args, NULL, &p->hello);
	remo_value_release(args);
	pthread_mutex_unlock(&n->connect_lock);
	*out = p;
	return REMO_OK;
}

/* ---- the Address and node methods, for other nodes -------------------- */

static void m_send(actor *a, remo_value msg)
{
	if (push(a, remo_value_retain(msg), false) != REMO_OK) {
		actor_node *n = a->node;
		if (n != NULL)
			atomic_fetch_add(&n->dropped, 1);
		/* the raise stands: a checked send is told */
	}
}

static remo_value m_info(actor *a)
{
	char node[300];
	snprintf(node, sizeof node, "%s", a->id);
	char *hash = strrchr(node, '#');
	if (hash != NULL)
		*hash = '\0';
	return remo_tuple_of(2, remo_str(node), remo_str(a->id));
}

static int add_watcher(actor *a, remo_value w)
{
	struct watcher *x = malloc(sizeof *x);
	if (x == NULL) {
		remo_raise("MemoryError", "out of memory for a monitor");
		return REMO_ERAISED;
	}
	x->addr = remo_value_retain(w);
	pthread_mutex_lock(&a->lock);
	bool ended = a->ended, full = a->nwatchers >= ACTOR_MAX_WATCHERS;
	if (!ended && !full) {
		x->next = a->watchers;
		a->watchers = x;
		a->nwatchers++;
	}
	pthread_mutex_unlock(&a->lock);
	if (!ended && !full)
		return REMO_OK;
	remo_value_release(x->addr);
	free(x);
	if (full) {
		remo_raise("LimitError", "actor %s has %d monitors", a->id,
		           ACTOR_MAX_WATCHERS);
		return REMO_ERAISED;
	}
	remo_value notice = notice_of(a);
	deliver_notice(w, a->id, notice);
	remo_value_release(notice);
	return REMO_OK;
}

static void m_monitor(actor *a, remo_value watcher)
{
	add_watcher(a, watcher);
}

static int monitor_of(actor *w, remo_value target);

static void m_watch(actor *a, remo_value target)
{
	if (monitor_of(a, target) != REMO_OK)
		reraise(remo_value_retain(remo_last_error()));
}

static void m_notify(actor *a, const char *tid, remo_value msg)
{
	rec_drop(a->node, a, tid);
	push(a, remo_value_retain(msg), true);
}

static void wait_cancelled(remo_deferred *d, void *user)
{
	actor *a = user;
	pthread_mutex_lock(&a->lock);
	struct waiter *found = NULL;
	for (struct waiter **w = &a->waiters; *w != NULL; w = &(*w)->next)
		if ((*w)->d == d) {
			found = *w;
			*w = found->next;
			a->nwaiters--;
			break;
		}
	pthread_mutex_unlock(&a->lock);
	if (found != NULL) {
		remo_value e = remo_error("CancelledError", "wait cancelled");
		remo_deferred_fail(d, e);
		remo_value_release(e);
		free(found);
	}
	actor_unref(a);
}

static remo_value m_wait(actor *a)
{
	struct waiter *w = malloc(sizeof *w);
	if (w == NULL) {
		remo_raise("MemoryError", "out of memory for a wait");
		return remo_nil();
	}
	pthread_mutex_lock(&a->lock);
	if (a->ended) {
		/* through a deferred reply too: raised here, the error would
		 * get a traceback of this function, the actor's its cause */
		remo_value r = remo_value_retain(a->result);
		remo_value e = remo_value_retain(a->error);
		pthread_mutex_unlock(&a->lock);
		free(w);
		remo_deferred *d = remo_defer(NULL, NULL);
		if (d == NULL)
			remo_raise("MemoryError", "out of memory for a wait");
		else if (e.kind == REMO_ERROR)
			remo_deferred_fail(d, e);
		else
			remo_deferred_reply(d, r);
		remo_value_release(r);
		remo_value_release(e);
		return remo_nil();
	}
	if (a->nwaiters >= ACTOR_MAX_WATCHERS) {
		pthread_mutex_unlock(&a->lock);
		free(w);
		remo_raise("LimitError", "actor %s has %d waiters", a->id,
		           ACTOR_MAX_WATCHERS);
		return remo_nil();
	}
	atomic_fetch_add(&a->refs, 1);
	w->d = remo_defer(wait_cancelled, a);
	if (w->d == NULL) {
		pthread_mutex_unlock(&a->lock);
		atomic_fetch_sub(&a->refs, 1);
		free(w);
		remo_raise("MemoryError", "out of memory for a wait");
		return remo_nil();
	}
	w->next = a->waiters;
	a->waiters = w;
	a->nwaiters++;
	pthread_mutex_unlock(&a->lock);
	return remo_nil();
}

static void m_kill(actor *a)
{
	kill_local(a);
}

static remo_value m_spawn(actor_node *n, const char *fn, remo_value args)
{
	remo_value out = remo_nil();
	spawn_here(n, fn, args, &out);
	return out;
}

static const char *m_name(actor_node *n)
{
	return n->name;
}

/* A field of /proc/self/status, e.g. "Threads:"; -1 if unknown. */
static int64_t proc_status(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	int64_t v = -1;
	size_t n = strlen(field);
	while (f != NULL && fgets(line, sizeof line, f) != NULL)
		if (strncmp(line, field, n) == 0) {
			v = strtoll(line + n, NULL, 10);
			break;
		}
	if (f != NULL)
		fclose(f);
	return v;
}

static remo_value m_stats(actor_node *n)
{
	pthread_mutex_lock(&n->lock);
	unsigned peers = n->npeers;
	pthread_mutex_unlock(&n->lock);
	return remo_tuple_of(5, remo_int(actor_node_actors(n)),
	                     remo_int(proc_status("Threads:")),
	                     remo_int(proc_status("VmRSS:")),
	                     remo_int((int64_t)actor_node_dropped(n)),
	                     remo_int(peers));
}

int actor_node_stats(actor_node *n, const char *where, remo_value *out)
{
	*out = remo_nil();
	if (where == NULL || strcmp(where, n->name) == 0) {
		*out = m_stats(n);
		return remo_ok(*out) ? REMO_OK : REMO_ENOMEM;
	}
	struct peer *p;
	int rc = peer_get(n, where, &p);
	if (rc != REMO_OK)
		return rc;
	rc = remo_call_method(p->proxy, "stats", remo_nil(), out);
	peer_put(n, p);
	return rc;
}

/* ---- the node ----------------------------------------------------------- */

static void *server_main(void *arg)
{
	remo_server_run(arg);
	return NULL;
}

actor_node *actor_node_start(const char *name, const actor_node_opts *opts,
                             int *rc)
{
	int dummy;
	if (rc == NULL)
		rc = &dummy;
	*rc = types_ready();
	if (*rc != REMO_OK)
		return NULL;
	actor_node *n = calloc(1, sizeof *n);
	if (n == NULL) {
		*rc = REMO_ENOMEM;
		return NULL;
	}
	if (opts != NULL)
		n->opts = *opts;
	if (n->opts.max_actors == 0)
		n->opts.max_actors = ACTOR_DEFAULT_MAX_ACTORS;
	if (n->opts.max_mailbox == 0)
		n->opts.max_mailbox = ACTOR_DEFAULT_MAX_MAILBOX;
	if (n->opts.stack_size == 0)
		n->opts.stack_size = ACTOR_DEFAULT_STACK;
	n->opts.cookie = NULL;
	const char *at = name != NULL ? strrchr(name, '@') : NULL;
	const char *hostport = at != NULL ? at + 1 : name;
	const char *cookie = opts != NULL && opts->cookie != NULL
	                     ? opts->cookie : NULL;
	size_t clen = cookie != NULL ? strlen(cookie)
	              : at != NULL ? (size_t)(at - name) : 0;
	if (cookie == NULL && at != NULL)
		cookie = name;
	if (hostport == NULL || strchr(hostport, ':') == NULL ||
	    strlen(hostport) > 200) {
		free(n);
		*rc = REMO_EINVAL;
		remo_raise("ValueError", "a node's name is COOKIE@HOST:PORT, "
		           "not '%s'", name ? name : "(null)");
		return NULL;
	}
	if (cookie == NULL || clen < ACTOR_MIN_COOKIE ||
	    clen > sizeof n->cookie) {
		free(n);
		*rc = REMO_EINVAL;
		remo_raise("ValueError", "a node's cookie has %d to %zu bytes "
		           "(%zu given)", ACTOR_MIN_COOKIE, sizeof n->cookie,
		           cookie ? clen : 0);
		return NULL;
	}
	memcpy(n->cookie, cookie, clen);
	n->cookie_len = clen;
	pthread_mutex_init(&n->lock, NULL);
	pthread_mutex_init(&n->connect_lock, NULL);
	cond_init(&n->idle);
	atomic_init(&n->dropped, 0);

	remo_server_opts so = {0};
	so.session.secret = n->cookie;
	so.session.secret_len = n->cookie_len;
	so.session.timeout_ms = PEER_CALL_MS; /* our calls back to them */
	n->ex = remo_exports_new();
	remo_value nv = remo_object(node_type, n, NULL);
	*rc = n->ex != NULL && remo_ok(nv) ? remo_export(n->ex, "node", nv)
	                                  : REMO_ENOMEM;
	remo_value_release(nv);
	if (*rc == REMO_OK)
		n->srv = remo_server_new(n->ex, &so, rc);
	char url[300], bound[200];
	snprintf(url, sizeof url, "tcp://%s", hostport);
	if (*rc == REMO_OK)
		*rc = remo_server_listen(n->srv, url, bound, sizeof bound);
	if (*rc == REMO_OK) {
		snprintf(n->name, sizeof n->name, "%s",
		         strncmp(bound, "tcp://", 6) == 0 ? bound + 6 : bound);
		if (pthread_create(&n->srv_thread, NULL, server_main, n->srv))
			*rc = REMO_ENOMEM;
	}
	if (*rc != REMO_OK) {
		remo_server_free(n->srv);
		remo_exports_free(n->ex);
		pthread_mutex_destroy(&n->lock);
		pthread_mutex_destroy(&n->connect_lock);
		pthread_cond_destroy(&n->idle);
		free(n);
		return NULL;
	}
	return n;
}

const char *actor_node_name(const actor_node *n)
{
	return n->name;
}

unsigned actor_node_actors(actor_node *n)
{
	pthread_mutex_lock(&n->lock);
	unsigned r = n->running;
	pthread_mutex_unlock(&n->lock);
	return r;
}

uint64_t actor_node_dropped(actor_node *n)
{
	return atomic_load(&n->dropped);
}

/* Kills every actor of n; true if all returned within ms. */
static bool kill_all(actor_node *n, int ms)
{
	pthread_mutex_lock(&n->lock);
	n->stopping = true;
	size_t k = 0;
	for (actor *a = n->actors; a != NULL; a = a->next)
		k++;
	for (actor *a = n->adopted; a != NULL; a = a->next)
		k++;
	remo_value *all = calloc(k ? k : 1, sizeof *all);
	size_t i = 0;
	for (actor *a = n->actors; a != NULL && all != NULL; a = a->next)
		all[i++] = remo_value_retain(a->addr);
	for (actor *a = n->adopted; a != NULL && all != NULL; a = a->next)
		all[i++] = remo_value_retain(a->addr);
	pthread_mutex_unlock(&n->lock);
	for (size_t j = 0; j < i; j++) {
		kill_local(local_actor(all[j]));
		remo_value_release(all[j]);
	}
	free(all);
	struct timespec dl;
	deadline_after(&dl, ms);
	pthread_mutex_lock(&n->lock);
	int e = 0;
	while (n->running > 0 && e != ETIMEDOUT)
		e = pthread_cond_timedwait(&n->idle, &n->lock, &dl);
	bool idle = n->running == 0;
	pthread_mutex_unlock(&n->lock);
	return idle;
}

void actor_node_stop(actor_node *n)
{
	if (n == NULL)
		return;
	/* first the actors (their receives fail with Killed), then the
	 * sessions, which ends the remote calls any of them still makes */
	bool idle = kill_all(n, STOP_WAIT_MS / 5);
	remo_server_stop(n->srv);
	pthread_join(n->srv_thread, NULL);
	/* no peer comes or goes (peer_get, peer_sweep) from here on */
	pthread_mutex_lock(&n->connect_lock);
	pthread_mutex_lock(&n->lock);
	struct peer *peers = n->peers;
	pthread_mutex_unlock(&n->lock);
	for (struct peer *p = peers; p != NULL; p = p->next)
		if (!p->incoming)
			remo_session_close(p->s);
	for (struct peer *p = peers; p != NULL; p = p->next)
		if (!p->incoming)
			pthread_join(p->thread, NULL);
	/* (peer_get refuses new peers now, and peer_sweep frees none:
	 * stopping is set) */
	pthread_mutex_unlock(&n->connect_lock);
	if (!idle)
		idle = kill_all(n, STOP_WAIT_MS);
	if (!idle) {
		fprintf(stderr, "actor_node_stop: %u actors of %s did not "
		        "return in %d ms; the node is left running\n",
		        n->running, n->name, STOP_WAIT_MS);
		return;
	}
	remo_server_free(n->srv);
	pthread_mutex_lock(&n->lock);
	n->peers = NULL;
	for (actor *a = n->adopted; a != NULL; a = a->next)
		a->node = NULL;
	pthread_mutex_unlock(&n->lock);
	for (struct peer *p = peers, *next; p != NULL; p = next) {
		next = p->next;
		remo_value_release(p->proxy);
		remo_future_free(p->hello);
		if (!p->incoming)
			remo_session_free(p->s);
		free(p);
	}
	remo_exports_free(n->ex);
	pthread_mutex_destroy(&n->lock);
	pthread_mutex_destroy(&n->connect_lock);
	pthread_cond_destroy(&n->idle);
	free(n);
}

/* ---- the program's side ------------------------------------------------ */

int actor_spawn(actor_node *n, const char *where, const char *fn,
                remo_value args, remo_value *addr)
{
	*addr = remo_nil();
	if (n == NULL || fn == NULL)
		return REMO_EINVAL;
	if (where == NULL || strcmp(where, n->name) == 0)
		return spawn_here(n, fn, args, addr);
	struct peer *p;
	int rc = peer_get(n, where, &p);
	if (rc != REMO_OK)
		return rc;
	remo_value copy = copy_value(args);
	remo_value a = remo_tuple_of(2, remo_str(fn), copy);
	rc = remo_call_method(p->proxy, "spawn", a, addr);
	remo_value_release(a);
	peer_put(n, p);
	return rc;
}

int actor_spawn_link(actor *self, const char *where, const char *fn,
                     remo_value args, remo_value *addr)
{
	int rc = actor_spawn(self->node, where, fn, args, addr);
	if (rc == REMO_OK && (rc = actor_link(self, *addr)) != REMO_OK) {
		remo_value_release(*addr);
		*addr = remo_nil();
	}
	return rc;
}

remo_value actor_self(actor *self)
{
	return self->addr;
}

actor_node *actor_node_of(actor *self)
{
	return self->node;
}

const char *actor_id(actor *self)
{
	return self->id;
}

int actor_adopt(actor_node *n, actor **out)
{
	actor *a = actor_new(n);
	if (a == NULL)
		return REMO_ENOMEM;
	a->adopted = true;
	pthread_mutex_lock(&n->lock);
	a->next = n->adopted;
	if (a->next != NULL)
		a->next->prev = a;
	n->adopted = a;
	pthread_mutex_unlock(&n->lock);
	*out = a;
	return REMO_OK;
}

void actor_release(actor *a)
{
	if (a == NULL)
		return;
	actor_node *n = a->node;
	actor_end(a, remo_nil(), remo_nil());
	if (n != NULL) {
		pthread_mutex_lock(&n->lock);
		if (a->prev != NULL)
			a->prev->next = a->next;
		else if (n->adopted == a)
			n->adopted = a->next;
		if (a->next != NULL)
			a->next->prev = a->prev;
		pthread_mutex_unlock(&n->lock);
	}
	remo_value_release(a->addr);
}

static int send_to(remo_value addr, remo_value msg, bool checked)
{
	actor *a = local_actor(addr);
	if (a != NULL)
		return push(a, copy_value(msg), false);
	if (!remo_is_proxy(addr)) {
		remo_raise("TypeError", "send: not an address (%s)",
		           remo_kind_name(addr.kind));
		return REMO_ERAISED;
	}
	remo_value copy = copy_value(msg);
	if (!remo_ok(copy))
		return REMO_ERAISED;
	remo_value args = remo_tuple_of(1, copy);
	int rc;
	if (checked) {
		remo_value r;
		rc = remo_call_method(addr, "send", args, &r);
		if (rc == REMO_OK)
			remo_value_release(r);
	} else {
		rc = remo_call_method_oneway(addr, "send", args);
	}
	remo_value_release(args);
	return rc;
}

int actor_send(remo_value addr, remo_value msg)
{
	return send_to(addr, msg, false);
}

int actor_send_checked(remo_value addr, remo_value msg)
{
	return send_to(addr, msg, true);
}

remo_value actor_any(void)
{
	if (types_ready() != REMO_OK)
		return (remo_value){.kind = REMO_INVALID};
	return remo_object(pattern_type, &pat_any, NULL);
}

remo_value actor_type(remo_kind kind)
{
	if (types_ready() != REMO_OK || (int)kind < 0 ||
	    (int)kind > REMO_TRACEBACK)
		return (remo_value){.kind = REMO_INVALID};
	return remo_object(pattern_type, &pat_kinds[kind], NULL);
}

static bool kind_matches(int k, remo_value v)
{
	if (k == REMO_OBJECT)
		return v.kind == REMO_OBJECT || v.kind == REMO_CALLABLE;
	return (int)v.kind == k;
}

bool actor_match(remo_value p, remo_value v)
{
	if (p.kind == REMO_OBJECT && types_ready() == REMO_OK) {
		const struct pat *pt = remo_object_ptr(p, pattern_type);
		if (pt != NULL)
			return pt->kind < 0 || kind_matches(pt->kind, v);
	}
	switch (p.kind) {
	case REMO_DICT: {
		if (v.kind != REMO_DICT || remo_is_proxy(v))
			return false;
		size_t pos = 0;
		remo_value k, pv, x;
		while (remo_dict_next(p, &pos, &k, &pv))
			if (remo_dict_get(v, k, &x) != REMO_OK ||
			    !actor_match(pv, x))
				return false;
		return true;
	}
	case REMO_TUPLE: {
		size_t n = remo_tuple_len(p);
		if (v.kind != REMO_TUPLE || remo_tuple_len(v) != n)
			return false;
		for (size_t i = 0; i < n; i++)
			if (!actor_match(remo_tuple_get(p, i),
			                 remo_tuple_get(v, i)))
				return false;
		return true;
	}
	case REMO_LIST: {
		if (v.kind != REMO_LIST || remo_is_proxy(v))
			return false;
		size_t n = remo_list_len(p), m = remo_list_len(v);
		if (n != 1 && n != m)
			return false;
		for (size_t i = 0; i < m; i++) {
			if (!actor_match(remo_list_get(p, n == 1 ? 0 : i),
			                 remo_list_get(v, i)))
				return false;
		}
		return true;
	}
	default:
		return remo_equal(p, v);
	}
}

static int match_any(size_t npat, const remo_value *pats, remo_value v)
{
	if (npat == 0)
		return 0;
	for (size_t i = 0; i < npat; i++)
		if (actor_match(pats[i], v))
			return (int)i;
	return -1;
}

int actor_receive(actor *a, int timeout_ms, size_t npat,
                  const remo_value *pats, remo_value *msg, int *which)
{
	*msg = remo_nil();
	struct timespec dl;
	if (timeout_ms > 0)
		deadline_after(&dl, timeout_ms);
	pthread_mutex_lock(&a->lock);
	struct msg **scan = &a->head;
	for (;;) {
		if (a->ended) {
			bool killed = a->killed;
			pthread_mutex_unlock(&a->lock);
			if (killed)
				remo_raise("Killed", "actor %s was killed",
				           a->id);
			else
				remo_raise("DeadActor", "actor %s has ended",
				           a->id);
			return REMO_ERAISED;
		}
		for (; *scan != NULL; scan = &(*scan)->next) {
			struct msg *m = *scan;
			int k = match_any(npat, pats, m->v);
			if (k < 0)
				continue;
			*scan = m->next;
			if (a->tail == &m->next)
				a->tail = scan;
			a->nmsg--;
			pthread_mutex_unlock(&a->lock);
			*msg = m->v;
			free(m);
			if (which != NULL)
				*which = k;
			return REMO_OK;
		}
		int e = 0;
		if (timeout_ms < 0)
			pthread_cond_wait(&a->mail, &a->lock);
		else if (timeout_ms > 0)
			e = pthread_cond_timedwait(&a->mail, &a->lock, &dl);
		if (timeout_ms == 0 || (e == ETIMEDOUT && *scan == NULL &&
		                        !a->ended)) {
			pthread_mutex_unlock(&a->lock);
			remo_raise("TimeoutError", "receive: no matching message "
			           "in %d ms", timeout_ms);
			return REMO_ETIMEDOUT;
		}
	}
}

int actor_wait(remo_value addr, int timeout_ms, remo_value *result)
{
	*result = remo_nil();
	actor *a = local_actor(addr);
	if (a == NULL) {
		/* 0 is "the session's default" to remo: a look is 1 ms */
		remo_call_opts o = {timeout_ms < 0 ? -1
		                    : timeout_ms == 0 ? 1 : timeout_ms};
		return remo_call_method_with(addr, "wait", remo_nil(), &o,
		                             result);
	}
	struct timespec dl;
	if (timeout_ms > 0)
		deadline_after(&dl, timeout_ms);
	pthread_mutex_lock(&a->lock);
	int e = 0;
	while (!a->ended && e != ETIMEDOUT) {
		if (timeout_ms < 0)
			pthread_cond_wait(&a->done, &a->lock);
		else if (timeout_ms == 0)
			e = ETIMEDOUT;
		else
			e = pthread_cond_timedwait(&a->done, &a->lock, &dl);
	}
	bool ended = a->ended;
	remo_value r = remo_value_retain(a->result);
	remo_value err = remo_value_retain(a->error);
	pthread_mutex_unlock(&a->lock);
	if (!ended) {
		remo_raise("TimeoutError", "wait: actor %s still runs after "
		           "%d ms", a->id, timeout_ms);
		return REMO_ETIMEDOUT;
	}
	if (err.kind == REMO_ERROR) {
		remo_value_release(r);
		reraise(err);
		return REMO_ERAISED;
	}
	*result = r;
	return REMO_OK;
}

/* w (a local actor) monitors target. */
static int monitor_of(actor *w, remo_value target)
{
	actor *t = local_actor(target);
	if (t != NULL)
		return add_watcher(t, w->addr);
	actor_node *n = w->node;
	if (n == NULL || !remo_is_proxy(target)) {
		remo_raise("TypeError", "monitor: not an address");
		return REMO_ERAISED;
	}
	remo_value info;
	int rc = remo_call_method(target, "info", remo_nil(), &info);
	if (rc != REMO_OK)
		return rc;
	const char *node = NULL, *tid = NULL;
	if (info.kind == REMO_TUPLE && remo_tuple_len(info) == 2) {
		node = remo_str_data(remo_tuple_get(info, 0), NULL);
		tid = remo_str_data(remo_tuple_get(info, 1), NULL);
	}
	struct peer *p = NULL;
	if (node == NULL || tid == NULL) {
		remo_raise("TypeError", "monitor: not an actor's address");
		rc = REMO_ERAISED;
	} else {
		rc = peer_get(n, node, &p);
	}
	struct rec *r = rc == REMO_OK ? calloc(1, sizeof *r) : NULL;
	if (rc == REMO_OK && (r == NULL || (r->tid = strdup(tid)) == NULL)) {
		free(r);
		remo_raise("MemoryError", "out of memory for a monitor");
		rc = REMO_ERAISED;
	}
	remo_value_release(info);
	if (rc != REMO_OK) {
		if (p != NULL)
			peer_put(n, p);
		return rc;
	}
	r->watcher = remo_value_retain(w->addr);
	r->target = remo_value_retain(target);
	pthread_mutex_lock(&n->lock);
	bool down = p->down, full = p->nrecs >= MAX_RECS;
	if (!down && !full) {
		r->next = p->recs;
		p->recs = r;
		p->nrecs++;
	}
	pthread_mutex_unlock(&n->lock);
	if (down || full) {
		remo_value_release(r->watcher);
		remo_value_release(r->target);
		free(r->tid);
		free(r);
		if (down)
			remo_raise("NodeDown", "node %s went away", p->name);
		else
			remo_raise("LimitError", "%d monitors of node %s's "
			           "actors", MAX_RECS, p->name);
		peer_put(n, p);
		return REMO_ERAISED;
	}
	peer_put(n, p);
	char tidcopy[sizeof w->id];
	snprintf(tidcopy, sizeof tidcopy, "%s", r->tid);
	remo_value args = remo_tuple_of(1, remo_value_retain(w->addr));
	remo_value out;
	rc = remo_call_method(target, "monitor", args, &out);
	remo_value_release(args);
	if (rc == REMO_OK)
		remo_value_release(out);
	else /* not monitoring after all: no NodeDown for it later */
		rec_drop(n, w, tidcopy);
	return rc;
}

int actor_monitor(actor *self, remo_value addr)
{
	return monitor_of(self, addr);
}

int actor_link(actor *self, remo_value addr)
{
	int rc = monitor_of(self, addr);
	if (rc != REMO_OK)
		return rc;
	actor *t = local_actor(addr);
	if (t != NULL)
		return add_watcher(self, addr);
	remo_value args = remo_tuple_of(1, remo_value_retain(self->addr));
	remo_value out;
	rc = remo_call_method(addr, "watch", args, &out);
	remo_value_release(args);
	if (rc == REMO_OK)
		remo_value_release(out);
	return rc;
}

int actor_kill(remo_value addr)
{
	actor *a = local_actor(addr);
	if (a != NULL) {
		kill_local(a);
		return REMO_OK;
	}
	remo_value out;
	int rc = remo_call_method(addr, "kill", remo_nil(), &out);
	if (rc == REMO_OK)
		remo_value_release(out);
	return rc;
}

int actor_call(actor *self, remo_value addr, const char *method,
               remo_value msg, int timeout_ms, remo_value *out)
{
	*out = remo_nil();
	int64_t id = ++self->next_call;
	remo_value m = remo_dict();
	remo_dict_set_str(m, "call", remo_int(id));
	remo_dict_set_str(m, "method", remo_str(method));
	remo_dict_set_str(m, "address", remo_value_retain(self->addr));
	remo_dict_set_str(m, "message", remo_value_retain(msg));
	int rc = actor_send_checked(addr, m);
	remo_value_release(m);
	if (rc != REMO_OK)
		return rc;
	remo_value pat = remo_dict();
	remo_dict_set_str(pat, "response", remo_int(id));
	remo_value r;
	rc = actor_receive(self, timeout_ms, 1, &pat, &r, NULL);
	remo_value_release(pat);
	if (rc == REMO_ETIMEDOUT)
		remo_raise("TimeoutError", "call '%s': no response in %d ms",
		           method, timeout_ms);
	if (rc != REMO_OK)
		return rc;
	remo_value x;
	if (remo_dict_get_str(r, "exception", &x) == REMO_OK) {
		if (x.kind != REMO_ERROR)
			remo_raise("TypeError", "call '%s': a response whose "
			           "exception is not an error", method);
		else
			reraise(remo_value_retain(x));
		remo_value_release(r);
		return REMO_ERAISED;
	}
	if (remo_dict_get_str(r, "message", &x) == REMO_OK)
		*out = remo_value_retain(x);
	remo_value_release(r);
	return REMO_OK;
}

static int respond(remo_value call, const char *key, remo_value v)
{
	remo_value to, id;
	if (call.kind != REMO_DICT ||
	    remo_dict_get_str(call, "address", &to) != REMO_OK ||
	    remo_dict_get_str(call, "call", &id) != REMO_OK) {
		remo_raise("TypeError", "respond: not a call message");
		return REMO_ERAISED;
	}
	remo_value m = remo_dict();
	remo_dict_set_str(m, "response", remo_value_retain(id));
	remo_dict_set_str(m, key, remo_value_retain(v));
	int rc = actor_send(to, m);
	remo_value_release(m);
	return rc;
}

int actor_respond(remo_value call, remo_value result)
{
	return respond(call, "message", result);
}

int actor_respond_error(remo_value call, remo_value error)
{
	return respond(call, "exception", error);
}
