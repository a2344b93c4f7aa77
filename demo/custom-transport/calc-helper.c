/*
 * calc-helper -- the far side of exec://: serves a few functions to the
 * one peer on its stdin and stdout, until that peer goes away.
 *
 * It is not run by hand: a client runs it with
 *     remo_connect("exec:///path/to/calc-helper", ...)
 * and the exec transport (transport/exec/exec.c) joins the client to the
 * helper's fds 0 and 1.  Here those fds become a channel (fdchannel.c),
 * the channel a session, and the session is served until it ends.  Logs
 * go to stderr, which the client shares.
 *
 * Exports:
 *   add(a, b)        a + b, doubles
 *   sqrt(x)          the square root; ValueError for x < 0
 *   pid()            this process's id (for the client's --kill)
 *   sleep(seconds)   waits, to have a call in flight when it is killed
 */
#include "fdchannel.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static double calc_add(double a, double b)
{
	return a + b;
}

static double calc_sqrt(double x)
{
	if (x < 0) {
		/* raise, then return at once: the result is ignored */
		remo_raise("ValueError", "sqrt of a negative number: %g", x);
		return 0;
	}
	return sqrt(x);
}

static int64_t calc_pid(void)
{
	return (int64_t)getpid();
}

static void calc_sleep(double seconds)
{
	struct timespec ts;
	if (seconds < 0 || seconds > 3600) {
		remo_raise("ValueError", "sleep: %g seconds is out of range", seconds);
		return;
	}
	ts.tv_sec = (time_t)seconds;
	ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
	nanosleep(&ts, NULL);
}

/* Registers each function and exports it under its name. */
static int calc_exports(remo_exports *e)
{
	static const struct {
		const char *name, *sig, *doc;
		void (*fn)(void);
	} fns[] = {
		{"add", "d(a:d b:d)", "a + b", (void (*)(void))calc_add},
		{"sqrt", "d(x:d)", "the square root of x >= 0",
		 (void (*)(void))calc_sqrt},
		{"pid", "q()", "the helper's process id", (void (*)(void))calc_pid},
		{"sleep", "v(seconds:d)", "waits", (void (*)(void))calc_sleep},
	};
	for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
		remo_value f = remo_function(fns[i].name, fns[i].sig, fns[i].fn,
		                             fns[i].doc);
		int rc = remo_ok(f) ? remo_export(e, fns[i].name, f) : REMO_ENOMEM;
		remo_value_release(f);
		if (rc != REMO_OK)
			return rc;
	}
	return REMO_OK;
}

int main(int argc, char **argv)
{
	int rc;
	remo_channel ch;
	remo_exports *e;
	remo_session *s;

	(void)argv;
	if (argc > 1 || isatty(0)) {
		fprintf(stderr, "calc-helper: not run by hand: a client starts "
		        "it with exec://PATH/calc-helper (README.md)\n");
		return 2;
	}
	/* a peer that is gone must be a failed send, not a SIGPIPE death */
	signal(SIGPIPE, SIG_IGN);
	if ((e = remo_exports_new()) == NULL ||
	    (rc = calc_exports(e)) != REMO_OK) {
		fprintf(stderr, "calc-helper: cannot register the exports\n");
		return 1;
	}
	if ((rc = fdchannel_stdio(&ch)) != REMO_OK) {
		fprintf(stderr, "calc-helper: no channel on stdin/stdout: %s\n",
		        remo_strerror(rc));
		remo_exports_free(e);
		return 1;
	}
	/* the session owns the channel from here, even if this fails */
	if ((s = remo_session_new(&ch, e, NULL, &rc)) == NULL) {
		fprintf(stderr, "calc-helper: no session: %s\n", remo_strerror(rc));
		remo_exports_free(e);
		return 1;
	}
	fprintf(stderr, "calc-helper[%ld]: serving add, sqrt, pid, sleep\n",
	        (long)getpid());
	rc = remo_session_serve(s, -1);
	fprintf(stderr, "calc-helper[%ld]: session ended: %s\n",
	        (long)getpid(), remo_status_name(rc));
	remo_session_free(s);
	remo_exports_free(e);
	return rc == REMO_ECLOSED || rc == REMO_EPEERLOST ? 0 : 1;
}
