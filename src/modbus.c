/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "modbus.h"

/* CRC-16/MODBUS (reflected polynomial 0xA001, initial 0xFFFF), a byte at a time: entry i is
 * the bitwise CRC step applied eight times to i (test-modbus checks every entry that way). */
/* clang-format off */
static const uint16_t crc_table[256] = {
        0x0000, 0xC0C1, 0xC181, 0x0140, 0xC301, 0x03C0, 0x0280, 0xC241,
        0xC601, 0x06C0, 0x0780, 0xC741, 0x0500, 0xC5C1, 0xC481, 0x0440,
        0xCC01, 0x0CC0, 0x0D80, 0xCD41, 0x0F00, 0xCFC1, 0xCE81, 0x0E40,
        0x0A00, 0xCAC1, 0xCB81, 0x0B40, 0xC901, 0x09C0, 0x0880, 0xC841,
        0xD801, 0x18C0, 0x1980, 0xD941, 0x1B00, 0xDBC1, 0xDA81, 0x1A40,
        0x1E00, 0xDEC1, 0xDF81, 0x1F40, 0xDD01, 0x1DC0, 0x1C80, 0xDC41,
        0x1400, 0xD4C1, 0xD581, 0x1540, 0xD701, 0x17C0, 0x1680, 0xD641,
        0xD201, 0x12C0, 0x1380, 0xD341, 0x1100, 0xD1C1, 0xD081, 0x1040,
        0xF001, 0x30C0, 0x3180, 0xF141, 0x3300, 0xF3C1, 0xF281, 0x3240,
        0x3600, 0xF6C1, 0xF781, 0x3740, 0xF501, 0x35C0, 0x3480, 0xF441,
        0x3C00, 0xFCC1, 0xFD81, 0x3D40, 0xFF01, 0x3FC0, 0x3E80, 0xFE41,
        0xFA01, 0x3AC0, 0x3B80, 0xFB41, 0x3900, 0xF9C1, 0xF881, 0x3840,
        0x2800, 0xE8C1, 0xE981, 0x2940, 0xEB01, 0x2BC0, 0x2A80, 0xEA41,
        0xEE01, 0x2EC0, 0x2F80, 0xEF41, 0x2D00, 0xEDC1, 0xEC81, 0x2C40,
        0xE401, 0x24C0, 0x2580, 0xE541, 0x2700, 0xE7C1, 0xE681, 0x2640,
        0x2200, 0xE2C1, 0xE381, 0x2340, 0xE101, 0x21C0, 0x2080, 0xE041,
        0xA001, 0x60C0, 0x6180, 0xA141, 0x6300, 0xA3C1, 0xA281, 0x6240,
        0x6600, 0xA6C1, 0xA781, 0x6740, 0xA501, 0x65C0, 0x6480, 0xA441,
        0x6C00, 0xACC1, 0xAD81, 0x6D40, 0xAF01, 0x6FC0, 0x6E80, 0xAE41,
        0xAA01, 0x6AC0, 0x6B80, 0xAB41, 0x6900, 0xA9C1, 0xA881, 0x6840,
        0x7800, 0xB8C1, 0xB981, 0x7940, 0xBB01, 0x7BC0, 0x7A80, 0xBA41,
        0xBE01, 0x7EC0, 0x7F80, 0xBF41, 0x7D00, 0xBDC1, 0xBC81, 0x7C40,
        0xB401, 0x74C0, 0x7580, 0xB541, 0x7700, 0xB7C1, 0xB681, 0x7640,
        0x7200, 0xB2C1, 0xB381, 0x7340, 0xB101, 0x71C0, 0x7080, 0xB041,
        0x5000, 0x90C1, 0x9181, 0x5140, 0x9301, 0x53C0, 0x5280, 0x9241,
        0x9601, 0x56C0, 0x5780, 0x9741, 0x5500, 0x95C1, 0x9481, 0x5440,
        0x9C01, 0x5CC0, 0x5D80, 0x9D41, 0x5F00, 0x9FC1, 0x9E81, 0x5E40,
        0x5A00, 0x9AC1, 0x9B81, 0x5B40, 0x9901, 0x59C0, 0x5880, 0x9841,
        0x8801, 0x48C0, 0x4980, 0x8941, 0x4B00, 0x8BC1, 0x8A81, 0x4A40,
        0x4E00, 0x8EC1, 0x8F81, 0x4F40, 0x8D01, 0x4DC0, 0x4C80, 0x8C41,
        0x4400, 0x84C1, 0x8581, 0x4540, 0x8701, 0x47C0, 0x4680, 0x8641,
        0x8201, 0x42C0, 0x4380, 0x8341, 0x4100, 0x81C1, 0x8081, 0x4040,
};
/* clang-format on */

uint16_t modbus_crc16(const uint8_t *p, size_t n)
{
        uint16_t crc = 0xFFFF;
        for (size_t i = 0; i < n; i++)
                crc = (uint16_t)((crc >> 8) ^ crc_table[(crc ^ p[i]) & 0xFF]);
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
