/* SPDX-License-Identifier: MIT */
/* Byte formats of the store: poll rows and chunks round-trip, format 1 still reads, damaged
 * bytes are refused instead of read past. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "store-codec.h"
#include "run-suite.h"

START_TEST(varint_and_zigzag)
{
        const int64_t values[] = {
                0, 1, -1, 63, -64, 64, 300, -300, INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN};
        for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
                uint8_t buf[10];
                size_t n = varint_put(buf, zigzag(values[i])), at = 0;
                uint64_t u;
                ck_assert_int_eq(varint_get(buf, n, &at, &u), 0);
                ck_assert_uint_eq(at, n);
                ck_assert_int_eq(unzigzag(u), values[i]);
        }
        /* Small magnitudes of either sign take one byte: that is the point of zigzag. */
        uint8_t buf[10];
        ck_assert_uint_eq(varint_put(buf, zigzag(-64)), 1);
        ck_assert_uint_eq(varint_put(buf, zigzag(63)), 1);
        /* A varint cut short, and one longer than 64 bits. */
        const uint8_t cut[] = {0x80, 0x80};
        size_t at = 0;
        uint64_t u;
        ck_assert_int_eq(varint_get(cut, sizeof cut, &at, &u), -EBADMSG);
        uint8_t huge[11];
        memset(huge, 0xFF, sizeof huge);
        at = 0;
        ck_assert_int_eq(varint_get(huge, sizeof huge, &at, &u), -EBADMSG);
}
END_TEST

START_TEST(poll_row_round_trip_and_size)
{
        /* A charge controller's poll: 33 readings, keys numbered in order. */
        struct stored_reading in[33];
        for (int i = 0; i < 33; i++)
                in[i] = (struct stored_reading){.kid = 40 + i,
                        .kind = (uint8_t)(STORED_NUM | (i % 3)),
                        .value = (i * 37) % 2000 - 100};
        in[32] = (struct stored_reading){.kid = 7, .kind = STORED_ENUM, .value = INT32_MIN};
        uint8_t row[33 * POLL_ROW_READING_MAX];
        size_t len = 0;
        int64_t prev = 0;
        for (int i = 0; i < 33; i++)
                len += poll_row_put(row + len, &prev, &in[i]);
        ck_assert_uint_lt(len, 33 * 5); /* format 1 took 7 bytes each */
        struct poll_row_reader rd;
        struct stored_reading r;
        poll_row_reader_init(&rd, row, len, 2);
        for (int i = 0; i < 33; i++) {
                ck_assert_int_eq(poll_row_next(&rd, &r), 1);
                ck_assert_int_eq(r.kid, in[i].kid);
                ck_assert_uint_eq(r.kind, in[i].kind);
                ck_assert_int_eq(r.value, in[i].value);
        }
        ck_assert_int_eq(poll_row_next(&rd, &r), 0);
        /* Cut anywhere inside the last reading: the readings before it, then an error. */
        poll_row_reader_init(&rd, row, len - 1, 2);
        int got = 0, rc;
        while ((rc = poll_row_next(&rd, &r)) > 0)
                got++;
        ck_assert_int_eq(got, 32);
        ck_assert_int_eq(rc, -EBADMSG);
}
END_TEST

START_TEST(poll_row_format_1)
{
        /* kid 0x0102, one decimal, 13.4 V; kid 3, enum, -1 */
        const uint8_t v1[] = {
                0x01, 0x02, 0x01, 0, 0, 0, 134, 0x00, 0x03, 0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x00};
        struct poll_row_reader rd;
        struct stored_reading r;
        poll_row_reader_init(&rd, v1, sizeof v1, 1);
        ck_assert_int_eq(poll_row_next(&rd, &r), 1);
        ck_assert_int_eq(r.kid, 0x102);
        ck_assert_uint_eq(r.kind, 0x01);
        ck_assert_int_eq(r.value, 134);
        ck_assert_int_eq(poll_row_next(&rd, &r), 1);
        ck_assert_int_eq(r.kid, 3);
        ck_assert_int_eq(r.value, -1);
        ck_assert_int_eq(poll_row_next(&rd, &r), -EBADMSG); /* one stray byte */
}
END_TEST

START_TEST(poll_row_rejects_out_of_range)
{
        uint8_t row[32];
        size_t n = varint_put(row, zigzag(1));
        row[n++] = STORED_NUM;
        n += varint_put(row + n, zigzag((int64_t)INT32_MAX + 1)); /* no reading is that large */
        struct poll_row_reader rd;
        struct stored_reading r;
        poll_row_reader_init(&rd, row, n, 2);
        ck_assert_int_eq(poll_row_next(&rd, &r), -EBADMSG);
        /* A kid below zero. */
        n = varint_put(row, zigzag(-5));
        row[n++] = STORED_NUM;
        n += varint_put(row + n, 0);
        poll_row_reader_init(&rd, row, n, 2);
        ck_assert_int_eq(poll_row_next(&rd, &r), -EBADMSG);
        poll_row_reader_init(&rd, NULL, 99, 2);
        ck_assert_int_eq(poll_row_next(&rd, &r), 0);
}
END_TEST

START_TEST(chunk_round_trip_and_size)
{
        /* An hour at 10 s with a few ms of jitter and a slowly moving value. */
        enum { N = 360 };
        int64_t t0 = 1764400000000LL, t[N], v[N];
        for (int i = 0; i < N; i++) {
                t[i] = t0 + 3 + (int64_t)i * 10000 + (i * 7) % 5;
                v[i] = 1330 + (i % 40) - 20;
        }
        uint8_t buf[N * CHUNK_SAMPLE_MAX];
        struct chunk_writer w;
        chunk_writer_init(&w, buf, t0);
        for (int i = 0; i < N; i++)
                chunk_put(&w, t[i], v[i]);
        /* Two bytes a sample: one for the time, one for the value (plus the first sample). */
        ck_assert_uint_le(w.len, 2 * N + 8);
        struct chunk_reader rd;
        chunk_reader_init(&rd, buf, w.len, t0, 2);
        int64_t tt, vv;
        for (int i = 0; i < N; i++) {
                ck_assert_int_eq(chunk_next(&rd, &tt, &vv), 1);
                ck_assert_int_eq(tt, t[i]);
                ck_assert_int_eq(vv, v[i]);
        }
        ck_assert_int_eq(chunk_next(&rd, &tt, &vv), 0);
        chunk_reader_init(&rd, buf, w.len - 1, t0, 2);
        int rc, got = 0;
        while ((rc = chunk_next(&rd, &tt, &vv)) > 0)
                got++;
        ck_assert_int_eq(got, N - 1);
        ck_assert_int_eq(rc, -EBADMSG);
}
END_TEST

START_TEST(chunk_format_1)
{
        /* Format 1: time delta from t0 in ms, zigzag value delta. */
        uint8_t buf[32];
        size_t n = 0;
        n += varint_put(buf + n, 5);
        n += varint_put(buf + n, zigzag(120));
        n += varint_put(buf + n, 10000);
        n += varint_put(buf + n, zigzag(-3));
        struct chunk_reader rd;
        chunk_reader_init(&rd, buf, n, 1000, 1);
        int64_t t, v;
        ck_assert_int_eq(chunk_next(&rd, &t, &v), 1);
        ck_assert_int_eq(t, 1005);
        ck_assert_int_eq(v, 120);
        ck_assert_int_eq(chunk_next(&rd, &t, &v), 1);
        ck_assert_int_eq(t, 11005);
        ck_assert_int_eq(v, 117);
        ck_assert_int_eq(chunk_next(&rd, &t, &v), 0);
}
END_TEST

int main(void)
{
        Suite *su = suite_create("store-codec");
        TCase *tc = tcase_create("formats");
        tcase_add_test(tc, varint_and_zigzag);
        tcase_add_test(tc, poll_row_round_trip_and_size);
        tcase_add_test(tc, poll_row_format_1);
        tcase_add_test(tc, poll_row_rejects_out_of_range);
        tcase_add_test(tc, chunk_round_trip_and_size);
        tcase_add_test(tc, chunk_format_1);
        suite_add_tcase(su, tc);
        return run_suite(su);
}
