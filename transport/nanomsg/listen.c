/*
 * listen.c -- the nanomsg transport's listening side: the rendezvous
 * endpoint (NN_REP) that hands each client a session socket of its own
 * and a token, and accept, which waits for the client to connect there
 * and prove the token (nanomsg.c's opening comment has the design).
 */
#include "nanomsg.h"

/* ==== listening ========================================================= */

int remo__nano_listen(void *state, const char *url, char *bound,
                       size_t boundlen)
{
	struct nano_listener *l = state;
	const char *nnaddr;
	int rc;

	atomic_init(&l->closed, false);
	l->wakefd = -1;
	if (!remo__nano_parse_scheme(url, &l->kind, &nnaddr)) {
		remo_raise("ValueError", "not a nanomsg URL: '%s' (nn+ipc:///path, "
		           "nn+tcp://host:port, nn+inproc://name)", url);
		return REMO_EINVAL;
	}
	if (l->kind == NANO_TCP) {
		unsigned port;
		if (!remo__nano_split_tcp(nnaddr, l->host, sizeof l->host, &port)) {
			remo_raise("ValueError", "not a nanomsg URL: '%s' "
			           "(nn+tcp://host:port)", url);
			return REMO_EINVAL;
		}
		if (port == 0 || port == 65535) {
			remo_raise("ValueError", "%s: nanomsg cannot bind port 0, "
			           "and sessions take the ports after the one "
			           "given: give a port below 65535", url);
			return REMO_EINVAL;
		}
		l->port_lo = port + 1;
		l->port_hi = port + NANOMSG_PORT_RANGE > 65535
		             ? 65535 : port + NANOMSG_PORT_RANGE;
		l->port_next = l->port_lo;
	} else if (l->kind == NANO_IPC) {
		strcpy(l->rvpath, nnaddr + strlen("ipc://"));
	}

	l->rv = remo__nano_socket(NN_REP, &rc);
	if (l->rv < 0)
		return rc;
	remo__nano_setopt(l->rv, NN_RCVMAXSIZE, 64); /* requests are 4 bytes */
	if (l->kind == NANO_TCP)
		remo__nano_tcp_opts(l->rv, l->host);
	l->rvfd = remo__nano_getfd(l->rv, NN_RCVFD);
	l->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->rvfd < 0 || l->wakefd < 0) {
		remo_raise("OSError", "cannot listen on %s: %s", url,
		           strerror(errno));
		rc = REMO_ENOMEM;
		goto fail;
	}
	if (nn_bind(l->rv, nnaddr) < 0) {
		int err = errno;
		remo_raise("ConnectionError", "cannot listen on %s: %s", url,
		           err == EADDRINUSE ? "a server is already listening "
		           "there" : nn_strerror(err));
		rc = err == EADDRINUSE ? REMO_EEXIST : REMO_EINVAL;
		l->rvpath[0] = '\0'; /* not ours to remove */
		goto fail;
	}
	if (l->kind == NANO_IPC && (l->dir = remo__nano_dir_new(l->rvpath)) == NULL) {
		remo_raise("OSError", "cannot listen on %s: cannot make a "
		           "directory for its sessions: %s", url, strerror(errno));
		rc = REMO_EINVAL;
		goto fail;
	}
	l->live = true;
	if (bound != NULL)
		snprintf(bound, boundlen, "%s", url);
	return REMO_OK;
fail:
	if (l->wakefd >= 0)
		close(l->wakefd);
	remo__nano_socket_close(l->rv);
	if (l->rvpath[0] != '\0')
		unlink(l->rvpath);
	return rc;
}

/* Binds c (open) at a fresh session endpoint, and puts what the client is
 * told (the endpoint field of the rendezvous reply) in ep.  On failure the
 * reason is raised and c holds no file or directory. */
static int nano_bind_session(struct nano_listener *l, struct nano_conn *c,
                             char *ep, size_t eplen)
{
	char name[2 * 16 + 1], nnaddr[NANO_PATH_MAX + 320];
	if (l->kind != NANO_TCP && !remo__nano_random_name(name)) {
		remo_raise("OSError", "getrandom: %s", strerror(errno));
		return REMO_ENOMEM;
	}
	switch (l->kind) {
	case NANO_IPC:
		snprintf(c->file, sizeof c->file, "%s/%s", l->dir->path, name);
		snprintf(nnaddr, sizeof nnaddr, "ipc://%s", c->file);
		break;
	case NANO_INPROC:
		snprintf(nnaddr, sizeof nnaddr, "inproc://remo-nn-%s", name);
		break;
	case NANO_TCP: {
		unsigned span = l->port_hi - l->port_lo + 1;
		int err = EADDRINUSE;
		for (unsigned i = 0; i < span && err == EADDRINUSE; i++) {
			unsigned port = l->port_next;
			l->port_next = port == l->port_hi ? l->port_lo : port + 1;
			snprintf(nnaddr, sizeof nnaddr, "tcp://%s:%u", l->host, port);
			c->eid = nn_bind(c->sock, nnaddr);
			if (c->eid >= 0) {
				snprintf(ep, eplen, "%u", port);
				return REMO_OK;
			}
			err = errno;
		}
		remo_raise(err == EADDRINUSE ? "LimitError" : "ConnectionError",
		           "nanomsg transport: no session port free in %u..%u "
		           "on %s: %s", l->port_lo, l->port_hi, l->host,
		           nn_strerror(err));
		return err == EADDRINUSE ? REMO_ELIMIT : REMO_EINVAL;
	}
	}
	c->eid = nn_bind(c->sock, nnaddr);
	if (c->eid < 0) {
		int err = errno;
		remo_raise("ConnectionError", "nanomsg transport: cannot bind a "
		           "session at %s: %s", nnaddr, nn_strerror(err));
		c->file[0] = '\0';
		return REMO_EINVAL;
	}
	if (l->kind == NANO_IPC)
		c->dir = remo__nano_dir_ref(l->dir);
	snprintf(ep, eplen, "%s", nnaddr);
	return REMO_OK;
}

/* Answers the rendezvous request just received: a new pending session,
 * or busy.  REMO_OK, or why no session was made (raised). */
static int nano_hand_out(struct nano_listener *l)
{
	struct nano_pending *p = NULL;
	char reply[NANO_REPLY_MAX], ep[NANO_PATH_MAX + 320];
	int rc = REMO_ELIMIT;

	for (size_t i = 0; i < NANOMSG_MAX_PENDING && p == NULL; i++)
		if (!l->pending[i].used)
			p = &l->pending[i];
	if (p == NULL)
		remo_raise("LimitError", "nanomsg transport: %d sessions wait "
		           "for their token already", NANOMSG_MAX_PENDING);
	else if ((rc = remo__nano_conn_open(&p->c, l->kind == NANO_TCP ? l->host
	                                                          : NULL)) ==
	         REMO_OK) {
		p->c.bound = true;
		rc = nano_bind_session(l, &p->c, ep, sizeof ep);
		if (rc == REMO_OK && !remo__nano_random(p->token, NANO_TOKEN_LEN)) {
			remo_raise("OSError", "getrandom: %s", strerror(errno));
			rc = REMO_ENOMEM;
		}
		if (rc != REMO_OK)
			remo__nano_conn_release(&p->c);
	}

	size_t elen = rc == REMO_OK ? strlen(ep) : 1;
	memcpy(reply, NANO_MAGIC, NANO_MAGIC_LEN);
	reply[NANO_MAGIC_LEN] = rc == REMO_OK ? NANO_STATUS_OK
	                                      : NANO_STATUS_BUSY;
	memset(reply + NANO_MAGIC_LEN + 1, 0, NANO_TOKEN_LEN);
	if (rc == REMO_OK) {
		memcpy(reply + NANO_MAGIC_LEN + 1, p->token, NANO_TOKEN_LEN);
		memcpy(reply + NANO_MAGIC_LEN + 1 + NANO_TOKEN_LEN, ep, elen);
	} else {
		reply[NANO_MAGIC_LEN + 1 + NANO_TOKEN_LEN] = '-';
	}
	size_t len = NANO_MAGIC_LEN + 1 + NANO_TOKEN_LEN + elen;
	/* the requester may be gone already: then so is the session */
	if (nn_send(l->rv, reply, len, NN_DONTWAIT) != (int)len &&
	    rc == REMO_OK) {
		remo__nano_conn_release(&p->c);
		return REMO_ETIMEDOUT;
	}
	if (rc == REMO_OK) {
		p->used = true;
		p->deadline = remo__nano_deadline(NANOMSG_TOKEN_WAIT_MS);
	}
	return rc;
}

static void nano_drop_pending(struct nano_pending *p)
{
	remo__nano_conn_release(&p->c);
	p->used = false;
}

/* Looks at pending session p: true if it proved itself (its first
 * message is its token, and it is the only connection ever made), in
 * which case it moves into conn.  Drops it if it failed or its time is
 * up. */
static bool nano_check_pending(struct nano_pending *p, struct nano_conn *conn,
                               int64_t now)
{
	char *m = NULL;
	int r = nn_recv(p->c.sock, &m, NN_MSG, NN_DONTWAIT);
	if (r < 0) {
		if (now >= p->deadline || (errno != EAGAIN && errno != EINTR))
			nano_drop_pending(p);
		return false;
	}
	bool ok = r == NANO_TOKEN_LEN &&
	          remo__nano_token_equal((unsigned char *)m, p->token) &&
	          !remo__nano_peer_gone(&p->c);
	nn_freemsg(m);
	if (!ok) {
		nano_drop_pending(p);
		return false;
	}
	*conn = p->c;
	atomic_init(&conn->closed, false);
	p->used = false;
	memset(&p->c, 0, sizeof p->c);
	return true;
}

int remo__nano_accept(void *state, void *conn, int timeout_ms)
{
	struct nano_listener *l = state;
	int64_t deadline = remo__nano_deadline(timeout_ms);
	struct pollfd p[2 + NANOMSG_MAX_PENDING];

	for (;;) {
		if (atomic_load(&l->closed))
			return REMO_ECLOSED;
		int64_t now = remo__nano_now_us();
		int64_t wake = deadline;
		size_t np = 0, nfree = 0;
		p[np++] = (struct pollfd){l->wakefd, POLLIN, 0};
		for (size_t i = 0; i < NANOMSG_MAX_PENDING; i++) {
			struct nano_pending *pe = &l->pending[i];
			if (pe->used && nano_check_pending(pe, conn, now))
				return REMO_OK;
			if (!pe->used) {
				nfree++;
				continue;
			}
			p[np++] = (struct pollfd){pe->c.rcvfd, POLLIN, 0};
			if (wake < 0 || pe->deadline < wake)
				wake = pe->deadline;
		}

		/* A rendezvous request waiting?  Only taken while a pending
		 * place is free: until then requests wait in nanomsg and
		 * their clients in their connect timeouts (backpressure, not
		 * refusal). */
		char *req = NULL;
		int r = -1;
		if (nfree > 0) {
			p[np++] = (struct pollfd){l->rvfd, POLLIN, 0};
			r = nn_recv(l->rv, &req, NN_MSG, NN_DONTWAIT);
		}
		if (r >= 0) {
			bool ours = r == NANO_MAGIC_LEN &&
			            memcmp(req, NANO_MAGIC, NANO_MAGIC_LEN) == 0;
			nn_freemsg(req);
			if (ours) {
				int rc = nano_hand_out(l);
				if (rc != REMO_OK && rc != REMO_ETIMEDOUT)
					return rc;
			}
			/* a stream of requests must not keep us past the timeout */
			if (deadline >= 0 && remo__nano_now_us() >= deadline)
				return REMO_ETIMEDOUT;
			continue;
		}

		if (deadline >= 0 && deadline <= now)
			return REMO_ETIMEDOUT;
		/* until the accept's deadline or a pending session's, whichever
		 * comes first; one whose time is up is dropped on the next look */
		int wait = wake < 0 ? -1 : remo__nano_wait_ms(wake, INT_MAX);
		if (wake >= 0 && wait < 0)
			wait = 0;
		if (poll(p, np, wait) < 0 && errno != EINTR)
			return atomic_load(&l->closed) ? REMO_ECLOSED
			                               : REMO_ETIMEDOUT;
	}
}

void remo__nano_close_listener(void *state)
{
	struct nano_listener *l = state;
	if (!l->live || atomic_exchange(&l->closed, true))
		return;
	uint64_t one = 1;
	ssize_t w = write(l->wakefd, &one, sizeof one);
	(void)w;
}

void remo__nano_fini_listener(void *state)
{
	struct nano_listener *l = state;
	if (!l->live)
		return;
	for (size_t i = 0; i < NANOMSG_MAX_PENDING; i++)
		if (l->pending[i].used)
			nano_drop_pending(&l->pending[i]);
	remo__nano_socket_close(l->rv);
	close(l->wakefd);
	if (l->rvpath[0] != '\0')
		unlink(l->rvpath);
	/* sessions still open keep the directory until they end */
	remo__nano_dir_unref(l->dir);
	l->live = false;
}
