/* SPDX-License-Identifier: MIT */
/* Smart Shunt 300: no Modbus, live frames pushed on c411 (RENOGY_BLE.md §4.5). Fields are
 * addressed by byte offset in the live frame. */
#include <math.h>
#include <string.h>

#include "renogy/rows.h"
#include "renogy/shunt.h"

static const struct renogy_field fields[] = {
        ROW_NUM("shunt_current", "Current", 21, RAW_U24, SIGN_TWOS, 3, "A", "current", MEAS),
        ROW_NUM("shunt_voltage", "Voltage", 25, RAW_U24, SIGN_NONE, 3, "V", "voltage", MEAS),
        ROW_NUM("starter_battery_voltage", "Starter battery voltage", 30, RAW_U16, SIGN_NONE, 3, "V",
                "voltage", MEAS),
        ROW_NUM("shunt_soc", "State of charge", 34, RAW_U16, SIGN_NONE, 1, "%", "battery", MEAS),
        ROW_NUM("battery_temperature", "Battery temperature", 66, RAW_U16, SIGN_NONE, 1, "°C", "temperature",
                MEAS),
        DERIVED("shunt_power", "Power", "W", "power", MEAS),
        METERED("energy_charged", "Energy charged"),
        METERED("energy_discharged", "Energy discharged"),
};

static void drop(struct renogy_readings *out, const char *key)
{
        for (size_t i = 0; i < out->n; i++)
                if (strcmp(out->r[i].field->key, key) == 0) {
                        memmove(&out->r[i], &out->r[i + 1], (out->n - i - 1) * sizeof out->r[0]);
                        out->n--;
                        return;
                }
}

static void derive(const struct renogy_family *f, struct renogy_readings *out)
{
        const struct renogy_reading *i = renogy_readings_get(out, "shunt_current");
        const struct renogy_reading *v = renogy_readings_get(out, "shunt_voltage");
        if (i && v)
                renogy_reading_add_number(
                        out, renogy_field_find(f, "shunt_power"), i->number * v->number, 2);

        /* Plausibility, as the shunt has no checksum: out-of-range extras are dropped. */
        const struct renogy_reading *t = renogy_readings_get(out, "battery_temperature");
        if (t && (t->number < -40 || t->number > 100))
                drop(out, "battery_temperature");
        const struct renogy_reading *soc = renogy_readings_get(out, "shunt_soc");
        if (soc && (soc->number < 0 || soc->number > 200))
                drop(out, "shunt_soc");
}

const struct renogy_family renogy_shunt = {
        .name = "shunt",
        .label = "Smart shunt",
        .byte_addressed = true,
        .fields = fields,
        .n_fields = sizeof fields / sizeof fields[0],
        .derive = derive,
};

int shunt_frame_check(const struct renogy_readings *r)
{
        const struct renogy_reading *i = renogy_readings_get(r, "shunt_current");
        const struct renogy_reading *v = renogy_readings_get(r, "shunt_voltage");
        const struct renogy_reading *p = renogy_readings_get(r, "shunt_power");
        if (!i || !v)
                return -EMSGSIZE;
        if (v->number < 6 || v->number > 80 || fabs(i->number) > 500 || (p && fabs(p->number) > 10000))
                return -ERANGE;
        return 0;
}

static bool is_live_header(const uint8_t *p)
{
        return p[0] == 0x42 && p[1] == 0x57 && p[2] == 0x01 && p[3] == 0x19;
}

void shunt_stream_reset(struct shunt_stream *s)
{
        s->len = 0;
}

/* Keeps the buffer starting at a live header, or empty. History frames and prefixes such as
 * 61 d2 00 00 are skipped. */
static void shunt_resync(struct shunt_stream *s)
{
        size_t i = 0;
        while (i + 4 <= s->len && !is_live_header(s->buf + i))
                i++;
        if (i + 4 > s->len) {
                /* Keep a possible partial header at the end. */
                size_t keep = s->len < 3 ? s->len : 3;
                i = s->len - keep;
                while (i < s->len && s->buf[i] != 0x42)
                        i++;
        }
        memmove(s->buf, s->buf + i, s->len - i);
        s->len -= i;
}

int shunt_stream_feed(
        struct shunt_stream *s, const uint8_t *data, size_t n, uint8_t *frame, size_t *frame_len)
{
        int found = 0;
        while (n > 0) {
                size_t room = sizeof s->buf - s->len;
                size_t take = n < room ? n : room;
                memcpy(s->buf + s->len, data, take);
                s->len += take;
                data += take;
                n -= take;
                shunt_resync(s);
                while (s->len >= SHUNT_LIVE_FRAME_LEN) {
                        memcpy(frame, s->buf, SHUNT_LIVE_FRAME_LEN);
                        *frame_len = SHUNT_LIVE_FRAME_LEN;
                        found = 1;
                        memmove(s->buf, s->buf + SHUNT_LIVE_FRAME_LEN, s->len - SHUNT_LIVE_FRAME_LEN);
                        s->len -= SHUNT_LIVE_FRAME_LEN;
                        shunt_resync(s);
                }
                if (s->len == sizeof s->buf) /* unreachable after resync, but never overflow */
                        s->len = 0;
        }
        return found;
}

int shunt_decode_frame(const uint8_t *frame, size_t len, struct renogy_readings *out)
{
        size_t i = 0;
        while (i + 4 <= len && !is_live_header(frame + i))
                i++;
        if (i + 4 > len)
                return -EBADMSG;
        frame += i;
        len -= i;
        if (len > SHUNT_LIVE_FRAME_LEN)
                len = SHUNT_LIVE_FRAME_LEN;
        if (len < SHUNT_MIN_FRAME_LEN)
                return -EMSGSIZE;
        struct renogy_image img;
        renogy_image_init(&img);
        renogy_image_add_bytes(&img, 0, frame, len);
        int r = renogy_decode(&renogy_shunt, &img, out);
        if (r < 0)
                return r;
        return shunt_frame_check(out);
}
