/*
 * tls.c -- the tls:// transport: the stream transport's framing (a 4-byte
 * big-endian length, then the message) inside TLS over TCP, with
 * OpenSSL 3.
 *
 *   tls://HOST:PORT?ca=FILE                     a client that trusts ca
 *   tls://HOST:PORT                             ... the system's CAs
 *   tls://HOST:PORT?ca=FILE&cert=FILE&key=FILE  ... and shows its own
 *   tls://HOST:PORT?cert=FILE&key=FILE          a server (listen)
 *   tls://HOST:PORT?cert=FILE&key=FILE&ca=FILE  a server that asks every
 *                                               client for a certificate
 *                                               signed by ca (mutual TLS)
 *
 * Verification is on by default and cannot be turned off from a URL: a
 * client checks the server's chain against ca (or the system's store)
 * and its name against HOST (an IP address against the certificate's IP
 * SANs), and fails with REMO_EAUTH (AuthenticationError, saying why) if
 * either does not hold.  TLS 1.2 at least.  What this gives that the
 * shared secret (auth.c) does not: secrecy and integrity of every
 * message, and certificates as identities.
 *
 * Threads: a session sends from one thread while another reads, and an
 * SSL object must not be used by two threads at once, so every SSL call
 * is made under one mutex, on a non-blocking socket: a thread that must
 * wait (SSL_ERROR_WANT_READ or _WRITE) lets go of the mutex and waits in
 * poll.  A server's connection does its handshake on its first send or
 * receive (in the session's thread, not the accept loop), within
 * TLS_HANDSHAKE_MS.
 *
 * Limits: TLS_MAX_MESSAGE (64 MiB) a message, refused before anything is
 * allocated for it (REMO_EPROTO); memory follows the bytes received.
 *
 * Neighbours: include/remo/transport.h is the contract; transport/tcp.c
 * the sockets; the core (src/channel/loader.c) allocates the state.
 */
#include "config.h"

#include <remo/transport.h>

#include "../tcp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define TLS_MAX_MESSAGE (64u << 20)
#define TLS_CONNECT_TIMEOUT_MS 10000 /* when the caller gives -1 */
#define TLS_HANDSHAKE_MS 10000       /* a server's, from accept    */
#define TLS_STEP (1u << 20)          /* receive buffer growth      */
#define TLS_SEND_STALL_MS REMO_FRAME_SEND_TIMEOUT_MS
#define TLS_SMALL 8192               /* sent in one record with its
                                        header                      */

struct tls_conn {
	int fd;
	bool open;            /* fd and ssl are ours (state starts zeroed) */
	SSL *ssl;
	pthread_mutex_t lock; /* every SSL call                          */
	pthread_mutex_t send_lock; /* one frame at a time               */
	atomic_bool closed;
	_Atomic int64_t handshake_deadline; /* ms; 0: the handshake is done */
	/* the frame being received, kept here across calls that time out
	 * (not in the caller's buffer, which it may let go meanwhile) */
	unsigned char hdr[4];
	size_t hdr_got;
	size_t body_len;
	bool in_body;
	remo_buf body;
	size_t counted;    /* of body.cap, in the process's frame budget */
	size_t recv_max;   /* 0: TLS_MAX_MESSAGE; lower: tls_limit */
};

struct tls_listener {
	int fd;
	bool open;
	atomic_bool closed;
	SSL_CTX *ctx;
};

/* ==== URLs and contexts ================================================== */

struct tls_url {
	char hostport[300];
	char host[256];
	char ca[512], cert[512], key[512];
};

/* Copies the value of key=... from the query q into out; true if there. */
static bool tls_query(const char *q, const char *key, char *out, size_t n)
{
	size_t kl = strlen(key);
	while (q != NULL && *q != '\0') {
		const char *amp = strchr(q, '&');
		size_t len = amp ? (size_t)(amp - q) : strlen(q);
		if (len > kl && strncmp(q, key, kl) == 0 && q[kl] == '=') {
			if (len - kl - 1 >= n)
				return false;
			memcpy(out, q + kl + 1, len - kl - 1);
			out[len - kl - 1] = '\0';
			return true;
		}
		q = amp ? amp + 1 : NULL;
	}
	return false;
}

static int tls_parse(const char *url, struct tls_url *u)
{
	memset(u, 0, sizeof *u);
	const char *p = url + strlen("tls://");
	const char *q = strchr(p, '?');
	size_t len = q ? (size_t)(q - p) : strlen(p);
	if (len >= sizeof u->hostport) {
		remo_raise("ValueError", "%s: address too long", url);
		return REMO_EINVAL;
	}
	memcpy(u->hostport, p, len);
	u->hostport[len] = '\0';
	/* the name to check the server's certificate against */
	const char *h = u->hostport, *end;
	if (*h == '[') {
		h++;
		end = strchr(h, ']');
	} else {
		end = strrchr(h, ':');
	}
	if (end == NULL || (size_t)(end - h) >= sizeof u->host) {
		remo_raise("ValueError", "%s: not tls://HOST:PORT", url);
		return REMO_EINVAL;
	}
	memcpy(u->host, h, (size_t)(end - h));
	u->host[end - h] = '\0';
	if (q != NULL) {
		tls_query(q + 1, "ca", u->ca, sizeof u->ca);
		tls_query(q + 1, "cert", u->cert, sizeof u->cert);
		tls_query(q + 1, "key", u->key, sizeof u->key);
	}
	return REMO_OK;
}

/* OpenSSL's reason for the last failure, raised as name. */
static void tls_raise(const char *name, const char *url, const char *what)
{
	char buf[256] = "";
	unsigned long e = ERR_peek_last_error();
	if (e != 0)
		ERR_error_string_n(e, buf, sizeof buf);
	ERR_clear_error();
	remo_raise(name, "%s: %s%s%s", url, what, buf[0] ? ": " : "", buf);
}

/* A context for one side: TLS 1.2+, our certificate if given, the CAs
 * to check the peer with.  NULL with the reason raised. */
static SSL_CTX *tls_ctx(const struct tls_url *u, const char *url, bool server)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method()
	                                  : TLS_client_method());
	if (ctx == NULL) {
		tls_raise("MemoryError", url, "SSL_CTX_new");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	bool ok = true;
	if (u->cert[0] != '\0' || u->key[0] != '\0') {
		ok = SSL_CTX_use_certificate_chain_file(ctx, u->cert) == 1 &&
		     SSL_CTX_use_PrivateKey_file(ctx, u->key, SSL_FILETYPE_PEM) ==
		     1 && SSL_CTX_check_private_key(ctx) == 1;
		if (!ok)
			tls_raise("ValueError", url, "the certificate or key");
	} else if (server) {
		remo_raise("ValueError", "%s: a tls:// server needs cert= and "
		           "key=", url);
		ok = false;
	}
	if (ok && u->ca[0] != '\0') {
		ok = SSL_CTX_load_verify_locations(ctx, u->ca, NULL) == 1;
		if (!ok)
			tls_raise("ValueError", url, "the CA file");
	} else if (ok && !server) {
		SSL_CTX_set_default_verify_paths(ctx);
	}
	if (ok && (!server || u->ca[0] != '\0'))
		/* a client always checks; a server with ca= asks for and
		 * checks the client's certificate (mutual TLS) */
		SSL_CTX_set_verify(ctx, server ? SSL_VERIFY_PEER |
		                                 SSL_VERIFY_FAIL_IF_NO_PEER_CERT
		                               : SSL_VERIFY_PEER, NULL);
	if (!ok) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* ==== the SSL calls, under the lock, waiting outside it ================== */

static int64_t tls_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for what SSL asked (err) until deadline (-1: none).  REMO_OK to
 * try again, REMO_ETIMEDOUT, or REMO_EPEERLOST / REMO_ECLOSED. */
static int tls_wait(struct tls_conn *c, int err, int64_t deadline)
{
	struct pollfd p = {c->fd, err == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN,
	                   0};
	int left = -1;
	if (deadline >= 0) {
		int64_t l = deadline - tls_now_ms();
		left = l <= 0 ? 0 : l > 1000000 ? 1000000 : (int)l;
	}
	int n = poll(&p, 1, left);
	if (atomic_load(&c->closed))
		return REMO_ECLOSED;
	if (n < 0 && errno != EINTR)
		return REMO_EPEERLOST;
	if (n == 0)
		return REMO_ETIMEDOUT;
	return REMO_OK;
}

/*
 * The socket under SSL: OpenSSL's own socket BIO writes with write(2),
 * which raises SIGPIPE when the peer has gone and kills a program that
 * does not ignore it.  This BIO sends with MSG_NOSIGNAL, as the stream
 * transport does.  Blocking SIGPIPE around each SSL call instead (what
 * libcurl does) cost three system calls per SSL call: measured, the
 * null call over tls:// went from 51 to 42 us without them (bench_tls,
 * one core).
 */
static BIO_METHOD *tls_bio_method;
static pthread_once_t tls_bio_once = PTHREAD_ONCE_INIT;

static int tls_bio_write(BIO *b, const char *p, int n)
{
	int fd = (int)(intptr_t)BIO_get_data(b);
	BIO_clear_retry_flags(b);
	ssize_t r = send(fd, p, (size_t)n, MSG_NOSIGNAL);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		BIO_set_retry_write(b);
	return (int)r;
}

static int tls_bio_read(BIO *b, char *p, int n)
{
	int fd = (int)(intptr_t)BIO_get_data(b);
	BIO_clear_retry_flags(b);
	ssize_t r = recv(fd, p, (size_t)n, 0);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		BIO_set_retry_read(b);
	return (int)r;
}

static long tls_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b;
	(void)num;
	(void)ptr;
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int tls_bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static void tls_bio_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
	                             "remo tls socket");
	if (m != NULL && (BIO_meth_set_write(m, tls_bio_write) != 1 ||
	                  BIO_meth_set_read(m, tls_bio_read) != 1 ||
	                  BIO_meth_set_ctrl(m, tls_bio_ctrl) != 1 ||
	                  BIO_meth_set_create(m, tls_bio_create) != 1)) {
		BIO_meth_free(m);
		m = NULL;
	}
	tls_bio_method = m; /* for the life of the process */
}

/* The peer refused our certificate, or had none we could trust (an
 * alert about certificates), rather than going away: REMO_EAUTH. */
static bool tls_refused(void)
{
	unsigned long e = ERR_peek_error();
	const char *r = e != 0 && ERR_GET_LIB(e) == ERR_LIB_SSL
	                ? ERR_reason_error_string(e) : NULL;
	return r != NULL && (strstr(r, "certificate") != NULL ||
	                     strstr(r, "unknown ca") != NULL);
}

/*
 * One SSL_read or SSL_write of up to n bytes, waiting as SSL asks, until
 * deadline.  Returns the bytes moved (> 0), or a negated status.  Before
 * the handshake is done, the handshake's own deadline applies too.
 */
static long tls_io(struct tls_conn *c, bool write, void *buf, size_t n,
                   int64_t deadline)
{
	for (;;) {
		if (atomic_load(&c->closed))
			return -REMO_ECLOSED;
		int64_t dl = deadline, hs = atomic_load(&c->handshake_deadline);
		if (hs != 0 && (dl < 0 || hs < dl))
			dl = hs;
		pthread_mutex_lock(&c->lock);
		ERR_clear_error();
		int r = write ? SSL_write(c->ssl, buf, (int)n)
		              : SSL_read(c->ssl, buf, (int)n);
		int err = r > 0 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);
		if (hs != 0 && SSL_is_init_finished(c->ssl))
			atomic_store(&c->handshake_deadline, 0);
		pthread_mutex_unlock(&c->lock);
		if (r > 0)
			return r;
		if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
			int why = atomic_load(&c->closed) ? REMO_ECLOSED
			          : tls_refused() ? REMO_EAUTH : REMO_EPEERLOST;
			ERR_clear_error();
			return -why;
		}
		int w = tls_wait(c, err, dl);
		if (w == REMO_ETIMEDOUT && dl != deadline)
			return -REMO_EPEERLOST; /* the handshake took too long */
		if (w != REMO_OK)
			return -w;
	}
}

/* ==== connections ======================================================== */

static int tls_conn_init(struct tls_conn *c, int fd, SSL_CTX *ctx)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	pthread_once(&tls_bio_once, tls_bio_init);
	c->ssl = SSL_new(ctx);
	BIO *bio = c->ssl != NULL && tls_bio_method != NULL
	           ? BIO_new(tls_bio_method) : NULL;
	if (bio == NULL) {
		SSL_free(c->ssl);
		c->ssl = NULL;
		close(fd);
		return REMO_ENOMEM;
	}
	BIO_set_data(bio, (void *)(intptr_t)fd);
	SSL_set_bio(c->ssl, bio, bio); /* the SSL owns it now */
	c->fd = fd;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->send_lock, NULL);
	c->open = true;
	return REMO_OK;
}

static int tls_connect(void *state, const char *url, int timeout_ms)
{
	struct tls_conn *c = state;
	struct tls_url u;
	int fd, rc = tls_parse(url, &u);
	if (rc != REMO_OK)
		return rc;
	if (timeout_ms < 0)
		timeout_ms = TLS_CONNECT_TIMEOUT_MS;
	int64_t deadline = tls_now_ms() + timeout_ms;
	SSL_CTX *ctx = tls_ctx(&u, url, false);
	if (ctx == NULL)
		return REMO_EINVAL;
	rc = remo__tcp_connect(u.hostport, url, timeout_ms, &fd);
	if (rc == REMO_OK)
		rc = tls_conn_init(c, fd, ctx);
	SSL_CTX_free(ctx); /* the SSL holds its own count */
	if (rc != REMO_OK)
		return rc;
	/* the name the certificate must have: an IP address, or a host */
	unsigned char ip[16];
	bool is_ip = inet_pton(AF_INET, u.host, ip) == 1 ||
	             inet_pton(AF_INET6, u.host, ip) == 1;
	X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
	if (is_ip)
		X509_VERIFY_PARAM_set1_ip_asc(vp, u.host);
	else
		SSL_set1_host(c->ssl, u.host);
	if (!is_ip)
		SSL_set_tlsext_host_name(c->ssl, u.host);
	SSL_set_connect_state(c->ssl);
	for (;;) {
		pthread_mutex_lock(&c->lock);
		ERR_clear_error();
		int r = SSL_do_handshake(c->ssl);
		int err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);
		long vr = SSL_get_verify_result(c->ssl);
		pthread_mutex_unlock(&c->lock);
		if (r == 1)
			return REMO_OK;
		if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
			rc = tls_wait(c, err, deadline);
			if (rc == REMO_OK)
				continue;
			remo_raise(rc == REMO_ETIMEDOUT ? "TimeoutError"
			                                : "ConnectionError",
			           "%s: the TLS handshake %s", url,
			           rc == REMO_ETIMEDOUT ? "timed out" : "failed");
		} else if (vr != X509_V_OK) {
			ERR_clear_error();
			remo_raise("AuthenticationError", "%s: the server's "
			           "certificate: %s", url,
			           X509_verify_cert_error_string(vr));
			rc = REMO_EAUTH;
		} else {
			tls_raise("AuthenticationError", url, "the TLS handshake "
			          "failed");
			rc = REMO_EAUTH;
		}
		break;
	}
	/* failed: undo what connect made (fini is not called then) */
	SSL_free(c->ssl);
	close(c->fd);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->send_lock);
	memset(c, 0, sizeof *c);
	return rc;
}

static int tls_send(void *state, const void *msg, size_t n)
{
	struct tls_conn *c = state;
	if (n > TLS_MAX_MESSAGE || n > UINT32_MAX)
		return REMO_ETOOBIG;
	unsigned char hdr[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
	                        (unsigned char)(n >> 8), (unsigned char)n};
	pthread_mutex_lock(&c->send_lock);
	int rc = REMO_OK;
	long r;
	size_t done = 0;
	if (n <= TLS_SMALL) {
		/* header and body in one TLS record: measured, a record each
		 * made the null call 42 us instead of 23.5 (bench_tls) */
		unsigned char one[4 + TLS_SMALL];
		memcpy(one, hdr, 4);
		memcpy(one + 4, msg, n);
		r = tls_io(c, true, one, 4 + n, tls_now_ms() + TLS_SEND_STALL_MS);
		done = n;
	} else {
		/* the header, then the body; SSL_write writes all it is given */
		r = tls_io(c, true, hdr, sizeof hdr,
		           tls_now_ms() + TLS_SEND_STALL_MS);
	}
	/* in pieces, each of which must go within TLS_SEND_STALL_MS: a peer
	 * that stops reading ends the connection (the stream transport's
	 * SO_SNDTIMEO, remo_frame_fd) */
	for (; r > 0 && done < n; done += (size_t)r) {
		size_t chunk = n - done > TLS_STEP ? TLS_STEP : n - done;
		r = tls_io(c, true, (char *)msg + done, chunk,
		           tls_now_ms() + TLS_SEND_STALL_MS);
	}
	if (r == -REMO_ETIMEDOUT)
		r = -REMO_EPEERLOST; /* it stopped reading */
	if (r <= 0)
		rc = (int)-r;
	pthread_mutex_unlock(&c->send_lock);
	return rc;
}

/*
 * One whole frame appended to out (handed over when out is empty),
 * within timeout_ms; a partial one is kept in c across a timeout.
 * Memory grows with what came, by TLS_STEP at most, never by the length
 * announced.
 */
static int tls_recv(void *state, remo_buf *out, int timeout_ms)
{
	struct tls_conn *c = state;
	int64_t deadline = timeout_ms < 0 ? -1 : tls_now_ms() + timeout_ms;
	while (!c->in_body) {
		long r = tls_io(c, false, c->hdr + c->hdr_got, 4 - c->hdr_got,
		                deadline);
		if (r <= 0)
			return (int)-r;
		c->hdr_got += (size_t)r;
		if (c->hdr_got == 4) {
			c->body_len = (size_t)c->hdr[0] << 24 | (size_t)c->hdr[1] << 16 |
			              (size_t)c->hdr[2] << 8 | c->hdr[3];
			if (c->body_len > (c->recv_max ? c->recv_max
			                                : TLS_MAX_MESSAGE))
				return REMO_EPROTO;
			c->in_body = true;
			c->body.len = 0;
		}
	}
	remo_buf *b = &c->body;
	bool big = c->body_len > REMO_FRAME_SMALL;
	while (b->len < c->body_len) {
		size_t want = c->body_len - b->len;
		if (want > TLS_STEP)
			want = TLS_STEP;
		if (remo_buf_reserve(b, want) != REMO_OK)
			return REMO_ENOMEM;
		/* a big frame's buffer counts in the process's budget while
		 * it is received (remo_frame_set_budget), as stream's does */
		if (big && b->cap > c->counted) {
			if (remo_frame_budget_take(b->cap - c->counted) != REMO_OK)
				return REMO_ENOMEM;
			c->counted = b->cap;
		}
		long r = tls_io(c, false, b->data + b->len, want, deadline);
		if (r <= 0)
			return (int)-r;
		b->len += (size_t)r;
	}
	remo_frame_budget_give(c->counted);
	c->counted = 0;
	c->in_body = false;
	c->hdr_got = 0;
	if (out->len == 0) { /* hand it over, and keep out's buffer */
		remo_buf t = *out;
		*out = *b;
		*b = t;
		b->len = 0;
		return REMO_OK;
	}
	if (remo_buf_reserve(out, b->len) != REMO_OK)
		return REMO_ENOMEM;
	memcpy(out->data + out->len, b->data, b->len);
	out->len += b->len;
	b->len = 0;
	return REMO_OK;
}

/* "tls subject=<the certificate the peer proved> HOST:PORT", or
 * "tls HOST:PORT" for a peer that showed none (a server that did not
 * ask). */
static int tls_peer(void *state, char *buf, size_t len)
{
	struct tls_conn *c = state;
	if (!c->open)
		return REMO_ENOTFOUND;
	char addr[300] = "", subject[256] = "";
	if (remo__sock_peer(c->fd, "", addr, sizeof addr) != REMO_OK)
		addr[0] = '\0';
	pthread_mutex_lock(&c->lock);
	X509 *cert = SSL_get1_peer_certificate(c->ssl);
	bool verified = SSL_get_verify_result(c->ssl) == X509_V_OK;
	pthread_mutex_unlock(&c->lock);
	if (cert != NULL && verified)
		X509_NAME_oneline(X509_get_subject_name(cert), subject,
		                  sizeof subject);
	X509_free(cert);
	snprintf(buf, len, "tls%s%s%s", subject[0] ? " subject=" : "",
	         subject, addr);
	return REMO_OK;
}

static void tls_limit(void *state, size_t n)
{
	struct tls_conn *c = state;
	c->recv_max = n < TLS_MAX_MESSAGE ? n : TLS_MAX_MESSAGE;
}

static void tls_close(void *state)
{
	struct tls_conn *c = state;
	atomic_store(&c->closed, true);
	/* wakes a poll in recv or send at once, and tells the peer */
	if (c->open)
		shutdown(c->fd, SHUT_RDWR);
}

static void tls_fini(void *state)
{
	struct tls_conn *c = state;
	if (!c->open)
		return;
	SSL_free(c->ssl);
	close(c->fd);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->send_lock);
	remo_frame_budget_give(c->counted); /* a frame cut off */
	c->counted = 0;
	remo_buf_free(&c->body);
	c->open = false;
}

/* ==== listening ========================================================== */

static int tls_listen(void *state, const char *url, char *bound,
                      size_t boundlen)
{
	struct tls_listener *l = state;
	struct tls_url u;
	int rc = tls_parse(url, &u);
	if (rc != REMO_OK)
		return rc;
	if ((l->ctx = tls_ctx(&u, url, true)) == NULL)
		return REMO_EINVAL;
	rc = remo__tcp_listen(u.hostport, url, "tls", bound, boundlen, &l->fd);
	if (rc != REMO_OK) {
		SSL_CTX_free(l->ctx);
		l->ctx = NULL;
		return rc;
	}
	l->open = true;
	return REMO_OK;
}

/* The TCP connection only: the TLS handshake happens on the session's
 * first send or receive, in its own thread (a client that stalls it
 * holds no accept loop), within TLS_HANDSHAKE_MS. */
static int tls_accept(void *state, void *conn, int timeout_ms)
{
	struct tls_listener *l = state;
	struct tls_conn *c = conn;
	int fd;
	int rc = remo__sock_accept(l->fd, &l->closed, timeout_ms, &fd);
	if (rc != REMO_OK)
		return rc;
	remo__tcp_nodelay(fd);
	if ((rc = tls_conn_init(c, fd, l->ctx)) != REMO_OK)
		return rc;
	SSL_set_accept_state(c->ssl);
	atomic_store(&c->handshake_deadline, tls_now_ms() + TLS_HANDSHAKE_MS);
	return REMO_OK;
}

static void tls_close_listener(void *state)
{
	struct tls_listener *l = state;
	atomic_store(&l->closed, true);
	if (l->open)
		shutdown(l->fd, SHUT_RDWR);
}

static void tls_fini_listener(void *state)
{
	struct tls_listener *l = state;
	if (l->open)
		close(l->fd);
	SSL_CTX_free(l->ctx);
}

/* ==== the entry ========================================================== */

static const char *const tls_schemes[] = {"tls", NULL};

/* The socket: once recv(0) returned REMO_ETIMEDOUT, SSL_read said
 * WANT_READ, so no plaintext waits inside OpenSSL and a new record
 * makes the socket readable. */
static int tls_fd(void *state)
{
	struct tls_conn *c = state;
	return c->open ? c->fd : -1;
}

static const remo_transport_ops tls_ops = {
	.abi = REMO_TRANSPORT_ABI,
	.name = "tls",
	.schemes = tls_schemes,
	.conn_size = sizeof(struct tls_conn),
	.listener_size = sizeof(struct tls_listener),
	.max_message = TLS_MAX_MESSAGE,
	.connect = tls_connect,
	.send = tls_send,
	.recv = tls_recv,
	.close = tls_close,
	.fini = tls_fini,
	.peer = tls_peer,
	.limit = tls_limit,
	.listen = tls_listen,
	.accept = tls_accept,
	.close_listener = tls_close_listener,
	.fini_listener = tls_fini_listener,
	.fd = tls_fd,
};

REMO_API const remo_transport_ops *remo_transport_tls(void);

const remo_transport_ops *remo_transport_tls(void)
{
	return &tls_ops;
}
