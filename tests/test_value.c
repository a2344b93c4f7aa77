/*
 * test_value.c -- values: construction, the ownership rule, equality,
 * hashing, repr, and behaviour when allocation fails.
 *
 * Reference counts are read through the internal header so that "stolen,
 * also on failure" is checked directly rather than left to a leak checker.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "value/value.h"
#include "testutil.h"

static unsigned refs_of(remo_value v)
{
	return atomic_load(&v.as.p->refs);
}

/* ---- immediates ---------------------------------------------------------- */

static void immediates_cost_no_allocation(void **state)
{
	test_alloc_reset(-1);
	remo_value v[] = {remo_nil(), remo_bool(true), remo_int(INT64_MIN),
	                  remo_double(-0.5)};
	for (size_t i = 0; i < 4; i++) {
		remo_value r = remo_value_retain(v[i]);
		assert_true(remo_equal(r, v[i]));
		remo_value_release(r);
		remo_value_release(v[i]);
	}
	assert_int_equal(test_alloc_count, 0);
	test_alloc_restore();
}

static void zero_filled_value_is_nil(void **state)
{
	remo_value v;
	memset(&v, 0, sizeof v);
	assert_int_equal(v.kind, REMO_NIL);
	assert_true(remo_equal(v, remo_nil()));
	remo_value_release(v); /* releasing nil is a no-op */
}

/* ---- str and bytes ------------------------------------------------------- */

static void str_is_a_nul_terminated_copy(void **state)
{
	char src[] = "hello";
	remo_value s = remo_str(src);
	src[0] = 'J';
	size_t len;
	assert_string_equal(remo_str_data(s, &len), "hello");
	assert_int_equal(len, 5);
	remo_value_release(s);

	remo_value n = remo_str(NULL);
	assert_string_equal(remo_str_data(n, &len), "");
	assert_int_equal(len, 0);
	remo_value_release(n);
}

static void strn_and_bytes_keep_embedded_nuls(void **state)
{
	remo_value s = remo_strn("a\0b", 3);
	remo_value b = remo_bytes("a\0b", 3);
	size_t len;
	assert_memory_equal(remo_str_data(s, &len), "a\0b", 4);
	assert_int_equal(len, 3);
	assert_memory_equal(remo_bytes_data(b, &len), "a\0b", 4);
	assert_int_equal(len, 3);
	/* str and bytes of the same content are different values */
	assert_false(remo_equal(s, b));
	assert_null(remo_bytes_data(s, NULL));
	assert_null(remo_str_data(b, NULL));
	remo_value_release(s);
	remo_value_release(b);
}

/* ---- reference counting and the ownership rule --------------------------- */

static void retain_and_release_count(void **state)
{
	remo_value s = remo_str("x");
	assert_int_equal(refs_of(s), 1);
	remo_value t = remo_value_retain(s);
	assert_int_equal(refs_of(s), 2);
	assert_ptr_equal(t.as.p, s.as.p);
	remo_value_release(t);
	assert_int_equal(refs_of(s), 1);
	remo_value_release(s);
}

static void tuple_set_steals_on_success(void **state)
{
	remo_value t = remo_tuple(2);
	remo_value s = remo_str("x");
	remo_value_retain(s); /* our own extra reference, to watch the count */
	assert_int_equal(remo_tuple_set(t, 0, s), REMO_OK);
	assert_int_equal(refs_of(s), 2);
	remo_value_release(t);
	assert_int_equal(refs_of(s), 1);
	remo_value_release(s);
}

static void setters_steal_on_failure_too(void **state)
{
	remo_value s = remo_str("x");
	remo_value not_a_tuple = remo_int(1);
	remo_value t = remo_tuple(1);
	remo_value l = remo_list();

	remo_value_retain(s);
	assert_int_equal(remo_tuple_set(not_a_tuple, 0, s), REMO_ETYPE);
	assert_int_equal(refs_of(s), 1);

	remo_value_retain(s);
	assert_int_equal(remo_tuple_set(t, 5, s), REMO_ERANGE);
	assert_int_equal(refs_of(s), 1);

	remo_value_retain(s);
	assert_int_equal(remo_list_set(l, 0, s), REMO_ERANGE);
	assert_int_equal(refs_of(s), 1);

	remo_value_retain(s);
	assert_int_equal(remo_list_append(not_a_tuple, s), REMO_ETYPE);
	assert_int_equal(refs_of(s), 1);

	remo_value_release(s);
	remo_value_release(t);
	remo_value_release(l);
}

static void tuple_set_refuses_a_shared_tuple(void **state)
{
	remo_value t = remo_tuple(1);
	remo_value other = remo_value_retain(t);
	assert_int_equal(remo_tuple_set(t, 0, remo_int(1)), REMO_EINVAL);
	assert_true(remo_equal(remo_tuple_get(t, 0), remo_nil()));
	remo_value_release(other);
	assert_int_equal(remo_tuple_set(t, 0, remo_int(1)), REMO_OK);
	remo_value_release(t);
}

static void invalid_values_are_refused_as_enomem(void **state)
{
	remo_value t = remo_tuple(1), l = remo_list(), d = remo_dict();
	assert_int_equal(remo_tuple_set(t, 0, remo__invalid()), REMO_ENOMEM);
	assert_int_equal(remo_list_append(l, remo__invalid()), REMO_ENOMEM);
	assert_int_equal(remo_dict_set(d, remo__invalid(), remo_int(1)),
	                 REMO_ENOMEM);
	assert_int_equal(remo_dict_set_str(d, "k", remo__invalid()),
	                 REMO_ENOMEM);
	assert_int_equal(remo_dict_len(d), 0);
	remo_value_release(t);
	remo_value_release(l);
	remo_value_release(d);
}

/* ---- tuple and list ------------------------------------------------------ */

static void tuple_of_builds_in_order(void **state)
{
	remo_value t = remo_tuple_of(3, remo_int(1), remo_str("two"),
	                             remo_double(3.0));
	assert_int_equal(remo_tuple_len(t), 3);
	assert_int_equal(remo_tuple_get(t, 0).as.i, 1);
	assert_string_equal(remo_str_data(remo_tuple_get(t, 1), NULL), "two");
	assert_true(remo_tuple_get(t, 2).as.d == 3.0);
	assert_int_equal(remo_tuple_get(t, 3).kind, REMO_NIL); /* past end */
	remo_value_release(t);
}

static void tuple_of_with_a_failed_item_fails_whole(void **state)
{
	remo_value s = remo_str("kept?");
	remo_value_retain(s);
	remo_value t = remo_tuple_of(3, remo_int(1), remo__invalid(), s);
	assert_false(remo_ok(t));
	assert_int_equal(refs_of(s), 1); /* stolen and released */
	remo_value_release(s);
}

static void list_append_get_set_del(void **state)
{
	remo_value l = remo_list();
	for (int i = 0; i < 100; i++)
		assert_int_equal(remo_list_append(l, remo_int(i)), REMO_OK);
	assert_int_equal(remo_list_len(l), 100);
	assert_int_equal(remo_list_get(l, 57).as.i, 57);
	assert_int_equal(remo_list_set(l, 57, remo_str("x")), REMO_OK);
	assert_int_equal(remo_list_get(l, 57).kind, REMO_STR);
	assert_int_equal(remo_list_del(l, 0), REMO_OK);
	assert_int_equal(remo_list_len(l), 99);
	assert_int_equal(remo_list_get(l, 0).as.i, 1);
	assert_int_equal(remo_list_get(l, 56).kind, REMO_STR);
	assert_int_equal(remo_list_del(l, 99), REMO_ERANGE);
	assert_int_equal(remo_list_get(l, 99).kind, REMO_NIL);
	assert_int_equal(remo_list_del(remo_int(3), 0), REMO_ETYPE);
	remo_value_release(l);
}

/* ---- kinds, equality, hashing -------------------------------------------- */

static void mutability_and_hashability(void **state)
{
	remo_value l = remo_list(), d = remo_dict();
	remo_value ht = remo_tuple_of(2, remo_int(1), remo_str("a"));
	remo_value ut = remo_tuple_of(1, remo_value_retain(l));
	assert_true(remo_is_mutable(l));
	assert_true(remo_is_mutable(d));
	assert_false(remo_is_mutable(ht));
	assert_true(remo_hashable(ht));
	assert_false(remo_hashable(ut));
	assert_false(remo_hashable(l));
	assert_false(remo_hashable(d));
	assert_int_equal(remo_hash(l), 0);
	remo_value_release(l);
	remo_value_release(d);
	remo_value_release(ht);
	remo_value_release(ut);
}

static void equality_is_by_kind_and_content(void **state)
{
	assert_false(remo_equal(remo_int(1), remo_double(1.0)));
	assert_false(remo_equal(remo_bool(false), remo_nil()));
	assert_true(remo_equal(remo_double(NAN), remo_double(NAN)));
	assert_true(remo_equal(remo_double(0.0), remo_double(-0.0)));
	assert_false(remo_equal(remo_double(1.0), remo_double(2.0)));

	remo_value a = remo_tuple_of(2, remo_int(1), remo_str("x"));
	remo_value b = remo_tuple_of(2, remo_int(1), remo_str("x"));
	remo_value c = remo_tuple_of(2, remo_int(1), remo_str("y"));
	remo_value l = remo_list();
	remo_list_append(l, remo_int(1));
	remo_list_append(l, remo_str("x"));
	assert_true(remo_equal(a, b));
	assert_false(remo_equal(a, c));
	assert_false(remo_equal(a, l)); /* a tuple is not a list */
	remo_value_release(a);
	remo_value_release(b);
	remo_value_release(c);
	remo_value_release(l);
}

static void dict_equality_ignores_order(void **state)
{
	remo_value a = remo_dict(), b = remo_dict();
	remo_dict_set_str(a, "x", remo_int(1));
	remo_dict_set_str(a, "y", remo_int(2));
	remo_dict_set_str(b, "y", remo_int(2));
	remo_dict_set_str(b, "x", remo_int(1));
	assert_true(remo_equal(a, b));
	remo_dict_set_str(b, "x", remo_int(3));
	assert_false(remo_equal(a, b));
	remo_value_release(a);
	remo_value_release(b);
}

static void equal_values_hash_alike(void **state)
{
	remo_value pairs[][2] = {
		{remo_double(0.0), remo_double(-0.0)},
		{remo_double(NAN), remo_double(-NAN)},
		{remo_str("abc"), remo_strn("abc", 3)},
		{remo_tuple_of(2, remo_nil(), remo_str("k")),
		 remo_tuple_of(2, remo_nil(), remo_str("k"))},
	};
	for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
		assert_true(remo_equal(pairs[i][0], pairs[i][1]));
		assert_true(remo_hash(pairs[i][0]) == remo_hash(pairs[i][1]));
		remo_value_release(pairs[i][0]);
		remo_value_release(pairs[i][1]);
	}
	/* and different small ints spread out */
	assert_true(remo_hash(remo_int(1)) != remo_hash(remo_int(2)));
}

/* ---- repr ------------------------------------------------------------------ */

static void expect_repr(remo_value v, const char *want)
{
	char *got = remo_repr(v);
	assert_non_null(got);
	assert_string_equal(got, want);
	remo_free(got);
	remo_value_release(v);
}

static void repr_of_every_kind(void **state)
{
	expect_repr(remo_nil(), "nil");
	expect_repr(remo_bool(false), "false");
	expect_repr(remo_int(-42), "-42");
	expect_repr(remo_double(1.0), "1.0");
	expect_repr(remo_double(0.1), "0.10000000000000001");
	expect_repr(remo_double(-INFINITY), "-inf");
	expect_repr(remo_double(NAN), "nan");
	expect_repr(remo_str("a\"b\\\n\x01"), "\"a\\\"b\\\\\\n\\x01\"");
	expect_repr(remo_bytes("\x00\xff", 2), "b\"\\x00\\xff\"");
	expect_repr(remo_tuple_of(1, remo_int(1)), "(1,)");
	expect_repr(remo_tuple(0), "()");
	remo_value l = remo_list();
	remo_list_append(l, remo_int(1));
	remo_list_append(l, remo_tuple_of(2, remo_nil(), remo_bool(true)));
	expect_repr(l, "[1, (nil, true)]");
	remo_value d = remo_dict();
	remo_dict_set_str(d, "k", remo_int(1));
	remo_dict_set(d, remo_int(2), remo_str("v"));
	expect_repr(d, "{\"k\": 1, 2: \"v\"}");
	expect_repr(remo_error("KeyError", "gone"), "KeyError(\"gone\")");
	expect_repr(remo__ref_new(REMO_OBJECT, 7, false), "<object #7>");
	expect_repr(remo__ref_new(REMO_TRACEBACK, 9, true),
	            "<traceback #9 home>");
}

static void repr_stops_at_a_cycle(void **state)
{
	remo_value l = remo_list();
	remo_list_append(l, remo_value_retain(l));
	char *s = remo_repr(l);
	assert_non_null(s);
	assert_non_null(strstr(s, "[[[..."));
	remo_free(s);
	/* break the cycle so the list can be freed */
	remo_list_set(l, 0, remo_nil());
	remo_value_release(l);
}

/* ---- allocation failure ---------------------------------------------------- */

static void constructors_return_invalid_when_allocation_fails(void **state)
{
	test_alloc_reset(0);
	assert_false(remo_ok(remo_str("x")));
	assert_false(remo_ok(remo_bytes("x", 1)));
	assert_false(remo_ok(remo_tuple(3)));
	assert_false(remo_ok(remo_list()));
	assert_false(remo_ok(remo_dict()));
	assert_false(remo_ok(remo_error("ValueError", "m")));
	assert_null(remo_repr(remo_int(1)));
	test_alloc_restore();
}

static void every_allocation_failure_in_a_build_is_clean(void **state)
{
	/* Fail the k-th allocation for every k until the build succeeds:
	 * each failure must surface as an error, and ASan/valgrind check
	 * that nothing leaks on any of those paths. */
	for (long k = 0;; k++) {
		test_alloc_reset(k);
		remo_value l = remo_list();
		int rc = remo_ok(l) ? REMO_OK : REMO_ENOMEM;
		for (int i = 0; rc == REMO_OK && i < 20; i++)
			rc = remo_list_append(l, remo_tuple_of(2, remo_int(i),
			                                       remo_str("s")));
		remo_value d = remo_dict();
		if (rc == REMO_OK && !remo_ok(d))
			rc = REMO_ENOMEM;
		if (rc == REMO_OK)
			rc = remo_dict_set(d, remo_str("list"),
			                   remo_value_retain(l));
		char *r = rc == REMO_OK ? remo_repr(d) : NULL;
		if (rc == REMO_OK && r == NULL)
			rc = REMO_ENOMEM;
		remo_free(r);
		remo_value_release(l);
		remo_value_release(d);
		test_alloc_restore();
		if (rc == REMO_OK) {
			assert_true(k > 20);
			break;
		}
		assert_int_equal(rc, REMO_ENOMEM);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(immediates_cost_no_allocation),
		cmocka_unit_test(zero_filled_value_is_nil),
		cmocka_unit_test(str_is_a_nul_terminated_copy),
		cmocka_unit_test(strn_and_bytes_keep_embedded_nuls),
		cmocka_unit_test(retain_and_release_count),
		cmocka_unit_test(tuple_set_steals_on_success),
		cmocka_unit_test(setters_steal_on_failure_too),
		cmocka_unit_test(tuple_set_refuses_a_shared_tuple),
		cmocka_unit_test(invalid_values_are_refused_as_enomem),
		cmocka_unit_test(tuple_of_builds_in_order),
		cmocka_unit_test(tuple_of_with_a_failed_item_fails_whole),
		cmocka_unit_test(list_append_get_set_del),
		cmocka_unit_test(mutability_and_hashability),
		cmocka_unit_test(equality_is_by_kind_and_content),
		cmocka_unit_test(dict_equality_ignores_order),
		cmocka_unit_test(equal_values_hash_alike),
		cmocka_unit_test(repr_of_every_kind),
		cmocka_unit_test(repr_stops_at_a_cycle),
		cmocka_unit_test(constructors_return_invalid_when_allocation_fails),
		cmocka_unit_test(every_allocation_failure_in_a_build_is_clean),
	};
	return cmocka_run_group_tests_name("value", tests, NULL, NULL);
}
