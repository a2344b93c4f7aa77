/*
 * connect.c -- remo_connect: a session over a transport's connection,
 * with the defaults a session over a network wants (a lease, the spin,
 * the transport's message limit).  The server side of the same is
 * server.c; the channel under both is channel/loader.c.
 */
#include "net/net.h"

remo_session_opts remo__conn_session_opts(const struct remo__conn *c,
                                          const remo_session_opts *opts)
{
	remo_session_opts o = opts ? *opts : (remo_session_opts){0};
	if (o.lease_ms == 0)
		o.lease_ms = REMO_DEFAULT_LEASE_MS;
	if (o.spin_us == 0)
		o.spin_us = remo__spin_us();
	if (o.max_concurrent == 0)
		o.max_concurrent = REMO_DEFAULT_MAX_CONCURRENT;
	/* the transport's own limit bounds what the session may send */
	size_t max = remo__conn_max_message(c);
	if (max != 0 && (o.max_message == 0 || o.max_message > max))
		o.max_message = max;
	return o;
}

int remo_connect(const char *url, int timeout_ms, remo_exports *exports,
                 const remo_session_opts *opts, remo_session **out)
{
	remo_channel ch;
	*out = NULL;
	int rc = remo_channel_connect(url, timeout_ms, &ch);
	if (rc != REMO_OK)
		return rc;
	remo_session_opts o = remo__conn_session_opts(ch.user, opts);
	*out = remo_session_new(&ch, exports, &o, &rc);
	if (*out == NULL)
		remo__fail(rc, url); /* the peer went before our hello did */
	return rc;
}
