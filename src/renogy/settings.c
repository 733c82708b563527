/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "renogy/settings.h"

/* Writes validated on hardware only; everything else BluPow reads and shows. */
static const struct renogy_setting table[] = {
        /* 0xE01D: 0 dusk to dawn … 17 always on (§8 P6); 0xE004: 1 open … 5 user (§8 P11 reads
         * 0 on some, which is not written). */
        {&renogy_controller, "load_mode", 0xE01D, 0, 17, 1, 0xE01D},
        {&renogy_controller, "battery_type", 0xE004, 1, 5, 1, 0xE004},
        /* DC-DC chargers: 0 user, 1 open … 4 lithium (§4.2). */
        {&renogy_dcc, "battery_type", 0xE004, 0, 4, 1, 0xE004},
        /* RIV4835 LCD program 28: 0–40 A in 5 A steps, echoed exactly (§8 P4). */
        {&renogy_inverter_riv4835, "max_ac_charging_current", 0xE205, 0, 400, 50, 0xE205},
};

static bool applies(const struct renogy_setting *s, const struct renogy_family *fam)
{
        return s->family == fam || (s->family->base == NULL && s->family == renogy_family_base(fam) &&
                                           renogy_field_find(fam, s->key) != NULL);
}

size_t renogy_settings(const struct renogy_family *fam, const struct renogy_setting **out, size_t max)
{
        size_t n = 0;
        for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
                if (applies(&table[i], fam) && n < max)
                        out[n++] = &table[i];
        return n;
}

const struct renogy_setting *renogy_setting_find(const struct renogy_family *fam, const char *key)
{
        for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
                if (applies(&table[i], fam) && strcmp(table[i].key, key) == 0)
                        return &table[i];
        return NULL;
}

static int range_error(const struct renogy_field *f, const struct renogy_setting *s, char *err, size_t size)
{
        double scale = renogy_pow10(f->decimals);
        snprintf(err, size, "%s: from %g to %g%s%s in steps of %g", f->key, s->min / scale, s->max / scale,
                f->unit ? " " : "", f->unit ?: "", s->step / scale);
        return -ERANGE;
}

static int options_error(
        const struct renogy_field *f, const struct renogy_setting *s, char *err, size_t size)
{
        size_t len = (size_t)snprintf(err, size, "%s: one of", f->key);
        for (unsigned v = s->min; v <= s->max && len < size; v += s->step)
                if (v < f->n_names && f->names[v])
                        len += (size_t)snprintf(
                                err + len, size - len, "%s %s", v == s->min ? "" : ",", f->names[v]);
        return -ERANGE;
}

int renogy_setting_encode(const struct renogy_family *fam, const struct renogy_setting *s, const char *name,
        double number, uint16_t *raw, char *err, size_t err_size)
{
        const struct renogy_field *f = renogy_field_find(fam, s->key);
        if (!f)
                return -ENOENT;
        if (f->kind == KIND_ENUM) {
                if (!name) {
                        snprintf(err, err_size, "%s: expected the name of an option", f->key);
                        return -EINVAL;
                }
                /* The last of equal names in range: a controller's user type is 5, not 0. */
                int found = -1;
                for (unsigned v = s->min; v <= s->max; v += s->step)
                        if (v < f->n_names && f->names[v] && strcmp(f->names[v], name) == 0)
                                found = (int)v;
                if (found < 0)
                        return options_error(f, s, err, err_size);
                *raw = (uint16_t)found;
                return 0;
        }
        if (name || !isfinite(number)) {
                snprintf(err, err_size, "%s: expected a number%s%s", f->key, f->unit ? " in " : "",
                        f->unit ?: "");
                return -EINVAL;
        }
        int64_t v = renogy_scaled(number, f->decimals);
        /* A value between steps is not rounded to one: the user asked for something else. */
        if (v == INT64_MAX || v < s->min || v > s->max || (v - s->min) % s->step != 0 ||
                fabs(number * renogy_pow10(f->decimals) - (double)v) > 1e-6)
                return range_error(f, s, err, err_size);
        *raw = (uint16_t)v;
        return 0;
}

bool renogy_setting_shows(const struct renogy_field *f, const struct renogy_reading *r, uint16_t raw)
{
        if (!r)
                return false;
        switch (f->kind) {
        case KIND_FLAG:
                return r->type == RV_TEXT && (strcmp(r->text, "on") == 0) == (raw != 0);
        case KIND_ENUM:
                return r->type == RV_TEXT && raw < f->n_names && f->names[raw] &&
                       strcmp(r->text, f->names[raw]) == 0;
        case KIND_NUMBER:
                return r->type == RV_NUMBER && renogy_scaled(r->number, f->decimals) == raw;
        default:
                return false;
        }
}
