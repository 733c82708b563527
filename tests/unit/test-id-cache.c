/* SPDX-License-Identifier: MIT */
/* The store's id cache: what is put is found under its own scope only, names are copied,
 * it grows past its first table, and clearing forgets everything. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "id-cache.h"
#include "run-suite.h"

START_TEST(put_then_get_by_scope_and_name)
{
        struct id_cache c = {0};
        int64_t id = 0;
        ck_assert(!id_cache_get(&c, 1, "battery_voltage", &id));
        ck_assert_int_eq(id_cache_put(&c, 1, "battery_voltage", 7), 0);
        ck_assert_int_eq(id_cache_put(&c, 2, "battery_voltage", 40), 0);
        ck_assert_int_eq(id_cache_put(&c, -1, "rover", 3), 0);
        ck_assert(id_cache_get(&c, 1, "battery_voltage", &id));
        ck_assert_int_eq(id, 7);
        ck_assert(id_cache_get(&c, 2, "battery_voltage", &id));
        ck_assert_int_eq(id, 40);
        ck_assert(id_cache_get(&c, -1, "rover", &id));
        ck_assert_int_eq(id, 3);
        ck_assert(!id_cache_get(&c, 3, "battery_voltage", &id));
        ck_assert(!id_cache_get(&c, 1, "battery_volt", &id));
        /* Putting again replaces, without a second entry. */
        ck_assert_int_eq(id_cache_put(&c, 1, "battery_voltage", 8), 0);
        ck_assert(id_cache_get(&c, 1, "battery_voltage", &id));
        ck_assert_int_eq(id, 8);
        ck_assert_uint_eq(c.n_used, 3);
        id_cache_clear(&c);
}
END_TEST

START_TEST(names_are_copied)
{
        struct id_cache c = {0};
        char name[16] = "load_power";
        int64_t id;
        ck_assert_int_eq(id_cache_put(&c, 5, name, 11), 0);
        strcpy(name, "load_current");
        ck_assert(!id_cache_get(&c, 5, name, &id));
        ck_assert(id_cache_get(&c, 5, "load_power", &id));
        ck_assert_int_eq(id, 11);
        id_cache_clear(&c);
}
END_TEST

/* A name too long for a key is refused, not cut: a cut one could find another name's id. */
START_TEST(overlong_names_are_refused)
{
        struct id_cache c = {0};
        char name[400];
        memset(name, 'k', sizeof name - 1);
        name[sizeof name - 1] = 0;
        int64_t id;
        ck_assert_int_eq(id_cache_put(&c, 1, name, 5), -ENAMETOOLONG);
        ck_assert(!id_cache_get(&c, 1, name, &id));
        ck_assert_uint_eq(c.n_used, 0);
        name[200] = 0;
        ck_assert_int_eq(id_cache_put(&c, 1, name, 6), 0);
        ck_assert(id_cache_get(&c, 1, name, &id));
        ck_assert_int_eq(id, 6);
        id_cache_clear(&c);
}
END_TEST

START_TEST(grows_and_clears)
{
        /* 200 devices x 33 keys, as the largest scale benchmark. */
        struct id_cache c = {0};
        char name[32];
        for (int dev = 0; dev < 200; dev++)
                for (int k = 0; k < 33; k++) {
                        snprintf(name, sizeof name, "key_%d", k);
                        ck_assert_int_eq(id_cache_put(&c, dev, name, dev * 1000 + k), 0);
                }
        ck_assert_uint_eq(c.n_used, 6600);
        ck_assert_uint_ge(c.map.cap * 3, 4 * c.n_used);
        for (int dev = 0; dev < 200; dev++)
                for (int k = 0; k < 33; k++) {
                        int64_t id = -1;
                        snprintf(name, sizeof name, "key_%d", k);
                        ck_assert(id_cache_get(&c, dev, name, &id));
                        ck_assert_int_eq(id, dev * 1000 + k);
                }
        id_cache_clear(&c);
        int64_t id;
        ck_assert(!id_cache_get(&c, 0, "key_0", &id));
        ck_assert_uint_eq(c.n_used, 0);
        /* Usable again after clearing. */
        ck_assert_int_eq(id_cache_put(&c, 0, "key_0", 1), 0);
        ck_assert(id_cache_get(&c, 0, "key_0", &id));
        id_cache_clear(&c);
}
END_TEST

int main(void)
{
        Suite *su = suite_create("id-cache");
        TCase *tc = tcase_create("cache");
        tcase_add_test(tc, put_then_get_by_scope_and_name);
        tcase_add_test(tc, names_are_copied);
        tcase_add_test(tc, overlong_names_are_refused);
        tcase_add_test(tc, grows_and_clears);
        suite_add_tcase(su, tc);
        return run_suite(su);
}
