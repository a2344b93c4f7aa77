/*
 * server.c -- remo_server: listen on addresses, serve every session,
 * stop on request (from a signal handler too).
 *
 * Thread model.  One accept thread per listening address.  A session
 * whose transport gives a descriptor to poll (the fd operation: unix://,
 * tcp://, tls://) holds no thread while it is idle: one poller thread
 * watches every such descriptor with epoll (one-shot: a turn re-arms
 * it), and a readable one gets a *turn* on a worker of the server's
 * pool, which reads what has arrived and serves it
 * (remo__session_serve_ready), waits a little for more (TURN_LINGER_MS),
 * then gives the thread back.  A call that blocks keeps its worker; the
 * session's next requests are read and served by helper threads (the
 * session layer's, serve.c), and the pool grows when turns wait for a
 * worker (POOL_GROW_MS), and shrinks back when workers idle.  A session
 * has at most one turn queued or running (ss->turn, a small state
 * machine), so its requests are read in order.  Openings (with a
 * secret, the peer's proof, up to handshake_ms) are jobs of the same
 * pool: a peer that connects and says nothing delays nobody else.
 *
 * A transport without a descriptor (nanomsg) keeps a thread per session,
 * which opens the session and then runs remo_session_serve.
 *
 * Sessions are freed by reap: pooled ones only by the poller thread
 * between two epoll_wait batches (so no event it holds can name a freed
 * session), the others by the accept threads.
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
#include <sched.h>
#include <stdio.h>
#include <sys/epoll.h>
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

/* A pooled session's turn: at most one queued or running. */
enum { TURN_IDLE, TURN_RUNNING, TURN_KICKED, TURN_DEAD };

struct srv_session {
	struct srv_session *next;
	remo_server *srv;
	remo_channel ch;          /* until the session takes it        */
	remo_session_opts opts;
	remo_session *_Atomic s;  /* set once the opening (and its
	                             authentication) is done           */
	pthread_t thread;         /* not pooled: the session's thread  */
	bool done;
	int fd;                   /* pooled: the descriptor polled; -1:
	                             a thread of its own               */
	atomic_int turn;          /* pooled: TURN_*                    */
	struct srv_session *job_next; /* in the pool's queue           */
	bool job_open;            /* the queued job opens the session  */
	int64_t job_since;        /* ms: when it was queued            */
	char key[72];             /* its peer for max_per_address ("":
	                             not counted)                      */
};

/*
 * The pool of workers for pooled sessions' turns and openings.  At
 * least POOL_MIN workers once started; one more when the oldest job
 * has waited POOL_GROW_MS and no worker is idle (the poller looks every
 * POLL_TICK_MS), up to POOL_MAX; a worker idle for POOL_IDLE_MS ends
 * (down to POOL_MIN).  Past POOL_MAX, jobs wait.
 */
#define POOL_MIN 2
#define POOL_MAX 256
#define POOL_GROW_MS 10
#define POOL_IDLE_MS 2000
#define POLL_TICK_MS 10
/* A turn waits this long for its session's next request before it gives
 * its worker back, while no other job waits: a client calling in a loop
 * keeps its worker, as a thread per session would (measured: without
 * it, a null call over unix:// cost 2.1 raw round trips, a hand-off to
 * the poller and one to a worker per call). */
#define TURN_LINGER_MS 5
struct srv_pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;      /* work, or stopping                  */
	pthread_cond_t gone;      /* a worker ended                     */
	struct srv_session *head, *tail;
	unsigned nworkers, nidle;
	bool stopping;
};

struct remo_server {
	remo_exports *exports;
	remo_server_opts opts;
	pthread_mutex_t lock;
	struct srv_listener listeners[SERVER_MAX_LISTENERS];
	size_t nlisteners;
	struct srv_session *sessions;
	unsigned nsessions;
	remo_value per_address;   /* peer key -> its sessions (a dict) */
	unsigned ndone[2];    /* done and not reaped: [0] threads, [1] pooled */
	int wake[2];          /* the stop pipe */
	pthread_cond_t stopped; /* remo_server_run has returned */
	atomic_bool stopping;
	atomic_uint stops;    /* remo_server_stop calls between their flag
	                         and their write: free waits them out */
	bool running;
	int epfd;             /* the poller's epoll; -1: none (no pool)  */
	pthread_t poller;
	bool poller_running;
	atomic_bool poll_stop;
	struct srv_pool pool;
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
	srv->per_address = remo_dict();
	if (!remo_ok(srv->per_address)) {
		remo__free(srv);
		if (status)
			*status = REMO_ENOMEM;
		return NULL;
	}
	if (srv->opts.max_sessions == 0)
		srv->opts.max_sessions = REMO_DEFAULT_MAX_SESSIONS;
	if (pipe2(srv->wake, O_CLOEXEC) != 0) {
		remo_value_release(srv->per_address);
		remo__free(srv);
		if (status)
			*status = REMO_ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&srv->lock, NULL);
	pthread_cond_init(&srv->stopped, NULL);
	pthread_mutex_init(&srv->pool.lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&srv->pool.cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&srv->pool.gone, NULL);
	/* without epoll, every session has a thread (as for nanomsg) */
	srv->epfd = epoll_create1(EPOLL_CLOEXEC);
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
 * The peer of a channel as max_per_address counts it: the IP address
 * of a tcp:// or tls:// peer (the last word of its account, the port
 * cut), "uid=N" of a unix:// one; "" (not counted) if the channel says
 * nothing.
 */
static void peer_key(const remo_channel *ch, char *key, size_t cap)
{
	char line[512];
	key[0] = '\0';
	if (ch->peer == NULL || ch->peer(ch->user, line, sizeof line) != REMO_OK)
		return;
	if (strncmp(line, "unix ", 5) == 0) {
		const char *u = strstr(line, "uid=");
		if (u != NULL)
			snprintf(key, cap, "%.*s", (int)strcspn(u, " "), u);
		return;
	}
	const char *a = strrchr(line, ' ');
	a = a != NULL ? a + 1 : line;
	const char *colon = strrchr(a, ':');
	if (colon != NULL && colon > a)
		snprintf(key, cap, "%.*s", (int)(colon - a), a);
}

/* One more (delta 1) or one fewer (-1) session from key; the count
 * before.  Under srv->lock. */
static int64_t per_address_add(remo_server *srv, const char *key, int delta)
{
	if (key[0] == '\0')
		return 0;
	remo_value k = remo_str(key), v;
	int64_t n = remo_dict_get(srv->per_address, k, &v) == REMO_OK
	            ? v.as.i : 0;
	if (n + delta <= 0)
		remo_dict_del(srv->per_address, k);
	else
		remo_dict_set(srv->per_address, remo_value_retain(k),
		              remo_int(n + delta));
	remo_value_release(k);
	return n;
}

/* The session is over (or never opened): reap may free it. */
static void session_done(struct srv_session *ss)
{
	pthread_mutex_lock(&ss->srv->lock);
	ss->done = true;
	ss->srv->nsessions--;
	per_address_add(ss->srv, ss->key, -1);
	ss->srv->ndone[ss->fd >= 0]++;
	pthread_mutex_unlock(&ss->srv->lock);
}

/*
 * A session's thread (a transport without a descriptor): the opening
 * first, here and not in the accept loop, since with a secret it waits
 * for the peer's proof (up to handshake_ms): a peer that connects and
 * says nothing delays nobody else.  Then serving, unless the server is
 * stopping: s is published before stopping is read, and remo_server_run
 * sets stopping before it reads s, so one of the two always sees the
 * other.
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
	session_done(ss);
	return NULL;
}

/* Joins and frees the sessions that are done: pooled ones only if
 * pooled (the poller, or remo_server_run once the poller ended). */
static void reap(remo_server *srv, bool pooled)
{
	struct srv_session *done = NULL;
	pthread_mutex_lock(&srv->lock);
	/* the walk is O(sessions): only when something is there to reap
	 * (every accept and every poller tick asks) */
	for (struct srv_session **pp = &srv->sessions;
	     *pp && (srv->ndone[0] > 0 || (pooled && srv->ndone[1] > 0));) {
		struct srv_session *ss = *pp;
		if (ss->done && (pooled || ss->fd < 0)) {
			*pp = ss->next;
			ss->next = done;
			done = ss;
			srv->ndone[ss->fd >= 0]--;
		} else {
			pp = &ss->next;
		}
	}
	pthread_mutex_unlock(&srv->lock);
	while (done != NULL) {
		struct srv_session *next = done->next;
		if (done->fd < 0)
			pthread_join(done->thread, NULL);
		/* NULL: the opening failed, and destroyed the channel */
		remo_session_free(atomic_load(&done->s));
		remo__free(done);
		done = next;
	}
}

/* ==== the pool and the poller ========================================== */

static void *worker_main(void *arg);

/* One more worker.  Under pool.lock. */
static void pool_spawn(struct srv_pool *p, remo_server *srv)
{
	pthread_t th;
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &a, worker_main, srv) == 0)
		p->nworkers++;
	pthread_attr_destroy(&a);
}

static void pool_submit(remo_server *srv, struct srv_session *ss, bool open)
{
	struct srv_pool *p = &srv->pool;
	pthread_mutex_lock(&p->lock);
	ss->job_next = NULL;
	ss->job_open = open;
	ss->job_since = remo__now_ms();
	if (p->tail != NULL)
		p->tail->job_next = ss;
	else
		p->head = ss;
	p->tail = ss;
	if (p->nidle > 0)
		pthread_cond_signal(&p->cond);
	else if (p->nworkers < POOL_MIN)
		pool_spawn(p, srv);
	pthread_mutex_unlock(&p->lock);
}

/* The poller's look at the pool, each tick: a job that waits while no
 * worker is idle (all busy in calls) gets a new worker. */
static void pool_watch(remo_server *srv)
{
	struct srv_pool *p = &srv->pool;
	pthread_mutex_lock(&p->lock);
	if (p->head != NULL && p->nidle == 0 && p->nworkers < POOL_MAX &&
	    remo__now_ms() - p->head->job_since >= POOL_GROW_MS)
		pool_spawn(p, srv);
	pthread_mutex_unlock(&p->lock);
}

/*
 * Asks for a turn of ss (an event, or a thread that stopped reading: it
 * may be called under the session's lock, so it only notes and queues).
 * A turn already running is told to go round once more.
 */
static void ss_kick(void *arg)
{
	struct srv_session *ss = arg;
	int st = atomic_load(&ss->turn);
	for (;;) {
		if (st == TURN_KICKED || st == TURN_DEAD)
			return;
		int next = st == TURN_IDLE ? TURN_RUNNING : TURN_KICKED;
		if (atomic_compare_exchange_weak(&ss->turn, &st, next))
			break;
	}
	if (st == TURN_IDLE)
		pool_submit(ss->srv, ss, false);
}

/* A pooled session ended: no more kicks, no more events, then done. */
static void ss_finish(struct srv_session *ss)
{
	remo_session *s = atomic_load(&ss->s);
	remo__session_poll(s, NULL, NULL);
	epoll_ctl(ss->srv->epfd, EPOLL_CTL_DEL, ss->fd, NULL);
	atomic_store(&ss->turn, TURN_DEAD);
	remo__session_join_helpers(s);
	session_done(ss);
}

/* A turn may linger for its session's next request while no job waits
 * for a worker. */
static bool pool_quiet(void *arg)
{
	struct srv_pool *p = &((remo_server *)arg)->pool;
	pthread_mutex_lock(&p->lock);
	bool quiet = p->head == NULL;
	pthread_mutex_unlock(&p->lock);
	return quiet;
}

/* Watches ss's descriptor again (EPOLLONESHOT: it was disarmed by the
 * event that started the turn, so the poller is not woken by every
 * message a turn reads itself).  Re-arming looks at the descriptor as it
 * is, so what came since the turn's last look is not missed. */
static void ss_arm(struct srv_session *ss, int op)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT,
	                         .data.ptr = ss};
	if (epoll_ctl(ss->srv->epfd, op, ss->fd, &ev) != 0)
		remo_session_close(atomic_load(&ss->s)); /* unwatched: end it */
}

static void job_turn(struct srv_session *ss)
{
	remo_session *s = atomic_load(&ss->s);
	for (;;) {
		bool handed;
		if (remo__session_serve_ready(s, TURN_LINGER_MS, pool_quiet,
		                              ss->srv, &handed) != REMO_OK) {
			ss_finish(ss);
			return;
		}
		int running = TURN_RUNNING;
		if (atomic_compare_exchange_strong(&ss->turn, &running,
		                                   TURN_IDLE)) {
			if (!handed) /* else helpers read it; the last kicks */
				ss_arm(ss, EPOLL_CTL_MOD);
			return;
		}
		atomic_store(&ss->turn, TURN_RUNNING); /* kicked meanwhile */
	}
}

/* Opens a pooled session, watches it, and gives it its first turn (for
 * what came before it was watched). */
static void job_open(struct srv_session *ss)
{
	remo_server *srv = ss->srv;
	int rc;
	remo_session *s = remo_session_new(&ss->ch, srv->exports, &ss->opts,
	                                   &rc);
	atomic_store(&ss->s, s);
	if (s == NULL) { /* it destroyed the channel */
		session_done(ss);
		return;
	}
	if (atomic_load(&srv->stopping))
		remo_session_close(s); /* run's close may have missed it */
	remo__session_poll(s, ss_kick, ss);
	atomic_store(&ss->turn, TURN_RUNNING);
	/* added disarmed: the first turn arms it when it is done */
	struct epoll_event ev = {.events = 0, .data.ptr = ss};
	if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, ss->fd, &ev) != 0)
		remo_session_close(s); /* unwatched: end it */
	job_turn(ss);
}

static void *worker_main(void *arg)
{
	remo_server *srv = arg;
	struct srv_pool *p = &srv->pool;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		if (p->head == NULL && !p->stopping) {
			p->nidle++;
			int64_t until = remo__now_ms() + POOL_IDLE_MS;
			struct timespec ts = {until / 1000,
			                      (long)(until % 1000) * 1000000};
			int w = pthread_cond_timedwait(&p->cond, &p->lock, &ts);
			p->nidle--;
			if (w != 0 && p->head == NULL && p->nworkers > POOL_MIN)
				break; /* idle: one fewer */
			continue;
		}
		if (p->head == NULL)
			break; /* stopping, nothing left */
		struct srv_session *ss = p->head;
		p->head = ss->job_next;
		if (p->head == NULL)
			p->tail = NULL;
		pthread_mutex_unlock(&p->lock);
		if (ss->job_open)
			job_open(ss);
		else
			job_turn(ss);
		pthread_mutex_lock(&p->lock);
	}
	p->nworkers--;
	pthread_cond_broadcast(&p->gone);
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static void *poller_main(void *arg)
{
	remo_server *srv = arg;
	struct epoll_event ev[64];
	while (!atomic_load(&srv->poll_stop)) {
		int n = epoll_wait(srv->epfd, ev, 64, POLL_TICK_MS);
		for (int i = 0; i < n; i++)
			ss_kick(ev[i].data.ptr);
		pool_watch(srv);
		reap(srv, true); /* between batches: no event names it */
	}
	return NULL;
}

static void start_session(remo_server *srv, struct remo__conn *c)
{
	remo_channel ch;
	remo__conn_channel(c, &ch);
	char key[sizeof ((struct srv_session *)0)->key];
	if (srv->opts.max_per_address > 0)
		peer_key(&ch, key, sizeof key);
	else
		key[0] = '\0';
	/* take a place first, so two listeners cannot both take the last */
	pthread_mutex_lock(&srv->lock);
	bool full = srv->nsessions >= srv->opts.max_sessions;
	if (!full && key[0] != '\0' &&
	    per_address_add(srv, key, 1) >= srv->opts.max_per_address) {
		per_address_add(srv, key, -1);
		full = true; /* for this peer */
	}
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
			per_address_add(srv, key, -1);
			pthread_mutex_unlock(&srv->lock);
		}
		ch.destroy(ch.user);
		return;
	}
	remo_session_opts o = remo__conn_session_opts(c, &srv->opts.session);
	int fd = srv->epfd >= 0 && srv->poller_running ? remo__conn_fd(c) : -1;
	struct srv_session *ss = remo__malloc(sizeof *ss);
	if (ss != NULL) {
		*ss = (struct srv_session){.srv = srv, .ch = ch, .opts = o,
		                           .fd = fd};
		snprintf(ss->key, sizeof ss->key, "%s", key);
		atomic_init(&ss->turn, TURN_IDLE);
		pthread_mutex_lock(&srv->lock);
		ss->next = srv->sessions;
		srv->sessions = ss;
		if (fd >= 0) {
			pthread_mutex_unlock(&srv->lock);
			pool_submit(srv, ss, true);
			return;
		}
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
	per_address_add(srv, key, -1);
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
		reap(srv, false);
	}
	return NULL;
}

int remo_server_run(remo_server *srv)
{
	pthread_mutex_lock(&srv->lock);
	srv->running = true;
	atomic_store(&srv->poll_stop, false);
	srv->poller_running = srv->epfd >= 0 &&
	                      pthread_create(&srv->poller, NULL, poller_main,
	                                     srv) == 0;
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
	/* close every session: each serve returns, each thread or turn
	 * ends.  The list is only changed by reap, which now only this
	 * thread and the poller call, and the poller takes no entry out but
	 * the done ones; so it is walked under the lock, and each session
	 * retained to close it outside (a close may wait, and sessions need
	 * the lock to finish). */
	for (;;) {
		remo_session *s = NULL;
		pthread_mutex_lock(&srv->lock);
		for (struct srv_session *ss = srv->sessions; ss; ss = ss->next) {
			remo_session *x = atomic_load(&ss->s);
			if (x != NULL && !ss->done &&
			    remo_session_status(x) == REMO_OK) {
				s = x;
				remo__session_retain(s);
				break;
			}
		}
		pthread_mutex_unlock(&srv->lock);
		if (s == NULL)
			break;
		remo_session_close(s); /* NULL above: opening */
		remo__session_release(s);
	}
	for (;;) {
		pthread_mutex_lock(&srv->lock);
		bool all_done = true, any_done = false;
		for (struct srv_session *ss = srv->sessions; ss; ss = ss->next) {
			all_done &= ss->done;
			any_done |= ss->done;
		}
		pthread_mutex_unlock(&srv->lock);
		if (all_done)
			break;
		if (any_done)
			reap(srv, false);
		usleep(1000);
	}
	if (srv->poller_running) {
		atomic_store(&srv->poll_stop, true);
		pthread_join(srv->poller, NULL);
		srv->poller_running = false;
	}
	reap(srv, true);
	/* the pool: its workers end once the queue is empty */
	pthread_mutex_lock(&srv->pool.lock);
	srv->pool.stopping = true;
	pthread_cond_broadcast(&srv->pool.cond);
	while (srv->pool.nworkers > 0)
		pthread_cond_wait(&srv->pool.gone, &srv->pool.lock);
	srv->pool.stopping = false;
	pthread_mutex_unlock(&srv->pool.lock);
	pthread_mutex_lock(&srv->lock);
	srv->running = false;
	pthread_cond_broadcast(&srv->stopped);
	pthread_mutex_unlock(&srv->lock);
	return REMO_OK;
}

void remo_server_stop(remo_server *srv)
{
	/* only atomics and a write(2): all async-signal-safe.  run may
	 * see the flag and return before the write: free waits for it, or
	 * it could write into a descriptor closed and reused meanwhile
	 * (ThreadSanitizer saw a signal handler's write race free's close) */
	int saved = errno;
	atomic_fetch_add(&srv->stops, 1);
	atomic_store(&srv->stopping, true);
	ssize_t n = write(srv->wake[1], "", 1);
	(void)n;
	atomic_fetch_sub(&srv->stops, 1);
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
	/* a stop in another thread or a signal handler ends its write */
	while (atomic_load(&srv->stops) > 0)
		sched_yield();
	for (size_t i = 0; i < srv->nlisteners; i++) {
		srv->listeners[i].ops->fini_listener(srv->listeners[i].state);
		remo__free(srv->listeners[i].state);
	}
	close(srv->wake[0]);
	close(srv->wake[1]);
	if (srv->epfd >= 0)
		close(srv->epfd);
	pthread_cond_destroy(&srv->pool.cond);
	pthread_cond_destroy(&srv->pool.gone);
	pthread_mutex_destroy(&srv->pool.lock);
	pthread_cond_destroy(&srv->stopped);
	pthread_mutex_destroy(&srv->lock);
	remo_value_release(srv->per_address);
	remo__free(srv);
}
