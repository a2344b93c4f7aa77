/*
 * remo-node: a node of actors (README.md).
 *
 *   remo-node COOKIE@HOST:PORT [options]
 *   remo-node HOST:PORT --cookie-file PATH [options]
 *
 * Serves the actors of actors.h's builtins to every node of the cookie;
 * prints "READY HOST:PORT" once listening, and stops, killing its
 * actors, on SIGINT or SIGTERM.  With --ring N it runs the ring instead
 * (every other actor on --with HOST:PORT if given), prints one line and
 * exits.
 *
 *   --cookie-file PATH   the cookie, from a file only this user can read
 *   --max-actors N       actors running at once (100000)
 *   --max-mailbox N      messages waiting in one mailbox (100000)
 *   --stack-kib N        each actor's stack (256)
 *   --ring N --rounds R --with HOST:PORT
 */
#define _GNU_SOURCE
#include "actors.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void)
{
	fprintf(stderr, "usage: remo-node COOKIE@HOST:PORT [--cookie-file "
	        "PATH] [--max-actors N] [--max-mailbox N] [--stack-kib N] "
	        "[--ring N [--rounds R] [--with HOST:PORT]]\n");
	return 2;
}

static int run_ring(actor_node *n, long size, long rounds, const char *with)
{
	actor *me;
	remo_value args = remo_tuple_of(3, remo_int(size),
	                                with ? remo_str(with) : remo_nil(),
	                                remo_int(rounds));
	remo_value ring = remo_nil(), r = remo_nil();
	int rc = actor_adopt(n, &me);
	if (rc == REMO_OK)
		rc = actor_spawn(n, NULL, "ring", args, &ring);
	remo_value_release(args);
	/* the figures while the ring stands: ask before it ends */
	if (rc == REMO_OK)
		rc = actor_wait(ring, -1, &r);
	if (rc != REMO_OK) {
		remo_value e = remo_last_error();
		fprintf(stderr, "remo-node: ring: %s: %s\n", remo_error_name(e),
		        remo_error_message(e));
	} else {
		double per_round = remo_tuple_get(r, 3).as.d;
		printf("ring actors=%ld nodes=%d rounds=%ld build_s=%.3f "
		       "round_s=%.4f hop_us=%.2f\n", size, with ? 2 : 1,
		       rounds, remo_tuple_get(r, 2).as.d, per_round,
		       per_round / (double)(size + 1) * 1e6);
	}
	remo_value_release(r);
	remo_value_release(ring);
	actor_release(me);
	return rc == REMO_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	static char cookie[REMO_MAX_SECRET + 1];
	actor_node_opts o = {0};
	long ring = 0, rounds = 3;
	const char *with = NULL;
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		if (i + 1 >= argc)
			return usage();
		const char *v = argv[++i];
		if (strcmp(a, "--cookie-file") == 0) {
			size_t len;
			if (remo_secret_load(v, cookie, sizeof cookie - 1, &len)
			    != REMO_OK) {
				fprintf(stderr, "remo-node: %s: %s\n", v,
				        remo_error_message(remo_last_error()));
				return 1;
			}
			cookie[len] = '\0';
			if (strlen(cookie) != len) {
				fprintf(stderr, "remo-node: %s: a cookie has no "
				        "NUL bytes\n", v);
				return 1;
			}
			o.cookie = cookie;
		} else if (strcmp(a, "--max-actors") == 0) {
			o.max_actors = (unsigned)strtoul(v, NULL, 10);
		} else if (strcmp(a, "--max-mailbox") == 0) {
			o.max_mailbox = strtoul(v, NULL, 10);
		} else if (strcmp(a, "--stack-kib") == 0) {
			o.stack_size = strtoul(v, NULL, 10) << 10;
		} else if (strcmp(a, "--ring") == 0) {
			ring = strtol(v, NULL, 10);
		} else if (strcmp(a, "--rounds") == 0) {
			rounds = strtol(v, NULL, 10);
		} else if (strcmp(a, "--with") == 0) {
			with = v;
		} else {
			return usage();
		}
	}
	if (actors_builtins() != REMO_OK) {
		fprintf(stderr, "remo-node: out of memory\n");
		return 1;
	}
	/* SIGINT and SIGTERM are taken by sigwait below, in this thread */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	int rc;
	actor_node *n = actor_node_start(argv[1], &o, &rc);
	if (n == NULL) {
		remo_value e = remo_last_error();
		fprintf(stderr, "remo-node: %s: %s: %s\n", argv[1],
		        e.kind == REMO_ERROR ? remo_error_name(e)
		                             : remo_status_name(rc),
		        e.kind == REMO_ERROR ? remo_error_message(e)
		                             : remo_strerror(rc));
		return 1;
	}
	printf("READY %s\n", actor_node_name(n));
	fflush(stdout);
	int status = 0;
	if (ring > 0) {
		status = run_ring(n, ring, rounds, with);
	} else {
		int sig;
		sigwait(&set, &sig);
	}
	actor_node_stop(n);
	return status;
}
