/*
 * session/session.h -- the session layer, as the layers above see it:
 * requests and their call styles, futures, the serving thread's context
 * (for tracebacks), and the hooks the layers above install.  The
 * session's own structs and the lock order are in session_impl.h,
 * private to this folder.
 */
#ifndef REMO_SESSION_H
#define REMO_SESSION_H

#include "channel/channel.h"

/* The operations a request can ask for; on the wire, so never renumber. */
enum {
	REMO__OP_LOOKUP = 1,   /* a: name                       */
	REMO__OP_GETATTR = 2,  /* target, a: name               */
	REMO__OP_SETATTR = 3,  /* target, a: name, b: value     */
	REMO__OP_CALL = 4,     /* target: callable, a: args     */
	REMO__OP_CALLM = 5,    /* target, a: method name, b: args */
	REMO__OP_LEN = 6,      /* target                        */
	REMO__OP_GETITEM = 7,  /* target, a: key                */
	REMO__OP_SETITEM = 8,  /* target, a: key, b: value      */
	REMO__OP_CONTAINS = 9, /* target, a: key                */
	REMO__OP_CHUNK = 10,   /* target, a: start index        */
};

/* remo__session_request: sends one request and waits for its reply,
 * serving nested requests meanwhile.  Values are borrowed; *out is new.
 * Failures are raised (remo_last_error) and returned as a status. */
int remo__session_request(struct remo_session *s, int op, remo_value target,
                          remo_value a, remo_value b, remo_value *out);
/* remo__session_request_timed: the same with this call's timeout (0:
 * the session's timeout_ms; -1: none). */
int remo__session_request_timed(struct remo_session *s, int op,
                                remo_value target, remo_value a, remo_value b,
                                int timeout_ms, remo_value *out);
/*
 * Call styles other than a plain call (remo.h section 11).  flags are
 * REMO__REQ_KEEP (async: the peer keeps the result so pipelined requests
 * can name it) or REMO__REQ_ONEWAY; *fut (async) gets the started future.
 * Values are borrowed (an async call retains them until it settles).
 */
#define REMO__REQ_KEEP 0x100
#define REMO__REQ_ONEWAY 0x200
#define REMO__REQ_PIPE 0x400
#define REMO__REQ_DEADLINE 0x800 /* the caller's time left travels with it */
int remo__session_start(struct remo_session *s, int op, remo_value target,
                        remo_value a, remo_value b, unsigned flags,
                        int timeout_ms, struct remo_future **fut);
/* A batch's calls, sent in one message by remo__session_send_batch. */
struct remo__breq {
	int op;
	remo_value target, a, b;     /* retained */
	struct remo_future *fut;     /* NULL: one-way */
};
int remo__session_send_batch(struct remo_session *s, struct remo__breq *r,
                             size_t n);
/* remo__future_new_batch: an unstarted future of s, for a batch item,
 * with two counts: the batch's and the caller's. */
struct remo_future *remo__future_new_batch(struct remo_session *s);
/* remo__future_abandon: a batch future that was never sent settles with
 * status (no callback: it never started). */
void remo__future_abandon(struct remo_future *f, int status);
/* remo__future_settled: a future that is already settled (a call that ran
 * locally): status and value (stolen; the error for REMO_ERAISED). */
struct remo_future *remo__future_settled(int status, remo_value value);
/* remo__promise_session: the session a pipelined request on promise p
 * goes to, or NULL when p cannot be pipelined (its call ran locally, or
 * its result is not kept, or it is a batch's call not sent yet and this
 * request is not batching) and must be waited for. */
struct remo_session *remo__promise_session(remo_value p, bool batching);
void remo__future_release(struct remo_future *f);
/* For tracebacks: the request this thread serves (traceback.c). */
/* remo__serving: the session whose request this thread serves, or NULL. */
struct remo_session *remo__serving(void);
const remo_session_opts *remo__session_opts(struct remo_session *s);
/* remo__session_tb_full: a traceback made for s's peer shows everything
 * (opts.traceback_detail, or for REMO_TB_AUTO how far the peer is
 * trusted: remo.h). */
bool remo__session_tb_full(struct remo_session *s);
/* remo__serving_reply_error: sends err as the ERROR reply of the request
 * this thread serves, now; its ordinary reply is then skipped.  try_only:
 * give up (REMO_ELIMIT) rather than wait for the send lock. */
int remo__serving_reply_error(remo_value err, bool try_only);
/* remo__serving_park_begin: reserves a park for this thread; false if it
 * is parked already (parks never nest on one stack: a failure served
 * inside a park is reported as a snapshot) or the session has
 * REMO_MAX_LIVE_PARKED threads parked.  A reservation ends with
 * remo__serving_park, or remo__serving_park_cancel if it is not used. */
bool remo__serving_park_begin(void);
void remo__serving_park_cancel(void);
/* remo__serving_park: serves that session on this thread until done(arg)
 * is true, the session ends, or the monotonic ms deadline passes; needs
 * a reservation, which it ends. */
void remo__serving_park(bool (*done)(void *), void *arg, int64_t deadline);
/* remo__serving_locals_mark: the REMO_LOCAL mark of the request this
 * thread serves (remo__locals_take). */
size_t remo__serving_locals_mark(void);
/*
 * A crash is reported by the crash service, a thread other than the one
 * that crashed (trace/recover.c).  remo__serving_ref: the request this
 * thread serves and whether it is parked, read in its signal handler
 * (async-signal-safe: initial-exec thread-locals only).
 * remo__serving_act_for: makes the calling thread act for that request
 * (remo__serving and the functions above answer for it, a park
 * included; REMO_LOCALs excepted, which stay the crashed thread's:
 * remo__locals_take_of) until remo__serving_act_end with what it
 * returned.  The request's own thread must not run meanwhile: it waits
 * in its handler.
 */
struct remo__serving_ref {
	void *ctx;   /* the request (struct serving), or NULL           */
	bool parked; /* its thread is parked: parks never nest on it    */
};
struct remo__serving_ref remo__serving_ref(void);
struct remo__serving_ref remo__serving_act_for(struct remo__serving_ref ref);
void remo__serving_act_end(struct remo__serving_ref saved);
/* For tests: sizes of a session's tables, and sending what is batched. */
size_t remo__session_table_len(struct remo_session *s);
/* The lease the peer told in HELLO (0: none, or not told). */
int64_t remo__session_peer_lease_ms(struct remo_session *s);
size_t remo__session_proxies_len(struct remo_session *s);
int remo__session_flush(struct remo_session *s);
/* Waits until no helper thread serves s (serve.c: they end soon after
 * the session does, once their calls return). */
void remo__session_join_helpers(struct remo_session *s);
/* A count of s; remo__session_release drops one, the last destroys s. */
void remo__session_retain(struct remo_session *s);
void remo__session_release(struct remo_session *s);

/*
 * For an event loop that watches the channel's descriptor instead of a
 * thread per session (net/server.c).  remo__session_poll: kick(arg) is
 * called (under the session's lock: it must only note and queue) when a
 * thread other than a turn gives up reading, so that the loop looks
 * again; NULL stops it (before arg is freed).  remo__session_serve_ready:
 * one turn: reads what has arrived and serves it, waiting linger_ms for
 * more while linger_ok(arg) (recv.c); returns the session's status, and
 * *handed true when helper threads serve the session for now (then the
 * loop stops watching it: the last helper to go kicks).
 */
void remo__session_poll(struct remo_session *s, void (*kick)(void *),
                        void *arg);
int remo__session_serve_ready(struct remo_session *s, int linger_ms,
                               bool (*linger_ok)(void *), void *arg,
                               bool *handed);
/* The peer's requests not yet served, and their bytes (for tests). */
size_t remo__session_queued(struct remo_session *s, size_t *bytes);
void remo__session_set_max_queued(struct remo_session *s, size_t n);

/* remo__session_refuse: instead of opening a session on ch, tells the
 * peer why not (REFUSED: REMO_ELIMIT, REMO_EAUTH), so that it fails by
 * name.  The caller still owns ch and closes it. */
void remo__session_refuse(const remo_channel *ch, int status);

/* remo__spin_us: the default spin window for sessions over a transport:
 * $REMO_SPIN_US, or 20 (clamped to 0..10000). */
int remo__spin_us(void);

/* ---- hooks the layers above install ------------------------------------ */

/*
 * The session serves requests and reports crashes, but what a request
 * does and what a crash becomes are decided above it: the API layer
 * applies an operation to a local value (api/ops.c), the traceback layer
 * turns a crash into an error and installs the signal handlers
 * (traceback/traceback.c).  Each installs its hooks at load time (a
 * constructor), so they are in place before any session exists; the
 * session never names a function of a layer above it.
 */
struct remo__recover;
struct remo__session_hooks {
	/* apply: operation op on a local value, as serving a request does
	 * (any op but LOOKUP).  Values borrowed, *out new; failures raised. */
	int (*apply)(int op, remo_value target, remo_value a, remo_value b,
	             remo_value *out);
	/* crashed: the error of a call that crashed under recovery (raised);
	 * returns REMO_ERAISED. */
	int (*crashed)(struct remo__recover *r);
	/* init_handlers: installs the crash handlers (once; a session with
	 * tracebacks asks): they report a crash to the caller, and recover
	 * when asked. */
	int (*init_handlers)(void);
};
/* Set once each, before main, by the layer that owns the function. */
extern struct remo__session_hooks remo__session_hooks;

#endif /* REMO_SESSION_H */
