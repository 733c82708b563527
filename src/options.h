/* SPDX-License-Identifier: MIT */
#pragma once

/* The add-on options (/data/options.json, or --options FILE): parsed and validated here.
 * A bad option stops the daemon with one message naming it and what is wrong. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "renogy/family.h"

#define DEVICE_NAME_MAX 64
#define DEVICE_ID_MAX   72

struct device_config {
        char id[DEVICE_ID_MAX]; /* URL-safe slug of the name: the API's {id} */
        char name[DEVICE_NAME_MAX];
        char address[18]; /* upper case */
        const struct renogy_family *family;
        uint8_t modbus_id;
        char adapter[16];       /* "" = the global adapter option */
        unsigned poll_interval; /* seconds, 0 = the global poll_interval option */
        bool from_api;          /* added through the API (removable), not the options */
        /* The model, for firmware that does not report it (a RIV4835 silent on 4311): chooses
         * the map and plan until the device names its own. "" = as reported. */
        char model[32];
};

struct options {
        struct device_config *devices;
        size_t n_devices;
        unsigned poll_interval; /* seconds */
        char adapter[16];
        bool keep_connected;
        unsigned history_days;
        unsigned commit_interval; /* seconds a poll may wait in memory before the disk */
        enum log_level log_level;
        char *api_token; /* NULL: no token, changes only from trusted addresses */
        uint16_t port;
};

#define OPTIONS_DEFAULT_POLL_INTERVAL 30
#define OPTIONS_DEFAULT_HISTORY_DAYS  7
#define OPTIONS_DEFAULT_COMMIT        60
#define OPTIONS_DEFAULT_PORT          8099
#define OPTIONS_MIN_POLL_INTERVAL     5
#define OPTIONS_MAX_POLL_INTERVAL     3600

void options_init(struct options *o);
void options_done(struct options *o);

/* Parses options JSON text. Returns 0, or -EINVAL with a one-line message in err. */
int options_parse(struct options *o, const char *text, char *err, size_t err_size);
int options_load(struct options *o, const char *path, char *err, size_t err_size);

/* Validation of one device entry, shared with the API's "add device". index < 0 means "the new
 * device". Checks the address and type, and that no other entry has the same name or module. */
int device_config_validate(const struct device_config *d, const struct device_config *others,
        size_t n_others, const char *where, char *err, size_t err_size);
int device_config_from_fields(struct device_config *d, const char *name, const char *address,
        const char *type, long long modbus_id, const char *where, char *err, size_t err_size);
/* The optional per-device schedule fields, from options, the API or the store: NULL/0 keep the
 * global defaults. */
int device_config_set_schedule(struct device_config *d, const char *adapter, long long poll_interval,
        const char *where, char *err, size_t err_size);

/* Reads "adapter" and "poll_interval" of a device object (options file or API body). */
struct json_t;
int device_schedule_from_json(
        struct device_config *d, struct json_t *obj, const char *where, char *err, size_t err_size);

/* The model as printed on the device, for units whose firmware does not report it (an RIV4835
 * silent on 4311): NULL or "" keeps it unknown. From options, the API or the store. */
int device_config_set_model(
        struct device_config *d, const char *model, const char *where, char *err, size_t err_size);
/* Reads "model" of a device object (options file or API body). */
int device_model_from_json(
        struct device_config *d, struct json_t *obj, const char *where, char *err, size_t err_size);

bool adapter_name_valid(const char *s);
/* A device's adapter or interval equal to the global one is the default: "" and 0, so that
 * two entries of one module compare equal. */
void device_config_normalize(struct device_config *d, const struct options *o);
/* The device's own adapter and interval, or the global ones. */
const char *device_config_adapter(const struct device_config *d, const struct options *o);
unsigned device_config_interval(const struct device_config *d, const struct options *o);

bool address_valid(const char *s);
void slugify(const char *name, char *out, size_t size);
