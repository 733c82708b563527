/* SPDX-License-Identifier: MIT */
#pragma once

/* Modbus RTU as Renogy modules carry it over BLE: CRC-16/MODBUS, request frames, reply
 * parsing and reassembly of notification chunks. Pure: no I/O, no allocation. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MODBUS_BROADCAST_ID    0xFF
#define MODBUS_FN_READ_HOLDING 0x03
#define MODBUS_FN_WRITE_SINGLE 0x06
#define MODBUS_FN_EXCEPTION    0x80
#define MODBUS_MAX_READ_WORDS  0x7D
#define MODBUS_REQUEST_LEN     8
#define MODBUS_MAX_FRAME       256

struct modbus_request {
        uint8_t id;
        uint8_t function;
        uint16_t reg;
        uint16_t count; /* words to read (0x03) */
        uint16_t value; /* value to write (0x06) */
};

struct modbus_reply {
        uint8_t id;
        uint8_t function;    /* without the exception bit */
        uint8_t exception;   /* 0, or the exception code */
        uint16_t reg;        /* start register, from the request */
        uint16_t count;      /* words in data */
        const uint8_t *data; /* big-endian words, points into the frame */
};

uint16_t modbus_crc16(const uint8_t *p, size_t n);

/* Writes the 8-byte request frame. Returns its length or -EINVAL. */
int modbus_build_read(uint8_t out[MODBUS_REQUEST_LEN], uint8_t id, uint16_t reg, uint16_t count);
int modbus_build_write(uint8_t out[MODBUS_REQUEST_LEN], uint8_t id, uint16_t reg, uint16_t value);

/* Parses one complete reply to req. Returns 0, or a negative errno whose meaning
 * modbus_strerror() names:
 *   -EMSGSIZE   truncated (shorter than its header says) or longer than it
 *   -EBADMSG    CRC mismatch
 *   -ENXIO      reply from another device id
 *   -EPROTO     reply for another function
 *   -EBADE      byte count does not match the words requested
 *   -EREMOTEIO  exception reply (out->exception holds the code)
 * A request to 0xFF accepts a reply from any id (modules answer with their own). */
int modbus_parse_reply(
        const uint8_t *frame, size_t len, const struct modbus_request *req, struct modbus_reply *out);

const char *modbus_strerror(int error);
const char *modbus_exception_name(uint8_t code);

/* Reassembles one expected reply from notification chunks of any size. */
struct modbus_reasm {
        struct modbus_request req;
        uint8_t buf[MODBUS_MAX_FRAME];
        size_t len;
        size_t need;    /* total frame length once known, else 0 */
        size_t skipped; /* garbage bytes dropped before the frame */
        size_t stale;   /* bytes that arrived after the frame, dropped */
        bool done;
};

void modbus_reasm_expect(struct modbus_reasm *r, const struct modbus_request *req);

/* Returns 1 when a complete frame with a valid CRC is in r->buf[0..r->len), 0 when more
 * chunks are needed, or -EBADMSG when a complete candidate frame failed its CRC. After 1 or
 * an error, further chunks are counted as stale until the next modbus_reasm_expect(). */
int modbus_reasm_feed(struct modbus_reasm *r, const uint8_t *chunk, size_t n);

static inline uint16_t be16(const uint8_t *p)
{
        return (uint16_t)(p[0] << 8 | p[1]);
}
