/*
 * serve.c -- serving a request: the operation (through the API
 * layer's hook), crash recovery around it, the reply, and the results
 * kept for pipelined requests; and the serving context that the
 * traceback layer reads (remo__serving and friends).
 */
#include "session/session_impl.h"

_Thread_local struct serving *remo__tls_serving;

/* ==== serving ========================================================== */

/*
 * The codec for decoding m.  A large message becomes a bytes value that
 * owns its buffer (no copy), and large bytes inside it decode as views of
 * it: a 1 MiB argument reaches the C function without being copied.
 * *base gets that value (or nil), to release after decoding.
 */
#define VIEW_MSG_MIN (64u << 10)
const remo__codec *remo__session_codec_for(remo_session *s, remo__codec *c,
                                            struct msg *m, remo_value *base)
{
	*c = (remo__codec){.ctx = s, .put_ref = remo__hook_put_ref,
	                   .get_ref = remo__hook_get_ref};
	*base = remo_nil();
	if (m->buf.len >= VIEW_MSG_MIN) {
		remo_value b = remo__bytes_own(m->buf.data, m->buf.len);
		if (remo_ok(b)) {
			m->buf = (remo_buf){0}; /* the value owns it now */
			c->base = b;
			*base = b;
		}
	}
	return c;
}

static int serve_op(remo_session *s, int op, remo_value target, remo_value a,
                    remo_value b, remo_value *out)
{
	*out = remo_nil();
	if (op != REMO__OP_LOOKUP) {
		/* installed by api/ops.c before main: a build without the API
		 * layer is a bug, not something a peer can cause */
		REMO__ASSERT(remo__session_hooks.apply != NULL);
		return remo__session_hooks.apply(op, target, a, b, out);
	}
	if (a.kind != REMO_STR)
		return remo__raisef("TypeError", "lookup needs a str");
	if (remo__exports_get(s, a, out) != REMO_OK)
		return remo__raisef("NotFound", "nothing is exported as '%s'",
		                    remo_str_data(a, NULL));
	return REMO_OK;
}

/*
 * serve_op with crash recovery (remo_session_opts.recover): a SIGSEGV,
 * SIGBUS, SIGFPE or SIGABRT in the call returns here, and the call fails
 * with a Crash error whose traceback starts at the faulting instruction
 * (traceback.c).  What the call had allocated is lost, and a lock it
 * held stays held: hence opt-in, and the process is marked tainted.
 */
static int serve_op_guarded(remo_session *s, int op, remo_value *vals,
                            remo_value *out)
{
	struct remo__recover r;
	memset(&r, 0, sizeof r);
	r.dlocals = remo_nil();
	r.want_dlocals = s->opts.traceback == REMO_TB_LIVE;
	*out = remo_nil();
	/* 0: not saving the signal mask costs 5 ns instead of 130; the
	 * handler runs with SA_NODEFER, so nothing stays blocked after the
	 * jump (test_trace checks it) */
	if (sigsetjmp(r.jb, 0) == 0) {
		remo__recover_arm(&r);
		int rc = serve_op(s, op, vals[0], vals[1], vals[2], out);
		remo__recover_disarm(&r);
		return rc;
	}
	REMO__ASSERT(remo__session_hooks.crashed != NULL);
	return remo__session_hooks.crashed(&r);
}

/*
 * The target of a pipelined request: the result the peer asked us to
 * keep for its request reqid (0: none was kept).  Waits while that
 * request is still being served by another thread; requests are served
 * in arrival order, so with one serving thread it is always done.  A
 * failed request's error is raised again.
 */
static int kept_take(remo_session *s, uint64_t reqid, remo_value *out)
{
	pthread_mutex_lock(&s->lock);
	struct kept *k = reqid ? remo__map_get(&s->kept, reqid) : NULL;
	if (k == NULL) {
		pthread_mutex_unlock(&s->lock);
		return remo__raisef("ReferenceError",
		                    "a pipelined request names a result that "
		                    "was not kept (limit %u per session)",
		                    REMO_MAX_KEPT);
	}
	if (!k->done) { /* kept_defer saw to that: not reached */
		pthread_mutex_unlock(&s->lock);
		return remo__raisef("ReferenceError", "a pipelined request "
		                    "names a result not made yet");
	}
	bool failed = k->failed;
	remo_value v = remo_value_retain(k->val);
	k->uses--;
	remo_value gone = remo__kept_maybe_free(s, reqid, k);
	pthread_mutex_unlock(&s->lock);
	remo_value_release(gone);
	if (failed)
		return remo__raise(v);
	*out = v;
	return REMO_OK;
}

/* A kept request is done: its result (or its error) is what pipelined
 * requests naming it get. */
static void kept_settle_value(remo_session *s, uint64_t reqid, bool failed,
                              remo_value v)
{
	pthread_mutex_lock(&s->lock);
	struct kept *k = remo__map_get(&s->kept, reqid);
	remo_value gone = v;
	if (k != NULL && !k->done) {
		k->done = true;
		k->failed = failed;
		k->val = v;
		/* the pipelined requests that waited for it can be served */
		struct msg *w;
		while ((w = remo__queue_pop(&k->wait_head, &k->wait_tail)) != NULL) {
			s->nqueued++;
			s->queued_bytes += w->buf.len;
			remo__queue_push(&s->top_head, &s->top_tail, w);
		}
		gone = remo__kept_maybe_free(s, reqid, k);
		pthread_cond_broadcast(&s->cond);
	}
	pthread_mutex_unlock(&s->lock);
	remo_value_release(gone);
}

static void kept_settle(remo_session *s, uint64_t reqid, int rc,
                        remo_value result)
{
	remo_value v = rc == REMO_OK ? remo_value_retain(result)
	                             : remo_value_retain(remo_last_error());
	if (rc != REMO_OK && v.kind != REMO_ERROR) {
		remo_value_release(v);
		v = remo_error("Error", remo_strerror(rc));
	}
	kept_settle_value(s, reqid, rc != REMO_OK, v);
}

/*
 * A pipelined request whose kept result is not done yet (the request
 * it names is being served by another thread, or is parked with a live
 * traceback) waits on the kept entry, not in a thread: kept_settle
 * queues it.  A thread that blocked here could wait on work queued
 * behind it, or on itself.  True if m was set aside.
 */
static bool kept_defer(remo_session *s, struct msg *m)
{
	pthread_mutex_lock(&s->lock);
	struct kept *k = remo__map_get(&s->kept, m->pipe);
	bool defer = k != NULL && !k->done && s->status == REMO_OK;
	if (defer)
		remo__queue_push(&k->wait_head, &k->wait_tail, m);
	pthread_mutex_unlock(&s->lock);
	return defer;
}

/*
 * The arguments of request m into vals (new references): the kept result
 * a pipelined request names, then the values decoded by the reader or
 * here.  A failure is raised, named for the caller (ReferenceError for
 * an id we do not hold, ProtocolError for a shape never sent).
 */
static int serve_args(remo_session *s, struct msg *m, remo_value vals[3])
{
	int rc = REMO_OK;
	/* first, so the kept result's count of uses always goes down */
	bool pipe = (m->flags & REMO__REQ_PIPE) != 0;
	if (pipe)
		rc = kept_take(s, m->pipe, &vals[0]);
	if (rc == REMO_OK && m->depth > s->opts.max_call_depth) {
		rc = remo__raisef("RecursionError",
		                  "callbacks nested %llu deep, past the limit %u",
		                  (unsigned long long)m->depth,
		                  s->opts.max_call_depth);
	}
	remo__codec codec;
	remo_value base = remo_nil();
	if (m->decoded) {
		for (int i = pipe; i < 3; i++) {
			vals[i] = m->vals[i - pipe];
			m->vals[i - pipe] = remo_nil();
		}
		if (rc == REMO_OK && m->drc != REMO_OK)
			rc = m->drc;
	} else {
		remo__session_codec_for(s, &codec, m, &base);
	}
	for (int i = pipe; rc == REMO_OK && i < 3; i++) {
		if (!m->decoded)
			rc = remo__unpack_with(&m->rest, &codec, &vals[i]);
		if (rc == REMO_ENOTFOUND)
			rc = remo__raisef("ReferenceError",
			                  "no object with that id in this session "
			                  "(released, or never sent)");
		else if (rc == REMO_EPROTO)
			rc = remo__raisef("ProtocolError",
			                  "a reference to a shape never sent");
		else if (rc != REMO_OK)
			rc = remo__fail(rc, "decoding the arguments");
	}
	remo_value_release(base); /* views keep what they need */
	return rc;
}

/*
 * Sends request reqid's answer: result (stolen) when rc is REMO_OK, else
 * the error raised.  A result that cannot be sent (too big, not
 * encodable) becomes an error, so the caller does not wait for ever.
 */
static void serve_reply(remo_session *s, uint64_t reqid, int rc,
                        remo_value result)
{
	int64_t hdr[2] = {rc == REMO_OK ? MSG_REPLY : MSG_ERROR,
	                  (int64_t)reqid};
	remo_value payload = rc == REMO_OK ? result
	                                   : remo_value_retain(remo_last_error());
	if (payload.kind == REMO_NIL && rc != REMO_OK)
		payload = remo_error("Error", remo_strerror(rc));
	int src = remo__send_msg(s, hdr, 2, &payload, 1);
	if (src != REMO_OK && src != REMO_EPEERLOST && src != REMO_ECLOSED &&
	    rc == REMO_OK) {
		remo_value e = remo_error(src == REMO_ETOOBIG ? "LimitError"
		                                              : "TypeError",
		                          remo_strerror(src));
		hdr[0] = MSG_ERROR;
		remo__send_msg(s, hdr, 2, &e, 1);
		remo_value_release(e);
	}
	remo_value_release(payload);
}

/*
 * Serves request m on this thread: its arguments, the operation (with
 * crash recovery when the session asks), the kept result for pipelining,
 * the reply (none for a one-way request, or when a live traceback sent
 * the error already).  Frees m.
 */
void remo__serve(remo_session *s, struct msg *m)
{
	if ((m->flags & REMO__REQ_PIPE) && m->pipe != 0 && kept_defer(s, m))
		return;
	struct serving ctx = {s, m->reqid, m->depth, remo__tls_serving,
	                      (m->flags & REMO__REQ_ONEWAY) != 0, false,
	                      remo__locals_mark(),
	                      (m->flags & REMO__REQ_KEEP) != 0};
	remo_value vals[3] = {{0}}, result = remo_nil();

	remo__tls_serving = &ctx;
	int rc = serve_args(s, m, vals);
	if (rc == REMO_OK)
		rc = s->opts.recover ? serve_op_guarded(s, (int)m->op, vals,
		                                        &result)
		                     : serve_op(s, (int)m->op, vals[0], vals[1],
		                                vals[2], &result);
	remo__locals_reset(ctx.lmark);
	for (int i = 0; i < 3; i++)
		remo_value_release(vals[i]);
	if (m->flags & REMO__REQ_KEEP)
		kept_settle(s, m->reqid, rc, result);
	if ((m->flags & REMO__REQ_ONEWAY) || ctx.replied)
		/* no reply, by definition: not even the error (or the
		 * error went already, with a live traceback) */
		remo_value_release(result);
	else
		serve_reply(s, m->reqid, rc, result);
	remo__tls_serving = ctx.prev;
	remo__msg_done(s, m);
}

/* ==== for tracebacks (traceback.c) ===================================== */

remo_session *remo__serving(void)
{
	return remo__tls_serving != NULL ? remo__tls_serving->s : NULL;
}

const remo_session_opts *remo__session_opts(remo_session *s)
{
	return &s->opts;
}

int remo__serving_reply_error(remo_value err, bool try_only)
{
	struct serving *ctx = remo__tls_serving;
	if (ctx == NULL || ctx->replied || ctx->oneway)
		return REMO_EINVAL;
	remo_session *s = ctx->s;
	int64_t hdr[2] = {MSG_ERROR, (int64_t)ctx->reqid};
	int rc;
	if (try_only) {
		/* from a crash handler: never wait for a lock the crash may
		 * hold (and the process is about to die: no remo__session_end) */
		struct msg_parts m = {hdr, 2, &err, 1};
		if (pthread_mutex_trylock(&s->send_lock) != 0)
			return REMO_ELIMIT;
		rc = remo__send_parts_locked(s, &m, 1, false);
		pthread_mutex_unlock(&s->send_lock);
	} else {
		rc = remo__send_msg(s, hdr, 2, &err, 1);
	}
	if (rc == REMO_OK)
		ctx->replied = true;
	/* calls pipelined on it fail with it now, not when the thread
	 * that raised it goes on (a live traceback parks it) */
	if (rc == REMO_OK && ctx->keep && !try_only)
		kept_settle_value(s, ctx->reqid, true, remo_value_retain(err));
	return rc;
}

/* This thread is parked (serving inside remo__serving_park). */
static _Thread_local bool tls_parked;

bool remo__serving_park_begin(void)
{
	remo_session *s = remo__serving();
	if (s == NULL || tls_parked)
		return false; /* parks never nest on one stack */
	/* A debugger may stop a parked thread, which reads for the session,
	 * for longer than the lease: the lease thread must not take the
	 * silence that follows for a dead peer while nparked is not 0. */
	int n = atomic_load(&s->nparked);
	do {
		if (n >= REMO_MAX_LIVE_PARKED)
			return false;
	} while (!atomic_compare_exchange_weak(&s->nparked, &n, n + 1));
	tls_parked = true;
	return true;
}

void remo__serving_park_cancel(void)
{
	remo_session *s = remo__serving();
	REMO__ASSERT(s != NULL && tls_parked);
	atomic_fetch_sub(&s->nparked, 1);
	tls_parked = false;
}

void remo__serving_park(bool (*done)(void *), void *arg, int64_t deadline)
{
	remo_session *s = remo__serving();
	struct waiter w = {0}; /* reqid 0: serves the top-level queue */
	struct msg *none = NULL;
	REMO__ASSERT(tls_parked); /* remo__serving_park_begin reserved it */
	while (!done(arg) && remo_session_status(s) == REMO_OK) {
		int64_t now = remo__now_ms();
		if (now >= deadline)
			break;
		/* slices, to look at done() between them */
		int64_t until = now + 20 < deadline ? now + 20 : deadline;
		remo__wait_for(s, &w, until, &none);
	}
	remo__serving_park_cancel();
}

bool remo__session_peer(remo_session *s, char *buf, size_t len)
{
	if (s->ch.peer == NULL || s->ch.peer(s->ch.user, buf, len) != REMO_OK) {
		buf[0] = '\0';
		return false;
	}
	return true;
}

bool remo__session_tb_full(remo_session *s)
{
	if (s->opts.traceback_detail != REMO_TB_AUTO)
		return s->opts.traceback_detail == REMO_TB_FULL;
	char peer[512];
	if (s->secret != NULL || !remo__session_peer(s, peer, sizeof peer))
		return true; /* proved the secret, or a channel of the program's */
	/* a peer on another machine, unless it proved a certificate */
	bool net = strncmp(peer, "tcp ", 4) == 0 || strncmp(peer, "tls ", 4) == 0;
	return !net || strncmp(peer, "tls subject=", 12) == 0;
}

int remo_caller(remo_caller_info *out)
{
	if (out == NULL)
		return REMO_EINVAL;
	memset(out, 0, sizeof *out);
	remo_session *s = remo__serving();
	if (s == NULL)
		return REMO_ENOTFOUND;
	out->authenticated = s->secret != NULL;
	remo__session_peer(s, out->peer, sizeof out->peer);
	return REMO_OK;
}

size_t remo__serving_locals_mark(void)
{
	return remo__tls_serving != NULL ? remo__tls_serving->lmark : 0;
}
