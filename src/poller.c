/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "poller.h"
#include "store.h"

#define WEAK_RSSI -85

static int on_sched_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        poller_schedule(userdata);
        return 0;
}

static void arm_at(struct daemon *d, uint64_t when)
{
        if (!d->sched_timer) {
                if (sd_event_add_time(
                            d->event, &d->sched_timer, CLOCK_MONOTONIC, when, 1, on_sched_timer, d) < 0)
                        return;
        } else
                sd_event_source_set_time(d->sched_timer, when);
        sd_event_source_set_enabled(d->sched_timer, SD_EVENT_ONESHOT);
}

static uint64_t interval(const struct daemon *d)
{
        return (uint64_t)d->opts.poll_interval * USEC_PER_SEC;
}

static void set_diag(struct device *dev, enum diagnosis_code c, const char *detail)
{
        dev->diag = c;
        snprintf(dev->diag_detail, sizeof dev->diag_detail, "%s", detail ? detail : "");
}

/* Without a bus, BlueZ or adapter no session can start: every device shows why. */
static void fail_all_system(struct daemon *d, struct module *m, enum diagnosis_code c, const char *detail)
{
        int64_t now = now_realtime();
        for (size_t i = 0; i < m->n_devices; i++) {
                struct device *dev = m->devices[i];
                if (dev->diag != c)
                        dev->errors[c]++;
                set_diag(dev, c, detail);
                dev->state = DEVICE_ERROR;
                dev->last_attempt = now;
                if (!dev->failures++)
                        dev->first_failure = now;
                snprintf(dev->last_error, sizeof dev->last_error, "%s", diagnosis_info(c)->code);
        }
}

static bool wants_probe(const struct module *m)
{
        /* Probing costs seconds: only while a device has never answered, and not every poll. */
        for (size_t i = 0; i < m->n_devices; i++)
                if (!m->devices[i]->last_poll && m->devices[i]->failures % 5 == 1)
                        return true;
        return false;
}

static void start_session(struct daemon *d, struct module *m)
{
        struct link_unit units[LINK_MAX_UNITS];
        bool probe = m->verify || wants_probe(m);
        link_set_session(m->link, d->bluez, probe, m->verify ? m->verify->step : NULL,
                m->verify ? m->verify->userdata : NULL);
        for (size_t i = 0; i < m->n_devices; i++) {
                struct device *dev = m->devices[i];
                units[i] = (struct link_unit){
                        .family = dev->cfg.family,
                        .modbus_id = dev->cfg.modbus_id,
                        .unsupported = dev->unsupported,
                };
                /* A routine poll of a working device is not a state change: Home Assistant's
                 * connectivity sensor must not blink off for the second a session takes. */
                if (dev->state != DEVICE_ONLINE)
                        dev->state = DEVICE_CONNECTING;
        }
        int r;
        /* Before the start: a session that fails at once ends inside link_start, and its end
         * clears this and may start the next module's. */
        d->active = m;
        m->session_device = NULL;
        m->session_kind = SESSION_POLL;
        if (m->write_pending && m->write_device) {
                m->session_kind = SESSION_WRITE;
                m->session_device = m->write_device;
                size_t idx = 0;
                while (idx < m->n_devices && m->devices[idx] != m->write_device)
                        idx++;
                r = link_start_write(m->link, &units[idx], m->write_reg, m->write_value);
        } else if (m->verify && m->verify->device) {
                m->session_kind = SESSION_VERIFY;
                m->session_device = m->verify->device;
                size_t idx = 0;
                while (idx < m->n_devices && m->devices[idx] != m->verify->device)
                        idx++;
                r = link_start(m->link, &units[idx], 1);
        } else
                r = link_start(m->link, units, m->n_devices);
        if (r < 0) {
                log_error_errno(r, "Cannot start a session with %s: %m", m->address);
                if (d->active == m && !link_busy(m->link))
                        d->active = NULL;
        }
}

/* ---- the agenda: a binary heap of modules by key, smallest first ---- */

static uint64_t agenda_key(const struct module *m)
{
        if (m->verify || m->write_pending || m->poll_now)
                return 0; /* asked for: before any routine poll */
        return m->next_due;
}

static void agenda_set(struct daemon *d, size_t i, struct agenda_entry e)
{
        d->agenda[i] = e;
        e.module->agenda_pos = i + 1;
}

static void agenda_sift(struct daemon *d, size_t i)
{
        struct agenda_entry e = d->agenda[i];
        while (i > 0 && d->agenda[(i - 1) / 2].key > e.key) {
                agenda_set(d, i, d->agenda[(i - 1) / 2]);
                i = (i - 1) / 2;
        }
        for (;;) {
                size_t c = 2 * i + 1;
                if (c >= d->n_agenda)
                        break;
                if (c + 1 < d->n_agenda && d->agenda[c + 1].key < d->agenda[c].key)
                        c++;
                if (d->agenda[c].key >= e.key)
                        break;
                agenda_set(d, i, d->agenda[c]);
                i = c;
        }
        agenda_set(d, i, e);
}

int poller_requeue(struct daemon *d, struct module *m)
{
        if (m->n_devices == 0) {
                if (m->agenda_pos) {
                        size_t i = m->agenda_pos - 1;
                        m->agenda_pos = 0;
                        if (i != --d->n_agenda) {
                                agenda_set(d, i, d->agenda[d->n_agenda]);
                                agenda_sift(d, i);
                        }
                }
                return 0;
        }
        if (!m->agenda_pos) {
                if (d->n_agenda == d->agenda_cap) {
                        size_t cap = d->agenda_cap ? 2 * d->agenda_cap : 16;
                        struct agenda_entry *a = realloc(d->agenda, cap * sizeof *a);
                        if (!a)
                                return -ENOMEM;
                        d->agenda = a;
                        d->agenda_cap = cap;
                }
                agenda_set(d, d->n_agenda++, (struct agenda_entry){.module = m});
        }
        d->agenda[m->agenda_pos - 1].key = agenda_key(m);
        agenda_sift(d, m->agenda_pos - 1);
        return 0;
}

/* The module to read now, or NULL and in *next when the first one is due. */
static struct module *pick(struct daemon *d, uint64_t now, uint64_t *next)
{
        *next = UINT64_MAX;
        if (!d->n_agenda)
                return NULL;
        if (d->agenda[0].key <= now)
                return d->agenda[0].module;
        *next = d->agenda[0].key;
        return NULL;
}

void poller_schedule(struct daemon *d)
{
        if (d->shutting_down)
                return;
        if (d->active)
                return; /* one session at a time: its end schedules the next */
        if (d->sync_pending && d->bluez && !bluez_bus_broken(d->bluez))
                return; /* the first answer from BlueZ schedules again */
        if (d->scan_pending) {
                int r = daemon_scan(d, d->scan_pending);
                if (r < 0) {
                        log_warning("Scan: cannot start: %s", strerror(-r));
                        d->scan_pending = 0;
                }
        }
        uint64_t now = now_monotonic();
        if (daemon_scanning(d)) {
                arm_at(d, d->scan_until + 1);
                return;
        }
        uint64_t next;
        struct module *m = pick(d, now, &next);
        if (!m) {
                if (next != UINT64_MAX)
                        arm_at(d, next);
                return;
        }
        char detail[192];
        enum diagnosis_code sys = daemon_system_diagnosis(d, detail, sizeof detail);
        if (sys != DIAG_NONE && sys != DIAG_ADAPTER_SHARED) {
                fail_all_system(d, m, sys, detail);
                m->poll_now = false;
                m->next_due = now + interval(d);
                if (m->verify) {
                        struct verify_job *job = m->verify;
                        m->verify = NULL;
                        job->done(job->userdata, job->device, NULL, NULL);
                }
                if (m->write_pending) {
                        m->write_pending = false;
                        if (d->write_done)
                                d->write_done(d, m->write_device, -ENOTCONN, diagnosis_info(sys)->code);
                }
                poller_requeue(d, m);
                arm_at(d, now + 1); /* others may be due too; they get the same verdict */
                return;
        }
        start_session(d, m);
}

/* Fixed rate: the next poll is due one interval after this one was due, so the length of a
 * session does not stretch the period. Behind schedule (more modules than one adapter can
 * read in an interval), the module goes again as soon as the others due before it are done;
 * a due time pushed far ahead (a manual poll) is brought back to one interval from now. */
uint64_t next_due_after(uint64_t due, uint64_t now, uint64_t interval)
{
        uint64_t next = due + interval;
        if (next <= now)
                return now;
        return MIN(next, now + interval);
}

enum diagnosis_code poller_classify(const struct daemon *d, const struct module *m, const struct device *dev,
        const struct link_unit *u, const struct link_report *r, enum device_state *state, char *detail,
        size_t size)
{
        int64_t now = now_realtime();
        bool inverter = dev->cfg.family == &renogy_inverter;
        bool persistent = dev->failures >= 2; /* "for longer than a few poll intervals" */
        long since_adv = m->last_seen ? (long)((now - m->last_seen) / 1000000) : -1;

        /* The adapter was switched off or unplugged, or BlueZ went away, during the session:
         * the links dropped because of that, not because of the signal or the device. */
        enum diagnosis_code sys = daemon_system_diagnosis(d, detail, size);
        if (sys != DIAG_NONE && sys != DIAG_ADAPTER_SHARED) {
                *state = DEVICE_ERROR;
                return sys;
        }
        detail[0] = 0;

        switch (r->reached) {
        case LINK_STAGE_ADAPTER:
                *state = DEVICE_ERROR;
                snprintf(detail, size, "%s", r->message);
                return DIAG_CONNECT_FAILED;
        case LINK_STAGE_FIND:
        case LINK_STAGE_CONNECT:
                if (r->aborts > 0) {
                        *state = DEVICE_BUSY;
                        if (r->advertising || (since_adv >= 0 && since_adv < 10))
                                snprintf(detail, size,
                                        "connects are aborted while it still advertises (%u aborts)",
                                        r->aborts);
                        else
                                snprintf(detail, size,
                                        "it stopped advertising when our connects began failing (%u aborts)",
                                        r->aborts);
                        return DIAG_HELD_BY_OTHER_CENTRAL;
                }
                if (!r->found && !m->last_seen) {
                        *state = DEVICE_UNREACHABLE;
                        snprintf(detail, size, "%s", dev->cfg.address);
                        return DIAG_NOT_FOUND;
                }
                if (!persistent) {
                        *state = dev->have_readings ? DEVICE_STALE : DEVICE_UNREACHABLE;
                        snprintf(detail, size, "%s", r->message);
                        return DIAG_CONNECT_FAILED;
                }
                *state = DEVICE_ASLEEP;
                if (since_adv >= 0)
                        snprintf(detail, size, "no advertisement for %ld s, %s", since_adv,
                                r->timeouts ? "Connect timed out" : "not found by discovery");
                else
                        snprintf(detail, size, "not advertising, %s",
                                r->timeouts ? "Connect timed out" : "not found by discovery");
                return inverter ? DIAG_INVERTER_ASLEEP : DIAG_ASLEEP;
        case LINK_STAGE_SERVICES:
        case LINK_STAGE_NOTIFY:
                *state = dev->have_readings ? DEVICE_STALE : DEVICE_ERROR;
                if (r->link_dropped) {
                        snprintf(detail, size, "the link dropped while setting up the session");
                        return DIAG_WEAK_SIGNAL;
                }
                snprintf(detail, size, "%s", r->message);
                return DIAG_CONNECT_FAILED;
        default:
                break;
        }
        /* The session got to the exchange. */
        if (r->link_dropped) {
                *state = dev->have_readings ? DEVICE_STALE : DEVICE_ERROR;
                snprintf(detail, size, "the link dropped in the middle of a reply");
                return DIAG_WEAK_SIGNAL;
        }
        switch (u->status) {
        case -ETIMEDOUT:
                *state = DEVICE_ERROR;
                if (u->probe_id >= 0) {
                        snprintf(detail, size, "id %u configured; id %d answered", dev->cfg.modbus_id,
                                u->probe_id);
                        return DIAG_WRONG_MODBUS_ID;
                }
                if (u->bad_frames) {
                        *state = dev->have_readings ? DEVICE_STALE : DEVICE_ERROR;
                        snprintf(detail, size, "%u truncated or corrupted replies", u->bad_frames);
                        return DIAG_WEAK_SIGNAL;
                }
                if (u->probed[0])
                        snprintf(detail, size, "id %u configured; no answer from ids %s either",
                                dev->cfg.modbus_id, u->probed);
                else
                        snprintf(detail, size, "no answer from Modbus id %u", dev->cfg.modbus_id);
                return DIAG_NO_REPLY;
        case -EBADMSG:
                *state = dev->have_readings ? DEVICE_STALE : DEVICE_ERROR;
                snprintf(detail, size, "%u replies with a bad CRC", u->bad_frames);
                return DIAG_WEAK_SIGNAL;
        case -EREMOTEIO:
        case -ENODATA:
                *state = DEVICE_ERROR;
                snprintf(detail, size, "every register block was refused (%u exceptions)", u->exceptions);
                return DIAG_PROTOCOL_ERROR;
        default:
                *state = dev->have_readings ? DEVICE_STALE : DEVICE_ERROR;
                snprintf(detail, size, "not read in this session: %s",
                        r->message[0] ? r->message : "an earlier device failed");
                return dev->diag != DIAG_NONE ? dev->diag : DIAG_CONNECT_FAILED;
        }
}

static void take_identity(struct device *dev)
{
        const struct renogy_reading *r;
        if ((r = renogy_readings_get(&dev->readings, "model")) && r->type == RV_TEXT && r->text[0])
                snprintf(dev->model, sizeof dev->model, "%s", r->text);
        if ((r = renogy_readings_get(&dev->readings, "serial_number")) && r->type == RV_TEXT)
                snprintf(dev->serial, sizeof dev->serial, "%s", r->text);
        if ((r = renogy_readings_get(&dev->readings, "software_version")) && r->type == RV_TEXT)
                snprintf(dev->firmware, sizeof dev->firmware, "%s", r->text);
        if (!dev->model[0] && dev->cfg.family == &renogy_shunt && dev->module->name[0])
                snprintf(dev->model, sizeof dev->model, "Smart Shunt 300");
}

static void process_unit(struct daemon *d, struct module *m, struct device *dev, const struct link_unit *u,
        const struct link_report *r)
{
        int64_t now = now_realtime();
        dev->last_attempt = now;
        dev->poll_ms = (uint32_t)(r->duration_usec / 1000);
        dev->bad_frames += u->bad_frames;
        if (u->blocks_ok > 0) {
                struct renogy_readings rd;
                if (renogy_decode(dev->cfg.family, &u->image, &rd) > 0) {
                        dev->readings = rd;
                        dev->have_readings = true;
                        dev->readings_at = now;
                }
                dev->last_poll = now;
                dev->failures = 0;
                dev->first_failure = 0;
                dev->polls_ok++;
                dev->poll_seconds_sum += (double)r->duration_usec / 1e6;
                dev->unsupported = u->unsupported;
                dev->state = DEVICE_ONLINE;
                dev->last_error[0] = 0;
                take_identity(dev);
                char detail[96];
                if (u->bad_frames) {
                        snprintf(detail, sizeof detail, "%u corrupted or truncated replies in the last poll",
                                u->bad_frames);
                        set_diag(dev, DIAG_WEAK_SIGNAL, detail);
                        dev->errors[DIAG_WEAK_SIGNAL]++;
                } else if (r->has_rssi && r->rssi < WEAK_RSSI) {
                        snprintf(detail, sizeof detail, "RSSI %d dBm", r->rssi);
                        set_diag(dev, DIAG_WEAK_SIGNAL, detail);
                } else
                        set_diag(dev, DIAG_NONE, NULL);
                if (d->store)
                        store_record(d->store, dev);
                return;
        }
        if (!dev->failures++)
                dev->first_failure = now;
        dev->polls_failed++;
        char detail[192];
        enum device_state state;
        enum diagnosis_code c = poller_classify(d, m, dev, u, r, &state, detail, sizeof detail);
        if (c != dev->diag || dev->failures == 1)
                dev->errors[c]++;
        set_diag(dev, c, detail);
        dev->state = state;
        snprintf(dev->last_error, sizeof dev->last_error, "%s: %s", link_stage_name(r->reached),
                r->message[0] ? r->message : detail);
        log_info("%s (%s): %s — %s", dev->cfg.name, dev->cfg.address, diagnosis_info(c)->code, detail);
}

void poller_session_done(struct daemon *d, struct module *m)
{
        const struct link_report *r = link_report(m->link);
        size_t n;
        const struct link_unit *units = link_units(m->link, &n);
        uint64_t now = now_monotonic();
        if (d->active == m)
                d->active = NULL;
        d->sessions++;
        if (r->reached != LINK_STAGE_DONE)
                d->sessions_failed++;

        if (m->session_kind == SESSION_WRITE) {
                m->write_pending = false;
                int res = r->reached == LINK_STAGE_DONE && units[0].blocks_ok ? 0 : -EIO;
                if (d->write_done && m->session_device)
                        d->write_done(d, m->session_device, res, r->message);
                m->poll_now = true; /* read the new state back */
        } else if (m->session_kind == SESSION_VERIFY) {
                struct verify_job *job = m->verify;
                m->verify = NULL;
                if (m->session_device)
                        process_unit(d, m, m->session_device, &units[0], r);
                if (job)
                        job->done(job->userdata, job->device, r, &units[0]);
        } else {
                for (size_t i = 0; i < n && i < m->n_devices; i++)
                        process_unit(d, m, m->devices[i], &units[i], r);
                m->poll_now = false;
                m->next_due = next_due_after(m->next_due, now, interval(d));
        }
        poller_requeue(d, m);
        if (!d->shutting_down)
                poller_schedule(d);
}

int poller_verify(struct daemon *d, struct verify_job *job)
{
        struct module *m = job->device->module;
        if (m->verify)
                return -EBUSY;
        m->verify = job;
        poller_requeue(d, m);
        poller_schedule(d);
        return 0;
}

void poller_verify_cancel(struct daemon *d, struct verify_job *job)
{
        for (size_t i = 0; i < d->n_modules; i++)
                if (d->modules[i]->verify == job) {
                        d->modules[i]->verify = NULL;
                        /* A running session finishes without the job; a queued one is dropped. */
                        if (!link_busy(d->modules[i]->link))
                                d->modules[i]->session_kind = SESSION_POLL;
                        poller_requeue(d, d->modules[i]);
                }
}
