/*
 * serve.c -- serving a request: the operation (through the API
 * layer's hook), crash recovery around it, the reply, and the results
 * kept for pipelined requests; and the serving context that the
 * traceback layer reads (remo__serving and friends).
 */
#include "session/session_impl.h"

_Thread_local struct serving *remo__tls_serving REMO__TLS_IE;

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
	if (a.kind == REMO_NIL) /* what do you export (wire.md 7.2) */
		return remo__exports_names(s, out) == REMO_OK
		       ? REMO_OK : remo__raisef("MemoryError", "listing exports");
	if (a.kind != REMO_STR)
		return remo__raisef("TypeError", "lookup needs a str or nil");
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
	size_t w = remo__value_weight(v);
	pthread_mutex_lock(&s->lock);
	struct kept *k = remo__map_get(&s->kept, reqid);
	remo_value gone = v, freed = remo_nil();
	if (k != NULL && !k->done) {
		k->done = true;
		k->failed = failed;
		k->val = v;
		gone = remo_nil();
		if (w > s->opts.max_kept_bytes - s->kept_bytes) {
			/* over the budget: the caller has its reply; what it
			 * pipelines on this one fails by name */
			char why[160];
			snprintf(why, sizeof why, "the result was not kept "
			         "for pipelining: the session's kept results "
			         "are at max_kept_bytes (%zu bytes)",
			         s->opts.max_kept_bytes);
			gone = v;
			k->failed = true;
			k->val = remo_error("LimitError", why); /* allocates only */
			w = 0;
		}
		k->weight = w;
		s->kept_bytes += w;
		/* the pipelined requests that waited for it can be served */
		struct msg *m;
		bool moved = k->wait_head != NULL;
		while ((m = remo__queue_pop(&k->wait_head, &k->wait_tail)) != NULL)
			remo__queue_push(&s->top_head, &s->top_tail, m);
		freed = remo__kept_maybe_free(s, reqid, k);
		/* an event loop's session may be between turns, its
		 * descriptor unwatched (at its queue's budget, nothing else
		 * would wake it): it has work now */
		if (moved)
			remo__session_wake(s);
		else
			pthread_cond_broadcast(&s->cond);
	}
	pthread_mutex_unlock(&s->lock);
	remo_value_release(gone);
	remo_value_release(freed);
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
	if (defer) {
		/* still the peer's, not served: counted as queued (a peer
		 * could pipeline without end on a call that never ends) */
		remo__rx_add(s, m);
		remo__queue_push(&k->wait_head, &k->wait_tail, m);
	}
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
	/* decoded even when the request is refused (RecursionError, a
	 * kept result gone): the references it carries become proxies, and
	 * releasing vals releases them to the peer, which counted them as
	 * sent (doc/wire.md 7.2) */
	for (int i = pipe; !m->decoded && i < 3; i++) {
		int drc = remo__unpack_with(&m->rest, &codec, &vals[i]);
		if (drc == REMO_OK)
			continue;
		if (rc == REMO_OK && drc == REMO_ENOTFOUND)
			rc = remo__raisef("ReferenceError",
			                  "no object with that id in this session "
			                  "(released, or never sent)");
		else if (rc == REMO_OK && drc == REMO_EPROTO)
			rc = remo__raisef("ProtocolError",
			                  "a reference to a shape never sent");
		else if (rc == REMO_OK)
			rc = remo__fail(drc, "decoding the arguments");
		break;
	}
	remo_value_release(base); /* views keep what they need */
	return rc;
}

/*
 * Sends the answer to request reqid: a REPLY with v when ok, else an
 * ERROR with v (borrowed).  An answer that cannot be sent (too big, not
 * encodable) is replaced by LimitError or TypeError, so that the caller
 * does not wait for ever.  The first send's status.
 */
static int send_answer(remo_session *s, uint64_t reqid, bool ok,
                       remo_value v)
{
	int64_t hdr[2] = {ok ? MSG_REPLY : MSG_ERROR, (int64_t)reqid};
	int rc = remo__send_msg(s, hdr, 2, &v, 1);
	if (rc != REMO_OK && rc != REMO_EPEERLOST && rc != REMO_ECLOSED) {
		remo_value e = remo_error(rc == REMO_ETOOBIG ? "LimitError"
		                                             : "TypeError",
		                          remo_strerror(rc));
		hdr[0] = MSG_ERROR;
		remo__send_msg(s, hdr, 2, &e, 1);
		remo_value_release(e);
	}
	return rc;
}

/* Sends request reqid's answer: result (stolen) when rc is REMO_OK, else
 * the error raised. */
static void serve_reply(remo_session *s, uint64_t reqid, int rc,
                        remo_value result)
{
	remo_value payload = rc == REMO_OK ? result
	                                   : remo_value_retain(remo_last_error());
	if (payload.kind == REMO_NIL && rc != REMO_OK)
		payload = remo_error("Error", remo_strerror(rc));
	send_answer(s, reqid, rc == REMO_OK, payload);
	remo_value_release(payload);
}

/* Requests this thread has served (helpers count them to know idle). */
static _Thread_local unsigned long tls_served;

/* The answer to a request cancelled before it was answered. */
static void answer_cancelled(remo_session *s, uint64_t reqid, bool keep)
{
	remo_value e = remo_error("CancelledError", "the caller cancelled the "
	                          "call (or its timeout passed)");
	if (remo_ok(e))
		send_answer(s, reqid, false, e);
	if (keep) /* calls pipelined on it fail with it too */
		kept_settle_value(s, reqid, true, e);
	else
		remo_value_release(e);
}

static void deferred_release(struct remo_deferred *d)
{
	if (atomic_fetch_sub(&d->refs, 1) == 1) {
		remo__session_release(d->s);
		remo__free(d);
	}
}

/* d was cancelled: its hook, then the session's count of it. */
static void deferred_cancelled(struct remo_deferred *d)
{
	if (d->on_cancel != NULL)
		d->on_cancel(d, d->user);
	deferred_release(d);
}

/*
 * Serves request m on this thread: its arguments, the operation (with
 * crash recovery when the session asks), the kept result for pipelining,
 * the answer (none for a one-way request, a deferred one, or when it
 * went already: a live traceback's early error, or CancelledError for a
 * call its caller gave up on).  While it runs, the request is in
 * s->running, where a CANCEL finds it.  Frees m.
 */
void remo__serve(remo_session *s, struct msg *m)
{
	if ((m->flags & REMO__REQ_PIPE) && m->pipe != 0 && kept_defer(s, m))
		return;
	bool oneway = (m->flags & REMO__REQ_ONEWAY) != 0;
	struct serving ctx = {.s = s, .reqid = m->reqid, .depth = m->depth,
	                      .prev = remo__tls_serving, .oneway = oneway,
	                      .lmark = remo__locals_mark(),
	                      .keep = (m->flags & REMO__REQ_KEEP) != 0,
	                      .deadline = m->deadline};
	atomic_init(&ctx.answered, false);
	atomic_init(&ctx.cancelled, false);
	remo_value vals[3] = {{0}}, result = remo_nil();

	/* not for a one-way request: nobody can cancel it.  Without the
	 * memory to track it, it runs untracked (a CANCEL misses it). */
	pthread_mutex_lock(&s->lock);
	bool tracked = !oneway && remo__map_put(&s->running, m->reqid, &ctx) ==
	                          REMO_OK;
	pthread_mutex_unlock(&s->lock);

	tls_served++;
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

	struct remo_deferred *d = ctx.deferred;
	bool hook = false;
	if (tracked || d != NULL) {
		pthread_mutex_lock(&s->lock);
		if (tracked)
			remo__map_del(&s->running, m->reqid);
		if (d != NULL) {
			d->serving = false;
			hook = d->hook_due;
		}
		pthread_mutex_unlock(&s->lock);
	}
	if (d != NULL) {
		/* the answer is the deferred call's to give */
		remo_value_release(result);
		if (hook)
			deferred_cancelled(d);
		deferred_release(d); /* this thread's count */
	} else {
		if (ctx.keep)
			kept_settle(s, m->reqid, rc, result);
		if (oneway || atomic_exchange(&ctx.answered, true))
			/* no reply, by definition: not even the error (or
			 * an answer went already) */
			remo_value_release(result);
		else
			serve_reply(s, m->reqid, rc, result);
	}
	remo__tls_serving = ctx.prev;
	remo__msg_done(s, m);
}

/* Takes the top-level request reqid out of the queue, if it waits there.
 * Under s->lock. */
static struct msg *queue_take(remo_session *s, uint64_t reqid)
{
	struct msg *prev = NULL;
	for (struct msg *m = s->top_head; m != NULL; prev = m, m = m->next) {
		if (m->reqid != reqid || m->type != MSG_REQ)
			continue;
		if (prev != NULL)
			prev->next = m->next;
		else
			s->top_head = m->next;
		if (s->top_tail == m)
			s->top_tail = prev;
		m->next = NULL;
		remo__rx_taken(s, m);
		return m;
	}
	return NULL;
}

void remo__serve_cancel(remo_session *s, uint64_t reqid)
{
	pthread_mutex_lock(&s->lock);
	struct msg *q = queue_take(s, reqid);
	if (q != NULL) {
		/* not started: it never runs */
		remo_value gone = remo_nil();
		if ((q->flags & REMO__REQ_PIPE) && q->pipe != 0) {
			struct kept *k = remo__map_get(&s->kept, q->pipe);
			if (k != NULL) {
				k->uses--;
				gone = remo__kept_maybe_free(s, q->pipe, k);
			}
		}
		pthread_mutex_unlock(&s->lock);
		remo_value_release(gone);
		if (!(q->flags & REMO__REQ_ONEWAY))
			answer_cancelled(s, reqid, (q->flags & REMO__REQ_KEEP) != 0);
		remo__msg_free(q);
		return;
	}
	struct remo_deferred *d = remo__map_get(&s->deferred, reqid);
	if (d != NULL) {
		remo__map_del(&s->deferred, reqid);
		d->state = DEFER_CANCELLED;
		d->end = REMO_ECANCELED;
		bool now = !d->serving, oneway = d->oneway, keep = d->keep;
		d->hook_due = d->serving;
		pthread_mutex_unlock(&s->lock);
		/* the hook first: once the caller has its confirmation, the
		 * program has taken the call out of wherever it kept it (a
		 * tuple space's waiters), unless the function that deferred
		 * is still running (then its hook runs when it returns) */
		if (now)
			deferred_cancelled(d); /* may free d */
		if (!oneway)
			answer_cancelled(s, reqid, keep);
		return;
	}
	struct serving *ctx = remo__map_get(&s->running, reqid);
	bool answer = false, keep = false;
	if (ctx != NULL) {
		/* running: it learns by remo_cancelled(); the caller is
		 * answered now, and the function's result goes nowhere */
		atomic_store(&ctx->cancelled, true);
		answer = !atomic_exchange(&ctx->answered, true);
		keep = ctx->keep;
	}
	pthread_mutex_unlock(&s->lock);
	if (answer)
		answer_cancelled(s, reqid, false);
	(void)keep; /* its kept result is still its own: pipelined calls
	               get what it returns */
	/* else: answered already, or never ours; the reply on its way is
	 * the caller's answer */
}

void remo__serve_end(remo_session *s)
{
	struct remo_deferred **due = NULL;
	size_t n = 0;
	pthread_mutex_lock(&s->lock);
	size_t pos = 0;
	uint64_t id;
	void *p;
	while (remo__map_next(&s->running, &pos, &id, &p))
		atomic_store(&((struct serving *)p)->cancelled, true);
	if (s->deferred.len > 0)
		due = remo__malloc(s->deferred.len * sizeof *due);
	pos = 0;
	while (remo__map_next(&s->deferred, &pos, &id, &p)) {
		struct remo_deferred *d = p;
		d->state = DEFER_CANCELLED;
		d->end = s->status;
		d->hook_due = d->serving;
		if (!d->serving && due != NULL)
			due[n++] = d;
		/* without memory for the list: its hook does not run, and
		 * the session's count is not given back (a leak, not a
		 * crash) */
	}
	remo__map_free(&s->deferred);
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0; i < n; i++)
		deferred_cancelled(due[i]);
	remo__free(due);
}

/* ==== deferred replies ================================================= */

remo_deferred *remo_defer(remo_deferred_cancel_fn *on_cancel, void *user)
{
	struct serving *ctx = remo__tls_serving;
	if (ctx == NULL || ctx->deferred != NULL) {
		remo__raisef("ValueError", ctx == NULL
		             ? "remo_defer: this thread serves no request"
		             : "remo_defer: this request is deferred already");
		return NULL;
	}
	remo_session *s = ctx->s;
	struct remo_deferred *d = remo__malloc(sizeof *d);
	if (d == NULL) {
		remo__fail(REMO_ENOMEM, "remo_defer");
		return NULL;
	}
	remo__session_retain(s);
	*d = (struct remo_deferred){.s = s, .reqid = ctx->reqid,
	                            .keep = ctx->keep, .oneway = ctx->oneway,
	                            .serving = true, .state = DEFER_PENDING,
	                            .deadline = ctx->deadline,
	                            .on_cancel = on_cancel, .user = user};
	/* the program's, the session's (in s->deferred, or until its hook
	 * ran), and the serving thread's until the function returns */
	atomic_init(&d->refs, 3);
	pthread_mutex_lock(&s->lock);
	int rc = REMO_OK;
	if (s->status != REMO_OK || atomic_load(&ctx->cancelled)) {
		/* cancelled already: the hook runs when the function returns */
		d->state = DEFER_CANCELLED;
		d->end = s->status != REMO_OK ? s->status : REMO_ECANCELED;
		d->hook_due = true;
	} else {
		rc = remo__map_put(&s->deferred, d->reqid, d);
	}
	if (rc == REMO_OK)
		ctx->deferred = d;
	pthread_mutex_unlock(&s->lock);
	if (rc != REMO_OK) {
		remo__session_release(s);
		remo__free(d);
		remo__fail(rc, "remo_defer");
		return NULL;
	}
	return d;
}

/* Answers d: rc REMO_OK with v, else with the error v. */
static int deferred_answer(remo_deferred *d, bool ok, remo_value v)
{
	if (d == NULL)
		return REMO_EINVAL;
	remo_session *s = d->s;
	pthread_mutex_lock(&s->lock);
	int st = d->state;
	if (st == DEFER_PENDING) {
		d->state = DEFER_ANSWERED;
		remo__map_del(&s->deferred, d->reqid);
	}
	pthread_mutex_unlock(&s->lock);
	if (st != DEFER_PENDING) {
		int end = d->end;
		deferred_release(d); /* the program's */
		return end;
	}
	int rc = REMO_OK;
	if (d->keep)
		kept_settle_value(s, d->reqid, !ok, remo_value_retain(v));
	if (!d->oneway)
		rc = send_answer(s, d->reqid, ok, v);
	deferred_release(d); /* the session's */
	deferred_release(d); /* the program's */
	return rc;
}

int remo_deferred_reply(remo_deferred *d, remo_value v)
{
	return deferred_answer(d, true, v);
}

int remo_deferred_fail(remo_deferred *d, remo_value err)
{
	if (d != NULL && err.kind != REMO_ERROR) {
		remo_value e = remo_error("Error", "remo_deferred_fail without "
		                          "an error value");
		int rc = deferred_answer(d, false, e);
		remo_value_release(e);
		return rc;
	}
	return deferred_answer(d, false, err);
}

static int64_t ms_left(int64_t deadline)
{
	if (deadline < 0)
		return -1;
	int64_t left = deadline - remo__now_ms();
	return left > 0 ? left : 0;
}

int64_t remo_deferred_deadline_ms(const remo_deferred *d)
{
	return d != NULL ? ms_left(d->deadline) : -1;
}

bool remo_cancelled(void)
{
	struct serving *ctx = remo__tls_serving;
	return ctx != NULL && atomic_load_explicit(&ctx->cancelled,
	                                           memory_order_relaxed);
}

int64_t remo_deadline_ms(void)
{
	struct serving *ctx = remo__tls_serving;
	return ctx != NULL ? ms_left(ctx->deadline) : -1;
}

/* ==== helpers: more threads for a session whose calls block =========== */

/*
 * A session is served by the threads in remo_session_serve (a server
 * has one per session).  When its top-level requests wait while every
 * one of them is busy in a call, the lease thread (which reads for a
 * session nobody reads) starts a helper: a thread that serves the
 * session like the others and ends after HELPER_IDLE_MS with nothing to
 * do.  So a blocked or slow call lets the next one start, within a
 * tick, and a quick one costs nothing: no hand-off, no thread.  Bounded
 * per session by opts.max_concurrent (threads serving at once) and per
 * process by REMO_MAX_HELPERS.
 */
#define HELPER_IDLE_MS 1000
static atomic_uint helpers_total;

/* A helper ended (or never started): its counts go. */
static void helper_gone(remo_session *s)
{
	pthread_mutex_lock(&s->lock);
	s->nservers--;
	s->nhelpers--;
	/* an event loop's session: the helpers read it; the last one
	 * gives it back (recv.c, remo__session_serve_ready) */
	remo__session_wake(s);
	pthread_mutex_unlock(&s->lock);
	atomic_fetch_sub(&helpers_total, 1);
	remo__session_release(s);
}

static void *helper_main(void *arg)
{
	remo_session *s = arg;
	struct waiter w = {0}; /* reqid 0: serves the top-level queue */
	struct msg *none = NULL;
	for (;;) {
		unsigned long before = tls_served;
		int rc = remo__wait_for(s, &w, remo__deadline_ms(HELPER_IDLE_MS),
		                        &none);
		if (rc != REMO_ETIMEDOUT || tls_served == before)
			break;
	}
	helper_gone(s);
	return NULL;
}

void remo__serve_maybe_help(remo_session *s, bool idle)
{
	pthread_mutex_lock(&s->lock);
	/* idle: a session nobody serves (a client between its calls) that
	 * may run calls at once: its peer's requests get a helper too */
	bool need = s->status == REMO_OK && s->top_head != NULL &&
	            (s->nservers > 0 || idle) && s->nbusy >= s->nservers &&
	            s->noneway_busy == 0 &&
	            s->nservers < s->opts.max_concurrent;
	if (need) {
		unsigned n = atomic_load(&helpers_total);
		do {
			need = n < REMO_MAX_HELPERS;
		} while (need && !atomic_compare_exchange_weak(&helpers_total,
		                                                &n, n + 1));
	}
	if (need) {
		s->nservers++;
		s->nhelpers++;
	}
	pthread_mutex_unlock(&s->lock);
	if (!need)
		return;
	remo__session_retain(s);
	pthread_t th;
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &a, helper_main, s) != 0)
		helper_gone(s);
	pthread_attr_destroy(&a);
}

void remo__session_join_helpers(remo_session *s)
{
	pthread_mutex_lock(&s->lock);
	while (s->nhelpers > 0)
		pthread_cond_wait(&s->cond, &s->lock);
	pthread_mutex_unlock(&s->lock);
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
	if (ctx == NULL || ctx->oneway || atomic_exchange(&ctx->answered, true))
		return REMO_EINVAL;
	remo_session *s = ctx->s;
	int64_t hdr[2] = {MSG_ERROR, (int64_t)ctx->reqid};
	int rc;
	if (try_only) {
		/* from a crash handler: never wait for a lock the crash may
		 * hold (and the process is about to die: no remo__session_end) */
		struct msg_parts m = {hdr, 2, &err, 1};
		if (pthread_mutex_trylock(&s->send_lock) != 0) {
			atomic_store(&ctx->answered, false);
			return REMO_ELIMIT;
		}
		rc = remo__send_parts_locked(s, &m, 1, false);
		pthread_mutex_unlock(&s->send_lock);
	} else {
		rc = remo__send_msg(s, hdr, 2, &err, 1);
	}
	/* calls pipelined on it fail with it now, not when the thread
	 * that raised it goes on (a live traceback parks it) */
	if (rc == REMO_OK && ctx->keep && !try_only)
		kept_settle_value(s, ctx->reqid, true, remo_value_retain(err));
	return rc;
}

/* This thread is parked (serving inside remo__serving_park).  Read by a
 * crash handler (remo__serving_ref). */
static _Thread_local bool tls_parked REMO__TLS_IE;

struct remo__serving_ref remo__serving_ref(void)
{
	return (struct remo__serving_ref){remo__tls_serving, tls_parked};
}

struct remo__serving_ref remo__serving_act_for(struct remo__serving_ref ref)
{
	struct remo__serving_ref saved = remo__serving_ref();
	remo__tls_serving = ref.ctx;
	tls_parked = ref.parked;
	return saved;
}

void remo__serving_act_end(struct remo__serving_ref saved)
{
	remo__tls_serving = saved.ctx;
	tls_parked = saved.parked;
}

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
	out->session = s;
	remo__session_peer(s, out->peer, sizeof out->peer);
	return REMO_OK;
}

size_t remo__serving_locals_mark(void)
{
	return remo__tls_serving != NULL ? remo__tls_serving->lmark : 0;
}
