/*
 * test_async.c -- the call styles of remo.h section 11 between two real
 * sessions over remo_pipe: async calls and their futures (wait, poll,
 * callbacks, deadlines, cancellation racing replies, the end of the
 * session), promise pipelining counted in round trips, one-way calls,
 * and batches counted in messages.
 *
 * The client's channel is wrapped to log what it sends and receives, so
 * a test can count round trips: a round trip is a receive that follows a
 * send.  A pipelined chain of N calls is N sends and then N receives: one
 * round trip.  Done sequentially it is N.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "net/net.h"
#include "testutil.h"
#include "testpair.h"

/* ==== what the server exports ========================================== */

struct node {
	int64_t depth;
	struct node *child; /* made on first next(), freed with its parent */
};

static remo_type *node_type;
static atomic_int ticks;
static atomic_int nodes_alive;
static remo_value kept;

static void node_free(void *p)
{
	struct node *n = p;
	while (n != NULL) {
		struct node *c = n->child;
		free(n);
		atomic_fetch_sub(&nodes_alive, 1);
		n = c;
	}
}

static struct node *node_new(int64_t depth)
{
	struct node *n = calloc(1, sizeof *n);
	n->depth = depth;
	atomic_fetch_add(&nodes_alive, 1);
	return n;
}

/* The next node down; it belongs to this one (the root owns the chain). */
static struct node *node_next(struct node *n)
{
	if (n->child == NULL)
		n->child = node_new(n->depth + 1);
	return n->child;
}

static int64_t node_get_depth(struct node *n)
{
	return n->depth;
}

static void node_fail(struct node *n)
{
	remo_raise("ValueError", "node %lld refuses", (long long)n->depth);
}

/* A fresh object the caller owns: for dropped replies that must be
 * released. */
static remo_value make_node(int64_t depth)
{
	return remo_object(node_type, node_new(depth), node_free);
}

static int64_t add_ints(int64_t a, int64_t b)
{
	return a + b;
}

static void tick(int64_t n)
{
	atomic_fetch_add(&ticks, (int)n);
}

static void fail_named(const char *name)
{
	remo_raise(name, "failed on request");
}

static void slow(int ms)
{
	usleep((useconds_t)ms * 1000);
}

/* Calls the caller's fn() and adds 1: a callback inside an async call. */
static int64_t call_back(remo_value fn)
{
	remo_value out;
	if (remo_call(fn, remo_nil(), &out) != REMO_OK) {
		remo_raise_value(remo_value_retain(remo_last_error()));
		return 0;
	}
	int64_t x = out.kind == REMO_INT ? out.as.i + 1 : -1;
	remo_value_release(out);
	return x;
}

static void keep(remo_value v)
{
	remo_value_release(kept);
	kept = remo_value_retain(v);
}

static void register_types(void)
{
	int st;
	if (node_type != NULL)
		return;
	node_type = remo_type_new("Node", NULL, "a chain of nodes", &st);
	assert_non_null(node_type);
	assert_int_equal(remo_type_method(node_type, "next", "<Node>()",
	                                  (void (*)(void))node_next, NULL),
	                 REMO_OK);
	assert_int_equal(remo_type_method(node_type, "depth", "q()",
	                                  (void (*)(void))node_get_depth, NULL),
	                 REMO_OK);
	assert_int_equal(remo_type_method(node_type, "fail", "v()",
	                                  (void (*)(void))node_fail, NULL),
	                 REMO_OK);
}

/* ==== a logging channel around the client's end ======================== */

struct logch {
	remo_channel inner;
	pthread_mutex_t lock;
	char log[1 << 16]; /* 'S' per message sent, 'R' per message received */
	size_t n;
};

static void log_event(struct logch *l, char c)
{
	pthread_mutex_lock(&l->lock);
	if (l->n < sizeof l->log)
		l->log[l->n++] = c;
	pthread_mutex_unlock(&l->lock);
}

static int log_send(void *user, const void *p, size_t n)
{
	struct logch *l = user;
	int rc = l->inner.send(l->inner.user, p, n);
	if (rc == REMO_OK)
		log_event(l, 'S');
	return rc;
}

static int log_recv(void *user, remo_buf *buf, int timeout_ms)
{
	struct logch *l = user;
	int rc = l->inner.recv(l->inner.user, buf, timeout_ms);
	if (rc == REMO_OK)
		log_event(l, 'R');
	return rc;
}

static void log_close(void *user)
{
	struct logch *l = user;
	if (l->inner.close)
		l->inner.close(l->inner.user);
}

static void log_destroy(void *user)
{
	struct logch *l = user;
	if (l->inner.destroy)
		l->inner.destroy(l->inner.user);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

static void log_reset(struct logch *l)
{
	pthread_mutex_lock(&l->lock);
	l->n = 0;
	pthread_mutex_unlock(&l->lock);
}

/* Round trips in the log: receives that follow a send. */
static int log_round_trips(struct logch *l)
{
	int trips = 0;
	pthread_mutex_lock(&l->lock);
	for (size_t i = 1; i < l->n; i++)
		trips += l->log[i] == 'R' && l->log[i - 1] == 'S';
	pthread_mutex_unlock(&l->lock);
	return trips;
}

static int log_count(struct logch *l, char c)
{
	int k = 0;
	pthread_mutex_lock(&l->lock);
	for (size_t i = 0; i < l->n; i++)
		k += l->log[i] == c;
	pthread_mutex_unlock(&l->lock);
	return k;
}

/* ==== fixture =========================================================== */

struct pair {
	struct test_pair tp;
	remo_exports *exports;
	struct logch *log;
	struct node *root;
};

static int server_lease_ms; /* 0: none */
static size_t server_kept_bytes; /* 0: the default */

/* blob(n): a fresh str of n bytes */
static remo_value blob(int64_t n)
{
	char *b = malloc((size_t)n);
	memset(b, 'b', (size_t)n);
	remo_value v = remo_strn(b, (size_t)n);
	free(b);
	return v;
}
static int client_lease_ms; /* 0: none */

static int pair_setup(void **state)
{
	register_types();
	struct pair *p = calloc(1, sizeof *p);
	remo_channel a, b;
	assert_int_equal(remo_pipe(&a, &b), REMO_OK);
	p->exports = remo_exports_new();
	p->root = node_new(0);
	remo_value root = remo_object(node_type, p->root, node_free);
	remo_export(p->exports, "root", root);
	remo_value_release(root);
	test_export_fn(p->exports, "add", "q(a:q b:q)", (void (*)(void))add_ints);
	test_export_fn(p->exports, "tick", "v(n:q)", (void (*)(void))tick);
	test_export_fn(p->exports, "fail", "v(name:s)", (void (*)(void))fail_named);
	test_export_fn(p->exports, "slow", "v(ms:i)", (void (*)(void))slow);
	test_export_fn(p->exports, "make_node", "r(depth:q)",
	          (void (*)(void))make_node);
	test_export_fn(p->exports, "keep", "v(v:r)", (void (*)(void))keep);
	test_export_fn(p->exports, "call_back", "q(fn:r)",
	               (void (*)(void))call_back);
	test_export_fn(p->exports, "blob", "r(n:q)", (void (*)(void))blob);

	remo_session_opts sopts = {.lease_ms = server_lease_ms,
	                           .max_kept_bytes = server_kept_bytes};
	p->log = calloc(1, sizeof *p->log);
	pthread_mutex_init(&p->log->lock, NULL);
	p->log->inner = b;
	remo_channel lc = {.send = log_send, .recv = log_recv, .close = log_close,
	                   .destroy = log_destroy, .user = p->log};
	remo_session_opts copts = {.lease_ms = client_lease_ms};
	atomic_store(&ticks, 0);
	test_pair_open(&p->tp, a, p->exports, &sopts, lc, NULL, &copts);
	*state = p;
	return 0;
}

/* A server session with a lease: its lease thread reads for it when
 * its serving thread is busy. */
static int pair_setup_lease(void **state)
{
	server_lease_ms = 1000;
	int rc = pair_setup(state);
	server_lease_ms = 0;
	return rc;
}

/* A server that keeps 4 KiB of results for pipelining. */
static int pair_setup_small_kept(void **state)
{
	server_kept_bytes = 4096;
	int rc = pair_setup(state);
	server_kept_bytes = 0;
	return rc;
}

/* A client session with a lease: the lease thread ticks for it. */
static int pair_setup_client_lease(void **state)
{
	client_lease_ms = 1000;
	int rc = pair_setup(state);
	client_lease_ms = 0;
	return rc;
}

static int pair_teardown(void **state)
{
	struct pair *p = *state;
	test_pair_close(&p->tp);
	remo_exports_free(p->exports);
	remo_value_release(kept);
	kept = remo_nil();
	free(p);
	assert_int_equal(atomic_load(&nodes_alive), 0);
	return 0;
}

static remo_value lookup(struct pair *p, const char *name)
{
	remo_value v;
	int rc = remo_lookup(p->tp.client, name, &v);
	if (rc != REMO_OK)
		fail_msg("lookup %s: %s", name, remo_strerror(rc));
	return v;
}

static remo_value args2(int64_t a, int64_t b)
{
	return remo_tuple_of(2, remo_int(a), remo_int(b));
}

/* ==== futures =========================================================== */

static void test_async_many_in_flight(void **state)
{
	struct pair *p = *state;
	remo_value add = lookup(p, "add");
	enum { N = REMO_MAX_INFLIGHT };
	remo_future *f[N];
	for (int i = 0; i < N; i++) {
		remo_value args = args2(i, 1000);
		assert_int_equal(remo_call_async(add, args, NULL, &f[i]), REMO_OK);
		assert_non_null(f[i]);
		remo_value_release(args);
	}
	/* all were sent before any reply was read */
	assert_int_equal(log_round_trips(p->log), 1);
	for (int i = N - 1; i >= 0; i--) { /* in any order */
		remo_value v;
		assert_int_equal(remo_future_wait(f[i], -1, &v), REMO_OK);
		assert_int_equal(v.kind, REMO_INT);
		assert_int_equal(v.as.i, i + 1000);
		/* a second wait gives the same */
		remo_value again;
		assert_int_equal(remo_future_wait(f[i], 0, &again), REMO_OK);
		assert_true(remo_equal(v, again));
		remo_value_release(again);
		remo_value_release(v);
		remo_future_free(f[i]);
	}
	remo_value_release(add);
}

struct seen {
	atomic_int calls;
	int status;
	remo_value value;
};

static void on_done(remo_future *f, void *user)
{
	struct seen *s = user;
	remo_value v;
	s->status = remo_future_wait(f, 0, &v);
	s->value = v;
	/* last: the test may return (its stack, s, gone) once it sees it
	 * (ASan caught this thread writing status into a returned frame) */
	atomic_fetch_add(&s->calls, 1);
}

static void test_async_poll_and_callback(void **state)
{
	struct pair *p = *state;
	remo_value add = lookup(p, "add"), args = args2(20, 22);
	remo_future *f;
	struct seen seen = {0};
	assert_int_equal(remo_call_async(add, args, NULL, &f), REMO_OK);
	assert_int_equal(remo_future_then(f, on_done, &seen), REMO_OK);
	assert_int_equal(remo_future_then(f, on_done, &seen), REMO_EEXIST);
	int spins = 0;
	while (!remo_future_poll(f) && spins++ < 10000)
		usleep(100);
	assert_true(remo_future_poll(f));
	/* the callback ran once, in the thread that read the reply */
	assert_int_equal(atomic_load(&seen.calls), 1);
	assert_int_equal(seen.status, REMO_OK);
	assert_int_equal(seen.value.as.i, 42);
	remo_future_free(f);

	/* a callback set on a settled future runs at once */
	struct seen late = {0};
	assert_int_equal(remo_call_async(add, args, NULL, &f), REMO_OK);
	assert_int_equal(remo_future_wait(f, -1, NULL), REMO_OK);
	assert_int_equal(remo_future_then(f, on_done, &late), REMO_OK);
	assert_int_equal(atomic_load(&late.calls), 1);
	/* one callback per future, settled or not */
	assert_int_equal(remo_future_then(f, on_done, &late), REMO_EEXIST);
	assert_int_equal(atomic_load(&late.calls), 1);
	assert_int_equal(late.value.as.i, 42);
	remo_future_free(f);
	remo_value_release(args);
	remo_value_release(add);
}

static void test_async_start_failure(void **state)
{
	struct pair *p = *state;
	remo_value add = lookup(p, "add");
	remo_future *f = (remo_future *)1;
	/* the shape's signature refuses it before anything is sent */
	remo_value bad = remo_tuple_of(1, remo_str("x"));
	assert_int_equal(remo_call_async(add, bad, NULL, &f), REMO_ERAISED);
	assert_null(f);
	assert_string_equal(remo_error_name(remo_last_error()), "TypeError");
	remo_value_release(bad);

	/* a closed session starts nothing */
	remo_value args = args2(1, 2);
	remo_session_close(p->tp.client);
	f = (remo_future *)1;
	assert_int_not_equal(remo_call_async(add, args, NULL, &f), REMO_OK);
	assert_null(f);
	remo_value_release(args);
	remo_value_release(add);
}

static void test_async_error(void **state)
{
	struct pair *p = *state;
	remo_value fn = lookup(p, "fail");
	remo_value args = remo_tuple_of(1, remo_str("KeyError"));
	remo_future *f;
	struct seen seen = {0};
	assert_int_equal(remo_call_async(fn, args, NULL, &f), REMO_OK);
	assert_int_equal(remo_future_then(f, on_done, &seen), REMO_OK);
	assert_int_equal(remo_future_wait(f, -1, NULL), REMO_ERAISED);
	assert_string_equal(remo_error_name(remo_last_error()), "KeyError");
	assert_int_equal(atomic_load(&seen.calls), 1);
	assert_int_equal(seen.status, REMO_ERAISED);
	remo_future_free(f);
	remo_value_release(args);
	remo_value_release(fn);
}

static void test_async_deadline(void **state)
{
	struct pair *p = *state;
	remo_value fn = lookup(p, "slow"), add = lookup(p, "add");
	remo_value args = remo_tuple_of(1, remo_int(300));
	remo_call_opts o = {.timeout_ms = 30};
	remo_future *f;
	assert_int_equal(remo_call_async(fn, args, &o, &f), REMO_OK);
	/* a wait shorter than the deadline leaves it pending */
	assert_int_equal(remo_future_wait(f, 1, NULL), REMO_ETIMEDOUT);
	assert_false(remo_future_poll(f));
	/* the deadline settles it */
	assert_int_equal(remo_future_wait(f, -1, NULL), REMO_ETIMEDOUT);
	assert_true(remo_future_poll(f));
	assert_int_equal(remo_future_cancel(f), REMO_EINVAL);
	remo_future_free(f);
	/* the late reply is dropped; the session goes on */
	remo_value a2 = args2(1, 2), v;
	assert_int_equal(remo_call(add, a2, &v), REMO_OK);
	assert_int_equal(v.as.i, 3);
	remo_value_release(a2);
	remo_value_release(args);
	remo_value_release(fn);
	remo_value_release(add);
}

static void test_async_session_end_settles(void **state)
{
	struct pair *p = *state;
	remo_value fn = lookup(p, "slow");
	remo_value args = remo_tuple_of(1, remo_int(200));
	remo_future *f;
	struct seen seen = {0};
	assert_int_equal(remo_call_async(fn, args, NULL, &f), REMO_OK);
	assert_int_equal(remo_future_then(f, on_done, &seen), REMO_OK);
	remo_session_close(p->tp.client);
	assert_int_equal(atomic_load(&seen.calls), 1);
	assert_int_equal(seen.status, REMO_ECLOSED);
	assert_int_equal(remo_future_wait(f, -1, NULL), REMO_ECLOSED);
	remo_future_free(f);
	remo_value_release(args);
	remo_value_release(fn);
}

/*
 * Cancellation racing the reply: each call returns a new object, so a
 * reply that crosses the CANCEL carries a reference the client must
 * still take (or release), or the server would hold the object for
 * ever.  Whatever wins, the callback runs once, and in the end every
 * object made is freed.
 */
static void test_cancel_races_reply(void **state)
{
	struct pair *p = *state;
	remo_value mk = lookup(p, "make_node");
	enum { N = 2000 };
	int cancelled = 0, finished = 0;
	size_t base = remo__session_table_len(p->tp.server);
	for (int i = 0; i < N; i++) {
		remo_value args = remo_tuple_of(1, remo_int(i));
		remo_future *f;
		struct seen seen = {0};
		assert_int_equal(remo_call_async(mk, args, NULL, &f), REMO_OK);
		assert_int_equal(remo_future_then(f, on_done, &seen), REMO_OK);
		for (int k = 0; k < i % 7; k++) /* vary who wins */
			remo_future_poll(f);
		int rc = remo_future_cancel(f);
		assert_int_equal(atomic_load(&seen.calls), 1);
		if (rc == REMO_OK) {
			cancelled++;
			assert_int_equal(seen.status, REMO_ECANCELED);
			assert_int_equal(remo_future_wait(f, 0, NULL),
			                 REMO_ECANCELED);
		} else {
			finished++;
			assert_int_equal(seen.status, REMO_OK);
			assert_true(remo_isinstance(seen.value, "Node"));
		}
		remo_value_release(seen.value);
		remo_future_free(f);
		remo_value_release(args);
	}
	/* every call settled once, one way or the other (a cancel now
	 * waits for the peer, so it wins only over a call that had not
	 * started there: with make_node that quick, seldom), and
	 * everything is released: a plain call flushes the releases and
	 * reads the late replies */
	assert_int_equal(cancelled + finished, N);
	assert_true(finished > 0);
	remo_value a0 = remo_tuple_of(1, remo_int(-1)), v;
	assert_int_equal(remo_call(mk, a0, &v), REMO_OK);
	remo_value_release(v);
	remo_value_release(a0);
	assert_int_equal(remo__session_flush(p->tp.client), REMO_OK);
	remo_value add = lookup(p, "add"), a2 = args2(1, 1);
	assert_int_equal(remo_call(add, a2, &v), REMO_OK);
	/* base held make_node; now add is held too, and nothing else */
	assert_int_equal(remo__session_table_len(p->tp.server), base + 1);
	assert_int_equal(atomic_load(&nodes_alive), 1); /* the root */
	remo_value_release(a2);
	remo_value_release(add);
	remo_value_release(mk);
}

static void test_inflight_limit(void **state)
{
	struct pair *p = *state;
	remo_value fn = lookup(p, "tick"), one = remo_tuple_of(1, remo_int(1));
	enum { N = 3 * REMO_MAX_INFLIGHT };
	remo_future **f = calloc(N, sizeof *f);
	/* more than the limit without waiting: starting waits for the
	 * oldest, and the server's queue (4096) never overflows */
	for (int i = 0; i < N; i++)
		assert_int_equal(remo_call_async(fn, one, NULL, &f[i]), REMO_OK);
	for (int i = 0; i < N; i++) {
		assert_int_equal(remo_future_wait(f[i], -1, NULL), REMO_OK);
		remo_future_free(f[i]);
	}
	assert_int_equal(atomic_load(&ticks), N);
	assert_int_equal(remo_session_status(p->tp.client), REMO_OK);
	free(f);
	remo_value_release(one);
	remo_value_release(fn);
}

/* ==== pipelining ======================================================== */

static void test_pipelined_chain_one_round_trip(void **state)
{
	struct pair *p = *state;
	remo_value root = lookup(p, "root");
	enum { N = 10 };
	remo_future *f[N + 1];
	log_reset(p->log);
	remo_value target = remo_value_retain(root);
	for (int i = 0; i < N; i++) {
		assert_int_equal(remo_call_method_async(target, "next", remo_nil(),
		                                        NULL, &f[i]),
		                 REMO_OK);
		remo_value_release(target);
		target = remo_future_promise(f[i]);
	}
	assert_int_equal(remo_call_method_async(target, "depth", remo_nil(), NULL,
	                                        &f[N]),
	                 REMO_OK);
	remo_value v;
	assert_int_equal(remo_future_wait(f[N], -1, &v), REMO_OK);
	assert_int_equal(v.as.i, N);
	assert_int_equal(log_round_trips(p->log), 1);
	assert_int_equal(log_count(p->log, 'S'), N + 1);
	remo_value_release(target);
	for (int i = 0; i <= N; i++)
		remo_future_free(f[i]);

	/* the same chain, one call at a time: N + 1 round trips */
	log_reset(p->log);
	target = remo_value_retain(root);
	for (int i = 0; i < N; i++) {
		remo_value next;
		assert_int_equal(remo_call_method(target, "next", remo_nil(), &next),
		                 REMO_OK);
		remo_value_release(target);
		target = next;
	}
	assert_int_equal(remo_call_method(target, "depth", remo_nil(), &v),
	                 REMO_OK);
	assert_int_equal(v.as.i, N);
	assert_int_equal(log_round_trips(p->log), N + 1);
	remo_value_release(target);
	remo_value_release(root);
}

static void test_pipelined_error_propagates(void **state)
{
	struct pair *p = *state;
	remo_value root = lookup(p, "root");
	remo_future *f1, *f2, *f3;
	/* root.fail() raises; a call on its promised result fails alike */
	assert_int_equal(remo_call_method_async(root, "fail", remo_nil(), NULL,
	                                        &f1),
	                 REMO_OK);
	remo_value pr = remo_future_promise(f1);
	assert_int_equal(remo_call_method_async(pr, "depth", remo_nil(), NULL, &f2),
	                 REMO_OK);
	/* a plain (waiting) call on a promise is pipelined too */
	remo_value v;
	assert_int_equal(remo_call_method(pr, "depth", remo_nil(), &v),
	                 REMO_ERAISED);
	assert_string_equal(remo_error_name(remo_last_error()), "ValueError");
	assert_int_equal(remo_future_wait(f2, -1, NULL), REMO_ERAISED);
	assert_string_equal(remo_error_name(remo_last_error()), "ValueError");
	assert_string_equal(remo_error_message(remo_last_error()),
	                    "node 0 refuses");
	/* a promise is a target only, never an argument */
	remo_value kp = lookup(p, "keep"), ka = remo_tuple_of(1,
	                                        remo_value_retain(pr));
	assert_int_equal(remo_call(kp, ka, &v), REMO_ERAISED);
	assert_string_equal(remo_error_name(remo_last_error()), "TypeError");
	remo_value_release(ka);
	remo_value_release(kp);
	remo_value_release(pr);
	remo_future_free(f1);
	remo_future_free(f2);

	/* a promise whose result is settled still works, and so does one
	 * after its future was freed (the promise keeps the result) */
	assert_int_equal(remo_call_method_async(root, "next", remo_nil(), NULL,
	                                        &f1),
	                 REMO_OK);
	assert_int_equal(remo_future_wait(f1, -1, NULL), REMO_OK);
	pr = remo_future_promise(f1);
	remo_future_free(f1);
	assert_int_equal(remo_call_method_async(pr, "depth", remo_nil(), NULL, &f3),
	                 REMO_OK);
	assert_int_equal(remo_future_wait(f3, -1, &v), REMO_OK);
	assert_int_equal(v.as.i, 1);
	remo_future_free(f3);
	remo_value_release(pr);
	remo_value_release(root);
}

/* blob(n), async */
static remo_future *blob_async(remo_value fn, int64_t n)
{
	remo_future *f;
	remo_value args = remo_tuple_of(1, remo_int(n));
	assert_int_equal(remo_call_async(fn, args, NULL, &f), REMO_OK);
	remo_value_release(args);
	return f;
}

/* The length of pr's str, asked of the peer (pipelined). */
static int promised_len(remo_value pr, size_t *n)
{
	return remo_len(pr, n);
}

/*
 * Results kept for pipelining are bounded in bytes (max_kept_bytes):
 * past it a result is still the caller's (its reply goes as always), but
 * not kept, and a call pipelined on it fails with LimitError.  What the
 * caller drops (DROP) comes back to the budget.  Issue 11 measured
 * 1.06 GB held by KEEP without DROP.
 */
static void test_kept_results_are_bounded_in_bytes(void **state)
{
	struct pair *p = *state;
	remo_value fn = lookup(p, "blob");
	remo_future *f1 = blob_async(fn, 1000), *f2 = blob_async(fn, 10000);
	remo_value v;
	size_t n;
	assert_int_equal(remo_future_wait(f2, -1, &v), REMO_OK);
	remo_str_data(v, &n);
	assert_int_equal(n, 10000); /* the reply itself is whole */
	remo_value_release(v);
	remo_value pr1 = remo_future_promise(f1), pr2 = remo_future_promise(f2);
	assert_int_equal(promised_len(pr1, &n), REMO_OK);
	assert_int_equal(n, 1000);
	assert_int_equal(promised_len(pr2, &n), REMO_ERAISED);
	assert_string_equal(remo_error_name(remo_last_error()), "LimitError");
	assert_non_null(strstr(remo_error_message(remo_last_error()),
	                       "max_kept_bytes (4096 bytes)"));
	/* dropped, their bytes come back: 3000 more fit again */
	remo_value_release(pr1);
	remo_value_release(pr2);
	remo_future_free(f1);
	remo_future_free(f2);
	for (int i = 0; i < 3; i++) {
		f1 = blob_async(fn, 3000);
		pr1 = remo_future_promise(f1);
		assert_int_equal(promised_len(pr1, &n), REMO_OK);
		assert_int_equal(n, 3000);
		remo_value_release(pr1);
		remo_future_free(f1);
	}
	remo_value_release(fn);
}

static remo_value local_twice(int64_t x)
{
	return remo_int(2 * x);
}

static void test_local_async_and_promise(void **state)
{
	(void)state;
	remo_value fn = remo_function("twice", "r(x:q)",
	                              (void (*)(void))local_twice, NULL);
	remo_value args = remo_tuple_of(1, remo_int(21));
	remo_future *f;
	assert_int_equal(remo_call_async(fn, args, NULL, &f), REMO_OK);
	assert_true(remo_future_poll(f)); /* ran here, now */
	remo_value v;
	assert_int_equal(remo_future_wait(f, 0, &v), REMO_OK);
	assert_int_equal(v.as.i, 42);
	assert_int_equal(remo_future_cancel(f), REMO_EINVAL);
	/* a local promise resolves to its value */
	remo_value pr = remo_future_promise(f);
	assert_int_equal(remo_call(pr, args, &v), REMO_ERAISED); /* an int */
	assert_string_equal(remo_error_name(remo_last_error()), "TypeError");
	remo_value_release(pr);
	remo_future_free(f);
	remo_value_release(args);
	remo_value_release(fn);
}

/* ==== one-way calls and batches ========================================= */

static void test_oneway(void **state)
{
	struct pair *p = *state;
	remo_value fn = lookup(p, "tick"), failing = lookup(p, "fail");
	remo_value one = remo_tuple_of(1, remo_int(1));
	enum { N = 5000 }; /* past REMO_ONEWAY_WINDOW and the server's queue */
	log_reset(p->log);
	for (int i = 0; i < N; i++)
		assert_int_equal(remo_call_oneway(fn, one), REMO_OK);
	/* no replies but the window's: N / REMO_ONEWAY_WINDOW waits */
	assert_int_equal(log_count(p->log, 'R'), N / REMO_ONEWAY_WINDOW);
	/* an error stays on the server */
	remo_value name = remo_tuple_of(1, remo_str("KeyError"));
	assert_int_equal(remo_call_oneway(failing, name), REMO_OK);
	/* requests are served in order: a plain call after them sees all */
	remo_value v;
	assert_int_equal(remo_call(fn, one, &v), REMO_OK);
	assert_int_equal(atomic_load(&ticks), N + 1);
	assert_int_equal(remo_session_status(p->tp.client), REMO_OK);
	remo_value_release(name);
	remo_value_release(one);
	remo_value_release(failing);
	remo_value_release(fn);
}

/* A one-way call carrying a proxy that is dropped at once: the release
 * follows the request, and the server must still see the object. */
static void test_oneway_reference_then_release(void **state)
{
	struct pair *p = *state;
	remo_value mk = lookup(p, "make_node"), kp = lookup(p, "keep");
	for (int i = 0; i < 50; i++) {
		remo_value a = remo_tuple_of(1, remo_int(i)), node;
		assert_int_equal(remo_call(mk, a, &node), REMO_OK);
		remo_value ka = remo_tuple_of(1, node); /* node stolen */
		assert_int_equal(remo_call_oneway(kp, ka), REMO_OK);
		remo_value_release(ka); /* the last proxy: a release is due */
		assert_int_equal(remo__session_flush(p->tp.client), REMO_OK);
		remo_value_release(a);
	}
	remo_value add = lookup(p, "add"), a2 = args2(1, 1), v;
	assert_int_equal(remo_call(add, a2, &v), REMO_OK);
	/* the last object kept arrived as itself, not as an error */
	assert_true(remo_isinstance(kept, "Node"));
	remo_value d;
	assert_int_equal(remo_call_method(kept, "depth", remo_nil(), &d), REMO_OK);
	assert_int_equal(d.as.i, 49);
	remo_value_release(a2);
	remo_value_release(add);
	remo_value_release(kp);
	remo_value_release(mk);
}

static void test_batch_one_message(void **state)
{
	struct pair *p = *state;
	remo_value add = lookup(p, "add"), tk = lookup(p, "tick");
	remo_value root = lookup(p, "root");
	remo_batch *b = remo_batch_new();
	enum { N = 20 };
	remo_future *f[N], *pf, *unsent;
	for (int i = 0; i < N; i++) {
		remo_value args = args2(i, i);
		assert_int_equal(remo_batch_call(b, add, args, &f[i]), REMO_OK);
		remo_value_release(args);
	}
	remo_value one = remo_tuple_of(1, remo_int(1));
	assert_int_equal(remo_batch_call(b, tk, one, NULL), REMO_OK); /* one-way */
	/* a pipelined call on a call of the same batch */
	remo_future *nf;
	assert_int_equal(remo_batch_call_method(b, root, "next", remo_nil(), &nf),
	                 REMO_OK);
	remo_value pr = remo_future_promise(nf);
	assert_int_equal(remo_batch_call_method(b, pr, "depth", remo_nil(), &pf),
	                 REMO_OK);
	/* waiting before it is sent is refused, not a hang */
	assert_int_equal(remo_future_wait(pf, -1, NULL), REMO_ERAISED);
	log_reset(p->log);
	assert_int_equal(remo_batch_send(b), REMO_OK);
	assert_int_equal(log_count(p->log, 'S'), 1);
	for (int i = 0; i < N; i++) {
		remo_value v;
		assert_int_equal(remo_future_wait(f[i], -1, &v), REMO_OK);
		assert_int_equal(v.as.i, 2 * i);
		remo_future_free(f[i]);
	}
	remo_value v;
	assert_int_equal(remo_future_wait(pf, -1, &v), REMO_OK);
	assert_int_equal(v.as.i, 1);
	assert_int_equal(atomic_load(&ticks), 1);
	/* unsent calls settle as cancelled when the batch is freed */
	assert_int_equal(remo_batch_call(b, tk, one, &unsent), REMO_OK);
	remo_batch_free(b);
	assert_int_equal(remo_future_wait(unsent, 0, NULL), REMO_ECANCELED);
	remo_future_free(unsent);
	remo_future_free(pf);
	remo_future_free(nf);
	remo_value_release(pr);

	/* the limits: one session per batch, REMO_MAX_BATCH calls */
	b = remo_batch_new();
	remo_value local = remo_function("twice", "r(x:q)",
	                                 (void (*)(void))local_twice, NULL);
	assert_int_equal(remo_batch_call(b, local, one, NULL), REMO_ERAISED);
	for (int i = 0; i < REMO_MAX_BATCH; i++)
		assert_int_equal(remo_batch_call(b, tk, one, NULL), REMO_OK);
	assert_int_equal(remo_batch_call(b, tk, one, NULL), REMO_ERAISED);
	assert_string_equal(remo_error_name(remo_last_error()), "LimitError");
	assert_int_equal(remo_batch_send(b), REMO_OK);
	remo_batch_free(b);
	assert_int_equal(remo_call(tk, one, &v), REMO_OK);
	assert_int_equal(atomic_load(&ticks), 2 + REMO_MAX_BATCH);
	remo_value_release(local);
	remo_value_release(one);
	remo_value_release(root);
	remo_value_release(tk);
	remo_value_release(add);
}

/* Two threads sending batches of futures past REMO_MAX_INFLIGHT at once:
 * each waits for room, never for the other's calls that have not gone
 * yet (they waited on each other before). */
struct batcher {
	remo_value fn;
	int done;
};

static void *batch_thread(void *arg)
{
	struct batcher *b = arg;
	remo_value one = remo_tuple_of(1, remo_int(1));
	for (int round = 0; round < 3; round++) {
		remo_batch *bt = remo_batch_new();
		remo_future *f[REMO_MAX_BATCH];
		for (int i = 0; i < REMO_MAX_BATCH; i++)
			if (remo_batch_call(bt, b->fn, one, &f[i]) != REMO_OK)
				return NULL;
		if (remo_batch_send(bt) != REMO_OK)
			return NULL;
		remo_batch_free(bt);
		for (int i = 0; i < REMO_MAX_BATCH; i++) {
			if (remo_future_wait(f[i], -1, NULL) == REMO_OK)
				b->done++;
			remo_future_free(f[i]);
		}
	}
	remo_value_release(one);
	return NULL;
}

static void test_batches_from_two_threads(void **state)
{
	struct pair *p = *state;
	struct batcher b[2] = {{lookup(p, "tick"), 0}, {lookup(p, "tick"), 0}};
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, batch_thread, &b[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(b[0].done + b[1].done, 6 * REMO_MAX_BATCH);
	assert_int_equal(atomic_load(&ticks), 6 * REMO_MAX_BATCH);
	remo_value_release(b[0].fn);
	remo_value_release(b[1].fn);
}

/* One-way calls in batches count towards the window: eight full batches
 * do not flood the server's queue (4096). */
static void test_oneway_batches_keep_the_window(void **state)
{
	struct pair *p = *state;
	remo_value fn = lookup(p, "tick"), one = remo_tuple_of(1, remo_int(1));
	for (int k = 0; k < 8; k++) {
		remo_batch *b = remo_batch_new();
		for (int i = 0; i < REMO_MAX_BATCH; i++)
			assert_int_equal(remo_batch_call(b, fn, one, NULL), REMO_OK);
		assert_int_equal(remo_batch_send(b), REMO_OK);
		remo_batch_free(b);
	}
	remo_value v;
	assert_int_equal(remo_call(fn, one, &v), REMO_OK);
	assert_int_equal(atomic_load(&ticks), 8 * REMO_MAX_BATCH + 1);
	assert_int_equal(remo_session_status(p->tp.client), REMO_OK);
	remo_value_release(one);
	remo_value_release(fn);
}

/* Each async call's DROP (sent once its future is freed) rides in the
 * next request's frame (a MULTI): one frame per call, not two. */
static void test_drops_ride_along(void **state)
{
	struct pair *p = *state;
	remo_value add = lookup(p, "add"), args = args2(1, 2);
	log_reset(p->log);
	enum { N = 50 };
	for (int i = 0; i < N; i++) {
		remo_future *f;
		assert_int_equal(remo_call_async(add, args, NULL, &f), REMO_OK);
		assert_int_equal(remo_future_wait(f, -1, NULL), REMO_OK);
		remo_future_free(f);
	}
	assert_int_equal(log_count(p->log, 'S'), N);
	remo_value_release(args);
	remo_value_release(add);
}

static int64_t forty_one(void)
{
	return 41;
}

/* A caller that only polls still serves the callback its async call
 * makes (it waited for ever before). */
static void test_poll_serves_callbacks(void **state)
{
	struct pair *p = *state;
	remo_value cb = lookup(p, "call_back");
	remo_value mine = remo_function("forty_one", "q()",
	                                (void (*)(void))forty_one, NULL);
	remo_value args = remo_tuple_of(1, mine);
	remo_future *f;
	assert_int_equal(remo_call_async(cb, args, NULL, &f), REMO_OK);
	int spins = 0;
	while (!remo_future_poll(f) && spins++ < 20000)
		usleep(100);
	assert_true(remo_future_poll(f));
	remo_value v;
	assert_int_equal(remo_future_wait(f, 0, &v), REMO_OK);
	assert_int_equal(v.as.i, 42);
	remo_future_free(f);
	remo_value_release(args);
	remo_value_release(cb);
}

/* A future with a deadline and only a callback (nobody waits or polls)
 * still times out: the lease thread's tick settles it. */
static void test_deadline_without_a_wait(void **state)
{
	struct pair *p = *state;
	remo_value fn = lookup(p, "slow"), args = remo_tuple_of(1, remo_int(500));
	remo_call_opts o = {.timeout_ms = 30};
	remo_future *f;
	struct seen seen = {0};
	assert_int_equal(remo_call_async(fn, args, &o, &f), REMO_OK);
	assert_int_equal(remo_future_then(f, on_done, &seen), REMO_OK);
	for (int i = 0; i < 200 && atomic_load(&seen.calls) == 0; i++)
		usleep(5000);
	assert_int_equal(atomic_load(&seen.calls), 1);
	assert_int_equal(seen.status, REMO_ETIMEDOUT);
	remo_future_free(f);
	remo_value_release(args);
	remo_value_release(fn);
}

static remo_value add_proxy; /* the server's add, for local_uses_remote */

/* A local function that makes a plain remote call of its own. */
static int64_t local_uses_remote(int64_t x)
{
	remo_value args = remo_tuple_of(2, remo_int(x), remo_int(1)), out;
	int rc = remo_call(add_proxy, args, &out);
	remo_value_release(args);
	if (rc != REMO_OK || out.kind != REMO_INT)
		return -1;
	return out.as.i + 100;
}

/* The call style of an async (or one-way) call on a local function is
 * not the style of the remote calls that function makes: they stay
 * plain (the async mode leaked into them, and the future got the inner
 * call's result). */
static void test_local_call_keeps_its_own_style(void **state)
{
	struct pair *p = *state;
	add_proxy = lookup(p, "add");
	remo_value fn = remo_function("local_uses_remote", "q(x:q)",
	                              (void (*)(void))local_uses_remote, NULL);
	remo_value args = remo_tuple_of(1, remo_int(2)), v;
	remo_future *f;
	assert_int_equal(remo_call_async(fn, args, NULL, &f), REMO_OK);
	assert_int_equal(remo_future_wait(f, -1, &v), REMO_OK);
	assert_int_equal(v.as.i, 103);
	remo_future_free(f);
	assert_int_equal(remo_call_oneway(fn, args), REMO_OK);
	remo_value_release(args);
	remo_value_release(fn);
	remo_value_release(add_proxy);
	add_proxy = remo_nil();
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, pair_setup, pair_teardown)
	const struct CMUnitTest tests[] = {
		T(test_async_many_in_flight),
		T(test_async_poll_and_callback),
		T(test_async_start_failure),
		T(test_async_error),
		T(test_async_deadline),
		T(test_async_session_end_settles),
		T(test_cancel_races_reply),
		T(test_inflight_limit),
		T(test_drops_ride_along),
		T(test_poll_serves_callbacks),
		T(test_local_call_keeps_its_own_style),
		cmocka_unit_test_setup_teardown(test_deadline_without_a_wait,
		                                pair_setup_client_lease,
		                                pair_teardown),
		T(test_pipelined_chain_one_round_trip),
		T(test_pipelined_error_propagates),
		cmocka_unit_test(test_local_async_and_promise),
		cmocka_unit_test_setup_teardown(test_kept_results_are_bounded_in_bytes,
		                                pair_setup_small_kept, pair_teardown),
		T(test_oneway),
		T(test_oneway_reference_then_release),
		T(test_batch_one_message),
		T(test_batches_from_two_threads),
		cmocka_unit_test_setup_teardown(test_oneway_batches_keep_the_window,
		                                pair_setup_lease, pair_teardown),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
