/*
 * bench_actors.c -- actors (demo/actors) against baselines measured in
 * the same run.  This process is one node; a remo-node process is the
 * other (under make bench both run on CPU 0).  Each line:
 *
 *   actors.spawn          10,000 waiting actors: microseconds per spawn,
 *                         memory and threads per actor, against 10,000
 *                         bare threads with the same stack waiting on a
 *                         semaphore: ratio = actor memory / thread memory
 *   actors.ring.one_node  the ring of 10,000 forwarders, all here:
 *                         seconds per round and microseconds per hop,
 *                         against the same ring of bare threads passing a
 *                         token by semaphore: ratio = actor hop / bare hop
 *   actors.ring.two_nodes the same with every other actor on the other
 *                         node (every hop crosses), each node's threads
 *                         and memory while the ring stands: ratio = hop /
 *                         the one-node hop
 *   actors.msgs.local     messages per second from one actor to another
 *                         on this node, and
 *   actors.msgs.remote    to an actor of the other node, both against
 *                         remo one-way calls per second to the other node
 *                         (a method that does nothing): ratio = messages
 *                         per second / one-way calls per second
 */
#define _GNU_SOURCE
#include "bench.h"

#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../demo/actors/actors.h"
#include "../tests/procs.h"

#define COOKIE "bench-cookie-0123456789"
#define RING 10000
#define ROUNDS 5
#define MSGS 20000

static actor_node *node;
static actor *me;
static char peer[300];

__attribute__((noreturn)) static void die(const char *what)
{
	fprintf(stderr, "bench_actors: %s: %s\n", what,
	        remo_error_message(remo_last_error()));
	exit(1);
}

static double now_s(void)
{
	return (double)bench_now_ns() / 1e9;
}

/* (actors, threads, rss_kib, dropped) of where (NULL: here). */
static void stats(const char *where, int64_t out[4])
{
	remo_value st;
	if (actor_node_stats(node, where, &st) != REMO_OK)
		die("stats");
	for (size_t i = 0; i < 4; i++)
		out[i] = remo_tuple_get(st, i).as.i;
	remo_value_release(st);
}

static void wait_idle(void)
{
	for (int i = 0; i < 3000 && actor_node_actors(node) > 0; i++)
		usleep(10000);
}

/* ---- bare threads: the baselines ----------------------------------------- */

struct bare {
	sem_t sem;
	struct bare *next;
	int rounds;
};

static void *bare_main(void *p)
{
	struct bare *b = p;
	for (int r = 0; r < b->rounds; r++) {
		sem_wait(&b->sem);
		sem_post(&b->next->sem);
	}
	return NULL;
}

/* Starts n bare threads in a ring (the last posts to head); returns the
 * KiB of memory they added, and in *hop_us the time per hop of rounds
 * laps of a token. */
static double bare_ring(int n, int rounds, double *hop_us, double *spawn_us)
{
	struct bare *b = calloc((size_t)n + 1, sizeof *b);
	pthread_t *th = calloc((size_t)n, sizeof *th);
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setstacksize(&at, ACTOR_DEFAULT_STACK);
	int64_t before[4], after[4];
	stats(NULL, before);
	for (int i = 0; i <= n; i++) {
		sem_init(&b[i].sem, 0, 0);
		b[i].next = &b[i + 1 <= n ? i + 1 : 0];
		b[i].rounds = rounds;
	}
	double t0 = now_s();
	for (int i = 1; i <= n; i++)
		if (pthread_create(&th[i - 1], &at, bare_main, &b[i]) != 0)
			die("pthread_create");
	*spawn_us = (now_s() - t0) / n * 1e6;
	stats(NULL, after);
	t0 = now_s();
	for (int r = 0; r < rounds; r++) {
		sem_post(&b[1].sem);
		sem_wait(&b[0].sem);
	}
	*hop_us = (now_s() - t0) / rounds / (n + 1) * 1e6;
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i <= n; i++)
		sem_destroy(&b[i].sem);
	pthread_attr_destroy(&at);
	free(th);
	free(b);
	return (double)(after[2] - before[2]);
}

/* ---- actors ------------------------------------------------------------- */

static void spawn_line(double bare_kib, double bare_spawn_us)
{
	int64_t before[4], after[4];
	stats(NULL, before);
	remo_value *a = calloc(RING, sizeof *a);
	double t0 = now_s();
	for (int i = 0; i < RING; i++)
		if (actor_spawn(node, NULL, "sleeper", remo_tuple(0), &a[i]) !=
		    REMO_OK)
			die("spawn");
	double spawn_us = (now_s() - t0) / RING * 1e6;
	stats(NULL, after);
	for (int i = 0; i < RING; i++) {
		actor_kill(a[i]);
		remo_value_release(a[i]);
	}
	free(a);
	wait_idle();
	double kib = (double)(after[2] - before[2]);
	printf("bench actors.spawn actors=%d spawn_us=%.1f bare_spawn_us=%.1f "
	       "kib_per_actor=%.1f bare_kib_per_thread=%.1f threads=%lld "
	       "ratio=%.2f\n", RING, spawn_us, bare_spawn_us, kib / RING,
	       bare_kib / RING, (long long)(after[1] - before[1]),
	       kib / bare_kib);
}

/* The ring: n forwarders (every other on where, if not NULL), rounds
 * laps; the hop time in microseconds. */
static double ring_line(const char *name, const char *where, double base)
{
	double t0 = now_s();
	remo_value next = remo_value_retain(actor_self(me));
	for (int i = 0; i < RING; i++) {
		remo_value a = remo_tuple_of(1, next), addr;
		if (actor_spawn(node, where != NULL && i % 2 ? where : NULL,
		                "forward", a, &addr) != REMO_OK)
			die("spawn forward");
		remo_value_release(a);
		next = addr;
	}
	double build_s = now_s() - t0;
	int64_t here[4], there[4] = {0, 0, 0, 0};
	stats(NULL, here);
	if (where != NULL)
		stats(where, there);
	remo_value m = remo_dict(), back;
	remo_dict_set_str(m, "text", remo_str("hello around the ring"));
	/* one lap to warm up, then the timed ones */
	double t1 = 0;
	for (int r = 0; r <= ROUNDS; r++) {
		if (r == 1)
			t1 = now_s();
		if (actor_send(next, m) != REMO_OK ||
		    actor_receive(me, 60000, 0, NULL, &back, NULL) != REMO_OK)
			die("ring round");
		remo_value_release(back);
	}
	double round_s = (now_s() - t1) / ROUNDS;
	remo_value_release(m);
	remo_value stop = remo_str("stop");
	if (actor_send(next, stop) != REMO_OK ||
	    actor_receive(me, 60000, 0, NULL, &back, NULL) != REMO_OK)
		die("ring stop");
	remo_value_release(back);
	remo_value_release(stop);
	remo_value_release(next);
	wait_idle();
	double hop_us = round_s / (RING + 1) * 1e6;
	printf("bench %s actors=%d build_s=%.2f round_s=%.4f hop_us=%.2f "
	       "threads_here=%lld rss_kib_here=%lld threads_there=%lld "
	       "rss_kib_there=%lld base_hop_us=%.2f ratio=%.2f\n", name, RING,
	       build_s, round_s, hop_us, (long long)here[1],
	       (long long)here[2], (long long)there[1], (long long)there[2],
	       base, hop_us / base);
	return hop_us;
}

/* Messages per second from me to a counter on where (NULL: here). */
static double msgs_per_s(const char *where)
{
	remo_value c;
	if (actor_spawn(node, where, "counter", remo_tuple(0), &c) != REMO_OK)
		die("spawn counter");
	remo_value m = remo_int(7), stop = remo_str("stop"), r;
	double t0 = now_s();
	for (int i = 0; i < MSGS; i++)
		if (actor_send(c, m) != REMO_OK)
			die("send");
	if (actor_send(c, stop) != REMO_OK || actor_wait(c, 60000, &r) !=
	    REMO_OK || r.as.i != MSGS)
		die("counter");
	double rate = MSGS / (now_s() - t0);
	remo_value_release(stop);
	remo_value_release(c);
	return rate;
}

/* One-way calls per second to the other node's "name" (does nothing),
 * then one call that waits for them all. */
static double oneway_per_s(void)
{
	remo_session *s;
	remo_session_opts o = {.secret = COOKIE, .secret_len = strlen(COOKIE)};
	char url[320];
	snprintf(url, sizeof url, "tcp://%s", peer);
	remo_value n, r;
	if (remo_connect(url, 5000, NULL, &o, &s) != REMO_OK ||
	    remo_lookup(s, "node", &n) != REMO_OK)
		die("connect");
	double t0 = now_s();
	for (int i = 0; i < MSGS; i++)
		if (remo_call_method_oneway(n, "name", remo_nil()) != REMO_OK)
			die("oneway");
	if (remo_call_method(n, "name", remo_nil(), &r) != REMO_OK)
		die("name");
	double rate = MSGS / (now_s() - t0);
	remo_value_release(r);
	remo_value_release(n);
	remo_session_free(s);
	return rate;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	char path[PATH_MAX + 64];
	proc_build_path("demo/actors/remo-node", path, sizeof path);
	if (actors_builtins() != REMO_OK)
		die("builtins");
	int rc;
	node = actor_node_start(COOKIE "@127.0.0.1:0", NULL, &rc);
	if (node == NULL || actor_adopt(node, &me) != REMO_OK)
		die("node");
	char *argv[] = {path, COOKIE "@127.0.0.1:0", NULL};
	pid_t pid = proc_start(argv, "/dev/null", peer, sizeof peer);
	if (pid < 0)
		die("remo-node did not start");

	double bare_hop, bare_spawn;
	double bare_kib = bare_ring(RING, ROUNDS, &bare_hop, &bare_spawn);
	spawn_line(bare_kib, bare_spawn);
	double one = ring_line("actors.ring.one_node", NULL, bare_hop);
	ring_line("actors.ring.two_nodes", peer, one);
	double ow = oneway_per_s();
	double local = msgs_per_s(NULL), remote = msgs_per_s(peer);
	printf("bench actors.msgs.local msgs_per_s=%.0f oneway_per_s=%.0f "
	       "ratio=%.2f\n", local, ow, local / ow);
	printf("bench actors.msgs.remote msgs_per_s=%.0f oneway_per_s=%.0f "
	       "ratio=%.2f\n", remote, ow, remote / ow);
	actor_release(me);
	actor_node_stop(node);
	proc_stop(pid, SIGTERM);
	return 0;
}
