/*
 * frame.c -- length-framed messages over a stream descriptor: the wire
 * of the stream and exec transports (and of any plugin that talks over a
 * socket, pipe or socketpair), written once.
 *
 * A frame is a 4-byte big-endian length, then that many bytes.  The
 * receiver keeps a partial frame in a remo_frame_rx across calls that
 * time out, refuses a length over the plugin's limit before allocating
 * (REMO_EPROTO), and lets memory follow the bytes that came, never the
 * length a peer announced.  Plugins call these through libremo, as they
 * call remo_buf_reserve: memory stays on the core's side.
 */
#include "wire.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define FRAME_STEP (1u << 20) /* growth of a receive buffer per step */

int remo_frame_send(int fd, const void *msg, size_t n, size_t max)
{
	if (n > max || n > UINT32_MAX)
		return REMO_ETOOBIG;
	unsigned char hdr[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
	                        (unsigned char)(n >> 8), (unsigned char)n};
	struct iovec iov[2] = {{hdr, 4}, {(void *)msg, n}};
	struct msghdr mh = {0};
	mh.msg_iov = iov;
	mh.msg_iovlen = 2;
	size_t left = 4 + n;
	while (left > 0) {
		/* MSG_NOSIGNAL: a vanished peer is EPIPE, not a SIGPIPE death */
		ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return REMO_EPEERLOST;
		}
		left -= (size_t)w;
		while (w > 0 && mh.msg_iovlen > 0) {
			size_t take = (size_t)w < mh.msg_iov->iov_len
			              ? (size_t)w : mh.msg_iov->iov_len;
			mh.msg_iov->iov_base = (char *)mh.msg_iov->iov_base + take;
			mh.msg_iov->iov_len -= take;
			w -= (ssize_t)take;
			if (mh.msg_iov->iov_len == 0) {
				mh.msg_iov++;
				mh.msg_iovlen--;
			}
		}
	}
	return REMO_OK;
}

/* Reads what is there.  REMO_OK when a whole frame is in rx->body,
 * REMO_ETIMEDOUT when more is needed, REMO_EPEERLOST at EOF or on an
 * error, REMO_EPROTO, REMO_ENOMEM. */
static int frame_read_some(int fd, remo_frame_rx *rx, size_t max)
{
	if (rx->hdr_got < 4) {
		ssize_t r = read(fd, rx->hdr + rx->hdr_got, 4 - rx->hdr_got);
		if (r <= 0)
			return r < 0 && errno == EINTR ? REMO_ETIMEDOUT : REMO_EPEERLOST;
		rx->hdr_got += (size_t)r;
		if (rx->hdr_got < 4)
			return REMO_ETIMEDOUT;
		rx->body_len = (size_t)rx->hdr[0] << 24 | (size_t)rx->hdr[1] << 16 |
		               (size_t)rx->hdr[2] << 8 | rx->hdr[3];
		/* refused before a byte is allocated for it */
		if (rx->body_len > max)
			return REMO_EPROTO;
		rx->body.len = 0;
		if (rx->body_len == 0)
			return REMO_OK;
	}
	/* grow by at most what already came (doubling), never to the
	 * announced length in one step: a hostile header costs nothing */
	size_t left = rx->body_len - rx->body.len;
	size_t step = rx->body.len > FRAME_STEP ? rx->body.len : FRAME_STEP;
	if (rx->body.cap == rx->body.len &&
	    remo__buf_grow(&rx->body, left < step ? left : step) != REMO_OK)
		return REMO_ENOMEM;
	size_t room = rx->body.cap - rx->body.len;
	ssize_t r = read(fd, rx->body.data + rx->body.len,
	                 left < room ? left : room);
	if (r <= 0)
		return r < 0 && errno == EINTR ? REMO_ETIMEDOUT : REMO_EPEERLOST;
	rx->body.len += (size_t)r;
	return rx->body.len == rx->body_len ? REMO_OK : REMO_ETIMEDOUT;
}

static int64_t frame_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int remo_frame_recv(int fd, remo_frame_rx *rx, remo_buf *out, int timeout_ms,
                    size_t max)
{
	int64_t deadline = timeout_ms < 0 ? -1 : frame_now_ms() + timeout_ms;
	for (;;) {
		int wait = deadline < 0 ? -1 : (int)(deadline - frame_now_ms());
		if (deadline >= 0 && wait < 0)
			wait = 0;
		struct pollfd p = {fd, POLLIN, 0};
		int n = poll(&p, 1, wait);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return REMO_EPEERLOST;
		if (n == 0)
			return REMO_ETIMEDOUT; /* a partial frame waits in rx */
		int rc = frame_read_some(fd, rx, max);
		if (rc == REMO_ETIMEDOUT)
			continue;
		if (rc != REMO_OK)
			return rc;
		/* a whole frame: hand it over without copying when we can */
		if (out->len == 0) {
			remo_buf done = rx->body;
			rx->body = *out;
			*out = done;
			rx->body.len = 0;
		} else {
			if (remo__buf_grow(out, rx->body.len) != REMO_OK)
				return REMO_ENOMEM;
			memcpy(out->data + out->len, rx->body.data, rx->body.len);
			out->len += rx->body.len;
		}
		rx->hdr_got = 0;
		rx->body_len = 0;
		return REMO_OK;
	}
}

void remo_frame_rx_free(remo_frame_rx *rx)
{
	remo_buf_free(&rx->body);
	rx->hdr_got = rx->body_len = 0;
}
