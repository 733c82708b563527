/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* An energy meter fed with power samples: the energy that went in (positive power) and out
 * (negative power), in kWh. Pure: no clock, no I/O. */
struct energy_meter {
        double in_kwh, out_kwh;
        int64_t last_usec; /* time of the last sample, 0 = none yet */
        double last_w;
};

/* Adds the energy between the meter's last sample and this one: the trapezoid under the two
 * powers over the real time between them, split where the power crosses zero, so that charge
 * and discharge within one interval each count on their own side. Nothing is added across a
 * gap longer than max_gap_usec (the module was not read: what happened then is unknown), for a
 * time at or before the last sample, or for a power that is not a finite number (that sample
 * is ignored). Returns true when the sample was taken as the meter's last. */
bool energy_meter_add(struct energy_meter *m, int64_t t_usec, double watts, int64_t max_gap_usec);
