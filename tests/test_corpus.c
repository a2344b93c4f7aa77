/*
 * test_corpus.c -- replays the decoder fuzz target over the seed corpus
 * (tests/corpus/unpack, or $CORPUS_DIR) and over a fixed, seeded set of
 * mutations of it, so that every make check runs a little fuzzing and a
 * crash found once stays found: add the crashing input to the corpus.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Which corpus: the decoder's (fuzz_unpack.c) unless the build says
 * otherwise (test_session_corpus replays fuzz_session.c's). */
#ifndef CORPUS_ENV
#define CORPUS_ENV "CORPUS_DIR"
#define CORPUS_DEFAULT "tests/corpus/unpack"
#endif

#define CORPUS_MAX 256
#define INPUT_MAX 65536

struct corpus {
	size_t n;
	uint8_t *data[CORPUS_MAX];
	size_t len[CORPUS_MAX];
};

static int corpus_load(void **state)
{
	const char *dir = getenv(CORPUS_ENV);
	if (dir == NULL)
		dir = CORPUS_DEFAULT;
	struct corpus *c = calloc(1, sizeof *c);
	DIR *d = opendir(dir);
	if (d == NULL) {
		fprintf(stderr, "cannot open corpus %s\n", dir);
		free(c);
		return -1;
	}
	struct dirent *e;
	char path[4096];
	while ((e = readdir(d)) != NULL && c->n < CORPUS_MAX) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		FILE *f = fopen(path, "rb");
		if (f == NULL)
			continue;
		uint8_t *buf = malloc(INPUT_MAX);
		size_t len = fread(buf, 1, INPUT_MAX, f);
		fclose(f);
		c->data[c->n] = buf;
		c->len[c->n++] = len;
	}
	closedir(d);
	*state = c;
	return 0;
}

static int corpus_free(void **state)
{
	struct corpus *c = *state;
	for (size_t i = 0; i < c->n; i++)
		free(c->data[i]);
	free(c);
	return 0;
}

static void seed_corpus_replays_clean(void **state)
{
	struct corpus *c = *state;
	assert_true(c->n >= 10);
	for (size_t i = 0; i < c->n; i++)
		LLVMFuzzerTestOneInput(c->data[i], c->len[i]);
}

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

static void mutations_replay_clean(void **state)
{
	struct corpus *c = *state;
	uint64_t seed = 20261123;
	const char *env = getenv("REMO_MUTATIONS");
	long rounds = env ? atol(env) : 20000;
	uint8_t *buf = malloc(INPUT_MAX);

	for (long r = 0; r < rounds; r++) {
		size_t k = rng_next(&seed) % c->n;
		size_t len = c->len[k];
		memcpy(buf, c->data[k], len);
		int edits = 1 + (int)(rng_next(&seed) % 4);
		for (int e = 0; e < edits && len > 0; e++) {
			size_t at = rng_next(&seed) % len;
			switch (rng_next(&seed) % 4) {
			case 0: /* flip a bit */
				buf[at] ^= (uint8_t)(1u << (rng_next(&seed) % 8));
				break;
			case 1: /* an interesting byte */
				buf[at] = (uint8_t[]){0x00, 0x7f, 0x80, 0xc1, 0xdd,
				                      0xdf, 0xff, 0x91}[rng_next(&seed) % 8];
				break;
			case 2: /* cut the tail */
				len = at;
				break;
			default: /* duplicate a byte */
				if (len < INPUT_MAX) {
					memmove(buf + at + 1, buf + at, len - at);
					len++;
				}
				break;
			}
		}
		LLVMFuzzerTestOneInput(buf, len);
	}
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(seed_corpus_replays_clean),
		cmocka_unit_test(mutations_replay_clean),
	};
	return cmocka_run_group_tests_name("corpus", tests, corpus_load,
	                                   corpus_free);
}
