/*
 * calc-server -- exports a calculator and serves it until SIGINT/SIGTERM.
 *
 *   calc-server [URL]        (default nn+ipc:///tmp/remo-calc.ipc)
 *
 * The calculator is a plain C struct with plain C functions, registered
 * with signature strings: no IDL, no stubs.  It has a read-write field
 * (acc), a read-only field (ops), a list it keeps (history, read-only:
 * clients see a copy by reference, which they cannot use to change the
 * calculator's own), methods, a method that raises, and a method that
 * calls back into the client (apply).
 */
#include <remo/remo.h>
#include <remo/trace.h>
#include <remo/transport.h>

#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "calc.h"

struct calc {
	double acc;
	int ops;
	remo_value history; /* a list of (op, operand, result) tuples */
};

static void record(struct calc *c, const char *op, double x)
{
	c->ops++;
	remo_list_append(c->history, remo_tuple_of(3, remo_str(op),
	                                            remo_double(x),
	                                            remo_double(c->acc)));
}

static double calc_add(struct calc *c, double x)
{
	c->acc += x;
	record(c, "add", x);
	return c->acc;
}

static double calc_mul(struct calc *c, double x)
{
	c->acc *= x;
	record(c, "mul", x);
	return c->acc;
}

static double calc_div(struct calc *c, double x)
{
	if (x == 0) {
		double acc = c->acc;
		REMO_LOCAL(acc); /* for the traceback: remo-pdb, remo.pm() */
		REMO_LOCAL(x);
		remo_raise("ZeroDivisionError", "cannot divide %g by zero", c->acc);
		return 0;
	}
	c->acc /= x;
	record(c, "div", x);
	return c->acc;
}

static void calc_clear(struct calc *c)
{
	c->acc = 0;
	record(c, "clear", 0);
}

/* Applies the caller's function fn to acc: a call back into the client. */
static double calc_apply(struct calc *c, remo_value fn)
{
	remo_value args = remo_tuple_of(1, remo_double(c->acc)), res;
	int rc = remo_call(fn, args, &res);
	remo_value_release(args);
	if (rc != REMO_OK) {
		remo_raise_value(remo_value_retain(remo_last_error()));
		return 0;
	}
	if (res.kind != REMO_DOUBLE && res.kind != REMO_INT) {
		remo_raise("TypeError", "apply: the function must return a number");
		remo_value_release(res);
		return 0;
	}
	c->acc = res.kind == REMO_INT ? (double)res.as.i : res.as.d;
	record(c, "apply", 0);
	return c->acc;
}

static remo_server *server;

static void on_signal(int sig)
{
	(void)sig;
	remo_server_stop(server); /* async-signal-safe */
}

static int fail(const char *what, int rc)
{
	remo_value e = remo_last_error();
	fprintf(stderr, "calc-server: %s: %s%s%s\n", what, remo_strerror(rc),
	        e.kind == REMO_ERROR ? ": " : "",
	        e.kind == REMO_ERROR ? remo_error_message(e) : "");
	return EXIT_FAILURE;
}

int main(int argc, char **argv)
{
	const char *url = argc > 1 ? argv[1] : CALC_DEFAULT_URL;
	struct calc calc = {0, 0, remo_list()};
	int rc;

	remo_type *t = remo_type_new("Calc", NULL, "an accumulating calculator",
	                             &rc);
	if (t == NULL)
		return fail("registering Calc", rc);
#define CHECK(call)                                                         \
	if ((rc = (call)) != REMO_OK)                                       \
		return fail(#call, rc)
	CHECK(remo_type_field(t, "acc", "d", offsetof(struct calc, acc), 0));
	CHECK(remo_type_field(t, "ops", "i", offsetof(struct calc, ops),
	                      REMO_READONLY));
	CHECK(remo_type_field(t, "history", "r",
	                      offsetof(struct calc, history), REMO_READONLY));
	CHECK(remo_type_method(t, "add", "d(x:d)", (void (*)(void))calc_add,
	                       "acc += x"));
	CHECK(remo_type_method(t, "mul", "d(x:d)", (void (*)(void))calc_mul,
	                       "acc *= x"));
	CHECK(remo_type_method(t, "div", "d(x:d)", (void (*)(void))calc_div,
	                       "acc /= x; ZeroDivisionError for 0"));
	CHECK(remo_type_method(t, "clear", "v()", (void (*)(void))calc_clear,
	                       "acc = 0"));
	CHECK(remo_type_method(t, "apply", "d(fn:r)", (void (*)(void))calc_apply,
	                       "acc = fn(acc), calling the caller back"));

	remo_exports *ex = remo_exports_new();
	remo_value obj = remo_object(t, &calc, NULL);
	CHECK(remo_export(ex, "calc", obj));
	remo_value_release(obj);

	server = remo_server_new(ex, NULL, &rc);
	if (server == NULL)
		return fail("remo_server_new", rc);
	char bound[256];
	CHECK(remo_server_listen(server, url, bound, sizeof bound));

	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	printf("calc-server: serving Calc as \"calc\" on %s (pid %d)\n", bound,
	       (int)getpid());
	fflush(stdout);
	remo_server_run(server);
	printf("calc-server: stopped after %d operations\n", calc.ops);
	remo_server_free(server);
	remo_exports_free(ex);
	remo_value_release(calc.history);
	return EXIT_SUCCESS;
}
