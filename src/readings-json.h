/* SPDX-License-Identifier: MIT */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "renogy/family.h"

/* The JSON value of one reading: a number (integer when the field has no decimals), a
 * string (enums, flags, text), or a list of names (bit fields). */
json_t *reading_value_json(const struct renogy_reading *r);

/* {KEY: {"value": V, "unit": U}}; with full, also label, device_class and state_class. */
json_t *readings_json(const struct renogy_readings *r, bool full);

/* Hex string (spaces allowed) to bytes. Returns the length or -EINVAL. */
int hex_decode(const char *hex, uint8_t *out, size_t out_size);
