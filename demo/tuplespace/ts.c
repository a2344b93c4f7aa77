/*
 * ts.c -- the tuple space's client library (ts.h): proxies of the
 * server's functions, looked up once, and the wildcards.
 */
#include "ts.h"
#include "../custom-transport/fdchannel.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kinds[] = {"any", "int", "double", "str", "bytes",
                                    "bool", "tuple", "list", "dict",
                                    "object"};
#define NKINDS (sizeof kinds / sizeof kinds[0])

struct ts {
	remo_session *s;
	char *url;
	remo_value out, take, read, takep, readp, count, subscribe, waiting;
	remo_value any[NKINDS];
};

void ts_close(ts *t)
{
	if (t == NULL)
		return;
	remo_value *v[] = {&t->out, &t->take, &t->read, &t->takep, &t->readp,
	                   &t->count, &t->subscribe, &t->waiting};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
		remo_value_release(*v[i]);
	for (size_t i = 0; i < NKINDS; i++)
		remo_value_release(t->any[i]);
	remo_session_free(t->s);
	free(t->url);
	free(t);
}

ts *ts_connect(const char *url, const remo_session_opts *opts, int *rc)
{
	ts *t = calloc(1, sizeof *t);
	if (t == NULL || (t->url = strdup(url)) == NULL) {
		free(t);
		if (rc != NULL)
			*rc = REMO_ENOMEM;
		return NULL;
	}
	int st = remo_connect(url, 10000, NULL, opts, &t->s);
	const char *names[] = {"out", "take", "read", "takep", "readp",
	                       "count", "subscribe", "waiting"};
	remo_value *slots[] = {&t->out, &t->take, &t->read, &t->takep,
	                       &t->readp, &t->count, &t->subscribe,
	                       &t->waiting};
	for (size_t i = 0; st == REMO_OK && i < 8; i++)
		st = remo_lookup(t->s, names[i], slots[i]);
	remo_value any = remo_nil();
	if (st == REMO_OK)
		st = remo_lookup(t->s, "any", &any);
	for (size_t i = 0; st == REMO_OK && i < NKINDS; i++) {
		remo_value args = remo_tuple_of(1, remo_str(kinds[i]));
		st = remo_call(any, args, &t->any[i]);
		remo_value_release(args);
	}
	remo_value_release(any);
	if (rc != NULL)
		*rc = st;
	if (st != REMO_OK) {
		ts_close(t);
		return NULL;
	}
	return t;
}

remo_value ts_any(ts *t, const char *kind)
{
	for (size_t i = 0; i < NKINDS; i++)
		if (strcmp(kinds[i], kind) == 0)
			return t->any[i];
	return remo_nil();
}


static int call1(remo_value fn, remo_value arg, int timeout_ms,
                 remo_value *out)
{
	/* lists and dicts in it go by value (a non-tuple goes as it is,
	 * for the space to refuse by name) */
	remo_value args = remo_tuple_of(1, arg.kind == REMO_TUPLE
	                                   ? remo_by_value(arg)
	                                   : remo_value_retain(arg)), ignored;
	remo_call_opts o = {timeout_ms == 0 ? -1 : timeout_ms};
	int rc = remo_call_with(fn, args, &o, out ? out : &ignored);
	remo_value_release(args);
	if (out == NULL)
		remo_value_release(ignored);
	return rc;
}

int ts_out(ts *t, remo_value tuple)
{
	return call1(t->out, tuple, 0, NULL);
}

int ts_in(ts *t, remo_value p, int timeout_ms, remo_value *out)
{
	return call1(t->take, p, timeout_ms < 0 ? 0 : timeout_ms, out);
}

int ts_rd(ts *t, remo_value p, int timeout_ms, remo_value *out)
{
	return call1(t->read, p, timeout_ms < 0 ? 0 : timeout_ms, out);
}

int ts_inp(ts *t, remo_value p, remo_value *out)
{
	return call1(t->takep, p, 0, out);
}

int ts_rdp(ts *t, remo_value p, remo_value *out)
{
	return call1(t->readp, p, 0, out);
}

int64_t ts_waiting(ts *t)
{
	remo_value v;
	return remo_call(t->waiting, remo_nil(), &v) == REMO_OK ? v.as.i : -1;
}

int ts_count(ts *t, int64_t *out)
{
	remo_value v;
	int rc = remo_call(t->count, remo_nil(), &v);
	*out = rc == REMO_OK ? v.as.i : 0;
	return rc;
}

int ts_subscribe(ts *t, remo_value pattern, remo_value fn, remo_value *sub)
{
	remo_value args = remo_tuple_of(2, pattern.kind == REMO_TUPLE
	                                   ? remo_by_value(pattern)
	                                   : remo_value_retain(pattern),
	                                remo_value_retain(fn));
	int rc = remo_call(t->subscribe, args, sub);
	remo_value_release(args);
	return rc;
}

int ts_unsubscribe(remo_value sub)
{
	remo_value r;
	int rc = remo_call_method(sub, "cancel", remo_nil(), &r);
	if (rc == REMO_OK)
		remo_value_release(r);
	remo_value_release(sub);
	return rc;
}

/* ---- workers ------------------------------------------------------------ */

struct ts_worker {
	ts *t;
	char *name;
	remo_session *s;
	remo_future *f;
	pthread_t thread;
	bool joined;
	int status;
};

/* Waits for the worker's run() and posts its failure. */
static void *eval_main(void *arg)
{
	ts_worker *w = arg;
	remo_value r;
	w->status = remo_future_wait(w->f, -1, &r);
	if (w->status == REMO_OK) {
		remo_value_release(r);
		return NULL;
	}
	remo_value e = remo_last_error();
	char msg[1024];
	snprintf(msg, sizeof msg, "%s: %s", remo_error_name(e),
	         remo_error_message(e));
	remo_value tb = remo_error_traceback(e);
	remo_value err = remo_tuple_of(4, remo_str("error"), remo_str(w->name),
	                               remo_str(msg), remo_value_retain(tb));
	if (ts_out(w->t, err) != REMO_OK)
		fprintf(stderr, "ts_eval: %s failed (%s), and posting it failed "
		        "too: %s\n", w->name, msg,
		        remo_error_message(remo_last_error()));
	remo_value_release(err);
	return NULL;
}

int ts_eval(ts *t, const char *name, const char *command, ts_worker **out)
{
	ts_worker *w = calloc(1, sizeof *w);
	char *url = malloc(strlen(command) + 8);
	int rc = w == NULL || url == NULL || (w->name = strdup(name)) == NULL
	         ? REMO_ENOMEM : REMO_OK;
	if (rc == REMO_OK) {
		sprintf(url, "exec://%s", command);
		w->t = t;
		rc = remo_connect(url, 10000, NULL, NULL, &w->s);
	}
	free(url);
	remo_value run = remo_nil();
	if (rc == REMO_OK)
		rc = remo_lookup(w->s, "run", &run);
	if (rc == REMO_OK) {
		remo_value args = remo_tuple_of(2, remo_str(t->url),
		                                remo_str(name));
		rc = remo_call_async(run, args, NULL, &w->f);
		remo_value_release(args);
	}
	remo_value_release(run);
	if (rc == REMO_OK && pthread_create(&w->thread, NULL, eval_main, w))
		rc = REMO_ENOMEM;
	if (rc != REMO_OK) {
		if (w != NULL) {
			remo_future_free(w->f);
			remo_session_free(w->s);
			free(w->name);
			free(w);
		}
		return rc;
	}
	*out = w;
	return REMO_OK;
}

int ts_eval_wait(ts_worker *w)
{
	if (!w->joined) {
		pthread_join(w->thread, NULL);
		w->joined = true;
	}
	return w->status;
}

void ts_eval_free(ts_worker *w)
{
	if (w == NULL)
		return;
	ts_eval_wait(w);
	remo_future_free(w->f);
	remo_session_free(w->s);
	free(w->name);
	free(w);
}

/* ---- the worker's side ---------------------------------------------------- */

static int (*worker_fn)(ts *t, const char *name, void *arg);
static void *worker_arg;

static void worker_run(const char *url, const char *name)
{
	int rc;
	ts *t = ts_connect(url, NULL, &rc);
	if (t == NULL) {
		remo_raise("ConnectionError", "the worker %s cannot reach the "
		           "space at %s: %s", name, url,
		           remo_error_message(remo_last_error()));
		return;
	}
	rc = worker_fn(t, name, worker_arg);
	ts_close(t);
	if (rc != REMO_OK && rc != REMO_ERAISED)
		remo_raise("WorkerError", "the worker %s failed: %s", name,
		           remo_strerror(rc));
}

int ts_worker_main(int (*fn)(ts *t, const char *name, void *arg), void *arg)
{
	worker_fn = fn;
	worker_arg = arg;
	signal(SIGPIPE, SIG_IGN);
	remo_exports *e = remo_exports_new();
	remo_value run = remo_function("run", "v(url:s name:s)",
	                               (void (*)(void))worker_run,
	                               "connects to the space and works");
	int rc = e != NULL ? remo_export(e, "run", run) : REMO_ENOMEM;
	remo_value_release(run);
	remo_channel ch;
	if (rc == REMO_OK)
		rc = fdchannel_stdio(&ch);
	remo_session *s = NULL;
	if (rc == REMO_OK) {
		remo_session_opts o = {0};
		o.max_concurrent = 4; /* run, and its traceback's calls */
		s = remo_session_new(&ch, e, &o, &rc);
	}
	if (s == NULL) {
		fprintf(stderr, "ts worker: no session on stdin/stdout: %s\n",
		        remo_strerror(rc));
		remo_exports_free(e);
		return 1;
	}
	rc = remo_session_serve(s, -1);
	remo_session_free(s);
	remo_exports_free(e);
	return 0;
}
