/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "renogy/bank.h"
#include "renogy/rows.h"

static const struct renogy_field fields[] = {
        DERIVED("battery_percentage", "Battery", "%", "battery", MEAS),
        DERIVED("battery_voltage", "Battery voltage (mean of the packs)", "V", "voltage", MEAS),
        DERIVED("battery_current", "Battery current", "A", "current", MEAS),
        DERIVED("battery_power", "Battery power", "W", "power", MEAS),
        DERIVED("remaining_capacity", "Remaining capacity", "Ah", NULL, MEAS),
        DERIVED("full_capacity", "Full capacity", "Ah", NULL, MEAS),
        DERIVED("cell_voltage_min", "Lowest cell voltage", "V", "voltage", MEAS),
        DERIVED("cell_voltage_max", "Highest cell voltage", "V", "voltage", MEAS),
        DERIVED("cell_voltage_spread", "Cell voltage spread", "V", "voltage", MEAS),
        DERIVED("temperature_min", "Lowest temperature", "°C", "temperature", MEAS),
        DERIVED("temperature_max", "Highest temperature", "°C", "temperature", MEAS),
        DERIVED("pack_count", "Packs", NULL, NULL, NULL),
        METERED("energy_charged", "Energy charged"),
        METERED("energy_discharged", "Energy discharged"),
};

const struct renogy_family renogy_battery_bank = {
        .name = "battery_bank",
        .label = "Battery bank",
        .fields = fields,
        .n_fields = sizeof fields / sizeof fields[0],
};

/* A reading the totals need from every pack. */
static const struct renogy_reading *need(
        const struct renogy_readings *p, size_t i, const char *key, char *why, size_t why_size)
{
        const struct renogy_reading *r = renogy_readings_get(p, key);
        if (r && r->type == RV_NUMBER && isfinite(r->number))
                return r;
        if (why_size)
                snprintf(why, why_size, "pack %zu reports no %s", i + 1, key);
        return NULL;
}

/* Whether key is prefix followed by a cell or sensor number ("cell_voltage_12"). */
static bool numbered(const char *key, const char *prefix)
{
        size_t n = strlen(prefix);
        if (strncmp(key, prefix, n) != 0 || !key[n])
                return false;
        return strspn(key + n, "0123456789") == strlen(key + n);
}

struct extremes {
        double min, max;
        uint8_t decimals;
        bool any;
};

static void extremes_add(struct extremes *e, const struct renogy_reading *r)
{
        if (r->type != RV_NUMBER || !isfinite(r->number))
                return;
        if (!e->any || r->number < e->min)
                e->min = r->number;
        if (!e->any || r->number > e->max)
                e->max = r->number;
        if (r->decimals > e->decimals)
                e->decimals = r->decimals;
        e->any = true;
}

static void add(struct renogy_readings *out, const char *key, double v, uint8_t decimals)
{
        renogy_reading_add_number(out, renogy_field_find(&renogy_battery_bank, key), v, decimals);
}

static uint8_t max_u8(uint8_t a, uint8_t b)
{
        return a > b ? a : b;
}

int renogy_bank_combine(const struct renogy_readings *const *packs, size_t n, struct renogy_readings *out,
        size_t *culprit, char *why, size_t why_size)
{
        if (why_size)
                why[0] = 0;
        if (n == 0) {
                if (why_size)
                        snprintf(why, why_size, "a bank without packs");
                return -EINVAL;
        }
        double rem = 0, full = 0, volts = 0, amps = 0, watts = 0;
        uint8_t amp_decimals = 0, cap_decimals = 0;
        struct extremes cells = {0}, temps = {0};
        for (size_t i = 0; i < n; i++) {
                const struct renogy_reading *r = need(packs[i], i, "remaining_capacity", why, why_size),
                                            *f = need(packs[i], i, "full_capacity", why, why_size),
                                            *v = need(packs[i], i, "battery_voltage", why, why_size),
                                            *c = need(packs[i], i, "battery_current", why, why_size);
                if (!r || !f || !v || !c) {
                        if (culprit)
                                *culprit = i;
                        return -ENODATA;
                }
                rem += r->number;
                full += f->number;
                volts += v->number;
                amps += c->number;
                /* Each pack's own product: packs in parallel differ a little in voltage. */
                watts += v->number * c->number;
                amp_decimals = max_u8(amp_decimals, c->decimals);
                cap_decimals = max_u8(cap_decimals, max_u8(r->decimals, f->decimals));
                for (size_t k = 0; k < packs[i]->n; k++) {
                        const struct renogy_reading *x = &packs[i]->r[k];
                        if (numbered(x->field->key, "cell_voltage_"))
                                extremes_add(&cells, x);
                        else if (numbered(x->field->key, "temperature_"))
                                extremes_add(&temps, x);
                }
        }
        if (!(full > 0)) {
                if (why_size)
                        snprintf(why, why_size, "the packs report no full capacity");
                return -ENODATA;
        }
        memset(out, 0, sizeof *out);
        add(out, "battery_percentage", rem / full * 100.0, 1);
        add(out, "battery_voltage", volts / (double)n, 2);
        add(out, "battery_current", amps, amp_decimals);
        add(out, "battery_power", watts, 2);
        add(out, "remaining_capacity", rem, cap_decimals);
        add(out, "full_capacity", full, cap_decimals);
        if (cells.any) {
                add(out, "cell_voltage_min", cells.min, cells.decimals);
                add(out, "cell_voltage_max", cells.max, cells.decimals);
                add(out, "cell_voltage_spread", cells.max - cells.min, cells.decimals);
        }
        if (temps.any) {
                add(out, "temperature_min", temps.min, temps.decimals);
                add(out, "temperature_max", temps.max, temps.decimals);
        }
        add(out, "pack_count", (double)n, 0);
        return 0;
}
