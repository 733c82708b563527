/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "renogy/family.h"

static const struct renogy_family *const families[] = {
        &renogy_controller,
        &renogy_dcc,
        &renogy_battery,
        &renogy_inverter,
        &renogy_shunt,
};

const struct renogy_family *const *renogy_families(size_t *n)
{
        *n = sizeof families / sizeof families[0];
        return families;
}

const struct renogy_family *renogy_family_find(const char *name)
{
        for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
                if (strcmp(families[i]->name, name) == 0)
                        return families[i];
        return NULL;
}

const struct renogy_field *renogy_field_find(const struct renogy_family *f, const char *key)
{
        for (size_t i = 0; i < f->n_fields; i++)
                if (strcmp(f->fields[i].key, key) == 0)
                        return &f->fields[i];
        return NULL;
}

const char *renogy_family_from_name(const char *name)
{
        static const struct {
                const char *prefix, *family;
        } rules[] = {
                {"RNGRIU", "inverter"},
                {"BTRIC", "inverter"},
                {"RTMShunt", "shunt"},
                {"RNGPRO", "battery"},
                {"RNGRBP", "battery"},
                {"RNGC", "battery"},
        };
        if (!name)
                return NULL;
        for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
                if (strncmp(name, rules[i].prefix, strlen(rules[i].prefix)) == 0)
                        return rules[i].family;
        if (strncmp(name, "BT-TH-", 6) == 0 && (strstr(name, "BATT")))
                return "battery";
        return NULL;
}

void renogy_image_init(struct renogy_image *img)
{
        img->n = 0;
}

int renogy_image_add_bytes(struct renogy_image *img, uint32_t base, const uint8_t *data, size_t n)
{
        if (n > sizeof img->seg[0].data)
                return -EMSGSIZE;
        if (img->n >= RENOGY_IMAGE_SEGMENTS)
                return -ENOSPC;
        img->seg[img->n].base = base;
        img->seg[img->n].len = (uint16_t)n;
        memcpy(img->seg[img->n].data, data, n);
        img->n++;
        return 0;
}

int renogy_image_add_words(struct renogy_image *img, uint16_t reg, const uint8_t *data, size_t n_words)
{
        return renogy_image_add_bytes(img, (uint32_t)reg * 2, data, n_words * 2);
}

/* Newest segment wins where replies overlap. */
static const uint8_t *image_bytes(const struct renogy_image *img, uint32_t addr, size_t n)
{
        for (size_t i = img->n; i-- > 0;) {
                uint32_t b = img->seg[i].base;
                if (addr >= b && addr + n <= b + img->seg[i].len)
                        return img->seg[i].data + (addr - b);
        }
        return NULL;
}

size_t renogy_field_width(const struct renogy_field *f)
{
        switch (f->raw) {
        case RAW_U8_HI:
        case RAW_U8_LO:
                return 1;
        case RAW_U16:
                return 2;
        case RAW_U24:
                return 3;
        case RAW_U32:
        case RAW_VERSION:
                return 4;
        case RAW_ASCII:
        case RAW_HEX:
                return f->len;
        default:
                return 0;
        }
}

uint32_t renogy_field_byte_addr(const struct renogy_family *fam, const struct renogy_field *f)
{
        if (fam->byte_addressed)
                return f->addr;
        return (uint32_t)f->addr * 2 + (f->raw == RAW_U8_LO ? 1 : 0);
}

static uint32_t read_raw(const uint8_t *p, size_t width)
{
        uint32_t v = 0;
        for (size_t i = 0; i < width; i++)
                v = v << 8 | p[i];
        return v;
}

static int64_t apply_sign(const struct renogy_field *f, uint32_t raw, size_t width)
{
        unsigned bits = (unsigned)width * 8;
        switch (f->sign) {
        case SIGN_TWOS:
                if (bits < 32 && (raw & (1u << (bits - 1))))
                        return (int64_t)raw - ((int64_t)1 << bits);
                if (bits == 32)
                        return (int32_t)raw;
                return raw;
        case SIGN_MAGNITUDE:
                return (raw & 0x80) ? -(int64_t)(raw & 0x7F) : (int64_t)(raw & 0x7F);
        default:
                return raw;
        }
}

/* Powers of ten and rounding without libm: every poll decodes, stores and serves numbers, and
 * pow() and round() would bring libm's pages into each of those wakes. Powers up to 1e22 are
 * exact doubles; so is x - trunc(x). */
double renogy_pow10(unsigned n)
{
        static const double exact[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
                1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
        const unsigned last = sizeof exact / sizeof exact[0] - 1;
        if (n <= last)
                return exact[n];
        double r = exact[last];
        for (n -= last; n > 0 && r < 1e308; n--)
                r *= 10.0;
        return r;
}

/* round(): half away from zero. From 2^52 on every double is an integer; NaN stays NaN. */
static double round_half_away(double x)
{
        if (!(__builtin_fabs(x) < 0x1p52))
                return x;
        double t = (double)(int64_t)x;
        double frac = x - t;
        if (frac >= 0.5)
                t += 1.0;
        else if (frac <= -0.5)
                t -= 1.0;
        return __builtin_copysign(t, x);
}

double renogy_round(double v, unsigned decimals)
{
        double m = renogy_pow10(decimals);
        double r = round_half_away(v * m) / m;
        return r == 0.0 ? 0.0 : r; /* no "-0" */
}

int64_t renogy_scaled(double v, unsigned decimals)
{
        double x = round_half_away(v * renogy_pow10(decimals));
        return __builtin_fabs(x) < 0x1p62 ? (int64_t)x : INT64_MAX;
}

static struct renogy_reading *add(struct renogy_readings *out, const struct renogy_field *f)
{
        if (out->n >= RENOGY_MAX_READINGS)
                return NULL;
        struct renogy_reading *r = &out->r[out->n++];
        memset(r, 0, sizeof *r);
        r->field = f;
        return r;
}

int renogy_reading_add_number(
        struct renogy_readings *out, const struct renogy_field *f, double v, uint8_t decimals)
{
        struct renogy_reading *r = add(out, f);
        if (!r)
                return -ENOSPC;
        r->type = RV_NUMBER;
        r->decimals = decimals;
        r->number = renogy_round(v, decimals);
        return 0;
}

static void decode_text(const struct renogy_field *f, const uint8_t *p, size_t width, char *buf)
{
        if (f->raw == RAW_VERSION) {
                snprintf(buf, RENOGY_TEXT_MAX, "V%u.%u.%u", p[1], p[2], p[3]);
                return;
        }
        if (f->raw == RAW_HEX) {
                for (size_t i = 0; i < width && 2 * i + 2 < RENOGY_TEXT_MAX; i++)
                        snprintf(buf + 2 * i, 3, "%02X", p[i]);
                return;
        }
        /* ASCII: strip NULs and spaces at both ends; anything unprintable becomes '?'. */
        size_t a = 0, b = width;
        while (a < b && (p[a] == ' ' || p[a] == 0))
                a++;
        while (b > a && (p[b - 1] == ' ' || p[b - 1] == 0))
                b--;
        size_t n = 0;
        for (size_t i = a; i < b && n + 1 < RENOGY_TEXT_MAX; i++)
                buf[n++] = (p[i] >= 0x20 && p[i] < 0x7F) ? (char)p[i] : '?';
        buf[n] = 0;
}

static bool count_allows(
        const struct renogy_family *fam, const struct renogy_field *f, const struct renogy_image *img)
{
        if (!f->count_addr)
                return true;
        uint32_t a = fam->byte_addressed ? f->count_addr : (uint32_t)f->count_addr * 2;
        const uint8_t *p = image_bytes(img, a, 2);
        if (!p)
                return true; /* count not read: report what is there */
        return f->index <= read_raw(p, 2);
}

static int decode_field(const struct renogy_family *fam, const struct renogy_field *f,
        const struct renogy_image *img, struct renogy_readings *out)
{
        size_t width = renogy_field_width(f);
        if (width == 0)
                return 0;
        const uint8_t *p = image_bytes(img, renogy_field_byte_addr(fam, f), width);
        if (!p || !count_allows(fam, f, img))
                return 0;

        struct renogy_reading *r;
        if (f->kind == KIND_TEXT) {
                if (!(r = add(out, f)))
                        return -ENOSPC;
                r->type = RV_TEXT;
                decode_text(f, p, width, r->text);
                return 0;
        }

        uint32_t raw = read_raw(p, width);
        if ((f->flags & FIELD_FFFF_UNAVAILABLE) && raw == 0xFFFF)
                return 0;
        if (f->mask)
                raw &= f->mask;
        if (!(r = add(out, f)))
                return -ENOSPC;

        switch (f->kind) {
        case KIND_ENUM:
                r->type = RV_TEXT;
                if (raw < f->n_names && f->names[raw])
                        snprintf(r->text, sizeof r->text, "%s", f->names[raw]);
                else
                        snprintf(r->text, sizeof r->text, "unknown(%u)", raw);
                break;
        case KIND_BITS:
                r->type = RV_BITS;
                r->bits = raw;
                break;
        case KIND_FLAG:
                r->type = RV_TEXT;
                snprintf(r->text, sizeof r->text, "%s", (raw >> f->bit) & 1 ? "on" : "off");
                break;
        default: {
                uint8_t dec = renogy_field_decimals(fam, f);
                if ((f->flags & FIELD_CELL_AUTO) && raw >= 100)
                        dec = 3;
                r->type = RV_NUMBER;
                r->decimals = dec;
                r->number = renogy_round((double)apply_sign(f, raw, width) / renogy_pow10(dec), dec);
                break;
        }
        }
        return 0;
}

int renogy_decode(const struct renogy_family *f, const struct renogy_image *img, struct renogy_readings *out)
{
        out->n = 0;
        for (size_t i = 0; i < f->n_fields; i++) {
                int r = decode_field(f, &f->fields[i], img, out);
                if (r < 0)
                        return r;
        }
        if (f->derive)
                f->derive(f, out);
        return (int)out->n;
}

const struct renogy_reading *renogy_readings_get(const struct renogy_readings *r, const char *key)
{
        for (size_t i = 0; i < r->n; i++)
                if (strcmp(r->r[i].field->key, key) == 0)
                        return &r->r[i];
        return NULL;
}

static void write_raw(uint8_t *p, size_t width, uint32_t v)
{
        for (size_t i = width; i-- > 0;) {
                p[i] = (uint8_t)v;
                v >>= 8;
        }
}

uint8_t renogy_field_decimals(const struct renogy_family *fam, const struct renogy_field *f)
{
        if ((f->flags & FIELD_PRO_TENTHS) && fam->variant && strcmp(fam->variant, "pro") == 0)
                return 1;
        return f->decimals;
}

int renogy_encode_number(const struct renogy_family *fam, const struct renogy_field *f, double value,
        uint8_t *bytes, size_t bytes_len)
{
        size_t width = renogy_field_width(f);
        if (width == 0 || width > bytes_len || f->kind == KIND_TEXT)
                return -EINVAL;
        int64_t raw;
        if (f->kind == KIND_NUMBER)
                raw = renogy_scaled(value, renogy_field_decimals(fam, f));
        else if (f->kind == KIND_FLAG)
                raw = value != 0 ? (int64_t)1 << f->bit : 0;
        else
                raw = (int64_t)value;

        uint32_t enc;
        if (f->sign == SIGN_MAGNITUDE) {
                if (raw < -127 || raw > 127)
                        return -ERANGE;
                enc = raw < 0 ? (uint32_t)(0x80 | -raw) : (uint32_t)raw;
        } else {
                unsigned bits = (unsigned)width * 8;
                int64_t lo = f->sign == SIGN_TWOS ? -((int64_t)1 << (bits - 1)) : 0;
                int64_t hi =
                        f->sign == SIGN_TWOS ? ((int64_t)1 << (bits - 1)) - 1 : ((int64_t)1 << bits) - 1;
                if (raw < lo || raw > hi)
                        return -ERANGE;
                enc = (uint32_t)raw;
        }
        uint32_t mask = f->mask ? f->mask : f->kind == KIND_FLAG ? 1u << f->bit : 0;
        if (mask) {
                /* Several fields share these bytes: keep the bits outside the mask. */
                uint32_t old = read_raw(bytes, width);
                enc = (old & ~mask) | (enc & mask);
        }
        write_raw(bytes, width, enc);
        return 0;
}

int renogy_encode_text(const struct renogy_field *f, const char *text, uint8_t *bytes, size_t bytes_len)
{
        if (f->raw != RAW_ASCII || f->len > bytes_len)
                return -EINVAL;
        size_t n = strlen(text);
        if (n > f->len)
                return -ERANGE;
        memset(bytes, ' ', f->len);
        memcpy(bytes, text, n);
        return 0;
}
