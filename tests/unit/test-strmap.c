/* SPDX-License-Identifier: MIT */
/* The string map behind BlueZ's object tables: keys are found by content, not by pointer; one key
 * holds several entries; removal takes the entry asked for and leaves the others reachable; and
 * thousands of random puts and removes agree with a plain array searched end to end. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"
#include "run-suite.h"

START_TEST(finds_by_content_and_length)
{
        struct strmap m = {0};
        char a[] = "/org/bluez/hci0/dev_60_98_66_ED_FC_11";
        char b[] = "/org/bluez/hci0";
        ck_assert_ptr_null(strmap_get_str(&m, a));
        ck_assert_int_eq(strmap_put(&m, a, strlen(a), a), 0);
        ck_assert_int_eq(strmap_put(&m, b, strlen(b), b), 0);
        /* Another copy of the same text finds the entry. */
        char copy[64];
        snprintf(copy, sizeof copy, "%s", a);
        ck_assert_ptr_eq(strmap_get_str(&m, copy), a);
        /* A prefix given with its length is its own key: the device path inside a longer one. */
        const char *chr = "/org/bluez/hci0/dev_60_98_66_ED_FC_11/service000e/char000f";
        ck_assert_ptr_eq(strmap_get(&m, chr, strlen(a)), a);
        ck_assert_ptr_eq(strmap_get(&m, chr, strlen(b)), b);
        ck_assert_ptr_null(strmap_get(&m, chr, strlen(b) + 1));
        ck_assert_ptr_null(strmap_get_str(&m, "/org/bluez/hci1"));
        ck_assert_ptr_null(strmap_get_str(&m, ""));
        ck_assert_uint_eq(strmap_size(&m), 2);
        /* Keys are bytes: a binary key with a zero inside is not cut at the zero. */
        const char bin1[] = {1, 0, 2}, bin2[] = {1, 0, 3};
        ck_assert_int_eq(strmap_put(&m, bin1, 3, (void *)bin1), 0);
        ck_assert_ptr_eq(strmap_get(&m, bin1, 3), bin1);
        ck_assert_ptr_null(strmap_get(&m, bin2, 3));
        ck_assert_int_eq(strmap_put(&m, NULL, 0, a), -EINVAL);
        strmap_clear(&m);
        ck_assert_ptr_null(strmap_get_str(&m, a));
        ck_assert_uint_eq(strmap_size(&m), 0);
}
END_TEST

START_TEST(one_key_holds_several_entries)
{
        struct strmap m = {0};
        const char *owner = "/org/bluez/hci0/dev_C4_D3_6A_00_11_22";
        int values[3];
        for (int i = 0; i < 3; i++)
                ck_assert_int_eq(strmap_put(&m, owner, strlen(owner), &values[i]), 0);
        ck_assert_int_eq(strmap_put(&m, "other", 5, &values[0]), 0);
        /* All three come back, each once. */
        struct strmap_iter it;
        int seen[3] = {0};
        for (void *v = strmap_get_iter(&m, owner, strlen(owner), &it); v;
                v = strmap_next(&m, owner, strlen(owner), &it))
                seen[(int *)v - values]++;
        ck_assert_int_eq(seen[0] + seen[1] + seen[2], 3);
        ck_assert(seen[0] == 1 && seen[1] == 1 && seen[2] == 1);
        /* Removing by value takes that entry only. */
        ck_assert_ptr_eq(strmap_remove(&m, owner, strlen(owner), &values[1]), &values[1]);
        ck_assert_ptr_null(strmap_remove(&m, owner, strlen(owner), &values[1]));
        memset(seen, 0, sizeof seen);
        for (void *v = strmap_get_iter(&m, owner, strlen(owner), &it); v;
                v = strmap_next(&m, owner, strlen(owner), &it))
                seen[(int *)v - values]++;
        ck_assert(seen[0] == 1 && seen[1] == 0 && seen[2] == 1);
        /* Without a value, any entry of the key goes. */
        ck_assert_ptr_nonnull(strmap_remove(&m, owner, strlen(owner), NULL));
        ck_assert_ptr_nonnull(strmap_remove(&m, owner, strlen(owner), NULL));
        ck_assert_ptr_null(strmap_get(&m, owner, strlen(owner)));
        ck_assert_ptr_eq(strmap_get(&m, "other", 5), &values[0]);
        ck_assert_uint_eq(strmap_size(&m), 1);
        strmap_clear(&m);
}
END_TEST

/* Random puts and removes against a reference array; keys share long prefixes, as paths do. */
START_TEST(agrees_with_a_linear_search)
{
        enum { KEYS = 600, STEPS = 20000 };
        static char keys[KEYS][64];
        static bool present[KEYS];
        struct strmap m = {0};
        srand(7);
        for (int i = 0; i < KEYS; i++)
                snprintf(keys[i], sizeof keys[i], "/org/bluez/hci0/dev_60_98_66_%02X_%02X_%02X/char%04x",
                        i >> 16 & 0xff, i >> 8 & 0xff, i & 0xff, i % 7);
        memset(present, 0, sizeof present);
        size_t n = 0;
        for (int step = 0; step < STEPS; step++) {
                int k = rand() % KEYS;
                if (present[k]) {
                        ck_assert_ptr_eq(strmap_remove(&m, keys[k], strlen(keys[k]), NULL), keys[k]);
                        present[k] = false;
                        n--;
                } else {
                        ck_assert_int_eq(strmap_put(&m, keys[k], strlen(keys[k]), keys[k]), 0);
                        present[k] = true;
                        n++;
                }
                if (step % 1000 == 0 || step == STEPS - 1)
                        for (int i = 0; i < KEYS; i++) {
                                char copy[64];
                                snprintf(copy, sizeof copy, "%s", keys[i]);
                                ck_assert_ptr_eq(strmap_get_str(&m, copy), present[i] ? keys[i] : NULL);
                        }
                ck_assert_uint_eq(strmap_size(&m), n);
        }
        /* Every entry once, in any order. */
        size_t counted = 0, pos = 0;
        void *v;
        static bool visited[KEYS];
        memset(visited, 0, sizeof visited);
        while (strmap_each(&m, &pos, &v)) {
                int k = (int)(((char(*)[64])v) - keys);
                ck_assert(present[k] && !visited[k]);
                visited[k] = true;
                counted++;
        }
        ck_assert_uint_eq(counted, n);
        /* Removed slots do not pile up: the table stays within a small multiple of its entries. */
        ck_assert_uint_le(m.cap, 4 * KEYS);
        strmap_clear(&m);
}
END_TEST

int main(void)
{
        Suite *su = suite_create("strmap");
        TCase *tc = tcase_create("map");
        tcase_add_test(tc, finds_by_content_and_length);
        tcase_add_test(tc, one_key_holds_several_entries);
        tcase_add_test(tc, agrees_with_a_linear_search);
        suite_add_tcase(su, tc);
        return run_suite(su);
}
