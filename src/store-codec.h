/* SPDX-License-Identifier: MIT */
#pragma once

/* Byte formats of the store's rows. Pure code: no SQLite, no I/O, so that it can be unit-tested
 * and fuzzed apart from the database.
 *
 * A poll row (format 2) holds every reading of one poll, each as
 *     varint zigzag(kid - previous kid), u8 kind, varint zigzag(value)
 * Keys of one device are numbered in the order first seen, so the kid delta is almost always 1
 * and one byte; a typical reading takes four bytes instead of format 1's fixed seven.
 *
 * A chunk (format 2) holds one key over one hour:
 *     first sample:  varint (t - t0) ms, varint zigzag(value)
 *     then:          varint zigzag(dt - previous dt) ms, varint zigzag(value - previous value)
 * Polls run at a fixed rate, so the delta of delta of the time is a few ms: one byte. */

#include <stddef.h>
#include <stdint.h>

enum {
        STORED_NUM = 0x00, /* low nibble: decimals */
        STORED_ENUM = 0x10,
        STORED_FLAG = 0x20,
        STORED_BITS = 0x30,
};

struct stored_reading {
        int64_t kid;
        uint8_t kind;
        int32_t value;
};

/* Bound of one encoded reading: kid delta (≤ 10), kind (1), value (≤ 5). */
#define POLL_ROW_READING_MAX 16
/* Bound of one encoded chunk sample: time (≤ 10) and value (≤ 10). */
#define CHUNK_SAMPLE_MAX 20

size_t varint_put(uint8_t *p, uint64_t v);
/* 0, or -EBADMSG for a varint that runs off the end or past 64 bits. */
int varint_get(const uint8_t *p, size_t len, size_t *at, uint64_t *v);
uint64_t zigzag(int64_t v);
int64_t unzigzag(uint64_t v);

/* Appends one reading to a row being built; *prev_kid starts at 0. Returns the bytes added
 * (out must have POLL_ROW_READING_MAX free). */
size_t poll_row_put(uint8_t *out, int64_t *prev_kid, const struct stored_reading *r);

struct poll_row_reader {
        const uint8_t *p;
        size_t len, at;
        int64_t kid;
        int format; /* 1 or 2 */
};

void poll_row_reader_init(struct poll_row_reader *rd, const uint8_t *p, size_t len, int format);
/* 1 with *out filled, 0 at the end, -EBADMSG for a damaged row (with at most what came before
 * it returned). */
int poll_row_next(struct poll_row_reader *rd, struct stored_reading *out);

struct chunk_writer {
        uint8_t *out;
        size_t len;
        int64_t t_ms, dt_ms, value;
        size_t n;
};

/* out must have CHUNK_SAMPLE_MAX bytes per sample to be added. */
void chunk_writer_init(struct chunk_writer *w, uint8_t *out, int64_t t0_ms);
void chunk_put(struct chunk_writer *w, int64_t t_ms, int64_t value);

struct chunk_reader {
        const uint8_t *p;
        size_t len, at;
        int64_t t_ms, dt_ms, value;
        size_t n;
        int format; /* 1: time and value deltas; 2: delta of delta of the time */
};

void chunk_reader_init(struct chunk_reader *rd, const uint8_t *p, size_t len, int64_t t0_ms, int format);
/* 1 with the sample, 0 at the end, -EBADMSG for a damaged chunk. */
int chunk_next(struct chunk_reader *rd, int64_t *t_ms, int64_t *value);
