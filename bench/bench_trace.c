/*
 * bench_trace.c -- what the traceback core costs (src/trace*.c): the
 * capture every failure pays, naming (paid only when someone looks),
 * REMO_LOCAL, DWARF locals, and arming crash recovery.  bench.h has the
 * method (batches, medians, A/B interleaving) and the output format.
 *
 * Stacks are of a known depth: the work runs at the bottom of a chain of
 * noinline calls, the shallowest that gives a capture of at least FRAMES
 * program counters (the chain, bench.h's loop, main, libc's start-up;
 * frames= says how many it gave), and the batch loop runs there too, so
 * that the chain is not timed.
 *
 * Lines printed (median ns per operation; NOTE: ratio is reference_ns /
 * remo_ns, and each line says what its reference is, so above 1 is
 * better than the reference):
 *
 *   trace.capture        remo__trace_capture of FRAMES pcs; reference:
 *                        the design's target, 100 ns
 *   trace.capture_uc     remo__trace_capture_uc from a ucontext (what a
 *                        crash handler does: a cursor stepped frame by
 *                        frame); reference: trace.capture
 *   trace.name           remo__trace_name of the FRAMES pcs, warm (libdw
 *                        has every module open); cold_ns= is a process's
 *                        first naming and warmup_ns= what
 *                        remo__trace_warm takes in a fresh process (each
 *                        the median of CHILDREN forked processes);
 *                        reference: cold_ns
 *   trace.dwarf_locals   remo__trace_dwarf_locals of the same stack, all
 *                        frames' variables read; reference: trace.name
 *   trace.local          REMO_LOCAL of an int between a mark and a reset
 *                        (str_ns= the same for a char *, which copies);
 *                        reference: a plain non-inlined call
 *   trace.arm            sigsetjmp + remo__recover_arm + a call +
 *                        remo__recover_disarm, what recovery adds to every
 *                        call that has it on; reference: the call alone
 *   trace.crash          a call that writes to a read-only page with
 *                        recovery armed: SIGSEGV, capture in the handler,
 *                        siglongjmp back; reference: trace.arm
 *   trace.raise_call     a remote call (two sessions over remo_pipe, the
 *                        server serving in a thread of its own) whose
 *                        function raises, with the traceback captured
 *                        and sent by reference (snapshot, the default),
 *                        and released by the caller when its next error
 *                        replaces it; reference: the same call returning
 *                        normally (ok_ns=), so ratio is ok / raise and
 *                        extra_ns= is what a failure costs more; the
 *                        issue's target is extra_ns under 5000.
 *                        none_ns= is the raising call with tracebacks off
 *                        (REMO_TB_NONE): the error by name alone.
 */
#include "config.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include "trace/trace.h"

#include <remo/trace.h>

#include "bench.h"

#define FRAMES 10
#define CHILDREN 9
#define NOINLINE __attribute__((noinline))

static void die(const char *what)
{
	fprintf(stderr, "bench_trace: %s\n", what);
	exit(1);
}

/* ==== a stack of known depth ============================================== */

struct at_bottom {
	bench_fn *fn;     /* run at the bottom of the chain */
	void *ctx;
	uint64_t iters;
};

static int chain_depth; /* calls that make a capture FRAMES deep */

static NOINLINE void chain(int d, struct at_bottom *b)
{
	if (d == 0)
		b->fn(b->ctx, b->iters);
	else
		chain(d - 1, b);
	bench_sink++; /* work after the call: no tail call */
}

/* bench_fn that runs another at the bottom of the chain */
static void deep(void *ctx, uint64_t iters)
{
	struct at_bottom *b = ctx;
	b->iters = iters;
	chain(chain_depth, b);
}

struct pcs {
	uintptr_t pc[REMO__TRACE_MAX];
	int n;
};

static void op_capture(void *ctx, uint64_t iters)
{
	struct pcs *p = ctx;
	for (uint64_t i = 0; i < iters; i++)
		p->n = remo__trace_capture(p->pc, REMO__TRACE_MAX, 0);
	bench_sink += (uint64_t)p->n;
}

static void op_capture_uc(void *ctx, uint64_t iters)
{
	struct pcs *p = ctx;
	ucontext_t uc;
	if (getcontext(&uc) != 0)
		die("getcontext failed");
	for (uint64_t i = 0; i < iters; i++)
		p->n = remo__trace_capture_uc(&uc, p->pc, REMO__TRACE_MAX);
	bench_sink += (uint64_t)p->n;
}

static void op_dwarf_locals(void *ctx, uint64_t iters)
{
	for (uint64_t i = 0; i < iters; i++) {
		remo_value v;
		if (remo__trace_dwarf_locals(NULL, 0, &v) != REMO_OK)
			die("remo__trace_dwarf_locals failed");
		bench_sink += remo_list_len(v);
		remo_value_release(v);
	}
}

/* chain_depth: the depth at which a capture gives FRAMES pcs */
static void find_depth(void)
{
	struct pcs p;
	struct at_bottom b = {op_capture, &p, 1};
	for (chain_depth = 0; chain_depth < 64; chain_depth++) {
		bench_run_ns(deep, &b, 1); /* as the timing calls it */
		if (p.n >= FRAMES)
			return;
	}
	die("no depth gives the frames wanted");
}

/* ==== naming ============================================================== */

static void op_name(void *ctx, uint64_t iters)
{
	struct pcs *p = ctx;
	for (uint64_t i = 0; i < iters; i++) {
		struct remo__frame_info *f;
		size_t n;
		if (remo__trace_name(p->pc, p->n, false, &f, &n) != REMO_OK)
			die("remo__trace_name failed");
		bench_sink += n;
		remo__frame_info_free(f, n);
	}
}

/* The first naming in a fresh process (with warm first: the warm-up,
 * then the naming after it), in a forked child; ns through a pipe. */
static void cold_child(const struct pcs *p, bool warm, double out[2])
{
	int fds[2];
	if (pipe(fds) != 0)
		die("pipe failed");
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		die("fork failed");
	if (pid == 0) {
		double t[2];
		uint64_t t0 = bench_now_ns();
		if (warm)
			remo__trace_warm();
		uint64_t t1 = bench_now_ns();
		op_name((void *)p, 1);
		uint64_t t2 = bench_now_ns();
		t[0] = (double)(t1 - t0);
		t[1] = (double)(t2 - t1);
		_exit(write(fds[1], t, sizeof t) == sizeof t ? 0 : 1);
	}
	close(fds[1]);
	int status;
	if (read(fds[0], out, 2 * sizeof *out) != 2 * sizeof *out ||
	    waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		die("a cold naming child failed");
	close(fds[0]);
}

/* ==== REMO_LOCAL ========================================================== */

static NOINLINE void plain(int x)
{
	bench_sink += (uint64_t)x;
	__asm__ volatile("" ::: "memory");
}

static void op_plain(void *ctx, uint64_t iters)
{
	for (uint64_t i = 0; i < iters; i++)
		plain((int)i);
}

static void op_local_int(void *ctx, uint64_t iters)
{
	for (uint64_t i = 0; i < iters; i++) {
		size_t m = remo__locals_mark();
		int counter = (int)i;
		REMO_LOCAL(counter);
		remo__locals_reset(m);
	}
}

static void op_local_str(void *ctx, uint64_t iters)
{
	const char *label = "a label of some length";
	for (uint64_t i = 0; i < iters; i++) {
		size_t m = remo__locals_mark();
		REMO_LOCAL(label);
		remo__locals_reset(m);
	}
}

/* ==== recovery ============================================================ */

static volatile int *ro_page;

static NOINLINE void crash(int x)
{
	*ro_page = x;
}

/* armed_call: fn(x) with recovery armed; the pcs captured if it crashed,
 * else 0.  A function of its own, so that no loop variable lives across
 * the sigsetjmp. */
static NOINLINE int armed_call(void (*fn)(int), int x)
{
	struct remo__recover r;
	r.want_dlocals = false;
	if (sigsetjmp(r.jb, 1) == 0) {
		remo__recover_arm(&r);
		fn(x);
		remo__recover_disarm(&r);
		return 0;
	}
	return r.npcs;
}

static void op_arm(void *ctx, uint64_t iters)
{
	for (uint64_t i = 0; i < iters; i++)
		if (armed_call(plain, (int)i) != 0)
			die("a crash where none was due");
}

static void op_crash(void *ctx, uint64_t iters)
{
	for (uint64_t i = 0; i < iters; i++) {
		int n = armed_call(crash, (int)i);
		if (n == 0)
			die("no crash where one was due");
		bench_sink += (uint64_t)n;
	}
}

/* ==== main ================================================================ */

/* ==== a failing call between two sessions ============================== */

struct pair {
	remo_exports *exports;
	remo_session *server, *client;
	pthread_t thread;
	remo_value ok, fail;
};

static NOINLINE int64_t returns(int64_t x)
{
	return x + 1;
}

static NOINLINE int64_t raises(int64_t x)
{
	REMO_LOCAL(x);
	remo_raise("ValueError", "%lld is not welcome", (long long)x);
	return bench_sink; /* no tail call: the frame stays */
}

static void *pair_serve(void *arg)
{
	struct pair *p = arg;
	remo_session_serve(p->server, -1);
	return NULL;
}

static void pair_open(struct pair *p, int traceback)
{
	remo_channel a, b;
	int st;
	if (remo_pipe(&a, &b) != REMO_OK)
		die("remo_pipe failed");
	p->exports = remo_exports_new();
	remo_value f1 = remo_function("returns", "q(x:q)",
	                              (void (*)(void))returns, NULL);
	remo_value f2 = remo_function("raises", "q(x:q)",
	                              (void (*)(void))raises, NULL);
	remo_export(p->exports, "returns", f1);
	remo_export(p->exports, "raises", f2);
	remo_value_release(f1);
	remo_value_release(f2);
	remo_session_opts so = {.traceback = traceback};
	p->server = remo_session_new(&a, p->exports, &so, &st);
	p->client = remo_session_new(&b, NULL, NULL, &st);
	if (p->server == NULL || p->client == NULL)
		die("remo_session_new failed");
	pthread_create(&p->thread, NULL, pair_serve, p);
	if (remo_lookup(p->client, "returns", &p->ok) != REMO_OK ||
	    remo_lookup(p->client, "raises", &p->fail) != REMO_OK)
		die("lookup failed");
}

static void pair_close(struct pair *p)
{
	remo_value_release(p->ok);
	remo_value_release(p->fail);
	remo_session_close(p->client);
	pthread_join(p->thread, NULL);
	remo_session_free(p->client);
	remo_session_free(p->server);
	remo_exports_free(p->exports);
}

static void call_n(remo_value fn, uint64_t iters, int want)
{
	remo_value args = remo_tuple_of(1, remo_int(41));
	for (uint64_t i = 0; i < iters; i++) {
		remo_value out;
		if (remo_call(fn, args, &out) != want)
			die("the call did not do what it should");
		remo_value_release(out);
	}
	remo_value_release(args);
}

static void op_call_ok(void *ctx, uint64_t iters)
{
	call_n(((struct pair *)ctx)->ok, iters, REMO_OK);
}

static void op_call_raise(void *ctx, uint64_t iters)
{
	call_n(((struct pair *)ctx)->fail, iters, REMO_ERAISED);
}

int main(void)
{
	struct pcs p, q;
	struct at_bottom cap = {op_capture, &p, 0};
	struct at_bottom capuc = {op_capture_uc, &q, 0};
	struct at_bottom dl = {op_dwarf_locals, NULL, 0};
	struct bench_ab ab;

	find_depth();
	bench_run_ns(deep, &cap, 1);
	bench_run_ns(deep, &capuc, 1);
	printf("# cpu %d; a capture gives %d frames (chain depth %d), from a "
	       "ucontext %d\n", sched_getcpu(), p.n, chain_depth, q.n);
	fflush(stdout);

	ab = bench_ab(deep, &cap, deep, &capuc);
	bench_print("trace.capture", 100.0 / ab.a_ns,
	            "remo_ns=%.1f frames=%d target_ns=100", ab.a_ns, p.n);
	bench_print("trace.capture_uc", ab.a_ns / ab.b_ns,
	            "remo_ns=%.1f frames=%d capture_ns=%.1f", ab.b_ns, q.n,
	            ab.a_ns);

	/* naming: cold in fresh processes first, then warm here */
	double cold[CHILDREN], warmup[CHILDREN], after[CHILDREN], t[2];
	for (int i = 0; i < CHILDREN; i++) {
		cold_child(&p, false, t);
		cold[i] = t[1];
		cold_child(&p, true, t);
		warmup[i] = t[0];
		after[i] = t[1];
	}
	double cold_ns = bench_median(cold, CHILDREN);
	double warmup_ns = bench_median(warmup, CHILDREN);
	double after_ns = bench_median(after, CHILDREN);
	ab = bench_ab(op_name, &p, deep, &dl);
	bench_print("trace.name", cold_ns / ab.a_ns,
	            "remo_ns=%.1f frames=%d cold_ns=%.0f warmup_ns=%.0f "
	            "first_after_warmup_ns=%.0f", ab.a_ns, p.n, cold_ns,
	            warmup_ns, after_ns);
	bench_print("trace.dwarf_locals", ab.a_ns / ab.b_ns,
	            "remo_ns=%.1f frames=%d name_ns=%.1f", ab.b_ns, p.n, ab.a_ns);

	bench_fn *fn[3] = {op_local_int, op_local_str, op_plain};
	void *ctx[3] = {NULL, NULL, NULL};
	double ns[3];
	bench_abn(3, fn, ctx, ns);
	bench_print("trace.local", ns[2] / ns[0],
	            "remo_ns=%.1f str_ns=%.1f call_ns=%.1f", ns[0], ns[1], ns[2]);

	if (remo__recover_init() != REMO_OK)
		die("remo__recover_init failed");
	ro_page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1,
	               0);
	if (ro_page == MAP_FAILED)
		die("mmap failed");
	ab = bench_ab(op_arm, NULL, op_plain, NULL);
	bench_print("trace.arm", ab.b_ns / ab.a_ns,
	            "remo_ns=%.1f call_ns=%.1f", ab.a_ns, ab.b_ns);
	ab = bench_ab(op_crash, NULL, op_arm, NULL);
	bench_print("trace.crash", ab.b_ns / ab.a_ns,
	            "remo_ns=%.1f arm_ns=%.1f tainted=%d", ab.a_ns, ab.b_ns,
	            remo_tainted());

	struct pair snap, none;
	pair_open(&snap, REMO_TB_SNAPSHOT);
	pair_open(&none, REMO_TB_NONE);
	bench_fn *cf[3] = {op_call_raise, op_call_ok, op_call_raise};
	void *cc[3] = {&snap, &snap, &none};
	double cn[3];
	bench_abn(3, cf, cc, cn);
	bench_print("trace.raise_call", cn[1] / cn[0],
	            "remo_ns=%.1f ok_ns=%.1f extra_ns=%.1f none_ns=%.1f "
	            "target_extra_ns=5000", cn[0], cn[1], cn[0] - cn[1], cn[2]);
	pair_close(&snap);
	pair_close(&none);
	return 0;
}
