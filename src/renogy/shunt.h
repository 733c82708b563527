/* SPDX-License-Identifier: MIT */
#pragma once

/* Smart Shunt live-frame stream: frames start with 42 57 01 19 and are 110 bytes long; they
 * may be split across notifications or coalesced. No checksum: plausibility checks instead. */

#include <errno.h>
#include <stdbool.h>

#include "renogy/family.h"

#define SHUNT_LIVE_FRAME_LEN 110
#define SHUNT_MIN_FRAME_LEN  28

struct shunt_stream {
        uint8_t buf[2 * SHUNT_LIVE_FRAME_LEN];
        size_t len;
};

void shunt_stream_reset(struct shunt_stream *s);
/* Returns 1 and the latest complete live frame when one completed, else 0. */
int shunt_stream_feed(
        struct shunt_stream *s, const uint8_t *data, size_t n, uint8_t *frame, size_t *frame_len);
/* Decodes a live frame (a shorter prefix of at least 28 bytes is accepted). Returns 0,
 * -EBADMSG (no live header), -EMSGSIZE (too short) or -ERANGE (implausible values). */
int shunt_decode_frame(const uint8_t *frame, size_t len, struct renogy_readings *out);
int shunt_frame_check(const struct renogy_readings *r);
