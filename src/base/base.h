/*
 * base/base.h -- the bottom layer: memory, hashing, UTF-8, uint64 maps,
 * byte buffers, the monotonic clock and the status table.  Nothing here
 * knows what a value is.
 *
 * The layers of src/, bottom to top (doc/design.md section 1):
 *
 *   base  value  wire  types  trace  channel  session  api  traceback  net
 *
 * Each folder is one layer with one header, which includes the header of
 * the layer below it and nothing above.  A file includes only its own
 * layer's header (and private headers of its own folder), so it sees its
 * own layer and those below.  A lower layer that must reach a higher one
 * does it through a hook the higher layer installs (a function pointer),
 * never by calling it by name.  tests/check_layers.sh, run by make check,
 * enforces both rules on the sources and on the object files.
 *
 * Naming, stated once for the whole library:
 *   remo_ / REMO_    public, declared in include/remo/remo.h, exported
 *   remo__           internal but shared between files, never exported
 *                    (the build uses -fvisibility=hidden, and a test
 *                    checks the export list)
 *   plain prefix     static to one file: wire_put_u32, dict_probe
 */
#ifndef REMO_BASE_H
#define REMO_BASE_H

#include "config.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "remo/remo.h"

/* Bugs are asserted; anything a peer can cause returns a status code. */
#define REMO__ASSERT(x) assert(x)

/*
 * Thread-local state that a crash handler reads is initial-exec TLS: the
 * compiler then reaches it at a fixed offset from the thread pointer,
 * while the default model for a shared library calls __tls_get_addr,
 * which may allocate, and the handler must not (trace/recover.c).  Use
 * it on the definition and on every declaration of the variable.
 */
#define REMO__TLS_IE __attribute__((tls_model("initial-exec")))

/* ---- memory (alloc.c) -------------------------------------------------- */

void *remo__malloc(size_t n);
void *remo__realloc(void *p, size_t n);
void remo__free(void *p);
/* remo__strdup: a remo__malloc'd copy of s; NULL for NULL or no memory. */
char *remo__strdup(const char *s);

/* ---- byte buffers (buf.c) ---------------------------------------------- */

/* remo__buf_grow: makes room for extra more bytes past b->len.
 * REMO_ENOMEM (b unchanged).  Inline for the case with room already: the
 * codec's writer asks once per item (measured: a call out of line made
 * encoding a 119-byte call message 7% slower than when it lived in the
 * writer's own file). */
int remo__buf_grow_slow(remo_buf *b, size_t extra);
static inline int remo__buf_grow(remo_buf *b, size_t extra)
{
	return b->cap - b->len >= extra ? REMO_OK : remo__buf_grow_slow(b, extra);
}

/* ---- the monotonic clock (clock.c) ------------------------------------- */

/* Milliseconds and microseconds of CLOCK_MONOTONIC: for deadlines,
 * leases and spins, never for the time of day. */
int64_t remo__now_ms(void);
int64_t remo__now_us(void);
/* remo__now_ms_coarse: CLOCK_MONOTONIC_COARSE, a few ms behind at most,
 * for the lease's stamps of every message sent and received: measured,
 * the precise clock read for those was 10 to 16% of a pipelining
 * client's time (issue 18's profile). */
int64_t remo__now_ms_coarse(void);
/* remo__deadline_ms: now + timeout_ms, or -1 for a negative timeout (no
 * deadline). */
int64_t remo__deadline_ms(int timeout_ms);
/* remo__ms_left: the ms left until deadline (0 if past), or -1 for
 * deadline -1 (none); clamped to INT_MAX, for poll(2) and friends. */
int remo__ms_left(int64_t deadline);

/* ---- uint64 -> pointer maps (map.c) ------------------------------------ */

struct remo__map_slot {
	uint64_t key;
	void *val; /* NULL: empty */
};

/* Zero-fill to start.  Values must not be NULL. */
struct remo__map {
	struct remo__map_slot *slots;
	size_t mask; /* slots - 1, or 0 before the first put */
	size_t len;
};

void *remo__map_get(const struct remo__map *m, uint64_t key);
/* remo__map_put: inserts or replaces (replacing never fails).
 * REMO_ENOMEM (map unchanged). */
int remo__map_put(struct remo__map *m, uint64_t key, void *val);
/* remo__map_del: removes key; returns its value or NULL. */
void *remo__map_del(struct remo__map *m, uint64_t key);
/* remo__map_next: iteration from *pos = 0; no changes meanwhile. */
bool remo__map_next(const struct remo__map *m, size_t *pos, uint64_t *key,
                    void **val);
void remo__map_free(struct remo__map *m);

/* ---- hashing (hash.c) -------------------------------------------------- */

/* SipHash-1-3 of n bytes with the per-process key. */
uint64_t remo__siphash(const void *p, size_t n);
/* A keyed mix of one 64-bit word, for ints and for combining hashes. */
uint64_t remo__hash_u64(uint64_t x);

/* ---- UTF-8 (utf8.c) ---------------------------------------------------- */

bool remo__utf8_valid(const uint8_t *p, size_t n);

#endif /* REMO_BASE_H */
