/*
 * test_traceback.c -- remote tracebacks between two real sessions over
 * remo_pipe: what a failed call's error carries (frames with function,
 * file, line, locals), releasing it, live mode (the failing thread
 * parked until the caller lets go, or until live_ms), crash recovery,
 * a failure that crossed two hops, and errno by name.
 *
 * Lines are never written here: the subject functions store the line
 * they fail on (__LINE__) as they run.  Tests that crash are run with a
 * write to a read-only page under valgrind (memcheck allows it, the MMU
 * does not) and are skipped under ASan, which keeps SIGSEGV for itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <remo/trace.h>
#include <remo/transport.h>

#include "net/net.h"
#include "testutil.h"
#include "testpair.h"

/* ==== the subject: server functions that fail =========================== */

static atomic_int fail_line;       /* the line the subject failed on */
static atomic_bool returned;       /* the failing function went on   */

__attribute__((noinline)) static int64_t divide(int64_t a, int64_t b)
{
	int64_t scaled = a * 10;
	REMO_LOCAL(a);
	REMO_LOCAL(b);
	REMO_LOCAL(scaled);
	if (b == 0) {
		atomic_store(&fail_line, __LINE__ + 1);
		remo_raise("ZeroDivisionError", "%lld / 0", (long long)a);
		atomic_store(&returned, true);
		return 0;
	}
	return scaled / b;
}

static int *crash_target; /* NULL, or a read-only page under valgrind */

/*
 * Counting what a crashed thread allocates (issue 11: the handler
 * allocates nothing).  main installs count_alloc for the whole run; it
 * counts the calls of the thread in watch_tid, which poke sets just
 * before its fault when watch_poke says so.
 */
static atomic_bool watch_poke;
static atomic_int watch_tid, watched_allocs, poke_tid;

static int thread_id(void)
{
	return (int)syscall(SYS_gettid);
}

static void *count_malloc(size_t n)
{
	if (atomic_load_explicit(&watch_tid, memory_order_relaxed) == thread_id())
		atomic_fetch_add(&watched_allocs, 1);
	return malloc(n);
}

static void *count_realloc(void *q, size_t n)
{
	if (atomic_load_explicit(&watch_tid, memory_order_relaxed) == thread_id())
		atomic_fetch_add(&watched_allocs, 1);
	return realloc(q, n);
}

static const remo_allocator count_alloc = {count_malloc, count_realloc, free};

__attribute__((noinline)) static int64_t poke(int64_t depth)
{
	const char *what = "poking";
	REMO_LOCAL(depth);
	REMO_LOCAL(what);
	atomic_store(&poke_tid, thread_id());
	if (atomic_load(&watch_poke))
		atomic_store(&watch_tid, thread_id());
	atomic_store(&fail_line, __LINE__ + 1);
	*(volatile int *)crash_target = (int)depth;
	return depth;
}

/* A lock that only a child's allocator takes (locking_malloc), held
 * across a crash by poke_holding_the_allocator. */
static pthread_mutex_t alloc_lock = PTHREAD_MUTEX_INITIALIZER;

static void *locking_malloc(size_t n)
{
	pthread_mutex_lock(&alloc_lock);
	void *q = malloc(n);
	pthread_mutex_unlock(&alloc_lock);
	return q;
}

static void *locking_realloc(void *q, size_t n)
{
	pthread_mutex_lock(&alloc_lock);
	q = realloc(q, n);
	pthread_mutex_unlock(&alloc_lock);
	return q;
}

static const remo_allocator locking_alloc = {locking_malloc, locking_realloc,
                                             free};

/* A crash inside the allocator, as a double free is inside malloc. */
__attribute__((noinline)) static int64_t poke_holding_the_allocator(
	int64_t depth)
{
	pthread_mutex_lock(&alloc_lock);
	*(volatile int *)crash_target = (int)depth;
	pthread_mutex_unlock(&alloc_lock);
	return depth;
}

__attribute__((noinline)) static void open_missing(const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		remo_raise_errno(errno, "open %s", path);
		atomic_store(&returned, true); /* no tail call: keep the frame */
		return;
	}
	close(fd);
}

/* Calls fn (the caller's callback) and fails with what it failed with. */
__attribute__((noinline)) static void relay(remo_value fn)
{
	remo_value out;
	if (remo_call(fn, remo_nil(), &out) != REMO_OK) {
		atomic_store(&fail_line, __LINE__ + 1);
		remo_raise_value(remo_value_retain(remo_last_error()));
		return;
	}
	remo_value_release(out);
}

static atomic_int client_fail_line;

/* The client's callback for relay: fails in the client's process. */
__attribute__((noinline)) static void client_fails(void)
{
	int64_t tries = 3;
	REMO_LOCAL(tries);
	atomic_store(&client_fail_line, __LINE__ + 1);
	remo_raise("KeyError", "no key after %lld tries", (long long)tries);
	atomic_store(&returned, true); /* no tail call: keep the frame */
}

static int64_t add(int64_t a, int64_t b)
{
	return a + b;
}

/* ==== fixture ============================================================ */

struct pair {
	struct test_pair tp;
	remo_exports *exports;
};

static remo_session_opts server_opts;

/*
 * The server's channel, wrapped so a test can freeze its reader: while
 * frozen, a recv sleeps 300 ms before it looks, as a thread stopped in
 * a debugger would.
 */
struct freezer {
	remo_channel inner;
	atomic_bool frozen;
	const char *peer;  /* what the channel says of the client, or NULL */
};
static struct freezer *server_freezer;
/* The next pair's client, as the server's channel describes it. */
static const char *server_peer;

static int fz_peer(void *u, char *buf, size_t len)
{
	struct freezer *z = u;
	if (z->peer == NULL)
		return z->inner.peer(z->inner.user, buf, len);
	snprintf(buf, len, "%s", z->peer);
	return REMO_OK;
}

static int fz_send(void *u, const void *m, size_t n)
{
	struct freezer *z = u;
	return z->inner.send(z->inner.user, m, n);
}

static int fz_recv(void *u, remo_buf *b, int timeout_ms)
{
	struct freezer *z = u;
	if (atomic_load(&z->frozen))
		usleep(300 * 1000);
	return z->inner.recv(z->inner.user, b, timeout_ms);
}

static void fz_close(void *u)
{
	struct freezer *z = u;
	z->inner.close(z->inner.user);
}

static void fz_destroy(void *u)
{
	struct freezer *z = u;
	z->inner.destroy(z->inner.user);
	free(z);
}

static int pair_open(void **state, remo_session_opts opts)
{
	struct pair *p = calloc(1, sizeof *p);
	remo_channel a0, a, b;
	assert_int_equal(remo_pipe(&a0, &b), REMO_OK);
	server_freezer = calloc(1, sizeof *server_freezer);
	server_freezer->inner = a0;
	server_freezer->peer = server_peer;
	server_peer = NULL;
	a = (remo_channel){.send = fz_send, .recv = fz_recv, .close = fz_close,
	                   .destroy = fz_destroy, .user = server_freezer,
	                   .peer = fz_peer};
	p->exports = remo_exports_new();
	test_export_fn(p->exports, "divide", "q(a:q b:q)", (void (*)(void))divide);
	test_export_fn(p->exports, "poke", "q(depth:q)", (void (*)(void))poke);
	test_export_fn(p->exports, "open_missing", "v(path:s)",
	          (void (*)(void))open_missing);
	test_export_fn(p->exports, "relay", "v(fn:r)", (void (*)(void))relay);
	test_export_fn(p->exports, "add", "q(a:q b:q)", (void (*)(void))add);
	server_opts = opts;
	atomic_store(&returned, false);
	test_pair_open(&p->tp, a, p->exports, &opts, b, NULL, NULL);
	*state = p;
	return 0;
}

static int setup_snapshot(void **state)
{
	return pair_open(state, (remo_session_opts){0});
}

static int setup_live(void **state)
{
	return pair_open(state, (remo_session_opts){
		.traceback = REMO_TB_LIVE, .live_ms = 5000});
}

static int setup_live_leased(void **state)
{
	return pair_open(state, (remo_session_opts){
		.traceback = REMO_TB_LIVE, .live_ms = 5000, .lease_ms = 40});
}

static int setup_live_short(void **state)
{
	return pair_open(state, (remo_session_opts){
		.traceback = REMO_TB_LIVE, .live_ms = 100});
}

static int setup_recover(void **state)
{
	return pair_open(state, (remo_session_opts){.recover = true});
}

static int setup_live_recover(void **state)
{
	return pair_open(state, (remo_session_opts){
		.traceback = REMO_TB_LIVE, .live_ms = 5000, .recover = true});
}

/* A client on another machine (as its channel says), not authenticated,
 * with live tracebacks asked for. */
static int setup_remote_live(void **state)
{
	server_peer = "tcp 192.0.2.1:4242";
	return pair_open(state, (remo_session_opts){
		.traceback = REMO_TB_LIVE, .live_ms = 5000});
}

/* The same, with the program's word that it trusts it with everything. */
static int setup_remote_full(void **state)
{
	server_peer = "tcp 192.0.2.1:4242";
	return pair_open(state, (remo_session_opts){
		.traceback_detail = REMO_TB_FULL});
}

static int teardown(void **state)
{
	struct pair *p = *state;
	test_pair_close(&p->tp);
	remo_exports_free(p->exports);
	free(p);
	return 0;
}

static remo_value lookup(struct pair *p, const char *name)
{
	remo_value v;
	if (remo_lookup(p->tp.client, name, &v) != REMO_OK)
		fail_msg("lookup %s", name);
	return v;
}

/* Calls name(args) expecting it to fail; returns the error (new). */
static remo_value call_failing(struct pair *p, const char *name,
                               remo_value args)
{
	remo_value fn = lookup(p, name), out;
	assert_int_equal(remo_call(fn, args, &out), REMO_ERAISED);
	remo_value_release(fn);
	remo_value_release(args);
	return remo_value_retain(remo_last_error());
}

/* The frames of error e's traceback, fetched into a local list. */
static remo_value frames_of(remo_value e)
{
	remo_value tb = remo_error_traceback(e), frames, local;
	assert_int_equal(tb.kind, REMO_TRACEBACK);
	assert_true(remo_is_proxy(tb));
	assert_true(remo_isinstance(tb, "Traceback"));
	assert_int_equal(remo_call_method(tb, "frames", remo_nil(), &frames),
	                 REMO_OK);
	assert_int_equal(remo_force(frames, &local), REMO_OK);
	remo_value_release(frames);
	return local;
}

static const char *str_attr(remo_value obj, const char *name, char *buf,
                            size_t n)
{
	remo_value v;
	assert_int_equal(remo_getattr(obj, name, &v), REMO_OK);
	snprintf(buf, n, "%s", v.kind == REMO_STR ? remo_str_data(v, NULL)
	                                          : "(none)");
	remo_value_release(v);
	return buf;
}

static int64_t int_attr(remo_value obj, const char *name)
{
	remo_value v;
	assert_int_equal(remo_getattr(obj, name, &v), REMO_OK);
	int64_t x = v.kind == REMO_INT ? v.as.i : -1;
	remo_value_release(v);
	return x;
}

/* The local name of frame f, or nil (new). */
static remo_value local_of(remo_value f, const char *name)
{
	remo_value locals, v, key = remo_str(name);
	assert_int_equal(remo_getattr(f, "locals", &locals), REMO_OK);
	int rc = remo_getitem(locals, key, &v);
	remo_value_release(key);
	remo_value_release(locals);
	return rc == REMO_OK ? v : remo_nil();
}

static void expect_frame(remo_value f, const char *function, int line)
{
	char buf[512];
	assert_string_equal(str_attr(f, "function", buf, sizeof buf), function);
	str_attr(f, "file", buf, sizeof buf);
	assert_non_null(strstr(buf, "test_traceback.c"));
	assert_int_equal(int_attr(f, "line"), line);
	str_attr(f, "process", buf, sizeof buf);
	char want[64];
	snprintf(want, sizeof want, "[%d]", (int)getpid());
	assert_non_null(strstr(buf, want));
}

/* ==== snapshot =========================================================== */

static void raise_carries_frames_and_locals(void **state)
{
	struct pair *p = *state;
	size_t base = remo__session_table_len(p->tp.server);
	remo_value e = call_failing(p, "divide",
	                            remo_tuple_of(2, remo_int(7), remo_int(0)));
	assert_string_equal(remo_error_name(e), "ZeroDivisionError");
	remo_value frames = frames_of(e);
	assert_true(remo_list_len(frames) >= 1);
	remo_value f0 = remo_list_get(frames, 0);
	assert_int_equal(f0.kind, REMO_FRAME);
	expect_frame(f0, "divide", atomic_load(&fail_line));
	remo_value a = local_of(f0, "a"), b = local_of(f0, "b");
	remo_value scaled = local_of(f0, "scaled");
	assert_int_equal(a.as.i, 7);
	assert_int_equal(b.as.i, 0);
	assert_int_equal(scaled.as.i, 70);
	/* snapshot: the function went on at once, and nothing is parked */
	assert_true(atomic_load(&returned));
	remo_value tb = remo_error_traceback(e), live, dbg;
	assert_int_equal(remo_getattr(tb, "live", &live), REMO_OK);
	assert_false(live.as.b);
	assert_int_equal(remo_call_method(tb, "debugger", remo_nil(), &dbg),
	                 REMO_ERAISED);
	assert_string_equal(remo_error_name(remo_last_error()), "ValueError");

	/* dropped by the caller, it is released on the server */
	remo_value_release(frames);
	remo_value_release(e);
	remo_raise_value(remo_error("Error", "clears the error slot"));
	assert_int_equal(remo__session_flush(p->tp.client), REMO_OK);
	remo_value fn = lookup(p, "add"), args = remo_tuple_of(
		2, remo_int(1), remo_int(2)), out;
	assert_int_equal(remo_call(fn, args, &out), REMO_OK);
	/* what is left: add, which the client still holds */
	assert_int_equal(remo__session_table_len(p->tp.server), base + 1);
	remo_value_release(args);
	remo_value_release(fn);
}

static void source_lines_of_a_frame_only(void **state)
{
	struct pair *p = *state;
	remo_value e = call_failing(p, "divide",
	                            remo_tuple_of(2, remo_int(1), remo_int(0)));
	remo_value tb = remo_error_traceback(e), frames = frames_of(e);
	char file[512];
	str_attr(remo_list_get(frames, 0), "file", file, sizeof file);
	int line = atomic_load(&fail_line);
	remo_value args = remo_tuple_of(3, remo_str(file), remo_int(line),
	                                remo_int(1)), text;
	assert_int_equal(remo_call_method(tb, "source", args, &text), REMO_OK);
	assert_non_null(strstr(remo_str_data(text, NULL), "->"));
	assert_non_null(strstr(remo_str_data(text, NULL), "remo_raise"));
	remo_value_release(text);
	remo_value_release(args);
	/* any other file is refused */
	args = remo_tuple_of(3, remo_str("/etc/passwd"), remo_int(1),
	                     remo_int(1));
	assert_int_equal(remo_call_method(tb, "source", args, &text),
	                 REMO_ERAISED);
	assert_string_equal(remo_error_name(remo_last_error()),
	                    "PermissionError");
	remo_value_release(args);
	remo_value_release(frames);
	remo_value_release(e);
}

static void errno_crosses_by_name(void **state)
{
	struct pair *p = *state;
	remo_value e = call_failing(p, "open_missing",
	                            remo_tuple_of(1, remo_str("/no/such/file")));
	assert_string_equal(remo_error_name(e), "ENOENT");
	assert_true(remo_error_isa(e, "OSError"));
	assert_int_equal(remo_errno_value(remo_error_name(e)), ENOENT);
	assert_non_null(strstr(remo_error_message(e), "open /no/such/file"));
	remo_value frames = frames_of(e);
	char buf[256];
	assert_string_equal(str_attr(remo_list_get(frames, 0), "function", buf,
	                             sizeof buf), "open_missing");
	remo_value_release(frames);
	remo_value_release(e);
}

/* The client's callback fails; the server fails because of it.  The
 * traceback holds both hops, the client's (inner) frames first. */
static void two_hops_in_one_traceback(void **state)
{
	struct pair *p = *state;
	remo_value cb = remo_function("client_fails", "v()",
	                              (void (*)(void))client_fails, NULL);
	remo_value e = call_failing(p, "relay", remo_tuple_of(1, cb));
	assert_string_equal(remo_error_name(e), "KeyError");
	remo_value frames = frames_of(e);
	size_t n = remo_list_len(frames);
	assert_true(n >= 2);
	char buf[256];
	ssize_t at_client = -1, at_relay = -1;
	for (size_t i = 0; i < n; i++) {
		str_attr(remo_list_get(frames, i), "function", buf, sizeof buf);
		if (strcmp(buf, "client_fails") == 0 && at_client < 0)
			at_client = (ssize_t)i;
		if (strcmp(buf, "relay") == 0 && at_relay < 0)
			at_relay = (ssize_t)i;
	}
	assert_int_equal(at_client, 0);
	assert_true(at_relay > at_client);
	remo_value f = remo_list_get(frames, (size_t)at_client);
	assert_int_equal(int_attr(f, "line"), atomic_load(&client_fail_line));
	remo_value tries = local_of(f, "tries");
	assert_int_equal(tries.as.i, 3);
	assert_int_equal(int_attr(remo_list_get(frames, (size_t)at_relay),
	                          "line"), atomic_load(&fail_line));
	remo_value_release(frames);
	remo_value_release(e);
}

/*
 * The file-read attack (issue 11): a client makes its callback fail with
 * an error whose traceback is an object of its own, whose summary()
 * names any file as a frame of the server's process.  The server re-
 * raises it (relay), so the client's fake becomes its traceback's cause,
 * and source() must still refuse the file: it answers only from frames
 * the server captured itself, never from frames a peer supplied.
 */
static char forged_file[64];
static char forged_process[128];

static remo_value forged_summary(void *self)
{
	(void)self;
	remo_value frame = remo_tuple_of(9, remo_str("main"),
	                                 remo_str(forged_file), remo_int(1),
	                                 remo_int(0), remo_str("server"),
	                                 remo_int(0), remo_bool(false),
	                                 remo_str(forged_process), remo_tuple(0));
	return remo_tuple_of(1, frame);
}

static int forged_dummy;

/* The client's callback: fails with the forged traceback, as it is (no
 * traceback of its own attached). */
static void forged_fails(void)
{
	static remo_type *fake;
	if (fake == NULL) {
		fake = remo_type_new("ForgedTraceback", NULL, NULL, NULL);
		assert_non_null(fake);
		assert_int_equal(remo_type_method(fake, "summary", "r()",
		                                  (void (*)(void))forged_summary,
		                                  NULL), REMO_OK);
	}
	remo_value tb = remo_object(fake, &forged_dummy, NULL);
	assert_true(remo_ok(tb));
	tb.kind = REMO_TRACEBACK; /* what a traceback slot may hold */
	REMO__REF(tb)->hdr.kind = REMO_TRACEBACK;
	remo__raise(remo__error_from_parts(remo_str("KeyError"),
	                                   remo_str("forged"), remo_dict(), tb));
	remo__raised_by_program();
}

static void source_refuses_frames_a_peer_supplied(void **state)
{
	struct pair *p = *state;
	/* a file the server can read, which no frame of its names */
	snprintf(forged_file, sizeof forged_file, "/tmp/remo-forged-XXXXXX");
	int fd = mkstemp(forged_file);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "the secret\n", 11), 11);
	close(fd);
	/* the server's process name, as any failure shows it */
	remo_value e0 = call_failing(p, "divide",
	                             remo_tuple_of(2, remo_int(1), remo_int(0)));
	str_attr(remo_error_traceback(e0), "process", forged_process,
	         sizeof forged_process);
	remo_value_release(e0);

	remo_value cb = remo_function("forged_fails", "v()",
	                              (void (*)(void))forged_fails, NULL);
	remo_value e = call_failing(p, "relay", remo_tuple_of(1, cb));
	assert_string_equal(remo_error_name(e), "KeyError");
	remo_value tb = remo_error_traceback(e), text;
	/* the forged frame is listed, for what it is worth ... */
	remo_value frames = frames_of(e);
	char buf[128];
	assert_string_equal(str_attr(remo_list_get(frames, 0), "file", buf,
	                             sizeof buf), forged_file);
	/* ... but its file is not readable through the server */
	remo_value args = remo_tuple_of(3, remo_str(forged_file), remo_int(1),
	                                remo_int(5));
	int rc = remo_call_method(tb, "source", args, &text);
	unlink(forged_file);
	if (rc == REMO_OK)
		fail_msg("source() read %s: \"%s\"", forged_file,
		         remo_str_data(text, NULL));
	assert_int_equal(rc, REMO_ERAISED);
	assert_string_equal(remo_error_name(remo_last_error()),
	                    "PermissionError");
	remo_value_release(args);
	remo_value_release(frames);
	remo_value_release(e);
}

/*
 * A peer on another machine that proved nothing sees the functions and
 * lines of a failure, not the process, thread, paths, modules or locals,
 * and no live traceback to attach a debugger to (issue 11: every failed
 * call handed the peer all of it).
 */
static void a_remote_peer_sees_names_only(void **state)
{
	struct pair *p = *state;
	remo_value e = call_failing(p, "divide",
	                            remo_tuple_of(2, remo_int(1), remo_int(0)));
	remo_value tb = remo_error_traceback(e), v, frames = frames_of(e);
	char buf[512];
	assert_string_equal(str_attr(tb, "process", buf, sizeof buf), "?");
	assert_int_equal(int_attr(tb, "pid"), 0);
	assert_int_equal(int_attr(tb, "tid"), 0);
	assert_int_equal(remo_getattr(tb, "live", &v), REMO_OK);
	assert_false(v.as.b); /* asked for, not given */
	remo_value f = remo_list_get(frames, 0);
	assert_string_equal(str_attr(f, "function", buf, sizeof buf),
	                    "divide");
	assert_int_equal(int_attr(f, "line"), atomic_load(&fail_line));
	assert_string_equal(str_attr(f, "file", buf, sizeof buf), "(none)");
	assert_string_equal(str_attr(f, "module", buf, sizeof buf), "?");
	assert_int_equal(remo_getattr(f, "locals", &v), REMO_OK);
	size_t n = 99;
	assert_int_equal(remo_len(v, &n), REMO_OK);
	assert_int_equal(n, 0);
	remo_value_release(v);
	/* so no file of the server can be asked for either */
	remo_value args = remo_tuple_of(3, remo_str(__FILE__), remo_int(1),
	                                remo_int(1)), text;
	assert_int_equal(remo_call_method(tb, "source", args, &text),
	                 REMO_ERAISED);
	remo_value_release(args);
	remo_value_release(frames);
	remo_value_release(e);
}

static void a_trusted_remote_peer_sees_everything(void **state)
{
	struct pair *p = *state;
	remo_value e = call_failing(p, "divide",
	                            remo_tuple_of(2, remo_int(1), remo_int(0)));
	remo_value frames = frames_of(e);
	char buf[512];
	assert_int_not_equal(int_attr(remo_error_traceback(e), "pid"), 0);
	assert_non_null(strstr(str_attr(remo_list_get(frames, 0), "file", buf,
	                                sizeof buf), "test_traceback.c"));
	remo_value_release(frames);
	remo_value_release(e);
}

/* ==== live =============================================================== */

static void live_parks_until_released(void **state)
{
	struct pair *p = *state;
	remo_value e = call_failing(p, "divide",
	                            remo_tuple_of(2, remo_int(5), remo_int(0)));
	remo_value tb = remo_error_traceback(e), live, dbg;
	/* the reply came, and the failing thread is still where it failed,
	 * serving: the session answers while it is parked */
	assert_false(atomic_load(&returned));
	assert_int_equal(remo_getattr(tb, "live", &live), REMO_OK);
	assert_true(live.as.b);
	assert_int_equal(remo_call_method(tb, "debugger", remo_nil(), &dbg),
	                 REMO_OK);
	assert_int_equal(remo_tuple_get(dbg, 0).as.i, getpid());
	assert_true(remo_tuple_get(dbg, 1).as.i > 0);
	remo_value_release(dbg);
	/* an error of the traceback's own methods has no traceback: it
	 * must not park the thread again */
	remo_value bad = remo_tuple_of(3, remo_str("/etc/passwd"), remo_int(1),
	                               remo_int(1)), text;
	assert_int_equal(remo_call_method(tb, "source", bad, &text),
	                 REMO_ERAISED);
	assert_string_equal(remo_error_name(remo_last_error()),
	                    "PermissionError");
	assert_int_equal(remo_error_traceback(remo_last_error()).kind, REMO_NIL);
	remo_value_release(bad);
	remo_value frames = frames_of(e), f0 = remo_list_get(frames, 0);
	expect_frame(f0, "divide", atomic_load(&fail_line));
	/* DWARF's locals join the recorded ones; at -O2 a variable may be
	 * optimized out, but the recorded ones are always there */
	remo_value b = local_of(f0, "b");
	assert_int_equal(b.kind, REMO_INT);
	assert_int_equal(b.as.i, 0);
	assert_false(atomic_load(&returned));

	/* letting go of the traceback lets the thread go on */
	remo_value_release(frames);
	remo_value_release(e);
	remo_raise_value(remo_error("Error", "clears the error slot"));
	assert_int_equal(remo__session_flush(p->tp.client), REMO_OK);
	for (int i = 0; i < 500 && !atomic_load(&returned); i++)
		usleep(10000);
	assert_true(atomic_load(&returned));
}

/*
 * The live-park attack (issue 11): a client that keeps every traceback
 * made each failing call park inside the last one's park, one stack
 * deeper each time, until the server died of a stack overflow (about
 * 1,800 calls).  A failure served inside a park is a snapshot now.
 */
#define PARK_ATTACK_CALLS 2000
static void live_parks_never_nest(void **state)
{
	struct pair *p = *state;
	static remo_value held[PARK_ATTACK_CALLS];
	remo_value fn = lookup(p, "divide"), out, live;
	for (int i = 0; i < PARK_ATTACK_CALLS; i++) {
		remo_value args = remo_tuple_of(2, remo_int(i), remo_int(0));
		assert_int_equal(remo_call(fn, args, &out), REMO_ERAISED);
		remo_value_release(args);
		held[i] = remo_value_retain(remo_last_error());
		if (i < 2) {
			assert_int_equal(remo_getattr(remo_error_traceback(held[i]),
			                              "live", &live), REMO_OK);
			/* the first parks; the next is served inside its park */
			assert_int_equal(live.as.b, i == 0);
		}
	}
	remo_value_release(fn);
	/* the server still answers, with every traceback still held */
	fn = lookup(p, "add");
	remo_value args = remo_tuple_of(2, remo_int(2), remo_int(3));
	assert_int_equal(remo_call(fn, args, &out), REMO_OK);
	assert_int_equal(out.as.i, 5);
	remo_value_release(args);
	remo_value_release(fn);
	for (int i = 0; i < PARK_ATTACK_CALLS; i++)
		remo_value_release(held[i]);
}

static void live_ends_by_release_method(void **state)
{
	struct pair *p = *state;
	remo_value e = call_failing(p, "divide",
	                            remo_tuple_of(2, remo_int(5), remo_int(0)));
	remo_value tb = remo_error_traceback(e), out;
	assert_false(atomic_load(&returned));
	assert_int_equal(remo_call_method(tb, "release", remo_nil(), &out),
	                 REMO_OK);
	for (int i = 0; i < 500 && !atomic_load(&returned); i++)
		usleep(10000);
	assert_true(atomic_load(&returned));
	/* the traceback is still readable after */
	remo_value frames = frames_of(e);
	assert_true(remo_list_len(frames) >= 1);
	remo_value_release(frames);
	remo_value_release(e);
}

static void live_ends_by_timeout(void **state)
{
	struct pair *p = *state;
	remo_value e = call_failing(p, "divide",
	                            remo_tuple_of(2, remo_int(5), remo_int(0)));
	/* held, not released: live_ms (100) lets the thread go */
	for (int i = 0; i < 500 && !atomic_load(&returned); i++)
		usleep(10000);
	assert_true(atomic_load(&returned));
	remo_value_release(e);
}

/* ==== crashes ============================================================ */

static bool under_valgrind(void)
{
	const char *p = getenv("LD_PRELOAD");
	return p != NULL && strstr(p, "vgpreload") != NULL;
}

/*
 * cmocka puts its own crash handlers in around every test and puts back
 * the previous ones with signal(), which drops SA_SIGINFO: main keeps
 * remo's actions, and the crash test puts them back first.
 */
static const int crash_sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGABRT};
static struct sigaction remo_actions[4];

/*
 * Before a test that crashes on purpose: skipped under ASan; remo's
 * handlers back in place of cmocka's; poke's target NULL, or under
 * valgrind a read-only page (memcheck reports a NULL read itself, and
 * lets a write to a read-only page reach the MMU).
 */
static void prepare_crash(void)
{
	if (TEST_UNDER_ASAN) {
		print_message("skipped under ASan: it keeps SIGSEGV\n");
		skip();
	}
	for (int i = 0; i < 4; i++)
		sigaction(crash_sigs[i], &remo_actions[i], NULL);
	static void *page;
	if (under_valgrind() && page == NULL)
		page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		            0);
	crash_target = under_valgrind() ? page : NULL;
}

static void crash_is_recovered(void **state)
{
	struct pair *p = *state;
	prepare_crash();
	remo_value e = call_failing(p, "poke", remo_tuple_of(1, remo_int(3)));
	assert_string_equal(remo_error_name(e), "Crash");
	remo_value sig;
	assert_int_equal(remo_dict_get_str(remo_error_attrs(e), "signal", &sig),
	                 REMO_OK);
	assert_string_equal(remo_str_data(sig, NULL), "SIGSEGV");
	assert_true(remo_tainted());
	remo_value frames = frames_of(e), f0 = remo_list_get(frames, 0);
	expect_frame(f0, "poke", atomic_load(&fail_line));
	remo_value depth = local_of(f0, "depth"), what = local_of(f0, "what");
	assert_int_equal(depth.as.i, 3);
	assert_string_equal(remo_str_data(what, NULL), "poking");
	remo_value_release(what);
	remo_value_release(frames);
	remo_value_release(e);
	/* and the session goes on serving */
	remo_value fn = lookup(p, "add"), args = remo_tuple_of(
		2, remo_int(1), remo_int(2)), out;
	assert_int_equal(remo_call(fn, args, &out), REMO_OK);
	assert_int_equal(out.as.i, 3);
	/* a later failure says the server is tainted */
	remo_value_release(args);
	remo_value_release(fn);
	e = call_failing(p, "divide", remo_tuple_of(2, remo_int(1),
	                                            remo_int(0)));
	remo_value t;
	assert_int_equal(remo_dict_get_str(remo_error_attrs(e), "tainted", &t),
	                 REMO_OK);
	assert_true(t.as.b);
	remo_value_release(e);
}

/* Live and recovering: the crashed thread parks inside the signal
 * handler.  Its traceback says tainted, and a second crash on the same
 * session while it is parked (served by the parked thread) is recovered
 * too, not fatal. */
static void live_crash_parks_once(void **state)
{
	struct pair *p = *state;
	prepare_crash();
	remo_value e1 = call_failing(p, "poke", remo_tuple_of(1, remo_int(1)));
	assert_string_equal(remo_error_name(e1), "Crash");
	remo_value tb1 = remo_error_traceback(e1), v, dbg;
	assert_int_equal(remo_getattr(tb1, "live", &v), REMO_OK);
	assert_true(v.as.b);
	assert_int_equal(remo_getattr(tb1, "tainted", &v), REMO_OK);
	assert_true(v.as.b);
	assert_int_equal(remo_dict_get_str(remo_error_attrs(e1), "tainted", &v),
	                 REMO_OK);
	assert_int_equal(remo_call_method(tb1, "debugger", remo_nil(), &dbg),
	                 REMO_OK);
	remo_value_release(dbg);

	remo_value e2 = call_failing(p, "poke", remo_tuple_of(1, remo_int(2)));
	assert_string_equal(remo_error_name(e2), "Crash");
	/* served inside the first one's park: a snapshot, parks never nest */
	assert_int_equal(remo_getattr(remo_error_traceback(e2), "live", &v),
	                 REMO_OK);
	assert_false(v.as.b);
	remo_value frames = frames_of(e2);
	expect_frame(remo_list_get(frames, 0), "poke", atomic_load(&fail_line));
	remo_value depth = local_of(remo_list_get(frames, 0), "depth");
	assert_int_equal(depth.as.i, 2);
	remo_value_release(frames);

	/* both let go: the session still serves */
	remo_value out;
	assert_int_equal(remo_call_method(remo_error_traceback(e2), "release",
	                                  remo_nil(), &out), REMO_OK);
	assert_int_equal(remo_call_method(tb1, "release", remo_nil(), &out),
	                 REMO_OK);
	remo_value_release(e2);
	remo_value_release(e1);
	remo_value fn = lookup(p, "add"), args = remo_tuple_of(
		2, remo_int(2), remo_int(2));
	assert_int_equal(remo_call(fn, args, &out), REMO_OK);
	assert_int_equal(out.as.i, 4);
	remo_value_release(args);
	remo_value_release(fn);
}

/* ==== a crash without recovery, in a process of its own ================ */

/* A channel over a socketpair end, framed by remo_frame_*. */
struct fdch {
	int fd;
	remo_frame_rx rx;
};

static int fd_send(void *user, const void *msg, size_t n)
{
	return remo_frame_send(((struct fdch *)user)->fd, msg, n, 1u << 24);
}

static int fd_recv(void *user, remo_buf *msg, int timeout_ms)
{
	struct fdch *c = user;
	return remo_frame_recv(c->fd, &c->rx, msg, timeout_ms, 1u << 24);
}

static void fd_close(void *user)
{
	shutdown(((struct fdch *)user)->fd, SHUT_RDWR);
}

static void fd_destroy(void *user)
{
	struct fdch *c = user;
	close(c->fd);
	remo_frame_rx_free(&c->rx);
	free(c);
}

static remo_channel fd_channel(int fd)
{
	struct fdch *c = calloc(1, sizeof *c);
	c->fd = fd;
	return (remo_channel){.send = fd_send, .recv = fd_recv,
	                      .close = fd_close, .destroy = fd_destroy,
	                      .user = c};
}

/* The child died as it would have without remo: of sig, or under
 * ThreadSanitizer, which takes the signal itself, of TSan's report. */
static void assert_died_of(int st, int sig)
{
	if (TEST_UNDER_TSAN) {
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) != 0);
		return;
	}
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), sig);
}

#if TEST_UNDER_TSAN
/* ThreadSanitizer stops a child of a multi-threaded fork that starts a
 * thread, since a lock another thread held at the fork stays held in
 * the child.  fork_server's child takes none of them: it makes its own
 * session (and crash service) from scratch. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
	return "die_after_fork=0";
}
#endif

/*
 * A server in a child process (fork, no exec: the child has the
 * parent's crash handlers but not its crash service thread, which its
 * first session starts) exporting fn as "poke", with allocator a (NULL:
 * remo's default).  Returns its pid; *cli is the client's session.
 */
static pid_t fork_server(void (*fn)(void), const remo_allocator *a,
                         remo_session **cli)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(sv[0]);
		remo_set_allocator(a);
		remo_exports *e = remo_exports_new();
		test_export_fn(e, "poke", "q(depth:q)", fn);
		remo_channel ch = fd_channel(sv[1]);
		remo_session *srv = remo_session_new(&ch, e, NULL, NULL);
		remo_session_serve(srv, 10000);
		_exit(3); /* not reached: the call crashes the process */
	}
	close(sv[1]);
	remo_channel ch = fd_channel(sv[0]);
	*cli = remo_session_new(&ch, NULL, NULL, NULL);
	assert_non_null(*cli);
	return pid;
}

/* Without recovery the server still tells its caller what happened,
 * frames by value, and then dies of the signal as it would have. */
static void unrecovered_crash_is_reported_then_fatal(void **state)
{
	(void)state;
	prepare_crash(); /* the child inherits it */
	remo_session *cli;
	pid_t pid = fork_server((void (*)(void))poke, NULL, &cli);
	remo_value fn, out, args = remo_tuple_of(1, remo_int(9));
	assert_int_equal(remo_lookup(cli, "poke", &fn), REMO_OK);
	assert_int_equal(remo_call(fn, args, &out), REMO_ERAISED);
	remo_value e = remo_last_error();
	assert_string_equal(remo_error_name(e), "Crash");
	remo_value fatal, frames;
	assert_int_equal(remo_dict_get_str(remo_error_attrs(e), "fatal", &fatal),
	                 REMO_OK);
	assert_true(fatal.as.b);
	assert_int_equal(remo_dict_get_str(remo_error_attrs(e), "frames",
	                                   &frames), REMO_OK);
	assert_int_equal(frames.kind, REMO_TUPLE); /* by value */
	assert_true(remo_tuple_len(frames) >= 1);
	const char *f0 = remo_str_data(remo_tuple_get(frames, 0), NULL);
	assert_non_null(strstr(f0, "poke"));
	assert_non_null(strstr(f0, "test_traceback.c"));
	/* and the process died of it */
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_died_of(st, SIGSEGV);
	remo_value_release(args);
	remo_value_release(fn);
	remo_session_free(cli);
}

/*
 * Issue 11: the crash handler allocates nothing and takes no lock.  A
 * crash while the crashed thread holds the allocator's lock (a crash
 * inside malloc): the report, which allocates, cannot be made, but the
 * process still dies of its own signal, not of a hang (before, the
 * handler itself took the lock again and only alarm(3) ended it, with
 * SIGALRM).  The crash service waits for the lock instead, and the
 * crashed thread gives up on it after its bound.
 */
static void crash_holding_the_allocator_still_dies_of_it(void **state)
{
	(void)state;
	prepare_crash();
	remo_session *cli;
	pid_t pid = fork_server((void (*)(void))poke_holding_the_allocator,
	                        &locking_alloc, &cli);
	remo_value fn, out, args = remo_tuple_of(1, remo_int(9));
	assert_int_equal(remo_lookup(cli, "poke", &fn), REMO_OK);
	/* no report: the session ends with the process */
	assert_int_not_equal(remo_call(fn, args, &out), REMO_OK);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_died_of(st, SIGSEGV);
	remo_value_release(args);
	remo_value_release(fn);
	remo_session_free(cli);
}

/*
 * Issue 11, live mode: the Crash error reaches the caller while the
 * crashed thread is parked in its signal handler, and that thread has
 * allocated nothing since its fault (the crash service built and sent
 * the error, and serves the park).  debugger() names the crashed thread,
 * the one a debugger must attach to, not the one serving the park.
 */
static void live_crash_handler_does_not_allocate(void **state)
{
	struct pair *p = *state;
	prepare_crash();
	atomic_store(&watched_allocs, 0);
	atomic_store(&watch_poke, true);
	remo_value e = call_failing(p, "poke", remo_tuple_of(1, remo_int(4)));
	int n = atomic_load(&watched_allocs);
	assert_string_equal(remo_error_name(e), "Crash");
	remo_value tb = remo_error_traceback(e), v, dbg, out;
	assert_int_equal(remo_getattr(tb, "live", &v), REMO_OK);
	assert_true(v.as.b);
	assert_false(atomic_load(&returned));
	n += atomic_load(&watched_allocs);
	atomic_store(&watch_poke, false);
	atomic_store(&watch_tid, 0);
	assert_int_equal(n, 0);
	assert_int_equal(remo_call_method(tb, "debugger", remo_nil(), &dbg),
	                 REMO_OK);
	assert_int_equal(remo_tuple_get(dbg, 1).as.i, atomic_load(&poke_tid));
	remo_value_release(dbg);
	/* the frames and locals are those of the crashed thread */
	remo_value frames = frames_of(e);
	expect_frame(remo_list_get(frames, 0), "poke", atomic_load(&fail_line));
	assert_int_equal(local_of(remo_list_get(frames, 0), "depth").as.i, 4);
	remo_value_release(frames);
	assert_int_equal(remo_call_method(tb, "release", remo_nil(), &out),
	                 REMO_OK);
	remo_value_release(e);
}

/* A parked thread is the reader of its session; stopped in a debugger
 * for longer than 3 lease periods, it must not make the lease take the
 * silence for a dead peer (the session used to end with PeerLost). */
static void parked_reader_is_not_a_dead_peer(void **state)
{
	struct pair *p = *state;
	remo_value e = call_failing(p, "divide",
	                            remo_tuple_of(2, remo_int(5), remo_int(0)));
	assert_false(atomic_load(&returned)); /* parked */
	atomic_store(&server_freezer->frozen, true);
	usleep(400 * 1000); /* 10 lease periods of 40 ms */
	atomic_store(&server_freezer->frozen, false);
	assert_int_equal(remo_session_status(p->tp.server), REMO_OK);
	remo_value fn = lookup(p, "add"), args = remo_tuple_of(
		2, remo_int(1), remo_int(1)), out;
	assert_int_equal(remo_call(fn, args, &out), REMO_OK);
	assert_int_equal(out.as.i, 2);
	remo_value_release(args);
	remo_value_release(fn);
	remo_value_release(e);
}

/* A call pipelined on one whose thread parked with a live traceback
 * fails with that error at once, not when the thread goes on (and the
 * thread serving it does not wait for the parked one: it waited on
 * itself when the parked thread was the one to serve it). */
static void pipelined_on_a_live_failure(void **state)
{
	struct pair *p = *state;
	remo_value fn = lookup(p, "divide");
	remo_value args = remo_tuple_of(2, remo_int(5), remo_int(0));
	remo_future *f1, *f2;
	assert_int_equal(remo_call_async(fn, args, NULL, &f1), REMO_OK);
	remo_value pr = remo_future_promise(f1);
	assert_int_equal(remo_call_async(pr, args, NULL, &f2), REMO_OK);
	assert_int_equal(remo_future_wait(f2, 3000, NULL), REMO_ERAISED);
	assert_string_equal(remo_error_name(remo_last_error()),
	                    "ZeroDivisionError");
	assert_false(atomic_load(&returned)); /* still parked */
	assert_int_equal(remo_future_wait(f1, -1, NULL), REMO_ERAISED);
	remo_value_release(pr);
	remo_future_free(f2);
	remo_future_free(f1);
	remo_raise_value(remo_error("Error", "clears the error slot"));
	remo_value_release(args);
	remo_value_release(fn);
}

int main(void)
{
	remo_set_allocator(&count_alloc);
	/* the traceback layer installs them through the session's hook */
	assert_non_null(remo__session_hooks.init_handlers);
	assert_int_equal(remo__session_hooks.init_handlers(), REMO_OK);
	for (int i = 0; i < 4; i++)
		sigaction(crash_sigs[i], NULL, &remo_actions[i]);
	const struct CMUnitTest tests[] = {
#define T(f, s) cmocka_unit_test_setup_teardown(f, s, teardown)
		T(raise_carries_frames_and_locals, setup_snapshot),
		T(source_lines_of_a_frame_only, setup_snapshot),
		T(errno_crosses_by_name, setup_snapshot),
		T(two_hops_in_one_traceback, setup_snapshot),
		T(source_refuses_frames_a_peer_supplied, setup_snapshot),
		T(a_remote_peer_sees_names_only, setup_remote_live),
		T(a_trusted_remote_peer_sees_everything, setup_remote_full),
		T(live_parks_until_released, setup_live),
		T(live_parks_never_nest, setup_live),
		T(live_ends_by_release_method, setup_live),
		T(live_ends_by_timeout, setup_live_short),
		T(parked_reader_is_not_a_dead_peer, setup_live_leased),
		T(pipelined_on_a_live_failure, setup_live),
		T(crash_is_recovered, setup_recover),
		T(live_crash_parks_once, setup_live_recover),
		T(live_crash_handler_does_not_allocate, setup_live_recover),
		cmocka_unit_test(unrecovered_crash_is_reported_then_fatal),
		cmocka_unit_test(crash_holding_the_allocator_still_dies_of_it),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
