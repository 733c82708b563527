/* SPDX-License-Identifier: MIT */
#include <errno.h>

#include "store-codec.h"

size_t varint_put(uint8_t *p, uint64_t v)
{
        size_t n = 0;
        while (v >= 0x80) {
                p[n++] = (uint8_t)(v | 0x80);
                v >>= 7;
        }
        p[n++] = (uint8_t)v;
        return n;
}

int varint_get(const uint8_t *p, size_t len, size_t *at, uint64_t *v)
{
        *v = 0;
        for (unsigned shift = 0; shift < 64 && *at < len; shift += 7) {
                uint8_t b = p[(*at)++];
                *v |= (uint64_t)(b & 0x7F) << shift;
                if (!(b & 0x80))
                        return 0;
        }
        return -EBADMSG;
}

uint64_t zigzag(int64_t v)
{
        /* The sign as all ones or all zeros, without right-shifting a negative number. */
        return ((uint64_t)v << 1) ^ (0 - ((uint64_t)v >> 63));
}

int64_t unzigzag(uint64_t v)
{
        return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

/* Wrapping arithmetic: a damaged row may hold any 64-bit delta, and overflow must not be UB. */
static int64_t add_wrap(int64_t a, int64_t b)
{
        return (int64_t)((uint64_t)a + (uint64_t)b);
}

static int64_t sub_wrap(int64_t a, int64_t b)
{
        return (int64_t)((uint64_t)a - (uint64_t)b);
}

size_t poll_row_put(uint8_t *out, int64_t *prev_kid, const struct stored_reading *r)
{
        size_t n = varint_put(out, zigzag(sub_wrap(r->kid, *prev_kid)));
        out[n++] = r->kind;
        n += varint_put(out + n, zigzag(r->value));
        *prev_kid = r->kid;
        return n;
}

void poll_row_reader_init(struct poll_row_reader *rd, const uint8_t *p, size_t len, int format)
{
        *rd = (struct poll_row_reader){.p = p, .len = p ? len : 0, .format = format};
}

static int32_t get32(const uint8_t *p)
{
        return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
}

int poll_row_next(struct poll_row_reader *rd, struct stored_reading *out)
{
        if (rd->at >= rd->len)
                return 0;
        if (rd->format == 1) {
                /* u16 kid, u8 kind, i32 value, big-endian */
                if (rd->len - rd->at < 7)
                        return -EBADMSG;
                const uint8_t *b = rd->p + rd->at;
                *out = (struct stored_reading){.kid = b[0] << 8 | b[1], .kind = b[2], .value = get32(b + 3)};
                rd->at += 7;
                return 1;
        }
        uint64_t dk, v;
        if (varint_get(rd->p, rd->len, &rd->at, &dk) < 0 || rd->at >= rd->len)
                return -EBADMSG;
        uint8_t kind = rd->p[rd->at++];
        if (varint_get(rd->p, rd->len, &rd->at, &v) < 0)
                return -EBADMSG;
        int64_t value = unzigzag(v);
        if (value < INT32_MIN || value > INT32_MAX)
                return -EBADMSG;
        rd->kid = add_wrap(rd->kid, unzigzag(dk));
        if (rd->kid < 0)
                return -EBADMSG;
        *out = (struct stored_reading){.kid = rd->kid, .kind = kind, .value = (int32_t)value};
        return 1;
}

void chunk_writer_init(struct chunk_writer *w, uint8_t *out, int64_t t0_ms)
{
        *w = (struct chunk_writer){.out = out, .t_ms = t0_ms};
}

void chunk_put(struct chunk_writer *w, int64_t t_ms, int64_t value)
{
        int64_t dt = sub_wrap(t_ms, w->t_ms);
        if (w->n == 0) {
                w->len += varint_put(w->out + w->len, zigzag(dt));
                w->len += varint_put(w->out + w->len, zigzag(value));
        } else {
                w->len += varint_put(w->out + w->len, zigzag(sub_wrap(dt, w->dt_ms)));
                w->len += varint_put(w->out + w->len, zigzag(sub_wrap(value, w->value)));
        }
        w->t_ms = t_ms;
        w->dt_ms = dt;
        w->value = value;
        w->n++;
}

void chunk_reader_init(struct chunk_reader *rd, const uint8_t *p, size_t len, int64_t t0_ms, int format)
{
        *rd = (struct chunk_reader){.p = p, .len = p ? len : 0, .t_ms = t0_ms, .format = format};
}

int chunk_next(struct chunk_reader *rd, int64_t *t_ms, int64_t *value)
{
        if (rd->at >= rd->len)
                return 0;
        uint64_t a, b;
        if (varint_get(rd->p, rd->len, &rd->at, &a) < 0 || varint_get(rd->p, rd->len, &rd->at, &b) < 0)
                return -EBADMSG;
        if (rd->format == 1) {
                /* time delta (unsigned ms), zigzag value delta */
                rd->t_ms = add_wrap(rd->t_ms, (int64_t)a);
                rd->value = add_wrap(rd->value, unzigzag(b));
        } else if (rd->n == 0) {
                rd->dt_ms = unzigzag(a);
                rd->t_ms = add_wrap(rd->t_ms, rd->dt_ms);
                rd->value = unzigzag(b);
        } else {
                rd->dt_ms = add_wrap(rd->dt_ms, unzigzag(a));
                rd->t_ms = add_wrap(rd->t_ms, rd->dt_ms);
                rd->value = add_wrap(rd->value, unzigzag(b));
        }
        rd->n++;
        *t_ms = rd->t_ms;
        *value = rd->value;
        return 1;
}
