/*
 * square.c -- tastypy's multiprocess example on remo-pod: five worker
 * processes square 25 numbers through a shared progress tracker.
 *
 *   pod-square URL [WORKERS [NUMBERS]]   adds the numbers as keys, starts
 *                                        the workers, checks the squares
 *   pod-square --worker URL              a worker
 *
 * A worker takes a key with pod_try_key, writes entry["square"] through
 * the entry's proxy (a nested change: saved with no .set), marks it done
 * and releases the task.  The keys are ints, and stay ints on disk.
 */
#include "pod.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int worker(const char *url)
{
	int rc;
	pod *p = pod_connect(url, NULL, &rc);
	if (p == NULL)
		return 1;
	remo_value key, task;
	int done = 0;
	while ((rc = pod_try_key(p, &key, &task)) == REMO_OK) {
		remo_value entry, sq = remo_str("square");
		rc = pod_get(p, key, &entry);
		if (rc == REMO_OK)
			rc = remo_setitem(entry, sq, remo_int(key.as.i * key.as.i));
		if (rc == REMO_OK)
			rc = pod_call1(p, "mark_done", key, NULL);
		remo_value_release(sq);
		remo_value_release(entry);
		remo_value_release(key);
		remo_value_release(task); /* the key is no longer ours */
		if (rc != REMO_OK)
			break;
		done++;
	}
	fprintf(stderr, "worker %d: squared %d\n", (int)getpid(), done);
	pod_close(p);
	return rc == REMO_ENOTFOUND ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--worker") == 0)
		return worker(argv[2]);
	if (argc < 2) {
		fprintf(stderr, "usage: pod-square URL [WORKERS [NUMBERS]]\n");
		return 2;
	}
	int workers = argc > 2 ? atoi(argv[2]) : 5;
	int n = argc > 3 ? atoi(argv[3]) : 25;
	int rc;
	pod *p = pod_connect(argv[1], NULL, &rc);
	if (p == NULL) {
		fprintf(stderr, "pod-square: %s\n",
		        remo_error_message(remo_last_error()));
		return 1;
	}
	remo_value keys = remo_list();
	for (int i = 0; i < n; i++)
		remo_list_append(keys, remo_int(i));
	rc = pod_call1(p, "add_many_if_absent", keys, NULL);
	remo_value_release(keys);
	if (rc != REMO_OK) {
		fprintf(stderr, "pod-square: %s\n",
		        remo_error_message(remo_last_error()));
		return 1;
	}
	for (int w = 0; w < workers; w++)
		if (fork() == 0) {
			execl(argv[0], argv[0], "--worker", argv[1], (char *)NULL);
			_exit(127);
		}
	int failed = 0, st;
	while (wait(&st) > 0)
		failed += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	int right = 0;
	for (int i = 0; i < n; i++) {
		remo_value k = remo_int(i), entry, sq, s = remo_str("square");
		if (pod_get(p, k, &entry) == REMO_OK &&
		    remo_getitem(entry, s, &sq) == REMO_OK) {
			right += sq.kind == REMO_INT && sq.as.i == (int64_t)i * i;
			remo_value_release(sq);
		}
		remo_value_release(s);
		remo_value_release(entry);
	}
	remo_value frac;
	pod_call(p, "fraction_done", remo_nil(), &frac);
	printf("%d of %d squares right, by %d workers; fraction done %.2f\n",
	       right, n, workers, frac.as.d);
	pod_call(p, "sync", remo_nil(), NULL);
	pod_close(p);
	return right == n && failed == 0 ? 0 : 1;
}
