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
/* ts_waiting: in() and rd() calls blocked in the space now; -1 if the
 * space cannot say. */
int64_t ts_waiting(ts *t);

/*
 * Predicates: a callable of this process (remo_function, or a closure)
 * in a pattern's column matches if it returns true (a bool) for the
 * column's value, which it is given by value.  The space asks it outside
 * its lock, so it may itself use the space; one that raises, or does not
 * answer within the server's --predicate-timeout (5 s), fails the call
 * whose pattern it is with that error (TimeoutError).  A callable in a
 * tuple is matched by ts_any(t, "object"), never by itself.
 */

/*
 * ts_subscribe: fn (a callable of this process, borrowed) is called with
 * every tuple put into the space from now on that matches pattern, in
 * the order they were put, one at a time, until ts_unsubscribe or the
 * session ends.  A subscriber that falls 1024 notifications behind (or
 * takes more than the server's --notify-timeout, 5 s, over one, or
 * raises) is ended: fn is called once with nil if it can still be
 * reached, and never again.  out() never waits for a subscriber.  The
 * calls are served by the session's helper threads (remo serves a
 * client between its own calls), not by the thread that subscribed.
 * *sub (new) is the subscription.
 */
int ts_subscribe(ts *t, remo_value pattern, remo_value fn, remo_value *sub);
/* ts_unsubscribe: ends sub (and releases it): no call starts after it
 * returns. */
int ts_unsubscribe(remo_value sub);

/*
 * Workers, lindypy's eval.  ts_eval starts command (a program and its
 * arguments, run as exec://command: see remo_exec(7)), which must call
 * ts_worker_main; the worker connects to this space and runs its
 * function under the given name.  If that fails, the error is posted
 * into the space as the tuple ("error", name, "Name: message",
 * traceback): traceback is the worker's own, by reference (frames,
 * file:line, locals), usable by any client that takes the tuple while
 * the worker lives (until ts_eval_free), nil if the worker died.
 */
typedef struct ts_worker ts_worker;
int ts_eval(ts *t, const char *name, const char *command, ts_worker **out);
/* ts_eval_wait: waits for the worker's function to end: REMO_OK, or its
 * failure (REMO_ERAISED: posted as above). */
int ts_eval_wait(ts_worker *w);
/* ts_eval_free: waits as ts_eval_wait, then ends the worker process. */
void ts_eval_free(ts_worker *w);

/* In the worker program: serves ts_eval's request on stdin/stdout (the
 * exec:// channel; nothing else may be written to stdout), running
 * fn(t, name, arg) connected to the space.  fn returns REMO_OK, or fails
 * with an error raised (remo_raise): that is the error posted, with the
 * traceback of where it was raised.  Returns the exit status for main. */
int ts_worker_main(int (*fn)(ts *t, const char *name, void *arg),
                   void *arg);

#endif
