/* SPDX-License-Identifier: MIT */
/* libFuzzer: notification chunks through the reassembler, the reply parser and every family's
 * decoder; the same bytes through the shunt stream. Layout of an input:
 *   byte 0: family index, byte 1: chunk size (1..255), bytes 2-3: start register,
 *   bytes 4-5: request word count, byte 6: request id, rest: notification bytes. */
#include <stddef.h>
#include <stdint.h>

#include "modbus.h"
#include "renogy/family.h"
#include "renogy/shunt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 7)
                return 0;
        size_t n_fam;
        const struct renogy_family *const *fams = renogy_families(&n_fam);
        const struct renogy_family *fam = fams[data[0] % n_fam];
        size_t chunk = data[1] ? data[1] : 1;
        struct modbus_request req = {
                .id = data[6],
                .function = MODBUS_FN_READ_HOLDING,
                .reg = be16(data + 2),
                .count = be16(data + 4) % (MODBUS_MAX_READ_WORDS + 1),
        };
        data += 7;
        size -= 7;

        struct modbus_reasm r;
        modbus_reasm_expect(&r, &req);
        struct renogy_readings out;
        for (size_t at = 0; at < size; at += chunk) {
                size_t n = size - at < chunk ? size - at : chunk;
                int ret = modbus_reasm_feed(&r, data + at, n);
                if (ret == 1) {
                        struct modbus_reply rep;
                        if (modbus_parse_reply(r.buf, r.len, &req, &rep) == 0) {
                                struct renogy_image img;
                                renogy_image_init(&img);
                                renogy_image_add_words(&img, rep.reg, rep.data, rep.count);
                                renogy_decode(fam, &img, &out);
                        }
                }
                if (ret != 0)
                        modbus_reasm_expect(&r, &req);
        }

        /* The raw bytes as a register image, decoded by every family. */
        struct renogy_image img;
        renogy_image_init(&img);
        renogy_image_add_words(&img, req.reg, data, (size < 256 ? size : 256) / 2);
        renogy_decode(fam, &img, &out);

        struct shunt_stream s;
        shunt_stream_reset(&s);
        uint8_t frame[SHUNT_LIVE_FRAME_LEN];
        size_t flen;
        for (size_t at = 0; at < size; at += chunk) {
                size_t n = size - at < chunk ? size - at : chunk;
                if (shunt_stream_feed(&s, data + at, n, frame, &flen))
                        shunt_decode_frame(frame, flen, &out);
        }
        shunt_decode_frame(data, size, &out);
        return 0;
}
