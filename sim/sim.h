/* SPDX-License-Identifier: MIT */
#pragma once

/* blupow-sim: BlueZ 5.66 on D-Bus with simulated Renogy modules. The domain objects here
 * (adapters, modules, units) are kept apart from their D-Bus glue (sim-bluez.c). */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "renogy/family.h"
#include "renogy/shunt.h"

#define SIM_MAX_UNITS   8
#define SIM_MAX_CLIENTS 8

struct sim;

/* One client's SetDiscoveryFilter. BlueZ reports an advertisement when any discovering client
 * without a filter, or whose filter matches it, is scanning. */
struct sim_filter {
        char *client; /* unique name; NULL = slot free */
        bool has_rssi;
        int16_t rssi;
        char uuids[4][40];
        size_t n_uuids;
        char pattern[64];
        bool le, bredr;
        bool duplicate_data; /* default true: every advertisement is reported */
};

struct sim_adapter {
        struct sim *sim;
        char name[16];
        char path[64];
        char address[18];
        bool present;
        bool powered;
        bool discovering;
        char *discovery_clients[SIM_MAX_CLIENTS]; /* unique names with a discovery session */
        struct sim_filter filters[SIM_MAX_CLIENTS];
        sd_bus_slot *slot;
        sd_event_source *adv_timer;
};

struct sim_timing {
        unsigned connect_ms;
        unsigned resolve_ms;
        unsigned response_ms;
        unsigned chunk_interval_ms;
        unsigned chunk_size;
        unsigned advertising_interval_ms;
        unsigned disconnect_ms; /* a Disconnect's Connected=false and reply */
};

enum sim_fault {
        FAULT_CONNECT_ABORT,     /* Connect fails with le-connection-abort-by-local */
        FAULT_CONNECT_HANG,      /* Connect never replies */
        FAULT_DROP_MID_RESPONSE, /* link drops after the first chunk of a reply */
        FAULT_RESOLVED_EARLY,    /* ServicesResolved before the characteristics exist */
        FAULT_CORRUPT,           /* a reply with a bad CRC */
        FAULT_EXCEPTION,         /* a Modbus exception reply (device failure) */
        FAULT_ASLEEP,            /* not advertising, connects time out */
        FAULT_HELD,              /* another central holds it: not advertising, connects abort */
        FAULT_NO_ACQUIRE,        /* a BlueZ before 5.46: AcquireNotify and AcquireWrite are UnknownMethod */
        FAULT_NO_MODEL_REPLY,    /* firmware that never answers its optional model block (§8 P3, P5) */
        FAULT_WRITE_ECHO_WRONG,  /* a write acknowledged with another value than the one written */
        FAULT_WRITE_IGNORED,     /* a write acknowledged exactly, and not applied */
        _FAULT_MAX,
};

struct sim_unit {
        uint8_t id;
        const struct renogy_family *family;
        uint16_t *regs;                   /* 65536 words */
        uint8_t *defined;                 /* 8192-byte bitmap: registers that exist on this model */
        double base[RENOGY_MAX_READINGS]; /* scenario values per field index, NaN if none */
        bool animate;
        uint8_t shunt_frame[SHUNT_LIVE_FRAME_LEN];
        /* Reads starting at these registers get no reply at all, as a G6 DC-DC charger's at
         * 0x0120 (RENOGY_BLE.md §4.2). */
        uint16_t silent_at[8];
        size_t n_silent;
};

struct sim_gatt {
        struct sim_module *module;
        struct sim_gatt *service; /* NULL for a service; a descriptor's characteristic */
        char path[160];
        const char *uuid;
        const char *flags[3]; /* a characteristic's or descriptor's, beyond the Renogy ones' */
        bool descriptor;
        bool notify, write; /* the Renogy notify and write characteristics */
};

#define SIM_MAX_GATT 20

struct sim_module {
        struct sim *sim;
        struct sim_adapter *adapter;
        char name[64];
        char address[18];
        char path[128];
        int16_t rssi;
        int16_t rssi_base; /* the scenario's value; advertisements jitter around it */
        struct sim_timing timing;
        struct sim_unit units[SIM_MAX_UNITS];
        size_t n_units;
        bool shunt;

        /* BlueZ-side state */
        bool exported;  /* Device1 object exists */
        bool temporary; /* only ever discovered: removed after the temporary timeout */
        bool seen;      /* RSSI present (discovered in this discovery session) */
        bool connected;
        bool resolved;
        bool gatt_exported;
        bool uuids_changed; /* the GATT objects came or went since UUIDs last changed */
        bool notifying;
        char *notify_clients[SIM_MAX_CLIENTS];
        /* AcquireNotify: watches (and owns) our end of the socket pair while acquired. */
        sd_event_source *notify_fd_src;
        /* AcquireWrite: the same for the write characteristic's socket, and who acquired it. */
        sd_event_source *write_fd_src;
        char write_owner[64];
        uint64_t last_adv_usec;
        uint64_t lost_usec; /* when it stopped being seen */
        /* bluetoothd 5.66 often sends no Connected=true for a central's own connection
         * (scenario: "connected_signal": false); Connected=false still comes. */
        bool connected_signal;
        sd_bus_message *pending_connect;
        sd_bus_message *pending_disconnect;
        sd_bus_message *pending_write;
        unsigned generation; /* bumped on every link change: stale timers do nothing */
        sd_bus_slot *dev_slot, *rssi_slot;
        struct sim_gatt gatt[SIM_MAX_GATT];
        size_t n_gatt;
        sd_bus_slot *gatt_slots[SIM_MAX_GATT];
        sd_bus_slot *modalias_slot; /* Modalias appears once the PnP ID was read */
        uint8_t value[512];         /* notify characteristic Value */
        size_t value_len;
        uint8_t write_value[512];
        size_t write_value_len;

        /* Faults: remaining count (-1 = until cleared) */
        int faults[_FAULT_MAX];

        /* Statistics the tests assert on */
        unsigned n_connects, n_disconnects, n_writes, n_requests;
        unsigned outstanding, max_outstanding, connects_while_discovering;
};

struct sim_call {
        uint64_t usec;
        char *sender;
        char *path;
        char *member;
        char *detail;
};

/* A change the scenario schedules at a time after start: a fault set or cleared, an adapter
 * powered or unplugged, bluetoothd restarted. The same operations as the control interface. */
enum sim_event_kind {
        SIM_EVENT_FAULT,
        SIM_EVENT_POWERED,
        SIM_EVENT_PRESENT,
        SIM_EVENT_RESTART_BLUEZ,
        SIM_EVENT_KILL_BLUEZ,
};

struct sim_event {
        struct sim *sim;
        uint64_t at_usec; /* after start */
        enum sim_event_kind kind;
        struct sim_module *module;
        struct sim_adapter *adapter;
        int fault;
        int count; /* fault count, -1 = until cleared, 0 clears */
        bool on;
        unsigned down_ms;
};

struct sim {
        sd_event *event;
        sd_bus *bus;
        bool name_owned;
        struct sim_adapter adapters[4];
        size_t n_adapters;
        struct sim_module *modules;
        size_t n_modules;
        unsigned temporary_timeout_s;
        unsigned le_connect_timeout_ms;
        uint64_t start_usec;
        struct sim_event *events;
        size_t n_events;
        struct sim_call *calls;
        size_t n_calls, calls_cap;
        sd_event_source *tick;
        bool peripheral; /* the modules are peripherals of a real BlueZ (sim-peripheral.c) */
};

/* sim-scenario.c */
int sim_scenario_load(struct sim *sim, const char *name_or_path, char *err, size_t err_size);
int sim_scenario_parse(struct sim *sim, const char *json_text, char *err, size_t err_size);
void sim_free(struct sim *sim);
const char *sim_fault_name(enum sim_fault f);
int sim_fault_from_name(const char *s);

/* sim-device.c: the Renogy side */
int sim_unit_init(struct sim_unit *u, const struct renogy_family *fam, uint8_t id);
int sim_unit_set_value(struct sim_unit *u, const char *key, double value);
int sim_unit_set_text(struct sim_unit *u, const char *key, const char *text);
void sim_unit_tick(struct sim_unit *u, double t_sec);
/* Answers one request frame; reply written to out. Returns its length, 0 for no reply. */
size_t sim_unit_respond(struct sim_module *m, const uint8_t *req, size_t len, uint8_t *out, size_t out_size);
void sim_unit_shunt_frame(struct sim_unit *u);
void sim_unit_rebase(struct sim_unit *u, const char *key, double value);

/* sim-bluez.c: D-Bus objects */
int sim_bluez_start(struct sim *sim);
int sim_bluez_export_all(struct sim *sim);
/* bluetoothd restarting: stopped (SIGTERM, everything signalled going) or killed (SIGKILL). */
void sim_bluez_restart(struct sim *sim, unsigned down_ms, bool killed);
/* Sets a fault on a module (count -1 = until cleared, 0 clears); asleep and held drop its link. */
void sim_module_set_fault(struct sim_module *m, int fault, int count);
void sim_module_connectable_again(struct sim_module *m);
/* Arms a timer for each scheduled event of the scenario. */
int sim_events_start(struct sim *sim);
void sim_adapter_set_powered(struct sim_adapter *a, bool powered);
void sim_adapter_remove(struct sim_adapter *a);
void sim_adapter_add(struct sim_adapter *a);
/* The link ends from the module's side (asleep, taken, a drop in a reply). */
void sim_module_drop_link(struct sim_module *m);
/* A write reached the module: a request is answered, in packets, after its response time. */
int sim_module_accept_write(struct sim_module *m, const uint8_t *bytes, size_t len);
/* The shunt's live frame, to a subscribed client. */
void sim_shunt_push(struct sim_module *m);
void sim_module_unexport(struct sim_module *m);
struct sim_module *sim_module_by_address(struct sim *sim, const char *address);
struct sim_adapter *sim_adapter_by_name(struct sim *sim, const char *name);
bool sim_module_advertising(const struct sim_module *m);

/* Runs fn(m, data) after ms, unless the module's link changed meanwhile (data is freed then). */
void sim_later(struct sim_module *m, unsigned ms, void (*fn)(struct sim_module *m, void *data), void *data);

/* Renogy modules echo their MAC in the manufacturer data: the first two bytes read as a
 * little-endian company id, the other four as the payload (RENOGY_BLE.md §1.2). An a{qv}. */
int sim_append_manufacturer_data(sd_bus_message *reply, const char *address);

/* sim-peripheral.c: the modules as peripherals of a real BlueZ, module i on adapters[i]. Prints
 * "module ADDRESS ADAPTER NAME" for each, then "ready", once every adapter's address is known. */
int sim_peripheral_start(struct sim *sim, char *const *adapters, size_t n_adapters);
void sim_peripheral_free(void);
void sim_peripheral_fault(struct sim_module *m, int fault, int count);
/* One notification packet of the module, and the module ending its link. */
void sim_peripheral_notify(struct sim_module *m, const uint8_t *packet, size_t len);
void sim_peripheral_drop(struct sim_module *m);
bool sim_peripheral_fault_supported(int fault);

/* sim-control.c: org.blupow.Sim1 and the call record */
int sim_control_start(struct sim *sim);
void sim_record_call(struct sim *sim, sd_bus_message *m, const char *detail);
/* What did not come as a method call: packets on an acquired write socket. */
void sim_record(
        struct sim *sim, const char *sender, const char *path, const char *member, const char *detail);
/* Bytes as lower-case hex, cut to fit `size` with its terminating NUL. */
void sim_hex(char *out, size_t size, const uint8_t *bytes, size_t len);
void sim_call_free(struct sim_call *c);

uint64_t sim_now(void);
