/*
 * dict.c -- the dict kind: insertion-ordered, keyed by immutable values.
 *
 * Layout (see struct remo__dict in value.h): an array of entries in
 * insertion order plus an open-addressed index of int32 entry numbers,
 * probed linearly.  The index is kept at most 2/3 full, counting deleted
 * slots, and rebuilt (compacting the entries) when it passes that.
 * Hashes are keyed (hash.c), so a peer cannot aim keys at one slot.
 */
#include "value/value.h"

#define DICT_EMPTY (-1)
#define DICT_DELETED (-2)
#define DICT_MAX_ENTRIES (INT32_MAX / 2)

remo_value remo_dict(void)
{
	struct remo__dict *d = remo__malloc(sizeof *d);
	if (d == NULL)
		return remo__invalid();
	memset(d, 0, sizeof *d);
	atomic_init(&d->hdr.refs, 1);
	d->hdr.kind = REMO_DICT;
	remo_value v = {REMO_DICT, {0}};
	v.as.p = &d->hdr;
	return v;
}

void remo__dict_free(struct remo__dict *d)
{
	for (size_t i = 0; i < d->used; i++) {
		remo_value_release(d->entries[i].key);
		remo_value_release(d->entries[i].val);
	}
	remo__free(d->entries); /* and the index, in the same block */
}

size_t remo_dict_len(remo_value dv)
{
	if (dv.kind != REMO_DICT) {
		remo__not_local("remo_dict_len", dv);
		return 0;
	}
	struct remo__dict *d = REMO__DICT(dv);
	remo__lock(&d->hdr);
	size_t n = d->len;
	remo__unlock(&d->hdr);
	return n;
}

/*
 * Finds key: returns the index slot holding it, or -1 with *free_slot
 * set to the first empty-or-deleted slot where it would go.
 */
static long dict_probe(const struct remo__dict *d, remo_value key,
                       uint64_t hash, size_t *free_slot)
{
	size_t have_free = 0;
	if (d->mask == 0) {
		*free_slot = 0;
		return -1;
	}
	for (size_t i = hash & d->mask;; i = (i + 1) & d->mask) {
		int32_t e = d->index[i];
		if (e == DICT_EMPTY) {
			*free_slot = have_free ? have_free - 1 : i;
			return -1;
		}
		if (e == DICT_DELETED) {
			if (!have_free)
				have_free = i + 1;
			continue;
		}
		const struct remo__dict_entry *en = &d->entries[e];
		if (en->hash == hash && remo_equal(en->key, key))
			return (long)i;
	}
}

/*
 * Rebuild for at least want live entries: new index, new compacted entry
 * array.  Both are allocated before anything changes, so a failure leaves
 * the dict as it was.
 */
static int dict_resize(struct remo__dict *d, size_t want)
{
	if (want > DICT_MAX_ENTRIES)
		return REMO_ENOMEM;
	size_t slots = 8;
	while (slots * 2 < want * 3)
		slots *= 2;
	size_t cap = slots * 2 / 3; /* >= want, and keeps the index 2/3 full */

	/* one block: the entries, then the index (one allocation a dict
	 * instead of two: measured, decoding a message with a 2-key dict
	 * made 11 allocations, 3 of them the dict's) */
	struct remo__dict_entry *entries =
		remo__malloc(cap * sizeof *entries + slots * sizeof(int32_t));
	if (entries == NULL)
		return REMO_ENOMEM;
	int32_t *index = (int32_t *)(entries + cap);
	for (size_t i = 0; i < slots; i++)
		index[i] = DICT_EMPTY;
	size_t j = 0;
	for (size_t i = 0; i < d->used; i++) {
		if (d->entries[i].key.kind == REMO_INVALID)
			continue;
		entries[j] = d->entries[i];
		size_t s = entries[j].hash & (slots - 1);
		while (index[s] != DICT_EMPTY)
			s = (s + 1) & (slots - 1);
		index[s] = (int32_t)j++;
	}
	remo__free(d->entries); /* and its index */
	d->index = index;
	d->entries = entries;
	d->used = j;
	d->cap = cap;
	d->mask = slots - 1;
	return REMO_OK;
}

int remo__dict_reserve(remo_value dv, size_t n)
{
	struct remo__dict *d = REMO__DICT(dv);
	remo__lock(&d->hdr);
	int rc = d->cap >= n ? REMO_OK : dict_resize(d, n);
	remo__unlock(&d->hdr);
	return rc;
}

/* What dict_insert does with a key that is there already. */
enum { INS_REPLACE, INS_NEW_ONLY, INS_SETDEFAULT };

/* Insert key/val (both stolen).  INS_REPLACE: overwrite an existing key;
 * INS_NEW_ONLY: an existing key gives REMO_EEXIST; INS_SETDEFAULT: an
 * existing key is kept, and *out (new) gets its value, or val's when it
 * was inserted. */
static int dict_insert(remo_value dv, remo_value key, remo_value val,
                       int mode, remo_value *out)
{
	int rc = REMO_OK;
	if (!remo_ok(key) || !remo_ok(val))
		rc = REMO_ENOMEM;
	else if (dv.kind != REMO_DICT)
		rc = REMO_ETYPE;
	else if (!remo_hashable(key))
		rc = REMO_EUNHASHABLE;
	if (rc != REMO_OK)
		goto fail;

	struct remo__dict *d = REMO__DICT(dv);
	uint64_t hash = remo_hash(key);
	size_t slot;
	remo__lock(&d->hdr);
	long found = dict_probe(d, key, hash, &slot);
	if (found >= 0) {
		if (mode == INS_SETDEFAULT) {
			*out = remo_value_retain(d->entries[d->index[found]].val);
			remo__unlock(&d->hdr);
			remo_value_release(key);
			remo_value_release(val);
			return REMO_OK;
		}
		if (mode == INS_NEW_ONLY) {
			remo__unlock(&d->hdr);
			rc = REMO_EEXIST;
			goto fail;
		}
		struct remo__dict_entry *en = &d->entries[d->index[found]];
		remo_value old = en->val;
		en->val = val;
		bool watched = remo__watched(dv);
		if (watched) /* val is the dict's now: a count to report it */
			remo_value_retain(val);
		remo__unlock(&d->hdr);
		if (watched) {
			remo__watch_changed(dv, "set", key, val);
			remo_value_release(val);
		}
		remo_value_release(key);
		remo_value_release(old); /* last: old may own d */
		return REMO_OK;
	}
	/* cap is 2/3 of the index, so used < cap keeps the index at most
	 * 2/3 full, deleted slots included.  Growing doubles the live count,
	 * which also compacts away what deletions left. */
	if (d->used >= d->cap) {
		if ((rc = dict_resize(d, d->len < 4 ? 5 : d->len * 2)) != REMO_OK) {
			remo__unlock(&d->hdr);
			goto fail;
		}
		dict_probe(d, key, hash, &slot);
	}
	d->entries[d->used] = (struct remo__dict_entry){hash, key, val};
	d->index[slot] = (int32_t)d->used++;
	d->len++;
	if (mode == INS_SETDEFAULT)
		*out = remo_value_retain(val);
	bool watched = remo__watched(dv);
	if (watched) { /* both are the dict's now: counts to report them */
		remo_value_retain(key);
		remo_value_retain(val);
	}
	remo__unlock(&d->hdr);
	if (watched) {
		remo__watch_changed(dv, "set", key, val);
		remo_value_release(key);
		remo_value_release(val);
	}
	return REMO_OK;
fail:
	remo_value_release(key);
	remo_value_release(val);
	return rc;
}

int remo_dict_set(remo_value d, remo_value key, remo_value val)
{
	return dict_insert(d, key, val, INS_REPLACE, NULL);
}

int remo__dict_insert_new(remo_value d, remo_value key, remo_value val)
{
	return dict_insert(d, key, val, INS_NEW_ONLY, NULL);
}

int remo_dict_set_str(remo_value d, const char *key, remo_value val)
{
	return dict_insert(d, remo_str(key), val, INS_REPLACE, NULL);
}

int remo_dict_setdefault(remo_value d, remo_value key, remo_value dflt,
                         remo_value *out)
{
	*out = remo_nil();
	return dict_insert(d, remo_value_retain(key), remo_value_retain(dflt),
	                   INS_SETDEFAULT, out);
}

void remo_dict_clear(remo_value dv)
{
	if (dv.kind != REMO_DICT)
		return;
	struct remo__dict *d = REMO__DICT(dv);
	remo__lock(&d->hdr);
	struct remo__dict old = *d;
	d->len = d->used = d->cap = d->mask = 0;
	d->entries = NULL;
	d->index = NULL;
	old.watch = NULL; /* stays with d */
	remo__unlock(&d->hdr);
	if (remo__watched(dv))
		remo__watch_changed(dv, "clear", remo_nil(), remo_nil());
	remo__dict_free(&old); /* released unlocked: a value may own d */
}

/* remo_dict_get, retaining *out when retain, under the lock. */
static int dict_get(remo_value dv, remo_value key, remo_value *out,
                    bool retain)
{
	if (dv.kind != REMO_DICT) {
		remo__not_local("remo_dict_get", dv);
		return REMO_ETYPE;
	}
	if (!remo_hashable(key))
		return REMO_ENOTFOUND;
	struct remo__dict *d = REMO__DICT(dv);
	uint64_t hash = remo_hash(key);
	size_t slot;
	remo__lock(&d->hdr);
	long found = dict_probe(d, key, hash, &slot);
	if (found >= 0) {
		*out = d->entries[d->index[found]].val;
		if (retain)
			remo_value_retain(*out);
	}
	remo__unlock(&d->hdr);
	return found >= 0 ? REMO_OK : REMO_ENOTFOUND;
}

int remo_dict_get(remo_value dv, remo_value key, remo_value *out)
{
	return dict_get(dv, key, out, false);
}

int remo_dict_get_new(remo_value dv, remo_value key, remo_value *out)
{
	*out = remo_nil();
	return dict_get(dv, key, out, true);
}

int remo_dict_get_str(remo_value d, const char *key, remo_value *out)
{
	/* A temporary str on the stack would avoid the allocation; lookups by
	 * C string are rare enough on hot paths not to bother. */
	remo_value k = remo_str(key);
	if (!remo_ok(k))
		return REMO_ENOMEM;
	int rc = remo_dict_get(d, k, out);
	remo_value_release(k);
	return rc;
}

int remo_dict_del(remo_value dv, remo_value key)
{
	remo_value old;
	int rc = remo_dict_pop(dv, key, &old);
	if (rc == REMO_OK)
		remo_value_release(old);
	return rc;
}

int remo_dict_pop(remo_value dv, remo_value key, remo_value *out)
{
	*out = remo_nil();
	if (dv.kind != REMO_DICT)
		return REMO_ETYPE;
	if (!remo_hashable(key))
		return REMO_ENOTFOUND;
	struct remo__dict *d = REMO__DICT(dv);
	uint64_t hash = remo_hash(key);
	size_t slot;
	remo__lock(&d->hdr);
	long found = dict_probe(d, key, hash, &slot);
	if (found < 0) {
		remo__unlock(&d->hdr);
		return REMO_ENOTFOUND;
	}
	struct remo__dict_entry *en = &d->entries[d->index[found]];
	remo_value k = en->key;
	*out = en->val;
	en->key = remo__invalid();
	en->val = remo_nil();
	d->index[found] = DICT_DELETED;
	d->len--;
	remo__unlock(&d->hdr);
	if (remo__watched(dv))
		remo__watch_changed(dv, "delete", k, remo_nil());
	remo_value_release(k);
	return REMO_OK;
}

bool remo_dict_next(remo_value dv, size_t *pos, remo_value *key,
                    remo_value *val)
{
	if (dv.kind != REMO_DICT)
		return false;
	struct remo__dict *d = REMO__DICT(dv);
	bool got = false;
	remo__lock(&d->hdr);
	while (!got && *pos < d->used) {
		const struct remo__dict_entry *en = &d->entries[(*pos)++];
		if (en->key.kind == REMO_INVALID)
			continue;
		*key = en->key;
		*val = en->val;
		got = true;
	}
	remo__unlock(&d->hdr);
	return got;
}

remo_value *remo__dict_snapshot(remo_value dv, size_t start, size_t max,
                                remo_value *buf, size_t nbuf, size_t *n)
{
	struct remo__dict *d = REMO__DICT(dv);
	remo_value *items = buf;
	size_t cap = nbuf, k;
	remo__lock(&d->hdr);
	for (;;) {
		k = start >= d->len ? 0 : d->len - start;
		if (k > max)
			k = max;
		if (k * 2 <= cap)
			break;
		if (!remo__snapshot_room(&d->hdr, &items, buf, &cap, k * 2))
			return NULL;
	}
	size_t j = 0, live = 0;
	for (size_t i = 0; i < d->used && j < k * 2; i++) {
		const struct remo__dict_entry *en = &d->entries[i];
		if (en->key.kind == REMO_INVALID || live++ < start)
			continue;
		items[j++] = remo_value_retain(en->key);
		items[j++] = remo_value_retain(en->val);
	}
	remo__unlock(&d->hdr);
	*n = j;
	return items;
}

remo_value remo_dict_copy(remo_value dv)
{
	if (dv.kind != REMO_DICT)
		return remo__invalid();
	remo_value buf[16];
	size_t n;
	remo_value *kv = remo__dict_snapshot(dv, 0, SIZE_MAX, buf, 16, &n);
	remo_value c = remo_dict();
	int rc = kv != NULL && remo_ok(c) ? remo__dict_reserve(c, n / 2)
	                                  : REMO_ENOMEM;
	for (size_t i = 0; rc == REMO_OK && i < n; i += 2)
		rc = remo_dict_set(c, remo_value_retain(kv[i]),
		                   remo_value_retain(kv[i + 1]));
	if (kv != NULL)
		remo__snapshot_free(kv, n, buf);
	if (rc != REMO_OK) {
		remo_value_release(c);
		return remo__invalid();
	}
	return c;
}
