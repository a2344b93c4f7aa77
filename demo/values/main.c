/*
 * remo-values -- builds one value of every kind, prints each one's
 * MessagePack bytes in hex and decodes them back.
 *
 * This is the demo of the foundation: the values and the codec that every
 * message between remo peers is made of.  See README.md beside it.
 */
#include <remo/remo.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int show(const char *what, remo_value v)
{
	remo_buf buf = {0};
	remo_value back;
	char *repr = remo_repr(v), *repr_back = NULL;
	int rc = remo_pack(v, &buf);

	printf("%-8s %s\n", what, repr ? repr : "?");
	if (rc != REMO_OK) {
		printf("         pack failed: %s\n", remo_strerror(rc));
		goto out;
	}
	printf("         %zu bytes:", buf.len);
	for (size_t i = 0; i < buf.len; i++)
		printf("%s%02x", i && i % 24 == 0 ? "\n                  " : " ",
		       buf.data[i]);
	printf("\n");
	rc = remo_unpack(buf.data, buf.len, &back);
	if (rc != REMO_OK) {
		printf("         unpack failed: %s\n", remo_strerror(rc));
		goto out;
	}
	repr_back = remo_repr(back);
	printf("         decoded %s %s\n", repr_back ? repr_back : "?",
	       remo_equal(v, back) ? "(equal)" : "(DIFFERENT)");
	if (!remo_equal(v, back))
		rc = REMO_EINVAL;
	remo_value_release(back);
out:
	remo_free(repr);
	remo_free(repr_back);
	remo_buf_free(&buf);
	remo_value_release(v);
	return rc;
}

int main(void)
{
	int failed = 0;
	static const unsigned char raw[] = {0x00, 0xff, 0x10};

	failed |= show("nil", remo_nil());
	failed |= show("bool", remo_bool(true));
	failed |= show("int", remo_int(-1234567890123LL));
	failed |= show("double", remo_double(M_PI));
	failed |= show("str", remo_str("h\xc3\xa9llo, remo"));
	failed |= show("bytes", remo_bytes(raw, sizeof raw));
	failed |= show("tuple", remo_tuple_of(3, remo_int(1), remo_str("two"),
	                                      remo_double(3.0)));

	remo_value list = remo_list();
	remo_list_append(list, remo_int(10));
	remo_list_append(list, remo_tuple_of(1, remo_nil()));
	failed |= show("list", list);

	remo_value dict = remo_dict();
	remo_dict_set_str(dict, "name", remo_str("calc"));
	remo_dict_set_str(dict, "sizes", remo_tuple_of(2, remo_int(1),
	                                               remo_int(1000000)));
	failed |= show("dict", dict);

	remo_value err = remo_error("KeyError", "no such key: 'x'");
	remo_dict_set_str(remo_error_attrs(err), "key", remo_str("x"));
	printf("         KeyError is a LookupError: %s\n",
	       remo_error_isa(err, "LookupError") ? "yes" : "no");
	failed |= show("error", err);

	/* And what a hostile peer gets: an array claiming 100 million items
	 * in a 5-byte message is refused before anything is allocated. */
	static const unsigned char bomb[] = {0xdd, 0x05, 0xf5, 0xe1, 0x00};
	remo_value v;
	int rc = remo_unpack(bomb, sizeof bomb, &v);
	printf("hostile  dd 05 f5 e1 00 -> %s (%s)\n", remo_status_name(rc),
	       remo_strerror(rc));
	if (rc != REMO_EWIRE_COUNT)
		failed = 1;

	printf(failed ? "FAILED\n" : "all values round-tripped\n");
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
