/*
 * session.c -- a session's lifetime: remo_session_new (the handshake
 * is sent here), close, status, free; ending a session (every waiter
 * fails, every reference the peer held is released); the message queues;
 * the sizes tests read.
 */
#include "session/session_impl.h"

#include <openssl/crypto.h>

struct remo__session_hooks remo__session_hooks;

/* ==== small helpers ==================================================== */

/* The default spin window for transport sessions: $REMO_SPIN_US, or 20. */
int remo__spin_us(void)
{
	static atomic_int cached = -1;
	int v = atomic_load(&cached);
	if (v < 0) {
		const char *e = getenv("REMO_SPIN_US");
		v = e ? atoi(e) : 20;
		if (v < 0)
			v = 0; /* REMO_SPIN_US=0 or negative: no spinning */
		if (v > 10000)
			v = 10000;
		atomic_store(&cached, v);
	}
	return v;
}

/* Not under s->lock: decoded values may be proxies. */
void remo__msg_free(struct msg *m)
{
	if (m != NULL) {
		for (int i = 0; i < 3; i++)
			remo_value_release(m->vals[i]);
		remo_buf_free(&m->buf);
		remo__free(m);
	}
}

/*
 * Frees m but keeps its buffer for the next receive: a transport that
 * hands over a whole buffer (the stream transport swaps) then has a
 * buffer of the right size already, instead of allocating one per
 * message (measured: a malloc of 1 MiB per 1 MiB call).  Not under
 * s->lock.
 */
#define RX_KEEP_MAX (8u << 20)
void remo__msg_done(remo_session *s, struct msg *m)
{
	if (m == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	if (s->rxspare.data == NULL && m->buf.cap <= RX_KEEP_MAX) {
		s->rxspare = m->buf;
		s->rxspare.len = 0;
		m->buf = (remo_buf){0};
	}
	pthread_mutex_unlock(&s->lock);
	remo__msg_free(m);
}

void remo__queue_push(struct msg **head, struct msg **tail, struct msg *m)
{
	m->next = NULL;
	if (*tail)
		(*tail)->next = m;
	else
		*head = m;
	*tail = m;
}

struct msg *remo__queue_pop(struct msg **head, struct msg **tail)
{
	struct msg *m = *head;
	if (m != NULL && (*head = m->next) == NULL)
		*tail = NULL;
	return m;
}

void remo__session_retain(remo_session *s)
{
	atomic_fetch_add(&s->refs, 1);
}

/* ==== ending =========================================================== */

static void kept_free_all(struct remo__map *kept)
{
	size_t pos = 0;
	uint64_t id;
	void *p;
	while (remo__map_next(kept, &pos, &id, &p)) {
		struct kept *k = p;
		remo_value_release(k->val);
		struct msg *m;
		while ((m = remo__queue_pop(&k->wait_head, &k->wait_tail)) != NULL)
			remo__msg_free(m);
		remo__free(k);
	}
	remo__map_free(kept);
}

/*
 * Ends the session with status (if it is still open): every waiter wakes
 * and fails, and every reference the peer held is released.  Called
 * without s->lock.
 */
/*
 * The peer broke the protocol: a last BYE that says why, [6, 17,
 * reason] (doc/wire.md 7.5), a courtesy as remo_session_close's BYE is:
 * not sent if another send holds the send lock (a peer that stopped
 * reading; closing the channel is what frees that send).
 */
static void session_bye_why(remo_session *s)
{
	pthread_mutex_lock(&s->lock);
	bool open = s->status == REMO_OK && s->hello_seen;
	const char *why = s->eproto_why != NULL ? s->eproto_why
	                  : "a message that breaks doc/wire.md";
	pthread_mutex_unlock(&s->lock);
	if (!open || pthread_mutex_trylock(&s->send_lock) != 0)
		return;
	pthread_mutex_unlock(&s->send_lock);
	int64_t bye[2] = {MSG_BYE, REMO_EPROTO};
	remo_value v = remo_str(why);
	if (remo_ok(v))
		remo__send_msg(s, bye, 2, &v, 1);
	remo_value_release(v);
}

void remo__session_end(remo_session *s, int status)
{
	struct remo__map table, kept;
	if (status == REMO_EPROTO)
		session_bye_why(s);
	pthread_mutex_lock(&s->lock);
	if (s->status == REMO_OK)
		s->status = status;
	table = s->table;
	memset(&s->table, 0, sizeof s->table);
	remo__map_free(&s->table_key);
	kept = s->kept;
	memset(&s->kept, 0, sizeof s->kept);
	/* an ended session serves nothing more, even what was queued */
	struct msg *queued = s->top_head;
	s->top_head = s->top_tail = NULL;
	remo__rx_end(s);
	struct remo_future *settled = NULL;
	while (s->inflight_head != NULL) {
		struct remo_future *f = s->inflight_head;
		remo__map_del(&s->pending, f->w.reqid);
		remo__future_settle(s, f, s->status, remo_nil(), &settled);
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	remo__futures_notify(settled);
	/* the calls it serves are cancelled: deferred ones' hooks run */
	remo__serve_end(s);
	while (queued != NULL) {
		struct msg *next = queued->next;
		remo__msg_free(queued);
		queued = next;
	}
	kept_free_all(&kept);

	/* Close the channel so a blocked reader wakes and sends fail fast. */
	if (s->ch.close != NULL)
		s->ch.close(s->ch.user);

	size_t pos = 0;
	uint64_t id;
	void *p;
	while (remo__map_next(&table, &pos, &id, &p)) {
		struct entry *e = p;
		remo_value_release(e->value);
		remo__free(e);
	}
	remo__map_free(&table);
}

/* ==== lifetime ========================================================= */

remo_session *remo_session_new(const remo_channel *ch, remo_exports *exports,
                               const remo_session_opts *opts, int *status)
{
	int rc = REMO_EINVAL;
	remo_session *s = NULL;
	if (ch == NULL || ch->send == NULL || ch->recv == NULL)
		goto fail;
	rc = REMO_ENOMEM;
	if ((s = remo__malloc(sizeof *s)) == NULL)
		goto fail;
	memset(s, 0, sizeof *s);
	atomic_init(&s->refs, 1);
	s->ch = *ch;
	s->exports = exports;
	if (opts != NULL)
		s->opts = *opts;
	if (s->opts.max_message == 0)
		s->opts.max_message = REMO_DEFAULT_MAX_MESSAGE;
	if (s->opts.max_call_depth == 0)
		s->opts.max_call_depth = REMO_DEFAULT_MAX_CALL_DEPTH;
	if (s->opts.max_refs == 0)
		s->opts.max_refs = REMO_DEFAULT_MAX_REFS;
	if (opts == NULL || opts->timeout_ms == 0)
		s->opts.timeout_ms = -1;
	if (s->opts.lease_ms < 0)
		s->opts.lease_ms = 0;
	if (s->opts.spin_us < 0 || s->opts.spin_us > 10000)
		s->opts.spin_us = 0;
	if (s->opts.live_ms <= 0)
		s->opts.live_ms = REMO_DEFAULT_LIVE_MS;
	if (s->opts.max_concurrent == 0)
		s->opts.max_concurrent = 1; /* remo_connect and servers: 16 */
	if (s->opts.handshake_ms <= 0)
		s->opts.handshake_ms = REMO_DEFAULT_HANDSHAKE_MS;
	if (s->opts.max_queued_bytes == 0)
		s->opts.max_queued_bytes = REMO_DEFAULT_MAX_QUEUED_BYTES;
	if (s->opts.max_kept_bytes == 0)
		s->opts.max_kept_bytes = REMO_DEFAULT_MAX_KEPT_BYTES;
	if (s->opts.max_queued_bytes / 2 < s->opts.max_message)
		s->opts.max_queued_bytes = s->opts.max_message > SIZE_MAX / 2
		                           ? SIZE_MAX : 2 * s->opts.max_message;
	if (s->opts.secret != NULL) {
		rc = REMO_EINVAL;
		if (s->opts.secret_len < REMO_MIN_SECRET ||
		    s->opts.secret_len > REMO_MAX_SECRET)
			goto fail;
		rc = REMO_ENOMEM;
		if ((s->secret = remo__malloc(s->opts.secret_len)) == NULL)
			goto fail;
		memcpy(s->secret, s->opts.secret, s->opts.secret_len);
		s->secret_len = s->opts.secret_len;
		s->opts.secret = NULL; /* the caller's memory: not kept */
	}
	if (s->opts.traceback != REMO_TB_NONE &&
	    (remo__session_hooks.init_handlers == NULL ||
	     (rc = remo__session_hooks.init_handlers()) != REMO_OK))
		goto fail;
	atomic_init(&s->last_recv_ms, remo__now_ms_coarse());
	atomic_init(&s->last_send_ms, remo__now_ms_coarse());
	s->peer_max_message = s->opts.max_message;
	s->max_queued = MAX_QUEUED;
	s->status = REMO_OK;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->send_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);

	int64_t hello[4] = {MSG_HELLO, PROTO_VERSION,
	                    (int64_t)s->opts.max_message,
	                    (int64_t)s->opts.max_call_depth};
	/* [0, version, max_message, max_call_depth, nonce or nil, lease_ms]
	 * (doc/wire.md 7.1) */
	remo_value tail[2] = {remo_nil(), remo_int(s->opts.lease_ms)};
	if (s->secret == NULL) {
		rc = remo__send_msg(s, hello, 4, tail, 2);
	} else {
		/* HELLO with our nonce, then the proofs (auth.c); until they
		 * hold, the peer may send nothing bigger than the opening */
		if (s->ch.limit != NULL)
			s->ch.limit(s->ch.user, REMO__OPENING_MAX);
		unsigned char nonce[REMO__NONCE_LEN];
		rc = remo__auth_nonce(nonce);
		remo_value v = rc == REMO_OK ? remo_bytes(nonce, sizeof nonce)
		                             : remo_nil();
		if (rc == REMO_OK && !remo_ok(v))
			rc = REMO_ENOMEM;
		tail[0] = v;
		if (rc == REMO_OK)
			rc = remo__send_msg(s, hello, 4, tail, 2);
		remo_value_release(v);
		if (rc == REMO_OK)
			rc = remo__session_auth(s, nonce);
	}
	if (rc != REMO_OK) {
		remo_session_free(s);
		if (status != NULL)
			*status = rc;
		return NULL;
	}
	/* what the session takes, told the peer in HELLO, bounds what the
	 * channel holds for one message (a transport's own limit is often
	 * larger: 64 MiB) */
	if (s->ch.limit != NULL)
		s->ch.limit(s->ch.user, s->opts.max_message);
	/* every session: the lease thread also reads for one nobody
	 * reads and starts helpers for one whose calls block */
	remo__lease_add(s);
	if (status != NULL)
		*status = REMO_OK;
	return s;
fail:
	if (s != NULL)
		remo__free(s->secret);
	remo__free(s);
	if (ch != NULL && ch->destroy != NULL)
		ch->destroy(ch->user);
	if (status != NULL)
		*status = rc;
	return NULL;
}

void remo__session_refuse(const remo_channel *ch, int status)
{
	remo_buf b = {0};
	/* a few bytes on a new connection: the send does not block */
	if (remo__wire_put_array(&b, 2) == REMO_OK &&
	    remo__wire_put_int(&b, MSG_REFUSED) == REMO_OK &&
	    remo__wire_put_int(&b, status) == REMO_OK)
		ch->send(ch->user, b.data, b.len);
	remo_buf_free(&b);
}

void remo_session_close(remo_session *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	bool open = s->status == REMO_OK;
	pthread_mutex_unlock(&s->lock);
	/* A BYE is a courtesy: if a send is stuck (a peer that stopped
	 * reading), closing the channel below is what unsticks it, so do
	 * not wait behind it for the send lock. */
	if (open && pthread_mutex_trylock(&s->send_lock) == 0) {
		pthread_mutex_unlock(&s->send_lock);
		int64_t bye[1] = {MSG_BYE};
		remo__send_msg(s, bye, 1, NULL, 0);
	}
	remo__session_end(s, REMO_ECLOSED);
}

int remo_session_status(const remo_session *s)
{
	pthread_mutex_lock((pthread_mutex_t *)&s->lock);
	int st = s->status;
	pthread_mutex_unlock((pthread_mutex_t *)&s->lock);
	return st;
}

static void session_destroy(remo_session *s)
{
	size_t pos = 0;
	uint64_t id;
	void *p;
	remo__lease_remove(s);
	remo__session_end(s, REMO_ECLOSED);
	remo__map_free(&s->running);
	remo__map_free(&s->deferred);
	while (remo__map_next(&s->shapes_in, &pos, &id, &p))
		remo__shape_free(p);
	remo__map_free(&s->shapes_in);
	remo__map_free(&s->proxies);
	remo__map_free(&s->pending);
	remo__map_free(&s->shapes_out);
	struct msg *m;
	while ((m = remo__queue_pop(&s->top_head, &s->top_tail)) != NULL)
		remo__msg_free(m);
	remo__free(s->releases.v);
	remo__free(s->drops.v);
	remo__free(s->due_spare[0].v);
	remo__free(s->due_spare[1].v);
	remo__free(s->shape_queue);
	remo__free(s->shape_queue_is_type);
	remo__free(s->put_ids);
	remo_buf_free(&s->sendbuf);
	remo_buf_free(&s->shapebuf);
	remo_buf_free(&s->multibuf);
	remo_buf_free(&s->framebuf);
	remo_buf_free(&s->rxspare);
	if (s->secret != NULL)
		OPENSSL_cleanse(s->secret, s->secret_len);
	remo__free(s->secret);
	if (s->ch.destroy != NULL)
		s->ch.destroy(s->ch.user);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->send_lock);
	pthread_cond_destroy(&s->cond);
	remo__free(s);
}

void remo__session_release(remo_session *s)
{
	if (atomic_fetch_sub(&s->refs, 1) == 1)
		session_destroy(s);
}

void remo_session_free(remo_session *s)
{
	if (s == NULL)
		return;
	remo_session_close(s);
	/* after it returns, no thread serves for s, and the lease thread
	 * holds no count of it: the last release is not left to it */
	remo__session_join_helpers(s);
	remo__lease_remove(s);
	remo__session_release(s);
}

int remo_lookup(remo_session *s, const char *name, remo_value *out)
{
	*out = remo_nil();
	if (s == NULL || name == NULL)
		return remo__fail(REMO_EINVAL, "lookup");
	remo_value n = remo_str(name);
	if (!remo_ok(n))
		return remo__fail(REMO_ENOMEM, "lookup");
	int rc = remo__session_request(s, REMO__OP_LOOKUP, remo_nil(), n,
	                               remo_nil(), out);
	remo_value_release(n);
	return rc;
}

int remo_lookup_names(remo_session *s, remo_value *out)
{
	*out = remo_nil();
	if (s == NULL)
		return remo__fail(REMO_EINVAL, "lookup_names");
	/* LOOKUP of nil: the names, not a value (doc/wire.md 7.2) */
	return remo__session_request(s, REMO__OP_LOOKUP, remo_nil(),
	                             remo_nil(), remo_nil(), out);
}

/* ==== for tests ======================================================== */

int64_t remo__session_peer_lease_ms(remo_session *s)
{
	return s->peer_lease_ms;
}

size_t remo__session_table_len(remo_session *s)
{
	pthread_mutex_lock(&s->lock);
	size_t n = s->table.len;
	pthread_mutex_unlock(&s->lock);
	return n;
}

size_t remo__session_proxies_len(remo_session *s)
{
	pthread_mutex_lock(&s->lock);
	size_t n = s->proxies.len;
	pthread_mutex_unlock(&s->lock);
	return n;
}

size_t remo__session_queued(remo_session *s, size_t *bytes)
{
	pthread_mutex_lock(&s->lock);
	size_t n = s->nqueued;
	*bytes = s->queued_bytes;
	pthread_mutex_unlock(&s->lock);
	return n;
}

void remo__session_set_max_queued(remo_session *s, size_t n)
{
	pthread_mutex_lock(&s->lock);
	s->max_queued = n;
	pthread_mutex_unlock(&s->lock);
}

int remo__session_flush(remo_session *s)
{
	pthread_mutex_lock(&s->send_lock);
	int rc = remo__send_preamble(s, NULL, NULL, 0);
	pthread_mutex_unlock(&s->send_lock);
	return rc;
}
