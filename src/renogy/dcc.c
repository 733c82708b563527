/* SPDX-License-Identifier: MIT */
/* DC-DC chargers: DCC30S, DCC50S, RBC…D1S (RENOGY_BLE.md §4.2). */
#include "renogy/rows.h"
#include "renogy/identity.h"
#include "renogy/charge-settings.h"

static const char *const charging_status[] = {
        "standby",
        NULL,
        "mppt",
        "equalizing",
        "boost",
        "floating",
        "current_limiting",
        NULL,
        "dc_mode",
};
static const char *const fault_high[] = {
        [4] = "controller_over_temperature",
        [5] = "alternator_over_current",
        [8] = "alternator_over_voltage",
        [9] = "starter_reverse_polarity",
        [10] = "bms_overcharge_protection",
        [11] = "low_temperature_shutdown",
};
static const char *const fault_low[] = {
        [0] = "battery_over_discharge",
        [1] = "battery_over_voltage",
        [2] = "battery_under_voltage",
        [5] = "controller_over_temperature",
        [6] = "battery_over_temperature",
        [7] = "solar_over_current",
        [9] = "solar_over_voltage",
        [12] = "solar_reverse_polarity",
};
static const char *const charging_modes[] = {
        "standby",
        "alternator_to_house",
        "house_to_starter",
        "solar_to_house",
        "solar_alternator_to_house",
        "solar_to_starter",
};
static const char *const ignition[] = {"disconnected", "connected"};
static const char *const battery_types[] = {"custom", "open", "sealed", "gel", "lithium"};

static const struct renogy_field fields[] = {
        RENOGY_IDENTITY_ROWS,
        PERCENT("battery_percentage", "House battery", 0x0100, "battery"),
        VOLTS("battery_voltage", "House battery voltage", 0x0101, 1),
        AMPS("total_charging_current", "Charging current", 0x0102, 2),
        SM_TEMP("controller_temperature", "Charger temperature", 0x0103, RAW_U8_HI),
        SM_TEMP("battery_temperature", "Battery temperature", 0x0103, RAW_U8_LO),
        VOLTS("alternator_voltage", "Alternator voltage", 0x0104, 1),
        AMPS("alternator_current", "Alternator current", 0x0105, 2),
        WATTS("alternator_power", "Alternator power", 0x0106),
        VOLTS("solar_voltage", "Solar voltage", 0x0107, 1),
        AMPS("solar_current", "Solar current", 0x0108, 2),
        /* 0x0109 includes the alternator's power on RBC50D1S-G7 and DCC50S units (RENOGY_BLE.md
         * §8 P12): published as reported, and solar_power derived from the solar input. */
        WATTS("solar_power_reported", "Solar power as reported (with the alternator on some units)", 0x0109),
        DERIVED("solar_power", "Solar power", "W", "power", MEAS),
        VOLTS("battery_min_voltage_today", "Battery minimum voltage today", 0x010B, 1),
        VOLTS("battery_max_voltage_today", "Battery maximum voltage today", 0x010C, 1),
        AMPS("max_charging_current_today", "Maximum charging current today", 0x010D, 2),
        WATTS("max_charging_power_today", "Maximum charging power today", 0x010F),
        AH("charging_amp_hours_today", "Charged today", 0x0111, RAW_U16, TOTAL),
        /* On units whose 0x0109 includes the alternator this daily counter falls during the day
         * (§8 P12): a total, not total_increasing, so that a fall is not taken for a reset. */
        ROW_NUM("power_generation_today", "Energy charged today", 0x0113, RAW_U16, SIGN_NONE, 3, "kWh",
                "energy", "total"),
        ROW_NUM("total_operating_days", "Operating days", 0x0115, RAW_U16, SIGN_NONE, 0, "d", "duration",
                TOTAL),
        COUNT("total_battery_over_discharges", "Battery over-discharges", 0x0116),
        COUNT("total_battery_full_charges", "Battery full charges", 0x0117),
        AH("total_charging_amp_hours", "Charged in total", 0x0118, RAW_U32, TOTAL),
        KWH("power_generation_total", "Energy charged", 0x011C, RAW_U32),
        ENUM("charging_status", "Charging status", 0x0120, RAW_U8_LO, charging_status),
        BITS("fault_high", "Faults (high word)", 0x0121, RAW_U16, fault_high),
        BITS("fault_low", "Faults (low word)", 0x0122, RAW_U16, fault_low),
        WATTS("output_power", "Output power", 0x0124),
        ENUM("charging_mode", "Charging mode", 0x0125, RAW_U16, charging_modes),
        ENUM("ignition_status", "Ignition", 0x0126, RAW_U16, ignition),
        ROW_NUM("max_charging_current", "Maximum charging current setting", 0xE001, RAW_U16, SIGN_NONE, 2,
                "A", "current", NULL),
        ROW_NUM("system_voltage", "System voltage", 0xE003, RAW_U8_HI, SIGN_NONE, 0, "V", "voltage", NULL),
        ENUM("battery_type", "Battery type", 0xE004, RAW_U16, battery_types),
        CHARGE_SETTING_ROWS,
        ROW_NUM("reverse_charging_voltage", "Reverse charging voltage", 0xE020, RAW_U16, SIGN_NONE, 1, "V",
                "voltage", NULL),
        ROW_NUM("solar_cutoff_current", "Solar cut-off current", 0xE038, RAW_U16, SIGN_NONE, 2, "A",
                "current", NULL),
};

static const struct renogy_block blocks[] = {
        {0x000C, 8, .optional = true},
        {0x001A, 1},
        {0x0100, 32},
        {0x0120, 8},
        {0xE001, 1, .optional = true, .settings = true},
        {0xE003, 18, .optional = true, .settings = true},
        {0xE020, 1, .optional = true, .settings = true},
        {0xE038, 1, .optional = true, .settings = true},
};

/* G6 units never answer 0x0120 and refuse any read past 0x0121; 0x0100 ×34 ends with their
 * charging status and high fault word (§3, §4.2). */
static const struct renogy_block g6_blocks[] = {
        {0x000C, 8, .optional = true},
        {0x001A, 1},
        {0x0100, 34},
        {0xE001, 1, .optional = true, .settings = true},
        {0xE003, 18, .optional = true, .settings = true},
        {0xE020, 1, .optional = true, .settings = true},
        {0xE038, 1, .optional = true, .settings = true},
};

static void derive(const struct renogy_family *f, struct renogy_readings *out)
{
        const struct renogy_reading *v = renogy_readings_get(out, "solar_voltage");
        const struct renogy_reading *i = renogy_readings_get(out, "solar_current");
        if (v && i)
                renogy_reading_add_number(
                        out, renogy_field_find(f, "solar_power"), v->number * i->number, 0);
}

const struct renogy_family renogy_dcc = {
        .name = "dcc",
        .label = "DC-DC charger",
        .default_id = 0xFF,
        .fields = fields,
        .n_fields = sizeof fields / sizeof fields[0],
        .blocks = blocks,
        .n_blocks = sizeof blocks / sizeof blocks[0],
        .derive = derive,
};

const struct renogy_family renogy_dcc_g6 = {
        .name = "dcc",
        .label = "DC-DC charger (G6)",
        .default_id = 0xFF,
        .fields = fields,
        .n_fields = sizeof fields / sizeof fields[0],
        .blocks = g6_blocks,
        .n_blocks = sizeof g6_blocks / sizeof g6_blocks[0],
        .derive = derive,
        .base = &renogy_dcc,
        .variant = "g6",
};
