/*
 * nanomsg.h -- the nanomsg transport's private header: its limits, the
 * state structs of a session's socket and of a listener, and what its
 * two files share (nanomsg.c: helpers, connecting, sending and
 * receiving, the entry; listen.c: the rendezvous and handing sessions
 * out).  nanomsg.c's opening comment has the design.
 */
#ifndef REMO_TRANSPORT_NANOMSG_H
#define REMO_TRANSPORT_NANOMSG_H

#include "config.h"

#include <remo/transport.h>

#include <nanomsg/nn.h>
#include <nanomsg/pair.h>
#include <nanomsg/reqrep.h>
#include <nanomsg/tcp.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define NANOMSG_MAX_MESSAGE (16u << 20)
#define NANOMSG_MAX_SOCKETS 500
#define NANOMSG_MAX_PENDING 16       /* sessions waiting for a token   */
#define NANOMSG_TOKEN_WAIT_MS 5000   /* how long one may wait          */
#define NANOMSG_PORT_RANGE 1000      /* tcp: session ports after P     */
#define NANOMSG_SLICE_MS 50          /* between looks at the peer      */
#define NANOMSG_CONNECT_TIMEOUT_MS 10000 /* when the caller gives -1   */
#define NANOMSG_NO_RECONNECT_MS 86400000 /* a day: in effect, never    */
#define NANOMSG_RV_RETRY_MS 10       /* rendezvous reconnects, doubling */
#define NANOMSG_RV_RETRY_MAX_MS 200  /* up to this                      */

#define NANO_MAGIC "RMN1"
#define NANO_MAGIC_LEN 4
#define NANO_TOKEN_LEN 16
#define NANO_EP_MAX 255
#define NANO_REPLY_MAX (NANO_MAGIC_LEN + 1 + NANO_TOKEN_LEN + NANO_EP_MAX)
#define NANO_STATUS_OK 0
#define NANO_STATUS_BUSY 1
#define NANO_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)
/* "/" and 32 hex digits after a session directory's path */
#define NANO_DIR_MAX (NANO_PATH_MAX - 1 - 2 * 16 - 1)

enum nano_kind { NANO_IPC, NANO_TCP, NANO_INPROC };

/* An ipc listener's 0700 directory, shared with the sessions bound in
 * it: the last one out removes it.  Plugin memory, freed by the plugin. */
struct nano_dir {
	atomic_int refs;
	char path[];
};

struct nano_conn {
	int sock;             /* the session's NN_PAIR socket            */
	int eid;              /* its one endpoint, bound or connected    */
	int rcvfd, sndfd;     /* nanomsg's readiness fds (its own)       */
	int wakefd;           /* eventfd: close writes it, waits poll it */
	bool live;            /* sock and wakefd are ours to close       */
	bool bound;           /* server side: count accepts, not connects */
	atomic_bool closed;
	struct nano_dir *dir; /* ipc server side, else NULL              */
	char file[NANO_PATH_MAX]; /* ipc server side: the socket file    */
};

/* A session handed out by the rendezvous, waiting for its token. */
struct nano_pending {
	struct nano_conn c;
	unsigned char token[NANO_TOKEN_LEN];
	int64_t deadline;     /* us, CLOCK_MONOTONIC: then it is dropped */
	bool used;
};

struct nano_listener {
	int rv;               /* the rendezvous NN_REP socket            */
	int rvfd;             /* its NN_RCVFD                            */
	int wakefd;           /* eventfd written by close_listener       */
	bool live;
	atomic_bool closed;
	enum nano_kind kind;
	struct nano_dir *dir; /* ipc                                     */
	char rvpath[NANO_PATH_MAX]; /* ipc: the rendezvous socket file   */
	char host[256];       /* tcp: the host part sessions bind to     */
	unsigned port_lo, port_hi, port_next; /* tcp: the session range  */
	struct nano_pending pending[NANOMSG_MAX_PENDING];
};

/* Sockets this plugin holds, process-wide (nanomsg's cap is global). */
extern atomic_int remo__nano_nsockets;

/* ---- shared between nanomsg.c and listen.c ---- */

/* nanomsg.c: time, randomness, addresses (each described there) */
int64_t remo__nano_now_us(void);
int64_t remo__nano_deadline(int timeout_ms);
int remo__nano_wait_ms(int64_t deadline_us, int max_ms);
bool remo__nano_random(void *buf, size_t n);
bool remo__nano_random_name(char out[2 * 16 + 1]);
bool remo__nano_token_equal(const unsigned char *a, const unsigned char *b);
bool remo__nano_parse_scheme(const char *url, enum nano_kind *kind,
                             const char **nnaddr);
bool remo__nano_split_tcp(const char *nnaddr, char *host, size_t hostlen,
                          unsigned *port);
bool remo__nano_peer_gone(const struct nano_conn *c);

/* nanomsg.c: sockets, counted against NANOMSG_MAX_SOCKETS */
int remo__nano_socket(int protocol, int *rc);
void remo__nano_socket_close(int s);
void remo__nano_setopt(int s, int option, int value);
void remo__nano_tcp_opts(int s, const char *host);
int remo__nano_getfd(int s, int option);

/* nanomsg.c: an ipc listener's directory; a session's socket */
struct nano_dir *remo__nano_dir_ref(struct nano_dir *d);
void remo__nano_dir_unref(struct nano_dir *d);
struct nano_dir *remo__nano_dir_new(const char *rvpath);
int remo__nano_conn_open(struct nano_conn *c, const char *tcphost);
void remo__nano_conn_release(struct nano_conn *c);

/* listen.c: the four listener operations of the entry's table */
int remo__nano_listen(void *state, const char *url, char *bound,
                      size_t boundlen);
int remo__nano_accept(void *state, void *conn, int timeout_ms);
void remo__nano_close_listener(void *state);
void remo__nano_fini_listener(void *state);

#endif /* REMO_TRANSPORT_NANOMSG_H */
