/*
 * send.c -- encoding and sending: a message goes after what is due
 * before it (shapes, releases, drops), in a MULTI frame with them when
 * it is small; send_lock serialises it all.
 */
#include "session/session_impl.h"

/* ==== sending ========================================================== */

int remo__send_raw(remo_session *s, const remo_buf *b)
{
	if (b->len > s->peer_max_message)
		return REMO_ETOOBIG;
	int rc = s->ch.send(s->ch.user, b->data, b->len);
	if (rc == REMO_OK)
		atomic_store(&s->last_send_ms, remo__now_ms_coarse());
	return rc;
}

/* b with the large bytes g left out of it, sent in pieces: one gathered
 * write, no copy of those bytes (doc/design.md, "Bulk data"). */
static int send_gathered(remo_session *s, const remo_buf *b,
                         const struct remo__gather *g)
{
	if (b->len + g->total > s->peer_max_message)
		return REMO_ETOOBIG;
	remo_iov iov[2 * REMO__GATHER_MAX + 1];
	int n = 0;
	size_t at = 0;
	for (unsigned i = 0; i < g->n; i++) {
		if (g->at[i] > at)
			iov[n++] = (remo_iov){b->data + at, g->at[i] - at};
		iov[n++] = (remo_iov){g->p[i], g->len[i]};
		at = g->at[i];
	}
	if (b->len > at)
		iov[n++] = (remo_iov){b->data + at, b->len - at};
	int rc = s->ch.sendv(s->ch.user, iov, n);
	if (rc == REMO_OK)
		atomic_store(&s->last_send_ms, remo__now_ms_coarse());
	return rc;
}

/*
 * One message of the preamble, in s->shapebuf: appended to into (the
 * parts of a MULTI: the message these go before takes them into its
 * frame) while it fits budget and MULTI_PARTS, else sent as a frame.
 */
static int preamble_put(remo_session *s, remo_buf *into, uint32_t *parts,
                        size_t *budget)
{
	remo_buf *m = &s->shapebuf;
	if (into == NULL || m->len > *budget || *parts + 1 >= MULTI_PARTS)
		return remo__send_raw(s, m);
	int rc = remo__buf_grow(into, m->len);
	if (rc != REMO_OK)
		return remo__send_raw(s, m);
	memcpy(into->data + into->len, m->data, m->len);
	into->len += m->len;
	*budget -= m->len;
	(*parts)++;
	return REMO_OK;
}

/*
 * The ints due (took, taken from the session under s->lock) as [type,
 * (int, ...)] messages that fit the peer's limit, group ints never split
 * between two (a RELEASE pair): an int takes at most 9 bytes, the header
 * 8.
 */
static int preamble_due(remo_session *s, int type, const struct due *took_,
                        size_t group, remo_buf *into, uint32_t *parts,
                        size_t *budget)
{
	const struct due took = *took_;
	size_t per = (atomic_load(&s->peer_max_message) - 8) / 9 / group * group;
	int rc = REMO_OK;
	for (size_t at = 0; rc == REMO_OK && at < took.n;) {
		size_t k = took.n - at > per ? per : took.n - at;
		s->shapebuf.len = 0;
		rc = remo__wire_put_array(&s->shapebuf, 2);
		if (rc == REMO_OK)
			rc = remo__wire_put_int(&s->shapebuf, type);
		if (rc == REMO_OK)
			rc = remo__wire_put_array(&s->shapebuf, (uint32_t)k);
		for (size_t i = 0; rc == REMO_OK && i < k; i++)
			rc = remo__wire_put_int(&s->shapebuf,
			                        (int64_t)took.v[at + i]);
		if (rc == REMO_OK)
			rc = preamble_put(s, into, parts, budget);
		at += k;
	}
	return rc;
}

/* Takes the releases and drops due (one lock, none when nothing was
 * pushed), leaving the session the vectors the last send used, emptied:
 * no allocation per message.  Under send_lock, which guards the spares. */
static void due_take(remo_session *s, struct due *rel, struct due *drop)
{
	*rel = s->due_spare[0];
	*drop = s->due_spare[1];
	rel->n = drop->n = 0;
	if (atomic_load(&s->ndue) == 0)
		return;
	pthread_mutex_lock(&s->lock);
	struct due r = s->releases, d = s->drops;
	s->releases = *rel;
	s->drops = *drop;
	atomic_store(&s->ndue, 0);
	pthread_mutex_unlock(&s->lock);
	*rel = r;
	*drop = d;
}

/* Sends queued shapes (always frames of their own: they are rare), the
 * release batch and the drops, or with into, appends those that fit to
 * it (see preamble_put).  Under send_lock. */
int remo__send_preamble(remo_session *s, remo_buf *into, uint32_t *parts,
                         size_t budget)
{
	int rc = REMO_OK;
	for (size_t i = 0; rc == REMO_OK && i < s->nshape_queue; i++) {
		const void *p = s->shape_queue[i];
		bool is_type = s->shape_queue_is_type[i];
		uint32_t id = is_type ? remo__type_out_id(p)
		                      : remo__func_out_id(p);
		remo_value shape = remo__shape_value(p, is_type);
		remo_value m = remo_tuple_of(3, remo_int(MSG_SHAPE), remo_int(id),
		                             shape);
		s->shapebuf.len = 0;
		rc = remo_ok(m) ? remo_pack(m, &s->shapebuf) : REMO_ENOMEM;
		remo_value_release(m);
		if (rc == REMO_OK)
			rc = remo__send_raw(s, &s->shapebuf);
		if (rc == REMO_OK)
			rc = remo__map_put(&s->shapes_out, id, (void *)1);
	}
	s->nshape_queue = 0;
	if (rc != REMO_OK)
		return rc; /* the release batch waits for a message that goes */

	struct due rel, drop;
	due_take(s, &rel, &drop);
	rc = preamble_due(s, MSG_RELEASE, &rel, 2, into, parts, &budget);
	if (rc == REMO_OK) /* kept results we no longer need */
		rc = preamble_due(s, MSG_DROP, &drop, 1, into, parts, &budget);
	s->due_spare[0] = rel;
	s->due_spare[1] = drop;
	return rc;
}

/*
 * Encodes the message [fields..., values...] and sends it, shapes and
 * releases first.  ints are the leading integer fields; vals are encoded
 * with the session's hooks.  Returns a status; ETOOBIG and encoding
 * failures leave the session open, send failures end it.
 */
static int put_parts(remo_buf *b, const remo__codec *c,
                     const struct msg_parts *m)
{
	int rc = remo__wire_put_array(b, (uint32_t)(m->nints + m->nvals));
	for (size_t i = 0; rc == REMO_OK && i < m->nints; i++)
		rc = remo__wire_put_int(b, m->ints[i]);
	for (size_t i = 0; rc == REMO_OK && i < m->nvals; i++)
		rc = remo__pack_with(m->vals[i], b, c);
	return rc;
}

int remo__send_msg(remo_session *s, const int64_t *ints, size_t nints,
                    const remo_value *vals, size_t nvals)
{
	struct msg_parts m = {ints, nints, vals, nvals};
	return remo__send_parts(s, &m, 1, false);
}

/* b, after the parts of a MULTI (into, parts of them), as one MULTI. */
static int send_multi(remo_session *s, const remo_buf *into, uint32_t parts,
                      const remo_buf *b)
{
	remo_buf *f = &s->framebuf;
	f->len = 0;
	int rc = remo__wire_put_array(f, parts + 2);
	if (rc == REMO_OK)
		rc = remo__wire_put_int(f, MSG_MULTI);
	if (rc == REMO_OK)
		rc = remo__buf_grow(f, into->len + b->len);
	if (rc != REMO_OK)
		return rc;
	memcpy(f->data + f->len, into->data, into->len);
	memcpy(f->data + f->len + into->len, b->data, b->len);
	f->len += into->len + b->len;
	return remo__send_raw(s, f);
}

/* remo__send_parts with send_lock held by the caller. */
int remo__send_parts_locked(remo_session *s, const struct msg_parts *m,
                             size_t n, bool batch)
{
	struct remo__gather g;
	g.n = 0;
	g.total = 0;
	/* large bytes go from where they are, if the channel can send a
	 * message in pieces */
	remo__codec codec = {.ctx = s, .put_ref = remo__hook_put_ref,
	                     .get_ref = remo__hook_get_ref,
	                     .gather = s->ch.sendv != NULL ? &g : NULL};
	remo_buf *b = &s->sendbuf;
	b->len = 0;
	s->put_error = REMO_OK;
	int rc = REMO_OK;
	if (batch) {
		rc = remo__wire_put_array(b, (uint32_t)(n + 1));
		if (rc == REMO_OK)
			rc = remo__wire_put_int(b, MSG_BATCH);
	}
	for (size_t i = 0; rc == REMO_OK && i < n; i++)
		rc = put_parts(b, &codec, &m[i]);
	size_t peer_max = atomic_load(&s->peer_max_message);
	if (rc == REMO_OK && b->len + g.total > peer_max)
		rc = REMO_ETOOBIG;
	/* a small message takes the releases and drops due before it into
	 * its own frame, as a MULTI: one frame instead of two or three */
	remo_buf *into = NULL;
	uint32_t parts = 0;
	if (rc == REMO_OK && g.n == 0 && b->len <= MULTI_MAX &&
	    peer_max > b->len + 16) {
		into = &s->multibuf;
		into->len = 0;
	}
	if (rc == REMO_OK)
		rc = remo__send_preamble(s, into, &parts,
		                   into ? peer_max - b->len - 16 : 0);
	if (rc == REMO_OK)
		rc = parts > 0  ? send_multi(s, into, parts, b)
		     : g.n > 0 ? send_gathered(s, b, &g)
		               : remo__send_raw(s, b);
	/* A message that did not go gave the peer nothing: undo what its
	 * encoding counted, or the peer could never release it. */
	s->nshape_queue = 0;
	if (rc != REMO_OK)
		remo__put_rollback(s);
	s->nput_ids = 0;
	if (s->sendbuf.cap > (1u << 20)) /* do not keep a huge buffer */
		remo_buf_free(&s->sendbuf);
	return rc;
}

/*
 * A send found the peer gone.  It may have said why before it went (a
 * BYE, or a HELLO asking for a secret this side lacks: REMO_EAUTH), and
 * over a unix socket or a pipe the send fails before anything of that is
 * read: read what has arrived now, without waiting, if nobody is
 * reading, so that the session ends with the peer's reason.
 */
static void send_learn_why(remo_session *s)
{
	for (int i = 0; i < 4; i++) {
		pthread_mutex_lock(&s->lock);
		bool take = !atomic_load(&s->reading) && s->status == REMO_OK;
		if (take)
			atomic_store(&s->reading, true);
		pthread_mutex_unlock(&s->lock);
		if (!take || remo__reader_turn(s, 0) != REMO_OK)
			return;
	}
}

/* remo__send_msg for n messages; batch: as one MSG_BATCH message. */
int remo__send_parts(remo_session *s, const struct msg_parts *m, size_t n,
                      bool batch)
{
	pthread_mutex_lock(&s->send_lock);
	int rc = remo__send_parts_locked(s, m, n, batch);
	pthread_mutex_unlock(&s->send_lock);
	if (rc == REMO_EPEERLOST)
		send_learn_why(s);
	if (rc == REMO_EPEERLOST || rc == REMO_ECLOSED || rc == REMO_EAUTH) {
		remo__session_end(s, rc);
		rc = remo_session_status(s); /* what ended it first */
	}
	return rc;
}
