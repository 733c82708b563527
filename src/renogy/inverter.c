/* SPDX-License-Identifier: MIT */
/* Inverters: RIV4835CSH1S via BT-2, REGO and RIV12xx with built-in BLE (RENOGY_BLE.md §4.4). */
#include "renogy/rows.h"

static const char *const charging_status[] = {
        "deactivated",
        "constant_current",
        "constant_voltage",
        NULL,
        "floating",
        NULL,
        "battery_activation",
        "battery_disconnecting",
};

/* RIV4835 LCD program 01 (§4.4); the HF inverter-charger encodes its priority otherwise (§8 P2). */
static const char *const output_priority[] = {"solar_first", "utility_first", "solar_battery_utility"};

/* Machine state at 4405 (Anto79; on the HF model 4 is line/charging, 5 inverting: §8 P1). */
static const char *const machine_states[] = {
        "power_on_delay",
        "waiting",
        "initialization",
        "soft_start",
        "mains_operation",
        "inverter_operation",
        "inverter_to_mains",
        "mains_to_inverter",
        NULL,
        NULL,
        "shutdown",
        "fault",
};
static const char *const no_yes[] = {"no", "yes"};

#define HZ(k, l, a) ROW_NUM(k, l, a, RAW_U16, SIGN_NONE, 2, "Hz", "frequency", MEAS)
/* A setting: a value with its unit and no state class (it is not measured). */
#define SETTING(k, l, a, dec, u, dc) ROW_NUM(k, l, a, RAW_U16, SIGN_NONE, dec, u, dc, NULL)
/* An AC input reading: 0xFFFF while no AC is connected (plain pure-sine inverters, §4.4). */
#define AC_IN(k, l, a, dec, u, dc)                                                                          \
        {                                                                                                   \
                .key = k, .label = l, .addr = a, .raw = RAW_U16, .decimals = dec, .unit = u,                \
                .device_class = dc, .state_class = MEAS, .flags = FIELD_FFFF_UNAVAILABLE                    \
        }

static const struct renogy_field fields[] = {
        AC_IN("input_voltage", "AC input voltage", 4000, 1, "V", "voltage"),
        AC_IN("input_current", "AC input current", 4001, 2, "A", "current"),
        VOLTS("output_voltage", "AC output voltage", 4002, 1),
        AMPS("output_current", "AC output current", 4003, 2),
        HZ("output_frequency", "AC output frequency", 4004),
        VOLTS("battery_voltage", "Battery voltage", 4005, 1),
        ROW_NUM("temperature", "Temperature", 4006, RAW_U16, SIGN_NONE, 1, "°C", "temperature", MEAS),
        AC_IN("input_frequency", "AC input frequency", 4009, 2, "Hz", "frequency"),
        PLAIN("device_address", "Modbus address", 4109, RAW_U16),
        TEXT("model", "Model", 4311, 16),
        PERCENT("battery_percentage", "Battery", 4327, "battery"),
        SAMPS("charging_current", "Charging current", 4328, 1),
        VOLTS("solar_voltage", "Solar voltage", 4329, 1),
        AMPS("solar_current", "Solar current", 4330, 1),
        WATTS("solar_power", "Solar power", 4331),
        ENUM("charging_status", "Charging status", 4332, RAW_U16, charging_status),
        WATTS("charging_power", "Charging power", 4333),
        AMPS("load_current", "Load current", 4408, 1),
        WATTS("load_active_power", "Load active power", 4409),
        ROW_NUM("load_apparent_power", "Load apparent power", 4410, RAW_U16, SIGN_NONE, 0, "VA",
                "apparent_power", MEAS),
        AMPS("line_charging_current", "Line charging current", 4412, 1),
        PERCENT("load_percentage", "Load", 4413, NULL),
        METERED("energy_output", "Output energy"),
        /* Setpoints (§4.4, ranges §8 P13) and the RIV4835's LCD programs (§8 P4). */
        SETTING("charge_current_setting", "Charging current setting", 4422, 1, "A", "current"),
        SETTING("low_voltage_warning", "Low-voltage warning", 4430, 1, "V", "voltage"),
        ENUM("output_priority", "Output priority", 4441, RAW_U16, output_priority),
        SETTING("battery_over_voltage", "Battery over-voltage", 4452, 1, "V", "voltage"),
        SETTING("ac_input_current_limit", "AC input current limit", 4456, 1, "A", "current"),
        SETTING("max_ac_charging_current", "Maximum AC charging current", 0xE205, 1, "A", "current"),
};

/* REGO and RIV12xx with built-in BLE (§3 "generic"). */
static const struct renogy_block blocks[] = {
        {4000, 10},
        {4109, 1},
        {4327, 7},
        {4408, 6},
        {4311, 8, .optional = true},
        {4422, 1, .optional = true, .settings = true},
        {4430, 1, .optional = true, .settings = true},
        {4452, 1, .optional = true, .settings = true},
        {4456, 1, .optional = true, .settings = true},
};

/* RIV4835CSH1S through a BT-2: 4311 answers on some firmware only (§8 P3); its LCD programs 01
 * and 28 are the settings (§4.4, §8 P4). */
static const struct renogy_block riv4835_blocks[] = {
        {4000, 10},
        {4109, 1},
        {4327, 7},
        {4408, 6},
        {4311, 8, .optional = true},
        {4441, 1, .optional = true, .settings = true},
        {0xE205, 1, .optional = true, .settings = true},
};

const struct renogy_family renogy_inverter = {
        .name = "inverter",
        .label = "Inverter",
        .default_id = 0x20,
        .fields = fields,
        .n_fields = sizeof fields / sizeof fields[0],
        .blocks = blocks,
        .n_blocks = sizeof blocks / sizeof blocks[0],
};

const struct renogy_family renogy_inverter_riv4835 = {
        .name = "inverter",
        .label = "Inverter (RIV4835)",
        .default_id = 0x20,
        .fields = fields,
        .n_fields = sizeof fields / sizeof fields[0],
        .blocks = riv4835_blocks,
        .n_blocks = sizeof riv4835_blocks / sizeof riv4835_blocks[0],
        .base = &renogy_inverter,
        .variant = "riv4835",
};

/* The "HF" inverter-charger RIV1230PCH: a map of its own, where the generic one would read its
 * frequency as a current and its charging current as watts (RENOGY_BLE.md §8 P1). */
static const struct renogy_field hf_fields[] = {
        AC_IN("input_voltage", "AC input voltage", 4000, 1, "V", "voltage"),
        AC_IN("input_frequency", "AC input frequency", 4001, 1, "Hz", "frequency"),
        SETTING("output_voltage_setting", "AC output voltage setting", 4002, 1, "V", "voltage"),
        AMPS("battery_discharge_current", "Battery discharge current", 4003, 1),
        ROW_NUM("battery_temperature", "Battery temperature", 4005, RAW_U16, SIGN_NONE, 1, "°C",
                "temperature", MEAS),
        ROW_NUM("temperature", "Internal temperature", 4006, RAW_U16, SIGN_NONE, 1, "°C", "temperature",
                MEAS),
        PLAIN("device_address", "Modbus address", 4109, RAW_U16),
        ENUM("ac_input_present", "AC input present", 4301, RAW_U16, no_yes),
        TEXT("model", "Model", 4311, 16),
        SAMPS("battery_current", "Battery current", 4328, 1),
        ENUM("charging_active", "Charging", 4332, RAW_U16, no_yes),
        AMPS("charging_current", "Charging current", 4333, 1),
        ENUM("operating_mode", "Operating mode", 4405, RAW_U16, machine_states),
        AMPS("line_charging_current", "Line charging current", 4412, 1),
        SETTING("charge_current_setting", "Maximum charging current setting", 4422, 1, "A", "current"),
};

static const struct renogy_block hf_blocks[] = {
        {4000, 7},
        {4109, 1},
        {4301, 1},
        {4328, 6},
        {4405, 18},
        {4311, 8, .optional = true},
};

const struct renogy_family renogy_inverter_hf = {
        .name = "inverter",
        .label = "Inverter-charger (HF)",
        .default_id = 0x20,
        .fields = hf_fields,
        .n_fields = sizeof hf_fields / sizeof hf_fields[0],
        .blocks = hf_blocks,
        .n_blocks = sizeof hf_blocks / sizeof hf_blocks[0],
        .base = &renogy_inverter,
        .variant = "hf",
};
