/*
 * tcp.c -- TCP sockets for the plugins that run over them (tcp.h says
 * why this is a file of the plugins and not of libremo).
 */
#include "config.h"

#include "tcp.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/un.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int remo__tcp_addr(const char *hostport, const char *url, int passive,
                   struct addrinfo **res)
{
	char host[256], port[16];
	const char *p = hostport, *colon;
	if (*p == '[') {
		const char *end = strchr(p, ']');
		if (end == NULL || end[1] != ':' ||
		    (size_t)(end - p - 1) >= sizeof host) {
			remo_raise("ValueError", "%s: not SCHEME://[HOST]:PORT", url);
			return REMO_EINVAL;
		}
		memcpy(host, p + 1, (size_t)(end - p - 1));
		host[end - p - 1] = '\0';
		colon = end + 1;
	} else {
		colon = strrchr(p, ':');
		if (colon == NULL || (size_t)(colon - p) >= sizeof host) {
			remo_raise("ValueError", "%s: not SCHEME://HOST:PORT", url);
			return REMO_EINVAL;
		}
		memcpy(host, p, (size_t)(colon - p));
		host[colon - p] = '\0';
	}
	if (strlen(colon + 1) == 0 || strlen(colon + 1) > 5 ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
	    atoi(colon + 1) > 65535) {
		remo_raise("ValueError", "%s: the port must be 0 to 65535", url);
		return REMO_EINVAL;
	}
	strcpy(port, colon + 1);
	struct addrinfo hints = {0};
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
	int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, res);
	if (gai != 0) {
		remo_raise("ValueError", "%s: %s", url, gai_strerror(gai));
		return REMO_EINVAL;
	}
	return REMO_OK;
}

void remo__tcp_nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int64_t tcp_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int remo__tcp_connect_one(int family, const struct sockaddr *sa,
                          socklen_t len, int timeout_ms, int *out)
{
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return REMO_ENOMEM;
	int rc = REMO_OK;
	int r = connect(fd, sa, len);
	/*
	 * A unix socket whose listener's backlog is full says EAGAIN: not
	 * connected, and not in progress either (polling it says writable
	 * at once, and the first send fails: a busy server looked like a
	 * dead one under a burst of 10,000 connects).  Try again, a little
	 * later each time, until the timeout.
	 */
	int64_t until = tcp_now_ms() + timeout_ms;
	int pause = 1;
	while (r != 0 && errno == EAGAIN && family == AF_UNIX) {
		if (tcp_now_ms() + pause > until) {
			close(fd);
			errno = ETIMEDOUT;
			return REMO_ETIMEDOUT;
		}
		usleep((useconds_t)pause * 1000);
		if (pause < 64)
			pause *= 2;
		r = connect(fd, sa, len);
	}
	if (r != 0) {
		if (errno != EINPROGRESS) {
			rc = errno == ECONNREFUSED || errno == ENOENT ||
			     errno == ENETUNREACH || errno == EHOSTUNREACH ||
			     errno == EAGAIN /* tcp: no local port free */
			             ? REMO_EPEERLOST : REMO_EINVAL;
		} else {
			struct pollfd p = {fd, POLLOUT, 0};
			int n = poll(&p, 1, timeout_ms);
			int err = 0;
			socklen_t el = sizeof err;
			if (n == 0)
				rc = REMO_ETIMEDOUT;
			else if (n < 0 ||
			         getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 ||
			         err != 0) {
				rc = REMO_EPEERLOST;
				if (err != 0)
					errno = err; /* the real reason, for the message */
			}
		}
	}
	if (rc != REMO_OK) {
		close(fd);
		return rc;
	}
	/* back to blocking: recv and send wait with poll themselves */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	*out = fd;
	return REMO_OK;
}

int remo__tcp_connect(const char *hostport, const char *url, int timeout_ms,
                      int *out)
{
	struct addrinfo *res;
	int fd = -1;
	int rc = remo__tcp_addr(hostport, url, 0, &res);
	if (rc != REMO_OK)
		return rc;
	rc = REMO_EPEERLOST;
	for (struct addrinfo *a = res; a != NULL; a = a->ai_next) {
		rc = remo__tcp_connect_one(a->ai_family, a->ai_addr, a->ai_addrlen,
		                           timeout_ms, &fd);
		if (rc == REMO_OK || rc == REMO_ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	if (rc != REMO_OK) {
		remo_raise(rc == REMO_ETIMEDOUT ? "TimeoutError" : "ConnectionError",
		           "cannot connect to %s: %s", url,
		           rc == REMO_ETIMEDOUT ? "timed out" : strerror(errno));
		return rc;
	}
	remo__tcp_nodelay(fd);
	*out = fd;
	return REMO_OK;
}

int remo__tcp_listen(const char *hostport, const char *url,
                     const char *scheme, char *bound, size_t boundlen,
                     int *out)
{
	struct addrinfo *res;
	int fd = -1;
	int rc = remo__tcp_addr(hostport, url, 1, &res);
	if (rc != REMO_OK)
		return rc;
	rc = REMO_EINVAL;
	for (struct addrinfo *a = res; a != NULL && rc != REMO_OK;
	     a = a->ai_next) {
		fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(fd, a->ai_addr, a->ai_addrlen) == 0) {
			rc = REMO_OK;
			break;
		}
		rc = errno == EADDRINUSE ? REMO_EEXIST : REMO_EINVAL;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (rc == REMO_OK && listen(fd, REMO__TCP_BACKLOG) != 0) {
		close(fd);
		rc = REMO_EINVAL;
	}
	if (rc != REMO_OK) {
		remo_raise("ConnectionError", "cannot listen on %s: %s", url,
		           rc == REMO_EEXIST ? "address in use" : "bind failed");
		return rc;
	}
	if (bound != NULL) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		char host[NI_MAXHOST], port[NI_MAXSERV];
		getsockname(fd, (struct sockaddr *)&ss, &sl);
		getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, port,
		            sizeof port, NI_NUMERICHOST | NI_NUMERICSERV);
		snprintf(bound, boundlen, ss.ss_family == AF_INET6 ? "%s://[%s]:%s"
		                                                 : "%s://%s:%s",
		         scheme, host, port);
	}
	*out = fd;
	return REMO_OK;
}

int remo__sock_peer(int fd, const char *prefix, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
		return REMO_ENOTFOUND;
	if (ss.ss_family == AF_UNIX) {
		struct ucred cr;
		socklen_t cl = sizeof cr;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0)
			return REMO_ENOTFOUND;
		snprintf(buf, len, "unix uid=%u gid=%u pid=%ld", (unsigned)cr.uid,
		         (unsigned)cr.gid, (long)cr.pid);
		return REMO_OK;
	}
	char host[NI_MAXHOST], port[NI_MAXSERV];
	if (getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, port,
	                sizeof port, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		return REMO_ENOTFOUND;
	snprintf(buf, len, ss.ss_family == AF_INET6 ? "%s [%s]:%s" : "%s %s:%s",
	         prefix, host, port);
	return REMO_OK;
}

int remo__sock_accept(int lfd, atomic_bool *closed, int timeout_ms,
                      int *out)
{
	for (;;) {
		if (atomic_load(closed))
			return REMO_ECLOSED;
		struct pollfd p = {lfd, POLLIN, 0};
		int n = poll(&p, 1, timeout_ms);
		if (atomic_load(closed))
			return REMO_ECLOSED;
		if (n == 0)
			return REMO_ETIMEDOUT;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return REMO_ECLOSED;
		}
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED)
				continue;
			/* out of descriptors and the like: try again later */
			return REMO_ETIMEDOUT;
		}
		*out = fd;
		return REMO_OK;
	}
}
