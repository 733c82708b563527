/* SPDX-License-Identifier: MIT */
#pragma once

/* The daemon's domain objects: configured devices, the modules (BLE links) that carry them,
 * the radios (adapters) that reach the modules, and the poller that schedules sessions: one at
 * a time per radio, radios in parallel. */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "bluez.h"
#include "diagnosis.h"
#include "energy.h"
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
struct bank;
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
        int64_t readings_at;        /* realtime µs the readings were taken */
        struct energy_meter energy; /* device-energy.h: kWh in and out, live */
        double energy_shown[2];     /* the same as of the last commit: what the API shows */
        int64_t last_poll;          /* realtime µs of the last successful poll, 0 = never */
        int64_t last_attempt;
        int64_t first_failure; /* realtime µs the current run of failures began */
        unsigned failures;     /* consecutive failed polls */
        uint32_t poll_ms;
        char last_error[192];
        uint32_t unsupported; /* blocks that answered exception 01/02 */
        /* Optional (identity) blocks that got no reply: not asked again before the retry time,
         * and shown as not reported by this model. */
        uint32_t optional_unanswered;
        int64_t optional_retry_at; /* realtime µs */
        /* Optional blocks that answered are asked again when this time has come (0: at the next
         * session). */
        int64_t optional_due_at; /* realtime µs */
        /* Live blocks that went unanswered while the model was unknown: set aside until the
         * model, read in the optional pass they would cut short, chooses the plan (a G6 DC-DC
         * charger never answers the standard plan's 0x0120). */
        uint32_t held_blocks;
        char model[48];
        char serial[48];
        char firmware[48];
        /* The table, poll plan and scales of this hardware: cfg.family, or its variant (a
         * Battery Pro, an HF inverter, a G6 DC-DC charger), and why it was chosen. The block
         * masks above index this plan. */
        const struct renogy_family *decoder;
        char variant_why[128];
        uint64_t polls_ok, polls_failed, bad_frames;
        uint64_t errors[_DIAG_MAX];
        double poll_seconds_sum;
};

/* A read that succeeded (a session's, or a bank's sum of its packs): the run of failures ends. */
static inline void device_read_ok(struct device *dev, int64_t now)
{
        dev->last_poll = now;
        dev->failures = 0;
        dev->first_failure = 0;
        dev->polls_ok++;
}

enum session_kind {
        SESSION_POLL,
        SESSION_WRITE,
        SESSION_VERIFY,
        SESSION_PROBE, /* a hub survey on the module's link */
};

struct agenda_entry {
        uint64_t key; /* 0: asked for now (verify, write, poll now); else next_due */
        struct module *module;
};

/* A binary heap of modules by key, smallest first (poller.c): picking the next reads this
 * array only, not every module. */
struct agenda {
        struct agenda_entry *v;
        size_t n, cap;
};

/* A survey of a battery hub's Modbus ids over one connection (link_start_survey). */
#define HUB_FIRST_ID 48
#define HUB_IDS      8
struct hub_probe {
        struct daemon *daemon;
        struct radio *radio;
        char address[18];
        struct module *module; /* the configured module at that address, or NULL */
        struct link *link;     /* its own link when no module has one */
        bool started;
        void (*done)(
                struct hub_probe *p, const struct link_unit *units, size_t n, const struct link_report *r);
        void *userdata;
};

enum look_state {
        LOOK_OFF,
        LOOK_STARTING, /* StartDiscovery sent */
        LOOK_ON,
        LOOK_STOPPING, /* StopDiscovery sent: no session starts before its reply */
};

/* One Bluetooth adapter and the modules reached through it. A radio runs one session at a time;
 * radios run theirs in parallel. */
struct radio {
        struct daemon *daemon;
        char name[16];
        size_t n_modules;
        struct module *active; /* the module whose session runs, NULL between sessions */
        /* Modules that answered their last session, and any session asked for (verify, write,
         * poll now): read first and on schedule. */
        struct agenda due;
        /* Modules whose last session failed, or never read: retried with backoff, and only in the
         * time the others leave free. */
        struct agenda retry;
        /* Modules due for a retry but not seen advertising since they failed: no Connect is tried
         * (on BlueZ over a real controller it hangs); the radio scans between sessions and the
         * module is tried once its advertisement comes. */
        struct module **looking;
        size_t n_looking, looking_cap;
        enum look_state look;
        bool adapter_up;     /* its adapter present and powered, as last signalled */
        uint64_t idle_since; /* monotonic µs the last session ended: looking time counts from here */
        sd_event_source *timer;
        bool scan_started;       /* an API scan's discovery runs on it */
        struct hub_probe *probe; /* a hub survey waiting for the radio, or running */
        uint64_t sessions, sessions_failed;
};

/* One BLE module (address) and the devices behind it. */
struct module {
        struct daemon *daemon;
        struct radio *radio;
        char address[18];
        char name[64]; /* advertised name, once seen */
        struct device *devices[LINK_MAX_UNITS];
        size_t n_devices;
        struct link *link;
        uint64_t next_due;    /* monotonic µs */
        struct agenda *queue; /* the radio's agenda it waits in, NULL when looking or idle */
        size_t queue_pos;     /* 1 + its place in that agenda */
        size_t looking_pos;   /* 1 + its place in the radio's looking list, 0 = not there */
        uint64_t interval;    /* µs: the shortest poll interval of its devices */
        unsigned backoff;     /* failed sessions or looks in a row */
        uint64_t ok_at;       /* monotonic µs the last session that read something ended */
        uint64_t failed_at;   /* monotonic µs the last failed session began */
        uint64_t seen_at;     /* monotonic µs of the last advertisement */
        uint64_t looked_usec; /* time looked for without an advertisement, this time */
        uint64_t look_from;   /* monotonic µs it began to be looked for */
        uint64_t read_usec;   /* how long its last good session took */
        bool poll_now;
        bool watch_paused; /* its Device1 signals unwatched until watch_timer */
        sd_event_source *watch_timer;
        int64_t last_seen;           /* realtime µs of the last advertisement */
        int64_t stopped_advertising; /* realtime µs the RSSI went away */
        int16_t rssi;
        bool has_rssi;
        /* what the current session is for */
        bool write_pending;
        uint16_t write_reg, write_value, readback_reg;
        const struct renogy_field *write_shows; /* the reading that must show write_value after */
        uint16_t shows_value;
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
        /* Batteries sharing a module, each also shown as one (bank.h): computed, never read. */
        struct bank **banks;
        size_t n_banks;
        struct module **modules;
        size_t n_modules;
        struct strmap module_by_address; /* looked up on every Device1 signal */
        /* The adapters in use: the global one first, then any a device names. */
        struct radio **radios;
        size_t n_radios;
        struct store *store;
        /* The installation's id (store_instance_id); Home Assistant's config entry is keyed by it. */
        char instance_id[33];
        bool instance_id_kept; /* false: the store could not keep it, it changes at the next start */
        /* A second bearer token for changes, made by the add-on for the Home Assistant integration
         * and announced to the Supervisor with it (DATA_DIR/integration_token); "" when none. */
        char integration_token[65];
        struct api *api;
        sd_event_source *retry_timer;
        sd_event_source *scan_timer;
        sd_event_source *shutdown_timer;
        uint64_t shutdown_deadline;
        uint64_t scan_until;   /* monotonic µs: no sessions start while an API scan runs */
        unsigned scan_pending; /* seconds of a scan asked for during a session; starts after it */
        bool shutting_down;
        int64_t started;
        /* Told the result of a register write (load switch). */
        void (*write_done)(struct daemon *d, struct device *dev, int result, const char *message);
        void *api_userdata;
};

/* Chooses dev->decoder from what the module shows of itself (its advertised name, the model
 * it reported); returns true when the choice changed. */
bool device_choose_decoder(struct device *dev);

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
/* Writes reg = value, then reads readback back: the write succeeded only if the reading shows
 * then shows shows_value (a setting's own register, or the load's state bit). */
int daemon_write_register(struct daemon *d, struct device *dev, uint16_t reg, uint16_t value,
        uint16_t readback, const struct renogy_field *shows, uint16_t shows_value);
int daemon_scan(struct daemon *d, unsigned seconds);
bool daemon_scanning(const struct daemon *d);
/* Powers on the named adapter, or (NULL) every adapter in use that is off. */
int daemon_power_adapter(struct daemon *d, const char *name);
/* Surveys the hub ids (48-55) of the module at address through adapter (NULL: the module's
 * own, or the global one) once that radio is free, before any poll. done() is called once, with
 * units NULL when no session could run; the survey frees itself after it, or after a cancel.
 * -EBUSY while another survey waits on that radio. */
int daemon_probe_hub(struct daemon *d, const char *address, const char *adapter,
        void (*done)(
                struct hub_probe *p, const struct link_unit *units, size_t n, const struct link_report *r),
        void *userdata, struct hub_probe **ret);
void daemon_probe_cancel(struct daemon *d, struct hub_probe *p);
void daemon_probe_release(struct daemon *d, struct hub_probe *p);

/* The chain up to one adapter (bus, BlueZ, the adapter), DIAG_NONE when it works. */
enum diagnosis_code daemon_adapter_diagnosis(
        const struct daemon *d, const char *adapter, char *detail, size_t size);
/* System-wide: the bus, BlueZ, and then the first adapter in use that is missing or off. */
enum diagnosis_code daemon_system_diagnosis(const struct daemon *d, char *detail, size_t size);
/* The diagnosis that explains a device without its own: its adapter's chain. */
enum diagnosis_code device_link_diagnosis(
        const struct daemon *d, const struct device *dev, char *detail, size_t size);
struct radio *daemon_radio_find(const struct daemon *d, const char *name);
uint64_t daemon_sessions(const struct daemon *d, uint64_t *failed);
/* A device's poll interval in seconds (its own, or the global one). */
unsigned device_interval(const struct daemon *d, const struct device *dev);
/* How old a device's data may be and still count as current: a few of its own intervals, plus
 * its read time. */
uint64_t device_fresh_usec(const struct daemon *d, const struct device *dev);

int64_t now_realtime(void);
uint64_t now_monotonic(void);
