/*
 * bench_serving.c -- what the serving core's new parts cost, each
 * against a baseline in the same run (bench.h has the method):
 *
 *   value.dict_get      remo_dict_get on a 1,000-key dict, against the
 *                       lock and unlock that it now includes (remo__lock
 *                       on a spare header): ratio = get_ns /
 *                       (get_ns - lock_ns), what the lock multiplies
 *                       an uncontended get by (1 would be free)
 *   value.dict_set      the same for remo_dict_set of an existing key
 *   value.list_get      the same for remo_list_get_new (and release)
 *   serving.deferred_reply
 *                       a call whose function defers and answers at once
 *                       (remo_defer, remo_deferred_reply) against a
 *                       direct call of the same function, over remo_pipe:
 *                       ratio = deferred_ns / direct_ns
 *   serving.parked      10,000 calls parked in a deferring function
 *                       (40 client sessions of 250 async calls each,
 *                       over remo_pipe, all in this process): the threads
 *                       before and after, and the memory per parked call
 *                       (RSS growth / calls: both sides, the caller's
 *                       future and the callee's handle and table entries);
 *                       ratio = threads_after / threads_before (1: no
 *                       thread per parked call)
 *
 *   serving.relay       a call of a function the end got from a middle
 *                       that got it from its home (three sessions over
 *                       remo_pipe, one process: the middle relays),
 *                       against a direct call of the same function:
 *                       ratio = relay_ns / direct_ns
 *
 * make bench runs it under taskset -c 0: every thread on one CPU.
 */
#include "bench.h"

#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "net/net.h"
#include "session/session.h"

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_serving: %s: %s (%s)\n", what, remo_strerror(rc),
	        remo_error_message(remo_last_error()));
	exit(1);
}

/* ==== the container lock =============================================== */

struct dict_ctx {
	remo_value d, l;
	remo_value keys[1000];
	struct remo__obj spare;
};

static void op_dict_get(void *ctx, uint64_t iters)
{
	struct dict_ctx *c = ctx;
	remo_value v;
	for (uint64_t i = 0; i < iters; i++) {
		if (remo_dict_get(c->d, c->keys[i % 1000], &v) != REMO_OK)
			die("dict_get", REMO_ENOTFOUND);
		bench_sink += (uint64_t)v.as.i;
	}
}

static void op_dict_set(void *ctx, uint64_t iters)
{
	struct dict_ctx *c = ctx;
	for (uint64_t i = 0; i < iters; i++) {
		int rc = remo_dict_set(c->d, remo_value_retain(c->keys[i % 1000]),
		                       remo_int((int64_t)i));
		if (rc != REMO_OK)
			die("dict_set", rc);
	}
}

static void op_list_get(void *ctx, uint64_t iters)
{
	struct dict_ctx *c = ctx;
	remo_value v;
	for (uint64_t i = 0; i < iters; i++) {
		if (remo_list_get_new(c->l, i % 1000, &v) != REMO_OK)
			die("list_get_new", REMO_ERANGE);
		bench_sink += (uint64_t)v.as.i;
		remo_value_release(v);
	}
}

static void op_lock(void *ctx, uint64_t iters)
{
	struct dict_ctx *c = ctx;
	for (uint64_t i = 0; i < iters; i++) {
		remo__lock(&c->spare);
		bench_sink += i;
		remo__unlock(&c->spare);
	}
}

static void bench_lock_line(const char *name, bench_fn *op,
                            struct dict_ctx *c)
{
	struct bench_ab r = bench_ab(op, c, op_lock, c);
	double without = r.a_ns - r.b_ns;
	bench_print(name, without > 0 ? r.a_ns / without : 0,
	            "op_ns=%.1f lock_ns=%.1f", r.a_ns, r.b_ns);
}

static void bench_containers(void)
{
	static struct dict_ctx c;
	c.d = remo_dict();
	c.l = remo_list();
	atomic_init(&c.spare.lock, 0);
	for (int i = 0; i < 1000; i++) {
		char k[32];
		snprintf(k, sizeof k, "key-%d", i);
		c.keys[i] = remo_str(k);
		remo_dict_set(c.d, remo_value_retain(c.keys[i]), remo_int(i));
		remo_list_append(c.l, remo_int(i));
	}
	bench_lock_line("value.dict_get", op_dict_get, &c);
	bench_lock_line("value.dict_set", op_dict_set, &c);
	bench_lock_line("value.list_get", op_list_get, &c);
	for (int i = 0; i < 1000; i++)
		remo_value_release(c.keys[i]);
	remo_value_release(c.d);
	remo_value_release(c.l);
}

/* ==== deferred replies ================================================= */

static int64_t fn_direct(void) { return 1; }

static int64_t fn_deferred(void)
{
	remo_deferred *d = remo_defer(NULL, NULL);
	remo_value one = remo_int(1);
	if (d == NULL || remo_deferred_reply(d, one) != REMO_OK)
		die("deferred reply", REMO_EINVAL);
	return 0; /* ignored */
}

static pthread_mutex_t park_lock = PTHREAD_MUTEX_INITIALIZER;
static remo_deferred **parked;
static size_t nparked, capparked;

static int64_t fn_park(void)
{
	remo_deferred *d = remo_defer(NULL, NULL);
	pthread_mutex_lock(&park_lock);
	if (d != NULL && nparked < capparked)
		parked[nparked++] = d;
	pthread_mutex_unlock(&park_lock);
	return 0;
}

struct pair {
	remo_session *client, *server;
	pthread_t th;
};

static void *serve_main(void *arg)
{
	remo_session_serve(arg, -1);
	return NULL;
}

static void export_fn(remo_exports *e, const char *name, const char *sig,
                      void (*fn)(void))
{
	remo_value f = remo_function(name, sig, fn, NULL);
	int rc = remo_export(e, name, f);
	if (rc != REMO_OK)
		die("export", rc);
	remo_value_release(f);
}

static void pair_open(struct pair *p, remo_exports *ex)
{
	remo_channel a, b;
	int rc = remo_pipe(&a, &b);
	if (rc != REMO_OK)
		die("remo_pipe", rc);
	p->server = remo_session_new(&b, ex, NULL, &rc);
	if (p->server == NULL)
		die("server session", rc);
	p->client = remo_session_new(&a, NULL, NULL, &rc);
	if (p->client == NULL)
		die("client session", rc);
	pthread_create(&p->th, NULL, serve_main, p->server);
}

static void pair_close(struct pair *p)
{
	remo_session_close(p->server);
	pthread_join(p->th, NULL);
	remo_session_free(p->client);
	remo_session_free(p->server);
}

static remo_value lookup(remo_session *s, const char *name)
{
	remo_value v;
	int rc = remo_lookup(s, name, &v);
	if (rc != REMO_OK)
		die(name, rc);
	return v;
}

static void op_call(void *ctx, uint64_t iters)
{
	remo_value fn = *(remo_value *)ctx, out;
	for (uint64_t i = 0; i < iters; i++) {
		int rc = remo_call(fn, remo_nil(), &out);
		if (rc != REMO_OK || out.as.i != 1)
			die("call", rc);
	}
}

static void bench_deferred(remo_exports *ex)
{
	struct pair p;
	pair_open(&p, ex);
	remo_value direct = lookup(p.client, "direct");
	remo_value deferred = lookup(p.client, "deferred");
	struct bench_ab r = bench_ab(op_call, &deferred, op_call, &direct);
	bench_print("serving.deferred_reply", r.a_ns / r.b_ns,
	            "deferred_ns=%.0f direct_ns=%.0f", r.a_ns, r.b_ns);
	remo_value_release(direct);
	remo_value_release(deferred);
	pair_close(&p);
}

static long status_field(const char *key)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;
	size_t n = strlen(key);
	while (f != NULL && fgets(line, sizeof line, f) != NULL)
		if (strncmp(line, key, n) == 0) {
			v = strtol(line + n, NULL, 10);
			break;
		}
	if (f != NULL)
		fclose(f);
	return v;
}

#define PARK_SESSIONS 40
#define PARK_PER 250
static void bench_parked(remo_exports *ex)
{
	static struct pair p[PARK_SESSIONS];
	static remo_future *f[PARK_SESSIONS][PARK_PER];
	remo_value fn[PARK_SESSIONS];
	capparked = PARK_SESSIONS * PARK_PER;
	parked = calloc(capparked, sizeof *parked);
	for (int i = 0; i < PARK_SESSIONS; i++) {
		pair_open(&p[i], ex);
		fn[i] = lookup(p[i].client, "park");
	}
	usleep(100000); /* the sessions settle: helpers end, buffers made */
	long threads0 = status_field("Threads:"), rss0 = status_field("VmRSS:");
	for (int i = 0; i < PARK_SESSIONS; i++)
		for (int k = 0; k < PARK_PER; k++) {
			int rc = remo_call_async(fn[i], remo_nil(), NULL, &f[i][k]);
			if (rc != REMO_OK)
				die("call_async", rc);
		}
	for (int tries = 0; tries < 1000; tries++) {
		pthread_mutex_lock(&park_lock);
		size_t n = nparked;
		pthread_mutex_unlock(&park_lock);
		if (n == capparked)
			break;
		usleep(10000);
	}
	long threads1 = status_field("Threads:"), rss1 = status_field("VmRSS:");
	if (nparked != capparked)
		die("not every call parked", REMO_ETIMEDOUT);
	remo_value one = remo_int(1);
	for (size_t i = 0; i < nparked; i++)
		if (remo_deferred_reply(parked[i], one) != REMO_OK)
			die("answering a parked call", REMO_EINVAL);
	for (int i = 0; i < PARK_SESSIONS; i++) {
		for (int k = 0; k < PARK_PER; k++) {
			if (remo_future_wait(f[i][k], 10000, NULL) != REMO_OK)
				die("a parked call's answer", REMO_ETIMEDOUT);
			remo_future_free(f[i][k]);
		}
		remo_value_release(fn[i]);
		pair_close(&p[i]);
	}
	bench_print("serving.parked", (double)threads1 / (double)threads0,
	            "calls=%d threads_before=%ld threads_after=%ld "
	            "bytes_per_call=%.0f", PARK_SESSIONS * PARK_PER, threads0,
	            threads1, (double)(rss1 - rss0) * 1024.0 /
	                      (PARK_SESSIONS * PARK_PER));
	free(parked);
}

static void bench_relay(remo_exports *ex)
{
	struct pair home_mid, mid_end, direct;
	pair_open(&home_mid, ex);
	remo_value fwd = lookup(home_mid.client, "direct");
	remo_exports *mid = remo_exports_new();
	int rc = remo_export(mid, "direct", fwd);
	if (rc != REMO_OK)
		die("export a proxy", rc);
	pair_open(&mid_end, mid);
	pair_open(&direct, ex);
	remo_value relayed = lookup(mid_end.client, "direct");
	remo_value plain = lookup(direct.client, "direct");
	struct bench_ab r = bench_ab(op_call, &relayed, op_call, &plain);
	bench_print("serving.relay", r.a_ns / r.b_ns,
	            "relay_ns=%.0f direct_ns=%.0f hops=2", r.a_ns, r.b_ns);
	remo_value_release(relayed);
	remo_value_release(plain);
	pair_close(&direct);
	pair_close(&mid_end);
	remo_value_release(fwd);
	pair_close(&home_mid);
	remo_exports_free(mid);
}

int main(void)
{
	bench_containers();
	remo_exports *ex = remo_exports_new();
	export_fn(ex, "direct", "q()", (void (*)(void))fn_direct);
	export_fn(ex, "deferred", "q()", (void (*)(void))fn_deferred);
	export_fn(ex, "park", "q()", (void (*)(void))fn_park);
	bench_deferred(ex);
	bench_relay(ex);
	bench_parked(ex);
	remo_exports_free(ex);
	return 0;
}
