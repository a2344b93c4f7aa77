/*
 * server.c -- remo-tuplespace: a Linda tuple space served by remo.
 *
 *   remo-tuplespace URL [--secret-file PATH] [--db PATH]
 *                       [--predicate-timeout MS] [--notify-timeout MS]
 *                       [--max-tuples N] [--max-waiters N]
 *                       [--max-subscriptions N]
 *
 * Prints "READY <bound url>" once listening; stops cleanly on SIGINT or
 * SIGTERM.  Exports (ts.c wraps them):
 *
 *   out(t:r)                 put a tuple
 *   take(p:r) -> r           in(): remove a matching tuple, waiting
 *   read(p:r) -> r           rd(): the same without removing it
 *   takep(p:r), readp(p:r)   inp() and rdp(): nil when none matches
 *   subscribe(p:r fn:r) -> Subscription   fn(t) for every new match
 *   any(kind:s) -> Wildcard
 *   count() -> q, waiting() -> q    tuples stored, calls blocked
 *
 * How it works.  One lock guards the stored tuples (oldest first, each
 * with a sequence number), the waiters (a FIFO of blocked take and read
 * calls, each a deferred reply: it holds no thread, and its cancel hook
 * takes it out when its caller times out, cancels or dies) and the
 * subscriptions.  Nothing a peer owns runs under the lock: patterns are
 * matched under it column by column (values, wildcards, nested tuples),
 * and a pattern's predicates (callables of the client's) are asked
 * afterwards, outside it, of candidates that matched everything else
 * (README.md, "Predicates", gives the order that then holds).  out()
 * delivers as lindypy defines it: to every waiting reader whose pattern
 * matches, then to the first waiting taker whose pattern matches, and
 * stores the tuple only if there is none; a taker whose answer fails
 * (it was cancelled meanwhile) passes the tuple on, so nothing is lost.
 * Subscribers are told by two notifier threads, one notification in
 * flight per subscriber, from a queue of SUB_QUEUE: out() never waits
 * for a subscriber.  With --db the stored tuples are also rows of a
 * SQLite file (README.md, "Persistence"), written as they change.
 */
#include <remo/remo.h>

#include "../sqlfile.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Limits: each has a command line option (README.md gives them). */
static int predicate_ms = 5000;  /* a predicate's answer, at most */
static int notify_ms = 5000;     /* a subscriber's taking one, at most */
static size_t max_tuples = 1000000;
static size_t max_waiters = 100000;
static size_t max_subs = 4096;
#define SUB_QUEUE 1024 /* notifications waiting per subscriber */
#define NOTIFIERS 2
#define MAX_NEST 32
#define ST_EIO (-1) /* store(): the file refused the write */

/* ---- wildcards ---------------------------------------------------------- */

struct wildcard {
	const char *kind;
};
static struct wildcard wildcards[] = {
	{"any"}, {"int"}, {"double"}, {"str"}, {"bytes"}, {"bool"},
	{"tuple"}, {"list"}, {"dict"}, {"object"},
};
#define NWILD (sizeof wildcards / sizeof wildcards[0])
static remo_type *wildcard_type, *sub_type;
static remo_value wildcard_values[NWILD];

static bool wild_ok(const struct wildcard *w, remo_value v)
{
	const char *k = w->kind;
	if (strcmp(k, "any") == 0)
		return true;
	switch (v.kind) {
	case REMO_INT: return !strcmp(k, "int");
	case REMO_DOUBLE: return !strcmp(k, "double");
	case REMO_STR: return !strcmp(k, "str");
	case REMO_BYTES: return !strcmp(k, "bytes");
	case REMO_BOOL: return !strcmp(k, "bool");
	case REMO_TUPLE: return !strcmp(k, "tuple");
	case REMO_LIST: return !strcmp(k, "list");
	case REMO_DICT: return !strcmp(k, "dict");
	case REMO_OBJECT:
	case REMO_CALLABLE: return !strcmp(k, "object");
	default: return false;
	}
}

/* ---- patterns ------------------------------------------------------------ */

/* A callable in a pattern is a predicate: the column matches if it says
 * true of the column's value.  (So a callable in a tuple is matched by
 * the "object" wildcard, not by itself.) */
static bool is_pred(remo_value c)
{
	return c.kind == REMO_CALLABLE;
}

/* Everything but the predicates, which pass here: run under the lock. */
static bool match(remo_value p, remo_value v, unsigned depth)
{
	if (is_pred(p))
		return true;
	struct wildcard *w = remo_object_ptr(p, wildcard_type);
	if (w != NULL)
		return wild_ok(w, v);
	if (p.kind == REMO_TUPLE && v.kind == REMO_TUPLE) {
		size_t n = remo_tuple_len(p);
		if (n != remo_tuple_len(v) || depth > MAX_NEST)
			return false;
		for (size_t i = 0; i < n; i++)
			if (!match(remo_tuple_get(p, i), remo_tuple_get(v, i),
			           depth + 1))
				return false;
		return true;
	}
	return remo_equal(p, v);
}

static bool has_preds(remo_value p)
{
	if (is_pred(p))
		return true;
	for (size_t i = 0; p.kind == REMO_TUPLE && i < remo_tuple_len(p); i++)
		if (has_preds(remo_tuple_get(p, i)))
			return true;
	return false;
}

/* The predicates of p, asked of v (which matched the rest), in column
 * order, never under the lock: 1 all said true, 0 one said false, -1 one
 * failed (raised, did not answer within predicate_ms, said something
 * not a bool, or its client is gone): *err is the error (new). */
static int ask_preds(remo_value p, remo_value v, remo_value *err)
{
	if (is_pred(p)) {
		remo_value arg = v.kind == REMO_TUPLE || v.kind == REMO_LIST ||
		                 v.kind == REMO_DICT ? remo_by_value(v)
		                                     : remo_value_retain(v);
		remo_value args = remo_tuple_of(1, arg), r;
		remo_call_opts o = {predicate_ms};
		int rc = remo_call_with(p, args, &o, &r);
		remo_value_release(args);
		if (rc == REMO_ETIMEDOUT) {
			*err = remo_error("TimeoutError", "a predicate did not "
			                  "answer (--predicate-timeout)");
			return -1;
		}
		if (rc != REMO_OK) {
			*err = remo_value_retain(remo_last_error());
			return -1;
		}
		if (r.kind != REMO_BOOL) {
			remo_value_release(r);
			*err = remo_error("TypeError", "a predicate returns a "
			                  "bool");
			return -1;
		}
		return r.as.b ? 1 : 0;
	}
	for (size_t i = 0; p.kind == REMO_TUPLE && i < remo_tuple_len(p); i++) {
		int r = ask_preds(remo_tuple_get(p, i), remo_tuple_get(v, i), err);
		if (r != 1)
			return r;
	}
	return 1;
}

/* A pattern or tuple a peer sent: a tuple, and no remote list or dict in
 * it (those go by value: ts_out sends them so). */
static bool well_formed(remo_value t, const char *what, unsigned depth)
{
	if (depth == 0 && t.kind != REMO_TUPLE) {
		remo_raise("TypeError", "a %s is a tuple", what);
		return false;
	}
	if (depth > MAX_NEST) {
		remo_raise("ValueError", "a %s nests too deep (%d levels at "
		           "most)", what, MAX_NEST);
		return false;
	}
	for (size_t i = 0; t.kind == REMO_TUPLE && i < remo_tuple_len(t); i++) {
		remo_value x = remo_tuple_get(t, i);
		if (remo_is_proxy(x) && (remo_isinstance(x, "list") ||
		                         remo_isinstance(x, "dict"))) {
			remo_raise("TypeError", "a %s holds lists and dicts by "
			           "value (remo_by_value), not by reference", what);
			return false;
		}
		if (!well_formed(x, what, depth + 1))
			return false;
	}
	return true;
}

/* What crosses to a taker, reader or subscriber: data (lists and dicts
 * by value), objects and callables as references. */
static remo_value outgoing(remo_value t)
{
	return remo_by_value(t);
}

/* ---- the stored tuples, and their file ------------------------------------ */

struct stored {
	struct stored *prev, *next;
	uint64_t seq;
	remo_value t;
	bool on_disk;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct stored *shead, *stail;
static size_t nstored;
static uint64_t last_seq;

static sqlite3 *db;
static sqlite3_stmt *db_ins, *db_del;
static char db_error[256]; /* the last failed write's reason */

/* Writes s as a row; false if it holds references (kept in memory only:
 * a reference means nothing after a restart).  -1 on a failed write. */
static int db_put(struct stored *s)
{
	if (db == NULL)
		return 0;
	remo_buf b = {0};
	if (remo_pack(s->t, &b) != REMO_OK) {
		remo_buf_free(&b);
		return 0;
	}
	sqlite3_bind_int64(db_ins, 1, (sqlite3_int64)s->seq);
	sqlite3_bind_blob(db_ins, 2, b.data, (int)b.len, SQLITE_TRANSIENT);
	int rc = sqlite3_step(db_ins);
	sqlite3_reset(db_ins);
	remo_buf_free(&b);
	if (rc != SQLITE_DONE) {
		snprintf(db_error, sizeof db_error, "%s", sqlite3_errmsg(db));
		return -1;
	}
	return 1;
}

/* Under the lock: appends t (stolen); REMO_OK, or why not (store_raise
 * raises it, once the lock is let go). */
static int store(remo_value t)
{
	struct stored *s = nstored < max_tuples ? calloc(1, sizeof *s) : NULL;
	if (s == NULL) {
		remo_value_release(t);
		return nstored < max_tuples ? REMO_ENOMEM : REMO_ELIMIT;
	}
	s->seq = ++last_seq;
	s->t = t;
	int on = db_put(s);
	if (on < 0) {
		remo_value_release(t);
		free(s);
		return ST_EIO;
	}
	s->on_disk = on == 1;
	s->prev = stail;
	if (stail != NULL)
		stail->next = s;
	else
		shead = s;
	stail = s;
	nstored++;
	return REMO_OK;
}

static void store_raise(int rc)
{
	if (rc == REMO_ELIMIT)
		remo_raise("LimitError", "the space holds %zu tuples already "
		           "(--max-tuples)", max_tuples);
	else if (rc == ST_EIO)
		remo_raise("IOError", "the space's file: %s", db_error);
	else
		remo_raise("MemoryError", "no memory for a tuple");
}

/* Under the lock: takes s out; returns its tuple (the caller's). */
static remo_value unstore(struct stored *s)
{
	if (s->on_disk) {
		sqlite3_bind_int64(db_del, 1, (sqlite3_int64)s->seq);
		if (sqlite3_step(db_del) != SQLITE_DONE)
			fprintf(stderr, "remo-tuplespace: the file: %s\n",
			        sqlite3_errmsg(db));
		sqlite3_reset(db_del);
	}
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		shead = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	else
		stail = s->prev;
	nstored--;
	remo_value t = s->t;
	free(s);
	return t;
}

/* Under the lock: puts back t (stolen), taken as seq, in its place. */
static void restore(uint64_t seq, remo_value t)
{
	struct stored *s = calloc(1, sizeof *s);
	if (s == NULL) { /* keep it, if not in order */
		store(t);
		return;
	}
	s->seq = seq;
	s->t = t;
	s->on_disk = db_put(s) == 1;
	struct stored *after = stail;
	while (after != NULL && after->seq > seq)
		after = after->prev;
	s->prev = after;
	s->next = after != NULL ? after->next : shead;
	if (s->next != NULL)
		s->next->prev = s;
	else
		stail = s;
	if (after != NULL)
		after->next = s;
	else
		shead = s;
	nstored++;
}

/* Opens (or makes) the space's file and loads its tuples.  A file that
 * is not SQLite, or is SQLite but not a tuple space, or has a row that
 * does not decode, is refused by name, and never written to. */
static int db_open(const char *path)
{
	char why[512];
	db = sqlfile_open(path, "remo_tuplespace",
	                  "CREATE TABLE tuples (seq INTEGER PRIMARY KEY, "
	                  "tuple BLOB NOT NULL)",
	                  "NotATupleSpace", why, sizeof why);
	if (db == NULL) {
		fprintf(stderr, "remo-tuplespace: %s: %s\n", path, why);
		return -1;
	}
	sqlite3_stmt *q;
	if (sqlite3_prepare_v2(db, "SELECT seq, tuple FROM tuples ORDER BY seq",
	                       -1, &q, NULL) != SQLITE_OK) {
		fprintf(stderr, "remo-tuplespace: %s: CorruptSpace: %s\n", path,
		        sqlite3_errmsg(db));
		return -1;
	}
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		sqlite3_int64 seq = sqlite3_column_int64(q, 0);
		remo_value t;
		const void *blob = sqlite3_column_blob(q, 1);
		int n = sqlite3_column_bytes(q, 1);
		if (blob == NULL || remo_unpack(blob, (size_t)n, &t) != REMO_OK ||
		    t.kind != REMO_TUPLE || seq <= (sqlite3_int64)last_seq) {
			fprintf(stderr, "remo-tuplespace: %s: CorruptSpace: row "
			        "%lld is not a tuple (left as it was)\n", path,
			        (long long)seq);
			sqlite3_finalize(q);
			return -1;
		}
		struct stored *s = calloc(1, sizeof *s);
		s->seq = (uint64_t)seq;
		s->t = t;
		s->on_disk = true;
		s->prev = stail;
		if (stail != NULL)
			stail->next = s;
		else
			shead = s;
		stail = s;
		nstored++;
		last_seq = (uint64_t)seq;
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE) {
		fprintf(stderr, "remo-tuplespace: %s: CorruptSpace: %s\n", path,
		        sqlite3_errmsg(db));
		return -1;
	}
	if (sqlite3_prepare_v2(db, "INSERT INTO tuples VALUES (?, ?)", -1,
	                       &db_ins, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "DELETE FROM tuples WHERE seq = ?", -1,
	                       &db_del, NULL) != SQLITE_OK) {
		fprintf(stderr, "remo-tuplespace: %s: %s\n", path,
		        sqlite3_errmsg(db));
		return -1;
	}
	return 0;
}

/* ---- waiters --------------------------------------------------------------- */

struct waiter {
	struct waiter *next;
	remo_deferred *d;
	remo_value pattern;
	uint64_t seq;  /* arrival */
	int refs;      /* the FIFO's, and each out() asking its predicates */
	bool take, preds, linked;
};

static struct waiter *whead, *wtail;
static size_t nwaiters;
static uint64_t last_wseq;

/* Under the lock. */
static void unlink_waiter(struct waiter *w)
{
	struct waiter **pp = &whead, *prev = NULL;
	for (; *pp != NULL; prev = *pp, pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			if (wtail == w)
				wtail = prev;
			break;
		}
	w->linked = false;
	nwaiters--;
}

/* Drops one reference; not under the lock (it may release a proxy). */
static void waiter_put(struct waiter *w)
{
	if (__atomic_sub_fetch(&w->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	remo_value_release(w->pattern);
	free(w);
}

static void on_cancel(remo_deferred *d, void *user)
{
	struct waiter *w = user;
	pthread_mutex_lock(&lock);
	bool mine = w->linked;
	if (mine)
		unlink_waiter(w);
	pthread_mutex_unlock(&lock);
	if (mine) { /* nobody else will answer it: we do (nothing goes) */
		remo_value e = remo_error("CancelledError", "cancelled");
		remo_deferred_fail(d, e);
		remo_value_release(e);
		waiter_put(w);
	}
}

/* Under the lock: p's caller waits (its reply deferred). */
static void add_waiter(remo_value p, bool take, bool preds)
{
	if (nwaiters >= max_waiters) {
		remo_raise("LimitError", "%zu calls wait in the space already "
		           "(--max-waiters)", nwaiters);
		return;
	}
	struct waiter *w = calloc(1, sizeof *w);
	if (w == NULL) {
		remo_raise("MemoryError", "no memory for a waiter");
		return;
	}
	w->pattern = remo_value_retain(p);
	w->take = take;
	w->preds = preds;
	w->refs = 1;
	w->d = remo_defer(on_cancel, w);
	if (w->d == NULL) { /* raised */
		remo_value_release(w->pattern);
		free(w);
		return;
	}
	w->seq = ++last_wseq;
	w->linked = true;
	if (wtail != NULL)
		wtail->next = w;
	else
		whead = w;
	wtail = w;
	nwaiters++;
}

/* ---- subscriptions ----------------------------------------------------------- */

/* A subscription is a Subscription object held by its client: when the
 * client releases it, or its session ends, the object's destructor runs
 * (dead).  It is told of new tuples until then, or until cancel(), or
 * until a notification fails or it falls SUB_QUEUE behind (ended).  The
 * notifier that holds it (busy) frees a dead one; else the destructor. */
struct sub {
	struct sub *prev, *next; /* all, notifier order */
	remo_value pattern, fn;
	remo_value q[SUB_QUEUE];
	size_t qh, qn;
	bool preds, ended, overflowed, told_end, busy, dead;
};

static struct sub *subhead, *subtail;
static size_t nsubs;
static pthread_cond_t sub_cond = PTHREAD_COND_INITIALIZER;
static bool notifiers_stop;
static pthread_t notifiers[NOTIFIERS];

static void sub_unlink(struct sub *s)
{
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		subhead = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	else
		subtail = s->prev;
	s->prev = s->next = NULL;
}

static void sub_append(struct sub *s)
{
	s->prev = subtail;
	s->next = NULL;
	if (subtail != NULL)
		subtail->next = s;
	else
		subhead = s;
	subtail = s;
}

/* Under the lock: drops what waits (into *drop, released by the caller
 * outside the lock). */
static void sub_end(struct sub *s, remo_value *drop, size_t *ndrop)
{
	s->ended = true;
	while (s->qn > 0) {
		drop[(*ndrop)++] = s->q[s->qh];
		s->qh = (s->qh + 1) % SUB_QUEUE;
		s->qn--;
	}
}

/* Not under the lock. */
static void sub_free(struct sub *s)
{
	for (size_t i = 0; i < s->qn; i++)
		remo_value_release(s->q[(s->qh + i) % SUB_QUEUE]);
	remo_value_release(s->pattern);
	remo_value_release(s->fn);
	free(s);
}

static void sub_dtor(void *p)
{
	struct sub *s = p;
	pthread_mutex_lock(&lock);
	s->dead = true;
	sub_unlink(s);
	nsubs--;
	bool mine = !s->busy;
	pthread_mutex_unlock(&lock);
	if (mine)
		sub_free(s);
}

/* Under the lock: tells every live subscription whose pattern (but its
 * predicates: the notifier asks those) matches t. */
static void notify_all(remo_value t)
{
	bool any = false;
	for (struct sub *s = subhead; s != NULL; s = s->next) {
		if (s->ended || !match(s->pattern, t, 0))
			continue;
		if (s->qn == SUB_QUEUE) { /* fell behind: ended, told so */
			s->overflowed = true;
			s->ended = true;
			any = true;
			continue;
		}
		s->q[(s->qh + s->qn) % SUB_QUEUE] = remo_value_retain(t);
		s->qn++;
		any = true;
	}
	if (any)
		pthread_cond_broadcast(&sub_cond);
}

static void *notifier_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	for (;;) {
		struct sub *s = subhead;
		for (; s != NULL; s = s->next)
			if (!s->busy && (s->qn > 0 ||
			                 (s->overflowed && !s->told_end)))
				break;
		if (s == NULL) {
			if (notifiers_stop)
				break;
			pthread_cond_wait(&sub_cond, &lock);
			continue;
		}
		/* round robin: it goes to the back */
		sub_unlink(s);
		sub_append(s);
		remo_value t = remo_nil(); /* nil: "you fell behind: ended" */
		if (s->qn > 0) {
			t = s->q[s->qh];
			s->qh = (s->qh + 1) % SUB_QUEUE;
			s->qn--;
		} else {
			s->told_end = true;
		}
		s->busy = true;
		pthread_mutex_unlock(&lock);

		remo_value err = remo_nil();
		int yes = t.kind == REMO_NIL || !s->preds
		          ? 1 : ask_preds(s->pattern, t, &err);
		int rc = REMO_OK;
		if (yes == 1) {
			remo_value args = remo_tuple_of(1, t.kind == REMO_NIL
			                                ? remo_nil() : outgoing(t));
			remo_value r;
			remo_call_opts o = {notify_ms};
			rc = remo_call_with(s->fn, args, &o, &r);
			remo_value_release(args);
			if (rc == REMO_OK)
				remo_value_release(r);
			else
				err = remo_value_retain(remo_last_error());
		}
		if (yes < 0 || rc != REMO_OK)
			fprintf(stderr, "remo-tuplespace: a subscriber is ended: "
			        "%s: %s\n", remo_error_name(err),
			        remo_error_message(err));
		remo_value_release(err);
		remo_value_release(t);

		remo_value drop[SUB_QUEUE];
		size_t ndrop = 0;
		pthread_mutex_lock(&lock);
		s->busy = false;
		if (yes < 0 || rc != REMO_OK) /* it cannot take them: ended */
			sub_end(s, drop, &ndrop);
		if (s->dead || ndrop > 0) {
			bool free_it = s->dead;
			pthread_mutex_unlock(&lock);
			for (size_t i = 0; i < ndrop; i++)
				remo_value_release(drop[i]);
			if (free_it)
				sub_free(s);
			pthread_mutex_lock(&lock);
		}
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

static remo_value s_subscribe(remo_value p, remo_value fn)
{
	if (!well_formed(p, "pattern", 0))
		return remo_nil();
	if (fn.kind != REMO_CALLABLE) {
		remo_raise("TypeError", "subscribe(pattern, fn): fn is a "
		           "callable");
		return remo_nil();
	}
	struct sub *s = calloc(1, sizeof *s);
	if (s == NULL) {
		remo_raise("MemoryError", "no memory for a subscription");
		return remo_nil();
	}
	s->pattern = remo_value_retain(p);
	s->fn = remo_value_retain(fn);
	s->preds = has_preds(p);
	pthread_mutex_lock(&lock);
	if (nsubs >= max_subs) {
		pthread_mutex_unlock(&lock);
		sub_free(s);
		remo_raise("LimitError", "%zu subscriptions already "
		           "(--max-subscriptions)", max_subs);
		return remo_nil();
	}
	sub_append(s);
	nsubs++;
	pthread_mutex_unlock(&lock);
	return remo_object(sub_type, s, sub_dtor);
}

/* Subscription.cancel(): no notification starts after it returns. */
static void sub_cancel(struct sub *s)
{
	remo_value drop[SUB_QUEUE];
	size_t ndrop = 0;
	pthread_mutex_lock(&lock);
	sub_end(s, drop, &ndrop);
	s->overflowed = false;
	pthread_mutex_unlock(&lock);
	for (size_t i = 0; i < ndrop; i++)
		remo_value_release(drop[i]);
}

/* ---- the operations ------------------------------------------------------------ */

struct cand {
	struct waiter *w;
	int verdict;   /* 1 yes, 0 no, -1 failed (err) */
	remo_value err;
};

static void s_out(remo_value t)
{
	if (!well_formed(t, "tuple", 0))
		return;
	remo_value copy = outgoing(t);
	uint64_t from = 0;
	bool notified = false;
	for (;;) {
		/* 1. under the lock: every waiter (that arrived after from)
		 * whose pattern matches t but for its predicates */
		struct cand *c = NULL;
		size_t n = 0, cap = 0;
		bool preds = false;
		pthread_mutex_lock(&lock);
		if (!notified) {
			notify_all(t);
			notified = true;
		}
		uint64_t snap = last_wseq;
		for (struct waiter *w = whead; w != NULL; w = w->next) {
			if (w->seq <= from || !match(w->pattern, t, 0))
				continue;
			if (n == cap) {
				cap = cap ? 2 * cap : 8;
				struct cand *nc = realloc(c, cap * sizeof *c);
				if (nc == NULL)
					break; /* the rest wait for the next out */
				c = nc;
			}
			c[n++] = (struct cand){w, 1, remo_nil()};
			__atomic_add_fetch(&w->refs, 1, __ATOMIC_ACQ_REL);
			preds |= w->preds;
		}
		/* 2. their predicates, outside it; readers all, takers up to
		 * the first that says yes */
		if (preds) {
			pthread_mutex_unlock(&lock);
			bool taken = false;
			for (size_t i = 0; i < n; i++) {
				if (c[i].w->take && taken) {
					c[i].verdict = 0;
					continue;
				}
				if (c[i].w->preds)
					c[i].verdict = ask_preds(c[i].w->pattern, t,
					                         &c[i].err);
				taken |= c[i].w->take && c[i].verdict == 1;
			}
			pthread_mutex_lock(&lock);
		}
		/* 3. under the lock: those still waiting get it */
		struct waiter *taker = NULL;
		bool lost_taker = false;
		for (size_t i = 0; i < n; i++) {
			struct waiter *w = c[i].w;
			bool deliver = c[i].verdict == 1 && (!w->take ||
			                                     taker == NULL);
			if (!deliver && c[i].verdict != -1) {
				c[i].verdict = 0;
				continue;
			}
			if (!w->linked) { /* cancelled, or another out's */
				lost_taker |= w->take && c[i].verdict == 1;
				c[i].verdict = 0;
				continue;
			}
			unlink_waiter(w); /* its reference is put in 4. */
			if (w->take && c[i].verdict == 1)
				taker = w;
		}
		bool stored = false;
		int src = REMO_OK;
		if (taker == NULL && !lost_taker && last_wseq == snap) {
			src = store(remo_value_retain(t));
			stored = true;
		}
		pthread_mutex_unlock(&lock);
		/* 4. answers, outside it */
		int rc = REMO_OK;
		for (size_t i = 0; i < n; i++) {
			struct waiter *w = c[i].w;
			if (c[i].verdict == 1 && w != taker)
				remo_deferred_reply(w->d, copy);
			else if (c[i].verdict == -1)
				remo_deferred_fail(w->d, c[i].err);
			else if (w == taker)
				rc = remo_deferred_reply(w->d, copy);
			remo_value_release(c[i].err);
			if (c[i].verdict != 0)
				waiter_put(w); /* the FIFO's, dropped above */
			waiter_put(w);
		}
		free(c);
		if (stored || (taker != NULL && rc == REMO_OK)) {
			if (src != REMO_OK)
				store_raise(src);
			break;
		}
		/* the taker was cancelled meanwhile, or vanished, or waiters
		 * came while predicates were asked: again, from the start or
		 * with the newcomers */
		from = taker != NULL || lost_taker ? 0 : snap;
	}
	remo_value_release(copy);
}

/* take or read: a matching stored tuple, or a deferred wait for one.
 * With predicates: candidates (matching all but them, CANDS at a time,
 * oldest first) are copied out, their predicates asked outside the
 * lock, and the first that says yes is taken if it is still there; a
 * pattern that finds none waits, registered in the same hold as the
 * last look, so that no out() slips between. */
#define CANDS 64

/* Answers the call with got (stolen), taken (if take) as seq: as a
 * deferred reply, so that a tuple whose caller cancelled, timed out or
 * died before the answer left goes back in its place. */
static remo_value answer(uint64_t seq, remo_value got, bool take)
{
	remo_value out = outgoing(got);
	remo_deferred *d = take ? remo_defer(NULL, NULL) : NULL;
	if (d == NULL) { /* a read (or no memory: answered directly) */
		remo_value_release(got);
		return out;
	}
	if (remo_deferred_reply(d, out) != REMO_OK) {
		pthread_mutex_lock(&lock);
		restore(seq, got);
		pthread_mutex_unlock(&lock);
	} else {
		remo_value_release(got);
	}
	remo_value_release(out);
	return remo_nil(); /* a deferred call ignores it */
}

static remo_value s_get(remo_value p, bool take, bool wait)
{
	if (!well_formed(p, "pattern", 0))
		return remo_nil();
	bool preds = has_preds(p);
	uint64_t from = 0;
	for (;;) {
		struct { uint64_t seq; remo_value t; } c[CANDS];
		size_t n = 0;
		pthread_mutex_lock(&lock);
		for (struct stored *s = shead; s != NULL && n < CANDS;
		     s = s->next) {
			if (s->seq <= from || !match(p, s->t, 0))
				continue;
			if (!preds) {
				uint64_t seq = s->seq;
				remo_value got = take ? unstore(s)
				                      : remo_value_retain(s->t);
				pthread_mutex_unlock(&lock);
				return answer(seq, got, take);
			}
			c[n].seq = s->seq;
			c[n].t = remo_value_retain(s->t);
			n++;
		}
		if (n == 0) {
			if (wait)
				add_waiter(p, take, preds);
			pthread_mutex_unlock(&lock);
			return remo_nil(); /* a deferred call ignores it */
		}
		pthread_mutex_unlock(&lock);
		size_t k = 0;
		int yes = 0;
		uint64_t hit = 0;
		remo_value err = remo_nil();
		for (; k < n && yes == 0; k++)
			yes = ask_preds(p, c[k].t, &err);
		remo_value got = remo_nil();
		if (yes == 1) {
			uint64_t seq = c[k - 1].seq;
			pthread_mutex_lock(&lock);
			struct stored *s = shead;
			while (s != NULL && s->seq < seq)
				s = s->next;
			if (s != NULL && s->seq == seq)
				got = take ? unstore(s) : remo_value_retain(s->t);
			pthread_mutex_unlock(&lock);
			from = seq; /* if it went meanwhile: the ones after */
			hit = seq;
		} else {
			from = c[n - 1].seq;
		}
		for (size_t i = 0; i < n; i++)
			remo_value_release(c[i].t);
		if (yes < 0) {
			remo_raise_value(err);
			return remo_nil();
		}
		if (got.kind != REMO_NIL)
			return answer(hit, got, take);
	}
}

static remo_value s_take(remo_value p) { return s_get(p, true, true); }
static remo_value s_read(remo_value p) { return s_get(p, false, true); }
static remo_value s_takep(remo_value p) { return s_get(p, true, false); }
static remo_value s_readp(remo_value p) { return s_get(p, false, false); }

static remo_value s_any(const char *kind)
{
	for (size_t i = 0; i < NWILD; i++)
		if (strcmp(wildcards[i].kind, kind) == 0)
			return remo_value_retain(wildcard_values[i]);
	remo_raise("ValueError", "no wildcard '%s'", kind);
	return remo_nil();
}

static int64_t s_waiting(void)
{
	pthread_mutex_lock(&lock);
	int64_t n = (int64_t)nwaiters;
	pthread_mutex_unlock(&lock);
	return n;
}

static int64_t s_count(void)
{
	pthread_mutex_lock(&lock);
	int64_t n = (int64_t)nstored;
	pthread_mutex_unlock(&lock);
	return n;
}

/* ---- the program --------------------------------------------------------- */

static remo_server *server;

static void on_signal(int sig)
{
	(void)sig;
	if (server != NULL)
		remo_server_stop(server);
}

static void export_fn(remo_exports *ex, const char *name, const char *sig,
                      void (*fn)(void))
{
	remo_value f = remo_function(name, sig, fn, NULL);
	remo_export(ex, name, f);
	remo_value_release(f);
}

static int usage(void)
{
	fprintf(stderr, "usage: remo-tuplespace URL [--secret-file PATH] "
	        "[--db PATH] [--predicate-timeout MS] [--notify-timeout MS] "
	        "[--max-tuples N] [--max-waiters N] [--max-subscriptions N]\n");
	return 2;
}

static bool number(const char *s, long long min, long long *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min)
		return false;
	*out = v;
	return true;
}

int main(int argc, char **argv)
{
	const char *url = NULL, *path = NULL;
	remo_server_opts opts = {0};
	static char secret[REMO_MAX_SECRET];
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		long long v;
		if (strcmp(a, "--secret-file") == 0 && i + 1 < argc) {
			if (remo_secret_load(argv[++i], secret, sizeof secret,
			                     &opts.session.secret_len) != REMO_OK) {
				fprintf(stderr, "remo-tuplespace: %s\n",
				        remo_error_message(remo_last_error()));
				return 1;
			}
			opts.session.secret = secret;
		} else if (strcmp(a, "--db") == 0 && i + 1 < argc) {
			path = argv[++i];
		} else if (a[0] == '-' && a[1] == '-' && i + 1 < argc &&
		           number(argv[i + 1], 1, &v)) {
			i++;
			if (strcmp(a, "--predicate-timeout") == 0 && v <= 3600000)
				predicate_ms = (int)v;
			else if (strcmp(a, "--notify-timeout") == 0 &&
			         v <= 3600000)
				notify_ms = (int)v;
			else if (strcmp(a, "--max-tuples") == 0)
				max_tuples = (size_t)v;
			else if (strcmp(a, "--max-waiters") == 0)
				max_waiters = (size_t)v;
			else if (strcmp(a, "--max-subscriptions") == 0)
				max_subs = (size_t)v;
			else
				return usage();
		} else if (url == NULL && a[0] != '-') {
			url = a;
		} else {
			return usage();
		}
	}
	if (url == NULL)
		return usage();
	if (path != NULL && db_open(path) != 0) {
		sqlite3_close(db);
		return 1;
	}
	if (path != NULL)
		fprintf(stderr, "remo-tuplespace: %s: %zu tuples\n", path,
		        nstored);
	wildcard_type = remo_type_new("Wildcard", NULL, "a tuple space pattern "
	                              "column that matches a kind", NULL);
	remo_type_field(wildcard_type, "kind", "s",
	                offsetof(struct wildcard, kind), REMO_READONLY);
	for (size_t i = 0; i < NWILD; i++)
		wildcard_values[i] = remo_object(wildcard_type, &wildcards[i],
		                                 NULL);
	sub_type = remo_type_new("Subscription", NULL, "a tuple space "
	                         "subscription: release it, or cancel()",
	                         NULL);
	remo_type_method(sub_type, "cancel", "v()", (void (*)(void))sub_cancel,
	                 "no notification starts after this returns");
	remo_exports *ex = remo_exports_new();
	export_fn(ex, "out", "v(t:r)", (void (*)(void))s_out);
	export_fn(ex, "take", "r(p:r)", (void (*)(void))s_take);
	export_fn(ex, "read", "r(p:r)", (void (*)(void))s_read);
	export_fn(ex, "takep", "r(p:r)", (void (*)(void))s_takep);
	export_fn(ex, "readp", "r(p:r)", (void (*)(void))s_readp);
	export_fn(ex, "subscribe", "r(p:r fn:r)", (void (*)(void))s_subscribe);
	export_fn(ex, "any", "r(kind:s)", (void (*)(void))s_any);
	export_fn(ex, "count", "q()", (void (*)(void))s_count);
	export_fn(ex, "waiting", "q()", (void (*)(void))s_waiting);
	int rc;
	server = remo_server_new(ex, &opts, &rc);
	char bound[256];
	if (server == NULL ||
	    remo_server_listen(server, url, bound, sizeof bound) != REMO_OK) {
		fprintf(stderr, "remo-tuplespace: %s: %s\n", url,
		        remo_error_message(remo_last_error()));
		return 1;
	}
	for (int i = 0; i < NOTIFIERS; i++)
		pthread_create(&notifiers[i], NULL, notifier_main, NULL);
	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	printf("READY %s\n", bound);
	fflush(stdout);
	remo_server_run(server);
	pthread_mutex_lock(&lock);
	notifiers_stop = true;
	for (struct sub *s = subhead; s != NULL; s = s->next) {
		remo_value drop[SUB_QUEUE];
		size_t ndrop = 0;
		sub_end(s, drop, &ndrop);
		s->overflowed = false;
		pthread_mutex_unlock(&lock);
		for (size_t i = 0; i < ndrop; i++)
			remo_value_release(drop[i]);
		pthread_mutex_lock(&lock);
	}
	pthread_cond_broadcast(&sub_cond);
	pthread_mutex_unlock(&lock);
	for (int i = 0; i < NOTIFIERS; i++)
		pthread_join(notifiers[i], NULL);
	remo_server_free(server); /* ends the sessions: the hooks and the
	                             destructors run */
	remo_exports_free(ex);
	pthread_mutex_lock(&lock);
	while (whead != NULL) { /* their sessions ended: the hooks ran */
		struct waiter *w = whead;
		whead = w->next;
		remo_value_release(w->pattern);
		free(w);
	}
	while (subhead != NULL) { /* none should be left */
		struct sub *s = subhead;
		sub_unlink(s);
		sub_free(s);
	}
	while (shead != NULL) {
		struct stored *s = shead;
		shead = s->next;
		remo_value_release(s->t);
		free(s);
	}
	pthread_mutex_unlock(&lock);
	for (size_t i = 0; i < NWILD; i++)
		remo_value_release(wildcard_values[i]);
	sqlite3_finalize(db_ins);
	sqlite3_finalize(db_del);
	if (db != NULL && sqlite3_close(db) != SQLITE_OK)
		fprintf(stderr, "remo-tuplespace: %s: %s\n", path,
		        sqlite3_errmsg(db));
	return 0;
}
