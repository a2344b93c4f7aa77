/*
 * test_closure.c -- remote callables as C function pointers: qsort through
 * a remote comparator, results of every kind, the errno-like error path,
 * calls from several threads, and an ops struct driving a remote plugin.
 *
 * Two real sessions over remo_pipe, the server served by a thread, as in
 * test_session.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "net/net.h"
#include "testutil.h"

/* ==== the server's side ================================================== */

static atomic_int cmp_calls;

static int cmp_q(int64_t a, int64_t b)
{
	atomic_fetch_add(&cmp_calls, 1);
	return a < b ? -1 : a > b;
}

static int fails(int64_t x)
{
	remo_raise("ValueError", "no good: %lld", (long long)x);
	return 7;
}

static const char *greet(const char *who)
{
	static _Thread_local char buf[64];
	snprintf(buf, sizeof buf, "hello, %s", who);
	return buf;
}

static double half(double x)
{
	return x / 2;
}

struct plugin {
	int inits;
	int64_t factor;
};

static int plugin_init(struct plugin *p)
{
	return ++p->inits;
}

static int64_t plugin_process(struct plugin *p, int64_t x)
{
	return x * p->factor;
}

static const char *plugin_name(struct plugin *p)
{
	return "doubler";
}

static remo_type *plugin_type;
static struct plugin the_plugin = {0, 2};

struct fx {
	remo_exports *ex;
	remo_session *server, *client;
	pthread_t thread;
};

static void *serve_main(void *arg)
{
	struct fx *f = arg;
	remo_session_serve(f->server, -1);
	return NULL;
}

static void export_fn(remo_exports *ex, const char *name, const char *sig,
                      void (*fn)(void))
{
	remo_value v = remo_function(name, sig, fn, NULL);
	assert_true(remo_ok(v));
	assert_int_equal(remo_export(ex, name, v), REMO_OK);
	remo_value_release(v);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	remo_channel a, b;
	int st;
	if (plugin_type == NULL) {
		plugin_type = remo_type_new("Plugin", NULL, "a plugin", &st);
		remo_type_method(plugin_type, "init", "i()",
		                 (void (*)(void))plugin_init, NULL);
		remo_type_method(plugin_type, "process", "q(x:q)",
		                 (void (*)(void))plugin_process, NULL);
		remo_type_method(plugin_type, "name", "s()",
		                 (void (*)(void))plugin_name, NULL);
	}
	f->ex = remo_exports_new();
	export_fn(f->ex, "cmp", "i(a:q b:q)", (void (*)(void))cmp_q);
	export_fn(f->ex, "fails", "i(x:q)", (void (*)(void))fails);
	export_fn(f->ex, "greet", "s(who:s)", (void (*)(void))greet);
	export_fn(f->ex, "half", "d(x:d)", (void (*)(void))half);
	remo_value p = remo_object(plugin_type, &the_plugin, NULL);
	remo_export(f->ex, "plugin", p);
	remo_value_release(p);
	assert_int_equal(remo_pipe(&a, &b), REMO_OK);
	f->server = remo_session_new(&a, f->ex, NULL, &st);
	f->client = remo_session_new(&b, NULL, NULL, &st);
	pthread_create(&f->thread, NULL, serve_main, f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	remo_session_close(f->client);
	pthread_join(f->thread, NULL);
	remo_session_free(f->client);
	remo_session_free(f->server);
	remo_exports_free(f->ex);
	free(f);
	return 0;
}

static remo_value lookup(struct fx *f, const char *name)
{
	remo_value v;
	assert_int_equal(remo_lookup(f->client, name, &v), REMO_OK);
	return v;
}

/* ==== tests ============================================================== */

static void qsort_sorts_through_a_remote_comparator(void **state)
{
	struct fx *f = *state;
	remo_value cmp = lookup(f, "cmp");
	int st;
	remo_closure *c = remo_closure_new(cmp, "i(&q &q)", &st);
	assert_int_equal(st, REMO_OK);
	int (*fn)(const void *, const void *) =
		(int (*)(const void *, const void *))remo_closure_fn(c);
	enum { N = 200 };
	int64_t a[N];
	srand(7);
	for (int i = 0; i < N; i++)
		a[i] = rand() % 1000 - 500;
	atomic_store(&cmp_calls, 0);
	qsort(a, N, sizeof a[0], fn);
	for (int i = 1; i < N; i++)
		assert_true(a[i - 1] <= a[i]);
	assert_true(atomic_load(&cmp_calls) >= N - 1); /* they went remote */
	assert_int_equal(remo_closure_status(), REMO_OK);
	remo_closure_free(c);
	remo_value_release(cmp);
}

static void a_failed_call_returns_zero_and_sets_the_status(void **state)
{
	struct fx *f = *state;
	remo_value v = lookup(f, "fails");
	remo_closure *c = remo_closure_new(v, "i(q)", NULL);
	int (*fn)(int64_t) = (int (*)(int64_t))remo_closure_fn(c);
	assert_int_equal(fn(5), 0); /* not the 7 the C function returned */
	assert_int_equal(remo_closure_status(), REMO_ERAISED);
	assert_string_equal(remo_error_name(remo_last_error()), "ValueError");
	remo_closure_free(c);
	remo_value_release(v);

	/* a result that does not fit the closure's type is a TypeError */
	v = lookup(f, "greet");
	c = remo_closure_new(v, "i(s)", NULL);
	int (*bad)(const char *) = (int (*)(const char *))remo_closure_fn(c);
	assert_int_equal(bad("x"), 0);
	assert_int_equal(remo_closure_status(), REMO_ERAISED);
	assert_string_equal(remo_error_name(remo_last_error()), "TypeError");
	remo_closure_free(c);
	remo_value_release(v);
}

static void str_and_double_results(void **state)
{
	struct fx *f = *state;
	remo_value g = lookup(f, "greet"), h = lookup(f, "half");
	remo_closure *cg = remo_closure_new(g, "s(s)", NULL);
	remo_closure *ch = remo_closure_new(h, "d(d)", NULL);
	const char *(*fg)(const char *) =
		(const char *(*)(const char *))remo_closure_fn(cg);
	double (*fh)(double) = (double (*)(double))remo_closure_fn(ch);
	assert_string_equal(fg("remo"), "hello, remo");
	assert_int_equal(remo_closure_status(), REMO_OK);
	assert_true(fh(5.0) == 2.5);
	remo_closure_free(cg);
	remo_closure_free(ch);
	remo_value_release(g);
	remo_value_release(h);
}

static void signatures_are_checked_when_the_closure_is_made(void **state)
{
	struct fx *f = *state;
	remo_value g = lookup(f, "greet");
	int st;
	assert_null(remo_closure_new(g, "i(&s)", &st)); /* & only for numbers */
	assert_int_equal(st, REMO_ESIGNATURE);
	assert_null(remo_closure_new(g, "&i(q)", &st));
	assert_int_equal(st, REMO_ESIGNATURE);
	assert_null(remo_closure_new(remo_int(1), "i()", &st));
	assert_int_equal(st, REMO_EINVAL);
	/* and registering a C function with "&" is refused */
	assert_false(remo_ok(remo_function("f", "i(&q)",
	                                   (void (*)(void))cmp_q, NULL)));
	remo_value_release(g);
}

struct caller {
	int64_t (*fn)(int64_t);
	int bad;
};

static void *call_many(void *arg)
{
	struct caller *c = arg;
	for (int64_t i = 0; i < 200; i++)
		if (c->fn(i) != 2 * i)
			c->bad++;
	return NULL;
}

static void an_ops_struct_drives_a_remote_plugin(void **state)
{
	struct fx *f = *state;
	struct plugin_ops {
		int (*init)(void);
		int64_t (*process)(int64_t);
		const char *(*name)(void);
	} ops;
	static const remo_ops_slot slots[] = {
		{"init", "i()"}, {"process", "q(q)"}, {"name", "s()"}};
	remo_value plugin = lookup(f, "plugin");
	int st;
	the_plugin.inits = 0;
	remo_ops *h = remo_ops_fill(plugin, slots, 3, (void (**)(void))&ops,
	                            &st);
	assert_non_null(h);
	/* the host calls its table, not knowing the plugin is elsewhere */
	assert_int_equal(ops.init(), 1);
	assert_int_equal(ops.process(21), 42);
	assert_string_equal(ops.name(), "doubler");
	assert_int_equal(the_plugin.inits, 1);

	/* from several threads at once */
	pthread_t th[4];
	struct caller c[4];
	for (int i = 0; i < 4; i++) {
		c[i] = (struct caller){ops.process, 0};
		pthread_create(&th[i], NULL, call_many, &c[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(c[i].bad, 0);
	}
	remo_ops_free(h);

	/* a method the plugin lacks: refused from the shape */
	static const remo_ops_slot missing[] = {{"init", "i()"},
	                                        {"shutdown", "v()"}};
	void (*table[2])(void);
	assert_null(remo_ops_fill(plugin, missing, 2, table, &st));
	assert_int_equal(st, REMO_ERAISED);
	assert_string_equal(remo_error_name(remo_last_error()),
	                    "AttributeError");
	remo_value_release(plugin);
}

static int64_t local_triple(int64_t x)
{
	return 3 * x;
}

static void a_closure_over_a_local_function(void **state)
{
	remo_value fn = remo_function("triple", "q(x:q)",
	                              (void (*)(void))local_triple, NULL);
	remo_closure *c = remo_closure_new(fn, "q(q)", NULL);
	int64_t (*f)(int64_t) = (int64_t (*)(int64_t))remo_closure_fn(c);
	assert_int_equal(f(14), 42);
	remo_closure_free(c);
	remo_value_release(fn);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(qsort_sorts_through_a_remote_comparator),
		T(a_failed_call_returns_zero_and_sets_the_status),
		T(str_and_double_results),
		T(signatures_are_checked_when_the_closure_is_made),
		T(an_ops_struct_drives_a_remote_plugin),
		T(a_closure_over_a_local_function),
	};
#undef T
	return cmocka_run_group_tests_name("closure", tests, NULL, NULL);
}
