/*
 * ts.h -- a Linda tuple space on remo: the client library.
 *
 * A space lives in a remo-tuplespace server; clients connect to it and
 * put tuples in (ts_out), take them out (ts_in, ts_inp) or read them
 * (ts_rd, ts_rdp) by pattern.  A pattern is a tuple of the same length
 * as the tuples it matches; each column matches by value (remo_equal),
 * or by a wildcard from ts_any ("any", "int", "double", "str", "bytes",
 * "bool", "tuple", "list", "dict", "object"), or, for a tuple column, by
 * a nested pattern.  The blocking forms wait up to timeout_ms (-1: for
 * ever; 0 too) and fail with REMO_ETIMEDOUT (TimeoutError) past it; a blocked
 * call holds no thread of the server's, and a tuple is never lost to a
 * caller that timed out, cancelled or died (remo's deferred replies).
 * Lists and dicts in a tuple are copied into the space (by value);
 * objects and callables stay references, usable by whoever takes them.
 */
#ifndef REMO_TS_H
#define REMO_TS_H

#include <remo/remo.h>

typedef struct ts ts;

/* ts_connect: a session with the space at url; NULL (status in *rc and
 * the reason in remo_last_error) on failure.  opts may be NULL. */
ts *ts_connect(const char *url, const remo_session_opts *opts, int *rc);
void ts_close(ts *t);

/* ts_out: puts tuple (borrowed) into the space. */
int ts_out(ts *t, remo_value tuple);
/* ts_in / ts_rd: takes / reads a tuple matching pattern (borrowed) into
 * *out (new), waiting up to timeout_ms. */
int ts_in(ts *t, remo_value pattern, int timeout_ms, remo_value *out);
int ts_rd(ts *t, remo_value pattern, int timeout_ms, remo_value *out);
/* ts_inp / ts_rdp: the same without waiting: *out nil if none matches. */
int ts_inp(ts *t, remo_value pattern, remo_value *out);
int ts_rdp(ts *t, remo_value pattern, remo_value *out);
/* ts_any: the wildcard for kind (borrowed from t; nil if unknown). */
remo_value ts_any(ts *t, const char *kind);
/* ts_count: tuples stored now (for tests and status lines). */
int ts_count(ts *t, int64_t *out);

#endif
