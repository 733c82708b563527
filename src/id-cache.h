/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strmap.h"

/* The store's row ids of names (a device's id, a reading's key within a device), kept in memory
 * so that recording a poll does not look each of its ~33 keys up in SQLite. Keys are
 * (scope, name); names are copied. Pure: no I/O. */
struct id_cache {
        struct strmap map; /* key: the scope's 8 bytes, then the name */
        size_t n_used;
};

/* true and *ret_id when (scope, name) is cached. */
bool id_cache_get(const struct id_cache *c, int64_t scope, const char *name, int64_t *ret_id);
/* Adds or replaces (scope, name) -> id. -ENOMEM leaves the cache as it was. */
int id_cache_put(struct id_cache *c, int64_t scope, const char *name, int64_t id);
/* Forgets everything (the database the ids came from was rolled back or replaced). */
void id_cache_clear(struct id_cache *c);
