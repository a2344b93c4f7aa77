/*
 * bench.h -- what every benchmark in bench/ shares: a clock, batches
 * that size themselves, interleaved A/B sampling reduced to medians, and
 * the one output line.  bench_codec.c is the first user; the transport
 * round-trip benchmarks reuse the same helpers.
 *
 * Output, one line per measurement, for scripts and for the issue log:
 *
 *     bench NAME key=value ... ratio=X
 *
 * The figures are median nanoseconds per operation.  Which way ratio goes
 * is said in each program's header, following how its targets are
 * written: bench_codec's is baseline / remo (a speed-up: above 1 remo
 * wins), bench_session's is remo / raw transport (a cost: 1.10 means 10%
 * over the raw round trip).
 *
 * Method, and why:
 *   - One operation (tens of nanoseconds) is too short to time alone:
 *     clock_gettime costs about as much.  So an operation runs in a batch
 *     of iters repetitions, sized so that one batch lasts BENCH_BATCH_NS,
 *     and a sample is the batch time divided by iters.
 *   - The batch loop is inside the benchmark's own function (bench_fn
 *     takes iters), so no indirect call per operation is measured.
 *   - The median of BENCH_SAMPLES samples, not the mean: an interrupt or
 *     a preemption spoils a sample or two, and the median ignores them.
 *   - remo (A) and the baseline (B) are sampled alternately, A B A B...,
 *     so that frequency changes and noisy neighbours hit both alike.
 *     Running all of A and then all of B was rejected: slow drift of the
 *     machine then shows up as a difference between the codecs.
 */
#ifndef REMO_BENCH_H
#define REMO_BENCH_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define BENCH_SAMPLES 31               /* samples per side, odd: a true median */
#define BENCH_BATCH_NS 5000000.0       /* one batch lasts about 5 ms          */
#define BENCH_WARMUP_NS 50000000.0     /* 50 ms of each side before sampling  */

/*
 * bench_sink: write results here so the compiler cannot drop the work
 * that produced them.  A benchmark adds a value per operation, cheaply.
 */
static volatile uint64_t bench_sink __attribute__((unused));

/*
 * bench_fn: runs the operation under test iters times on ctx.  It must do
 * the same work every time it is called, and abort (not return early) if
 * the operation fails, so a failure can never look like a fast result.
 */
typedef void bench_fn(void *ctx, uint64_t iters);

/* bench_now_ns: CLOCK_MONOTONIC in nanoseconds. */
static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* bench_run_ns: wall time of one batch, fn(ctx, iters), in nanoseconds. */
static inline double bench_run_ns(bench_fn *fn, void *ctx, uint64_t iters)
{
	uint64_t t0 = bench_now_ns();
	fn(ctx, iters);
	return (double)(bench_now_ns() - t0);
}

/*
 * bench_calibrate: the iters for which one batch of fn lasts about
 * batch_ns (at least 1).  Doubles a trial batch until it lasts a
 * twentieth of that, then scales; the trial batches are the first part
 * of the warm-up.
 */
static inline uint64_t bench_calibrate(bench_fn *fn, void *ctx,
                                       double batch_ns)
{
	uint64_t iters = 1;
	double t;
	while ((t = bench_run_ns(fn, ctx, iters)) < batch_ns / 20 &&
	       iters < (UINT64_C(1) << 40))
		iters *= 2;
	double scaled = (double)iters * batch_ns / (t > 1 ? t : 1);
	return scaled < 1 ? 1 : (uint64_t)scaled;
}

/* bench_warm: runs batches of fn for at least warm_ns nanoseconds. */
static inline void bench_warm(bench_fn *fn, void *ctx, uint64_t iters,
                              double warm_ns)
{
	double spent = 0;
	while (spent < warm_ns)
		spent += bench_run_ns(fn, ctx, iters);
}

static inline int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/*
 * bench_median: the median of the n values at v (n >= 1); sorts v in
 * place.  For even n, the mean of the two middle values.
 */
static inline double bench_median(double *v, size_t n)
{
	qsort(v, n, sizeof *v, bench_cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The result of bench_ab: median nanoseconds per operation of each side. */
struct bench_ab {
	double a_ns;
	double b_ns;
};

/*
 * bench_ab: measures a (remo) against b (the baseline) in the same run.
 * Each side is calibrated to BENCH_BATCH_NS batches and warmed for
 * BENCH_WARMUP_NS, then BENCH_SAMPLES batches of each are timed
 * alternately, A B A B...; returns the median time per operation of each.
 */
static inline struct bench_ab bench_ab(bench_fn *a, void *actx,
                                       bench_fn *b, void *bctx)
{
	double sa[BENCH_SAMPLES], sb[BENCH_SAMPLES];
	uint64_t na = bench_calibrate(a, actx, BENCH_BATCH_NS);
	uint64_t nb = bench_calibrate(b, bctx, BENCH_BATCH_NS);

	bench_warm(a, actx, na, BENCH_WARMUP_NS);
	bench_warm(b, bctx, nb, BENCH_WARMUP_NS);
	for (int i = 0; i < BENCH_SAMPLES; i++) {
		sa[i] = bench_run_ns(a, actx, na) / (double)na;
		sb[i] = bench_run_ns(b, bctx, nb) / (double)nb;
	}
	return (struct bench_ab){bench_median(sa, BENCH_SAMPLES),
	                         bench_median(sb, BENCH_SAMPLES)};
}

#define BENCH_MAX_SIDES 8

/*
 * bench_abn: bench_ab for n sides (1 <= n <= BENCH_MAX_SIDES), when remo
 * is compared with more than one baseline, or a baseline with several
 * variants, in the same run.  Each side is calibrated and warmed as in
 * bench_ab, then BENCH_SAMPLES rounds each time every side once, in
 * order; out_ns[i] gets side i's median time per operation.
 */
static inline void bench_abn(size_t n, bench_fn *const fn[],
                             void *const ctx[], double out_ns[])
{
	double s[BENCH_MAX_SIDES][BENCH_SAMPLES];
	uint64_t iters[BENCH_MAX_SIDES];

	if (n > BENCH_MAX_SIDES)
		abort();
	for (size_t k = 0; k < n; k++)
		iters[k] = bench_calibrate(fn[k], ctx[k], BENCH_BATCH_NS);
	for (size_t k = 0; k < n; k++)
		bench_warm(fn[k], ctx[k], iters[k], BENCH_WARMUP_NS);
	for (int i = 0; i < BENCH_SAMPLES; i++)
		for (size_t k = 0; k < n; k++)
			s[k][i] = bench_run_ns(fn[k], ctx[k], iters[k]) /
			          (double)iters[k];
	for (size_t k = 0; k < n; k++)
		out_ns[k] = bench_median(s[k], BENCH_SAMPLES);
}

/*
 * bench_print: prints "bench NAME", then the key=value pairs that the
 * printf format fmt makes of the arguments (e.g. "remo_ns=%.1f
 * msgpack_ns=%.1f"), then "ratio=X", and a newline.  ratio is the
 * caller's baseline / remo.  Flushes, so a benchmark that dies later
 * still leaves its finished lines behind.
 */
static inline void bench_print(const char *name, double ratio,
                               const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static inline void bench_print(const char *name, double ratio,
                               const char *fmt, ...)
{
	va_list ap;
	printf("bench %s ", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" ratio=%.2f\n", ratio);
	fflush(stdout);
}

#endif /* REMO_BENCH_H */
