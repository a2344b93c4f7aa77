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
#include <sys/wait.h>
#include <unistd.h>

#include "../demo/tuplespace/ts.h"

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

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/remo-ts-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	char url[128];
	snprintf(url, sizeof url, "unix://%s/ts.sock", f->dir);
	int p[2];
	assert_int_equal(pipe(p), 0);
	f->pid = fork();
	if (f->pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		execl(server_path(), "remo-tuplespace", url, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	char line[300] = {0};
	size_t got = 0;
	struct pollfd pf = {p[0], POLLIN, 0};
	while (strchr(line, '\n') == NULL && poll(&pf, 1, 10000) > 0) {
		ssize_t r = read(p[0], line + got, sizeof line - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(p[0]);
	if (strncmp(line, "READY ", 6) != 0)
		fail_msg("remo-tuplespace did not start: '%s'", line);
	line[strcspn(line, "\n")] = '\0';
	snprintf(f->url, sizeof f->url, "%s", line + 6);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	int st = 0;
	kill(f->pid, SIGTERM);
	waitpid(f->pid, &st, 0);
	char path[128];
	snprintf(path, sizeof path, "%s/ts.sock", f->dir);
	unlink(path);
	rmdir(f->dir);
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
		usleep(100000); /* in this order at the server */
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

static void test_a_killed_taker_loses_nothing(void **state)
{
	struct fx *f = *state;
	ts *b = client(f);
	pid_t pid = fork();
	if (pid == 0) { /* a child that takes, and is killed waiting */
		ts *a = client(f);
		remo_value p = tup2("k", 1), got;
		ts_in(a, p, 10000, &got);
		_exit(0);
	}
	usleep(300000);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	usleep(100000); /* its session ends at the server */
	remo_value p = tup2("k", 1), got;
	assert_int_equal(ts_out(b, p), REMO_OK);
	assert_int_equal(ts_inp(b, p, &got), REMO_OK);
	assert_true(remo_equal(got, p));
	remo_value_release(got);
	remo_value_release(p);
	ts_close(b);
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
	usleep(500000);
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

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
	const struct CMUnitTest tests[] = {
		T(test_out_in_rd_and_the_nonblocking_forms),
		T(test_wildcards_and_nested_patterns),
		T(test_delivery_order_readers_then_the_first_taker),
		T(test_a_taker_that_times_out_loses_nothing),
		T(test_a_killed_taker_loses_nothing),
		T(test_fifty_blocked_takers_hold_no_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
