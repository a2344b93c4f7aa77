/*
 * test_session.c -- the remote object protocol between two real sessions
 * joined by remo_pipe: lookup, shapes, calls, fields, errors by name,
 * callbacks nesting both ways, the recursion limit, remote lists and
 * dicts, identity, releasing references, threads, and the end of a
 * session.
 *
 * The fixture runs the "server" session's remo_session_serve in a thread
 * of its own; the test thread is the client.  Hostile peers are in
 * test_hostile.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "net/net.h"
#include "testutil.h"
#include "testpair.h"

/* ==== what the server exports ========================================== */

struct calc {
	double acc;
	int count;
	const char *label;
};

static remo_type *calc_type, *sci_type;
static struct calc the_calc = {0, 0, "main"};
static atomic_int children_freed;

static double calc_add(struct calc *c, double x)
{
	c->count++;
	return c->acc += x;
}

static double calc_div(struct calc *c, double x)
{
	if (x == 0) {
		remo_raise("ZeroDivisionError", "division of %g by zero", c->acc);
		return 0;
	}
	return c->acc / x;
}

static void calc_raise(struct calc *c, const char *name)
{
	remo_raise(name, "raised on request by %s", c->label);
}

/* Calls fn(x) -- a callback into whoever called us -- and adds 1. */
static remo_value calc_apply(struct calc *c, remo_value fn, double x)
{
	remo_value args = remo_tuple_of(1, remo_double(x)), res;
	int rc = remo_call(fn, args, &res);
	remo_value_release(args);
	if (rc != REMO_OK) {
		remo_raise_value(remo_value_retain(remo_last_error()));
		return remo_nil();
	}
	remo_value out = remo_double((res.kind == REMO_DOUBLE ? res.as.d : 0) + 1);
	remo_value_release(res);
	return out;
}

static remo_value calc_echo(struct calc *c, remo_value v)
{
	return remo_value_retain(v);
}

static bool calc_is_main(struct calc *c, struct calc *other)
{
	return other == &the_calc;
}

static void child_free(void *p)
{
	free(p);
	atomic_fetch_add(&children_freed, 1);
}

static remo_value calc_child(struct calc *c, const char *label)
{
	struct calc *k = calloc(1, sizeof *k);
	k->label = "child";
	k->acc = c->acc;
	return remo_object(calc_type, k, child_free);
}

static double sci_square(struct calc *c)
{
	return c->acc * c->acc;
}

static int64_t add_ints(int a, int b)
{
	return (int64_t)a + b;
}

static size_t bytes_len(const void *p, size_t n)
{
	(void)p;
	return n;
}

static const char *greet(const char *who)
{
	static _Thread_local char buf[64];
	snprintf(buf, sizeof buf, "hello, %s", who);
	return buf;
}

/* Recursion across the peers: calls fn(other, fn, n - 1), so that each
 * hop goes to the other side, until n is 0. */
static int64_t bounce(remo_value fn, remo_value other, int64_t n)
{
	if (n <= 0)
		return 0;
	remo_value args = remo_tuple_of(3, remo_value_retain(other),
	                                remo_value_retain(fn), remo_int(n - 1));
	remo_value res;
	int rc = remo_call(fn, args, &res);
	remo_value_release(args);
	if (rc != REMO_OK) {
		remo_raise_value(remo_value_retain(remo_last_error()));
		return 0;
	}
	int64_t r = res.as.i + 1;
	remo_value_release(res);
	return r;
}

/* poke: a one-way call of cb, then the reply */
static void poke(remo_value cb)
{
	remo_call_oneway(cb, remo_nil());
}

static remo_value kept; /* what keep() was given, for the view test */

static void keep(remo_value v)
{
	remo_value_release(kept);
	kept = remo_value_retain(v);
}

static atomic_bool slow_running;

static void slow(int ms)
{
	atomic_store(&slow_running, true);
	usleep((useconds_t)ms * 1000);
	atomic_store(&slow_running, false);
}

/* An object whose read-only field holds a list, with a list inside. */
struct keeper {
	remo_value items;
};
static remo_type *keeper_type;
static struct keeper the_keeper;

static void register_types(void)
{
	int st;
	if (calc_type != NULL)
		return;
	keeper_type = remo_type_new("Keeper", NULL, NULL, &st);
	assert_int_equal(remo_type_field(keeper_type, "items", "r",
	                                 offsetof(struct keeper, items),
	                                 REMO_READONLY), REMO_OK);
	calc_type = remo_type_new("Calc", NULL, "an accumulator", &st);
	assert_non_null(calc_type);
	assert_int_equal(remo_type_field(calc_type, "acc", "d",
	                                 offsetof(struct calc, acc), 0), REMO_OK);
	assert_int_equal(remo_type_field(calc_type, "count", "i",
	                                 offsetof(struct calc, count),
	                                 REMO_READONLY), REMO_OK);
	assert_int_equal(remo_type_field(calc_type, "label", "s",
	                                 offsetof(struct calc, label), 0),
	                 REMO_OK);
#define M(name, sig, fn)                                                    \
	assert_int_equal(remo_type_method(calc_type, name, sig,             \
	                                  (void (*)(void))fn, name " doc"), \
	                 REMO_OK)
	M("add", "d(x:d)", calc_add);
	M("div", "d(x:d)", calc_div);
	M("raise", "v(name:s)", calc_raise);
	M("apply", "r(fn:r x:d)", calc_apply);
	M("echo", "r(v:r)", calc_echo);
	M("is_main", "?(other:<Calc>)", calc_is_main);
	M("child", "r(label:s)", calc_child);
#undef M
	sci_type = remo_type_new("SciCalc", calc_type, "with squares", &st);
	assert_non_null(sci_type);
	assert_int_equal(remo_type_method(sci_type, "square", "d()",
	                                  (void (*)(void))sci_square, NULL),
	                 REMO_OK);
	assert_int_equal(remo_errname_register("CalcError", "ArithmeticError"),
	                 REMO_OK);
}

/* ==== fixture: two sessions over a pipe, the server serving ============ */

struct pair {
	struct test_pair tp;
	remo_exports *exports;
	remo_value numbers, config;
	struct calc sci;
	remo_exports *client_exports;
};

static int client_timeout_ms; /* 0: the default, no timeout */
static int server_lease_ms;   /* 0: no lease */

static int pair_setup(void **state)
{
	register_types();
	struct pair *p = calloc(1, sizeof *p);
	remo_channel a, b;
	assert_int_equal(remo_pipe(&a, &b), REMO_OK);
	p->exports = remo_exports_new();

	remo_value calc = remo_object(calc_type, &the_calc, NULL);
	remo_export(p->exports, "calc", calc);
	remo_value_release(calc);
	p->sci.acc = 3;
	p->sci.label = "sci";
	remo_value sci = remo_object(sci_type, &p->sci, NULL);
	remo_export(p->exports, "sci", sci);
	remo_value_release(sci);

	remo_value f = remo_function("add_ints", "q(a:i b:i)",
	                             (void (*)(void))add_ints, "adds");
	remo_export(p->exports, "add_ints", f);
	remo_value_release(f);
	f = remo_function("bytes_len", "N(data:y)", (void (*)(void))bytes_len,
	                  NULL);
	remo_export(p->exports, "bytes_len", f);
	remo_value_release(f);
	f = remo_function("greet", "s(who:s)", (void (*)(void))greet, NULL);
	remo_export(p->exports, "greet", f);
	remo_value_release(f);
	f = remo_function("bounce", "q(fn:r other:r n:q)", (void (*)(void))bounce,
	                  NULL);
	remo_export(p->exports, "bounce", f);
	remo_value_release(f);
	f = remo_function("keep", "v(v:r)", (void (*)(void))keep, NULL);
	remo_export(p->exports, "keep", f);
	remo_value_release(f);
	f = remo_function("poke", "v(cb:r)", (void (*)(void))poke, NULL);
	remo_export(p->exports, "poke", f);
	remo_value_release(f);
	f = remo_function("slow", "v(ms:i)", (void (*)(void))slow, NULL);
	remo_export(p->exports, "slow", f);
	remo_value_release(f);

	p->numbers = remo_list();
	for (int i = 0; i < 10000; i++)
		remo_list_append(p->numbers, remo_int(i));
	remo_list_append(p->numbers, remo_list()); /* a nested list */
	remo_export(p->exports, "numbers", p->numbers);
	p->config = remo_dict();
	remo_dict_set_str(p->config, "name", remo_str("calc"));
	remo_dict_set_str(p->config, "size", remo_int(3));
	remo_export(p->exports, "config", p->config);
	the_keeper.items = remo_list();
	remo_list_append(the_keeper.items, remo_int(1));
	remo_value inner = remo_list();
	remo_list_append(inner, remo_int(2));
	remo_list_append(the_keeper.items, inner);
	remo_value keeper = remo_object(keeper_type, &the_keeper, NULL);
	remo_export(p->exports, "keeper", keeper);
	remo_value_release(keeper);

	remo_session_opts sopts = {.lease_ms = server_lease_ms};
	p->client_exports = remo_exports_new();
	remo_session_opts copts = {.timeout_ms = client_timeout_ms};
	the_calc.acc = 0;
	the_calc.count = 0;
	test_pair_open(&p->tp, a, p->exports, &sopts, b, p->client_exports,
	               &copts);
	*state = p;
	return 0;
}

static int pair_teardown(void **state)
{
	struct pair *p = *state;
	test_pair_close(&p->tp);
	remo_value_release(p->numbers);
	remo_value_release(p->config);
	remo_value_release(the_keeper.items);
	the_keeper.items = remo_nil();
	remo_exports_free(p->exports);
	remo_exports_free(p->client_exports);
	free(p);
	return 0;
}

static remo_value lookup(struct pair *p, const char *name)
{
	remo_value v;
	int rc = remo_lookup(p->tp.client, name, &v);
	if (rc != REMO_OK)
		fail_msg("lookup %s: %s", name, remo_strerror(rc));
	return v;
}

static void expect_fail(int rc, int want, const char *name,
                        const char *in_message)
{
	assert_int_equal(rc, want);
	remo_value e = remo_last_error();
	assert_int_equal(e.kind, REMO_ERROR);
	if (strcmp(remo_error_name(e), name) != 0)
		fail_msg("wanted %s, got %s(\"%s\")", name, remo_error_name(e),
		         remo_error_message(e));
	if (in_message != NULL && strstr(remo_error_message(e), in_message) == NULL)
		fail_msg("\"%s\" not in \"%s\"", in_message, remo_error_message(e));
}

static void expect_error(int rc, const char *name, const char *in_message)
{
	expect_fail(rc, REMO_ERAISED, name, in_message);
}

/* ==== lookup and shapes ================================================= */

static void lookup_gives_a_proxy_with_its_shape(void **state)
{
	struct pair *p = *state;
	remo_value calc = lookup(p, "calc"), names;
	assert_int_equal(calc.kind, REMO_OBJECT);
	assert_true(remo_is_proxy(calc));
	assert_string_equal(remo_type_name(calc), "Calc");
	assert_true(remo_isinstance(calc, "Calc"));
	assert_false(remo_isinstance(calc, "SciCalc"));
	assert_int_equal(remo_dir(calc, &names), REMO_OK);
	assert_string_equal(remo_str_data(remo_tuple_get(names, 0), NULL), "acc");
	assert_string_equal(remo_str_data(remo_tuple_get(names, 3), NULL), "add");
	remo_value_release(names);

	remo_value sci = lookup(p, "sci");
	assert_true(remo_isinstance(sci, "SciCalc"));
	assert_true(remo_isinstance(sci, "Calc")); /* the base's shape came too */
	remo_value_release(sci);
	remo_value_release(calc);

	remo_value v;
	expect_error(remo_lookup(p->tp.client, "nothing", &v), "NotFound", "nothing");
	assert_int_equal(v.kind, REMO_NIL);
}

static void the_same_object_is_the_same_proxy(void **state)
{
	struct pair *p = *state;
	remo_value a = lookup(p, "calc"), b = lookup(p, "calc");
	assert_ptr_equal(a.as.p, b.as.p);
	assert_true(remo_equal(a, b));
	remo_value_release(a);
	remo_value_release(b);
}

/* ==== calls ============================================================= */

static void functions_are_called_with_libffi(void **state)
{
	struct pair *p = *state;
	remo_value f = lookup(p, "add_ints"), args, out;
	assert_string_equal(remo_signature(f), "q(a:i b:i)");
	args = remo_tuple_of(2, remo_int(2), remo_int(40));
	assert_int_equal(remo_call(f, args, &out), REMO_OK);
	assert_int_equal(out.kind, REMO_INT);
	assert_int_equal(out.as.i, 42);
	remo_value_release(args);
	remo_value_release(f);

	f = lookup(p, "greet");
	args = remo_tuple_of(1, remo_str("remo"));
	assert_int_equal(remo_call(f, args, &out), REMO_OK);
	assert_string_equal(remo_str_data(out, NULL), "hello, remo");
	remo_value_release(out);
	remo_value_release(args);
	remo_value_release(f);

	f = lookup(p, "bytes_len");
	char blob[1000] = {0};
	args = remo_tuple_of(1, remo_bytes(blob, sizeof blob));
	assert_int_equal(remo_call(f, args, &out), REMO_OK);
	assert_int_equal(out.as.i, 1000);
	remo_value_release(args);
	remo_value_release(f);
}

static void wrong_arguments_are_a_type_error_naming_the_parameter(void **state)
{
	struct pair *p = *state;
	remo_value f = lookup(p, "add_ints"), args, out;
	args = remo_tuple_of(1, remo_int(1));
	expect_error(remo_call(f, args, &out), "TypeError", "2 arguments (1 given)");
	remo_value_release(args);
	args = remo_tuple_of(2, remo_int(1), remo_str("x"));
	expect_error(remo_call(f, args, &out), "TypeError", "'b' must be int");
	remo_value_release(args);
	args = remo_tuple_of(2, remo_int(1), remo_int(INT64_MAX));
	expect_error(remo_call(f, args, &out), "OverflowError", "'b'");
	remo_value_release(args);
	remo_value_release(f);
}

static void methods_and_fields(void **state)
{
	struct pair *p = *state;
	remo_value calc = lookup(p, "calc"), args, out;
	args = remo_tuple_of(1, remo_double(1.5));
	assert_int_equal(remo_call_method(calc, "add", args, &out), REMO_OK);
	assert_true(out.as.d == 1.5);
	assert_int_equal(remo_call_method(calc, "add", args, &out), REMO_OK);
	assert_true(out.as.d == 3.0);
	remo_value_release(args);

	assert_int_equal(remo_getattr(calc, "acc", &out), REMO_OK);
	assert_true(out.as.d == 3.0);
	assert_int_equal(remo_getattr(calc, "count", &out), REMO_OK);
	assert_int_equal(out.as.i, 2);
	assert_int_equal(remo_getattr(calc, "label", &out), REMO_OK);
	assert_string_equal(remo_str_data(out, NULL), "main");
	remo_value_release(out);

	assert_int_equal(remo_setattr(calc, "acc", remo_double(10)), REMO_OK);
	assert_true(the_calc.acc == 10);
	assert_int_equal(remo_setattr(calc, "acc", remo_int(7)), REMO_OK);
	assert_true(the_calc.acc == 7); /* an int is a fine double */
	remo_value x = remo_str("x");
	expect_error(remo_setattr(calc, "acc", x), "TypeError", "'acc'");
	remo_value_release(x);
	expect_error(remo_setattr(calc, "count", remo_int(1)), "AttributeError",
	             "read-only");
	expect_error(remo_getattr(calc, "nosuch", &out), "AttributeError",
	             "nosuch");
	expect_error(remo_call_method(calc, "nosuch", remo_nil(), &out),
	             "AttributeError", "nosuch");

	/* a method through getattr: a bound method, called later */
	remo_value add;
	assert_int_equal(remo_getattr(calc, "add", &add), REMO_OK);
	assert_int_equal(add.kind, REMO_CALLABLE);
	assert_string_equal(remo_signature(add), "d(x:d)");
	args = remo_tuple_of(1, remo_double(1));
	assert_int_equal(remo_call(add, args, &out), REMO_OK);
	assert_true(out.as.d == 8.0);
	remo_value_release(args);
	remo_value_release(add);

	/* inherited methods on a derived type */
	remo_value sci = lookup(p, "sci");
	assert_int_equal(remo_call_method(sci, "square", remo_nil(), &out),
	                 REMO_OK);
	assert_true(out.as.d == 9.0);
	args = remo_tuple_of(1, remo_double(1));
	assert_int_equal(remo_call_method(sci, "add", args, &out), REMO_OK);
	assert_true(out.as.d == 4.0);
	remo_value_release(args);
	remo_value_release(sci);
	remo_value_release(calc);
}

/* ==== errors by name ==================================================== */

static void errors_cross_by_name_into_the_local_hierarchy(void **state)
{
	struct pair *p = *state;
	remo_value calc = lookup(p, "calc"), args, out;
	args = remo_tuple_of(1, remo_double(0));
	expect_error(remo_call_method(calc, "div", args, &out),
	             "ZeroDivisionError", "by zero");
	assert_true(remo_error_isa(remo_last_error(), "ArithmeticError"));
	remo_value_release(args);

	args = remo_tuple_of(1, remo_str("KeyError"));
	expect_error(remo_call_method(calc, "raise", args, &out), "KeyError",
	             "main");
	assert_true(remo_error_isa(remo_last_error(), "LookupError"));
	remo_value_release(args);

	/* a name this side never heard of arrives intact */
	args = remo_tuple_of(1, remo_str("org.example.Strange"));
	expect_error(remo_call_method(calc, "raise", args, &out),
	             "org.example.Strange", NULL);
	assert_true(remo_error_isa(remo_last_error(), "Error"));
	assert_false(remo_error_isa(remo_last_error(), "LookupError"));
	remo_value_release(args);

	args = remo_tuple_of(1, remo_str("CalcError"));
	expect_error(remo_call_method(calc, "raise", args, &out), "CalcError",
	             NULL);
	assert_true(remo_error_isa(remo_last_error(), "ArithmeticError"));
	remo_value_release(args);
	remo_value_release(calc);
}

/* ==== callbacks ========================================================= */

static remo_session *cb_session; /* the client, for nested calls */
static pthread_t cb_thread;
static int cb_calls;

static double client_double(double x)
{
	cb_calls++;
	/* the callback runs in the thread that made the call */
	assert_true(pthread_equal(pthread_self(), cb_thread));
	return 2 * x;
}

/* A callback that calls the server again while it is called back. */
static double client_nested(double x)
{
	remo_value calc, args, out;
	cb_calls++;
	if (remo_lookup(cb_session, "calc", &calc) != REMO_OK)
		return -1;
	args = remo_tuple_of(1, remo_double(x));
	int rc = remo_call_method(calc, "add", args, &out);
	remo_value_release(args);
	remo_value_release(calc);
	return rc == REMO_OK ? out.as.d : -1;
}

static void callbacks_run_in_the_calling_thread(void **state)
{
	struct pair *p = *state;
	remo_value calc = lookup(p, "calc"), out;
	remo_value fn = remo_function("dbl", "d(x:d)",
	                              (void (*)(void))client_double, NULL);
	cb_thread = pthread_self();
	cb_calls = 0;
	remo_value args = remo_tuple_of(2, remo_value_retain(fn), remo_double(20));
	assert_int_equal(remo_call_method(calc, "apply", args, &out), REMO_OK);
	assert_true(out.as.d == 41.0);
	assert_int_equal(cb_calls, 1);
	remo_value_release(args);
	remo_value_release(fn);
	remo_value_release(calc);
}

static atomic_int poked;

static void client_poked(void)
{
	atomic_fetch_add(&poked, 1);
}

static void *client_serve(void *arg)
{
	remo_session_serve(arg, -1);
	return NULL;
}

/* A callback the peer sent before its reply has run when the call
 * returns, even while another thread of ours serves the session and so
 * is the one reading (it routed the callback to our call, then the
 * reply; the callback used to be left for a serving thread blocked in
 * its read). */
static void callbacks_sent_before_the_reply_run_before_it(void **state)
{
	struct pair *p = *state;
	pthread_t th;
	pthread_create(&th, NULL, client_serve, p->tp.client);
	remo_value poke_fn = lookup(p, "poke");
	remo_value cb = remo_function("client_poked", "v()",
	                              (void (*)(void))client_poked, NULL);
	remo_value args = remo_tuple_of(1, cb), out;
	atomic_store(&poked, 0);
	for (int i = 1; i <= 200; i++) {
		assert_int_equal(remo_call(poke_fn, args, &out), REMO_OK);
		assert_int_equal(atomic_load(&poked), i);
	}
	remo_value_release(args);
	remo_value_release(poke_fn);
	remo_session_close(p->tp.client);
	pthread_join(th, NULL);
}

static void callbacks_nest_both_ways(void **state)
{
	struct pair *p = *state;
	remo_value calc = lookup(p, "calc"), out;
	remo_value fn = remo_function("nested", "d(x:d)",
	                              (void (*)(void))client_nested, NULL);
	cb_session = p->tp.client;
	cb_calls = 0;
	the_calc.acc = 100;
	/* client -> server.apply -> client.nested -> server.add -> back */
	remo_value args = remo_tuple_of(2, remo_value_retain(fn), remo_double(5));
	assert_int_equal(remo_call_method(calc, "apply", args, &out), REMO_OK);
	assert_true(out.as.d == 106.0);
	assert_int_equal(cb_calls, 1);
	remo_value_release(args);
	remo_value_release(fn);
	remo_value_release(calc);
}

static void recursion_across_peers_stops_at_the_limit(void **state)
{
	struct pair *p = *state;
	remo_value bounce_fn = lookup(p, "bounce"), out;
	/* the client's own bounce, to be called back by the server */
	remo_value mine = remo_function("bounce", "q(fn:r other:r n:q)",
	                                (void (*)(void))bounce, NULL);
	/* server.bounce(mine, its own, n) calls mine(its own, mine, n - 1),
	 * which calls the server's again: every hop crosses */
	remo_value args = remo_tuple_of(3, remo_value_retain(mine),
	                                remo_value_retain(bounce_fn), remo_int(6));
	assert_int_equal(remo_call(bounce_fn, args, &out), REMO_OK);
	assert_int_equal(out.as.i, 6);
	remo_value_release(args);

	args = remo_tuple_of(3, remo_value_retain(mine),
	                     remo_value_retain(bounce_fn), remo_int(1000));
	expect_error(remo_call(bounce_fn, args, &out), "RecursionError", "limit");
	remo_value_release(args);
	remo_value_release(mine);
	remo_value_release(bounce_fn);

	/* and the session is still fine */
	remo_value f = lookup(p, "add_ints");
	args = remo_tuple_of(2, remo_int(1), remo_int(1));
	assert_int_equal(remo_call(f, args, &out), REMO_OK);
	assert_int_equal(out.as.i, 2);
	remo_value_release(args);
	remo_value_release(f);
}

/* ==== transfer rules ==================================================== */

static void lists_cross_by_reference(void **state)
{
	struct pair *p = *state;
	remo_value nums = lookup(p, "numbers"), out;
	size_t n;
	assert_true(remo_is_proxy(nums));
	assert_string_equal(remo_type_name(nums), "list");
	assert_int_equal(remo_len(nums, &n), REMO_OK);
	assert_int_equal(n, 10001);
	assert_int_equal(remo_getitem(nums, remo_int(1234), &out), REMO_OK);
	assert_int_equal(out.as.i, 1234);
	assert_int_equal(remo_getitem(nums, remo_int(-2), &out), REMO_OK);
	assert_int_equal(out.as.i, 9999);
	expect_error(remo_getitem(nums, remo_int(20000), &out), "IndexError",
	             NULL);
	bool yes;
	assert_int_equal(remo_contains(nums, remo_int(5000), &yes), REMO_OK);
	assert_true(yes);
	assert_int_equal(remo_contains(nums, remo_int(-5), &yes), REMO_OK);
	assert_false(yes);

	/* writes go to the server's list */
	remo_value zero = remo_str("zero");
	assert_int_equal(remo_setitem(nums, remo_int(0), zero), REMO_OK);
	remo_value_release(zero);
	assert_string_equal(remo_str_data(remo_list_get(p->numbers, 0), NULL),
	                    "zero");

	/* a list inside the list is itself a reference */
	remo_value inner;
	assert_int_equal(remo_getitem(nums, remo_int(-1), &inner), REMO_OK);
	assert_true(remo_is_proxy(inner));
	assert_string_equal(remo_type_name(inner), "list");
	remo_value_release(inner);

	/* force copies the whole, in chunks */
	remo_value copy;
	assert_int_equal(remo_force(nums, &copy), REMO_OK);
	assert_int_equal(copy.kind, REMO_LIST);
	assert_int_equal(remo_list_len(copy), 10001);
	assert_int_equal(remo_list_get(copy, 9999).as.i, 9999);
	assert_true(remo_is_proxy(remo_list_get(copy, 10000)));
	remo_value_release(copy);

	/* iteration, in chunks too */
	remo_iter it;
	remo_value item;
	int64_t sum = 0;
	size_t count = 0;
	assert_int_equal(remo_iter_init(&it, nums), REMO_OK);
	while (remo_iter_next(&it, &item)) {
		if (item.kind == REMO_INT)
			sum += item.as.i;
		count++;
		remo_value_release(item);
	}
	assert_int_equal(it.status, REMO_OK);
	remo_iter_free(&it);
	assert_int_equal(count, 10001);
	assert_int_equal(sum, (int64_t)9999 * 10000 / 2);
	remo_value_release(nums);
}

static void dicts_cross_by_reference(void **state)
{
	struct pair *p = *state;
	remo_value cfg = lookup(p, "config"), out;
	size_t n;
	assert_string_equal(remo_type_name(cfg), "dict");
	assert_int_equal(remo_len(cfg, &n), REMO_OK);
	assert_int_equal(n, 2);
	remo_value key = remo_str("name");
	assert_int_equal(remo_getitem(cfg, key, &out), REMO_OK);
	assert_string_equal(remo_str_data(out, NULL), "calc");
	remo_value_release(out);
	remo_value_release(key);
	key = remo_str("missing");
	expect_error(remo_getitem(cfg, key, &out), "KeyError", "missing");
	assert_true(remo_error_isa(remo_last_error(), "LookupError"));
	remo_value_release(key);
	key = remo_str("new");
	assert_int_equal(remo_setitem(cfg, key, remo_int(9)), REMO_OK);
	remo_value_release(key);
	assert_int_equal(remo_dict_len(p->config), 3);
	remo_value copy;
	assert_int_equal(remo_force(cfg, &copy), REMO_OK);
	assert_true(remo_equal(copy, p->config));
	remo_value_release(copy);
	remo_value_release(cfg);
}

static void a_proxy_sent_home_arrives_as_the_original(void **state)
{
	struct pair *p = *state;
	remo_value calc = lookup(p, "calc"), out;
	remo_value args = remo_tuple_of(1, remo_value_retain(calc));
	/* the server's C function receives its own object's pointer */
	assert_int_equal(remo_call_method(calc, "is_main", args, &out), REMO_OK);
	assert_true(out.kind == REMO_BOOL && out.as.b);
	/* echoed back: the same proxy again */
	assert_int_equal(remo_call_method(calc, "echo", args, &out), REMO_OK);
	assert_ptr_equal(out.as.p, calc.as.p);
	remo_value_release(out);
	remo_value_release(args);

	/* and a local list sent to the server comes back as itself */
	remo_value mine = remo_list();
	remo_list_append(mine, remo_int(1));
	args = remo_tuple_of(1, remo_value_retain(mine));
	assert_int_equal(remo_call_method(calc, "echo", args, &out), REMO_OK);
	assert_int_equal(out.kind, REMO_LIST);
	assert_ptr_equal(out.as.p, mine.as.p);
	remo_value_release(out);
	remo_value_release(args);
	remo_value_release(mine);
	remo_value_release(calc);
}

static void released_proxies_free_the_servers_references(void **state)
{
	struct pair *p = *state;
	remo_value calc = lookup(p, "calc"), child, out;
	size_t base = remo__session_table_len(p->tp.server);
	atomic_store(&children_freed, 0);
	remo_value args = remo_tuple_of(1, remo_str("c"));
	assert_int_equal(remo_call_method(calc, "child", args, &child), REMO_OK);
	remo_value_release(args);
	assert_true(remo_is_proxy(child));
	assert_int_equal(remo__session_table_len(p->tp.server), base + 1);
	assert_int_equal(remo_getattr(child, "label", &out), REMO_OK);
	assert_string_equal(remo_str_data(out, NULL), "child");
	remo_value_release(out);

	remo_value_release(child); /* the release is batched... */
	assert_int_equal(remo__session_table_len(p->tp.server), base + 1);
	/* ...and goes with the next message */
	assert_int_equal(remo_getattr(calc, "acc", &out), REMO_OK);
	assert_int_equal(remo__session_table_len(p->tp.server), base);
	assert_int_equal(atomic_load(&children_freed), 1);
	remo_value_release(calc);
}

static void a_large_bytes_argument_arrives_without_a_copy(void **state)
{
	struct pair *p = *state;
	remo_value keep_fn = lookup(p, "keep"), out;
	enum { N = 200 * 1024 };
	char *blob = malloc(N);
	for (int i = 0; i < N; i++)
		blob[i] = (char)(i * 7);
	remo_value args = remo_tuple_of(1, remo_bytes(blob, N));
	assert_int_equal(remo_call(keep_fn, args, &out), REMO_OK);
	remo_value_release(args);
	/* the server holds a view into the message it received... */
	assert_int_equal(kept.kind, REMO_BYTES);
	assert_non_null(REMO__STR(kept)->ext);
	assert_int_equal(REMO__STR(kept)->base.kind, REMO_BYTES);
	/* ...which stays valid after more messages came and went */
	remo_value f = lookup(p, "add_ints");
	for (int i = 0; i < 10; i++) {
		args = remo_tuple_of(2, remo_int(i), remo_int(i));
		assert_int_equal(remo_call(f, args, &out), REMO_OK);
		remo_value_release(args);
	}
	size_t n;
	const void *d = remo_bytes_data(kept, &n);
	assert_int_equal(n, N);
	assert_memory_equal(d, blob, N);
	/* and a small one is an ordinary copy */
	args = remo_tuple_of(1, remo_bytes(blob, 100));
	assert_int_equal(remo_call(keep_fn, args, &out), REMO_OK);
	assert_null(REMO__STR(kept)->ext);
	remo_value_release(args);
	remo_value_release(kept);
	kept = remo_nil();
	free(blob);
	remo_value_release(f);
	remo_value_release(keep_fn);
}

/* ==== threads =========================================================== */

struct worker {
	struct pair *p;
	int id;
	int failures;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	remo_value f;
	if (remo_lookup(w->p->tp.client, "add_ints", &f) != REMO_OK) {
		w->failures++;
		return NULL;
	}
	for (int i = 0; i < 300; i++) {
		remo_value args = remo_tuple_of(2, remo_int(w->id * 100000),
		                                remo_int(i)), out;
		if (remo_call(f, args, &out) != REMO_OK ||
		    out.as.i != w->id * 100000 + i)
			w->failures++;
		remo_value_release(args);
	}
	remo_value_release(f);
	return NULL;
}

static void replies_go_to_the_thread_that_asked(void **state)
{
	struct pair *p = *state;
	enum { N = 6 };
	pthread_t th[N];
	struct worker w[N];
	for (int i = 0; i < N; i++) {
		w[i] = (struct worker){p, i + 1, 0};
		pthread_create(&th[i], NULL, worker_main, &w[i]);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].failures, 0);
	}
}

/* ==== the end of a session ============================================== */

static void *close_later(void *arg)
{
	struct pair *p = arg;
	usleep(50 * 1000);
	remo_session_close(p->tp.server);
	return NULL;
}

static void a_pending_call_fails_with_peer_lost(void **state)
{
	struct pair *p = *state;
	remo_value slow_fn = lookup(p, "slow"), out;
	pthread_t th;
	pthread_create(&th, NULL, close_later, p);
	remo_value args = remo_tuple_of(1, remo_int(300));
	int rc = remo_call(slow_fn, args, &out);
	pthread_join(th, NULL);
	/* the server's serve thread ends; the reply may or may not have
	 * been sent before the close: either way the client is not stuck */
	if (rc != REMO_OK)
		expect_fail(rc, REMO_EPEERLOST, "PeerLost", NULL);
	rc = remo_call(slow_fn, args, &out);
	expect_fail(rc, REMO_EPEERLOST, "PeerLost", NULL);
	assert_int_equal(remo_session_status(p->tp.client), REMO_EPEERLOST);
	remo_value_release(args);
	remo_value_release(slow_fn);
}

static void closing_here_fails_later_calls_with_closed(void **state)
{
	struct pair *p = *state;
	remo_value f = lookup(p, "add_ints"), out;
	remo_session_close(p->tp.client);
	remo_value args = remo_tuple_of(2, remo_int(1), remo_int(2));
	int rc = remo_call(f, args, &out);
	assert_int_equal(rc, REMO_ECLOSED);
	assert_string_equal(remo_error_name(remo_last_error()), "ConnectionError");
	remo_value_release(args);
	remo_value_release(f);
}

static int pair_setup_timeout(void **state)
{
	client_timeout_ms = 100;
	int rc = pair_setup(state);
	client_timeout_ms = 0;
	return rc;
}

static int pair_setup_lease(void **state)
{
	/* the default lease: 10 s, far longer than the call below, so only
	 * reading for a busy session can notice the peer in time */
	server_lease_ms = REMO_DEFAULT_LEASE_MS;
	int rc = pair_setup(state);
	server_lease_ms = 0;
	return rc;
}

struct bg_call {
	remo_session *s;
	int rc;
	atomic_bool done;
};

static void *bg_slow(void *arg)
{
	struct bg_call *b = arg;
	remo_value f, out;
	if (remo_lookup(b->s, "slow", &f) != REMO_OK)
		return NULL;
	remo_value args = remo_tuple_of(1, remo_int(3000));
	b->rc = remo_call(f, args, &out);
	atomic_store(&b->done, true);
	remo_value_release(args);
	remo_value_release(f);
	return NULL;
}

static int64_t ms_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The server's only thread is inside a 3 s call when the client goes:
 * the lease thread reads for it and ends the session at once, not when
 * the call returns (nor after a 10 s lease). */
static void a_peer_gone_during_a_long_call_is_noticed_at_once(void **state)
{
	struct pair *p = *state;
	struct bg_call b = {p->tp.client, -1, false};
	pthread_t th;
	pthread_create(&th, NULL, bg_slow, &b);
	usleep(200 * 1000); /* the server is in slow() now */
	int64_t t0 = ms_now();
	remo_session_close(p->tp.client); /* the peer goes away */
	while (remo_session_status(p->tp.server) == REMO_OK && ms_now() - t0 < 9000)
		usleep(5 * 1000);
	/* noticed while the server's call is still running */
	bool call_still_running = atomic_load(&slow_running);
	assert_int_not_equal(remo_session_status(p->tp.server), REMO_OK);
	assert_true(call_still_running);
	pthread_join(th, NULL);
	assert_int_equal(b.rc, REMO_ECLOSED);
}

static void a_per_call_timeout(void **state)
{
	struct pair *p = *state;
	remo_value slow_fn = lookup(p, "slow"), f = lookup(p, "add_ints"), out;
	remo_value args = remo_tuple_of(1, remo_int(400));
	remo_call_opts quick = {.timeout_ms = 100};
	expect_fail(remo_call_with(slow_fn, args, &quick, &out), REMO_ETIMEDOUT,
	            "TimeoutError", NULL);
	remo_value_release(args);
	usleep(450 * 1000); /* the late reply arrives meanwhile, dropped */
	/* the next call, with no timeout of its own, waits as long as it
	 * takes (the session has none) and gets its own reply */
	args = remo_tuple_of(2, remo_int(40), remo_int(2));
	assert_int_equal(remo_call(f, args, &out), REMO_OK);
	assert_int_equal(out.as.i, 42);
	remo_value_release(args);
	/* a method with a generous timeout succeeds */
	remo_value calc = lookup(p, "calc");
	remo_call_opts ample = {.timeout_ms = 5000};
	args = remo_tuple_of(1, remo_double(1));
	assert_int_equal(remo_call_method_with(calc, "add", args, &ample, &out),
	                 REMO_OK);
	remo_value_release(args);
	remo_value_release(calc);
	remo_value_release(f);
	remo_value_release(slow_fn);
}

static void a_timeout_fails_the_call_and_drops_the_late_reply(void **state)
{
	struct pair *p = *state;
	remo_value slow_fn = lookup(p, "slow"), f = lookup(p, "add_ints"), out;
	remo_value args = remo_tuple_of(1, remo_int(400));
	expect_fail(remo_call(slow_fn, args, &out), REMO_ETIMEDOUT,
	            "TimeoutError", NULL);
	remo_value_release(args);
	usleep(450 * 1000); /* the late reply arrives meanwhile */
	args = remo_tuple_of(2, remo_int(20), remo_int(22));
	assert_int_equal(remo_call(f, args, &out), REMO_OK);
	assert_int_equal(out.as.i, 42); /* not the late reply's nil */
	assert_int_equal(remo_session_status(p->tp.client), REMO_OK);
	remo_value_release(args);
	remo_value_release(f);
	remo_value_release(slow_fn);
}

/*
 * A read-only field that holds a list hands a peer a copy, nested lists
 * included: what the peer writes changes its copy, never the field (the
 * calc demo's history could be overwritten by any client, issue 11).
 */
static void a_read_only_container_cannot_be_written(void **state)
{
	struct pair *p = *state;
	remo_value keeper = lookup(p, "keeper"), items, inner;
	assert_int_equal(remo_getattr(keeper, "items", &items), REMO_OK);
	assert_true(remo_is_proxy(items));
	assert_int_equal(remo_setitem(items, remo_int(0), remo_int(99)),
	                 REMO_OK); /* the copy takes it */
	assert_int_equal(remo_getitem(items, remo_int(1), &inner), REMO_OK);
	assert_int_equal(remo_setitem(inner, remo_int(0), remo_int(77)),
	                 REMO_OK);
	/* the field itself is as it was, at every depth */
	assert_int_equal(remo_list_get(the_keeper.items, 0).as.i, 1);
	remo_value orig_inner = remo_list_get(the_keeper.items, 1);
	assert_int_equal(remo_list_get(orig_inner, 0).as.i, 2);
	/* and the setattr of a read-only field is refused, as before */
	remo_value other = remo_list();
	assert_int_equal(remo_setattr(keeper, "items", other), REMO_ERAISED);
	remo_value_release(other);
	remo_value_release(inner);
	remo_value_release(items);
	remo_value_release(keeper);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, pair_setup, pair_teardown)
	const struct CMUnitTest tests[] = {
		T(lookup_gives_a_proxy_with_its_shape),
		T(the_same_object_is_the_same_proxy),
		T(functions_are_called_with_libffi),
		T(wrong_arguments_are_a_type_error_naming_the_parameter),
		T(methods_and_fields),
		T(errors_cross_by_name_into_the_local_hierarchy),
		T(callbacks_run_in_the_calling_thread),
		T(callbacks_sent_before_the_reply_run_before_it),
		T(callbacks_nest_both_ways),
		T(recursion_across_peers_stops_at_the_limit),
		T(lists_cross_by_reference),
		T(dicts_cross_by_reference),
		T(a_proxy_sent_home_arrives_as_the_original),
		T(released_proxies_free_the_servers_references),
		T(a_large_bytes_argument_arrives_without_a_copy),
		T(replies_go_to_the_thread_that_asked),
		T(a_pending_call_fails_with_peer_lost),
		T(closing_here_fails_later_calls_with_closed),
		T(a_per_call_timeout),
		T(a_read_only_container_cannot_be_written),
		cmocka_unit_test_setup_teardown(
			a_timeout_fails_the_call_and_drops_the_late_reply,
			pair_setup_timeout, pair_teardown),
		cmocka_unit_test_setup_teardown(
			a_peer_gone_during_a_long_call_is_noticed_at_once,
			pair_setup_lease, pair_teardown),
	};
#undef T
	return cmocka_run_group_tests_name("session", tests, NULL, NULL);
}
