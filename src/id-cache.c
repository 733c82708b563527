/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "id-cache.h"

/* FNV-1a over the name, mixed with the scope. */
static uint32_t hash_of(int64_t scope, const char *name)
{
        uint32_t h = 2166136261u ^ (uint32_t)scope ^ (uint32_t)((uint64_t)scope >> 32);
        for (const unsigned char *p = (const unsigned char *)name; *p; p++)
                h = (h ^ *p) * 16777619u;
        return h;
}

/* Linear probing; the table is kept at most half full, so a free slot always ends a probe. */
static struct id_cache_entry *find_slot(
        struct id_cache_entry *slots, size_t n_slots, int64_t scope, const char *name, uint32_t h)
{
        for (size_t i = h & (n_slots - 1);; i = (i + 1) & (n_slots - 1)) {
                struct id_cache_entry *e = &slots[i];
                if (!e->name || (e->hash == h && e->scope == scope && strcmp(e->name, name) == 0))
                        return e;
        }
}

bool id_cache_get(const struct id_cache *c, int64_t scope, const char *name, int64_t *ret_id)
{
        if (c->n_slots == 0)
                return false;
        const struct id_cache_entry *e = find_slot(c->slots, c->n_slots, scope, name, hash_of(scope, name));
        if (!e->name)
                return false;
        *ret_id = e->id;
        return true;
}

static int grow(struct id_cache *c)
{
        size_t n = c->n_slots ? c->n_slots * 2 : 64;
        struct id_cache_entry *slots = calloc(n, sizeof *slots);
        if (!slots)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_slots; i++)
                if (c->slots[i].name)
                        *find_slot(slots, n, c->slots[i].scope, c->slots[i].name, c->slots[i].hash) =
                                c->slots[i];
        free(c->slots);
        c->slots = slots;
        c->n_slots = n;
        return 0;
}

int id_cache_put(struct id_cache *c, int64_t scope, const char *name, int64_t id)
{
        if ((c->n_used + 1) * 2 > c->n_slots) {
                int r = grow(c);
                if (r < 0)
                        return r;
        }
        uint32_t h = hash_of(scope, name);
        struct id_cache_entry *e = find_slot(c->slots, c->n_slots, scope, name, h);
        if (!e->name) {
                char *copy = strdup(name);
                if (!copy)
                        return -ENOMEM;
                *e = (struct id_cache_entry){.scope = scope, .name = copy, .hash = h};
                c->n_used++;
        }
        e->id = id;
        return 0;
}

void id_cache_clear(struct id_cache *c)
{
        for (size_t i = 0; i < c->n_slots; i++)
                free(c->slots[i].name);
        free(c->slots);
        *c = (struct id_cache){0};
}
