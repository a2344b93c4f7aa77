/*
 * test_trace.c -- the traceback core (src/trace*.c): capture, naming,
 * REMO_LOCAL, DWARF locals and crash recovery, each against the same
 * subject code built at -O0 and at -O2 (trace_subject.c).
 *
 * Expected lines are never written here: the subject stores each line
 * number as it runs it.  The crash test that dereferences NULL is
 * skipped under valgrind (memcheck reports the read as an error before
 * the signal comes); the same recovery is tested with a write to a
 * read-only page, which memcheck allows and the MMU does not.  Under
 * ASan everything runs: remo's handler replaces ASan's, which gets the
 * crashes remo does not recover from, as any previous handler would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <remo/trace.h>

#include "trace/trace.h"
#include "testutil.h"
#include "trace_subject.h"

/* ==== helpers ============================================================ */

/* valgrind preloads its own libraries into the program it runs */
static bool under_valgrind(void)
{
	const char *p = getenv("LD_PRELOAD");
	return p != NULL && strstr(p, "vgpreload") != NULL;
}

static const char *base_name(const char *path)
{
	const char *s = path ? strrchr(path, '/') : NULL;
	return s ? s + 1 : path;
}

/* A page that can be read but not written. */
static int *ro_page(void)
{
	static void *page;
	if (page == NULL) {
		page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
		            -1, 0);
		assert_true(page != MAP_FAILED);
	}
	return page;
}

static void ctx_init(struct subject_ctx *ctx, int mode)
{
	memset(ctx, 0, sizeof *ctx);
	ctx->mode = mode;
	ctx->dlocals = remo_nil();
}

/* Names pcs; fails the test on error. */
static struct remo__frame_info *name_all(const uintptr_t *pcs, int n,
                                         bool exact, size_t *nout)
{
	struct remo__frame_info *f;
	assert_int_equal(remo__trace_name(pcs, n, exact, &f, nout), REMO_OK);
	assert_true(*nout >= (size_t)n);
	return f;
}

static void assert_frame(const struct remo__frame_info *f, const char *func,
                         int line, bool inlined)
{
	assert_non_null(f->function);
	assert_string_equal(f->function, func);
	assert_non_null(f->file);
	assert_string_equal(base_name(f->file), "trace_subject.c");
	assert_int_equal(f->line, line);
	assert_int_equal(f->inlined, inlined);
	assert_string_not_equal(f->module, "?");
}

/* The first entry naming func, or -1. */
static ssize_t find_func(const struct remo__frame_info *f, size_t n,
                         const char *func)
{
	for (size_t i = 0; i < n; i++)
		if (f[i].function != NULL && strcmp(f[i].function, func) == 0)
			return (ssize_t)i;
	return -1;
}

static remo_value dict_at(remo_value d, const char *key)
{
	remo_value v;
	if (remo_dict_get_str(d, key, &v) != REMO_OK)
		return remo__invalid();
	return v;
}

static void assert_str_value(remo_value v, const char *s)
{
	assert_int_equal(v.kind, REMO_STR);
	assert_string_equal(remo_str_data(v, NULL), s);
}

static bool is_str(remo_value v, const char *s)
{
	return v.kind == REMO_STR && strcmp(remo_str_data(v, NULL), s) == 0;
}

/* At -O2 a value may be gone: then DWARF says so, and only so. */
static void assert_int_or_gone(remo_value v, int64_t want, bool optimized)
{
	if (optimized && is_str(v, "<optimized out>"))
		return;
	assert_int_equal(v.kind, REMO_INT);
	assert_int_equal(v.as.i, want);
}

static void assert_str_or_gone(remo_value v, const char *want, bool optimized)
{
	if (optimized && is_str(v, "<optimized out>"))
		return;
	assert_str_value(v, want);
}

/* ==== capture and naming ================================================= */

/* The chain a -> b -> c -> inl, captured inside inl: named in order,
 * with the lines the subject marked; at -O2 inl is inlined into c. */
static void capture_gives_the_chain(void **state)
{
	const struct subject *s = *state;
	const struct subject_lines *l = s->lines;
	struct subject_ctx ctx;
	size_t n;

	ctx_init(&ctx, SUBJ_CAPTURE);
	s->a(&ctx, 4);
	assert_true(ctx.npcs >= 4);
	struct remo__frame_info *f = name_all(ctx.pcs, ctx.npcs, false, &n);
	assert_frame(&f[0], s->name_inl, l->inl_captures, s->optimized);
	assert_frame(&f[1], s->name_c, l->c_calls_inl, false);
	assert_frame(&f[2], s->name_b, l->b_calls_c, false);
	assert_frame(&f[3], s->name_a, l->a_calls_b, false);
	/* one pc per real frame; an inlined entry shares its pc */
	assert_true(f[0].pc == f[1].pc || !s->optimized);
	assert_true(f[1].pc != f[2].pc);
	assert_string_equal(f[0].module, f[3].module);
	assert_true(f[3].offset > 0 && f[3].offset <= f[3].pc);
	/* the test function that called a is next, then cmocka */
	assert_string_equal(f[4].function, "capture_gives_the_chain");
	assert_false(f[4].inlined);
	remo__frame_info_free(f, n);
}

static __attribute__((noinline)) int capture_twice(uintptr_t *p0, int *n0,
                                                   uintptr_t *p1, int *n1)
{
	*n0 = remo__trace_capture(p0, REMO__TRACE_MAX, 0);
	*n1 = remo__trace_capture(p1, REMO__TRACE_MAX, 1);
	return *n0 + *n1; /* no tail call */
}

static volatile int deep_sink;

static __attribute__((noinline)) int deep(int d, uintptr_t *pcs, int max)
{
	if (d == 0)
		return remo__trace_capture(pcs, max, 0);
	int r = deep(d - 1, pcs, max);
	deep_sink = d; /* work after the call: no tail call, no loop */
	return r;
}

/* skip leaves out the innermost frames; max and REMO__TRACE_MAX cap. */
static void capture_skip_and_max(void **state)
{
	uintptr_t p0[REMO__TRACE_MAX], p1[REMO__TRACE_MAX];
	uintptr_t big[REMO__TRACE_MAX + 16];
	int n0, n1;

	capture_twice(p0, &n0, p1, &n1);
	assert_true(n0 >= 3);
	assert_int_equal(n1, n0 - 1);
	assert_true(p1[0] == p0[1]);
	assert_true(p1[1] == p0[2]);
	assert_int_equal(remo__trace_capture(p0, 2, 0), 2);
	assert_int_equal(remo__trace_capture(p0, 0, 0), 0);
	/* 80 frames deep: 64 kept, the innermost ones */
	assert_int_equal(deep(80, big, REMO__TRACE_MAX + 16), REMO__TRACE_MAX);
	size_t n;
	struct remo__frame_info *f = name_all(big, 2, false, &n);
	assert_string_equal(f[0].function, "deep");
	remo__frame_info_free(f, n);
}

/* A callback from libc: qsort's frames sit between the comparison and
 * c, named (libc or, under ASan, its interceptor in this program), and
 * c is found again past them. */
static void frames_through_libc(void **state)
{
	const struct subject *s = *state;
	struct subject_ctx ctx;
	size_t n;

	ctx_init(&ctx, SUBJ_QSORT);
	s->a(&ctx, 4);
	struct remo__frame_info *f = name_all(ctx.pcs, ctx.npcs, false, &n);
	assert_frame(&f[0], s->name_cmp, s->lines->cmp_captures, false);
	ssize_t c = find_func(f, n, s->name_c);
	assert_true(c > 1);
	assert_frame(&f[c], s->name_c, s->lines->c_sorts, false);
	bool named = false;
	for (ssize_t i = 1; i < c; i++) {
		if (strstr(f[i].module, "libc.so") == NULL)
			assert_string_equal(f[i].module, f[0].module);
		named |= f[i].function != NULL;
	}
	assert_true(named);
	remo__frame_info_free(f, n);
}

/* cmocka is a library without debug information (Debian keeps that in
 * separate packages): its frame still gives module and symbol. */
static void frames_without_debug_info(void **state)
{
	uintptr_t pcs[REMO__TRACE_MAX];
	size_t n;
	int k = remo__trace_capture(pcs, REMO__TRACE_MAX, 0);
	struct remo__frame_info *f = name_all(pcs, k, false, &n);
	ssize_t i = find_func(f, n, "_cmocka_run_group_tests");
	assert_true(i > 0);
	assert_non_null(strstr(base_name(f[i].module), "libcmocka.so"));
	assert_null(f[i].file);
	assert_int_equal(f[i].line, 0);
	assert_false(f[i].inlined);
	assert_true(f[i].offset > 0 && f[i].offset < f[i].pc);
	remo__frame_info_free(f, n);
}

/* A library loaded after libdw's report: named all the same (libdw
 * 0.188 would answer with the module before it). */
static void dlopened_code_is_named(void **state)
{
	char path[4096];
	const char *dirs = getenv("REMO_TRANSPORT_PATH");
	void *h = NULL;

	remo__trace_warm();
	while (dirs != NULL && *dirs != '\0' && h == NULL) {
		size_t len = strcspn(dirs, ":");
		snprintf(path, sizeof path, "%.*s/remo_transport_stream.so",
		         (int)len, dirs);
		/* lazy: the plugin's calls into libremo.so are never made */
		h = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
		dirs += len + (dirs[len] == ':');
	}
	if (h == NULL) {
		print_message("skipped: remo_transport_stream.so not found in "
		              "REMO_TRANSPORT_PATH\n");
		skip();
	}
	uintptr_t pc = (uintptr_t)dlsym(h, "remo_transport_stream");
	assert_true(pc != 0);
	size_t n;
	struct remo__frame_info *f = name_all(&pc, 1, true, &n);
	assert_int_equal(n, 1);
	assert_string_equal(base_name(f[0].module), "remo_transport_stream.so");
	assert_string_equal(f[0].function, "remo_transport_stream");
	assert_string_equal(base_name(f[0].file), "stream.c");
	assert_true(f[0].line > 0);
	remo__frame_info_free(f, n);
	dlclose(h);
}

/* pcs no module holds: an entry each, module "?", nothing else. */
static void unknown_pcs_are_named_as_unknown(void **state)
{
	uintptr_t pcs[2] = {16, (uintptr_t)ro_page() + 8};
	size_t n;
	struct remo__frame_info *f = name_all(pcs, 2, true, &n);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < 2; i++) {
		assert_string_equal(f[i].module, "?");
		assert_null(f[i].function);
		assert_null(f[i].file);
		assert_int_equal(f[i].line, 0);
		assert_int_equal(f[i].pc, pcs[i]);
	}
	remo__frame_info_free(f, n);
}

/* Every allocation failure is REMO_ENOMEM, with nothing leaked. */
static void naming_out_of_memory(void **state)
{
	const struct subject *s = *state;
	struct subject_ctx ctx;
	struct remo__frame_info *f;
	size_t n;
	int st = REMO_ENOMEM;

	ctx_init(&ctx, SUBJ_CAPTURE);
	s->a(&ctx, 4);
	remo__trace_warm();
	for (long k = 0; st == REMO_ENOMEM; k++) {
		test_alloc_reset(k);
		st = remo__trace_name(ctx.pcs, ctx.npcs, false, &f, &n);
		test_alloc_restore();
		if (st == REMO_ENOMEM) {
			assert_null(f);
			assert_int_equal(n, 0);
		}
		assert_true(k < 10000);
	}
	assert_int_equal(st, REMO_OK);
	remo__frame_info_free(f, n);
}

static void *name_in_thread(void *arg)
{
	const struct subject *s = arg;
	struct subject_ctx ctx;
	for (int i = 0; i < 20; i++) {
		size_t n;
		struct remo__frame_info *f;
		ctx_init(&ctx, SUBJ_CAPTURE);
		s->a(&ctx, 4);
		if (remo__trace_name(ctx.pcs, ctx.npcs, false, &f, &n) != REMO_OK)
			return "ENOMEM";
		bool ok = n > 3 && f[2].function != NULL &&
		          strcmp(f[2].function, s->name_b) == 0 &&
		          f[2].line == __atomic_load_n(&s->lines->b_calls_c,
		                                       __ATOMIC_RELAXED);
		remo__frame_info_free(f, n);
		if (!ok)
			return "wrong frame";
	}
	return NULL;
}

/* Threads name at once: libdw is behind the lock. */
static void naming_from_threads(void **state)
{
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, name_in_thread,
		                                i % 2 ? (void *)&subject_o0
		                                      : (void *)&subject_o2), 0);
	for (int i = 0; i < 4; i++) {
		void *ret;
		pthread_join(th[i], &ret);
		assert_null(ret);
	}
}

/* ==== REMO_LOCAL ========================================================= */

/* What a and c recorded, taken as {func: {name: value}}. */
static void locals_are_taken_per_function(void **state)
{
	const struct subject *s = *state;
	struct subject_ctx ctx;

	ctx_init(&ctx, SUBJ_LOCALS);
	size_t m = remo__locals_mark();
	s->a(&ctx, 4);
	remo_value d = remo__locals_take(m);
	assert_int_equal(d.kind, REMO_DICT);
	assert_int_equal(remo_dict_len(d), 2);
	/* first recorded first: a's depth, then c's */
	size_t pos = 0;
	remo_value k, v;
	assert_true(remo_dict_next(d, &pos, &k, &v));
	assert_string_equal(remo_str_data(k, NULL), s->name_a);
	remo_value c = dict_at(d, s->name_c);
	assert_int_equal(c.kind, REMO_DICT);
	assert_int_equal(remo_dict_len(c), 5);
	assert_int_equal(dict_at(c, "counter").as.i, 43); /* the later one */
	assert_true(dict_at(c, "ratio").as.d == 1.5);
	assert_str_value(dict_at(c, "msg"), "hello");
	assert_true(dict_at(c, "flag").as.b);
	assert_str_value(dict_at(c, "label"), "lbl");
	assert_int_equal(dict_at(dict_at(d, s->name_a), "depth").as.i, 4);
	remo_value_release(d);
	assert_int_equal(remo__locals_take(m).kind, REMO_NIL);
	assert_int_equal(remo__locals_dropped(m), 0);
}

/* Each C type becomes the value kind remo/trace.h promises. */
static void local_kinds(void **state)
{
	int i = -5;
	unsigned u = 7;
	long long ll = INT64_MIN;
	unsigned long long huge = UINT64_MAX;
	char ch = 'x';
	bool b = true;
	float fl = 0.25f;
	double d = -2.5;
	char text[] = "text";
	char *s = text;
	const char *cs = "const";
	char *none = NULL;
	const char *bad = "\xff\xfe";
	enum { RED, GREEN } colour = GREEN;
	remo_value v = remo_str("value");
	int *p = &i;

	size_t m = remo__locals_mark();
	REMO_LOCAL(i);
	REMO_LOCAL(u);
	REMO_LOCAL(ll);
	REMO_LOCAL(huge);
	REMO_LOCAL(ch);
	REMO_LOCAL(b);
	REMO_LOCAL(fl);
	REMO_LOCAL(d);
	REMO_LOCAL(s);
	REMO_LOCAL(cs);
	REMO_LOCAL(none);
	REMO_LOCAL(bad);
	REMO_LOCAL(colour);
	REMO_LOCAL(v);
	REMO_LOCAL(p);
	REMO_LOCAL(text);
	REMO_LOCAL(i * 2);
	text[0] = 'T'; /* copied: later changes do not show */
	remo_value all = remo__locals_take(m);
	remo_value l = dict_at(all, "local_kinds");
	assert_int_equal(remo_dict_len(l), 17);
	assert_int_equal(dict_at(l, "i").as.i, -5);
	assert_int_equal(dict_at(l, "u").as.i, 7);
	assert_int_equal(dict_at(l, "ll").as.i, INT64_MIN);
	assert_int_equal(dict_at(l, "huge").as.i, -1);
	assert_int_equal(dict_at(l, "ch").as.i, 'x');
	assert_int_equal(dict_at(l, "b").kind, REMO_BOOL);
	assert_true(dict_at(l, "b").as.b);
	assert_int_equal(dict_at(l, "fl").kind, REMO_DOUBLE);
	assert_true(dict_at(l, "fl").as.d == 0.25);
	assert_true(dict_at(l, "d").as.d == -2.5);
	assert_str_value(dict_at(l, "s"), "text");
	assert_str_value(dict_at(l, "cs"), "const");
	assert_int_equal(dict_at(l, "none").kind, REMO_NIL);
	assert_int_equal(dict_at(l, "bad").kind, REMO_BYTES); /* not UTF-8 */
	assert_int_equal(dict_at(l, "colour").as.i, GREEN);
	assert_str_value(dict_at(l, "v"), "value");
	assert_int_equal(dict_at(l, "p").kind, REMO_INT);
	assert_int_equal(dict_at(l, "p").as.i, (int64_t)(intptr_t)&i);
	assert_str_value(dict_at(l, "text"), "text");
	assert_int_equal(dict_at(l, "i * 2").as.i, -10);
	remo_value_release(all);
	remo_value_release(v);
}

/* A nested call's locals are its own, even under the same names. */
static void locals_nest_and_reset(void **state)
{
	size_t m1 = remo__locals_mark();
	remo_local("f", "x", remo_int(1));
	size_t m2 = remo__locals_mark();
	remo_local("f", "x", remo_int(2));
	remo_local("f", "x", remo_int(3));
	remo_value inner = remo__locals_take(m2);
	assert_int_equal(dict_at(dict_at(inner, "f"), "x").as.i, 3);
	assert_int_equal(remo_dict_len(dict_at(inner, "f")), 1);
	remo_value_release(inner);
	/* the outer call goes on recording, replacing its own entry */
	remo_local("f", "x", remo_int(4));
	size_t m3 = remo__locals_mark();
	remo_local("g", "y", remo_str("dropped"));
	remo__locals_reset(m3);
	remo_value outer = remo__locals_take(m1);
	assert_int_equal(remo_dict_len(outer), 1);
	assert_int_equal(dict_at(dict_at(outer, "f"), "x").as.i, 4);
	remo_value_release(outer);
	/* a record that could not be made is counted, not kept */
	size_t m4 = remo__locals_mark();
	remo_local("f", "x", remo__invalid());
	remo_local(NULL, "x", remo_int(1));
	assert_int_equal(remo__locals_dropped(m4), 2);
	assert_int_equal(remo__locals_take(m4).kind, REMO_NIL);
}

static char cap_names[REMO_LOCALS_MAX + 44][8];

static void *fill_locals(void *arg)
{
	size_t m = remo__locals_mark();
	for (int i = 0; i < REMO_LOCALS_MAX + 44; i++) {
		snprintf(cap_names[i], sizeof cap_names[i], "v%d", i);
		remo_local("fill", cap_names[i], remo_int(i));
	}
	unsigned *dropped = arg;
	dropped[0] = remo__locals_dropped(m);
	remo_value all = remo__locals_take(m);
	remo_value l = dict_at(all, "fill");
	dropped[1] = (unsigned)remo_dict_len(l);
	dropped[2] = (unsigned)dict_at(l, "v255").as.i;
	dropped[3] = dict_at(l, "v256").kind == REMO_INVALID;
	remo_value_release(all);
	/* left behind at thread exit: released by the destructor */
	remo_local("fill", "left", remo_str("behind"));
	return NULL;
}

/* REMO_LOCALS_MAX per thread; the rest is dropped and counted. */
static void locals_limit(void **state)
{
	pthread_t th;
	unsigned r[4];
	assert_int_equal(pthread_create(&th, NULL, fill_locals, r), 0);
	pthread_join(th, NULL);
	assert_int_equal(r[0], 44);
	assert_int_equal(r[1], REMO_LOCALS_MAX);
	assert_int_equal(r[2], 255);
	assert_int_equal(r[3], 1);
}

/* ==== DWARF locals ======================================================= */

static remo_value dwarf_frame(struct subject_ctx *ctx, size_t i)
{
	assert_int_equal(ctx->dstatus, REMO_OK);
	assert_int_equal(ctx->dlocals.kind, REMO_LIST);
	assert_true(remo_list_len(ctx->dlocals) > i);
	remo_value d = remo_list_get(ctx->dlocals, i);
	assert_int_equal(d.kind, REMO_DICT);
	return d;
}

/* c reads its own stack: at -O0 every value, at -O2 each either its
 * value or "<optimized out>". */
static void dwarf_locals_of_the_stack(void **state)
{
	const struct subject *s = *state;
	bool o = s->optimized;
	struct subject_ctx ctx;

	ctx_init(&ctx, SUBJ_DWARF);
	s->a(&ctx, 4);
	remo_value c = dwarf_frame(&ctx, 0);
	assert_int_or_gone(dict_at(c, "depth"), 4, o);
	assert_str_or_gone(dict_at(c, "label"), "lbl", o);
	assert_int_or_gone(dict_at(c, "counter"), 42, o);
	assert_str_or_gone(dict_at(c, "msg"), "hello", o);
	assert_str_or_gone(dict_at(c, "buf"), "in buf", o);
	remo_value v = dict_at(c, "ratio");
	if (!o || v.kind != REMO_STR) {
		assert_int_equal(v.kind, REMO_DOUBLE);
		assert_true(v.as.d == 1.5);
	}
	v = dict_at(c, "flag");
	if (!o || v.kind != REMO_STR) {
		assert_int_equal(v.kind, REMO_BOOL);
		assert_true(v.as.b);
	}
	assert_str_or_gone(dict_at(c, "pt"), "<struct point>", o);
	assert_str_or_gone(dict_at(c, "arr"), "<array>", o);
	v = dict_at(c, "where");
	assert_int_equal(v.kind, REMO_STR);
	assert_true(strncmp(remo_str_data(v, NULL), "0x", 2) == 0 ||
	            (o && is_str(v, "<optimized out>")));
	v = dict_at(c, "ctx");
	if (!o || !is_str(v, "<optimized out>")) {
		char want[32];
		snprintf(want, sizeof want, "0x%" PRIxPTR, (uintptr_t)&ctx);
		assert_str_value(v, want);
	}
	/* b and a: their parameters, and b's local */
	remo_value b = dwarf_frame(&ctx, 1);
	assert_int_or_gone(dict_at(b, "depth"), 4, o);
	assert_str_or_gone(dict_at(b, "label"), "lbl", o);
	remo_value a = dwarf_frame(&ctx, 2);
	assert_int_or_gone(dict_at(a, "depth"), 4, o);
	/* the test function itself is a frame too (its dict may be empty) */
	assert_true(remo_list_len(ctx.dlocals) > 3);
	remo_value_release(ctx.dlocals);
}

/* The same number of frames as a capture from the same place. */
static __attribute__((noinline)) int both_walks(remo_value *dl, uintptr_t *pcs)
{
	int n = remo__trace_capture(pcs, REMO__TRACE_MAX, 0);
	int st = remo__trace_dwarf_locals(NULL, 0, dl);
	return st == REMO_OK ? n : -1;
}

static void dwarf_locals_match_capture(void **state)
{
	remo_value dl;
	uintptr_t pcs[REMO__TRACE_MAX];
	int n = both_walks(&dl, pcs);
	assert_true(n > 0);
	assert_int_equal(remo_list_len(dl), (size_t)n);
	remo_value_release(dl);
	/* skip leaves frames out in the same way: from here, both_walks'
	 * frame is not there, and skip 1 leaves out this one */
	assert_int_equal(remo__trace_dwarf_locals(NULL, 1, &dl), REMO_OK);
	assert_int_equal(remo_list_len(dl), (size_t)n - 2);
	remo_value_release(dl);
	assert_int_equal(remo__trace_dwarf_locals(NULL, 1000, &dl), REMO_EINVAL);
	assert_int_equal(dl.kind, REMO_NIL);
}

/* ==== crash recovery ===================================================== */

static struct {
	int calls;
	bool recovering;
	int sig;
	int npcs;
} hook_seen;

/* The hook's two halves: the handler's capture asks for the service,
 * whose serve (on the service thread) records what it saw. */
static bool test_capture(struct remo__crash *c)
{
	return true;
}

static void test_serve(struct remo__crash *c)
{
	hook_seen.calls++;
	hook_seen.recovering = c->recovering;
	hook_seen.sig = c->r->sig;
	hook_seen.npcs = c->r->npcs;
	remo__crash_done(c);
}

static const struct remo__crash_hook test_hook = {test_capture, test_serve};

/*
 * cmocka puts its own SIGSEGV, SIGFPE, SIGBUS handlers in around every
 * test and fixture, and afterwards puts back the previous ones with
 * signal(), which drops SA_SIGINFO.  So main installs remo's handlers
 * once and keeps their actions, and every test that crashes on purpose
 * puts them back first.
 */
static const int crash_sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGABRT};
static struct sigaction remo_actions[4];

static void keep_remo_handlers(void)
{
	assert_int_equal(remo__recover_init(), REMO_OK);
	for (int i = 0; i < 4; i++)
		sigaction(crash_sigs[i], NULL, &remo_actions[i]);
}

static void use_remo_handlers(void)
{
	for (int i = 0; i < 4; i++)
		sigaction(crash_sigs[i], &remo_actions[i], NULL);
}

static int setup_recover(void **state)
{
	memset(&hook_seen, 0, sizeof hook_seen);
	remo__set_crash_hook(&test_hook);
	return 0;
}

static int teardown_recover(void **state)
{
	remo__set_crash_hook(NULL);
	return 0;
}

/* What a crash test gets back: the record and its named pcs. */
struct crashed {
	struct remo__recover r;
	struct remo__frame_info *f;
	size_t n;
};

/*
 * crash: runs a in mode with recovery armed; returns the signal caught
 * (0 if none) and names the pcs into c->f (free with crashed_free).
 */
static int crash(const struct subject *s, int mode, int *ptr, bool dlocals,
                 struct crashed *c)
{
	struct subject_ctx ctx;
	use_remo_handlers();
	ctx_init(&ctx, mode);
	ctx.ptr = ptr;
	memset(c, 0, sizeof *c);
	c->r.want_dlocals = dlocals;
	if (sigsetjmp(c->r.jb, 1) == 0) {
		remo__recover_arm(&c->r);
		s->a(&ctx, 4);
		remo__recover_disarm(&c->r);
		return 0;
	}
	c->f = name_all(c->r.pcs, c->r.npcs, true, &c->n);
	return c->r.sig;
}

static void crashed_free(struct crashed *c)
{
	remo__frame_info_free(c->f, c->n);
	remo_value_release(c->r.dlocals);
}

/* The crash's frames from entry at on: c at line, then b, then a. */
static void assert_crashed_in_c(const struct subject *s,
                                const struct crashed *c, size_t at, int line)
{
	assert_true(c->n > at + 2);
	assert_frame(&c->f[at], s->name_c, line, false);
	assert_frame(&c->f[at + 1], s->name_b, s->lines->b_calls_c, false);
	assert_frame(&c->f[at + 2], s->name_a, s->lines->a_calls_b, false);
}

static void recover_null_dereference(void **state)
{
	const struct subject *s = *state;
	struct crashed c;

	if (under_valgrind()) {
		print_message("skipped under valgrind: memcheck reports a NULL "
		              "read as an error (tested: the read-only page)\n");
		skip();
	}
	assert_int_equal(crash(s, SUBJ_WRITE, NULL, false, &c), SIGSEGV);
	assert_null(c.r.addr);
	assert_crashed_in_c(s, &c, 0, s->lines->c_writes);
	assert_true(remo_tainted());
	assert_int_equal(hook_seen.calls, 1);
	assert_true(hook_seen.recovering);
	assert_int_equal(hook_seen.sig, SIGSEGV);
	assert_int_equal(hook_seen.npcs, c.r.npcs);
	crashed_free(&c);
}

static void recover_write_to_read_only_page(void **state)
{
	const struct subject *s = *state;
	struct crashed c;

	assert_int_equal(crash(s, SUBJ_WRITE, ro_page(), false, &c), SIGSEGV);
	assert_ptr_equal(c.r.addr, ro_page());
	assert_int_equal(c.r.dlocals.kind, REMO_NIL);
	assert_crashed_in_c(s, &c, 0, s->lines->c_writes);
	assert_true(remo_tainted());
	assert_int_equal(hook_seen.calls, 1);
	crashed_free(&c);
}

static void recover_division_by_zero(void **state)
{
	const struct subject *s = *state;
	struct crashed c;

	assert_int_equal(crash(s, SUBJ_FPE, NULL, false, &c), SIGFPE);
	assert_crashed_in_c(s, &c, 0, s->lines->c_divides);
	crashed_free(&c);
}

/* abort(): libc's frames first, then c at the call. */
static void recover_abort(void **state)
{
	const struct subject *s = *state;
	struct crashed c;

	assert_int_equal(crash(s, SUBJ_ABORT, NULL, false, &c), SIGABRT);
	ssize_t i = find_func(c.f, c.n, s->name_c);
	assert_true(i > 0);
	assert_crashed_in_c(s, &c, (size_t)i, s->lines->c_aborts);
	assert_non_null(strstr(c.f[0].module, "libc.so"));
	crashed_free(&c);
}

/* The handler can read the crashed stack's DWARF locals. */
static void recover_with_dwarf_locals(void **state)
{
	const struct subject *s = *state;
	struct crashed c;

	assert_int_equal(crash(s, SUBJ_WRITE, ro_page(), true, &c), SIGSEGV);
	assert_int_equal(c.r.dlocals.kind, REMO_LIST);
	assert_int_equal(remo_list_len(c.r.dlocals), (size_t)c.r.npcs);
	remo_value d = remo_list_get(c.r.dlocals, 0);
	assert_int_or_gone(dict_at(d, "counter"), 42, s->optimized);
	assert_str_or_gone(dict_at(d, "label"), "lbl", s->optimized);
	crashed_free(&c);
}

/* Arming nests: a crash returns to the innermost record, which is
 * disarmed by it; the outer one still catches the next crash. */
static void recover_nested(void **state)
{
	const struct subject *s = &subject_o0;
	struct remo__recover outer, inner;
	struct subject_ctx ctx;
	volatile int stage = 0;

	use_remo_handlers();
	memset(&outer, 0, sizeof outer);
	if (sigsetjmp(outer.jb, 1) == 0) {
		remo__recover_arm(&outer);
		memset(&inner, 0, sizeof inner);
		if (sigsetjmp(inner.jb, 1) == 0) {
			remo__recover_arm(&inner);
			ctx_init(&ctx, SUBJ_FPE);
			s->a(&ctx, 4);
			fail();
		}
		assert_int_equal(inner.sig, SIGFPE);
		stage = 1;
		ctx_init(&ctx, SUBJ_WRITE);
		ctx.ptr = ro_page();
		s->a(&ctx, 4);
		fail();
	}
	assert_int_equal(stage, 1);
	assert_int_equal(outer.sig, SIGSEGV);
	/* both disarmed: a normal bracket works again */
	memset(&outer, 0, sizeof outer);
	if (sigsetjmp(outer.jb, 1) == 0) {
		remo__recover_arm(&outer);
		ctx_init(&ctx, SUBJ_CAPTURE);
		s->a(&ctx, 4);
		remo__recover_disarm(&outer);
	}
	assert_int_equal(outer.sig, 0);
	assert_int_equal(hook_seen.calls, 2);
}

/*
 * sigsetjmp(jb, 0) is enough: the handler runs with the mask of the code
 * it interrupted (SA_NODEFER, nothing added), so jumping out without
 * restoring a mask leaves none of the crash signals blocked; and it
 * saves the system call that saving the mask costs on every arm.
 */
static void recover_without_saving_the_mask(void **state)
{
	const struct subject *s = &subject_o2;
	static const int modes[] = {SUBJ_WRITE, SUBJ_FPE, SUBJ_ABORT,
	                            SUBJ_WRITE};
	struct subject_ctx ctx;
	struct remo__recover r;
	sigset_t before, after;

	use_remo_handlers();
	sigprocmask(SIG_SETMASK, NULL, &before);
	for (volatile size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		memset(&r, 0, sizeof r);
		if (sigsetjmp(r.jb, 0) == 0) {
			remo__recover_arm(&r);
			ctx_init(&ctx, modes[i]);
			ctx.ptr = ro_page();
			s->a(&ctx, 4);
			fail();
		}
		assert_true(r.sig != 0);
		/* ThreadSanitizer calls the handler from its own, under a
		 * mask of its own, which a jump without the mask keeps: the
		 * next crash would kill */
		if (TEST_UNDER_TSAN) {
			sigprocmask(SIG_SETMASK, &before, NULL);
			continue;
		}
		sigprocmask(SIG_SETMASK, NULL, &after);
		for (size_t k = 0; k < 4; k++)
			assert_int_equal(sigismember(&after, crash_sigs[k]),
			                 sigismember(&before, crash_sigs[k]));
	}
}

static volatile bool overflow_never; /* the recursion's way out, unused */

static __attribute__((noinline)) int overflow(int d)
{
	volatile char pad[256];
	pad[0] = (char)d;
	if (overflow_never)
		return 0;
	return overflow(d + 1) + pad[0]; /* not a tail call */
}

static void *overflow_in_thread(void *arg)
{
	struct remo__recover *r = arg;
	memset(r, 0, sizeof *r);
	if (sigsetjmp(r->jb, 1) == 0) {
		remo__recover_arm(r);
		overflow(0);
	}
	return NULL;
}

/* A stack overflow is caught too: the handler runs on the alternate
 * stack, and the capture keeps the innermost REMO__TRACE_MAX frames. */
static void recover_stack_overflow(void **state)
{
	pthread_attr_t attr;
	pthread_t th;
	struct remo__recover r;

	use_remo_handlers();
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	assert_int_equal(pthread_create(&th, &attr, overflow_in_thread, &r), 0);
	pthread_join(th, NULL);
	pthread_attr_destroy(&attr);
	assert_int_equal(r.sig, SIGSEGV);
	assert_int_equal(r.npcs, REMO__TRACE_MAX);
	size_t n;
	struct remo__frame_info *f = name_all(r.pcs, 2, true, &n);
	assert_string_equal(f[0].function, "overflow");
	assert_string_equal(f[1].function, "overflow");
	remo__frame_info_free(f, n);
}

static void *crash_in_thread(void *arg)
{
	struct crashed c;
	/* a page of its own: ThreadSanitizer records the write before it
	 * faults, and would take three threads' for a race */
	int *page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
	                 -1, 0);
	if (page == MAP_FAILED)
		return NULL;
	int sig = crash(&subject_o2, SUBJ_WRITE, page, false, &c);
	crashed_free(&c);
	munmap(page, 4096);
	return (void *)(intptr_t)sig;
}

/* Crashes at once on several threads: the service takes them in turn
 * (this serve is slow, so they queue), none waits on another. */
static pthread_barrier_t at_once;

static void slow_serve(struct remo__crash *c)
{
	usleep(50 * 1000);
	test_serve(c);
}

static const struct remo__crash_hook slow_hook = {test_capture, slow_serve};

static void *crash_at_once(void *arg)
{
	pthread_barrier_wait(&at_once);
	return crash_in_thread(arg);
}

static void recover_crashes_at_once(void **state)
{
	pthread_t th[4];
	use_remo_handlers();
	remo__set_crash_hook(&slow_hook);
	pthread_barrier_init(&at_once, NULL, 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, crash_at_once,
		                                NULL), 0);
	for (int i = 0; i < 4; i++) {
		void *ret;
		pthread_join(th[i], &ret);
		assert_int_equal((intptr_t)ret, SIGSEGV);
	}
	pthread_barrier_destroy(&at_once);
	assert_int_equal(hook_seen.calls, 4);
}

/*
 * A service that does not say done: the crashed thread waits only as
 * long as the capture said (c->wait_ms), then recovers without it; the
 * late done touches nothing and frees the record, and the next crash
 * is served as usual.
 */
static struct remo__crash *_Atomic held_crash;

static bool short_capture(struct remo__crash *c)
{
	c->wait_ms = 200;
	return true;
}

static void holding_serve(struct remo__crash *c)
{
	atomic_store(&held_crash, c);
}

static const struct remo__crash_hook holding_hook = {short_capture,
                                                     holding_serve};

static void recover_without_the_service(void **state)
{
	const struct subject *s = &subject_o2;
	struct crashed c;
	struct timespec t0, t1;
	remo__set_crash_hook(&holding_hook);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(crash(s, SUBJ_WRITE, ro_page(), false, &c), SIGSEGV);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	crashed_free(&c);
	int64_t ms = (t1.tv_sec - t0.tv_sec) * 1000 +
	             (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms >= 190);
	/* the service took it at once, or ran late (valgrind) */
	for (int i = 0; i < 500 && atomic_load(&held_crash) == NULL; i++)
		usleep(10 * 1000);
	assert_non_null(atomic_load(&held_crash));
	remo__crash_done(atomic_load(&held_crash)); /* abandoned: freed */
	atomic_store(&held_crash, NULL);

	remo__set_crash_hook(&test_hook);
	assert_int_equal(crash(s, SUBJ_WRITE, ro_page(), false, &c), SIGSEGV);
	crashed_free(&c);
	assert_int_equal(hook_seen.calls, 1);
}

/* Each thread that arms gets its own alternate stack, freed at exit. */
static void recover_on_other_threads(void **state)
{
	pthread_t th[3];
	use_remo_handlers();
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&th[i], NULL, crash_in_thread,
		                                NULL), 0);
	for (int i = 0; i < 3; i++) {
		void *ret;
		pthread_join(th[i], &ret);
		assert_int_equal((intptr_t)ret, SIGSEGV);
	}
}

/* ---- crashes nothing recovers from: in a child process ---------------- */

/*
 * The child is this program again (exec'd, so that it starts as a fresh
 * process would: default signal actions, recovery not yet installed),
 * run as "test_trace child MODE HOW FD".  It crashes in MODE without
 * recovery; its crash hook writes what it saw to FD.
 */
enum child_how { CHILD_PLAIN, CHILD_PRIOR_HANDLER, CHILD_ARMED_KILLED };

static const char *self_path; /* argv[0] */
static int hook_fd = -1;

static void child_serve(struct remo__crash *c)
{
	char msg[64];
	int len = snprintf(msg, sizeof msg, "hook %d %d %d", c->recovering,
	                   c->r->sig, c->r->npcs > 0);
	if (write(hook_fd, msg, (size_t)len) < 0)
		_exit(3);
	remo__crash_done(c);
}

static const struct remo__crash_hook child_hook = {test_capture, child_serve};

static void prior_handler(int sig, siginfo_t *si, void *uc)
{
	_exit(42);
}

static int child_main(int mode, int how, int fd)
{
	struct rlimit no_core = {0, 0};
	setrlimit(RLIMIT_CORE, &no_core);
	hook_fd = fd;
	if (how == CHILD_PRIOR_HANDLER) {
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_sigaction = prior_handler;
		sa.sa_flags = SA_SIGINFO;
		sigaction(SIGSEGV, &sa, NULL);
	}
	if (remo__recover_init() != REMO_OK)
		return 2;
	remo__set_crash_hook(&child_hook);
	struct subject_ctx ctx;
	ctx_init(&ctx, mode);
	ctx.ptr = under_valgrind() ? ro_page() : NULL;
	if (how == CHILD_ARMED_KILLED) {
		struct remo__recover r;
		memset(&r, 0, sizeof r);
		if (sigsetjmp(r.jb, 1) == 0) {
			remo__recover_arm(&r);
			if (write(fd, "armed", 5) != 5)
				return 3;
			for (;;)
				pause();
		}
		return 4; /* recovered from a signal it must not take */
	}
	subject_o0.a(&ctx, 4);
	return 0;
}

/* child: runs the child; returns its wait status and what its crash
 * hook wrote into buf. */
static int child(int mode, enum child_how how, char *buf, size_t len)
{
	int fds[2], status;
	assert_int_equal(pipe(fds), 0);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char m[16], h[16], fd[16];
		close(fds[0]);
		/* ASan reports the crash it is handed, as it should: not
		 * into this test's log */
		if (TEST_UNDER_ASAN)
			freopen("/dev/null", "w", stderr);
		snprintf(m, sizeof m, "%d", mode);
		snprintf(h, sizeof h, "%d", (int)how);
		snprintf(fd, sizeof fd, "%d", fds[1]);
		execl(self_path, self_path, "child", m, h, fd, (char *)NULL);
		_exit(5);
	}
	close(fds[1]);
	size_t got = 0;
	ssize_t r;
	while (got + 1 < len &&
	       (r = read(fds[0], buf + got, len - 1 - got)) != 0) {
		if (r < 0) {
			assert_int_equal(errno, EINTR);
			continue;
		}
		got += (size_t)r;
		if (how == CHILD_ARMED_KILLED && got >= 5 &&
		    memcmp(buf, "armed", 5) == 0) {
			kill(pid, SIGABRT);
			how = CHILD_PLAIN;
		}
	}
	buf[got] = '\0';
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

/* Without recovery a crash kills as before remo, after the hook. */
static void unarmed_crash_kills(void **state)
{
	char buf[128], want[64];
	int st = child(SUBJ_WRITE, CHILD_PLAIN, buf, sizeof buf);
	snprintf(want, sizeof want, "hook 0 %d 1", SIGSEGV);
	/* under ASan, "as before remo" is ASan's report, then its abort(),
	 * which comes to the hook too */
	if (TEST_UNDER_ASAN)
		buf[strlen(want)] = '\0';
	assert_string_equal(buf, want);
	/* under TSan it is TSan's report, then its exit with an error */
	if (TEST_UNDER_TSAN) {
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) != 0);
	} else {
		assert_true(WIFSIGNALED(st));
		assert_int_equal(WTERMSIG(st),
		                 TEST_UNDER_ASAN ? SIGABRT : SIGSEGV);
	}

	st = child(SUBJ_FPE, CHILD_PLAIN, buf, sizeof buf);
	if (TEST_UNDER_TSAN) {
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) != 0);
	} else {
		assert_true(WIFSIGNALED(st));
		assert_int_equal(WTERMSIG(st),
		                 TEST_UNDER_ASAN ? SIGABRT : SIGFPE);
	}

	st = child(SUBJ_ABORT, CHILD_PLAIN, buf, sizeof buf);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGABRT);
	snprintf(want, sizeof want, "hook 0 %d 1", SIGABRT);
	assert_string_equal(buf, want);
}

/* A handler that was there before remo's still gets the crash. */
static void unarmed_crash_goes_to_the_prior_handler(void **state)
{
	char buf[128];
	int st = child(SUBJ_WRITE, CHILD_PRIOR_HANDLER, buf, sizeof buf);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 42);
}

/* A signal sent by another process is not a crash to recover from,
 * even on an armed thread. */
static void sent_signal_is_not_recovered(void **state)
{
	char buf[128];
	int st = child(SUBJ_CAPTURE, CHILD_ARMED_KILLED, buf, sizeof buf);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGABRT);
}

/* ==== the groups ========================================================= */

#define BOTH(fn) \
	cmocka_unit_test_prestate(fn, (void *)&subject_o0), \
	cmocka_unit_test_prestate(fn, (void *)&subject_o2)
#define BOTH_RECOVER(fn) \
	cmocka_unit_test_prestate_setup_teardown(fn, setup_recover, \
	        teardown_recover, (void *)&subject_o0), \
	cmocka_unit_test_prestate_setup_teardown(fn, setup_recover, \
	        teardown_recover, (void *)&subject_o2)

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "child") == 0)
		return child_main(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
	self_path = argv[0];

	const struct CMUnitTest naming[] = {
		BOTH(capture_gives_the_chain),
		cmocka_unit_test(capture_skip_and_max),
		BOTH(frames_through_libc),
		cmocka_unit_test(frames_without_debug_info),
		cmocka_unit_test(dlopened_code_is_named),
		cmocka_unit_test(unknown_pcs_are_named_as_unknown),
		BOTH(naming_out_of_memory),
		cmocka_unit_test(naming_from_threads),
	};
	const struct CMUnitTest locals[] = {
		BOTH(locals_are_taken_per_function),
		cmocka_unit_test(local_kinds),
		cmocka_unit_test(locals_nest_and_reset),
		cmocka_unit_test(locals_limit),
		BOTH(dwarf_locals_of_the_stack),
		cmocka_unit_test(dwarf_locals_match_capture),
	};
	const struct CMUnitTest recover[] = {
		BOTH_RECOVER(recover_null_dereference),
		BOTH_RECOVER(recover_write_to_read_only_page),
		BOTH_RECOVER(recover_division_by_zero),
		BOTH_RECOVER(recover_abort),
		BOTH_RECOVER(recover_with_dwarf_locals),
		cmocka_unit_test_setup_teardown(recover_nested, setup_recover,
		                                teardown_recover),
		cmocka_unit_test_setup_teardown(recover_without_saving_the_mask,
		                                setup_recover, teardown_recover),
		cmocka_unit_test_setup_teardown(recover_on_other_threads,
		                                setup_recover, teardown_recover),
		cmocka_unit_test_setup_teardown(recover_crashes_at_once,
		                                setup_recover, teardown_recover),
		cmocka_unit_test_setup_teardown(recover_without_the_service,
		                                setup_recover, teardown_recover),
		cmocka_unit_test_setup_teardown(recover_stack_overflow,
		                                setup_recover, teardown_recover),
	};
	const struct CMUnitTest unarmed[] = {
		cmocka_unit_test(unarmed_crash_kills),
		cmocka_unit_test(unarmed_crash_goes_to_the_prior_handler),
		cmocka_unit_test(sent_signal_is_not_recovered),
	};
	int failed = 0;
	assert_false(remo_tainted());
	keep_remo_handlers();
	failed += cmocka_run_group_tests_name("trace naming", naming, NULL, NULL);
	failed += cmocka_run_group_tests_name("trace locals", locals, NULL, NULL);
	failed += cmocka_run_group_tests_name("trace unarmed", unarmed, NULL,
	                                      NULL);
	failed += cmocka_run_group_tests_name("trace recover", recover, NULL,
	                                      NULL);
	return failed != 0;
}
