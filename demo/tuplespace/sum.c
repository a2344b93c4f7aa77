/*
 * sum.c -- lindypy's worker pool on a remo tuple space: the master puts
 * ("add", a, b, c, d) tuples into the space, worker processes take them
 * and put back ("sum", a + b + c + d), and the master adds the sums up.
 *
 *   ts-sum URL [WORKERS [TUPLES]]   the master: starts the workers with
 *                                   ts_eval (this program, exec://)
 *   ts-sum --worker                 a worker (ts_worker_main; ends after
 *                                   500 ms idle)
 */
#include "ts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A worker (lindypy's): takes ("add", ?int, ?int, ?int, ?int) tuples
 * and puts back ("sum", a + b + c + d) until none comes for 500 ms. */
static int worker(ts *t, const char *name, void *arg)
{
	(void)arg;
	remo_value i = ts_any(t, "int");
	remo_value p = remo_tuple_of(5, remo_str("add"), remo_value_retain(i),
	                             remo_value_retain(i), remo_value_retain(i),
	                             remo_value_retain(i));
	int rc, done = 0;
	remo_value got;
	while ((rc = ts_in(t, p, 500, &got)) == REMO_OK) {
		int64_t s = 0;
		for (size_t k = 1; k < 5; k++)
			s += remo_tuple_get(got, k).as.i;
		remo_value_release(got);
		remo_value r = remo_tuple_of(2, remo_str("sum"), remo_int(s));
		rc = ts_out(t, r);
		remo_value_release(r);
		if (rc != REMO_OK)
			break;
		done++;
	}
	remo_value_release(p);
	fprintf(stderr, "%s: %d tuples\n", name, done);
	return rc == REMO_ETIMEDOUT ? REMO_OK : rc;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--worker") == 0)
		return ts_worker_main(worker, NULL);
	if (argc < 2) {
		fprintf(stderr, "usage: ts-sum URL [WORKERS [TUPLES]]\n");
		return 2;
	}
	const char *url = argv[1];
	int workers = argc > 2 ? atoi(argv[2]) : 4;
	int n = argc > 3 ? atoi(argv[3]) : 100;
	int rc;
	ts *t = ts_connect(url, NULL, &rc);
	if (t == NULL) {
		fprintf(stderr, "ts-sum: %s\n", remo_error_message(remo_last_error()));
		return 1;
	}
	int64_t want = 0;
	for (int k = 0; k < n; k++) {
		remo_value a = remo_tuple_of(5, remo_str("add"), remo_int(k),
		                             remo_int(k + 1), remo_int(k + 2),
		                             remo_int(k + 3));
		want += 4 * k + 6;
		ts_out(t, a);
		remo_value_release(a);
	}
	/* the workers: this program again, started over exec:// */
	char self[4096], cmd[4200];
	ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
	self[len > 0 ? len : 0] = '\0';
	snprintf(cmd, sizeof cmd, "%s --worker", self);
	ts_worker **pool = calloc((size_t)workers, sizeof *pool);
	for (int w = 0; w < workers; w++) {
		char name[32];
		snprintf(name, sizeof name, "worker %d", w + 1);
		if (ts_eval(t, name, cmd, &pool[w]) != REMO_OK) {
			fprintf(stderr, "ts-sum: %s: %s\n", name,
			        remo_error_message(remo_last_error()));
			return 1;
		}
	}
	remo_value p = remo_tuple_of(2, remo_str("sum"),
	                             remo_value_retain(ts_any(t, "int")));
	int64_t total = 0;
	for (int k = 0; k < n; k++) {
		remo_value got;
		if ((rc = ts_in(t, p, 10000, &got)) != REMO_OK) {
			fprintf(stderr, "ts-sum: %s\n",
			        remo_error_message(remo_last_error()));
			return 1;
		}
		total += remo_tuple_get(got, 1).as.i;
		remo_value_release(got);
		if ((k + 1) % 25 == 0 || k + 1 == n)
			fprintf(stderr, "ts-sum: %d of %d sums\n", k + 1, n);
	}
	for (int w = 0; w < workers; w++)
		ts_eval_free(pool[w]);
	free(pool);
	printf("sum of %d tuples by %d workers: %lld (expected %lld)\n", n,
	       workers, (long long)total, (long long)want);
	remo_value_release(p);
	ts_close(t);
	return total == want ? 0 : 1;
}
