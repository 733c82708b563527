/* SPDX-License-Identifier: MIT */
/* The energy meter behind the battery's, shunt's and inverter's kWh counters: the trapezoid over
 * the real time between polls, charge and discharge apart where the power crosses zero, nothing
 * across a gap or for a bad sample, and counters that never fall whatever comes in. */
#include <check.h>
#include <math.h>
#include <stdlib.h>

#include "energy.h"
#include "run-suite.h"

#define S   1000000LL /* µs per second */
#define GAP (90 * S)

START_TEST(trapezoid_over_the_real_time)
{
        struct energy_meter m = {0};
        ck_assert(energy_meter_add(&m, 1000 * S, 100, GAP)); /* the first sample only starts it */
        ck_assert_double_eq(m.in_kwh, 0);
        ck_assert(energy_meter_add(&m, 1036 * S, 300, GAP)); /* (100 + 300) / 2 W for 36 s = 2 Wh */
        ck_assert_double_eq_tol(m.in_kwh, 0.002, 1e-12);
        ck_assert_double_eq(m.out_kwh, 0);
        ck_assert(energy_meter_add(&m, 1072 * S, -100, GAP)); /* 300 → -100: crosses at 3/4 */
        ck_assert_double_eq_tol(m.in_kwh, 0.002 + 300.0 * 27 / 2 / 3600 / 1000, 1e-12);
        ck_assert_double_eq_tol(m.out_kwh, 100.0 * 9 / 2 / 3600 / 1000, 1e-12);
        ck_assert(energy_meter_add(&m, 1108 * S, -100, GAP)); /* 100 W out for 36 s = 1 Wh */
        ck_assert_double_eq_tol(m.out_kwh, 0.000125 + 0.001, 1e-12);
}
END_TEST

START_TEST(no_energy_across_a_gap_or_for_bad_samples)
{
        struct energy_meter m = {0};
        energy_meter_add(&m, 100 * S, 500, GAP);
        /* Not read for five minutes: what flowed meanwhile is unknown, so nothing is added; the
         * sample starts the meter again. */
        ck_assert(energy_meter_add(&m, 400 * S, 500, GAP));
        ck_assert_double_eq(m.in_kwh, 0);
        ck_assert(!energy_meter_add(&m, 400 * S, 500, GAP)); /* the same time again */
        ck_assert(!energy_meter_add(&m, 390 * S, 500, GAP)); /* a clock stepped back */
        ck_assert(!energy_meter_add(&m, 410 * S, NAN, GAP));
        ck_assert(!energy_meter_add(&m, 410 * S, INFINITY, GAP));
        ck_assert(!energy_meter_add(&m, 0, 500, GAP));
        ck_assert_double_eq(m.in_kwh, 0);
        ck_assert_int_eq(m.last_usec, 400 * S);
        ck_assert(energy_meter_add(&m, 436 * S, 500, GAP));
        ck_assert_double_eq_tol(m.in_kwh, 0.005, 1e-12);
}
END_TEST

START_TEST(counters_never_fall_and_stay_finite)
{
        srand(7);
        struct energy_meter m = {0};
        int64_t t = 1;
        double in = 0, out = 0;
        for (int i = 0; i < 100000; i++) {
                t += (rand() % 200 - 20) * S / 2; /* sometimes back in time, sometimes past the gap */
                double w = (rand() % 8000 - 4000) / 3.0;
                if (i % 97 == 0)
                        w = i % 2 ? NAN : -INFINITY;
                energy_meter_add(&m, t, w, GAP);
                ck_assert(isfinite(m.in_kwh) && isfinite(m.out_kwh));
                ck_assert(m.in_kwh >= in && m.out_kwh >= out);
                in = m.in_kwh;
                out = m.out_kwh;
        }
        ck_assert(in > 0 && out > 0);
}
END_TEST

int main(void)
{
        Suite *su = suite_create("energy");
        TCase *tc = tcase_create("meter");
        tcase_add_test(tc, trapezoid_over_the_real_time);
        tcase_add_test(tc, no_energy_across_a_gap_or_for_bad_samples);
        tcase_add_test(tc, counters_never_fall_and_stay_finite);
        suite_add_tcase(su, tc);
        return run_suite(su);
}
