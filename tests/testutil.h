/*
 * testutil.h -- what every cmocka suite here shares: a counting and
 * failing allocator installed through remo_set_allocator (the one
 * allocation indirection), and small helpers for building messages.
 *
 * Include after <cmocka.h> and its prerequisites.
 */
#ifndef REMO_TESTUTIL_H
#define REMO_TESTUTIL_H

#include <remo/remo.h>
#include <stdlib.h>

/* Allocations made since test_alloc_reset(), and a countdown: when
 * test_alloc_fail_after reaches 0 every further allocation fails. */
static size_t test_alloc_count;
static long test_alloc_fail_after = -1;

static void *test_malloc_hook(size_t n)
{
	if (test_alloc_fail_after == 0)
		return NULL;
	if (test_alloc_fail_after > 0)
		test_alloc_fail_after--;
	test_alloc_count++;
	return malloc(n);
}

static void *test_realloc_hook(void *p, size_t n)
{
	if (test_alloc_fail_after == 0)
		return NULL;
	if (test_alloc_fail_after > 0)
		test_alloc_fail_after--;
	test_alloc_count++;
	return realloc(p, n);
}

static void test_free_hook(void *p)
{
	free(p);
}

static const remo_allocator test_allocator = {
	test_malloc_hook, test_realloc_hook, test_free_hook};

/* Start counting (and optionally failing after n allocations; -1: never). */
static inline void test_alloc_reset(long fail_after)
{
	remo_set_allocator(&test_allocator);
	test_alloc_count = 0;
	test_alloc_fail_after = fail_after;
}

static inline void test_alloc_restore(void)
{
	test_alloc_fail_after = -1;
	remo_set_allocator(NULL);
}

/* Pack v (borrowed) into a fresh buffer; fails the test on error. */
static inline remo_buf test_pack(remo_value v)
{
	remo_buf b = {0};
	assert_int_equal(remo_pack(v, &b), REMO_OK);
	return b;
}

/* Pack, unpack, and check the result equals v; returns the bytes. */
static inline remo_buf test_roundtrip(remo_value v)
{
	remo_buf b = test_pack(v);
	remo_value back;
	assert_int_equal(remo_unpack(b.data, b.len, &back), REMO_OK);
	assert_true(remo_equal(v, back));
	assert_int_equal(back.kind, v.kind);
	remo_value_release(back);
	return b;
}

/* Exports C function fn as name with signature sig; fails the test on
 * error.  (Include cmocka before this header.) */
static inline void test_export_fn(remo_exports *e, const char *name,
                                  const char *sig, void (*fn)(void))
{
	remo_value f = remo_function(name, sig, fn, NULL);
	assert_true(remo_ok(f));
	assert_int_equal(remo_export(e, name, f), REMO_OK);
	remo_value_release(f);
}

/* TEST_UNDER_ASAN: 1 in an ASan build, which keeps SIGSEGV for itself. */
#if defined(__SANITIZE_ADDRESS__)
#define TEST_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_UNDER_ASAN 1
#endif
#endif
#ifndef TEST_UNDER_ASAN
#define TEST_UNDER_ASAN 0
#endif

/* TEST_UNDER_TSAN: 1 in a ThreadSanitizer build, where the suites that
 * crash on purpose run too (the crash handler is signal-safe: issue 11)
 * and allow for what TSan does differently (its own report for a crash
 * nothing recovers from; the mask it runs a handler under; no threads
 * in a child of a multi-threaded fork). */
#if defined(__SANITIZE_THREAD__)
#define TEST_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST_UNDER_TSAN 1
#endif
#endif
#ifndef TEST_UNDER_TSAN
#define TEST_UNDER_TSAN 0
#endif

#endif /* REMO_TESTUTIL_H */
