/*
 * nanomsg.c -- the nanomsg transport: nn+ipc://, nn+tcp:// and
 * nn+inproc://, one NN_PAIR socket per session, handed out by a
 * rendezvous endpoint.
 *
 *   nn+ipc:///run/calc/rv.ipc   rendezvous on a unix socket at that path
 *   nn+tcp://127.0.0.1:7000     rendezvous on TCP port 7000; sessions take
 *                               ports 7001..8000 (see "Ports" below)
 *   nn+inproc://calc            within this process only
 *
 * The "nn+" is stripped and the rest handed to nanomsg, so these never
 * collide with the stream transport's unix:// and tcp://.
 *
 * Why a socket per session (the design brief, section 3, measured): a raw REP
 * server silently drops messages to a busy client while nn_send reports
 * success; a cooked REQ client keeps one message and then fails with
 * EFSM, and re-sends an unanswered request after 60 s, so a long call
 * could run twice; BUS cannot address one peer.  PAIR delivered
 * everything in order, but talks to one peer only, so every session gets
 * its own PAIR socket at its own endpoint.
 *
 * Rendezvous protocol (REQ at the client, REP at the listener).  Bytes:
 *
 *   request  "RMN1"                   4 bytes: remo-nanomsg, version 1;
 *                                     anything else gets no reply
 *   reply    "RMN1"                   the same 4 bytes back
 *            status                   1 byte: 0 ok, 1 busy (the server
 *                                     cannot make a session now: out of
 *                                     sockets or session ports)
 *            token                    16 random bytes (zeros when busy)
 *            endpoint                 the rest, 1..255 bytes, no NUL:
 *                                     ipc: "ipc:///dir/32hex"
 *                                     inproc: "inproc://remo-nn-32hex"
 *                                     tcp: the port alone, "7001": the
 *                                     client keeps the host it used for
 *                                     the rendezvous (a server bound to
 *                                     "*" cannot know it)
 *
 * The client then connects an NN_PAIR socket to the endpoint and sends
 * the token, 16 bytes, as its first message.  accept hands the session
 * out only when that first message equals the token and nobody else ever
 * connected to the endpoint; otherwise the session socket is closed.
 * Sessions waiting for their token are kept in the listener (at most
 * NANOMSG_MAX_PENDING, each for NANOMSG_TOKEN_WAIT_MS), so a client that
 * asks and never comes does not hold up the ones behind it.  While every
 * place is taken, requests wait in nanomsg and their clients within
 * their connect timeouts: a burst is slowed, not refused (32 threads
 * connecting at once were refused one time in ten before).
 *
 * Connecting to nothing fails with REMO_EPEERLOST within a slice: tcp's
 * failed connects say so, but on ipc a failed connect may only mean a
 * full backlog (nanomsg listens with a backlog of 10), so the kernel is
 * asked whether anything listens at the path; inproc counts no errors,
 * so there only the timeout ends the wait.  Every tcp socket gets
 * NN_TCP_NODELAY, which nanomsg leaves off: with Nagle a session cost
 * 44 ms to set up here instead of 0.8 ms.
 *
 * Session endpoints are never guessable and, but for tcp ports, never
 * reused: names come from getrandom.  ipc sessions live in one 0700
 * directory per listener, made by mkdtemp next to the rendezvous socket
 * (so a client that can reach the one can reach the others, even under a
 * private /tmp), or under $TMPDIR or /tmp when that path is too long.
 * 0700 means an ipc client must run as the server's user (or root);
 * other users connect over tcp.
 *
 * Ports: nanomsg cannot bind port 0, so a tcp listener on port P gives
 * its sessions the ports P+1 .. P+NANOMSG_PORT_RANGE (never past 65535),
 * in turn, trying the next while one is taken.  A tcp port is guessable
 * and, after a round, reused: the token and the rule below guard it.
 *
 * Dead peers: nanomsg gives no event for a killed peer, and after a peer
 * died a stranger connecting to its endpoint would get the next message.
 * So each session watches its socket's statistics, which only ever grow:
 * the session is over when a connection broke or was dropped, when more
 * than one connection was ever made (accepted at the server, established
 * at the client), or when the current count is not 1.  A second peer
 * therefore ends a session at once (on tcp anyone who can reach the
 * port range can end sessions that way: availability is traded for
 * never talking to a stranger).  A message is delivered even after its
 * sender died, unless a second connection was ever made: only then could
 * it come from someone else.  Clients set NN_RECONNECT_IVL to a day, so
 * a session never silently reconnects.  recv and send wait in slices of
 * NANOMSG_SLICE_MS and look at the statistics between slices, so a dead
 * peer is found within about one slice (the statistic falls about 1 ms
 * after SIGKILL); an idle session thus wakes 1000/NANOMSG_SLICE_MS times
 * a second.
 *
 * close sets a flag, writes an eventfd that every wait in this file also
 * polls (so a blocked recv or send returns REMO_ECLOSED at once), and
 * nn_shutdown's the session's one endpoint, which ends the connection
 * and so tells the peer.  It does not nn_close: nanomsg 1.1.5's nn_close
 * is meant to wake a thread blocked in the same socket (it waits for that
 * thread to let go), but the socket's number is then free for the next
 * nn_socket, and a thread about to call nn_recv with it would use
 * somebody else's socket.  The number stays ours until fini, which the
 * core calls last, alone.
 *
 * Closing loses what the peer has not taken yet, on ipc: when an ipc
 * connection ends, nanomsg 1.1.5 drops a message its receiver holds but
 * the application has not read (measured: a message sent, fully written,
 * and the sender closing 1 ms later reached 0 of 50 receivers not in
 * nn_recv at that moment, 32 of 50 blocked in it; over tcp, all).  So
 * the last message before a close (a session's goodbye) may be lost and
 * the peer sees REMO_EPEERLOST instead; both end the session the same
 * way.  Waiting in close for the peer to read is not possible: close must
 * not block, and a peer that is idle never reads.
 *
 * Sends never block inside nanomsg: nn_send with NN_DONTWAIT, and while
 * nanomsg has no room (a PAIR pipe holds one message until the kernel
 * takes it), a wait on NN_SNDFD in slices that also watch close and the
 * peer.  A live peer that stops reading holds send up for as long as it
 * does: the channel's send has no timeout to give it (the session's
 * lease is the bound).  There is no queue of our own: with no reader
 * thread nothing would flush it while the program is idle.
 *
 * Limits:
 *   NANOMSG_MAX_MESSAGE (16 MiB) a message, set as NN_RCVMAXSIZE on
 *     every session socket and as max_message, so the session never
 *     sends more; nanomsg's default (1 MiB) drops the connection
 *     silently on anything longer, and -1 (no limit) would let a peer
 *     make us allocate whatever its header claims.
 *   NANOMSG_MAX_SOCKETS (500) sockets held by this plugin in the whole
 *     process, of nanomsg's 512, leaving a few for the program's own
 *     nanomsg use; past it, accept and connect fail with REMO_ELIMIT
 *     (LimitError).  A session takes one socket, a listener one, a
 *     session waiting for its token one, a connect one more while it
 *     runs.
 *
 * fork: nanomsg's worker threads do not survive fork, and a child that
 * touches nanomsg after it hangs.  Do not fork after the first socket
 * unless the child only execs (the tests fork+exec their helpers).
 *
 * inproc is for tests and single-threaded use: nanomsg 1.1.5's inproc
 * transport has known races (upstream issues #894 and #1040) and crashed
 * here inside nn_send, in nanomsg's own state machine, with 32 client
 * threads making sessions at once.  ipc and tcp did not.
 *
 * A server that is killed leaves its rendezvous socket file (the next
 * listen there replaces it) and its session directory, empty or with
 * the files of the sessions it had.
 *
 * Files: this one (helpers, connecting, sending and receiving, the
 * entry), listen.c (the rendezvous, accept), nanomsg.h (the state
 * structs and what the two share).
 *
 * Neighbours: include/remo/transport.h is the contract; the core
 * (src/channel/loader.c) allocates the state structs (nanomsg.h) and
 * calls in; transport/stream/stream.c is the other transport and the
 * model for this one's conventions.
 */
#include "nanomsg.h"

/* Sockets this plugin holds, process-wide (nanomsg's cap is global). */
atomic_int remo__nano_nsockets;

/* ==== small helpers ===================================================== */

/* Deadlines are in microseconds: at millisecond resolution a timeout of
 * 0 would keep looking until the clock ticked, up to 1 ms of busy loop
 * per call, and the session's spin-then-block calls recv(0) in a loop
 * (measured: a null call took 1000 us instead of 50). */
int64_t remo__nano_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The deadline timeout_ms from now; -1 (none) for a negative timeout. */
int64_t remo__nano_deadline(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : remo__nano_now_us() + (int64_t)timeout_ms * 1000;
}

/* Milliseconds for poll until deadline_us (rounded up, at most max_ms;
 * max_ms if there is no deadline).  -1 when the deadline has passed, so
 * a timeout of 0 means one look and no wait. */
int remo__nano_wait_ms(int64_t deadline_us, int max_ms)
{
	if (deadline_us < 0)
		return max_ms;
	int64_t left = deadline_us - remo__nano_now_us();
	if (left <= 0)
		return -1;
	int64_t ms = (left + 999) / 1000;
	return ms < max_ms ? (int)ms : max_ms;
}

/* Milliseconds to wait: at most a slice, at most until deadline. */
static int nano_slice(int64_t deadline_us)
{
	return remo__nano_wait_ms(deadline_us, NANOMSG_SLICE_MS);
}

bool remo__nano_random(void *buf, size_t n)
{
	unsigned char *p = buf;
	while (n > 0) {
		ssize_t r = getrandom(p, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		p += r;
		n -= (size_t)r;
	}
	return true;
}

/* 16 random bytes as 32 hex digits and a NUL. */
bool remo__nano_random_name(char out[2 * 16 + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	if (!remo__nano_random(b, sizeof b))
		return false;
	for (size_t i = 0; i < sizeof b; i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[2 * sizeof b] = '\0';
	return true;
}

/* Compares tokens in time independent of where they differ. */
bool remo__nano_token_equal(const unsigned char *a, const unsigned char *b)
{
	unsigned char d = 0;
	for (size_t i = 0; i < NANO_TOKEN_LEN; i++)
		d |= a[i] ^ b[i];
	return d == 0;
}

/* The kind of a URL ("nn+ipc://..."), and where nanomsg's own address
 * ("ipc://...") starts in it.  false if the scheme is not ours, or an
 * ipc path or inproc name is empty (or the path too long). */
bool remo__nano_parse_scheme(const char *url, enum nano_kind *kind,
                              const char **nnaddr)
{
	if (strncmp(url, "nn+", 3) != 0)
		return false;
	*nnaddr = url + 3;
	if (strncmp(*nnaddr, "ipc://", 6) == 0) {
		*kind = NANO_IPC;
		size_t n = strlen(*nnaddr + 6);
		return n > 0 && n < NANO_PATH_MAX;
	}
	if (strncmp(*nnaddr, "tcp://", 6) == 0) {
		*kind = NANO_TCP;
		return true;
	}
	if (strncmp(*nnaddr, "inproc://", 9) == 0) {
		*kind = NANO_INPROC;
		return (*nnaddr)[9] != '\0';
	}
	return false;
}

/* Splits "tcp://HOST:PORT" at its last colon: the host part (as long as
 * it is, into host) and a port in 1..65535.  false if malformed. */
bool remo__nano_split_tcp(const char *nnaddr, char *host, size_t hostlen,
                           unsigned *port)
{
	const char *p = nnaddr + strlen("tcp://");
	const char *colon = strrchr(p, ':');
	if (colon == NULL || colon == p || (size_t)(colon - p) >= hostlen)
		return false;
	const char *digits = colon + 1;
	size_t nd = strlen(digits);
	if (nd == 0 || nd > 5 || strspn(digits, "0123456789") != nd)
		return false;
	unsigned long v = strtoul(digits, NULL, 10);
	if (v > 65535)
		return false;
	memcpy(host, p, (size_t)(colon - p));
	host[colon - p] = '\0';
	*port = (unsigned)v;
	return true;
}

/* One statistic; UINT64_MAX if nanomsg cannot say (a dead socket). */
static uint64_t nano_stat(int sock, int stat)
{
	return nn_get_statistic(sock, stat);
}

/* More than one connection was ever made on this session's socket: a
 * message might come from someone other than the peer. */
static bool nano_stranger(const struct nano_conn *c)
{
	uint64_t made = nano_stat(c->sock, c->bound
	                                   ? NN_STAT_ACCEPTED_CONNECTIONS
	                                   : NN_STAT_ESTABLISHED_CONNECTIONS);
	return made > 1;
}

/* The session's one peer is gone, or was joined by a second: see the
 * file comment.  The counters only grow, so a drop and a reconnect
 * between two looks are still seen. */
bool remo__nano_peer_gone(const struct nano_conn *c)
{
	return nano_stranger(c) ||
	       nano_stat(c->sock, NN_STAT_BROKEN_CONNECTIONS) != 0 ||
	       nano_stat(c->sock, NN_STAT_DROPPED_CONNECTIONS) != 0 ||
	       nano_stat(c->sock, NN_STAT_CURRENT_CONNECTIONS) != 1;
}

/* ==== sockets, counted ================================================== */

/* Opens a socket of protocol if the plugin may hold one more.  The
 * socket, or -1 with *rc REMO_ELIMIT or REMO_ENOMEM and the reason
 * raised. */
int remo__nano_socket(int protocol, int *rc)
{
	if (atomic_fetch_add(&remo__nano_nsockets, 1) >= NANOMSG_MAX_SOCKETS) {
		atomic_fetch_sub(&remo__nano_nsockets, 1);
		remo_raise("LimitError", "nanomsg transport: this process holds "
		           "%d nanomsg sockets, the most it may (nanomsg's cap "
		           "is 512)", NANOMSG_MAX_SOCKETS);
		*rc = REMO_ELIMIT;
		return -1;
	}
	int s = nn_socket(AF_SP, protocol);
	if (s < 0) {
		int err = errno;
		atomic_fetch_sub(&remo__nano_nsockets, 1);
		remo_raise(err == EMFILE ? "LimitError" : "OSError",
		           "nanomsg transport: nn_socket: %s", nn_strerror(err));
		*rc = err == EMFILE ? REMO_ELIMIT : REMO_ENOMEM;
		return -1;
	}
	return s;
}

void remo__nano_socket_close(int s)
{
	while (nn_close(s) != 0 && errno == EINTR)
		;
	atomic_fetch_sub(&remo__nano_nsockets, 1);
}

void remo__nano_setopt(int s, int option, int value)
{
	nn_setsockopt(s, NN_SOL_SOCKET, option, &value, sizeof value);
}

/* What every socket of a tcp URL needs: IPv6 if the host is [v6], and
 * TCP_NODELAY, which nanomsg leaves off (Nagle would hold back every
 * small request for a delayed ACK: 44 ms a session here without it). */
void remo__nano_tcp_opts(int s, const char *host)
{
	int one = 1;
	nn_setsockopt(s, NN_TCP, NN_TCP_NODELAY, &one, sizeof one);
	if (strchr(host, '[') != NULL)
		remo__nano_setopt(s, NN_IPV4ONLY, 0);
}

int remo__nano_getfd(int s, int option)
{
	int fd = -1;
	size_t len = sizeof fd;
	if (nn_getsockopt(s, NN_SOL_SOCKET, option, &fd, &len) != 0)
		return -1;
	return fd;
}

/* ==== the ipc directory ================================================= */

struct nano_dir *remo__nano_dir_ref(struct nano_dir *d)
{
	if (d != NULL)
		atomic_fetch_add(&d->refs, 1);
	return d;
}

void remo__nano_dir_unref(struct nano_dir *d)
{
	if (d != NULL && atomic_fetch_sub(&d->refs, 1) == 1) {
		rmdir(d->path);
		free(d);
	}
}

/* Makes the 0700 directory for rvpath's sessions: next to rvpath if the
 * result leaves room for a session name and mkdtemp works there, else
 * under $TMPDIR, else under /tmp.  NULL with errno on failure. */
struct nano_dir *remo__nano_dir_new(const char *rvpath)
{
	char tmpl[NANO_PATH_MAX + 32];
	const char *slash = strrchr(rvpath, '/');
	const char *tmp = getenv("TMPDIR");
	bool made = false;
	for (int i = 0; i < 3 && !made; i++) {
		int n = -1;
		if (i == 0 && slash != NULL)
			n = snprintf(tmpl, sizeof tmpl, "%.*s/.remo-nn-XXXXXX",
			             (int)(slash - rvpath), rvpath);
		else if (i == 1 && tmp != NULL && tmp[0] == '/')
			n = snprintf(tmpl, sizeof tmpl, "%s/remo-nn-XXXXXX", tmp);
		else if (i == 2)
			n = snprintf(tmpl, sizeof tmpl, "/tmp/remo-nn-XXXXXX");
		made = n > 0 && (size_t)n <= NANO_DIR_MAX &&
		       mkdtemp(tmpl) != NULL;
	}
	if (!made)
		return NULL;
	struct nano_dir *d = malloc(sizeof *d + strlen(tmpl) + 1);
	if (d == NULL) {
		rmdir(tmpl);
		errno = ENOMEM;
		return NULL;
	}
	atomic_init(&d->refs, 1);
	strcpy(d->path, tmpl);
	return d;
}

/* ==== one session's socket ============================================== */

/*
 * Opens c's PAIR socket as every session's is set up (the message limit,
 * no reconnecting, tcp's options if tcphost is not NULL, the readiness
 * fds) and its eventfd.  Binding or connecting is the caller's.  On
 * failure c holds nothing; the reason is raised.
 */
int remo__nano_conn_open(struct nano_conn *c, const char *tcphost)
{
	int rc;
	memset(c, 0, sizeof *c);
	atomic_init(&c->closed, false);
	c->sock = remo__nano_socket(NN_PAIR, &rc);
	if (c->sock < 0)
		return rc;
	remo__nano_setopt(c->sock, NN_RCVMAXSIZE, (int)NANOMSG_MAX_MESSAGE);
	remo__nano_setopt(c->sock, NN_RECONNECT_IVL, NANOMSG_NO_RECONNECT_MS);
	if (tcphost != NULL)
		remo__nano_tcp_opts(c->sock, tcphost);
	c->rcvfd = remo__nano_getfd(c->sock, NN_RCVFD);
	c->sndfd = remo__nano_getfd(c->sock, NN_SNDFD);
	c->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->rcvfd < 0 || c->sndfd < 0 || c->wakefd < 0) {
		remo_raise("OSError", "nanomsg transport: cannot set up a "
		           "session socket: %s", strerror(errno));
		if (c->wakefd >= 0)
			close(c->wakefd);
		remo__nano_socket_close(c->sock);
		return REMO_ENOMEM;
	}
	c->live = true;
	return REMO_OK;
}

/* Releases what remo__nano_conn_open and a bind acquired. */
void remo__nano_conn_release(struct nano_conn *c)
{
	if (!c->live)
		return;
	remo__nano_socket_close(c->sock);
	close(c->wakefd);
	if (c->file[0] != '\0')
		unlink(c->file);
	remo__nano_dir_unref(c->dir);
	c->dir = NULL;
	c->live = false;
}

/* ==== connecting ======================================================== */

/*
 * ipc: true if nothing listens at path, asked of the kernel directly.  A
 * connect error counted by nanomsg does not say which error: it may be
 * only a full backlog (nanomsg listens on ipc with a backlog of 10, so a
 * burst of clients overflows it, and they retry).  A probe that does
 * connect costs the listener one accepted connection that closes at
 * once, which a rendezvous REP ignores; never probe a session endpoint,
 * where it would count as a second peer.
 */
static bool nano_ipc_refused(const char *path)
{
	struct sockaddr_un sun;
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path)
		return true;
	strcpy(sun.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return false;
	int r = connect(fd, (struct sockaddr *)&sun, sizeof sun);
	int err = errno;
	close(fd);
	return r != 0 && (err == ENOENT || err == ECONNREFUSED ||
	                  err == ENOTSOCK || err == ENOTDIR);
}

/*
 * Waits for fd to be readable up to deadline, in slices; between slices
 * gives up if sock's connect failed with no connection made and nothing
 * listens there (tcp: a failed connect says so; ipc: ipcpath is asked;
 * inproc counts no errors, so only the deadline ends the wait).
 * REMO_OK, REMO_ETIMEDOUT, REMO_EPEERLOST.
 */
static int nano_wait_connect(int sock, int fd, int64_t deadline,
                             const char *ipcpath)
{
	uint64_t errors_seen = 0;
	for (;;) {
		int wait = nano_slice(deadline);
		if (wait < 0)
			return REMO_ETIMEDOUT;
		struct pollfd p = {fd, POLLIN, 0};
		int n = poll(&p, 1, wait);
		if (n > 0)
			return REMO_OK;
		if (n < 0 && errno != EINTR)
			return REMO_EPEERLOST;
		uint64_t errors = nano_stat(sock, NN_STAT_CONNECT_ERRORS);
		if (errors != errors_seen &&
		    nano_stat(sock, NN_STAT_CURRENT_CONNECTIONS) == 0 &&
		    (ipcpath == NULL || nano_ipc_refused(ipcpath)))
			return REMO_EPEERLOST;
		errors_seen = errors;
	}
}

/* The socket path of an ipc:// address, or NULL for other kinds. */
static const char *nano_ipc_path(const char *nnaddr)
{
	return strncmp(nnaddr, "ipc://", 6) == 0 ? nnaddr + 6 : NULL;
}

/* Asks the rendezvous at nnaddr for a session: the token and the
 * session's nanomsg address (tcp: the rendezvous address with the port
 * replaced).  On failure the reason is raised. */
static int nano_rendezvous(const char *url, const char *nnaddr,
                           enum nano_kind kind, const char *tcphost,
                           int64_t deadline,
                           unsigned char token[NANO_TOKEN_LEN],
                           char *ep, size_t eplen)
{
	int rc;
	int req = remo__nano_socket(NN_REQ, &rc);
	if (req < 0)
		return rc;
	remo__nano_setopt(req, NN_RCVMAXSIZE, NANO_REPLY_MAX);
	/* a full ipc backlog is worth retrying soon */
	remo__nano_setopt(req, NN_RECONNECT_IVL, NANOMSG_RV_RETRY_MS);
	remo__nano_setopt(req, NN_RECONNECT_IVL_MAX, NANOMSG_RV_RETRY_MAX_MS);
	if (tcphost != NULL)
		remo__nano_tcp_opts(req, tcphost);
	int rcvfd = remo__nano_getfd(req, NN_RCVFD);
	char *reply = NULL;
	int n = -1;
	if (nn_connect(req, nnaddr) < 0) {
		int err = errno;
		remo_raise("ValueError", "cannot connect to %s: %s", url,
		           nn_strerror(err));
		rc = REMO_EINVAL;
		goto out;
	}
	/* a cooked REQ takes the request at once and sends it when it can */
	if (rcvfd < 0 || nn_send(req, NANO_MAGIC, NANO_MAGIC_LEN,
	                         NN_DONTWAIT) != NANO_MAGIC_LEN) {
		remo_raise("ConnectionError", "cannot connect to %s: %s", url,
		           nn_strerror(errno));
		rc = REMO_EPEERLOST;
		goto out;
	}
	for (;;) {
		rc = nano_wait_connect(req, rcvfd, deadline,
		                       nano_ipc_path(nnaddr));
		if (rc != REMO_OK)
			break;
		n = nn_recv(req, &reply, NN_MSG, NN_DONTWAIT);
		if (n >= 0 || (errno != EAGAIN && errno != EINTR))
			break;
	}
	if (rc == REMO_ETIMEDOUT) {
		remo_raise("TimeoutError", "cannot connect to %s: no answer "
		           "from its rendezvous in time", url);
		goto out;
	}
	if (rc != REMO_OK || n < 0) {
		remo_raise("ConnectionError", "cannot connect to %s: %s", url,
		           rc != REMO_OK ? "nothing listens there"
		                         : nn_strerror(errno));
		rc = REMO_EPEERLOST;
		goto out;
	}
	size_t len = (size_t)n;
	size_t head = NANO_MAGIC_LEN + 1 + NANO_TOKEN_LEN;
	if (len <= head || len > NANO_REPLY_MAX ||
	    memcmp(reply, NANO_MAGIC, NANO_MAGIC_LEN) != 0) {
		remo_raise("ProtocolError", "%s: the rendezvous did not answer "
		           "as a remo nanomsg server", url);
		rc = REMO_EPEERLOST;
		goto out;
	}
	if (reply[NANO_MAGIC_LEN] != NANO_STATUS_OK) {
		remo_raise("ConnectionError", "%s: the server refused: it "
		           "serves as many sessions as it can", url);
		rc = REMO_EPEERLOST;
		goto out;
	}
	memcpy(token, reply + NANO_MAGIC_LEN + 1, NANO_TOKEN_LEN);
	const char *e = reply + head;
	size_t elen = len - head;
	bool ok = memchr(e, '\0', elen) == NULL;
	if (ok && kind == NANO_TCP) {
		/* the port alone, 1..65535; the host is the one we reached */
		const char *colon = strrchr(nnaddr, ':');
		unsigned long port = 0;
		ok = elen <= 5 && (size_t)(colon - nnaddr) + 1 + elen < eplen;
		for (size_t i = 0; ok && i < elen; i++) {
			ok = e[i] >= '0' && e[i] <= '9';
			port = port * 10 + (unsigned long)(e[i] - '0');
		}
		ok = ok && port >= 1 && port <= 65535;
		if (ok)
			snprintf(ep, eplen, "%.*s:%.*s", (int)(colon - nnaddr),
			         nnaddr, (int)elen, e);
	} else if (ok) {
		/* the same transport as the rendezvous, nothing else */
		const char *want = kind == NANO_IPC ? "ipc://" : "inproc://";
		ok = elen > strlen(want) && elen < eplen &&
		     memcmp(e, want, strlen(want)) == 0;
		if (ok)
			snprintf(ep, eplen, "%.*s", (int)elen, e);
	}
	if (!ok) {
		remo_raise("ProtocolError", "%s: the rendezvous answered with a "
		           "malformed session address", url);
		rc = REMO_EPEERLOST;
		goto out;
	}
	rc = REMO_OK;
out:
	if (reply != NULL)
		nn_freemsg(reply);
	remo__nano_socket_close(req);
	return rc;
}

static int nano_connect(void *state, const char *url, int timeout_ms)
{
	struct nano_conn *c = state;
	enum nano_kind kind;
	const char *nnaddr;
	char host[256], ep[NANO_REPLY_MAX + 256];
	unsigned char token[NANO_TOKEN_LEN];
	unsigned port;
	int rc;

	if (!remo__nano_parse_scheme(url, &kind, &nnaddr) ||
	    (kind == NANO_TCP &&
	     (!remo__nano_split_tcp(nnaddr, host, sizeof host, &port) || port == 0))) {
		remo_raise("ValueError", "not a nanomsg URL: '%s' (nn+ipc:///path, "
		           "nn+tcp://host:port, nn+inproc://name)", url);
		return REMO_EINVAL;
	}
	const char *tcphost = kind == NANO_TCP ? host : NULL;
	if (timeout_ms < 0)
		timeout_ms = NANOMSG_CONNECT_TIMEOUT_MS;
	int64_t deadline = remo__nano_deadline(timeout_ms);

	rc = nano_rendezvous(url, nnaddr, kind, tcphost, deadline, token, ep,
	                     sizeof ep);
	if (rc != REMO_OK)
		return rc;
	if ((rc = remo__nano_conn_open(c, tcphost)) != REMO_OK)
		return rc;
	c->eid = nn_connect(c->sock, ep);
	if (c->eid < 0) {
		remo_raise("ConnectionError", "cannot connect to %s's session "
		           "at %s: %s", url, ep, nn_strerror(errno));
		remo__nano_conn_release(c);
		return REMO_EPEERLOST;
	}
	/* The token first: the pipe takes it once the connection is up.
	 * The socket never reconnects, so a failed connect is final (and
	 * no probe: at a session endpoint it would be a second peer). */
	for (;;) {
		if (nn_send(c->sock, token, NANO_TOKEN_LEN, NN_DONTWAIT) ==
		    NANO_TOKEN_LEN) {
			rc = REMO_OK;
			break;
		}
		if (errno != EAGAIN && errno != EINTR) {
			rc = REMO_EPEERLOST;
			break;
		}
		if ((rc = nano_wait_connect(c->sock, c->sndfd, deadline,
		                            NULL)) != REMO_OK)
			break;
	}
	if (rc == REMO_OK && remo__nano_peer_gone(c))
		rc = REMO_EPEERLOST;
	if (rc != REMO_OK) {
		remo_raise(rc == REMO_ETIMEDOUT ? "TimeoutError"
		                                : "ConnectionError",
		           "cannot connect to %s's session at %s: %s", url, ep,
		           rc == REMO_ETIMEDOUT ? "timed out" : "refused or lost");
		remo__nano_conn_release(c);
		return rc;
	}
	return REMO_OK;
}

/* ==== sending and receiving ============================================= */

/* Waits up to wait ms for fd (nanomsg's NN_RCVFD or NN_SNDFD) or the
 * close eventfd.  false once closed.  An interrupted or failed poll is a
 * short wait: the caller looks again. */
static bool nano_wait(struct nano_conn *c, int fd, int wait)
{
	struct pollfd p[2] = {{fd, POLLIN, 0}, {c->wakefd, POLLIN, 0}};
	(void)poll(p, 2, wait);
	return !atomic_load(&c->closed);
}

static int nano_send(void *state, const void *msg, size_t n)
{
	struct nano_conn *c = state;
	if (atomic_load(&c->closed))
		return REMO_ECLOSED;
	if (n > NANOMSG_MAX_MESSAGE)
		return REMO_ETOOBIG;
	if (remo__nano_peer_gone(c))
		return REMO_EPEERLOST;
	for (;;) {
		int r = nn_send(c->sock, msg, n, NN_DONTWAIT);
		if (r >= 0)
			return REMO_OK;
		if (errno != EAGAIN && errno != EINTR)
			return atomic_load(&c->closed) ? REMO_ECLOSED
			                               : REMO_EPEERLOST;
		/* no room in the pipe yet: wait for it, watching close and
		 * the peer */
		if (!nano_wait(c, c->sndfd, NANOMSG_SLICE_MS))
			return REMO_ECLOSED;
		if (remo__nano_peer_gone(c))
			return REMO_EPEERLOST;
	}
}

static int nano_recv(void *state, remo_buf *out, int timeout_ms)
{
	struct nano_conn *c = state;
	int64_t deadline = remo__nano_deadline(timeout_ms);
	for (;;) {
		if (atomic_load(&c->closed))
			return REMO_ECLOSED;
		void *m = NULL;
		int r = nn_recv(c->sock, &m, NN_MSG, NN_DONTWAIT);
		if (r >= 0) {
			/* from the peer even if it has died since; from someone
			 * else only if a second connection was ever made */
			if (nano_stranger(c)) {
				nn_freemsg(m);
				return REMO_EPEERLOST;
			}
			int rc = remo_buf_reserve(out, (size_t)r);
			if (rc == REMO_OK) {
				memcpy(out->data + out->len, m, (size_t)r);
				out->len += (size_t)r;
			}
			nn_freemsg(m);
			return rc;
		}
		if (errno != EAGAIN && errno != EINTR)
			return atomic_load(&c->closed) ? REMO_ECLOSED
			                               : REMO_EPEERLOST;
		if (remo__nano_peer_gone(c))
			return REMO_EPEERLOST;
		int wait = nano_slice(deadline);
		if (wait < 0)
			return REMO_ETIMEDOUT;
		if (!nano_wait(c, c->rcvfd, wait))
			return REMO_ECLOSED;
	}
}

static void nano_close(void *state)
{
	struct nano_conn *c = state;
	if (!c->live || atomic_exchange(&c->closed, true))
		return;
	uint64_t one = 1;
	ssize_t w = write(c->wakefd, &one, sizeof one);
	(void)w;
	/* ends the connection, which tells the peer; the socket (and its
	 * number) stays ours until fini */
	nn_shutdown(c->sock, c->eid);
}

static void nano_fini(void *state)
{
	remo__nano_conn_release(state);
}

/* ==== the entry ========================================================= */

static const char *const nano_schemes[] = {"nn+ipc", "nn+tcp", "nn+inproc",
                                           NULL};

static const remo_transport_ops nano_ops = {
	.abi = REMO_TRANSPORT_ABI,
	.name = "nanomsg",
	.schemes = nano_schemes,
	.conn_size = sizeof(struct nano_conn),
	.listener_size = sizeof(struct nano_listener),
	.max_message = NANOMSG_MAX_MESSAGE,
	.connect = nano_connect,
	.send = nano_send,
	.recv = nano_recv,
	.close = nano_close,
	.fini = nano_fini,
	.listen = remo__nano_listen,
	.accept = remo__nano_accept,
	.close_listener = remo__nano_close_listener,
	.fini_listener = remo__nano_fini_listener,
};

REMO_API const remo_transport_ops *remo_transport_nanomsg(void);

/*
 * remo_transport_nanomsg: the module's one entry: the nanomsg transport's
 * table (static; nothing to free).  The core calls it once, after
 * dlopen, and checks the table before using it.
 */
const remo_transport_ops *remo_transport_nanomsg(void)
{
	return &nano_ops;
}
