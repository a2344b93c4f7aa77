/*
 * future.c -- async calls, one-way calls, batches, promises and their
 * deadlines (remo.h section 11): a future is a waiter that route()
 * settles instead of waking.
 */
#include "session/session_impl.h"

/* ==== futures ========================================================== */

static void future_retain(struct remo_future *f)
{
	atomic_fetch_add(&f->refs, 1);
}

void remo__future_release(struct remo_future *f)
{
	if (f == NULL || atomic_fetch_sub(&f->refs, 1) != 1)
		return;
	remo_session *s = f->s;
	if (s != NULL && f->keep) {
		/* Nothing can name the result any more: the peer may drop it,
		 * with our next message. */
		pthread_mutex_lock(&s->lock);
		s->nkept_out--;
		bool flush = remo__due_push(s, &s->drops, &f->w.reqid, 1);
		pthread_mutex_unlock(&s->lock);
		if (flush) /* the peer holds each result until it hears */
			remo__due_flush(s);
	}
	remo_value_release(f->value);
	for (int i = 0; i < 3; i++)
		remo_value_release(f->args[i]);
	if (s != NULL)
		remo__session_release(s);
	remo__free(f);
}

static struct remo_future *future_alloc(remo_session *s)
{
	struct remo_future *f = remo__malloc(sizeof *f);
	if (f == NULL)
		return NULL;
	memset(f, 0, sizeof *f);
	atomic_init(&f->refs, 1);
	f->w.fut = f;
	f->deadline = -1;
	if ((f->s = s) != NULL)
		remo__session_retain(s);
	return f;
}

struct remo_future *remo__future_settled(int status, remo_value value)
{
	struct remo_future *f = future_alloc(NULL);
	if (f == NULL) {
		remo_value_release(value);
		return NULL;
	}
	f->w.done = true;
	f->started = true;
	f->status = status;
	f->value = value;
	return f;
}

struct remo_future *remo__future_new_batch(remo_session *s)
{
	struct remo_future *f = future_alloc(s);
	if (f == NULL)
		return NULL;
	future_retain(f); /* the batch's count and the caller's */
	/* its id now, and always kept: later calls of the same batch can
	 * be pipelined on it */
	pthread_mutex_lock(&s->lock);
	f->w.reqid = ++s->next_reqid;
	f->keep = s->nkept_out < REMO_MAX_KEPT;
	s->nkept_out += f->keep;
	pthread_mutex_unlock(&s->lock);
	return f;
}

void remo__future_abandon(struct remo_future *f, int status)
{
	remo_session *s = f->s;
	remo_value err = status == REMO_ERAISED
	                 ? remo_value_retain(remo_last_error()) : remo_nil();
	pthread_mutex_lock(&s->lock);
	if (!f->started && !f->w.done) {
		f->w.done = true;
		f->status = status;
		f->value = err;
		err = remo_nil();
		pthread_cond_broadcast(&s->cond);
	}
	pthread_mutex_unlock(&s->lock);
	remo_value_release(err);
}

/*
 * Settles f with status and value (stolen).  Under s->lock; f is no
 * longer pending.  The session's count of f, its arguments and its
 * callback are handled by remo__futures_notify, after unlocking.
 */
void remo__future_settle(remo_session *s, struct remo_future *f, int status,
                          remo_value value, struct remo_future **settled)
{
	f->w.done = true;
	f->status = status;
	f->value = value;
	if (f->deadline >= 0)
		atomic_fetch_sub(&s->ndeadlines, 1);
	if (f->prev != NULL)
		f->prev->next = f->next;
	else
		s->inflight_head = f->next;
	if (f->next != NULL)
		f->next->prev = f->prev;
	else
		s->inflight_tail = f->prev;
	f->prev = f->next = NULL;
	s->ninflight--;
	f->settled_next = *settled;
	*settled = f;
	pthread_cond_broadcast(&s->cond);
}

/* After remo__future_settle, not under s->lock: callbacks, in the order the
 * futures settled. */
void remo__futures_notify(struct remo_future *settled)
{
	struct remo_future *order = NULL;
	while (settled != NULL) { /* reverse: settled is newest first */
		struct remo_future *next = settled->settled_next;
		settled->settled_next = order;
		order = settled;
		settled = next;
	}
	while (order != NULL) {
		struct remo_future *f = order, *next = f->settled_next;
		remo_session *s = f->s;
		remo_value args[3];
		pthread_mutex_lock(&s->lock);
		memcpy(args, f->args, sizeof args);
		memset(f->args, 0, sizeof f->args);
		remo_future_fn *fn = f->started ? f->fn : NULL;
		f->fn = NULL;
		pthread_mutex_unlock(&s->lock);
		for (int i = 0; i < 3; i++)
			remo_value_release(args[i]);
		if (fn != NULL)
			fn(f, f->user);
		remo__future_release(f); /* the session's count */
		order = next;
	}
}

/* Settles f with TimeoutError if its deadline passed.  Under s->lock. */
static void future_check_deadline(remo_session *s, struct remo_future *f,
                                  struct remo_future **settled)
{
	if (!f->w.done && f->deadline >= 0 && remo__now_ms() >= f->deadline) {
		remo__map_del(&s->pending, f->w.reqid);
		remo__future_settle(s, f, REMO_ETIMEDOUT, remo_nil(), settled);
	}
}

/*
 * Registers f as in flight: pending, counted, its values retained.
 * Waits first while REMO_MAX_INFLIGHT calls are in flight.  Assigns
 * f->w.reqid unless it has one.  The caller sends it next.
 */
static int future_begin(remo_session *s, struct remo_future *f,
                        remo_value target, remo_value a, remo_value b)
{
	pthread_mutex_lock(&s->lock);
	while (s->ninflight >= REMO_MAX_INFLIGHT && s->status == REMO_OK) {
		/* the oldest call that went: one of another thread's batch
		 * may be begun but not sent, and that thread may be waiting
		 * here too */
		struct remo_future *old = s->inflight_head;
		while (old != NULL && !old->started)
			old = old->next;
		if (old == NULL)
			break;
		future_retain(old);
		pthread_mutex_unlock(&s->lock);
		struct msg *none = NULL;
		remo__wait_for(s, &old->w, old->deadline, &none);
		struct remo_future *settled = NULL;
		pthread_mutex_lock(&s->lock);
		future_check_deadline(s, old, &settled);
		pthread_mutex_unlock(&s->lock);
		remo__futures_notify(settled);
		remo__future_release(old);
		pthread_mutex_lock(&s->lock);
	}
	int rc = s->status;
	if (rc == REMO_OK && f->w.reqid == 0)
		f->w.reqid = ++s->next_reqid;
	if (rc == REMO_OK)
		rc = remo__map_put(&s->pending, f->w.reqid, &f->w);
	if (rc == REMO_OK) {
		f->prev = s->inflight_tail;
		if (s->inflight_tail != NULL)
			s->inflight_tail->next = f;
		else
			s->inflight_head = f;
		s->inflight_tail = f;
		s->ninflight++;
		if (f->deadline >= 0)
			atomic_fetch_add(&s->ndeadlines, 1);
		future_retain(f); /* the session's count */
		if (!f->keep) { /* a batch's future is kept already */
			f->keep = s->nkept_out < REMO_MAX_KEPT;
			s->nkept_out += f->keep;
		}
		f->args[0] = remo_value_retain(target);
		f->args[1] = remo_value_retain(a);
		f->args[2] = remo_value_retain(b);
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* The send of a begun future failed: it settles with rc, quietly (it
 * never started, so no callback). */
static void future_abort(remo_session *s, struct remo_future *f, int rc)
{
	struct remo_future *settled = NULL;
	pthread_mutex_lock(&s->lock);
	if (!f->w.done) {
		remo__map_del(&s->pending, f->w.reqid);
		remo__future_settle(s, f, rc, remo_nil(), &settled);
	}
	pthread_mutex_unlock(&s->lock);
	remo__futures_notify(settled);
}

/*
 * Flow control for one-way calls: after every REMO_ONEWAY_WINDOW of
 * them, the next one first waits until the peer has read (and queued in
 * order) everything sent before, so a caller cannot flood its queue: a
 * lookup of a name nobody exports, answered NotFound.  The wait is
 * bounded: the session's timeout_ms, or REMO_ONEWAY_WAIT_MS.  Past it
 * the call is not sent and fails with TimeoutError, and the next one
 * waits again.
 */
static int oneway_wait(remo_session *s)
{
	pthread_mutex_lock(&s->lock);
	bool window = s->oneway_since >= REMO_ONEWAY_WINDOW;
	pthread_mutex_unlock(&s->lock);
	if (!window)
		return REMO_OK;
	int t = s->opts.timeout_ms > 0 ? s->opts.timeout_ms
	                               : REMO_ONEWAY_WAIT_MS;
	remo_value name = remo_str(""), ignored = remo_nil();
	int rc = remo_ok(name) ? remo__session_request_timed(
	                                 s, REMO__OP_LOOKUP, remo_nil(), name,
	                                 remo_nil(), t, &ignored)
	                       : REMO_ENOMEM;
	remo_value_release(name);
	remo_value_release(ignored);
	if (rc == REMO_ERAISED || rc == REMO_OK) { /* NotFound: caught up */
		pthread_mutex_lock(&s->lock);
		s->oneway_since = 0;
		pthread_mutex_unlock(&s->lock);
		return REMO_OK;
	}
	if (rc == REMO_ETIMEDOUT)
		return remo__raisef("TimeoutError", "the peer has not read the "
		                    "last %d one-way calls within %d ms: this "
		                    "one was not sent", REMO_ONEWAY_WINDOW, t);
	return rc;
}

static void oneway_sent(remo_session *s, size_t k)
{
	pthread_mutex_lock(&s->lock);
	s->oneway_since += (unsigned)k;
	pthread_mutex_unlock(&s->lock);
}

int remo__session_start(remo_session *s, int op, remo_value target,
                        remo_value a, remo_value b, unsigned flags,
                        int timeout_ms, struct remo_future **fut)
{
	uint64_t cause, depth;
	int rc = remo__req_context(s, &cause, &depth);
	if (rc != REMO_OK)
		return rc;
	struct req r;
	if (flags & REMO__REQ_ONEWAY) {
		if ((rc = oneway_wait(s)) != REMO_OK)
			return rc == REMO_ERAISED ? rc
			                          : remo__fail(rc, remo__op_names[op]);
		pthread_mutex_lock(&s->lock);
		rc = s->status;
		uint64_t reqid = ++s->next_reqid;
		pthread_mutex_unlock(&s->lock);
		if (rc != REMO_OK)
			return remo__fail(rc, remo__op_names[op]);
		remo__req_fill(&r, reqid, cause, depth, op, flags, target, a, b);
		rc = remo__send_parts(s, &r.parts, 1, false);
		if (rc != REMO_OK)
			return remo__req_send_failed(rc, op);
		oneway_sent(s, 1);
		return REMO_OK;
	}

	struct remo_future *f = future_alloc(s);
	if (f == NULL)
		return remo__fail(REMO_ENOMEM, remo__op_names[op]);
	if (timeout_ms > 0)
		f->deadline = remo__now_ms() + timeout_ms;
	rc = future_begin(s, f, target, a, b);
	if (rc != REMO_OK) {
		remo__future_release(f);
		return remo__fail(rc, remo__op_names[op]);
	}
	remo__req_fill(&r, f->w.reqid, cause, depth, op,
	         flags | (f->keep ? REMO__REQ_KEEP : 0), target, a, b);
	remo__req_deadline(&r, f->deadline);
	pthread_mutex_lock(&s->lock);
	f->started = true; /* before the send: the reply can come at once */
	pthread_mutex_unlock(&s->lock);
	rc = remo__send_parts(s, &r.parts, 1, false);
	if (rc != REMO_OK) {
		pthread_mutex_lock(&s->lock);
		f->started = false;
		pthread_mutex_unlock(&s->lock);
		future_abort(s, f, rc);
		remo__future_release(f);
		return remo__req_send_failed(rc, op);
	}
	*fut = f;
	return REMO_OK;
}

int remo__session_send_batch(remo_session *s, struct remo__breq *items,
                             size_t n)
{
	uint64_t cause, depth;
	int rc = remo__req_context(s, &cause, &depth);
	if (rc != REMO_OK)
		return rc;
	bool any_oneway = false;
	for (size_t i = 0; i < n; i++)
		any_oneway |= items[i].fut == NULL;
	if (any_oneway && (rc = oneway_wait(s)) != REMO_OK)
		return rc == REMO_ERAISED ? rc : remo__fail(rc, "sending a batch");
	struct req *r = remo__malloc(n * sizeof *r);
	struct msg_parts *parts = remo__malloc(n * sizeof *parts);
	if (r == NULL || parts == NULL) {
		remo__free(r);
		remo__free(parts);
		return remo__fail(REMO_ENOMEM, "sending a batch");
	}
	size_t begun = 0;
	for (; rc == REMO_OK && begun < n; begun++) {
		struct remo__breq *it = &items[begun];
		unsigned flags = REMO__REQ_ONEWAY;
		uint64_t reqid;
		if (it->fut != NULL) {
			rc = future_begin(s, it->fut, it->target, it->a, it->b);
			if (rc != REMO_OK)
				break;
			flags = it->fut->keep ? REMO__REQ_KEEP : 0;
			reqid = it->fut->w.reqid;
		} else {
			pthread_mutex_lock(&s->lock);
			reqid = ++s->next_reqid;
			pthread_mutex_unlock(&s->lock);
		}
		remo__req_fill(&r[begun], reqid, cause, depth, it->op, flags,
		         it->target, it->a, it->b);
		parts[begun] = r[begun].parts;
	}
	size_t oneway = 0;
	if (rc == REMO_OK) {
		pthread_mutex_lock(&s->lock);
		for (size_t i = 0; i < n; i++)
			if (items[i].fut != NULL)
				items[i].fut->started = true;
			else
				oneway++;
		pthread_mutex_unlock(&s->lock);
		rc = remo__send_parts(s, parts, n, true);
	}
	if (rc == REMO_OK && oneway > 0)
		oneway_sent(s, oneway); /* a batch's count too */
	if (rc != REMO_OK) {
		for (size_t i = 0; i < begun; i++)
			if (items[i].fut != NULL) {
				pthread_mutex_lock(&s->lock);
				items[i].fut->started = false;
				pthread_mutex_unlock(&s->lock);
				future_abort(s, items[i].fut, rc);
			}
	}
	remo__free(r);
	remo__free(parts);
	return rc == REMO_OK ? REMO_OK : remo__req_send_failed(rc, REMO__OP_CALL);
}

struct remo_session *remo__promise_session(remo_value p, bool batching)
{
	const struct remo_future *f = REMO__REF(p)->promise;
	/* a batch's future not sent yet: only later calls of a batch */
	return f->s != NULL && f->keep && (f->started || batching) ? f->s
	                                                           : NULL;
}

/* Settles every async call of s past its deadline (the lease thread's
 * tick). */
void remo__futures_expire(remo_session *s)
{
	struct remo_future *settled = NULL;
	pthread_mutex_lock(&s->lock);
	for (struct remo_future *f = s->inflight_head, *next; f != NULL;
	     f = next) {
		next = f->next;
		if (f->started)
			future_check_deadline(s, f, &settled);
	}
	pthread_mutex_unlock(&s->lock);
	remo__futures_notify(settled);
}

int remo_future_wait(remo_future *f, int timeout_ms, remo_value *out)
{
	if (out != NULL)
		*out = remo_nil();
	if (f == NULL)
		return remo__fail(REMO_EINVAL, "remo_future_wait");
	remo_session *s = f->s;
	if (s != NULL) {
		int64_t deadline = remo__deadline_ms(timeout_ms);
		if (f->deadline >= 0 && (deadline < 0 || f->deadline < deadline))
			deadline = f->deadline;
		struct msg *none = NULL;
		pthread_mutex_lock(&s->lock);
		bool done = f->w.done, started = f->started;
		pthread_mutex_unlock(&s->lock);
		if (!done && !started)
			return remo__raisef("ValueError", "waiting for a call of a "
			                    "batch that was not sent");
		if (!done && timeout_ms != 0)
			remo__wait_for(s, &f->w, deadline, &none);
		struct remo_future *settled = NULL;
		pthread_mutex_lock(&s->lock);
		future_check_deadline(s, f, &settled);
		done = f->w.done;
		pthread_mutex_unlock(&s->lock);
		remo__futures_notify(settled);
		if (!done)
			return remo__fail(REMO_ETIMEDOUT, "waiting for a call");
	}
	/* settled: status and value no longer change */
	if (f->status == REMO_ERAISED)
		return remo__raise(remo_value_retain(f->value));
	if (f->status != REMO_OK)
		return remo__fail(f->status, "an async call");
	if (out != NULL)
		*out = remo_value_retain(f->value);
	return REMO_OK;
}

bool remo_future_poll(remo_future *f)
{
	if (f == NULL)
		return false;
	remo_session *s = f->s;
	if (s == NULL)
		return true;
	struct remo_future *settled = NULL;
	pthread_mutex_lock(&s->lock);
	/* read what has arrived, if nobody else is reading */
	for (int i = 0; i < 64 && !f->w.done && !s->reading &&
	                s->status == REMO_OK; i++) {
		s->reading = true;
		pthread_mutex_unlock(&s->lock);
		int rc = remo__reader_turn(s, 0);
		pthread_mutex_lock(&s->lock);
		if (rc != REMO_OK)
			break;
	}
	bool done = f->w.done, serve_too = s->nservers == 0;
	pthread_mutex_unlock(&s->lock);
	if (!done && serve_too) {
		/* remo__serve the callbacks that came (the call may be waiting for
		 * one), without waiting for more; with serving threads,
		 * they do it */
		struct waiter w = {0};
		struct msg *none = NULL;
		remo__wait_for(s, &w, remo__now_ms(), &none);
	}
	pthread_mutex_lock(&s->lock);
	future_check_deadline(s, f, &settled);
	done = f->w.done;
	pthread_mutex_unlock(&s->lock);
	remo__futures_notify(settled);
	return done;
}

int remo_future_then(remo_future *f, remo_future_fn *fn, void *user)
{
	if (f == NULL || fn == NULL)
		return remo__fail(REMO_EINVAL, "remo_future_then");
	remo_session *s = f->s;
	if (s != NULL)
		pthread_mutex_lock(&s->lock);
	int rc = f->then_set ? REMO_EEXIST : REMO_OK;
	bool now = rc == REMO_OK && f->w.done;
	if (rc == REMO_OK) {
		f->then_set = true;
		if (!now) {
			f->fn = fn;
			f->user = user;
		}
	}
	if (s != NULL)
		pthread_mutex_unlock(&s->lock);
	if (now)
		fn(f, user);
	return rc == REMO_OK ? REMO_OK : remo__fail(rc, "remo_future_then");
}

/*
 * Cancelling tells the peer (MSG_CANCEL) and waits, up to
 * REMO_CANCEL_GRACE_MS, for its answer: CancelledError (the call did not
 * run, or a deferred call's cancel hook ran), or the reply itself if it
 * went before the CANCEL arrived, which then settles f as usual and is
 * not lost.  A peer that does not answer in time: f settles as
 * cancelled here.
 */
int remo_future_cancel(remo_future *f)
{
	if (f == NULL || f->s == NULL)
		return REMO_EINVAL;
	remo_session *s = f->s;
	struct remo_future *settled = NULL;
	pthread_mutex_lock(&s->lock);
	bool pending = f->started && !f->w.done;
	bool first = pending && !f->cancelling;
	if (pending)
		f->cancelling = true;
	pthread_mutex_unlock(&s->lock);
	if (!pending)
		return REMO_EINVAL;
	if (first)
		remo__req_cancel(s, f->w.reqid);
	struct msg *none = NULL;
	remo__wait_for(s, &f->w, remo__deadline_ms(REMO_CANCEL_GRACE_MS), &none);
	pthread_mutex_lock(&s->lock);
	if (!f->w.done) {
		remo__map_del(&s->pending, f->w.reqid);
		remo__future_settle(s, f, REMO_ECANCELED, remo_nil(), &settled);
	}
	int st = f->status;
	pthread_mutex_unlock(&s->lock);
	remo__futures_notify(settled);
	return st == REMO_ECANCELED ? REMO_OK : REMO_EINVAL;
}

static void session_promise_gone(struct remo__ref *r)
{
	remo__future_release(r->promise);
	r->promise = NULL;
}

static const struct remo__ref_ops session_promise_ops = {
	.gone = session_promise_gone,
};

remo_value remo_future_promise(remo_future *f)
{
	if (f == NULL)
		return remo__invalid();
	remo_value v = remo__ref_alloc(REMO_OBJECT);
	if (remo_ok(v)) {
		future_retain(f);
		REMO__REF(v)->ops = &session_promise_ops;
		REMO__REF(v)->promise = f;
	}
	return v;
}

void remo_future_free(remo_future *f)
{
	remo__future_release(f);
}
