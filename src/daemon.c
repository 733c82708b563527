/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bank.h"
#include "daemon.h"
#include "device-energy.h"
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

struct radio *daemon_radio_find(const struct daemon *d, const char *name)
{
        for (size_t i = 0; i < d->n_radios; i++)
                if (streq(d->radios[i]->name, name))
                        return d->radios[i];
        return NULL;
}

static struct radio *radio_get(struct daemon *d, const char *name)
{
        struct radio *r = daemon_radio_find(d, name);
        if (r)
                return r;
        struct radio **v = realloc(d->radios, (d->n_radios + 1) * sizeof *v);
        if (!v)
                return NULL;
        d->radios = v;
        if (!(r = calloc(1, sizeof *r)))
                return NULL;
        r->daemon = d;
        snprintf(r->name, sizeof r->name, "%s", name);
        d->radios[d->n_radios++] = r;
        return r;
}

static void on_service(void *userdata, bool up)
{
        struct daemon *d = userdata;
        if (!up) {
                for (size_t i = 0; i < d->n_modules; i++)
                        link_on_adapter_gone(d->modules[i]->link);
                poller_discovery_lost(d);
                for (size_t i = 0; i < d->n_radios; i++)
                        d->radios[i]->adapter_up = false; /* its return is a return */
        }
        /* Up: not yet with its adapters (they follow), but a module whose failure was BlueZ's
         * is read as soon as its adapter is there. */
        if (up)
                poller_system_back(d, NULL);
        poller_schedule(d);
}

static void on_adapter(void *userdata, const struct bluez_adapter *a, bool removed)
{
        struct daemon *d = userdata;
        struct radio *r = daemon_radio_find(d, a->name);
        if (!r)
                return;
        /* Only this adapter's modules: the others go on. */
        bool up = !removed && a->powered;
        if (!up) {
                for (size_t i = 0; i < d->n_modules; i++)
                        if (d->modules[i]->radio == r)
                                link_on_adapter_gone(d->modules[i]->link);
                r->look = LOOK_OFF;
        } else if (!r->adapter_up)
                poller_system_back(d, r); /* powered, or back: what failed for its absence goes now */
        r->adapter_up = up;
        poller_schedule(d);
}

/* Whether a Device1 object is the module as its own adapter sees it: with two adapters in range
 * of one module, BlueZ has an object under each. */
static bool on_module_adapter(const struct daemon *d, const struct module *m, const struct bluez_device *bd)
{
        const struct bluez_adapter *a = bluez_adapter_find(d->bluez, m->radio->name);
        return a && bd->adapter_path && streq(a->path, bd->adapter_path);
}

/* A hub survey on a module no device uses has a link of its own to feed. */
static struct hub_probe *own_probe(struct daemon *d, const char *address)
{
        for (size_t i = 0; i < d->n_radios; i++) {
                struct hub_probe *p = d->radios[i]->probe;
                if (p && p->link && streq(p->address, address))
                        return p;
        }
        return NULL;
}

static void on_device(void *userdata, const struct bluez_device *bd, unsigned what)
{
        struct daemon *d = userdata;
        struct module *m = module_by_address(d, bd->address);
        if (!m) {
                struct hub_probe *p = own_probe(d, bd->address);
                const struct bluez_adapter *a = p ? bluez_adapter_find(d->bluez, p->radio->name) : NULL;
                if (a && bd->adapter_path && streq(a->path, bd->adapter_path))
                        link_on_device(p->link, bd, what);
                return;
        }
        if (!on_module_adapter(d, m, bd))
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
        if (what & BLUEZ_DEV_ADVERTISED)
                poller_module_seen(d, m); /* after the link: it may start a session */
}

static void on_notification(void *userdata, const char *char_path, const uint8_t *data, size_t len)
{
        struct daemon *d = userdata;
        for (size_t i = 0; i < d->n_radios; i++) {
                struct radio *r = d->radios[i];
                if (r->active)
                        link_on_notification(r->active->link, char_path, data, len);
                else if (r->probe && r->probe->link && r->probe->started)
                        link_on_notification(r->probe->link, char_path, data, len);
        }
}

static void on_synced(void *userdata, enum bluez_error e, const char *message)
{
        struct daemon *d = userdata;
        d->sync_pending = false;
        d->sync_error = e;
        snprintf(d->sync_message, sizeof d->sync_message, "%s", message ? message : "");
        if (e == BLUEZ_OK)
                for (size_t i = 0; i < d->n_radios; i++)
                        log_info("Following BlueZ: adapter %s %s (%zu modules)", d->radios[i]->name,
                                bluez_adapter_find(d->bluez, d->radios[i]->name) ? "present" : "missing",
                                d->radios[i]->n_modules);
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
        poller_discovery_lost(d);
        for (size_t i = 0; i < d->n_modules; i++)
                poller_watch_forget(d->modules[i]); /* the new connection watches every module */
        for (size_t i = 0; i < d->n_modules; i++)
                if ((r = bluez_watch_device(d->bluez, d->modules[i]->radio->name, d->modules[i]->address)) <
                        0)
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

/* The bus and BlueZ: what every adapter needs. */
static enum diagnosis_code bus_diagnosis(const struct daemon *d, char *detail, size_t size)
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
        if (bluez_adapters(d->bluez, &as) == 0)
                return DIAG_NO_ADAPTER;
        return DIAG_NONE;
}

enum diagnosis_code daemon_adapter_diagnosis(
        const struct daemon *d, const char *adapter, char *detail, size_t size)
{
        enum diagnosis_code c = bus_diagnosis(d, detail, size);
        if (c != DIAG_NONE || d->sync_pending)
                return c;
        const struct bluez_adapter *const *as;
        size_t n = bluez_adapters(d->bluez, &as);
        const struct bluez_adapter *a = bluez_adapter_find(d->bluez, adapter);
        if (!a) {
                size_t len = (size_t)snprintf(detail, size, "%s; present:", adapter);
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

enum diagnosis_code daemon_system_diagnosis(const struct daemon *d, char *detail, size_t size)
{
        enum diagnosis_code c = bus_diagnosis(d, detail, size), shared = DIAG_NONE;
        if (c != DIAG_NONE || d->sync_pending)
                return c;
        char shared_detail[64] = "";
        for (size_t i = 0; i < d->n_radios; i++) {
                /* An adapter no device uses (the global one, with every device elsewhere) is no
                 * problem of the system's. */
                if (!d->radios[i]->n_modules && (i > 0 || d->n_modules))
                        continue;
                c = daemon_adapter_diagnosis(d, d->radios[i]->name, detail, size);
                if (c == DIAG_ADAPTER_SHARED && !shared) {
                        shared = c;
                        snprintf(shared_detail, sizeof shared_detail, "%s", detail);
                } else if (c != DIAG_NONE && c != DIAG_ADAPTER_SHARED)
                        return c;
        }
        snprintf(detail, size, "%s", shared_detail);
        return shared;
}

enum diagnosis_code device_link_diagnosis(
        const struct daemon *d, const struct device *dev, char *detail, size_t size)
{
        return daemon_adapter_diagnosis(d, dev->module->radio->name, detail, size);
}

uint64_t daemon_sessions(const struct daemon *d, uint64_t *failed)
{
        uint64_t n = 0, f = 0;
        for (size_t i = 0; i < d->n_radios; i++) {
                n += d->radios[i]->sessions;
                f += d->radios[i]->sessions_failed;
        }
        if (failed)
                *failed = f;
        return n;
}

bool device_choose_decoder(struct device *dev)
{
        const struct renogy_family *before = dev->decoder;
        /* The model it reports, or the one its configuration names for firmware that does not. */
        const char *model = dev->model[0] ? dev->model : dev->cfg.model;
        dev->decoder = renogy_family_variant(dev->cfg.family, dev->module ? dev->module->name : NULL, model,
                dev->variant_why, sizeof dev->variant_why);
        if (dev->decoder == before)
                return false;
        if (before && before->blocks != dev->decoder->blocks) {
                /* Another plan: what was learnt of the old one's blocks says nothing of these. */
                dev->unsupported = dev->optional_unanswered = dev->held_blocks = 0;
                dev->optional_retry_at = dev->optional_due_at = 0;
        }
        return true;
}

unsigned device_interval(const struct daemon *d, const struct device *dev)
{
        return device_config_interval(&dev->cfg, &d->opts);
}

uint64_t device_fresh_usec(const struct daemon *d, const struct device *dev)
{
        /* Three of its intervals: one poll may fail (a weak moment, the phone app) and the data
         * still counts; its read time on top, since data is as old as the session's start. */
        uint64_t read = dev->poll_ms ? (uint64_t)dev->poll_ms * USEC_PER_MSEC : 0;
        return 3 * (uint64_t)device_interval(d, dev) * USEC_PER_SEC + read;
}

/* ---- devices and modules ---- */

static void link_done(struct link *l, void *userdata)
{
        struct module *m = userdata;
        poller_session_done(m->daemon, m);
}

/* A module is polled at the shortest interval of its devices. */
static void module_set_interval(struct daemon *d, struct module *m)
{
        unsigned secs = 0;
        for (size_t i = 0; i < m->n_devices; i++) {
                unsigned s = device_interval(d, m->devices[i]);
                secs = secs && secs < s ? secs : s;
        }
        m->interval = (uint64_t)(secs ? secs : d->opts.poll_interval) * USEC_PER_SEC;
}

static int module_add_device(struct daemon *d, struct device *dev)
{
        struct module *m = module_by_address(d, dev->cfg.address);
        if (!m) {
                struct radio *radio = radio_get(d, device_config_adapter(&dev->cfg, &d->opts));
                if (!radio)
                        return -ENOMEM;
                m = calloc(1, sizeof *m);
                if (!m)
                        return -ENOMEM;
                m->daemon = d;
                m->radio = radio;
                snprintf(m->address, sizeof m->address, "%s", dev->cfg.address);
                unsigned secs = device_interval(d, dev);
                struct link_config lc = {
                        .event = d->event,
                        .bluez = NULL, /* set when a session starts: the bus may be reconnected */
                        .keep_connected = d->opts.keep_connected,
                        .fresh_adv_usec = (uint64_t)MAX(2 * secs, 30) * USEC_PER_SEC,
                        .done = link_done,
                        .userdata = m,
                };
                snprintf(lc.adapter, sizeof lc.adapter, "%s", radio->name);
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
                radio->n_modules++;
                if (d->bluez)
                        bluez_watch_device(d->bluez, radio->name, m->address);
                /* Stagger first polls so a restart does not stampede the adapter. */
                m->next_due = now_monotonic() + (radio->n_modules - 1) * 100 * USEC_PER_MSEC;
        }
        if (m->n_devices >= LINK_MAX_UNITS)
                return -ENOSPC;
        m->devices[m->n_devices++] = dev;
        module_set_interval(d, m);
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
        struct bank *b = daemon_bank_find(d, id);
        return b ? &b->dev : NULL;
}

static int add_device(struct daemon *d, const struct device_config *cfg)
{
        struct device *dev = calloc(1, sizeof *dev);
        if (!dev)
                return -ENOMEM;
        dev->cfg = *cfg;
        dev->decoder = cfg->family;
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
        device_choose_decoder(dev);
        d->devices[d->n_devices++] = dev;
        if (d->store && store_restore_device(d->store, dev) >= 0)
                device_energy_resume(dev);
        return 0;
}

int daemon_device_add(
        struct daemon *d, const struct device_config *given, bool persist, char *err, size_t err_size)
{
        struct device_config c = *given, *cfg = &c;
        device_config_normalize(cfg, &d->opts);
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
        if (banks_sync(d) < 0)
                log_warning("Out of memory: no bank for the batteries of %s", cfg->address);
        poller_schedule(d);
        return 0;
}

int daemon_device_remove(struct daemon *d, struct device *dev)
{
        if (device_bank(dev))
                return -EOPNOTSUPP; /* it goes when its module carries fewer than two batteries */
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
        if (m->n_devices)
                module_set_interval(d, m);
        poller_requeue(d, m); /* without devices, it leaves the agenda */
        if (m->n_devices == 0) {
                m->radio->n_modules--;
                for (size_t i = 0; i < d->n_modules; i++)
                        if (d->modules[i] == m) {
                                memmove(&d->modules[i], &d->modules[i + 1],
                                        (d->n_modules - i - 1) * sizeof *d->modules);
                                d->n_modules--;
                                break;
                        }
                strmap_remove(&d->module_by_address, m->address, strlen(m->address), m);
                if (d->bluez)
                        bluez_unwatch_device(d->bluez, m->radio->name, m->address);
                sd_event_source_unref(m->watch_timer);
                link_free(m->link);
                free(m);
        }
        banks_sync(d); /* only removes: no memory needed */
        return 0;
}

int daemon_poll_now(struct daemon *d, struct device *dev)
{
        dev->module->poll_now = true;
        poller_requeue(d, dev->module);
        poller_schedule_radio(dev->module->radio);
        return 0;
}

int daemon_write_register(struct daemon *d, struct device *dev, uint16_t reg, uint16_t value,
        uint16_t readback, const struct renogy_field *shows, uint16_t shows_value)
{
        struct module *m = dev->module;
        if (m->write_pending)
                return -EBUSY;
        m->write_pending = true;
        m->write_device = dev;
        m->write_reg = reg;
        m->write_value = value;
        m->readback_reg = readback;
        m->write_shows = shows;
        m->shows_value = shows_value;
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
        for (size_t i = 0; i < d->n_radios; i++) {
                struct radio *r = d->radios[i];
                const struct bluez_adapter *a = d->bluez ? bluez_adapter_find(d->bluez, r->name) : NULL;
                if (a && r->scan_started)
                        bluez_stop_discovery(d->bluez, a->path, NULL, NULL);
                r->scan_started = false;
        }
        if (d->bluez)
                bluez_watch_all_devices(d->bluez, false);
        poller_schedule(d);
        return 0;
}

static void on_scan_started(void *userdata, enum bluez_error e, const char *message)
{
        struct radio *r = userdata;
        if (e == BLUEZ_OK)
                r->scan_started = true;
        else if (e != BLUEZ_ERR_IN_PROGRESS)
                log_warning("Scan on %s: StartDiscovery failed: %s", r->name,
                        message ? message : bluez_error_to_string(e));
}

int daemon_scan(struct daemon *d, unsigned seconds)
{
        if (!d->bluez || !bluez_service_up(d->bluez))
                return -ENOTCONN;
        /* Every adapter in use that can scan: a module may be in range of any of them. */
        size_t usable = 0, present = 0;
        for (size_t i = 0; i < d->n_radios; i++) {
                const struct bluez_adapter *a = bluez_adapter_find(d->bluez, d->radios[i]->name);
                present += a != NULL;
                usable += a && a->powered;
        }
        if (!present)
                return -ENODEV;
        if (!usable)
                return -ENETDOWN;
        if (d->scan_until > now_monotonic()) {
                d->scan_pending = 0; /* one is running already */
                return 0;
        }
        for (size_t i = 0; i < d->n_radios; i++)
                if (d->radios[i]->active) {
                        /* No scanning while a module is being read: the scan starts when the
                         * sessions end (the poller asks again), and counts as running now. */
                        d->scan_pending = seconds;
                        return 0;
                }
        d->scan_pending = 0;
        d->scan_until = now_monotonic() + (uint64_t)seconds * USEC_PER_SEC;
        /* A scan reports every module nearby: their signals too, for its length. */
        int r = bluez_watch_all_devices(d->bluez, true);
        if (r < 0)
                return r;
        for (size_t i = 0; i < d->n_radios; i++) {
                struct radio *rad = d->radios[i];
                const struct bluez_adapter *a = bluez_adapter_find(d->bluez, rad->name);
                /* The radios' own looks become the scan's: it stops them at its end. */
                rad->look = LOOK_OFF;
                if (a && a->powered &&
                        (r = bluez_start_discovery(d->bluez, a->path, on_scan_started, rad)) < 0)
                        return r;
        }
        if (!d->scan_timer)
                return sd_event_add_time_relative(d->event, &d->scan_timer, CLOCK_MONOTONIC,
                        (uint64_t)seconds * USEC_PER_SEC, 1, on_scan_end, d);
        sd_event_source_set_time_relative(d->scan_timer, (uint64_t)seconds * USEC_PER_SEC);
        return sd_event_source_set_enabled(d->scan_timer, SD_EVENT_ONESHOT);
}

int daemon_power_adapter(struct daemon *d, const char *name)
{
        if (!d->bluez || !bluez_service_up(d->bluez))
                return -ENOTCONN;
        int r = -ENODEV;
        for (size_t i = 0; i < d->n_radios; i++) {
                if (name && !streq(name, d->radios[i]->name))
                        continue;
                const struct bluez_adapter *a = bluez_adapter_find(d->bluez, d->radios[i]->name);
                if (!a)
                        continue;
                if (!a->powered && (r = bluez_set_powered(d->bluez, a->path, true, NULL, NULL)) < 0)
                        return r;
                if (r == -ENODEV)
                        r = 0;
        }
        return r;
}

/* ---- battery hub surveys ---- */

static void probe_link_done(struct link *l, void *userdata)
{
        struct hub_probe *p = userdata;
        poller_probe_done(p->radio);
}

static int on_free_link(sd_event_source *s, void *userdata)
{
        link_free(userdata);
        sd_event_source_unref(s);
        return 0;
}

void daemon_probe_release(struct daemon *d, struct hub_probe *p)
{
        if (p->link) {
                if (d->bluez && !module_by_address(d, p->address))
                        bluez_unwatch_device(d->bluez, p->radio->name, p->address);
                /* Not from inside its own callbacks, which may be what ends here: the source is
                 * one-shot and unreferences itself. */
                sd_event_source *src;
                if (sd_event_add_defer(d->event, &src, on_free_link, p->link) < 0)
                        link_free(p->link);
        }
        free(p);
}

int daemon_probe_hub(struct daemon *d, const char *address, const char *adapter,
        void (*done)(
                struct hub_probe *p, const struct link_unit *units, size_t n, const struct link_report *r),
        void *userdata, struct hub_probe **ret)
{
        char addr[18] = "";
        snprintf(addr, sizeof addr, "%s", address ? address : "");
        for (char *c = addr; *c; c++)
                *c = (char)toupper((unsigned char)*c);
        if (!address_valid(addr))
                return -EINVAL;
        struct module *m = module_by_address(d, addr);
        const char *name = adapter ? adapter : m ? m->radio->name : d->opts.adapter;
        if (m && !streq(name, m->radio->name))
                return -EXDEV; /* a module is reached through its own adapter only */
        struct radio *r = daemon_radio_find(d, name);
        if (!r)
                return -ENODEV;
        if (r->probe)
                return -EBUSY;
        struct hub_probe *p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        *p = (struct hub_probe){.daemon = d, .radio = r, .module = m, .done = done, .userdata = userdata};
        snprintf(p->address, sizeof p->address, "%s", addr);
        if (!m) {
                struct link_config lc = {
                        .event = d->event,
                        .fresh_adv_usec = 30 * USEC_PER_SEC,
                        .done = probe_link_done,
                        .userdata = p,
                };
                snprintf(lc.adapter, sizeof lc.adapter, "%s", r->name);
                snprintf(lc.address, sizeof lc.address, "%s", addr);
                int res = link_new(&p->link, &lc);
                if (res < 0) {
                        free(p);
                        return res;
                }
                if (d->bluez)
                        bluez_watch_device(d->bluez, r->name, addr);
        }
        r->probe = p;
        *ret = p;
        poller_schedule_radio(r);
        return 0;
}

void daemon_probe_cancel(struct daemon *d, struct hub_probe *p)
{
        p->done = NULL;
        if (!p->started) {
                p->radio->probe = NULL;
                daemon_probe_release(d, p);
                poller_schedule_radio(p->radio);
                return;
        }
        /* A survey under way ends cleanly; its result goes nowhere and it frees itself. */
        link_abort(p->module ? p->module->link : p->link);
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
        /* The global adapter is always there to scan with, devices or not. */
        if (!radio_get(d, d->opts.adapter)) {
                daemon_free(d);
                return -ENOMEM;
        }
        for (size_t i = 0; i < opts->n_devices; i++) {
                int r = add_device(d, &opts->devices[i]);
                if (r < 0) {
                        daemon_free(d);
                        return r;
                }
        }
        int r = banks_sync(d);
        if (r < 0) {
                daemon_free(d);
                return r;
        }
        *ret = d;
        return 0;
}

struct daemon *daemon_free(struct daemon *d)
{
        if (!d)
                return NULL;
        for (size_t i = 0; i < d->n_modules; i++) {
                sd_event_source_unref(d->modules[i]->watch_timer);
                link_free(d->modules[i]->link);
                free(d->modules[i]);
        }
        banks_free(d);
        for (size_t i = 0; i < d->n_devices; i++)
                free(d->devices[i]);
        free(d->modules);
        for (size_t i = 0; i < d->n_radios; i++) {
                struct hub_probe *p = d->radios[i]->probe;
                if (p) {
                        link_free(p->link);
                        free(p);
                }
                poller_radio_free(d->radios[i]);
        }
        free(d->radios);
        strmap_clear(&d->module_by_address);
        free(d->devices);
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
        for (size_t i = 0; i < d->n_radios; i++)
                if (d->radios[i]->probe && d->radios[i]->probe->link)
                        busy = busy || link_busy(d->radios[i]->probe->link);
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
        for (size_t i = 0; i < d->n_radios; i++)
                if (d->radios[i]->probe && d->radios[i]->probe->link)
                        link_abort(d->radios[i]->probe->link);
        /* Wait for the Disconnect replies, at most 4 s: the add-on is killed after 10. */
        d->shutdown_deadline = now_monotonic() + 4 * USEC_PER_SEC;
        sd_event_add_time_relative(
                d->event, &d->shutdown_timer, CLOCK_MONOTONIC, 0, 1, on_shutdown_check, d);
}
