/* SPDX-License-Identifier: MIT */
/* The Renogy side of a simulated module: register images encoded with the same maps the
 * daemon decodes with, values that move over time, and a Modbus responder. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "modbus.h"
#include "sim.h"

struct preset {
        const char *key;
        double value;
};

static const struct preset controller_preset[] = {
        {"rated_voltage", 12},
        {"rated_charging_current", 40},
        {"rated_discharging_current", 20},
        {"battery_percentage", 87},
        {"battery_voltage", 13.2},
        {"battery_current", 5.2},
        {"controller_temperature", 24},
        {"battery_temperature", 21},
        {"load_voltage", 13.2},
        {"load_current", 0.53},
        {"load_power", 7},
        {"pv_voltage", 18.6},
        {"pv_current", 3.7},
        {"pv_power", 69},
        {"battery_min_voltage_today", 12.6},
        {"battery_max_voltage_today", 14.2},
        {"max_charging_current_today", 8.1},
        {"max_discharging_current_today", 1.2},
        {"max_charging_power_today", 110},
        {"max_discharging_power_today", 15},
        {"charging_amp_hours_today", 24},
        {"discharging_amp_hours_today", 6},
        {"power_generation_today", 0.32},
        {"power_consumption_today", 0.07},
        {"total_operating_days", 412},
        {"total_battery_over_discharges", 2},
        {"total_battery_full_charges", 180},
        {"total_charging_amp_hours", 9876},
        {"total_discharging_amp_hours", 5432},
        {"power_generation_total", 126.5},
        {"power_consumption_total", 61.2},
        {"load_status", 1},
        {"charging_status", 2},
        {"battery_type", 4},
        /* the settings block (RENOGY_BLE.md §8 P6) */
        {"battery_capacity", 100},
        {"over_voltage_threshold", 16.0},
        {"charging_limit_voltage", 15.5},
        {"equalization_voltage", 14.6},
        {"boost_voltage", 14.4},
        {"float_voltage", 13.8},
        {"boost_return_voltage", 13.2},
        {"over_discharge_return_voltage", 12.6},
        {"under_voltage_warning", 12.0},
        {"over_discharge_voltage", 11.1},
        {"discharge_limit_voltage", 10.6},
        {"end_of_charge_soc", 100},
        {"end_of_discharge_soc", 20},
        {"over_discharge_delay", 5},
        {"equalization_time", 120},
        {"boost_time", 120},
        {"equalization_interval", 30},
        {"load_mode", 15},
};

static const struct preset dcc_preset[] = {
        {"battery_percentage", 92},
        {"battery_voltage", 13.4},
        {"total_charging_current", 18.5},
        {"controller_temperature", 31},
        {"battery_temperature", 22},
        {"alternator_voltage", 14.1},
        {"alternator_current", 12.3},
        {"alternator_power", 173},
        {"solar_voltage", 19.2},
        {"solar_current", 4.1},
        {"solar_power_reported", 252}, /* solar 79 W and the alternator's 173 W, as on a G7 */
        {"battery_min_voltage_today", 12.8},
        {"battery_max_voltage_today", 14.4},
        {"max_charging_current_today", 25.2},
        {"max_charging_power_today", 340},
        {"charging_amp_hours_today", 41},
        {"power_generation_today", 0.55},
        {"total_operating_days", 96},
        {"total_battery_over_discharges", 0},
        {"total_battery_full_charges", 88},
        {"total_charging_amp_hours", 3120},
        {"power_generation_total", 41.7},
        {"charging_status", 2},
        {"output_power", 252},
        {"charging_mode", 4},
        {"ignition_status", 1},
        {"max_charging_current", 50},
        {"system_voltage", 12},
        {"battery_type", 4},
        {"reverse_charging_voltage", 13.2},
        {"solar_cutoff_current", 7},
        {"boost_voltage", 14.4},
        {"float_voltage", 13.8},
        {"over_discharge_voltage", 11.1},
};

static const struct preset battery_preset[] = {
        {"cell_count", 4},
        {"cell_voltage_1", 3.3},
        {"cell_voltage_2", 3.3},
        {"cell_voltage_3", 3.2},
        {"cell_voltage_4", 3.3},
        {"temperature_count", 2},
        {"temperature_1", 21.5},
        {"temperature_2", 22.0},
        {"battery_current", 3.26},
        {"battery_voltage", 13.1},
        {"remaining_capacity", 79.5},
        {"full_capacity", 100},
        {"cycle_count", 37},
        {"charge_voltage_limit", 14.4},
        {"discharge_voltage_limit", 10},
        {"charge_current_limit", 50},
        {"discharge_current_limit", 100},
        {"other_alarms", 0},
        {"battery_status1", 6},
        {"battery_status2", 0},
};

static const struct preset inverter_preset[] = {
        {"input_voltage", 120.1},
        {"input_current", 0.5},
        {"output_voltage", 119.8},
        {"output_current", 2.1},
        {"output_frequency", 60.0},
        {"battery_voltage", 13.2},
        {"temperature", 34.5},
        {"input_frequency", 60.0},
        {"battery_percentage", 86},
        {"charging_current", -4.5},
        {"solar_voltage", 38.4},
        {"solar_current", 3.1},
        {"solar_power", 119},
        {"charging_status", 4},
        {"charging_power", 60},
        {"load_current", 2.1},
        {"load_active_power", 240},
        {"load_apparent_power", 252},
        {"line_charging_current", 0},
        {"load_percentage", 8},
        {"charge_current_setting", 30},
        {"low_voltage_warning", 11.0},
        {"battery_over_voltage", 15.0},
        {"ac_input_current_limit", 20},
        {"output_priority", 2},
        {"max_ac_charging_current", 30},
};

/* The HF inverter-charger (RIV1230PCH), in its own map (RENOGY_BLE.md §8 P1). */
static const struct preset inverter_hf_preset[] = {
        {"input_voltage", 230.4},
        {"input_frequency", 50.0},
        {"output_voltage_setting", 230.0},
        {"battery_discharge_current", 0},
        {"battery_temperature", 19.5},
        {"temperature", 33.0},
        {"ac_input_present", 1},
        {"battery_current", 12.4},
        {"charging_active", 1},
        {"charging_current", 12.4},
        {"operating_mode", 4},
        {"line_charging_current", 12.4},
        {"charge_current_setting", 60},
};

static const struct preset shunt_preset[] = {
        {"shunt_current", -2.345},
        {"shunt_voltage", 13.28},
        {"starter_battery_voltage", 12.65},
        {"shunt_soc", 87.3},
        {"battery_temperature", 21.5},
};

static const char *default_model(const struct renogy_family *fam)
{
        if (fam == &renogy_controller)
                return "RNG-CTRL-RVR40";
        if (fam == &renogy_dcc)
                return "RBC50D1S-G1";
        if (fam == &renogy_dcc_g6)
                return "RBC50D1S-G6";
        if (renogy_family_base(fam) == &renogy_battery)
                return "RBT100LFP12S-G1";
        if (fam == &renogy_inverter)
                return "RIV1230RCH-SPS";
        if (fam == &renogy_inverter_riv4835)
                return "RIV4835CSH1S";
        if (fam == &renogy_inverter_hf)
                return "RIV1230PCH-23S";
        return NULL;
}

static void mark_defined(struct sim_unit *u, uint16_t reg, uint16_t count)
{
        for (uint32_t r = reg; r < (uint32_t)reg + count && r <= 0xFFFF; r++)
                u->defined[r / 8] |= (uint8_t)(1u << (r % 8));
}

static bool is_defined(const struct sim_unit *u, uint32_t r)
{
        return r <= 0xFFFF && (u->defined[r / 8] & (1u << (r % 8)));
}

static uint8_t *field_bytes(struct sim_unit *u, const struct renogy_field *f)
{
        uint32_t a = renogy_field_byte_addr(u->family, f);
        if (u->family->byte_addressed)
                return a + renogy_field_width(f) <= sizeof u->shunt_frame ? u->shunt_frame + a : NULL;
        return (uint8_t *)u->regs + a;
}

/* Registers are kept in wire (big-endian) byte order so fields encode in place. */
int sim_unit_set_value(struct sim_unit *u, const char *key, double value)
{
        const struct renogy_field *f = renogy_field_find(u->family, key);
        if (!f)
                return -ENOENT;
        if (f->raw == RAW_NONE) {
                /* Derived readings: set what they derive from. */
                if (renogy_family_base(u->family) == &renogy_battery && streq(key, "battery_percentage")) {
                        double full = 100;
                        const struct renogy_field *ff = renogy_field_find(u->family, "full_capacity");
                        uint8_t *p = field_bytes(u, ff);
                        if (!p)
                                return -EINVAL;
                        full = (double)((uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]) / 1000.0;
                        return sim_unit_set_value(u, "remaining_capacity", full * value / 100.0);
                }
                return -EINVAL;
        }
        uint8_t *p = field_bytes(u, f);
        if (!p)
                return -EINVAL;
        return renogy_encode_number(u->family, f, value, p, renogy_field_width(f));
}

int sim_unit_set_text(struct sim_unit *u, const char *key, const char *text)
{
        const struct renogy_field *f = renogy_field_find(u->family, key);
        if (!f)
                return -ENOENT;
        uint8_t *p = field_bytes(u, f);
        if (!p)
                return -EINVAL;
        return renogy_encode_text(f, text, p, renogy_field_width(f));
}

int sim_unit_init(struct sim_unit *u, const struct renogy_family *fam, uint8_t id)
{
        memset(u, 0, sizeof *u);
        u->family = fam;
        u->id = id;
        u->animate = true;
        for (size_t i = 0; i < RENOGY_MAX_READINGS; i++)
                u->base[i] = NAN;
        if (!fam->byte_addressed) {
                u->regs = calloc(0x10000, sizeof(uint16_t));
                u->defined = calloc(0x10000 / 8, 1);
                if (!u->regs || !u->defined)
                        return -ENOMEM;
                for (size_t i = 0; i < fam->n_blocks; i++)
                        mark_defined(u, fam->blocks[i].reg, fam->blocks[i].count);
                if (fam == &renogy_controller || renogy_family_base(fam) == &renogy_dcc)
                        mark_defined(u, 0x0000, 0x40); /* identity area */
                if (renogy_family_base(fam) == &renogy_battery)
                        mark_defined(u, 5000, 250);
        } else {
                u->shunt_frame[0] = 0x42;
                u->shunt_frame[1] = 0x57;
                u->shunt_frame[2] = 0x01;
                u->shunt_frame[3] = 0x19;
        }

        const struct preset *p = NULL;
        size_t n = 0;
#define USE(x) (p = x, n = ELEMENTSOF(x))
        if (fam == &renogy_controller)
                USE(controller_preset);
        else if (renogy_family_base(fam) == &renogy_dcc)
                USE(dcc_preset);
        else if (renogy_family_base(fam) == &renogy_battery)
                USE(battery_preset);
        else if (fam == &renogy_inverter_hf)
                USE(inverter_hf_preset);
        else if (renogy_family_base(fam) == &renogy_inverter)
                USE(inverter_preset);
        else
                USE(shunt_preset);
#undef USE
        for (size_t i = 0; i < n; i++) {
                int r = sim_unit_set_value(u, p[i].key, p[i].value);
                if (r < 0)
                        return r;
        }
        const char *model = default_model(fam);
        if (model)
                sim_unit_set_text(u, "model", model);
        if (fam == &renogy_dcc_g6)
                u->silent_at[u->n_silent++] = 0x0120;
        if (renogy_family_base(fam) == &renogy_battery) {
                sim_unit_set_text(u, "software_version", "0018");
                sim_unit_set_text(u, "serial_number", "SIMBAT0000000001");
        }
        if (renogy_field_find(fam, "device_address"))
                sim_unit_set_value(u, "device_address", id == 0xFF ? 16 : id);
        /* Remember the scenario's baseline for the fields that move. */
        for (size_t i = 0; i < fam->n_fields && i < RENOGY_MAX_READINGS; i++) {
                const struct renogy_field *f = &fam->fields[i];
                if (f->kind != KIND_NUMBER || f->raw == RAW_NONE)
                        continue;
                struct renogy_image img;
                renogy_image_init(&img);
                uint8_t *b = field_bytes(u, f);
                if (!b)
                        continue;
                renogy_image_add_bytes(&img, renogy_field_byte_addr(fam, f), b, renogy_field_width(f));
                struct renogy_readings rd;
                renogy_decode(fam, &img, &rd);
                const struct renogy_reading *r = renogy_readings_get(&rd, f->key);
                if (r)
                        u->base[i] = r->number;
        }
        return 0;
}

static double base_of(struct sim_unit *u, const char *key)
{
        const struct renogy_field *f = renogy_field_find(u->family, key);
        if (!f)
                return NAN;
        return u->base[f - u->family->fields];
}

void sim_unit_rebase(struct sim_unit *u, const char *key, double value)
{
        const struct renogy_field *f = renogy_field_find(u->family, key);
        if (f)
                u->base[f - u->family->fields] = value;
}

static void move(struct sim_unit *u, const char *key, double factor)
{
        double b = base_of(u, key);
        if (!isnan(b))
                sim_unit_set_value(u, key, b * factor);
}

/* A compressed solar day (ten minutes) so that the demo looks alive. */
void sim_unit_tick(struct sim_unit *u, double t)
{
        if (!u->animate)
                return;
        double sun = 0.55 + 0.45 * sin(2 * M_PI * t / 600.0);
        double wobble = 1.0 + 0.04 * sin(2 * M_PI * t / 37.0);
        const struct renogy_family *fam = u->family;
        if (fam == &renogy_controller) {
                move(u, "pv_power", sun * wobble);
                move(u, "pv_current", sun * wobble);
                move(u, "battery_current", sun);
                move(u, "battery_voltage", 0.98 + 0.04 * sun);
        } else if (renogy_family_base(fam) == &renogy_dcc) {
                move(u, "solar_power_reported", sun * wobble);
                move(u, "solar_current", sun * wobble);
                move(u, "total_charging_current", 0.8 + 0.2 * sun);
        } else if (renogy_family_base(fam) == &renogy_battery) {
                move(u, "battery_current", sun * wobble);
                move(u, "remaining_capacity", 0.96 + 0.04 * sun);
                move(u, "battery_voltage", 0.99 + 0.02 * sun);
        } else if (fam == &renogy_inverter_hf) {
                move(u, "charging_current", sun);
        } else if (renogy_family_base(fam) == &renogy_inverter) {
                move(u, "load_active_power", wobble);
                move(u, "load_apparent_power", wobble);
                move(u, "solar_power", sun);
        } else {
                move(u, "shunt_current", wobble);
                move(u, "shunt_soc", 0.98 + 0.02 * sun);
        }
}

static size_t exception_reply(uint8_t id, uint8_t fn, uint8_t code, uint8_t *out)
{
        out[0] = id;
        out[1] = fn | MODBUS_FN_EXCEPTION;
        out[2] = code;
        uint16_t crc = modbus_crc16(out, 3);
        out[3] = (uint8_t)crc;
        out[4] = (uint8_t)(crc >> 8);
        return 5;
}

static struct sim_unit *unit_for(struct sim_module *m, uint8_t id)
{
        for (size_t i = 0; i < m->n_units; i++)
                if (m->units[i].id == id || (id == MODBUS_BROADCAST_ID && i == 0))
                        return &m->units[i];
        return NULL;
}

static bool optional_block_at(const struct renogy_family *f, uint16_t reg)
{
        for (size_t i = 0; i < f->n_blocks; i++)
                if (f->blocks[i].optional && !f->blocks[i].settings && f->blocks[i].reg == reg)
                        return true;
        return false;
}

/* The registers these models accept a write to (function 0x06), and the largest value: the
 * load switch and working mode, the battery type, the RIV4835's maximum AC charging current. */
static bool writable(const struct sim_unit *u, uint16_t reg, uint16_t *max)
{
        const struct renogy_family *base = renogy_family_base(u->family);
        if (base == &renogy_controller && reg == 0x010A)
                *max = 1;
        else if (base == &renogy_controller && reg == 0xE01D)
                *max = 17;
        else if ((base == &renogy_controller || base == &renogy_dcc) && reg == 0xE004)
                *max = 5;
        else if (u->family == &renogy_inverter_riv4835 && reg == 0xE205)
                *max = 400;
        else
                return false;
        return true;
}

size_t sim_unit_respond(struct sim_module *m, const uint8_t *req, size_t len, uint8_t *out, size_t out_size)
{
        /* The DC Home app's "main recv data[xx] [" acknowledgements and anything that is not a
         * valid request get no reply, as on the modules. */
        if (len != MODBUS_REQUEST_LEN || modbus_crc16(req, len) != 0 || out_size < MODBUS_MAX_FRAME)
                return 0;
        struct sim_unit *u = unit_for(m, req[0]);
        if (!u || u->family->byte_addressed)
                return 0; /* unknown id: silence, the client times out */
        uint8_t id = req[0], fn = req[1];
        uint16_t reg = be16(req + 2), arg = be16(req + 4);

        if (m->faults[FAULT_NO_MODEL_REPLY] && fn == MODBUS_FN_READ_HOLDING &&
                optional_block_at(u->family, reg)) {
                if (m->faults[FAULT_NO_MODEL_REPLY] > 0)
                        m->faults[FAULT_NO_MODEL_REPLY]--;
                return 0; /* silence: the client times out */
        }
        if (m->faults[FAULT_EXCEPTION]) {
                if (m->faults[FAULT_EXCEPTION] > 0)
                        m->faults[FAULT_EXCEPTION]--;
                return exception_reply(id, fn, 4, out);
        }
        for (size_t i = 0; i < u->n_silent; i++)
                if (fn == MODBUS_FN_READ_HOLDING && reg == u->silent_at[i])
                        return 0;
        if (fn == MODBUS_FN_READ_HOLDING) {
                if (arg == 0 || arg > MODBUS_MAX_READ_WORDS)
                        return exception_reply(id, fn, 3, out);
                for (uint32_t r = reg; r < (uint32_t)reg + arg; r++)
                        if (!is_defined(u, r))
                                return exception_reply(id, fn, 2, out);
                out[0] = id;
                out[1] = fn;
                out[2] = (uint8_t)(2 * arg);
                memcpy(out + 3, (uint8_t *)u->regs + 2 * (size_t)reg, 2 * (size_t)arg);
                size_t n = 3 + 2 * (size_t)arg;
                uint16_t crc = modbus_crc16(out, n);
                out[n] = (uint8_t)crc;
                out[n + 1] = (uint8_t)(crc >> 8);
                return n + 2;
        }
        if (fn == MODBUS_FN_WRITE_SINGLE) {
                uint16_t max;
                if (!writable(u, reg, &max))
                        return exception_reply(id, fn, 2, out);
                if (arg > max)
                        return exception_reply(id, fn, 3, out);
                bool applied = !m->faults[FAULT_WRITE_IGNORED];
                if (m->faults[FAULT_WRITE_IGNORED] > 0)
                        m->faults[FAULT_WRITE_IGNORED]--;
                if (applied && reg == 0x010A) {
                        sim_unit_set_value(u, "load_status", arg);
                        sim_unit_rebase(u, "load_power", arg ? 7 : 0);
                        sim_unit_set_value(u, "load_power", arg ? 7 : 0);
                } else if (applied) {
                        ((uint8_t *)u->regs)[2 * (size_t)reg] = (uint8_t)(arg >> 8);
                        ((uint8_t *)u->regs)[2 * (size_t)reg + 1] = (uint8_t)arg;
                }
                memcpy(out, req, MODBUS_REQUEST_LEN);
                if (m->faults[FAULT_WRITE_ECHO_WRONG]) {
                        if (m->faults[FAULT_WRITE_ECHO_WRONG] > 0)
                                m->faults[FAULT_WRITE_ECHO_WRONG]--;
                        out[5] ^= 1; /* another value, CRC recomputed: well formed, wrong */
                        uint16_t crc = modbus_crc16(out, 6);
                        out[6] = (uint8_t)crc;
                        out[7] = (uint8_t)(crc >> 8);
                }
                return MODBUS_REQUEST_LEN;
        }
        return exception_reply(id, fn, 1, out);
}

void sim_unit_shunt_frame(struct sim_unit *u)
{
        /* The frame is encoded in place by sim_unit_set_value(); nothing else to do. */
        (void)u;
}
