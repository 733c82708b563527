/* SPDX-License-Identifier: MIT */
/* Every golden vector of the protocol reference, decoded to exactly the values it lists. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame-decode.h"
#include "modbus.h"
#include "readings-json.h"
#include "renogy/shunt.h"
#include "run-suite.h"

static json_t *vectors;

static void load(void)
{
        const char *dir = getenv("BLUPOW_TEST_DATA");
        char path[512];
        snprintf(path, sizeof path, "%s/vectors.json", dir ? dir : "tests/data");
        json_error_t err;
        vectors = json_load_file(path, 0, &err);
        if (!vectors) {
                fprintf(stderr, "cannot load %s: %s\n", path, err.text);
                exit(1);
        }
}

static bool values_equal(json_t *want, json_t *got)
{
        if (json_is_number(want) && json_is_number(got))
                return fabs(json_number_value(want) - json_number_value(got)) < 1e-9;
        return json_equal(want, got);
}

START_TEST(decode_every_vector)
{
        json_t *list = json_object_get(vectors, "vectors");
        ck_assert_int_gt((int)json_array_size(list), 10);
        size_t i, checked = 0;
        json_t *v;
        json_array_foreach(list, i, v)
        {
                const char *id = json_string_value(json_object_get(v, "id"));
                const struct renogy_family *fam =
                        renogy_family_find(json_string_value(json_object_get(v, "family")));
                ck_assert_msg(fam, "%s: unknown family", id);
                const char *variant = json_string_value(json_object_get(v, "variant"));
                if (variant) {
                        /* The plan the reported model chooses (RENOGY_BLE.md §8). */
                        const char *model =
                                json_string_value(json_object_get(json_object_get(v, "expect"), "model"));
                        char why[128];
                        fam = renogy_family_variant(fam, NULL, model, why, sizeof why);
                        ck_assert_msg(fam->variant && strcmp(fam->variant, variant) == 0,
                                "%s: model %s chose %s (%s)", id, model, fam->variant ?: "the base family",
                                why);
                }

                json_t *frames = json_object_get(v, "frames"), *fr;
                size_t j;
                char *args[16];
                int n = 0;
                json_array_foreach(frames, j, fr)
                {
                        json_t *reg = json_object_get(fr, "register");
                        char *a;
                        if (json_is_string(reg))
                                ck_assert_int_ge(asprintf(&a, "%s:%s", json_string_value(reg),
                                                         json_string_value(json_object_get(fr, "hex"))),
                                        0);
                        else
                                ck_assert_int_ge(asprintf(&a, "%lld:%s", (long long)json_integer_value(reg),
                                                         json_string_value(json_object_get(fr, "hex"))),
                                        0);
                        args[n++] = a;
                }
                struct renogy_readings rd;
                char err[256];
                int r = frames_decode(fam, args, n, &rd, err, sizeof err);
                ck_assert_msg(r == 0, "%s: %s", id, err);
                json_t *got = readings_json(&rd, false);

                const char *key;
                json_t *want;
                json_object_foreach(json_object_get(v, "expect"), key, want)
                {
                        json_t *g = json_object_get(json_object_get(got, key), "value");
                        char *ws = json_dumps(want, JSON_ENCODE_ANY),
                             *gs = g ? json_dumps(g, JSON_ENCODE_ANY) : NULL;
                        ck_assert_msg(g && values_equal(want, g), "%s: %s expected %s, got %s", id, key, ws,
                                gs ? gs : "nothing");
                        free(ws);
                        free(gs);
                        checked++;
                }
                json_decref(got);
                for (int k = 0; k < n; k++)
                        free(args[k]);
        }
        ck_assert_uint_gt(checked, 100);
}
END_TEST

/* Readings that the reference says must not be reported. */
START_TEST(absent_readings)
{
        char *legacy_temps[] = {"5017:30030a000300c800be00be00bef2b4"};
        struct renogy_readings rd;
        char err[256];
        ck_assert_int_eq(frames_decode(&renogy_battery, legacy_temps, 1, &rd, err, sizeof err), 0);
        ck_assert_ptr_nonnull(renogy_readings_get(&rd, "temperature_3"));
        ck_assert_ptr_null(renogy_readings_get(&rd, "temperature_4"));

        char *shunt[] = {"notify:"
                         "4257011901001630a0240806a1230836a202137fa4ffddf1a60033e5a6100000a70003c5a7100000a8"
                         "0bc6b0a9000001aa04e800f8010000"};
        ck_assert_int_eq(frames_decode(&renogy_shunt, shunt, 1, &rd, err, sizeof err), 0);
        ck_assert_ptr_null(renogy_readings_get(&rd, "battery_temperature"));

        /* Inverter without AC input reports 0xFFFF: unavailable, not 6553.5 V. */
        char *inv[] = {"4000:200314ffffffff000000001770020000fa00000000ffffc59d"};
        ck_assert_int_eq(frames_decode(&renogy_inverter, inv, 1, &rd, err, sizeof err), 0);
        ck_assert_ptr_null(renogy_readings_get(&rd, "input_voltage"));
        ck_assert_ptr_null(renogy_readings_get(&rd, "input_current"));
        ck_assert_ptr_null(renogy_readings_get(&rd, "input_frequency"));
        ck_assert_double_eq_tol(renogy_readings_get(&rd, "output_frequency")->number, 60.0, 1e-9);
        ck_assert_double_eq_tol(renogy_readings_get(&rd, "battery_voltage")->number, 51.2, 1e-9);
}
END_TEST

START_TEST(requests_build_exactly)
{
        json_t *list = json_object_get(vectors, "requests"), *q;
        size_t i;
        json_array_foreach(list, i, q)
        {
                uint8_t out[8], want[16];
                int fn = (int)json_integer_value(json_object_get(q, "function"));
                uint8_t id = (uint8_t)json_integer_value(json_object_get(q, "device_id"));
                uint16_t reg = (uint16_t)json_integer_value(json_object_get(q, "register"));
                if (fn == 3)
                        modbus_build_read(
                                out, id, reg, (uint16_t)json_integer_value(json_object_get(q, "count")));
                else
                        modbus_build_write(
                                out, id, reg, (uint16_t)json_integer_value(json_object_get(q, "value")));
                ck_assert_int_eq(
                        hex_decode(json_string_value(json_object_get(q, "hex")), want, sizeof want), 8);
                ck_assert_msg(memcmp(out, want, 8) == 0, "%s", json_string_value(json_object_get(q, "id")));
        }
        ck_assert_uint_gt(i, 20);
}
END_TEST

START_TEST(exceptions_named)
{
        json_t *list = json_object_get(vectors, "exceptions"), *e;
        size_t i;
        json_array_foreach(list, i, e)
        {
                uint8_t req_b[16], rep_b[16];
                hex_decode(json_string_value(json_object_get(e, "request_hex")), req_b, sizeof req_b);
                int n = hex_decode(json_string_value(json_object_get(e, "hex")), rep_b, sizeof rep_b);
                struct modbus_request req = {.id = req_b[0],
                        .function = req_b[1],
                        .reg = be16(req_b + 2),
                        .count = be16(req_b + 4)};
                struct modbus_reply rep;
                json_t *x = json_object_get(e, "expect");
                ck_assert_int_eq(modbus_parse_reply(rep_b, (size_t)n, &req, &rep), -EREMOTEIO);
                ck_assert_int_eq(rep.id, json_integer_value(json_object_get(x, "device_id")));
                ck_assert_int_eq(rep.exception, json_integer_value(json_object_get(x, "exception_code")));
                ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(x, "meaning")),
                        modbus_exception_name(rep.exception)));
        }
}
END_TEST

START_TEST(reassembly_vectors)
{
        json_t *list = json_object_get(vectors, "reassembly"), *v;
        size_t i;
        json_array_foreach(list, i, v)
        {
                const char *id = json_string_value(json_object_get(v, "id"));
                json_t *chunks = json_object_get(v, "chunks"), *c;
                uint8_t want[256];
                int want_n = hex_decode(json_string_value(json_array_get(json_object_get(v, "frames"), 0)),
                        want, sizeof want);
                size_t j;
                if (strncmp(id, "shunt", 5) == 0) {
                        struct shunt_stream s;
                        shunt_stream_reset(&s);
                        uint8_t frame[SHUNT_LIVE_FRAME_LEN];
                        size_t flen = 0;
                        int found = 0;
                        json_array_foreach(chunks, j, c)
                        {
                                uint8_t buf[256];
                                int n = hex_decode(json_string_value(c), buf, sizeof buf);
                                found |= shunt_stream_feed(&s, buf, (size_t)n, frame, &flen);
                        }
                        ck_assert_int_eq(found, 1);
                        ck_assert_uint_eq(flen, (size_t)want_n);
                        ck_assert_mem_eq(frame, want, flen);
                        continue;
                }
                struct modbus_request req = {
                        .id = (uint8_t)json_integer_value(json_object_get(v, "expect_device_id")),
                        .function = want[1] & 0x7F,
                        .count = want[2] / 2};
                struct modbus_reasm r;
                modbus_reasm_expect(&r, &req);
                int ret = 0;
                json_array_foreach(chunks, j, c)
                {
                        uint8_t buf[256];
                        int n = hex_decode(json_string_value(c), buf, sizeof buf);
                        ret = modbus_reasm_feed(&r, buf, (size_t)n);
                }
                ck_assert_msg(ret == 1, "%s", id);
                ck_assert_uint_eq(r.len, (size_t)want_n);
                ck_assert_mem_eq(r.buf, want, r.len);
        }
}
END_TEST

START_TEST(bad_frames_rejected_with_reason)
{
        struct renogy_readings rd;
        char err[256];
        char *bad_crc[] = {"256:ff03020010905d"};
        ck_assert_int_eq(frames_decode(&renogy_controller, bad_crc, 1, &rd, err, sizeof err), -EBADMSG);
        ck_assert_ptr_nonnull(strstr(err, "bad CRC"));
        char *trunc[] = {"256:ff030200"};
        ck_assert_int_eq(frames_decode(&renogy_controller, trunc, 1, &rd, err, sizeof err), -EMSGSIZE);
        char *nohex[] = {"256:zz"};
        ck_assert_int_eq(frames_decode(&renogy_controller, nohex, 1, &rd, err, sizeof err), -EINVAL);
        char *noreg[] = {"ff03020010905c"};
        ck_assert_int_eq(frames_decode(&renogy_controller, noreg, 1, &rd, err, sizeof err), -EINVAL);
        char *exc[] = {"0:308302913e"};
        ck_assert_int_eq(frames_decode(&renogy_battery, exc, 1, &rd, err, sizeof err), -EREMOTEIO);
        ck_assert_ptr_nonnull(strstr(err, "illegal data address"));
        char *history[] = {"notify:4257010b000000000000000000000000000000000000000000000000000000000000"};
        ck_assert_int_eq(frames_decode(&renogy_shunt, history, 1, &rd, err, sizeof err), -EBADMSG);
}
END_TEST

/* RENOGY_BLE.md §8 P8 (patman15 fixture: raw −12 is −1.2 A on a Battery Pro): the variant comes
 * from the advertised name or the model string, and only the current's scale differs. */
START_TEST(battery_pro_current_in_tenths)
{
        char why[128];
        ck_assert_ptr_eq(
                renogy_battery_variant("RNGRBP12100B0042", NULL, why, sizeof why), &renogy_battery_pro);
        ck_assert_ptr_nonnull(strstr(why, "RNGRBP12100B0042"));
        ck_assert_ptr_eq(renogy_battery_variant("RNGC1200", "", why, sizeof why), &renogy_battery_pro);
        ck_assert_ptr_eq(renogy_battery_variant("BT-TH-481B1BB7", "RNGRBP12100B", why, sizeof why),
                &renogy_battery_pro);
        ck_assert_ptr_nonnull(strstr(why, "model RNGRBP12100B"));
        ck_assert_ptr_eq(renogy_battery_variant("RNGPRO1234", NULL, why, sizeof why), &renogy_battery);
        ck_assert_ptr_eq(
                renogy_battery_variant("BT-TH-481B1BB7", "RBT100LFP12S", why, sizeof why), &renogy_battery);
        ck_assert_ptr_eq(renogy_battery_variant(NULL, NULL, why, sizeof why), &renogy_battery);
        ck_assert_ptr_eq(renogy_family_base(&renogy_battery_pro), &renogy_battery);

        /* 5042 current −12, 5043 voltage 13.3 V */
        const uint8_t words[] = {0xFF, 0xF4, 0x00, 0x85};
        struct renogy_image img;
        renogy_image_init(&img);
        ck_assert_int_eq(renogy_image_add_words(&img, 5042, words, 2), 0);
        struct renogy_readings pro, std;
        renogy_decode(&renogy_battery_pro, &img, &pro);
        renogy_decode(&renogy_battery, &img, &std);
        const struct renogy_reading *ip = renogy_readings_get(&pro, "battery_current"),
                                    *is = renogy_readings_get(&std, "battery_current");
        ck_assert(ip && is);
        ck_assert_double_eq_tol(ip->number, -1.2, 1e-9);
        ck_assert_uint_eq(ip->decimals, 1);
        ck_assert_double_eq_tol(is->number, -0.12, 1e-9);
        ck_assert_double_eq_tol(renogy_readings_get(&pro, "battery_power")->number, -15.96, 1e-9);
        /* The simulator writes a Pro's registers in the Pro's scale. */
        uint8_t b[2];
        ck_assert_int_eq(renogy_encode_number(&renogy_battery_pro,
                                 renogy_field_find(&renogy_battery_pro, "battery_current"), -1.2, b, 2),
                0);
        ck_assert_uint_eq(b[0], 0xFF);
        ck_assert_uint_eq(b[1], 0xF4);
}
END_TEST

/* RENOGY_BLE.md §8 P11: battery type 0 on a controller is a user-defined battery. */
START_TEST(controller_battery_type_zero_is_custom)
{
        const uint8_t zero[] = {0x00, 0x00};
        struct renogy_image img;
        renogy_image_init(&img);
        ck_assert_int_eq(renogy_image_add_words(&img, 0xE004, zero, 1), 0);
        struct renogy_readings rd;
        renogy_decode(&renogy_controller, &img, &rd);
        const struct renogy_reading *r = renogy_readings_get(&rd, "battery_type");
        ck_assert_ptr_nonnull(r);
        ck_assert_str_eq(r->text, "custom");
}
END_TEST

/* RENOGY_BLE.md §8 P12: a DC-DC charger's 0x0109 may include the alternator (a G7 with both
 * inputs: solar 19.2 V × 4.10 A, 0x0109 = 252 W). It is published as reported; solar_power is the
 * solar input's own; the daily counter that then falls is a total, not total_increasing. */
START_TEST(dcc_solar_power_without_the_alternator)
{
        const uint8_t words[] = {0x00, 0xC0, 0x01, 0x9A, 0x00, 0xFC}; /* 0x0107..0x0109 */
        struct renogy_image img;
        renogy_image_init(&img);
        ck_assert_int_eq(renogy_image_add_words(&img, 0x0107, words, 3), 0);
        struct renogy_readings rd;
        renogy_decode(&renogy_dcc, &img, &rd);
        ck_assert_double_eq_tol(renogy_readings_get(&rd, "solar_power_reported")->number, 252, 1e-9);
        ck_assert_double_eq_tol(renogy_readings_get(&rd, "solar_power")->number, 79, 1e-9);
        ck_assert_str_eq(renogy_field_find(&renogy_dcc, "power_generation_today")->state_class, "total");
        ck_assert_str_eq(
                renogy_field_find(&renogy_dcc, "power_generation_total")->state_class, "total_increasing");
}
END_TEST

/* RENOGY_BLE.md §8 P1: the HF inverter-charger's own map, chosen by its model string; read
 * with the generic map, 4001 would be a current and 4333 watts. */
START_TEST(hf_inverter_map)
{
        char why[128];
        ck_assert_ptr_eq(renogy_family_variant(&renogy_inverter, NULL, "RIV1230PCH-23S", why, sizeof why),
                &renogy_inverter_hf);
        ck_assert_ptr_nonnull(strstr(why, "RIV1230PCH-23S"));
        ck_assert_ptr_eq(renogy_family_variant(&renogy_inverter, NULL, "RIV1230RCH-SPS", why, sizeof why),
                &renogy_inverter);
        ck_assert_ptr_eq(
                renogy_family_variant(&renogy_inverter, NULL, NULL, why, sizeof why), &renogy_inverter);
        ck_assert_ptr_eq(renogy_family_variant(&renogy_inverter, NULL, "RIV4835CSH1S", why, sizeof why),
                &renogy_inverter_riv4835);

        /* 4000 230.4 V, 4001 50.0 Hz, 4002 230.0 V, 4003 1.5 A, 4004 -, 4005 19.5 °C, 4006 33.0 °C */
        const uint8_t w4000[] = {
                0x09, 0x00, 0x01, 0xF4, 0x08, 0xFC, 0x00, 0x0F, 0x00, 0x00, 0x00, 0xC3, 0x01, 0x4A};
        /* 4328 −12.4 A, 4329–4331 -, 4332 charging, 4333 12.4 A */
        const uint8_t w4328[] = {0xFF, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x7C};
        const uint8_t w4405[] = {0x00, 0x05};
        struct renogy_image img;
        renogy_image_init(&img);
        ck_assert_int_eq(renogy_image_add_words(&img, 4000, w4000, 7), 0);
        ck_assert_int_eq(renogy_image_add_words(&img, 4328, w4328, 6), 0);
        ck_assert_int_eq(renogy_image_add_words(&img, 4405, w4405, 1), 0);
        struct renogy_readings hf, generic;
        ck_assert_int_gt(renogy_decode(&renogy_inverter_hf, &img, &hf), 0);
        ck_assert_double_eq_tol(renogy_readings_get(&hf, "input_frequency")->number, 50.0, 1e-9);
        ck_assert_double_eq_tol(renogy_readings_get(&hf, "output_voltage_setting")->number, 230.0, 1e-9);
        ck_assert_double_eq_tol(renogy_readings_get(&hf, "battery_discharge_current")->number, 1.5, 1e-9);
        ck_assert_double_eq_tol(renogy_readings_get(&hf, "battery_temperature")->number, 19.5, 1e-9);
        ck_assert_double_eq_tol(renogy_readings_get(&hf, "battery_current")->number, -12.4, 1e-9);
        ck_assert_double_eq_tol(renogy_readings_get(&hf, "charging_current")->number, 12.4, 1e-9);
        ck_assert_str_eq(renogy_readings_get(&hf, "charging_active")->text, "yes");
        ck_assert_str_eq(renogy_readings_get(&hf, "operating_mode")->text, "inverter_operation");
        ck_assert_ptr_null(renogy_readings_get(&hf, "input_current"));
        /* The generic map over the same words: what users of it saw. */
        renogy_decode(&renogy_inverter, &img, &generic);
        ck_assert_double_eq_tol(renogy_readings_get(&generic, "input_current")->number, 5.0, 1e-9);
        ck_assert_double_eq_tol(renogy_readings_get(&generic, "charging_power")->number, 124, 1e-9);
        /* Its plan: P1's blocks, 4311 optional. */
        const struct renogy_family *f = &renogy_inverter_hf;
        ck_assert_uint_eq(f->n_blocks, 6);
        for (size_t i = 0; i < f->n_blocks; i++)
                ck_assert(f->blocks[i].optional == (f->blocks[i].reg == 4311));
}
END_TEST

/* RENOGY_BLE.md §4.2: a G6 never answers 0x0120; its 0x0100 ×34 ends with the charging status
 * and the high fault word, decoded with the same table. */
START_TEST(dcc_g6_plan)
{
        char why[128];
        ck_assert_ptr_eq(
                renogy_family_variant(&renogy_dcc, NULL, "RBC50D1S-G6", why, sizeof why), &renogy_dcc_g6);
        ck_assert_ptr_eq(
                renogy_family_variant(&renogy_dcc, NULL, "RBC50D1S-G7", why, sizeof why), &renogy_dcc);
        ck_assert_ptr_eq(
                renogy_family_variant(&renogy_dcc, NULL, "RBC50D1S-G61", why, sizeof why), &renogy_dcc);
        bool has_0120 = false, has_0100x34 = false;
        for (size_t i = 0; i < renogy_dcc_g6.n_blocks; i++) {
                has_0120 = has_0120 || renogy_dcc_g6.blocks[i].reg == 0x0120;
                has_0100x34 = has_0100x34 ||
                              (renogy_dcc_g6.blocks[i].reg == 0x0100 && renogy_dcc_g6.blocks[i].count == 34);
        }
        ck_assert(!has_0120 && has_0100x34);
        uint8_t words[68] = {0};
        words[0x20 * 2 + 1] = 4;   /* 0x0120 lo: boost */
        words[0x21 * 2] = 1u << 1; /* 0x0121 bit 9: starter_reverse_polarity */
        struct renogy_image img;
        renogy_image_init(&img);
        ck_assert_int_eq(renogy_image_add_words(&img, 0x0100, words, 34), 0);
        struct renogy_readings rd;
        renogy_decode(&renogy_dcc_g6, &img, &rd);
        ck_assert_str_eq(renogy_readings_get(&rd, "charging_status")->text, "boost");
        ck_assert_uint_eq(renogy_readings_get(&rd, "fault_high")->bits, 1u << 9);
}
END_TEST

/* The simulator encodes registers with the same tables: encode then decode is the identity. */
START_TEST(encode_decode_roundtrip)
{
        size_t n_base;
        const struct renogy_family *const *bases = renogy_families(&n_base);
        const struct renogy_family *fams[16];
        size_t n_fam = 0;
        for (size_t k = 0; k < n_base; k++)
                fams[n_fam++] = bases[k];
        fams[n_fam++] = &renogy_battery_pro;
        fams[n_fam++] = &renogy_inverter_hf;
        for (size_t k = 0; k < n_fam; k++) {
                const struct renogy_family *f = fams[k];
                for (size_t i = 0; i < f->n_fields; i++) {
                        const struct renogy_field *fd = &f->fields[i];
                        if (fd->kind != KIND_NUMBER || fd->raw == RAW_NONE || fd->count_addr)
                                continue;
                        uint8_t bytes[4] = {0};
                        double v = fd->sign ? -1.5 : 12.5;
                        if (fd->decimals == 0)
                                v = fd->sign ? -12 : 12;
                        ck_assert_int_eq(renogy_encode_number(f, fd, v, bytes, sizeof bytes), 0);
                        struct renogy_image img;
                        renogy_image_init(&img);
                        renogy_image_add_bytes(
                                &img, renogy_field_byte_addr(f, fd), bytes, renogy_field_width(fd));
                        struct renogy_readings rd;
                        renogy_decode(f, &img, &rd);
                        const struct renogy_reading *r = renogy_readings_get(&rd, fd->key);
                        ck_assert_msg(r && fabs(r->number - v) < 1e-9, "%s.%s", f->name, fd->key);
                }
        }
        uint8_t b[2] = {0};
        ck_assert_int_eq(renogy_encode_number(&renogy_controller,
                                 renogy_field_find(&renogy_controller, "battery_voltage"), 7000, b, 2),
                -ERANGE);
}
END_TEST

/* The decoder rounds without libm; libm's round(), llround() and pow() are the reference. */
START_TEST(rounding_matches_libm)
{
        for (unsigned n = 0; n <= 30; n++)
                ck_assert_msg(
                        renogy_pow10(n) == pow(10.0, n) || fabs(renogy_pow10(n) / pow(10.0, n) - 1) < 1e-15,
                        "10^%u", n);
        const double edge[] = {0.0, -0.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.49999999999999994,
                -0.49999999999999994, 12.345, -12.345, 12.355, 4503599627370495.5, 4503599627370496.0,
                -4503599627370497.0, 1e300, -1e300, INFINITY, -INFINITY, 0.15, 0.25, 1.005, 655.35, -327.68};
        unsigned seed = 7;
        for (int i = 0; i < 50000; i++) {
                double v;
                if (i < (int)(sizeof edge / sizeof edge[0]))
                        v = edge[i];
                else {
                        seed = seed * 1103515245u + 12345u;
                        int64_t raw = (int32_t)seed >> (seed % 17);
                        /* Register values over powers of ten, and values exactly half way. */
                        v = (double)raw / pow(10.0, seed % 5) + ((i & 1) ? 0.5 : 0.0);
                }
                for (unsigned dec = 0; dec <= 4; dec++) {
                        double m = pow(10.0, dec);
                        double want = round(v * m) / m;
                        if (want == 0.0)
                                want = 0.0;
                        double got = renogy_round(v, dec);
                        ck_assert_msg(got == want || (isnan(got) && isnan(want)),
                                "round(%.17g, %u): %.17g, want %.17g", v, dec, got, want);
                        ck_assert_msg(!signbit(got) || got != 0.0, "round(%.17g, %u) is -0", v, dec);
                        double x = round(v * m);
                        int64_t scaled = renogy_scaled(v, dec);
                        if (fabs(x) < 0x1p62)
                                ck_assert_msg(scaled == llround(v * m), "scaled(%.17g, %u): %lld", v, dec,
                                        (long long)scaled);
                        else
                                ck_assert_int_eq(scaled, INT64_MAX);
                }
        }
        ck_assert(isnan(renogy_round(NAN, 2)));
        ck_assert_int_eq(renogy_scaled(NAN, 2), INT64_MAX);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("vectors");
        TCase *tc = tcase_create("decode");
        tcase_add_test(tc, decode_every_vector);
        tcase_add_test(tc, absent_readings);
        tcase_add_test(tc, requests_build_exactly);
        tcase_add_test(tc, exceptions_named);
        tcase_add_test(tc, reassembly_vectors);
        tcase_add_test(tc, bad_frames_rejected_with_reason);
        tcase_add_test(tc, encode_decode_roundtrip);
        tcase_add_test(tc, battery_pro_current_in_tenths);
        tcase_add_test(tc, hf_inverter_map);
        tcase_add_test(tc, dcc_g6_plan);
        tcase_add_test(tc, controller_battery_type_zero_is_custom);
        tcase_add_test(tc, dcc_solar_power_without_the_alternator);
        tcase_add_test(tc, rounding_matches_libm);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        load();
        int failed = run_suite(suite());
        json_decref(vectors);
        return failed;
}
