/* SPDX-License-Identifier: MIT */
#pragma once

/* Identity registers shared by controllers and DC-DC chargers (RENOGY_BLE.md §4.1). */
#define RENOGY_IDENTITY_ROWS                                                                                \
        TEXT("model", "Model", 0x000C, 16),                                                                 \
                {.key = "software_version",                                                                 \
                        .label = "Software version",                                                        \
                        .addr = 0x0014,                                                                     \
                        .raw = RAW_VERSION,                                                                 \
                        .kind = KIND_TEXT},                                                                 \
                {.key = "hardware_version",                                                                 \
                        .label = "Hardware version",                                                        \
                        .addr = 0x0016,                                                                     \
                        .raw = RAW_VERSION,                                                                 \
                        .kind = KIND_TEXT},                                                                 \
                {.key = "serial_number",                                                                    \
                        .label = "Serial number",                                                           \
                        .addr = 0x0018,                                                                     \
                        .raw = RAW_HEX,                                                                     \
                        .kind = KIND_TEXT,                                                                  \
                        .len = 4},                                                                          \
                PLAIN("device_address", "Modbus address", 0x001A, RAW_U8_LO)
