/*
 * pack.c -- values to MessagePack and back: remo_pack and remo_unpack.
 *
 * This is the value layer of the codec; wire.c below it knows only
 * MessagePack items.  The mapping (doc/wire.md section 2):
 *
 *   nil bool int double str bytes   the MessagePack types of those names
 *   tuple                           array
 *   dict                            map, in insertion order
 *   list                            ext 1 around an array
 *   error                           ext 2 around [name, message, attrs, tb]
 *   object callable frame traceback ext 3..6, 12 bytes: home bit + id,
 *                                   shape id
 *
 * A list needs an extension because a plain array already means tuple
 * (the immutable kind is the one every MessagePack peer can produce),
 * and a copied list must arrive as a list.
 *
 * The encoder counts depth and items exactly as the reader does and checks
 * UTF-8, so it refuses what a remo peer would refuse, instead of sending
 * it.  (A ref's id range is the table's promise, asserted at creation.)
 */
#include "wire/wire.h"

/* ==== encoding ========================================================= */

struct pack_state {
	remo_buf *b;
	size_t values;
	const remo__codec *codec;
	unsigned byvalue; /* inside a remo_by_value container: lists and
	                     dicts go by value, not to the session */
	unsigned nested;  /* inside a list, dict or extension: no gathering */
};

/* A large bytes reached through tuples only: its header now, its body
 * left out for the send (struct remo__gather). */
static bool pack_gather(struct pack_state *st, remo_value v, int *rc)
{
	struct remo__gather *g = st->codec != NULL ? st->codec->gather : NULL;
	size_t n = REMO__STR(v)->len;
	if (g == NULL || st->nested || n < REMO__GATHER_MIN ||
	    g->n == REMO__GATHER_MAX || n > UINT32_MAX)
		return false;
	if ((*rc = remo__wire_put_bin_head(st->b, n)) != REMO_OK)
		return true;
	g->at[g->n] = st->b->len;
	g->p[g->n] = remo__str_ptr(REMO__STR(v));
	g->len[g->n] = n;
	g->n++;
	g->total += n;
	return true;
}

static int pack_value(struct pack_state *st, remo_value v, unsigned depth);
static int pack_other(struct pack_state *st, remo_value v, unsigned depth);

/*
 * The common small scalars written in place: a fixint, nil, a bool, a
 * double, a str of up to 31 bytes (checked UTF-8 when it was made),
 * with one room check for the whole item.  False: not one of those (or
 * no room), for pack_value's general path.  Measured on the 119-byte
 * call message: a call into wire.c and a room check per item was a
 * third of encoding.
 */
static inline bool pack_small(remo_buf *b, remo_value v)
{
	if (b->cap - b->len < 32)
		return false;
	uint8_t *p = b->data + b->len;
	switch (v.kind) {
	case REMO_NIL:
		p[0] = 0xc0;
		b->len += 1;
		return true;
	case REMO_BOOL:
		p[0] = v.as.b ? 0xc3 : 0xc2;
		b->len += 1;
		return true;
	case REMO_INT:
		if (v.as.i < -32 || v.as.i > 0x7f)
			return false;
		p[0] = (uint8_t)(int8_t)v.as.i;
		b->len += 1;
		return true;
	case REMO_DOUBLE: {
		uint64_t u;
		memcpy(&u, &v.as.d, sizeof u);
		p[0] = 0xcb;
		for (int i = 0; i < 8; i++)
			p[1 + i] = (uint8_t)(u >> (56 - 8 * i));
		b->len += 9;
		return true;
	}
	case REMO_STR: {
		const struct remo__str *s = REMO__STR(v);
		if (s->len > 31 || !(v.as.p->flags & REMO__OBJ_UTF8))
			return false;
		p[0] = (uint8_t)(0xa0 | s->len);
		memcpy(p + 1, remo__str_ptr(s), s->len);
		b->len += 1 + s->len;
		return true;
	}
	default:
		return false;
	}
}

static int pack_count(struct pack_state *st)
{
	return ++st->values > REMO_MAX_VALUES ? REMO_ETOOBIG : REMO_OK;
}

/* An array header for n items that will sit at depth+1. */
static int pack_open(struct pack_state *st, size_t n, unsigned depth,
                     bool map)
{
	int rc;
	if (depth + 1 > REMO_MAX_DEPTH)
		return REMO_EDEPTH;
	if (n > UINT32_MAX)
		return REMO_ETOOBIG;
	if ((rc = pack_count(st)) != REMO_OK)
		return rc;
	return map ? remo__wire_put_map(st->b, (uint32_t)n)
	           : remo__wire_put_array(st->b, (uint32_t)n);
}

static int pack_items(struct pack_state *st, const remo_value *items,
                      size_t n, unsigned depth)
{
	int rc = pack_open(st, n, depth, false);
	/* pack_value, with the small case inlined here: measured, 10% of
	 * encoding the call message */
	for (size_t i = 0; rc == REMO_OK && i < n; i++)
		rc = pack_small(st->b, items[i]) ? pack_count(st)
		     : pack_other(st, items[i], depth + 1);
	return rc;
}

/* A scalar: written the same whoever packs it, reaching no session and
 * no other container. */
static inline bool pack_scalar(remo_value v)
{
	return v.kind == REMO_NIL || v.kind == REMO_BOOL ||
	       v.kind == REMO_INT || v.kind == REMO_DOUBLE ||
	       v.kind == REMO_STR || v.kind == REMO_BYTES;
}

/* A small dict of scalars (keyword arguments, mostly) is written under
 * its lock, with no snapshot: no retain and release per item.  Its
 * items reach nothing that could take another lock.  False: not such a
 * dict, nothing written. */
#define PACK_FLAT_MAX 16
static bool pack_dict_flat(struct pack_state *st, remo_value dv,
                           unsigned depth, int *rc)
{
	struct remo__dict *d = REMO__DICT(dv);
	remo__lock(&d->hdr);
	bool flat = d->len <= PACK_FLAT_MAX;
	for (size_t i = 0; flat && i < d->used; i++) {
		const struct remo__dict_entry *en = &d->entries[i];
		flat = en->key.kind == REMO_INVALID ||
		       (pack_scalar(en->key) && pack_scalar(en->val));
	}
	if (flat) {
		*rc = pack_open(st, d->len, depth, true);
		for (size_t i = 0; *rc == REMO_OK && i < d->used; i++) {
			const struct remo__dict_entry *en = &d->entries[i];
			if (en->key.kind == REMO_INVALID)
				continue;
			*rc = pack_value(st, en->key, depth + 1);
			if (*rc == REMO_OK)
				*rc = pack_value(st, en->val, depth + 1);
		}
	}
	remo__unlock(&d->hdr);
	return flat;
}

/*
 * Lists and dicts are packed from a snapshot (value.h): what is sent is
 * the container at one instant, even while other threads change it, and
 * its lock is not held while packing what it holds.
 */
#define PACK_SNAP 16
static int pack_dict(struct pack_state *st, remo_value d, unsigned depth)
{
	remo_value buf[PACK_SNAP];
	size_t n;
	int rc;
	st->nested++;
	if (pack_dict_flat(st, d, depth, &rc)) {
		st->nested--;
		return rc;
	}
	remo_value *kv = remo__dict_snapshot(d, 0, SIZE_MAX, buf, PACK_SNAP, &n);
	if (kv == NULL) {
		st->nested--;
		return REMO_ENOMEM;
	}
	rc = pack_open(st, n / 2, depth, true);
	for (size_t i = 0; rc == REMO_OK && i < n; i++)
		rc = pack_value(st, kv[i], depth + 1);
	remo__snapshot_free(kv, n, buf);
	st->nested--;
	return rc;
}

/*
 * An extension whose body is MessagePack: the body's length is known only
 * after writing it, so room for the longest header (ext32: 6 bytes) is
 * left, and the body slides back once the real header is known.
 */
static int pack_ext_body(struct pack_state *st, int8_t type, remo_value v,
                         unsigned depth)
{
	remo_buf *b = st->b;
	int rc = remo__buf_grow(b, 6);
	if (rc != REMO_OK)
		return rc;
	size_t hdr = b->len;
	b->len += 6;
	size_t body = b->len;

	st->nested++; /* the body's length is b's: nothing left out of it */
	if (v.kind == REMO_LIST) {
		remo_value buf[PACK_SNAP];
		size_t n;
		remo_value *items = remo__list_snapshot(v, 0, SIZE_MAX, buf,
		                                        PACK_SNAP, &n);
		rc = items != NULL ? pack_items(st, items, n, depth) : REMO_ENOMEM;
		if (items != NULL)
			remo__snapshot_free(items, n, buf);
	} else {
		/* An error crosses by value, attributes included (a session
		 * would otherwise send the attrs dict as a reference). */
		const struct remo__error *e = REMO__ERROR(v);
		rc = pack_open(st, 4, depth, false);
		if (rc == REMO_OK)
			rc = pack_value(st, e->name, depth + 1);
		if (rc == REMO_OK)
			rc = pack_value(st, e->message, depth + 1);
		if (rc == REMO_OK)
			rc = pack_dict(st, e->attrs, depth + 1);
		if (rc == REMO_OK)
			rc = pack_value(st, e->tb, depth + 1);
	}
	st->nested--;
	if (rc != REMO_OK)
		return rc;

	size_t n = b->len - body;
	if (n > UINT32_MAX)
		return REMO_ETOOBIG;
	uint8_t head[6];
	remo_buf h = {head, 0, sizeof head};
	rc = remo__wire_put_ext(&h, type, (uint32_t)n);
	REMO__ASSERT(rc == REMO_OK && h.data == head);
	memmove(b->data + hdr + h.len, b->data + body, n);
	memcpy(b->data + hdr, head, h.len);
	b->len = hdr + h.len + n;
	return REMO_OK;
}

int remo__put_ref(remo_buf *b, remo_kind kind, uint64_t id, bool home,
                  uint32_t shape)
{
	static const int8_t ext[] = {
		[REMO_OBJECT] = REMO__EXT_OBJECT,
		[REMO_CALLABLE] = REMO__EXT_CALLABLE,
		[REMO_FRAME] = REMO__EXT_FRAME,
		[REMO_TRACEBACK] = REMO__EXT_TRACEBACK,
	};
	uint64_t word = id | (home ? REMO__REF_HOME : 0);
	int rc = remo__wire_put_ext(b, ext[kind], REMO__REF_BODY);
	if (rc == REMO_OK)
		rc = remo__buf_grow(b, REMO__REF_BODY);
	if (rc != REMO_OK)
		return rc;
	for (int i = 0; i < 8; i++)
		b->data[b->len++] = (uint8_t)(word >> (56 - 8 * i));
	for (int i = 0; i < 4; i++)
		b->data[b->len++] = (uint8_t)(shape >> (24 - 8 * i));
	return REMO_OK;
}

/* A reference with no session: only a bare one (as decoded) can go.  A
 * local object, and a proxy of a live session, need a session (a proxy
 * packed as its id would read back as an inert reference: a persisted
 * value silently broken). */
static int pack_ref(remo_buf *b, remo_value v)
{
	const struct remo__ref *r = REMO__REF(v);
	if (r->id == 0 || r->owner != NULL || r->promise != NULL) {
		remo__raisef("TypeError", "%s cannot be packed outside a "
		             "session", r->owner != NULL || r->promise != NULL
		             ? "a proxy of a live session" : "a local object");
		return REMO_EINVAL;
	}
	return remo__put_ref(b, v.kind, r->id, r->home, r->shape_id);
}

/* pack_value for a value pack_small did not write. */
static int pack_other(struct pack_state *st, remo_value v, unsigned depth)
{
	remo_buf *b = st->b;
	int rc;

	switch (v.kind) {
	case REMO_TUPLE: {
		const struct remo__tuple *t = REMO__TUPLE(v);
		return pack_items(st, t->items, t->len, depth);
	}
	case REMO_DICT:
	case REMO_LIST:
		/* remo_by_value: this one and all it holds, by value */
		if (st->codec != NULL && (v.as.p->flags & REMO__OBJ_BYVALUE)) {
			st->byvalue++;
			rc = v.kind == REMO_DICT
			     ? pack_dict(st, v, depth)
			     : (rc = pack_count(st)) != REMO_OK
			       ? rc : pack_ext_body(st, REMO__EXT_LIST, v, depth);
			st->byvalue--;
			return rc;
		}
		if (v.kind == REMO_DICT && (st->codec == NULL || st->byvalue))
			return pack_dict(st, v, depth);
		break;
	default:
		break;
	}
	if ((rc = pack_count(st)) != REMO_OK)
		return rc;
	/* In a session, mutable containers and references cross as
	 * references: the session decides the id. */
	if (st->codec != NULL &&
	    (((v.kind == REMO_LIST || v.kind == REMO_DICT) && !st->byvalue) ||
	     remo__is_ref(v.kind)))
		return st->codec->put_ref(st->codec->ctx, b, v);
	switch (v.kind) {
	case REMO_NIL:
		return remo__wire_put_nil(b);
	case REMO_BOOL:
		return remo__wire_put_bool(b, v.as.b);
	case REMO_INT:
		return remo__wire_put_int(b, v.as.i);
	case REMO_DOUBLE:
		return remo__wire_put_double(b, v.as.d);
	case REMO_STR:
		/* A peer refuses a str that is not UTF-8; refuse to send it
		 * (checked when the str was made) */
		if (!(v.as.p->flags & REMO__OBJ_UTF8))
			return REMO_EWIRE_UTF8;
		return remo__wire_put_str(b, remo__str_ptr(REMO__STR(v)),
		                          REMO__STR(v)->len);
	case REMO_BYTES:
		if (pack_gather(st, v, &rc))
			return rc;
		return remo__wire_put_bin(b, remo__str_ptr(REMO__STR(v)),
		                          REMO__STR(v)->len);
	case REMO_LIST:
		return pack_ext_body(st, REMO__EXT_LIST, v, depth);
	case REMO_ERROR:
		return pack_ext_body(st, REMO__EXT_ERROR, v, depth);
	case REMO_OBJECT:
	case REMO_CALLABLE:
	case REMO_FRAME:
	case REMO_TRACEBACK:
		return pack_ref(b, v);
	default:
		return REMO_EINVAL;
	}
}

static int pack_value(struct pack_state *st, remo_value v, unsigned depth)
{
	return pack_small(st->b, v) ? pack_count(st) : pack_other(st, v, depth);
}

int remo__pack_with(remo_value v, remo_buf *out, const remo__codec *c)
{
	struct pack_state st = {out, 0, c, 0, 0};
	size_t mark = out->len;
	struct remo__gather *g = c != NULL ? c->gather : NULL;
	unsigned gn = g != NULL ? g->n : 0;
	size_t gtotal = g != NULL ? g->total : 0;
	int rc = pack_value(&st, v, 0);
	if (rc != REMO_OK) {
		out->len = mark;
		if (g != NULL) { /* nothing left out of what was taken back */
			g->n = gn;
			g->total = gtotal;
		}
	}
	return rc;
}

int remo_pack(remo_value v, remo_buf *out)
{
	return remo__pack_with(v, out, NULL);
}

/* ==== decoding ========================================================= */

/*
 * Building runs only on bytes remo__wire_check accepted, so recursion is
 * bounded by REMO_MAX_DEPTH and every count fits the message.  What the
 * check cannot know (UTF-8, keys, the shape of an error body) is checked
 * here, and a failure releases whatever was built so far.
 */
static int build(remo__rd *rd, const remo__codec *c, remo_value *out);

/* An array: a tuple (what arrived by value is immutable). */
static int build_array(remo__rd *rd, const remo__codec *c, uint32_t n,
                       remo_value *out)
{
	remo_value tup = remo_tuple(n);
	if (!remo_ok(tup))
		return REMO_ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		int rc = build(rd, c, &REMO__TUPLE(tup)->items[i]);
		if (rc != REMO_OK) {
			remo_value_release(tup);
			return rc;
		}
	}
	*out = tup;
	return REMO_OK;
}

/* A map: a dict, refusing unhashable and duplicate keys. */
static int build_map(remo__rd *rd, const remo__codec *c, uint32_t n,
                     remo_value *out)
{
	remo_value d = remo_dict();
	if (!remo_ok(d))
		return REMO_ENOMEM;
	int rc = remo__dict_reserve(d, n);
	for (uint32_t i = 0; rc == REMO_OK && i < n; i++) {
		remo_value k, v;
		if ((rc = build(rd, c, &k)) != REMO_OK)
			break;
		if ((rc = build(rd, c, &v)) != REMO_OK) {
			remo_value_release(k);
			break;
		}
		rc = remo__dict_insert_new(d, k, v);
		rc = rc == REMO_EUNHASHABLE ? REMO_EWIRE_KEY
		     : rc == REMO_EEXIST    ? REMO_EWIRE_DUPKEY
		                            : rc;
	}
	if (rc != REMO_OK) {
		remo_value_release(d);
		return rc;
	}
	*out = d;
	return REMO_OK;
}

/* ext 1: a list, its body one array. */
static int build_ext_list(remo__rd *body, const remo__codec *c,
                          remo_value *out)
{
	remo__tok inner;
	int rc = remo__wire_next(body, &inner);
	if (rc != REMO_OK)
		return rc;
	if (inner.type != REMO__T_ARRAY)
		return REMO_EWIRE_EXTBODY;
	remo_value l = remo_list();
	if (!remo_ok(l))
		return REMO_ENOMEM;
	struct remo__list *x = REMO__LIST(l);
	if (inner.n != 0) {
		x->items = remo__malloc(inner.n * sizeof *x->items);
		if (x->items == NULL) {
			remo_value_release(l);
			return REMO_ENOMEM;
		}
		x->cap = inner.n;
	}
	for (uint32_t i = 0; i < inner.n; i++) {
		if ((rc = build(body, c, &x->items[i])) != REMO_OK) {
			remo_value_release(l);
			return rc;
		}
		x->len++;
	}
	*out = l;
	return REMO_OK;
}

/* ext 2: an error, [name, message, attrs, traceback], each part checked. */
static int build_ext_error(remo__rd *body, const remo__codec *c,
                           remo_value *out)
{
	remo_value part[4] = {{0}};
	remo__tok inner;
	int rc = remo__wire_next(body, &inner);
	if (rc != REMO_OK)
		return rc;
	if (inner.type != REMO__T_ARRAY || inner.n != 4)
		return REMO_EWIRE_EXTBODY;
	for (int i = 0; i < 4; i++) {
		if ((rc = build(body, c, &part[i])) != REMO_OK)
			break;
	}
	if (rc == REMO_OK) {
		size_t len;
		const char *name = remo_str_data(part[0], &len);
		if (name == NULL || !remo__errname_valid(name, len) ||
		    part[1].kind != REMO_STR || part[2].kind != REMO_DICT ||
		    (part[3].kind != REMO_NIL && part[3].kind != REMO_TRACEBACK))
			rc = REMO_EWIRE_EXTBODY;
	}
	if (rc != REMO_OK) {
		for (int i = 0; i < 4; i++)
			remo_value_release(part[i]);
		return rc;
	}
	*out = remo__error_from_parts(part[0], part[1], part[2], part[3]);
	return remo_ok(*out) ? REMO_OK : REMO_ENOMEM;
}

/* ext 3..6: a reference, 12 bytes (home bit and id, shape id), given its
 * meaning by the codec's hook (a session), or left bare without one. */
static int build_ext_ref(const remo__codec *c, const remo__tok *t,
                         remo_value *out)
{
	if (t->n != REMO__REF_BODY)
		return REMO_EWIRE_EXTBODY;
	uint64_t word = 0;
	uint32_t shape = 0;
	for (int i = 0; i < 8; i++)
		word = word << 8 | t->v.p[i];
	for (int i = 8; i < 12; i++)
		shape = shape << 8 | t->v.p[i];
	uint64_t id = word & ~REMO__REF_HOME;
	bool home = (word & REMO__REF_HOME) != 0;
	if (id == 0)
		return REMO_EWIRE_EXTBODY;
	static const remo_kind kinds[] = {
		[REMO__EXT_OBJECT] = REMO_OBJECT,
		[REMO__EXT_CALLABLE] = REMO_CALLABLE,
		[REMO__EXT_FRAME] = REMO_FRAME,
		[REMO__EXT_TRACEBACK] = REMO_TRACEBACK,
	};
	if (c != NULL)
		return c->get_ref(c->ctx, kinds[t->ext], id, home, shape, out);
	*out = remo__ref_new(kinds[t->ext], id, home);
	if (!remo_ok(*out))
		return REMO_ENOMEM;
	REMO__REF(*out)->shape_id = shape;
	return REMO_OK;
}

/* remo's extensions (doc/wire.md sections 2.7 to 2.9). */
static int build_ext(const remo__codec *c, const remo__tok *t,
                     remo_value *out)
{
	remo__rd body = {t->v.p, t->v.p + t->n};
	switch (t->ext) {
	case REMO__EXT_LIST:
		return build_ext_list(&body, c, out);
	case REMO__EXT_ERROR:
		return build_ext_error(&body, c, out);
	case REMO__EXT_OBJECT:
	case REMO__EXT_CALLABLE:
	case REMO__EXT_FRAME:
	case REMO__EXT_TRACEBACK:
		return build_ext_ref(c, t, out);
	default:
		return REMO_EWIRE_EXTTYPE;
	}
}

/* The value whose first item t has been read; rd is after t. */
static int build_tok(remo__rd *rd, const remo__codec *c, const remo__tok *t,
                     remo_value *out)
{
	*out = remo_nil();
	switch (t->type) {
	case REMO__T_NIL:
		return REMO_OK;
	case REMO__T_BOOL:
		*out = remo_bool(t->v.b);
		return REMO_OK;
	case REMO__T_INT:
		*out = remo_int(t->v.i);
		return REMO_OK;
	case REMO__T_DOUBLE:
		*out = remo_double(t->v.d);
		return REMO_OK;
	case REMO__T_STR:
		if (!remo__utf8_valid(t->v.p, t->n))
			return REMO_EWIRE_UTF8;
		*out = remo__str_utf8((const char *)t->v.p, t->n);
		return remo_ok(*out) ? REMO_OK : REMO_ENOMEM;
	case REMO__T_BIN:
		/* a large bytes in a message kept alive as c->base: a view */
		if (c != NULL && c->base.kind == REMO_BYTES &&
		    t->n >= REMO__VIEW_MIN)
			*out = remo__bytes_view(c->base, t->v.p, t->n);
		else
			*out = remo_bytes(t->v.p, t->n);
		return remo_ok(*out) ? REMO_OK : REMO_ENOMEM;
	case REMO__T_ARRAY:
		return build_array(rd, c, t->n, out);
	case REMO__T_MAP:
		return build_map(rd, c, t->n, out);
	case REMO__T_EXT:
		return build_ext(c, t, out);
	default:
		return REMO_EWIRE_RESERVED;
	}
}

static int build(remo__rd *rd, const remo__codec *c, remo_value *out)
{
	remo__tok t;
	int rc = remo__wire_next(rd, &t);
	if (rc != REMO_OK) {
		*out = remo_nil();
		return rc;
	}
	return build_tok(rd, c, &t, out);
}

int remo__unpack_with(remo__rd *rd, const remo__codec *c, remo_value *out)
{
	int rc = build(rd, c, out);
	if (rc != REMO_OK) {
		remo_value_release(*out);
		*out = remo_nil();
	}
	return rc;
}

int remo_unpack(const void *data, size_t n, remo_value *out)
{
	*out = remo_nil();
	if (n == 0)
		return REMO_EWIRE_TRUNCATED;
	if (data == NULL)
		return REMO_EINVAL;
	int rc = remo__wire_check(data, n);
	if (rc != REMO_OK)
		return rc;
	remo__rd rd = {data, (const uint8_t *)data + n};
	rc = build(&rd, NULL, out);
	if (rc != REMO_OK) {
		remo_value_release(*out);
		*out = remo_nil();
	}
	return rc;
}
