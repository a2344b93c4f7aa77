/*
 * ts.c -- the tuple space's client library (ts.h): proxies of the
 * server's functions, looked up once, and the wildcards.
 */
#include "ts.h"

#include <stdlib.h>
#include <string.h>

static const char *const kinds[] = {"any", "int", "double", "str", "bytes",
                                    "bool", "tuple", "list", "dict",
                                    "object"};
#define NKINDS (sizeof kinds / sizeof kinds[0])

struct ts {
	remo_session *s;
	remo_value out, take, read, takep, readp, count;
	remo_value any[NKINDS];
};

void ts_close(ts *t)
{
	if (t == NULL)
		return;
	remo_value *v[] = {&t->out, &t->take, &t->read, &t->takep, &t->readp,
	                   &t->count};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
		remo_value_release(*v[i]);
	for (size_t i = 0; i < NKINDS; i++)
		remo_value_release(t->any[i]);
	remo_session_free(t->s);
	free(t);
}

ts *ts_connect(const char *url, const remo_session_opts *opts, int *rc)
{
	ts *t = calloc(1, sizeof *t);
	int st = t == NULL ? REMO_ENOMEM
	                   : remo_connect(url, 10000, NULL, opts, &t->s);
	const char *names[] = {"out", "take", "read", "takep", "readp",
	                       "count"};
	remo_value *slots[] = {&t->out, &t->take, &t->read, &t->takep,
	                       &t->readp, &t->count};
	for (size_t i = 0; st == REMO_OK && i < 6; i++)
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

int ts_count(ts *t, int64_t *out)
{
	remo_value v;
	int rc = remo_call(t->count, remo_nil(), &v);
	*out = rc == REMO_OK ? v.as.i : 0;
	return rc;
}
