/* SPDX-License-Identifier: MIT */
#pragma once

/* The charging parameters controllers and DC-DC chargers share, 0xE005–0xE014 (RENOGY_BLE.md
 * §4.2, §8 P6): settings, so no state class. */
#define CHARGE_VOLTS(k, l, a) ROW_NUM(k, l, a, RAW_U16, SIGN_NONE, 1, "V", "voltage", NULL)
#define CHARGE_SETTING_ROWS                                                                                 \
        CHARGE_VOLTS("over_voltage_threshold", "Over-voltage threshold", 0xE005),                           \
                CHARGE_VOLTS("charging_limit_voltage", "Charging limit voltage", 0xE006),                   \
                CHARGE_VOLTS("equalization_voltage", "Equalization voltage", 0xE007),                       \
                CHARGE_VOLTS("boost_voltage", "Boost voltage", 0xE008),                                     \
                CHARGE_VOLTS("float_voltage", "Float voltage", 0xE009),                                     \
                CHARGE_VOLTS("boost_return_voltage", "Boost return voltage", 0xE00A),                       \
                CHARGE_VOLTS("over_discharge_return_voltage", "Over-discharge return voltage", 0xE00B),     \
                CHARGE_VOLTS("under_voltage_warning", "Under-voltage warning", 0xE00C),                     \
                CHARGE_VOLTS("over_discharge_voltage", "Over-discharge voltage", 0xE00D),                   \
                CHARGE_VOLTS("discharge_limit_voltage", "Discharge limit voltage", 0xE00E),                 \
                ROW_NUM("over_discharge_delay", "Over-discharge delay", 0xE010, RAW_U16, SIGN_NONE, 0, "s", \
                        "duration", NULL),                                                                  \
                ROW_NUM("equalization_time", "Equalization time", 0xE011, RAW_U16, SIGN_NONE, 0, "min",     \
                        "duration", NULL),                                                                  \
                ROW_NUM("boost_time", "Boost time", 0xE012, RAW_U16, SIGN_NONE, 0, "min", "duration",       \
                        NULL),                                                                              \
                ROW_NUM("equalization_interval", "Equalization interval", 0xE013, RAW_U16, SIGN_NONE, 0,    \
                        "d", "duration", NULL)
