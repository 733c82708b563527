/* SPDX-License-Identifier: MIT */
#include <stddef.h>

#include "bank.h"
#include "daemon.h"
#include "device-energy.h"
#include "macro.h"
#include "renogy/bank.h"
#include "renogy/family.h"
#include "store.h"

struct energy_plan {
        const struct renogy_family *family;
        const char *power;  /* W, positive into the battery (or out of the inverter) */
        const char *key[2]; /* counters of positive and of negative power; NULL: none */
};

/* Controllers and DC-DC chargers count their own energy (power_generation_total). */
static const struct energy_plan plans[] = {
        {&renogy_battery, "battery_power", {"energy_charged", "energy_discharged"}},
        /* Its own meter over the summed power: the same kWh as its packs' together, and its own
         * history when a pack is added or removed. */
        {&renogy_battery_bank, "battery_power", {"energy_charged", "energy_discharged"}},
        {&renogy_shunt, "shunt_power", {"energy_charged", "energy_discharged"}},
        {&renogy_inverter, "load_active_power", {"energy_output", NULL}},
};

#define COUNTER_DECIMALS 3 /* Wh */

static const struct energy_plan *plan_of(const struct device *dev)
{
        const struct renogy_family *base = renogy_family_base(dev->cfg.family);
        for (size_t i = 0; i < ELEMENTSOF(plans); i++)
                if (plans[i].family == base)
                        return &plans[i];
        return NULL;
}

static double *counter(struct device *dev, unsigned i)
{
        return i == 0 ? &dev->energy.in_kwh : &dev->energy.out_kwh;
}

bool device_energy_kept(const struct device *dev)
{
        return plan_of(dev) != NULL;
}

void device_energy_resume(struct device *dev)
{
        const struct energy_plan *p = plan_of(dev);
        if (!p || !dev->have_readings)
                return;
        for (unsigned i = 0; i < 2; i++) {
                const struct renogy_reading *r =
                        p->key[i] ? renogy_readings_get(&dev->readings, p->key[i]) : NULL;
                if (r && r->type == RV_NUMBER && r->number >= 0) {
                        *counter(dev, i) = r->number;
                        dev->energy_shown[i] = r->number; /* read from the disk */
                }
        }
        /* The stored poll's power, at its time: the next poll integrates from it if the gap
         * between them is short (a restart), and starts afresh otherwise. */
        const struct renogy_reading *w = renogy_readings_get(&dev->readings, p->power);
        if (w && w->type == RV_NUMBER)
                energy_meter_add(&dev->energy, dev->readings_at, w->number, 0);
}

void device_energy_poll(const struct daemon *d, struct device *dev)
{
        const struct energy_plan *p = plan_of(dev);
        if (!p)
                return;
        const struct renogy_reading *w = renogy_readings_get(&dev->readings, p->power);
        if (w && w->type == RV_NUMBER)
                energy_meter_add(
                        &dev->energy, dev->readings_at, w->number, (int64_t)device_fresh_usec(d, dev));
        for (unsigned i = 0; i < 2; i++) {
                const struct renogy_field *f = p->key[i] ? renogy_field_find(dev->decoder, p->key[i]) : NULL;
                if (f)
                        renogy_reading_add_number(&dev->readings, f, *counter(dev, i), COUNTER_DECIMALS);
        }
}

static void committed(struct device *dev)
{
        const struct energy_plan *p = plan_of(dev);
        for (unsigned i = 0; p && i < 2; i++) {
                const struct renogy_reading *r =
                        p->key[i] ? renogy_readings_get(&dev->readings, p->key[i]) : NULL;
                if (r && r->type == RV_NUMBER)
                        dev->energy_shown[i] = r->number;
        }
}

void device_energy_committed(struct daemon *d)
{
        /* Each device's readings are the ones it recorded last (a poll records what it
         * decoded at once), and every recorded poll is written now. */
        for (size_t k = 0; k < d->n_devices; k++)
                committed(d->devices[k]);
        for (size_t k = 0; k < d->n_banks; k++)
                committed(&d->banks[k]->dev);
}

bool device_energy_shown(const struct daemon *d, const struct device *dev, const char *key, double *value)
{
        const struct energy_plan *p = plan_of(dev);
        /* Without a database that writes, nothing is on the disk to stay behind. */
        const struct store_health *h = d->store ? store_health(d->store) : NULL;
        if (!p || !h || h->memory_only || !h->ok)
                return false;
        for (unsigned i = 0; i < 2; i++)
                if (p->key[i] && streq(p->key[i], key)) {
                        *value = renogy_round(dev->energy_shown[i], COUNTER_DECIMALS);
                        return true;
                }
        return false;
}

void device_energy_json(const struct daemon *d, const struct device *dev, json_t *readings)
{
        const struct energy_plan *p = plan_of(dev);
        for (unsigned i = 0; p && i < 2; i++) {
                json_t *o = p->key[i] ? json_object_get(readings, p->key[i]) : NULL;
                double v;
                if (o && device_energy_shown(d, dev, p->key[i], &v))
                        json_object_set_new(o, "value", json_real(v));
        }
}
