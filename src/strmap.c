/* SPDX-License-Identifier: MIT */
#include "strmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A removed slot keeps probe chains that pass through it intact until the next rehash. */
static const char deleted_marker;
#define STRMAP_DELETED (&deleted_marker)

/* FNV-1a: the keys are short (object paths, addresses) and come from a trusted peer. */
static uint64_t hash_of(const char *key, size_t len)
{
        uint64_t h = 0xcbf29ce484222325ULL;
        for (size_t i = 0; i < len; i++) {
                h ^= (unsigned char)key[i];
                h *= 0x100000001b3ULL;
        }
        return h;
}

static bool slot_matches(const struct strmap_slot *s, uint64_t hash, const char *key, size_t len)
{
        return s->key && s->key != STRMAP_DELETED && s->hash == hash && s->len == len &&
               memcmp(s->key, key, len) == 0;
}

/* Linear probing: the next slot is usually in the same cache line. */
static void *probe(const struct strmap *m, const char *key, size_t len, struct strmap_iter *it)
{
        size_t mask = m->cap - 1;
        for (; it->probes < m->cap; it->probes++, it->pos = (it->pos + 1) & mask) {
                const struct strmap_slot *s = &m->slots[it->pos];
                if (!s->key)
                        return NULL; /* end of the chain */
                if (slot_matches(s, it->hash, key, len)) {
                        void *v = s->value;
                        it->probes++;
                        it->pos = (it->pos + 1) & mask;
                        return v;
                }
        }
        return NULL;
}

void *strmap_get_iter(const struct strmap *m, const char *key, size_t len, struct strmap_iter *it)
{
        if (!m->cap)
                return NULL;
        it->hash = hash_of(key, len);
        it->pos = it->hash & (m->cap - 1);
        it->probes = 0;
        return probe(m, key, len, it);
}

void *strmap_next(const struct strmap *m, const char *key, size_t len, struct strmap_iter *it)
{
        if (!m->cap)
                return NULL;
        return probe(m, key, len, it);
}

void *strmap_get(const struct strmap *m, const char *key, size_t len)
{
        struct strmap_iter it;
        return strmap_get_iter(m, key, len, &it);
}

static void place(struct strmap_slot *slots, size_t cap, const struct strmap_slot *e)
{
        size_t pos = e->hash & (cap - 1);
        while (slots[pos].key && slots[pos].key != STRMAP_DELETED)
                pos = (pos + 1) & (cap - 1);
        slots[pos] = *e;
}

/* Keeps the table at most three quarters used, removed slots included. */
static int make_room(struct strmap *m)
{
        if ((m->used + 1) * 4 <= m->cap * 3)
                return 0;
        size_t cap = m->cap ? m->cap : 8;
        while ((m->n + 1) * 2 > cap) /* at most half full after the rehash */
                cap *= 2;
        struct strmap_slot *slots = calloc(cap, sizeof *slots);
        if (!slots)
                return -ENOMEM;
        for (size_t i = 0; i < m->cap; i++)
                if (m->slots[i].key && m->slots[i].key != STRMAP_DELETED)
                        place(slots, cap, &m->slots[i]);
        free(m->slots);
        m->slots = slots;
        m->cap = cap;
        m->used = m->n;
        return 0;
}

int strmap_put(struct strmap *m, const char *key, size_t len, void *value)
{
        if (!key || key == STRMAP_DELETED)
                return -EINVAL;
        int r = make_room(m);
        if (r < 0)
                return r;
        struct strmap_slot e = {.hash = hash_of(key, len), .key = key, .len = len, .value = value};
        size_t pos = e.hash & (m->cap - 1);
        while (m->slots[pos].key && m->slots[pos].key != STRMAP_DELETED)
                pos = (pos + 1) & (m->cap - 1);
        if (!m->slots[pos].key)
                m->used++; /* a removed slot reused was counted already */
        m->slots[pos] = e;
        m->n++;
        return 0;
}

void *strmap_remove(struct strmap *m, const char *key, size_t len, const void *value)
{
        if (!m->cap)
                return NULL;
        uint64_t hash = hash_of(key, len);
        size_t mask = m->cap - 1;
        for (size_t pos = hash & mask, probes = 0; probes < m->cap; probes++, pos = (pos + 1) & mask) {
                struct strmap_slot *s = &m->slots[pos];
                if (!s->key)
                        return NULL;
                if (!slot_matches(s, hash, key, len) || (value && s->value != value))
                        continue;
                void *v = s->value;
                *s = (struct strmap_slot){.key = STRMAP_DELETED};
                m->n--;
                return v;
        }
        return NULL;
}

bool strmap_each(const struct strmap *m, size_t *pos, void **value)
{
        for (; *pos < m->cap; (*pos)++) {
                const struct strmap_slot *s = &m->slots[*pos];
                if (s->key && s->key != STRMAP_DELETED) {
                        *value = s->value;
                        (*pos)++;
                        return true;
                }
        }
        return false;
}

size_t strmap_size(const struct strmap *m)
{
        return m->n;
}

void strmap_clear(struct strmap *m)
{
        free(m->slots);
        *m = (struct strmap){0};
}
