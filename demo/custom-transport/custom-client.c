/*
 * custom-client -- starts calc-helper through the exec transport, calls
 * its functions, and prints each call and what came back, errors by name.
 *
 *   custom-client [--kill | --sleep SECONDS] [HELPER [ARG...]]
 *
 * HELPER defaults to the calc-helper beside this program.  The URL is
 * "exec://" and the words HELPER ARG... joined by spaces.  --kill then
 * kills the helper with SIGKILL and shows the next call fail with
 * PeerLost; --sleep makes one long call, for killing the helper from
 * outside while a call is in flight.  The exec transport module is found
 * through $REMO_TRANSPORT_PATH (README.md, "Running the demo").
 *
 * Exit status: 0 when every step went as expected, 1 otherwise.
 */
#include <remo/remo.h>
#include <remo/transport.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prints what the last failure raised: "ValueError: message". */
static void print_error(int rc)
{
	remo_value e = remo_last_error();
	if (e.kind == REMO_ERROR)
		printf("%s: %s\n", remo_error_name(e), remo_error_message(e));
	else
		printf("%s\n", remo_strerror(rc));
}

/*
 * Calls fn (a proxy named name) with args (stolen) and prints the call
 * and its result.  *out (if not NULL) gets the result, a new value.
 * Returns remo_call's status.
 */
static int call(const char *name, remo_value fn, remo_value args,
                remo_value *out)
{
	remo_value res = remo_nil();
	char *a = remo_repr(args);
	size_t n = a ? strlen(a) : 0;
	if (n >= 3 && strcmp(a + n - 2, ",)") == 0)
		strcpy(a + n - 2, ")"); /* "(2.0,)", a 1-tuple, reads as "(2.0)" */
	int rc = remo_call(fn, args, &res);
	remo_value_release(args);
	printf("  %s%s -> ", name, a ? a : "(?)");
	remo_free(a);
	if (rc != REMO_OK) {
		print_error(rc);
	} else {
		char *r = remo_repr(res);
		printf("%s\n", r ? r : "?");
		remo_free(r);
	}
	if (out != NULL)
		*out = res;
	else
		remo_value_release(res);
	return rc;
}

static remo_value two(double a, double b)
{
	return remo_tuple_of(2, remo_double(a), remo_double(b));
}

static remo_value one(double a)
{
	return remo_tuple_of(1, remo_double(a));
}

/* "exec://" and the words joined by spaces; the default helper is the
 * calc-helper in the directory of self.  NULL if out of memory. */
static char *make_url(const char *self, int n, char **words)
{
	size_t len = strlen("exec://") + strlen(self) + strlen("calc-helper") + 1;
	for (int i = 0; i < n; i++)
		len += strlen(words[i]) + 1;
	char *url = malloc(len);
	if (url == NULL)
		return NULL;
	strcpy(url, "exec://");
	if (n == 0) {
		const char *slash = strrchr(self, '/');
		if (slash != NULL)
			strncat(url, self, (size_t)(slash - self + 1));
		strcat(url, "calc-helper");
	}
	for (int i = 0; i < n; i++) {
		if (i > 0)
			strcat(url, " ");
		strcat(url, words[i]);
	}
	return url;
}

int main(int argc, char **argv)
{
	int argi = 1, rc, ok = 1;
	bool kill_it = false;
	double nap = -1;
	remo_session *s;
	remo_value res;

	/* whole lines, in order with the helper's log on the shared stderr */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argi < argc && strcmp(argv[argi], "--kill") == 0) {
		kill_it = true;
		argi++;
	} else if (argi + 1 < argc && strcmp(argv[argi], "--sleep") == 0) {
		nap = atof(argv[argi + 1]);
		argi += 2;
	} else if (argi < argc && argv[argi][0] == '-') {
		fprintf(stderr, "usage: custom-client [--kill | --sleep SECONDS] "
		        "[HELPER [ARG...]]\n");
		return 2;
	}
	char *url = make_url(argv[0], argc - argi, argv + argi);
	if (url == NULL)
		return 1;

	printf("connect %s\n", url);
	rc = remo_connect(url, 5000, NULL, NULL, &s);
	free(url);
	if (rc != REMO_OK) {
		printf("  failed: ");
		print_error(rc);
		return 1;
	}

	/* a proxy for each function the helper exports */
	static const char *const names[] = {"add", "sqrt", "pid", "sleep"};
	enum { ADD, SQRT, PID, SLEEP, NFN };
	remo_value fn[NFN] = {{0}};
	for (int i = 0; i < NFN; i++)
		if ((rc = remo_lookup(s, names[i], &fn[i])) != REMO_OK) {
			printf("  lookup %s: ", names[i]);
			print_error(rc);
			ok = 0;
			goto out;
		}

	ok &= call("add", fn[ADD], two(2, 40), NULL) == REMO_OK;
	ok &= call("sqrt", fn[SQRT], one(2), NULL) == REMO_OK;
	/* expected to fail: the helper raises ValueError, which comes back
	 * here by name, with its message */
	rc = call("sqrt", fn[SQRT], one(-1), NULL);
	ok &= rc == REMO_ERAISED &&
	      remo_error_isa(remo_last_error(), "ValueError");

	if (kill_it) {
		rc = call("pid", fn[PID], remo_tuple(0), &res);
		ok &= rc == REMO_OK && res.kind == REMO_INT;
		if (rc == REMO_OK && res.kind == REMO_INT) {
			printf("  kill -9 %lld\n", (long long)res.as.i);
			kill((pid_t)res.as.i, SIGKILL);
			/* the helper's end of the socket closes as it dies: EOF */
			rc = call("add", fn[ADD], two(1, 1), NULL);
			ok &= rc == REMO_EPEERLOST &&
			      remo_error_isa(remo_last_error(), "PeerLost");
		}
		remo_value_release(res);
	}
	if (nap >= 0)
		ok &= call("sleep", fn[SLEEP], one(nap), NULL) == REMO_OK;
out:
	for (int i = 0; i < NFN; i++)
		remo_value_release(fn[i]);
	/* closes the session; the exec transport then reaps the helper */
	remo_session_free(s);
	printf("%s\n", ok ? "done" : "FAILED");
	return ok ? 0 : 1;
}
