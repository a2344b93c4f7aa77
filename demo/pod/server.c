/*
 * server.c -- remo-pod: a persistent ordered dict, and a progress tracker
 * on it, served by remo and stored in SQLite (tastypy's POD, SharedPOD and
 * SharedProgressTracker).
 *
 *   remo-pod PATH URL [--secret-file F] [--sync-at N] [--max-tries N]
 *
 * Prints "READY <bound url>" once listening; on SIGINT or SIGTERM it
 * syncs everything and stops.  Exports (README.md has the whole list):
 *
 *   pod                     the dict itself: get, set, delete, len, in,
 *                           keys/items through remo's container protocol,
 *                           nested lists and dicts as proxies
 *   sync() sync_key(k) mark_dirty(k) dirty() hold() unhold() revert()
 *   add(k) add_if_absent(k) add_many(l) add_many_if_absent(l)
 *   try_key() -> (key, Task) | nil   mark_done(k) ... fraction_done()
 *
 * How it works.  The pod is one remo dict; remo_observe tells this
 * program of every change to it or to anything nested in it, made by
 * anyone, with the path from the root, so the top-level key that changed
 * is marked dirty without any .set trick: pod["foo"]["baz"].append(x)
 * through proxies marks "foo".  Once sync_at changes have accumulated (and
 * not held) the sync thread writes the dirty keys in one SQLite
 * transaction; sync() does it at once.  Locks: `lock` guards the dirty
 * set and counters and is held only briefly (the observer takes it);
 * `sync_lock` makes syncs and reverts one at a time and is never taken
 * under `lock`; container locks are remo's own, never held while either
 * is taken.
 */
#include <remo/remo.h>

#include "../sqlfile.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t sync_at = 1000;
static int64_t max_tries; /* 0: no limit, as tastypy's */

static remo_value root; /* the pod */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static remo_value dirty;   /* key -> true: changed since synced */
static remo_value removed; /* key -> true: deleted since synced */
static size_t changes;
static bool held, reverting, stopping, cleared;
static pthread_mutex_t sync_lock = PTHREAD_MUTEX_INITIALIZER;
static sqlite3 *db;
static const char *db_path;

/* ---- change tracking ------------------------------------------------------ */

static void on_change(remo_value r, remo_value path, const char *op,
                      remo_value key, void *user)
{
	(void)r;
	(void)user;
	bool top = remo_tuple_len(path) == 0;
	pthread_mutex_lock(&lock);
	if (reverting) {
		pthread_mutex_unlock(&lock);
		return;
	}
	if (top && strcmp(op, "clear") == 0) {
		/* every row goes at the next sync */
		cleared = true;
	} else {
		remo_value k = top ? key : remo_tuple_get(path, 0);
		if (top && strcmp(op, "delete") == 0)
			remo_dict_set(removed, remo_value_retain(k),
			              remo_bool(true));
		remo_dict_set(dirty, remo_value_retain(k), remo_bool(true));
	}
	changes++;
	if (changes >= sync_at && !held)
		pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
}

/* ---- the file --------------------------------------------------------------- */

static char db_error[512];

static int db_exec(const char *sql)
{
	return sqlfile_exec(db, sql, db_error, sizeof db_error);
}

static int bind_packed(sqlite3_stmt *q, int i, remo_value v)
{
	remo_buf b = {0};
	int rc = remo_pack(v, &b);
	if (rc == REMO_OK)
		sqlite3_bind_blob(q, i, b.data, (int)b.len, SQLITE_TRANSIENT);
	remo_buf_free(&b);
	return rc;
}

/* Loads every row into root (which is empty and not observed yet, or
 * being reverted).  A row that does not decode: CorruptPod. */
static int db_load(void)
{
	sqlite3_stmt *q;
	if (sqlite3_prepare_v2(db, "SELECT ord, key, value FROM entries "
	                       "ORDER BY ord", -1, &q, NULL) != SQLITE_OK) {
		snprintf(db_error, sizeof db_error, "CorruptPod: %s",
		         sqlite3_errmsg(db));
		return -1;
	}
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		remo_value k, v;
		const void *kb = sqlite3_column_blob(q, 1);
		int kn = sqlite3_column_bytes(q, 1);
		const void *vb = sqlite3_column_blob(q, 2);
		int vn = sqlite3_column_bytes(q, 2);
		if (kb == NULL || vb == NULL ||
		    remo_unpack(kb, (size_t)kn, &k) != REMO_OK) {
			snprintf(db_error, sizeof db_error, "CorruptPod: row %lld "
			         "has no key that decodes",
			         (long long)sqlite3_column_int64(q, 0));
			sqlite3_finalize(q);
			return -1;
		}
		if (remo_unpack(vb, (size_t)vn, &v) != REMO_OK) {
			snprintf(db_error, sizeof db_error, "CorruptPod: row %lld "
			         "has no value that decodes",
			         (long long)sqlite3_column_int64(q, 0));
			remo_value_release(k);
			sqlite3_finalize(q);
			return -1;
		}
		/* remo's encoding outside a session keeps lists lists */
		if (remo_dict_set(root, k, v) != REMO_OK) {
			snprintf(db_error, sizeof db_error, "CorruptPod: row %lld "
			         "has a key that is not hashable",
			         (long long)sqlite3_column_int64(q, 0));
			sqlite3_finalize(q);
			return -1;
		}
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE) {
		snprintf(db_error, sizeof db_error, "CorruptPod: %s",
		         sqlite3_errmsg(db));
		return -1;
	}
	return 0;
}

/* Opens (or makes) the file.  Not SQLite, SQLite but not a pod, or a
 * row that does not decode: refused by name, the file left as it was. */
static int db_open(const char *path)
{
	db = sqlfile_open(path, "remo_pod",
	                  "CREATE TABLE entries (ord INTEGER PRIMARY KEY, "
	                  "key BLOB NOT NULL UNIQUE, value BLOB NOT NULL)",
	                  "NotAPod", db_error, sizeof db_error);
	return db != NULL ? db_load() : -1;
}

/* ---- syncing ------------------------------------------------------------------ */

/* Writes the keys in take (a dict used as a set; all of root if
 * everything) in one transaction.  Under sync_lock.  REMO_OK, or the
 * keys go back to dirty and the reason is in db_error. */
#define REMO_EIO_POD (-1) /* write_keys: the file refused the write */

static int write_keys(remo_value take, remo_value gone, bool wipe,
                      remo_value again)
{
	sqlite3_stmt *del = NULL, *put = NULL;
	int rc = REMO_OK;
	size_t pos = 0;
	remo_value k, x;
	char bad[200] = "";
	db_error[0] = '\0';
	if (db_exec("BEGIN IMMEDIATE") != SQLITE_OK)
		return REMO_EIO_POD;
	if (wipe && db_exec("DELETE FROM entries") != SQLITE_OK)
		rc = REMO_EINVAL;
	if (rc == REMO_OK &&
	    (sqlite3_prepare_v2(db, "DELETE FROM entries WHERE key = ?", -1,
	                        &del, NULL) != SQLITE_OK ||
	     sqlite3_prepare_v2(db, "INSERT INTO entries (key, value) VALUES "
	                        "(?1, ?2) ON CONFLICT (key) DO UPDATE SET "
	                        "value = ?2", -1, &put, NULL) != SQLITE_OK)) {
		snprintf(db_error, sizeof db_error, "%s", sqlite3_errmsg(db));
		rc = REMO_EINVAL;
	}
	while (rc == REMO_OK && remo_dict_next(take, &pos, &k, &x)) {
		remo_value v;
		bool here = remo_dict_get_new(root, k, &v) == REMO_OK;
		remo_value ignored;
		bool was_gone = remo_dict_get(gone, k, &ignored) == REMO_OK;
		if ((!here || was_gone) && bind_packed(del, 1, k) == REMO_OK) {
			if (sqlite3_step(del) != SQLITE_DONE)
				rc = REMO_EINVAL;
			sqlite3_reset(del);
		}
		if (here && rc == REMO_OK) {
			if (bind_packed(put, 1, k) != REMO_OK ||
			    bind_packed(put, 2, v) != REMO_OK) {
				/* a reference: it stays dirty, and is said */
				remo_dict_set(again, remo_value_retain(k),
				              remo_bool(true));
				if (bad[0] == '\0') {
					char *r = remo_repr(k);
					snprintf(bad, sizeof bad, "%s", r ? r : "?");
					remo_free(r);
				}
			} else if (sqlite3_step(put) != SQLITE_DONE) {
				rc = REMO_EINVAL;
			}
			sqlite3_reset(put);
			sqlite3_clear_bindings(put);
		}
		remo_value_release(v);
	}
	if (rc != REMO_OK && db_error[0] == '\0')
		snprintf(db_error, sizeof db_error, "%s", sqlite3_errmsg(db));
	sqlite3_finalize(del);
	sqlite3_finalize(put);
	if (rc == REMO_OK && db_exec("COMMIT") != SQLITE_OK)
		rc = REMO_EINVAL;
	if (rc != REMO_OK) {
		char keep[sizeof db_error];
		snprintf(keep, sizeof keep, "%s", db_error);
		db_exec("ROLLBACK");
		snprintf(db_error, sizeof db_error, "%s", keep);
		return REMO_EIO_POD;
	}
	if (bad[0] != '\0') {
		snprintf(db_error, sizeof db_error, "the value of %s holds a "
		         "reference (an object, a callable, or a client's list "
		         "or dict not sent by value): not saved", bad);
		return REMO_ETYPE;
	}
	return REMO_OK;
}

/* Puts the keys of from into to (both sets); releases from. */
static void merge(remo_value to, remo_value from)
{
	size_t pos = 0;
	remo_value k, x;
	while (remo_dict_next(from, &pos, &k, &x))
		remo_dict_set(to, remo_value_retain(k), remo_bool(true));
	remo_value_release(from);
}

/* Syncs everything dirty (only nil) or one key: REMO_OK, or raised. */
static int do_sync(remo_value only)
{
	pthread_mutex_lock(&sync_lock);
	pthread_mutex_lock(&lock);
	remo_value take, gone, x;
	bool wipe = false;
	if (only.kind == REMO_NIL) {
		take = dirty;
		gone = removed;
		dirty = remo_dict();
		removed = remo_dict();
		wipe = cleared;
		cleared = false;
		changes = 0;
	} else {
		take = remo_dict();
		gone = remo_dict();
		remo_dict_set(take, remo_value_retain(only), remo_bool(true));
		if (remo_dict_pop(dirty, only, &x) == REMO_OK) {
			remo_value_release(x);
			changes -= changes > 0;
		}
		if (remo_dict_pop(removed, only, &x) == REMO_OK) {
			remo_value_release(x);
			remo_dict_set(gone, remo_value_retain(only),
			              remo_bool(true));
		}
	}
	pthread_mutex_unlock(&lock);
	if (wipe) { /* a clear: every key there is now is written */
		remo_value all = remo_dict_copy(root);
		merge(take, remo_value_retain(all));
		remo_value_release(all);
	}
	remo_value again = remo_dict();
	int rc = write_keys(take, gone, wipe, again);
	pthread_mutex_lock(&lock);
	if (rc == REMO_EIO_POD) { /* nothing was written: all still dirty */
		merge(dirty, remo_value_retain(take));
		merge(removed, remo_value_retain(gone));
		cleared |= wipe;
	}
	merge(dirty, again);
	pthread_mutex_unlock(&lock);
	remo_value_release(take);
	remo_value_release(gone);
	pthread_mutex_unlock(&sync_lock);
	if (rc == REMO_EIO_POD)
		remo_raise("IOError", "%s: %s (nothing written; the keys stay "
		           "dirty)", db_path, db_error);
	else if (rc != REMO_OK)
		remo_raise("TypeError", "%s", db_error);
	return rc;
}

static void *sync_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	while (!stopping) {
		if (changes >= sync_at && !held && !reverting) {
			pthread_mutex_unlock(&lock);
			if (do_sync(remo_nil()) != REMO_OK)
				fprintf(stderr, "remo-pod: sync: %s\n",
				        remo_error_message(remo_last_error()));
			pthread_mutex_lock(&lock);
			continue;
		}
		pthread_cond_wait(&cond, &lock);
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

/* ---- the pod's functions ------------------------------------------------------ */

static void s_sync(void) { do_sync(remo_nil()); }
static void s_sync_key(remo_value k) { do_sync(k); }

static void s_mark_dirty(remo_value k)
{
	pthread_mutex_lock(&lock);
	if (remo_dict_set(dirty, remo_value_retain(k), remo_bool(true)) ==
	    REMO_OK)
		changes++;
	else
		remo_raise("TypeError", "a key is hashable");
	if (changes >= sync_at && !held)
		pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
}

static remo_value s_dirty(void)
{
	pthread_mutex_lock(&lock);
	remo_value l = remo_list();
	size_t pos = 0;
	remo_value k, x;
	while (remo_dict_next(dirty, &pos, &k, &x))
		remo_list_append(l, remo_value_retain(k));
	pthread_mutex_unlock(&lock);
	return l;
}

static void s_hold(void)
{
	pthread_mutex_lock(&lock);
	held = true;
	pthread_mutex_unlock(&lock);
}

static void s_unhold(void)
{
	pthread_mutex_lock(&lock);
	held = false;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
}

/* Marks c and every list and dict in it read-only to peers. */
static void freeze_tree(remo_value c, unsigned depth)
{
	if (remo_readonly(c, true) != REMO_OK || depth > REMO_MAX_DEPTH)
		return;
	remo_value copy = c.kind == REMO_DICT ? remo_dict_copy(c)
	                                      : remo_list_copy(c);
	size_t pos = 0;
	remo_value k, v;
	if (copy.kind == REMO_DICT)
		while (remo_dict_next(copy, &pos, &k, &v))
			freeze_tree(v, depth + 1);
	for (size_t i = 0; copy.kind == REMO_LIST && i < remo_list_len(copy);
	     i++)
		freeze_tree(remo_list_get(copy, i), depth + 1);
	remo_value_release(copy);
}

/* Drops what was not synced: the pod is read again from the file.  The
 * old tree is made read-only to peers first (remo_readonly), so a write
 * racing the revert, or made later through a proxy taken before it (to a
 * list or dict that is no longer in the pod), fails with PermissionError
 * instead of vanishing; what is read from the file is new, and open. */
static void s_revert(void)
{
	pthread_mutex_lock(&sync_lock);
	pthread_mutex_lock(&lock);
	reverting = true;
	pthread_mutex_unlock(&lock);
	freeze_tree(root, 0);
	remo_dict_clear(root);
	int rc = db_load();
	remo_readonly(root, false);
	pthread_mutex_lock(&lock);
	reverting = false;
	remo_dict_clear(dirty);
	remo_dict_clear(removed);
	cleared = false;
	changes = 0;
	pthread_mutex_unlock(&lock);
	pthread_mutex_unlock(&sync_lock);
	if (rc != 0)
		remo_raise("CorruptPod", "%s: %s", db_path, db_error);
}

/* ---- the progress tracker --------------------------------------------------- */

/* tastypy's entries: dicts with _done, _tries, _aborted (and whatever
 * else the program keeps there).  track_lock makes each method one step
 * (try_key's look and count, mark_done's...); in flight are the keys a
 * worker holds a Task for: none is handed to two workers at once. */
static pthread_mutex_t track_lock = PTHREAD_MUTEX_INITIALIZER;
static remo_value inflight; /* key -> true */
static remo_type *task_type;

struct task {
	remo_value key;
};

static remo_value new_entry(void)
{
	remo_value e = remo_dict();
	remo_dict_set_str(e, "_done", remo_bool(false));
	remo_dict_set_str(e, "_tries", remo_int(0));
	remo_dict_set_str(e, "_aborted", remo_bool(false));
	return e;
}

/* The entry of k (new reference), or nil with KeyError raised. */
static remo_value entry_of(remo_value k)
{
	remo_value e;
	if (remo_dict_get_new(root, k, &e) != REMO_OK) {
		char *r = remo_repr(k);
		remo_raise("KeyError", "%s", r ? r : "?");
		remo_free(r);
		return remo_nil();
	}
	if (e.kind != REMO_DICT) {
		remo_value_release(e);
		remo_raise("TypeError", "not a tracker entry (a dict with _done, "
		           "_tries, _aborted)");
		return remo_nil();
	}
	return e;
}

static bool has(remo_value d, remo_value k)
{
	remo_value ignored;
	return remo_dict_get(d, k, &ignored) == REMO_OK;
}

static int64_t field_int(remo_value e, const char *f)
{
	remo_value v = remo_nil();
	remo_dict_get_str(e, f, &v); /* an int or bool: nothing borrowed */
	return v.kind == REMO_INT ? v.as.i : v.kind == REMO_BOOL ? v.as.b : 0;
}

static bool should_do_entry(remo_value e)
{
	return !field_int(e, "_done") && !field_int(e, "_aborted");
}

static bool should_try_entry(remo_value e)
{
	return should_do_entry(e) &&
	       (max_tries == 0 || field_int(e, "_tries") < max_tries);
}

static void add_one(remo_value k, bool if_absent)
{
	pthread_mutex_lock(&track_lock);
	if (!has(root, k)) {
		if (remo_dict_set(root, remo_value_retain(k), new_entry()) !=
		    REMO_OK)
			remo_raise("TypeError", "a key is hashable");
	} else if (!if_absent) {
		char *r = remo_repr(k);
		remo_raise("KeyError", "%s is a key already (add_if_absent "
		           "leaves it)", r ? r : "?");
		remo_free(r);
	}
	pthread_mutex_unlock(&track_lock);
}

static void s_add(remo_value k) { add_one(k, false); }
static void s_add_if_absent(remo_value k) { add_one(k, true); }

static void add_many(remo_value l, bool if_absent)
{
	remo_value items;
	if (remo_force(l, &items) != REMO_OK) {
		remo_raise("TypeError", "add_many takes a list of keys");
		return;
	}
	for (size_t i = 0; i < remo_list_len(items); i++)
		add_one(remo_list_get(items, i), true);
	(void)if_absent;
	remo_value_release(items);
}

static void s_add_many(remo_value l) { add_many(l, false); }
static void s_add_many_if_absent(remo_value l) { add_many(l, true); }

static void task_dtor(void *p)
{
	struct task *t = p;
	remo_value x;
	pthread_mutex_lock(&track_lock);
	if (remo_dict_pop(inflight, t->key, &x) == REMO_OK)
		remo_value_release(x);
	pthread_mutex_unlock(&track_lock);
	remo_value_release(t->key);
	free(t);
}

/* try_key: the next key to try (not done, not aborted, tried fewer than
 * max_tries times, not held by another worker), its try counted, and a
 * Task: the key is this caller's until the Task is released (or its
 * session ends: a worker that dies gives it back).  nil: none. */
static remo_value s_try_key(void)
{
	pthread_mutex_lock(&track_lock);
	remo_value all = remo_dict_copy(root), out = remo_nil();
	size_t pos = 0;
	remo_value k, e;
	while (remo_dict_next(all, &pos, &k, &e)) {
		if (e.kind != REMO_DICT || !should_try_entry(e) ||
		    has(inflight, k))
			continue;
		struct task *t = calloc(1, sizeof *t);
		if (t == NULL)
			break;
		t->key = remo_value_retain(k);
		remo_dict_set_str(e, "_tries",
		                  remo_int(field_int(e, "_tries") + 1));
		remo_dict_set(inflight, remo_value_retain(k), remo_bool(true));
		out = remo_tuple_of(2, remo_value_retain(k),
		                    remo_object(task_type, t, task_dtor));
		break;
	}
	remo_value_release(all);
	pthread_mutex_unlock(&track_lock);
	return out;
}

static void set_field(remo_value k, const char *f, remo_value v)
{
	pthread_mutex_lock(&track_lock);
	remo_value e = entry_of(k);
	if (e.kind == REMO_DICT)
		remo_dict_set_str(e, f, v);
	remo_value_release(e);
	pthread_mutex_unlock(&track_lock);
}

static void add_tries(remo_value k, int64_t d, bool reset)
{
	pthread_mutex_lock(&track_lock);
	remo_value e = entry_of(k);
	if (e.kind == REMO_DICT) {
		int64_t n = reset ? 0 : field_int(e, "_tries") + d;
		remo_dict_set_str(e, "_tries", remo_int(n < 0 ? 0 : n));
	}
	remo_value_release(e);
	pthread_mutex_unlock(&track_lock);
}

static void s_mark_done(remo_value k) { set_field(k, "_done", remo_bool(true)); }
static void s_mark_not_done(remo_value k) { set_field(k, "_done", remo_bool(false)); }
static void s_abort(remo_value k) { set_field(k, "_aborted", remo_bool(true)); }
static void s_unabort(remo_value k) { set_field(k, "_aborted", remo_bool(false)); }
static void s_increment_tries(remo_value k) { add_tries(k, 1, false); }
static void s_decrement_tries(remo_value k) { add_tries(k, -1, false); }
static void s_reset_tries(remo_value k) { add_tries(k, 0, true); }

static int64_t get_field(remo_value k, const char *f, int which)
{
	pthread_mutex_lock(&track_lock);
	remo_value e = entry_of(k);
	int64_t r = 0;
	if (e.kind == REMO_DICT)
		r = which == 0 ? field_int(e, f)
		    : which == 1 ? should_do_entry(e) : should_try_entry(e);
	remo_value_release(e);
	pthread_mutex_unlock(&track_lock);
	return r;
}

static int64_t s_tries(remo_value k) { return get_field(k, "_tries", 0); }
static bool s_done(remo_value k) { return get_field(k, "_done", 0) != 0; }
static bool s_should_do(remo_value k) { return get_field(k, NULL, 1) != 0; }
static bool s_should_try(remo_value k) { return get_field(k, NULL, 2) != 0; }

/* counts over the entries: 0 done, 1 tried, 2 aborted; 3 all */
static int64_t count_of(int what)
{
	remo_value all = remo_dict_copy(root);
	size_t pos = 0;
	int64_t n = 0;
	remo_value k, e;
	while (remo_dict_next(all, &pos, &k, &e)) {
		if (e.kind != REMO_DICT)
			continue;
		n += what == 0 ? field_int(e, "_done") != 0
		     : what == 1 ? field_int(e, "_tries") > 0
		     : what == 2 ? field_int(e, "_aborted") != 0 : 1;
	}
	remo_value_release(all);
	return n;
}

static int64_t s_num_done(void) { return count_of(0); }
static int64_t s_num_tried(void) { return count_of(1); }
static int64_t s_num_aborted(void) { return count_of(2); }

static double s_fraction_done(void)
{
	int64_t all = count_of(3);
	return all == 0 ? 0.0 : (double)count_of(0) / (double)all;
}

static int64_t s_in_flight(void)
{
	pthread_mutex_lock(&track_lock);
	int64_t n = (int64_t)remo_dict_len(inflight);
	pthread_mutex_unlock(&track_lock);
	return n;
}

static remo_value s_todo_keys(void)
{
	remo_value all = remo_dict_copy(root), l = remo_list();
	size_t pos = 0;
	remo_value k, e;
	while (remo_dict_next(all, &pos, &k, &e))
		if (e.kind == REMO_DICT && should_do_entry(e))
			remo_list_append(l, remo_value_retain(k));
	remo_value_release(all);
	return l;
}

/* ---- the program ----------------------------------------------------------- */

static remo_server *server;

static void on_signal(int sig)
{
	(void)sig;
	if (server != NULL)
		remo_server_stop(server);
}

static int usage(void)
{
	fprintf(stderr, "usage: remo-pod PATH URL [--secret-file F] "
	        "[--sync-at N] [--max-tries N]\n");
	return 2;
}

static bool number(const char *s, long long min, long long *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min)
		return false;
	*out = v;
	return true;
}

int main(int argc, char **argv)
{
	const char *url = NULL;
	remo_server_opts opts = {0};
	static char secret[REMO_MAX_SECRET];
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		long long v;
		if (strcmp(a, "--secret-file") == 0 && i + 1 < argc) {
			if (remo_secret_load(argv[++i], secret, sizeof secret,
			                     &opts.session.secret_len) != REMO_OK) {
				fprintf(stderr, "remo-pod: %s\n", remo_error_message(
				        remo_last_error()));
				return 1;
			}
			opts.session.secret = secret;
		} else if (strcmp(a, "--sync-at") == 0 && i + 1 < argc &&
		           number(argv[i + 1], 1, &v)) {
			sync_at = (size_t)v;
			i++;
		} else if (strcmp(a, "--max-tries") == 0 && i + 1 < argc &&
		           number(argv[i + 1], 0, &v)) {
			max_tries = v;
			i++;
		} else if (a[0] == '-') {
			return usage();
		} else if (db_path == NULL) {
			db_path = a;
		} else if (url == NULL) {
			url = a;
		} else {
			return usage();
		}
	}
	if (db_path == NULL || url == NULL)
		return usage();
	root = remo_dict();
	dirty = remo_dict();
	removed = remo_dict();
	inflight = remo_dict();
	if (db_open(db_path) != 0) {
		fprintf(stderr, "remo-pod: %s: %s\n", db_path, db_error);
		sqlite3_close(db);
		return 1;
	}
	fprintf(stderr, "remo-pod: %s: %zu keys\n", db_path,
	        remo_dict_len(root));
	remo_observe(root, on_change, NULL);
	task_type = remo_type_new("Task", NULL, "a key handed to one worker: "
	                          "release it to give it back", NULL);
	remo_exports *ex = remo_exports_new();
	remo_export(ex, "pod", root);
	static const struct {
		const char *name, *sig;
		void (*fn)(void);
	} fns[] = {
#define F(n, sig) {#n, sig, (void (*)(void))s_##n}
		F(sync, "v()"), F(sync_key, "v(k:r)"), F(mark_dirty, "v(k:r)"),
		F(dirty, "r()"), F(hold, "v()"), F(unhold, "v()"),
		F(revert, "v()"),
		F(add, "v(k:r)"), F(add_if_absent, "v(k:r)"),
		F(add_many, "v(keys:r)"), F(add_many_if_absent, "v(keys:r)"),
		F(try_key, "r()"), F(mark_done, "v(k:r)"),
		F(mark_not_done, "v(k:r)"), F(abort, "v(k:r)"),
		F(unabort, "v(k:r)"), F(increment_tries, "v(k:r)"),
		F(decrement_tries, "v(k:r)"), F(reset_tries, "v(k:r)"),
		F(tries, "q(k:r)"), F(done, "?(k:r)"), F(should_do, "?(k:r)"),
		F(should_try, "?(k:r)"), F(num_done, "q()"),
		F(num_tried, "q()"), F(num_aborted, "q()"),
		F(fraction_done, "d()"), F(todo_keys, "r()"),
		F(in_flight, "q()"),
#undef F
	};
	for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
		remo_value f = remo_function(fns[i].name, fns[i].sig, fns[i].fn,
		                             NULL);
		remo_export(ex, fns[i].name, f);
		remo_value_release(f);
	}
	int rc;
	server = remo_server_new(ex, &opts, &rc);
	char bound[256];
	if (server == NULL ||
	    remo_server_listen(server, url, bound, sizeof bound) != REMO_OK) {
		fprintf(stderr, "remo-pod: %s: %s\n", url,
		        remo_error_message(remo_last_error()));
		return 1;
	}
	pthread_t syncer;
	pthread_create(&syncer, NULL, sync_main, NULL);
	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* past a file size limit a write fails (EFBIG: SQLite says the disk
	 * is full, the sync rolls back) instead of killing the server */
	signal(SIGXFSZ, SIG_IGN);
	printf("READY %s\n", bound);
	fflush(stdout);
	remo_server_run(server);
	remo_server_free(server); /* the sessions end: no more changes */
	pthread_mutex_lock(&lock);
	stopping = true;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	pthread_join(syncer, NULL);
	int status = 0;
	if (do_sync(remo_nil()) != REMO_OK) { /* the last one */
		fprintf(stderr, "remo-pod: the last sync: %s\n",
		        remo_error_message(remo_last_error()));
		status = 1;
	}
	remo_exports_free(ex);
	remo_observe(root, NULL, NULL);
	remo_value_release(root);
	remo_value_release(dirty);
	remo_value_release(removed);
	remo_value_release(inflight);
	if (sqlite3_close(db) != SQLITE_OK)
		fprintf(stderr, "remo-pod: %s: %s\n", db_path,
		        sqlite3_errmsg(db));
	return status;
}
