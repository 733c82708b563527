/* SPDX-License-Identifier: MIT */
#pragma once

/* End-to-end test environment: a private system-like bus, blupow-sim with a scenario, and
 * blupowd with an options file, all real processes; HTTP and the simulator's control
 * interface to look at them. */

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

struct env {
        char dir[256];
        char bus_address[512];
        pid_t bus_pid;
        pid_t sim_pid;
        pid_t daemon_pid;
        int port;
        sd_bus *bus; /* the test's own connection, for org.blupow.Sim1 */
        char daemon_log[300];
};

struct env_config {
        const char *scenario;     /* path */
        const char *options;      /* path, or NULL with options_json */
        const char *options_json; /* options text */
        bool deny_bluez;          /* bus policy that refuses messages to org.bluez */
        bool no_sim;
        bool no_daemon;
        const char *bus_address_override; /* point blupowd at this address instead */
};

const char *source_path(const char *rel, char *buf, size_t size);
const char *build_path(const char *rel, char *buf, size_t size);

int env_start(struct env *e, const struct env_config *cfg);
void env_stop(struct env *e);
int env_start_daemon(struct env *e, const struct env_config *cfg);
/* SIGTERM and wait; returns the exit status, or -1. */
int env_stop_daemon(struct env *e, double *seconds);

/* HTTP/1.0 to the daemon; returns the status code, body in *body (malloc'd). */
int http(struct env *e, const char *method, const char *path, const char *body, const char *extra_header,
        char **resp);
json_t *http_json(struct env *e, const char *method, const char *path, const char *body, int *status);

/* The device's JSON once pred() holds for it, within seconds; NULL on timeout. */
json_t *wait_device(struct env *e, const char *id, bool (*pred)(json_t *dev, const void *arg),
        const void *arg, double seconds);
bool dev_state_is(json_t *dev, const void *state);
bool dev_diag_is(json_t *dev, const void *code);
bool dev_online_polled_after(json_t *dev, const void *iso_time);

/* org.blupow.Sim1 */
int sim_set_fault(struct env *e, const char *address, const char *fault, int count);
int sim_simple(struct env *e, const char *method, const char *types, ...);
json_t *sim_readings(struct env *e, const char *address, unsigned id);
int sim_stat(struct env *e, const char *address, const char *key);
/* Calls recorded by the simulator: member and path substring; returns how many matched. */
int sim_count_calls(struct env *e, const char *member, const char *path_part);
void sleep_s(double s);
