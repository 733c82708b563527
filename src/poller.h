/* SPDX-License-Identifier: MIT */
#pragma once

/* Schedules sessions (one at a time per adapter), turns their results into device state,
 * readings and diagnoses. */

#include "daemon.h"

struct verify_job {
        struct device *device;
        void (*step)(void *userdata, const struct link_step *s);
        void (*done)(
                void *userdata, struct device *dev, const struct link_report *r, const struct link_unit *u);
        void *userdata;
};

void poller_schedule(struct daemon *d);
/* Call after changing what m is due for: next_due, poll_now, verify, write_pending or its
 * devices. A module without devices leaves the agenda; call before freeing one. */
int poller_requeue(struct daemon *d, struct module *m);
void poller_session_done(struct daemon *d, struct module *m);
/* Runs a verify session for dev with a step trace; -EBUSY if one is already queued. */
int poller_verify(struct daemon *d, struct verify_job *job);
void poller_verify_cancel(struct daemon *d, struct verify_job *job);

/* Exposed for the unit tests: the diagnosis of one failed unit of a session. */
enum diagnosis_code poller_classify(const struct daemon *d, const struct module *m, const struct device *dev,
        const struct link_unit *u, const struct link_report *r, enum device_state *state, char *detail,
        size_t size);

/* When a module's next poll is due, given when this one was due (exposed for the tests). */
uint64_t next_due_after(uint64_t due, uint64_t now, uint64_t interval);
