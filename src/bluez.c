/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <systemd/sd-bus.h>
#include <time.h>

#include "bluez.h"
#include "log.h"
#include "macro.h"
#include "strmap.h"

#define BLUEZ                "org.bluez"
#define DEFAULT_CALL_TIMEOUT (10 * USEC_PER_SEC)

struct bluez {
        sd_event *event;
        sd_bus *bus;
        struct bluez_handlers h;
        void *userdata;
        bool up;
        bool broken;
        sd_bus_slot *sync_slot;
        struct bluez_adapter **adapters;
        size_t n_adapters;
        struct bluez_device **devices;
        size_t n_devices;
        /* Every signal names an object by path. With hundreds of devices, a search along a list
         * read every object (and its page) on each signal; these tables find it directly. The
         * arrays above keep the order callers see. */
        struct strmap device_by_path;
        struct strmap service_by_path;
        struct strmap char_by_path;
        struct strmap chars_by_device; /* key: the device part of the characteristic's path */
        struct bluez_call *calls;      /* in flight, freed with the bluez object */
        /* Characteristics' PropertiesChanged are routed to us only once a StartNotify needs their
         * Value: otherwise every acquire and release would wake us to parse what we never use. */
        bool char_signals;
        /* Device1's PropertiesChanged come only for the devices watched (the configured modules),
         * by path; every device's only while a scan wants them. Where another program scans
         * all the time (Home Assistant's Bluetooth integration), each nearby device's RSSI and
         * advertisement changes would otherwise wake us. */
        struct strmap watches; /* key: device path; value: struct device_watch */
        sd_bus_slot *all_devices;
};

struct device_watch {
        char path[64];
        sd_bus_slot *slot;
};

struct bluez_call {
        struct bluez *b;
        sd_bus_slot *slot;
        bluez_done_t cb;
        bluez_fd_done_t fd_cb; /* instead of cb, for calls that answer with a file descriptor */
        void *userdata;
        /* A Connect or Disconnect: its device is connected, or not, once the call succeeds. */
        char *device_path;
        bool connects;
        struct bluez_call *next, *prev;
};

/* ---- errors ---- */

static const char *const error_names[_BLUEZ_ERR_MAX] = {
        [BLUEZ_OK] = "ok",
        [BLUEZ_ERR_ABORT_BY_LOCAL] = "le-connection-abort-by-local",
        [BLUEZ_ERR_CANCELED] = "connection-canceled",
        [BLUEZ_ERR_CONNECTION] = "connection-failed",
        [BLUEZ_ERR_CONNECT_PENDING] = "connect-already-in-progress",
        [BLUEZ_ERR_NOT_CONNECTED] = "not-connected",
        [BLUEZ_ERR_IN_PROGRESS] = "in-progress",
        [BLUEZ_ERR_NOT_READY] = "not-ready",
        [BLUEZ_ERR_NOT_SUPPORTED] = "not-supported",
        [BLUEZ_ERR_NOT_PERMITTED] = "not-permitted",
        [BLUEZ_ERR_DOES_NOT_EXIST] = "does-not-exist",
        [BLUEZ_ERR_INVALID_ARGUMENTS] = "invalid-arguments",
        [BLUEZ_ERR_UNKNOWN_OBJECT] = "unknown-object",
        [BLUEZ_ERR_NO_OWNER] = "bluez-not-running",
        [BLUEZ_ERR_ACCESS_DENIED] = "access-denied",
        [BLUEZ_ERR_TIMEOUT] = "timeout",
        [BLUEZ_ERR_DISCONNECTED] = "bus-disconnected",
        [BLUEZ_ERR_FAILED] = "failed",
};

const char *bluez_error_to_string(enum bluez_error e)
{
        return e < _BLUEZ_ERR_MAX ? error_names[e] : "failed";
}

bool bluez_error_is_transient(enum bluez_error e)
{
        return e == BLUEZ_ERR_ABORT_BY_LOCAL || e == BLUEZ_ERR_CANCELED || e == BLUEZ_ERR_CONNECTION ||
               e == BLUEZ_ERR_IN_PROGRESS || e == BLUEZ_ERR_TIMEOUT;
}

/* One place maps BlueZ's error names and, for Failed, its messages (BLUEZ.md §1.6). */
enum bluez_error bluez_error_from_dbus(const char *name, const char *message)
{
        static const struct {
                const char *name;
                enum bluez_error e;
        } by_name[] = {
                {"org.bluez.Error.InProgress", BLUEZ_ERR_IN_PROGRESS},
                {"org.bluez.Error.NotReady", BLUEZ_ERR_NOT_READY},
                {"org.bluez.Error.NotSupported", BLUEZ_ERR_NOT_SUPPORTED},
                {"org.bluez.Error.NotPermitted", BLUEZ_ERR_NOT_PERMITTED},
                {"org.bluez.Error.NotAuthorized", BLUEZ_ERR_NOT_PERMITTED},
                {"org.bluez.Error.NotConnected", BLUEZ_ERR_NOT_CONNECTED},
                {"org.bluez.Error.DoesNotExist", BLUEZ_ERR_DOES_NOT_EXIST},
                {"org.bluez.Error.InvalidArguments", BLUEZ_ERR_INVALID_ARGUMENTS},
                {"org.bluez.Error.AlreadyConnected", BLUEZ_OK},
                {"org.freedesktop.DBus.Error.UnknownObject", BLUEZ_ERR_UNKNOWN_OBJECT},
                {"org.freedesktop.DBus.Error.UnknownMethod", BLUEZ_ERR_UNKNOWN_OBJECT},
                {"org.freedesktop.DBus.Error.UnknownInterface", BLUEZ_ERR_UNKNOWN_OBJECT},
                {"org.freedesktop.DBus.Error.ServiceUnknown", BLUEZ_ERR_NO_OWNER},
                {"org.freedesktop.DBus.Error.NameHasNoOwner", BLUEZ_ERR_NO_OWNER},
                {"org.freedesktop.DBus.Error.AccessDenied", BLUEZ_ERR_ACCESS_DENIED},
                {"org.freedesktop.DBus.Error.NoReply", BLUEZ_ERR_TIMEOUT},
                {"org.freedesktop.DBus.Error.Timeout", BLUEZ_ERR_TIMEOUT},
                {"org.freedesktop.DBus.Error.TimedOut", BLUEZ_ERR_TIMEOUT},
                {"org.freedesktop.DBus.Error.Disconnected", BLUEZ_ERR_DISCONNECTED},
        };
        if (!name)
                return BLUEZ_OK;
        for (size_t i = 0; i < ELEMENTSOF(by_name); i++)
                if (streq(name, by_name[i].name))
                        return by_name[i].e;
        if (!streq(name, "org.bluez.Error.Failed"))
                return BLUEZ_ERR_FAILED;
        if (!message)
                return BLUEZ_ERR_FAILED;
        if (streq(message, "le-connection-abort-by-local") ||
                streq(message, "Software caused connection abort"))
                return BLUEZ_ERR_ABORT_BY_LOCAL;
        if (streq(message, "br-connection-canceled") || streq(message, "le-connection-canceled"))
                return BLUEZ_ERR_CANCELED;
        if (streq(message, "Operation already in progress"))
                return BLUEZ_ERR_CONNECT_PENDING;
        if (streq(message, "Not connected"))
                return BLUEZ_ERR_NOT_CONNECTED;
        if (startswith(message, "le-connection-") || startswith(message, "br-connection-"))
                return BLUEZ_ERR_CONNECTION;
        return BLUEZ_ERR_FAILED;
}

static enum bluez_error error_from_reply(sd_bus_message *m, const char **message)
{
        const sd_bus_error *e = sd_bus_message_get_error(m);
        *message = e ? e->message : NULL;
        if (!e)
                return BLUEZ_OK;
        return bluez_error_from_dbus(e->name, e->message);
}

/* ---- object tables ---- */

static uint64_t now_usec(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
}

#define FIND(arr, n, p)                                                                                     \
        ({                                                                                                  \
                __typeof__((arr)[0]) _found = NULL;                                                         \
                for (size_t _i = 0; _i < (n); _i++)                                                         \
                        if (streq((arr)[_i]->path, (p))) {                                                  \
                                _found = (arr)[_i];                                                         \
                                break;                                                                      \
                        }                                                                                   \
                _found;                                                                                     \
        })

static int push(void *arr_p, size_t *n, void *item)
{
        void ***arr = arr_p;
        void **a = realloc(*arr, (*n + 1) * sizeof(void *));
        if (!a)
                return -ENOMEM;
        a[(*n)++] = item;
        *arr = a;
        return 0;
}

static void remove_at(void *arr_p, size_t *n, size_t i)
{
        void ***arr = arr_p;
        memmove(*arr + i, *arr + i + 1, (*n - i - 1) * sizeof(void *));
        (*n)--;
}

static void device_free(struct bluez_device *d)
{
        if (!d)
                return;
        free(d->path);
        free(d->adapter_path);
        free(d);
}

static void char_free(struct bluez_char *c)
{
        if (!c)
                return;
        free(c->path);
        free(c->service_path);
        free(c);
}

static void service_free(struct bluez_service *s)
{
        if (!s)
                return;
        free(s->path);
        free(s->device_path);
        free(s);
}

static void adapter_free(struct bluez_adapter *a)
{
        if (!a)
                return;
        free(a->path);
        free(a);
}

static void clear_objects(struct bluez *b)
{
        void *v;
        for (size_t pos = 0; strmap_each(&b->char_by_path, &pos, &v);)
                char_free(v);
        for (size_t pos = 0; strmap_each(&b->service_by_path, &pos, &v);)
                service_free(v);
        for (size_t i = 0; i < b->n_devices; i++)
                device_free(b->devices[i]);
        for (size_t i = 0; i < b->n_adapters; i++)
                adapter_free(b->adapters[i]);
        strmap_clear(&b->char_by_path);
        strmap_clear(&b->chars_by_device);
        strmap_clear(&b->service_by_path);
        strmap_clear(&b->device_by_path);
        b->n_devices = b->n_adapters = 0;
}

static size_t index_of(void *arr, size_t n, const void *item)
{
        void **a = arr;
        size_t i = 0;
        while (i < n && a[i] != item)
                i++;
        return i;
}

/* Device that a GATT object belongs to: the device whose path prefixes it, found by trying each
 * prefix that ends before a '/', longest first (a characteristic is two levels below). */
static struct bluez_device *device_of_path(struct bluez *b, const char *path)
{
        for (size_t n = strlen(path); n > 0; n--)
                if (path[n] == '/') {
                        struct bluez_device *d = strmap_get(&b->device_by_path, path, n);
                        if (d)
                                return d;
                }
        return NULL;
}

/* BlueZ puts a characteristic at <device>/serviceXXXX/charYYYY: the device part of its path is
 * what is left after two components, known even when the device object comes later. */
static size_t char_owner_len(const char *char_path)
{
        size_t n = strlen(char_path);
        for (int level = 0; level < 2; level++) {
                while (n > 0 && char_path[n - 1] != '/')
                        n--;
                if (n > 0)
                        n--; /* the '/' itself */
        }
        return n;
}

/* ---- property parsing (a property map, as systemd's bus_map_all_properties) ---- */

struct prop_map {
        const char *name;
        const char *sig;
        int (*set)(sd_bus_message *m, void *obj, unsigned *changed);
};

static int read_string_into(sd_bus_message *m, char *buf, size_t size)
{
        const char *s;
        int r = sd_bus_message_read(m, "s", &s);
        if (r < 0)
                return r;
        snprintf(buf, size, "%s", s);
        return 0;
}

static int set_dev_address(sd_bus_message *m, void *obj, unsigned *changed)
{
        struct bluez_device *d = obj;
        int r = read_string_into(m, d->address, sizeof d->address);
        /* BlueZ writes addresses in capitals, as its object paths do; make sure of it. */
        for (char *c = d->address; *c; c++)
                if (*c >= 'a' && *c <= 'z')
                        *c = (char)(*c - 'a' + 'A');
        return r;
}

static int set_dev_name(sd_bus_message *m, void *obj, unsigned *changed)
{
        struct bluez_device *d = obj;
        return read_string_into(m, d->name, sizeof d->name);
}

static int set_dev_adapter(sd_bus_message *m, void *obj, unsigned *changed)
{
        struct bluez_device *d = obj;
        const char *p;
        int r = sd_bus_message_read(m, "o", &p);
        if (r < 0)
                return r;
        char *dup = strdup(p);
        if (!dup)
                return -ENOMEM;
        free(d->adapter_path);
        d->adapter_path = dup;
        return 0;
}

static int set_dev_rssi(sd_bus_message *m, void *obj, unsigned *changed)
{
        struct bluez_device *d = obj;
        int r = sd_bus_message_read(m, "n", &d->rssi);
        if (r < 0)
                return r;
        d->has_rssi = true;
        d->last_seen_usec = now_usec();
        *changed |= BLUEZ_DEV_ADVERTISED;
        return 0;
}

static int set_dev_mfr(sd_bus_message *m, void *obj, unsigned *changed)
{
        /* Only its arrival matters: every advertisement refreshes it. */
        struct bluez_device *d = obj;
        int r = sd_bus_message_skip(m, "a{qv}");
        if (r < 0)
                return r;
        if (d->has_rssi) {
                d->last_seen_usec = now_usec();
                *changed |= BLUEZ_DEV_ADVERTISED;
        }
        return 0;
}

static int set_dev_connected(sd_bus_message *m, void *obj, unsigned *changed)
{
        struct bluez_device *d = obj;
        int v;
        int r = sd_bus_message_read(m, "b", &v);
        if (r < 0)
                return r;
        d->connected = v;
        *changed |= BLUEZ_DEV_CONNECTED;
        return 0;
}

static int set_dev_resolved(sd_bus_message *m, void *obj, unsigned *changed)
{
        struct bluez_device *d = obj;
        int v;
        int r = sd_bus_message_read(m, "b", &v);
        if (r < 0)
                return r;
        d->services_resolved = v;
        *changed |= BLUEZ_DEV_RESOLVED;
        return 0;
}

static const struct prop_map device_props[] = {
        {"Address", "s", set_dev_address},
        {"Alias", "s", set_dev_name},
        {"Adapter", "o", set_dev_adapter},
        {"RSSI", "n", set_dev_rssi},
        {"ManufacturerData", "a{qv}", set_dev_mfr},
        {"Connected", "b", set_dev_connected},
        {"ServicesResolved", "b", set_dev_resolved},
        {},
};

static int set_adapter_address(sd_bus_message *m, void *obj, unsigned *changed)
{
        struct bluez_adapter *a = obj;
        return read_string_into(m, a->address, sizeof a->address);
}

static int set_adapter_powered(sd_bus_message *m, void *obj, unsigned *changed)
{
        struct bluez_adapter *a = obj;
        int v;
        int r = sd_bus_message_read(m, "b", &v);
        if (r >= 0)
                a->powered = v;
        if (r >= 0 && !v)
                a->own_discovery = false; /* powering off ends every discovery session */
        *changed |= 1;
        return r;
}

static int set_adapter_discovering(sd_bus_message *m, void *obj, unsigned *changed)
{
        struct bluez_adapter *a = obj;
        int v;
        int r = sd_bus_message_read(m, "b", &v);
        if (r >= 0)
                a->discovering = v;
        *changed |= 1;
        return r;
}

static const struct prop_map adapter_props[] = {
        {"Address", "s", set_adapter_address},
        {"Powered", "b", set_adapter_powered},
        {"Discovering", "b", set_adapter_discovering},
        {},
};

static int set_uuid(sd_bus_message *m, char *buf, size_t size)
{
        int r = read_string_into(m, buf, size);
        for (char *p = buf; *p; p++)
                if (*p >= 'A' && *p <= 'Z')
                        *p = (char)(*p - 'A' + 'a');
        return r;
}

static int set_service_uuid(sd_bus_message *m, void *obj, unsigned *changed)
{
        struct bluez_service *s = obj;
        return set_uuid(m, s->uuid, sizeof s->uuid);
}

static int set_service_device(sd_bus_message *m, void *obj, unsigned *changed)
{
        struct bluez_service *s = obj;
        const char *p;
        int r = sd_bus_message_read(m, "o", &p);
        if (r < 0)
                return r;
        free(s->device_path);
        s->device_path = strdup(p);
        return s->device_path ? 0 : -ENOMEM;
}

static const struct prop_map service_props[] = {
        {"UUID", "s", set_service_uuid},
        {"Device", "o", set_service_device},
        {},
};

static int set_char_uuid(sd_bus_message *m, void *obj, unsigned *changed)
{
        struct bluez_char *c = obj;
        return set_uuid(m, c->uuid, sizeof c->uuid);
}

static int set_char_service(sd_bus_message *m, void *obj, unsigned *changed)
{
        struct bluez_char *c = obj;
        const char *p;
        int r = sd_bus_message_read(m, "o", &p);
        if (r < 0)
                return r;
        free(c->service_path);
        c->service_path = strdup(p);
        return c->service_path ? 0 : -ENOMEM;
}

static int set_char_flags(sd_bus_message *m, void *obj, unsigned *changed)
{
        static const struct {
                const char *name;
                unsigned flag;
        } map[] = {
                {"read", BLUEZ_CHAR_READ},
                {"write", BLUEZ_CHAR_WRITE},
                {"write-without-response", BLUEZ_CHAR_WRITE_NO_RESPONSE},
                {"notify", BLUEZ_CHAR_NOTIFY},
                {"indicate", BLUEZ_CHAR_INDICATE},
        };
        struct bluez_char *c = obj;
        int r = sd_bus_message_enter_container(m, 'a', "s");
        if (r < 0)
                return r;
        c->flags = 0;
        const char *s;
        while ((r = sd_bus_message_read(m, "s", &s)) > 0)
                for (size_t i = 0; i < ELEMENTSOF(map); i++)
                        if (streq(s, map[i].name))
                                c->flags |= map[i].flag;
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

static const struct prop_map char_props[] = {
        {"UUID", "s", set_char_uuid},
        {"Service", "o", set_char_service},
        {"Flags", "as", set_char_flags},
        {},
};

/* Reads an a{sv} dict into obj through map; unknown keys and keys of another type are skipped
 * (a newer BlueZ may add properties). Returns a negative errno on a malformed message. */
static int parse_props(sd_bus_message *m, const struct prop_map *map, void *obj, unsigned *changed)
{
        int r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *key, *contents;
                if ((r = sd_bus_message_read(m, "s", &key)) < 0)
                        return r;
                if ((r = sd_bus_message_peek_type(m, NULL, &contents)) < 0)
                        return r;
                const struct prop_map *p = map;
                while (p->name && !(streq(p->name, key) && streq(p->sig, contents)))
                        p++;
                if (p->name) {
                        if ((r = sd_bus_message_enter_container(m, 'v', contents)) < 0 ||
                                (r = p->set(m, obj, changed)) < 0 ||
                                (r = sd_bus_message_exit_container(m)) < 0)
                                return r;
                } else if ((r = sd_bus_message_skip(m, "v")) < 0)
                        return r;
                if ((r = sd_bus_message_exit_container(m)) < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

int bluez_parse_device_props(sd_bus_message *m, struct bluez_device *d, unsigned *changed)
{
        return parse_props(m, device_props, d, changed);
}

/* The invalidated list of PropertiesChanged: RSSI going away means "no longer discovered". */
static int parse_invalidated(sd_bus_message *m, struct bluez_device *d, unsigned *changed)
{
        int r = sd_bus_message_enter_container(m, 'a', "s");
        if (r < 0)
                return r;
        const char *s;
        while ((r = sd_bus_message_read(m, "s", &s)) > 0)
                if (d && streq(s, "RSSI")) {
                        d->has_rssi = false;
                        *changed |= BLUEZ_DEV_LOST;
                }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

/* ---- interfaces added / removed ---- */

static struct bluez_device *device_new(struct bluez *b, const char *path)
{
        struct bluez_device *d = calloc(1, sizeof *d);
        if (!d || !(d->path = strdup(path)) || push(&b->devices, &b->n_devices, d) < 0)
                goto fail;
        if (strmap_put(&b->device_by_path, d->path, strlen(d->path), d) < 0) {
                b->n_devices--;
                goto fail;
        }
        return d;
fail:
        device_free(d);
        return NULL;
}

static struct bluez_service *service_new(struct bluez *b, const char *path)
{
        struct bluez_service *s = calloc(1, sizeof *s);
        if (!s || !(s->path = strdup(path)) ||
                strmap_put(&b->service_by_path, s->path, strlen(s->path), s) < 0) {
                service_free(s);
                return NULL;
        }
        return s;
}

static struct bluez_char *char_new(struct bluez *b, const char *path)
{
        struct bluez_char *c = calloc(1, sizeof *c);
        if (!c || !(c->path = strdup(path)))
                goto fail;
        if (strmap_put(&b->char_by_path, c->path, strlen(c->path), c) < 0)
                goto fail;
        if (strmap_put(&b->chars_by_device, c->path, char_owner_len(c->path), c) < 0) {
                strmap_remove(&b->char_by_path, c->path, strlen(c->path), c);
                goto fail;
        }
        return c;
fail:
        char_free(c);
        return NULL;
}

static void device_gatt_changed(struct bluez *b, const char *path)
{
        struct bluez_device *d = device_of_path(b, path);
        if (d && b->h.device)
                b->h.device(b->userdata, d, BLUEZ_DEV_GATT);
}

static int add_interfaces(struct bluez *b, const char *path, sd_bus_message *m)
{
        int r = sd_bus_message_enter_container(m, 'a', "{sa{sv}}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sa{sv}")) > 0) {
                const char *iface;
                if ((r = sd_bus_message_read(m, "s", &iface)) < 0)
                        return r;
                unsigned changed = 0;
                if (streq(iface, "org.bluez.Adapter1")) {
                        struct bluez_adapter *a = FIND(b->adapters, b->n_adapters, path);
                        bool is_new = !a;
                        if (is_new) {
                                a = calloc(1, sizeof *a);
                                if (!a || !(a->path = strdup(path)) ||
                                        push(&b->adapters, &b->n_adapters, a) < 0) {
                                        adapter_free(a);
                                        return -ENOMEM;
                                }
                                const char *slash = strrchr(path, '/');
                                snprintf(a->name, sizeof a->name, "%s", slash ? slash + 1 : path);
                        }
                        if ((r = parse_props(m, adapter_props, a, &changed)) < 0)
                                return r;
                        if (b->h.adapter)
                                b->h.adapter(b->userdata, a, false);
                } else if (streq(iface, "org.bluez.Device1")) {
                        struct bluez_device *d = strmap_get_str(&b->device_by_path, path);
                        if (!d && !(d = device_new(b, path)))
                                return -ENOMEM;
                        if ((r = parse_props(m, device_props, d, &changed)) < 0)
                                return r;
                        if (b->h.device)
                                b->h.device(b->userdata, d, changed | BLUEZ_DEV_ADDED);
                } else if (streq(iface, "org.bluez.GattService1")) {
                        struct bluez_service *s = strmap_get_str(&b->service_by_path, path);
                        if (!s && !(s = service_new(b, path)))
                                return -ENOMEM;
                        if ((r = parse_props(m, service_props, s, &changed)) < 0)
                                return r;
                        device_gatt_changed(b, path);
                } else if (streq(iface, "org.bluez.GattCharacteristic1")) {
                        struct bluez_char *c = strmap_get_str(&b->char_by_path, path);
                        if (!c && !(c = char_new(b, path)))
                                return -ENOMEM;
                        if ((r = parse_props(m, char_props, c, &changed)) < 0)
                                return r;
                        device_gatt_changed(b, path);
                } else if ((r = sd_bus_message_skip(m, "a{sv}")) < 0)
                        return r;
                if ((r = sd_bus_message_exit_container(m)) < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

static void remove_path(struct bluez *b, const char *path, const char *iface)
{
        if (streq(iface, "org.bluez.GattCharacteristic1")) {
                struct bluez_char *c = strmap_remove(&b->char_by_path, path, strlen(path), NULL);
                if (!c)
                        return;
                strmap_remove(&b->chars_by_device, c->path, char_owner_len(c->path), c);
                char_free(c);
                device_gatt_changed(b, path);
        } else if (streq(iface, "org.bluez.GattService1")) {
                struct bluez_service *s = strmap_remove(&b->service_by_path, path, strlen(path), NULL);
                if (!s)
                        return;
                service_free(s);
                device_gatt_changed(b, path);
        } else if (streq(iface, "org.bluez.Device1")) {
                struct bluez_device *d = strmap_remove(&b->device_by_path, path, strlen(path), NULL);
                if (!d)
                        return;
                remove_at(&b->devices, &b->n_devices, index_of(b->devices, b->n_devices, d));
                d->connected = d->services_resolved = d->has_rssi = false;
                if (b->h.device)
                        b->h.device(b->userdata, d, BLUEZ_DEV_REMOVED);
                device_free(d);
        } else if (streq(iface, "org.bluez.Adapter1")) {
                for (size_t i = 0; i < b->n_adapters; i++)
                        if (streq(b->adapters[i]->path, path)) {
                                struct bluez_adapter *a = b->adapters[i];
                                remove_at(&b->adapters, &b->n_adapters, i);
                                a->powered = a->discovering = false;
                                if (b->h.adapter)
                                        b->h.adapter(b->userdata, a, true);
                                adapter_free(a);
                                return;
                        }
        }
}

static int on_interfaces_added(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        struct bluez *b = userdata;
        const char *path;
        int r = sd_bus_message_read(m, "o", &path);
        if (r >= 0)
                r = add_interfaces(b, path, m);
        if (r < 0)
                log_warning_errno(r, "Ignoring malformed InterfacesAdded from BlueZ: %m");
        return 0;
}

static int on_interfaces_removed(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        struct bluez *b = userdata;
        const char *path, *iface;
        int r = sd_bus_message_read(m, "o", &path);
        if (r < 0 || (r = sd_bus_message_enter_container(m, 'a', "s")) < 0)
                return log_warning_errno(r, "Ignoring malformed InterfacesRemoved from BlueZ: %m"), 0;
        _cleanup_free_ char *p = strdup(path);
        if (!p)
                return 0;
        while ((r = sd_bus_message_read(m, "s", &iface)) > 0)
                remove_path(b, p, iface);
        return 0;
}

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        struct bluez *b = userdata;
        const char *iface, *path = sd_bus_message_get_path(m);
        int r = sd_bus_message_read(m, "s", &iface);
        if (r < 0 || !path)
                return 0;
        unsigned changed = 0;
        if (streq(iface, "org.bluez.Device1")) {
                struct bluez_device *d = strmap_get_str(&b->device_by_path, path);
                if (!d)
                        return 0;
                if ((r = parse_props(m, device_props, d, &changed)) < 0 ||
                        (r = parse_invalidated(m, d, &changed)) < 0)
                        return log_warning_errno(r, "Ignoring malformed PropertiesChanged on %s: %m", path),
                               0;
                if (changed && b->h.device)
                        b->h.device(b->userdata, d, changed);
        } else if (streq(iface, "org.bluez.Adapter1")) {
                struct bluez_adapter *a = FIND(b->adapters, b->n_adapters, path);
                if (!a)
                        return 0;
                if ((r = parse_props(m, adapter_props, a, &changed)) < 0)
                        return log_warning_errno(r, "Ignoring malformed PropertiesChanged on %s: %m", path),
                               0;
                if (b->h.adapter)
                        b->h.adapter(b->userdata, a, false);
        } else if (streq(iface, "org.bluez.GattCharacteristic1")) {
                /* Value: a notification. Read it straight from the message, no copy kept. */
                if ((r = sd_bus_message_enter_container(m, 'a', "{sv}")) < 0)
                        return 0;
                while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
                        const char *key, *contents;
                        if (sd_bus_message_read(m, "s", &key) < 0 ||
                                sd_bus_message_peek_type(m, NULL, &contents) < 0)
                                return 0;
                        if (streq(key, "Value") && streq(contents, "ay")) {
                                const void *data;
                                size_t len;
                                if (sd_bus_message_enter_container(m, 'v', "ay") < 0 ||
                                        sd_bus_message_read_array(m, 'y', &data, &len) < 0 ||
                                        sd_bus_message_exit_container(m) < 0)
                                        return 0;
                                if (b->h.notification)
                                        b->h.notification(b->userdata, path, data, len);
                        } else if (sd_bus_message_skip(m, "v") < 0)
                                return 0;
                        if (sd_bus_message_exit_container(m) < 0)
                                return 0;
                }
        }
        return 0;
}

/* One interface's PropertiesChanged, filtered by the bus (arg0) so that the others never reach
 * us. */
static int match_properties_changed_slot(
        struct bluez *b, sd_bus_slot **slot, const char *iface, const char *path)
{
        char rule[320];
        snprintf(rule, sizeof rule,
                "type='signal',sender='org.bluez',interface='org.freedesktop.DBus.Properties',"
                "member='PropertiesChanged',%s='%s',arg0='%s'",
                path ? "path" : "path_namespace", path ? path : "/org/bluez", iface);
        return sd_bus_add_match_async(b->bus, slot, rule, on_properties_changed, NULL, b);
}

static int match_properties_changed(struct bluez *b, const char *iface)
{
        return match_properties_changed_slot(b, NULL, iface, NULL);
}

/* ---- sync with GetManagedObjects ---- */

static int on_managed_objects(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
        struct bluez *b = userdata;
        b->sync_slot = sd_bus_slot_unref(b->sync_slot);
        const char *msg;
        enum bluez_error e = error_from_reply(m, &msg);
        if (e != BLUEZ_OK) {
                log_warning("GetManagedObjects on org.bluez failed: %s (%s)", msg ? msg : "",
                        bluez_error_to_string(e));
                if (b->h.synced)
                        b->h.synced(b->userdata, e, msg);
                return 0;
        }
        int r = sd_bus_message_enter_container(m, 'a', "{oa{sa{sv}}}");
        while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "oa{sa{sv}}")) > 0) {
                const char *path;
                if ((r = sd_bus_message_read(m, "o", &path)) < 0)
                        break;
                _cleanup_free_ char *p = strdup(path);
                if (!p || (r = add_interfaces(b, p, m)) < 0)
                        break;
                r = sd_bus_message_exit_container(m);
        }
        if (r < 0) {
                log_warning_errno(r, "Malformed GetManagedObjects reply from BlueZ: %m");
                if (b->h.synced)
                        b->h.synced(b->userdata, BLUEZ_ERR_FAILED, "malformed GetManagedObjects reply");
                return 0;
        }
        b->up = true;
        log_debug("BlueZ: %zu adapter(s), %zu device(s)", b->n_adapters, b->n_devices);
        if (b->h.service)
                b->h.service(b->userdata, true);
        if (b->h.synced)
                b->h.synced(b->userdata, BLUEZ_OK, NULL);
        return 0;
}

static int resync(struct bluez *b)
{
        b->sync_slot = sd_bus_slot_unref(b->sync_slot);
        return sd_bus_call_method_async(b->bus, &b->sync_slot, BLUEZ, "/",
                "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", on_managed_objects, b, "");
}

static void service_down(struct bluez *b)
{
        bool was_up = b->up;
        b->up = false;
        /* Everything vanished with bluetoothd: tell the layers above, as removals. */
        /* Each removal shrinks its list; clear_objects frees whatever one did not find. */
        for (size_t n = b->n_devices; n > 0 && b->n_devices == n; n--)
                remove_path(b, b->devices[n - 1]->path, "org.bluez.Device1");
        for (size_t n = b->n_adapters; n > 0 && b->n_adapters == n; n--)
                remove_path(b, b->adapters[n - 1]->path, "org.bluez.Adapter1");
        clear_objects(b);
        if (was_up && b->h.service)
                b->h.service(b->userdata, false);
}

static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        struct bluez *b = userdata;
        const char *name, *old_owner, *new_owner;
        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 || !streq(name, BLUEZ))
                return 0;
        if (*old_owner) {
                log_warning("BlueZ left the bus (bluetoothd stopped or restarting)");
                service_down(b);
        }
        if (*new_owner) {
                log_info("BlueZ is on the bus: resynchronising");
                resync(b);
        }
        return 0;
}

static int on_bus_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        struct bluez *b = userdata;
        log_error("Lost the connection to the system bus");
        b->broken = true;
        service_down(b);
        return 0;
}

int bluez_new(struct bluez **ret, sd_event *event, const struct bluez_handlers *h, void *userdata)
{
        struct bluez *b = calloc(1, sizeof *b);
        if (!b)
                return -ENOMEM;
        b->event = sd_event_ref(event);
        b->h = *h;
        b->userdata = userdata;
        int r = sd_bus_open_system_with_description(&b->bus, "blupowd");
        if (r < 0) {
                bluez_free(b);
                return r;
        }
        if ((r = sd_bus_attach_event(b->bus, event, SD_EVENT_PRIORITY_NORMAL)) < 0)
                goto fail;
        /* Matches first, then the snapshot: no change can fall between the two. */
        r = sd_bus_match_signal_async(b->bus, NULL, BLUEZ, "/", "org.freedesktop.DBus.ObjectManager",
                "InterfacesAdded", on_interfaces_added, NULL, b);
        if (r >= 0)
                r = sd_bus_match_signal_async(b->bus, NULL, BLUEZ, "/", "org.freedesktop.DBus.ObjectManager",
                        "InterfacesRemoved", on_interfaces_removed, NULL, b);
        if (r >= 0)
                r = match_properties_changed(b, "org.bluez.Adapter1");
        if (r >= 0)
                r = sd_bus_add_match_async(b->bus, NULL,
                        "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                        "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='org.bluez'",
                        on_name_owner_changed, NULL, b);
        if (r >= 0)
                r = sd_bus_match_signal(b->bus, NULL, "org.freedesktop.DBus.Local",
                        "/org/freedesktop/DBus/Local", "org.freedesktop.DBus.Local", "Disconnected",
                        on_bus_disconnected, b);
        if (r < 0)
                goto fail;
        if ((r = resync(b)) < 0)
                goto fail;
        *ret = b;
        return 0;
fail:
        bluez_free(b);
        return r;
}

static int device_path_of(char *path, size_t size, const char *adapter, const char *address)
{
        int n = snprintf(path, size, "/org/bluez/%s/dev_%s", adapter, address);
        if (n < 0 || (size_t)n >= size)
                return -EINVAL;
        for (char *c = path + n - strlen(address); *c; c++)
                *c = *c == ':' ? '_' : (char)toupper((unsigned char)*c);
        return n;
}

int bluez_watch_device(struct bluez *b, const char *adapter, const char *address)
{
        struct device_watch *w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        int n = device_path_of(w->path, sizeof w->path, adapter, address), r = n;
        if (n >= 0 && strmap_get(&b->watches, w->path, (size_t)n)) {
                free(w);
                return 0;
        }
        if (n >= 0)
                r = match_properties_changed_slot(b, &w->slot, "org.bluez.Device1", w->path);
        if (r >= 0)
                r = strmap_put(&b->watches, w->path, (size_t)n, w);
        if (r < 0) {
                sd_bus_slot_unref(w->slot);
                free(w);
                return r;
        }
        return 0;
}

void bluez_unwatch_device(struct bluez *b, const char *adapter, const char *address)
{
        char path[64];
        int n = device_path_of(path, sizeof path, adapter, address);
        struct device_watch *w = n < 0 ? NULL : strmap_remove(&b->watches, path, (size_t)n, NULL);
        if (!w)
                return;
        sd_bus_slot_unref(w->slot); /* removes the match */
        free(w);
}

int bluez_watch_all_devices(struct bluez *b, bool on)
{
        if (!on) {
                b->all_devices = sd_bus_slot_unref(b->all_devices);
                return 0;
        }
        if (b->all_devices)
                return 0;
        return match_properties_changed_slot(b, &b->all_devices, "org.bluez.Device1", NULL);
}

struct bluez *bluez_free(struct bluez *b)
{
        if (!b)
                return NULL;
        while (b->calls)
                bluez_call_cancel(b->calls);
        void *w;
        for (size_t i = 0; strmap_each(&b->watches, &i, &w);) {
                sd_bus_slot_unref(((struct device_watch *)w)->slot);
                free(w);
        }
        strmap_clear(&b->watches);
        sd_bus_slot_unref(b->all_devices);
        sd_bus_slot_unref(b->sync_slot);
        clear_objects(b);
        free(b->adapters);
        free(b->devices);
        sd_bus_flush_close_unref(b->bus);
        sd_event_unref(b->event);
        free(b);
        return NULL;
}

bool bluez_service_up(const struct bluez *b)
{
        return b && b->up;
}

bool bluez_bus_broken(const struct bluez *b)
{
        return !b || b->broken;
}

const struct bluez_adapter *bluez_adapter_find(const struct bluez *b, const char *name)
{
        for (size_t i = 0; i < b->n_adapters; i++)
                if (streq(b->adapters[i]->name, name))
                        return b->adapters[i];
        return NULL;
}

const struct bluez_adapter *bluez_adapter_first(const struct bluez *b)
{
        return b->n_adapters ? b->adapters[0] : NULL;
}

size_t bluez_adapters(const struct bluez *b, const struct bluez_adapter *const **ret)
{
        *ret = (const struct bluez_adapter *const *)b->adapters;
        return b->n_adapters;
}

const struct bluez_device *bluez_device_find(
        const struct bluez *b, const char *adapter_path, const char *address)
{
        if (!adapter_path) {
                for (size_t i = 0; i < b->n_devices; i++)
                        if (strcasecmp(b->devices[i]->address, address) == 0)
                                return b->devices[i];
                return NULL;
        }
        /* BlueZ names a device <adapter>/dev_XX_XX_XX_XX_XX_XX after its address. */
        char path[256];
        int n = snprintf(path, sizeof path, "%s/dev_%s", adapter_path, address);
        if (n < 0 || (size_t)n >= sizeof path)
                return NULL;
        for (char *c = path + n - strlen(address); *c; c++)
                *c = *c == ':' ? '_' : (char)toupper((unsigned char)*c);
        const struct bluez_device *d = strmap_get(&b->device_by_path, path, (size_t)n);
        if (d && strcasecmp(d->address, address) == 0 && d->adapter_path &&
                streq(d->adapter_path, adapter_path))
                return d;
        return NULL;
}

size_t bluez_devices(const struct bluez *b, const struct bluez_device *const **ret)
{
        *ret = (const struct bluez_device *const *)b->devices;
        return b->n_devices;
}

static bool uuid_eq(const char *a, const char *b)
{
        return strcasecmp(a, b) == 0;
}

const struct bluez_char *bluez_char_find(const struct bluez *b, const char *device_path,
        const char *service_uuid, const char *char_uuid, unsigned flags)
{
        struct strmap_iter it;
        size_t len = strlen(device_path);
        for (const struct bluez_char *c = strmap_get_iter(&b->chars_by_device, device_path, len, &it); c;
                c = strmap_next(&b->chars_by_device, device_path, len, &it)) {
                if (!c->service_path || !uuid_eq(c->uuid, char_uuid) || (flags && !(c->flags & flags)))
                        continue;
                const struct bluez_service *s = strmap_get_str(&b->service_by_path, c->service_path);
                if (s && uuid_eq(s->uuid, service_uuid))
                        return c;
        }
        return NULL;
}

/* ---- calls ---- */

static void call_unlink(struct bluez_call *c)
{
        if (c->prev)
                c->prev->next = c->next;
        else
                c->b->calls = c->next;
        if (c->next)
                c->next->prev = c->prev;
}

static void call_free(struct bluez_call *c)
{
        sd_bus_slot_unref(c->slot);
        free(c->device_path);
        free(c);
}

/* A successful Connect means connected, signalled or not: bluetoothd 5.66 often sends no
 * PropertiesChanged(Connected=true) for a central's own connection (it logs "Device … is
 * already connected"), yet Get reads true and Disconnect works. A successful Disconnect means
 * disconnected: 5.66 answers it before it signals Connected=false. Without this a session would
 * never know it has a link to hand back, nor, after, that it handed it back. */
static void mark_connected(struct bluez *b, const char *path, bool connected)
{
        struct bluez_device *d = strmap_get_str(&b->device_by_path, path);
        if (!d || d->connected == connected)
                return;
        if (connected) {
                log_debug("%s: Connect succeeded without a Connected signal", d->address);
                d->connected = true;
        } else
                d->connected = d->services_resolved = false;
}

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        struct bluez_call *c = userdata;
        const char *msg;
        enum bluez_error e = error_from_reply(m, &msg);
        _cleanup_free_ char *msg_copy = msg ? strdup(msg) : NULL;
        bluez_done_t cb = c->cb;
        bluez_fd_done_t fd_cb = c->fd_cb;
        void *ud = c->userdata;
        if (c->device_path && e == BLUEZ_OK)
                mark_connected(c->b, c->device_path, c->connects);
        call_unlink(c);
        call_free(c);
        if (fd_cb) {
                int fd = -1, passed;
                uint16_t mtu = 0;
                if (e == BLUEZ_OK) {
                        /* The message owns the descriptor it carries: keep a duplicate. A reply
                         * without one (a bus or security policy that does not pass descriptors
                         * to us) counts as not supported, so that the caller stops asking. */
                        if (sd_bus_message_read(m, "hq", &passed, &mtu) < 0) {
                                e = BLUEZ_ERR_NOT_SUPPORTED;
                                msg_copy = (free(msg_copy), strdup("reply without (h fd, q mtu)"));
                        } else if ((fd = fcntl(passed, F_DUPFD_CLOEXEC, 3)) < 0) {
                                e = BLUEZ_ERR_NOT_SUPPORTED;
                                msg_copy = (free(msg_copy), strdup(strerror(errno)));
                        }
                }
                fd_cb(ud, e, msg_copy, fd, mtu);
        } else if (cb)
                cb(ud, e, msg_copy);
        return 0;
}

void bluez_call_cancel(struct bluez_call *c)
{
        if (!c)
                return;
        call_unlink(c);
        call_free(c); /* the callback will not run */
}

static int call_send(struct bluez *b, sd_bus_message *m, uint64_t timeout, bluez_done_t cb, void *userdata,
        struct bluez_call **ret)
{
        struct bluez_call *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        *c = (struct bluez_call){.b = b, .cb = cb, .userdata = userdata};
        int r = sd_bus_call_async(b->bus, &c->slot, m, on_reply, c, timeout);
        if (r < 0) {
                free(c);
                return r;
        }
        c->next = b->calls;
        if (b->calls)
                b->calls->prev = c;
        b->calls = c;
        if (ret)
                *ret = c;
        return 0;
}

/* For a caller that does nothing with the answer: BlueZ is told not to send one, which saves
 * the daemon a wake for it. */
static int send_no_reply(struct bluez *b, sd_bus_message *m)
{
        int r = sd_bus_message_set_expect_reply(m, 0);
        return r < 0 ? r : sd_bus_send(b->bus, m, NULL);
}

static int simple_call(struct bluez *b, const char *path, const char *iface, const char *member,
        uint64_t timeout, bluez_done_t cb, void *userdata, struct bluez_call **ret)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r = sd_bus_message_new_method_call(b->bus, &m, BLUEZ, path, iface, member);
        if (r < 0)
                return r;
        if (!cb && !ret)
                return send_no_reply(b, m);
        return call_send(b, m, timeout, cb, userdata, ret);
}

struct discovery_ctx {
        struct bluez *b;
        char *adapter_path;
        bluez_done_t cb;
        void *userdata;
};

static void discovery_ctx_free(struct discovery_ctx *ctx)
{
        free(ctx->adapter_path);
        free(ctx);
}

static struct bluez_adapter *adapter_by_path(struct bluez *b, const char *path)
{
        for (size_t i = 0; i < b->n_adapters; i++)
                if (streq(b->adapters[i]->path, path))
                        return b->adapters[i];
        return NULL;
}

bool bluez_adapter_shared(const struct bluez_adapter *a)
{
        return a && a->discovering && !a->own_discovery &&
               now_usec() - a->own_discovery_stopped_usec > 2 * USEC_PER_SEC;
}

static void start_discovery_done(void *userdata, enum bluez_error e, const char *message)
{
        struct discovery_ctx *ctx = userdata;
        struct bluez_adapter *a = adapter_by_path(ctx->b, ctx->adapter_path);
        if (a && e == BLUEZ_OK)
                a->own_discovery = true;
        if (ctx->cb)
                ctx->cb(ctx->userdata, e, message);
        discovery_ctx_free(ctx);
}

static void discovery_filter_done(void *userdata, enum bluez_error e, const char *message)
{
        struct discovery_ctx *ctx = userdata;
        /* A filter refused is not fatal: discovery works without it. */
        if (e != BLUEZ_OK)
                log_debug("SetDiscoveryFilter: %s", message ? message : bluez_error_to_string(e));
        int r = simple_call(ctx->b, ctx->adapter_path, "org.bluez.Adapter1", "StartDiscovery",
                DEFAULT_CALL_TIMEOUT, start_discovery_done, ctx, NULL);
        if (r < 0) {
                if (ctx->cb)
                        ctx->cb(ctx->userdata, BLUEZ_ERR_DISCONNECTED, strerror(-r));
                discovery_ctx_free(ctx);
        }
}

int bluez_start_discovery(struct bluez *b, const char *adapter_path, bluez_done_t cb, void *userdata)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r = sd_bus_message_new_method_call(
                b->bus, &m, BLUEZ, adapter_path, "org.bluez.Adapter1", "SetDiscoveryFilter");
        if (r < 0)
                return r;
        /* LE only, and no duplicate reports: fewer signals while we scan. */
        r = sd_bus_message_append(m, "a{sv}", 2, "Transport", "s", "le", "DuplicateData", "b", 0);
        if (r < 0)
                return r;
        struct discovery_ctx *ctx = calloc(1, sizeof *ctx);
        if (!ctx || !(ctx->adapter_path = strdup(adapter_path))) {
                free(ctx);
                return -ENOMEM;
        }
        *ctx = (struct discovery_ctx){
                .b = b, .adapter_path = ctx->adapter_path, .cb = cb, .userdata = userdata};
        r = call_send(b, m, DEFAULT_CALL_TIMEOUT, discovery_filter_done, ctx, NULL);
        if (r < 0) {
                free(ctx->adapter_path);
                free(ctx);
        }
        return r;
}

int bluez_stop_discovery(struct bluez *b, const char *adapter_path, bluez_done_t cb, void *userdata)
{
        struct bluez_adapter *a = adapter_by_path(b, adapter_path);
        if (a) {
                a->own_discovery = false;
                a->own_discovery_stopped_usec = now_usec();
        }
        return simple_call(b, adapter_path, "org.bluez.Adapter1", "StopDiscovery", DEFAULT_CALL_TIMEOUT, cb,
                userdata, NULL);
}

/* Connect and Disconnect, whose success also tells the device's state. */
static int link_call(struct bluez *b, const char *device_path, const char *member, bool connects,
        uint64_t timeout_usec, bluez_done_t cb, void *userdata, struct bluez_call **ret)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        struct bluez_call *c = NULL;
        int r = sd_bus_message_new_method_call(b->bus, &m, BLUEZ, device_path, "org.bluez.Device1", member);
        if (r < 0)
                return r;
        if (!cb && !ret)
                return send_no_reply(b, m);
        if ((r = call_send(b, m, timeout_usec, cb, userdata, &c)) < 0)
                return r;
        c->connects = connects;
        if (!(c->device_path = strdup(device_path))) {
                bluez_call_cancel(c);
                return -ENOMEM;
        }
        if (ret)
                *ret = c;
        return 0;
}

int bluez_connect(struct bluez *b, const char *device_path, uint64_t timeout_usec, bluez_done_t cb,
        void *userdata, struct bluez_call **ret)
{
        return link_call(b, device_path, "Connect", true, timeout_usec, cb, userdata, ret);
}

int bluez_disconnect(
        struct bluez *b, const char *device_path, bluez_done_t cb, void *userdata, struct bluez_call **ret)
{
        return link_call(b, device_path, "Disconnect", false, DEFAULT_CALL_TIMEOUT, cb, userdata, ret);
}

int bluez_start_notify(
        struct bluez *b, const char *char_path, bluez_done_t cb, void *userdata, struct bluez_call **ret)
{
        /* AddMatch goes out before StartNotify on the same connection: the bus installs it before
         * BlueZ can send the first Value. */
        if (!b->char_signals) {
                int r = match_properties_changed(b, "org.bluez.GattCharacteristic1");
                if (r < 0)
                        return r;
                b->char_signals = true;
        }
        return simple_call(b, char_path, "org.bluez.GattCharacteristic1", "StartNotify",
                DEFAULT_CALL_TIMEOUT, cb, userdata, ret);
}

/* AcquireNotify and AcquireWrite take the same options and answer the same "hq". */
static int acquire(struct bluez *b, const char *char_path, const char *method, bluez_fd_done_t cb,
        void *userdata, struct bluez_call **ret)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        struct bluez_call *c = NULL;
        int r = sd_bus_message_new_method_call(
                b->bus, &m, BLUEZ, char_path, "org.bluez.GattCharacteristic1", method);
        if (r < 0)
                return r;
        if ((r = sd_bus_message_append(m, "a{sv}", 0)) < 0)
                return r;
        if ((r = call_send(b, m, DEFAULT_CALL_TIMEOUT, NULL, userdata, &c)) < 0)
                return r;
        c->fd_cb = cb;
        if (ret)
                *ret = c;
        return 0;
}

int bluez_acquire_notify(
        struct bluez *b, const char *char_path, bluez_fd_done_t cb, void *userdata, struct bluez_call **ret)
{
        return acquire(b, char_path, "AcquireNotify", cb, userdata, ret);
}

int bluez_acquire_write(
        struct bluez *b, const char *char_path, bluez_fd_done_t cb, void *userdata, struct bluez_call **ret)
{
        return acquire(b, char_path, "AcquireWrite", cb, userdata, ret);
}

int bluez_write_command(struct bluez *b, const char *char_path, const uint8_t *data, size_t len,
        bluez_done_t cb, void *userdata, struct bluez_call **ret)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r = sd_bus_message_new_method_call(
                b->bus, &m, BLUEZ, char_path, "org.bluez.GattCharacteristic1", "WriteValue");
        if (r < 0)
                return r;
        if ((r = sd_bus_message_append_array(m, 'y', data, len)) < 0)
                return r;
        /* Write without response: Renogy packs reject writes with response (RENOGY_BLE.md §1.4). */
        if ((r = sd_bus_message_append(m, "a{sv}", 1, "type", "s", "command")) < 0)
                return r;
        return call_send(b, m, DEFAULT_CALL_TIMEOUT, cb, userdata, ret);
}

int bluez_set_powered(struct bluez *b, const char *adapter_path, bool on, bluez_done_t cb, void *userdata)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r = sd_bus_message_new_method_call(
                b->bus, &m, BLUEZ, adapter_path, "org.freedesktop.DBus.Properties", "Set");
        if (r < 0)
                return r;
        if ((r = sd_bus_message_append(m, "ssv", "org.bluez.Adapter1", "Powered", "b", (int)on)) < 0)
                return r;
        if (!cb)
                return send_no_reply(b, m);
        return call_send(b, m, DEFAULT_CALL_TIMEOUT, cb, userdata, NULL);
}
