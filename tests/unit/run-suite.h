/* SPDX-License-Identifier: MIT */
#pragma once
/* Every unit test's main: run one check suite, exit 1 if any test failed. */
#include <check.h>

static inline int run_suite(Suite *suite)
{
        SRunner *sr = srunner_create(suite);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? 1 : 0;
}
