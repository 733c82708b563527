/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "modbus.h"

uint16_t modbus_crc16(const uint8_t *p, size_t n)
{
        uint16_t crc = 0xFFFF;
        for (size_t i = 0; i < n; i++) {
                crc ^= p[i];
                for (int b = 0; b < 8; b++)
                        crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xA001) : (uint16_t)(crc >> 1);
        }
        return crc;
}

static void put_crc(uint8_t *frame, size_t n)
{
        uint16_t crc = modbus_crc16(frame, n);
        frame[n] = (uint8_t)(crc & 0xFF); /* low byte first on the wire */
        frame[n + 1] = (uint8_t)(crc >> 8);
}

static int build(uint8_t out[MODBUS_REQUEST_LEN], uint8_t id, uint8_t fn, uint16_t reg, uint16_t arg)
{
        out[0] = id;
        out[1] = fn;
        out[2] = (uint8_t)(reg >> 8);
        out[3] = (uint8_t)reg;
        out[4] = (uint8_t)(arg >> 8);
        out[5] = (uint8_t)arg;
        put_crc(out, 6);
        return MODBUS_REQUEST_LEN;
}

int modbus_build_read(uint8_t out[MODBUS_REQUEST_LEN], uint8_t id, uint16_t reg, uint16_t count)
{
        if (count == 0 || count > MODBUS_MAX_READ_WORDS)
                return -EINVAL;
        return build(out, id, MODBUS_FN_READ_HOLDING, reg, count);
}

int modbus_build_write(uint8_t out[MODBUS_REQUEST_LEN], uint8_t id, uint16_t reg, uint16_t value)
{
        return build(out, id, MODBUS_FN_WRITE_SINGLE, reg, value);
}

static bool crc_ok(const uint8_t *frame, size_t len)
{
        /* The CRC over a whole valid frame, its own two bytes included, is zero. */
        return len >= 4 && modbus_crc16(frame, len) == 0;
}

/* Length of the reply that starts with frame[0..avail), 0 if not yet known. */
static size_t reply_length(const uint8_t *frame, size_t avail)
{
        if (avail < 2)
                return 0;
        if (frame[1] & MODBUS_FN_EXCEPTION)
                return 5;
        if (frame[1] == MODBUS_FN_WRITE_SINGLE)
                return 8;
        if (avail < 3)
                return 0;
        return 5 + (size_t)frame[2];
}

int modbus_parse_reply(
        const uint8_t *frame, size_t len, const struct modbus_request *req, struct modbus_reply *out)
{
        *out = (struct modbus_reply){0};
        if (len < 5)
                return -EMSGSIZE;
        size_t want = reply_length(frame, len);
        if (want != len)
                return -EMSGSIZE;
        if (!crc_ok(frame, len))
                return -EBADMSG;
        if (req->id != MODBUS_BROADCAST_ID && frame[0] != req->id)
                return -ENXIO;
        if ((frame[1] & 0x7F) != req->function)
                return -EPROTO;

        out->id = frame[0];
        out->function = frame[1] & 0x7F;
        out->reg = req->reg;
        if (frame[1] & MODBUS_FN_EXCEPTION) {
                out->exception = frame[2];
                return -EREMOTEIO;
        }
        if (req->function == MODBUS_FN_WRITE_SINGLE) {
                if (be16(frame + 2) != req->reg || be16(frame + 4) != req->value)
                        return -EBADE;
                out->data = frame + 4;
                out->count = 1;
                return 0;
        }
        if (frame[2] != 2 * req->count)
                return -EBADE;
        out->count = req->count;
        out->data = frame + 3;
        return 0;
}

const char *modbus_strerror(int error)
{
        switch (error) {
        case 0:
                return "ok";
        case -EMSGSIZE:
                return "truncated frame (length does not match its header)";
        case -EBADMSG:
                return "bad CRC";
        case -ENXIO:
                return "reply from another device id";
        case -EPROTO:
                return "reply for another function";
        case -EBADE:
                return "byte count does not match the request";
        case -EREMOTEIO:
                return "exception reply";
        case -ETIMEDOUT:
                return "no reply";
        default:
                return "invalid frame";
        }
}

const char *modbus_exception_name(uint8_t code)
{
        switch (code) {
        case 1:
                return "illegal function";
        case 2:
                return "illegal data address";
        case 3:
                return "illegal data value";
        case 4:
                return "device failure";
        case 5:
                return "request CRC wrong";
        default:
                return "unknown exception";
        }
}

void modbus_reasm_expect(struct modbus_reasm *r, const struct modbus_request *req)
{
        *r = (struct modbus_reasm){.req = *req};
}

static bool can_start(const struct modbus_reasm *r, uint8_t id)
{
        return r->req.id == MODBUS_BROADCAST_ID || id == r->req.id;
}

static bool header_ok(const struct modbus_reasm *r)
{
        if (r->len >= 1 && !can_start(r, r->buf[0]))
                return false;
        if (r->len >= 2 && (r->buf[1] & 0x7F) != r->req.function)
                return false;
        if (r->len >= 3 && r->buf[1] == MODBUS_FN_READ_HOLDING && r->buf[2] != 2 * r->req.count)
                return false;
        return true;
}

/* Drops bytes from the front until what is buffered can still start the expected reply. */
static void resync(struct modbus_reasm *r)
{
        while (r->len > 0 && !header_ok(r)) {
                memmove(r->buf, r->buf + 1, --r->len);
                r->skipped++;
        }
        r->need = reply_length(r->buf, r->len);
}

int modbus_reasm_feed(struct modbus_reasm *r, const uint8_t *chunk, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                if (r->done) {
                        r->stale += n - i;
                        return 0;
                }
                r->buf[r->len++] = chunk[i];
                resync(r);
                if (r->need == 0 || r->len < r->need)
                        continue;
                r->done = true;
                r->stale += n - i - 1;
                return crc_ok(r->buf, r->len) ? 1 : -EBADMSG;
        }
        return 0;
}
