/* SPDX-License-Identifier: MIT */
#include <math.h>

#include "energy.h"

#define USEC_PER_HOUR 3600e6

bool energy_meter_add(struct energy_meter *m, int64_t t_usec, double watts, int64_t max_gap_usec)
{
        if (!isfinite(watts) || t_usec <= 0)
                return false;
        if (m->last_usec && t_usec <= m->last_usec)
                return false; /* a repeated or a stepped-back clock: keep the later sample */
        if (m->last_usec && t_usec - m->last_usec <= max_gap_usec) {
                double h = (double)(t_usec - m->last_usec) / USEC_PER_HOUR, p0 = m->last_w, p1 = watts;
                double in_wh, out_wh;
                if ((p0 >= 0) == (p1 >= 0)) {
                        double wh = (p0 + p1) / 2 * h;
                        in_wh = wh > 0 ? wh : 0;
                        out_wh = wh < 0 ? -wh : 0;
                } else {
                        /* The line between them crosses zero at f of the interval. */
                        double f = p0 / (p0 - p1);
                        double a = p0 * f * h / 2, b = p1 * (1 - f) * h / 2;
                        in_wh = (a > 0 ? a : 0) + (b > 0 ? b : 0);
                        out_wh = (a < 0 ? -a : 0) + (b < 0 ? -b : 0);
                }
                m->in_kwh += in_wh / 1000;
                m->out_kwh += out_wh / 1000;
        }
        m->last_usec = t_usec;
        m->last_w = watts;
        return true;
}
