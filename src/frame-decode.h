/* SPDX-License-Identifier: MIT */
#pragma once

#include <jansson.h>

#include "renogy/family.h"

/* Decodes captured replies given as "REG:HEX" ("notify:HEX" for the shunt) for a family.
 * On success returns 0 and the readings; on a bad argument or frame returns a negative errno
 * and a one-line message naming the problem in err. */
int frames_decode(const struct renogy_family *fam, char *const *args, int n_args,
        struct renogy_readings *out, char *err, size_t err_size);
