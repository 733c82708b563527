/* SPDX-License-Identifier: MIT */
#pragma once

/* Shorthands for register-map rows. Each names what Home Assistant needs to know about the
 * reading (unit, device_class, state_class) next to where it lives. */

#include "renogy/family.h"

#define MEAS  "measurement"
#define TOTAL "total_increasing"

#define ROW_NUM(k, l, a, r, s, dec, u, dc, sc)                                                              \
        {                                                                                                   \
                .key = k, .label = l, .addr = a, .raw = r, .sign = s, .kind = KIND_NUMBER, .decimals = dec, \
                .unit = u, .device_class = dc, .state_class = sc                                            \
        }

#define VOLTS(k, l, a, dec)  ROW_NUM(k, l, a, RAW_U16, SIGN_NONE, dec, "V", "voltage", MEAS)
#define AMPS(k, l, a, dec)   ROW_NUM(k, l, a, RAW_U16, SIGN_NONE, dec, "A", "current", MEAS)
#define SAMPS(k, l, a, dec)  ROW_NUM(k, l, a, RAW_U16, SIGN_TWOS, dec, "A", "current", MEAS)
#define WATTS(k, l, a)       ROW_NUM(k, l, a, RAW_U16, SIGN_NONE, 0, "W", "power", MEAS)
#define PERCENT(k, l, a, dc) ROW_NUM(k, l, a, RAW_U16, SIGN_NONE, 0, "%", dc, MEAS)
#define KWH(k, l, a, r)      ROW_NUM(k, l, a, r, SIGN_NONE, 3, "kWh", "energy", TOTAL)
#define AH(k, l, a, r, sc)   ROW_NUM(k, l, a, r, SIGN_NONE, 0, "Ah", NULL, sc)
#define COUNT(k, l, a)       ROW_NUM(k, l, a, RAW_U16, SIGN_NONE, 0, NULL, NULL, TOTAL)
#define SM_TEMP(k, l, a, r)  ROW_NUM(k, l, a, r, SIGN_MAGNITUDE, 0, "°C", "temperature", MEAS)
#define PLAIN(k, l, a, r)    ROW_NUM(k, l, a, r, SIGN_NONE, 0, NULL, NULL, NULL)

#define NAMES(arr) .names = arr, .n_names = sizeof(arr) / sizeof((arr)[0])
#define ENUM(k, l, a, r, arr)                                                                               \
        {                                                                                                   \
                .key = k, .label = l, .addr = a, .raw = r, .kind = KIND_ENUM, .device_class = "enum",       \
                NAMES(arr)                                                                                  \
        }
#define BITS(k, l, a, r, arr)                                                                               \
        {                                                                                                   \
                .key = k, .label = l, .addr = a, .raw = r, .kind = KIND_BITS, NAMES(arr)                    \
        }
#define BITS_WITH_STATES(k, l, a, r, arr, states)                                                           \
        {                                                                                                   \
                .key = k, .label = l, .addr = a, .raw = r, .kind = KIND_BITS, .state_bits = states,         \
                NAMES(arr)                                                                                  \
        }
#define FLAG(k, l, a, r, b)                                                                                 \
        {                                                                                                   \
                .key = k, .label = l, .addr = a, .raw = r, .kind = KIND_FLAG, .bit = b                      \
        }
#define TEXT(k, l, a, n)                                                                                    \
        {                                                                                                   \
                .key = k, .label = l, .addr = a, .raw = RAW_ASCII, .kind = KIND_TEXT, .len = n              \
        }
#define DERIVED(k, l, u, dc, sc)                                                                            \
        {                                                                                                   \
                .key = k, .label = l, .raw = RAW_NONE, .unit = u, .device_class = dc, .state_class = sc     \
        }

/* A counter the daemon keeps from each poll's power (energy.h), never decoded from registers. */
#define METERED(k, l) DERIVED(k, l, "kWh", "energy", "total_increasing")

#define ARRAY_AND_SIZE(a) a, sizeof(a) / sizeof((a)[0])
