/*
 * test_dict.c -- the dict kind: keys, insertion order across deletions
 * and resizes, unhashable keys, and allocation failure while growing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "value/value.h"
#include "testutil.h"

static void set_get_replace(void **state)
{
	remo_value d = remo_dict(), v;
	assert_int_equal(remo_dict_set_str(d, "a", remo_int(1)), REMO_OK);
	assert_int_equal(remo_dict_set(d, remo_int(1), remo_str("one")),
	                 REMO_OK);
	assert_int_equal(remo_dict_len(d), 2);
	assert_int_equal(remo_dict_get_str(d, "a", &v), REMO_OK);
	assert_int_equal(v.as.i, 1);
	assert_int_equal(remo_dict_get(d, remo_int(1), &v), REMO_OK);
	assert_string_equal(remo_str_data(v, NULL), "one");
	/* 1 and 1.0 are different keys, as they are different values */
	assert_int_equal(remo_dict_get(d, remo_double(1.0), &v),
	                 REMO_ENOTFOUND);
	assert_int_equal(remo_dict_set_str(d, "a", remo_int(2)), REMO_OK);
	assert_int_equal(remo_dict_len(d), 2);
	assert_int_equal(remo_dict_get_str(d, "a", &v), REMO_OK);
	assert_int_equal(v.as.i, 2);
	assert_int_equal(remo_dict_get_str(d, "missing", &v), REMO_ENOTFOUND);
	remo_value_release(d);
}

static void tuple_and_nil_keys(void **state)
{
	remo_value d = remo_dict(), v;
	remo_value k = remo_tuple_of(2, remo_int(1), remo_str("x"));
	remo_value probe = remo_tuple_of(2, remo_int(1), remo_str("x"));
	assert_int_equal(remo_dict_set(d, k, remo_bool(true)), REMO_OK);
	assert_int_equal(remo_dict_set(d, remo_nil(), remo_int(0)), REMO_OK);
	assert_int_equal(remo_dict_get(d, probe, &v), REMO_OK);
	assert_true(v.as.b);
	assert_int_equal(remo_dict_get(d, remo_nil(), &v), REMO_OK);
	remo_value_release(probe);
	remo_value_release(d);
}

static void unhashable_keys_are_refused_and_released(void **state)
{
	remo_value d = remo_dict(), v;
	remo_value l = remo_list();
	remo_value_retain(l);
	assert_int_equal(remo_dict_set(d, l, remo_int(1)), REMO_EUNHASHABLE);
	assert_int_equal(atomic_load(&l.as.p->refs), 1);
	assert_int_equal(remo_dict_get(d, l, &v), REMO_ENOTFOUND);
	assert_int_equal(remo_dict_del(d, l), REMO_ENOTFOUND);
	assert_int_equal(remo_dict_len(d), 0);
	assert_int_equal(remo_dict_set(remo_int(1), remo_nil(), remo_nil()),
	                 REMO_ETYPE);
	remo_value_release(l);
	remo_value_release(d);
}

static void order_is_insertion_order_across_deletes_and_growth(void **state)
{
	enum { N = 5000 };
	remo_value d = remo_dict(), k, v;
	for (int i = 0; i < N; i++)
		assert_int_equal(remo_dict_set(d, remo_int(i), remo_int(i * 2)),
		                 REMO_OK);
	/* delete every odd key, then re-add some at the end */
	for (int i = 1; i < N; i += 2)
		assert_int_equal(remo_dict_del(d, remo_int(i)), REMO_OK);
	assert_int_equal(remo_dict_del(d, remo_int(1)), REMO_ENOTFOUND);
	for (int i = 1; i < 200; i += 2)
		assert_int_equal(remo_dict_set(d, remo_int(i), remo_int(-i)),
		                 REMO_OK);
	assert_int_equal(remo_dict_len(d), N / 2 + 100);

	size_t pos = 0;
	int expect = 0, count = 0;
	while (remo_dict_next(d, &pos, &k, &v)) {
		if (count < N / 2) {
			assert_int_equal(k.as.i, expect);
			assert_int_equal(v.as.i, expect * 2);
			expect += 2;
		} else {
			int odd = 1 + 2 * (count - N / 2);
			assert_int_equal(k.as.i, odd);
			assert_int_equal(v.as.i, -odd);
		}
		count++;
	}
	assert_int_equal(count, N / 2 + 100);
	remo_value_release(d);
}

static void churn_keeps_every_key_findable(void **state)
{
	/* Many deletes and inserts at a steady size exercise the deleted
	 * slots and the compaction on resize. */
	remo_value d = remo_dict(), v;
	char key[32];
	for (int round = 0; round < 50; round++) {
		for (int i = 0; i < 100; i++) {
			snprintf(key, sizeof key, "k%d", round * 100 + i);
			assert_int_equal(remo_dict_set_str(d, key, remo_int(i)),
			                 REMO_OK);
		}
		if (round > 0) {
			for (int i = 0; i < 100; i++) {
				remo_value kv;
				snprintf(key, sizeof key, "k%d",
				         (round - 1) * 100 + i);
				kv = remo_str(key);
				assert_int_equal(remo_dict_del(d, kv), REMO_OK);
				remo_value_release(kv);
			}
		}
		assert_int_equal(remo_dict_len(d), 100);
	}
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof key, "k%d", 49 * 100 + i);
		assert_int_equal(remo_dict_get_str(d, key, &v), REMO_OK);
		assert_int_equal(v.as.i, i);
	}
	remo_value_release(d);
}

static void growth_failure_leaves_the_dict_intact(void **state)
{
	remo_value d = remo_dict(), v;
	for (int i = 0; i < 5; i++)
		assert_int_equal(remo_dict_set(d, remo_int(i), remo_int(i)),
		                 REMO_OK);
	/* the sixth key needs a resize; make its allocations fail */
	test_alloc_reset(0);
	assert_int_equal(remo_dict_set(d, remo_int(5), remo_int(5)),
	                 REMO_ENOMEM);
	test_alloc_restore();
	assert_int_equal(remo_dict_len(d), 5);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(remo_dict_get(d, remo_int(i), &v), REMO_OK);
		assert_int_equal(v.as.i, i);
	}
	assert_int_equal(remo_dict_set(d, remo_int(5), remo_int(5)), REMO_OK);
	assert_int_equal(remo_dict_len(d), 6);
	remo_value_release(d);
}

static void iteration_of_an_empty_and_a_wrong_kind(void **state)
{
	remo_value d = remo_dict(), k, v;
	size_t pos = 0;
	assert_false(remo_dict_next(d, &pos, &k, &v));
	pos = 0;
	assert_false(remo_dict_next(remo_int(1), &pos, &k, &v));
	assert_int_equal(remo_dict_len(remo_int(1)), 0);
	remo_value_release(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(set_get_replace),
		cmocka_unit_test(tuple_and_nil_keys),
		cmocka_unit_test(unhashable_keys_are_refused_and_released),
		cmocka_unit_test(order_is_insertion_order_across_deletes_and_growth),
		cmocka_unit_test(churn_keeps_every_key_findable),
		cmocka_unit_test(growth_failure_leaves_the_dict_intact),
		cmocka_unit_test(iteration_of_an_empty_and_a_wrong_kind),
	};
	return cmocka_run_group_tests_name("dict", tests, NULL, NULL);
}
