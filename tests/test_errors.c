/*
 * test_errors.c -- status codes and their table, the error-name registry
 * and its hierarchy, errno names, and error values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>

#include "net/net.h"
#include "testutil.h"

static void every_status_has_a_name_and_a_sentence(void **state)
{
	static const int codes[] = {
		REMO_OK, REMO_ENOMEM, REMO_EINVAL, REMO_ETYPE, REMO_ERANGE,
		REMO_ENOTFOUND, REMO_EEXIST, REMO_EUNHASHABLE, REMO_EDEPTH,
		REMO_ETOOBIG, REMO_ELIMIT, REMO_EWIRE_TRUNCATED,
		REMO_EWIRE_RESERVED, REMO_EWIRE_LENGTH, REMO_EWIRE_COUNT,
		REMO_EWIRE_DEPTH, REMO_EWIRE_VALUES, REMO_EWIRE_TRAILING,
		REMO_EWIRE_INTRANGE, REMO_EWIRE_EXTTYPE, REMO_EWIRE_EXTBODY,
		REMO_EWIRE_KEY, REMO_EWIRE_DUPKEY, REMO_EWIRE_UTF8,
	};
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
		assert_non_null(remo_status_name(codes[i]));
		assert_string_not_equal(remo_strerror(codes[i]),
		                        "unknown remo status");
		/* distinct sentences: each kind of failure says what it is */
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(remo_strerror(codes[i]),
			                        remo_strerror(codes[j]));
	}
	assert_string_equal(remo_status_name(REMO_EWIRE_COUNT),
	                    "REMO_EWIRE_COUNT");
	assert_int_equal(REMO_OK, 0);
	assert_null(remo_status_name(-1));
	assert_null(remo_status_name(19)); /* a gap in the numbering */
	assert_string_equal(remo_strerror(9999), "unknown remo status");
}

static void builtin_hierarchy(void **state)
{
	static const char *const isa[][2] = {
		{"KeyError", "LookupError"},   {"IndexError", "LookupError"},
		{"KeyError", "Error"},         {"ZeroDivisionError", "ArithmeticError"},
		{"OverflowError", "ArithmeticError"}, {"PeerLost", "ConnectionError"},
		{"TypeError", "Error"},        {"ValueError", "Error"},
		{"AttributeError", "Error"},   {"MemoryError", "Error"},
		{"TimeoutError", "Error"},     {"PermissionError", "Error"},
		{"ProtocolError", "Error"},    {"NotFound", "Error"},
		{"ENOENT", "OSError"},         {"EPIPE", "Error"},
	};
	for (size_t i = 0; i < sizeof isa / sizeof isa[0]; i++) {
		assert_true(remo_errname_known(isa[i][0]));
		assert_true(remo_errname_isa(isa[i][0], isa[i][1]));
		if (strcmp(isa[i][1], "Error") != 0)
			assert_false(remo_errname_isa(isa[i][1], isa[i][0]));
	}
	assert_false(remo_errname_isa("KeyError", "IndexError"));
	assert_false(remo_errname_isa("PeerLost", "LookupError"));
	assert_string_equal(remo_errname_parent("KeyError"), "LookupError");
	assert_null(remo_errname_parent("Error"));
}

static void unknown_names_are_kept_and_are_errors(void **state)
{
	assert_false(remo_errname_known("com.example.Oops"));
	assert_true(remo_errname_isa("com.example.Oops", "com.example.Oops"));
	assert_true(remo_errname_isa("com.example.Oops", "Error"));
	assert_false(remo_errname_isa("com.example.Oops", "LookupError"));
	assert_null(remo_errname_parent("com.example.Oops"));

	remo_value e = remo_error("com.example.Oops", "strange");
	assert_true(remo_ok(e));
	assert_string_equal(remo_error_name(e), "com.example.Oops");
	remo_value_release(e);
}

static void register_with_a_parent(void **state)
{
	assert_int_equal(remo_errname_register("CalcError", "ArithmeticError"),
	                 REMO_OK);
	assert_int_equal(remo_errname_register("CalcOverflow", "CalcError"),
	                 REMO_OK);
	assert_true(remo_errname_isa("CalcOverflow", "ArithmeticError"));
	assert_true(remo_errname_isa("CalcOverflow", "CalcError"));
	assert_false(remo_errname_isa("CalcError", "CalcOverflow"));
	assert_string_equal(remo_errname_parent("CalcOverflow"), "CalcError");
	/* again, the same: fine; differently: refused */
	assert_int_equal(remo_errname_register("CalcError", "ArithmeticError"),
	                 REMO_OK);
	assert_int_equal(remo_errname_register("CalcError", "LookupError"),
	                 REMO_EEXIST);
	assert_int_equal(remo_errname_register("KeyError", "Error"),
	                 REMO_EEXIST);
	assert_int_equal(remo_errname_register("Orphan", "NoSuchParent"),
	                 REMO_ENOTFOUND);
	assert_false(remo_errname_known("Orphan"));
	assert_int_equal(remo_errname_register("bad name", "Error"),
	                 REMO_EINVAL);
	assert_int_equal(remo_errname_register("", "Error"), REMO_EINVAL);
	assert_int_equal(remo_errname_register(NULL, "Error"), REMO_EINVAL);
}

static void errno_names_both_ways(void **state)
{
	assert_string_equal(remo_errno_name(ENOENT), "ENOENT");
	assert_string_equal(remo_errno_name(ECONNREFUSED), "ECONNREFUSED");
	assert_int_equal(remo_errno_value("ENOENT"), ENOENT);
	assert_int_equal(remo_errno_value("EPIPE"), EPIPE);
	assert_int_equal(remo_errno_value("KeyError"), 0);
	assert_int_equal(remo_errno_value("ENOTANERRNO"), 0);
	assert_null(remo_errno_name(0));
	assert_null(remo_errno_name(-5));
	assert_null(remo_errno_name(100000));
	assert_string_equal(remo_errname_parent("ENOENT"), "OSError");
}

static void error_values_carry_name_message_attrs(void **state)
{
	remo_value e = remo_error("KeyError", "no such key");
	remo_value v;
	assert_int_equal(e.kind, REMO_ERROR);
	assert_string_equal(remo_error_name(e), "KeyError");
	assert_string_equal(remo_error_message(e), "no such key");
	assert_int_equal(remo_error_traceback(e).kind, REMO_NIL);
	assert_int_equal(remo_error_attrs(e).kind, REMO_DICT);
	assert_int_equal(remo_dict_set_str(remo_error_attrs(e), "key",
	                                   remo_str("x")), REMO_OK);
	assert_int_equal(remo_dict_get_str(remo_error_attrs(e), "key", &v),
	                 REMO_OK);
	assert_true(remo_error_isa(e, "LookupError"));
	assert_false(remo_error_isa(e, "TypeError"));
	remo_value_release(e);

	remo_value m = remo_error("ValueError", NULL);
	assert_string_equal(remo_error_message(m), "");
	remo_value_release(m);

	assert_false(remo_ok(remo_error("has space", "m")));
	assert_false(remo_ok(remo_error("", "m")));
	assert_false(remo_ok(remo_error(NULL, "m")));
	assert_null(remo_error_name(remo_int(1)));
	assert_false(remo_error_isa(remo_int(1), "Error"));
}

static void *register_many(void *arg)
{
	char name[32];
	int base = *(int *)arg;
	for (int i = 0; i < 200; i++) {
		snprintf(name, sizeof name, "T%dE%d", base, i);
		if (remo_errname_register(name, "ValueError") != REMO_OK)
			return (void *)1;
		if (!remo_errname_isa(name, "ValueError"))
			return (void *)1;
	}
	return NULL;
}

static void concurrent_registration(void **state)
{
	pthread_t th[4];
	int base[4] = {0, 1, 2, 3};
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, register_many,
		                                &base[i]), 0);
	for (int i = 0; i < 4; i++) {
		void *ret;
		pthread_join(th[i], &ret);
		assert_null(ret);
	}
	assert_true(remo_errname_isa("T3E199", "Error"));
}

/* Runs last: it fills the registry for the rest of the process. */
static void registry_limit_is_enforced(void **state)
{
	char name[32];
	int rc = REMO_OK, added = 0;
	for (int i = 0; rc == REMO_OK && i < REMO_MAX_ERROR_NAMES + 1; i++) {
		snprintf(name, sizeof name, "Filler%d", i);
		rc = remo_errname_register(name, "Error");
		if (rc == REMO_OK)
			added++;
	}
	assert_int_equal(rc, REMO_ELIMIT);
	assert_true(added < REMO_MAX_ERROR_NAMES);
	assert_false(remo_errname_known(name));
	/* what was there still works */
	assert_true(remo_errname_isa("KeyError", "LookupError"));
	assert_true(remo_errname_isa("Filler0", "Error"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_status_has_a_name_and_a_sentence),
		cmocka_unit_test(builtin_hierarchy),
		cmocka_unit_test(unknown_names_are_kept_and_are_errors),
		cmocka_unit_test(register_with_a_parent),
		cmocka_unit_test(errno_names_both_ways),
		cmocka_unit_test(error_values_carry_name_message_attrs),
		cmocka_unit_test(concurrent_registration),
		cmocka_unit_test(registry_limit_is_enforced),
	};
	return cmocka_run_group_tests_name("errors", tests, NULL, NULL);
}
