/*
 * recv.c -- receiving and routing, and waiting.  There is no reader
 * thread: a waiting thread that finds nobody reading becomes the reader
 * (reader_turn), takes what has arrived, and routes each message to the
 * waiter it names or to the top-level queue (session_impl.h has the
 * thread model).
 */
#include "session/session_impl.h"

/* ==== receiving and routing ============================================ */

bool remo__read_uint(remo__rd *rd, uint64_t *out)
{
	remo__tok t;
	if (remo__wire_next(rd, &t) != REMO_OK || t.type != REMO__T_INT ||
	    t.v.i < 0)
		return false;
	*out = (uint64_t)t.v.i;
	return true;
}

/* Parses the header of a message the reader received.  REMO_EPROTO. */

/*
 * The peer broke the protocol: why, for the BYE that says so before the
 * session closes (session.c, remo__session_end), and REMO_EPROTO.  Set
 * by the reader, so one at a time; the first reason stands.
 */
static int proto_why(remo_session *s, const char *why)
{
	if (s->eproto_why == NULL)
		s->eproto_why = why;
	return REMO_EPROTO;
}

static void proto_end(remo_session *s, const char *why)
{
	remo__session_end(s, proto_why(s, why));
}

static int msg_parse(struct msg *m)
{
	if (remo__wire_check(m->buf.data, m->buf.len) != REMO_OK)
		return REMO_EPROTO;
	remo__rd rd = {m->buf.data, m->buf.data + m->buf.len};
	remo__tok t;
	uint64_t type;
	if (remo__wire_next(&rd, &t) != REMO_OK || t.type != REMO__T_ARRAY ||
	    t.n < 1 || !remo__read_uint(&rd, &type))
		return REMO_EPROTO;
	uint32_t n = t.n;
	m->type = (int)type;
	switch (type) {
	case MSG_HELLO:
		/* 5: with a nonce (auth.c); 6: a nonce or nil, then the lease */
		if (n < 4 || n > 6)
			return REMO_EPROTO;
		break;
	case MSG_REFUSED:
		if (n != 2)
			return REMO_EPROTO;
		break;
	case MSG_REQ:
		if (n < 8 || !remo__read_uint(&rd, &m->reqid) ||
		    !remo__read_uint(&rd, &m->cause) ||
		    !remo__read_uint(&rd, &m->depth) ||
		    !remo__read_uint(&rd, &m->op) || m->reqid == 0)
			return REMO_EPROTO;
		if ((m->op & ~(uint64_t)(0xff | REQ_FLAGS)) != 0)
			return REMO_EPROTO; /* a flag we do not know */
		m->flags = (unsigned)(m->op & REQ_FLAGS);
		m->op &= 0xff;
		if (m->op < REMO__OP_LOOKUP || m->op > REMO__OP_CHUNK)
			return REMO_EPROTO;
		/* the caller's time left, in ms: a deadline in our clock */
		m->deadline = -1;
		if (n != ((m->flags & REMO__REQ_DEADLINE) ? 9u : 8u))
			return REMO_EPROTO;
		if (m->flags & REMO__REQ_DEADLINE) {
			uint64_t left;
			if (!remo__read_uint(&rd, &left) || left > INT32_MAX)
				return REMO_EPROTO;
			m->deadline = remo__now_ms() + (int64_t)left;
		}
		/* a pipelined request's target is the id of an earlier one */
		if ((m->flags & REMO__REQ_PIPE) &&
		    (!remo__read_uint(&rd, &m->pipe) || m->pipe == 0 ||
		     m->pipe >= m->reqid))
			return REMO_EPROTO; /* it names an earlier request */
		break;
	case MSG_REPLY:
	case MSG_ERROR:
		if (n != 3 || !remo__read_uint(&rd, &m->reqid))
			return REMO_EPROTO;
		break;
	case MSG_RELEASE:
	case MSG_SHAPE:
	case MSG_DROP:
		if (n != (type == MSG_SHAPE ? 3u : 2u))
			return REMO_EPROTO;
		break;
	case MSG_CANCEL:
		if (n != 2 || !remo__read_uint(&rd, &m->reqid) || m->reqid == 0)
			return REMO_EPROTO;
		break;
	case MSG_BATCH:
		if (n < 2 || n > REMO_MAX_BATCH + 1)
			return REMO_EPROTO;
		break;
	case MSG_MULTI:
		if (n < 2 || n > MULTI_PARTS + 1)
			return REMO_EPROTO;
		break;
	case MSG_BYE: /* [6], or [6, status, reason] */
		if (n != 1 && n != 3)
			return REMO_EPROTO;
		break;
	case MSG_PING:
		if (n != 1)
			return REMO_EPROTO;
		break;
	default:
		return REMO_EPROTO;
	}
	m->rest = rd;
	return REMO_OK;
}

static void handle_hello(remo_session *s, struct msg *m)
{
	uint64_t version, max_message, max_depth;
	if (!remo__read_uint(&m->rest, &version) ||
	    !remo__read_uint(&m->rest, &max_message) ||
	    !remo__read_uint(&m->rest, &max_depth) ||
	    version != PROTO_VERSION || max_message < 64) {
		proto_end(s, "a HELLO of another version, or with a max_message under 64");
		return;
	}
	remo__tok t;
	if (m->rest.p != m->rest.end &&
	    (remo__wire_next(&m->rest, &t) != REMO_OK || t.type != REMO__T_NIL)) {
		/* a nonce: the peer asks for a secret this side does not
		 * have (a side with one reads HELLO in auth.c, not here) */
		remo__session_end(s, REMO_EAUTH);
		return;
	}
	uint64_t lease = 0;
	if (m->rest.p != m->rest.end &&
	    (!remo__read_uint(&m->rest, &lease) || lease > INT32_MAX)) {
		proto_end(s, "a HELLO whose lease is not an int from 0 to 2^31 - 1");
		return;
	}
	s->peer_lease_ms = (int64_t)lease;
	s->peer_max_message = max_message;
}

static void handle_release(remo_session *s, struct msg *m)
{
	remo__tok t;
	if (remo__wire_next(&m->rest, &t) != REMO_OK ||
	    t.type != REMO__T_ARRAY || t.n % 2 != 0) {
		proto_end(s, "a malformed RELEASE");
		return;
	}
	for (uint32_t i = 0; i < t.n; i += 2) {
		uint64_t id, count;
		if (!remo__read_uint(&m->rest, &id) || !remo__read_uint(&m->rest, &count)) {
			proto_end(s, "a malformed RELEASE");
			return;
		}
		remo__table_uncount(s, id, count);
	}
}

static void handle_shape(remo_session *s, struct msg *m)
{
	uint64_t id;
	remo_value v;
	struct remo__shape *sh = NULL;
	if (!remo__read_uint(&m->rest, &id) || id < 16 || id > UINT32_MAX ||
	    remo__unpack_with(&m->rest, NULL, &v) != REMO_OK) {
		proto_end(s, "a malformed SHAPE");
		return;
	}
	int rc = remo__shape_from_value((uint32_t)id, v, remo__shape_base, s, &sh);
	remo_value_release(v);
	if (rc == REMO_OK) {
		pthread_mutex_lock(&s->lock);
		struct remo__shape *old = remo__map_get(&s->shapes_in, id);
		rc = old != NULL || s->shapes_in.len >= MAX_SHAPES
		     ? REMO_EPROTO /* shapes are sent once, and not without end */
		     : remo__map_put(&s->shapes_in, id, sh);
		pthread_mutex_unlock(&s->lock);
		if (rc != REMO_OK)
			remo__shape_free(sh);
	}
	if (rc != REMO_OK)
		rc == REMO_ENOMEM ? remo__session_end(s, REMO_ENOMEM)
		                  : proto_end(s, "a SHAPE sent twice, past the "
		                                 "limit of shapes, or malformed");
}

/* Frees a kept result nobody can name any more.  Under s->lock; returns
 * the value to release after unlocking. */
remo_value remo__kept_maybe_free(remo_session *s, uint64_t reqid,
                                  struct kept *k)
{
	remo_value v = remo_nil();
	if (k->done && k->dropped && k->uses == 0) {
		remo__map_del(&s->kept, reqid);
		s->kept_bytes -= k->weight;
		v = k->val;
		remo__free(k);
	}
	return v;
}

static void handle_drop(remo_session *s, struct msg *m)
{
	remo__tok t;
	if (remo__wire_next(&m->rest, &t) != REMO_OK ||
	    t.type != REMO__T_ARRAY) {
		proto_end(s, "a malformed DROP");
		return;
	}
	for (uint32_t i = 0; i < t.n; i++) {
		uint64_t reqid;
		if (!remo__read_uint(&m->rest, &reqid)) {
			proto_end(s, "a malformed DROP");
			return;
		}
		pthread_mutex_lock(&s->lock);
		struct kept *k = remo__map_get(&s->kept, reqid);
		remo_value v = remo_nil();
		if (k != NULL) {
			k->dropped = true;
			v = remo__kept_maybe_free(s, reqid, k);
		}
		pthread_mutex_unlock(&s->lock);
		remo_value_release(v);
	}
}

/*
 * Routes a request or a reply to the thread that waits for it, and does
 * the bookkeeping of kept results.  Under s->lock.  A reply nobody waits
 * for (the call timed out or was cancelled, or a stray) is returned, to
 * be freed after unlocking; an async call's reply settles its future,
 * added to *settled.
 */
static struct msg *route(remo_session *s, struct msg *m,
                         struct remo_future **settled)
{
	if (m->type == MSG_REQ) {
		remo__rx_add(s, m);
		if ((m->flags & REMO__REQ_KEEP) && s->kept.len < REMO_MAX_KEPT &&
		    remo__map_get(&s->kept, m->reqid) == NULL) {
			/* kept from arrival on, so a pipelined request routed
			 * after it always finds it (without memory, or past the
			 * limit, such requests get ReferenceError) */
			struct kept *k = remo__malloc(sizeof *k);
			if (k != NULL) {
				memset(k, 0, sizeof *k);
				if (remo__map_put(&s->kept, m->reqid, k) != REMO_OK)
					remo__free(k);
			}
		}
		if (m->flags & REMO__REQ_PIPE) {
			struct kept *k = remo__map_get(&s->kept, m->pipe);
			if (k != NULL)
				k->uses++;
			else
				m->pipe = 0; /* served as a ReferenceError */
		}
		struct waiter *w = m->cause ? remo__map_get(&s->pending, m->cause)
		                            : NULL;
		/* an async call has no thread of its own waiting: its
		 * callbacks go to whoever serves */
		if (w != NULL && w->fut == NULL)
			remo__queue_push(&w->head, &w->tail, m);
		else
			remo__queue_push(&s->top_head, &s->top_tail, m);
		return NULL;
	}
	struct waiter *w = remo__map_get(&s->pending, m->reqid);
	if (w == NULL || w->reply != NULL || w->done)
		return m; /* the call timed out, or a stray reply: dropped */
	if (w->fut != NULL) {
		remo__map_del(&s->pending, m->reqid);
		int st = m->drc != REMO_OK ? m->drc
		         : m->type == MSG_ERROR ? REMO_ERAISED : REMO_OK;
		if (w->fut->cancelling && st == REMO_ERAISED &&
		    strcmp(remo_error_name(m->vals[0]), "CancelledError") == 0) {
			/* the peer confirms our remo_future_cancel */
			remo__future_settle(s, w->fut, REMO_ECANCELED, remo_nil(),
			                    settled);
			return m;
		}
		remo__future_settle(s, w->fut, st, m->vals[0], settled);
		m->vals[0] = remo_nil();
		return m;
	}
	w->reply = m;
	return NULL;
}

/*
 * The reader's work on one received message, done while it still holds
 * the reader role and not s->lock: parse it, and handle what belongs to
 * the session itself (hello, shapes, releases) before anyone can read the
 * next message, because a shape must be known before the message that
 * uses it is decoded.  Returns a request or reply to route, or NULL;
 * sets *end when the session must end.
 */

/*
 * Decodes the n values left in m, in the reader, before the next message
 * is read.  Replies, because a RELEASE read after a reply could free an
 * object the reply names before its waiter decoded it (the peer drops its
 * proxy once it sent the reply); and one-way requests, because their
 * caller keeps nothing alive for them.  Other requests are decoded by the
 * thread that serves them: their caller keeps their values alive until
 * the reply.  Returns the codec's status (also in m->drc).
 */
int remo__msg_decode(remo_session *s, struct msg *m, int n)
{
	remo__codec codec;
	remo_value base;
	remo__session_codec_for(s, &codec, m, &base);
	int rc = REMO_OK;
	for (int i = 0; rc == REMO_OK && i < n; i++)
		rc = remo__unpack_with(&m->rest, &codec, &m->vals[i]);
	remo_value_release(base); /* views keep what they need */
	m->decoded = true;
	m->drc = rc;
	return rc;
}

/* Where a message came from: a frame of its own, a BATCH (requests
 * only), a MULTI (anything but HELLO and MULTI). */
enum { IN_FRAME, IN_BATCH, IN_MULTI };

/* batch_split and reader_take_one call each other: a BATCH or MULTI
 * holds messages, each taken as if it had come alone. */
static struct msg *reader_take_one(remo_session *s, remo_buf buf, int *end,
                                   int in);

/* A batch becomes its requests, each a message of its own (a copy:
 * requests are small, and each is served and freed on its own); a multi
 * its messages, handled in order as if each had come alone. */
static struct msg *batch_split(remo_session *s, struct msg *b, int *end,
                               int in)
{
	struct msg *head = NULL, **tail = &head;
	while (b->rest.p < b->rest.end && *end == REMO_OK) {
		const uint8_t *start = b->rest.p;
		if (remo__wire_skip(&b->rest) != REMO_OK) {
			*end = proto_why(s, "a malformed BATCH or MULTI");
			break;
		}
		remo_buf one = {0};
		size_t len = (size_t)(b->rest.p - start);
		if (remo_buf_reserve(&one, len) != REMO_OK) {
			*end = REMO_ENOMEM;
			break;
		}
		memcpy(one.data, start, len);
		one.len = len;
		struct msg *m = reader_take_one(s, one, end, in);
		*tail = m; /* a chain, when a multi holds a batch */
		while (*tail != NULL)
			tail = &(*tail)->next;
	}
	if (*end != REMO_OK) {
		while (head != NULL) {
			struct msg *next = head->next;
			remo__msg_free(head);
			head = next;
		}
	}
	return head;
}

/* reader_take: the messages to route (a chain through next), or NULL. */
static struct msg *reader_take(remo_session *s, remo_buf buf, int *end)
{
	return reader_take_one(s, buf, end, IN_FRAME);
}

static struct msg *reader_take_one(remo_session *s, remo_buf buf, int *end,
                                   int in)
{
	struct msg *m = remo__malloc(sizeof *m);
	if (m == NULL) {
		remo_buf_free(&buf);
		*end = REMO_ENOMEM;
		return NULL;
	}
	memset(m, 0, sizeof *m);
	m->buf = buf;
	m->size = buf.len;
	const char *bad =
		buf.len > s->opts.max_message ? "a message over max_message"
		: msg_parse(m) != REMO_OK ? "a malformed message: its type, "
		                            "item count or a field is not as "
		                            "doc/wire.md section 7 says"
		: (in == IN_BATCH && m->type != MSG_REQ) ||
		  (in == IN_MULTI && (m->type == MSG_HELLO ||
		                      m->type == MSG_MULTI))
		? "a message out of place in a BATCH or MULTI" : NULL;
	if (bad != NULL) {
		remo__msg_free(m);
		*end = proto_why(s, bad);
		return NULL;
	}
	atomic_store(&s->last_recv_ms, remo__now_ms_coarse());
	if (!s->hello_seen || m->type == MSG_HELLO) {
		uint64_t why;
		if (!s->hello_seen && m->type == MSG_REFUSED)
			/* the server would not open a session: its reason */
			*end = remo__read_uint(&m->rest, &why)
			       ? remo__refused_status(why) : REMO_EPROTO;
		else if (s->hello_seen || m->type != MSG_HELLO)
			*end = proto_why(s, "a message before HELLO, or a second HELLO"); /* first, and only once */
		else
			handle_hello(s, m);
		s->hello_seen = true;
		remo__msg_free(m);
		return NULL;
	}
	switch (m->type) {
	case MSG_REQ:
		if (m->flags & REMO__REQ_ONEWAY)
			remo__msg_decode(s, m, m->flags & REMO__REQ_PIPE ? 2 : 3);
		return m;
	case MSG_REPLY:
	case MSG_ERROR: {
		int rc = remo__msg_decode(s, m, 1);
		if (rc == REMO_ENOTFOUND || rc == REMO_EPROTO ||
		    (rc == REMO_OK && m->type == MSG_ERROR &&
		     m->vals[0].kind != REMO_ERROR)) {
			/* a reference we never sent, a shape never sent, or
			 * an error reply without an error */
			remo__msg_free(m);
			*end = proto_why(s, "a reply naming a reference or shape never sent, or an ERROR without an error");
			return NULL;
		}
		return m;
	}
	case MSG_BATCH:
	case MSG_MULTI: {
		struct msg *got = batch_split(s, m, end, m->type == MSG_BATCH
		                                         ? IN_BATCH : IN_MULTI);
		remo__msg_done(s, m);
		return got;
	}
	case MSG_DROP:
		handle_drop(s, m);
		break;
	case MSG_CANCEL:
		/* here, before the next message is read: a request that
		 * came before it is queued or running, never in between */
		remo__serve_cancel(s, m->reqid);
		break;
	case MSG_BYE: {
		/* its reason, if it gave one: for the calls that fail now */
		uint64_t status;
		remo__tok t;
		if (remo__read_uint(&m->rest, &status) &&
		    remo__wire_next(&m->rest, &t) == REMO_OK &&
		    t.type == REMO__T_STR) {
			size_t k = 0;
			for (uint32_t i = 0; i < t.n && k + 1 < sizeof s->bye_why;
			     i++) {
				char c = ((const char *)t.v.p)[i];
				s->bye_why[k++] = c >= 0x20 && c < 0x7f ? c : '?';
			}
			s->bye_why[k] = '\0';
		}
		*end = REMO_EPEERLOST;
		break;
	}
	case MSG_RELEASE:
		handle_release(s, m);
		break;
	case MSG_SHAPE:
		handle_shape(s, m);
		break;
	case MSG_PING:
		break; /* its arrival was the point */
	}
	remo__msg_done(s, m);
	return NULL;
}

/* ==== waiting ========================================================== */

/* This thread is in remo__session_serve_ready (an event loop's turn). */
static _Thread_local bool tls_turn;

/*
 * One turn as the reader: the caller set s->reading under s->lock.
 * Receives at most one message within timeout_ms, handles or routes it,
 * and only then gives the role back: a waiter must never block in recv
 * while its reply sits routed but unseen.  Returns recv's status.
 */
int remo__reader_turn(remo_session *s, int timeout_ms)
{
	int end = REMO_OK;
	struct msg *got = NULL;
	pthread_mutex_lock(&s->lock);
	remo_buf buf = s->rxspare;
	s->rxspare = (remo_buf){0};
	pthread_mutex_unlock(&s->lock);

	/*
	 * Spin, yielding, for a moment before blocking.  Measured with
	 * bench_transport: a blocking round trip between processes on
	 * different cores costs about 60 us, nearly all of it waking the
	 * idle core; polling for up to 20 us with sched_yield between polls
	 * brought it to about 5 us, and, because each poll yields, costs
	 * nothing when both processes share one core (a spin without the
	 * yield cost 110 us there).  But threads of one process sharing a
	 * core through remo_pipe lost 4x to it, so it is the session's
	 * option: on for transports (remo_connect, servers), off otherwise.
	 */
	int rc = REMO_ETIMEDOUT;
	int spin = s->opts.spin_us;
	if (timeout_ms != 0 && spin > 0) {
		int64_t until = remo__now_us() + spin;
		do {
			rc = s->ch.recv(s->ch.user, &buf, 0);
			if (rc != REMO_ETIMEDOUT)
				break;
			sched_yield();
		} while (remo__now_us() < until);
	}
	if (rc == REMO_ETIMEDOUT)
		rc = s->ch.recv(s->ch.user, &buf, timeout_ms);
	if (rc == REMO_OK) {
		got = reader_take(s, buf, &end);
	} else {
		pthread_mutex_lock(&s->lock);
		if (s->rxspare.data == NULL)
			s->rxspare = buf, buf = (remo_buf){0};
		pthread_mutex_unlock(&s->lock);
		remo_buf_free(&buf);
	}
	if (rc != REMO_OK && rc != REMO_ETIMEDOUT)
		end = rc == REMO_ECLOSED || rc == REMO_ENOMEM ||
		      rc == REMO_EPROTO || rc == REMO_EAUTH ? rc : REMO_EPEERLOST;
	struct msg *drop = NULL;
	struct remo_future *settled = NULL;
	pthread_mutex_lock(&s->lock);
	while (got != NULL) {
		struct msg *next = got->next;
		struct msg *d = route(s, got, &settled);
		if (d != NULL) {
			d->next = drop;
			drop = d;
		}
		got = next;
	}
	/* reading stops at the budget (remo__rx_full) but for a thread
	 * waiting for its reply: past twice it the peer is flooding */
	if (s->nqueued > 2 * s->max_queued)
		end = REMO_EPROTO;
	else if (s->queued_bytes > 2 * s->opts.max_queued_bytes)
		end = REMO_ELIMIT; /* ... with bytes (a stated option) */
	s->reading = false;
	pthread_cond_broadcast(&s->cond);
	/* A session an event loop watches: a thread other than its turn
	 * (a waiter) gives the role up, and what arrived since its last look
	 * would wake nobody: the loop looks again.  Not while helpers serve
	 * it: they read it (a turn per helper's read thrashed, measured:
	 * pipelined calls fell from 187k to 2k a second); the last helper
	 * to go asks for a turn. */
	if (s->poll_kick != NULL && !tls_turn && s->nhelpers == 0)
		s->poll_kick(s->poll_arg);
	pthread_mutex_unlock(&s->lock);
	/* A dropped reply's values are released here, so what it named is
	 * released to the peer as well. */
	while (drop != NULL) {
		struct msg *next = drop->next;
		remo__msg_done(s, drop);
		drop = next;
	}
	remo__futures_notify(settled);
	if (end != REMO_OK)
		remo__session_end(s, end);
	return rc;
}

/* The bytes of the requests queued in every session of the process, and
 * their budget. */
static _Atomic size_t queued_total;
static _Atomic size_t queued_max = REMO_DEFAULT_QUEUE_BUDGET;

void remo_queue_set_budget(size_t bytes)
{
	atomic_store(&queued_max, bytes ? bytes : REMO_DEFAULT_QUEUE_BUDGET);
}

size_t remo_queue_budget_used(void)
{
	return atomic_load(&queued_total);
}

bool remo__rx_full(const remo_session *s)
{
	return s->nqueued >= s->max_queued ||
	       s->queued_bytes >= s->opts.max_queued_bytes ||
	       (s->nqueued > 0 &&
	        atomic_load(&queued_total) >= atomic_load(&queued_max));
}

void remo__rx_add(remo_session *s, struct msg *m)
{
	if (s->status != REMO_OK) /* counted out by remo__rx_end already */
		return;
	s->nqueued++;
	s->queued_bytes += m->size;
	atomic_fetch_add(&queued_total, m->size);
}

/* The session ended: what it still holds leaves the process's count
 * (its messages are freed without remo__rx_taken).  Under s->lock. */
void remo__rx_end(remo_session *s)
{
	atomic_fetch_sub(&queued_total, s->queued_bytes);
	s->queued_bytes = 0;
	s->nqueued = 0;
}

void remo__session_wake(remo_session *s)
{
	pthread_cond_broadcast(&s->cond);
	/* helpers read it themselves; the last to go kicks */
	if (s->poll_kick != NULL && s->nhelpers == 0)
		s->poll_kick(s->poll_arg);
}

void remo__rx_taken(remo_session *s, const struct msg *m)
{
	if (s->status != REMO_OK)
		return; /* counted out by remo__rx_end */
	bool full = remo__rx_full(s);
	s->nqueued--;
	s->queued_bytes -= m->size;
	atomic_fetch_sub(&queued_total, m->size);
	/* under the budget again: whoever stopped reading for it reads */
	if (full && !remo__rx_full(s))
		remo__session_wake(s);
}

/*
 * Serves one request that w may serve, if one waits: its own (a callback
 * of w's call), or a top-level one when w is a serving thread (reqid 0)
 * or nobody serves.  Under s->lock, which it drops while serving; false
 * if there was none.
 */
static bool serve_queued(remo_session *s, struct waiter *w)
{
	struct msg *m = remo__queue_pop(&w->head, &w->tail);
	bool top = false, ow = false;
	/* serving threads (reqid 0) start nothing while a one-way
	 * request runs (doc/design.md, "the ordering rule") */
	if (m == NULL && (w->reqid == 0 || s->nservers == 0) &&
	    !(w->reqid == 0 && s->noneway_busy > 0)) {
		m = remo__queue_pop(&s->top_head, &s->top_tail);
		/* a serving thread busy with one: helpers count them */
		top = m != NULL && w->reqid == 0;
		ow = top && (m->flags & REMO__REQ_ONEWAY);
	}
	if (m == NULL)
		return false;
	remo__rx_taken(s, m);
	s->nbusy += top;
	s->noneway_busy += ow;
	pthread_mutex_unlock(&s->lock);
	remo__serve(s, m);
	pthread_mutex_lock(&s->lock);
	s->nbusy -= top;
	s->noneway_busy -= ow;
	if (ow && s->top_head != NULL)
		pthread_cond_broadcast(&s->cond);
	return true;
}

/*
 * Waits until w has a reply (call waiters) or the deadline passes (remo__serve
 * waiters), serving what belongs to w meanwhile and reading for everyone
 * when nobody else is.  Returns REMO_OK (a reply is in *reply), or
 * REMO_ETIMEDOUT, or the session's end status.
 */
int remo__wait_for(remo_session *s, struct waiter *w, int64_t deadline,
                    struct msg **reply)
{
	pthread_mutex_lock(&s->lock);
	for (;;) {
		/* the callbacks the peer sent before its reply run before the
		 * call returns: left queued, they would wait for a serving
		 * thread that may be blocked reading (an actor's exit notice
		 * sent while the peer served our call waited so) */
		if (w->reqid != 0 && w->head != NULL && s->status == REMO_OK &&
		    serve_queued(s, w))
			continue;
		if (w->reply != NULL || w->done) {
			*reply = w->reply;
			w->reply = NULL;
			pthread_mutex_unlock(&s->lock);
			return REMO_OK;
		}
		/* an ended session serves nothing more, even what was queued */
		if (s->status != REMO_OK) {
			int st = s->status;
			pthread_mutex_unlock(&s->lock);
			return st;
		}
		if (serve_queued(s, w))
			continue;
		int64_t left = deadline < 0 ? -1 : deadline - remo__now_ms();
		if (deadline >= 0 && left <= 0) {
			pthread_mutex_unlock(&s->lock);
			return REMO_ETIMEDOUT;
		}
		/* at the queue's budget only a thread waiting for its own
		 * reply reads; the others wait for a request to be served
		 * (or, the process's budget, for the lease thread's look) */
		bool full = !s->reading && w->reqid == 0 && remo__rx_full(s);
		if (full)
			atomic_store(&s->rx_paused, true);
		if (!s->reading && !full) {
			s->reading = true;
			pthread_mutex_unlock(&s->lock);
			remo__reader_turn(s, left > INT32_MAX ? INT32_MAX : (int)left);
			pthread_mutex_lock(&s->lock);
			continue;
		}
		if (deadline < 0) {
			pthread_cond_wait(&s->cond, &s->lock);
		} else {
			struct timespec ts = {deadline / 1000,
			                      (long)(deadline % 1000) * 1000000};
			pthread_cond_timedwait(&s->cond, &s->lock, &ts);
		}
	}
}

int remo_session_serve(remo_session *s, int timeout_ms)
{
	struct waiter w = {0};
	struct msg *none = NULL;
	int64_t deadline = remo__deadline_ms(timeout_ms);
	pthread_mutex_lock(&s->lock);
	s->nservers++;
	pthread_mutex_unlock(&s->lock);
	/* the lease thread reads it while its servers are busy (a CANCEL
	 * reaches a running call so), and starts helpers if it may */
	atomic_store(&s->served, true);
	int rc = remo__wait_for(s, &w, deadline, &none);
	pthread_mutex_lock(&s->lock);
	/* with no server left, callers remo__serve the top-level queue: wake them */
	if (--s->nservers == 0)
		pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/*
 * An event loop's turn (net/server.c): reads what has arrived and serves
 * it, until nothing more comes within linger_ms (0: without waiting; the
 * wait only while linger_ok(arg) says nothing else wants the thread), or
 * someone else holds the reader role (a helper, a waiter: when it gives
 * the role up, poll_kick asks for another turn).  Returns the session's
 * status.
 */
int remo__session_serve_ready(remo_session *s, int linger_ms,
                               bool (*linger_ok)(void *), void *arg,
                               bool *handed_out)
{
	struct waiter w = {0};
	bool handed = false;
	bool was = tls_turn;
	tls_turn = true;
	atomic_store(&s->served, true);
	pthread_mutex_lock(&s->lock);
	s->nservers++;
	while (s->status == REMO_OK) {
		/* while a turn serves, nobody may read: the lease thread
		 * does, and starts helpers if the call blocks */
		atomic_fetch_add(&s->turns_serving, 1);
		bool served = serve_queued(s, &w);
		atomic_fetch_sub(&s->turns_serving, 1);
		if (served)
			continue;
		if (s->reading)
			break; /* its reader looks, and kicks us when done */
		bool full = s->nhelpers == 0 && remo__rx_full(s);
		if (full)
			atomic_store(&s->rx_paused, true);
		if (s->nhelpers > 0 || full) {
			/* helpers serve it for now: they read, and the last
			 * to go asks for a turn; the descriptor stays unwatched
			 * meanwhile.  Or the peer's requests are at their
			 * budget, queued for threads busy in calls: the one
			 * that takes it under asks (rx_resume). */
			handed = true;
			break;
		}
		/* read: waiting up to linger_ms for the next request if
		 * nothing else wants this thread (a client calling in a loop
		 * then costs no hand-off per call), else only a look */
		int t = 0;
		if (linger_ms > 0) {
			pthread_mutex_unlock(&s->lock);
			bool ok = linger_ok == NULL || linger_ok(arg);
			pthread_mutex_lock(&s->lock);
			if (s->reading || s->status != REMO_OK)
				continue;
			t = ok ? linger_ms : 0;
		}
		s->reading = true;
		pthread_mutex_unlock(&s->lock);
		int rc = remo__reader_turn(s, t);
		pthread_mutex_lock(&s->lock);
		if (rc != REMO_OK && s->top_head == NULL)
			break; /* nothing came */
	}
	int st = s->status;
	if (--s->nservers == 0)
		pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	tls_turn = was;
	*handed_out = handed;
	return st;
}

void remo__session_poll(remo_session *s, void (*kick)(void *), void *arg)
{
	pthread_mutex_lock(&s->lock);
	s->poll_kick = kick;
	s->poll_arg = arg;
	atomic_store(&s->polled, kick != NULL);
	pthread_mutex_unlock(&s->lock);
}
