/*
 * map.c -- remo__map, an open-addressed hash map from uint64 keys to
 * pointers: request ids to waiters, object ids to table entries, object
 * identities to ids, shape ids to shapes.
 *
 * Keys are mixed with a fixed multiplier, not the keyed SipHash of dict
 * keys: these keys are ids remo hands out itself (never chosen by a peer)
 * or addresses, and a peer can only look them up, never insert them.
 * Deletion uses backward-shift, so there are no tombstones to clean.
 */
#include "base/base.h"

static inline size_t map_slot(uint64_t key, size_t mask)
{
	key ^= key >> 33;
	key *= UINT64_C(0xff51afd7ed558ccd);
	key ^= key >> 33;
	return (size_t)key & mask;
}

void remo__map_free(struct remo__map *m)
{
	remo__free(m->slots);
	memset(m, 0, sizeof *m);
}

void *remo__map_get(const struct remo__map *m, uint64_t key)
{
	if (m->len == 0)
		return NULL;
	for (size_t i = map_slot(key, m->mask);; i = (i + 1) & m->mask) {
		if (m->slots[i].val == NULL)
			return NULL;
		if (m->slots[i].key == key)
			return m->slots[i].val;
	}
}

static int map_grow(struct remo__map *m)
{
	size_t cap = m->mask ? (m->mask + 1) * 2 : 16;
	struct remo__map_slot *slots = remo__malloc(cap * sizeof *slots);
	if (slots == NULL)
		return REMO_ENOMEM;
	memset(slots, 0, cap * sizeof *slots);
	for (size_t i = 0; m->mask && i <= m->mask; i++) {
		if (m->slots[i].val == NULL)
			continue;
		size_t j = map_slot(m->slots[i].key, cap - 1);
		while (slots[j].val != NULL)
			j = (j + 1) & (cap - 1);
		slots[j] = m->slots[i];
	}
	remo__free(m->slots);
	m->slots = slots;
	m->mask = cap - 1;
	return REMO_OK;
}

int remo__map_put(struct remo__map *m, uint64_t key, void *val)
{
	REMO__ASSERT(val != NULL);
	/* replacing comes first: it never allocates, so cannot fail */
	for (size_t i = m->len ? map_slot(key, m->mask) : 0;
	     m->len && m->slots[i].val != NULL; i = (i + 1) & m->mask)
		if (m->slots[i].key == key) {
			m->slots[i].val = val;
			return REMO_OK;
		}
	if ((m->len + 1) * 4 > (m->mask + 1) * 3 || m->mask == 0) {
		int rc = map_grow(m);
		if (rc != REMO_OK)
			return rc;
	}
	size_t i = map_slot(key, m->mask);
	while (m->slots[i].val != NULL)
		i = (i + 1) & m->mask;
	m->slots[i].key = key;
	m->slots[i].val = val;
	m->len++;
	return REMO_OK;
}

void *remo__map_del(struct remo__map *m, uint64_t key)
{
	if (m->len == 0)
		return NULL;
	size_t i = map_slot(key, m->mask);
	for (;; i = (i + 1) & m->mask) {
		if (m->slots[i].val == NULL)
			return NULL;
		if (m->slots[i].key == key)
			break;
	}
	void *val = m->slots[i].val;
	/* Backward-shift: pull later members of the probe run into the hole. */
	size_t hole = i;
	for (size_t j = (i + 1) & m->mask; m->slots[j].val != NULL;
	     j = (j + 1) & m->mask) {
		size_t home = map_slot(m->slots[j].key, m->mask);
		/* j may move to hole if home is not in (hole, j], cyclically */
		bool between = hole <= j ? (home > hole && home <= j)
		                         : (home > hole || home <= j);
		if (!between) {
			m->slots[hole] = m->slots[j];
			hole = j;
		}
	}
	m->slots[hole].val = NULL;
	m->slots[hole].key = 0;
	m->len--;
	return val;
}

bool remo__map_next(const struct remo__map *m, size_t *pos, uint64_t *key,
                    void **val)
{
	while (m->mask && *pos <= m->mask) {
		const struct remo__map_slot *s = &m->slots[(*pos)++];
		if (s->val != NULL) {
			*key = s->key;
			*val = s->val;
			return true;
		}
	}
	return false;
}
