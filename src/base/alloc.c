/*
 * alloc.c -- the one allocation indirection.
 *
 * Every byte libremo allocates goes through remo__malloc, remo__realloc
 * and remo__free, so tests can count allocations (the decoder must make
 * none for hostile input) and make them fail (every ENOMEM path).
 */
#include "base/base.h"

#include <string.h>

#include <stdlib.h>

static remo_allocator alloc_current = {malloc, realloc, free};

void remo_set_allocator(const remo_allocator *a)
{
	if (a == NULL)
		alloc_current = (remo_allocator){malloc, realloc, free};
	else
		alloc_current = *a;
}

void *remo__malloc(size_t n)
{
	return alloc_current.malloc(n);
}

void *remo__realloc(void *p, size_t n)
{
	return alloc_current.realloc(p, n);
}

void remo__free(void *p)
{
	if (p != NULL)
		alloc_current.free(p);
}

char *remo__strdup(const char *s)
{
	if (s == NULL)
		return NULL;
	size_t n = strlen(s) + 1;
	char *d = remo__malloc(n);
	if (d != NULL)
		memcpy(d, s, n);
	return d;
}

void remo_free(void *p)
{
	remo__free(p);
}
