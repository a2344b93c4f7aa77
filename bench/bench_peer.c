/*
 * bench_peer.c -- the server process of bench_transport: started by it
 * with fork+exec (a process never forks after creating sockets), pinned
 * by it to a CPU between the fork and the exec, ended with SIGTERM.
 *
 *   bench_peer remo URL...   a remo_server listening on every URL
 *   bench_peer echo URL...   raw framed echo with the transport module
 *                            itself, no session; an argument nn:URL is
 *                            a raw nanomsg NN_PAIR socket bound to URL
 *   bench_peer sock FD       plain ping-pong on the inherited stream
 *                            socket FD (one end of a socketpair)
 *
 * For each URL it prints "LISTEN <url> <bound url>" or "FAIL <url>
 * <why>" (a listener that fails is skipped, not fatal: the nanomsg
 * transport may not be built), then "READY" once all are listening.
 *
 * The remo exports:
 *   noop  v()            the null call
 *   add   q(a:q b:q)     a + b
 *   size  N(b:y)         the length of a bytes argument
 *   cpu   i()            sched_getcpu() of the thread serving the call
 *   root  a Node         the head of bench/chain.h's chain, for the
 *                        pipelining lines: Node.next() <Node>(),
 *                        Node.depth() q()
 *
 * The raw protocols carry what the benchmark needs to mirror remo's
 * traffic exactly, in a header at the front of each request:
 *
 *   echo, nn   [0..3] the reply's length, big-endian.  The reply is that
 *              many bytes (the request's own, then zeros).  A request
 *              under 4 bytes is echoed as it came.  With the top bit
 *              (ECHO_COUNT) set, [4..7] is a count of replies, each of
 *              the length in the low bits: 0 for none (a one-way
 *              message), 64 for the replies to a batch of 64 calls.
 *              Requests without the bit have filler there, not a count.
 *   sock       [0..3] this request's length, [4..7] the reply's length,
 *              [8..11] spin_us: how long this side polls without
 *              blocking before it blocks, waiting for the NEXT request
 *              (the same spin-then-block wait as the client's, so both
 *              ends of a round trip wait alike); with the top bit
 *              (SOCK_YIELD) set, it calls sched_yield() between polls.
 *              Requests are at least SOCK_HDR bytes.
 *
 * One thread per connection in echo mode, as remo_server has one per
 * session: the baselines for calls_per_sec and idle_session_memory.
 */
#include "config.h"

#include <remo/remo.h>
#include <remo/transport.h>

#include "chain.h"

#include <nanomsg/nn.h>
#include <nanomsg/pair.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PEER_MAX_LISTENERS 8
#define PEER_ACCEPT_SLICE_MS 200
#define SOCK_HDR 12
#define SOCK_YIELD 0x80000000u
#define SOCK_MAX_MESSAGE (1u << 20)
#define ECHO_COUNT 0x80000000u

static void die(const char *what) __attribute__((noreturn));

static void die(const char *what)
{
	fprintf(stderr, "bench_peer: %s\n", what);
	exit(1);
}

/* The message of remo's last error, never NULL. */
static const char *err_text(void)
{
	const char *m = remo_error_message(remo_last_error());
	return m != NULL ? m : "?";
}

static uint32_t get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/*
 * Sets REMO_TRANSPORT_PATH, if unset, to the build tree's module
 * directories beside this program (bench/../transport/NAME/.libs), as
 * bench_transport does, so the peer also works when run by hand.
 */
static void peer_transport_path(void)
{
	char exe[PATH_MAX], path[3 * PATH_MAX + 64];
	ssize_t n;
	if (getenv("REMO_TRANSPORT_PATH") != NULL)
		return;
	if ((n = readlink("/proc/self/exe", exe, sizeof exe - 1)) <= 0)
		return;
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (slash == NULL)
		return;
	*slash = '\0';
	snprintf(path, sizeof path,
	         "%s/../transport/stream/.libs:%s/../transport/nanomsg/.libs",
	         exe, exe);
	setenv("REMO_TRANSPORT_PATH", path, 1);
}

/* ==== remo ============================================================== */

static void fn_noop(void)
{
}

static int64_t fn_add(int64_t a, int64_t b)
{
	return a + b;
}

static size_t fn_size(const void *p, size_t n)
{
	(void)p;
	return n;
}

static int fn_cpu(void)
{
	return sched_getcpu();
}

static remo_server *server;

static void on_term(int sig)
{
	(void)sig;
	if (server != NULL)
		remo_server_stop(server);
}

static void export_fn(remo_exports *ex, const char *name, const char *sig,
                      void (*fn)(void))
{
	remo_value f = remo_function(name, sig, fn, NULL);
	if (!remo_ok(f) || remo_export(ex, name, f) != REMO_OK)
		die("cannot export a function");
	remo_value_release(f);
}

static int peer_remo(int n, char **urls)
{
	remo_exports *ex = remo_exports_new();
	int rc;
	if (ex == NULL)
		die("out of memory");
	export_fn(ex, "noop", "v()", (void (*)(void))fn_noop);
	export_fn(ex, "add", "q(a:q b:q)", (void (*)(void))fn_add);
	export_fn(ex, "size", "N(b:y)", (void (*)(void))fn_size);
	export_fn(ex, "cpu", "i()", (void (*)(void))fn_cpu);

	chain_export(ex); /* root, a Node: bench/chain.h */
	if ((server = remo_server_new(ex, NULL, &rc)) == NULL)
		die("remo_server_new failed");
	for (int i = 0; i < n; i++) {
		char bound[256];
		if (remo_server_listen(server, urls[i], bound, sizeof bound) ==
		    REMO_OK)
			printf("LISTEN %s %s\n", urls[i], bound);
		else
			printf("FAIL %s %s\n", urls[i], err_text());
	}
	printf("READY\n");
	fflush(stdout);

	struct sigaction sa = {0};
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	remo_server_run(server);
	remo_server_free(server);
	remo_exports_free(ex);
	return 0;
}

/* ==== raw echo through a transport module ================================ */

/* The reply the echo protocols ask for: reply_len bytes, the request's
 * own first, then zeros, *count times (1 unless ECHO_COUNT asks).  buf
 * holds the request (len bytes) and gets room for the reply. */
static size_t echo_reply(remo_buf *buf, size_t len, uint32_t *count)
{
	*count = 1;
	if (len < 4)
		return len;
	size_t want = get_be32(buf->data);
	if (want & ECHO_COUNT) {
		if (len < 8)
			die("echo: a counted request under 8 bytes");
		want &= ~(size_t)ECHO_COUNT;
		*count = get_be32(buf->data + 4);
	}
	if (want > len) {
		if (remo_buf_reserve(buf, want - buf->len) != REMO_OK)
			die("out of memory");
		memset(buf->data + len, 0, want - len);
	}
	return want;
}

struct echo_conn {
	const remo_transport_ops *t;
	void *conn;
};

static void *echo_conn_main(void *arg)
{
	struct echo_conn *ec = arg;
	remo_buf b = {0};
	for (;;) {
		b.len = 0;
		if (ec->t->recv(ec->conn, &b, -1) != REMO_OK)
			break;
		uint32_t count;
		size_t n = echo_reply(&b, b.len, &count);
		uint32_t i = 0;
		while (i < count && ec->t->send(ec->conn, b.data, n) == REMO_OK)
			i++;
		if (i < count)
			break;
	}
	remo_buf_free(&b);
	ec->t->fini(ec->conn);
	free(ec->conn);
	free(ec);
	return NULL;
}

struct echo_listener {
	const remo_transport_ops *t;
	void *lst;
};

static void *echo_accept_main(void *arg)
{
	struct echo_listener *el = arg;
	for (;;) {
		void *conn = calloc(1, el->t->conn_size);
		struct echo_conn *ec = malloc(sizeof *ec);
		pthread_t th;
		if (conn == NULL || ec == NULL)
			die("out of memory");
		int rc = el->t->accept(el->lst, conn, PEER_ACCEPT_SLICE_MS);
		if (rc != REMO_OK) {
			free(conn);
			free(ec);
			if (rc == REMO_ECLOSED)
				break;
			continue;
		}
		*ec = (struct echo_conn){el->t, conn};
		if (pthread_create(&th, NULL, echo_conn_main, ec) != 0)
			die("cannot start a connection thread");
		pthread_detach(th);
	}
	return NULL;
}

/* The raw nanomsg echo: one NN_PAIR socket, one peer. */
static void *nn_echo_main(void *arg)
{
	int s = (int)(intptr_t)arg;
	remo_buf b = {0};
	for (;;) {
		void *msg = NULL;
		int n = nn_recv(s, &msg, NN_MSG, 0);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			break;
		}
		b.len = 0;
		if (remo_buf_reserve(&b, (size_t)n) != REMO_OK)
			die("out of memory");
		memcpy(b.data, msg, (size_t)n);
		b.len = (size_t)n;
		nn_freemsg(msg);
		uint32_t count;
		size_t r = echo_reply(&b, b.len, &count);
		uint32_t i = 0;
		while (i < count && nn_send(s, b.data, r, 0) >= 0)
			i++;
		if (i < count)
			break;
	}
	remo_buf_free(&b);
	return NULL;
}

static int peer_echo(int n, char **urls)
{
	pthread_t th;
	if (n > PEER_MAX_LISTENERS)
		die("too many addresses");
	for (int i = 0; i < n; i++) {
		if (strncmp(urls[i], "nn:", 3) == 0) {
			const char *url = urls[i] + 3;
			int s = nn_socket(AF_SP, NN_PAIR);
			int big = -1; /* no receive limit: 1 MiB would drop us */
			if (s < 0 ||
			    nn_setsockopt(s, NN_SOL_SOCKET, NN_RCVMAXSIZE, &big,
			                  sizeof big) < 0 ||
			    nn_bind(s, url) < 0) {
				printf("FAIL %s %s\n", urls[i], nn_strerror(nn_errno()));
				if (s >= 0)
					nn_close(s);
				continue;
			}
			printf("LISTEN %s %s\n", urls[i], url);
			if (pthread_create(&th, NULL, nn_echo_main,
			                   (void *)(intptr_t)s) != 0)
				die("cannot start a thread");
			pthread_detach(th);
			continue;
		}
		int rc;
		const remo_transport_ops *t = remo_transport_find(urls[i], &rc);
		struct echo_listener *el = malloc(sizeof *el);
		char bound[256];
		if (el == NULL)
			die("out of memory");
		el->t = t;
		el->lst = t != NULL ? calloc(1, t->listener_size) : NULL;
		if (t == NULL || t->listen == NULL || el->lst == NULL ||
		    t->listen(el->lst, urls[i], bound, sizeof bound) != REMO_OK) {
			printf("FAIL %s %s\n", urls[i], err_text());
			free(el->lst);
			free(el);
			continue;
		}
		printf("LISTEN %s %s\n", urls[i], bound);
		if (pthread_create(&th, NULL, echo_accept_main, el) != 0)
			die("cannot start a thread");
		pthread_detach(th);
	}
	printf("READY\n");
	fflush(stdout);
	/* SIGTERM's default action ends the process and every thread */
	for (;;)
		pause();
	return 0; /* not reached */
}

/* ==== plain socket ping-pong ============================================= */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Spin-then-block: poll without blocking for up to spin_us (yielding
 * the CPU between polls with SOCK_YIELD), then block.  The same wait as
 * bench_transport's. */
static void sock_wait(int fd, uint32_t spin)
{
	struct pollfd p = {fd, POLLIN, 0};
	uint32_t spin_us = spin & ~SOCK_YIELD;
	if (spin_us > 0) {
		uint64_t end = now_ns() + (uint64_t)spin_us * 1000;
		do {
			if (poll(&p, 1, 0) > 0)
				return;
			if (spin & SOCK_YIELD)
				sched_yield();
		} while (now_ns() < end);
	}
	while (poll(&p, 1, -1) < 0 && errno == EINTR)
		;
}

/* Reads exactly n bytes; false at the end of the stream. */
static bool sock_read(int fd, unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		p += r;
		n -= (size_t)r;
	}
	return true;
}

static bool sock_write(int fd, const unsigned char *p, size_t n)
{
	while (n > 0) {
		/* MSG_NOSIGNAL: a vanished client is an error, not SIGPIPE */
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

static int peer_sock(int fd)
{
	static unsigned char buf[SOCK_MAX_MESSAGE];
	uint32_t spin = 0;
	printf("READY\n");
	fflush(stdout);
	for (;;) {
		sock_wait(fd, spin);
		if (!sock_read(fd, buf, SOCK_HDR))
			break;
		uint32_t len = get_be32(buf), reply = get_be32(buf + 4);
		spin = get_be32(buf + 8);
		if (len < SOCK_HDR || len > sizeof buf || reply > sizeof buf)
			die("sock: a broken header");
		if (!sock_read(fd, buf + SOCK_HDR, len - SOCK_HDR))
			break;
		if (reply > len)
			memset(buf + len, 0, reply - len);
		if (!sock_write(fd, buf, reply))
			break;
	}
	return 0;
}

/* ==== main =============================================================== */

int main(int argc, char **argv)
{
	peer_transport_path();
	if (argc >= 3 && strcmp(argv[1], "remo") == 0)
		return peer_remo(argc - 2, argv + 2);
	if (argc >= 3 && strcmp(argv[1], "echo") == 0)
		return peer_echo(argc - 2, argv + 2);
	if (argc == 3 && strcmp(argv[1], "sock") == 0)
		return peer_sock(atoi(argv[2]));
	fprintf(stderr, "usage: bench_peer remo URL... | echo [nn:]URL... | "
	                "sock FD\n");
	return 2;
}
