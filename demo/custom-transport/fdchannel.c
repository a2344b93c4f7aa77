/*
 * fdchannel.c -- a remo_channel over two file descriptors, written as the
 * worked example of a custom transport (README.md, "Writing a channel").
 *
 * A channel is two functions and a pointer: send one whole message, and
 * receive one whole message within a timeout.  Everything else here is
 * what those two promises cost over a byte stream:
 *
 *   framing   a byte stream has no message boundaries, so each message
 *             goes out as a 4-byte big-endian length and then its bytes
 *             (the stream and exec transports use the same framing);
 *   timeouts  recv may give up half-way through a message, so the part
 *             already read is kept in the channel's state and the next
 *             recv continues it; nothing is lost and nothing is doubled;
 *   limits    a length is checked before any memory is taken for it: a
 *             broken or hostile peer cannot make us allocate 4 GiB.
 *
 * The state is plain malloc'ed: it is this program's, not remo's.  Only
 * the message buffers are remo_bufs, grown with remo_buf_reserve, because
 * recv hands its message to remo in one.
 */
#include "fdchannel.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct fdchannel {
	int in, out;
	/* the message being received, kept across recv calls that time out */
	unsigned char hdr[4];
	size_t hdr_got;   /* bytes of the length read so far   */
	remo_buf body;    /* bytes of the message read so far  */
	size_t body_len;  /* its length, once hdr_got == 4     */
};

/* ==== send: a length, then the bytes ==================================== */

/* Writes all n bytes, resuming after short writes and signals. */
static int fd_write_all(int fd, const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return REMO_EPEERLOST; /* EPIPE: the reader is gone */
		p += w;
		n -= (size_t)w;
	}
	return REMO_OK;
}

static int fd_send(void *user, const void *msg, size_t n)
{
	struct fdchannel *c = user;
	if (n > FDCHANNEL_MAX_MESSAGE)
		return REMO_ETOOBIG;
	/* byte by byte, so the order on the wire is the same on any CPU */
	unsigned char hdr[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
	                        (unsigned char)(n >> 8), (unsigned char)n};
	int rc = fd_write_all(c->out, hdr, sizeof hdr);
	if (rc == REMO_OK)
		rc = fd_write_all(c->out, msg, n);
	return rc;
}

/* ==== recv: wait, read what is there, hand over a whole message ========= */

static long long fd_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * One read into the message being received.  REMO_OK: a whole message
 * is in c->body.  REMO_ETIMEDOUT: more is needed (the caller polls
 * again).  REMO_EPEERLOST: end of file, or a read error.  REMO_EPROTO: a
 * length over the limit.  REMO_ENOMEM.
 */
static int fd_read_some(struct fdchannel *c)
{
	ssize_t r;
	if (c->hdr_got < 4) {
		r = read(c->in, c->hdr + c->hdr_got, 4 - c->hdr_got);
		if (r < 0 && errno == EINTR)
			return REMO_ETIMEDOUT;
		if (r <= 0)
			return REMO_EPEERLOST;
		if ((c->hdr_got += (size_t)r) < 4)
			return REMO_ETIMEDOUT;
		c->body_len = (size_t)c->hdr[0] << 24 | (size_t)c->hdr[1] << 16 |
		              (size_t)c->hdr[2] << 8 | c->hdr[3];
		if (c->body_len > FDCHANNEL_MAX_MESSAGE)
			return REMO_EPROTO;
		c->body.len = 0;
		if (remo_buf_reserve(&c->body, c->body_len) != REMO_OK)
			return REMO_ENOMEM;
		if (c->body_len == 0)
			return REMO_OK;
	}
	r = read(c->in, c->body.data + c->body.len, c->body_len - c->body.len);
	if (r < 0 && errno == EINTR)
		return REMO_ETIMEDOUT;
	if (r <= 0)
		return REMO_EPEERLOST;
	c->body.len += (size_t)r;
	return c->body.len == c->body_len ? REMO_OK : REMO_ETIMEDOUT;
}

static int fd_recv(void *user, remo_buf *msg, int timeout_ms)
{
	struct fdchannel *c = user;
	long long deadline = timeout_ms < 0 ? -1 : fd_now_ms() + timeout_ms;
	for (;;) {
		int wait = -1;
		if (deadline >= 0) {
			long long left = deadline - fd_now_ms();
			wait = left < 0 ? 0 : (int)left;
		}
		struct pollfd p = {c->in, POLLIN, 0};
		int n = poll(&p, 1, wait);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			return REMO_ETIMEDOUT; /* what was read waits in c */
		int rc = fd_read_some(c);
		if (rc == REMO_ETIMEDOUT)
			continue; /* part of a message: poll for the rest */
		if (rc != REMO_OK)
			return rc;
		/* recv appends: the session may hand in a buffer in use */
		if (remo_buf_reserve(msg, c->body.len) != REMO_OK)
			return REMO_ENOMEM;
		memcpy(msg->data + msg->len, c->body.data, c->body.len);
		msg->len += c->body.len;
		c->hdr_got = 0;
		return REMO_OK;
	}
}

/* ==== destroy: the session is done with the channel ===================== */

static void fd_destroy(void *user)
{
	struct fdchannel *c = user;
	close(c->in);
	if (c->out != c->in)
		close(c->out);
	remo_buf_free(&c->body);
	free(c);
}

/* ==== making one ========================================================= */

int fdchannel_new(int in_fd, int out_fd, remo_channel *out)
{
	struct fdchannel *c = calloc(1, sizeof *c);
	if (c == NULL)
		return REMO_ENOMEM;
	c->in = in_fd;
	c->out = out_fd;
	*out = (remo_channel){
		.send = fd_send,
		.recv = fd_recv,
		.close = NULL, /* optional; README.md says why it is left out */
		.destroy = fd_destroy,
		.user = c,
	};
	return REMO_OK;
}

int fdchannel_stdio(remo_channel *out)
{
	/* the channel writes to a copy of stdout; fd 1 becomes stderr */
	int msg_out = fcntl(1, F_DUPFD_CLOEXEC, 3);
	if (msg_out < 0)
		return REMO_EINVAL;
	if (dup2(2, 1) < 0) {
		close(msg_out);
		return REMO_EINVAL;
	}
	int rc = fdchannel_new(0, msg_out, out);
	if (rc != REMO_OK)
		close(msg_out);
	return rc;
}
