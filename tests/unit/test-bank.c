/* SPDX-License-Identifier: MIT */
/* A battery bank's sums over packs decoded from their registers: capacity-weighted state of
 * charge (not the mean of the packs' percentages), summed current and power, the extremes of
 * every pack's cells and sensors, and no total at all when a pack lacks what it needs. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "renogy/bank.h"
#include "renogy/family.h"
#include "run-suite.h"

/* Registers 5000-5049 of one pack, as the family's map encodes them. */
struct pack {
        uint8_t bytes[100];
};

static void set(struct pack *p, const struct renogy_family *fam, const char *key, double v)
{
        const struct renogy_field *f = renogy_field_find(fam, key);
        ck_assert_ptr_nonnull(f);
        uint32_t at = renogy_field_byte_addr(fam, f) - 5000 * 2;
        ck_assert_int_eq(renogy_encode_number(fam, f, v, p->bytes + at, renogy_field_width(f)), 0);
}

static struct renogy_readings decode(const struct renogy_family *fam, const struct pack *p)
{
        struct renogy_image img;
        renogy_image_init(&img);
        ck_assert_int_eq(renogy_image_add_words(&img, 5000, p->bytes, 50), 0);
        struct renogy_readings r;
        ck_assert_int_gt(renogy_decode(fam, &img, &r), 0);
        return r;
}

static struct renogy_readings pack(const struct renogy_family *fam, double rem, double full, double v,
        double a, const double *cells, unsigned n_cells, const double *temps, unsigned n_temps)
{
        struct pack p = {0};
        set(&p, fam, "cell_count", n_cells);
        for (unsigned i = 0; i < n_cells; i++) {
                char key[32];
                snprintf(key, sizeof key, "cell_voltage_%u", i + 1);
                set(&p, fam, key, cells[i]);
        }
        set(&p, fam, "temperature_count", n_temps);
        for (unsigned i = 0; i < n_temps; i++) {
                char key[32];
                snprintf(key, sizeof key, "temperature_%u", i + 1);
                set(&p, fam, key, temps[i]);
        }
        set(&p, fam, "remaining_capacity", rem);
        set(&p, fam, "full_capacity", full);
        set(&p, fam, "battery_voltage", v);
        set(&p, fam, "battery_current", a);
        return decode(fam, &p);
}

static double num(const struct renogy_readings *r, const char *key)
{
        const struct renogy_reading *x = renogy_readings_get(r, key);
        ck_assert_msg(x != NULL, "no %s", key);
        ck_assert_int_eq(x->type, RV_NUMBER);
        return x->number;
}

START_TEST(sums_weighted_by_capacity)
{
        const double c1[] = {3.3, 3.4, 3.2, 3.3}, c2[] = {3.35, 3.5, 3.1, 3.3};
        const double t1[] = {21.0, 22.5}, t2[] = {-1.5, 19.0};
        /* A full 100 Ah pack and an empty-ish 200 Ah one: 90 + 40 of 300 Ah is 43.3 %, where the
         * mean of the packs' percentages (90 % and 20 %) would say 55 %. */
        struct renogy_readings a = pack(&renogy_battery, 90, 100, 13.3, 12.5, c1, 4, t1, 2);
        struct renogy_readings b = pack(&renogy_battery_pro, 40, 200, 13.1, -4.2, c2, 4, t2, 2);
        const struct renogy_readings *packs[] = {&a, &b};
        struct renogy_readings out;
        char why[128];
        ck_assert_int_eq(renogy_bank_combine(packs, 2, &out, NULL, why, sizeof why), 0);
        ck_assert_str_eq(why, "");
        ck_assert_double_eq_tol(num(&out, "battery_percentage"), 43.3, 1e-9);
        ck_assert_double_eq_tol(num(&out, "remaining_capacity"), 130, 1e-9);
        ck_assert_double_eq_tol(num(&out, "full_capacity"), 300, 1e-9);
        ck_assert_double_eq_tol(num(&out, "battery_current"), 8.3, 1e-9);
        /* The packs' own products, summed: 13.3 × 12.5 − 13.1 × 4.2. */
        ck_assert_double_eq_tol(num(&out, "battery_power"), 166.25 - 55.02, 1e-9);
        ck_assert_double_eq_tol(num(&out, "battery_voltage"), 13.2, 1e-9);
        ck_assert_double_eq_tol(num(&out, "cell_voltage_min"), 3.1, 1e-9);
        ck_assert_double_eq_tol(num(&out, "cell_voltage_max"), 3.5, 1e-9);
        ck_assert_double_eq_tol(num(&out, "cell_voltage_spread"), 0.4, 1e-9);
        ck_assert_double_eq_tol(num(&out, "temperature_min"), -1.5, 1e-9);
        ck_assert_double_eq_tol(num(&out, "temperature_max"), 22.5, 1e-9);
        ck_assert_double_eq(num(&out, "pack_count"), 2);
        /* The Pro pack's current is in 0.1 A, the other's in 0.01 A: the sum keeps the finer. */
        ck_assert_int_eq(renogy_readings_get(&out, "battery_current")->decimals, 2);
        /* Energy is the daemon's meter over the power, not a sum made here. */
        ck_assert_ptr_null(renogy_readings_get(&out, "energy_charged"));
}
END_TEST

START_TEST(a_pack_without_a_figure_gives_no_total)
{
        const double c[] = {3.3};
        struct renogy_readings a = pack(&renogy_battery, 50, 100, 13.2, 1, c, 1, NULL, 0);
        struct renogy_readings b = a;
        /* The second pack's current is missing (a reply cut short): a total without it would
         * be wrong, so there is none, and the reason names the pack. */
        for (size_t i = 0; i < b.n; i++)
                if (strcmp(b.r[i].field->key, "battery_current") == 0)
                        b.r[i] = b.r[--b.n];
        const struct renogy_readings *packs[] = {&a, &b};
        struct renogy_readings out;
        char why[128];
        size_t culprit = 0;
        ck_assert_int_eq(renogy_bank_combine(packs, 2, &out, &culprit, why, sizeof why), -ENODATA);
        ck_assert_str_eq(why, "pack 2 reports no battery_current");
        ck_assert_uint_eq(culprit, 1);
        ck_assert_int_eq(renogy_bank_combine(packs, 0, &out, NULL, why, sizeof why), -EINVAL);
        /* Packs that report no capacity: no state of charge to weigh. */
        struct renogy_readings z = pack(&renogy_battery, 0, 0, 13.2, 1, c, 1, NULL, 0);
        const struct renogy_readings *zero[] = {&z, &z};
        ck_assert_int_eq(renogy_bank_combine(zero, 2, &out, NULL, why, sizeof why), -ENODATA);
        ck_assert_str_eq(why, "the packs report no full capacity");
}
END_TEST

START_TEST(every_pack_of_a_full_hub)
{
        /* Eight packs (ids 48-55), one cell each: the extremes find the lowest in the last. */
        struct renogy_readings p[8];
        const struct renogy_readings *packs[8];
        for (unsigned i = 0; i < 8; i++) {
                double cell = 3.4 - 0.1 * i;
                p[i] = pack(&renogy_battery, 10.0 * (i + 1), 100, 13.0, 1.0, &cell, 1, NULL, 0);
                packs[i] = &p[i];
        }
        struct renogy_readings out;
        ck_assert_int_eq(renogy_bank_combine(packs, 8, &out, NULL, NULL, 0), 0);
        ck_assert_double_eq_tol(num(&out, "battery_percentage"), 45.0, 1e-9);
        ck_assert_double_eq_tol(num(&out, "battery_current"), 8.0, 1e-9);
        ck_assert_double_eq_tol(num(&out, "cell_voltage_min"), 2.7, 1e-9);
        ck_assert_ptr_null(renogy_readings_get(&out, "temperature_min"));
}
END_TEST

int main(void)
{
        Suite *s = suite_create("bank");
        TCase *tc = tcase_create("combine");
        tcase_add_test(tc, sums_weighted_by_capacity);
        tcase_add_test(tc, a_pack_without_a_figure_gives_no_total);
        tcase_add_test(tc, every_pack_of_a_full_hub);
        suite_add_tcase(s, tc);
        return run_suite(s);
}
