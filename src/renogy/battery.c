/* SPDX-License-Identifier: MIT */
/* Smart lithium batteries, standalone or several behind a BT-2 hub (RENOGY_BLE.md §4.3).
 * Scales are those of legacy and RNGPRO packs (0.01 A). */
#include <stdio.h>
#include <string.h>

#include "renogy/rows.h"

#define CELL(n)                                                                                             \
        {                                                                                                   \
                .key = "cell_voltage_" #n, .label = "Cell " #n " voltage", .addr = 5000 + n,                \
                .raw = RAW_U16, .kind = KIND_NUMBER, .decimals = 1, .flags = FIELD_CELL_AUTO, .unit = "V",  \
                .device_class = "voltage", .state_class = MEAS, .count_addr = 5000, .index = n              \
        }
#define TEMP(n)                                                                                             \
        {                                                                                                   \
                .key = "temperature_" #n, .label = "Temperature " #n, .addr = 5017 + n, .raw = RAW_U16,     \
                .sign = SIGN_TWOS, .kind = KIND_NUMBER, .decimals = 1, .unit = "°C",                        \
                .device_class = "temperature", .state_class = MEAS, .count_addr = 5017, .index = n          \
        }

static const char *const other_alarms[] = {
        [19] = "discharge_over_current",
        [21] = "charge_over_current",
        [26] = "heater_under_temperature",
        [27] = "heater_over_temperature",
        [28] = "environment_under_temperature",
        [29] = "environment_over_temperature",
        [30] = "bms_under_temperature",
        [31] = "bms_over_temperature",
};
static const char *const status1[] = {
        "short_circuit",
        "charge_mosfet",
        "discharge_mosfet",
        "using_battery_module_power",
        "charge_over_current2",
        "discharge_over_current2",
        "module_over_voltage",
        "cell_under_voltage",
        "cell_over_voltage",
        "charge_over_current1",
        "discharge_over_current1",
        "discharge_under_temperature",
        "discharge_over_temperature",
        "charge_under_temperature",
        "charge_over_temperature",
        "module_under_voltage",
};
static const char *const status2[] = {
        "cell_low_voltage_warning",
        "cell_high_voltage_warning",
        "module_low_voltage_warning",
        "module_high_voltage_warning",
        "charge_low_temperature_warning",
        "charge_high_temperature_warning",
        "discharge_low_temperature_warning",
        "discharge_high_temperature_warning",
        "buzzer",
        NULL,
        NULL,
        "fully_charged",
        NULL,
        "heater_on",
        "effective_discharge_current",
        "effective_charge_current",
};
static const char *const cell_errors[] = {
        "cell_1",
        "cell_2",
        "cell_3",
        "cell_4",
        "cell_5",
        "cell_6",
        "cell_7",
        "cell_8",
        "cell_9",
        "cell_10",
        "cell_11",
        "cell_12",
        "cell_13",
        "cell_14",
        "cell_15",
        "cell_16",
};
static const char *const charge_discharge[] = {
        [3] = "full_charge_request",
        [4] = "charge_immediately2",
        [5] = "charge_immediately",
        [6] = "discharge_enable",
        [7] = "charge_enable",
};

static const struct renogy_field fields[] = {
        PLAIN("cell_count", "Cells", 5000, RAW_U16),
        CELL(1),
        CELL(2),
        CELL(3),
        CELL(4),
        CELL(5),
        CELL(6),
        CELL(7),
        CELL(8),
        CELL(9),
        CELL(10),
        CELL(11),
        CELL(12),
        CELL(13),
        CELL(14),
        CELL(15),
        CELL(16),
        PLAIN("temperature_count", "Temperature sensors", 5017, RAW_U16),
        TEMP(1),
        TEMP(2),
        TEMP(3),
        TEMP(4),
        TEMP(5),
        TEMP(6),
        TEMP(7),
        TEMP(8),
        TEMP(9),
        TEMP(10),
        TEMP(11),
        TEMP(12),
        TEMP(13),
        TEMP(14),
        TEMP(15),
        TEMP(16),
        {.key = "battery_current",
                .label = "Battery current",
                .addr = 5042,
                .raw = RAW_U16,
                .sign = SIGN_TWOS,
                .kind = KIND_NUMBER,
                .decimals = 2,
                .flags = FIELD_PRO_TENTHS,
                .unit = "A",
                .device_class = "current",
                .state_class = MEAS},
        VOLTS("battery_voltage", "Battery voltage", 5043, 1),
        ROW_NUM("remaining_capacity", "Remaining capacity", 5044, RAW_U32, SIGN_NONE, 3, "Ah", NULL, MEAS),
        ROW_NUM("full_capacity", "Full capacity", 5046, RAW_U32, SIGN_NONE, 3, "Ah", NULL, MEAS),
        COUNT("cycle_count", "Cycles", 5048),
        ROW_NUM("charge_voltage_limit", "Charge voltage limit", 5049, RAW_U16, SIGN_NONE, 1, "V", "voltage",
                NULL),
        ROW_NUM("discharge_voltage_limit", "Discharge voltage limit", 5050, RAW_U16, SIGN_NONE, 1, "V",
                "voltage", NULL),
        ROW_NUM("charge_current_limit", "Charge current limit", 5051, RAW_U16, SIGN_NONE, 2, "A", "current",
                NULL),
        ROW_NUM("discharge_current_limit", "Discharge current limit", 5052, RAW_U16, SIGN_TWOS, 2, "A",
                "current", NULL),
        DERIVED("battery_percentage", "Battery", "%", "battery", MEAS),
        DERIVED("battery_power", "Battery power", "W", "power", MEAS),
        METERED("energy_charged", "Energy charged"),
        METERED("energy_discharged", "Energy discharged"),
        /* The cell alarm bit layout is disputed between sources: report the raw words. */
        PLAIN("cell_voltage_alarms", "Cell voltage alarms (raw)", 5100, RAW_U32),
        PLAIN("cell_temperature_alarms", "Cell temperature alarms (raw)", 5102, RAW_U32),
        BITS("other_alarms", "Alarms", 5104, RAW_U32, other_alarms),
        /* charge_mosfet, discharge_mosfet, using_battery_module_power: states */
        BITS_WITH_STATES("battery_status1", "Status 1", 5106, RAW_U16, status1, 0x000E),
        FLAG("charge_mosfet", "Charge MOSFET", 5106, RAW_U16, 1),
        FLAG("discharge_mosfet", "Discharge MOSFET", 5106, RAW_U16, 2),
        /* buzzer, fully_charged, heater_on, effective discharge and charge current: states */
        BITS_WITH_STATES("battery_status2", "Status 2", 5107, RAW_U16, status2, 0xE900),
        FLAG("heater", "Heater", 5107, RAW_U16, 13),
        BITS("cell_voltage_errors", "Cell voltage errors", 5108, RAW_U16, cell_errors),
        /* requests and enables, every one a state */
        BITS_WITH_STATES("charge_discharge_status", "Charge/discharge status", 5109, RAW_U16,
                charge_discharge, 0x00F8),
        TEXT("serial_number", "Serial number", 5110, 16),
        TEXT("manufacture_version", "Manufacture version", 5118, 2),
        TEXT("mainline_version", "Mainline version", 5119, 4),
        TEXT("protocol_version", "Protocol version", 5121, 2),
        TEXT("model", "Model", 5122, 16),
        TEXT("software_version", "Software version", 5130, 4),
        TEXT("manufacturer_name", "Manufacturer", 5132, 20),
        PLAIN("device_address", "Modbus address", 5223, RAW_U16),
};

static const struct renogy_block blocks[] = {
        {5000, 17},
        {5017, 17},
        {5042, 6},
        {5104, 4},
        {5122, 8},
        {5130, 2},
        {5223, 1},
};

static void derive(const struct renogy_family *f, struct renogy_readings *out)
{
        const struct renogy_reading *rem = renogy_readings_get(out, "remaining_capacity");
        const struct renogy_reading *full = renogy_readings_get(out, "full_capacity");
        const struct renogy_reading *v = renogy_readings_get(out, "battery_voltage");
        const struct renogy_reading *i = renogy_readings_get(out, "battery_current");

        if (rem && full && full->number > 0)
                renogy_reading_add_number(out, renogy_field_find(f, "battery_percentage"),
                        rem->number / full->number * 100.0, 1);
        if (v && i)
                renogy_reading_add_number(
                        out, renogy_field_find(f, "battery_power"), v->number * i->number, 2);
}

const struct renogy_family renogy_battery = {
        .name = "battery",
        .label = "Smart lithium battery",
        .default_id = 0x30,
        .fields = fields,
        .n_fields = sizeof fields / sizeof fields[0],
        .blocks = blocks,
        .n_blocks = sizeof blocks / sizeof blocks[0],
        .derive = derive,
};

/* Battery Pro packs: the same registers, current in 0.1 A (RENOGY_BLE.md §8 P8). */
const struct renogy_family renogy_battery_pro = {
        .name = "battery",
        .label = "Smart lithium battery (Pro)",
        .default_id = 0xFF,
        .fields = fields,
        .n_fields = sizeof fields / sizeof fields[0],
        .blocks = blocks,
        .n_blocks = sizeof blocks / sizeof blocks[0],
        .derive = derive,
        .base = &renogy_battery,
        .variant = "pro",
};

static bool pro_name(const char *s)
{
        return s && (strncmp(s, "RNGRBP", 6) == 0 || strncmp(s, "RNGC", 4) == 0);
}

const struct renogy_family *renogy_battery_variant(
        const char *advertised_name, const char *model, char *why, size_t why_size)
{
        if (pro_name(advertised_name)) {
                snprintf(why, why_size, "Battery Pro: advertised as %s (current in 0.1 A)", advertised_name);
                return &renogy_battery_pro;
        }
        if (pro_name(model)) {
                snprintf(why, why_size, "Battery Pro: model %s (current in 0.1 A)", model);
                return &renogy_battery_pro;
        }
        if (advertised_name && *advertised_name)
                snprintf(why, why_size, "standard scales: advertised as %s (current in 0.01 A)",
                        advertised_name);
        else
                snprintf(why, why_size,
                        "standard scales: the module has not advertised a name yet (current in 0.01 A)");
        return &renogy_battery;
}
