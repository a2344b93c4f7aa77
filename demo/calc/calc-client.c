/*
 * calc-client -- uses the calc server's calculator from another process,
 * printing each call and what crossed.
 *
 *   calc-client [--callback] [URL]     (default nn+ipc:///tmp/remo-calc.ipc)
 *
 * Without --callback it looks the calculator up, reads its shape (type,
 * members, signatures: no round trip), calls methods, reads and writes a
 * field, reads the history list by reference, and catches an error by
 * name.  With --callback it passes one of its own C functions, which the
 * server calls back while the client waits.
 */
#include <remo/remo.h>
#include <remo/transport.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calc.h"

static int failures;

/* Prints "  what -> result" or the error, and returns the status. */
static int show(const char *what, int rc, remo_value v)
{
	if (rc == REMO_OK) {
		char *r = remo_repr(v);
		printf("  %-34s -> %s%s\n", what, r ? r : "?",
		       remo_is_proxy(v) ? "  (a proxy: stays on the server)" : "");
		remo_free(r);
	} else {
		remo_value e = remo_last_error();
		printf("  %-34s -> raised %s: %s\n", what, remo_error_name(e),
		       remo_error_message(e));
	}
	return rc;
}

static double square_it(double x)
{
	printf("    (server called back: square_it(%g) in the client)\n", x);
	return x * x;
}

static void expect(bool ok, const char *what)
{
	if (!ok) {
		printf("  UNEXPECTED: %s\n", what);
		failures++;
	}
}

int main(int argc, char **argv)
{
	bool callback = argc > 1 && strcmp(argv[1], "--callback") == 0;
	const char *url = argc > 1 + callback ? argv[1 + callback]
	                                      : CALC_DEFAULT_URL;
	remo_session *s;
	remo_value calc, v, args;
	int rc;

	rc = remo_connect(url, 5000, NULL, NULL, &s);
	if (rc != REMO_OK) {
		fprintf(stderr, "calc-client: cannot connect to %s: %s\n", url,
		        remo_error_message(remo_last_error()));
		return EXIT_FAILURE;
	}
	printf("calc-client%s: connected to %s\n", callback ? " --callback" : "",
	       url);
	rc = show("lookup(\"calc\")", remo_lookup(s, "calc", &calc), calc);
	if (rc != REMO_OK)
		return EXIT_FAILURE;

	if (callback) {
		remo_value fn = remo_function("square_it", "d(x:d)",
		                              (void (*)(void))square_it, NULL);
		args = remo_tuple_of(1, remo_double(3));
		show("calc.clear()", remo_call_method(calc, "clear", remo_nil(), &v), v);
		show("calc.add(3)", remo_call_method(calc, "add", args, &v), v);
		remo_value_release(args);
		args = remo_tuple_of(1, remo_value_retain(fn));
		rc = show("calc.apply(square_it)",
		          remo_call_method(calc, "apply", args, &v), v);
		expect(rc == REMO_OK && v.as.d == 9.0, "apply gives 9");
		remo_value_release(args);
		remo_value_release(fn);
		goto out;
	}

	/* the shape: answered locally, no round trip */
	remo_value add;
	if (remo_getattr(calc, "add", &add) == REMO_OK) { /* a bound method */
		printf("  type(calc) is %s; calc.add has signature %s\n",
		       remo_type_name(calc), remo_signature(add));
		remo_value_release(add);
	}
	remo_value names;
	if (remo_dir(calc, &names) == REMO_OK) {
		char *r = remo_repr(names);
		printf("  dir(calc)                          -> %s\n", r);
		remo_free(r);
		remo_value_release(names);
	}

	show("calc.clear()", remo_call_method(calc, "clear", remo_nil(), &v), v);
	args = remo_tuple_of(1, remo_double(2.5));
	rc = show("calc.add(2.5)", remo_call_method(calc, "add", args, &v), v);
	remo_value_release(args);
	args = remo_tuple_of(1, remo_int(4));
	rc = show("calc.mul(4)", remo_call_method(calc, "mul", args, &v), v);
	expect(rc == REMO_OK && v.as.d == 10.0, "mul gives 10");
	remo_value_release(args);

	show("calc.acc", remo_getattr(calc, "acc", &v), v);
	v = remo_double(100);
	show("calc.acc = 100", remo_setattr(calc, "acc", v), v);
	show("calc.acc", remo_getattr(calc, "acc", &v), v);
	expect(v.as.d == 100, "acc was set");
	show("calc.ops = 0", remo_setattr(calc, "ops", remo_int(0)), remo_nil());

	/* the history list stays on the server: a proxy, items on demand */
	remo_value hist, item;
	size_t n = 0;
	show("calc.history", remo_getattr(calc, "history", &hist), hist);
	remo_len(hist, &n);
	printf("  %-34s -> %zu\n", "len(calc.history)", n);
	if (n > 0) {
		show("calc.history[-1]", remo_getitem(hist, remo_int(-1), &item), item);
		remo_value_release(item);
	}
	remo_value_release(hist);

	args = remo_tuple_of(1, remo_double(0));
	rc = show("calc.div(0)", remo_call_method(calc, "div", args, &v), v);
	expect(rc == REMO_ERAISED &&
	       remo_error_isa(remo_last_error(), "ZeroDivisionError"),
	       "ZeroDivisionError");
	printf("  %-34s -> %s\n", "  ...is it an ArithmeticError?",
	       remo_error_isa(remo_last_error(), "ArithmeticError") ? "yes" : "no");
	remo_value_release(args);

	args = remo_tuple_of(1, remo_str("ten"));
	rc = show("calc.add(\"ten\")", remo_call_method(calc, "add", args, &v), v);
	expect(rc == REMO_ERAISED, "TypeError before sending");
	remo_value_release(args);
	show("calc.nosuch", remo_getattr(calc, "nosuch", &v), v);

out:
	remo_value_release(calc);
	remo_session_free(s);
	printf("calc-client: %s\n", failures ? "FAILED" : "done");
	return failures ? EXIT_FAILURE : EXIT_SUCCESS;
}
