/* SPDX-License-Identifier: MIT */
/* Which variant of a family a module holds, told by the names it shows (RENOGY_BLE.md §1, §3,
 * §8). Pure. */
#include <stdio.h>
#include <string.h>

#include "renogy/family.h"

static bool starts_with(const char *s, const char *prefix)
{
        return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* "RBC50D1S-G6", perhaps with a suffix after the generation ("-G6A"). */
static bool g6_model(const char *model)
{
        const char *g = model ? strstr(model, "-G6") : NULL;
        return g && (g[3] == 0 || (g[3] >= 'A' && g[3] <= 'Z'));
}

static const struct renogy_family *inverter_variant(const char *model, char *why, size_t why_size)
{
        if (starts_with(model, "RIV1230PCH")) {
                snprintf(why, why_size, "HF inverter-charger map: model %s", model);
                return &renogy_inverter_hf;
        }
        if (starts_with(model, "RIV4835")) {
                snprintf(why, why_size, "RIV4835 plan: model %s", model);
                return &renogy_inverter_riv4835;
        }
        if (model && *model)
                snprintf(why, why_size, "generic map: model %s", model);
        else
                snprintf(why, why_size, "generic map: no model known yet");
        return &renogy_inverter;
}

static const struct renogy_family *dcc_variant(const char *model, char *why, size_t why_size)
{
        if (g6_model(model)) {
                snprintf(why, why_size, "G6 plan (0x0100 x34, no 0x0120): model %s", model);
                return &renogy_dcc_g6;
        }
        if (model && *model)
                snprintf(why, why_size, "standard plan: model %s", model);
        else
                snprintf(why, why_size, "standard plan: no model known yet");
        return &renogy_dcc;
}

const struct renogy_family *renogy_family_variant(const struct renogy_family *base,
        const char *advertised_name, const char *model, char *why, size_t why_size)
{
        base = renogy_family_base(base);
        if (base == &renogy_battery)
                return renogy_battery_variant(advertised_name, model, why, why_size);
        if (base == &renogy_inverter)
                return inverter_variant(model, why, why_size);
        if (base == &renogy_dcc)
                return dcc_variant(model, why, why_size);
        if (why_size)
                why[0] = 0;
        return base;
}
