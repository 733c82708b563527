/* SPDX-License-Identifier: MIT */
#pragma once

/* One BLE session with one Renogy module: find it (a short discovery only when it has no
 * fresh advertisement), connect with bounded retries, wait for services and characteristics,
 * subscribe, then one Modbus request at a time with reassembly and a per-request timeout,
 * then disconnect. No sd-bus types here: BlueZ is reached through bluez.h. */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "bluez.h"
#include "modbus.h"
#include "renogy/family.h"
#include "renogy/shunt.h"

#define LINK_MAX_UNITS  8
#define LINK_MAX_BLOCKS 16

/* One Modbus device (or the shunt) behind the module, and what this session got from it. */
struct link_unit {
        const struct renogy_family *family;
        uint8_t modbus_id;
        uint32_t unsupported; /* blocks (by index in the family plan) that got exception 01/02 */
        uint32_t skip;        /* blocks not to ask this session (unanswered lately, settings read lately) */
        /* results */
        int status; /* 0, -ETIMEDOUT (no reply), -EBADMSG (bad frames), -ECANCELED (not read) */
        struct renogy_image image;
        unsigned blocks_ok;
        uint32_t optional_ok;         /* optional blocks that answered */
        uint32_t optional_unanswered; /* optional blocks that got no reply */
        uint32_t live_unanswered;     /* a live block that got no reply after others answered */
        unsigned exceptions;
        unsigned bad_frames;
        int probe_id;    /* id that answered the probe after a silent session, or -1 */
        char probed[64]; /* ids probed, for the diagnosis */
};

enum link_stage {
        LINK_STAGE_ADAPTER,
        LINK_STAGE_FIND,
        LINK_STAGE_CONNECT,
        LINK_STAGE_SERVICES,
        LINK_STAGE_NOTIFY,
        LINK_STAGE_EXCHANGE,
        LINK_STAGE_DONE,
};

struct link_report {
        enum link_stage reached; /* LINK_STAGE_DONE when the session completed */
        enum bluez_error error;
        char message[160];
        bool found;       /* a Device1 object exists for the module */
        bool advertising; /* it advertised recently when the session began */
        int16_t rssi;
        bool has_rssi;
        unsigned connect_attempts;
        unsigned aborts;
        unsigned timeouts;
        bool link_dropped;
        uint64_t started_usec;
        uint64_t duration_usec;
        uint64_t connect_usec; /* time to Connected + services + notify */
};

struct link_step {
        const char *name;
        bool ok;
        uint64_t usec;
        char detail[192];
};

struct link;

struct link_config {
        sd_event *event;
        struct bluez *bluez;
        char adapter[16];
        char address[18];
        bool keep_connected;
        bool probe_ids;          /* on a silent unit, probe the usual Renogy ids */
        uint64_t fresh_adv_usec; /* an advertisement younger than this needs no discovery */
        uint64_t find_timeout_usec;
        uint64_t request_timeout_usec;
        void (*done)(struct link *l, void *userdata);
        void (*step)(void *userdata, const struct link_step *s); /* optional trace (verify) */
        void *userdata;
};

int link_new(struct link **ret, const struct link_config *cfg);
struct link *link_free(struct link *l);

/* What the next session uses: the current BlueZ connection, whether a silent unit gets its
 * Modbus id probed, and an optional step trace. */
void link_set_session(struct link *l, struct bluez *b, bool probe_ids,
        void (*step)(void *userdata, const struct link_step *s), void *userdata);

/* The poller's plan for the next session: present, the module is known to be there (it
 * answered or advertised a moment ago), so no discovery comes first; budget_usec, the longest the
 * session may hold the adapter before it gives up (0: its own timeouts only). */
void link_set_plan(struct link *l, bool present, uint64_t budget_usec);

/* Starts a session reading units (copied in; results read back with link_units()). */
int link_start(struct link *l, const struct link_unit *units, size_t n_units);
bool link_busy(const struct link *l);
const struct link_report *link_report(const struct link *l);
struct link_unit *link_units(struct link *l, size_t *n);
const char *link_address(const struct link *l);

/* Writes one register (a setting, the load switch; function 0x06) in a session of its own, checks
 * the echo, then reads readback_reg into the unit's image, where the caller sees whether the
 * value took. done() reports reached == DONE when both answered. */
int link_start_write(
        struct link *l, const struct link_unit *unit, uint16_t reg, uint16_t value, uint16_t readback_reg);

/* A survey of the units' Modbus ids over one connection: each is asked for count registers at
 * reg once, with a short timeout; silence moves on to the next id instead of ending the session.
 * A unit that answered has blocks_ok 1 (its registers in image) or exceptions > 0. For the ids
 * of a battery hub. */
int link_start_survey(
        struct link *l, const struct link_unit *units, size_t n_units, uint16_t reg, uint16_t count);

/* Ends the current session: cancels what is in flight and disconnects cleanly. Between
 * sessions, hands back a link keep_connected left up (at shutdown). */
void link_abort(struct link *l);

/* BlueZ events for this module and its characteristics. */
void link_on_device(struct link *l, const struct bluez_device *d, unsigned what);
void link_on_notification(struct link *l, const char *char_path, const uint8_t *data, size_t len);
void link_on_adapter_gone(struct link *l);

const char *link_stage_name(enum link_stage s);
