/*
 * helper_client.c -- a client process for the transport tests.
 *
 *   helper_client URL CALLS [--lease MS] [--hold]
 *
 * Connects, then makes CALLS calls of the server's call_back(fn, x),
 * passing its own function, which the server calls back: each reply must
 * be fn(x) + 1 for this process's own x, so a lost, duplicated or
 * misrouted reply shows.  Prints "OK n" and exits 0, or says what went
 * wrong and exits 1.  With --hold it prints "READY" after connecting and
 * then waits for ever (to be stopped or killed by the test).
 *
 *   helper_client URL 0 [--secret-file PATH] [--lease MS] --slow MS
 *   helper_client URL 0 [--secret-file PATH] --sessions
 *
 * --slow calls the server's slow(MS) and prints "SLOW <status name>
 * <ms>": how the call ended and after how long (a test cuts the link
 * meanwhile).  --sessions prints "SESSIONS <n>", the server's count;
 * --whoami "WHOAMI <what the server's remo_caller says of us>".
 */
#include <remo/remo.h>
#include <remo/transport.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Calls name(args) once; prints what --slow and --sessions promise. */
static int one_call(remo_session *s, const char *name, remo_value args,
                    bool slow)
{
	remo_value fn, out;
	if (remo_lookup(s, name, &fn) != REMO_OK) {
		fprintf(stderr, "helper_client: lookup %s: %s\n", name,
		        remo_error_message(remo_last_error()));
		remo_value_release(args);
		return 1;
	}
	int64_t t0 = now_ms();
	int rc = remo_call(fn, args, &out);
	if (slow)
		printf("SLOW %s %lld\n", rc == REMO_OK ? "ok"
		       : remo_error_name(remo_last_error()),
		       (long long)(now_ms() - t0));
	else if (rc == REMO_OK && out.kind == REMO_STR)
		printf("WHOAMI %s\n", remo_str_data(out, NULL));
	else if (rc == REMO_OK)
		printf("SESSIONS %lld\n", (long long)out.as.i);
	remo_value_release(args);
	remo_value_release(fn);
	remo_value_release(out);
	fflush(stdout);
	return rc == REMO_OK || slow ? 0 : 1;
}

static int64_t twice(int64_t x)
{
	return 2 * x;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: helper_client URL CALLS [--lease MS] "
		                "[--hold]\n");
		return 2;
	}
	const char *url = argv[1];
	long calls = atol(argv[2]);
	bool hold = false, sessions = false, whoami = false;
	int slow_ms = -1;
	static char secret[REMO_MAX_SECRET];
	remo_session_opts opts = {0};
	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--hold") == 0)
			hold = true;
		else if (strcmp(argv[i], "--lease") == 0 && i + 1 < argc)
			opts.lease_ms = atoi(argv[++i]);
		else if (strcmp(argv[i], "--slow") == 0 && i + 1 < argc)
			slow_ms = atoi(argv[++i]);
		else if (strcmp(argv[i], "--sessions") == 0)
			sessions = true;
		else if (strcmp(argv[i], "--whoami") == 0)
			whoami = true;
		else if (strcmp(argv[i], "--secret-file") == 0 && i + 1 < argc) {
			if (remo_secret_load(argv[++i], secret, sizeof secret,
			                     &opts.secret_len) != REMO_OK) {
				fprintf(stderr, "helper_client: %s\n",
				        remo_error_message(remo_last_error()));
				return 1;
			}
			opts.secret = secret;
		}
	}
	remo_session *s;
	if (remo_connect(url, 10000, NULL, &opts, &s) != REMO_OK) {
		fprintf(stderr, "helper_client: connect: %s\n",
		        remo_error_message(remo_last_error()));
		return 1;
	}
	if (slow_ms >= 0 || sessions || whoami) {
		int rc = slow_ms >= 0
		         ? one_call(s, "slow", remo_tuple_of(1, remo_int(slow_ms)),
		                    true)
		         : one_call(s, whoami ? "whoami" : "sessions", remo_nil(),
		                    false);
		remo_session_free(s);
		return rc;
	}
	if (hold) {
		printf("READY\n");
		fflush(stdout);
		for (;;)
			pause();
	}
	remo_value fn = remo_function("twice", "q(x:q)", (void (*)(void))twice,
	                              NULL);
	remo_value cb;
	if (remo_lookup(s, "call_back", &cb) != REMO_OK) {
		fprintf(stderr, "helper_client: lookup: %s: %s\n",
		        remo_error_name(remo_last_error()),
		        remo_error_message(remo_last_error()));
		return 1;
	}
	int64_t base = (int64_t)getpid() * 100000;
	for (long i = 0; i < calls; i++) {
		remo_value args = remo_tuple_of(2, remo_value_retain(fn),
		                                remo_int(base + i)), out;
		int rc = remo_call(cb, args, &out);
		remo_value_release(args);
		if (rc != REMO_OK || out.kind != REMO_INT ||
		    out.as.i != 2 * (base + i) + 1) {
			fprintf(stderr, "helper_client %d: call %ld: %s\n",
			        (int)getpid(), i,
			        rc != REMO_OK ? remo_error_message(remo_last_error())
			                      : "a wrong reply");
			return 1;
		}
	}
	remo_value_release(cb);
	remo_value_release(fn);
	remo_session_free(s);
	printf("OK %ld\n", calls);
	return 0;
}
