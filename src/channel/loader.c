/*
 * loader.c -- finding a transport for a URL (registered, or loaded from
 * a module), checking it before trusting it, and wrapping its
 * connections as remo_channels.  Sessions over them are made a floor up,
 * in net/connect.c (remo_connect) and net/server.c.
 *
 * The loader follows redis's module loader and libuv's uv_dlopen: load,
 * look up the one entry symbol, check the table (ABI version, every
 * required operation), and on any failure dlclose and keep a copy of
 * dlerror()'s text in the error value, since the next dl call overwrites
 * it.  A module that loaded is never unloaded: its code may still be on a
 * stack somewhere, and there are only a handful of transports.
 */
#include "channel/channel.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#ifndef REMO_PLUGINDIR
#define REMO_PLUGINDIR "/usr/local/lib/remo"
#endif

#define TRANSPORT_MAX 32

static pthread_mutex_t transport_lock = PTHREAD_MUTEX_INITIALIZER;
static const remo_transport_ops *transport_table[TRANSPORT_MAX];
static size_t transport_count;

/* The modules shipped with remo, by scheme.  Any other scheme is looked
 * for as a module of the scheme's own name. */
static const struct {
	const char *scheme, *module;
} transport_shipped[] = {
	{"unix", "stream"},     {"tcp", "stream"},
	{"nn+tcp", "nanomsg"},  {"nn+ipc", "nanomsg"},
	{"nn+inproc", "nanomsg"}, {"exec", "exec"},
};

/* Checks a table; raises why it is refused. */
static int transport_check(const remo_transport_ops *t, const char *where)
{
	const char *why = NULL;
	if (t == NULL)
		why = "its entry returned NULL";
	else if (t->abi != REMO_TRANSPORT_ABI && t->abi != 4 && t->abi != 3)
		why = "it was built for another transport ABI";
	else if (t->name == NULL || t->schemes == NULL || t->schemes[0] == NULL)
		why = "it has no name or no schemes";
	else if (t->conn_size == 0 || t->conn_size > (1u << 20))
		why = "its conn_size is 0 or absurd";
	else if (!t->connect || !t->send || !t->recv || !t->close || !t->fini)
		why = "a required operation (connect, send, recv, close, fini) "
		      "is missing";
	else if ((t->listen || t->accept || t->close_listener ||
	          t->fini_listener) &&
	         !(t->listen && t->accept && t->close_listener &&
	           t->fini_listener && t->listener_size > 0))
		why = "it has some listener operations but not all four";
	if (why == NULL)
		return REMO_OK;
	remo__raisef("ValueError", "transport %s refused: %s", where, why);
	return REMO_EINVAL;
}

static const remo_transport_ops *transport_by_scheme(const char *scheme,
                                                     size_t len)
{
	for (size_t i = 0; i < transport_count; i++)
		for (const char *const *s = transport_table[i]->schemes; *s; s++)
			if (strlen(*s) == len && memcmp(*s, scheme, len) == 0)
				return transport_table[i];
	return NULL;
}

/* Adds t; caller holds the lock. */
static int transport_add(const remo_transport_ops *t)
{
	for (const char *const *s = t->schemes; *s; s++)
		if (transport_by_scheme(*s, strlen(*s)) != NULL) {
			remo__raisef("ValueError", "scheme %s is taken", *s);
			return REMO_EEXIST;
		}
	if (transport_count == TRANSPORT_MAX) {
		remo__raisef("LimitError", "more than %d transports",
		             TRANSPORT_MAX);
		return REMO_ELIMIT;
	}
	transport_table[transport_count++] = t;
	return REMO_OK;
}

int remo_transport_register(const remo_transport_ops *ops)
{
	int rc = transport_check(ops, ops && ops->name ? ops->name : "?");
	if (rc != REMO_OK)
		return rc;
	pthread_mutex_lock(&transport_lock);
	rc = transport_add(ops);
	pthread_mutex_unlock(&transport_lock);
	return rc;
}

/* Tries one file; REMO_ENOTFOUND if it is not there. */
static int transport_load_file(const char *path, const char *module,
                               const remo_transport_ops **out)
{
	char sym[96];
	/* Absent is normal (the next directory may have it).  Asked of the
	 * file system, not read from dlerror's text: a module that is there
	 * but lacks a library it needs must say so, not look absent. */
	if (access(path, F_OK) != 0)
		return REMO_ENOTFOUND;
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		const char *err = dlerror();
		remo__raisef("ValueError", "transport module %s: %s", path,
		             err ? err : "dlopen failed");
		return REMO_EINVAL;
	}
	snprintf(sym, sizeof sym, "remo_transport_%s", module);
	dlerror();
	const remo_transport_ops *(*entry)(void) =
		(const remo_transport_ops *(*)(void))(uintptr_t)dlsym(h, sym);
	if (entry == NULL) {
		const char *err = dlerror();
		remo__raisef("ValueError", "transport module %s has no %s: %s",
		             path, sym, err ? err : "");
		dlclose(h);
		return REMO_EINVAL;
	}
	const remo_transport_ops *t = entry();
	int rc = transport_check(t, path);
	if (rc == REMO_OK && strcmp(t->name, module) != 0) {
		remo__raisef("ValueError", "transport module %s calls itself %s",
		             path, t->name);
		rc = REMO_EINVAL;
	}
	if (rc == REMO_OK)
		rc = transport_add(t);
	if (rc != REMO_OK) {
		dlclose(h);
		return rc;
	}
	*out = t;
	return REMO_OK;
}

/* Loads module from the search path; caller holds the lock. */
static int transport_load(const char *module, const remo_transport_ops **out)
{
	char path[4096];
	const char *env = getenv("REMO_TRANSPORT_PATH");
	char dirs[4096];
	snprintf(dirs, sizeof dirs, "%s%s%s", env ? env : "", env ? ":" : "",
	         REMO_PLUGINDIR);
	for (char *save = NULL, *dir = strtok_r(dirs, ":", &save); dir != NULL;
	     dir = strtok_r(NULL, ":", &save)) {
		snprintf(path, sizeof path, "%s/remo_transport_%s.so", dir, module);
		int rc = transport_load_file(path, module, out);
		if (rc != REMO_ENOTFOUND)
			return rc;
	}
	remo__raisef("NotFound",
	             "no transport module remo_transport_%s.so in "
	             "$REMO_TRANSPORT_PATH or %s", module, REMO_PLUGINDIR);
	return REMO_ENOTFOUND;
}

const remo_transport_ops *remo_transport_find(const char *url, int *status)
{
	int rc = REMO_OK;
	const remo_transport_ops *t = NULL;
	const char *sep = url ? strstr(url, "://") : NULL;
	size_t len = sep ? (size_t)(sep - url) : 0;
	char module[64];

	if (sep == NULL || len == 0 || len >= sizeof module) {
		remo__raisef("ValueError", "not a URL: '%s' (scheme://...)",
		             url ? url : "(null)");
		rc = REMO_EINVAL;
		goto out;
	}
	pthread_mutex_lock(&transport_lock);
	t = transport_by_scheme(url, len);
	if (t == NULL) {
		snprintf(module, sizeof module, "%.*s", (int)len, url);
		for (size_t i = 0; i < sizeof transport_shipped /
		                        sizeof transport_shipped[0]; i++)
			if (strcmp(transport_shipped[i].scheme, module) == 0)
				snprintf(module, sizeof module, "%s",
				         transport_shipped[i].module);
		rc = transport_load(module, &t);
		/* a module may serve other schemes than the one asked for */
		if (rc == REMO_OK && transport_by_scheme(url, len) != t) {
			rc = REMO_ENOTFOUND;
			remo__raisef("NotFound", "transport %s has no scheme %.*s",
			             module, (int)len, url);
			t = NULL;
		}
	}
	pthread_mutex_unlock(&transport_lock);
out:
	if (status != NULL)
		*status = rc;
	return rc == REMO_OK ? t : NULL;
}

/* ==== connections as channels ========================================== */

/*
 * One connection: the core's allocation holding the plugin's state.  The
 * state is aligned for anything, since the plugin casts it to its own
 * struct.
 */
struct remo__conn {
	const remo_transport_ops *ops;
	alignas(max_align_t) unsigned char state[];
};

static int conn_send(void *user, const void *msg, size_t n)
{
	struct remo__conn *c = user;
	return c->ops->send(c->state, msg, n);
}

static int conn_recv(void *user, remo_buf *msg, int timeout_ms)
{
	struct remo__conn *c = user;
	return c->ops->recv(c->state, msg, timeout_ms);
}

static void conn_close(void *user)
{
	struct remo__conn *c = user;
	c->ops->close(c->state);
}

static int conn_peer(void *user, char *buf, size_t len)
{
	struct remo__conn *c = user;
	return c->ops->peer != NULL ? c->ops->peer(c->state, buf, len)
	                            : REMO_ENOTFOUND;
}

static void conn_limit(void *user, size_t n)
{
	struct remo__conn *c = user;
	if (c->ops->limit != NULL)
		c->ops->limit(c->state, n);
}

static void conn_destroy(void *user)
{
	struct remo__conn *c = user;
	c->ops->fini(c->state);
	remo__free(c);
}

struct remo__conn *remo__conn_alloc(const remo_transport_ops *t)
{
	struct remo__conn *c = remo__malloc(sizeof *c + t->conn_size);
	if (c != NULL) {
		memset(c, 0, sizeof *c + t->conn_size);
		c->ops = t;
	}
	return c;
}

void *remo__conn_state(struct remo__conn *c)
{
	return c->state;
}

static int conn_sendv(void *user, const remo_iov *iov, int n)
{
	struct remo__conn *c = user;
	return c->ops->sendv(c->state, iov, n);
}

void remo__conn_channel(struct remo__conn *c, remo_channel *out)
{
	/* tables before ABI 5 end before sendv */
	bool v = c->ops->abi >= 5 && c->ops->sendv != NULL;
	*out = (remo_channel){conn_send, conn_recv, conn_close, conn_destroy,
	                      c, conn_peer, conn_limit, v ? conn_sendv : NULL};
}

int remo__conn_fd(struct remo__conn *c)
{
	/* an ABI 3 table ends before fd */
	return c->ops->abi >= 4 && c->ops->fd != NULL ? c->ops->fd(c->state)
	                                              : -1;
}

size_t remo__conn_max_message(const struct remo__conn *c)
{
	return c->ops->max_message;
}

int remo_channel_connect(const char *url, int timeout_ms, remo_channel *out)
{
	int rc;
	memset(out, 0, sizeof *out);
	const remo_transport_ops *t = remo_transport_find(url, &rc);
	if (t == NULL)
		return rc;
	struct remo__conn *c = remo__conn_alloc(t);
	if (c == NULL)
		return remo__fail(REMO_ENOMEM, "connect");
	remo__clear_pending();
	rc = t->connect(c->state, url, timeout_ms);
	if (rc != REMO_OK) {
		remo__free(c);
		return remo__fail_pending(rc, url);
	}
	remo__conn_channel(c, out);
	return REMO_OK;
}
