/*
 * hash.c -- keyed hashing for dict keys.
 *
 * Dict keys arrive from peers, so an unkeyed hash would let a hostile
 * peer send thousands of keys that land in one slot and turn every
 * lookup into a scan.  SipHash-1-3 with a secret drawn once per process
 * is what CPython and Rust use for the same reason; it is short enough
 * to keep here rather than take a dependency for it.
 */
#include "base/base.h"

#include <pthread.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static uint64_t hash_k0, hash_k1;
static pthread_once_t hash_once = PTHREAD_ONCE_INIT;

static void hash_init(void)
{
	uint64_t k[2];
	if (getrandom(k, sizeof k, 0) != (ssize_t)sizeof k) {
		/* No kernel entropy (very old kernel, seccomp): still differ
		 * per process, which defeats precomputed collisions. */
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		k[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15u ^
		       (uint64_t)getpid();
		k[1] = (uint64_t)(uintptr_t)&ts ^ (uint64_t)ts.tv_sec;
	}
	hash_k0 = k[0];
	hash_k1 = k[1];
}

static inline uint64_t rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

#define SIPROUND                                                            \
	do {                                                                \
		v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);   \
		v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;                      \
		v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;                      \
		v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);   \
	} while (0)

static inline uint64_t load_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

uint64_t remo__siphash(const void *data, size_t n)
{
	pthread_once(&hash_once, hash_init);
	const uint8_t *p = data;
	uint64_t v0 = hash_k0 ^ 0x736f6d6570736575u;
	uint64_t v1 = hash_k1 ^ 0x646f72616e646f6du;
	uint64_t v2 = hash_k0 ^ 0x6c7967656e657261u;
	uint64_t v3 = hash_k1 ^ 0x7465646279746573u;
	size_t whole = n & ~(size_t)7;

	for (size_t i = 0; i < whole; i += 8) {
		uint64_t m = load_le64(p + i);
		v3 ^= m;
		SIPROUND;
		v0 ^= m;
	}
	uint64_t b = (uint64_t)n << 56;
	for (size_t i = 0; i < (n & 7); i++)
		b |= (uint64_t)p[whole + i] << (8 * i);
	v3 ^= b;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t remo__hash_u64(uint64_t x)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(x >> (8 * i));
	return remo__siphash(b, sizeof b);
}
