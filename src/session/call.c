/*
 * call.c -- synchronous requests: remo__session_request sends one
 * request and waits for its reply, serving nested requests meanwhile.
 */
#include "session/session_impl.h"

const char *const remo__op_names[] = {
	[REMO__OP_LOOKUP] = "lookup",     [REMO__OP_GETATTR] = "getattr",
	[REMO__OP_SETATTR] = "setattr",   [REMO__OP_CALL] = "call",
	[REMO__OP_CALLM] = "call_method", [REMO__OP_LEN] = "len",
	[REMO__OP_GETITEM] = "getitem",   [REMO__OP_SETITEM] = "setitem",
	[REMO__OP_CONTAINS] = "contains", [REMO__OP_CHUNK] = "chunk",
};

/* ==== requests ========================================================= */

int remo__session_request(remo_session *s, int op, remo_value target,
                          remo_value a, remo_value b, remo_value *out)
{
	return remo__session_request_timed(s, op, target, a, b, 0, out);
}

/*
 * Where a request of this thread belongs: the request it is serving on s
 * (its cause) and how deep callbacks nest.  RecursionError past the
 * session's limit.
 */
int remo__req_context(remo_session *s, uint64_t *cause, uint64_t *depth)
{
	struct serving *ctx = remo__tls_serving;
	*cause = 0;
	*depth = 1;
	while (ctx != NULL && ctx->s != s)
		ctx = ctx->prev;
	if (ctx != NULL) {
		*cause = ctx->reqid;
		*depth = ctx->depth + 1;
	}
	if (*depth > s->opts.max_call_depth)
		return remo__raisef("RecursionError",
		                    "callbacks nested %llu deep, past the limit %u",
		                    (unsigned long long)*depth,
		                    s->opts.max_call_depth);
	return REMO_OK;
}

/*
 * Fills r for request reqid.  A promise target becomes the id of the
 * request it stands for (REMO__REQ_PIPE); the caller checked that the
 * promise belongs to s and is kept (remo__promise_session).
 */
void remo__req_fill(struct req *r, uint64_t reqid, uint64_t cause,
                     uint64_t depth, int op, unsigned flags,
                     remo_value target, remo_value a, remo_value b)
{
	const struct remo_future *p = remo__is_ref(target.kind)
	                              ? REMO__REF(target)->promise : NULL;
	size_t ni = 5, nv = 0;
	if (p != NULL)
		flags |= REMO__REQ_PIPE;
	r->ints[0] = MSG_REQ;
	r->ints[1] = (int64_t)reqid;
	r->ints[2] = (int64_t)cause;
	r->ints[3] = (int64_t)depth;
	r->ints[4] = op | (int64_t)flags;
	if (p != NULL)
		r->ints[ni++] = (int64_t)p->w.reqid;
	else
		r->vals[nv++] = target;
	r->vals[nv++] = a;
	r->vals[nv++] = b;
	r->parts = (struct msg_parts){r->ints, ni, r->vals, nv};
}

/*
 * The caller's deadline goes with the request as the ms it has left
 * (REMO__REQ_DEADLINE, after op): the peer's clock is not ours.
 */
void remo__req_deadline(struct req *r, int64_t deadline)
{
	if (deadline < 0)
		return;
	int64_t left = deadline - remo__now_ms();
	if (left < 0)
		left = 0;
	if (left > INT32_MAX)
		left = INT32_MAX;
	size_t ni = r->parts.nints;
	memmove(&r->ints[6], &r->ints[5], (ni - 5) * sizeof r->ints[0]);
	r->ints[4] |= REMO__REQ_DEADLINE;
	r->ints[5] = left;
	r->parts.nints = ni + 1;
}

void remo__req_cancel(remo_session *s, uint64_t reqid)
{
	int64_t m[2] = {MSG_CANCEL, (int64_t)reqid};
	remo__send_msg(s, m, 2, NULL, 0);
}

/* The status of a request that could not be sent, raised. */
int remo__req_send_failed(int rc, int op)
{
	if (rc == REMO_ETYPE)
		return remo__raisef("TypeError", "a promise can only be the "
		                    "target of an operation, not an argument");
	if (rc == REMO_ELIMIT || rc == REMO_ENOMEM || rc == REMO_ETOOBIG ||
	    rc == REMO_EINVAL || rc == REMO_EDEPTH || rc == REMO_EWIRE_UTF8)
		return remo__fail(rc, "sending the request");
	return remo__fail(rc, remo__op_names[op]);
}

/* The peer ended the session with a BYE that said why (it found us
 * breaking the protocol): PeerLost, with its reason. */
static int peer_said(remo_session *s, int op)
{
	return remo__raisef("PeerLost", "%s: the peer ended the session: %s",
	                    remo__op_names[op], s->bye_why);
}

/* Requests that arrived for a call that is over go to whoever serves,
 * or nowhere once the session ended.  Under s->lock; returns what to
 * free after unlocking. */
static struct msg *req_orphans(remo_session *s, struct waiter *w)
{
	struct msg *m, *gone = NULL;
	while ((m = remo__queue_pop(&w->head, &w->tail)) != NULL) {
		if (s->status != REMO_OK) {
			m->next = gone;
			gone = m;
			continue;
		}
		remo__queue_push(&s->top_head, &s->top_tail, m);
		pthread_cond_broadcast(&s->cond); /* someone must remo__serve it */
	}
	return gone;
}

static void msgs_free(struct msg *m)
{
	while (m != NULL) {
		struct msg *next = m->next;
		remo__msg_free(m);
		m = next;
	}
}

/* The peer's answer to our CANCEL: CancelledError, decoded. */
static bool reply_is_cancelled(const struct msg *m)
{
	return m->type == MSG_ERROR && m->drc == REMO_OK &&
	       m->vals[0].kind == REMO_ERROR &&
	       strcmp(remo_error_name(m->vals[0]), "CancelledError") == 0;
}

int remo__session_request_timed(remo_session *s, int op, remo_value target,
                                remo_value a, remo_value b, int timeout_ms,
                                remo_value *out)
{
	uint64_t cause, depth;
	*out = remo_nil();
	int rc = remo__req_context(s, &cause, &depth);
	if (rc != REMO_OK)
		return rc;

	struct waiter w = {0};
	pthread_mutex_lock(&s->lock);
	int st = s->status;
	w.reqid = ++s->next_reqid;
	rc = st == REMO_OK ? remo__map_put(&s->pending, w.reqid, &w) : st;
	pthread_mutex_unlock(&s->lock);
	if (rc == REMO_EPEERLOST && s->bye_why[0] != '\0')
		return peer_said(s, op);
	if (rc != REMO_OK)
		return remo__fail(rc, remo__op_names[op]);

	/* 0: the session's default; -1: none; else this call's */
	int t = timeout_ms != 0 ? timeout_ms : s->opts.timeout_ms;
	int64_t deadline = remo__deadline_ms(t);
	struct req r;
	remo__req_fill(&r, w.reqid, cause, depth, op, 0, target, a, b);
	remo__req_deadline(&r, deadline);
	rc = remo__send_parts(s, &r.parts, 1, false);
	struct msg *reply = NULL;
	if (rc == REMO_OK)
		rc = remo__wait_for(s, &w, deadline, &reply);
	/* a lookup has nothing to lose (and flow control's wait for a peer
	 * that stopped reading must not wait longer) */
	if (rc == REMO_ETIMEDOUT && op != REMO__OP_LOOKUP) {
		/*
		 * Tell the peer, and wait (a little) for its answer: the
		 * reply, if it went before the CANCEL arrived, or
		 * CancelledError.  A result made is then never lost: a
		 * tuple space's in() that took a tuple returns it, late,
		 * rather than TimeoutError (doc/design.md, "Cancellation").
		 */
		remo__req_cancel(s, w.reqid);
		int g = remo__wait_for(s, &w, remo__deadline_ms(REMO_CANCEL_GRACE_MS),
		                       &reply);
		if (g == REMO_OK && reply != NULL && !reply_is_cancelled(reply))
			rc = REMO_OK;
	}
	pthread_mutex_lock(&s->lock);
	remo__map_del(&s->pending, w.reqid);
	struct msg *gone = req_orphans(s, &w);
	if (w.reply != NULL && reply == NULL)
		reply = w.reply;
	pthread_mutex_unlock(&s->lock);
	msgs_free(gone);

	if (rc == REMO_ETIMEDOUT) {
		/* say which call, and how long it was given */
		remo__msg_free(reply);
		bool member = a.kind == REMO_STR &&
		              (op == REMO__OP_CALLM || op == REMO__OP_GETATTR ||
		               op == REMO__OP_SETATTR || op == REMO__OP_LOOKUP);
		size_t n = 0;
		const char *name = member ? remo_str_data(a, &n) : "";
		char within[40] = "";
		if (t > 0)
			snprintf(within, sizeof within, " in %d ms", t);
		remo__raisef("TimeoutError", "%s%s%.*s%s: no answer%s",
		             remo__op_names[op], member ? " '" : "",
		             (int)(n > 64 ? 64 : n), name, member ? "'" : "",
		             within);
		return REMO_ETIMEDOUT;
	}
	if (rc != REMO_OK) {
		remo__msg_free(reply);
		if (rc == REMO_EPEERLOST && s->bye_why[0] != '\0')
			return peer_said(s, op);
		if (rc == REMO_ETOOBIG)
			/* name the figure that was exceeded, and whose */
			return remo__raisef("LimitError", "%s: the request is "
			                    "over the peer's max_message of %zu "
			                    "bytes (told in its HELLO)",
			                    remo__op_names[op],
			                    atomic_load(&s->peer_max_message));
		return remo__req_send_failed(rc, op);
	}
	/* the reader decoded it (remo__msg_decode) */
	remo_value v = reply->vals[0];
	reply->vals[0] = remo_nil();
	rc = reply->drc;
	int type = reply->type;
	remo__msg_done(s, reply);
	if (rc != REMO_OK)
		return remo__fail(rc, "decoding the reply");
	if (type == MSG_ERROR)
		return remo__raise(v);
	*out = v;
	return REMO_OK;
}
