/*
 * locals.c -- the values a function records with REMO_LOCAL, kept
 * per thread until its call ends.
 *
 * One fixed array per thread (REMO_LOCALS_MAX entries, allocated at the
 * first record) holds (func, name, value) in the order they came.  A call
 * served by remo takes a mark before it runs; when it fails, its locals
 * are the entries after the mark, and they are taken out as a dict; when
 * it returns, they are dropped.  Marks nest (a callback served while a
 * call waits records above its caller's entries), so the mark carries
 * what it needs to restore: the length, the "floor" below which a
 * record must not look (the entries of enclosing calls), and the count
 * of drops so far, packed in one size_t:
 *
 *     bits 0..15 length, 16..31 floor, 32..63 drops (wrapping)
 *
 * Recording the same func and name twice in one call replaces the value
 * in place, so a loop that records its counter uses one entry, and the
 * search for it stops at the floor: a recursive call must not overwrite
 * its caller's value.  The search is linear, over the current call's
 * entries only; they are few.
 *
 * Rejected: a growable list (a failing function in a loop would grow it
 * without bound, and the cost of a record would include a realloc now
 * and then); copying func and name (a malloc per record, for strings
 * that are literals in every real use).
 *
 * The thread's state is one initial-exec struct, so that a crash handler
 * can take its address (remo__locals_self) and the crash service, on
 * another thread, can take the crashed call's locals while the crashed
 * thread waits in its handler (remo__locals_take_of).
 */
#include "trace/trace.h"

#include <pthread.h>
#include <stdlib.h>

_Static_assert(REMO_LOCALS_MAX < 0x10000, "the mark packs lengths in 16 bits");
_Static_assert(sizeof(size_t) >= 8, "the mark needs 64 bits");

struct locals_entry {
	const char *func;
	const char *name;
	remo_value v;
};

/* One thread's list.  e is plain malloc, as raise.c's slot: it lives as
 * long as the thread and is freed by a thread-exit destructor, perhaps
 * after a test changed remo's allocator. */
struct remo__locals {
	struct locals_entry *e;
	uint32_t len, floor, drops;
};

static __thread struct remo__locals locals_tls REMO__TLS_IE;

static pthread_key_t locals_key;
static pthread_once_t locals_once = PTHREAD_ONCE_INIT;

static void locals_release(struct locals_entry *e, uint32_t from, uint32_t to)
{
	for (uint32_t i = from; i < to; i++)
		remo_value_release(e[i].v);
}

static void locals_thread_exit(void *p)
{
	struct remo__locals *l = &locals_tls;
	locals_release(p, 0, l->len);
	free(p);
	l->e = NULL;
	l->len = l->floor = 0;
}

static void locals_init(void)
{
	pthread_key_create(&locals_key, locals_thread_exit);
}

static struct locals_entry *locals_list(struct remo__locals *l)
{
	if (l->e != NULL)
		return l->e;
	pthread_once(&locals_once, locals_init);
	struct locals_entry *e = malloc(REMO_LOCALS_MAX * sizeof *e);
	if (e == NULL || pthread_setspecific(locals_key, e) != 0) {
		free(e);
		return NULL;
	}
	return l->e = e;
}

static bool locals_same(const char *a, const char *b)
{
	return a == b || strcmp(a, b) == 0;
}

void remo_local(const char *func, const char *name, remo_value v)
{
	struct remo__locals *l = &locals_tls;
	struct locals_entry *e;
	if (func == NULL || name == NULL || !remo_ok(v) ||
	    (e = locals_list(l)) == NULL) {
		remo_value_release(v);
		l->drops++;
		return;
	}
	for (uint32_t i = l->len; i-- > l->floor;) {
		if (locals_same(e[i].name, name) && locals_same(e[i].func, func)) {
			remo_value_release(e[i].v);
			e[i].v = v;
			return;
		}
	}
	if (l->len == REMO_LOCALS_MAX) {
		remo_value_release(v);
		l->drops++;
		return;
	}
	e[l->len++] = (struct locals_entry){func, name, v};
}

size_t remo__locals_mark(void)
{
	struct remo__locals *l = &locals_tls;
	size_t m = (size_t)l->len | (size_t)l->floor << 16 |
	           (size_t)l->drops << 32;
	l->floor = l->len;
	return m;
}

/* locals_restore: l back to the state at mark m; returns its length. */
static uint32_t locals_restore(struct remo__locals *l, size_t m,
                               uint32_t *from)
{
	uint32_t len = (uint32_t)(m & 0xffff);
	REMO__ASSERT(len <= l->len);
	*from = len;
	uint32_t to = l->len;
	l->len = len;
	l->floor = (uint32_t)(m >> 16 & 0xffff);
	return to;
}

/* locals_put: out[func][name] = v (stolen), making out[func] if new. */
static int locals_put(remo_value out, const char *func, const char *name,
                      remo_value v)
{
	remo_value inner;
	if (v.kind == REMO_STR) {
		size_t n;
		const char *s = remo_str_data(v, &n);
		if (!remo__utf8_valid((const uint8_t *)s, n)) {
			remo_value b = remo_bytes(s, n);
			remo_value_release(v);
			v = b;
		}
	}
	if (remo_dict_get_str(out, func, &inner) != REMO_OK) {
		int st = remo_dict_set_str(out, func, remo_dict());
		if (st != REMO_OK) {
			remo_value_release(v);
			return st;
		}
		remo_dict_get_str(out, func, &inner);
	}
	return remo_dict_set_str(inner, name, v);
}

struct remo__locals *remo__locals_self(void)
{
	return &locals_tls;
}

remo_value remo__locals_take_of(struct remo__locals *l, size_t mark)
{
	uint32_t from, to = locals_restore(l, mark, &from);
	struct locals_entry *e = l->e;
	if (from == to)
		return remo_nil();
	remo_value out = remo_dict();
	int st = remo_ok(out) ? REMO_OK : REMO_ENOMEM;
	for (uint32_t i = from; i < to; i++) {
		if (st == REMO_OK)
			st = locals_put(out, e[i].func, e[i].name, e[i].v);
		else
			remo_value_release(e[i].v);
	}
	if (st != REMO_OK) {
		remo_value_release(out);
		return remo__invalid();
	}
	return out;
}

remo_value remo__locals_take(size_t mark)
{
	return remo__locals_take_of(&locals_tls, mark);
}

void remo__locals_reset(size_t mark)
{
	struct remo__locals *l = &locals_tls;
	uint32_t from, to = locals_restore(l, mark, &from);
	if (from < to)
		locals_release(l->e, from, to);
}

unsigned remo__locals_dropped(size_t mark)
{
	return locals_tls.drops - (uint32_t)(mark >> 32);
}
