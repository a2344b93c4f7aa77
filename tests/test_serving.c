/*
 * test_serving.c -- the serving core as real programs use it: state
 * shared by many sessions and threads, object identity, calls that
 * answer later, cancellation that reaches the callee, and a session whose
 * slow call does not stall the next one.
 *
 * The server runs in this process (a remo_server on unix://, in a
 * thread), so the sanitizers see it; clients that must be processes of
 * their own are this program again, run with fork+exec:
 *
 *   test_serving --writer URL PREFIX N   sets PREFIX0..PREFIX(N-1) in the
 *                                        exported dict "shared", then
 *                                        prints "DONE"
 *   test_serving --taker URL             prints "TAKING", calls take()
 *                                        and prints what it got (the
 *                                        test kills it first)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <remo/remo.h>

static const char *self_path;


/* ==== the server ========================================================= */

struct reader { int64_t x; };
static remo_type *reader_type, *doubler_type;
static int64_t reader_get(struct reader *r) { return r->x; }
static int64_t doubler_get(struct reader *r) { return 2 * r->x; }
static struct reader shared_x = {21};

/* A registered type that acts as a container: a dict inside, behind the
 * slots __len__, __getitem__, __setitem__, __delitem__, __contains__. */
struct store { remo_value d; };
static remo_type *store_type;
static struct store the_store;

static size_t store_len(struct store *s) { return remo_dict_len(s->d); }
static remo_value store_get(struct store *s, remo_value k)
{
	remo_value v;
	if (remo_dict_get_new(s->d, k, &v) != REMO_OK)
		remo_raise("KeyError", "no such key");
	return v;
}
static void store_set(struct store *s, remo_value k, remo_value v)
{
	remo_dict_set(s->d, remo_value_retain(k), remo_value_retain(v));
}
static void store_del(struct store *s, remo_value k)
{
	if (remo_dict_del(s->d, k) != REMO_OK)
		remo_raise("KeyError", "no such key");
}
static bool store_has(struct store *s, remo_value k)
{
	remo_value v;
	return remo_dict_get(s->d, k, &v) == REMO_OK;
}

static void types_init(void)
{
	if (reader_type != NULL)
		return;
	store_type = remo_type_new("Store", NULL, NULL, NULL);
	remo_type_method(store_type, "__len__", "N()",
	                 (void (*)(void))store_len, NULL);
	remo_type_method(store_type, "__getitem__", "r(key:r)",
	                 (void (*)(void))store_get, NULL);
	remo_type_method(store_type, "__setitem__", "v(key:r value:r)",
	                 (void (*)(void))store_set, NULL);
	remo_type_method(store_type, "__delitem__", "v(key:r)",
	                 (void (*)(void))store_del, NULL);
	remo_type_method(store_type, "__contains__", "?(key:r)",
	                 (void (*)(void))store_has, NULL);
	reader_type = remo_type_new("Reader", NULL, NULL, NULL);
	remo_type_method(reader_type, "get", "q()", (void (*)(void))reader_get,
	                 NULL);
	doubler_type = remo_type_new("Doubler", NULL, NULL, NULL);
	remo_type_method(doubler_type, "get", "q()",
	                 (void (*)(void))doubler_get, NULL);
}

/* ---- a tuple-space-like box: take() waits for put(), deferred ---- */

static pthread_mutex_t box_lock = PTHREAD_MUTEX_INITIALIZER;
static remo_value box_items;       /* list: what put() stored          */
static remo_deferred *box_waiters[2048];
static int box_nwaiters;
static atomic_int box_cancel_hooks;
static atomic_int box_answered_after_cancel; /* must stay 0 */

/* Takes d out of the waiters, if it is there (true). */
static bool box_unwait(remo_deferred *d)
{
	for (int i = 0; i < box_nwaiters; i++)
		if (box_waiters[i] == d) {
			memmove(&box_waiters[i], &box_waiters[i + 1],
			        (size_t)(box_nwaiters - i - 1) * sizeof d);
			box_nwaiters--;
			return true;
		}
	return false;
}

static void box_on_cancel(remo_deferred *d, void *user)
{
	(void)user;
	atomic_fetch_add(&box_cancel_hooks, 1);
	pthread_mutex_lock(&box_lock);
	bool mine = box_unwait(d);
	pthread_mutex_unlock(&box_lock);
	if (mine) { /* nobody else answers it: we do (nothing is sent) */
		remo_value e = remo_error("CancelledError", "cancelled");
		if (remo_deferred_fail(d, e) == REMO_OK)
			atomic_fetch_add(&box_answered_after_cancel, 1);
		remo_value_release(e);
	}
}

static remo_value box_take(void)
{
	pthread_mutex_lock(&box_lock);
	if (remo_list_len(box_items) > 0) {
		remo_value v;
		remo_list_get_new(box_items, 0, &v);
		remo_list_del(box_items, 0);
		pthread_mutex_unlock(&box_lock);
		return v;
	}
	remo_deferred *d = remo_defer(box_on_cancel, NULL);
	if (d != NULL && box_nwaiters < 2048)
		box_waiters[box_nwaiters++] = d;
	pthread_mutex_unlock(&box_lock);
	return remo_nil(); /* ignored: the answer comes from put() */
}

static void box_put(remo_value v)
{
	for (;;) {
		pthread_mutex_lock(&box_lock);
		if (box_nwaiters == 0) {
			remo_list_append(box_items, remo_value_retain(v));
			pthread_mutex_unlock(&box_lock);
			return;
		}
		remo_deferred *d = box_waiters[0];
		box_unwait(d);
		pthread_mutex_unlock(&box_lock);
		/* the first waiter, unless it is gone: then the next */
		if (remo_deferred_reply(d, v) == REMO_OK)
			return;
	}
}

static int64_t box_count(void)
{
	pthread_mutex_lock(&box_lock);
	int64_t n = (int64_t)remo_list_len(box_items);
	pthread_mutex_unlock(&box_lock);
	return n;
}

static int64_t box_waiting(void)
{
	pthread_mutex_lock(&box_lock);
	int64_t n = box_nwaiters;
	pthread_mutex_unlock(&box_lock);
	return n;
}

/* ---- a gate: wait_gate() blocks (a running call) until open_gate() ---- */

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static bool gate_open;
static atomic_int gate_saw_cancel;

/* "opened", or "cancelled" (remo_cancelled), or "stuck" after 10 s */
static remo_value wait_gate(void)
{
	for (int i = 0; i < 1000; i++) {
		pthread_mutex_lock(&gate_lock);
		bool open = gate_open;
		pthread_mutex_unlock(&gate_lock);
		if (open)
			return remo_str("opened");
		if (remo_cancelled()) {
			atomic_fetch_add(&gate_saw_cancel, 1);
			return remo_str("cancelled");
		}
		usleep(10000);
	}
	return remo_str("stuck");
}

static void open_gate(bool open)
{
	pthread_mutex_lock(&gate_lock);
	gate_open = open;
	pthread_mutex_unlock(&gate_lock);
}

/* gated_len(b): waits for the gate as wait_gate does, then b's length */
static int64_t gated_len(remo_value b)
{
	remo_value r = wait_gate();
	remo_value_release(r);
	size_t n = 0;
	remo_bytes_data(b, &n);
	return (int64_t)n;
}

static int64_t saw_cancel(void) { return atomic_load(&gate_saw_cancel); }
static int64_t deadline_left(void) { return remo_deadline_ms(); }

/* v and every list and dict in it are local values (came by value) */
static bool local_deep(remo_value v)
{
	if (v.kind == REMO_TUPLE) {
		for (size_t i = 0; i < remo_tuple_len(v); i++)
			if (!local_deep(remo_tuple_get(v, i)))
				return false;
		return true;
	}
	if (v.kind != REMO_LIST && v.kind != REMO_DICT)
		return !remo_is_proxy(v);
	if (remo_is_proxy(v))
		return false;
	remo_value c = v.kind == REMO_LIST ? remo_list_copy(v) : remo_dict_copy(v);
	bool ok = true;
	if (v.kind == REMO_LIST) {
		for (size_t i = 0; ok && i < remo_list_len(c); i++)
			ok = local_deep(remo_list_get(c, i));
	} else {
		size_t pos = 0;
		remo_value k, x;
		while (ok && remo_dict_next(c, &pos, &k, &x))
			ok = local_deep(x);
	}
	remo_value_release(c);
	return ok;
}

static bool is_local(remo_value v) { return local_deep(v); }
/* v is this process's own reader object (it came home) */
static bool is_reader(remo_value v)
{
	return remo_object_ptr(v, reader_type) == &shared_x;
}

static bool caller_has_session(void)
{
	remo_caller_info ci;
	return remo_caller(&ci) == REMO_OK && ci.session != NULL;
}

/* call_later(fn): a thread of the server's calls fn() once, later, while
 * its client may be doing nothing at all. */
static void *later_main(void *arg)
{
	remo_value *fn = arg, r;
	remo_call_opts o = {5000};
	if (remo_call_with(*fn, remo_nil(), &o, &r) == REMO_OK)
		remo_value_release(r);
	remo_value_release(*fn);
	free(fn);
	return NULL;
}

static void call_later(remo_value fn)
{
	remo_value *held = malloc(sizeof *held);
	*held = remo_value_retain(fn);
	pthread_t th;
	pthread_create(&th, NULL, later_main, held);
	pthread_detach(th);
}

/* Handles the failure of an operation it calls (a missing key) and
 * returns normally: its call succeeds. */
static int64_t handles_a_failure(void)
{
	remo_value d = remo_dict(), k = remo_str("missing"), v;
	int rc = remo_getitem(d, k, &v);
	remo_value_release(k);
	remo_value_release(d);
	return rc == REMO_OK ? 0 : 7;
}

static void export_fn(remo_exports *ex, const char *name, const char *sig,
                      void (*fn)(void))
{
	remo_value f = remo_function(name, sig, fn, NULL);
	assert_true(remo_ok(f));
	assert_int_equal(remo_export(ex, name, f), REMO_OK);
	remo_value_release(f);
}

struct server {
	remo_exports *ex;
	remo_server *srv;
	pthread_t th;
	char dir[64];
	char url[256];
	remo_value shared; /* the dict the writers fill */
	remo_value list;   /* a list for the container protocol */
};

static void *server_main(void *arg)
{
	remo_server_run(arg);
	return NULL;
}

static void export_value(remo_exports *ex, const char *name, remo_value v)
{
	assert_int_equal(remo_export(ex, name, v), REMO_OK);
	remo_value_release(v);
}

static struct server *server_start_with(const remo_server_opts *so);

static struct server *server_start(void)
{
	return server_start_with(NULL);
}

static struct server *server_start_with(const remo_server_opts *so)
{
	types_init();
	struct server *sv = calloc(1, sizeof *sv);
	snprintf(sv->dir, sizeof sv->dir, "/tmp/remo-serving-XXXXXX");
	assert_non_null(mkdtemp(sv->dir));
	sv->ex = remo_exports_new();
	sv->shared = remo_dict();
	export_value(sv->ex, "shared", remo_value_retain(sv->shared));
	sv->list = remo_list();
	export_value(sv->ex, "list", remo_value_retain(sv->list));
	export_value(sv->ex, "reader", remo_object(reader_type, &shared_x, NULL));
	export_value(sv->ex, "doubler",
	             remo_object(doubler_type, &shared_x, NULL));
	the_store.d = remo_dict();
	export_value(sv->ex, "store", remo_object(store_type, &the_store, NULL));
	box_items = remo_list();
	box_nwaiters = 0;
	atomic_store(&box_cancel_hooks, 0);
	atomic_store(&gate_saw_cancel, 0);
	open_gate(false);
	export_fn(sv->ex, "take", "r()", (void (*)(void))box_take);
	export_fn(sv->ex, "put", "v(x:r)", (void (*)(void))box_put);
	export_fn(sv->ex, "count", "q()", (void (*)(void))box_count);
	export_fn(sv->ex, "waiting", "q()", (void (*)(void))box_waiting);
	export_fn(sv->ex, "wait_gate", "r()", (void (*)(void))wait_gate);
	export_fn(sv->ex, "open_gate", "v(open:?)", (void (*)(void))open_gate);
	export_fn(sv->ex, "gated_len", "q(b:r)", (void (*)(void))gated_len);
	export_fn(sv->ex, "saw_cancel", "q()", (void (*)(void))saw_cancel);
	export_fn(sv->ex, "deadline_left", "q()",
	          (void (*)(void))deadline_left);
	export_fn(sv->ex, "is_local", "?(v:r)", (void (*)(void))is_local);
	export_fn(sv->ex, "is_reader", "?(v:r)", (void (*)(void))is_reader);
	export_fn(sv->ex, "caller_has_session", "?()",
	          (void (*)(void))caller_has_session);
	export_fn(sv->ex, "handles_a_failure", "q()",
	          (void (*)(void))handles_a_failure);
	export_fn(sv->ex, "call_later", "v(fn:r)", (void (*)(void))call_later);
	int rc;
	sv->srv = remo_server_new(sv->ex, so, &rc);
	assert_non_null(sv->srv);
	char listen[128];
	snprintf(listen, sizeof listen, "unix://%s/s.sock", sv->dir);
	assert_int_equal(remo_server_listen(sv->srv, listen, sv->url,
	                                    sizeof sv->url), REMO_OK);
	assert_int_equal(pthread_create(&sv->th, NULL, server_main, sv->srv), 0);
	return sv;
}

static void server_stop(struct server *sv)
{
	remo_server_stop(sv->srv);
	pthread_join(sv->th, NULL);
	remo_server_free(sv->srv);
	remo_exports_free(sv->ex);
	remo_value_release(sv->shared);
	remo_value_release(sv->list);
	remo_value_release(the_store.d);
	/* every deferred take was answered or cancelled by now */
	assert_int_equal(box_nwaiters, 0);
	remo_value_release(box_items);
	char path[128];
	snprintf(path, sizeof path, "%s/s.sock", sv->dir);
	unlink(path);
	rmdir(sv->dir);
	free(sv);
}

static remo_session *client(struct server *sv)
{
	remo_session *s = NULL;
	int rc = remo_connect(sv->url, 5000, NULL, NULL, &s);
	if (rc != REMO_OK)
		fail_msg("connect %s: %s", sv->url,
		         remo_error_message(remo_last_error()));
	return s;
}

/* Runs this program as a client process; its stdout into *out. */
static pid_t spawn(int *out, const char *mode, const char *a1,
                   const char *a2, const char *a3)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execl(self_path, self_path, mode, a1, a2, a3, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	*out = p[0];
	return pid;
}

/* A line from fd within ms into buf ("" if none came). */
static void read_line(int fd, char *buf, size_t len, int ms)
{
	size_t got = 0;
	buf[0] = '\0';
	struct pollfd p = {fd, POLLIN, 0};
	while (got < len - 1 && strchr(buf, '\n') == NULL &&
	       poll(&p, 1, ms) > 0) {
		ssize_t r = read(fd, buf + got, len - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
		buf[got] = '\0';
	}
}

/* ==== client modes ======================================================= */

static int writer_main(const char *url, const char *prefix, int n)
{
	remo_session *s;
	remo_value d;
	if (remo_connect(url, 5000, NULL, NULL, &s) != REMO_OK ||
	    remo_lookup(s, "shared", &d) != REMO_OK) {
		fprintf(stderr, "writer: %s\n",
		        remo_error_message(remo_last_error()));
		return 1;
	}
	for (int i = 0; i < n; i++) {
		char key[64];
		snprintf(key, sizeof key, "%s%d", prefix, i);
		remo_value k = remo_str(key), v = remo_int(i);
		int rc = remo_setitem(d, k, v);
		remo_value_release(k);
		if (rc != REMO_OK) {
			fprintf(stderr, "writer: setitem %s: %s\n", key,
			        remo_error_message(remo_last_error()));
			return 1;
		}
	}
	printf("DONE\n");
	fflush(stdout);
	remo_value_release(d);
	remo_session_free(s);
	return 0;
}

/* ==== client side ======================================================= */

/* Calls the server's function name with args (stolen) within timeout_ms
 * (0: none); the status, *out the result. */
static int call(remo_session *s, const char *name, remo_value args,
                int timeout_ms, remo_value *out)
{
	remo_value fn;
	*out = remo_nil();
	int rc = remo_lookup(s, name, &fn);
	if (rc == REMO_OK) {
		remo_call_opts o = {timeout_ms != 0 ? timeout_ms : -1};
		rc = remo_call_with(fn, args, &o, out);
		remo_value_release(fn);
	}
	remo_value_release(args);
	if (getenv("SERVING_DEBUG") && rc != REMO_OK)
		fprintf(stderr, "call %s: %d %s: %s\n", name, rc,
		        remo_error_name(remo_last_error()),
		        remo_error_message(remo_last_error()));
	return rc;
}

static int64_t call_int(remo_session *s, const char *name)
{
	remo_value v;
	assert_int_equal(call(s, name, remo_nil(), 0, &v), REMO_OK);
	assert_int_equal(v.kind, REMO_INT);
	return v.as.i;
}

/* Polls name() until it returns want, for up to 10 s. */
static void until_int(remo_session *s, const char *name, int64_t want)
{
	int64_t got = -1;
	for (int i = 0; i < 1000 && (got = call_int(s, name)) != want; i++)
		usleep(10000);
	assert_int_equal(got, want);
}

static void put(remo_session *s, int64_t x)
{
	remo_value v;
	assert_int_equal(call(s, "put", remo_tuple_of(1, remo_int(x)), 0, &v),
	                 REMO_OK);
}

static int64_t take(remo_session *s)
{
	remo_value v;
	assert_int_equal(call(s, "take", remo_nil(), 0, &v), REMO_OK);
	assert_int_equal(v.kind, REMO_INT);
	return v.as.i;
}

/* ==== shared containers ================================================== */

/*
 * The test: four client processes each set distinct keys in one
 * exported dict at once.  The server used to die of a double free in
 * dict_resize; now every key is there with its value.
 */
#define WRITERS 4
#define KEYS 400
static void test_four_writers_one_dict(void **state)
{
	(void)state;
	struct server *sv = server_start();
	pid_t pid[WRITERS];
	int out[WRITERS];
	char n[16];
	snprintf(n, sizeof n, "%d", KEYS);
	for (int w = 0; w < WRITERS; w++) {
		char prefix[8];
		snprintf(prefix, sizeof prefix, "w%d-", w);
		pid[w] = spawn(&out[w], "--writer", sv->url, prefix, n);
	}
	for (int w = 0; w < WRITERS; w++) {
		char line[64];
		read_line(out[w], line, sizeof line, 60000);
		int st;
		waitpid(pid[w], &st, 0);
		close(out[w]);
		assert_string_equal(line, "DONE\n");
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	assert_int_equal(remo_dict_len(sv->shared), WRITERS * KEYS);
	for (int w = 0; w < WRITERS; w++)
		for (int i = 0; i < KEYS; i++) {
			char key[32];
			snprintf(key, sizeof key, "w%d-%d", w, i);
			remo_value v;
			assert_int_equal(remo_dict_get_new(sv->shared,
			                                   remo_nil(), &v),
			                 REMO_ENOTFOUND);
			assert_int_equal(remo_dict_get_str(sv->shared, key, &v),
			                 REMO_OK);
			assert_true(v.kind == REMO_INT && v.as.i == i);
		}
	server_stop(sv);
}

/* Threads of one process on one list and one dict: every operation is
 * atomic, so the final contents are exact. */
#define THREADS 4
#define OPS 5000
static remo_value t_list, t_dict;

static void *hammer(void *arg)
{
	int id = (int)(intptr_t)arg;
	for (int i = 0; i < OPS; i++) {
		char key[32];
		snprintf(key, sizeof key, "t%d-%d", id, i);
		remo_list_append(t_list, remo_int(i));
		remo_dict_set_str(t_dict, key, remo_int(i));
		if (i % 2 == 1) { /* and take every other one out again */
			remo_value k = remo_str(key), v;
			assert_int_equal(remo_dict_pop(t_dict, k, &v), REMO_OK);
			assert_int_equal(v.as.i, i);
			remo_value_release(k);
		}
		/* readers meanwhile: a copy is consistent in itself */
		if (i % 500 == 0) {
			remo_value c = remo_dict_copy(t_dict);
			assert_true(remo_ok(c));
			remo_value_release(c);
			remo_buf b = {0};
			assert_int_equal(remo_pack(t_list, &b), REMO_OK);
			remo_buf_free(&b);
		}
	}
	return NULL;
}

static void test_threads_share_a_list_and_a_dict(void **state)
{
	(void)state;
	t_list = remo_list();
	t_dict = remo_dict();
	pthread_t th[THREADS];
	for (int i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, hammer, (void *)(intptr_t)i);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(remo_list_len(t_list), THREADS * OPS);
	assert_int_equal(remo_dict_len(t_dict), THREADS * OPS / 2);
	int64_t sum = 0;
	for (size_t i = 0; i < remo_list_len(t_list); i++)
		sum += remo_list_get(t_list, i).as.i;
	assert_int_equal(sum, (int64_t)THREADS * OPS * (OPS - 1) / 2);
	remo_value_release(t_list);
	remo_value_release(t_dict);
}

/* A dict that holds itself packs (to the depth limit) and compares
 * without deadlocking on its own lock. */
static void test_a_dict_that_holds_itself(void **state)
{
	(void)state;
	remo_value d = remo_dict(), e = remo_dict();
	remo_dict_set_str(d, "me", remo_value_retain(d));
	assert_true(remo_equal(d, d));
	/* two that hold each other: unequal at the depth limit, no overflow */
	remo_dict_set_str(e, "me", remo_value_retain(d));
	remo_dict_set_str(d, "other", remo_value_retain(e));
	remo_dict_set_str(e, "other", remo_value_retain(d));
	assert_false(remo_equal(d, e));
	remo_value other = remo_str("other");
	remo_dict_del(d, other);
	remo_value_release(other);
	remo_value_release(e);
	remo_buf b = {0};
	assert_int_equal(remo_pack(d, &b), REMO_EDEPTH); /* too deep */
	remo_buf_free(&b);
	remo_value c = remo_dict_copy(d);
	assert_int_equal(remo_dict_len(c), 1);
	remo_value_release(c);
	remo_value me = remo_str("me");
	remo_dict_del(d, me); /* breaks the cycle */
	remo_value_release(me);
	remo_value_release(d);
}

/* ==== identity =========================================================== */

static void test_two_types_on_one_pointer_are_two_objects(void **state)
{
	(void)state;
	struct server *sv = server_start();
	remo_session *s = client(sv);
	remo_value r, d, x;
	assert_int_equal(remo_lookup(s, "reader", &r), REMO_OK);
	assert_int_equal(remo_lookup(s, "doubler", &d), REMO_OK);
	assert_string_equal(remo_type_name(r), "Reader");
	assert_string_equal(remo_type_name(d), "Doubler");
	assert_int_equal(remo_call_method(d, "get", remo_nil(), &x), REMO_OK);
	assert_int_equal(x.as.i, 42);
	assert_int_equal(remo_call_method(r, "get", remo_nil(), &x), REMO_OK);
	assert_int_equal(x.as.i, 21);
	/* and one object sent twice is still one proxy */
	remo_value r2;
	assert_int_equal(remo_lookup(s, "reader", &r2), REMO_OK);
	assert_true(remo_equal(r, r2));
	remo_value_release(r2);
	remo_value_release(r);
	remo_value_release(d);
	remo_session_free(s);
	server_stop(sv);
}


/* ==== a slow call does not stall its session ============================ */

struct gate_call {
	remo_session *s;
	remo_value result;
	atomic_bool done;
};

static void *call_wait_gate(void *arg)
{
	struct gate_call *g = arg;
	call(g->s, "wait_gate", remo_nil(), 0, &g->result);
	atomic_store(&g->done, true);
	return NULL;
}

/*
 * Two threads on one session: the first blocks in wait_gate() until
 * someone opens it; the second opens it.  Served one at a time, the
 * second would wait behind the first, which gives up after 10 s
 * ("stuck"): now the second runs while the first still waits.
 */
static void test_a_blocked_call_does_not_stall_its_session(void **state)
{
	(void)state;
	struct server *sv = server_start();
	remo_session *s = client(sv);
	struct gate_call g = {.s = s};
	pthread_t th;
	pthread_create(&th, NULL, call_wait_gate, &g);
	remo_value v;
	/* a lookup and a call, while wait_gate is still waiting */
	assert_int_equal(call(s, "count", remo_nil(), 0, &v), REMO_OK);
	assert_false(atomic_load(&g.done));
	assert_int_equal(call(s, "open_gate", remo_tuple_of(1, remo_bool(true)),
	                      0, &v), REMO_OK);
	pthread_join(th, NULL);
	assert_string_equal(remo_str_data(g.result, NULL), "opened");
	remo_value_release(g.result);
	remo_session_free(s);
	server_stop(sv);
}

#define FLOOD_CALLS 200
#define FLOOD_BYTES (64 << 10)

struct flood {
	remo_session *s;
	atomic_int started;
	int ok; /* calls answered with the length sent */
	remo_future *f[FLOOD_CALLS];
};

/* FLOOD_CALLS async calls of gated_len with FLOOD_BYTES each, then the
 * answers. */
static void *flood_main(void *arg)
{
	struct flood *fl = arg;
	remo_future **f = fl->f;
	static const char blob[FLOOD_BYTES]; /* zeros, only read */
	remo_value fn;
	int n = 0; /* no cmocka assertion in this thread: counted instead */
	if (remo_lookup(fl->s, "gated_len", &fn) != REMO_OK)
		return NULL;
	for (; n < FLOOD_CALLS; n++) {
		remo_value args = remo_tuple_of(1, remo_bytes(blob, sizeof blob));
		int rc = remo_call_async(fn, args, NULL, &f[n]);
		remo_value_release(args);
		if (rc != REMO_OK)
			break;
		atomic_fetch_add(&fl->started, 1);
	}
	for (int i = 0; i < n; i++) {
		remo_value v;
		if (remo_future_wait(f[i], 20000, &v) == REMO_OK &&
		    v.kind == REMO_INT && v.as.i == FLOOD_BYTES)
			fl->ok++;
		remo_future_free(f[i]);
	}
	remo_value_release(fn);
	return NULL;
}

/*
 * One client floods a session with calls that all wait behind busy ones
 * (200 of 64 KiB; 16 run, blocked at the gate, the rest wait for a
 * thread).  The server holds its budget of them (max_queued_bytes,
 * 1 MiB here) and then stops reading that session: the client's sends
 * block (backpressure), its session is not ended, another client is
 * served meanwhile, and once the gate opens every call is answered.
 * Before, the session ended at the budget (REMO_ELIMIT): the flooding
 * client lost every call.
 */
static void test_a_flooding_session_is_pushed_back(void **state)
{
	(void)state;
	remo_server_opts so = {.session = {.max_message = 256 << 10,
	                                   .max_queued_bytes = 1 << 20}};
	struct server *sv = server_start_with(&so);
	struct flood fl = {.s = client(sv)};
	pthread_t th;
	pthread_create(&th, NULL, flood_main, &fl);
	/* until its sends block: nothing more starts for 0.5 s */
	int was = -1, now;
	while ((now = atomic_load(&fl.started)) != was && now < FLOOD_CALLS) {
		was = now;
		usleep(500 * 1000);
	}
	/* 16 running, 1 MiB queued, what the sockets hold: not all */
	assert_true(now < FLOOD_CALLS / 2);
	remo_session *good = client(sv);
	assert_int_equal(call_int(good, "count"), 0);
	assert_int_equal(remo_session_status(fl.s), REMO_OK);
	remo_value v;
	assert_int_equal(call(good, "open_gate",
	                      remo_tuple_of(1, remo_bool(true)), 0, &v), REMO_OK);
	pthread_join(th, NULL);
	assert_int_equal(fl.ok, FLOOD_CALLS);
	remo_session_free(good);
	remo_session_free(fl.s);
	server_stop(sv);
}

/* Waits until nothing more starts for 0.5 s (the flooders' sends
 * block); the calls started. */
static int floods_settle(struct flood *fl, int n)
{
	int was = -1, now = 0;
	for (;;) {
		now = 0;
		for (int i = 0; i < n; i++)
			now += atomic_load(&fl[i].started);
		if (now == was)
			return now;
		was = now;
		usleep(500 * 1000);
	}
}

/*
 * The same flood from two clients at once, against the process's budget
 * (remo_queue_set_budget, 1 MiB here) rather than each session's (64
 * MiB): past it the sessions that hold queued requests stop being read,
 * a third client (nothing queued) is served meanwhile, the total stays
 * within the budget and a message per session, and every call is
 * answered once the gate opens; the count goes back to 0.
 */
static void test_floods_share_the_process_budget(void **state)
{
	(void)state;
	remo_queue_set_budget(1 << 20);
	remo_server_opts so = {.session = {.max_message = 256 << 10}};
	struct server *sv = server_start_with(&so);
	struct flood fl[2] = {{.s = client(sv)}, {.s = client(sv)}};
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, flood_main, &fl[i]);
	int started = floods_settle(fl, 2);
	assert_true(started < FLOOD_CALLS); /* of 2 x 200 */
	size_t used = remo_queue_budget_used();
	assert_true(used >= (1u << 20) - FLOOD_BYTES);
	assert_true(used <= (1u << 20) + 2 * (FLOOD_BYTES + 1024));
	remo_session *good = client(sv);
	assert_int_equal(call_int(good, "count"), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(remo_session_status(fl[i].s), REMO_OK);
	remo_value v;
	assert_int_equal(call(good, "open_gate",
	                      remo_tuple_of(1, remo_bool(true)), 0, &v), REMO_OK);
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(fl[i].ok, FLOOD_CALLS);
		remo_session_free(fl[i].s);
	}
	remo_session_free(good);
	server_stop(sv);
	assert_int_equal(remo_queue_budget_used(), 0);
	remo_queue_set_budget(0);
}

/*
 * Calls pipelined on a deferred result wait on its kept entry, counted
 * as queued: here 20 of 2000 bytes fill the session's 8 KiB budget, so
 * the server stops reading that session and its event loop stops
 * watching it.  When another client's put() answers the take, the
 * waiting calls must still be served: the answer gives the session a
 * turn.  Before, they waited for a message the server no longer read
 * (found by review: the session hung for good).
 */
static void test_calls_pipelined_on_a_deferred_result_are_served(void **state)
{
	(void)state;
	remo_server_opts so = {.session = {.max_message = 4096,
	                                   .max_queued_bytes = 8192}};
	struct server *sv = server_start_with(&so);
	remo_session *a = client(sv), *b = client(sv);
	remo_value fn;
	assert_int_equal(remo_lookup(a, "take", &fn), REMO_OK);
	remo_future *f;
	assert_int_equal(remo_call_async(fn, remo_nil(), NULL, &f), REMO_OK);
	until_int(b, "waiting", 1);
	remo_value pr = remo_future_promise(f);
	static const char blob[2000];
	remo_future *g[20];
	for (int i = 0; i < 20; i++) {
		remo_value args = remo_tuple_of(1, remo_bytes(blob, sizeof blob));
		assert_int_equal(remo_call_async(pr, args, NULL, &g[i]), REMO_OK);
		remo_value_release(args);
	}
	put(b, 7);
	remo_value v;
	assert_int_equal(remo_future_wait(f, 5000, &v), REMO_OK);
	assert_int_equal(v.as.i, 7);
	/* each: 7 is not callable, so a TypeError, but an answer */
	for (int i = 0; i < 20; i++) {
		assert_int_not_equal(remo_future_wait(g[i], 5000, NULL),
		                     REMO_ETIMEDOUT);
		remo_future_free(g[i]);
	}
	remo_future_free(f);
	remo_value_release(pr);
	remo_value_release(fn);
	remo_session_free(a);
	remo_session_free(b);
	server_stop(sv);
}

/* A function that calls an operation which fails, and handles it, is
 * not failed by it: only remo_raise fails a call (the error stays in
 * remo_last_error for the function to read). */
static void test_a_handled_failure_does_not_fail_the_call(void **state)
{
	(void)state;
	struct server *sv = server_start();
	remo_session *s = client(sv);
	remo_value v;
	assert_int_equal(call(s, "handles_a_failure", remo_nil(), 0, &v),
	                 REMO_OK);
	assert_int_equal(v.as.i, 7);
	remo_session_free(s);
	server_stop(sv);
}

static atomic_int idle_called;
static void idle_callback(void)
{
	atomic_store(&idle_called, 1);
}

/* A remo_connect client between its calls (no thread of its own reads
 * or serves the session) is still served: the server calls it, later,
 * from a thread of its own, and the callback runs (in a helper). */
static void test_an_idle_client_is_served(void **state)
{
	(void)state;
	struct server *sv = server_start();
	remo_session *s = client(sv);
	remo_value fn = remo_function("idle_callback", "v()",
	                              (void (*)(void))idle_callback, NULL), v;
	atomic_store(&idle_called, 0);
	assert_int_equal(call(s, "call_later",
	                      remo_tuple_of(1, remo_value_retain(fn)), 0, &v),
	                 REMO_OK);
	/* no call of ours from here: up to 10 s, not a timing assertion */
	for (int i = 0; i < 1000 && !atomic_load(&idle_called); i++)
		usleep(10000);
	assert_true(atomic_load(&idle_called));
	remo_value_release(fn);
	remo_session_free(s);
	server_stop(sv);
}

static int method(remo_value v, const char *m, remo_value args,
                  remo_value *out);

/* remo_readonly: a peer's writes fail with PermissionError, its reads
 * and this process's own writes go on; cleared, peers write again. */
static void test_readonly_to_peers(void **state)
{
	(void)state;
	struct server *sv = server_start();
	remo_session *s = client(sv);
	remo_value d, l, v, k = remo_str("k");
	assert_int_equal(remo_lookup(s, "shared", &d), REMO_OK);
	assert_int_equal(remo_lookup(s, "list", &l), REMO_OK);
	assert_int_equal(remo_setitem(d, k, remo_int(1)), REMO_OK);
	assert_int_equal(remo_readonly(sv->shared, true), REMO_OK);
	assert_int_equal(remo_readonly(sv->list, true), REMO_OK);
	assert_int_equal(remo_readonly(remo_int(1), true), REMO_ETYPE);
	assert_int_equal(remo_setitem(d, k, remo_int(2)), REMO_ERAISED);
	assert_string_equal(remo_error_name(remo_last_error()),
	                    "PermissionError");
	assert_int_equal(method(l, "append", remo_tuple_of(1, remo_int(5)), &v),
	                 REMO_ERAISED);
	assert_string_equal(remo_error_name(remo_last_error()),
	                    "PermissionError");
	assert_int_equal(method(d, "clear", remo_nil(), &v), REMO_ERAISED);
	assert_int_equal(remo_getitem(d, k, &v), REMO_OK); /* reads go on */
	assert_int_equal(v.as.i, 1);
	assert_int_equal(remo_dict_set_str(sv->shared, "local", remo_int(3)),
	                 REMO_OK);
	assert_int_equal(remo_readonly(sv->shared, false), REMO_OK);
	assert_int_equal(remo_setitem(d, k, remo_int(2)), REMO_OK);
	assert_int_equal(remo_list_len(sv->list), 0);
	assert_int_equal(remo_readonly(sv->list, false), REMO_OK);
	remo_value_release(k);
	remo_value_release(d);
	remo_value_release(l);
	remo_session_free(s);
	server_stop(sv);
}

/* ==== cancellation and deadlines ========================================= */

/* A caller's timeout reaches a running call: remo_cancelled() turns true
 * there, and the caller gets TimeoutError. */
static void test_a_timeout_reaches_the_running_call(void **state)
{
	(void)state;
	struct server *sv = server_start();
	remo_session *s = client(sv);
	remo_value v;
	assert_int_equal(call(s, "wait_gate", remo_nil(), 200, &v),
	                 REMO_ETIMEDOUT);
	assert_string_equal(remo_error_name(remo_last_error()), "TimeoutError");
	/* the message says which call, and how long it had */
	assert_string_equal(remo_error_message(remo_last_error()),
	                    "call: no answer in 200 ms");
	until_int(s, "saw_cancel", 1);
	remo_session_free(s);
	server_stop(sv);
}

static void test_the_deadline_travels_with_the_request(void **state)
{
	(void)state;
	struct server *sv = server_start();
	remo_session *s = client(sv);
	remo_value v;
	assert_int_equal(call(s, "deadline_left", remo_nil(), 5000, &v), REMO_OK);
	assert_true(v.as.i > 0 && v.as.i <= 5000);
	assert_int_equal(call_int(s, "deadline_left"), -1); /* none */
	assert_int_equal(call(s, "caller_has_session", remo_nil(), 0, &v),
	                 REMO_OK);
	assert_true(v.kind == REMO_BOOL && v.as.b);
	remo_session_free(s);
	server_stop(sv);
}

/* ==== deferred replies: a box that loses nothing ========================== */

/* take() waits for put() in no thread: the answer comes from put's. */
static void test_a_deferred_take_is_answered_by_a_put(void **state)
{
	(void)state;
	struct server *sv = server_start();
	remo_session *a = client(sv), *b = client(sv);
	remo_value fn, v;
	assert_int_equal(remo_lookup(a, "take", &fn), REMO_OK);
	remo_future *f;
	assert_int_equal(remo_call_async(fn, remo_nil(), NULL, &f), REMO_OK);
	until_int(b, "waiting", 1);
	put(b, 7);
	assert_int_equal(remo_future_wait(f, 10000, &v), REMO_OK);
	assert_int_equal(v.as.i, 7);
	assert_int_equal(call_int(b, "count"), 0);
	remo_future_free(f);
	remo_value_release(fn);
	remo_session_free(a);
	remo_session_free(b);
	server_stop(sv);
}

/* A taker that times out: its take is cancelled at the server, so the
 * next put is stored, not sent to a caller who left. */
static void test_a_timed_out_take_loses_nothing(void **state)
{
	(void)state;
	struct server *sv = server_start();
	remo_session *a = client(sv), *b = client(sv);
	remo_value v;
	assert_int_equal(call(a, "take", remo_nil(), 200, &v), REMO_ETIMEDOUT);
	assert_string_equal(remo_error_name(remo_last_error()), "TimeoutError");
	assert_int_equal(call_int(b, "waiting"), 0);
	assert_int_equal(atomic_load(&box_cancel_hooks), 1);
	put(b, 8);
	assert_int_equal(take(b), 8);
	assert_int_equal(atomic_load(&box_answered_after_cancel), 0);
	remo_session_free(a);
	remo_session_free(b);
	server_stop(sv);
}

/* A taker that cancels its async take: the same. */
static void test_a_cancelled_take_loses_nothing(void **state)
{
	(void)state;
	struct server *sv = server_start();
	remo_session *a = client(sv), *b = client(sv);
	remo_value fn;
	assert_int_equal(remo_lookup(a, "take", &fn), REMO_OK);
	/* many times: the confirmation once overtook the cancel hook (the
	 * hook now runs first, so "waiting" is 0 when cancel returns) */
	for (int i = 0; i < 50; i++) {
		remo_future *f;
		assert_int_equal(remo_call_async(fn, remo_nil(), NULL, &f),
		                 REMO_OK);
		until_int(b, "waiting", 1);
		assert_int_equal(remo_future_cancel(f), REMO_OK);
		assert_int_equal(remo_future_wait(f, 0, NULL), REMO_ECANCELED);
		assert_int_equal(call_int(b, "waiting"), 0);
		remo_future_free(f);
	}
	put(b, 9);
	assert_int_equal(take(b), 9);
	remo_value_release(fn);
	remo_session_free(a);
	remo_session_free(b);
	server_stop(sv);
}

static int taker_main(const char *url)
{
	remo_session *s;
	if (remo_connect(url, 5000, NULL, NULL, &s) != REMO_OK)
		return 1;
	printf("TAKING\n");
	fflush(stdout);
	remo_value v;
	int rc = call(s, "take", remo_nil(), 0, &v);
	printf("GOT %d %lld\n", rc, (long long)v.as.i);
	fflush(stdout);
	remo_session_free(s);
	return 0;
}

/* A taker process that is SIGKILLed while it waits: its session ends,
 * its take is cancelled, and the next put is stored. */
static void test_a_killed_taker_loses_nothing(void **state)
{
	(void)state;
	struct server *sv = server_start();
	remo_session *b = client(sv);
	int out;
	pid_t pid = spawn(&out, "--taker", sv->url, NULL, NULL);
	char line[64];
	read_line(out, line, sizeof line, 10000);
	assert_string_equal(line, "TAKING\n");
	until_int(b, "waiting", 1);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(out);
	until_int(b, "waiting", 0);
	put(b, 10);
	assert_int_equal(take(b), 10);
	remo_session_free(b);
	server_stop(sv);
}

static int count_threads(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	int n = -1;
	while (f != NULL && fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	if (f != NULL)
		fclose(f);
	return n;
}

/* Two hundred callers parked in take() hold no thread of the server's
 * (this process is both: its thread count is what it was, give or take
 * the helpers and the lease thread). */
#define PARKED 200
static void test_parked_takers_hold_no_threads(void **state)
{
	(void)state;
	struct server *sv = server_start();
	remo_session *a = client(sv), *b = client(sv);
	int before = count_threads();
	remo_value fn, v;
	assert_int_equal(remo_lookup(a, "take", &fn), REMO_OK);
	remo_future *f[PARKED];
	for (int i = 0; i < PARKED; i++)
		assert_int_equal(remo_call_async(fn, remo_nil(), NULL, &f[i]),
		                 REMO_OK);
	until_int(b, "waiting", PARKED);
	int parked = count_threads();
	assert_true(parked - before < 8);
	for (int i = 0; i < PARKED; i++)
		put(b, i);
	/* each put went to exactly one taker (in the order their take()
	 * registered: async calls of one session may start concurrently,
	 * so that is not always the order they were sent in) */
	bool seen[PARKED] = {false};
	for (int i = 0; i < PARKED; i++) {
		assert_int_equal(remo_future_wait(f[i], 10000, &v), REMO_OK);
		assert_true(v.as.i >= 0 && v.as.i < PARKED && !seen[v.as.i]);
		seen[v.as.i] = true;
		remo_future_free(f[i]);
	}
	remo_value_release(fn);
	remo_session_free(a);
	remo_session_free(b);
	server_stop(sv);
}

/* ==== one-way calls: a bounded wait ======================================= */

static void sink(int64_t x) { (void)x; }

static void *serve_a_while(void *arg)
{
	remo_session_serve(arg, 300);
	return NULL;
}

/*
 * A publisher of one-way calls whose subscriber stopped serving: every
 * REMO_ONEWAY_WINDOW calls it waits for the peer to catch up, and that
 * wait now ends at the session's timeout with TimeoutError (the call
 * is not sent); it used to wait for ever.
 */
static void test_a_oneway_publisher_waits_a_bounded_time(void **state)
{
	(void)state;
	remo_channel ca, cb;
	assert_int_equal(remo_pipe(&ca, &cb), REMO_OK);
	remo_exports *ex = remo_exports_new();
	export_fn(ex, "sink", "v(x:q)", (void (*)(void))sink);
	int rc;
	remo_session_opts oa = {.timeout_ms = 300};
	remo_session *b = remo_session_new(&cb, ex, NULL, &rc);
	remo_session *a = remo_session_new(&ca, NULL, &oa, &rc);
	assert_non_null(a);
	assert_non_null(b);
	pthread_t th; /* b serves the lookup, then nothing more */
	pthread_create(&th, NULL, serve_a_while, b);
	remo_value fn;
	assert_int_equal(remo_lookup(a, "sink", &fn), REMO_OK);
	pthread_join(th, NULL);
	int sent = 0;
	remo_value args = remo_tuple_of(1, remo_int(1));
	while (sent < 3 * REMO_ONEWAY_WINDOW &&
	       (rc = remo_call_oneway(fn, args)) == REMO_OK)
		sent++;
	assert_int_equal(sent, REMO_ONEWAY_WINDOW);
	assert_int_equal(rc, REMO_ERAISED);
	assert_string_equal(remo_error_name(remo_last_error()), "TimeoutError");
	remo_value_release(args);
	remo_value_release(fn);
	remo_session_free(a);
	remo_session_free(b);
	remo_exports_free(ex);
}

/* ==== a busy listener ==================================================== */

/*
 * A unix listener whose backlog is full makes connect() say EAGAIN: not
 * connected.  remo_channel_connect took that for a connection in
 * progress and returned REMO_OK for a socket that was not connected (the
 * first send then failed: PeerLost under a burst of connects).  Now it
 * waits for room until its timeout.
 */
static void test_a_full_backlog_is_waited_for(void **state)
{
	(void)state;
	char dir[] = "/tmp/remo-backlog-XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s/s.sock", dir);
	int lst = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(lst, (struct sockaddr *)&sun, sizeof sun), 0);
	assert_int_equal(listen(lst, 0), 0);
	int first = socket(AF_UNIX, SOCK_STREAM, 0); /* fills the backlog */
	assert_int_equal(connect(first, (struct sockaddr *)&sun, sizeof sun), 0);
	char url[160];
	snprintf(url, sizeof url, "unix://%s", sun.sun_path);
	remo_channel ch;
	assert_int_equal(remo_channel_connect(url, 200, &ch), REMO_ETIMEDOUT);
	/* room again: the listener takes the first */
	int a = accept(lst, NULL, NULL);
	assert_true(a >= 0);
	assert_int_equal(remo_channel_connect(url, 2000, &ch), REMO_OK);
	ch.destroy(ch.user);
	close(a);
	close(first);
	close(lst);
	unlink(sun.sun_path);
	rmdir(dir);
}

/* ==== by value ============================================================ */

/* A dict made with remo_by_value arrives as a local dict, and so does
 * everything nested in it; a plain one arrives as a proxy. */
static void test_a_dict_sent_by_value_arrives_local(void **state)
{
	(void)state;
	struct server *sv = server_start();
	remo_session *s = client(sv);
	remo_value d = remo_dict(), inner = remo_dict(), l = remo_list(), v;
	remo_list_append(l, remo_int(1));
	remo_list_append(l, remo_value_retain(inner));
	remo_dict_set_str(inner, "c", remo_int(3));
	remo_dict_set_str(d, "a", remo_value_retain(l));
	remo_dict_set_str(d, "b", remo_value_retain(inner));
	remo_value bv = remo_by_value(d);
	assert_true(remo_ok(bv));
	assert_true(remo_equal(bv, d)); /* a copy: equal, not the same */
	assert_int_equal(call(s, "is_local", remo_tuple_of(1,
	                      remo_value_retain(bv)), 0, &v), REMO_OK);
	assert_true(v.kind == REMO_BOOL && v.as.b);
	assert_int_equal(call(s, "is_local", remo_tuple_of(1,
	                      remo_value_retain(d)), 0, &v), REMO_OK);
	assert_true(v.kind == REMO_BOOL && !v.as.b);
	/* changing the original after does not change the copy */
	remo_dict_set_str(inner, "c", remo_int(4));
	remo_value c;
	assert_int_equal(remo_dict_get_str(bv, "b", &c), REMO_OK);
	assert_int_equal(remo_dict_get_str(c, "c", &c), REMO_OK);
	assert_int_equal(c.as.i, 3);
	assert_false(remo_ok(remo_by_value(remo_int(1))));
	/* a tuple: its lists and dicts go by value */
	remo_value tup = remo_tuple_of(2, remo_int(1), remo_value_retain(l));
	remo_value tv = remo_by_value(tup);
	assert_int_equal(call(s, "is_local", remo_tuple_of(1,
	                      remo_value_retain(tv)), 0, &v), REMO_OK);
	assert_true(v.kind == REMO_BOOL && v.as.b);
	remo_value_release(tv);
	remo_value_release(tup);
	remo_value_release(bv);
	remo_value_release(d);
	remo_value_release(inner);
	remo_value_release(l);
	remo_session_free(s);
	server_stop(sv);
}

/* remo_pack outside a session refuses a live proxy (it packed it as a
 * bare id, which read back as an inert reference) and a local object. */
static void test_pack_refuses_a_live_proxy(void **state)
{
	(void)state;
	struct server *sv = server_start();
	remo_session *s = client(sv);
	remo_value d;
	assert_int_equal(remo_lookup(s, "shared", &d), REMO_OK);
	assert_true(remo_is_proxy(d));
	remo_buf b = {0};
	assert_int_equal(remo_pack(d, &b), REMO_EINVAL);
	assert_string_equal(remo_error_name(remo_last_error()), "TypeError");
	assert_int_equal(b.len, 0);
	remo_value t = remo_tuple_of(2, remo_int(1), remo_value_retain(d));
	assert_int_equal(remo_pack(t, &b), REMO_EINVAL); /* nested too */
	assert_int_equal(b.len, 0);
	remo_value o = remo_object(reader_type, &shared_x, NULL);
	assert_int_equal(remo_pack(o, &b), REMO_EINVAL);
	remo_value_release(o);
	remo_value_release(t);
	remo_value_release(d);
	remo_buf_free(&b);
	remo_session_free(s);
	server_stop(sv);
}

/* ==== the container protocol on proxies =================================== */

/* m(args...) on the proxy v: the result (or the failure's status). */
static int method(remo_value v, const char *m, remo_value args,
                  remo_value *out)
{
	int rc = remo_call_method(v, m, args, out);
	remo_value_release(args);
	return rc;
}

static void expect_list(remo_value l, int n, const int64_t *want)
{
	assert_int_equal(remo_list_len(l), n);
	for (int i = 0; i < n; i++)
		assert_int_equal(remo_list_get(l, (size_t)i).as.i, want[i]);
}

static void test_a_remote_list_has_the_list_methods(void **state)
{
	(void)state;
	struct server *sv = server_start();
	remo_session *s = client(sv);
	remo_value l, v;
	assert_int_equal(remo_lookup(s, "list", &l), REMO_OK);
	assert_int_equal(method(l, "append", remo_tuple_of(1, remo_int(1)), &v),
	                 REMO_OK);
	assert_int_equal(method(l, "extend", remo_tuple_of(1, remo_tuple_of(2,
	                 remo_int(2), remo_int(3))), &v), REMO_OK);
	assert_int_equal(method(l, "insert", remo_tuple_of(2, remo_int(0),
	                 remo_int(0)), &v), REMO_OK);
	expect_list(sv->list, 4, (int64_t[]){0, 1, 2, 3});
	assert_int_equal(method(l, "pop", remo_nil(), &v), REMO_OK);
	assert_int_equal(v.as.i, 3);
	assert_int_equal(method(l, "index", remo_tuple_of(1, remo_int(2)), &v),
	                 REMO_OK);
	assert_int_equal(v.as.i, 2);
	assert_int_equal(method(l, "remove", remo_tuple_of(1, remo_int(1)), &v),
	                 REMO_OK);
	expect_list(sv->list, 2, (int64_t[]){0, 2});
	assert_int_equal(method(l, "remove", remo_tuple_of(1, remo_int(9)), &v),
	                 REMO_ERAISED);
	assert_string_equal(remo_error_name(remo_last_error()), "ValueError");
	assert_int_equal(method(l, "slice", remo_tuple_of(2, remo_int(-1),
	                 remo_int(99)), &v), REMO_OK);
	assert_true(v.kind == REMO_LIST); /* a local copy */
	expect_list(v, 1, (int64_t[]){2});
	remo_value_release(v);
	assert_int_equal(method(l, "delete", remo_tuple_of(1, remo_int(0)), &v),
	                 REMO_OK);
	expect_list(sv->list, 1, (int64_t[]){2});
	assert_int_equal(method(l, "clear", remo_nil(), &v), REMO_OK);
	assert_int_equal(remo_list_len(sv->list), 0);
	assert_int_equal(method(l, "sort", remo_nil(), &v), REMO_ERAISED);
	assert_string_equal(remo_error_name(remo_last_error()),
	                    "AttributeError");
	/* the local list functions refuse the proxy, by name */
	assert_int_equal(remo_list_len(l), 0);
	assert_string_equal(remo_error_name(remo_last_error()), "TypeError");
	assert_int_equal(remo_list_append(l, remo_int(1)), REMO_ETYPE);
	remo_value_release(l);
	remo_session_free(s);
	server_stop(sv);
}

static void test_a_remote_dict_has_the_dict_methods(void **state)
{
	(void)state;
	struct server *sv = server_start();
	remo_session *s = client(sv);
	remo_value d, v;
	assert_int_equal(remo_lookup(s, "shared", &d), REMO_OK);
	remo_value k = remo_str("k");
	assert_int_equal(method(d, "setdefault", remo_tuple_of(2,
	                 remo_value_retain(k), remo_int(1)), &v), REMO_OK);
	assert_int_equal(v.as.i, 1);
	assert_int_equal(method(d, "setdefault", remo_tuple_of(2,
	                 remo_value_retain(k), remo_int(2)), &v), REMO_OK);
	assert_int_equal(v.as.i, 1); /* kept */
	remo_value upd = remo_dict();
	remo_dict_set_str(upd, "a", remo_int(10));
	remo_dict_set_str(upd, "b", remo_int(20));
	assert_int_equal(method(d, "update", remo_tuple_of(1,
	                 remo_by_value(upd)), &v), REMO_OK);
	assert_int_equal(method(d, "update", remo_tuple_of(1,
	                 remo_value_retain(upd)), &v), REMO_OK); /* a proxy */
	remo_value_release(upd);
	assert_int_equal(remo_dict_len(sv->shared), 3);
	assert_int_equal(method(d, "keys", remo_nil(), &v), REMO_OK);
	assert_true(v.kind == REMO_LIST && remo_list_len(v) == 3);
	assert_string_equal(remo_str_data(remo_list_get(v, 0), NULL), "k");
	remo_value_release(v);
	assert_int_equal(method(d, "items", remo_nil(), &v), REMO_OK);
	assert_true(v.kind == REMO_LIST && remo_list_len(v) == 3);
	assert_int_equal(remo_tuple_get(remo_list_get(v, 2), 1).as.i, 20);
	remo_value_release(v);
	assert_int_equal(method(d, "pop", remo_tuple_of(1, remo_str("a")), &v),
	                 REMO_OK);
	assert_int_equal(v.as.i, 10);
	assert_int_equal(method(d, "pop", remo_tuple_of(1, remo_str("a")), &v),
	                 REMO_ERAISED);
	assert_string_equal(remo_error_name(remo_last_error()), "KeyError");
	assert_int_equal(method(d, "pop", remo_tuple_of(2, remo_str("a"),
	                 remo_int(7)), &v), REMO_OK);
	assert_int_equal(v.as.i, 7);
	assert_int_equal(method(d, "get", remo_tuple_of(1, remo_str("zz")), &v),
	                 REMO_OK);
	assert_int_equal(v.kind, REMO_NIL);
	assert_int_equal(method(d, "delete", remo_tuple_of(1,
	                 remo_value_retain(k)), &v), REMO_OK);
	assert_int_equal(remo_dict_len(sv->shared), 1);
	assert_int_equal(method(d, "clear", remo_nil(), &v), REMO_OK);
	assert_int_equal(remo_dict_len(sv->shared), 0);
	/* tastypy's case: pod["foo"]["baz"].append("fizz") through proxies */
	remo_value foo = remo_dict(), baz = remo_list(), p1, p2;
	remo_dict_set_str(foo, "baz", remo_value_retain(baz));
	remo_dict_set_str(sv->shared, "foo", remo_value_retain(foo));
	remo_value kfoo = remo_str("foo"), kbaz = remo_str("baz");
	assert_int_equal(remo_getitem(d, kfoo, &p1), REMO_OK);
	assert_int_equal(remo_getitem(p1, kbaz, &p2), REMO_OK);
	assert_int_equal(method(p2, "append", remo_tuple_of(1,
	                 remo_str("fizz")), &v), REMO_OK);
	assert_string_equal(remo_str_data(remo_list_get(baz, 0), NULL), "fizz");
	remo_value_release(kfoo);
	remo_value_release(kbaz);
	remo_value_release(p1);
	remo_value_release(p2);
	remo_value_release(foo);
	remo_value_release(baz);
	remo_value_release(k);
	remo_value_release(d);
	remo_session_free(s);
	server_stop(sv);
}

/* ==== forwarding: three processes ======================================== */

/*
 * The middle: connects to the home (URL), looks up what the home exports
 * and exports those proxies in a server of its own (unix:// in DIR),
 * prints "READY <url>" and serves until SIGTERM or SIGKILL.
 */
static remo_server *volatile middle_srv;
static void middle_stop(int sig)
{
	(void)sig;
	if (middle_srv != NULL)
		remo_server_stop(middle_srv);
}

static int middle_main(const char *home_url, const char *dir)
{
	types_init(); /* the same program: its types are registered */
	remo_session *s;
	if (remo_connect(home_url, 5000, NULL, NULL, &s) != REMO_OK)
		return 1;
	remo_exports *ex = remo_exports_new();
	const char *names[] = {"reader", "count", "list", "shared", "is_reader",
	                       "wait_gate", NULL};
	for (int i = 0; names[i] != NULL; i++) {
		remo_value v;
		if (remo_lookup(s, names[i], &v) != REMO_OK ||
		    remo_export(ex, names[i], v) != REMO_OK)
			return 1;
		remo_value_release(v);
	}
	remo_server *srv = remo_server_new(ex, NULL, NULL);
	char url[256], bound[256];
	snprintf(url, sizeof url, "unix://%s/middle.sock", dir);
	if (srv == NULL || remo_server_listen(srv, url, bound, sizeof bound) !=
	                   REMO_OK)
		return 1;
	printf("READY %s\n", bound);
	fflush(stdout);
	signal(SIGTERM, middle_stop);
	middle_srv = srv;
	remo_server_run(srv);
	remo_server_free(srv);
	remo_exports_free(ex);
	remo_session_free(s);
	return 0;
}

struct fwd {
	struct server *home;
	pid_t pid;
	int out;
	char url[320];
	remo_session *end;
};

static void fwd_start(struct fwd *f)
{
	f->home = server_start();
	f->pid = spawn(&f->out, "--middle", f->home->url, f->home->dir, NULL);
	char line[300];
	read_line(f->out, line, sizeof line, 10000);
	if (strncmp(line, "READY ", 6) != 0)
		fail_msg("the middle did not start: '%s'", line);
	line[strcspn(line, "\n")] = '\0';
	snprintf(f->url, sizeof f->url, "%s", line + 6);
	assert_int_equal(remo_connect(f->url, 5000, NULL, NULL, &f->end),
	                 REMO_OK);
}

static void fwd_stop(struct fwd *f, int sig)
{
	remo_session_free(f->end);
	kill(f->pid, sig);
	waitpid(f->pid, NULL, 0);
	close(f->out);
	char path[300];
	snprintf(path, sizeof path, "%s/middle.sock", f->home->dir);
	unlink(path);
	server_stop(f->home);
}

/* An object, a function, a list and a dict of the home, passed on by the
 * middle, used at the end: shapes travel with them, calls are relayed,
 * and the reader sent back through the middle arrives home as itself. */
static void test_references_forwarded_through_a_middle_process(void **state)
{
	(void)state;
	struct fwd f = {0};
	fwd_start(&f);
	remo_value r, fn, l, d, v;
	assert_int_equal(remo_lookup(f.end, "reader", &r), REMO_OK);
	assert_string_equal(remo_type_name(r), "Reader");
	assert_int_equal(remo_call_method(r, "get", remo_nil(), &v), REMO_OK);
	assert_int_equal(v.as.i, 21);
	assert_int_equal(remo_lookup(f.end, "count", &fn), REMO_OK);
	assert_int_equal(remo_call(fn, remo_nil(), &v), REMO_OK);
	assert_int_equal(v.as.i, 0);
	assert_int_equal(remo_lookup(f.end, "list", &l), REMO_OK);
	assert_int_equal(method(l, "append", remo_tuple_of(1, remo_int(5)), &v),
	                 REMO_OK);
	assert_int_equal(remo_list_len(f.home->list), 1);
	/* a dict sent by value through the middle arrives home by value,
	 * not as a reference to the middle's copy; one sent by reference
	 * stays a reference (to the end's) */
	remo_value dv = remo_dict(), byval = remo_by_value(dv);
	remo_dict_set_str(dv, "k", remo_int(1));
	remo_value byref = dv;
	assert_int_equal(method(l, "append", remo_tuple_of(1, byval), &v),
	                 REMO_OK);
	assert_int_equal(method(l, "append", remo_tuple_of(1,
	                 remo_value_retain(byref)), &v), REMO_OK);
	assert_int_equal(remo_list_len(f.home->list), 3);
	assert_false(remo_is_proxy(remo_list_get(f.home->list, 1)));
	assert_int_equal(remo_list_get(f.home->list, 1).kind, REMO_DICT);
	assert_true(remo_is_proxy(remo_list_get(f.home->list, 2)));
	remo_list_del(f.home->list, 2);
	remo_list_del(f.home->list, 1);
	remo_value_release(byref);
	/* forced through the middle: the chunks come from the home */
	remo_value copy;
	assert_int_equal(remo_force(l, &copy), REMO_OK);
	assert_int_equal(remo_list_len(copy), 1);
	assert_int_equal(remo_list_get(copy, 0).as.i, 5);
	remo_value_release(copy);
	assert_int_equal(remo_lookup(f.end, "shared", &d), REMO_OK);
	remo_value k = remo_str("via");
	assert_int_equal(remo_setitem(d, k, remo_int(3)), REMO_OK);
	remo_value_release(k);
	assert_int_equal(remo_dict_len(f.home->shared), 1);
	/* home again: the end passes the middle's reader to the home's
	 * is_reader, through the middle */
	remo_value is;
	assert_int_equal(remo_lookup(f.end, "is_reader", &is), REMO_OK);
	remo_value args = remo_tuple_of(1, remo_value_retain(r));
	assert_int_equal(remo_call(is, args, &v), REMO_OK);
	assert_true(v.kind == REMO_BOOL && v.as.b);
	remo_value_release(args);
	remo_value_release(is);
	remo_value_release(r);
	remo_value_release(fn);
	remo_value_release(l);
	remo_value_release(d);
	fwd_stop(&f, SIGTERM);
}

struct gate_wait {
	remo_value fn;
	int rc;
};

static void *gate_waiter(void *arg)
{
	struct gate_wait *g = arg;
	remo_value v;
	g->rc = remo_call(g->fn, remo_nil(), &v);
	remo_value_release(v);
	return NULL;
}

/* The middle killed while the end's call waits at the home: the end's
 * call fails (PeerLost), and the home's call learns it was cancelled
 * (its caller, the middle's session, ended). */
static void test_the_middle_killed_mid_call(void **state)
{
	(void)state;
	struct fwd f = {0};
	fwd_start(&f);
	struct gate_wait g = {.rc = -1};
	assert_int_equal(remo_lookup(f.end, "wait_gate", &g.fn), REMO_OK);
	pthread_t th;
	pthread_create(&th, NULL, gate_waiter, &g);
	usleep(200000); /* the call is waiting at the home */
	kill(f.pid, SIGKILL);
	pthread_join(th, NULL);
	assert_int_equal(g.rc, REMO_EPEERLOST);
	for (int i = 0; i < 500 && atomic_load(&gate_saw_cancel) == 0; i++)
		usleep(10000);
	assert_int_equal(atomic_load(&gate_saw_cancel), 1);
	remo_value_release(g.fn);
	fwd_stop(&f, SIGKILL);
}

/* ==== observers =========================================================== */

static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static remo_value seen; /* list of (path, op, key) */

static void on_change(remo_value root, remo_value path, const char *op,
                      remo_value key, void *user)
{
	(void)root;
	(void)user;
	pthread_mutex_lock(&seen_lock);
	remo_list_append(seen, remo_tuple_of(3, remo_value_retain(path),
	                                     remo_str(op),
	                                     remo_value_retain(key)));
	pthread_mutex_unlock(&seen_lock);
}

/* A client process: shared["a"]["b"]["xN"] = N and
 * shared["a"]["b"]["c"].append(N), through proxies. */
static int nested_main(const char *url, int n)
{
	remo_session *s = NULL;
	remo_value d = remo_nil(), a = remo_nil(), b = remo_nil(),
	           c = remo_nil(), v = remo_nil();
	remo_value ka = remo_str("a"), kb = remo_str("b"), kc = remo_str("c");
	char x[16];
	snprintf(x, sizeof x, "x%d", n);
	remo_value kx = remo_str(x), args = remo_tuple_of(1, remo_int(n));
	int rc = 1;
	if (remo_connect(url, 5000, NULL, NULL, &s) != REMO_OK ||
	    remo_lookup(s, "shared", &d) != REMO_OK ||
	    remo_getitem(d, ka, &a) != REMO_OK ||
	    remo_getitem(a, kb, &b) != REMO_OK ||
	    remo_setitem(b, kx, remo_int(n)) != REMO_OK ||
	    remo_getitem(b, kc, &c) != REMO_OK ||
	    remo_call_method(c, "append", args, &v) != REMO_OK) {
		fprintf(stderr, "nested: %s\n",
		        remo_error_message(remo_last_error()));
	} else {
		printf("DONE\n");
		rc = 0;
	}
	fflush(stdout);
	remo_value vals[] = {d, a, b, c, v, ka, kb, kc, kx, args};
	for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
		remo_value_release(vals[i]);
	remo_session_free(s);
	return rc;
}

static bool path_is(remo_value path, int n, const char *const *keys)
{
	if (remo_tuple_len(path) != (size_t)n)
		return false;
	for (int i = 0; i < n; i++)
		if (strcmp(remo_str_data(remo_tuple_get(path, (size_t)i), NULL),
		           keys[i]) != 0)
			return false;
	return true;
}

/* Three levels of nested writes through proxies, from two client
 * processes: each reported once to the root's observer, with its path. */
static void test_nested_writes_reach_the_root_observer(void **state)
{
	(void)state;
	struct server *sv = server_start();
	remo_value a = remo_dict(), b = remo_dict(), c = remo_list();
	remo_dict_set_str(b, "c", c);
	remo_dict_set_str(a, "b", b);
	remo_dict_set_str(sv->shared, "a", a);
	seen = remo_list();
	assert_int_equal(remo_observe(sv->shared, on_change, NULL), REMO_OK);
	assert_int_equal(remo_observe(sv->shared, on_change, NULL), REMO_EEXIST);
	pid_t pid[2];
	int out[2];
	pid[0] = spawn(&out[0], "--nested", sv->url, "1", NULL);
	pid[1] = spawn(&out[1], "--nested", sv->url, "2", NULL);
	for (int i = 0; i < 2; i++) {
		char line[64];
		read_line(out[i], line, sizeof line, 20000);
		waitpid(pid[i], NULL, 0);
		close(out[i]);
		assert_string_equal(line, "DONE\n");
	}
	static const char *const ab[] = {"a", "b"}, *const abc[] = {"a", "b",
	                                                            "c"};
	int sets = 0, appends = 0;
	pthread_mutex_lock(&seen_lock);
	assert_int_equal(remo_list_len(seen), 4);
	for (size_t i = 0; i < remo_list_len(seen); i++) {
		remo_value e = remo_list_get(seen, i);
		const char *op = remo_str_data(remo_tuple_get(e, 1), NULL);
		if (strcmp(op, "set") == 0) {
			assert_true(path_is(remo_tuple_get(e, 0), 2, ab));
			sets++;
		} else {
			assert_string_equal(op, "append");
			assert_true(path_is(remo_tuple_get(e, 0), 3, abc));
			appends++;
		}
	}
	pthread_mutex_unlock(&seen_lock);
	assert_int_equal(sets, 2);
	assert_int_equal(appends, 2);
	/* a container stored later joins; stopping stops */
	remo_value e = remo_dict();
	remo_dict_set_str(sv->shared, "e", remo_value_retain(e));
	remo_dict_set_str(e, "f", remo_int(1));
	assert_int_equal(remo_list_len(seen), 6);
	assert_int_equal(remo_observe(sv->shared, NULL, NULL), REMO_OK);
	remo_dict_set_str(e, "g", remo_int(2));
	remo_dict_set_str(sv->shared, "h", remo_int(3));
	assert_int_equal(remo_list_len(seen), 6);
	remo_value_release(e);
	remo_value_release(seen);
	server_stop(sv);
}

/* ==== container slots ===================================================== */

/* A registered type with container slots, used through a proxy exactly
 * like a remote dict (and locally the same way). */
static void test_a_type_with_container_slots(void **state)
{
	(void)state;
	struct server *sv = server_start();
	remo_session *s = client(sv);
	remo_value st, v, k = remo_str("k"), nope = remo_str("nope");
	assert_int_equal(remo_lookup(s, "store", &st), REMO_OK);
	assert_int_equal(remo_setitem(st, k, remo_int(7)), REMO_OK);
	size_t n;
	assert_int_equal(remo_len(st, &n), REMO_OK);
	assert_int_equal(n, 1);
	assert_int_equal(remo_getitem(st, k, &v), REMO_OK);
	assert_int_equal(v.as.i, 7);
	bool has;
	assert_int_equal(remo_contains(st, k, &has), REMO_OK);
	assert_true(has);
	assert_int_equal(remo_getitem(st, nope, &v), REMO_ERAISED);
	assert_string_equal(remo_error_name(remo_last_error()), "KeyError");
	assert_int_equal(remo_delitem(st, k), REMO_OK);
	assert_int_equal(remo_dict_len(the_store.d), 0);
	assert_int_equal(remo_delitem(st, k), REMO_ERAISED);
	/* and a remote dict deletes the same way */
	remo_value d;
	assert_int_equal(remo_lookup(s, "shared", &d), REMO_OK);
	assert_int_equal(remo_setitem(d, k, remo_int(1)), REMO_OK);
	assert_int_equal(remo_delitem(d, k), REMO_OK);
	assert_int_equal(remo_dict_len(sv->shared), 0);
	/* locally: the slots are called */
	remo_value local = remo_object(store_type, &the_store, NULL);
	assert_int_equal(remo_setitem(local, k, remo_int(9)), REMO_OK);
	assert_int_equal(remo_len(local, &n), REMO_OK);
	assert_int_equal(n, 1);
	remo_value_release(local);
	remo_value_release(d);
	remo_value_release(k);
	remo_value_release(nope);
	remo_value_release(st);
	remo_session_free(s);
	server_stop(sv);
}

int main(int argc, char **argv)
{
	self_path = argv[0];
	signal(SIGPIPE, SIG_IGN);
	if (argc == 5 && strcmp(argv[1], "--writer") == 0)
		return writer_main(argv[2], argv[3], atoi(argv[4]));
	if (argc >= 3 && strcmp(argv[1], "--taker") == 0)
		return taker_main(argv[2]);
	if (argc >= 4 && strcmp(argv[1], "--nested") == 0)
		return nested_main(argv[2], atoi(argv[3]));
	if (argc >= 4 && strcmp(argv[1], "--middle") == 0)
		return middle_main(argv[2], argv[3]);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_four_writers_one_dict),
		cmocka_unit_test(test_threads_share_a_list_and_a_dict),
		cmocka_unit_test(test_a_dict_that_holds_itself),
		cmocka_unit_test(test_a_handled_failure_does_not_fail_the_call),
		cmocka_unit_test(test_an_idle_client_is_served),
		cmocka_unit_test(test_readonly_to_peers),
		cmocka_unit_test(test_two_types_on_one_pointer_are_two_objects),
		cmocka_unit_test(test_a_blocked_call_does_not_stall_its_session),
		cmocka_unit_test(test_a_flooding_session_is_pushed_back),
		cmocka_unit_test(test_floods_share_the_process_budget),
		cmocka_unit_test(test_calls_pipelined_on_a_deferred_result_are_served),
		cmocka_unit_test(test_a_timeout_reaches_the_running_call),
		cmocka_unit_test(test_the_deadline_travels_with_the_request),
		cmocka_unit_test(test_a_deferred_take_is_answered_by_a_put),
		cmocka_unit_test(test_a_timed_out_take_loses_nothing),
		cmocka_unit_test(test_a_cancelled_take_loses_nothing),
		cmocka_unit_test(test_a_killed_taker_loses_nothing),
		cmocka_unit_test(test_parked_takers_hold_no_threads),
		cmocka_unit_test(test_a_oneway_publisher_waits_a_bounded_time),
		cmocka_unit_test(test_a_full_backlog_is_waited_for),
		cmocka_unit_test(test_a_dict_sent_by_value_arrives_local),
		cmocka_unit_test(test_pack_refuses_a_live_proxy),
		cmocka_unit_test(test_a_remote_list_has_the_list_methods),
		cmocka_unit_test(test_a_remote_dict_has_the_dict_methods),
		cmocka_unit_test(test_references_forwarded_through_a_middle_process),
		cmocka_unit_test(test_the_middle_killed_mid_call),
		cmocka_unit_test(test_nested_writes_reach_the_root_observer),
		cmocka_unit_test(test_a_type_with_container_slots),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
