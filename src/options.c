/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"

void options_init(struct options *o)
{
        *o = (struct options){
                .poll_interval = OPTIONS_DEFAULT_POLL_INTERVAL,
                .history_days = OPTIONS_DEFAULT_HISTORY_DAYS,
                .commit_interval = OPTIONS_DEFAULT_COMMIT,
                .log_level = LOG_LEVEL_INFO,
                .port = OPTIONS_DEFAULT_PORT,
        };
        snprintf(o->adapter, sizeof o->adapter, "hci0");
}

void options_done(struct options *o)
{
        free(o->devices);
        free(o->api_token);
        options_init(o);
}

bool address_valid(const char *s)
{
        if (!s || strlen(s) != 17)
                return false;
        for (int i = 0; i < 17; i++)
                if (i % 3 == 2 ? s[i] != ':' : !isxdigit((unsigned char)s[i]))
                        return false;
        return true;
}

void slugify(const char *name, char *out, size_t size)
{
        size_t n = 0;
        bool dash = false;
        for (const char *p = name; *p && n + 1 < size; p++) {
                unsigned char c = (unsigned char)*p;
                if (isalnum(c)) {
                        if (dash && n > 0 && n + 2 < size)
                                out[n++] = '-';
                        out[n++] = (char)tolower(c);
                        dash = false;
                } else
                        dash = true;
        }
        out[n] = 0;
}

#define FAIL(...)                                                                                           \
        do {                                                                                                \
                snprintf(err, err_size, __VA_ARGS__);                                                       \
                return -EINVAL;                                                                             \
        } while (0)

int device_config_from_fields(struct device_config *d, const char *name, const char *address,
        const char *type, long long modbus_id, const char *where, char *err, size_t err_size)
{
        *d = (struct device_config){0};
        if (!name || !*name)
                FAIL("option '%s.name': a name is required", where);
        if (strlen(name) >= DEVICE_NAME_MAX)
                FAIL("option '%s.name': longer than %d characters", where, DEVICE_NAME_MAX - 1);
        for (const char *p = name; *p; p++)
                if ((unsigned char)*p < 0x20)
                        FAIL("option '%s.name': control characters are not allowed", where);
        snprintf(d->name, sizeof d->name, "%s", name);
        slugify(name, d->id, sizeof d->id);
        if (!d->id[0])
                FAIL("option '%s.name': '%s' needs at least one letter or digit", where, name);
        if (!address_valid(address))
                FAIL("option '%s.address': '%s' is not a Bluetooth address like C4:D3:6A:00:11:22", where,
                        address ? address : "");
        for (int i = 0; i < 17; i++)
                d->address[i] = (char)toupper((unsigned char)address[i]);
        d->family = type ? renogy_family_find(type) : NULL;
        if (!d->family)
                FAIL("option '%s.type': '%s' is not one of controller, dcc, battery, inverter, shunt", where,
                        type ? type : "");
        if (modbus_id == -1)
                d->modbus_id = d->family->byte_addressed ? 0 : d->family->default_id;
        else if (modbus_id < 1 || modbus_id > 255)
                FAIL("option '%s.modbus_id': %lld is not a Modbus id from 1 to 255", where, modbus_id);
        else
                d->modbus_id = (uint8_t)modbus_id;
        return 0;
}

bool adapter_name_valid(const char *s)
{
        return s && startswith(s, "hci") && strlen(s) >= 4 && strlen(s) <= 6 &&
               strspn(s + 3, "0123456789") == strlen(s + 3);
}

int device_config_set_schedule(struct device_config *d, const char *adapter, long long poll_interval,
        const char *where, char *err, size_t err_size)
{
        if (adapter && *adapter) {
                if (!adapter_name_valid(adapter))
                        FAIL("option '%s.adapter': '%s' is not an adapter name like hci0, hci1", where,
                                adapter);
                snprintf(d->adapter, sizeof d->adapter, "%s", adapter);
        }
        if (poll_interval) {
                if (poll_interval < OPTIONS_MIN_POLL_INTERVAL || poll_interval > OPTIONS_MAX_POLL_INTERVAL)
                        FAIL("option '%s.poll_interval': expected a whole number of seconds from %d to %d",
                                where, OPTIONS_MIN_POLL_INTERVAL, OPTIONS_MAX_POLL_INTERVAL);
                d->poll_interval = (unsigned)poll_interval;
        }
        return 0;
}

void device_config_normalize(struct device_config *d, const struct options *o)
{
        if (streq(d->adapter, o->adapter))
                d->adapter[0] = 0;
        if (d->poll_interval == o->poll_interval)
                d->poll_interval = 0;
}

const char *device_config_adapter(const struct device_config *d, const struct options *o)
{
        return d->adapter[0] ? d->adapter : o->adapter;
}

unsigned device_config_interval(const struct device_config *d, const struct options *o)
{
        return d->poll_interval ? d->poll_interval : o->poll_interval;
}

int device_config_validate(const struct device_config *d, const struct device_config *others,
        size_t n_others, const char *where, char *err, size_t err_size)
{
        for (size_t i = 0; i < n_others; i++) {
                const struct device_config *o = &others[i];
                if (o == d)
                        continue;
                if (streq(o->id, d->id))
                        FAIL("%s ('%s') and devices[%zu] ('%s') have the same name: give each device its "
                             "own name",
                                where, d->name, i, o->name);
                bool same_module = streq(o->address, d->address);
                if (same_module && (o->modbus_id == d->modbus_id || o->family->byte_addressed ||
                                           d->family->byte_addressed))
                        FAIL("%s ('%s') and devices[%zu] ('%s') are the same device (%s, Modbus id %u): "
                             "remove one of them",
                                where, d->name, i, o->name, d->address, d->modbus_id);
                /* One module has one link, and a link goes through one adapter. */
                if (same_module && !streq(o->adapter, d->adapter))
                        FAIL("%s ('%s') and devices[%zu] ('%s') share module %s but name different "
                             "adapters (%s, %s): a module is reached through one adapter",
                                where, d->name, i, o->name, d->address,
                                d->adapter[0] ? d->adapter : "default",
                                o->adapter[0] ? o->adapter : "default");
        }
        return 0;
}

static int get_uint(
        json_t *root, const char *key, unsigned min, unsigned max, unsigned *out, char *err, size_t err_size)
{
        json_t *v = json_object_get(root, key);
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
                FAIL("option '%s': expected a whole number from %u to %u", key, min, max);
        *out = (unsigned)json_integer_value(v);
        return 0;
}

int device_schedule_from_json(
        struct device_config *d, json_t *obj, const char *where, char *err, size_t err_size)
{
        json_t *ad = json_object_get(obj, "adapter"), *pi = json_object_get(obj, "poll_interval");
        if (ad && !json_is_null(ad) && !json_is_string(ad))
                FAIL("option '%s.adapter': expected a string like hci1", where);
        if (pi && !json_is_null(pi) && !json_is_integer(pi))
                FAIL("option '%s.poll_interval': expected a whole number of seconds", where);
        long long interval = json_is_integer(pi) ? json_integer_value(pi) : 0;
        if (json_is_integer(pi) && interval == 0)
                interval = -1; /* 0 is not "the default" when written out */
        return device_config_set_schedule(d, json_string_value(ad), interval, where, err, err_size);
}

int device_config_set_model(
        struct device_config *d, const char *model, const char *where, char *err, size_t err_size)
{
        if (!model || !*model) {
                d->model[0] = 0;
                return 0;
        }
        bool printable = strlen(model) < sizeof d->model;
        for (const char *c = model; printable && *c; c++)
                printable = *c > 0x20 && *c < 0x7F;
        if (!printable)
                FAIL("option '%s.model': expected the model as printed on the device, like RIV4835CSH1S "
                     "(1 to %zu letters, digits or dashes)",
                        where, sizeof d->model - 1);
        snprintf(d->model, sizeof d->model, "%s", model);
        return 0;
}

int device_model_from_json(
        struct device_config *d, json_t *obj, const char *where, char *err, size_t err_size)
{
        json_t *model = json_object_get(obj, "model");
        if (!model || json_is_null(model))
                return 0;
        if (!json_is_string(model) || !*json_string_value(model))
                FAIL("option '%s.model': expected the model as printed on the device, like RIV4835CSH1S",
                        where);
        return device_config_set_model(d, json_string_value(model), where, err, err_size);
}

int options_parse(struct options *o, const char *text, char *err, size_t err_size)
{
        options_done(o);
        json_error_t jerr;
        json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                FAIL("options: not valid JSON (line %d: %s)", jerr.line, jerr.text);
        int r = -EINVAL;
        if (!json_is_object(root)) {
                snprintf(err, err_size, "options: expected a JSON object");
                goto out;
        }
        static const char *const known[] = {"devices", "poll_interval", "adapter", "keep_connected",
                "history_days", "commit_interval", "log_level", "api_token", "port",
                "install_integration" /* the add-on's start script's, not the daemon's */};
        const char *key;
        json_t *val;
        json_object_foreach(root, key, val)
        {
                bool ok = false;
                for (size_t i = 0; i < ELEMENTSOF(known); i++)
                        ok = ok || streq(key, known[i]);
                if (!ok)
                        log_warning("options: ignoring unknown option '%s'", key);
        }
        unsigned port = o->port;
        if (get_uint(root, "poll_interval", OPTIONS_MIN_POLL_INTERVAL, OPTIONS_MAX_POLL_INTERVAL,
                    &o->poll_interval, err, err_size) < 0 ||
                get_uint(root, "history_days", 1, 365, &o->history_days, err, err_size) < 0 ||
                get_uint(root, "commit_interval", 0, 600, &o->commit_interval, err, err_size) < 0 ||
                get_uint(root, "port", 1, 65535, &port, err, err_size) < 0)
                goto out;
        o->port = (uint16_t)port;

        json_t *v = json_object_get(root, "adapter");
        if (v && !json_is_null(v)) {
                const char *s = json_string_value(v);
                if (!adapter_name_valid(s)) {
                        snprintf(err, err_size, "option 'adapter': expected hci0, hci1, …");
                        goto out;
                }
                snprintf(o->adapter, sizeof o->adapter, "%s", s);
        }
        v = json_object_get(root, "keep_connected");
        if (v && !json_is_null(v)) {
                if (!json_is_boolean(v)) {
                        snprintf(err, err_size, "option 'keep_connected': expected true or false");
                        goto out;
                }
                o->keep_connected = json_is_true(v);
        }
        v = json_object_get(root, "log_level");
        if (v && !json_is_null(v)) {
                int lvl = json_is_string(v) ? log_level_from_string(json_string_value(v)) : -EINVAL;
                if (lvl < 0) {
                        snprintf(err, err_size,
                                "option 'log_level': expected error, warning, info, debug or trace");
                        goto out;
                }
                o->log_level = (enum log_level)lvl;
        }
        v = json_object_get(root, "api_token");
        if (v && !json_is_null(v)) {
                const char *s = json_string_value(v);
                if (!s) {
                        snprintf(err, err_size, "option 'api_token': expected a string");
                        goto out;
                }
                if (*s && strlen(s) < 16) {
                        snprintf(err, err_size, "option 'api_token': use at least 16 characters");
                        goto out;
                }
                if (*s && !(o->api_token = strdup(s))) {
                        r = -ENOMEM;
                        goto out;
                }
        }

        json_t *devs = json_object_get(root, "devices");
        if (devs && !json_is_null(devs) && !json_is_array(devs)) {
                snprintf(err, err_size, "option 'devices': expected a list of devices");
                goto out;
        }
        size_t n = json_array_size(devs);
        if (n > 256) {
                snprintf(err, err_size, "option 'devices': at most 256 devices");
                goto out;
        }
        o->devices = calloc(n ? n : 1, sizeof *o->devices);
        if (!o->devices) {
                r = -ENOMEM;
                goto out;
        }
        size_t i;
        json_array_foreach(devs, i, v)
        {
                char where[32];
                snprintf(where, sizeof where, "devices[%zu]", i);
                if (!json_is_object(v)) {
                        snprintf(err, err_size,
                                "option '%s': expected an object with name, address and type", where);
                        goto out;
                }
                json_object_foreach(v, key, val)
                {
                        if (!streq(key, "name") && !streq(key, "address") && !streq(key, "type") &&
                                !streq(key, "modbus_id") && !streq(key, "adapter") &&
                                !streq(key, "poll_interval") && !streq(key, "model")) {
                                snprintf(err, err_size,
                                        "option '%s.%s': unknown key (name, address, type, modbus_id, "
                                        "adapter, poll_interval, model)",
                                        where, key);
                                goto out;
                        }
                }
                json_t *id = json_object_get(v, "modbus_id");
                long long mid = -1;
                if (id && !json_is_null(id)) {
                        if (!json_is_integer(id)) {
                                snprintf(err, err_size, "option '%s.modbus_id': expected a whole number",
                                        where);
                                goto out;
                        }
                        mid = json_integer_value(id);
                        if (mid == -1)
                                mid = -2;
                }
                if (device_config_from_fields(&o->devices[i], json_string_value(json_object_get(v, "name")),
                            json_string_value(json_object_get(v, "address")),
                            json_string_value(json_object_get(v, "type")), mid, where, err, err_size) < 0)
                        goto out;
                if (device_schedule_from_json(&o->devices[i], v, where, err, err_size) < 0)
                        goto out;
                if (device_model_from_json(&o->devices[i], v, where, err, err_size) < 0)
                        goto out;
                device_config_normalize(&o->devices[i], o);
                o->n_devices = i + 1;
                if (device_config_validate(&o->devices[i], o->devices, i, where, err, err_size) < 0)
                        goto out;
        }
        r = 0;
out:
        json_decref(root);
        if (r < 0) {
                free(o->devices);
                o->devices = NULL;
                o->n_devices = 0;
        }
        return r;
}

int options_load(struct options *o, const char *path, char *err, size_t err_size)
{
        json_error_t jerr;
        FILE *f = fopen(path, "re");
        if (!f)
                FAIL("options: cannot read %s: %s", path, strerror(errno));
        char *text = NULL;
        size_t size = 0;
        FILE *mem = open_memstream(&text, &size);
        if (!mem) {
                fclose(f);
                return -ENOMEM;
        }
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0 && size < 1024 * 1024)
                fwrite(buf, 1, n, mem);
        fclose(f);
        fclose(mem);
        (void)jerr;
        int r = options_parse(o, text, err, err_size);
        free(text);
        return r;
}
