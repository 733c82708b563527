/* SPDX-License-Identifier: MIT */
/* Charge controllers: Rover, Wanderer, Adventurer, Rover Elite (RENOGY_BLE.md §4.1). */
#include "renogy/rows.h"
#include "renogy/identity.h"
#include "renogy/charge-settings.h"

static const char *const charging_status[] = {
        "deactivated",
        "activated",
        "mppt",
        "equalizing",
        "boost",
        "floating",
        "current_limiting",
};

static const char *const faults[] = {
        "battery_over_discharge",
        "battery_over_voltage",
        "battery_under_voltage_warning",
        "load_short_circuit",
        "load_over_current",
        "controller_over_temperature",
        "ambient_over_temperature",
        "pv_input_overpower",
        "pv_input_short_circuit",
        "pv_input_over_voltage",
        "pv_counter_current",
        "pv_working_point_over_voltage",
        "pv_reverse_connection",
        "anti_reverse_mos_short",
        "charge_mos_short",
};

/* Some controllers (SRNE ML2440) report 0 for a user-defined battery, as DC-DC chargers do
 * (RENOGY_BLE.md §8 P11). */
static const char *const battery_types[] = {"custom", "open", "sealed", "gel", "lithium", "custom"};
static const char *const product_types[] = {"controller", "inverter"};

/* 0xE01D (RENOGY_BLE.md §8 P6): dusk to dawn, on at dusk for 1–14 hours, manual, debug, always. */
static const char *const load_modes[] = {
        "dusk_to_dawn",
        "dusk_plus_1h",
        "dusk_plus_2h",
        "dusk_plus_3h",
        "dusk_plus_4h",
        "dusk_plus_5h",
        "dusk_plus_6h",
        "dusk_plus_7h",
        "dusk_plus_8h",
        "dusk_plus_9h",
        "dusk_plus_10h",
        "dusk_plus_11h",
        "dusk_plus_12h",
        "dusk_plus_13h",
        "dusk_plus_14h",
        "manual",
        "debug",
        "always_on",
};

static const struct renogy_field fields[] = {
        ROW_NUM("rated_voltage", "Rated voltage", 0x000A, RAW_U8_HI, SIGN_NONE, 0, "V", "voltage", NULL),
        ROW_NUM("rated_charging_current", "Rated charging current", 0x000A, RAW_U8_LO, SIGN_NONE, 0, "A",
                "current", NULL),
        ROW_NUM("rated_discharging_current", "Rated discharging current", 0x000B, RAW_U8_HI, SIGN_NONE, 0,
                "A", "current", NULL),
        ENUM("product_type", "Product type", 0x000B, RAW_U8_LO, product_types),
        RENOGY_IDENTITY_ROWS,
        PERCENT("battery_percentage", "Battery", 0x0100, "battery"),
        VOLTS("battery_voltage", "Battery voltage", 0x0101, 1),
        AMPS("battery_current", "Battery charging current", 0x0102, 2),
        SM_TEMP("controller_temperature", "Controller temperature", 0x0103, RAW_U8_HI),
        SM_TEMP("battery_temperature", "Battery temperature", 0x0103, RAW_U8_LO),
        VOLTS("load_voltage", "Load voltage", 0x0104, 1),
        AMPS("load_current", "Load current", 0x0105, 2),
        WATTS("load_power", "Load power", 0x0106),
        VOLTS("pv_voltage", "PV voltage", 0x0107, 1),
        AMPS("pv_current", "PV current", 0x0108, 2),
        WATTS("pv_power", "PV power", 0x0109),
        VOLTS("battery_min_voltage_today", "Battery minimum voltage today", 0x010B, 1),
        VOLTS("battery_max_voltage_today", "Battery maximum voltage today", 0x010C, 1),
        AMPS("max_charging_current_today", "Maximum charging current today", 0x010D, 2),
        AMPS("max_discharging_current_today", "Maximum discharging current today", 0x010E, 2),
        WATTS("max_charging_power_today", "Maximum charging power today", 0x010F),
        WATTS("max_discharging_power_today", "Maximum discharging power today", 0x0110),
        AH("charging_amp_hours_today", "Charged today", 0x0111, RAW_U16, TOTAL),
        AH("discharging_amp_hours_today", "Discharged today", 0x0112, RAW_U16, TOTAL),
        KWH("power_generation_today", "Energy generated today", 0x0113, RAW_U16),
        KWH("power_consumption_today", "Energy consumed today", 0x0114, RAW_U16),
        ROW_NUM("total_operating_days", "Operating days", 0x0115, RAW_U16, SIGN_NONE, 0, "d", "duration",
                TOTAL),
        COUNT("total_battery_over_discharges", "Battery over-discharges", 0x0116),
        COUNT("total_battery_full_charges", "Battery full charges", 0x0117),
        AH("total_charging_amp_hours", "Charged in total", 0x0118, RAW_U32, TOTAL),
        AH("total_discharging_amp_hours", "Discharged in total", 0x011A, RAW_U32, TOTAL),
        KWH("power_generation_total", "Energy generated", 0x011C, RAW_U32),
        KWH("power_consumption_total", "Energy consumed", 0x011E, RAW_U32),
        FLAG("load_status", "Load", 0x0120, RAW_U8_HI, 7),
        {.key = "load_brightness",
                .label = "Load brightness",
                .addr = 0x0120,
                .raw = RAW_U8_HI,
                .kind = KIND_NUMBER,
                .mask = 0x7F,
                .unit = "%",
                .state_class = MEAS},
        ENUM("charging_status", "Charging status", 0x0120, RAW_U8_LO, charging_status),
        BITS("controller_faults", "Faults", 0x0121, RAW_U16, faults),
        ENUM("battery_type", "Battery type", 0xE004, RAW_U16, battery_types),
        /* The settings block, as on the DC-DC charger (§8 P6). */
        ROW_NUM("battery_capacity", "Battery capacity setting", 0xE002, RAW_U16, SIGN_NONE, 0, "Ah", NULL,
                NULL),
        CHARGE_SETTING_ROWS,
        ROW_NUM("end_of_charge_soc", "End-of-charge SOC", 0xE00F, RAW_U8_HI, SIGN_NONE, 0, "%", NULL, NULL),
        ROW_NUM("end_of_discharge_soc", "End-of-discharge SOC", 0xE00F, RAW_U8_LO, SIGN_NONE, 0, "%", NULL,
                NULL),
        ENUM("load_mode", "Load working mode", 0xE01D, RAW_U16, load_modes),
};

static const struct renogy_block blocks[] = {
        {0x000C, 8, .optional = true},
        {0x001A, 1},
        {0x0100, 34},
        {0xE004, 1},
        {0xE002, 32, .optional = true, .settings = true},
};

const struct renogy_family renogy_controller = {
        .name = "controller",
        .label = "Charge controller",
        .default_id = 0xFF,
        .fields = fields,
        .n_fields = sizeof fields / sizeof fields[0],
        .blocks = blocks,
        .n_blocks = sizeof blocks / sizeof blocks[0],
};
