/*
 * crawl.c -- tastypy's crawler example on remo-pod: a tracker of URLs,
 * worker processes that try them, add the links they find, and mark
 * them done.  There is no network here: the "web" is a function (page
 * /n links to /2n and /2n+1 below a limit) and a fetch fails one time
 * in four, so some pages are tried more than once, up to the server's
 * --max-tries.
 *
 *   pod-crawl URL [WORKERS [PAGES]]   seeds "/1", starts the workers,
 *                                     prints what the tracker says
 *   pod-crawl --worker URL PAGES      a worker
 */
#include "pod.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* A fetch of page n: its links, or false one time in four. */
static bool fetch(long n, long pages, unsigned *seed, long links[2],
                  int *nlinks)
{
	if (rand_r(seed) % 4 == 0)
		return false;
	*nlinks = 0;
	for (long c = 2 * n; c <= 2 * n + 1; c++)
		if (c <= pages)
			links[(*nlinks)++] = c;
	return true;
}

static int worker(const char *url, long pages)
{
	int rc;
	pod *p = pod_connect(url, NULL, &rc);
	if (p == NULL)
		return 1;
	unsigned seed = (unsigned)getpid();
	remo_value key, task;
	int done = 0, failed = 0;
	/* the tracker's try_keys loop: a key, its try counted */
	while ((rc = pod_try_key(p, &key, &task)) == REMO_OK) {
		long n = atol(remo_str_data(key, NULL) + 1), links[2];
		int nl = 0;
		if (fetch(n, pages, &seed, links, &nl)) {
			remo_value found = remo_list();
			for (int i = 0; i < nl; i++) {
				char u[32];
				snprintf(u, sizeof u, "/%ld", links[i]);
				remo_list_append(found, remo_str(u));
			}
			pod_call1(p, "add_many_if_absent", found, NULL);
			pod_call1(p, "mark_done", key, NULL);
			remo_value_release(found);
			done++;
		} else {
			failed++; /* not done: tried again, up to max_tries */
		}
		remo_value_release(key);
		remo_value_release(task);
	}
	fprintf(stderr, "crawler %d: %d pages, %d failed fetches\n",
	        (int)getpid(), done, failed);
	pod_close(p);
	return rc == REMO_ENOTFOUND ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--worker") == 0)
		return worker(argv[2], atol(argv[3]));
	if (argc < 2) {
		fprintf(stderr, "usage: pod-crawl URL [WORKERS [PAGES]]\n");
		return 2;
	}
	int workers = argc > 2 ? atoi(argv[2]) : 4;
	const char *pages = argc > 3 ? argv[3] : "100";
	int rc;
	pod *p = pod_connect(argv[1], NULL, &rc);
	if (p == NULL) {
		fprintf(stderr, "pod-crawl: %s\n",
		        remo_error_message(remo_last_error()));
		return 1;
	}
	remo_value seed = remo_str("/1");
	pod_call1(p, "add_if_absent", seed, NULL);
	remo_value_release(seed);
	/* a worker finds nothing to try while the pages that would add
	 * more are in others' hands: rounds until none is left to try */
	for (int round = 0; round < 20; round++) {
		size_t n;
		for (int w = 0; w < workers; w++)
			if (fork() == 0) {
				execl(argv[0], argv[0], "--worker", argv[1], pages,
				      (char *)NULL);
				_exit(127);
			}
		while (wait(NULL) > 0)
			;
		remo_value d, t, a;
		n = 0;
		pod_call(p, "num_done", remo_nil(), &d);
		pod_call(p, "num_tried", remo_nil(), &t);
		remo_len(pod_dict(p), &n);
		fprintf(stderr, "pod-crawl: round %d: %lld of %zu pages done, "
		        "%lld tried\n", round + 1, (long long)d.as.i, n,
		        (long long)t.as.i);
		/* what is left that may still be tried? */
		pod_call(p, "todo_keys", remo_nil(), &a);
		remo_value left;
		remo_force(a, &left);
		remo_value_release(a);
		size_t tryable = 0;
		for (size_t i = 0; i < remo_list_len(left); i++) {
			remo_value st;
			if (pod_call1(p, "should_try", remo_list_get(left, i),
			              &st) == REMO_OK)
				tryable += st.as.b;
		}
		remo_value_release(left);
		if (tryable == 0)
			break;
	}
	remo_value d;
	size_t n = 0;
	pod_call(p, "num_done", remo_nil(), &d);
	remo_len(pod_dict(p), &n);
	printf("crawled %lld of %zu pages found (the rest failed "
	       "--max-tries times)\n", (long long)d.as.i, n);
	pod_call(p, "sync", remo_nil(), NULL);
	pod_close(p);
	return 0;
}
