/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon.h"
#include "log.h"
#include "macro.h"
#include "poller.h"
#include "store.h"

static const char *const state_names[_DEVICE_STATE_MAX] = {
        [DEVICE_STARTING] = "starting",
        [DEVICE_ONLINE] = "online",
        [DEVICE_STALE] = "stale",
        [DEVICE_CONNECTING] = "connecting",
        [DEVICE_ASLEEP] = "asleep",
        [DEVICE_BUSY] = "busy",
        [DEVICE_UNREACHABLE] = "unreachable",
        [DEVICE_ERROR] = "error",
};

const char *device_state_to_string(enum device_state s)
{
        return s < _DEVICE_STATE_MAX ? state_names[s] : "error";
}

int64_t now_realtime(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

uint64_t now_monotonic(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
}

/* ---- BlueZ events ---- */

/* Both sides are in capitals already: options.c writes module addresses so, and bluez.c the
 * addresses BlueZ reports. */
static struct module *module_by_address(struct daemon *d, const char *address)
{
        return strmap_get_str(&d->module_by_address, address);
}

static void on_service(void *userdata, bool up)
{
        struct daemon *d = userdata;
        if (!up)
                for (size_t i = 0; i < d->n_modules; i++)
                        link_on_adapter_gone(d->modules[i]->link);
        poller_schedule(d);
}

static void on_adapter(void *userdata, const struct bluez_adapter *a, bool removed)
{
        struct daemon *d = userdata;
        if (!streq(a->name, d->opts.adapter))
                return;
        if (removed || !a->powered)
                for (size_t i = 0; i < d->n_modules; i++)
                        link_on_adapter_gone(d->modules[i]->link);
        poller_schedule(d);
}

static void on_device(void *userdata, const struct bluez_device *bd, unsigned what)
{
        struct daemon *d = userdata;
        struct module *m = module_by_address(d, bd->address);
        if (!m)
                return;
        if (bd->name[0])
                snprintf(m->name, sizeof m->name, "%s", bd->name);
        if (what & BLUEZ_DEV_ADVERTISED) {
                m->last_seen = now_realtime();
                m->rssi = bd->rssi;
                m->has_rssi = true;
        }
        if (what & (BLUEZ_DEV_LOST | BLUEZ_DEV_REMOVED)) {
                if (m->has_rssi)
                        m->stopped_advertising = now_realtime();
                m->has_rssi = false;
        }
        link_on_device(m->link, bd, what);
}

static void on_notification(void *userdata, const char *char_path, const uint8_t *data, size_t len)
{
        struct daemon *d = userdata;
        if (d->active)
                link_on_notification(d->active->link, char_path, data, len);
}

static void on_synced(void *userdata, enum bluez_error e, const char *message)
{
        struct daemon *d = userdata;
        d->sync_pending = false;
        d->sync_error = e;
        snprintf(d->sync_message, sizeof d->sync_message, "%s", message ? message : "");
        if (e == BLUEZ_OK)
                log_info("Following BlueZ: adapter %s %s", d->opts.adapter,
                        bluez_adapter_find(d->bluez, d->opts.adapter) ? "present" : "missing");
        else if (e == BLUEZ_ERR_ACCESS_DENIED)
                log_error("D-Bus refused our call to org.bluez (AccessDenied): %s", d->sync_message);
        else if (e == BLUEZ_ERR_NO_OWNER)
                log_error("org.bluez has no owner: bluetoothd is not running");
        poller_schedule(d);
}

static const struct bluez_handlers handlers = {
        .service = on_service,
        .adapter = on_adapter,
        .device = on_device,
        .notification = on_notification,
        .synced = on_synced,
};

/* ---- bus connection, retried while it is missing or broken ---- */

static int connect_bus(struct daemon *d)
{
        d->bluez = bluez_free(d->bluez);
        int r = bluez_new(&d->bluez, d->event, &handlers, d);
        if (r < 0) {
                if (d->bus_error != r)
                        log_error_errno(r, "Cannot connect to the system bus (%s): %m",
                                getenv("DBUS_SYSTEM_BUS_ADDRESS") ?: "/run/dbus/system_bus_socket");
                d->bus_error = r;
                return r;
        }
        d->bus_error = 0;
        d->sync_error = BLUEZ_OK;
        d->sync_pending = true;
        for (size_t i = 0; i < d->n_modules; i++)
                if ((r = bluez_watch_device(d->bluez, d->opts.adapter, d->modules[i]->address)) < 0)
                        log_warning_errno(r, "Cannot follow %s's signals: %m", d->modules[i]->address);
        return 0;
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct daemon *d = userdata;
        if (!d->bluez || bluez_bus_broken(d->bluez))
                connect_bus(d);
        else if (!bluez_service_up(d->bluez) && d->sync_error != BLUEZ_OK) {
                /* AccessDenied or no owner: ask again, the policy or bluetoothd may have changed. */
                bluez_free(d->bluez);
                d->bluez = NULL;
                connect_bus(d);
        }
        sd_event_source_set_time_relative(s, 10 * USEC_PER_SEC);
        sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

enum diagnosis_code daemon_system_diagnosis(const struct daemon *d, char *detail, size_t size)
{
        detail[0] = 0;
        if (!d->bluez || d->bus_error) {
                const char *addr = getenv("DBUS_SYSTEM_BUS_ADDRESS");
                snprintf(detail, size, "%s: %s", addr ? addr : "/run/dbus/system_bus_socket",
                        strerror(-d->bus_error ?: ENOENT));
                return DIAG_NO_SYSTEM_BUS;
        }
        if (bluez_bus_broken(d->bluez)) {
                snprintf(detail, size, "the connection to the bus was lost");
                return DIAG_NO_SYSTEM_BUS;
        }
        if (d->sync_error == BLUEZ_ERR_ACCESS_DENIED) {
                snprintf(detail, size, "%s", d->sync_message);
                return DIAG_DBUS_ACCESS_DENIED;
        }
        if (d->sync_pending)
                return DIAG_NONE; /* no verdict before BlueZ (or the bus) answered */
        if (!bluez_service_up(d->bluez))
                return DIAG_BLUEZ_NOT_RUNNING;
        const struct bluez_adapter *const *as;
        size_t n = bluez_adapters(d->bluez, &as);
        if (n == 0)
                return DIAG_NO_ADAPTER;
        const struct bluez_adapter *a = bluez_adapter_find(d->bluez, d->opts.adapter);
        if (!a) {
                size_t len = (size_t)snprintf(detail, size, "%s; present:", d->opts.adapter);
                for (size_t i = 0; i < n && len < size; i++)
                        len += (size_t)snprintf(detail + len, size - len, " %s", as[i]->name);
                return DIAG_ADAPTER_MISSING;
        }
        if (!a->powered) {
                snprintf(detail, size, "%s", a->name);
                return DIAG_ADAPTER_OFF;
        }
        if (bluez_adapter_shared(a)) {
                snprintf(detail, size, "%s", a->name);
                return DIAG_ADAPTER_SHARED;
        }
        return DIAG_NONE;
}

/* ---- devices and modules ---- */

static void link_done(struct link *l, void *userdata)
{
        struct module *m = userdata;
        poller_session_done(m->daemon, m);
}

static int module_add_device(struct daemon *d, struct device *dev)
{
        struct module *m = module_by_address(d, dev->cfg.address);
        if (!m) {
                m = calloc(1, sizeof *m);
                if (!m)
                        return -ENOMEM;
                m->daemon = d;
                snprintf(m->address, sizeof m->address, "%s", dev->cfg.address);
                struct link_config lc = {
                        .event = d->event,
                        .bluez = NULL, /* set when a session starts: the bus may be reconnected */
                        .keep_connected = d->opts.keep_connected,
                        .fresh_adv_usec = (uint64_t)MAX(2 * d->opts.poll_interval, 30) * USEC_PER_SEC,
                        .done = link_done,
                        .userdata = m,
                };
                snprintf(lc.adapter, sizeof lc.adapter, "%s", d->opts.adapter);
                snprintf(lc.address, sizeof lc.address, "%s", m->address);
                int r = link_new(&m->link, &lc);
                if (r < 0) {
                        free(m);
                        return r;
                }
                struct module **mods = realloc(d->modules, (d->n_modules + 1) * sizeof *mods);
                if (mods)
                        d->modules = mods;
                if (!mods || strmap_put(&d->module_by_address, m->address, strlen(m->address), m) < 0) {
                        link_free(m->link);
                        free(m);
                        return -ENOMEM;
                }
                d->modules[d->n_modules++] = m;
                if (d->bluez)
                        bluez_watch_device(d->bluez, d->opts.adapter, m->address);
                /* Stagger first polls so a restart does not stampede the adapter. */
                m->next_due = now_monotonic() + (d->n_modules - 1) * 100 * USEC_PER_MSEC;
        }
        if (m->n_devices >= LINK_MAX_UNITS)
                return -ENOSPC;
        m->devices[m->n_devices++] = dev;
        int r = poller_requeue(d, m);
        if (r < 0) {
                m->n_devices--;
                return r;
        }
        dev->module = m;
        return 0;
}

struct device *daemon_device_find(struct daemon *d, const char *id)
{
        for (size_t i = 0; i < d->n_devices; i++)
                if (streq(d->devices[i]->cfg.id, id))
                        return d->devices[i];
        return NULL;
}

static int add_device(struct daemon *d, const struct device_config *cfg)
{
        struct device *dev = calloc(1, sizeof *dev);
        if (!dev)
                return -ENOMEM;
        dev->cfg = *cfg;
        dev->state = DEVICE_STARTING;
        struct device **devs = realloc(d->devices, (d->n_devices + 1) * sizeof *devs);
        if (!devs) {
                free(dev);
                return -ENOMEM;
        }
        d->devices = devs;
        int r = module_add_device(d, dev);
        if (r < 0) {
                free(dev);
                return r;
        }
        d->devices[d->n_devices++] = dev;
        if (d->store)
                store_restore_device(d->store, dev);
        return 0;
}

int daemon_device_add(
        struct daemon *d, const struct device_config *cfg, bool persist, char *err, size_t err_size)
{
        struct device_config *all = calloc(d->n_devices + 1, sizeof *all);
        if (!all)
                return -ENOMEM;
        for (size_t i = 0; i < d->n_devices; i++)
                all[i] = d->devices[i]->cfg;
        all[d->n_devices] = *cfg;
        int r = device_config_validate(
                &all[d->n_devices], all, d->n_devices, "the new device", err, err_size);
        free(all);
        if (r < 0)
                return -EEXIST;
        struct module *m = module_by_address(d, cfg->address);
        if (m && m->n_devices >= LINK_MAX_UNITS) {
                snprintf(
                        err, err_size, "module %s already carries %d devices", cfg->address, LINK_MAX_UNITS);
                return -ENOSPC;
        }
        if (persist && d->store && (r = store_save_device(d->store, cfg)) < 0)
                log_warning_errno(r, "Could not save device %s: %m", cfg->id);
        r = add_device(d, cfg);
        if (r < 0)
                return r;
        poller_schedule(d);
        return 0;
}

int daemon_device_remove(struct daemon *d, struct device *dev)
{
        if (!dev->cfg.from_api)
                return -EPERM; /* options devices are changed in the add-on configuration */
        struct module *m = dev->module;
        if (link_busy(m->link))
                return -EBUSY;
        if (d->store)
                store_delete_device(d->store, dev->cfg.id);
        for (size_t i = 0; i < m->n_devices; i++)
                if (m->devices[i] == dev) {
                        memmove(&m->devices[i], &m->devices[i + 1],
                                (m->n_devices - i - 1) * sizeof *m->devices);
                        m->n_devices--;
                        break;
                }
        for (size_t i = 0; i < d->n_devices; i++)
                if (d->devices[i] == dev) {
                        memmove(&d->devices[i], &d->devices[i + 1],
                                (d->n_devices - i - 1) * sizeof *d->devices);
                        d->n_devices--;
                        break;
                }
        if (m->session_device == dev)
                m->session_device = NULL;
        if (m->write_device == dev) {
                m->write_device = NULL;
                m->write_pending = false;
        }
        free(dev);
        poller_requeue(d, m); /* without devices, it leaves the agenda */
        if (m->n_devices == 0) {
                for (size_t i = 0; i < d->n_modules; i++)
                        if (d->modules[i] == m) {
                                memmove(&d->modules[i], &d->modules[i + 1],
                                        (d->n_modules - i - 1) * sizeof *d->modules);
                                d->n_modules--;
                                break;
                        }
                strmap_remove(&d->module_by_address, m->address, strlen(m->address), m);
                if (d->bluez)
                        bluez_unwatch_device(d->bluez, d->opts.adapter, m->address);
                link_free(m->link);
                free(m);
        }
        return 0;
}

int daemon_poll_now(struct daemon *d, struct device *dev)
{
        dev->module->poll_now = true;
        poller_requeue(d, dev->module);
        poller_schedule(d);
        return 0;
}

int daemon_write_register(struct daemon *d, struct device *dev, uint16_t reg, uint16_t value)
{
        struct module *m = dev->module;
        if (m->write_pending)
                return -EBUSY;
        m->write_pending = true;
        m->write_device = dev;
        m->write_reg = reg;
        m->write_value = value;
        poller_requeue(d, m);
        poller_schedule(d);
        return 0;
}

bool daemon_scanning(const struct daemon *d)
{
        return d->scan_pending || d->scan_until > now_monotonic();
}

static int on_scan_end(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct daemon *d = userdata;
        const struct bluez_adapter *a = d->bluez ? bluez_adapter_find(d->bluez, d->opts.adapter) : NULL;
        if (a && d->scan_started_by_us)
                bluez_stop_discovery(d->bluez, a->path, NULL, NULL);
        if (d->bluez)
                bluez_watch_all_devices(d->bluez, false);
        d->scan_started_by_us = false;
        poller_schedule(d);
        return 0;
}

static void on_scan_started(void *userdata, enum bluez_error e, const char *message)
{
        struct daemon *d = userdata;
        if (e == BLUEZ_OK)
                d->scan_started_by_us = true;
        else if (e != BLUEZ_ERR_IN_PROGRESS)
                log_warning("Scan: StartDiscovery failed: %s", message ? message : bluez_error_to_string(e));
}

int daemon_scan(struct daemon *d, unsigned seconds)
{
        if (!d->bluez || !bluez_service_up(d->bluez))
                return -ENOTCONN;
        const struct bluez_adapter *a = bluez_adapter_find(d->bluez, d->opts.adapter);
        if (!a)
                return -ENODEV;
        if (!a->powered)
                return -ENETDOWN;
        if (d->scan_until > now_monotonic()) {
                d->scan_pending = 0; /* one is running already */
                return 0;
        }
        if (d->active) {
                /* No scanning while a module is being read: the scan starts when the session
                 * ends (the poller asks again), and counts as running now. */
                d->scan_pending = seconds;
                return 0;
        }
        d->scan_pending = 0;
        d->scan_until = now_monotonic() + (uint64_t)seconds * USEC_PER_SEC;
        /* A scan reports every module nearby: their signals too, for its length. */
        int r = bluez_watch_all_devices(d->bluez, true);
        if (r >= 0)
                r = bluez_start_discovery(d->bluez, a->path, on_scan_started, d);
        if (r < 0)
                return r;
        if (!d->scan_timer)
                return sd_event_add_time_relative(d->event, &d->scan_timer, CLOCK_MONOTONIC,
                        (uint64_t)seconds * USEC_PER_SEC, 1, on_scan_end, d);
        sd_event_source_set_time_relative(d->scan_timer, (uint64_t)seconds * USEC_PER_SEC);
        return sd_event_source_set_enabled(d->scan_timer, SD_EVENT_ONESHOT);
}

int daemon_power_adapter(struct daemon *d)
{
        if (!d->bluez || !bluez_service_up(d->bluez))
                return -ENOTCONN;
        const struct bluez_adapter *a = bluez_adapter_find(d->bluez, d->opts.adapter);
        if (!a)
                return -ENODEV;
        return bluez_set_powered(d->bluez, a->path, true, NULL, NULL);
}

/* ---- life cycle ---- */

int daemon_new(struct daemon **ret, sd_event *event, const struct options *opts)
{
        struct daemon *d = calloc(1, sizeof *d);
        if (!d)
                return -ENOMEM;
        d->event = sd_event_ref(event);
        d->opts = *opts;
        d->opts.devices = NULL;
        d->opts.n_devices = 0;
        d->opts.api_token = opts->api_token ? strdup(opts->api_token) : NULL;
        d->started = now_realtime();
        for (size_t i = 0; i < opts->n_devices; i++) {
                int r = add_device(d, &opts->devices[i]);
                if (r < 0) {
                        daemon_free(d);
                        return r;
                }
        }
        *ret = d;
        return 0;
}

struct daemon *daemon_free(struct daemon *d)
{
        if (!d)
                return NULL;
        for (size_t i = 0; i < d->n_modules; i++) {
                link_free(d->modules[i]->link);
                free(d->modules[i]);
        }
        for (size_t i = 0; i < d->n_devices; i++)
                free(d->devices[i]);
        free(d->modules);
        free(d->agenda);
        strmap_clear(&d->module_by_address);
        free(d->devices);
        sd_event_source_unref(d->sched_timer);
        sd_event_source_unref(d->retry_timer);
        sd_event_source_unref(d->scan_timer);
        sd_event_source_unref(d->shutdown_timer);
        bluez_free(d->bluez);
        free(d->opts.api_token);
        sd_event_unref(d->event);
        free(d);
        return NULL;
}

int daemon_start(struct daemon *d)
{
        connect_bus(d); /* failures are reported as a diagnosis and retried */
        int r = sd_event_add_time_relative(
                d->event, &d->retry_timer, CLOCK_MONOTONIC, 10 * USEC_PER_SEC, USEC_PER_SEC, on_retry, d);
        if (r < 0)
                return r;
        poller_schedule(d);
        return 0;
}

static void (*shutdown_done)(struct daemon *d);

static int on_shutdown_check(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct daemon *d = userdata;
        bool busy = false;
        for (size_t i = 0; i < d->n_modules; i++)
                busy = busy || link_busy(d->modules[i]->link);
        if (!busy || now_monotonic() >= d->shutdown_deadline) {
                if (shutdown_done)
                        shutdown_done(d);
                return 0;
        }
        sd_event_source_set_time_relative(s, 20 * USEC_PER_MSEC);
        sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

void daemon_shutdown(struct daemon *d, void (*done)(struct daemon *d))
{
        d->shutting_down = true;
        shutdown_done = done;
        for (size_t i = 0; i < d->n_modules; i++)
                link_abort(d->modules[i]->link);
        /* Wait for the Disconnect replies, at most 4 s: the add-on is killed after 10. */
        d->shutdown_deadline = now_monotonic() + 4 * USEC_PER_SEC;
        sd_event_add_time_relative(
                d->event, &d->shutdown_timer, CLOCK_MONOTONIC, 0, 1, on_shutdown_check, d);
}
