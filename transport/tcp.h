/*
 * tcp.h -- TCP sockets for the transport plugins that run over them
 * (stream's tcp://, tls://): addresses, a connect with a timeout, a
 * listening socket.  Compiled into each such plugin (transport/tcp.c),
 * not into libremo: the core never sees a socket, and a plugin's
 * private helpers stay hidden in its own module.
 */
#ifndef REMO_TRANSPORT_TCP_H
#define REMO_TRANSPORT_TCP_H

#include <remo/transport.h>

#include <netdb.h>
#include <stdatomic.h>
#include <sys/socket.h>

/* The backlog of a listening socket: bursts of several hundred clients
 * connecting at once lost some at 128. */
#define REMO__TCP_BACKLOG 1024

/* remo__tcp_addr: resolves "HOST:PORT" ([v6] allowed; HOST empty: any,
 * when passive) that url names (for messages); *res for freeaddrinfo.
 * REMO_EINVAL, raised as ValueError. */
int remo__tcp_addr(const char *hostport, const char *url, int passive,
                   struct addrinfo **res);
/* remo__tcp_connect_one: a connect to sa waited for with poll (a
 * timeout), the socket left blocking.  REMO_EPEERLOST (refused,
 * unreachable), REMO_ETIMEDOUT, REMO_EINVAL, REMO_ENOMEM. */
int remo__tcp_connect_one(int family, const struct sockaddr *sa,
                          socklen_t len, int timeout_ms, int *out);
/* remo__tcp_connect: the first address of hostport that answers, with
 * TCP_NODELAY; raises ConnectionError or TimeoutError on failure. */
int remo__tcp_connect(const char *hostport, const char *url, int timeout_ms,
                      int *out);
/* remo__tcp_listen: a listening socket on hostport; bound (if not NULL)
 * gets SCHEME://HOST:PORT as bound (the port chosen for 0).  REMO_EEXIST
 * (address in use), REMO_EINVAL, raised as ConnectionError. */
int remo__tcp_listen(const char *hostport, const char *url,
                     const char *scheme, char *bound, size_t boundlen,
                     int *out);
/* remo__sock_accept: waits up to timeout_ms for a connection on the
 * listening socket lfd and takes it (close-on-exec) into *out.
 * REMO_ECLOSED once *closed is set (close_listener shuts lfd down to
 * wake the poll), REMO_ETIMEDOUT (also out of descriptors: try later). */
int remo__sock_accept(int lfd, atomic_bool *closed, int timeout_ms,
                      int *out);
/* remo__sock_peer: the peer of socket fd as remo_caller shows it:
 * "unix uid=U gid=G pid=P" (SO_PEERCRED: the kernel's word, not the
 * peer's) or "PREFIX HOST:PORT".  REMO_OK, REMO_ENOTFOUND. */
int remo__sock_peer(int fd, const char *prefix, char *buf, size_t len);
/* remo__tcp_nodelay: Nagle off (it holds back every small request for a
 * delayed ACK). */
void remo__tcp_nodelay(int fd);

#endif /* REMO_TRANSPORT_TCP_H */
