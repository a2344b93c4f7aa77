/*
 * test_pod.c -- demo/pod against a real remo-pod server process and its
 * SQLite file: nested changes through proxies from two clients saved
 * and read back after a restart; sync_at, hold, unhold, sync_key,
 * mark_dirty, revert; every acknowledged write of four clients on disk
 * after a SIGTERM in the middle; what was synced surviving SIGKILL; the
 * tracker with workers that succeed, give up and die; files that are
 * not pods refused and left alone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "../demo/pod/pod.h"
#include "procs.h"

struct fx {
	pid_t pid;
	char dir[64];
	char db[128];
	char url[320];
	const char *sync_at, *max_tries;
};

static const char *server_path(void)
{
	static char path[4096];
	const char *b = getenv("top_builddir");
	snprintf(path, sizeof path, "%s/demo/pod/remo-pod", b ? b : ".");
	return path;
}

/* Starts remo-pod on DIR/pod.db; -1 with what it said in out. */
static pid_t start(struct fx *f, const char *db, char *out, size_t cap)
{
	char url[128], err[128];
	snprintf(url, sizeof url, "unix://%s/pod.sock", f->dir);
	snprintf(err, sizeof err, "%s/err", f->dir);
	char *argv[] = {(char *)server_path(), (char *)db, url, "--sync-at",
	                (char *)f->sync_at, "--max-tries",
	                (char *)f->max_tries, NULL};
	return proc_start(argv, err, out, cap);
}

static void restart(struct fx *f, int sig)
{
	if (f->pid > 0) {
		int st = proc_stop(f->pid, sig);
		if (sig != SIGKILL && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
			char err[128];
			snprintf(err, sizeof err, "%s/err", f->dir);
			proc_show_err("remo-pod", st, err);
			fail_msg("remo-pod did not stop cleanly: %d", st);
		}
	}
	char line[1024];
	f->pid = start(f, f->db, line, sizeof line);
	if (f->pid < 0)
		fail_msg("remo-pod did not start: '%s'", line);
	snprintf(f->url, sizeof f->url, "%.300s", line);
}

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/remo-pod-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof f->db, "%s/pod.db", f->dir);
	f->sync_at = "1000";
	f->max_tries = "0";
	f->pid = -1;
	restart(f, 0);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	int st = f->pid > 0 ? proc_stop(f->pid, SIGTERM) : 0;
	proc_rmdir(f->dir);
	free(f);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	return 0;
}

static pod *client(struct fx *f)
{
	int rc;
	pod *p = pod_connect(f->url, NULL, &rc);
	if (p == NULL)
		fail_msg("pod_connect: %s", remo_error_message(remo_last_error()));
	return p;
}

/* p[a][b]..., each step a getitem through proxies (new). */
static remo_value at(pod *p, const char *path)
{
	remo_value v = remo_value_retain(pod_dict(p));
	char buf[256];
	snprintf(buf, sizeof buf, "%s", path);
	for (char *k = strtok(buf, "/"); k != NULL; k = strtok(NULL, "/")) {
		remo_value key = remo_str(k), next;
		int rc = remo_getitem(v, key, &next);
		remo_value_release(key);
		remo_value_release(v);
		if (rc != REMO_OK)
			return remo_nil();
		v = next;
	}
	return v;
}

/* the container at path, [key] = x (stolen) */
static void set_at(pod *p, const char *path, const char *key, remo_value x)
{
	remo_value c = at(p, path), k = remo_str(key);
	assert_int_equal(remo_setitem(c, k, x), REMO_OK);
	remo_value_release(x);
	remo_value_release(k);
	remo_value_release(c);
}

static void append_at(pod *p, const char *path, remo_value x)
{
	remo_value l = at(p, path), r;
	remo_value args = remo_tuple_of(1, x);
	assert_int_equal(remo_call_method(l, "append", args, &r), REMO_OK);
	remo_value_release(r);
	remo_value_release(args);
	remo_value_release(l);
}

static int64_t len_at(pod *p, const char *path)
{
	remo_value c = at(p, path);
	size_t n = 0;
	int rc = remo_len(c, &n);
	remo_value_release(c);
	return rc == REMO_OK ? (int64_t)n : -1;
}

static int64_t int_at(pod *p, const char *path)
{
	remo_value v = at(p, path);
	int64_t i = v.kind == REMO_INT ? v.as.i : -999;
	remo_value_release(v);
	return i;
}

/* ---- nested changes ------------------------------------------------------- */

static void test_nested_changes_from_two_clients_persist(void **state)
{
	struct fx *f = *state;
	pod *a = client(f), *b = client(f);
	remo_value foo = remo_dict(), k = remo_str("foo");
	remo_dict_set_str(foo, "bar", remo_int(0));
	remo_dict_set_str(foo, "baz", remo_list());
	assert_int_equal(pod_set(a, k, foo), REMO_OK);
	/* b, through proxies: no .set */
	set_at(b, "foo", "bar", remo_int(1));
	append_at(b, "foo/baz", remo_str("fizz"));
	/* a, deeper */
	remo_value deep = remo_dict();
	remo_dict_set_str(deep, "x", remo_list());
	set_at(a, "foo", "deep", remo_by_value(deep));
	append_at(a, "foo/deep/x", remo_int(2));
	/* an int key stays an int */
	remo_value ik = remo_int(42), answer = remo_str("answer");
	assert_int_equal(pod_set(a, ik, answer), REMO_OK);
	/* seen by the other at once */
	assert_int_equal(len_at(a, "foo/baz"), 1);
	assert_int_equal(len_at(b, "foo/deep/x"), 1);
	pod_close(a);
	pod_close(b);

	restart(f, SIGTERM); /* the last sync */
	pod *c = client(f);
	assert_int_equal(int_at(c, "foo/bar"), 1);
	assert_int_equal(len_at(c, "foo/baz"), 1);
	assert_int_equal(len_at(c, "foo/deep/x"), 1);
	remo_value l = at(c, "foo/baz"), first, zero = remo_int(0);
	assert_int_equal(remo_getitem(l, zero, &first), REMO_OK);
	assert_int_equal(first.kind, REMO_STR);
	assert_string_equal(remo_str_data(first, NULL), "fizz");
	remo_value got;
	assert_int_equal(pod_get(c, ik, &got), REMO_OK);
	assert_true(remo_equal(got, answer));
	remo_value_release(got);
	remo_value sk = remo_str("42");
	assert_int_equal(pod_get(c, sk, &got), REMO_ERAISED);
	/* insertion order: foo, then 42 */
	remo_value all;
	assert_int_equal(remo_force(pod_dict(c), &all), REMO_OK);
	size_t pos = 0;
	remo_value key, val;
	assert_true(remo_dict_next(all, &pos, &key, &val));
	assert_true(remo_equal(key, k));
	assert_true(remo_dict_next(all, &pos, &key, &val));
	assert_true(remo_equal(key, ik));
	remo_value_release(all);
	remo_value_release(got);
	remo_value_release(sk);
	remo_value_release(first);
	remo_value_release(zero);
	remo_value_release(l);
	remo_value_release(ik);
	remo_value_release(answer);
	remo_value_release(deep);
	remo_value_release(foo);
	remo_value_release(k);
	pod_close(c);
}

/* ---- synchronisation -------------------------------------------------------- */

static int64_t ndirty(pod *p)
{
	remo_value l;
	assert_int_equal(pod_call(p, "dirty", remo_nil(), &l), REMO_OK);
	size_t n = 0;
	remo_len(l, &n);
	remo_value_release(l);
	return (int64_t)n;
}

/* waits (up to 10 s: not a timing assertion) for no key to be dirty */
static bool synced(pod *p)
{
	for (int i = 0; i < 1000 && ndirty(p) > 0; i++)
		usleep(10000);
	return ndirty(p) == 0;
}

static void put(pod *p, const char *k, int64_t v)
{
	remo_value key = remo_str(k), x = remo_int(v);
	assert_int_equal(pod_set(p, key, x), REMO_OK);
	remo_value_release(key);
}

static void test_sync_at_hold_unhold_sync_key_revert(void **state)
{
	struct fx *f = *state;
	f->sync_at = "3";
	restart(f, SIGTERM);
	pod *p = client(f);
	put(p, "a", 1);
	put(p, "b", 2);
	assert_int_equal(ndirty(p), 2);
	put(p, "c", 3); /* the third change: a sync */
	assert_true(synced(p));

	assert_int_equal(pod_call(p, "hold", remo_nil(), NULL), REMO_OK);
	put(p, "d", 4);
	put(p, "e", 5);
	put(p, "f", 6);
	remo_value kd = remo_str("d");
	assert_int_equal(pod_call1(p, "sync_key", kd, NULL), REMO_OK);
	assert_int_equal(ndirty(p), 2); /* held: e and f wait */
	assert_int_equal(pod_call(p, "unhold", remo_nil(), NULL), REMO_OK);
	put(p, "g", 7); /* three changes again: a sync */
	assert_true(synced(p));

	/* mark_dirty: a key changed behind the observer's back */
	assert_int_equal(pod_call1(p, "mark_dirty", kd, NULL), REMO_OK);
	assert_int_equal(ndirty(p), 1);
	assert_int_equal(pod_call(p, "sync", remo_nil(), NULL), REMO_OK);
	assert_int_equal(ndirty(p), 0);

	/* revert drops what was not synced */
	remo_value nk = remo_str("n"), n = remo_dict(), old;
	remo_dict_set_str(n, "x", remo_int(1));
	assert_int_equal(pod_set(p, nk, n), REMO_OK);
	assert_int_equal(pod_call(p, "sync", remo_nil(), NULL), REMO_OK);
	assert_int_equal(pod_get(p, nk, &old), REMO_OK); /* held across it */
	put(p, "h", 8);
	put(p, "a", 100);
	assert_int_equal(pod_call(p, "revert", remo_nil(), NULL), REMO_OK);
	assert_int_equal(int_at(p, "a"), 1);
	assert_int_equal(int_at(p, "h"), -999);
	assert_int_equal(ndirty(p), 0);
	size_t len;
	assert_int_equal(remo_len(pod_dict(p), &len), REMO_OK);
	assert_int_equal(len, 8);
	/* a write through a proxy taken before the revert is refused by
	 * name (its dict is no longer the pod's), not lost in silence */
	remo_value xk = remo_str("x");
	assert_int_equal(remo_setitem(old, xk, remo_int(2)), REMO_ERAISED);
	assert_string_equal(remo_error_name(remo_last_error()),
	                    "PermissionError");
	set_at(p, "n", "x", remo_int(3)); /* the pod's own, read again */
	assert_int_equal(int_at(p, "n/x"), 3);
	remo_value_release(xk);
	remo_value_release(old);
	remo_value_release(n);
	remo_value_release(nk);
	pod_close(p);
	remo_value_release(kd);
}

/* ---- stops and crashes ----------------------------------------------------------- */

struct writer {
	struct fx *f;
	int id;
	int acked; /* keys 0..acked-1 were acknowledged */
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	pod *p = client(w->f);
	for (int i = 0; i < 100000; i++) {
		char k[32];
		snprintf(k, sizeof k, "w%d-%d", w->id, i);
		remo_value key = remo_str(k), x = remo_int(i);
		int rc = pod_set(p, key, x);
		remo_value_release(key);
		if (rc != REMO_OK)
			break;
		__atomic_store_n(&w->acked, i + 1, __ATOMIC_RELAXED);
	}
	pod_close(p);
	return NULL;
}

/* Four clients write as fast as they can; SIGTERM in the middle: every
 * write that was acknowledged is in the file after the restart. */
static void test_every_acknowledged_write_survives_sigterm(void **state)
{
	struct fx *f = *state;
	struct writer w[4];
	pthread_t th[4];
	for (int i = 0; i < 4; i++) {
		w[i] = (struct writer){f, i, 0};
		pthread_create(&th[i], NULL, writer_main, &w[i]);
	}
	for (int i = 0; i < 4; i++) /* some of each, at least */
		while (__atomic_load_n(&w[i].acked, __ATOMIC_RELAXED) < 200)
			usleep(1000);
	int st = proc_stop(f->pid, SIGTERM);
	f->pid = -1;
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	restart(f, 0);
	pod *p = client(f);
	int total = 0;
	for (int i = 0; i < 4; i++) {
		for (int j = 0; j < w[i].acked; j++) {
			char k[32];
			snprintf(k, sizeof k, "w%d-%d", i, j);
			remo_value key = remo_str(k), v;
			int rc = pod_get(p, key, &v);
			remo_value_release(key);
			if (rc != REMO_OK)
				fail_msg("%s was acknowledged and is lost", k);
		}
		total += w[i].acked;
	}
	fprintf(stderr, "%d acknowledged writes, all in the file\n", total);
	pod_close(p);
}

static void test_what_was_synced_survives_sigkill(void **state)
{
	struct fx *f = *state;
	pod *p = client(f);
	put(p, "kept", 1);
	assert_int_equal(pod_call(p, "sync", remo_nil(), NULL), REMO_OK);
	put(p, "unsynced", 2); /* sync_at 1000: still in memory only */
	pod_close(p);
	restart(f, SIGKILL);
	p = client(f);
	assert_int_equal(int_at(p, "kept"), 1);
	assert_int_equal(int_at(p, "unsynced"), -999);
	pod_close(p);
}

/* The server runs with a 256 KiB file size limit (a full disk): a sync
 * that does not fit fails with IOError and rolls back; what was synced
 * before is intact, and the key stays dirty. */
static void test_a_full_disk_is_a_named_error_and_loses_nothing(void **state)
{
	struct fx *f = *state;
	struct rlimit old, small;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	small = old;
	small.rlim_cur = 256 * 1024;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	restart(f, SIGTERM); /* the new server has the limit */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	pod *p = client(f);
	put(p, "small", 1);
	assert_int_equal(pod_call(p, "sync", remo_nil(), NULL), REMO_OK);
	static char blob[1 << 20];
	memset(blob, 'x', sizeof blob);
	remo_value big = remo_bytes(blob, sizeof blob), k = remo_str("big");
	assert_int_equal(pod_set(p, k, big), REMO_OK);
	assert_int_equal(pod_call(p, "sync", remo_nil(), NULL), REMO_ERAISED);
	assert_string_equal(remo_error_name(remo_last_error()), "IOError");
	assert_int_equal(ndirty(p), 1); /* still there to write */
	pod_close(p);
	remo_value_release(big);
	remo_value_release(k);
	restart(f, SIGKILL); /* without the limit */
	p = client(f);
	assert_int_equal(int_at(p, "small"), 1);
	pod_close(p);
}

/* ---- the tracker ------------------------------------------------------------------- */

/* --pod-worker URL MODE: "ok" squares what it is handed (appending its
 * pid to the entry's "by" list, then mark_done); "die" takes one key and
 * is SIGKILLed holding it (its session ends: the key goes back). */
static int worker_main(const char *url, const char *mode)
{
	int rc;
	pod *p = pod_connect(url, NULL, &rc);
	if (p == NULL)
		return 1;
	remo_value key, task;
	while ((rc = pod_try_key(p, &key, &task)) == REMO_OK) {
		if (strcmp(mode, "die") == 0)
			raise(SIGKILL); /* holding the key */
		remo_value entry, by = remo_str("by"), list, r;
		if (pod_get(p, key, &entry) == REMO_OK &&
		    remo_getitem(entry, by, &list) == REMO_OK) {
			remo_value args = remo_tuple_of(1, remo_int(getpid()));
			remo_call_method(list, "append", args, &r);
			remo_value_release(r);
			remo_value_release(args);
			remo_value_release(list);
			pod_call1(p, "mark_done", key, NULL);
		}
		remo_value_release(entry);
		remo_value_release(by);
		remo_value_release(key);
		remo_value_release(task);
	}
	pod_close(p);
	return rc == REMO_ENOTFOUND ? 0 : 1;
}

static pid_t run_worker(struct fx *f, const char *mode)
{
	pid_t pid = fork();
	if (pid == 0) {
		execl(proc_self(), proc_self(), "--pod-worker", f->url, mode,
		      (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* until the server holds no key for a worker (a session's end, or a
 * Task's release, reaches it after the call that caused it returned) */
static void wait_none_in_flight(pod *p)
{
	remo_value v;
	do {
		assert_int_equal(pod_call(p, "in_flight", remo_nil(), &v),
		                 REMO_OK);
		usleep(v.as.i > 0 ? 10000 : 0);
	} while (v.as.i > 0);
}

static void test_tracker_workers_succeed_give_up_and_die(void **state)
{
	struct fx *f = *state;
	f->max_tries = "3";
	restart(f, SIGTERM);
	pod *p = client(f);
	enum { N = 20 };
	for (int i = 0; i < N; i++) {
		remo_value k = remo_int(i);
		assert_int_equal(pod_call1(p, "add", k, NULL), REMO_OK);
		remo_value entry, by = remo_str("by"), l = remo_list();
		assert_int_equal(pod_get(p, k, &entry), REMO_OK);
		remo_value lv = remo_by_value(l);
		assert_int_equal(remo_setitem(entry, by, lv), REMO_OK);
		remo_value_release(lv);
		remo_value_release(l);
		remo_value_release(by);
		remo_value_release(entry);
	}
	remo_value k0 = remo_int(0), v;
	assert_int_equal(pod_call1(p, "add", k0, NULL), REMO_ERAISED);
	assert_string_equal(remo_error_name(remo_last_error()), "KeyError");
	/* one dies holding key 0: it goes back when its session ends */
	int st;
	pid_t dead = run_worker(f, "die");
	waitpid(dead, &st, 0);
	wait_none_in_flight(p);
	/* one gives up: gets key 0 again, releases it without mark_done */
	remo_value key, task;
	assert_int_equal(pod_try_key(p, &key, &task), REMO_OK);
	assert_true(remo_equal(key, k0));
	remo_value_release(task); /* a release travels on its own */
	remo_value_release(key);
	wait_none_in_flight(p);
	/* three finish the rest, key 0 on its third try */
	pid_t w[3];
	for (int i = 0; i < 3; i++)
		w[i] = run_worker(f, "ok");
	for (int i = 0; i < 3; i++) {
		waitpid(w[i], &st, 0);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	assert_int_equal(pod_call(p, "num_done", remo_nil(), &v), REMO_OK);
	assert_int_equal(v.as.i, N);
	for (int i = 0; i < N; i++) {
		remo_value k = remo_int(i), t;
		assert_int_equal(pod_call1(p, "tries", k, &t), REMO_OK);
		assert_int_equal(t.as.i, i == 0 ? 3 : 1);
		char path[32];
		snprintf(path, sizeof path, "%d", i);
		remo_value entry, by = remo_str("by");
		assert_int_equal(pod_get(p, k, &entry), REMO_OK);
		size_t n = 0;
		remo_value l;
		assert_int_equal(remo_getitem(entry, by, &l), REMO_OK);
		assert_int_equal(remo_len(l, &n), REMO_OK);
		assert_int_equal(n, 1); /* done once, by one worker */
		remo_value_release(l);
		remo_value_release(by);
		remo_value_release(entry);
	}
	assert_int_equal(pod_call(p, "fraction_done", remo_nil(), &v), REMO_OK);
	assert_true(v.as.d == 1.0);
	remo_value_release(k0);
	pod_close(p);
}

/* Bad values are refused by name, and what the pod holds is intact:
 * an unhashable key, a value nested past remo's depth. */
static void test_bad_input_is_refused_by_name(void **state)
{
	struct fx *f = *state;
	pod *p = client(f);
	put(p, "kept", 1);
	remo_value lk = remo_list(), v = remo_int(1);
	assert_int_equal(pod_set(p, lk, v), REMO_ERAISED);
	assert_string_equal(remo_error_name(remo_last_error()), "TypeError");
	remo_value deep = remo_list();
	for (int i = 0; i < REMO_MAX_DEPTH + 5; i++) {
		remo_value outer = remo_list();
		remo_list_append(outer, deep);
		deep = outer;
	}
	remo_value k = remo_str("deep");
	assert_int_not_equal(pod_set(p, k, deep), REMO_OK);
	const char *name = remo_error_name(remo_last_error());
	assert_string_equal(name, "RecursionError");
	size_t n;
	assert_int_equal(remo_len(pod_dict(p), &n), REMO_OK);
	assert_int_equal(n, 1);
	assert_int_equal(int_at(p, "kept"), 1);
	remo_value_release(k);
	remo_value_release(deep);
	remo_value_release(lk);
	pod_close(p);
}

/* ---- bad files --------------------------------------------------------------------- */

static size_t slurp(const char *path, char *buf, size_t cap)
{
	FILE *fp = fopen(path, "rb");
	size_t n = fp ? fread(buf, 1, cap, fp) : 0;
	if (fp)
		fclose(fp);
	return n;
}

static void refused(struct fx *f, const char *db, const char *why)
{
	static char before[65536], after[65536];
	char out[1024];
	size_t n = slurp(db, before, sizeof before);
	assert_true(start(f, db, out, sizeof out) < 0);
	if (strstr(out, why) == NULL)
		fail_msg("expected %s, got '%s'", why, out);
	assert_int_equal(slurp(db, after, sizeof after), n);
	assert_memory_equal(before, after, n);
}

static void test_files_that_are_not_pods_are_refused_and_kept(void **state)
{
	struct fx *f = *state;
	char db[128], cmd[320];
	snprintf(db, sizeof db, "%s/other.db", f->dir);
	FILE *fp = fopen(db, "w");
	for (int i = 0; i < 200; i++)
		fputs("not a database. ", fp);
	fclose(fp);
	refused(f, db, "NotAPod");
	unlink(db);
	snprintf(cmd, sizeof cmd, "sqlite3 %s 'CREATE TABLE notes (t TEXT)'",
	         db);
	assert_int_equal(system(cmd), 0);
	refused(f, db, "NotAPod");
	/* a pod with a row that does not decode */
	pod *p = client(f);
	put(p, "fine", 1);
	pod_close(p);
	int st = proc_stop(f->pid, SIGTERM);
	f->pid = -1;
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	snprintf(cmd, sizeof cmd, "sqlite3 %s \"UPDATE entries SET value = "
	         "x'c1'\"", f->db);
	assert_int_equal(system(cmd), 0);
	refused(f, f->db, "CorruptPod");
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--pod-worker") == 0)
		return worker_main(argv[2], argv[3]);
	signal(SIGPIPE, SIG_IGN);
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
	const struct CMUnitTest tests[] = {
		T(test_nested_changes_from_two_clients_persist),
		T(test_sync_at_hold_unhold_sync_key_revert),
		T(test_every_acknowledged_write_survives_sigterm),
		T(test_what_was_synced_survives_sigkill),
		T(test_a_full_disk_is_a_named_error_and_loses_nothing),
		T(test_tracker_workers_succeed_give_up_and_die),
		T(test_bad_input_is_refused_by_name),
		T(test_files_that_are_not_pods_are_refused_and_kept),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
