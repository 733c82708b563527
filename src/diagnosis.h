/* SPDX-License-Identifier: MIT */
#pragma once

/* Stable diagnosis codes: what is wrong, in one sentence, and what to do. The API, the status
 * page and `blupowd verify` all show these. */

#include <stdbool.h>
#include <stddef.h>

enum diagnosis_code {
        DIAG_NONE = 0,
        DIAG_NO_SYSTEM_BUS,
        DIAG_DBUS_ACCESS_DENIED,
        DIAG_BLUEZ_NOT_RUNNING,
        DIAG_NO_ADAPTER,
        DIAG_ADAPTER_MISSING,
        DIAG_ADAPTER_OFF,
        DIAG_ADAPTER_SHARED,
        DIAG_NOT_FOUND,
        DIAG_ASLEEP,
        DIAG_INVERTER_ASLEEP,
        DIAG_HELD_BY_OTHER_CENTRAL,
        DIAG_CONNECT_FAILED,
        DIAG_WRONG_MODBUS_ID,
        DIAG_NO_REPLY,
        DIAG_WEAK_SIGNAL,
        DIAG_DUPLICATE_DEVICE,
        DIAG_PROTOCOL_ERROR,
        _DIAG_MAX,
};

enum diagnosis_severity {
        SEVERITY_INFO,
        SEVERITY_WARNING,
        SEVERITY_ERROR,
};

struct diagnosis_info {
        const char *code;
        enum diagnosis_severity severity;
        const char *message; /* one sentence; may hold one %s for the detail */
        const char *remedy;
};

const struct diagnosis_info *diagnosis_info(enum diagnosis_code c);
int diagnosis_from_string(const char *s);

/* The message with its detail filled in. */
void diagnosis_message(enum diagnosis_code c, const char *detail, char *buf, size_t size);
