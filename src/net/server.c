/*
 * server.c -- remo_server: listen on addresses, serve each session in a
 * thread of its own, stop on request (from a signal handler too).
 *
 * Thread model: one accept thread per listening address, one thread per
 * session, which opens the session (with a secret, the peer must prove
 * it first, within handshake_ms) and then runs remo_session_serve.  A
 * thread per session is the simplest model in which every session's
 * calls, and the callbacks they make, proceed independently: a slow call
 * in one client never delays another, and a callback can nest as deep as
 * the session allows.  Its cost is a thread's stack per client (bench:
 * memory per idle session), bounded by max_sessions.  An event loop was
 * rejected for now: remo's calls into C code block, so it would need a
 * worker pool anyway.
 *
 * Stopping must be possible from a SIGINT or SIGTERM handler, so
 * remo_server_stop only sets a flag and writes one byte to a pipe; the
 * thread in remo_server_run wakes on that byte and does the real work.
 */
#include "net/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#define SERVER_MAX_LISTENERS 16
#define SERVER_ACCEPT_SLICE_MS 200 /* how often an accept loop looks up */

struct srv_listener {
	remo_server *srv;
	const remo_transport_ops *ops;
	void *state;       /* listener_size bytes, the core's */
	pthread_t thread;
	bool running;
};

struct srv_session {
	struct srv_session *next;
	remo_server *srv;
	remo_channel ch;          /* until the session takes it        */
	remo_session_opts opts;
	remo_session *_Atomic s;  /* set by the thread once the opening
	                             (and its authentication) is done  */
	pthread_t thread;
	bool done;
};

struct remo_server {
	remo_exports *exports;
	remo_server_opts opts;
	pthread_mutex_t lock;
	struct srv_listener listeners[SERVER_MAX_LISTENERS];
	size_t nlisteners;
	struct srv_session *sessions;
	unsigned nsessions;
	int wake[2];          /* the stop pipe */
	pthread_cond_t stopped; /* remo_server_run has returned */
	atomic_bool stopping;
	bool running;
};

remo_server *remo_server_new(remo_exports *exports,
                             const remo_server_opts *opts, int *status)
{
	remo_server *srv = remo__malloc(sizeof *srv);
	if (srv == NULL) {
		if (status)
			*status = REMO_ENOMEM;
		return NULL;
	}
	memset(srv, 0, sizeof *srv);
	srv->exports = exports;
	if (opts != NULL)
		srv->opts = *opts;
	if (srv->opts.max_sessions == 0)
		srv->opts.max_sessions = REMO_DEFAULT_MAX_SESSIONS;
	if (pipe2(srv->wake, O_CLOEXEC) != 0) {
		remo__free(srv);
		if (status)
			*status = REMO_ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&srv->lock, NULL);
	pthread_cond_init(&srv->stopped, NULL);
	if (status)
		*status = REMO_OK;
	return srv;
}

/* The schemes whose addresses other machines can reach. */
static const char *const server_net_schemes[] = {"tcp://", "nn+tcp://",
                                                 "tls://"};

static bool server_addr_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >>
		        24) == 127;
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(
			&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return false;
}

/*
 * True if url listens where another machine can connect: a network
 * scheme whose host is empty or "*" (every interface) or resolves to any
 * address that is not loopback.  A host that does not resolve is left to
 * the transport to refuse.
 */
static bool server_url_is_open(const char *url)
{
	const char *p = NULL;
	for (size_t i = 0; i < sizeof server_net_schemes /
	                       sizeof server_net_schemes[0]; i++)
		if (strncmp(url, server_net_schemes[i],
		            strlen(server_net_schemes[i])) == 0)
			p = url + strlen(server_net_schemes[i]);
	if (p == NULL)
		return false; /* unix://, exec://, nn+ipc://...: this machine */
	char host[256];
	const char *end = *p == '[' ? strchr(p, ']') : strrchr(p, ':');
	if (*p == '[')
		p++;
	if (end == NULL || end < p || (size_t)(end - p) >= sizeof host)
		return false;
	memcpy(host, p, (size_t)(end - p));
	host[end - p] = '\0';
	if (host[0] == '\0' || strcmp(host, "*") == 0)
		return true;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
	if (getaddrinfo(host, NULL, &hints, &res) != 0)
		return false;
	bool open = false;
	for (struct addrinfo *a = res; a != NULL; a = a->ai_next)
		open |= !server_addr_loopback(a->ai_addr);
	freeaddrinfo(res);
	return open;
}

int remo_server_listen(remo_server *srv, const char *url, char *bound,
                       size_t boundlen)
{
	if (srv == NULL || url == NULL)
		return remo__fail(REMO_EINVAL, "listen");
	/* default deny at the door, as Redis's protected mode: a server that
	 * any machine can reach must ask who is calling, or say that it
	 * means to serve anyone */
	if (srv->opts.session.secret == NULL && !srv->opts.open &&
	    server_url_is_open(url)) {
		remo__raisef("PermissionError", "refusing to serve %s without a "
		             "secret: other machines can reach it (set "
		             "remo_server_opts.session.secret, or .open to serve "
		             "anyone)", url);
		return REMO_EINVAL;
	}
	int rc;
	const remo_transport_ops *t = remo_transport_find(url, &rc);
	if (t == NULL)
		return rc;
	if (t->listen == NULL) {
		remo__raisef("ValueError", "transport %s cannot listen", t->name);
		return REMO_EINVAL;
	}
	pthread_mutex_lock(&srv->lock);
	if (srv->nlisteners == SERVER_MAX_LISTENERS || srv->running) {
		pthread_mutex_unlock(&srv->lock);
		remo__raisef("LimitError", "at most %d addresses, added before "
		             "remo_server_run", SERVER_MAX_LISTENERS);
		return REMO_ELIMIT;
	}
	pthread_mutex_unlock(&srv->lock);
	void *state = remo__malloc(t->listener_size);
	if (state == NULL)
		return remo__fail(REMO_ENOMEM, "listen");
	memset(state, 0, t->listener_size);
	remo__clear_pending();
	rc = t->listen(state, url, bound, boundlen);
	if (rc != REMO_OK) {
		remo__free(state);
		return remo__fail_pending(rc, url);
	}
	pthread_mutex_lock(&srv->lock);
	srv->listeners[srv->nlisteners++] =
		(struct srv_listener){.srv = srv, .ops = t, .state = state};
	pthread_mutex_unlock(&srv->lock);
	return REMO_OK;
}

/*
 * A session's thread: the opening first, here and not in the accept
 * loop, since with a secret it waits for the peer's proof (up to
 * handshake_ms): a peer that connects and says nothing delays nobody
 * else.  Then serving, unless the server is stopping: s is published
 * before stopping is read, and remo_server_run sets stopping before it
 * reads s, so one of the two always sees the other.
 */
static void *session_main(void *arg)
{
	struct srv_session *ss = arg;
	int rc;
	remo_session *s = remo_session_new(&ss->ch, ss->srv->exports,
	                                   &ss->opts, &rc);
	atomic_store(&ss->s, s);
	if (s != NULL && !atomic_load(&ss->srv->stopping))
		remo_session_serve(s, -1);
	/* the session ended: its helpers end once their calls return (here,
	 * not in reap, which the accept loop runs) */
	if (s != NULL)
		remo__session_join_helpers(s);
	pthread_mutex_lock(&ss->srv->lock);
	ss->done = true;
	ss->srv->nsessions--;
	pthread_mutex_unlock(&ss->srv->lock);
	return NULL;
}

/* Joins and frees the sessions whose thread ended. */
static void reap(remo_server *srv)
{
	struct srv_session *done = NULL;
	pthread_mutex_lock(&srv->lock);
	for (struct srv_session **pp = &srv->sessions; *pp;) {
		struct srv_session *ss = *pp;
		if (ss->done) {
			*pp = ss->next;
			ss->next = done;
			done = ss;
		} else {
			pp = &ss->next;
		}
	}
	pthread_mutex_unlock(&srv->lock);
	while (done != NULL) {
		struct srv_session *next = done->next;
		pthread_join(done->thread, NULL);
		remo_session_free(atomic_load(&done->s));
		remo__free(done);
		done = next;
	}
}

static void start_session(remo_server *srv, struct remo__conn *c)
{
	remo_channel ch;
	remo__conn_channel(c, &ch);
	/* take a place first, so two listeners cannot both take the last */
	pthread_mutex_lock(&srv->lock);
	bool full = srv->nsessions >= srv->opts.max_sessions;
	if (!full)
		srv->nsessions++;
	pthread_mutex_unlock(&srv->lock);
	if (full || atomic_load(&srv->stopping)) {
		/* refused: closing the connection tells the client at once;
		 * a full server first says why, so the client gets LimitError
		 * rather than PeerLost (doc/wire.md 7.1, REFUSED) */
		if (full)
			remo__session_refuse(&ch, REMO_ELIMIT);
		if (!full) {
			pthread_mutex_lock(&srv->lock);
			srv->nsessions--;
			pthread_mutex_unlock(&srv->lock);
		}
		ch.destroy(ch.user);
		return;
	}
	remo_session_opts o = remo__conn_session_opts(c, &srv->opts.session);
	struct srv_session *ss = remo__malloc(sizeof *ss);
	if (ss != NULL) {
		*ss = (struct srv_session){.srv = srv, .ch = ch, .opts = o};
		pthread_mutex_lock(&srv->lock);
		ss->next = srv->sessions;
		srv->sessions = ss;
		if (pthread_create(&ss->thread, NULL, session_main, ss) == 0) {
			pthread_mutex_unlock(&srv->lock);
			return;
		}
		srv->sessions = ss->next;
		pthread_mutex_unlock(&srv->lock);
		remo__free(ss);
	}
	ch.destroy(ch.user); /* no thread: nobody took the channel */
	pthread_mutex_lock(&srv->lock);
	srv->nsessions--;
	pthread_mutex_unlock(&srv->lock);
}

static void *accept_main(void *arg)
{
	struct srv_listener *l = arg;
	remo_server *srv = l->srv;
	while (!atomic_load(&srv->stopping)) {
		struct remo__conn *c = remo__conn_alloc(l->ops);
		if (c == NULL) {
			usleep(SERVER_ACCEPT_SLICE_MS * 1000);
			continue;
		}
		int rc = l->ops->accept(l->state, remo__conn_state(c),
		                        SERVER_ACCEPT_SLICE_MS);
		if (rc == REMO_OK)
			start_session(srv, c);
		else
			remo__free(c);
		if (rc == REMO_ECLOSED)
			break;
		reap(srv);
	}
	return NULL;
}

int remo_server_run(remo_server *srv)
{
	pthread_mutex_lock(&srv->lock);
	srv->running = true;
	for (size_t i = 0; i < srv->nlisteners; i++) {
		struct srv_listener *l = &srv->listeners[i];
		l->running = pthread_create(&l->thread, NULL, accept_main, l) == 0;
	}
	pthread_mutex_unlock(&srv->lock);

	char b;
	while (!atomic_load(&srv->stopping)) {
		ssize_t n = read(srv->wake[0], &b, 1);
		if (n < 0 && errno != EINTR)
			break;
	}
	atomic_store(&srv->stopping, true);

	for (size_t i = 0; i < srv->nlisteners; i++) {
		struct srv_listener *l = &srv->listeners[i];
		l->ops->close_listener(l->state);
		if (l->running)
			pthread_join(l->thread, NULL);
		l->running = false;
	}
	/* close every session: each serve returns, each thread ends.  The
	 * list is only changed by reap, which now only this thread calls
	 * (the accept threads are joined), so it is walked without the lock:
	 * a close may wait, and session threads need the lock to finish. */
	for (struct srv_session *ss = srv->sessions; ss; ss = ss->next)
		remo_session_close(atomic_load(&ss->s)); /* NULL: opening */
	for (;;) {
		pthread_mutex_lock(&srv->lock);
		bool empty = srv->sessions == NULL;
		bool any_done = false;
		for (struct srv_session *ss = srv->sessions; ss; ss = ss->next)
			any_done |= ss->done;
		pthread_mutex_unlock(&srv->lock);
		if (empty)
			break;
		if (any_done)
			reap(srv);
		else
			usleep(1000);
	}
	pthread_mutex_lock(&srv->lock);
	srv->running = false;
	pthread_cond_broadcast(&srv->stopped);
	pthread_mutex_unlock(&srv->lock);
	return REMO_OK;
}

void remo_server_stop(remo_server *srv)
{
	/* only a flag and a write(2): both async-signal-safe */
	int saved = errno;
	atomic_store(&srv->stopping, true);
	ssize_t n = write(srv->wake[1], "", 1);
	(void)n;
	errno = saved;
}

unsigned remo_server_sessions(remo_server *srv)
{
	pthread_mutex_lock(&srv->lock);
	unsigned n = srv->nsessions;
	pthread_mutex_unlock(&srv->lock);
	return n;
}

void remo_server_free(remo_server *srv)
{
	if (srv == NULL)
		return;
	/* remo_server_run may still be running in another thread: stop it
	 * and wait until it has let go of everything freed below */
	pthread_mutex_lock(&srv->lock);
	if (srv->running) {
		remo_server_stop(srv);
		while (srv->running)
			pthread_cond_wait(&srv->stopped, &srv->lock);
	}
	pthread_mutex_unlock(&srv->lock);
	for (size_t i = 0; i < srv->nlisteners; i++) {
		srv->listeners[i].ops->fini_listener(srv->listeners[i].state);
		remo__free(srv->listeners[i].state);
	}
	close(srv->wake[0]);
	close(srv->wake[1]);
	pthread_cond_destroy(&srv->stopped);
	pthread_mutex_destroy(&srv->lock);
	remo__free(srv);
}
