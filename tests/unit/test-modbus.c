/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "macro.h"
#include "modbus.h"
#include "readings-json.h"
#include "run-suite.h"

static const char *rover_73 =
        "ff03440064009000040e1900000000000000e8000400010000008f009100110000000100000000000000000000022b0001"
        "00000000137c00000000000101900000000000040000a3d2";

static size_t unhex(const char *s, uint8_t *out)
{
        int n = hex_decode(s, out, MODBUS_MAX_FRAME);
        ck_assert_int_ge(n, 0);
        return (size_t)n;
}

START_TEST(crc_check_value)
{
        ck_assert_uint_eq(modbus_crc16((const uint8_t *)"123456789", 9), 0x4B37);
        uint8_t f[MODBUS_MAX_FRAME];
        size_t n = unhex(rover_73, f);
        ck_assert_uint_eq(modbus_crc16(f, n), 0);
}
END_TEST

/* The bitwise definition, one bit at a time, against the table-driven implementation: every byte
 * value after every register state reachable from the first byte, and random-length messages. */
static uint16_t crc16_bitwise(const uint8_t *p, size_t n)
{
        uint16_t crc = 0xFFFF;
        for (size_t i = 0; i < n; i++) {
                crc ^= p[i];
                for (int b = 0; b < 8; b++)
                        crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xA001) : (uint16_t)(crc >> 1);
        }
        return crc;
}

START_TEST(crc_table_matches_bitwise_definition)
{
        uint8_t buf[300];
        for (int a = 0; a < 256; a++)
                for (int b = 0; b < 256; b++) {
                        buf[0] = (uint8_t)a;
                        buf[1] = (uint8_t)b;
                        ck_assert_uint_eq(modbus_crc16(buf, 2), crc16_bitwise(buf, 2));
                }
        uint32_t x = 12345;
        for (size_t n = 0; n < sizeof buf; n++) {
                x = x * 1103515245u + 12345u;
                buf[n] = (uint8_t)(x >> 16);
                ck_assert_uint_eq(modbus_crc16(buf, n + 1), crc16_bitwise(buf, n + 1));
        }
}
END_TEST

START_TEST(build_requests)
{
        uint8_t out[8];
        ck_assert_int_eq(modbus_build_read(out, 0xFF, 0x0100, 0x22), 8);
        ck_assert_mem_eq(out, "\xff\x03\x01\x00\x00\x22\xd1\xf1", 8);
        modbus_build_read(out, 0xFF, 0x0100, 7);
        ck_assert_mem_eq(out, "\xff\x03\x01\x00\x00\x07\x10\x2a", 8);
        modbus_build_write(out, 0xFF, 0x010A, 1);
        ck_assert_mem_eq(out, "\xff\x06\x01\x0a\x00\x01\x7c\x2a", 8);
        modbus_build_write(out, 0xFF, 0x010A, 0);
        ck_assert_mem_eq(out, "\xff\x06\x01\x0a\x00\x00\xbd\xea", 8);
        ck_assert_int_eq(modbus_build_read(out, 1, 0, 0), -EINVAL);
        ck_assert_int_eq(modbus_build_read(out, 1, 0, 0x7E), -EINVAL);
}
END_TEST

static int parse_hex(const char *hex, struct modbus_request req, struct modbus_reply *rep)
{
        /* rep->data points into the frame: it must outlive this call. */
        static uint8_t f[MODBUS_MAX_FRAME];
        size_t n = unhex(hex, f);
        return modbus_parse_reply(f, n, &req, rep);
}

START_TEST(parse_ok_and_errors)
{
        struct modbus_reply rep;
        struct modbus_request rd = {.id = 0xFF, .function = 3, .reg = 0x100, .count = 34};
        ck_assert_int_eq(parse_hex(rover_73, rd, &rep), 0);
        ck_assert_uint_eq(rep.count, 34);
        ck_assert_uint_eq(be16(rep.data), 100);

        /* Truncated: one byte short, and too long. */
        char buf[200];
        snprintf(buf, sizeof buf, "%.*s", (int)strlen(rover_73) - 2, rover_73);
        ck_assert_int_eq(parse_hex(buf, rd, &rep), -EMSGSIZE);
        snprintf(buf, sizeof buf, "%s00", rover_73);
        ck_assert_int_eq(parse_hex(buf, rd, &rep), -EMSGSIZE);
        ck_assert_int_eq(parse_hex("ff03", rd, &rep), -EMSGSIZE);

        /* Bad CRC: flip one data bit. */
        strcpy(buf, rover_73);
        buf[9] = buf[9] == '0' ? '1' : '0';
        ck_assert_int_eq(parse_hex(buf, rd, &rep), -EBADMSG);

        /* Wrong device id: a reply from 0x30 to a request for 0x31. */
        struct modbus_request bat = {.id = 0x31, .function = 3, .reg = 5042, .count = 6};
        ck_assert_int_eq(parse_hex("30030c014601f80000c2840000c34d96d6", bat, &rep), -ENXIO);
        /* ...but a request to 0xFF accepts the module's own id. */
        bat.id = 0xFF;
        ck_assert_int_eq(parse_hex("30030c014601f80000c2840000c34d96d6", bat, &rep), 0);
        ck_assert_uint_eq(rep.id, 0x30);

        /* Byte count that does not match the words requested. */
        bat.count = 7;
        ck_assert_int_eq(parse_hex("30030c014601f80000c2840000c34d96d6", bat, &rep), -EBADE);

        /* Wrong function: a write echo to a read. */
        struct modbus_request rd1 = {.id = 0xFF, .function = 3, .reg = 0x10A, .count = 1};
        ck_assert_int_eq(parse_hex("ff06010a00017c2a", rd1, &rep), -EPROTO);

        /* Exception replies, named. */
        struct modbus_request ex = {.id = 0xFF, .function = 3, .reg = 0, .count = 1};
        ck_assert_int_eq(parse_hex("308302913e", ex, &rep), -EREMOTEIO);
        ck_assert_uint_eq(rep.exception, 2);
        ck_assert_str_eq(modbus_exception_name(rep.exception), "illegal data address");
        struct modbus_request doc = {.id = 1, .function = 3, .reg = 10, .count = 1};
        ck_assert_int_eq(parse_hex("018302c0f1", doc, &rep), -EREMOTEIO);

        /* Write echo. */
        struct modbus_request wr = {.id = 0xFF, .function = 6, .reg = 0x10A, .value = 1};
        ck_assert_int_eq(parse_hex("ff06010a00017c2a", wr, &rep), 0);
        wr.value = 0;
        ck_assert_int_eq(parse_hex("ff06010a00017c2a", wr, &rep), -EBADE);
        ck_assert_str_eq(modbus_strerror(-EBADMSG), "bad CRC");
}
END_TEST

static int feed_split(const uint8_t *f, size_t n, const size_t *cuts, size_t n_cuts, struct modbus_reasm *r)
{
        size_t at = 0;
        int ret = 0;
        for (size_t c = 0; c <= n_cuts; c++) {
                size_t end = c < n_cuts ? cuts[c] : n;
                ret = modbus_reasm_feed(r, f + at, end - at);
                if (ret != 0 && c < n_cuts)
                        return -1000; /* completed too early */
                at = end;
        }
        return ret;
}

/* Every split of the frame into two and into three chunks yields exactly the frame. */
START_TEST(reassembly_every_split)
{
        static const char *frames[] = {
                NULL, /* rover_73 */
                "30032200040020002100210020000000000000000000000000000000000000000000000000150c",
                "308302913e",
                "ff06010a00017c2a",
        };
        static const struct modbus_request reqs[] = {
                {.id = 0xFF, .function = 3, .reg = 0x100, .count = 34},
                {.id = 0x30, .function = 3, .reg = 5000, .count = 17},
                {.id = 0xFF, .function = 3, .reg = 0, .count = 1},
                {.id = 0xFF, .function = 6, .reg = 0x10A, .value = 1},
        };
        for (size_t k = 0; k < 4; k++) {
                uint8_t f[MODBUS_MAX_FRAME];
                size_t n = unhex(frames[k] ? frames[k] : rover_73, f);
                struct modbus_reasm r;
                for (size_t a = 1; a < n; a++)
                        for (size_t b = a; b < n; b++) {
                                size_t cuts[2] = {a, b};
                                modbus_reasm_expect(&r, &reqs[k]);
                                ck_assert_int_eq(feed_split(f, n, cuts, a == b ? 1 : 2, &r), 1);
                                ck_assert_uint_eq(r.len, n);
                                ck_assert_mem_eq(r.buf, f, n);
                        }
                /* Uniform chunk sizes 1..n, as modules with any ATT MTU send them. */
                for (size_t size = 1; size <= n; size++) {
                        modbus_reasm_expect(&r, &reqs[k]);
                        int ret = 0;
                        for (size_t at = 0; at < n; at += size)
                                ret = modbus_reasm_feed(&r, f + at, MIN(size, n - at));
                        ck_assert_int_eq(ret, 1);
                        ck_assert_mem_eq(r.buf, f, n);
                }
        }
}
END_TEST

START_TEST(reassembly_garbage_and_recovery)
{
        uint8_t f[MODBUS_MAX_FRAME + 4];
        f[0] = 0x99;
        f[1] = 0x88;
        size_t n = unhex(rover_73, f + 2) + 2;
        struct modbus_request req = {.id = 0xFF, .function = 3, .reg = 0x100, .count = 34};
        struct modbus_reasm r;
        modbus_reasm_expect(&r, &req);
        ck_assert_int_eq(modbus_reasm_feed(&r, f, 20), 0);
        ck_assert_int_eq(modbus_reasm_feed(&r, f + 20, n - 20), 1);
        ck_assert_uint_eq(r.skipped, 2);
        ck_assert_uint_eq(r.len, n - 2);

        /* Bad CRC: an error, then the next expected frame reassembles. */
        f[10] ^= 0x40;
        modbus_reasm_expect(&r, &req);
        ck_assert_int_eq(modbus_reasm_feed(&r, f, n), -EBADMSG);
        f[10] ^= 0x40;
        modbus_reasm_expect(&r, &req);
        ck_assert_int_eq(modbus_reasm_feed(&r, f, n), 1);

        /* Bytes after the frame are counted stale, not kept. */
        uint8_t tail[3] = {1, 2, 3};
        ck_assert_int_eq(modbus_reasm_feed(&r, tail, 3), 0);
        ck_assert_uint_eq(r.stale, 3);

        /* A flood of garbage never overflows the buffer. */
        uint8_t junk[4096];
        for (size_t i = 0; i < sizeof junk; i++)
                junk[i] = (uint8_t)(i * 7);
        modbus_reasm_expect(&r, &req);
        for (int i = 0; i < 100; i++)
                ck_assert_int_ge(modbus_reasm_feed(&r, junk, sizeof junk), -EBADMSG);
        ck_assert_uint_le(r.len, sizeof r.buf);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("modbus");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, crc_check_value);
        tcase_add_test(tc, crc_table_matches_bitwise_definition);
        tcase_add_test(tc, build_requests);
        tcase_add_test(tc, parse_ok_and_errors);
        tcase_add_test(tc, reassembly_every_split);
        tcase_add_test(tc, reassembly_garbage_and_recovery);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return run_suite(suite());
}
