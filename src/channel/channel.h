/*
 * channel/channel.h -- the channel layer: the two-function channel under
 * every session, as an in-process pipe (pipe.c), over a transport
 * plugin's connection (loader.c: finding, loading and checking plugins),
 * and the length framing that fd-based plugins share (frame.c).  Above
 * trace/ in the stack, though it uses nothing of it; below session/.
 * Nothing here knows what a value means: a channel moves bytes.
 */
#ifndef REMO_CHANNEL_H
#define REMO_CHANNEL_H

#include "trace/trace.h"

#include "remo/transport.h"

/* ---- connections (loader.c) ------------------------------------------- */

/* A connection in the core's memory: the plugin's state, allocated by
 * the core (the plugin only initialises it). */
struct remo__conn;
/* remo__conn_alloc: a zeroed connection for t; NULL without memory. */
struct remo__conn *remo__conn_alloc(const remo_transport_ops *t);
/* remo__conn_state: the plugin's part of c (borrowed). */
void *remo__conn_state(struct remo__conn *c);
/* remo__conn_fd: the plugin's descriptor to poll (its fd operation), or
 * -1 when it has none. */
int remo__conn_fd(struct remo__conn *c);
/* remo__conn_max_message: the plugin's own message limit; 0: none. */
size_t remo__conn_max_message(const struct remo__conn *c);
/* remo__conn_channel: the channel owns c from now on (destroy frees). */
void remo__conn_channel(struct remo__conn *c, remo_channel *out);

#endif /* REMO_CHANNEL_H */
