/*
 * fuzz_session.c -- the libFuzzer target for a whole session: the input
 * is a sequence of frames a peer sends (each a 2-byte big-endian length,
 * then that many bytes), fed to a real session that serves real exports
 * until the frames run out.  Not just the decoder: the handshake, the
 * routing, the object table, shapes, releases, pipelining and batches
 * all see arbitrary input here (issue 11).
 *
 * Built two ways, as fuzz_unpack.c is: by `make fuzz-session` with clang
 * -fsanitize=fuzzer (CI runs it for 60 seconds), and into
 * tests/test_session_corpus, which replays tests/corpus/session (real
 * conversations, made by tests/corpus/make_session_seeds.py) and
 * mutations of it in every make check.
 *
 * What holds, beyond no crash or sanitizer report: the session ends (the
 * frames run out, so it must not wait for a reply that will never come:
 * nothing exported calls its peer).  Leaks are not checked here: a peer
 * can make a list that contains itself (setitem of a list into itself),
 * which reference counting never frees -- a known limit (doc/design.md
 * section 2), not something to find again each run.  So libFuzzer runs
 * with detect_leaks=0, and under LeakSanitizer otherwise (CI's ASan run
 * of test_session_corpus) what a run allocates is left out of its report
 * (__lsan_disable); the other suites check sessions for leaks.
 */
#include <stdio.h>
#include <stdlib.h>

#include "net/net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* LeakSanitizer's, when it is linked in (weak: absent otherwise). */
void __lsan_disable(void) __attribute__((weak));
void __lsan_enable(void) __attribute__((weak));

#define FUZZ_REQUIRE(cond)                                                  \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "fuzz_session: %s failed at %s:%d\n", \
			        #cond, __FILE__, __LINE__);                 \
			abort();                                            \
		}                                                           \
	} while (0)

struct feed {
	const uint8_t *p, *end;
	size_t sent;
};

static int feed_send(void *user, const void *msg, size_t n)
{
	(void)msg;
	((struct feed *)user)->sent += n;
	return REMO_OK;
}

static int feed_recv(void *user, remo_buf *out, int timeout_ms)
{
	struct feed *f = user;
	(void)timeout_ms;
	if (f->end - f->p < 2)
		return REMO_EPEERLOST; /* the peer is done */
	size_t n = (size_t)f->p[0] << 8 | f->p[1];
	f->p += 2;
	if ((size_t)(f->end - f->p) < n)
		n = (size_t)(f->end - f->p);
	if (remo_buf_reserve(out, n) != REMO_OK)
		return REMO_ENOMEM;
	if (n > 0) { /* an empty frame: out may have no memory at all */
		memcpy(out->data + out->len, f->p, n);
		out->len += n;
		f->p += n;
	}
	return REMO_OK;
}

static void feed_close(void *user) { (void)user; }
static void feed_destroy(void *user) { (void)user; }

/* What the session exports: plain functions, an object with a field and
 * methods, a list and a dict; nothing that calls the peer back. */
struct counter {
	int64_t n;
};
static remo_type *counter_type;

static int64_t f_add(int64_t a, int64_t b) { return a + b; }
static remo_value f_echo(remo_value v) { return remo_value_retain(v); }
static void f_fail(const char *name) { remo_raise(name, "as asked"); }
static int64_t c_inc(struct counter *c, int64_t by) { return c->n += by; }
static void c_free(void *p)
{
	free(p);
}
static remo_value f_make(int64_t n)
{
	struct counter *c = malloc(sizeof *c);
	c->n = n;
	return remo_object(counter_type, c, c_free);
}

static void export_fn(remo_exports *e, const char *name, const char *sig,
                      void (*fn)(void))
{
	remo_value f = remo_function(name, sig, fn, NULL);
	remo_export(e, name, f);
	remo_value_release(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (__lsan_disable != NULL)
		__lsan_disable();
	if (counter_type == NULL) {
		counter_type = remo_type_new("Counter", NULL, NULL, NULL);
		remo_type_field(counter_type, "n", "q", 0, 0);
		remo_type_method(counter_type, "inc", "q(by:q)",
		                 (void (*)(void))c_inc, NULL);
	}
	remo_exports *e = remo_exports_new();
	export_fn(e, "add", "q(a:q b:q)", (void (*)(void))f_add);
	export_fn(e, "echo", "r(v:r)", (void (*)(void))f_echo);
	export_fn(e, "fail", "v(name:s)", (void (*)(void))f_fail);
	export_fn(e, "make", "r(n:q)", (void (*)(void))f_make);
	remo_value l = remo_list(), d = remo_dict();
	remo_list_append(l, remo_int(1));
	remo_list_append(l, remo_str("two"));
	remo_dict_set_str(d, "k", remo_int(3));
	remo_export(e, "numbers", l);
	remo_export(e, "config", d);
	remo_value_release(l);
	remo_value_release(d);
	remo_value c = f_make(0);
	remo_export(e, "counter", c);
	remo_value_release(c);

	struct feed f = {data, data + size, 0};
	remo_channel ch = {feed_send, feed_recv, feed_close, feed_destroy, &f,
	                   NULL, NULL, NULL};
	/* no tracebacks: they would capture and name stacks, slowly, and
	 * test_traceback covers them */
	remo_session_opts o = {.traceback = REMO_TB_NONE, .max_message = 65536};
	int st;
	remo_session *s = remo_session_new(&ch, e, &o, &st);
	FUZZ_REQUIRE(s != NULL);
	int rc = remo_session_serve(s, -1);
	FUZZ_REQUIRE(rc != REMO_OK && rc != REMO_ETIMEDOUT); /* it ended */
	remo_session_free(s);
	remo_exports_free(e);
	if (__lsan_enable != NULL)
		__lsan_enable();
	return 0;
}
