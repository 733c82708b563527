/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame-decode.h"
#include "macro.h"
#include "modbus.h"
#include "readings-json.h"
#include "renogy/shunt.h"

static int parse_register(const char *s, size_t len, uint16_t *out)
{
        char buf[16];
        if (len == 0 || len >= sizeof buf)
                return -EINVAL;
        memcpy(buf, s, len);
        buf[len] = 0;
        char *end;
        errno = 0;
        unsigned long v = strtoul(buf, &end, 0);
        if (errno || *end || v > 0xFFFF || buf[0] == '-')
                return -EINVAL;
        *out = (uint16_t)v;
        return 0;
}

static int decode_shunt(
        char *const *args, int n_args, struct renogy_readings *out, char *err, size_t err_size)
{
        uint8_t frame[1024];
        size_t len = 0;
        for (int i = 0; i < n_args; i++) {
                if (!startswith(args[i], "notify:")) {
                        snprintf(err, err_size, "argument %d: shunt frames are given as notify:HEX", i + 1);
                        return -EINVAL;
                }
                int n = hex_decode(args[i] + 7, frame + len, sizeof frame - len);
                if (n < 0) {
                        snprintf(err, err_size, "argument %d: %s", i + 1,
                                n == -EMSGSIZE ? "frames too long" : "not a hex string");
                        return -EINVAL;
                }
                len += (size_t)n;
        }
        int r = shunt_decode_frame(frame, len, out);
        if (r == -EBADMSG)
                snprintf(err, err_size, "no live shunt frame (42 57 01 19) in the data");
        else if (r == -EMSGSIZE)
                snprintf(err, err_size, "shunt frame too short (%zu bytes, at least %d needed)", len,
                        SHUNT_MIN_FRAME_LEN);
        else if (r == -ERANGE)
                snprintf(err, err_size, "implausible shunt frame (voltage, current or power out of range)");
        return r;
}

int frames_decode(const struct renogy_family *fam, char *const *args, int n_args,
        struct renogy_readings *out, char *err, size_t err_size)
{
        if (n_args <= 0) {
                snprintf(err, err_size, "no frames given");
                return -EINVAL;
        }
        if (fam->byte_addressed)
                return decode_shunt(args, n_args, out, err, err_size);

        struct renogy_image img;
        renogy_image_init(&img);
        for (int i = 0; i < n_args; i++) {
                const char *colon = strchr(args[i], ':');
                uint16_t reg;
                if (!colon || parse_register(args[i], (size_t)(colon - args[i]), &reg) < 0) {
                        snprintf(err, err_size, "argument %d: expected REG:HEX with REG a register number",
                                i + 1);
                        return -EINVAL;
                }
                uint8_t frame[MODBUS_MAX_FRAME];
                int n = hex_decode(colon + 1, frame, sizeof frame);
                if (n < 0) {
                        snprintf(err, err_size, "argument %d: %s", i + 1,
                                n == -EMSGSIZE ? "frame longer than 256 bytes" : "not a hex string");
                        return -EINVAL;
                }
                /* A capture carries no request: accept any id, take the count from the reply. */
                struct modbus_request req = {
                        .id = MODBUS_BROADCAST_ID,
                        .function = MODBUS_FN_READ_HOLDING,
                        .reg = reg,
                        .count = n >= 3 ? frame[2] / 2 : 0,
                };
                struct modbus_reply reply;
                int r = modbus_parse_reply(frame, (size_t)n, &req, &reply);
                if (r == -EREMOTEIO) {
                        snprintf(err, err_size, "frame %d (register %u): exception %02x (%s)", i + 1, reg,
                                reply.exception, modbus_exception_name(reply.exception));
                        return r;
                }
                if (r < 0) {
                        snprintf(
                                err, err_size, "frame %d (register %u): %s", i + 1, reg, modbus_strerror(r));
                        return r;
                }
                if ((uint32_t)reg + reply.count > 0x10000) {
                        snprintf(err, err_size, "frame %d: registers past 0xFFFF", i + 1);
                        return -EINVAL;
                }
                r = renogy_image_add_words(&img, reg, reply.data, reply.count);
                if (r < 0) {
                        snprintf(err, err_size, "too many frames (at most %d)", RENOGY_IMAGE_SEGMENTS);
                        return r;
                }
        }
        int r = renogy_decode(fam, &img, out);
        if (r < 0)
                snprintf(err, err_size, "too many readings");
        return r < 0 ? r : 0;
}
