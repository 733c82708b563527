/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "bank.h"
#include "device-energy.h"
#include "log.h"
#include "macro.h"
#include "renogy/bank.h"
#include "store.h"
#include "strmap.h"

struct bank *device_bank(const struct device *dev)
{
        if (dev->cfg.family != &renogy_battery_bank)
                return NULL;
        return (struct bank *)((char *)dev - offsetof(struct bank, dev));
}

struct bank *daemon_bank_find(struct daemon *d, const char *id)
{
        for (size_t i = 0; i < d->n_banks; i++)
                if (streq(d->banks[i]->dev.cfg.id, id))
                        return d->banks[i];
        return NULL;
}

static bool is_pack(const struct device *dev)
{
        return renogy_family_base(dev->cfg.family) == &renogy_battery;
}

static size_t module_packs(const struct module *m, struct device **packs)
{
        size_t n = 0;
        for (size_t i = 0; i < m->n_devices; i++)
                if (is_pack(m->devices[i]))
                        packs[n++] = m->devices[i];
        return n;
}

/* The bank follows its module's batteries as they are now. */
static void bank_follow(struct bank *b, struct module *m, struct device *const *packs, size_t n)
{
        b->dev.module = m;
        memcpy(b->packs, packs, n * sizeof *packs);
        b->n_packs = n;
}

static void bank_remove(struct daemon *d, size_t i)
{
        struct bank *b = d->banks[i];
        log_info("%s: fewer than two batteries left on module %s, the bank goes", b->dev.cfg.name,
                b->dev.cfg.address);
        memmove(&d->banks[i], &d->banks[i + 1], (d->n_banks - i - 1) * sizeof *d->banks);
        d->n_banks--;
        free(b);
}

/* Named after the module (its last two address bytes, as on the module's label: BT-TH-…8A45),
 * so that the id is the same at every start. */
static struct bank *bank_new(struct daemon *d, const struct module *m)
{
        struct bank *b = calloc(1, sizeof *b);
        if (!b)
                return NULL;
        struct device *dev = &b->dev;
        char tail[5] = {0};
        size_t len = strlen(m->address);
        if (len >= 5)
                snprintf(tail, sizeof tail, "%c%c%c%c", m->address[len - 5], m->address[len - 4],
                        m->address[len - 2], m->address[len - 1]);
        snprintf(dev->cfg.name, sizeof dev->cfg.name, "Battery bank %s", tail);
        slugify(dev->cfg.name, dev->cfg.id, sizeof dev->cfg.id);
        if (daemon_device_find(d, dev->cfg.id)) /* a configured device took the name */
                snprintf(dev->cfg.id + strlen(dev->cfg.id), sizeof dev->cfg.id - strlen(dev->cfg.id),
                        "_of_packs");
        snprintf(dev->cfg.address, sizeof dev->cfg.address, "%s", m->address);
        dev->cfg.family = &renogy_battery_bank;
        dev->decoder = &renogy_battery_bank;
        dev->state = DEVICE_STARTING;
        return b;
}

int banks_sync(struct daemon *d)
{
        /* Banks whose module no longer carries two batteries go; the others follow their packs. */
        for (size_t i = d->n_banks; i-- > 0;) {
                struct bank *b = d->banks[i];
                struct module *m = strmap_get_str(&d->module_by_address, b->dev.cfg.address);
                struct device *packs[LINK_MAX_UNITS];
                size_t n = m ? module_packs(m, packs) : 0;
                if (n < 2)
                        bank_remove(d, i);
                else
                        bank_follow(b, m, packs, n);
        }
        for (size_t i = 0; i < d->n_modules; i++) {
                struct module *m = d->modules[i];
                struct device *packs[LINK_MAX_UNITS];
                size_t n = module_packs(m, packs);
                if (n < 2)
                        continue;
                bool have = false;
                for (size_t k = 0; k < d->n_banks && !have; k++)
                        have = d->banks[k]->dev.module == m;
                if (have)
                        continue;
                struct bank **v = realloc(d->banks, (d->n_banks + 1) * sizeof *v);
                if (!v)
                        return -ENOMEM;
                d->banks = v;
                struct bank *b = bank_new(d, m);
                if (!b)
                        return -ENOMEM;
                bank_follow(b, m, packs, n);
                d->banks[d->n_banks++] = b;
                if (d->store && store_restore_device(d->store, &b->dev) >= 0)
                        device_energy_resume(&b->dev);
        }
        /* The schedule the packs have: the bank's data is as fresh as theirs. */
        for (size_t i = 0; i < d->n_banks; i++) {
                struct bank *b = d->banks[i];
                snprintf(b->dev.cfg.adapter, sizeof b->dev.cfg.adapter, "%s", b->packs[0]->cfg.adapter);
                b->dev.cfg.poll_interval = b->packs[0]->cfg.poll_interval;
        }
        return 0;
}

void banks_free(struct daemon *d)
{
        for (size_t i = 0; i < d->n_banks; i++)
                free(d->banks[i]);
        free(d->banks);
        d->banks = NULL;
        d->n_banks = 0;
}

/* A pack without current data: the bank has none either, and says which pack and why. */
static void bank_lacks(struct bank *b, const struct device *pack, int64_t now)
{
        struct device *dev = &b->dev;
        if (dev->failures++ == 0)
                dev->first_failure = now;
        dev->state = pack->state == DEVICE_ONLINE ? DEVICE_STALE : pack->state;
        dev->diag = pack->diag;
        snprintf(dev->diag_detail, sizeof dev->diag_detail, "%s: %s", pack->cfg.name,
                pack->diag_detail[0] ? pack->diag_detail : device_state_to_string(pack->state));
        snprintf(dev->last_error, sizeof dev->last_error, "%s has no current reading%s%s", pack->cfg.name,
                pack->last_error[0] ? ": " : "", pack->last_error);
}

static void bank_update(struct daemon *d, struct bank *b)
{
        struct device *dev = &b->dev;
        int64_t now = now_realtime();
        const struct renogy_readings *rd[LINK_MAX_UNITS];
        int64_t oldest = INT64_MAX, newest = 0;
        uint32_t poll_ms = 0;
        dev->last_attempt = now;
        for (size_t i = 0; i < b->n_packs; i++) {
                const struct device *p = b->packs[i];
                if (!device_available(d, p)) {
                        bank_lacks(b, p, now);
                        return;
                }
                rd[i] = &p->readings;
                oldest = MIN(oldest, p->readings_at);
                newest = MAX(newest, p->readings_at);
                poll_ms = MAX(poll_ms, p->poll_ms);
        }
        if (newest <= b->packs_read_at)
                return; /* nothing read since the last sums */
        struct renogy_readings out;
        char why[128];
        size_t culprit = 0;
        if (renogy_bank_combine(rd, b->n_packs, &out, &culprit, why, sizeof why) < 0) {
                /* A pack read, but without a figure the sums need (a block cut short): the pack's
                 * own diagnosis says why, where it has one. */
                const struct device *p = b->packs[culprit];
                bool told = p->diag != DIAG_NONE && p->diag_detail[0];
                dev->state = DEVICE_ERROR;
                dev->diag = told ? p->diag : DIAG_PROTOCOL_ERROR;
                snprintf(dev->diag_detail, sizeof dev->diag_detail, "%s: %s; no bank total without it",
                        p->cfg.name, told ? p->diag_detail : why);
                snprintf(dev->last_error, sizeof dev->last_error, "%s", dev->diag_detail);
                return;
        }
        b->packs_read_at = newest;
        dev->readings = out;
        dev->have_readings = true;
        /* As old as its oldest pack's data. */
        dev->readings_at = oldest;
        device_read_ok(dev, now);
        dev->poll_ms = poll_ms;
        dev->state = DEVICE_ONLINE;
        dev->diag = DIAG_NONE;
        dev->diag_detail[0] = 0;
        dev->last_error[0] = 0;
        device_energy_poll(d, dev);
        if (d->store)
                store_record(d->store, dev);
}

void banks_session_done(struct daemon *d, const struct module *m)
{
        for (size_t i = 0; i < d->n_banks; i++)
                if (d->banks[i]->dev.module == m)
                        bank_update(d, d->banks[i]);
}
