/*
 * chain.h -- a chain of remote calls that depend on each other, for the
 * pipelining lines of bench_session (over remo_pipe) and bench_transport
 * (over unix://, with bench_peer as the server).
 *
 * The server side: a Node type whose next() returns the node below (made
 * on first use and owned by the one above, so a walk allocates nothing
 * after the first) and whose depth() counts from the root's 0, and an
 * export "root".  The client side: CHAIN_LEN calls down from root,
 * next() CHAIN_LEN - 1 times and then depth(), each on the result of the
 * one before, in two ways:
 *
 *   op_chain_pipelined   every call started with remo_call_method_async
 *                        on the promise of the one before; only the last
 *                        is waited for: the peer resolves the chain, one
 *                        round trip
 *   op_chain_sequential  CHAIN_LEN plain remo_call_method_with calls,
 *                        each waiting: CHAIN_LEN round trips
 *
 * Both check that depth() is CHAIN_LEN - 1 and wait at most
 * chain->opts.timeout_ms for any reply; a failure exits non-zero.
 */
#ifndef REMO_BENCH_CHAIN_H
#define REMO_BENCH_CHAIN_H

#include <stdio.h>
#include <stdlib.h>

#include <remo/remo.h>

#include "bench.h"

#define CHAIN_LEN 10

/* ==== the server's side =================================================== */

struct chain_node {
	int64_t depth;
	struct chain_node *child;
};

static inline struct chain_node *chain_node_new(int64_t depth)
{
	struct chain_node *n = calloc(1, sizeof *n);
	if (n == NULL) {
		fprintf(stderr, "bench: out of memory\n");
		exit(1);
	}
	n->depth = depth;
	return n;
}

static inline struct chain_node *chain_node_next(struct chain_node *n)
{
	if (n->child == NULL)
		n->child = chain_node_new(n->depth + 1);
	return n->child;
}

static inline int64_t chain_node_depth(struct chain_node *n)
{
	return n->depth;
}

/* The root's dtor: the whole chain below it. */
static inline void chain_node_free(void *p)
{
	for (struct chain_node *n = p, *c; n != NULL; n = c) {
		c = n->child;
		free(n);
	}
}

/* Registers the Node type (once per process) and exports a new root as
 * "root" in ex; the chain is freed when ex lets go of it. */
static inline void chain_export(remo_exports *ex)
{
	int st;
	remo_type *t = remo_type_new("Node", NULL, "a chain of nodes", &st);
	if (t == NULL ||
	    remo_type_method(t, "next", "<Node>()",
	                     (void (*)(void))chain_node_next, NULL) != REMO_OK ||
	    remo_type_method(t, "depth", "q()",
	                     (void (*)(void))chain_node_depth, NULL) != REMO_OK) {
		fprintf(stderr, "bench: cannot register the Node type\n");
		exit(1);
	}
	remo_value root = remo_object(t, chain_node_new(0), chain_node_free);
	if (!remo_ok(root) || remo_export(ex, "root", root) != REMO_OK) {
		fprintf(stderr, "bench: cannot export root\n");
		exit(1);
	}
	remo_value_release(root);
}

/* ==== the client's side =================================================== */

struct chain {
	remo_value root;       /* the proxy of the peer's "root" */
	remo_call_opts opts;   /* timeout_ms: the bound on every wait */
};

static inline void chain_fail(const char *what, int rc)
{
	const char *m = remo_error_message(remo_last_error());
	fprintf(stderr, "bench: %s: %s (%s)\n", what, remo_strerror(rc),
	        m != NULL ? m : "?");
	exit(1);
}

static inline void chain_check(remo_value v)
{
	if (v.kind != REMO_INT || v.as.i != CHAIN_LEN - 1) {
		fprintf(stderr, "bench: the chain's depth() is not %d\n",
		        CHAIN_LEN - 1);
		exit(1);
	}
}

/* The name of the chain's call i. */
static inline const char *chain_method(int i)
{
	return i < CHAIN_LEN - 1 ? "next" : "depth";
}

static inline void op_chain_pipelined(void *ctx, uint64_t iters)
{
	struct chain *c = ctx;
	for (uint64_t it = 0; it < iters; it++) {
		remo_future *f[CHAIN_LEN];
		remo_value target = remo_value_retain(c->root), out;
		int rc;
		for (int i = 0; i < CHAIN_LEN; i++) {
			rc = remo_call_method_async(target, chain_method(i),
			                            remo_nil(), NULL, &f[i]);
			if (rc != REMO_OK)
				chain_fail("a pipelined call", rc);
			remo_value_release(target);
			target = i < CHAIN_LEN - 1 ? remo_future_promise(f[i])
			                           : remo_nil();
		}
		rc = remo_future_wait(f[CHAIN_LEN - 1], c->opts.timeout_ms, &out);
		if (rc != REMO_OK)
			chain_fail("the pipelined chain", rc);
		chain_check(out);
		for (int i = 0; i < CHAIN_LEN; i++)
			remo_future_free(f[i]);
	}
	bench_sink += iters;
}

static inline void op_chain_sequential(void *ctx, uint64_t iters)
{
	struct chain *c = ctx;
	for (uint64_t it = 0; it < iters; it++) {
		remo_value target = remo_value_retain(c->root), out;
		for (int i = 0; i < CHAIN_LEN; i++) {
			int rc = remo_call_method_with(target, chain_method(i),
			                               remo_nil(), &c->opts, &out);
			if (rc != REMO_OK)
				chain_fail("a sequential call", rc);
			remo_value_release(target);
			target = out;
		}
		chain_check(target);
	}
	bench_sink += iters;
}

#endif /* REMO_BENCH_CHAIN_H */
