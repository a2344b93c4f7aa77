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
 *   test_serving --taker URL             calls take() and prints what it
 *                                        got (the test kills it first)
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <remo/remo.h>

static const char *self_path;

static inline int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ==== the server ========================================================= */

struct reader { int64_t x; };
static remo_type *reader_type, *doubler_type;
static int64_t reader_get(struct reader *r) { return r->x; }
static int64_t doubler_get(struct reader *r) { return 2 * r->x; }
static struct reader shared_x = {21};

static void types_init(void)
{
	if (reader_type != NULL)
		return;
	reader_type = remo_type_new("Reader", NULL, NULL, NULL);
	remo_type_method(reader_type, "get", "q()", (void (*)(void))reader_get,
	                 NULL);
	doubler_type = remo_type_new("Doubler", NULL, NULL, NULL);
	remo_type_method(doubler_type, "get", "q()",
	                 (void (*)(void))doubler_get, NULL);
}

struct server {
	remo_exports *ex;
	remo_server *srv;
	pthread_t th;
	char dir[64];
	char url[256];
	remo_value shared; /* the dict the writers fill */
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

static struct server *server_start(void)
{
	types_init();
	struct server *sv = calloc(1, sizeof *sv);
	snprintf(sv->dir, sizeof sv->dir, "/tmp/remo-serving-XXXXXX");
	assert_non_null(mkdtemp(sv->dir));
	sv->ex = remo_exports_new();
	sv->shared = remo_dict();
	export_value(sv->ex, "shared", remo_value_retain(sv->shared));
	export_value(sv->ex, "reader", remo_object(reader_type, &shared_x, NULL));
	export_value(sv->ex, "doubler",
	             remo_object(doubler_type, &shared_x, NULL));
	int rc;
	sv->srv = remo_server_new(sv->ex, NULL, &rc);
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

int main(int argc, char **argv)
{
	self_path = argv[0];
	signal(SIGPIPE, SIG_IGN);
	if (argc == 5 && strcmp(argv[1], "--writer") == 0)
		return writer_main(argv[2], argv[3], atoi(argv[4]));
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_four_writers_one_dict),
		cmocka_unit_test(test_threads_share_a_list_and_a_dict),
		cmocka_unit_test(test_a_dict_that_holds_itself),
		cmocka_unit_test(test_two_types_on_one_pointer_are_two_objects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
