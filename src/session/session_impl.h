/*
 * session_impl.h -- the session layer's private header: its messages,
 * its structs, the thread model and the lock order, stated once for the
 * files of this folder.  Layers above see session.h only.
 *
 * One session per peer: the handshake, request ids, routing replies and
 * nested requests to the threads that wait for them, the object table,
 * proxies, shapes, and releasing references in batches.  The files, one
 * concept each (as Cap'n Proto's rpc.c++ names its tables):
 *
 *   session.c  lifetime: new, close, free, ending; the message queues
 *   table.c    exports and imports: the export list, the object table
 *              (what we sent), proxies (what we received), the shapes a
 *              peer has, the codec's hooks for references
 *   send.c     encoding and sending, with what is due before a message
 *              (shapes, releases, drops) and MULTI frames
 *   recv.c     receiving and routing, and waiting (the reader role)
 *   serve.c    serving requests: answers, kept results for pipelining,
 *              the serving context tracebacks read
 *   call.c     questions: synchronous requests
 *   future.c   async calls, batches, promises and their deadlines
 *   lease.c    the lease thread: heartbeats and dead peers
 *
 * Neighbours: below, a remo_channel (send, recv) and the codec (wire/),
 * which table.c gives hooks for references; above, api/ops.c, which
 * turns remo_getattr and friends on a proxy into remo__session_request
 * and installs the hook that applies a request's operation here.
 *
 * Thread model (doc/design.md, "thread model"): there is no reader
 * thread.  Whichever waiting thread finds nobody reading becomes the
 * reader, receives one message, routes it, and goes back to waiting:
 *
 *   reply or error  -> the waiter whose request id it names
 *   request with a cause that is one of our pending calls
 *                   -> that call's waiter, which serves it in its own
 *                      thread: a callback runs in the thread that made
 *                      the call, so callbacks nest both ways, and a
 *                      callback that needs a lock its caller holds (a
 *                      recursive mutex, say) still works
 *   other request   -> the top-level queue, served by remo_session_serve
 *                      threads, or by any waiter if nobody serves
 *
 * The rejected design, a reader thread per session, costs a thread and
 * two context switches per call, and makes callbacks run in a thread the
 * program did not choose.
 *
 * Locks: s->lock guards everything but sending; s->send_lock serialises
 * encoding and sending, so that a shape is always sent before the first
 * message that uses it.  Order: send_lock, then lock.  No value is
 * released under s->lock (a release can run a destructor or reach
 * another session).
 */
#ifndef REMO_SESSION_IMPL_H
#define REMO_SESSION_IMPL_H

#include "session/session.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define PROTO_VERSION 1

enum msg_type {
	MSG_HELLO = 0,   /* [0, version, max_message, max_call_depth]       */
	MSG_REQ = 1,     /* [1, reqid, cause, depth, op, target, a, b]      */
	MSG_REPLY = 2,   /* [2, reqid, value]                               */
	MSG_ERROR = 3,   /* [3, reqid, error]                               */
	MSG_RELEASE = 4, /* [4, (id, count, id, count, ...)]                */
	MSG_SHAPE = 5,   /* [5, shape_id, shape]                            */
	MSG_BYE = 6,     /* [6]                                             */
	MSG_PING = 7,    /* [7]: a heartbeat, for the lease               */
	MSG_DROP = 8,    /* [8, (reqid, ...)]: kept results not needed    */
	MSG_BATCH = 9,   /* [9, request, request, ...]: each a whole REQ  */
	MSG_MULTI = 10,  /* [10, message, ...]: what would have gone in
	                    frames of their own, in one (a request and the
	                    releases sent before it)                      */
	MSG_AUTH = 11,   /* [11, proof]: the shared secret, proved (auth.c) */
	MSG_REFUSED = 12, /* [12, status]: instead of HELLO, a server that
	                     will not open a session says why (full)     */
	MSG_CANCEL = 13, /* [13, reqid]: the caller gave up on a request
	                    (timed out, cancelled); answered by its reply,
	                    if that went already, or CancelledError     */
};

/* A message this small takes the releases and drops due before it into
 * its own frame (MSG_MULTI): measured, a pipelined call sent its
 * future's DROP as a frame of its own (1.94 frames per call). */
#define MULTI_MAX 4096
#define MULTI_PARTS 8 /* messages one MULTI may hold */

/* A request's op field: the operation in the low 8 bits, flags above
 * (session.h: REMO__REQ_KEEP, _ONEWAY, _PIPE; doc/wire.md). */
#define REQ_FLAGS (REMO__REQ_KEEP | REMO__REQ_ONEWAY | REMO__REQ_PIPE | \
                   REMO__REQ_DEADLINE)

/* Release batches go out when this many ids wait, or with the next
 * message sent, whichever is first. */
#define RELEASE_BATCH 64

/* What a peer may make us hold: shapes it sent, and requests waiting to
 * be served.  A remo peer makes calls one per thread and shapes one per
 * type, so these are far above real use.  At MAX_QUEUED requests (or
 * max_queued_bytes) reading stops until some are served (remo__rx_full);
 * past twice that (only a thread waiting for its own reply reads on) the
 * peer is flooding and the session ends (REMO_EPROTO, REMO_ELIMIT). */
#define MAX_SHAPES 65536
#define MAX_QUEUED 4096

/* Backpressure: the peer's requests not yet served are at their budget
 * (this session's, or, for a session that holds some, the process's:
 * remo_queue_set_budget), so nothing more is read for them: only a
 * thread waiting for its own reply reads on (it may need that reply to
 * finish what it serves).  Under s->lock. */
struct msg;
bool remo__rx_full(const remo_session *s);
/* A request of the peer's joins the queues (counted in its session's
 * and the process's bytes).  Under s->lock. */
void remo__rx_add(remo_session *s, struct msg *m);

struct msg {
	struct msg *next;
	remo_buf buf;
	size_t size;     /* buf.len as received: what a request counts in
	                    the queue budgets (a one-way request's buffer
	                    may move into its decoded bytes, leaving 0) */
	int type;
	uint64_t reqid, cause;
	uint64_t depth, op;
	unsigned flags;  /* a request's REMO__REQ_* flags */
	uint64_t pipe;   /* REMO__REQ_PIPE: the request whose result is the
	                    target */
	int64_t deadline; /* REMO__REQ_DEADLINE: when the caller gives up,
	                     in our clock (ms); else -1 */
	remo__rd rest; /* the fields after the header, inside buf */
	/* Decoded by the reader (replies, one-way requests): see msg_decode */
	bool decoded;
	int drc;
	remo_value vals[3];
};

struct waiter {
	uint64_t reqid;          /* our request; 0 for a serving thread */
	struct msg *head, *tail; /* requests that belong to our call    */
	struct msg *reply;
	struct remo_future *fut; /* an async call: route settles it     */
	bool done;               /* fut settled                         */
};

/*
 * An async call.  Counted: the caller's handle, the session's while it is
 * in flight, and each promise made from it.  Everything but refs is
 * under s->lock once started.
 */
struct remo_future {
	atomic_uint refs;
	remo_session *s;         /* retained; NULL for a call that ran here */
	struct waiter w;
	bool keep;               /* the peer keeps the result (pipelining) */
	bool started;            /* sent: only then can fn be called       */
	int status;              /* REMO_OK, REMO_ERAISED, or the failure  */
	remo_value value;        /* the result, or the error               */
	remo_value args[3];      /* retained while in flight               */
	int64_t deadline;        /* ms, or -1                              */
	remo_future_fn *fn;
	void *user;
	bool then_set;           /* remo_future_then was called           */
	bool cancelling;         /* remo_future_cancel sent CANCEL: the
	                            peer's CancelledError settles it as
	                            REMO_ECANCELED                         */
	struct remo_future *prev, *next; /* s->inflight, oldest first      */
	struct remo_future *settled_next;
};

/* A result kept for pipelined requests (callee side). */
struct kept {
	bool done, failed, dropped;
	uint32_t uses;           /* pipelined requests routed, not served */
	remo_value val;
	size_t weight;           /* val's, counted in s->kept_bytes */
	struct msg *wait_head, *wait_tail; /* pipelined requests that came
	                                      to be served before it was
	                                      done: queued when it is */
};

/* Ints waiting to go to the peer in the next preamble (send_preamble):
 * RELEASE's (id, count) pairs, DROP's reqids.  Under s->lock. */
struct due {
	uint64_t *v;
	size_t n, cap;
};

struct entry {
	uint64_t id;
	uint64_t key;      /* identity: the pointer (table.c, entry_key) */
	struct entry *same; /* the next entry with the same key */
	uint64_t count;    /* sent to the peer, minus released */
	remo_value value;  /* retained */
};

struct remo_session {
	atomic_uint refs;
	struct remo_session *lease_next; /* in the lease list, if leased */
	atomic_llong last_recv_ms, last_send_ms;
	remo_channel ch;
	remo_exports *exports;
	remo_session_opts opts;
	_Atomic size_t peer_max_message; /* written by the reader, read by senders */
	const char *eproto_why;  /* why the peer broke the protocol (a
	                            static string; recv.c, the reader) */
	char bye_why[160];       /* the reason the peer's BYE gave, or "" */
	_Atomic int64_t peer_lease_ms;   /* the peer's lease, told in HELLO
	                                    (0: none, or a peer too old to
	                                    tell) */
	atomic_int nparked;    /* threads parked with a live traceback */
	atomic_bool served;    /* remo_session_serve was called: the lease
	                          thread watches it for helpers         */
	atomic_bool polled;    /* an event loop reads it (poll_kick)    */
	atomic_int turns_serving; /* polled: turns inside a call: nobody
	                          reads for them, the lease thread does */
	void (*poll_kick)(void *arg); /* under lock: ask for a turn     */
	void *poll_arg;
	atomic_int ndeadlines; /* async calls in flight with a deadline */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	int status;            /* REMO_OK while open */
	atomic_bool reading;   /* written under lock; the lease thread peeks */
	bool hello_seen;
	unsigned char *secret; /* opts.secret, copied; NULL: none; a
	                          session with one is authenticated once
	                          remo_session_new returns it */
	size_t secret_len;
	uint64_t next_reqid;
	uint64_t next_id;
	unsigned nservers;     /* threads in remo_session_serve */
	struct remo__map pending;   /* reqid -> waiter */
	struct msg *top_head, *top_tail;
	size_t nqueued;             /* requests in all queues */
	remo_buf rxspare;           /* a used receive buffer, kept */
	size_t max_queued;          /* MAX_QUEUED; lower in tests */
	size_t queued_bytes;        /* of the requests in all queues */
	size_t kept_bytes;          /* weights of the kept results */
	struct remo__map table;     /* id -> entry */
	struct remo__map table_key; /* identity -> entry */
	struct remo__map proxies;   /* id -> remo__ref, weak */
	struct remo__map shapes_in; /* shape id -> shape */
	struct due releases;        /* (id, count) pairs to send */
	atomic_bool rx_paused;      /* a reader stopped for remo__rx_full:
	                               the lease thread wakes it when the
	                               process's queue budget frees up */
	atomic_uint ndue;           /* pushes to releases or drops since
	                               the sender last took them: 0, and
	                               it need not lock to look */

	pthread_mutex_t send_lock;
	remo_buf sendbuf, shapebuf;
	struct due due_spare[2];    /* releases', drops' vectors, emptied:
	                               under send_lock */
	remo_buf multibuf, framebuf; /* a MULTI's parts, and the MULTI */
	struct remo__map shapes_out; /* shape id -> (void *)1, sent */
	const void **shape_queue;    /* types or funcs to send first */
	bool *shape_queue_is_type;
	size_t nshape_queue, capshape_queue;
	int put_error;               /* a put_ref failure while encoding */
	uint64_t *put_ids;           /* ids counted by the message being  */
	size_t nput_ids, capput_ids; /* encoded, to undo if it fails      */

	/* Serving (under lock) */
	struct remo__map running;    /* reqid -> struct serving, on the stack
	                                of the thread that serves it      */
	struct remo__map deferred;   /* reqid -> remo_deferred, pending    */
	unsigned nbusy;              /* top-level requests being served by
	                                threads counted in nservers       */
	unsigned nhelpers;           /* helper threads (serve.c)          */
	unsigned noneway_busy;       /* of nbusy, one-way requests: while
	                                one runs, no other starts          */

	/* Call styles (under lock) */
	struct remo_future *inflight_head, *inflight_tail;
	size_t ninflight;            /* async calls in flight             */
	size_t nkept_out;            /* our futures the peer keeps        */
	unsigned oneway_since;       /* one-way calls since the last wait */
	struct remo__map kept;       /* peer's reqid -> struct kept       */
	struct due drops;            /* reqids to send in MSG_DROP        */
};

struct remo_exports {
	pthread_mutex_t lock;
	remo_value names; /* dict: str -> value */
	remo_value who;   /* dict: str -> tuple of str, the identities that
	                     may look a name up (remo_export_to); a name
	                     not in it is for everyone */
};

/* The request this thread is serving, innermost first, per session. */
struct serving {
	remo_session *s;
	uint64_t reqid;
	uint64_t depth;
	struct serving *prev;
	bool oneway;      /* the request wants no reply                  */
	atomic_bool answered; /* its answer went, or is going: set by
	                     whoever sends it first (the serving thread,
	                     a live traceback's early ERROR, or the reader
	                     answering a CANCEL with CancelledError)     */
	atomic_bool cancelled; /* the caller gave up, or the session ended
	                     (remo_cancelled)                            */
	size_t lmark;     /* where its REMO_LOCAL records start          */
	bool keep;        /* the peer may pipeline on its result         */
	int64_t deadline; /* the caller's, in ms of our clock; -1: none  */
	struct remo_deferred *deferred; /* remo_defer took the call      */
};

/*
 * A call taken by remo_defer: answered later, from any thread, exactly
 * once (serve.c).  Counted: the program's handle (given back by the
 * answer) and the session's, while it is in s->deferred or its cancel
 * hook runs.
 */
enum { DEFER_PENDING, DEFER_ANSWERED, DEFER_CANCELLED };
struct remo_deferred {
	atomic_uint refs;
	remo_session *s;         /* retained */
	uint64_t reqid;
	bool keep;               /* a kept result: settle it too            */
	bool oneway;             /* no answer goes                          */
	bool serving;            /* the function that deferred it has not
	                            returned yet: a cancel hook waits      */
	bool hook_due;           /* cancelled while serving was true        */
	int state;               /* DEFER_*, under s->lock                  */
	int end;                 /* DEFER_CANCELLED: REMO_ECANCELED, or the
	                            session's status when it ended          */
	int64_t deadline;
	void (*on_cancel)(struct remo_deferred *d, void *user);
	void *user;
};
/* The innermost request this thread serves (serve.c).  Initial-exec: a
 * crash handler reads it (remo__serving_ref). */
extern _Thread_local struct serving *remo__tls_serving REMO__TLS_IE;

/* Operation names, for errors (call.c). */
extern const char *const remo__op_names[];

struct msg_parts {
	const int64_t *ints;
	size_t nints;
	const remo_value *vals;
	size_t nvals;
};

/* One request's fields, ready for remo__send_parts (call.c). */
struct req {
	int64_t ints[7];
	remo_value vals[3];
	struct msg_parts parts;
};

/* ==== shared between the files of this folder ========================== */

/* ---- session.c: lifetime and queues ---- */

/* Frees a message and the values decoded from it.  Not under s->lock. */
void remo__msg_free(struct msg *m);
/* remo__msg_free, keeping m's buffer for the next receive. */
void remo__msg_done(remo_session *s, struct msg *m);
void remo__queue_push(struct msg **head, struct msg **tail, struct msg *m);
struct msg *remo__queue_pop(struct msg **head, struct msg **tail);

/* Ends s with status (if open): waiters fail, the peer's references are
 * released, the channel is closed.  Not under s->lock. */
void remo__session_end(remo_session *s, int status);

/* ---- table.c: exports and imports ---- */

/* The exported value of name (new), or REMO_ENOTFOUND, also for a
 * name restricted to identities s's peer has none of (it does not learn
 * that the name exists). */
int remo__exports_get(remo_session *s, remo_value name, remo_value *out);
/* The names s's peer may look up, in export order: a new tuple. */
int remo__exports_names(remo_session *s, remo_value *out);
/* The peer's type of shape id (remo__shape_base_fn, ctx: the session). */
const remo_type *remo__shape_base(void *ctx, uint32_t id);
/* Takes count from id's entry of the object table (a release). */
void remo__table_uncount(remo_session *s, uint64_t id, uint64_t count);
/* Takes back the counts of a message that was encoded but not sent. */
void remo__put_rollback(remo_session *s);
/* The codec's hooks (remo__codec): a reference out, and one in. */
int remo__hook_put_ref(void *ctx, remo_buf *b, remo_value v);
int remo__hook_get_ref(void *ctx, remo_kind kind, uint64_t id, bool home,
                       uint32_t shape_id, remo_value *out);
/* Queues k ints due to the peer; true when a batch is full (then
 * remo__due_flush after unlocking).  Under s->lock. */
bool remo__due_push(remo_session *s, struct due *d, const uint64_t *v,
                    size_t k);
void remo__due_flush(remo_session *s);

/* ---- send.c: sending (under send_lock unless said) ---- */

int remo__send_raw(remo_session *s, const remo_buf *b);
/* Sends what is due before a message: shapes, releases, drops; into
 * a MULTI when into is given, within budget bytes. */
int remo__send_preamble(remo_session *s, remo_buf *into, uint32_t *parts,
                        size_t budget);
/* Encodes [ints..., vals...] and sends it, preamble first; takes
 * send_lock. */
int remo__send_msg(remo_session *s, const int64_t *ints, size_t nints,
                   const remo_value *vals, size_t nvals);
/* n messages, in one BATCH frame when batch; takes send_lock. */
int remo__send_parts(remo_session *s, const struct msg_parts *m, size_t n,
                     bool batch);
int remo__send_parts_locked(remo_session *s, const struct msg_parts *m,
                            size_t n, bool batch);

/* ---- recv.c: receiving, routing, waiting ---- */

/* One non-negative int item of a message's header (false otherwise). */
bool remo__read_uint(remo__rd *rd, uint64_t *out);

/* Frees a kept result nobody can name; the value to release after
 * unlocking.  Under s->lock. */
remo_value remo__kept_maybe_free(remo_session *s, uint64_t reqid,
                                 struct kept *k);
/* Decodes the n values of m (the reader does it for replies). */
int remo__msg_decode(remo_session *s, struct msg *m, int n);
/* Reads and routes what arrives, for up to timeout_ms. */
int remo__reader_turn(remo_session *s, int timeout_ms);
/* Waits for w's reply (or fut) until deadline, serving requests that
 * belong to it; the reader role is taken when free. */
int remo__wait_for(remo_session *s, struct waiter *w, int64_t deadline,
                   struct msg **reply);

/* ---- serve.c: serving ---- */

/* The codec for decoding m's values (views into its buffer when big). */
const remo__codec *remo__session_codec_for(remo_session *s, remo__codec *c,
                                           struct msg *m, remo_value *base);
/* Serves request m on this thread, replies, frees m. */
void remo__serve(remo_session *s, struct msg *m);
/* A request of the peer's left the queues (to be served, or cancelled):
 * it counts no more against remo__rx_full.  Under s->lock. */
void remo__rx_taken(remo_session *s, const struct msg *m);
/* The session has work that a paused or idle reader must see: threads
 * waiting on it wake, and an event loop not served by helpers is asked
 * for a turn.  Under s->lock. */
void remo__session_wake(remo_session *s);
/* The session ended: its queued bytes leave the process's count. */
void remo__rx_end(remo_session *s);

/* The reader got CANCEL for reqid: a queued request is taken out and
 * answered CancelledError, a running one is marked and answered, a
 * deferred one is cancelled (its hook runs). */
void remo__serve_cancel(remo_session *s, uint64_t reqid);
/* The session ended: every deferred call is cancelled (hooks run) and
 * every running one marked.  Not under s->lock. */
void remo__serve_end(remo_session *s);
/* Starts a helper thread for s if its top-level requests wait while
 * every serving thread is busy (the lease thread asks, each tick). */
void remo__serve_maybe_help(remo_session *s, bool idle);

/* The channel's account of the peer (remo_channel.peer) into buf;
 * false, and "", when it gives none. */
bool remo__session_peer(remo_session *s, char *buf, size_t len);

/* ---- call.c: synchronous requests ---- */

/* The cause and depth of a request made now: the request this thread
 * serves on s, if any; RecursionError past the session's limit. */
int remo__req_context(remo_session *s, uint64_t *cause, uint64_t *depth);
void remo__req_fill(struct req *r, uint64_t reqid, uint64_t cause,
                    uint64_t depth, int op, unsigned flags, remo_value target,
                    remo_value a, remo_value b);
/* Adds the caller's deadline (absolute ms, -1: none) to a filled r. */
void remo__req_deadline(struct req *r, int64_t deadline);
/* Tells the peer we gave up on reqid (MSG_CANCEL). */
void remo__req_cancel(remo_session *s, uint64_t reqid);
/* Raises the error for a request that could not be sent. */
int remo__req_send_failed(int rc, int op);

/* ---- future.c: async calls ---- */

/* Settles f (under s->lock); callbacks run in remo__futures_notify,
 * after unlocking, over the *settled list. */
void remo__future_settle(remo_session *s, struct remo_future *f, int status,
                         remo_value value, struct remo_future **settled);
void remo__futures_notify(struct remo_future *settled);
/* Settles every async call of s past its deadline (the lease's tick). */
void remo__futures_expire(remo_session *s);

/* The status a REFUSED message may carry (others are EPROTO). */
static inline int remo__refused_status(uint64_t st)
{
	return st == REMO_ELIMIT || st == REMO_EAUTH ? (int)st : REMO_EPROTO;
}

/* ---- auth.c: the authenticated handshake ---- */

#define REMO__NONCE_LEN 32
/* The largest message of the authenticated opening (HELLO, AUTH, a
 * BYE or REFUSED): a peer that has proved nothing holds no more. */
#define REMO__OPENING_MAX 1024
#define REMO__PROOF_LEN 32
/* 32 random bytes: REMO_ENOMEM if OpenSSL cannot give them. */
int remo__auth_nonce(unsigned char nonce[REMO__NONCE_LEN]);
/* After our HELLO with nonce went: reads the peer's HELLO, sends our
 * proof, reads and checks the peer's, within opts.handshake_ms.
 * REMO_EAUTH, REMO_ETIMEDOUT, REMO_EPROTO, or a channel's failure. */
int remo__session_auth(remo_session *s,
                       const unsigned char nonce[REMO__NONCE_LEN]);

/* ---- lease.c ---- */

void remo__lease_add(remo_session *s);
void remo__lease_remove(remo_session *s);

#endif /* REMO_SESSION_IMPL_H */
