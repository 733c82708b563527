/* SPDX-License-Identifier: MIT */
/* JSON views of the daemon's state: what curl, the status page and Home Assistant read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "bank.h"
#include "daemon.h"
#include "device-energy.h"
#include "macro.h"
#include "readings-json.h"
#include "renogy/settings.h"
#include "store.h"

char *iso8601(int64_t usec, char *buf, size_t size)
{
        time_t t = (time_t)(usec / 1000000);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
        return buf;
}

static json_t *time_or_null(int64_t usec)
{
        char buf[32];
        return usec > 0 ? json_string(iso8601(usec, buf, sizeof buf)) : json_null();
}

/* The readings of the optional blocks this device's firmware left unanswered ("not reported by
 * this model"): its model string, on some controllers and inverters. */
static json_t *not_reported_json(const struct device *dev)
{
        json_t *list = json_array();
        const struct renogy_family *f = dev->decoder; /* the plan the bits index */
        for (size_t b = 0; b < f->n_blocks && b < 32; b++) {
                if (!(dev->optional_unanswered & (1u << b)))
                        continue;
                const struct renogy_block *blk = &f->blocks[b];
                for (size_t k = 0; k < f->n_fields; k++)
                        if (renogy_field_in_block(&f->fields[k], blk))
                                json_array_append_new(list, json_string(f->fields[k].key));
        }
        return list;
}

/* What this model lets a user set (POST …/settings): the range or options, in the reading's own
 * unit, and the value as last read. */
static json_t *settings_json(const struct device *dev)
{
        const struct renogy_setting *list[8];
        size_t n = renogy_settings(dev->decoder, list, ELEMENTSOF(list));
        json_t *out = json_array();
        for (size_t i = 0; i < n; i++) {
                const struct renogy_setting *s = list[i];
                const struct renogy_field *f = renogy_field_find(dev->decoder, s->key);
                const struct renogy_reading *r =
                        dev->have_readings ? renogy_readings_get(&dev->readings, s->key) : NULL;
                json_t *o = json_pack("{s:s,s:s,s:o}", "key", s->key, "label", f->label, "value",
                        r ? reading_value_json(r) : json_null());
                if (f->kind == KIND_ENUM) {
                        json_t *opts = json_array();
                        for (unsigned v = s->min; v <= s->max; v += s->step)
                                if (v < f->n_names && f->names[v])
                                        json_array_append_new(opts, json_string(f->names[v]));
                        json_object_set_new(o, "options", opts);
                } else {
                        double scale = renogy_pow10(f->decimals);
                        json_object_set_new(o, "min", json_real(s->min / scale));
                        json_object_set_new(o, "max", json_real(s->max / scale));
                        json_object_set_new(o, "step", json_real(s->step / scale));
                        json_object_set_new(o, "unit", f->unit ? json_string(f->unit) : json_null());
                }
                json_array_append_new(out, o);
        }
        return out;
}

json_t *view_diagnosis(int code, const char *detail)
{
        if (code == DIAG_NONE)
                return json_null();
        const struct diagnosis_info *info = diagnosis_info((enum diagnosis_code)code);
        char msg[512];
        diagnosis_message((enum diagnosis_code)code, detail, msg, sizeof msg);
        static const char *const sev[] = {"info", "warning", "error"};
        return json_pack("{s:s,s:s,s:s,s:s}", "code", info->code, "severity", sev[info->severity], "message",
                msg, "remedy", info->remedy);
}

/* Data Home Assistant should show: younger than the device's own schedule allows (a few of its
 * intervals plus its read time), whatever the other devices do, and its reads not failing with
 * a diagnosis (asleep, held, unreachable). The one rule of the API, the generated package and
 * the integration: both read this field. */
bool device_available(const struct daemon *d, const struct device *dev)
{
        if (!dev->have_readings || !dev->last_poll)
                return false;
        int64_t age = now_realtime() - dev->readings_at;
        return age <= (int64_t)device_fresh_usec(d, dev) &&
               (dev->state == DEVICE_ONLINE || dev->state == DEVICE_STALE ||
                       dev->state == DEVICE_CONNECTING);
}

json_t *view_device(const struct daemon *d, const struct device *dev)
{
        const struct module *m = dev->module;
        json_t *o = json_object();
        json_object_set_new(o, "id", json_string(dev->cfg.id));
        json_object_set_new(o, "name", json_string(dev->cfg.name));
        json_object_set_new(o, "address", json_string(dev->cfg.address));
        json_object_set_new(o, "family", json_string(dev->cfg.family->name));
        json_object_set_new(o, "family_label", json_string(dev->decoder->label));
        /* Batteries, inverters and DC-DC chargers come in variants with other scales, maps or
         * plans: which one, and why (RENOGY_BLE.md §3, §4.3, §8). */
        json_t *variant = NULL;
        if (dev->cfg.family == &renogy_battery)
                variant = json_pack("{s:s,s:f,s:s}", "name", dev->decoder->variant ?: "standard",
                        "current_scale", dev->decoder->variant ? 0.1 : 0.01, "why", dev->variant_why);
        else if (dev->variant_why[0])
                variant = json_pack(
                        "{s:s,s:s}", "name", dev->decoder->variant ?: "standard", "why", dev->variant_why);
        json_object_set_new(o, "variant", variant ?: json_null());
        const struct bank *bank = device_bank(dev);
        json_object_set_new(o, "modbus_id",
                dev->cfg.family->byte_addressed || bank ? json_null() : json_integer(dev->cfg.modbus_id));
        json_object_set_new(o, "source",
                json_string(bank                ? "computed"
                            : dev->cfg.from_api ? "api"
                                                : "options"));
        if (bank) {
                /* The packs it sums, by id: a client links the bank to them. */
                json_t *packs = json_array();
                for (size_t i = 0; i < bank->n_packs; i++)
                        json_array_append_new(packs, json_string(bank->packs[i]->cfg.id));
                json_object_set_new(o, "packs", packs);
        }
        json_object_set_new(o, "adapter", json_string(m->radio->name));
        json_object_set_new(o, "poll_interval", json_integer(device_interval(d, dev)));
        json_object_set_new(
                o, "fresh_for_s", json_real(renogy_round((double)device_fresh_usec(d, dev) / 1e6, 1)));
        json_object_set_new(o, "module_name", m->name[0] ? json_string(m->name) : json_null());
        json_object_set_new(o, "model", dev->model[0] ? json_string(dev->model) : json_null());
        json_object_set_new(o, "serial", dev->serial[0] ? json_string(dev->serial) : json_null());
        json_object_set_new(o, "firmware", dev->firmware[0] ? json_string(dev->firmware) : json_null());
        json_object_set_new(o, "not_reported", not_reported_json(dev));
        json_object_set_new(o, "state", json_string(device_state_to_string(dev->state)));
        json_object_set_new(o, "available", json_boolean(device_available(d, dev)));
        /* The device's own diagnosis; without one, a system-wide problem explains it. */
        int code = dev->diag;
        const char *detail = dev->diag_detail;
        char sys_detail[192];
        if (code == DIAG_NONE && dev->state != DEVICE_ONLINE) {
                int c = device_link_diagnosis(d, dev, sys_detail, sizeof sys_detail);
                if (c != DIAG_ADAPTER_SHARED) {
                        code = c;
                        detail = sys_detail;
                }
        }
        json_object_set_new(o, "diagnosis", view_diagnosis(code, detail));
        json_object_set_new(o, "last_seen", time_or_null(m->last_seen));
        json_object_set_new(o, "last_poll", time_or_null(dev->last_poll));
        json_object_set_new(o, "last_attempt", time_or_null(dev->last_attempt));
        json_object_set_new(o, "readings_at", time_or_null(dev->have_readings ? dev->readings_at : 0));
        json_object_set_new(o, "age_s",
                dev->have_readings
                        ? json_real(renogy_round((double)(now_realtime() - dev->readings_at) / 1e6, 1))
                        : json_null());
        json_object_set_new(o, "rssi",
                (m->has_rssi || m->last_seen) && bluez_rssi_known(m->rssi) ? json_integer(m->rssi)
                                                                           : json_null());
        json_object_set_new(o, "poll_ms", dev->poll_ms ? json_integer(dev->poll_ms) : json_null());
        json_object_set_new(
                o, "last_error", dev->last_error[0] ? json_string(dev->last_error) : json_null());
        json_object_set_new(o, "consecutive_failures", json_integer(dev->failures));
        json_t *readings = dev->have_readings ? readings_json(&dev->readings, true) : json_object();
        device_energy_json(d, dev, readings);
        json_object_set_new(o, "readings", readings);
        json_object_set_new(o, "settings", settings_json(dev));
        return o;
}

json_t *view_devices(const struct daemon *d)
{
        json_t *arr = json_array();
        for (size_t i = 0; i < d->n_devices; i++)
                json_array_append_new(arr, view_device(d, d->devices[i]));
        for (size_t i = 0; i < d->n_banks; i++)
                json_array_append_new(arr, view_device(d, &d->banks[i]->dev));
        /* What keeps every device from being read (bus, BlueZ, adapter), so that one request tells a
         * client all it shows. */
        char detail[192];
        enum diagnosis_code c = daemon_system_diagnosis(d, detail, sizeof detail);
        return json_pack("{s:o,s:i,s:o}", "devices", arr, "poll_interval", (json_int_t)d->opts.poll_interval,
                "system_diagnosis", view_diagnosis(c, detail));
}

static json_t *view_adapter(const struct daemon *d, const struct radio *r)
{
        const struct bluez_adapter *a =
                d->bluez && bluez_service_up(d->bluez) ? bluez_adapter_find(d->bluez, r->name) : NULL;
        char detail[192];
        enum diagnosis_code c = daemon_adapter_diagnosis(d, r->name, detail, sizeof detail);
        static const char *const looks[] = {
                [LOOK_OFF] = "off",
                [LOOK_STARTING] = "starting",
                [LOOK_ON] = "on",
                [LOOK_STOPPING] = "stopping",
        };
        /* "looking_for": modules not seen lately that the adapter scans for between sessions. */
        return json_pack("{s:s,s:b,s:b,s:b,s:s?,s:i,s:s?,s:i,s:s,s:o}", "name", r->name, "present",
                a != NULL, "powered", a && a->powered, "discovering", a && a->discovering, "address",
                a ? a->address : NULL, "modules", (json_int_t)r->n_modules, "session",
                r->active ? r->active->address : NULL, "looking_for", (json_int_t)r->n_looking, "look",
                looks[r->look], "diagnosis", view_diagnosis(c, detail));
}

static json_t *view_system(const struct daemon *d)
{
        char detail[192];
        enum diagnosis_code c = daemon_system_diagnosis(d, detail, sizeof detail);
        json_t *adapter = json_null();
        if (d->bluez && bluez_service_up(d->bluez)) {
                const struct bluez_adapter *a = bluez_adapter_find(d->bluez, d->opts.adapter);
                adapter = json_pack("{s:s,s:b,s:b,s:b,s:s?}", "name", d->opts.adapter, "present", a != NULL,
                        "powered", a && a->powered, "discovering", a && a->discovering, "address",
                        a ? a->address : NULL);
        }
        json_t *adapters = json_array();
        for (size_t i = 0; i < d->n_radios; i++)
                json_array_append_new(adapters, view_adapter(d, d->radios[i]));
        return json_pack("{s:b,s:b,s:o,s:o,s:o}", "bus",
                d->bluez && !d->bus_error && !bluez_bus_broken(d->bluez), "bluez",
                d->bluez && bluez_service_up(d->bluez), "adapter", adapter, "adapters", adapters,
                "diagnosis", view_diagnosis(c, detail));
}

json_t *view_health(const struct daemon *d)
{
        char detail[192];
        enum diagnosis_code c = daemon_system_diagnosis(d, detail, sizeof detail);
        size_t online = 0, available = 0;
        for (size_t i = 0; i < d->n_devices; i++) {
                online += d->devices[i]->state == DEVICE_ONLINE;
                available += device_available(d, d->devices[i]);
        }
        const char *status = "ok";
        if (c != DIAG_NONE && diagnosis_info(c)->severity == SEVERITY_ERROR)
                status = "error";
        else if (available < d->n_devices)
                status = "degraded";
        json_t *store = json_null();
        if (d->store) {
                const struct store_health *h = store_health(d->store);
                store = json_pack("{s:b,s:b,s:b,s:s?,s:s?,s:I,s:I,s:I}", "ok", h->ok, "memory_only",
                        h->memory_only, "recreated", h->recreated, "moved_to",
                        h->recreated ? h->moved_to : NULL, "message", h->message[0] ? h->message : NULL,
                        "bytes", (json_int_t)h->bytes, "samples_written", (json_int_t)h->samples_written,
                        "pending_polls", (json_int_t)h->pending_polls);
                json_object_set_new(store, "committed_until", time_or_null(h->committed_until));
                if (h->memory_only && streq(status, "ok"))
                        status = "degraded";
        }
        char started[32];
        uint64_t failed, sessions = daemon_sessions(d, &failed);
        /* Under Home Assistant's Supervisor: the page offers the integration, the add-on announced. */
        return json_pack("{s:s,s:s,s:s?,s:b,s:b,s:s,s:f,s:o,s:{s:i,s:i,s:i},s:o,s:I,s:I}", "status", status,
                "version", BLUPOW_VERSION, "instance_id", d->instance_id[0] ? d->instance_id : NULL,
                "instance_id_kept", d->instance_id_kept, "supervisor", getenv("SUPERVISOR_TOKEN") != NULL,
                "started", iso8601(d->started, started, sizeof started), "uptime_s",
                renogy_round((double)(now_realtime() - d->started) / 1e6, 1), "system", view_system(d),
                "devices", "total", (json_int_t)d->n_devices, "online", (json_int_t)online, "available",
                (json_int_t)available, "store", store, "sessions", (json_int_t)sessions, "sessions_failed",
                (json_int_t)failed);
}

json_t *view_diagnostics(const struct daemon *d)
{
        json_t *devs = json_array();
        for (size_t i = 0; i < d->n_devices; i++) {
                const struct device *dev = d->devices[i];
                json_t *errs = json_object();
                for (int c = 1; c < _DIAG_MAX; c++)
                        if (dev->errors[c])
                                json_object_set_new(errs, diagnosis_info((enum diagnosis_code)c)->code,
                                        json_integer((json_int_t)dev->errors[c]));
                json_t *dv = view_device(d, dev);
                json_array_append_new(devs,
                        json_pack("{s:s,s:s,s:O,s:O,s:O,s:O,s:o,s:I,s:I,s:I}", "id", dev->cfg.id, "name",
                                dev->cfg.name, "state", json_object_get(dv, "state"), "diagnosis",
                                json_object_get(dv, "diagnosis"), "last_error",
                                json_object_get(dv, "last_error"), "rssi", json_object_get(dv, "rssi"),
                                "errors", errs, "polls_ok", (json_int_t)dev->polls_ok, "polls_failed",
                                (json_int_t)dev->polls_failed, "bad_frames", (json_int_t)dev->bad_frames));
                json_decref(dv);
        }
        json_t *codes = json_array();
        for (int c = 1; c < _DIAG_MAX; c++) {
                const struct diagnosis_info *info = diagnosis_info((enum diagnosis_code)c);
                json_array_append_new(codes, json_pack("{s:s,s:s,s:s}", "code", info->code, "message",
                                                     info->message, "remedy", info->remedy));
        }
        return json_pack("{s:o,s:o,s:o}", "system", view_system(d), "devices", devs, "codes", codes);
}

static bool renogy_name(const char *name)
{
        static const char *const prefixes[] = {
                "BT-TH-", "RNGRBP", "RNGC", "RNGPRO", "BTRIC", "RTMShunt", "RNGRIU"};
        for (size_t i = 0; i < ELEMENTSOF(prefixes); i++)
                if (startswith(name, prefixes[i]))
                        return true;
        return false;
}

json_t *view_scan(const struct daemon *d)
{
        json_t *arr = json_array();
        const struct bluez_device *const *devs;
        size_t n = d->bluez && bluez_service_up(d->bluez) ? bluez_devices(d->bluez, &devs) : 0;
        /* Each module as each adapter in use sees it: one in range of two adapters is listed
         * twice, with the signal at each. */
        for (size_t r = 0; r < d->n_radios; r++) {
                const struct bluez_adapter *a = bluez_adapter_find(d->bluez, d->radios[r]->name);
                for (size_t i = 0; a && i < n; i++) {
                        const struct bluez_device *bd = devs[i];
                        if (!bd->adapter_path || !streq(bd->adapter_path, a->path) || !renogy_name(bd->name))
                                continue;
                        json_t *configured = json_array();
                        for (size_t k = 0; k < d->n_devices; k++)
                                if (strcasecmp(d->devices[k]->cfg.address, bd->address) == 0)
                                        json_array_append_new(
                                                configured, json_string(d->devices[k]->cfg.id));
                        const char *fam = renogy_family_from_name(bd->name);
                        /* A Battery Pro on its own module answers at 255, not a hub's 48. */
                        char why[128];
                        bool pro = fam && streq(fam, "battery") &&
                                   renogy_battery_variant(bd->name, NULL, why, sizeof why) ==
                                           &renogy_battery_pro;
                        json_array_append_new(arr,
                                json_pack("{s:s,s:s,s:s,s:o,s:o,s:o,s:b,s:o}", "name", bd->name, "address",
                                        bd->address, "adapter", a->name, "rssi",
                                        bd->has_rssi && bluez_rssi_known(bd->rssi) ? json_integer(bd->rssi)
                                                                                   : json_null(),
                                        "family", fam ? json_string(fam) : json_null(), "modbus_id",
                                        pro ? json_integer(0xFF) : json_null(), "configured",
                                        json_array_size(configured) > 0, "devices", configured));
                }
        }
        return json_pack("{s:b,s:o}", "scanning", daemon_scanning(d), "modules", arr);
}
