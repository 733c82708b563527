/* SPDX-License-Identifier: MIT */
#pragma once

/* Schedules sessions, one at a time per radio and radios in parallel, and turns their results
 * into device state, readings and diagnoses. Modules that answer are read first and on
 * schedule; a module that failed is retried with backoff, only when it was seen advertising
 * since, and only for the time the others leave free: one that cannot be reached costs the
 * others nothing. */

#include "daemon.h"

struct verify_job {
        struct device *device;
        void (*step)(void *userdata, const struct link_step *s);
        void (*done)(
                void *userdata, struct device *dev, const struct link_report *r, const struct link_unit *u);
        void *userdata;
};

/* Starts what is due on every radio. */
void poller_schedule(struct daemon *d);
void poller_schedule_radio(struct radio *r);
/* Call after changing what m is due for: next_due, poll_now, verify, write_pending or its
 * devices. A module without devices leaves its radio's agenda; call before freeing one. */
int poller_requeue(struct daemon *d, struct module *m);
void poller_session_done(struct daemon *d, struct module *m);
/* An advertisement from m: a module waiting to be seen is tried now. */
void poller_module_seen(struct daemon *d, struct module *m);
/* Watches the module's Device1 signals again now, if they were left unwatched after an
 * advertisement between sessions; poller_watch_forget: the bus connection they were on is gone. */
void poller_watch_resume(struct module *m);
void poller_watch_forget(struct module *m);
/* BlueZ went away or the bus was reconnected: our discoveries ended with it. */
void poller_discovery_lost(struct daemon *d);
/* BlueZ or an adapter (r; NULL: every one) is back: the modules that failed only because it was
 * gone are read at once, not an interval or a backoff later. */
void poller_system_back(struct daemon *d, struct radio *r);
void poller_radio_free(struct radio *r);
/* The radio's hub survey ended (its own link's end; a module's comes through session_done). */
void poller_probe_done(struct radio *r);
/* Runs a verify session for dev with a step trace; -EBUSY if one is already queued. */
int poller_verify(struct daemon *d, struct verify_job *job);
void poller_verify_cancel(struct daemon *d, struct verify_job *job);

/* Exposed for the unit tests: the diagnosis of one failed unit of a session. */
enum diagnosis_code poller_classify(const struct daemon *d, const struct module *m, const struct device *dev,
        const struct link_unit *u, const struct link_report *r, enum device_state *state, char *detail,
        size_t size);

/* When a module's next poll is due, given when this one was due (exposed for the tests). */
uint64_t next_due_after(uint64_t due, uint64_t now, uint64_t interval);
/* How long a module waits after its n-th failure in a row (n >= 1). */
uint64_t retry_delay(uint64_t interval, unsigned failures);
