/*
 * net/net.h -- the top layer: sessions over transports, as a client
 * (connect.c: remo_connect) and as a server (server.c: remo_server).
 */
#ifndef REMO_NET_H
#define REMO_NET_H

#include "traceback/traceback.h"

/* remo__conn_session_opts: opts (may be NULL) with the defaults of a
 * session over a transport: a lease, the spin, the transport's limit. */
remo_session_opts remo__conn_session_opts(const struct remo__conn *c,
                                          const remo_session_opts *opts);

#endif /* REMO_NET_H */
