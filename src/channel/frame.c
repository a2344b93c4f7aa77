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
 *
 * remo_frame_fd, at the end, is a whole connection over one descriptor
 * (send, recv, close, fini), so that each fd-based plugin does not write
 * the closed flag and the shutdown again.
 */
#include "channel/channel.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define FRAME_STEP (1u << 20) /* growth of a receive buffer per step */

int remo_frame_send(int fd, const void *msg, size_t n, size_t max)
{
	remo_iov one = {msg, n};
	return remo_frame_sendv(fd, &one, 1, max);
}

int remo_frame_sendv(int fd, const remo_iov *pieces, int npieces, size_t max)
{
	if (npieces < 0 || npieces > REMO_IOV_MAX)
		return REMO_EINVAL;
	size_t n = 0;
	struct iovec iov[REMO_IOV_MAX + 1];
	for (int i = 0; i < npieces; i++) {
		if (pieces[i].n > SIZE_MAX - n)
			return REMO_ETOOBIG;
		n += pieces[i].n;
		iov[1 + i].iov_base = (void *)pieces[i].p;
		iov[1 + i].iov_len = pieces[i].n;
	}
	if (n > max || n > UINT32_MAX)
		return REMO_ETOOBIG;
	unsigned char hdr[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
	                        (unsigned char)(n >> 8), (unsigned char)n};
	iov[0].iov_base = hdr;
	iov[0].iov_len = 4;
	struct msghdr mh = {0};
	mh.msg_iov = iov;
	mh.msg_iovlen = (size_t)npieces + 1;
	size_t left = 4 + n;
	while (left > 0) {
		/* MSG_NOSIGNAL: a vanished peer is EPIPE, not a SIGPIPE death */
		ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			/* EAGAIN on a blocking socket: its SO_SNDTIMEO passed
			 * without progress, the peer stopped reading; either
			 * way the frame is cut, and the connection with it */
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

/*
 * Receiving.  Small frames come out of a read-ahead buffer: one read
 * takes whatever has arrived (up to AHEAD_MAX), and the frames in it are
 * handed out without another system call.  Measured (bench_transport,
 * pipelined calls over unix://): reading a header and then a body per
 * frame, each after a poll, cost four system calls per frame; the
 * read-ahead took remo's pipelined calls from 109k to 175k per second on
 * one core.  A frame too big for the buffer switches to reading its body
 * straight into rx->body, so a 1 MiB message is still received without
 * a copy and memory still follows the bytes that came.
 */
#define AHEAD_MAX REMO_FRAME_SMALL

/*
 * The process's budget for big frames being received: what peers make
 * this process hold before a message is whole (a length, then a body
 * trickled).  While rx->hdr_got is 4, rx->body.cap is counted in
 * partial_bytes; the frame's end or rx_free gives it back.  A growth
 * that would pass the budget fails that connection's recv with
 * REMO_ENOMEM (its session ends: MemoryError).  One growth may pass it
 * by what the allocator rounds up (at most the doubling of one buffer).
 */
static _Atomic size_t partial_bytes;
static _Atomic size_t partial_max = REMO_FRAME_DEFAULT_BUDGET;

void remo_frame_set_budget(size_t bytes)
{
	atomic_store(&partial_max, bytes ? bytes : REMO_FRAME_DEFAULT_BUDGET);
}

size_t remo_frame_budget_used(void)
{
	return atomic_load(&partial_bytes);
}

static bool budget_take(size_t n)
{
	size_t max = atomic_load(&partial_max);
	size_t cur = atomic_load(&partial_bytes);
	do {
		if (cur > max || n > max - cur)
			return false;
	} while (!atomic_compare_exchange_weak(&partial_bytes, &cur, cur + n));
	return true;
}

static void budget_give(size_t n)
{
	atomic_fetch_sub(&partial_bytes, n);
}

int remo_frame_budget_take(size_t n)
{
	return budget_take(n) ? REMO_OK : REMO_ENOMEM;
}

void remo_frame_budget_give(size_t n)
{
	budget_give(n);
}

/* Grows a big frame's body by n, within the budget.  REMO_ENOMEM. */
static int body_grow(remo_frame_rx *rx, size_t n)
{
	if (rx->body.cap - rx->body.len >= n)
		return REMO_OK;
	size_t before = rx->body.cap;
	size_t want = rx->body.len + n - before; /* at least this much more */
	if (!budget_take(want))
		return REMO_ENOMEM;
	if (remo__buf_grow(&rx->body, n) != REMO_OK) {
		budget_give(want);
		return REMO_ENOMEM;
	}
	size_t grew = rx->body.cap - before;
	if (grew > want)
		atomic_fetch_add(&partial_bytes, grew - want); /* rounding */
	else
		budget_give(want - grew);
	return REMO_OK;
}

static size_t frame_len(const unsigned char *p)
{
	return (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 |
	       p[3];
}

/* Reads what is there into rx->body (a big frame).  REMO_OK when the
 * body is whole, REMO_ETIMEDOUT when more is needed, REMO_EPEERLOST at
 * EOF or on an error, REMO_ENOMEM. */
static int frame_read_body(int fd, remo_frame_rx *rx)
{
	/* grow by at most what already came (doubling), never to the
	 * announced length in one step: a hostile header costs nothing */
	size_t left = rx->body_len - rx->body.len;
	size_t step = rx->body.len > FRAME_STEP ? rx->body.len : FRAME_STEP;
	if (rx->body.cap == rx->body.len &&
	    body_grow(rx, left < step ? left : step) != REMO_OK)
		return REMO_ENOMEM;
	size_t room = rx->body.cap - rx->body.len;
	ssize_t r = read(fd, rx->body.data + rx->body.len,
	                 left < room ? left : room);
	if (r <= 0)
		return r < 0 && errno == EINTR ? REMO_ETIMEDOUT : REMO_EPEERLOST;
	rx->body.len += (size_t)r;
	return rx->body.len == rx->body_len ? REMO_OK : REMO_ETIMEDOUT;
}

/*
 * A whole frame out of the read-ahead bytes, if one is there: REMO_OK
 * (appended to out), REMO_ETIMEDOUT (more bytes needed), REMO_EPROTO (a
 * length over max), REMO_ENOMEM.  A frame that cannot fit the buffer
 * moves to rx->body (body_len set) and gives REMO_ETIMEDOUT.
 */
static int frame_from_ahead(remo_frame_rx *rx, remo_buf *out, size_t max)
{
	remo_buf *a = &rx->ahead;
	size_t avail = a->len - rx->ahead_pos;
	if (avail < 4) /* (and a->data may still be NULL) */
		return REMO_ETIMEDOUT;
	const unsigned char *p = a->data + rx->ahead_pos;
	size_t n = frame_len(p);
	if (n > max) /* refused before a byte is allocated for it */
		return REMO_EPROTO;
	if (n + 4 > AHEAD_MAX) {
		/* a big frame: its body is read straight into rx->body */
		size_t have = avail - 4 < n ? avail - 4 : n;
		rx->body.len = 0;
		/* from here its capacity counts in the budget */
		if (!budget_take(rx->body.cap))
			return REMO_ENOMEM;
		if (have > 0) {
			if (body_grow(rx, have) != REMO_OK) {
				budget_give(rx->body.cap);
				return REMO_ENOMEM;
			}
			memcpy(rx->body.data, p + 4, have);
		}
		rx->body.len = have;
		rx->body_len = n;
		rx->hdr_got = 4;
		rx->ahead_pos += 4 + have;
		return REMO_ETIMEDOUT;
	}
	if (avail < 4 + n)
		return REMO_ETIMEDOUT;
	if (n > 0) {
		if (remo__buf_grow(out, n) != REMO_OK)
			return REMO_ENOMEM;
		memcpy(out->data + out->len, p + 4, n);
		out->len += n;
	}
	rx->ahead_pos += 4 + n;
	return REMO_OK;
}

/* rx->state[0]: the descriptor said it is not a socket (a pipe) */
#define RX_NOT_SOCKET 1

/* Makes room in the read-ahead buffer, its partial frame at the start. */
static int frame_ahead_room(remo_frame_rx *rx)
{
	remo_buf *a = &rx->ahead;
	if (rx->ahead_pos > 0) { /* keep the partial frame, at the start */
		memmove(a->data, a->data + rx->ahead_pos, a->len - rx->ahead_pos);
		a->len -= rx->ahead_pos;
		rx->ahead_pos = 0;
	}
	if (a->cap < AHEAD_MAX && remo__buf_grow(a, AHEAD_MAX - a->len) !=
	    REMO_OK)
		return REMO_ENOMEM;
	return REMO_OK;
}

/*
 * A socket is read before it is polled, without waiting (MSG_DONTWAIT):
 * when a message is there, as it is for a reader that spins, that is one
 * system call instead of a poll and a read.  REMO_OK (bytes came),
 * REMO_ETIMEDOUT (none yet, or fd is not a socket: poll it),
 * REMO_EPEERLOST at EOF or on an error, REMO_ENOMEM.
 */
static int frame_try_ahead(int fd, remo_frame_rx *rx)
{
	if (rx->state[0] & RX_NOT_SOCKET)
		return REMO_ETIMEDOUT;
	int rc = frame_ahead_room(rx);
	if (rc != REMO_OK)
		return rc;
	remo_buf *a = &rx->ahead;
	ssize_t r = recv(fd, a->data + a->len, a->cap - a->len, MSG_DONTWAIT);
	if (r > 0) {
		a->len += (size_t)r;
		return REMO_OK;
	}
	if (r == 0)
		return REMO_EPEERLOST;
	if (errno == ENOTSOCK)
		rx->state[0] |= RX_NOT_SOCKET;
	else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		return REMO_EPEERLOST;
	return REMO_ETIMEDOUT;
}

/* Reads what has arrived into the read-ahead buffer (after a poll said
 * there is something: read() then does not block, on a socket or a
 * pipe).  REMO_OK, REMO_EPEERLOST at EOF or on an error, REMO_ENOMEM. */
static int frame_read_ahead(int fd, remo_frame_rx *rx)
{
	remo_buf *a = &rx->ahead;
	int rc = frame_ahead_room(rx);
	if (rc != REMO_OK)
		return rc;
	ssize_t r = read(fd, a->data + a->len, a->cap - a->len);
	if (r < 0 && errno == EINTR)
		return REMO_OK;
	if (r <= 0)
		return REMO_EPEERLOST;
	a->len += (size_t)r;
	return REMO_OK;
}

/* A big frame's body is whole: hand it over, without copying when out
 * is empty. */
static int frame_hand_over(remo_frame_rx *rx, remo_buf *out)
{
	/* a message now, the session's: out of the budget (on ENOMEM
	 * below, rx->body stays and its capacity counts on) */
	size_t counted = rx->body.cap;
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
		rx->body.len = 0;
	}
	budget_give(counted);
	rx->hdr_got = 0;
	rx->body_len = 0;
	return REMO_OK;
}

int remo_frame_recv(int fd, remo_frame_rx *rx, remo_buf *out, int timeout_ms,
                    size_t max)
{
	/* one look (timeout 0, how a spinning reader polls) reads no clock */
	int64_t deadline = timeout_ms > 0 ? remo__deadline_ms(timeout_ms)
	                   : timeout_ms < 0 ? -1 : 0;
	for (;;) {
		int rc;
		if (rx->hdr_got == 4 && rx->body.len == rx->body_len)
			return frame_hand_over(rx, out);
		if (rx->hdr_got < 4) {
			rc = frame_from_ahead(rx, out, max);
			if (rc != REMO_ETIMEDOUT)
				return rc;
			if (rx->hdr_got == 4) /* became a big frame */
				continue;
			rc = frame_try_ahead(fd, rx);
			if (rc == REMO_OK)
				continue;
			if (rc != REMO_ETIMEDOUT)
				return rc;
			if (timeout_ms == 0 && !(rx->state[0] & RX_NOT_SOCKET))
				return REMO_ETIMEDOUT; /* that was the look */
		}
		int wait = deadline <= 0 ? (int)deadline
		                         : (int)(deadline - remo__now_ms());
		if (deadline > 0 && wait < 0)
			wait = 0;
		struct pollfd p = {fd, POLLIN, 0};
		int n = poll(&p, 1, wait);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return REMO_EPEERLOST;
		if (n == 0)
			return REMO_ETIMEDOUT; /* a partial frame waits in rx */
		rc = rx->hdr_got == 4 ? frame_read_body(fd, rx)
		                      : frame_read_ahead(fd, rx);
		if (rc != REMO_OK && rc != REMO_ETIMEDOUT)
			return rc;
	}
}

void remo_frame_rx_free(remo_frame_rx *rx)
{
	if (rx->hdr_got == 4)
		budget_give(rx->body.cap);
	remo_buf_free(&rx->body);
	remo_buf_free(&rx->ahead);
	rx->hdr_got = rx->body_len = rx->ahead_pos = 0;
}

/* ==== a framed descriptor ================================================ */

void remo_frame_fd_init(remo_frame_fd *f, int fd, size_t max)
{
	f->fd = fd;
	f->open = 1;
	__atomic_store_n(&f->closed, 0, __ATOMIC_RELAXED);
	f->max = max;
	f->recv_max = max;
	remo_frame_fd_set_send_timeout(f, REMO_FRAME_SEND_TIMEOUT_MS);
}

void remo_frame_fd_set_limit(remo_frame_fd *f, size_t n)
{
	f->recv_max = n < f->max ? n : f->max;
}

void remo_frame_fd_set_send_timeout(remo_frame_fd *f, int ms)
{
	/* a socket's own timeout: a blocked sendmsg returns EAGAIN when no
	 * byte went for that long (not a pipe: exec's is a socketpair) */
	struct timeval tv = {ms > 0 ? ms / 1000 : 0,
	                     ms > 0 ? (ms % 1000) * 1000 : 0};
	setsockopt(f->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static bool frame_fd_closed(remo_frame_fd *f)
{
	return __atomic_load_n(&f->closed, __ATOMIC_ACQUIRE) != 0;
}

int remo_frame_fd_send(remo_frame_fd *f, const void *msg, size_t n)
{
	remo_iov one = {msg, n};
	return remo_frame_fd_sendv(f, &one, 1);
}

int remo_frame_fd_sendv(remo_frame_fd *f, const remo_iov *iov, int n)
{
	if (frame_fd_closed(f))
		return REMO_ECLOSED;
	int rc = remo_frame_sendv(f->fd, iov, n, f->max);
	if (rc == REMO_EPEERLOST && frame_fd_closed(f))
		rc = REMO_ECLOSED;
	return rc;
}

int remo_frame_fd_recv(remo_frame_fd *f, remo_buf *out, int timeout_ms)
{
	if (frame_fd_closed(f))
		return REMO_ECLOSED;
	int rc = remo_frame_recv(f->fd, &f->rx, out, timeout_ms, f->recv_max);
	/* close shuts the descriptor down, which wakes the poll as an EOF */
	if (rc == REMO_EPEERLOST && frame_fd_closed(f))
		rc = REMO_ECLOSED;
	return rc;
}

void remo_frame_fd_close(remo_frame_fd *f)
{
	__atomic_store_n(&f->closed, 1, __ATOMIC_RELEASE);
	if (f->open)
		shutdown(f->fd, SHUT_RDWR);
}

void remo_frame_fd_fini(remo_frame_fd *f)
{
	if (f->open)
		close(f->fd);
	f->open = 0;
	remo_frame_rx_free(&f->rx);
}
