/*
 * buf.c -- remo_buf, the growable byte buffer every layer writes into:
 * the codec encodes into one, a channel's recv fills one, repr prints
 * into one.  One module, so that a buffer is grown and freed the same
 * way everywhere, through the allocation indirection (alloc.c).
 *
 * remo_buf_reserve and remo_buf_free are public: a transport plugin's
 * recv grows the buffer it is handed with them, so that memory stays on
 * the core's side of the plugin boundary.
 */
#include "base/base.h"

int remo__buf_grow_slow(remo_buf *b, size_t extra)
{
	if (b->cap - b->len >= extra)
		return REMO_OK;
	if (extra > SIZE_MAX / 2 - b->len)
		return REMO_ENOMEM;
	size_t cap = b->cap ? b->cap : 64;
	while (cap - b->len < extra)
		cap *= 2;
	uint8_t *d = remo__realloc(b->data, cap);
	if (d == NULL)
		return REMO_ENOMEM;
	b->data = d;
	b->cap = cap;
	return REMO_OK;
}

int remo_buf_reserve(remo_buf *b, size_t n)
{
	return remo__buf_grow(b, n);
}

void remo_buf_free(remo_buf *b)
{
	remo__free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}
