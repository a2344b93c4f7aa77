/*
 * trace_subject.c -- compiled twice for test_trace (Makefile.am: once at
 * -O0, once at -O2, both with -g), with SUBJECT_NAME naming the copy and
 * prefixing its functions (o0: o0_a, o0_b...) and SUBJECT_OPTIMIZED
 * saying which it is.
 *
 * Every line a test checks stores its own number (MARK, on that very
 * line) into the copy's struct subject_lines as it runs.
 *
 * The crashing function opts out of UBSan: its NULL store and division
 * by zero are the point, and must reach the signal handler.
 */
#include "config.h"

#include <stdlib.h>

#include <remo/trace.h>

#include "trace/trace.h"
#include "trace_subject.h"

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define S(name) CAT(CAT(SUBJECT_NAME, _), name)
#define STR2(x) #x
#define STR(x) STR2(x)
#define NAME(name) STR(S(name))

/* noclone: gcc's IPA would otherwise make a.constprop.0 and the like */
#if defined(__clang__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE __attribute__((noinline, noclone))
#endif
#define NO_UBSAN __attribute__((no_sanitize("undefined")))

/* At -O2 the helper is always inlined (that is what the test looks
 * for); at -O0 it stays a function of its own. */
#if SUBJECT_OPTIMIZED
#define INLINE static inline __attribute__((always_inline))
#else
#define INLINE static NOINLINE
#endif

static struct subject_lines S(lines);
/* Relaxed atomic: several threads run the subject at once (naming and
 * crashing from threads), all storing the same numbers, which
 * ThreadSanitizer would report as a race. */
#define MARK(field) \
	__atomic_store_n(&S(lines).field, __LINE__, __ATOMIC_RELAXED)

struct point {
	int x, y;
};

INLINE int S(inl)(struct subject_ctx *ctx, int v)
{
	MARK(inl_captures); ctx->npcs = remo__trace_capture(ctx->pcs, 64, 0);
	return v + ctx->npcs;
}

static struct subject_ctx *S(sort_ctx);

static NOINLINE int S(cmp)(const void *x, const void *y)
{
	struct subject_ctx *ctx = S(sort_ctx);
	if (ctx->npcs == 0) {
		MARK(cmp_captures); ctx->npcs = remo__trace_capture(ctx->pcs, 64, 0);
	}
	return *(const int *)x - *(const int *)y;
}

static NOINLINE NO_UBSAN int S(c)(struct subject_ctx *ctx, int depth,
                                  const char *label)
{
	int counter = depth * 10 + 2;
	double ratio = 1.5;
	const char *msg = "hello";
	bool flag = true;
	struct point pt = {3, 4};
	char buf[16] = "in buf";
	int *where = &counter;
	volatile int zero = 0;
	int arr[3] = {3, 1, 2};

	switch (ctx->mode) {
	case SUBJ_CAPTURE:
		MARK(c_calls_inl); counter = S(inl)(ctx, counter) - ctx->npcs;
		break;
	case SUBJ_WRITE:
		MARK(c_writes); *ctx->ptr = counter;
		break;
	case SUBJ_FPE:
		MARK(c_divides); ctx->sink = counter / zero;
		break;
	case SUBJ_ABORT:
		MARK(c_aborts); abort();
	case SUBJ_LOCALS:
		REMO_LOCAL(counter);
		REMO_LOCAL(ratio);
		REMO_LOCAL(msg);
		REMO_LOCAL(flag);
		REMO_LOCAL(label);
		counter++;
		REMO_LOCAL(counter); /* again: the later value wins */
		counter--;
		break;
	case SUBJ_DWARF:
		MARK(c_dwarf); ctx->dstatus = remo__trace_dwarf_locals(NULL, 0, &ctx->dlocals);
		break;
	case SUBJ_QSORT:
		S(sort_ctx) = ctx;
		MARK(c_sorts); qsort(arr, 3, sizeof arr[0], S(cmp));
		break;
	}
	/* everything stays in use after the calls above */
	return counter + (int)ratio + msg[0] + flag + pt.x + pt.y + buf[0] +
	       *where + label[0] + arr[0];
}

static NOINLINE int S(b)(struct subject_ctx *ctx, int depth)
{
	const char *label = "lbl";
	int r;
	MARK(b_calls_c); r = S(c)(ctx, depth, label);
	ctx->sink = r;
	return r + 1; /* no tail call: b keeps its frame */
}

NOINLINE int S(a)(struct subject_ctx *ctx, int depth);

NOINLINE int S(a)(struct subject_ctx *ctx, int depth)
{
	int r;
	if (ctx->mode == SUBJ_LOCALS)
		REMO_LOCAL(depth);
	MARK(a_calls_b); r = S(b)(ctx, depth);
	ctx->sink = r;
	return r + 1;
}

const struct subject CAT(subject_, SUBJECT_NAME) = {
	.opt = SUBJECT_OPTIMIZED ? "O2" : "O0",
	.optimized = SUBJECT_OPTIMIZED,
	.a = S(a),
	.name_a = NAME(a),
	.name_b = NAME(b),
	.name_c = NAME(c),
	.name_inl = NAME(inl),
	.name_cmp = NAME(cmp),
	.lines = &S(lines),
};
