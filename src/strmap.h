/* SPDX-License-Identifier: MIT */
#pragma once
/* A hash table from a string key to a pointer, for the object tables that are looked up on every
 * D-Bus signal. With a few hundred devices, a linear search by path touched every object, and
 * its page, on each signal; here a lookup reads the slot array (which keeps each key's hash) and
 * the one key whose hash matches.
 *
 * Keys are not copied: a key is a pointer and a length into memory the caller keeps alive and
 * unchanged while the entry is in the table (normally a string inside the value itself). One key
 * may hold several entries (a multimap); strmap_get returns the first, strmap_next the others. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct strmap_slot {
        uint64_t hash;
        const char *key; /* NULL: never used; STRMAP_DELETED: removed */
        size_t len;
        void *value;
};

struct strmap {
        struct strmap_slot *slots;
        size_t cap;  /* a power of two, or 0 before the first insert */
        size_t n;    /* entries */
        size_t used; /* entries and removed slots: what a probe has to walk past */
};

/* Walks the entries of one key; start with strmap_get_iter. */
struct strmap_iter {
        uint64_t hash;
        size_t pos, probes;
};

int strmap_put(struct strmap *m, const char *key, size_t len, void *value);
void *strmap_get(const struct strmap *m, const char *key, size_t len);
void *strmap_get_iter(const struct strmap *m, const char *key, size_t len, struct strmap_iter *it);
void *strmap_next(const struct strmap *m, const char *key, size_t len, struct strmap_iter *it);
/* Removes the entry of key whose value is value (any value of key when value is NULL);
 * returns the value removed, or NULL when there was none. */
void *strmap_remove(struct strmap *m, const char *key, size_t len, const void *value);
/* Every entry in slot order: for (size_t i = 0; strmap_each(m, &i, &v);) */
bool strmap_each(const struct strmap *m, size_t *pos, void **value);
size_t strmap_size(const struct strmap *m);
void strmap_clear(struct strmap *m);

static inline void *strmap_get_str(const struct strmap *m, const char *key)
{
        return strmap_get(m, key, __builtin_strlen(key));
}
