/*
 * counting.h -- a channel that counts what passes through another one:
 * the benchmarks report the messages and bytes a remo operation puts on
 * the wire beside its time.  Shared by bench_session and bench_transport.
 *
 * remo calls send from one thread at a time and recv from one thread at
 * a time, so each direction has one writer; the counters are read only
 * while the client is idle.
 */
#ifndef REMO_BENCH_COUNTING_H
#define REMO_BENCH_COUNTING_H

#include <stdio.h>
#include <stdlib.h>

#include <remo/remo.h>

struct counting {
	remo_channel inner;
	uint64_t sent_msgs, sent_bytes;
	uint64_t recv_msgs, recv_bytes;
};

static int counting_send(void *user, const void *msg, size_t n)
{
	struct counting *c = user;
	int rc = c->inner.send(c->inner.user, msg, n);
	if (rc == REMO_OK) {
		c->sent_msgs++;
		c->sent_bytes += n;
	}
	return rc;
}

static int counting_sendv(void *user, const remo_iov *iov, int n)
{
	struct counting *c = user;
	int rc = c->inner.sendv(c->inner.user, iov, n);
	if (rc == REMO_OK) {
		c->sent_msgs++;
		for (int i = 0; i < n; i++)
			c->sent_bytes += iov[i].n;
	}
	return rc;
}

static int counting_recv(void *user, remo_buf *msg, int timeout_ms)
{
	struct counting *c = user;
	size_t before = msg->len;
	int rc = c->inner.recv(c->inner.user, msg, timeout_ms);
	if (rc == REMO_OK) {
		c->recv_msgs++;
		c->recv_bytes += msg->len - before;
	}
	return rc;
}

static void counting_close(void *user)
{
	struct counting *c = user;
	if (c->inner.close != NULL)
		c->inner.close(c->inner.user);
}

static void counting_destroy(void *user)
{
	struct counting *c = user;
	if (c->inner.destroy != NULL)
		c->inner.destroy(c->inner.user);
	free(c);
}

/* A counting channel around inner (taken over: destroy forwards to it);
 * *counts gets the counters, which live until the channel is destroyed. */
static inline remo_channel counting_wrap(remo_channel inner,
                                         struct counting **counts)
{
	struct counting *c = calloc(1, sizeof *c);
	if (c == NULL) {
		fprintf(stderr, "bench: out of memory\n");
		exit(1);
	}
	c->inner = inner;
	*counts = c;
	return (remo_channel){counting_send, counting_recv, counting_close,
	                      counting_destroy, c, NULL, NULL,
	                      inner.sendv != NULL ? counting_sendv : NULL};
}

#endif /* REMO_BENCH_COUNTING_H */
