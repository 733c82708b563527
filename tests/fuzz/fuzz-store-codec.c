/* SPDX-License-Identifier: MIT */
/* libFuzzer: bytes read back from the database (a damaged file, a disk that lies) through the
 * poll row and chunk readers of both formats. Whatever decodes must encode again to rows that
 * decode to the same values. Byte 0 of an input selects the format; the rest is the row. */
#include <stdlib.h>
#include <string.h>

#include "store-codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_poll_row(const uint8_t *p, size_t len, int format)
{
        struct poll_row_reader rd;
        struct stored_reading r;
        poll_row_reader_init(&rd, p, len, format);
        uint8_t *again = malloc(len * POLL_ROW_READING_MAX + 1);
        struct stored_reading *seen = malloc((len + 1) * sizeof *seen);
        size_t n = 0, out = 0;
        int64_t prev = 0;
        while (poll_row_next(&rd, &r) > 0) {
                if (r.kid < 0)
                        __builtin_trap();
                seen[n++] = r;
                out += poll_row_put(again + out, &prev, &r);
        }
        poll_row_reader_init(&rd, again, out, 2);
        for (size_t i = 0; i < n; i++)
                if (poll_row_next(&rd, &r) != 1 || r.kid != seen[i].kid || r.kind != seen[i].kind ||
                        r.value != seen[i].value)
                        __builtin_trap();
        if (poll_row_next(&rd, &r) != 0)
                __builtin_trap();
        free(again);
        free(seen);
}

static void check_chunk(const uint8_t *p, size_t len, int format)
{
        struct chunk_reader rd;
        chunk_reader_init(&rd, p, len, 1764400000000LL, format);
        uint8_t *again = malloc(len * CHUNK_SAMPLE_MAX + 1);
        int64_t *seen = malloc((len + 1) * 2 * sizeof *seen);
        struct chunk_writer w;
        chunk_writer_init(&w, again, 1764400000000LL);
        size_t n = 0;
        int64_t t, v;
        while (chunk_next(&rd, &t, &v) > 0) {
                seen[2 * n] = t;
                seen[2 * n + 1] = v;
                n++;
                chunk_put(&w, t, v);
        }
        chunk_reader_init(&rd, again, w.len, 1764400000000LL, 2);
        for (size_t i = 0; i < n; i++)
                if (chunk_next(&rd, &t, &v) != 1 || t != seen[2 * i] || v != seen[2 * i + 1])
                        __builtin_trap();
        free(again);
        free(seen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 1)
                return 0;
        int format = 1 + (data[0] & 1);
        if (data[0] & 2)
                check_chunk(data + 1, size - 1, format);
        else
                check_poll_row(data + 1, size - 1, format);
        return 0;
}
