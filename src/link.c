/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "link.h"
#include "log.h"
#include "macro.h"

#define UUID(x) "0000" x "-0000-1000-8000-00805f9b34fb"
/* A module that advertises connects in a second or two; one that does not gets no answer at
 * all from BlueZ 5.66 over a real controller, so the wait is short. */
#define CONNECT_TIMEOUT      (10 * USEC_PER_SEC)
#define RESOLVE_TIMEOUT      (20 * USEC_PER_SEC)
#define CHARS_GRACE          (3 * USEC_PER_SEC)
#define NOT_CONNECTED_WAIT   (3 * USEC_PER_SEC)
#define DISCONNECT_WAIT      (5 * USEC_PER_SEC)
#define SHUNT_FRAME_TIMEOUT  (5 * USEC_PER_SEC)
#define PROBE_TIMEOUT        (1500 * USEC_PER_MSEC)
#define MAX_CONNECT_ATTEMPTS 3
#define SILENT_ABORT         (2 * USEC_PER_SEC)
/* Our own notification socket closed this recently may still be held in BlueZ (its hang-up not
 * yet taken): AcquireNotify is asked once more after a moment. */
#define NOTIFY_RELEASE_GRACE (3 * USEC_PER_SEC)
#define NOTIFY_RETRY_DELAY   (200 * USEC_PER_MSEC) /* doubled at each of NOTIFY_RETRIES */
#define NOTIFY_RETRIES       3
/* bluetoothd stopping drops every link first (ServicesResolved=false, Connected=false), then
 * powers the adapter off and leaves the bus, 0.4 s later on 5.66: a dropped link waits this long
 * before the session ends, so that its verdict sees why. */
#define LINK_LOST_GRACE (2 * USEC_PER_SEC)

enum phase {
        PHASE_IDLE,
        PHASE_DISCOVER,
        PHASE_STOP_DISCOVERY,
        PHASE_CONNECT,
        PHASE_WAIT_NOT_CONNECTED, /* between connect attempts: Connected=false first */
        PHASE_BACKOFF,
        PHASE_RESOLVE,
        PHASE_NOTIFY,
        PHASE_REQUEST,
        PHASE_SHUNT_FRAME,
        PHASE_PROBE,
        PHASE_LINK_LOST, /* the link dropped: waiting to see whether BlueZ or the adapter went with it */
        PHASE_DISCONNECT,
};

struct link {
        struct link_config cfg;
        enum phase phase;
        sd_event_source *timer;
        struct bluez_call *call;
        char *device_path;
        char *notify_path;
        char *write_path;
        /* AcquireNotify's socket (owned by the source) while a session holds it. */
        sd_event_source *notify_src;
        /* BlueZ answered AcquireNotify with NotSupported/UnknownMethod: StartNotify from now on. */
        bool acquire_unsupported;
        /* AcquireWrite's socket while a session holds it: each request is one packet. */
        int write_fd;
        /* AcquireWrite goes out with the subscription (l->call), so both replies come in one
         * wake; the exchange begins when neither call is pending. */
        struct bluez_call *write_call;
        /* The write characteristic writes without response, which AcquireWrite requires. */
        bool write_socket_possible;
        /* BlueZ answered AcquireWrite with NotSupported/UnknownMethod: WriteValue from now on. */
        bool acquire_write_unsupported;
        bool discovering;
        bool connected_by_us;
        /* keep_connected left the link up after the last session: shutdown hands it back. */
        bool kept;
        /* The poller's plan for the next session: the module is known to be there (no
         * discovery), and the longest the session may hold the adapter (0: no limit). */
        bool plan_present;
        uint64_t plan_budget;
        sd_event_source *budget_timer;
        /* Our own notification socket, closed at the last session's end: BlueZ takes the hang-up
         * in its own time, and an AcquireNotify right after may still find it held. */
        uint64_t notify_released_usec;
        unsigned notify_retries;
        sd_event_source *notify_retry;
        /* While PHASE_LINK_LOST: the failure the session ends with after the grace. */
        enum link_stage lost_stage;
        enum bluez_error lost_error;
        char lost_message[160];
        struct link_report report;
        struct link_unit units[LINK_MAX_UNITS];
        size_t n_units;
        size_t cur_unit;
        size_t cur_block;
        bool optional_pass; /* the second pass: the optional blocks of the units that answered */
        unsigned block_attempts;
        struct modbus_request req;
        struct modbus_reasm reasm;
        uint64_t phase_start;
        uint64_t connect_start;
        uint64_t attempt_start;
        void *step_userdata;
        /* probing */
        size_t probe_idx;
        /* a single write session (a setting, the load switch): the write, then the read back */
        bool write_mode;
        bool write_acked;
        uint16_t readback_reg;
        /* a survey: one identity request per unit, silence moving on to the next (hub ids) */
        bool survey;
        uint16_t survey_reg, survey_count;
        uint16_t write_reg, write_value;
        struct shunt_stream shunt;
};

static const char *const stage_names[] = {
        [LINK_STAGE_ADAPTER] = "adapter",
        [LINK_STAGE_FIND] = "advertisement",
        [LINK_STAGE_CONNECT] = "connect",
        [LINK_STAGE_SERVICES] = "services",
        [LINK_STAGE_NOTIFY] = "notify",
        [LINK_STAGE_EXCHANGE] = "exchange",
        [LINK_STAGE_DONE] = "done",
};

const char *link_stage_name(enum link_stage s)
{
        return s <= LINK_STAGE_DONE ? stage_names[s] : "?";
}

static uint64_t now_usec(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
}

static void set_str(char **p, const char *s)
{
        free(*p);
        *p = s ? strdup(s) : NULL;
}

static void step(struct link *l, const char *name, bool ok, const char *fmt, ...) _printf_(4, 5);
static void step(struct link *l, const char *name, bool ok, const char *fmt, ...)
{
        struct link_step s = {.name = name, .ok = ok, .usec = now_usec() - l->phase_start};
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s.detail, sizeof s.detail, fmt, ap);
        va_end(ap);
        log_debug("%s: %s %s (%s)", l->cfg.address, name, ok ? "ok" : "failed", s.detail);
        if (l->cfg.step)
                l->cfg.step(l->step_userdata, &s);
        l->phase_start = now_usec();
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata);

static void arm(struct link *l, uint64_t usec)
{
        if (!l->timer) {
                if (sd_event_add_time_relative(
                            l->cfg.event, &l->timer, CLOCK_MONOTONIC, usec, 1, on_timer, l) < 0)
                        return;
        } else
                sd_event_source_set_time_relative(l->timer, usec);
        sd_event_source_set_enabled(l->timer, SD_EVENT_ONESHOT);
}

static void disarm(struct link *l)
{
        if (l->timer)
                sd_event_source_set_enabled(l->timer, SD_EVENT_OFF);
}

static const struct bluez_device *device(struct link *l)
{
        const struct bluez_adapter *a = bluez_adapter_find(l->cfg.bluez, l->cfg.adapter);
        return a ? bluez_device_find(l->cfg.bluez, a->path, l->cfg.address) : NULL;
}

static bool is_shunt(const struct link *l)
{
        return l->n_units > 0 && l->units[0].family->byte_addressed;
}

static void finish(struct link *l);
static void start_connect(struct link *l);
static void start_disconnect(struct link *l);
static void send_next(struct link *l);
static void fail_after_grace(struct link *l, enum link_stage stage, enum bluez_error e, const char *message);

/* The session ends here; the link goes down cleanly unless it is kept. */
static void fail(struct link *l, enum link_stage stage, enum bluez_error e, const char *fmt, ...)
        _printf_(4, 5);
static void fail(struct link *l, enum link_stage stage, enum bluez_error e, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(l->report.message, sizeof l->report.message, fmt, ap);
        va_end(ap);
        l->report.reached = stage;
        l->report.error = e;
        step(l, link_stage_name(stage), false, "%s", l->report.message);
        for (size_t i = 0; i < l->n_units; i++)
                if (l->units[i].status == 0 && l->units[i].blocks_ok == 0)
                        l->units[i].status = -ECANCELED;
        start_disconnect(l);
}

/* ---- discovery ---- */

static void on_stop_discovery(void *userdata, enum bluez_error e, const char *message)
{
        struct link *l = userdata;
        l->discovering = false;
        if (l->phase != PHASE_STOP_DISCOVERY)
                return;
        start_connect(l);
}

static void stop_discovery_then_connect(struct link *l)
{
        const struct bluez_adapter *a = bluez_adapter_find(l->cfg.bluez, l->cfg.adapter);
        l->phase = PHASE_STOP_DISCOVERY;
        disarm(l);
        /* Connecting while scanning is a known cause of aborts: stop first. */
        if (!l->discovering || !a || bluez_stop_discovery(l->cfg.bluez, a->path, on_stop_discovery, l) < 0) {
                l->discovering = false;
                start_connect(l);
        }
}

/* The advertised signal strength for a step's text, or that the controller gave none. */
static const char *rssi_text(char *buf, size_t size, int16_t rssi)
{
        if (!bluez_rssi_known(rssi))
                return "RSSI not reported";
        snprintf(buf, size, "RSSI %d dBm", rssi);
        return buf;
}

static void note_rssi(struct link *l, const struct bluez_device *d)
{
        l->report.rssi = d->rssi;
        l->report.has_rssi = d->has_rssi && bluez_rssi_known(d->rssi);
}

static void found(struct link *l, const struct bluez_device *d)
{
        char rs[24];
        set_str(&l->device_path, d->path);
        l->report.found = true;
        note_rssi(l, d);
        step(l, "advertisement", true, "%s seen, %s", d->name[0] ? d->name : d->address,
                rssi_text(rs, sizeof rs, d->rssi));
        stop_discovery_then_connect(l);
}

static void on_start_discovery(void *userdata, enum bluez_error e, const char *message)
{
        struct link *l = userdata;
        if (l->phase != PHASE_DISCOVER)
                return;
        if (e == BLUEZ_ERR_IN_PROGRESS)
                return; /* BlueZ keeps one session per client: our own scan already runs and serves us too */
        if (e != BLUEZ_OK) {
                fail(l, e == BLUEZ_ERR_NOT_READY ? LINK_STAGE_ADAPTER : LINK_STAGE_FIND, e,
                        "StartDiscovery: %s", message ? message : bluez_error_to_string(e));
                return;
        }
        l->discovering = true;
}

static void start_find(struct link *l)
{
        const struct bluez_device *d = device(l);
        uint64_t now = now_usec();
        /* BlueZ drops RSSI when discovery stops, but an advertisement seen a moment ago still
         * says the module is there: connect without discovering again. Scanning before every
         * poll would cost a signal per advertisement of every module in range. */
        bool fresh = d && d->last_seen_usec && now - d->last_seen_usec < l->cfg.fresh_adv_usec;
        if (d) {
                l->report.found = true;
                l->report.advertising = d->has_rssi && fresh; /* advertising right now */
        }
        if (d && (d->connected || fresh || l->plan_present)) {
                char rs[24];
                set_str(&l->device_path, d->path);
                note_rssi(l, d);
                if (d->connected)
                        step(l, "advertisement", true, "already connected");
                else if (!fresh)
                        step(l, "advertisement", true, "present: it answered a moment ago");
                else
                        step(l, "advertisement", true, "seen %llu s ago, %s",
                                (unsigned long long)((now - d->last_seen_usec) / USEC_PER_SEC),
                                rssi_text(rs, sizeof rs, d->rssi));
                start_connect(l);
                return;
        }
        const struct bluez_adapter *a = bluez_adapter_find(l->cfg.bluez, l->cfg.adapter);
        l->phase = PHASE_DISCOVER;
        arm(l, l->cfg.find_timeout_usec);
        int r = bluez_start_discovery(l->cfg.bluez, a->path, on_start_discovery, l);
        if (r < 0)
                fail(l, LINK_STAGE_FIND, BLUEZ_ERR_DISCONNECTED, "StartDiscovery: %s", strerror(-r));
}

/* ---- connect ---- */

static void on_connect(void *userdata, enum bluez_error e, const char *message);

static void start_connect(struct link *l)
{
        if (!l->device_path) {
                const struct bluez_device *d = device(l);
                if (!d) {
                        fail(l, LINK_STAGE_FIND, BLUEZ_ERR_DOES_NOT_EXIST, "%s not seen within %llu s",
                                l->cfg.address,
                                (unsigned long long)(l->cfg.find_timeout_usec / USEC_PER_SEC));
                        return;
                }
                set_str(&l->device_path, d->path);
        }
        l->phase = PHASE_CONNECT;
        l->report.connect_attempts++;
        l->attempt_start = now_usec();
        l->connected_by_us = true;
        if (!l->connect_start)
                l->connect_start = now_usec();
        int r = bluez_connect(l->cfg.bluez, l->device_path, CONNECT_TIMEOUT, on_connect, l, &l->call);
        if (r < 0)
                fail(l, LINK_STAGE_CONNECT, BLUEZ_ERR_DISCONNECTED, "Connect: %s", strerror(-r));
}

static bool chars_ready(struct link *l)
{
        const struct bluez_char *n, *w = NULL;
        if (is_shunt(l))
                n = bluez_char_find(
                        l->cfg.bluez, l->device_path, UUID("c011"), UUID("c411"), BLUEZ_CHAR_NOTIFY);
        else {
                /* Pro batteries expose two characteristics per UUID: pick by service and flags. */
                n = bluez_char_find(
                        l->cfg.bluez, l->device_path, UUID("fff0"), UUID("fff1"), BLUEZ_CHAR_NOTIFY);
                w = bluez_char_find(l->cfg.bluez, l->device_path, UUID("ffd0"), UUID("ffd1"),
                        BLUEZ_CHAR_WRITE_NO_RESPONSE | BLUEZ_CHAR_WRITE);
                if (!w)
                        return false;
        }
        if (!n)
                return false;
        set_str(&l->notify_path, n->path);
        set_str(&l->write_path, w ? w->path : NULL);
        /* BlueZ offers AcquireWrite only on characteristics that write without response. */
        l->write_socket_possible = w && (w->flags & BLUEZ_CHAR_WRITE_NO_RESPONSE);
        return true;
}

static void on_start_notify(void *userdata, enum bluez_error e, const char *message);
static void on_acquire_notify(void *userdata, enum bluez_error e, const char *message, int fd, uint16_t mtu);
static int on_notify_retry(sd_event_source *s, uint64_t usec, void *userdata);
static void on_bytes(struct link *l, const uint8_t *data, size_t len);

/* Closes the socket too: the source owns it. */
static void release_notify(struct link *l)
{
        if (l->notify_src)
                sd_event_now(l->cfg.event, CLOCK_MONOTONIC, &l->notify_released_usec);
        l->notify_src = sd_event_source_disable_unref(l->notify_src);
        l->notify_retry = sd_event_source_disable_unref(l->notify_retry);
}

/* An AcquireNotify or AcquireWrite that failed: true when the link is gone and the session
 * failed with it. Otherwise the caller uses the D-Bus way instead; for a method not offered at
 * all (NotSupported, UnknownMethod) *unsupported remembers that, while a refusal because another
 * client holds the characteristic is asked again next session. */
static bool acquire_failed(struct link *l, enum bluez_error e, const char *message, enum link_stage stage,
        const char *method, bool *unsupported)
{
        if (e == BLUEZ_ERR_NOT_CONNECTED || e == BLUEZ_ERR_TIMEOUT || e == BLUEZ_ERR_DISCONNECTED ||
                e == BLUEZ_ERR_NO_OWNER || e == BLUEZ_ERR_ACCESS_DENIED) {
                fail(l, stage, e, "%s: %s", method, message ? message : bluez_error_to_string(e));
                return true;
        }
        if (e == BLUEZ_ERR_NOT_SUPPORTED || e == BLUEZ_ERR_UNKNOWN_OBJECT)
                *unsupported = true;
        return false;
}

/* Their callbacks will not run. */
static void cancel_calls(struct link *l)
{
        bluez_call_cancel(l->call);
        l->call = NULL;
        bluez_call_cancel(l->write_call);
        l->write_call = NULL;
}

/* Closing our end is how a client gives an acquired write back to BlueZ. */
static void release_write(struct link *l)
{
        if (l->write_fd >= 0)
                close(l->write_fd);
        l->write_fd = -1;
}

static void start_notify(struct link *l)
{
        int r = bluez_start_notify(l->cfg.bluez, l->notify_path, on_start_notify, l, &l->call);
        if (r < 0)
                fail(l, LINK_STAGE_NOTIFY, BLUEZ_ERR_DISCONNECTED, "StartNotify: %s", strerror(-r));
}

/* Notifications come from AcquireNotify's socket when BlueZ grants it: one packet each, none of
 * the D-Bus routing and parsing a PropertiesChanged(Value) signal costs. StartNotify remains for
 * a BlueZ without it, or a characteristic another client already subscribed to. */
static void subscribe(struct link *l)
{
        if (l->acquire_unsupported) {
                start_notify(l);
                return;
        }
        l->notify_retries = 0;
        int r = bluez_acquire_notify(l->cfg.bluez, l->notify_path, on_acquire_notify, l, &l->call);
        if (r < 0)
                fail(l, LINK_STAGE_NOTIFY, BLUEZ_ERR_DISCONNECTED, "AcquireNotify: %s", strerror(-r));
}

static int on_notify_fd(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct link *l = userdata;
        uint8_t buf[520]; /* one packet is at most the ATT MTU (517) */
        /* One packet per call: the source is level-triggered, so a packet still queued brings us
         * back at once, where a loop would end each wake with a read that finds nothing. */
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
                on_bytes(l, buf, (size_t)n); /* may end the session, releasing this source */
                return 0;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        /* Closed by BlueZ (the link dropped: Connected=false tells the rest) or refused. */
        if (n < 0)
                log_warning("%s: notification socket: %s", l->cfg.address, strerror(errno));
        release_notify(l);
        return 0;
}

static void on_acquire_write(void *userdata, enum bluez_error e, const char *message, int fd, uint16_t mtu);

/* Requests go through AcquireWrite's socket when BlueZ grants it: one packet each instead of a
 * WriteValue call, its reply and the wake that reply costs. */
static void acquire_write(struct link *l)
{
        /* A shunt only streams; the others use WriteValue. */
        if (is_shunt(l) || !l->write_socket_possible || l->acquire_write_unsupported)
                return;
        int r = bluez_acquire_write(l->cfg.bluez, l->write_path, on_acquire_write, l, &l->write_call);
        if (r < 0)
                log_debug("%s: AcquireWrite: %s; WriteValue instead", l->cfg.address, strerror(-r));
}

static void check_resolved(struct link *l)
{
        const struct bluez_device *d = device(l);
        if (l->phase != PHASE_RESOLVE || !d || !d->services_resolved)
                return;
        if (!chars_ready(l)) {
                /* ServicesResolved can come before the objects are exported (bluez#1489). */
                arm(l, CHARS_GRACE);
                return;
        }
        step(l, "services", true, "Renogy characteristics found");
        l->phase = PHASE_NOTIFY;
        disarm(l);
        subscribe(l);
        if (l->phase == PHASE_NOTIFY)
                acquire_write(l);
}

static void on_connect(void *userdata, enum bluez_error e, const char *message)
{
        struct link *l = userdata;
        l->call = NULL;
        if (e == BLUEZ_OK) {
                step(l, "connect", true, "connected (attempt %u)", l->report.connect_attempts);
                l->phase = PHASE_RESOLVE;
                arm(l, RESOLVE_TIMEOUT);
                check_resolved(l);
                return;
        }
        if (e == BLUEZ_ERR_TIMEOUT) {
                l->report.timeouts++;
                /* Cancel the pending LE connection: a Disconnect does. */
                fail(l, LINK_STAGE_CONNECT, e, "Connect got no answer in %llu s",
                        (unsigned long long)(CONNECT_TIMEOUT / USEC_PER_SEC));
                return;
        }
        /* BlueZ reports every LE connect failure as an abort; one that took seconds means nobody
         * answered (the kernel's connect attempt ran out), not a refusal. */
        bool silent = now_usec() - l->attempt_start >= SILENT_ABORT;
        if (silent && (e == BLUEZ_ERR_ABORT_BY_LOCAL || e == BLUEZ_ERR_CONNECTION)) {
                l->report.timeouts++;
                fail(l, LINK_STAGE_CONNECT, e, "Connect failed after %.1f s with nobody answering (%s)",
                        (double)(now_usec() - l->attempt_start) / 1e6,
                        message ? message : bluez_error_to_string(e));
                return;
        }
        if (e == BLUEZ_ERR_ABORT_BY_LOCAL || e == BLUEZ_ERR_CANCELED || e == BLUEZ_ERR_CONNECTION)
                l->report.aborts++;
        if (bluez_error_is_transient(e) && l->report.connect_attempts < MAX_CONNECT_ATTEMPTS) {
                step(l, "connect", false, "attempt %u: %s; retrying", l->report.connect_attempts,
                        message ? message : bluez_error_to_string(e));
                const struct bluez_device *d = device(l);
                if (d && d->connected) {
                        l->phase = PHASE_WAIT_NOT_CONNECTED;
                        arm(l, NOT_CONNECTED_WAIT);
                } else {
                        l->phase = PHASE_BACKOFF;
                        arm(l, 250 * USEC_PER_MSEC << (l->report.connect_attempts - 1));
                }
                return;
        }
        if (e == BLUEZ_ERR_UNKNOWN_OBJECT || e == BLUEZ_ERR_DOES_NOT_EXIST) {
                char m[160];
                snprintf(m, sizeof m, "the device object vanished: %s", message ? message : "");
                fail_after_grace(l, LINK_STAGE_FIND, e, m);
                return;
        }
        fail(l, e == BLUEZ_ERR_NOT_READY ? LINK_STAGE_ADAPTER : LINK_STAGE_CONNECT, e, "Connect: %s",
                message ? message : bluez_error_to_string(e));
}

static void setup_done(struct link *l);

static void on_acquire_notify(void *userdata, enum bluez_error e, const char *message, int fd, uint16_t mtu)
{
        struct link *l = userdata;
        l->call = NULL;
        if (e == BLUEZ_OK) {
                if (l->phase != PHASE_NOTIFY) {
                        close(fd);
                        return;
                }
                int r = sd_event_add_io(l->cfg.event, &l->notify_src, fd, EPOLLIN, on_notify_fd, l);
                if (r >= 0)
                        r = sd_event_source_set_io_fd_own(l->notify_src, true);
                if (r < 0) {
                        release_notify(l); /* a source that failed to take the socket */
                        close(fd);
                        fail(l, LINK_STAGE_NOTIFY, BLUEZ_ERR_FAILED, "AcquireNotify: %s", strerror(-r));
                        return;
                }
                step(l, "notify", true, "subscribed (notification socket, MTU %u)", mtu);
                setup_done(l);
                return;
        }
        /* Taken by another client's subscription (InProgress, NotPermitted): asked again next
         * session. */
        if (acquire_failed(l, e, message, LINK_STAGE_NOTIFY, "AcquireNotify", &l->acquire_unsupported))
                return;
        uint64_t now = 0;
        sd_event_now(l->cfg.event, CLOCK_MONOTONIC, &now);
        if ((e == BLUEZ_ERR_NOT_PERMITTED || e == BLUEZ_ERR_IN_PROGRESS) &&
                l->notify_retries < NOTIFY_RETRIES && l->notify_released_usec &&
                now - l->notify_released_usec < NOTIFY_RELEASE_GRACE) {
                /* Most likely our own socket of a moment ago, its hang-up not yet taken: asked
                 * again shortly, before settling for signals. */
                uint64_t delay = NOTIFY_RETRY_DELAY << l->notify_retries++;
                if (sd_event_add_time_relative(l->cfg.event, &l->notify_retry, CLOCK_MONOTONIC, delay, 1000,
                            on_notify_retry, l) >= 0)
                        return;
        }
        log_debug("%s: AcquireNotify: %s; StartNotify instead", l->cfg.address,
                message ? message : bluez_error_to_string(e));
        start_notify(l);
}

static int on_notify_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct link *l = userdata;
        l->notify_retry = sd_event_source_unref(l->notify_retry);
        if (l->phase != PHASE_NOTIFY)
                return 0;
        int r = bluez_acquire_notify(l->cfg.bluez, l->notify_path, on_acquire_notify, l, &l->call);
        if (r < 0)
                start_notify(l);
        return 0;
}

static void on_start_notify(void *userdata, enum bluez_error e, const char *message)
{
        struct link *l = userdata;
        l->call = NULL;
        if (e != BLUEZ_OK) {
                fail(l, LINK_STAGE_NOTIFY, e, "StartNotify: %s",
                        message ? message : bluez_error_to_string(e));
                return;
        }
        step(l, "notify", true, "subscribed");
        setup_done(l);
}

static void start_requests(struct link *l);

/* Once both the subscription and AcquireWrite have answered, the exchange can begin. */
static void setup_done(struct link *l)
{
        if (l->phase != PHASE_NOTIFY || l->call || l->write_call || l->notify_retry)
                return;
        l->report.connect_usec = now_usec() - l->connect_start;
        if (is_shunt(l)) {
                l->phase = PHASE_SHUNT_FRAME;
                shunt_stream_reset(&l->shunt);
                arm(l, SHUNT_FRAME_TIMEOUT);
                return;
        }
        start_requests(l);
}

static void on_acquire_write(void *userdata, enum bluez_error e, const char *message, int fd, uint16_t mtu)
{
        struct link *l = userdata;
        l->write_call = NULL;
        if (e == BLUEZ_OK) {
                if (l->phase != PHASE_NOTIFY) {
                        close(fd);
                        return;
                }
                l->write_fd = fd;
                step(l, "write", true, "write socket (MTU %u)", mtu);
                setup_done(l);
                return;
        }
        /* Held by another client on this host (NotPermitted): WriteValue then says so in its
         * own error. */
        if (acquire_failed(
                    l, e, message, LINK_STAGE_EXCHANGE, "AcquireWrite", &l->acquire_write_unsupported))
                return;
        step(l, "write", true, "WriteValue calls (AcquireWrite: %s)",
                message ? message : bluez_error_to_string(e));
        setup_done(l);
}

static void start_requests(struct link *l)
{
        l->phase = PHASE_REQUEST;
        l->cur_unit = 0;
        l->cur_block = 0;
        l->block_attempts = 0;
        l->optional_pass = false;
        send_next(l);
}

/* ---- request / response ---- */

static const struct renogy_block *cur_block(struct link *l)
{
        struct link_unit *u = &l->units[l->cur_unit];
        return &u->family->blocks[l->cur_block];
}

static void on_write(void *userdata, enum bluez_error e, const char *message)
{
        struct link *l = userdata;
        l->call = NULL;
        if (e != BLUEZ_OK && (l->phase == PHASE_REQUEST || l->phase == PHASE_PROBE))
                fail(l, LINK_STAGE_EXCHANGE, e, "WriteValue: %s",
                        message ? message : bluez_error_to_string(e));
}

static void send_request(
        struct link *l, uint8_t fn, uint8_t id, uint16_t reg, uint16_t arg, uint64_t timeout)
{
        uint8_t frame[MODBUS_REQUEST_LEN];
        l->req = (struct modbus_request){.id = id, .function = fn, .reg = reg};
        if (fn == MODBUS_FN_WRITE_SINGLE) {
                modbus_build_write(frame, id, reg, arg);
                l->req.value = arg;
        } else {
                modbus_build_read(frame, id, reg, arg);
                l->req.count = arg;
        }
        modbus_reasm_expect(&l->reasm, &l->req);
        arm(l, timeout);
        if (l->write_fd >= 0) {
                ssize_t n = send(l->write_fd, frame, sizeof frame, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n == (ssize_t)sizeof frame)
                        return;
                if (n < 0 && (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN)) {
                        /* BlueZ closed its end: the link dropped (Connected=false follows). */
                        release_write(l);
                        fail(l, LINK_STAGE_EXCHANGE, BLUEZ_ERR_DISCONNECTED, "write socket closed by BlueZ");
                        return;
                }
                /* Full or refused: WriteValue for the rest of this session. */
                log_warning("%s: write socket: %s; WriteValue instead", l->cfg.address,
                        n < 0 ? strerror(errno) : "short write");
                release_write(l);
        }
        int r = bluez_write_command(l->cfg.bluez, l->write_path, frame, sizeof frame, on_write, l, &l->call);
        if (r < 0)
                fail(l, LINK_STAGE_EXCHANGE, BLUEZ_ERR_DISCONNECTED, "WriteValue: %s", strerror(-r));
}

/* Whether this pass asks the block: the live ones first, then the optional ones of a unit that
 * answered; none the model lacks (an exception 01/02) or left unanswered lately. */
static bool block_wanted(const struct link *l, const struct link_unit *u, size_t i)
{
        uint32_t bit = 1u << i;
        if ((u->unsupported | u->skip) & bit)
                return false;
        if (u->family->blocks[i].optional != l->optional_pass)
                return false;
        return !l->optional_pass || (u->blocks_ok > 0 && u->status != -ETIMEDOUT);
}

static void unit_done(struct link *l)
{
        l->cur_unit++;
        l->cur_block = 0;
        l->block_attempts = 0;
}

/* Next block of the current unit, or the next unit; the session ends after the last. */
static void send_next(struct link *l)
{
        if (l->write_mode) {
                if (l->cur_unit > 0) {
                        l->report.reached = LINK_STAGE_DONE;
                        start_disconnect(l);
                        return;
                }
                if (l->write_acked)
                        send_request(l, MODBUS_FN_READ_HOLDING, l->units[0].modbus_id, l->readback_reg, 1,
                                l->cfg.request_timeout_usec);
                else
                        send_request(l, MODBUS_FN_WRITE_SINGLE, l->units[0].modbus_id, l->write_reg,
                                l->write_value, l->cfg.request_timeout_usec);
                return;
        }
        if (l->survey) {
                if (l->cur_unit >= l->n_units) {
                        l->report.reached = LINK_STAGE_DONE;
                        start_disconnect(l);
                        return;
                }
                send_request(l, MODBUS_FN_READ_HOLDING, l->units[l->cur_unit].modbus_id, l->survey_reg,
                        l->survey_count, PROBE_TIMEOUT);
                return;
        }
        /* Two passes: every unit's live blocks, then the optional ones of the units that
         * answered. A reply names no register, so a silence ends the session; in the second pass
         * it can cost only identity, never another unit's data. */
        for (;;) {
                while (l->cur_unit < l->n_units) {
                        struct link_unit *u = &l->units[l->cur_unit];
                        while (l->cur_block < u->family->n_blocks && !block_wanted(l, u, l->cur_block))
                                l->cur_block++;
                        if (l->cur_block < u->family->n_blocks)
                                break;
                        if (!l->optional_pass && u->blocks_ok == 0 && u->status == 0)
                                u->status = u->exceptions ? -EREMOTEIO : -ENODATA;
                        unit_done(l);
                }
                if (l->cur_unit < l->n_units)
                        break;
                if (l->optional_pass) {
                        l->report.reached = LINK_STAGE_DONE;
                        start_disconnect(l);
                        return;
                }
                l->optional_pass = true;
                l->cur_unit = 0;
                l->cur_block = 0;
                l->block_attempts = 0;
        }
        const struct renogy_block *b = cur_block(l);
        send_request(l, MODBUS_FN_READ_HOLDING, l->units[l->cur_unit].modbus_id, b->reg, b->count,
                l->cfg.request_timeout_usec);
}

/* Ids Renogy devices answer to (RENOGY_BLE.md §2.1), 0xFF last: it matches any reply. */
static const uint8_t probe_ids[] = {
        0x10, 0x11, 0x60, 0x61, 0x30, 0x31, 0x32, 0x21, 0x22, 0x23, 0x20, 0x01, 0xFF};

static uint16_t address_register(const struct renogy_family *f)
{
        const struct renogy_field *fd = renogy_field_find(f, "device_address");
        return fd ? fd->addr : 0x001A;
}

/* Whether a unit of this session answers to id: such an id is no finding for another unit. */
static bool id_of_a_unit(const struct link *l, uint8_t id)
{
        for (size_t i = 0; i < l->n_units; i++)
                if (l->units[i].modbus_id == id)
                        return true;
        return false;
}

static void probe_next(struct link *l)
{
        struct link_unit *u = &l->units[l->cur_unit];
        while (l->probe_idx < ELEMENTSOF(probe_ids) && id_of_a_unit(l, probe_ids[l->probe_idx]))
                l->probe_idx++;
        if (l->probe_idx >= ELEMENTSOF(probe_ids)) {
                step(l, "probe", false, "no Modbus id answered (tried %s)", u->probed);
                unit_done(l);
                /* After silence, late replies could be taken for the next request: end here. */
                for (size_t i = l->cur_unit; i < l->n_units; i++)
                        l->units[i].status = -ECANCELED;
                l->report.reached = LINK_STAGE_DONE;
                start_disconnect(l);
                return;
        }
        uint8_t id = probe_ids[l->probe_idx++];
        size_t n = strlen(u->probed);
        snprintf(u->probed + n, sizeof u->probed - n, "%s%u", n ? "," : "", id);
        l->phase = PHASE_PROBE;
        send_request(l, MODBUS_FN_READ_HOLDING, id, address_register(u->family), 1, PROBE_TIMEOUT);
}

/* Whether every unit after the current one answers to an id of its own: 0xFF takes any reply. */
static bool later_units_tell_replies_apart(const struct link *l)
{
        uint8_t id = l->units[l->cur_unit].modbus_id;
        if (l->cur_unit + 1 >= l->n_units || id == MODBUS_BROADCAST_ID)
                return false;
        for (size_t i = l->cur_unit + 1; i < l->n_units; i++)
                if (l->units[i].modbus_id == id || l->units[i].modbus_id == MODBUS_BROADCAST_ID)
                        return false;
        return true;
}

static void on_timeout_in_exchange(struct link *l)
{
        struct link_unit *u = &l->units[l->cur_unit];
        if (l->survey) {
                /* Silence is an answer here: nobody at this id. A late reply cannot be taken
                 * for the next request, which goes to another id: the reply names its id. */
                u->status = -ETIMEDOUT;
                step(l, "probe", false, "no reply from id %u", u->modbus_id);
                unit_done(l);
                send_next(l);
                return;
        }
        const struct renogy_block *b = cur_block(l);
        if (l->optional_pass && l->reasm.len == 0) {
                /* Identity this firmware does not give: the live data of every unit is read. */
                u->optional_unanswered |= 1u << l->cur_block;
                step(l, "block", true, "id %u 0x%04X x%u: no reply (not reported by this model)",
                        u->modbus_id, b->reg, b->count);
                l->report.reached = LINK_STAGE_DONE;
                start_disconnect(l);
                return;
        }
        if (l->reasm.len > 0) {
                u->bad_frames++; /* a reply began but never completed: truncated */
        }
        l->report.timeouts++;
        if (u->blocks_ok == 0) {
                u->status = -ETIMEDOUT;
                step(l, "reply", false, "no reply from id %u to 0x%04X x%u", u->modbus_id, b->reg, b->count);
                if (l->cfg.probe_ids && !l->write_mode) {
                        l->probe_idx = 0;
                        probe_next(l);
                        return;
                }
        } else {
                step(l, "reply", false, "id %u stopped answering at 0x%04X x%u", u->modbus_id, b->reg,
                        b->count);
                u->status = -ETIMEDOUT;
                u->live_unanswered |= 1u << l->cur_block;
        }
        if (later_units_tell_replies_apart(l)) {
                /* The units after this one answer to other ids, and a reply names its id: a late
                 * reply from this one cannot be taken for theirs. One silent pack behind a hub
                 * (switched off, or a block its firmware ignores) must not cost the packs after
                 * it their data at every poll. */
                unit_done(l);
                send_next(l);
                return;
        }
        /* A reply carries no register address: after a timeout the session is dropped so a late
         * reply can never be taken for the next request (RENOGY_BLE.md §1.6). */
        for (size_t i = l->cur_unit + 1; i < l->n_units; i++)
                l->units[i].status = -ECANCELED;
        l->report.reached = LINK_STAGE_DONE;
        start_disconnect(l);
}

static void on_frame(struct link *l)
{
        struct link_unit *u = &l->units[l->cur_unit];
        struct modbus_reply rep;
        int r = modbus_parse_reply(l->reasm.buf, l->reasm.len, &l->req, &rep);
        disarm(l);
        if (l->phase == PHASE_PROBE) {
                if (r == 0 || r == -EREMOTEIO) {
                        /* The id that answered is the one to configure (a module at 0xFF may
                         * still report another address in its register). */
                        u->probe_id = probe_ids[l->probe_idx - 1];
                        step(l, "probe", true, "Modbus id %d answered", u->probe_id);
                        for (size_t i = l->cur_unit + 1; i < l->n_units; i++)
                                l->units[i].status = -ECANCELED;
                        l->report.reached = LINK_STAGE_DONE;
                        start_disconnect(l);
                        return;
                }
                probe_next(l);
                return;
        }
        if (l->survey) {
                if (r == 0) {
                        renogy_image_add_words(&u->image, l->survey_reg, rep.data, rep.count);
                        u->blocks_ok = 1;
                } else if (r == -EREMOTEIO)
                        u->exceptions++; /* someone is there, without that register */
                else
                        u->bad_frames++;
                step(l, "probe", r == 0 || r == -EREMOTEIO, "id %u: %s", u->modbus_id,
                        r == 0 ? "answered" : modbus_strerror(r));
                unit_done(l);
                send_next(l);
                return;
        }
        if (l->write_mode && !l->write_acked) {
                if (r == 0) {
                        step(l, "write", true, "0x%04X = %u acknowledged", l->write_reg, l->write_value);
                        l->write_acked = true;
                        send_next(l); /* the read back */
                        return;
                }
                l->report.reached = LINK_STAGE_EXCHANGE;
                l->report.error = BLUEZ_ERR_FAILED;
                if (r == -EBADE && l->reasm.len >= 6)
                        snprintf(l->report.message, sizeof l->report.message,
                                "the acknowledgement echoed 0x%04X = %u, not 0x%04X = %u",
                                (unsigned)(l->reasm.buf[2] << 8 | l->reasm.buf[3]),
                                (unsigned)(l->reasm.buf[4] << 8 | l->reasm.buf[5]), l->write_reg,
                                l->write_value);
                else
                        snprintf(l->report.message, sizeof l->report.message, "write refused: %s%s%s",
                                modbus_strerror(r), r == -EREMOTEIO ? " " : "",
                                r == -EREMOTEIO ? modbus_exception_name(rep.exception) : "");
                step(l, "write", false, "%s", l->report.message);
                u->status = r;
                start_disconnect(l);
                return;
        }
        if (l->write_mode) {
                if (r == 0) {
                        renogy_image_add_words(&u->image, l->readback_reg, rep.data, rep.count);
                        l->units[0].blocks_ok = 1;
                        l->report.reached = LINK_STAGE_DONE;
                        step(l, "read back", true, "0x%04X = %u", l->readback_reg,
                                (unsigned)(rep.data[0] << 8 | rep.data[1]));
                } else {
                        l->report.reached = LINK_STAGE_EXCHANGE;
                        l->report.error = BLUEZ_ERR_FAILED;
                        snprintf(l->report.message, sizeof l->report.message,
                                "written, but the read back failed: %s", modbus_strerror(r));
                        step(l, "read back", false, "%s", l->report.message);
                        u->status = r;
                }
                start_disconnect(l);
                return;
        }
        const struct renogy_block *b = cur_block(l);
        if (r == 0) {
                renogy_image_add_words(&u->image, b->reg, rep.data, rep.count);
                u->blocks_ok++;
                if (b->optional)
                        u->optional_ok |= 1u << l->cur_block;
                step(l, "block", true, "id %u 0x%04X x%u", u->modbus_id, b->reg, b->count);
        } else if (r == -EREMOTEIO) {
                u->exceptions++;
                if (rep.exception == 1 || rep.exception == 2) {
                        /* This model lacks the block: skip it from now on, not a failure. */
                        u->unsupported |= 1u << l->cur_block;
                }
                step(l, "block", rep.exception == 1 || rep.exception == 2,
                        "id %u 0x%04X x%u: exception %u (%s)", u->modbus_id, b->reg, b->count, rep.exception,
                        modbus_exception_name(rep.exception));
        } else {
                u->bad_frames++;
                step(l, "block", false, "id %u 0x%04X x%u: %s", u->modbus_id, b->reg, b->count,
                        modbus_strerror(r));
                if (++l->block_attempts < 2) {
                        send_next(l); /* the same block once more */
                        return;
                }
                if (u->status == 0)
                        u->status = -EBADMSG;
        }
        l->cur_block++;
        l->block_attempts = 0;
        send_next(l);
}

void link_on_notification(struct link *l, const char *char_path, const uint8_t *data, size_t len)
{
        if (!l->notify_path || !streq(char_path, l->notify_path))
                return;
        on_bytes(l, data, len);
}

static void on_bytes(struct link *l, const uint8_t *data, size_t len)
{
        if (l->phase == PHASE_SHUNT_FRAME) {
                uint8_t frame[SHUNT_LIVE_FRAME_LEN];
                size_t flen;
                if (shunt_stream_feed(&l->shunt, data, len, frame, &flen) <= 0)
                        return;
                struct link_unit *u = &l->units[0];
                struct renogy_readings rd;
                int r = shunt_decode_frame(frame, flen, &rd);
                if (r < 0) {
                        u->bad_frames++;
                        return; /* wait for the next frame */
                }
                renogy_image_init(&u->image);
                renogy_image_add_bytes(&u->image, 0, frame, flen);
                u->blocks_ok = 1;
                step(l, "frame", true, "live frame, %zu bytes", flen);
                disarm(l);
                l->report.reached = LINK_STAGE_DONE;
                start_disconnect(l);
                return;
        }
        if (l->phase != PHASE_REQUEST && l->phase != PHASE_PROBE)
                return;
        int r = modbus_reasm_feed(&l->reasm, data, len);
        if (r == 1)
                on_frame(l);
        else if (r < 0) {
                /* Complete frame with a bad CRC: a weak link or interference. */
                struct link_unit *u = &l->units[l->cur_unit];
                u->bad_frames++;
                disarm(l);
                if (l->phase == PHASE_PROBE) {
                        probe_next(l);
                        return;
                }
                step(l, "block", false, "bad CRC from id %u", u->modbus_id);
                if (++l->block_attempts < 2) {
                        send_next(l);
                        return;
                }
                if (u->status == 0)
                        u->status = -EBADMSG;
                l->cur_block++;
                l->block_attempts = 0;
                send_next(l);
        }
}

/* ---- disconnect ---- */

static void on_disconnect(void *userdata, enum bluez_error e, const char *message)
{
        struct link *l = userdata;
        l->call = NULL;
        if (l->phase != PHASE_DISCONNECT)
                return;
        finish(l);
}

static void start_disconnect(struct link *l)
{
        cancel_calls(l);
        disarm(l);
        const struct bluez_adapter *a = bluez_adapter_find(l->cfg.bluez, l->cfg.adapter);
        if (l->discovering && a) {
                bluez_stop_discovery(l->cfg.bluez, a->path, NULL, NULL);
                l->discovering = false;
        }
        const struct bluez_device *d = device(l);
        bool keep = l->cfg.keep_connected && l->report.reached == LINK_STAGE_DONE;
        /* Disconnect also cancels a pending LE connection (a Connect that timed out). */
        bool need = l->device_path && d && (d->connected || l->phase == PHASE_CONNECT || l->report.timeouts);
        l->kept = keep && need && l->connected_by_us;
        if (keep || !need || !l->connected_by_us) {
                finish(l);
                return;
        }
        l->phase = PHASE_DISCONNECT;
        arm(l, DISCONNECT_WAIT);
        /* Our sockets go first: closing them gives them back to BlueZ, where the link's end
         * would hang them up and wake us once more. */
        release_notify(l);
        release_write(l);
        /* The reply or Connected=false ends the session, whichever comes first. bluetoothd 5.66
         * answers before it signals Connected=false, signals it even when it never signalled
         * Connected=true, and a Connect still pending has none to come: the reply, which also
         * marks the device disconnected, is the end that always comes. */
        if (bluez_disconnect(l->cfg.bluez, l->device_path, on_disconnect, l, &l->call) < 0)
                finish(l);
}

static void finish(struct link *l)
{
        if (l->budget_timer)
                sd_event_source_set_enabled(l->budget_timer, SD_EVENT_OFF);
        release_notify(l);
        release_write(l);
        disarm(l);
        cancel_calls(l);
        l->phase = PHASE_IDLE;
        l->report.duration_usec = now_usec() - l->report.started_usec;
        if (l->cfg.done)
                l->cfg.done(l, l->cfg.userdata);
}

/* ---- timers and events ---- */

/* The session cannot go on because the link or the device went away under it. bluetoothd
 * stopping does exactly that to every session before it powers the adapter off and leaves the
 * bus, so the verdict waits out the grace: by then BlueZ or the adapter is seen gone if it went
 * with it, and the diagnosis says so instead of blaming the radio. */
static void fail_after_grace(struct link *l, enum link_stage stage, enum bluez_error e, const char *message)
{
        l->lost_stage = stage;
        l->lost_error = e;
        snprintf(l->lost_message, sizeof l->lost_message, "%s", message);
        cancel_calls(l);
        release_notify(l);
        release_write(l);
        l->phase = PHASE_LINK_LOST;
        arm(l, LINK_LOST_GRACE);
}

static void link_lost(struct link *l, enum link_stage stage)
{
        l->report.link_dropped = true;
        fail_after_grace(l, stage, BLUEZ_ERR_NOT_CONNECTED,
                stage == LINK_STAGE_SERVICES ? "the link dropped"
                                             : "the link dropped in the middle of the exchange");
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct link *l = userdata;
        switch (l->phase) {
        case PHASE_DISCOVER:
                /* BlueZ may still know it, but a Connect to a module that does not advertise
                 * hangs on a real controller: not tried. */
                fail(l, LINK_STAGE_FIND, device(l) ? BLUEZ_ERR_TIMEOUT : BLUEZ_ERR_DOES_NOT_EXIST,
                        "%s not seen advertising in %llu s", l->cfg.address,
                        (unsigned long long)(l->cfg.find_timeout_usec / USEC_PER_SEC));
                break;
        case PHASE_WAIT_NOT_CONNECTED:
        case PHASE_BACKOFF:
                start_connect(l);
                break;
        case PHASE_RESOLVE: {
                const struct bluez_device *d = device(l);
                fail(l, LINK_STAGE_SERVICES, BLUEZ_ERR_TIMEOUT,
                        d && d->services_resolved
                                ? "services resolved but the Renogy characteristics are missing"
                                : "services not resolved in time");
                break;
        }
        case PHASE_SHUNT_FRAME:
                fail(l, LINK_STAGE_EXCHANGE, BLUEZ_ERR_TIMEOUT, "no live frame from the shunt in %llu s",
                        (unsigned long long)(SHUNT_FRAME_TIMEOUT / USEC_PER_SEC));
                break;
        case PHASE_REQUEST:
                on_timeout_in_exchange(l);
                break;
        case PHASE_PROBE:
                probe_next(l);
                break;
        case PHASE_LINK_LOST:
                fail(l, l->lost_stage, l->lost_error, "%s", l->lost_message);
                break;
        case PHASE_DISCONNECT:
                finish(l);
                break;
        default:
                break;
        }
        return 0;
}

static enum link_stage phase_stage(enum phase p)
{
        switch (p) {
        case PHASE_DISCOVER:
        case PHASE_STOP_DISCOVERY:
                return LINK_STAGE_FIND;
        case PHASE_CONNECT:
        case PHASE_WAIT_NOT_CONNECTED:
        case PHASE_BACKOFF:
                return LINK_STAGE_CONNECT;
        case PHASE_RESOLVE:
                return LINK_STAGE_SERVICES;
        case PHASE_NOTIFY:
                return LINK_STAGE_NOTIFY;
        default:
                return LINK_STAGE_EXCHANGE;
        }
}

/* The session's time is up: other modules are due on this adapter. */
static int on_budget(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct link *l = userdata;
        if (l->phase == PHASE_IDLE || l->phase == PHASE_DISCONNECT || l->phase == PHASE_LINK_LOST)
                return 0;
        if (l->phase == PHASE_CONNECT)
                l->report.timeouts++; /* the Disconnect cancels the pending connection */
        fail(l, phase_stage(l->phase), BLUEZ_ERR_TIMEOUT,
                "gave the adapter back after %.1f s, with modules that answer due",
                (double)(now_usec() - l->report.started_usec) / 1e6);
        return 0;
}

void link_on_device(struct link *l, const struct bluez_device *d, unsigned what)
{
        if (strcasecmp(d->address, l->cfg.address) != 0)
                return;
        if (what & BLUEZ_DEV_ADVERTISED)
                note_rssi(l, d);
        switch (l->phase) {
        case PHASE_DISCOVER:
                if (what & (BLUEZ_DEV_ADVERTISED | BLUEZ_DEV_ADDED) && d->has_rssi)
                        found(l, d);
                break;
        case PHASE_WAIT_NOT_CONNECTED:
                if (!d->connected) {
                        l->phase = PHASE_BACKOFF;
                        arm(l, 250 * USEC_PER_MSEC << (l->report.connect_attempts - 1));
                }
                break;
        case PHASE_RESOLVE:
                if (what & BLUEZ_DEV_REMOVED || ((what & BLUEZ_DEV_CONNECTED) && !d->connected))
                        link_lost(l, LINK_STAGE_SERVICES);
                else
                        check_resolved(l);
                break;
        case PHASE_NOTIFY:
        case PHASE_REQUEST:
        case PHASE_PROBE:
        case PHASE_SHUNT_FRAME:
                if (what & BLUEZ_DEV_REMOVED || ((what & BLUEZ_DEV_CONNECTED) && !d->connected)) {
                        for (size_t i = 0; i < l->n_units; i++)
                                if (i >= l->cur_unit && l->units[i].status == 0 && !l->units[i].blocks_ok)
                                        l->units[i].status = -ECANCELED;
                        link_lost(l, l->phase == PHASE_NOTIFY ? LINK_STAGE_NOTIFY : LINK_STAGE_EXCHANGE);
                }
                break;
        case PHASE_DISCONNECT:
                if (!d->connected || (what & BLUEZ_DEV_REMOVED))
                        finish(l);
                break;
        default:
                break;
        }
}

void link_on_adapter_gone(struct link *l)
{
        l->kept = false;
        if (l->phase == PHASE_IDLE)
                return;
        if (l->phase == PHASE_LINK_LOST) {
                /* The drop came with it. bluetoothd stopping powers its adapters off before it
                 * leaves the bus: the grace's end judges, by what the system shows then. */
                l->connected_by_us = false;
                return;
        }
        cancel_calls(l);
        l->report.reached = LINK_STAGE_ADAPTER;
        l->report.error = BLUEZ_ERR_NOT_READY;
        snprintf(l->report.message, sizeof l->report.message, "the adapter went away");
        l->connected_by_us = false;
        finish(l);
}

/* ---- public ---- */

int link_new(struct link **ret, const struct link_config *cfg)
{
        struct link *l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        l->cfg = *cfg;
        l->write_fd = -1;
        if (!l->cfg.fresh_adv_usec)
                l->cfg.fresh_adv_usec = 60 * USEC_PER_SEC;
        if (!l->cfg.find_timeout_usec)
                l->cfg.find_timeout_usec = 10 * USEC_PER_SEC;
        if (!l->cfg.request_timeout_usec)
                l->cfg.request_timeout_usec = 3 * USEC_PER_SEC;
        *ret = l;
        return 0;
}

struct link *link_free(struct link *l)
{
        if (!l)
                return NULL;
        /* A module removed while its link is up, or kept up: handed back without waiting, and
         * without the session's end being reported for a module that is going away. */
        if ((l->kept || (l->phase != PHASE_IDLE && l->connected_by_us)) && l->device_path && l->cfg.bluez)
                bluez_disconnect(l->cfg.bluez, l->device_path, NULL, NULL, NULL);
        cancel_calls(l);
        release_notify(l);
        release_write(l);
        sd_event_source_unref(l->timer);
        sd_event_source_unref(l->budget_timer);
        free(l->device_path);
        free(l->notify_path);
        free(l->write_path);
        free(l);
        return NULL;
}

static int begin(struct link *l)
{
        if (l->phase != PHASE_IDLE)
                return -EBUSY;
        l->report = (struct link_report){.started_usec = now_usec()};
        l->phase_start = l->report.started_usec;
        l->connect_start = 0;
        l->connected_by_us = false;
        set_str(&l->device_path, NULL);
        set_str(&l->notify_path, NULL);
        set_str(&l->write_path, NULL);
        l->write_socket_possible = false;
        if (!bluez_service_up(l->cfg.bluez)) {
                l->report.reached = LINK_STAGE_ADAPTER;
                l->report.error = BLUEZ_ERR_NO_OWNER;
                snprintf(l->report.message, sizeof l->report.message, "BlueZ is not available");
                finish(l);
                return 0;
        }
        const struct bluez_adapter *a = bluez_adapter_find(l->cfg.bluez, l->cfg.adapter);
        if (!a || !a->powered) {
                l->report.reached = LINK_STAGE_ADAPTER;
                l->report.error = a ? BLUEZ_ERR_NOT_READY : BLUEZ_ERR_DOES_NOT_EXIST;
                snprintf(l->report.message, sizeof l->report.message, "adapter %s %s", l->cfg.adapter,
                        a ? "is powered off" : "does not exist");
                step(l, "adapter", false, "%s", l->report.message);
                finish(l);
                return 0;
        }
        step(l, "adapter", true, "%s powered", l->cfg.adapter);
        if (l->plan_budget) {
                if (!l->budget_timer)
                        sd_event_add_time_relative(l->cfg.event, &l->budget_timer, CLOCK_MONOTONIC,
                                l->plan_budget, 1, on_budget, l);
                else
                        sd_event_source_set_time_relative(l->budget_timer, l->plan_budget);
                if (l->budget_timer)
                        sd_event_source_set_enabled(l->budget_timer, SD_EVENT_ONESHOT);
        }
        start_find(l);
        return 0;
}

/* Copies the units of the next session in, with their results cleared. */
static int take_units(struct link *l, const struct link_unit *units, size_t n_units)
{
        if (n_units == 0 || n_units > LINK_MAX_UNITS)
                return -EINVAL;
        if (l->phase != PHASE_IDLE)
                return -EBUSY;
        l->n_units = n_units;
        for (size_t i = 0; i < n_units; i++) {
                l->units[i] = units[i];
                l->units[i].status = 0;
                l->units[i].blocks_ok = l->units[i].exceptions = l->units[i].bad_frames = 0;
                l->units[i].probe_id = -1;
                l->units[i].probed[0] = 0;
                renogy_image_init(&l->units[i].image);
        }
        return 0;
}

int link_start(struct link *l, const struct link_unit *units, size_t n_units)
{
        int r = take_units(l, units, n_units);
        if (r < 0)
                return r;
        l->write_mode = false;
        l->survey = false;
        return begin(l);
}

int link_start_write(
        struct link *l, const struct link_unit *unit, uint16_t reg, uint16_t value, uint16_t readback_reg)
{
        if (l->phase != PHASE_IDLE)
                return -EBUSY;
        l->write_mode = true;
        l->write_acked = false;
        l->readback_reg = readback_reg;
        l->survey = false;
        l->write_reg = reg;
        l->write_value = value;
        l->n_units = 1;
        l->units[0] = *unit;
        l->units[0].status = 0;
        l->units[0].blocks_ok = 0;
        l->units[0].probe_id = -1;
        renogy_image_init(&l->units[0].image);
        return begin(l);
}

void link_set_session(struct link *l, struct bluez *b, bool probe,
        void (*step_cb)(void *userdata, const struct link_step *s), void *userdata)
{
        l->cfg.bluez = b;
        l->cfg.probe_ids = probe;
        l->cfg.step = step_cb;
        l->step_userdata = userdata;
}

int link_start_survey(
        struct link *l, const struct link_unit *units, size_t n_units, uint16_t reg, uint16_t count)
{
        int r = take_units(l, units, n_units);
        if (r < 0)
                return r;
        l->write_mode = false;
        l->survey = true;
        l->survey_reg = reg;
        l->survey_count = count;
        return begin(l);
}

void link_set_plan(struct link *l, bool present, uint64_t budget_usec)
{
        l->plan_present = present;
        l->plan_budget = budget_usec;
}

bool link_busy(const struct link *l)
{
        return l->phase != PHASE_IDLE;
}

const struct link_report *link_report(const struct link *l)
{
        return &l->report;
}

struct link_unit *link_units(struct link *l, size_t *n)
{
        *n = l->n_units;
        return l->units;
}

const char *link_address(const struct link *l)
{
        return l->cfg.address;
}

void link_abort(struct link *l)
{
        if (l->phase == PHASE_IDLE && l->kept) {
                /* A link keep_connected left up between sessions: handed back, no reply needed. */
                l->kept = false;
                if (l->device_path)
                        bluez_disconnect(l->cfg.bluez, l->device_path, NULL, NULL, NULL);
                return;
        }
        if (l->phase == PHASE_IDLE || l->phase == PHASE_DISCONNECT)
                return;
        snprintf(l->report.message, sizeof l->report.message, "aborted");
        l->report.error = BLUEZ_ERR_FAILED;
        start_disconnect(l);
}
