/*
 * transport.h -- the transport plugin ABI: writing a remo transport, and
 * how the core finds one by URL.  Connecting and serving over transports
 * is remo.h's section 12; a program needs this header only to write or
 * register a transport.
 *
 * A transport turns an address into channels (remo.h section 6): it
 * connects to a peer, or listens and accepts peers, and then sends and
 * receives whole messages.  Transports are plugins: one folder under
 * transport/, built into one shared module that exports one symbol,
 *
 *     const remo_transport_ops *remo_transport_NAME(void);
 *
 * returning a static const table.  The core finds a module by the URL's
 * scheme, checks the table before trusting it (ABI version, every
 * required operation), and allocates the state the table asks for: the
 * plugin initialises it and releases what it acquired, but never frees
 * the memory itself, so memory never crosses the plugin boundary.
 *
 * Lifecycle of a connection, as nng's: connect or accept initialises it
 * (after a failure there is nothing to undo); close is non-blocking and
 * makes a blocked recv return; fini releases everything and is called
 * once, last.  A listener likewise: listen, accept..., close_listener,
 * fini_listener.
 *
 * remo_transport(7) walks through writing one; demo/custom-transport is a
 * complete example.
 */
#ifndef REMO_TRANSPORT_H
#define REMO_TRANSPORT_H

#include <remo/remo.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI this header describes.  A module built for another is refused
 * (one built for 3 is taken: 4 only added an operation at the end).
 * 2: remo_frame_rx grew its read-ahead buffer.  3: the optional peer
 * operation.  4: the optional fd operation.  5: the optional sendv
 * operation (remo_frame_rx's unused hdr became state, of the same size). */
#define REMO_TRANSPORT_ABI 5

typedef struct remo_transport_ops {
	unsigned abi;                /* REMO_TRANSPORT_ABI                   */
	const char *name;            /* "stream": the module remo_transport_stream */
	const char *const *schemes;  /* NULL-terminated: {"unix", "tcp", NULL} */
	size_t conn_size;            /* bytes of one connection's state      */
	size_t listener_size;        /* bytes of one listener's state        */
	size_t max_message;          /* the largest message it carries; 0: no
	                                limit of its own                     */

	/*
	 * connect: initialises conn (conn_size zeroed bytes) as a connection
	 * to url, waiting at most timeout_ms (-1: the transport's default).
	 * REMO_OK; REMO_EINVAL for a malformed URL; REMO_EPEERLOST when the
	 * peer refuses or cannot be reached; REMO_ETIMEDOUT.  A plugin may
	 * say why with remo_raise().  On failure conn holds nothing to
	 * release.
	 */
	int (*connect)(void *conn, const char *url, int timeout_ms);
	/* send, recv: as remo_channel's (remo.h section 6); recv with a
	 * timeout of 0 is one look, no wait.  close may be called more than
	 * once; fini may come without close before it. */
	int (*send)(void *conn, const void *msg, size_t n);
	int (*recv)(void *conn, remo_buf *msg, int timeout_ms);
	/* close: non-blocking; a blocked or later recv returns REMO_ECLOSED. */
	void (*close)(void *conn);
	/* fini: releases what connect or accept acquired. */
	void (*fini)(void *conn);
	/* peer (optional): remo_channel's peer, for this connection: who is
	 * on the other end, as the transport knows it (remo_caller). */
	int (*peer)(void *conn, char *buf, size_t len);
	/* limit (optional): remo_channel's limit, for this connection; never
	 * above max_message. */
	void (*limit)(void *conn, size_t n);

	/*
	 * listen: initialises lst (listener_size zeroed bytes) listening on
	 * url.  bound (if not NULL) gets the address actually bound, in URL
	 * form, e.g. with the port chosen.  REMO_EINVAL (malformed, or not
	 * permitted), REMO_EEXIST (address in use).  Optional: a connect-only
	 * transport leaves the four listener operations NULL.
	 */
	int (*listen)(void *lst, const char *url, char *bound, size_t boundlen);
	/*
	 * accept: waits up to timeout_ms for a peer and initialises conn for
	 * it.  REMO_OK, REMO_ETIMEDOUT, REMO_ECLOSED after close_listener,
	 * REMO_ELIMIT when the transport can hold no more connections (the
	 * server keeps accepting; the peer is refused).
	 */
	int (*accept)(void *lst, void *conn, int timeout_ms);
	void (*close_listener)(void *lst);
	void (*fini_listener)(void *lst);

	/*
	 * fd (optional, ABI 4): a descriptor that turns readable when recv
	 * may have a message, once recv with a timeout of 0 has returned
	 * REMO_ETIMEDOUT (so nothing whole is buffered inside the plugin);
	 * or -1.  With it a server watches every idle connection with one
	 * epoll instead of a thread each.  remo only polls it, never reads,
	 * writes or closes it.
	 */
	int (*fd)(void *conn);
	/*
	 * sendv (optional, ABI 5): remo_channel's sendv, for this
	 * connection: one message in pieces (remo_frame_sendv writes them
	 * with one gathered write).
	 */
	int (*sendv)(void *conn, const remo_iov *iov, int n);
} remo_transport_ops;

/* ---- framing, for transports over a stream descriptor ----------------- */

/*
 * A message on a stream (a socket, a pipe, a socketpair) is a frame: a
 * 4-byte big-endian length, then the bytes.  The stream and exec
 * transports use these; so can any plugin.
 *
 * remo_frame_send: writes one frame to fd, resuming partial writes,
 * without raising SIGPIPE.  REMO_OK, REMO_ETOOBIG (n > max), or
 * REMO_EPEERLOST when the write fails (the plugin turns that into
 * REMO_ECLOSED if it closed the descriptor itself), or when a socket
 * with a send timeout (SO_SNDTIMEO: remo_frame_fd sets one) made no
 * progress for that long: a peer that stopped reading.
 */
REMO_API int remo_frame_send(int fd, const void *msg, size_t n, size_t max);
/* remo_frame_sendv: remo_frame_send of the message the n pieces at iov
 * make together (n at most REMO_IOV_MAX: REMO_EINVAL past it), written
 * with the frame's header in gathered writes: no copy. */
REMO_API int remo_frame_sendv(int fd, const remo_iov *iov, int n,
                              size_t max);

/* A frame being received, kept across calls that time out, and the
 * bytes read ahead of it (one read takes every small frame that has
 * arrived).  Zero-fill to start; remo_frame_rx_free to end. */
typedef struct remo_frame_rx {
	unsigned char state[4]; /* remo_frame_recv's own */
	size_t hdr_got;
	remo_buf body;
	size_t body_len;
	remo_buf ahead;     /* read, not yet handed out */
	size_t ahead_pos;
} remo_frame_rx;

/*
 * remo_frame_recv: waits up to timeout_ms (-1: forever, 0: one look) for
 * one whole frame and appends it to out (handing rx's buffer over when
 * out is empty).  A length over max is refused before anything is
 * allocated (REMO_EPROTO); memory grows with the bytes that came, not
 * the length announced.  REMO_OK, REMO_ETIMEDOUT (a partial frame stays
 * in rx), REMO_EPEERLOST at end of stream or on an error, REMO_EPROTO,
 * REMO_ENOMEM.
 */
REMO_API int remo_frame_recv(int fd, remo_frame_rx *rx, remo_buf *out,
                             int timeout_ms, size_t max);
REMO_API void remo_frame_rx_free(remo_frame_rx *rx);

/*
 * The budget of the whole process for frames being received: the bytes
 * of every connection's partly received big frame (a peer sends a
 * length, then the body slowly, or never), over all sessions and
 * transports that frame with these helpers (stream, exec) or count
 * their own with remo_frame_budget_take (tls).  A connection whose frame
 * would take the total past it fails its recv with REMO_ENOMEM (its
 * session ends, MemoryError), and the others go on.  Small frames (up
 * to REMO_FRAME_SMALL, 64 KiB, read ahead) are not counted.
 * remo_frame_set_budget: 0 puts the default back.
 * remo_frame_budget_used: the bytes held now.
 * remo_frame_budget_take: counts n more bytes, or REMO_ENOMEM (nothing
 * counted) if the total would pass the budget; remo_frame_budget_give
 * gives back what was taken, once the frame is whole or dropped.
 */
#define REMO_FRAME_DEFAULT_BUDGET (256u << 20)
#define REMO_FRAME_SMALL (64u << 10)
REMO_API void remo_frame_set_budget(size_t bytes);
REMO_API size_t remo_frame_budget_used(void);
REMO_API int remo_frame_budget_take(size_t n);
REMO_API void remo_frame_budget_give(size_t n);

/*
 * A framed descriptor: one connection over one stream descriptor, with
 * the four verbs a plugin's connection needs, written once (the stream
 * and exec transports both use it).  Keep one in the connection state
 * (the core zero-fills it) and touch it only through these functions.
 *
 * remo_frame_fd_init: f takes ownership of fd; max is the plugin's
 * message limit (remo_frame_send and _recv's max).  A send that makes
 * no progress for REMO_FRAME_SEND_TIMEOUT_MS (a peer that stopped
 * reading) fails with REMO_EPEERLOST, which ends the session;
 * remo_frame_fd_set_send_timeout changes it (0: wait for ever).
 * remo_frame_fd_send / _recv: remo_frame_send / _recv on the descriptor;
 * REMO_ECLOSED once remo_frame_fd_close was called (from any thread),
 * instead of the REMO_EPEERLOST the shut-down descriptor gives.
 * remo_frame_fd_close: non-blocking, any thread, any number of times:
 * marks f closed and shuts the descriptor down, which wakes a recv
 * waiting on it at once and tells the peer (EOF).
 * remo_frame_fd_fini: closes the descriptor (if init gave one) and frees
 * what recv kept.  Safe on a zero-filled f.
 */
typedef struct remo_frame_fd {
	int fd;
	int open;   /* init was called: fd is ours (fd 0 is a valid one) */
	int closed; /* atomic: remo_frame_fd_close was called */
	size_t max;      /* what send and recv take: the plugin's limit  */
	size_t recv_max; /* what recv takes now (remo_frame_fd_set_limit) */
	remo_frame_rx rx;
} remo_frame_fd;
#define REMO_FRAME_SEND_TIMEOUT_MS 30000
REMO_API void remo_frame_fd_init(remo_frame_fd *f, int fd, size_t max);
REMO_API void remo_frame_fd_set_send_timeout(remo_frame_fd *f, int ms);
/* remo_frame_fd_set_limit: the largest message recv takes from now on
 * (at most the max init was given). */
REMO_API void remo_frame_fd_set_limit(remo_frame_fd *f, size_t n);
REMO_API int remo_frame_fd_send(remo_frame_fd *f, const void *msg, size_t n);
REMO_API int remo_frame_fd_sendv(remo_frame_fd *f, const remo_iov *iov,
                                 int n);
REMO_API int remo_frame_fd_recv(remo_frame_fd *f, remo_buf *out,
                                int timeout_ms);
REMO_API void remo_frame_fd_close(remo_frame_fd *f);
REMO_API void remo_frame_fd_fini(remo_frame_fd *f);

/*
 * remo_transport_register: makes a transport compiled into the program
 * available for its schemes (checked as a module would be).  Registered
 * transports are found before modules.  REMO_EINVAL (bad table: the
 * reason is in remo_last_error()), REMO_EEXIST (a scheme is taken),
 * REMO_ELIMIT (32 transports already).
 */
REMO_API int remo_transport_register(const remo_transport_ops *ops);

/*
 * remo_transport_find: the transport for url's scheme: registered, or
 * loaded from a module.  Modules are searched in the directories of
 * $REMO_TRANSPORT_PATH (colon-separated), then the install directory.
 * NULL on failure, with *status REMO_ENOTFOUND (no module for the
 * scheme), REMO_EINVAL (a URL without a scheme, or a module that is not
 * a valid transport), REMO_EEXIST (the module claims a scheme another
 * transport has) or REMO_ELIMIT (32 transports already); the error value
 * in remo_last_error() says which file and why.
 */
REMO_API const remo_transport_ops *remo_transport_find(const char *url,
                                                       int *status);

#ifdef __cplusplus
}
#endif
#endif /* REMO_TRANSPORT_H */
