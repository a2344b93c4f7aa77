/*
 * test_tuplespace.c -- demo/tuplespace against a real remo-tuplespace
 * server process: operations, wildcards, lindypy's delivery order,
 * nothing lost to a taker that times out, cancels or dies, blocked
 * takers that hold no server thread, tuples by value, and an object put
 * in by one client and used by another (forwarded by the space).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../demo/tuplespace/ts.h"
#include "procs.h"
#include <remo/trace.h>

struct fx {
	pid_t pid;
	char dir[64];
	char url[320];
};

static const char *server_path(void)
{
	static char path[4096];
	const char *b = getenv("top_builddir");
	snprintf(path, sizeof path, "%s/demo/tuplespace/remo-tuplespace",
	         b ? b : ".");
	return path;
}

/* Starts remo-tuplespace on unix://DIR/ts.sock with short predicate and
 * notification timeouts, and db (NULL: none); the server's stderr goes
 * to DIR/err.  Returns its pid, or -1 with what it said in *line. */
static pid_t server_start(struct fx *f, const char *db, char *line,
                          size_t cap)
{
	char url[128], err[128];
	snprintf(url, sizeof url, "unix://%s/ts.sock", f->dir);
	snprintf(err, sizeof err, "%s/err", f->dir);
	char *argv[] = {(char *)server_path(), url, "--predicate-timeout",
	                "500", "--notify-timeout", "500", db ? "--db" : NULL,
	                (char *)db, NULL};
	pid_t pid = proc_start(argv, err, line, cap);
	if (pid > 0)
		snprintf(f->url, sizeof f->url, "%.300s", line);
	return pid;
}

/* Stops the server with sig; its exit status. */
static int server_stop(struct fx *f, int sig)
{
	int st = proc_stop(f->pid, sig);
	f->pid = -1;
	return st;
}

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/remo-ts-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	char line[1024];
	f->pid = server_start(f, NULL, line, sizeof line);
	if (f->pid < 0)
		fail_msg("remo-tuplespace did not start: '%s'", line);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	int st = f->pid > 0 ? server_stop(f, SIGTERM) : 0;
	proc_rmdir(f->dir);
	free(f);
	/* it stopped cleanly */
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	return 0;
}

static ts *client(struct fx *f)
{
	int rc;
	ts *t = ts_connect(f->url, NULL, &rc);
	if (t == NULL)
		fail_msg("ts_connect: %s", remo_error_message(remo_last_error()));
	return t;
}

static remo_value tup2(const char *s, int64_t i)
{
	return remo_tuple_of(2, remo_str(s), remo_int(i));
}

static int64_t count(ts *t)
{
	int64_t n;
	assert_int_equal(ts_count(t, &n), REMO_OK);
	return n;
}

/* ---- operations and patterns ---------------------------------------------- */

static void test_out_in_rd_and_the_nonblocking_forms(void **state)
{
	ts *t = client(*state);
	remo_value a = tup2("a", 1), got;
	assert_int_equal(ts_out(t, a), REMO_OK);
	assert_int_equal(ts_rd(t, a, 1000, &got), REMO_OK);
	assert_true(remo_equal(got, a));
	remo_value_release(got);
	assert_int_equal(count(t), 1);
	assert_int_equal(ts_rdp(t, a, &got), REMO_OK);
	assert_true(remo_equal(got, a));
	remo_value_release(got);
	assert_int_equal(ts_in(t, a, 1000, &got), REMO_OK);
	assert_true(remo_equal(got, a));
	remo_value_release(got);
	assert_int_equal(ts_inp(t, a, &got), REMO_OK);
	assert_int_equal(got.kind, REMO_NIL); /* gone */
	assert_int_equal(ts_in(t, a, 100, &got), REMO_ETIMEDOUT);
	assert_string_equal(remo_error_name(remo_last_error()), "TimeoutError");
	/* bad input, by name; the space goes on */
	assert_int_equal(ts_out(t, remo_int(3)), REMO_ERAISED);
	assert_string_equal(remo_error_name(remo_last_error()), "TypeError");
	assert_int_equal(ts_out(t, a), REMO_OK);
	assert_int_equal(count(t), 1);
	remo_value_release(a);
	ts_close(t);
}

static void test_wildcards_and_nested_patterns(void **state)
{
	ts *t = client(*state);
	remo_value l = remo_list();
	remo_list_append(l, remo_int(1));
	remo_value x = remo_tuple_of(4, remo_str("x"), remo_double(2.5),
	                             remo_tuple_of(2, remo_int(7),
	                                           remo_str("in")),
	                             remo_value_retain(l));
	assert_int_equal(ts_out(t, x), REMO_OK);
	remo_value got;
	remo_value p = remo_tuple_of(4, remo_value_retain(ts_any(t, "str")),
	                             remo_value_retain(ts_any(t, "double")),
	                             remo_tuple_of(2,
	                                 remo_value_retain(ts_any(t, "int")),
	                                 remo_str("in")),
	                             remo_value_retain(ts_any(t, "list")));
	remo_value wrong = remo_tuple_of(4, remo_value_retain(ts_any(t, "int")),
	                                 remo_value_retain(ts_any(t, "any")),
	                                 remo_value_retain(ts_any(t, "any")),
	                                 remo_value_retain(ts_any(t, "any")));
	assert_int_equal(ts_rdp(t, wrong, &got), REMO_OK);
	assert_int_equal(got.kind, REMO_NIL);
	assert_int_equal(ts_in(t, p, 1000, &got), REMO_OK);
	/* the list came by value: a local list, and a copy */
	remo_value gl = remo_tuple_get(got, 3);
	assert_int_equal(gl.kind, REMO_LIST);
	assert_int_equal(remo_list_get(gl, 0).as.i, 1);
	remo_value_release(got);
	remo_value_release(p);
	remo_value_release(wrong);
	remo_value_release(x);
	remo_value_release(l);
	ts_close(t);
}

/* ---- delivery order --------------------------------------------------------- */

struct waiting {
	ts *t;
	remo_value pattern;
	bool take;
	int rc;
	remo_value got;
};

static void *wait_main(void *arg)
{
	struct waiting *w = arg;
	w->rc = w->take ? ts_in(w->t, w->pattern, 10000, &w->got)
	                : ts_rd(w->t, w->pattern, 10000, &w->got);
	return NULL;
}

/* Two readers and two takers wait; one out: both readers see it, the
 * first taker gets it, the second still waits (and gets the next). */
static void test_delivery_order_readers_then_the_first_taker(void **state)
{
	struct fx *f = *state;
	ts *main_t = client(f);
	remo_value p = tup2("job", 0);
	struct waiting w[4];
	pthread_t th[4];
	bool take[4] = {true, false, false, true};
	for (int i = 0; i < 4; i++) {
		w[i] = (struct waiting){client(f), p, take[i], -1, remo_nil()};
		pthread_create(&th[i], NULL, wait_main, &w[i]);
		while (ts_waiting(main_t) < i + 1) /* in this order */
			usleep(5000);
	}
	assert_int_equal(ts_out(main_t, p), REMO_OK);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(w[i].rc, REMO_OK);
		assert_true(remo_equal(w[i].got, p));
	}
	assert_int_equal(count(main_t), 0); /* taken, not stored */
	assert_int_equal(ts_out(main_t, p), REMO_OK); /* the second taker's */
	pthread_join(th[3], NULL);
	assert_int_equal(w[3].rc, REMO_OK);
	assert_int_equal(count(main_t), 0);
	for (int i = 0; i < 4; i++) {
		remo_value_release(w[i].got);
		ts_close(w[i].t);
	}
	remo_value_release(p);
	ts_close(main_t);
}

/* ---- nothing lost ------------------------------------------------------------ */

static void test_a_taker_that_times_out_loses_nothing(void **state)
{
	struct fx *f = *state;
	ts *a = client(f), *b = client(f);
	remo_value p = tup2("t", 1), got;
	assert_int_equal(ts_in(a, p, 150, &got), REMO_ETIMEDOUT);
	assert_int_equal(ts_out(b, p), REMO_OK);
	assert_int_equal(count(b), 1);
	assert_int_equal(ts_inp(b, p, &got), REMO_OK);
	assert_true(remo_equal(got, p));
	remo_value_release(got);
	remo_value_release(p);
	ts_close(a);
	ts_close(b);
}

/* --ts-taker URL: takes ("k", 1), waiting up to 10 s */
static int taker_main(const char *url)
{
	int rc;
	ts *a = ts_connect(url, NULL, &rc);
	remo_value p = tup2("k", 1), got = remo_nil();
	if (a != NULL)
		ts_in(a, p, 10000, &got);
	remo_value_release(got);
	remo_value_release(p);
	ts_close(a);
	return 0;
}

static void test_a_killed_taker_loses_nothing(void **state)
{
	struct fx *f = *state;
	ts *b = client(f);
	const char *self = proc_self();
	pid_t pid = fork();
	if (pid == 0) { /* a taker, killed waiting (this program again) */
		execl(self, self, "--ts-taker", f->url, (char *)NULL);
		_exit(127);
	}
	while (ts_waiting(b) < 1) /* it waits at the server */
		usleep(10000);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	while (ts_waiting(b) > 0) /* its session ends at the server */
		usleep(10000);
	remo_value p = tup2("k", 1), got;
	assert_int_equal(ts_out(b, p), REMO_OK);
	assert_int_equal(ts_inp(b, p, &got), REMO_OK);
	assert_true(remo_equal(got, p));
	remo_value_release(got);
	remo_value_release(p);
	ts_close(b);
}

/* inp() raced by its caller's cancellation, fifty times: the tuple is
 * always either the caller's (the answer had left) or still in the space
 * (cancelled before it ran, or its answer failed and it was put back). */
static void test_a_cancelled_inp_loses_nothing(void **state)
{
	struct fx *f = *state;
	ts *t = client(f);
	remo_session *s;
	assert_int_equal(remo_connect(f->url, 5000, NULL, NULL, &s), REMO_OK);
	remo_value takep;
	assert_int_equal(remo_lookup(s, "takep", &takep), REMO_OK);
	remo_value x = tup2("c", 1);
	int theirs = 0, ours = 0;
	for (int i = 0; i < 50; i++) {
		assert_int_equal(ts_out(t, x), REMO_OK);
		remo_future *fu;
		remo_value args = remo_tuple_of(1, remo_value_retain(x)), got;
		assert_int_equal(remo_call_async(takep, args, NULL, &fu), REMO_OK);
		remo_value_release(args);
		if (i % 2)
			usleep(50 * (i % 7));
		remo_future_cancel(fu);
		int rc = remo_future_wait(fu, 5000, &got);
		bool caller_has_it = rc == REMO_OK && got.kind == REMO_TUPLE;
		if (rc == REMO_OK)
			remo_value_release(got);
		remo_future_free(fu);
		int64_t n = count(t);
		assert_int_equal(n + (caller_has_it ? 1 : 0), 1);
		if (n == 1) {
			theirs++;
			assert_int_equal(ts_inp(t, x, &got), REMO_OK);
			remo_value_release(got);
		} else {
			ours++;
		}
	}
	fprintf(stderr, "cancelled inp: %d answered, %d left in the space\n",
	        ours, theirs);
	remo_value_release(x);
	remo_value_release(takep);
	remo_session_free(s);
	ts_close(t);
}

/* ---- scale -------------------------------------------------------------------- */

static int threads_of(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *fp = fopen(path, "r");
	int n = -1;
	while (fp != NULL && fgets(line, sizeof line, fp) != NULL)
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	if (fp != NULL)
		fclose(fp);
	return n;
}

/* Fifty clients blocked in in() at once: the server's threads stay few
 * (a blocked in() is a deferred reply, not a thread). */
static void test_fifty_blocked_takers_hold_no_threads(void **state)
{
	struct fx *f = *state;
	enum { N = 50 };
	ts *main_t = client(f);
	remo_value p = tup2("many", 0);
	static struct waiting w[N];
	pthread_t th[N];
	for (int i = 0; i < N; i++) {
		w[i] = (struct waiting){client(f), p, true, -1, remo_nil()};
		pthread_create(&th[i], NULL, wait_main, &w[i]);
	}
	while (ts_waiting(main_t) < N)
		usleep(10000);
	int threads = threads_of(f->pid);
	assert_true(threads > 0 && threads < 20);
	for (int i = 0; i < N; i++)
		assert_int_equal(ts_out(main_t, p), REMO_OK);
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].rc, REMO_OK);
		remo_value_release(w[i].got);
		ts_close(w[i].t);
	}
	assert_int_equal(count(main_t), 0);
	remo_value_release(p);
	ts_close(main_t);
}

/* ---- predicates ------------------------------------------------------------ */

static bool pred_even(remo_value x)
{
	return x.kind == REMO_INT && x.as.i % 2 == 0;
}

static bool pred_big(remo_value x)
{
	return x.kind == REMO_INT && x.as.i > 10;
}

static ts *flag_t; /* the predicate below's own connection to the space */

/* A predicate that uses the space: true while a ("flag",) tuple is in. */
static bool pred_flag_up(remo_value x)
{
	(void)x;
	remo_value p = remo_tuple_of(1, remo_str("flag")), got;
	bool up = ts_rdp(flag_t, p, &got) == REMO_OK && got.kind == REMO_TUPLE;
	remo_value_release(got);
	remo_value_release(p);
	return up;
}

static bool pred_raises(remo_value x)
{
	remo_raise("ValueError", "no opinion on %lld", (long long)x.as.i);
	return false;
}

static bool pred_sleeps(remo_value x)
{
	(void)x;
	usleep(1000000); /* past the server's --predicate-timeout 500 */
	return true;
}

static remo_value pred(const char *name, bool (*fn)(remo_value))
{
	return remo_function(name, "?(x:r)", (void (*)(void))fn, NULL);
}

static void test_predicates_match_columns_by_the_clients_code(void **state)
{
	struct fx *f = *state;
	ts *t = client(f), *other = client(f);
	for (int i = 1; i <= 4; i++) {
		remo_value x = tup2("n", i);
		assert_int_equal(ts_out(t, x), REMO_OK);
		remo_value_release(x);
	}
	remo_value even = pred("even", pred_even), big = pred("big", pred_big);
	remo_value p = remo_tuple_of(2, remo_str("n"), remo_value_retain(even));
	remo_value got, want = tup2("n", 2);
	assert_int_equal(ts_inp(t, p, &got), REMO_OK); /* the oldest even */
	assert_true(remo_equal(got, want));
	remo_value_release(got);
	remo_value_release(want);
	assert_int_equal(ts_rdp(t, p, &got), REMO_OK);
	want = tup2("n", 4);
	assert_true(remo_equal(got, want));
	remo_value_release(got);
	remo_value_release(want);

	/* a blocked in() with a predicate lets a tuple it refuses be
	 * stored, and takes the one it accepts */
	remo_value pb = remo_tuple_of(2, remo_str("n"), remo_value_retain(big));
	struct waiting w = {other, pb, true, -1, remo_nil()};
	pthread_t th;
	pthread_create(&th, NULL, wait_main, &w);
	while (ts_waiting(t) < 1)
		usleep(5000);
	remo_value x5 = tup2("n", 5), x11 = tup2("n", 11);
	assert_int_equal(ts_out(t, x5), REMO_OK);
	assert_int_equal(ts_out(t, x11), REMO_OK);
	pthread_join(th, NULL);
	assert_int_equal(w.rc, REMO_OK);
	assert_true(remo_equal(w.got, x11));
	remo_value_release(w.got);
	assert_int_equal(count(t), 4); /* 1, 3, 4, 5 */
	assert_int_equal(ts_inp(t, x5, &got), REMO_OK);
	assert_true(remo_equal(got, x5));
	remo_value_release(got);

	/* nested: a predicate inside a tuple column */
	remo_value pair = remo_tuple_of(2, remo_str("pair"),
	                                remo_tuple_of(2, remo_int(1), remo_int(6)));
	assert_int_equal(ts_out(t, pair), REMO_OK);
	remo_value pp = remo_tuple_of(2, remo_str("pair"),
	                              remo_tuple_of(2, remo_value_retain(
	                                  ts_any(t, "int")),
	                                            remo_value_retain(even)));
	assert_int_equal(ts_inp(t, pp, &got), REMO_OK);
	assert_true(remo_equal(got, pair));
	remo_value_release(got);
	remo_value_release(pp);
	remo_value_release(pair);
	remo_value_release(x5);
	remo_value_release(x11);
	remo_value_release(pb);
	remo_value_release(p);
	remo_value_release(even);
	remo_value_release(big);
	ts_close(other);
	ts_close(t);
}

static void test_a_predicate_may_use_the_space(void **state)
{
	struct fx *f = *state;
	ts *t = client(f);
	flag_t = client(f);
	remo_value up = pred("flag_up", pred_flag_up);
	remo_value g = tup2("g", 1), got;
	remo_value p = remo_tuple_of(2, remo_str("g"), remo_value_retain(up));
	assert_int_equal(ts_out(t, g), REMO_OK);
	assert_int_equal(ts_inp(t, p, &got), REMO_OK);
	assert_int_equal(got.kind, REMO_NIL); /* no flag yet */
	remo_value flag = remo_tuple_of(1, remo_str("flag"));
	assert_int_equal(ts_out(t, flag), REMO_OK);
	assert_int_equal(ts_inp(t, p, &got), REMO_OK);
	assert_true(remo_equal(got, g));
	remo_value_release(got);
	remo_value_release(flag);
	remo_value_release(p);
	remo_value_release(g);
	remo_value_release(up);
	ts_close(flag_t);
	flag_t = NULL;
	ts_close(t);
}

struct slow_call {
	ts *t;
	remo_value p;
	int rc;
	char name[64];
};

static void *slow_main(void *arg)
{
	struct slow_call *c = arg;
	remo_value got = remo_nil();
	c->rc = ts_in(c->t, c->p, 5000, &got);
	snprintf(c->name, sizeof c->name, "%s",
	         c->rc == REMO_ERAISED ? remo_error_name(remo_last_error())
	                               : "");
	remo_value_release(got);
	return NULL;
}

/* A predicate that raises fails the call with its error; one that does
 * not answer fails it with TimeoutError; meanwhile others are served. */
static void test_a_failing_or_stuck_predicate_is_a_named_error(void **state)
{
	struct fx *f = *state;
	ts *t = client(f), *other = client(f);
	remo_value x = tup2("n", 7), got;
	assert_int_equal(ts_out(t, x), REMO_OK);
	remo_value raises = pred("raises", pred_raises);
	remo_value p = remo_tuple_of(2, remo_str("n"), remo_value_retain(raises));
	assert_int_equal(ts_inp(t, p, &got), REMO_ERAISED);
	assert_string_equal(remo_error_name(remo_last_error()), "ValueError");
	remo_value_release(p);

	remo_value sleeps = pred("sleeps", pred_sleeps);
	struct slow_call c = {t, remo_tuple_of(2, remo_str("n"),
	                                       remo_value_retain(sleeps)), -1,
	                      ""};
	pthread_t th;
	pthread_create(&th, NULL, slow_main, &c);
	usleep(100000);
	/* the space's lock is not held while the predicate runs */
	remo_value y = tup2("y", 1);
	assert_int_equal(ts_out(other, y), REMO_OK);
	assert_int_equal(ts_inp(other, y, &got), REMO_OK);
	assert_true(remo_equal(got, y));
	remo_value_release(got);
	pthread_join(th, NULL);
	assert_int_equal(c.rc, REMO_ERAISED);
	assert_string_equal(c.name, "TimeoutError");
	assert_int_equal(ts_inp(other, x, &got), REMO_OK); /* still there */
	assert_true(remo_equal(got, x));
	remo_value_release(got);
	remo_value_release(c.p);
	remo_value_release(y);
	remo_value_release(x);
	remo_value_release(raises);
	remo_value_release(sleeps);
	ts_close(other);
	ts_close(t);
}

/* ---- subscriptions ------------------------------------------------------------ */

static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t seen[2][4096];
static int nseen[2], nils[2];

static void note(int k, remo_value t)
{
	pthread_mutex_lock(&seen_lock);
	if (t.kind == REMO_NIL)
		nils[k]++;
	else if (nseen[k] < 4096)
		seen[k][nseen[k]++] = remo_tuple_get(t, 1).as.i;
	pthread_mutex_unlock(&seen_lock);
}

static void on_note0(remo_value t) { note(0, t); }
static void on_note1(remo_value t) { note(1, t); }

static int seen_of(int k)
{
	pthread_mutex_lock(&seen_lock);
	int n = nseen[k];
	pthread_mutex_unlock(&seen_lock);
	return n;
}

/* waits (up to 30 s: not a timing assertion) for k to have seen n */
static bool wait_seen(int k, int n)
{
	for (int i = 0; i < 3000 && seen_of(k) < n; i++)
		usleep(10000);
	return seen_of(k) >= n;
}

static void test_subscribers_see_every_match_in_order(void **state)
{
	struct fx *f = *state;
	memset(nseen, 0, sizeof nseen);
	memset(nils, 0, sizeof nils);
	ts *t = client(f);
	remo_value f0 = remo_function("n0", "v(t:r)", (void (*)(void))on_note0,
	                              NULL);
	remo_value f1 = remo_function("n1", "v(t:r)", (void (*)(void))on_note1,
	                              NULL);
	remo_value p = remo_tuple_of(2, remo_str("s"),
	                             remo_value_retain(ts_any(t, "int")));
	remo_value s0, s1;
	assert_int_equal(ts_subscribe(t, p, f0, &s0), REMO_OK);
	assert_int_equal(ts_subscribe(t, p, f1, &s1), REMO_OK);
	int64_t put[] = {1, 2, 3};
	const char *tag[] = {"s", "x", "s"};
	for (int i = 0; i < 3; i++) {
		remo_value x = tup2(tag[i], put[i]);
		assert_int_equal(ts_out(t, x), REMO_OK);
		remo_value_release(x);
	}
	assert_true(wait_seen(0, 2) && wait_seen(1, 2));
	assert_int_equal(seen[0][0], 1);
	assert_int_equal(seen[0][1], 3);
	assert_int_equal(seen[1][1], 3);
	/* a taker took nothing from them: the tuples are all stored */
	assert_int_equal(count(t), 3);
	assert_int_equal(ts_unsubscribe(s0), REMO_OK);
	remo_value x = tup2("s", 4);
	assert_int_equal(ts_out(t, x), REMO_OK);
	remo_value_release(x);
	assert_true(wait_seen(1, 3));
	assert_int_equal(seen[1][2], 4);
	assert_int_equal(seen_of(0), 2); /* ended: told nothing more */
	assert_int_equal(nils[0] + nils[1], 0);
	assert_int_equal(ts_unsubscribe(s1), REMO_OK);
	remo_value_release(p);
	remo_value_release(f0);
	remo_value_release(f1);
	ts_close(t);
}

static int child_count;
static void on_child_note(remo_value t)
{
	(void)t;
	__atomic_add_fetch(&child_count, 1, __ATOMIC_RELAXED);
}

/* The stopped subscriber (this program with --ts-stopper URL FD):
 * subscribes, says so on FD, stops itself, and once resumed says on FD
 * how many notifications it had. */
static int stopper_main(const char *url, int fd)
{
	int rc;
	ts *c = ts_connect(url, NULL, &rc);
	remo_value fn = remo_nil(), p = remo_nil(), sub = remo_nil();
	if (c != NULL) {
		fn = remo_function("cn", "v(t:r)", (void (*)(void))on_child_note,
		                   NULL);
		p = remo_tuple_of(2, remo_str("p"),
		                  remo_value_retain(ts_any(c, "int")));
		rc = ts_subscribe(c, p, fn, &sub);
	}
	if (write(fd, &rc, sizeof rc) != sizeof rc)
		return 1;
	raise(SIGSTOP);
	usleep(1500000); /* resumed: whatever still comes, comes */
	int n = __atomic_load_n(&child_count, __ATOMIC_RELAXED);
	if (write(fd, &n, sizeof n) != sizeof n)
		return 1;
	remo_value_release(sub);
	remo_value_release(p);
	remo_value_release(fn);
	ts_close(c);
	return 0;
}

/* A subscriber stops (SIGSTOP: it reads nothing); 3,000 tuples go in:
 * every out() returns, a well-behaved subscriber sees them all, and the
 * stopped one, resumed, has been ended (it got fewer). */
static void test_a_subscriber_that_stops_reading_blocks_nothing(void **state)
{
	struct fx *f = *state;
	enum { N = 3000 };
	memset(nseen, 0, sizeof nseen);
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	/* a process of its own (this program again: no fork of a process
	 * with threads) */
	const char *self = proc_self();
	char fd[16];
	snprintf(fd, sizeof fd, "%d", pfd[1]);
	pid_t pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		execl(self, self, "--ts-stopper", f->url, fd, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	int rc = -1, st;
	assert_int_equal(read(pfd[0], &rc, sizeof rc), sizeof rc);
	assert_int_equal(rc, REMO_OK);
	assert_int_equal(waitpid(pid, &st, WUNTRACED), pid);
	assert_true(WIFSTOPPED(st));

	ts *t = client(f);
	remo_value f1 = remo_function("n1", "v(t:r)", (void (*)(void))on_note1,
	                              NULL);
	remo_value p = remo_tuple_of(2, remo_str("p"),
	                             remo_value_retain(ts_any(t, "int")));
	remo_value s1;
	assert_int_equal(ts_subscribe(t, p, f1, &s1), REMO_OK);
	for (int i = 0; i < N; i++) {
		remo_value x = tup2("p", i);
		assert_int_equal(ts_out(t, x), REMO_OK);
		remo_value_release(x);
	}
	assert_true(wait_seen(1, N));
	for (int i = 0; i < N; i++)
		assert_int_equal(seen[1][i], i);
	kill(pid, SIGCONT);
	int n = -1;
	assert_int_equal(read(pfd[0], &n, sizeof n), sizeof n);
	close(pfd[0]);
	waitpid(pid, &st, 0);
	assert_true(n >= 0 && n < N);
	assert_int_equal(ts_unsubscribe(s1), REMO_OK);
	remo_value_release(p);
	remo_value_release(f1);
	ts_close(t);
}

/* ---- persistence ---------------------------------------------------------------- */

static void restart(struct fx *f, const char *db, int sig)
{
	if (f->pid > 0) {
		int st = server_stop(f, sig);
		if (sig == SIGTERM && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
			char err[128], cmd[160];
			snprintf(err, sizeof err, "%s/err", f->dir);
			snprintf(cmd, sizeof cmd, "cat %s >&2", err);
			if (system(cmd) != 0)
				fprintf(stderr, "(no %s)\n", err);
			fail_msg("the server did not stop cleanly: %d", st);
		}
	}
	char line[1024];
	f->pid = server_start(f, db, line, sizeof line);
	if (f->pid < 0)
		fail_msg("remo-tuplespace did not start: '%s'", line);
}

static void test_the_space_survives_a_restart_in_its_file(void **state)
{
	struct fx *f = *state;
	char db[128];
	snprintf(db, sizeof db, "%s/ts.db", f->dir);
	restart(f, db, SIGTERM);
	ts *t = client(f);
	remo_value l = remo_list();
	remo_list_append(l, remo_str("a"));
	remo_value a = tup2("p", 1), got;
	remo_value b = remo_tuple_of(3, remo_str("p"), remo_int(2), l);
	remo_value c = remo_tuple_of(2, remo_str("q"), remo_double(3.5));
	remo_value fn = pred("even", pred_even);
	remo_value d = remo_tuple_of(2, remo_str("ref"), remo_value_retain(fn));
	assert_int_equal(ts_out(t, a), REMO_OK);
	assert_int_equal(ts_out(t, b), REMO_OK);
	assert_int_equal(ts_out(t, c), REMO_OK);
	assert_int_equal(ts_out(t, d), REMO_OK); /* a reference: memory only */
	assert_int_equal(ts_inp(t, a, &got), REMO_OK);
	remo_value_release(got);
	ts_close(t);

	restart(f, db, SIGTERM);
	t = client(f);
	assert_int_equal(count(t), 2);
	remo_value pb = remo_tuple_of(3, remo_str("p"),
	                              remo_value_retain(ts_any(t, "int")),
	                              remo_value_retain(ts_any(t, "list")));
	assert_int_equal(ts_rdp(t, pb, &got), REMO_OK);
	assert_true(remo_equal(got, b));
	remo_value_release(got);
	assert_int_equal(ts_rdp(t, c, &got), REMO_OK);
	assert_true(remo_equal(got, c));
	remo_value_release(got);
	remo_value k = tup2("k", 9);
	assert_int_equal(ts_out(t, k), REMO_OK);
	ts_close(t);

	restart(f, db, SIGKILL); /* what was put is on disk already */
	t = client(f);
	assert_int_equal(count(t), 3);
	assert_int_equal(ts_inp(t, k, &got), REMO_OK);
	assert_true(remo_equal(got, k));
	remo_value_release(got);
	ts_close(t);
	remo_value_release(k);
	remo_value_release(pb);
	remo_value_release(a);
	remo_value_release(b);
	remo_value_release(c);
	remo_value_release(d);
	remo_value_release(fn);
}

static size_t slurp(const char *path, char *buf, size_t cap)
{
	FILE *fp = fopen(path, "rb");
	size_t n = fp ? fread(buf, 1, cap, fp) : 0;
	if (fp)
		fclose(fp);
	return n;
}

static void test_a_file_that_is_not_a_space_is_refused_and_kept(void **state)
{
	struct fx *f = *state;
	server_stop(f, SIGTERM);
	char db[128], line[1024], cmd[256];
	static char before[65536], after[65536];
	snprintf(db, sizeof db, "%s/other.db", f->dir);
	/* garbage */
	FILE *fp = fopen(db, "w");
	for (int i = 0; i < 200; i++)
		fputs("not a database, not at all. ", fp);
	fclose(fp);
	size_t n0 = slurp(db, before, sizeof before);
	assert_true(server_start(f, db, line, sizeof line) < 0);
	assert_non_null(strstr(line, "NotATupleSpace"));
	assert_int_equal(slurp(db, after, sizeof after), n0);
	assert_memory_equal(before, after, n0);
	/* SQLite, but something else's */
	unlink(db);
	snprintf(cmd, sizeof cmd, "sqlite3 %s 'CREATE TABLE notes (t TEXT); "
	         "INSERT INTO notes VALUES (1)'", db);
	assert_int_equal(system(cmd), 0);
	n0 = slurp(db, before, sizeof before);
	assert_true(server_start(f, db, line, sizeof line) < 0);
	assert_non_null(strstr(line, "NotATupleSpace"));
	assert_int_equal(slurp(db, after, sizeof after), n0);
	assert_memory_equal(before, after, n0);
}

/* ---- workers ---------------------------------------------------------------------- */

/* v's text, NUL-terminated (in a buffer of a few) */
static const char *cstr(remo_value v)
{
	static char buf[4][512];
	static int k;
	size_t n = 0;
	const char *d = remo_str_data(v, &n);
	char *b = buf[k++ % 4];
	snprintf(b, 512, "%.*s", d ? (int)n : 0, d ? d : "");
	return b;
}

/* The worker's function (this program run with --ts-worker): leaves a
 * tuple, then fails with a local recorded for its traceback. */
static int failing_worker(ts *t, const char *name, void *arg)
{
	(void)arg;
	int64_t k = 41;
	REMO_LOCAL(k);
	remo_value hello = remo_tuple_of(2, remo_str("hello"), remo_str(name));
	ts_out(t, hello);
	remo_value_release(hello);
	remo_raise("ValueError", "%s gave up at %lld", name, (long long)k);
	return REMO_ERAISED;
}

static void test_a_failing_worker_posts_a_traceback_to_walk(void **state)
{
	struct fx *f = *state;
	ts *t = client(f), *other = client(f);
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "%s --ts-worker", proc_self());
	ts_worker *w;
	assert_int_equal(ts_eval(t, "w1", cmd, &w), REMO_OK);
	assert_int_equal(ts_eval_wait(w), REMO_ERAISED);
	remo_value p = remo_tuple_of(4, remo_str("error"), remo_str("w1"),
	                             remo_value_retain(ts_any(other, "str")),
	                             remo_value_retain(ts_any(other, "any")));
	remo_value got, hello = remo_tuple_of(2, remo_str("hello"),
	                                      remo_str("w1"));
	assert_int_equal(ts_inp(other, hello, &got), REMO_OK);
	assert_true(remo_equal(got, hello)); /* it did use the space */
	remo_value_release(got);
	/* taken by another client: the traceback, forwarded by the space */
	assert_int_equal(ts_in(other, p, 5000, &got), REMO_OK);
	assert_string_equal(cstr(remo_tuple_get(got, 2)),
	                    "ValueError: w1 gave up at 41");
	remo_value tb = remo_tuple_get(got, 3), remote, frames;
	assert_true(remo_is_proxy(tb));
	assert_int_equal(remo_call_method(tb, "frames", remo_nil(), &remote),
	                 REMO_OK);
	assert_int_equal(remo_force(remote, &frames), REMO_OK); /* a copy */
	remo_value_release(remote);
	bool found = false;
	size_t n = remo_list_len(frames);
	for (size_t i = 0; i < n && !found; i++) {
		remo_value fr = remo_list_get(frames, i), fn, file, line, locals;
		assert_int_equal(remo_getattr(fr, "function", &fn), REMO_OK);
		if (strcmp(cstr(fn), "failing_worker") == 0) {
			found = true;
			assert_int_equal(remo_getattr(fr, "file", &file), REMO_OK);
			assert_non_null(strstr(cstr(file),
			                       "test_tuplespace.c"));
			assert_int_equal(remo_getattr(fr, "line", &line), REMO_OK);
			assert_true(line.as.i > 0);
			assert_int_equal(remo_getattr(fr, "locals", &locals),
			                 REMO_OK);
			remo_value kv, key = remo_str("k");
			assert_int_equal(remo_getitem(locals, key, &kv), REMO_OK);
			remo_value_release(key);
			assert_int_equal(kv.as.i, 41);
			remo_value_release(kv);
			remo_value_release(locals);
			remo_value_release(file);
		}
		remo_value_release(fn);
	}
	assert_true(found);
	remo_value_release(frames);
	remo_value_release(got);
	remo_value_release(hello);
	remo_value_release(p);
	ts_eval_free(w);
	ts_close(other);
	ts_close(t);
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--ts-worker") == 0)
		return ts_worker_main(failing_worker, NULL);
	if (argc == 3 && strcmp(argv[1], "--ts-taker") == 0)
		return taker_main(argv[2]);
	if (argc == 4 && strcmp(argv[1], "--ts-stopper") == 0)
		return stopper_main(argv[2], atoi(argv[3]));
	signal(SIGPIPE, SIG_IGN);
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
	const struct CMUnitTest tests[] = {
		T(test_out_in_rd_and_the_nonblocking_forms),
		T(test_wildcards_and_nested_patterns),
		T(test_delivery_order_readers_then_the_first_taker),
		T(test_a_taker_that_times_out_loses_nothing),
		T(test_a_killed_taker_loses_nothing),
		T(test_a_cancelled_inp_loses_nothing),
		T(test_fifty_blocked_takers_hold_no_threads),
		T(test_predicates_match_columns_by_the_clients_code),
		T(test_a_predicate_may_use_the_space),
		T(test_a_failing_or_stuck_predicate_is_a_named_error),
		T(test_subscribers_see_every_match_in_order),
		T(test_a_subscriber_that_stops_reading_blocks_nothing),
		T(test_the_space_survives_a_restart_in_its_file),
		T(test_a_file_that_is_not_a_space_is_refused_and_kept),
		T(test_a_failing_worker_posts_a_traceback_to_walk),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
