/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "id-cache.h"

struct entry {
        int64_t id;
        char key[]; /* scope, then name: the map's key */
};

/* Names are reading keys and device ids, far shorter than this; longer ones are not cached. */
#define KEY_MAX 256

static size_t make_key(char buf[static KEY_MAX], int64_t scope, const char *name)
{
        size_t n = strlen(name);
        if (n > KEY_MAX - sizeof scope)
                return 0;
        memcpy(buf, &scope, sizeof scope);
        memcpy(buf + sizeof scope, name, n);
        return sizeof scope + n;
}

bool id_cache_get(const struct id_cache *c, int64_t scope, const char *name, int64_t *ret_id)
{
        char key[KEY_MAX];
        size_t len = make_key(key, scope, name);
        const struct entry *e = len ? strmap_get(&c->map, key, len) : NULL;
        if (!e)
                return false;
        *ret_id = e->id;
        return true;
}

int id_cache_put(struct id_cache *c, int64_t scope, const char *name, int64_t id)
{
        char key[KEY_MAX];
        size_t len = make_key(key, scope, name);
        if (!len)
                return -ENAMETOOLONG;
        struct entry *e = strmap_get(&c->map, key, len);
        if (e) {
                e->id = id;
                return 0;
        }
        e = malloc(sizeof *e + len);
        if (!e)
                return -ENOMEM;
        e->id = id;
        memcpy(e->key, key, len);
        int r = strmap_put(&c->map, e->key, len, e);
        if (r < 0) {
                free(e);
                return r;
        }
        c->n_used++;
        return 0;
}

void id_cache_clear(struct id_cache *c)
{
        void *e;
        for (size_t pos = 0; strmap_each(&c->map, &pos, &e);)
                free(e);
        strmap_clear(&c->map);
        c->n_used = 0;
}
