/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bank.h"
#include "device-energy.h"
#include "log.h"
#include "macro.h"
#include "poller.h"
#include "renogy/settings.h"
#include "store.h"

#define WEAK_RSSI -85
/* How long a module that failed is looked for, in the time the radio is idle, before the look
 * counts as a failed poll: a Renogy module advertises several times a second. */
#define LOOK_WINDOW (10 * USEC_PER_SEC)
/* A module that failed gets a session only in a gap this long before the next module that
 * answers is due (or 1.5 times its last good read, if longer). */
#define RETRY_MIN_SLOT (3 * USEC_PER_SEC)
/* Its session ends this long before that module is due: time for the Disconnect. */
#define RETRY_MARGIN (500 * USEC_PER_MSEC)
/* A module that answers may take twice its last read and this much more. */
#define HEALTHY_MARGIN (2 * USEC_PER_SEC)
/* The first failures are retried every interval; then the wait doubles up to this. */
#define RETRY_AT_INTERVAL 3
#define RETRY_MAX         (300 * USEC_PER_SEC)

/* How long an optional block that got no reply is left out. */
#define OPTIONAL_RETRY_USEC (3600 * (int64_t)USEC_PER_SEC)
/* Identity and settings change only when someone changes them (a write here asks them at once):
 * once answered, asked again after this. */
#define OPTIONAL_REFRESH_USEC (600 * (int64_t)USEC_PER_SEC)

static uint64_t fresh_usec(const struct module *m)
{
        return MAX(2 * m->interval, 30 * USEC_PER_SEC);
}

uint64_t retry_delay(uint64_t interval, unsigned failures)
{
        unsigned shift = failures > RETRY_AT_INTERVAL ? MIN(failures - RETRY_AT_INTERVAL, 8u) : 0;
        return MIN(interval << shift, MAX(interval, RETRY_MAX));
}

/* ---- agendas: binary heaps of modules by key, smallest first ---- */

static void agenda_set(struct agenda *a, size_t i, struct agenda_entry e)
{
        a->v[i] = e;
        e.module->queue_pos = i + 1;
}

static void agenda_sift(struct agenda *a, size_t i)
{
        struct agenda_entry e = a->v[i];
        while (i > 0 && a->v[(i - 1) / 2].key > e.key) {
                agenda_set(a, i, a->v[(i - 1) / 2]);
                i = (i - 1) / 2;
        }
        for (;;) {
                size_t c = 2 * i + 1;
                if (c >= a->n)
                        break;
                if (c + 1 < a->n && a->v[c + 1].key < a->v[c].key)
                        c++;
                if (a->v[c].key >= e.key)
                        break;
                agenda_set(a, i, a->v[c]);
                i = c;
        }
        agenda_set(a, i, e);
}

static void agenda_remove(struct module *m)
{
        struct agenda *a = m->queue;
        if (!a)
                return;
        size_t i = m->queue_pos - 1;
        m->queue = NULL;
        m->queue_pos = 0;
        if (i != --a->n) {
                agenda_set(a, i, a->v[a->n]);
                agenda_sift(a, i);
        }
}

static int agenda_put(struct agenda *a, struct module *m, uint64_t key)
{
        if (m->queue != a) {
                if (a->n == a->cap) {
                        size_t cap = a->cap ? 2 * a->cap : 16;
                        struct agenda_entry *v = realloc(a->v, cap * sizeof *v);
                        if (!v)
                                return -ENOMEM;
                        a->v = v;
                        a->cap = cap;
                }
                agenda_remove(m);
                m->queue = a;
                agenda_set(a, a->n++, (struct agenda_entry){.module = m});
        }
        a->v[m->queue_pos - 1].key = key;
        agenda_sift(a, m->queue_pos - 1);
        return 0;
}

static struct module *agenda_head(const struct agenda *a, uint64_t *key)
{
        if (!a->n)
                return NULL;
        *key = a->v[0].key;
        return a->v[0].module;
}

/* ---- the looking list ---- */

static void looking_remove(struct module *m)
{
        struct radio *r = m->radio;
        if (!m->looking_pos)
                return;
        size_t i = m->looking_pos - 1;
        m->looking_pos = 0;
        if (i != --r->n_looking) {
                r->looking[i] = r->looking[r->n_looking];
                r->looking[i]->looking_pos = i + 1;
        }
}

static int looking_add(struct module *m)
{
        struct radio *r = m->radio;
        if (m->looking_pos)
                return 0;
        poller_watch_resume(m);
        if (r->n_looking == r->looking_cap) {
                size_t cap = r->looking_cap ? 2 * r->looking_cap : 8;
                struct module **v = realloc(r->looking, cap * sizeof *v);
                if (!v)
                        return -ENOMEM;
                r->looking = v;
                r->looking_cap = cap;
        }
        agenda_remove(m);
        m->looked_usec = 0;
        m->look_from = now_monotonic();
        r->looking[r->n_looking++] = m;
        m->looking_pos = r->n_looking;
        return 0;
}

/* ---- module classes ---- */

static bool asked(const struct module *m)
{
        return m->verify || m->write_pending || m->poll_now;
}

/* Answering, or not tried yet: a module is a suspect only once a session of its failed. */
static bool answers(const struct module *m)
{
        return !m->backoff;
}

int poller_requeue(struct daemon *d, struct module *m)
{
        struct radio *r = m->radio;
        if (m->n_devices == 0) {
                agenda_remove(m);
                if (r)
                        looking_remove(m);
                return 0;
        }
        if (m->looking_pos && !asked(m))
                return 0; /* until it is seen, or the look runs out */
        if (asked(m) || answers(m)) {
                looking_remove(m);
                return agenda_put(&r->due, m, asked(m) ? 0 : m->next_due);
        }
        return agenda_put(&r->retry, m, m->next_due);
}

/* Whether a Connect to m can be expected to work: BlueZ knows the device, and it is connected,
 * or it answered a moment ago, or it advertised since its last failure. */
static bool present(const struct daemon *d, const struct module *m, uint64_t now)
{
        if (!d->bluez)
                return false;
        const struct bluez_adapter *a = bluez_adapter_find(d->bluez, m->radio->name);
        const struct bluez_device *bd = a ? bluez_device_find(d->bluez, a->path, m->address) : NULL;
        if (!bd)
                return false;
        if (bd->connected)
                return true;
        uint64_t fresh = fresh_usec(m);
        if (answers(m) && m->ok_at && now - MAX(m->ok_at, m->seen_at) < fresh)
                return true;
        return m->seen_at && m->seen_at >= m->failed_at && now - m->seen_at < fresh;
}

/* ---- timers ---- */

static int on_radio_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        poller_schedule_radio(userdata);
        return 0;
}

static void arm_at(struct radio *r, uint64_t when)
{
        if (!r->timer) {
                if (sd_event_add_time(
                            r->daemon->event, &r->timer, CLOCK_MONOTONIC, when, 1, on_radio_timer, r) < 0)
                        return;
        } else
                sd_event_source_set_time(r->timer, when);
        sd_event_source_set_enabled(r->timer, SD_EVENT_ONESHOT);
}

static void set_diag(struct device *dev, enum diagnosis_code c, const char *detail)
{
        dev->diag = c;
        snprintf(dev->diag_detail, sizeof dev->diag_detail, "%s", detail ? detail : "");
}

static void count_failure(struct device *dev, int64_t now)
{
        dev->last_attempt = now;
        dev->polls_failed++;
        if (!dev->failures++)
                dev->first_failure = now;
}

/* Without a bus, BlueZ or its adapter no session can start: every device of m shows why. */
static void fail_all_system(struct module *m, enum diagnosis_code c, const char *detail)
{
        int64_t now = now_realtime();
        for (size_t i = 0; i < m->n_devices; i++) {
                struct device *dev = m->devices[i];
                if (dev->diag != c)
                        dev->errors[c]++;
                set_diag(dev, c, detail);
                dev->state = DEVICE_ERROR;
                count_failure(dev, now);
                snprintf(dev->last_error, sizeof dev->last_error, "%s", diagnosis_info(c)->code);
        }
}

/* Whether the device's last failure was the system's (bus, BlueZ, its adapter), not its own. */
static bool failed_for_the_system(const struct device *dev)
{
        return dev->diag >= DIAG_NO_SYSTEM_BUS && dev->diag <= DIAG_ADAPTER_OFF;
}

void poller_system_back(struct daemon *d, struct radio *r)
{
        uint64_t now = now_monotonic();
        for (size_t i = 0; i < d->n_modules; i++) {
                struct module *m = d->modules[i];
                if (r && m->radio != r)
                        continue;
                bool blocked = false;
                for (size_t k = 0; k < m->n_devices; k++)
                        blocked = blocked || failed_for_the_system(m->devices[k]);
                if (!blocked || m->radio->active == m)
                        continue;
                /* Its failures were not its own: read it now, not an interval later. */
                m->next_due = now;
                m->backoff = 0;
                poller_requeue(d, m);
        }
}

static void cancel_asked(struct daemon *d, struct module *m, enum diagnosis_code c)
{
        m->poll_now = false;
        if (m->verify) {
                struct verify_job *job = m->verify;
                m->verify = NULL;
                job->done(job->userdata, job->device, NULL, NULL);
        }
        if (m->write_pending) {
                m->write_pending = false;
                if (d->write_done)
                        d->write_done(d, m->write_device, -ENOTCONN, diagnosis_info(c)->code);
        }
}

static bool wants_probe(const struct module *m)
{
        /* Probing costs seconds: only while a device has never answered, and not every poll.
         * Never by itself on a module with several devices (packs behind a hub): the session ends
         * after a probe (late replies), which would cost the devices after the silent one their
         * poll; verify still probes there. */
        if (m->n_devices != 1)
                return false;
        const struct device *dev = m->devices[0];
        return !dev->last_poll && dev->failures % 5 == 1;
}

/* The radio goes from idle to busy: the modules it looks for were looked for until now. */
static uint64_t looked_since(const struct radio *r, const struct module *m, uint64_t now)
{
        uint64_t from = MAX(r->idle_since, m->look_from);
        return r->idle_since && now > from ? now - from : 0;
}

static void looking_pause(struct radio *r, uint64_t now)
{
        for (size_t i = 0; i < r->n_looking; i++)
                r->looking[i]->looked_usec += looked_since(r, r->looking[i], now);
        r->idle_since = 0;
}

/* The optional blocks of a plan: identity and settings. */
static uint32_t optional_blocks(const struct renogy_family *f)
{
        uint32_t mask = 0;
        for (size_t i = 0; i < f->n_blocks && i < 32; i++)
                if (f->blocks[i].optional)
                        mask |= 1u << i;
        return mask;
}

/* What a device skips this session: optional blocks left unanswered lately, the others between
 * their refreshes, and live blocks held until the model is known. */
static uint32_t blocks_to_skip(const struct device *dev, int64_t now)
{
        uint32_t skip = now < dev->optional_retry_at ? dev->optional_unanswered : 0;
        if (dev->optional_due_at && now < dev->optional_due_at)
                skip |= optional_blocks(dev->decoder);
        return skip | dev->held_blocks;
}

/* Readings of blocks not asked this session (identity and settings between refreshes) stay as
 * last read. */
static void carry_readings(const struct device *dev, const struct renogy_family *plan, uint32_t blocks,
        struct renogy_readings *rd)
{
        if (!dev->have_readings || !blocks)
                return;
        for (size_t i = 0; i < dev->readings.n && rd->n < RENOGY_MAX_READINGS; i++) {
                const struct renogy_reading *old = &dev->readings.r[i];
                const struct renogy_field *f = old->field;
                bool in_block = false;
                for (size_t b = 0; b < plan->n_blocks && b < 32 && !in_block; b++)
                        in_block = (blocks & (1u << b)) && renogy_field_in_block(f, &plan->blocks[b]);
                if (in_block && !renogy_readings_get(rd, f->key))
                        rd->r[rd->n++] = *old;
        }
}

static void start_session(struct radio *r, struct module *m, uint64_t budget)
{
        struct daemon *d = r->daemon;
        struct link_unit units[LINK_MAX_UNITS];
        uint64_t now = now_monotonic();
        bool probe = m->verify || wants_probe(m);
        link_set_session(m->link, d->bluez, probe, m->verify ? m->verify->step : NULL,
                m->verify ? m->verify->userdata : NULL);
        /* A verify walks through the discovery step when the module has not advertised lately;
         * a routine session of a module known present connects at once. */
        link_set_plan(m->link, !m->verify && present(d, m, now), budget);
        for (size_t i = 0; i < m->n_devices; i++) {
                struct device *dev = m->devices[i];
                units[i] = (struct link_unit){
                        .family = dev->decoder,
                        .modbus_id = dev->cfg.modbus_id,
                        .unsupported = dev->unsupported,
                        .skip = blocks_to_skip(dev, now_realtime()),
                };
                /* A routine poll of a working device is not a state change: Home Assistant's
                 * connectivity sensor must not blink off for the second a session takes. */
                if (dev->state != DEVICE_ONLINE)
                        dev->state = DEVICE_CONNECTING;
        }
        looking_pause(r, now);
        poller_watch_resume(m);
        int res;
        /* Before the start: a session that fails at once ends inside link_start, and its end
         * clears this and may start the radio's next one. */
        r->active = m;
        m->session_device = NULL;
        m->session_kind = SESSION_POLL;
        if (m->write_pending && m->write_device) {
                m->session_kind = SESSION_WRITE;
                m->session_device = m->write_device;
                size_t idx = 0;
                while (idx < m->n_devices && m->devices[idx] != m->write_device)
                        idx++;
                res = link_start_write(m->link, &units[idx], m->write_reg, m->write_value, m->readback_reg);
        } else if (m->verify && m->verify->device) {
                m->session_kind = SESSION_VERIFY;
                m->session_device = m->verify->device;
                size_t idx = 0;
                while (idx < m->n_devices && m->devices[idx] != m->verify->device)
                        idx++;
                res = link_start(m->link, &units[idx], 1);
        } else
                res = link_start(m->link, units, m->n_devices);
        if (res < 0) {
                log_error_errno(res, "Cannot start a session with %s: %m", m->address);
                if (r->active == m && !link_busy(m->link)) {
                        r->active = NULL;
                        r->idle_since = now_monotonic();
                }
        }
}

/* ---- looking for modules that do not advertise ---- */

static void on_look_started(void *userdata, enum bluez_error e, const char *message)
{
        struct radio *r = userdata;
        if (r->look != LOOK_STARTING)
                return;
        if (e == BLUEZ_OK || e == BLUEZ_ERR_IN_PROGRESS)
                r->look = LOOK_ON;
        else {
                /* The look's time runs anyway: a module is not held back because we cannot scan,
                 * and the adapter's own diagnosis says why. */
                log_debug("%s: StartDiscovery: %s", r->name, message ?: bluez_error_to_string(e));
                r->look = LOOK_OFF;
                arm_at(r, now_monotonic() + USEC_PER_SEC);
                return;
        }
        poller_schedule_radio(r);
}

static void on_look_stopped(void *userdata, enum bluez_error e, const char *message)
{
        struct radio *r = userdata;
        if (r->look != LOOK_STOPPING)
                return;
        r->look = LOOK_OFF;
        poller_schedule_radio(r);
}

static void look_start(struct radio *r)
{
        struct daemon *d = r->daemon;
        const struct bluez_adapter *a = d->bluez ? bluez_adapter_find(d->bluez, r->name) : NULL;
        if (!a || !a->powered)
                return;
        r->look = LOOK_STARTING;
        if (bluez_start_discovery(d->bluez, a->path, on_look_started, r) < 0)
                r->look = LOOK_OFF;
}

static void look_stop(struct radio *r)
{
        struct daemon *d = r->daemon;
        const struct bluez_adapter *a = d->bluez ? bluez_adapter_find(d->bluez, r->name) : NULL;
        r->look = LOOK_STOPPING;
        if (!a || bluez_stop_discovery(d->bluez, a->path, on_look_stopped, r) < 0)
                r->look = LOOK_OFF;
}

void poller_discovery_lost(struct daemon *d)
{
        for (size_t i = 0; i < d->n_radios; i++)
                d->radios[i]->look = LOOK_OFF;
}

/* A look that ran out: the module was not seen advertising. It counts as a failed poll of each
 * of its devices, with the diagnosis a silent module gets, and it waits for its next retry. */
static void look_failed(struct daemon *d, struct module *m, uint64_t now)
{
        int64_t rnow = now_realtime();
        const struct bluez_adapter *a = d->bluez ? bluez_adapter_find(d->bluez, m->radio->name) : NULL;
        bool known = a && bluez_device_find(d->bluez, a->path, m->address);
        long since = m->last_seen ? (long)((rnow - m->last_seen) / 1000000) : -1;
        for (size_t i = 0; i < m->n_devices; i++) {
                struct device *dev = m->devices[i];
                count_failure(dev, rnow);
                char detail[192];
                enum diagnosis_code c;
                if (dev->diag == DIAG_HELD_BY_OTHER_CENTRAL) {
                        /* Its connects were refused, then it went quiet: a phone took it. */
                        c = DIAG_HELD_BY_OTHER_CENTRAL;
                        dev->state = DEVICE_BUSY;
                        snprintf(detail, sizeof detail, "not advertising since our connects were refused");
                } else if (!known && !m->last_seen && !dev->last_poll) {
                        c = DIAG_NOT_FOUND;
                        dev->state = DEVICE_UNREACHABLE;
                        snprintf(detail, sizeof detail, "%s", dev->cfg.address);
                } else {
                        c = dev->cfg.family == &renogy_inverter ? DIAG_INVERTER_ASLEEP : DIAG_ASLEEP;
                        dev->state = DEVICE_ASLEEP;
                        if (since >= 0)
                                snprintf(detail, sizeof detail, "no advertisement for %ld s", since);
                        else
                                snprintf(detail, sizeof detail, "not seen advertising since BluPow started");
                }
                if (c != dev->diag || dev->failures == 1)
                        dev->errors[c]++;
                set_diag(dev, c, detail);
                snprintf(dev->last_error, sizeof dev->last_error, "advertisement: not seen in %llu s",
                        (unsigned long long)(LOOK_WINDOW / USEC_PER_SEC));
        }
        m->backoff++;
        m->next_due = now + retry_delay(m->interval, m->backoff);
        looking_remove(m);
        poller_requeue(d, m);
        log_info("%s: not seen advertising in %llu s; next look in %llu s", m->address,
                (unsigned long long)(LOOK_WINDOW / USEC_PER_SEC),
                (unsigned long long)((m->next_due - now) / USEC_PER_SEC));
}

/* A radio whose modules that answer keep it busy (sessions back to back, longer than their
 * interval allows) is never idle, and would never look for the others. A module looked for
 * longer than its own interval, on a radio idle less than a tenth of that time, gets the radio
 * for the rest of its look window (or until it is seen). A radio with gaps looks in them: the
 * modules that answer keep their schedule. */
static bool looks_starved(const struct radio *r, uint64_t now)
{
        for (size_t i = 0; i < r->n_looking; i++) {
                const struct module *m = r->looking[i];
                uint64_t waited = now - m->look_from, looked = m->looked_usec + looked_since(r, m, now);
                if (waited > m->interval && looked < LOOK_WINDOW && looked * 10 < waited)
                        return true;
        }
        return false;
}

/* Ends the looks that ran out; returns when the next one would. */
static uint64_t looks_expire(struct radio *r, uint64_t now)
{
        uint64_t next = UINT64_MAX;
        for (size_t i = 0; i < r->n_looking;) {
                struct module *m = r->looking[i];
                uint64_t looked = m->looked_usec + looked_since(r, m, now);
                if (looked >= LOOK_WINDOW) {
                        look_failed(r->daemon, m, now); /* leaves the list: i now holds another */
                        continue;
                }
                next = MIN(next, now + LOOK_WINDOW - looked);
                i++;
        }
        return next;
}

/* ---- following a module's advertisements ---- */

/* Between its sessions, present() needs one advertisement per half of the module's freshness
 * window. Following every one costs a wake each: a BT-2 advertises about once a second, BlueZ
 * signals each while any program on the host scans (Home Assistant's Bluetooth integration
 * does, all the time), and that was most of what blupowd did while it waited. So after one is
 * seen between sessions, the module's Device1 signals go unwatched for that long, or until a
 * session or a look of its own needs them. A link kept up stays watched: its drop must be seen.
 * A scan watches every device anyway. */
static int on_watch_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        poller_watch_resume(userdata);
        return 0;
}

void poller_watch_forget(struct module *m)
{
        m->watch_paused = false;
        if (m->watch_timer)
                sd_event_source_set_enabled(m->watch_timer, SD_EVENT_OFF);
}

void poller_watch_resume(struct module *m)
{
        if (!m->watch_paused)
                return;
        poller_watch_forget(m);
        struct daemon *d = m->daemon;
        int r = d->bluez ? bluez_watch_device(d->bluez, m->radio->name, m->address) : 0;
        if (r < 0)
                log_warning_errno(r, "Cannot follow %s's signals: %m", m->address);
}

static void watch_pause(struct daemon *d, struct module *m)
{
        const struct bluez_adapter *a = bluez_adapter_find(d->bluez, m->radio->name);
        const struct bluez_device *bd = a ? bluez_device_find(d->bluez, a->path, m->address) : NULL;
        if (m->watch_paused || m->looking_pos || m->radio->active == m || link_busy(m->link) || !bd ||
                bd->connected || m->radio->probe)
                return;
        uint64_t until = now_monotonic() + fresh_usec(m) / 2;
        int r = m->watch_timer ? sd_event_source_set_time(m->watch_timer, until)
                               : sd_event_add_time(d->event, &m->watch_timer, CLOCK_MONOTONIC, until,
                                         USEC_PER_SEC, on_watch_timer, m);
        if (r >= 0)
                r = sd_event_source_set_enabled(m->watch_timer, SD_EVENT_ONESHOT);
        if (r < 0)
                return; /* followed as before: costs wakes, loses nothing */
        bluez_unwatch_device(d->bluez, m->radio->name, m->address);
        m->watch_paused = true;
}

void poller_module_seen(struct daemon *d, struct module *m)
{
        m->seen_at = now_monotonic();
        /* A module looked for is tried now. */
        if (m->looking_pos) {
                looking_remove(m);
                m->next_due = m->seen_at;
                poller_requeue(d, m);
                poller_schedule_radio(m->radio);
        }
        watch_pause(d, m); /* not when that started its session */
}

/* ---- scheduling ---- */

/* With BlueZ or the adapter gone, every module due gets the verdict, without a session. */
static uint64_t fail_due_system(struct radio *r, uint64_t now, enum diagnosis_code c, const char *detail)
{
        struct daemon *d = r->daemon;
        struct agenda *queues[] = {&r->due, &r->retry};
        while (r->n_looking) {
                struct module *m = r->looking[0];
                looking_remove(m);
                m->next_due = now;
                poller_requeue(d, m);
        }
        uint64_t next = UINT64_MAX, key;
        for (size_t q = 0; q < ELEMENTSOF(queues); q++) {
                struct module *m;
                while ((m = agenda_head(queues[q], &key)) && key <= now) {
                        fail_all_system(m, c, detail);
                        /* A bank shows its packs' failure as it shows a failed session's. */
                        banks_session_done(d, m);
                        cancel_asked(d, m, c);
                        m->next_due = now + m->interval;
                        poller_requeue(d, m);
                }
                if (m)
                        next = MIN(next, key);
        }
        return next;
}

static void start_probe(struct radio *r, uint64_t now)
{
        struct daemon *d = r->daemon;
        struct hub_probe *p = r->probe;
        struct link *l = p->module ? p->module->link : p->link;
        struct link_unit units[HUB_IDS];
        for (size_t i = 0; i < HUB_IDS; i++)
                units[i] = (struct link_unit){
                        .family = &renogy_battery, .modbus_id = (uint8_t)(HUB_FIRST_ID + i)};
        link_set_session(l, d->bluez, false, NULL, NULL);
        link_set_plan(l, false, 0);
        looking_pause(r, now);
        p->started = true;
        if (p->module) {
                r->active = p->module;
                p->module->session_kind = SESSION_PROBE;
        }
        /* The model block: a pack answers with its model string. */
        const struct renogy_field *model = renogy_field_find(&renogy_battery, "model");
        int res = link_start_survey(l, units, HUB_IDS, model->addr, (uint16_t)((model->len + 1) / 2));
        if (res < 0) {
                log_error_errno(res, "Cannot survey %s: %m", p->address);
                r->active = NULL;
                r->probe = NULL;
                if (p->done)
                        p->done(p, NULL, 0, NULL);
                daemon_probe_release(d, p);
        }
}

void poller_probe_done(struct radio *r)
{
        struct hub_probe *p = r->probe;
        if (!p)
                return;
        struct link *l = p->module ? p->module->link : p->link;
        r->probe = NULL;
        r->active = NULL;
        r->idle_since = now_monotonic();
        size_t n;
        const struct link_unit *units = link_units(l, &n);
        if (p->done)
                p->done(p, units, n, link_report(l));
        daemon_probe_release(r->daemon, p);
        poller_schedule(r->daemon);
}

void poller_schedule_radio(struct radio *r)
{
        struct daemon *d = r->daemon;
        if (d->shutting_down || r->active || (r->probe && r->probe->started))
                return;
        if (d->sync_pending && d->bluez && !bluez_bus_broken(d->bluez))
                return; /* the first answer from BlueZ schedules again */
        if (daemon_scanning(d)) {
                arm_at(r, d->scan_until + 1);
                return;
        }
        if (r->look == LOOK_STARTING || r->look == LOOK_STOPPING)
                return; /* its reply schedules again */
        uint64_t now = now_monotonic();
        if (!r->idle_since)
                r->idle_since = now;
        char detail[192];
        enum diagnosis_code sys = daemon_adapter_diagnosis(d, r->name, detail, sizeof detail);
        if (r->probe) {
                /* A survey asked for goes before any poll; the link's own steps report an
                 * adapter or BlueZ that is not there. */
                if (r->look == LOOK_ON)
                        look_stop(r);
                else
                        start_probe(r, now);
                return;
        }
        if (sys != DIAG_NONE && sys != DIAG_ADAPTER_SHARED) {
                r->look = LOOK_OFF;
                uint64_t next = fail_due_system(r, now, sys, detail);
                if (next != UINT64_MAX)
                        arm_at(r, next);
                return;
        }

        uint64_t next = UINT64_MAX, key;
        struct module *m, *pick = NULL;
        uint64_t budget = 0;
        while ((m = agenda_head(&r->due, &key)) && key <= now) {
                /* Not seen lately (just started, or BlueZ forgot it): looked for first, which
                 * costs no other module anything, and read the moment it advertises. */
                if (!asked(m) && !present(d, m, now)) {
                        looking_add(m);
                        continue;
                }
                pick = m;
                break;
        }
        if (!pick && m)
                next = key;
        if (pick && !asked(pick) && pick->ok_at && pick->read_usec) {
                /* A module that answered may have just gone to sleep: bounded by twice its
                 * usual read, or the time until the next module is due, if longer. */
                struct module *after = NULL;
                uint64_t after_key = UINT64_MAX;
                for (size_t c = 1; c <= 2 && c < r->due.n; c++)
                        if (r->due.v[c].key < after_key) {
                                after = r->due.v[c].module;
                                after_key = r->due.v[c].key;
                        }
                uint64_t gap = after && after_key > now ? after_key - now : 0;
                budget = MAX(gap, 2 * pick->read_usec + HEALTHY_MARGIN);
        }
        while (!pick && (m = agenda_head(&r->retry, &key))) {
                if (key > now) {
                        next = MIN(next, key);
                        break;
                }
                if (!present(d, m, now)) {
                        looking_add(m);
                        continue;
                }
                /* Only in the time the modules that answer leave free, and no longer; on an
                 * adapter so busy that no such gap comes for an interval, the shortest slot. */
                uint64_t gap = next == UINT64_MAX ? UINT64_MAX : next - now;
                uint64_t slot = MAX(RETRY_MIN_SLOT, m->read_usec * 3 / 2);
                bool starved = now - key > m->interval;
                if (gap < slot && !starved)
                        break;
                pick = m;
                budget = gap == UINT64_MAX ? 0 : MAX(gap, slot + RETRY_MARGIN) - RETRY_MARGIN;
        }
        if (pick && !asked(pick) && looks_starved(r, now)) {
                pick = NULL;
                next = UINT64_MAX; /* the look running out, or the module seen, schedules again */
        }
        if (pick) {
                if (r->look == LOOK_ON) {
                        look_stop(r); /* connecting while scanning is a known cause of aborts */
                        return;
                }
                start_session(r, pick, budget);
                return;
        }
        next = MIN(next, looks_expire(r, now));
        if (r->n_looking && r->look == LOOK_OFF)
                look_start(r);
        else if (!r->n_looking && r->look == LOOK_ON)
                look_stop(r);
        if (next != UINT64_MAX)
                arm_at(r, next);
}

void poller_schedule(struct daemon *d)
{
        if (d->shutting_down)
                return;
        if (d->scan_pending) {
                bool busy = false;
                for (size_t i = 0; i < d->n_radios; i++)
                        busy = busy || d->radios[i]->active;
                if (!busy) {
                        int r = daemon_scan(d, d->scan_pending);
                        if (r < 0) {
                                log_warning("Scan: cannot start: %s", strerror(-r));
                                d->scan_pending = 0;
                        }
                }
        }
        for (size_t i = 0; i < d->n_radios; i++)
                poller_schedule_radio(d->radios[i]);
}

void poller_radio_free(struct radio *r)
{
        if (!r)
                return;
        sd_event_source_unref(r->timer);
        free(r->due.v);
        free(r->retry.v);
        free(r->looking);
        free(r);
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
        enum diagnosis_code sys = daemon_adapter_diagnosis(d, m->radio->name, detail, size);
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
                /* The plan this session read; the readings may name another variant below. */
                const struct renogy_family *plan = u->family;
                uint32_t optional = optional_blocks(plan);
                device_choose_decoder(dev);
                bool decoded = renogy_decode(dev->decoder, &u->image, &rd) > 0;
                if (decoded && dev->decoder == plan)
                        carry_readings(dev, plan, u->skip & optional, &rd);
                /* Refreshed later once each one asked has its answer: a silent one ends the
                 * session before those after it, which go at the next. */
                uint32_t settled = u->optional_ok | u->optional_unanswered | u->unsupported | u->skip;
                if ((optional & ~u->skip) && !(optional & ~settled))
                        dev->optional_due_at = now + OPTIONAL_REFRESH_USEC;
                if (decoded) {
                        dev->readings = rd;
                        dev->have_readings = true;
                        dev->readings_at = now;
                }
                device_read_ok(dev, now);
                dev->poll_seconds_sum += (double)r->duration_usec / 1e6;
                dev->unsupported = u->unsupported;
                if (u->optional_unanswered) {
                        /* Some firmware never gives its model: asked again about hourly. */
                        dev->optional_unanswered |= u->optional_unanswered;
                        dev->optional_retry_at = now + OPTIONAL_RETRY_USEC;
                }
                dev->optional_unanswered &= ~u->optional_ok;
                if (u->live_unanswered && !dev->model[0] && !dev->cfg.model[0])
                        dev->held_blocks |= u->live_unanswered;
                dev->state = DEVICE_ONLINE;
                dev->last_error[0] = 0;
                take_identity(dev);
                if (dev->model[0])
                        dev->held_blocks = 0; /* the plan the model chose asks what it has */
                /* The model string read just now may name another variant: decode again. */
                if (device_choose_decoder(dev) && renogy_decode(dev->decoder, &u->image, &rd) > 0)
                        dev->readings = rd;
                char detail[192];
                enum device_state ignored;
                if (r->link_dropped && r->reached != LINK_STAGE_DONE) {
                        /* Cut short: what was read stands, and the drop gets its diagnosis (a
                         * weak signal, or BlueZ or the adapter going away). */
                        enum diagnosis_code c =
                                poller_classify(d, m, dev, u, r, &ignored, detail, sizeof detail);
                        set_diag(dev, c, detail);
                        if (c != DIAG_NONE)
                                dev->errors[c]++;
                } else if (u->bad_frames) {
                        snprintf(detail, sizeof detail, "%u corrupted or truncated replies in the last poll",
                                u->bad_frames);
                        set_diag(dev, DIAG_WEAK_SIGNAL, detail);
                        dev->errors[DIAG_WEAK_SIGNAL]++;
                } else if (u->live_unanswered && !(dev->held_blocks & u->live_unanswered)) {
                        /* A block the model's plan has went silent after others answered: its
                         * readings are missing from this poll, which must not look whole. (While
                         * the model is unknown the block is held instead: a variant without it.) */
                        const struct renogy_block *b = &plan->blocks[__builtin_ctz(u->live_unanswered)];
                        snprintf(detail, sizeof detail,
                                "id %u stopped answering at 0x%04X x%u, so the readings of that block are "
                                "missing from the last poll",
                                u->modbus_id, b->reg, b->count);
                        set_diag(dev, DIAG_WEAK_SIGNAL, detail);
                        dev->errors[DIAG_WEAK_SIGNAL]++;
                } else if (r->has_rssi && r->rssi < WEAK_RSSI) {
                        snprintf(detail, sizeof detail, "RSSI %d dBm", r->rssi);
                        set_diag(dev, DIAG_WEAK_SIGNAL, detail);
                } else
                        set_diag(dev, DIAG_NONE, NULL);
                if (decoded)
                        device_energy_poll(d, dev); /* recorded with the poll it counts */
                if (d->store)
                        store_record(d->store, dev);
                return;
        }
        count_failure(dev, now);
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

/* A poll or verify session's verdict on the module: answering, or retried with backoff. */
static void module_result(
        struct module *m, const struct link_report *r, const struct link_unit *units, size_t n, uint64_t now)
{
        bool ok = false;
        for (size_t i = 0; i < n; i++)
                ok = ok || units[i].blocks_ok > 0;
        if (ok) {
                m->ok_at = now;
                m->backoff = 0;
                m->read_usec = r->duration_usec;
                m->next_due = next_due_after(m->next_due, now, m->interval);
                return;
        }
        m->failed_at = r->started_usec;
        m->backoff++;
        m->next_due = now + retry_delay(m->interval, m->backoff);
}

/* Whether a write took: acknowledged with the same value, and the register read back shows it.
 * What was read back goes into the device's readings at once. */
static int write_verdict(
        struct module *m, const struct link_unit *u, const struct link_report *r, char *message, size_t size)
{
        struct device *dev = m->session_device;
        snprintf(message, size, "%s", r->message);
        if (!dev || r->reached != LINK_STAGE_DONE || !u->blocks_ok) {
                if (!message[0])
                        snprintf(message, size, "the module did not answer the write (%s)",
                                link_stage_name(r->reached));
                return -EIO;
        }
        struct renogy_readings rd;
        renogy_decode(dev->decoder, &u->image, &rd);
        const struct renogy_reading *got = renogy_readings_get(&rd, m->write_shows->key);
        if (!renogy_setting_shows(m->write_shows, got, m->shows_value)) {
                char shown[64] = "nothing";
                if (got && got->type == RV_NUMBER)
                        snprintf(shown, sizeof shown, "%.*f", got->decimals, got->number);
                else if (got && got->type == RV_TEXT)
                        snprintf(shown, sizeof shown, "%s", got->text);
                snprintf(message, size, "acknowledged, but %s reads back %s", m->write_shows->key, shown);
                return -EBADE;
        }
        for (size_t i = 0; i < rd.n; i++) {
                struct renogy_reading *old = NULL;
                for (size_t k = 0; k < dev->readings.n && !old; k++)
                        if (dev->readings.r[k].field == rd.r[i].field)
                                old = &dev->readings.r[k];
                if (old)
                        *old = rd.r[i];
                else if (dev->readings.n < RENOGY_MAX_READINGS)
                        dev->readings.r[dev->readings.n++] = rd.r[i];
        }
        return 0;
}

void poller_session_done(struct daemon *d, struct module *m)
{
        struct radio *rad = m->radio;
        const struct link_report *r = link_report(m->link);
        size_t n;
        const struct link_unit *units = link_units(m->link, &n);
        uint64_t now = now_monotonic();
        if (m->session_kind == SESSION_PROBE) {
                m->session_kind = SESSION_POLL;
                poller_probe_done(rad);
                return;
        }
        if (rad->active == m) {
                rad->active = NULL;
                rad->idle_since = now;
        }
        rad->sessions++;
        if (r->reached != LINK_STAGE_DONE)
                rad->sessions_failed++;

        if (m->session_kind == SESSION_WRITE) {
                m->write_pending = false;
                char message[192];
                int res = write_verdict(m, &units[0], r, message, sizeof message);
                if (d->write_done && m->session_device)
                        d->write_done(d, m->session_device, res, message);
                if (m->session_device)
                        m->session_device->optional_due_at = 0; /* its settings, fresh at the next poll */
                m->poll_now = true;                             /* and the rest of its state */
        } else if (m->session_kind == SESSION_VERIFY) {
                struct verify_job *job = m->verify;
                m->verify = NULL;
                if (m->session_device)
                        process_unit(d, m, m->session_device, &units[0], r);
                if (job)
                        job->done(job->userdata, job->device, r, &units[0]);
                if (m->next_due != UINT64_MAX && n)
                        module_result(m, r, units, 1, now);
        } else {
                for (size_t i = 0; i < n && i < m->n_devices; i++)
                        process_unit(d, m, m->devices[i], &units[i], r);
                m->poll_now = false;
                if (m->next_due != UINT64_MAX)
                        module_result(m, r, units, n, now);
        }
        if (m->session_kind != SESSION_WRITE)
                banks_session_done(d, m);
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
        poller_schedule_radio(m->radio);
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
