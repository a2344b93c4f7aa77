/*
 * bench_pod.c -- the persistent dict (demo/pod) against raw SQLite in the
 * same run (bench.h has the method).  Two remo-pod processes serve
 * unix:// in a temporary directory, one with --sync-at 1000 and one with
 * --sync-at 1; under make bench every process runs on CPU 0.  Keys cycle
 * over 1,000 names, values are ints.
 *
 *   pod.set.sync_at_1000  pod[k] = i from one client, against a raw
 *                         SQLite upsert of the same encoded row in a
 *                         transaction of 1,000 (WAL, synchronous=NORMAL,
 *                         what a sync does): ratio = set_ns / raw_ns
 *   pod.set.sync_at_1     the same with a sync per set, against one
 *                         upsert per transaction
 *   pod.set.clients_4.sync_at_1000, .sync_at_1
 *                         4 clients setting at once, the total rate:
 *                         ratio = 4-client sets per second / 1-client
 *                         sets per second (same sync_at)
 *   pod.nested_append     pod["n"]["l"].append(i) through two proxies
 *                         (the list kept short: a pop after each), against
 *                         a top-level set: ratio = append_ns / set_ns
 */
#include "bench.h"

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../demo/pod/pod.h"
#include "../tests/procs.h"

static char dir[64];

__attribute__((noreturn)) static void die(const char *what)
{
	fprintf(stderr, "bench_pod: %s: %s\n", what,
	        remo_error_message(remo_last_error()));
	exit(1);
}

static pid_t server(const char *name, const char *sync_at, char *url,
                    size_t cap)
{
	char path[PATH_MAX + 64], db[128], listen[128], err[128];
	proc_build_path("demo/pod/remo-pod", path, sizeof path);
	snprintf(db, sizeof db, "%s/%s.db", dir, name);
	snprintf(listen, sizeof listen, "unix://%s/%s.sock", dir, name);
	snprintf(err, sizeof err, "%s/%s.err", dir, name);
	char *argv[] = {path, db, listen, "--sync-at", (char *)sync_at, NULL};
	pid_t pid = proc_start(argv, err, url, cap);
	if (pid < 0) {
		fprintf(stderr, "bench_pod: remo-pod: %s\n", url);
		exit(1);
	}
	return pid;
}

static remo_value keys[1000];

struct ctx {
	pod *p;
	uint64_t i;
	remo_value list; /* nested_append: pod["n"]["l"] */
};

static void op_set(void *c, uint64_t iters)
{
	struct ctx *x = c;
	for (uint64_t k = 0; k < iters; k++, x->i++)
		if (remo_setitem(pod_dict(x->p), keys[x->i % 1000],
		                 remo_int((int64_t)x->i)) != REMO_OK)
			die("set");
}

static void op_append(void *c, uint64_t iters)
{
	struct ctx *x = c;
	for (uint64_t k = 0; k < iters; k++, x->i++) {
		remo_value args = remo_tuple_of(1, remo_int((int64_t)x->i)), r;
		if (remo_call_method(x->list, "append", args, &r) != REMO_OK)
			die("append");
		remo_value_release(r);
		remo_value_release(args);
		if (x->i % 64 == 63) { /* keep it short */
			if (remo_call_method(x->list, "clear", remo_nil(), &r) !=
			    REMO_OK)
				die("clear");
			remo_value_release(r);
		}
	}
}

/* raw SQLite: the same table as remo-pod's, the same encoded rows */
struct raw {
	sqlite3 *db;
	sqlite3_stmt *put;
	uint64_t i;
	unsigned per_txn;
	remo_buf kb[1000];
};

static void raw_open(struct raw *r, const char *name, unsigned per_txn)
{
	char db[128];
	snprintf(db, sizeof db, "%s/%s.db", dir, name);
	memset(r, 0, sizeof *r);
	r->per_txn = per_txn;
	if (sqlite3_open(db, &r->db) != SQLITE_OK ||
	    sqlite3_exec(r->db, "PRAGMA journal_mode = WAL; PRAGMA synchronous"
	                 " = NORMAL; CREATE TABLE entries (ord INTEGER PRIMARY "
	                 "KEY, key BLOB NOT NULL UNIQUE, value BLOB NOT NULL)",
	                 NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(r->db, "INSERT INTO entries (key, value) VALUES "
	                       "(?1, ?2) ON CONFLICT (key) DO UPDATE SET value "
	                       "= ?2", -1, &r->put, NULL) != SQLITE_OK)
		die("sqlite");
	for (int k = 0; k < 1000; k++)
		remo_pack(keys[k], &r->kb[k]);
}

static void op_raw(void *c, uint64_t iters)
{
	struct raw *r = c;
	for (uint64_t k = 0; k < iters; k++, r->i++) {
		if (r->i % r->per_txn == 0)
			sqlite3_exec(r->db, "BEGIN", NULL, NULL, NULL);
		remo_buf vb = {0};
		remo_pack(remo_int((int64_t)r->i), &vb);
		remo_buf *kb = &r->kb[r->i % 1000];
		sqlite3_bind_blob(r->put, 1, kb->data, (int)kb->len,
		                  SQLITE_STATIC);
		sqlite3_bind_blob(r->put, 2, vb.data, (int)vb.len,
		                  SQLITE_TRANSIENT);
		if (sqlite3_step(r->put) != SQLITE_DONE)
			die("raw insert");
		sqlite3_reset(r->put);
		remo_buf_free(&vb);
		if (r->i % r->per_txn == r->per_txn - 1)
			sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
	}
}

static void raw_close(struct raw *r)
{
	sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
	sqlite3_finalize(r->put);
	sqlite3_close(r->db);
	for (int k = 0; k < 1000; k++)
		remo_buf_free(&r->kb[k]);
}

static pod *connect_or_die(const char *url)
{
	int rc;
	pod *p = pod_connect(url, NULL, &rc);
	if (p == NULL)
		die("pod_connect");
	return p;
}

enum { SETS_EACH = 5000 };

static void *setter(void *arg)
{
	struct ctx *x = arg;
	op_set(x, SETS_EACH);
	return NULL;
}

/* 4 clients (a thread and a session each) at once: the total rate,
 * against one client's in the same run */
static void clients_4(const char *name, const char *url, double one_ns)
{
	struct ctx many[4];
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		many[i] = (struct ctx){connect_or_die(url), (uint64_t)i * 250,
		                       remo_nil()};
	uint64_t t0 = bench_now_ns();
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, setter, &many[i]);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	double per_set = (double)(bench_now_ns() - t0) / (4 * SETS_EACH);
	bench_print(name, one_ns / per_set,
	            "sets_per_s=%.0f one_client_sets_per_s=%.0f", 1e9 / per_set,
	            1e9 / one_ns);
	for (int i = 0; i < 4; i++)
		pod_close(many[i].p);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	snprintf(dir, sizeof dir, "/tmp/remo-bench-pod-XXXXXX");
	if (mkdtemp(dir) == NULL)
		die("mkdtemp");
	for (int k = 0; k < 1000; k++) {
		char name[16];
		snprintf(name, sizeof name, "k%d", k);
		keys[k] = remo_str(name);
	}
	char url1000[320], url1[320];
	pid_t s1000 = server("s1000", "1000", url1000, sizeof url1000);
	pid_t s1 = server("s1", "1", url1, sizeof url1);

	struct ctx c = {connect_or_die(url1000), 0, remo_nil()};
	struct raw raw;
	raw_open(&raw, "raw1000", 1000);
	struct bench_ab r = bench_ab(op_set, &c, op_raw, &raw);
	bench_print("pod.set.sync_at_1000", r.a_ns / r.b_ns,
	            "set_ns=%.0f raw_sqlite_ns=%.0f sets_per_s=%.0f", r.a_ns,
	            r.b_ns, 1e9 / r.a_ns);
	double one_client_ns = r.a_ns;
	raw_close(&raw);

	struct ctx c1 = {connect_or_die(url1), 0, remo_nil()};
	raw_open(&raw, "raw1", 1);
	r = bench_ab(op_set, &c1, op_raw, &raw);
	bench_print("pod.set.sync_at_1", r.a_ns / r.b_ns,
	            "set_ns=%.0f raw_sqlite_ns=%.0f sets_per_s=%.0f", r.a_ns,
	            r.b_ns, 1e9 / r.a_ns);
	double one_client_sync1_ns = r.a_ns;
	raw_close(&raw);
	pod_close(c1.p);

	clients_4("pod.set.clients_4.sync_at_1000", url1000, one_client_ns);
	clients_4("pod.set.clients_4.sync_at_1", url1, one_client_sync1_ns);

	/* pod["n"] = {"l": []}; the list through two proxies */
	remo_value n = remo_dict(), nk = remo_str("n"), lk = remo_str("l"), nd;
	remo_dict_set_str(n, "l", remo_list());
	if (pod_set(c.p, nk, n) != REMO_OK || pod_get(c.p, nk, &nd) != REMO_OK ||
	    remo_getitem(nd, lk, &c.list) != REMO_OK)
		die("nested");
	struct ctx top = {c.p, 0, remo_nil()};
	r = bench_ab(op_append, &c, op_set, &top);
	bench_print("pod.nested_append", r.a_ns / r.b_ns,
	            "append_ns=%.0f set_ns=%.0f", r.a_ns, r.b_ns);
	remo_value_release(c.list);
	remo_value_release(nd);
	remo_value_release(n);
	remo_value_release(nk);
	remo_value_release(lk);
	pod_close(c.p);
	proc_stop(s1000, SIGTERM);
	proc_stop(s1, SIGTERM);
	for (int k = 0; k < 1000; k++)
		remo_value_release(keys[k]);
	proc_rmdir(dir);
	return 0;
}
