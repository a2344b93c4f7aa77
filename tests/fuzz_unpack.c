/*
 * fuzz_unpack.c -- the libFuzzer target for the decoder.
 *
 * Built two ways: by `make fuzz` with clang -fsanitize=fuzzer (CI runs it
 * for 60 seconds), and into tests/test_corpus, which replays the seed
 * corpus and a deterministic set of mutations of it in every make check.
 *
 * Beyond "no crash, no leak, no sanitizer report", it checks properties:
 *   - the structural check and the decoder agree on rejections;
 *   - a rejection is a REMO_EWIRE_* code;
 *   - whatever decodes re-encodes, decodes again to an equal value, and
 *     encodes to the same bytes a second time (the encoder is canonical).
 */
#include <stdio.h>
#include <stdlib.h>

#include "wire/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_REQUIRE(cond)                                                  \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "fuzz_unpack: %s failed at %s:%d\n", \
			        #cond, __FILE__, __LINE__);                 \
			abort();                                            \
		}                                                           \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	remo_value v, w;
	int rc = remo_unpack(data, size, &v);
	int chk = size ? remo__wire_check(data, size) : REMO_EWIRE_TRUNCATED;

	if (chk != REMO_OK)
		FUZZ_REQUIRE(rc == chk);
	if (rc != REMO_OK) {
		FUZZ_REQUIRE(rc >= REMO_EWIRE_TRUNCATED);
		FUZZ_REQUIRE(v.kind == REMO_NIL);
		return 0;
	}

	remo_buf b = {0}, c = {0};
	FUZZ_REQUIRE(remo_pack(v, &b) == REMO_OK);
	FUZZ_REQUIRE(remo_unpack(b.data, b.len, &w) == REMO_OK);
	FUZZ_REQUIRE(remo_equal(v, w));
	FUZZ_REQUIRE(remo_pack(w, &c) == REMO_OK);
	FUZZ_REQUIRE(c.len == b.len && memcmp(c.data, b.data, b.len) == 0);
	char *r = remo_repr(v);
	FUZZ_REQUIRE(r != NULL);
	remo_free(r);
	remo_buf_free(&b);
	remo_buf_free(&c);
	remo_value_release(v);
	remo_value_release(w);
	return 0;
}
