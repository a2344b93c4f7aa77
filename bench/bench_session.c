/*
 * bench_session.c -- what a remote operation costs over the transport it
 * runs on: remo's session layer (src/session.c, src/ops.c) on one
 * remo_pipe, against a raw round trip of the same size over a second
 * remo_pipe, both in the same run.  bench.h has the method (batches,
 * medians, A/B interleaving) and the output format.
 *
 * The set-up, in one process:
 *
 *   main thread        client session, on a COUNTING channel that wraps
 *                      its pipe end and adds up messages and bytes in
 *                      each direction (so every line can say what
 *                      crossed); it also drives the raw baseline
 *   remo server thread remo_session_serve(server, -1) for the whole run;
 *                      the server exports noop "v()", take "N(s:s)"
 *                      (strlen) and numbers, a list of 1,000,000 ints
 *   echo thread        on the second pipe: recv(-1), send it back, again
 *   styles thread      the call styles' server (below), on a third pipe
 *
 * The baseline is the raw pipe's round trip: ch.send of n bytes, then
 * ch.recv(-1) for the echo.  A remo operation on a proxy is that same
 * round trip plus encoding, routing, decoding and serving, so remo_ns -
 * raw_ns (overhead_ns) is what the session layer adds.  n is the size of
 * remo's request for the same operation, measured with the counting
 * channel just before timing (request ids are MessagePack ints, so a
 * size can differ by a byte or two as the ids grow).
 *
 * Scheduling: `make bench` runs this under taskset -c 0, and the threads
 * inherit the mask, so all of them share one CPU and every round trip, remo
 * or raw, is two context switches through the pipe's condition
 * variables.  While remo is timed the echo thread sits blocked in its
 * recv, and while the raw pipe is timed the server thread sits blocked
 * in its recv: the pipes are separate, so neither side disturbs the
 * other.
 *
 * Lines printed (figures are median ns per operation; NOTE the ratio
 * here is remo_ns / raw_ns -- how many raw round trips one remo operation
 * costs, so 1 would be free and above 1 is the session layer's price --
 * the reverse of bench_codec's baseline / remo):
 *
 *   session.null_call          remo_call(noop, nil); req_bytes= and
 *                              reply_bytes= are the two messages
 *   session.call_1k            remo_call(take, ("x" * 1024,)), must be 1024
 *   session.list_len           remo_len(numbers), must be 1000000
 *   session.list_item          remo_getitem(numbers, 654321), must be 654321
 *   session.list_len_and_item  both, one after the other, against two raw
 *                              round trips of the two request sizes; with
 *                              the target: at most two round trips
 *                              and under target_bytes=200 in all, pass=
 *
 * round_trips= is the number of messages the client sent during one
 * operation, bytes= what crossed in both directions.
 *
 * Call styles (issue 6), remo against remo, on a second pipe and session
 * pair whose client has timeout_ms=STYLE_WAIT_MS, so that every wait of
 * these lines, the closure's call included, is bounded:
 *
 *   session.closure_vs_proxy   add(i, 1) through a C function pointer
 *                              (remo_closure_new on the proxy of add, "q(a:q
 *                              b:q)") against the same call through the
 *                              proxy API (the args tuple made, remo_call,
 *                              the result read and released: what the
 *                              closure does for its caller).  ratio =
 *                              closure_ns / proxy_ns, a COST: 1.05 is 5%
 *                              over the proxy call.
 *   session.chain10            a chain of 10 dependent calls on the server's
 *                              root Node (next() 9 times, each on the
 *                              result of the one before, then depth(),
 *                              which must be 9): pipelined (each started
 *                              with remo_call_method_async on the promise
 *                              of the one before, only the last waited
 *                              for) against 10 plain remo_call_method
 *                              calls.  ratio = pipelined_ns /
 *                              sequential_ns, a COST: below 1 pipelining
 *                              wins.  Over a pipe a round trip costs two
 *                              context switches, not a wire: the same
 *                              line over unix:// is in bench_transport.
 *
 * Every result is checked once before timing; any mismatch, and any
 * failed operation while timing, exits non-zero.
 */
#include "config.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <remo/remo.h>

#include "bench.h"
#include "chain.h"
#include "counting.h"

#define NUMBERS_LEN 1000000
#define ITEM_INDEX 654321
#define TAKE_LEN 1024
#define TARGET_ROUND_TRIPS 2
#define TARGET_BYTES 200
#define STYLE_WAIT_MS 10000

static void die(const char *what)
{
	fprintf(stderr, "bench_session: %s\n", what);
	exit(1);
}

/* A failed remo operation: what it was and the error remo recorded. */
static void die_remo(const char *what, int rc)
{
	char *err = remo_repr(remo_last_error());
	fprintf(stderr, "bench_session: %s: %s (%s)\n", what, remo_strerror(rc),
	        err ? err : "?");
	remo_free(err);
	exit(1);
}

/* ==== what the server exports =========================================== */

static void fn_noop(void)
{
}

static size_t fn_take(const char *s)
{
	return strlen(s);
}

static int64_t fn_add(int64_t a, int64_t b)
{
	return a + b;
}

/* ==== the counting channel: bench/counting.h ========================== */

/* What crossed the counting channel during some operations. */
struct traffic {
	uint64_t msgs_out, bytes_out;
	uint64_t msgs_in, bytes_in;
};

static struct traffic traffic_now(const struct counting *c)
{
	return (struct traffic){c->sent_msgs, c->sent_bytes, c->recv_msgs,
	                        c->recv_bytes};
}

static struct traffic traffic_since(const struct counting *c,
                                    struct traffic t0)
{
	struct traffic t = traffic_now(c);
	return (struct traffic){t.msgs_out - t0.msgs_out, t.bytes_out - t0.bytes_out,
	                        t.msgs_in - t0.msgs_in, t.bytes_in - t0.bytes_in};
}

/* ==== the two sides ===================================================== */

struct bench {
	/* remo */
	remo_exports *exports;
	remo_value numbers_local;      /* the server's list             */
	remo_session *server, *client;
	struct counting *counts;       /* the client's channel          */
	pthread_t server_thread;
	int server_cpu, server_rc;
	remo_value noop, take, numbers; /* the client's proxies         */
	remo_value take_args;           /* ("x" * 1024,)                */
	remo_value item_key;            /* 654321                       */

	/* raw */
	remo_channel raw, echo;        /* the second pipe's two ends    */
	pthread_t echo_thread;
	int echo_cpu;
	remo_buf raw_buf;              /* the echo lands here           */
	uint8_t *raw_msg;              /* what is sent; big enough      */
	size_t raw_cap;

	/* call styles: a second pair, its client's calls time out */
	remo_session *styles_server, *styles_client;
	pthread_t styles_thread;
	int styles_rc;
	remo_value add;                /* styles_client's proxy         */
	remo_closure *add_closure;
	int64_t (*add_fn)(int64_t, int64_t);
	struct chain chain;            /* root's proxy; STYLE_WAIT_MS   */
};

static void *server_main(void *arg)
{
	struct bench *b = arg;
	b->server_cpu = sched_getcpu();
	b->server_rc = remo_session_serve(b->server, -1);
	return NULL;
}

static void *styles_main(void *arg)
{
	struct bench *b = arg;
	b->styles_rc = remo_session_serve(b->styles_server, -1);
	return NULL;
}

/* The echo end: returns every message as it came, until the pipe ends. */
static void *echo_main(void *arg)
{
	struct bench *b = arg;
	remo_buf buf = {0};
	b->echo_cpu = sched_getcpu();
	for (;;) {
		buf.len = 0;
		if (b->echo.recv(b->echo.user, &buf, -1) != REMO_OK)
			break;
		if (b->echo.send(b->echo.user, buf.data, buf.len) != REMO_OK)
			break;
	}
	remo_buf_free(&buf);
	return NULL;
}

static void export_fn(remo_exports *e, const char *name, const char *sig,
                      void (*fn)(void))
{
	remo_value f = remo_function(name, sig, fn, NULL);
	if (!remo_ok(f) || remo_export(e, name, f) != REMO_OK)
		die("cannot export a function");
	remo_value_release(f);
}

static remo_value lookup(struct bench *b, const char *name)
{
	remo_value v;
	int rc = remo_lookup(b->client, name, &v);
	if (rc != REMO_OK)
		die_remo(name, rc);
	return v;
}

static void bench_open(struct bench *b)
{
	remo_channel a, c;
	int st;

	if ((b->exports = remo_exports_new()) == NULL)
		die("out of memory");
	export_fn(b->exports, "noop", "v()", (void (*)(void))fn_noop);
	export_fn(b->exports, "take", "N(s:s)", (void (*)(void))fn_take);
	b->numbers_local = remo_list();
	if (!remo_ok(b->numbers_local))
		die("out of memory");
	for (int i = 0; i < NUMBERS_LEN; i++)
		if (remo_list_append(b->numbers_local, remo_int(i)) != REMO_OK)
			die("out of memory");
	if (remo_export(b->exports, "numbers", b->numbers_local) != REMO_OK)
		die("cannot export numbers");
	export_fn(b->exports, "add", "q(a:q b:q)", (void (*)(void))fn_add);
	chain_export(b->exports);

	if (remo_pipe(&a, &c) != REMO_OK)
		die("remo_pipe failed");
	c = counting_wrap(c, &b->counts);
	if ((b->server = remo_session_new(&a, b->exports, NULL, &st)) == NULL)
		die_remo("server session", st);
	if ((b->client = remo_session_new(&c, NULL, NULL, &st)) == NULL)
		die_remo("client session", st);
	if (pthread_create(&b->server_thread, NULL, server_main, b) != 0)
		die("cannot start the server thread");

	b->noop = lookup(b, "noop");
	b->take = lookup(b, "take");
	b->numbers = lookup(b, "numbers");
	char x[TAKE_LEN];
	memset(x, 'x', sizeof x);
	b->take_args = remo_tuple_of(1, remo_strn(x, sizeof x));
	b->item_key = remo_int(ITEM_INDEX);
	if (!remo_ok(b->take_args))
		die("out of memory");

	if (remo_pipe(&b->raw, &b->echo) != REMO_OK)
		die("remo_pipe failed");
	if (pthread_create(&b->echo_thread, NULL, echo_main, b) != 0)
		die("cannot start the echo thread");

	/* the call styles' pair */
	remo_session_opts o = {0};
	o.timeout_ms = STYLE_WAIT_MS;
	b->chain.opts.timeout_ms = STYLE_WAIT_MS;
	if (remo_pipe(&a, &c) != REMO_OK)
		die("remo_pipe failed");
	b->styles_server = remo_session_new(&a, b->exports, NULL, &st);
	if (b->styles_server == NULL)
		die_remo("server session", st);
	if ((b->styles_client = remo_session_new(&c, NULL, &o, &st)) == NULL)
		die_remo("client session", st);
	if (pthread_create(&b->styles_thread, NULL, styles_main, b) != 0)
		die("cannot start the server thread");
	if ((st = remo_lookup(b->styles_client, "add", &b->add)) != REMO_OK)
		die_remo("add", st);
	st = remo_lookup(b->styles_client, "root", &b->chain.root);
	if (st != REMO_OK)
		die_remo("root", st);
	if ((b->add_closure = remo_closure_new(b->add, "q(a:q b:q)", &st)) ==
	    NULL)
		die_remo("remo_closure_new(add)", st);
	b->add_fn = (int64_t (*)(int64_t, int64_t))remo_closure_fn(
		b->add_closure);
}

static void bench_close(struct bench *b)
{
	/* The raw pipe: closing our end ends the echo thread's recv. */
	b->raw.close(b->raw.user);
	pthread_join(b->echo_thread, NULL);
	b->raw.destroy(b->raw.user);
	b->echo.destroy(b->echo.user);
	remo_buf_free(&b->raw_buf);
	free(b->raw_msg);

	/* The proxies first, so their releases go out with the goodbye;
	 * closing the client ends the server's serve with EPEERLOST. */
	remo_value_release(b->noop);
	remo_value_release(b->take);
	remo_value_release(b->numbers);
	remo_value_release(b->take_args);
	remo_session_close(b->client);
	pthread_join(b->server_thread, NULL);
	if (b->server_rc != REMO_EPEERLOST && b->server_rc != REMO_ECLOSED)
		die_remo("the server's serve ended", b->server_rc);
	remo_session_free(b->client);
	remo_session_free(b->server);

	remo_closure_free(b->add_closure);
	remo_value_release(b->add);
	remo_value_release(b->chain.root);
	remo_session_close(b->styles_client);
	pthread_join(b->styles_thread, NULL);
	if (b->styles_rc != REMO_EPEERLOST && b->styles_rc != REMO_ECLOSED)
		die_remo("the styles server's serve ended", b->styles_rc);
	remo_session_free(b->styles_client);
	remo_session_free(b->styles_server);
	remo_value_release(b->numbers_local);
	remo_exports_free(b->exports);
}

/* ==== the operations ===================================================== */

static void op_null_call(void *ctx, uint64_t iters)
{
	struct bench *b = ctx;
	remo_value out;
	for (uint64_t i = 0; i < iters; i++) {
		int rc = remo_call(b->noop, remo_nil(), &out);
		if (rc != REMO_OK)
			die_remo("noop()", rc);
		bench_sink += out.kind;
		remo_value_release(out);
	}
}

static void op_call_1k(void *ctx, uint64_t iters)
{
	struct bench *b = ctx;
	remo_value out;
	for (uint64_t i = 0; i < iters; i++) {
		int rc = remo_call(b->take, b->take_args, &out);
		if (rc != REMO_OK)
			die_remo("take(\"x\" * 1024)", rc);
		bench_sink += (uint64_t)out.as.i;
		remo_value_release(out);
	}
}

static void op_list_len(void *ctx, uint64_t iters)
{
	struct bench *b = ctx;
	size_t n;
	for (uint64_t i = 0; i < iters; i++) {
		int rc = remo_len(b->numbers, &n);
		if (rc != REMO_OK)
			die_remo("len(numbers)", rc);
		bench_sink += n;
	}
}

static void op_list_item(void *ctx, uint64_t iters)
{
	struct bench *b = ctx;
	remo_value out;
	for (uint64_t i = 0; i < iters; i++) {
		int rc = remo_getitem(b->numbers, b->item_key, &out);
		if (rc != REMO_OK)
			die_remo("numbers[654321]", rc);
		bench_sink += (uint64_t)out.as.i;
		remo_value_release(out);
	}
}

static void op_list_len_and_item(void *ctx, uint64_t iters)
{
	for (uint64_t i = 0; i < iters; i++) {
		op_list_len(ctx, 1);
		op_list_item(ctx, 1);
	}
}

/* ---- call styles ------------------------------------------------------ */

/* add(i, 1) through the closure's C function pointer. */
static void op_closure(void *ctx, uint64_t iters)
{
	struct bench *b = ctx;
	for (uint64_t i = 0; i < iters; i++) {
		int64_t r = b->add_fn((int64_t)i, 1);
		int rc = remo_closure_status();
		if (rc != REMO_OK)
			die_remo("add(i, 1) through the closure", rc);
		if (r != (int64_t)i + 1)
			die("add(i, 1) through the closure is not i + 1");
		bench_sink += (uint64_t)r;
	}
}

/* add(i, 1) through the proxy API: what the closure does for its C
 * caller (args in, call, result out), written by hand. */
static void op_proxy(void *ctx, uint64_t iters)
{
	struct bench *b = ctx;
	for (uint64_t i = 0; i < iters; i++) {
		remo_value args = remo_tuple_of(2, remo_int((int64_t)i),
		                                remo_int(1)), out;
		int rc = remo_call(b->add, args, &out);
		remo_value_release(args);
		if (rc != REMO_OK)
			die_remo("add(i, 1) through the proxy", rc);
		if (out.kind != REMO_INT || out.as.i != (int64_t)i + 1)
			die("add(i, 1) is not i + 1");
		bench_sink += (uint64_t)out.as.i;
		remo_value_release(out);
	}
}

/*
 * The baseline: round trips of these sizes, one after the other, per
 * operation (one size for the single operations, two for len and item).
 */
struct raw_op {
	struct bench *b;
	size_t n[2];
	int count;
};

static void raw_round_trip(struct bench *b, size_t n)
{
	b->raw_buf.len = 0;
	if (b->raw.send(b->raw.user, b->raw_msg, n) != REMO_OK ||
	    b->raw.recv(b->raw.user, &b->raw_buf, -1) != REMO_OK ||
	    b->raw_buf.len != n)
		die("the raw round trip failed");
	bench_sink += b->raw_buf.len;
}

static void op_raw(void *ctx, uint64_t iters)
{
	struct raw_op *r = ctx;
	for (uint64_t i = 0; i < iters; i++)
		for (int k = 0; k < r->count; k++)
			raw_round_trip(r->b, r->n[k]);
}

/* Makes the raw message at least n bytes (the same filler every time). */
static void raw_size(struct bench *b, size_t n)
{
	if (n <= b->raw_cap)
		return;
	free(b->raw_msg);
	if ((b->raw_msg = malloc(n)) == NULL)
		die("out of memory");
	memset(b->raw_msg, 0xa5, n);
	b->raw_cap = n;
}

/* ==== checking and counting ============================================== */

/* Each operation once, its result checked; exits non-zero on a mismatch. */
static void bench_check(struct bench *b)
{
	remo_value out;
	size_t n;
	int rc;

	if ((rc = remo_call(b->noop, remo_nil(), &out)) != REMO_OK)
		die_remo("noop()", rc);
	if (out.kind != REMO_NIL)
		die("noop() did not return nil");
	remo_value_release(out);

	if ((rc = remo_call(b->take, b->take_args, &out)) != REMO_OK)
		die_remo("take(\"x\" * 1024)", rc);
	if (out.kind != REMO_INT || out.as.i != TAKE_LEN)
		die("take(\"x\" * 1024) did not return 1024");
	remo_value_release(out);

	if ((rc = remo_len(b->numbers, &n)) != REMO_OK)
		die_remo("len(numbers)", rc);
	if (n != NUMBERS_LEN)
		die("len(numbers) is not 1000000");

	if ((rc = remo_getitem(b->numbers, b->item_key, &out)) != REMO_OK)
		die_remo("numbers[654321]", rc);
	if (out.kind != REMO_INT || out.as.i != ITEM_INDEX)
		die("numbers[654321] is not 654321");
	remo_value_release(out);

	raw_size(b, 64);
	raw_round_trip(b, 64);

	op_closure(b, 3);
	op_proxy(b, 3);
	op_chain_pipelined(&b->chain, 1);
	op_chain_sequential(&b->chain, 1);
}

/* What one run of fn(ctx, 1) sends and receives on the client's channel. */
static struct traffic measure(struct bench *b, bench_fn *fn, void *ctx)
{
	struct traffic t0 = traffic_now(b->counts);
	fn(ctx, 1);
	return traffic_since(b->counts, t0);
}

/* A single remo operation against a raw round trip of its request size:
 * times both, prints the line. */
static struct traffic bench_one(struct bench *b, const char *name,
                                bench_fn *fn)
{
	struct traffic t = measure(b, fn, b);
	if (t.msgs_out != 1 || t.msgs_in != 1)
		die("an operation was not one message each way");
	struct raw_op raw = {b, {t.bytes_out, 0}, 1};
	raw_size(b, t.bytes_out);

	struct bench_ab ab = bench_ab(fn, b, op_raw, &raw);
	bench_print(name, ab.a_ns / ab.b_ns,
	            "remo_ns=%.1f raw_ns=%.1f overhead_ns=%.1f "
	            "round_trips=%llu req_bytes=%llu reply_bytes=%llu bytes=%llu",
	            ab.a_ns, ab.b_ns, ab.a_ns - ab.b_ns,
	            (unsigned long long)t.msgs_out,
	            (unsigned long long)t.bytes_out,
	            (unsigned long long)t.bytes_in,
	            (unsigned long long)(t.bytes_out + t.bytes_in));
	return t;
}

/* ==== main ============================================================== */

int main(void)
{
	static struct bench b;
	cpu_set_t set;

	bench_open(&b);
	bench_check(&b);

	int ncpus = sched_getaffinity(0, sizeof set, &set) == 0
	            ? CPU_COUNT(&set) : -1;
	printf("# cpu %d (remo server thread %d, echo thread %d); %d cpu(s) "
	       "allowed: %s\n", sched_getcpu(), b.server_cpu, b.echo_cpu, ncpus,
	       ncpus == 1 ? "all the threads share it (taskset -c 0)"
	                  : "NOT pinned: run under taskset -c 0");
	fflush(stdout);

	bench_one(&b, "session.null_call", op_null_call);
	bench_one(&b, "session.call_1k", op_call_1k);
	struct traffic len = bench_one(&b, "session.list_len", op_list_len);
	struct traffic item = bench_one(&b, "session.list_item", op_list_item);

	/* Both together: the target for reading a remote list. */
	struct traffic both = measure(&b, op_list_len_and_item, &b);
	if (both.msgs_out != len.msgs_out + item.msgs_out)
		die("len and item together sent another number of messages");
	struct raw_op raw = {&b, {len.bytes_out, item.bytes_out}, 2};
	struct bench_ab ab = bench_ab(op_list_len_and_item, &b, op_raw, &raw);
	uint64_t bytes = both.bytes_out + both.bytes_in;
	bool pass = both.msgs_out <= TARGET_ROUND_TRIPS && bytes < TARGET_BYTES;
	bench_print("session.list_len_and_item", ab.a_ns / ab.b_ns,
	            "remo_ns=%.1f raw_ns=%.1f overhead_ns=%.1f "
	            "round_trips=%llu bytes=%llu target_round_trips=%d "
	            "target_bytes=%d pass=%s",
	            ab.a_ns, ab.b_ns, ab.a_ns - ab.b_ns,
	            (unsigned long long)both.msgs_out,
	            (unsigned long long)bytes, TARGET_ROUND_TRIPS, TARGET_BYTES,
	            pass ? "yes" : "no");

	/* Call styles. */
	ab = bench_ab(op_closure, &b, op_proxy, &b);
	bench_print("session.closure_vs_proxy", ab.a_ns / ab.b_ns,
	            "closure_ns=%.1f proxy_ns=%.1f overhead_ns=%.1f",
	            ab.a_ns, ab.b_ns, ab.a_ns - ab.b_ns);
	ab = bench_ab(op_chain_pipelined, &b.chain, op_chain_sequential,
	              &b.chain);
	bench_print("session.chain10", ab.a_ns / ab.b_ns,
	            "calls=%d pipelined_ns=%.1f sequential_ns=%.1f "
	            "pipelined_ns_per_call=%.1f sequential_ns_per_call=%.1f",
	            CHAIN_LEN, ab.a_ns, ab.b_ns, ab.a_ns / CHAIN_LEN,
	            ab.b_ns / CHAIN_LEN);

	bench_close(&b);
	return 0;
}
