/* SPDX-License-Identifier: MIT */
#pragma once

/* A battery bank: the packs behind one BT-2 hub seen as one battery (RENOGY_BLE.md §4.3).
 * Pure: combines the packs' decoded readings, no I/O. */

#include <stddef.h>

#include "renogy/family.h"

/* The bank's readings as a family of their own, with no registers: the API, the store and the
 * package describe them from this table like any device's. */
extern const struct renogy_family renogy_battery_bank;

/* Combines the readings of n packs into out: state of charge weighted by capacity (remaining
 * over full, summed), current and power summed, voltage the packs' mean, the lowest and highest
 * cell voltage and temperature over every pack, and the number of packs. Returns 0, or
 * -ENODATA when a pack lacks a reading a total needs (*culprit gets its index, why says what it
 * lacks: a bank total that leaves a pack out would be wrong, not partial); -EINVAL for n = 0.
 * culprit may be NULL. */
int renogy_bank_combine(const struct renogy_readings *const *packs, size_t n, struct renogy_readings *out,
        size_t *culprit, char *why, size_t why_size);
