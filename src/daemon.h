/* SPDX-License-Identifier: MIT */
#pragma once

/* The daemon's domain objects: configured devices, the modules (BLE links) that carry them,
 * and the poller that schedules sessions, one at a time per adapter. */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "bluez.h"
#include "diagnosis.h"
#include "link.h"
#include "options.h"
#include "renogy/family.h"
#include "strmap.h"

enum device_state {
        DEVICE_STARTING,
        DEVICE_ONLINE,
        DEVICE_STALE,
        DEVICE_CONNECTING,
        DEVICE_ASLEEP,
        DEVICE_BUSY,
        DEVICE_UNREACHABLE,
        DEVICE_ERROR,
        _DEVICE_STATE_MAX,
};

const char *device_state_to_string(enum device_state s);

struct module;
struct store;
struct api;

struct device {
        struct device_config cfg;
        struct module *module;
        enum device_state state;
        enum diagnosis_code diag;
        char diag_detail[192];
        struct renogy_readings readings;
        bool have_readings;
        int64_t readings_at; /* realtime µs the readings were taken */
        int64_t last_poll;   /* realtime µs of the last successful poll, 0 = never */
        int64_t last_attempt;
        int64_t first_failure; /* realtime µs the current run of failures began */
        unsigned failures;     /* consecutive failed polls */
        uint32_t poll_ms;
        char last_error[192];
        uint32_t unsupported; /* blocks that answered exception 01/02 */
        char model[48];
        char serial[48];
        char firmware[48];
        uint64_t polls_ok, polls_failed, bad_frames;
        uint64_t errors[_DIAG_MAX];
        double poll_seconds_sum;
};

enum session_kind {
        SESSION_POLL,
        SESSION_WRITE,
        SESSION_VERIFY,
};

struct agenda_entry {
        uint64_t key; /* 0: asked for now (verify, write, poll now); else next_due */
        struct module *module;
};

/* One BLE module (address) and the devices behind it. */
struct module {
        struct daemon *daemon;
        char address[18];
        char name[64]; /* advertised name, once seen */
        struct device *devices[LINK_MAX_UNITS];
        size_t n_devices;
        struct link *link;
        uint64_t next_due; /* monotonic µs */
        size_t agenda_pos; /* 1 + its place in the daemon's agenda, 0 = not in it */
        bool poll_now;
        int64_t last_seen;           /* realtime µs of the last advertisement */
        int64_t stopped_advertising; /* realtime µs the RSSI went away */
        int16_t rssi;
        bool has_rssi;
        /* what the current session is for */
        bool write_pending;
        uint16_t write_reg, write_value;
        struct device *write_device;
        struct verify_job *verify;
        enum session_kind session_kind;
        struct device *session_device;
};

struct daemon {
        sd_event *event;
        struct options opts;
        char *options_path;
        char *data_dir;
        char *web_dir;
        const char *bind_address;
        struct bluez *bluez;
        int bus_error; /* errno of the last failed bus open, 0 when connected */
        enum bluez_error sync_error;
        bool sync_pending; /* GetManagedObjects not answered yet: no verdict on BlueZ */
        char sync_message[192];
        struct device **devices;
        size_t n_devices;
        struct module **modules;
        size_t n_modules;
        struct strmap module_by_address; /* looked up on every Device1 signal */
        /* The module whose session runs, NULL between sessions: one at a time per adapter. */
        struct module *active;
        /* Modules with devices, as a binary heap by when they are due (poller.c): picking the
         * next reads this array only, not every module. */
        struct agenda_entry *agenda;
        size_t n_agenda, agenda_cap;
        struct store *store;
        struct api *api;
        sd_event_source *sched_timer;
        sd_event_source *retry_timer;
        sd_event_source *scan_timer;
        sd_event_source *shutdown_timer;
        uint64_t shutdown_deadline;
        uint64_t scan_until;   /* monotonic µs: no sessions start while an API scan runs */
        unsigned scan_pending; /* seconds of a scan asked for during a session; starts after it */
        bool scan_started_by_us;
        bool shutting_down;
        int64_t started;
        uint64_t sessions, sessions_failed;
        /* Told the result of a register write (load switch). */
        void (*write_done)(struct daemon *d, struct device *dev, int result, const char *message);
        void *api_userdata;
};

int daemon_new(struct daemon **ret, sd_event *event, const struct options *opts);
struct daemon *daemon_free(struct daemon *d);
int daemon_start(struct daemon *d);
/* Finishes every session and disconnects every module; calls done when all links are idle. */
void daemon_shutdown(struct daemon *d, void (*done)(struct daemon *d));

struct device *daemon_device_find(struct daemon *d, const char *id);
int daemon_device_add(
        struct daemon *d, const struct device_config *cfg, bool persist, char *err, size_t err_size);
int daemon_device_remove(struct daemon *d, struct device *dev);
int daemon_poll_now(struct daemon *d, struct device *dev);
int daemon_write_register(struct daemon *d, struct device *dev, uint16_t reg, uint16_t value);
int daemon_scan(struct daemon *d, unsigned seconds);
bool daemon_scanning(const struct daemon *d);
int daemon_power_adapter(struct daemon *d);

/* System-wide diagnosis (bus, BlueZ, adapter), DIAG_NONE when the chain up to the adapter works. */
enum diagnosis_code daemon_system_diagnosis(const struct daemon *d, char *detail, size_t size);

int64_t now_realtime(void);
uint64_t now_monotonic(void);
