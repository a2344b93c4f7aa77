/*
 * server.c -- remo-tuplespace: a Linda tuple space served by remo.
 *
 *   remo-tuplespace URL [--secret-file PATH]
 *
 * Prints "READY <bound url>" once listening; stops cleanly on SIGINT or
 * SIGTERM.  Exports (ts.c wraps them):
 *
 *   out(t:r)               put a tuple
 *   take(p:r) -> r         in(): remove a matching tuple, waiting
 *   read(p:r) -> r         rd(): the same without removing it
 *   takep(p:r), readp(p:r) inp() and rdp(): nil when none matches
 *   any(kind:s) -> Wildcard
 *   count() -> q
 *
 * How it works.  One lock guards the stored tuples (a list, oldest
 * first) and the waiters (a FIFO of blocked take and read calls).  A
 * blocked call is a deferred reply (remo_defer): it holds no thread, and
 * its cancel hook takes it out of the FIFO when its caller times out,
 * cancels or dies.  out() delivers as lindypy defines it: to every
 * waiting reader whose pattern matches, then to the first waiting taker
 * whose pattern matches, and stores the tuple only if there is none; a
 * taker whose answer fails (it was cancelled meanwhile) passes the tuple
 * on to the next, so nothing is lost.  Matching runs under the lock: a
 * pattern is values, wildcards and nested tuples, never the client's
 * code.
 */
#include <remo/remo.h>

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- wildcards ---------------------------------------------------------- */

struct wildcard {
	const char *kind;
};
static struct wildcard wildcards[] = {
	{"any"}, {"int"}, {"double"}, {"str"}, {"bytes"}, {"bool"},
	{"tuple"}, {"list"}, {"dict"}, {"object"},
};
#define NWILD (sizeof wildcards / sizeof wildcards[0])
static remo_type *wildcard_type;
static remo_value wildcard_values[NWILD];

static bool wild_ok(const struct wildcard *w, remo_value v)
{
	const char *k = w->kind;
	switch (v.kind) {
	case REMO_INT: return !strcmp(k, "any") || !strcmp(k, "int");
	case REMO_DOUBLE: return !strcmp(k, "any") || !strcmp(k, "double");
	case REMO_STR: return !strcmp(k, "any") || !strcmp(k, "str");
	case REMO_BYTES: return !strcmp(k, "any") || !strcmp(k, "bytes");
	case REMO_BOOL: return !strcmp(k, "any") || !strcmp(k, "bool");
	case REMO_TUPLE: return !strcmp(k, "any") || !strcmp(k, "tuple");
	case REMO_LIST: return !strcmp(k, "any") || !strcmp(k, "list");
	case REMO_DICT: return !strcmp(k, "any") || !strcmp(k, "dict");
	case REMO_OBJECT:
	case REMO_CALLABLE: return !strcmp(k, "any") || !strcmp(k, "object");
	default: return !strcmp(k, "any");
	}
}

/* ---- the space ----------------------------------------------------------- */

struct waiter {
	struct waiter *next;
	remo_deferred *d;
	remo_value pattern;
	bool take;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static remo_value tuples; /* list, oldest first */
static struct waiter *whead, *wtail;

static bool match(remo_value p, remo_value v, unsigned depth)
{
	struct wildcard *w = remo_object_ptr(p, wildcard_type);
	if (w != NULL)
		return wild_ok(w, v);
	if (p.kind == REMO_TUPLE && v.kind == REMO_TUPLE) {
		size_t n = remo_tuple_len(p);
		if (n != remo_tuple_len(v) || depth > 32)
			return false;
		for (size_t i = 0; i < n; i++)
			if (!match(remo_tuple_get(p, i), remo_tuple_get(v, i),
			           depth + 1))
				return false;
		return true;
	}
	return remo_equal(p, v);
}

/* A pattern or tuple a peer sent: a tuple, and no remote list or dict in
 * it (those go by value: ts_out sends them so). */
static bool well_formed(remo_value t, const char *what, unsigned depth)
{
	if (depth == 0 && t.kind != REMO_TUPLE) {
		remo_raise("TypeError", "a %s is a tuple", what);
		return false;
	}
	if (depth > 32) {
		remo_raise("ValueError", "a %s nests too deep", what);
		return false;
	}
	for (size_t i = 0; t.kind == REMO_TUPLE && i < remo_tuple_len(t); i++) {
		remo_value x = remo_tuple_get(t, i);
		if (remo_is_proxy(x) && (remo_isinstance(x, "list") ||
		                         remo_isinstance(x, "dict"))) {
			remo_raise("TypeError", "a %s holds lists and dicts by "
			           "value (remo_by_value), not by reference", what);
			return false;
		}
		if (!well_formed(x, what, depth + 1))
			return false;
	}
	return true;
}


static void unlink_waiter(struct waiter *w)
{
	struct waiter **pp = &whead, *prev = NULL;
	for (; *pp != NULL; prev = *pp, pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			if (wtail == w)
				wtail = prev;
			return;
		}
}

static void waiter_free(struct waiter *w)
{
	remo_value_release(w->pattern);
	free(w);
}

static void on_cancel(remo_deferred *d, void *user)
{
	struct waiter *w = user;
	pthread_mutex_lock(&lock);
	bool mine = false;
	for (struct waiter *x = whead; x != NULL; x = x->next)
		mine |= x == w;
	if (mine)
		unlink_waiter(w);
	pthread_mutex_unlock(&lock);
	if (mine) { /* nobody else will answer it: we do (nothing goes) */
		remo_value e = remo_error("CancelledError", "cancelled");
		remo_deferred_fail(d, e);
		remo_value_release(e);
		waiter_free(w);
	}
}

static void s_out(remo_value t)
{
	if (!well_formed(t, "tuple", 0))
		return;
	for (;;) {
		struct waiter *readers = NULL, *taker = NULL;
		pthread_mutex_lock(&lock);
		for (struct waiter *w = whead, *next; w != NULL; w = next) {
			next = w->next;
			if (!match(w->pattern, t, 0))
				continue;
			if (!w->take) {
				unlink_waiter(w);
				w->next = readers;
				readers = w;
			} else if (taker == NULL) {
				unlink_waiter(w);
				taker = w;
			}
		}
		if (taker == NULL) /* stored, in the same hold: a take that
		                      comes next finds it */
			remo_list_append(tuples, remo_value_retain(t));
		pthread_mutex_unlock(&lock);
		/* a tuple crosses with its lists and dicts by value: the
		 * taker gets data, not references into the space */
		remo_value copy = remo_by_value(t);
		while (readers != NULL) {
			struct waiter *next = readers->next;
			remo_deferred_reply(readers->d, copy);
			waiter_free(readers);
			readers = next;
		}
		int rc = taker != NULL ? remo_deferred_reply(taker->d, copy)
		                       : REMO_OK;
		remo_value_release(copy);
		if (taker == NULL)
			return;
		waiter_free(taker);
		if (rc == REMO_OK)
			return;
		/* it was cancelled meanwhile: the next taker, or the store */
	}
}

/* take or read: a matching stored tuple, or a deferred wait for one */
static remo_value s_get(remo_value p, bool take, bool wait)
{
	if (!well_formed(p, "pattern", 0))
		return remo_nil();
	pthread_mutex_lock(&lock);
	size_t n = remo_list_len(tuples);
	for (size_t i = 0; i < n; i++) {
		remo_value t = remo_list_get(tuples, i);
		if (match(p, t, 0)) {
			remo_value got;
			if (take)
				remo_list_pop(tuples, i, &got);
			else
				got = remo_value_retain(t);
			pthread_mutex_unlock(&lock);
			remo_value copy = remo_by_value(got);
			remo_value_release(got);
			return copy;
		}
	}
	if (wait) {
		struct waiter *w = calloc(1, sizeof *w);
		w->pattern = remo_value_retain(p);
		w->take = take;
		w->d = remo_defer(on_cancel, w);
		if (w->d != NULL) {
			if (wtail != NULL)
				wtail->next = w;
			else
				whead = w;
			wtail = w;
		} else {
			waiter_free(w);
		}
	}
	pthread_mutex_unlock(&lock);
	return remo_nil(); /* a deferred call ignores it */
}

static remo_value s_take(remo_value p) { return s_get(p, true, true); }
static remo_value s_read(remo_value p) { return s_get(p, false, true); }
static remo_value s_takep(remo_value p) { return s_get(p, true, false); }
static remo_value s_readp(remo_value p) { return s_get(p, false, false); }

static remo_value s_any(const char *kind)
{
	for (size_t i = 0; i < NWILD; i++)
		if (strcmp(wildcards[i].kind, kind) == 0)
			return remo_value_retain(wildcard_values[i]);
	remo_raise("ValueError", "no wildcard '%s'", kind);
	return remo_nil();
}

static int64_t s_count(void)
{
	pthread_mutex_lock(&lock);
	int64_t n = (int64_t)remo_list_len(tuples);
	pthread_mutex_unlock(&lock);
	return n;
}

/* ---- the program --------------------------------------------------------- */

static remo_server *server;

static void on_signal(int sig)
{
	(void)sig;
	if (server != NULL)
		remo_server_stop(server);
}

static void export_fn(remo_exports *ex, const char *name, const char *sig,
                      void (*fn)(void))
{
	remo_value f = remo_function(name, sig, fn, NULL);
	remo_export(ex, name, f);
	remo_value_release(f);
}

int main(int argc, char **argv)
{
	const char *url = NULL;
	remo_server_opts opts = {0};
	static char secret[REMO_MAX_SECRET];
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--secret-file") == 0 && i + 1 < argc) {
			if (remo_secret_load(argv[++i], secret, sizeof secret,
			                     &opts.session.secret_len) != REMO_OK) {
				fprintf(stderr, "remo-tuplespace: %s\n",
				        remo_error_message(remo_last_error()));
				return 1;
			}
			opts.session.secret = secret;
		} else if (url == NULL && argv[i][0] != '-') {
			url = argv[i];
		} else {
			url = NULL;
			break;
		}
	}
	if (url == NULL) {
		fprintf(stderr, "usage: remo-tuplespace URL [--secret-file PATH]\n");
		return 2;
	}
	wildcard_type = remo_type_new("Wildcard", NULL, "a tuple space pattern "
	                              "column that matches a kind", NULL);
	remo_type_field(wildcard_type, "kind", "s",
	                offsetof(struct wildcard, kind), REMO_READONLY);
	for (size_t i = 0; i < NWILD; i++)
		wildcard_values[i] = remo_object(wildcard_type, &wildcards[i],
		                                 NULL);
	tuples = remo_list();
	remo_exports *ex = remo_exports_new();
	export_fn(ex, "out", "v(t:r)", (void (*)(void))s_out);
	export_fn(ex, "take", "r(p:r)", (void (*)(void))s_take);
	export_fn(ex, "read", "r(p:r)", (void (*)(void))s_read);
	export_fn(ex, "takep", "r(p:r)", (void (*)(void))s_takep);
	export_fn(ex, "readp", "r(p:r)", (void (*)(void))s_readp);
	export_fn(ex, "any", "r(kind:s)", (void (*)(void))s_any);
	export_fn(ex, "count", "q()", (void (*)(void))s_count);
	int rc;
	server = remo_server_new(ex, &opts, &rc);
	char bound[256];
	if (server == NULL ||
	    remo_server_listen(server, url, bound, sizeof bound) != REMO_OK) {
		fprintf(stderr, "remo-tuplespace: %s: %s\n", url,
		        remo_error_message(remo_last_error()));
		return 1;
	}
	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	printf("READY %s\n", bound);
	fflush(stdout);
	remo_server_run(server);
	remo_server_free(server);
	remo_exports_free(ex);
	pthread_mutex_lock(&lock);
	while (whead != NULL) { /* sessions ended: their hooks ran */
		struct waiter *w = whead;
		whead = w->next;
		waiter_free(w);
	}
	pthread_mutex_unlock(&lock);
	remo_value_release(tuples);
	for (size_t i = 0; i < NWILD; i++)
		remo_value_release(wildcard_values[i]);
	return 0;
}
