/* SPDX-License-Identifier: MIT */
#pragma once

/* Battery banks: the packs one module carries (batteries behind a BT-2 hub) also shown as one
 * battery, a device of its own that is computed, never read (renogy/bank.h does the sums). A
 * bank exists while its module carries two or more batteries; its id comes from the module's
 * address, so it, its history and its energy counters stay the same across restarts. */

#include <stdbool.h>

#include "daemon.h"

struct bank {
        /* What the API, the store, the package and the integration see: readings, state,
         * diagnosis, energy. dev.module is the packs' module (its radio and signal are the
         * bank's), but the bank is none of the module's devices, so no session reads it. */
        struct device dev;
        struct device *packs[LINK_MAX_UNITS];
        size_t n_packs;
        int64_t packs_read_at; /* realtime µs of the newest pack reading combined so far */
};

/* Makes, updates and removes banks after the devices changed (start, add, remove). */
int banks_sync(struct daemon *d);
void banks_free(struct daemon *d);
/* A session of module m ended: its banks combine what their packs read. */
void banks_session_done(struct daemon *d, const struct module *m);
/* The bank a device is, or NULL for a device that is read. */
struct bank *device_bank(const struct device *dev);
struct bank *daemon_bank_find(struct daemon *d, const char *id);
