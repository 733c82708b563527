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

#define HZ(k, l, a) ROW_NUM(k, l, a, RAW_U16, SIGN_NONE, 2, "Hz", "frequency", MEAS)
#define NO_AC       .flags = FIELD_FFFF_UNAVAILABLE

static const struct renogy_field fields[] = {
        {.key = "input_voltage",
                .label = "AC input voltage",
                .addr = 4000,
                .raw = RAW_U16,
                .decimals = 1,
                .unit = "V",
                .device_class = "voltage",
                .state_class = MEAS,
                NO_AC},
        {.key = "input_current",
                .label = "AC input current",
                .addr = 4001,
                .raw = RAW_U16,
                .decimals = 2,
                .unit = "A",
                .device_class = "current",
                .state_class = MEAS,
                NO_AC},
        VOLTS("output_voltage", "AC output voltage", 4002, 1),
        AMPS("output_current", "AC output current", 4003, 2),
        HZ("output_frequency", "AC output frequency", 4004),
        VOLTS("battery_voltage", "Battery voltage", 4005, 1),
        ROW_NUM("temperature", "Temperature", 4006, RAW_U16, SIGN_NONE, 1, "°C", "temperature", MEAS),
        {.key = "input_frequency",
                .label = "AC input frequency",
                .addr = 4009,
                .raw = RAW_U16,
                .decimals = 2,
                .unit = "Hz",
                .device_class = "frequency",
                .state_class = MEAS,
                NO_AC},
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
};

static const struct renogy_block blocks[] = {
        {4000, 10},
        {4109, 1},
        {4311, 8, .optional = true},
        {4327, 7},
        {4408, 6},
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
