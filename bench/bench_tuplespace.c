/*
 * bench_tuplespace.c -- the tuple space (demo/tuplespace) against a remo
 * call to the same server in the same run (bench.h has the method).  A
 * remo-tuplespace process serves unix:// in a temporary directory; under
 * make bench every process runs on CPU 0 (taskset -c 0).
 *
 *   tuplespace.out_in      ts_out of a 2-tuple and ts_in of it back,
 *                          against one call of the server's count()
 *                          (a call that only reads a counter: a remo
 *                          null call to that server): ratio = out_in_ns /
 *                          call_ns (two round trips: 2 is the floor)
 *   tuplespace.ping_pong   a round between two processes through the
 *                          space: this one puts ("ping", i) and takes
 *                          ("pong", ?int); the other takes the ping and
 *                          puts the pong.  Against count(): ratio =
 *                          round_ns / call_ns (four operations, each one
 *                          round trip, and a hand-off between processes)
 *   tuplespace.throughput  8 producer and 8 consumer threads (a session
 *                          each) move 16,000 ("job", i) tuples through
 *                          the space; the median of 3 runs, as tuples
 *                          per second, and ratio = ns per tuple /
 *                          call_ns
 */
#include "bench.h"

#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../demo/tuplespace/ts.h"
#include "../tests/procs.h"

__attribute__((noreturn)) static void die(const char *what)
{
	fprintf(stderr, "bench_tuplespace: %s: %s\n", what,
	        remo_error_message(remo_last_error()));
	exit(1);
}

static char url[PATH_MAX + 16], dir[64];
static pid_t server_pid;

/* Finds remo-tuplespace beside this program's build tree and starts it. */
static void server_start(void)
{
	char server[PATH_MAX + 64];
	proc_build_path("demo/tuplespace/remo-tuplespace", server,
	                sizeof server);
	snprintf(dir, sizeof dir, "/tmp/remo-bench-ts-XXXXXX");
	if (mkdtemp(dir) == NULL)
		die("mkdtemp");
	char listen[128], err[128];
	snprintf(listen, sizeof listen, "unix://%s/ts.sock", dir);
	snprintf(err, sizeof err, "%s/err", dir);
	char *argv[] = {server, listen, NULL};
	server_pid = proc_start(argv, err, url, sizeof url);
	if (server_pid < 0) {
		fprintf(stderr, "bench_tuplespace: %s did not start: %s\n",
		        server, url);
		exit(1);
	}
}

static void server_stop(void)
{
	proc_stop(server_pid, SIGTERM);
	proc_rmdir(dir);
}

static ts *connect_or_die(void)
{
	int rc;
	ts *t = ts_connect(url, NULL, &rc);
	if (t == NULL)
		die("ts_connect");
	return t;
}

/* ---- the operations ------------------------------------------------------ */

struct ctx {
	ts *t;
	remo_value tuple, pattern;
};

static void op_count(void *c, uint64_t iters)
{
	struct ctx *x = c;
	for (uint64_t i = 0; i < iters; i++) {
		int64_t n;
		if (ts_count(x->t, &n) != REMO_OK)
			die("count");
		bench_sink += (uint64_t)n;
	}
}

static void op_out_in(void *c, uint64_t iters)
{
	struct ctx *x = c;
	for (uint64_t i = 0; i < iters; i++) {
		remo_value got;
		if (ts_out(x->t, x->tuple) != REMO_OK ||
		    ts_in(x->t, x->pattern, 10000, &got) != REMO_OK)
			die("out+in");
		remo_value_release(got);
	}
}

/* tuple: ("ping", 1); pattern: ("pong", ?int) */
static void op_ping(void *c, uint64_t iters)
{
	op_out_in(c, iters);
}

/* The other process: answers pings until ("ping", -1). */
static int ponger(void)
{
	ts *t = connect_or_die();
	remo_value p = remo_tuple_of(2, remo_str("ping"),
	                             remo_value_retain(ts_any(t, "int")));
	for (;;) {
		remo_value got;
		if (ts_in(t, p, -1, &got) != REMO_OK)
			return 1;
		int64_t i = remo_tuple_get(got, 1).as.i;
		remo_value_release(got);
		if (i < 0)
			break;
		remo_value pong = remo_tuple_of(2, remo_str("pong"), remo_int(i));
		if (ts_out(t, pong) != REMO_OK)
			return 1;
		remo_value_release(pong);
	}
	remo_value_release(p);
	ts_close(t);
	return 0;
}

/* ---- throughput ----------------------------------------------------------- */

enum { PRODUCERS = 8, CONSUMERS = 8, JOBS = 16000 };

static void *producer(void *arg)
{
	ts *t = arg;
	for (int i = 0; i < JOBS / PRODUCERS; i++) {
		remo_value x = remo_tuple_of(2, remo_str("job"), remo_int(i));
		if (ts_out(t, x) != REMO_OK)
			die("producer out");
		remo_value_release(x);
	}
	return NULL;
}

static void *consumer(void *arg)
{
	ts *t = arg;
	remo_value p = remo_tuple_of(2, remo_str("job"),
	                             remo_value_retain(ts_any(t, "int")));
	for (int i = 0; i < JOBS / CONSUMERS; i++) {
		remo_value got;
		if (ts_in(t, p, 30000, &got) != REMO_OK)
			die("consumer in");
		bench_sink += (uint64_t)remo_tuple_get(got, 1).as.i;
		remo_value_release(got);
	}
	remo_value_release(p);
	return NULL;
}

static double throughput_once(ts **ts_of)
{
	pthread_t th[PRODUCERS + CONSUMERS];
	uint64_t t0 = bench_now_ns();
	for (int i = 0; i < CONSUMERS; i++)
		pthread_create(&th[i], NULL, consumer, ts_of[i]);
	for (int i = 0; i < PRODUCERS; i++)
		pthread_create(&th[CONSUMERS + i], NULL, producer,
		               ts_of[CONSUMERS + i]);
	for (int i = 0; i < PRODUCERS + CONSUMERS; i++)
		pthread_join(th[i], NULL);
	return (double)(bench_now_ns() - t0) / JOBS;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	server_start();
	/* the ponger forks before this process starts any thread */
	pid_t pong = fork();
	if (pong == 0)
		_exit(ponger());

	struct ctx c = {connect_or_die(), remo_nil(), remo_nil()};
	c.tuple = remo_tuple_of(2, remo_str("x"), remo_int(1));
	c.pattern = remo_tuple_of(2, remo_str("x"),
	                          remo_value_retain(ts_any(c.t, "int")));
	struct bench_ab r = bench_ab(op_out_in, &c, op_count, &c);
	bench_print("tuplespace.out_in", r.a_ns / r.b_ns,
	            "out_in_ns=%.0f call_ns=%.0f", r.a_ns, r.b_ns);
	double call_ns = r.b_ns;

	struct ctx pc = {c.t, remo_tuple_of(2, remo_str("ping"), remo_int(1)),
	                 remo_tuple_of(2, remo_str("pong"),
	                               remo_value_retain(ts_any(c.t, "int")))};
	r = bench_ab(op_ping, &pc, op_count, &c);
	bench_print("tuplespace.ping_pong", r.a_ns / r.b_ns,
	            "round_ns=%.0f call_ns=%.0f processes=2", r.a_ns, r.b_ns);
	remo_value stop = remo_tuple_of(2, remo_str("ping"), remo_int(-1));
	ts_out(c.t, stop);
	remo_value_release(stop);
	waitpid(pong, NULL, 0);

	ts *many[PRODUCERS + CONSUMERS];
	for (int i = 0; i < PRODUCERS + CONSUMERS; i++)
		many[i] = connect_or_die();
	double runs[3];
	for (int k = 0; k < 3; k++)
		runs[k] = throughput_once(many);
	qsort(runs, 3, sizeof runs[0], cmp_double);
	bench_print("tuplespace.throughput", runs[1] / call_ns,
	            "tuples_per_s=%.0f ns_per_tuple=%.0f call_ns=%.0f "
	            "producers=%d consumers=%d", 1e9 / runs[1], runs[1],
	            call_ns, PRODUCERS, CONSUMERS);
	for (int i = 0; i < PRODUCERS + CONSUMERS; i++)
		ts_close(many[i]);
	remo_value_release(pc.tuple);
	remo_value_release(pc.pattern);
	remo_value_release(c.tuple);
	remo_value_release(c.pattern);
	ts_close(c.t);
	server_stop();
	return 0;
}
