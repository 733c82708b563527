/* SPDX-License-Identifier: MIT */
/* /metrics in the Prometheus text format. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "bank.h"
#include "daemon.h"
#include "device-energy.h"
#include "macro.h"

static void label(FILE *f, const char *s)
{
        for (; *s; s++) {
                if (*s == '\\' || *s == '"')
                        fputc('\\', f);
                if (*s == '\n') {
                        fputs("\\n", f);
                        continue;
                }
                fputc(*s, f);
        }
}

static void device_labels(FILE *f, const struct device *dev)
{
        fputs("device=\"", f);
        label(f, dev->cfg.id);
        fputs("\",name=\"", f);
        label(f, dev->cfg.name);
        fprintf(f, "\",family=\"%s\"", dev->cfg.family->name);
}

/* The i-th device the API lists: the read devices, then the battery banks. */
static const struct device *shown_device(const struct daemon *d, size_t i)
{
        return i < d->n_devices ? d->devices[i] : &d->banks[i - d->n_devices]->dev;
}

char *metrics_render(const struct daemon *d, size_t *len)
{
        char *buf = NULL;
        FILE *f = open_memstream(&buf, len);
        if (!f)
                return NULL;
        fputs("# HELP blupow_up 1 when BluPow reaches BlueZ and the configured adapter is powered.\n"
              "# TYPE blupow_up gauge\n",
                f);
        char detail[192];
        fprintf(f, "blupow_up %d\n", daemon_system_diagnosis(d, detail, sizeof detail) == DIAG_NONE);

        /* Up, readings and age for every device the API lists, battery banks included (computed
         * from their packs); the link's figures below are the read devices' own. */
        size_t n_shown = d->n_devices + d->n_banks;

        fputs("# HELP blupow_device_up 1 when the device's data is fresh (its last poll worked).\n"
              "# TYPE blupow_device_up gauge\n",
                f);
        for (size_t i = 0; i < n_shown; i++) {
                fputs("blupow_device_up{", f);
                const struct device *dev = shown_device(d, i);
                device_labels(f, dev);
                fprintf(f, "} %d\n", device_available(d, dev));
        }
        fputs("# HELP blupow_reading A numeric reading of a device, unit in the unit label.\n"
              "# TYPE blupow_reading gauge\n",
                f);
        for (size_t i = 0; i < n_shown; i++) {
                const struct device *dev = shown_device(d, i);
                for (size_t k = 0; dev->have_readings && k < dev->readings.n; k++) {
                        const struct renogy_reading *r = &dev->readings.r[k];
                        if (r->type != RV_NUMBER)
                                continue;
                        fputs("blupow_reading{", f);
                        device_labels(f, dev);
                        fprintf(f, ",key=\"%s\",unit=\"", r->field->key);
                        label(f, r->field->unit ? r->field->unit : "");
                        double v = r->number;
                        device_energy_shown(d, dev, r->field->key, &v); /* as the API shows it */
                        fprintf(f, "\"} %.*f\n", r->decimals, v);
                }
        }
        fputs("# HELP blupow_data_age_seconds Age of the device's readings.\n# TYPE blupow_data_age_seconds "
              "gauge\n",
                f);
        for (size_t i = 0; i < n_shown; i++) {
                const struct device *dev = shown_device(d, i);
                if (!dev->have_readings)
                        continue;
                fputs("blupow_data_age_seconds{", f);
                device_labels(f, dev);
                fprintf(f, "} %.1f\n", (double)(now_realtime() - dev->readings_at) / 1e6);
        }
        fputs("# HELP blupow_rssi_dbm Last advertised signal strength of the device's module.\n"
              "# TYPE blupow_rssi_dbm gauge\n",
                f);
        for (size_t i = 0; i < d->n_devices; i++) {
                const struct device *dev = d->devices[i];
                if (!dev->module->last_seen || !bluez_rssi_known(dev->module->rssi))
                        continue;
                fputs("blupow_rssi_dbm{", f);
                device_labels(f, dev);
                fprintf(f, "} %d\n", dev->module->rssi);
        }
        fputs("# HELP blupow_poll_duration_seconds Duration of the device's last session.\n"
              "# TYPE blupow_poll_duration_seconds gauge\n",
                f);
        for (size_t i = 0; i < d->n_devices; i++) {
                const struct device *dev = d->devices[i];
                if (!dev->poll_ms)
                        continue;
                fputs("blupow_poll_duration_seconds{", f);
                device_labels(f, dev);
                fprintf(f, "} %.3f\n", dev->poll_ms / 1000.0);
        }
        fputs("# HELP blupow_polls_total Polls by result.\n# TYPE blupow_polls_total counter\n", f);
        for (size_t i = 0; i < d->n_devices; i++) {
                const struct device *dev = d->devices[i];
                fputs("blupow_polls_total{", f);
                device_labels(f, dev);
                fprintf(f, ",result=\"ok\"} %llu\n", (unsigned long long)dev->polls_ok);
                fputs("blupow_polls_total{", f);
                device_labels(f, dev);
                fprintf(f, ",result=\"failed\"} %llu\n", (unsigned long long)dev->polls_failed);
        }
        fputs("# HELP blupow_errors_total Failures by diagnosis code.\n# TYPE blupow_errors_total counter\n",
                f);
        for (size_t i = 0; i < d->n_devices; i++) {
                const struct device *dev = d->devices[i];
                for (int c = 1; c < _DIAG_MAX; c++) {
                        if (!dev->errors[c])
                                continue;
                        fputs("blupow_errors_total{", f);
                        device_labels(f, dev);
                        fprintf(f, ",kind=\"%s\"} %llu\n", diagnosis_info((enum diagnosis_code)c)->code,
                                (unsigned long long)dev->errors[c]);
                }
        }
        fputs("# HELP blupow_bad_frames_total Replies with a bad CRC or truncated.\n"
              "# TYPE blupow_bad_frames_total counter\n",
                f);
        for (size_t i = 0; i < d->n_devices; i++) {
                fputs("blupow_bad_frames_total{", f);
                device_labels(f, d->devices[i]);
                fprintf(f, "} %llu\n", (unsigned long long)d->devices[i]->bad_frames);
        }
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}
