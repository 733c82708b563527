/* SPDX-License-Identifier: MIT */
#pragma once

/* The settings BluPow may write, only where the encoding has been validated on hardware
 * (RENOGY_BLE.md §8 P4, P6, P11): each with its register, its allowed raw range for the model,
 * and the register read back to confirm it. Pure: no I/O. */

#include <stddef.h>
#include <stdint.h>

#include "renogy/family.h"

struct renogy_setting {
        const struct renogy_family *family; /* the plan that has it; a base family: every variant */
        const char *key;                    /* the reading it shows as */
        uint16_t reg;                       /* written with function 0x06 */
        uint16_t min, max, step;            /* raw */
        uint16_t readback;                  /* register read after the write */
};

/* The settings of a device read with fam (a family or a variant). Returns how many, in out. */
size_t renogy_settings(const struct renogy_family *fam, const struct renogy_setting **out, size_t max);
const struct renogy_setting *renogy_setting_find(const struct renogy_family *fam, const char *key);

/* The raw value for a number (in the reading's unit) or an option name (for an enum); exactly
 * one of name and number is used (name when not NULL). Returns 0, -ERANGE (with the allowed
 * range or options in err) or -EINVAL (a name for a number or the reverse). */
int renogy_setting_encode(const struct renogy_family *fam, const struct renogy_setting *s, const char *name,
        double number, uint16_t *raw, char *err, size_t err_size);

/* Whether a reading decoded after the write shows raw. */
bool renogy_setting_shows(const struct renogy_field *f, const struct renogy_reading *r, uint16_t raw);
