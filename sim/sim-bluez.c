/* SPDX-License-Identifier: MIT */
/* The BlueZ 5.66 D-Bus surface: Adapter1, Device1, GattService1 and GattCharacteristic1,
 * with the reply semantics, error names and signal order of bluetoothd (BLUEZ.md §1). */
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "modbus.h"
#include "sim.h"

#define UUID(x)         "0000" x "-0000-1000-8000-00805f9b34fb"
#define ERR_FAILED      "org.bluez.Error.Failed"
#define ERR_NOT_READY   "org.bluez.Error.NotReady"
#define ERR_IN_PROGRESS "org.bluez.Error.InProgress"

uint64_t sim_now(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
}

/* ---- deferred work: a timer that does nothing once the module's link changed ---- */

struct later {
        struct sim_module *m;
        unsigned generation;
        bool any_generation;
        void (*fn)(struct sim_module *m, void *data);
        void *data;
        sd_event_source *src;
        struct later *next, *prev;
};
static struct later *laters;

static int later_cb(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct later *l = userdata;
        if (l->any_generation || l->m->generation == l->generation)
                l->fn(l->m, l->data);
        else
                free(l->data);
        if (l->prev)
                l->prev->next = l->next;
        else
                laters = l->next;
        if (l->next)
                l->next->prev = l->prev;
        sd_event_source_unref(l->src);
        free(l);
        return 0;
}

static void later_full(struct sim_module *m, unsigned ms, bool any_generation,
        void (*fn)(struct sim_module *, void *), void *data)
{
        struct later *l = calloc(1, sizeof *l);
        if (!l) {
                free(data); /* ours from the call on, as when the timer cannot be added */
                return;
        }
        *l = (struct later){.m = m,
                .generation = m->generation,
                .any_generation = any_generation,
                .fn = fn,
                .data = data};
        if (sd_event_add_time_relative(m->sim->event, &l->src, CLOCK_MONOTONIC, (uint64_t)ms * USEC_PER_MSEC,
                    1, later_cb, l) < 0) {
                free(l);
                free(data);
                return;
        }
        l->next = laters;
        if (laters)
                laters->prev = l;
        laters = l;
}

static void later(struct sim_module *m, unsigned ms, void (*fn)(struct sim_module *, void *), void *data)
{
        later_full(m, ms, false, fn, data);
}

void sim_later(struct sim_module *m, unsigned ms, void (*fn)(struct sim_module *, void *), void *data)
{
        later_full(m, ms, false, fn, data);
}

void sim_laters_free(void);
void sim_laters_free(void)
{
        while (laters) {
                struct later *l = laters;
                laters = l->next;
                sd_event_source_unref(l->src);
                free(l->data);
                free(l);
        }
}

/* ---- helpers ---- */

static void emit(struct sim_module *m, const char *path, const char *iface, const char *prop)
{
        if (m->sim->name_owned)
                sd_bus_emit_properties_changed(m->sim->bus, path, iface, prop, NULL);
}

static void emit_device(struct sim_module *m, const char *prop)
{
        if (m->exported)
                emit(m, m->path, "org.bluez.Device1", prop);
}

static bool client_in(char **list, const char *name)
{
        for (int i = 0; i < SIM_MAX_CLIENTS; i++)
                if (list[i] && streq(list[i], name))
                        return true;
        return false;
}

static int client_add(char **list, const char *name)
{
        for (int i = 0; i < SIM_MAX_CLIENTS; i++)
                if (!list[i]) {
                        list[i] = strdup(name);
                        return list[i] ? 0 : -ENOMEM;
                }
        return -ENOSPC;
}

static bool client_remove(char **list, const char *name)
{
        for (int i = 0; i < SIM_MAX_CLIENTS; i++)
                if (list[i] && (!name || streq(list[i], name))) {
                        free(list[i]);
                        list[i] = NULL;
                        if (name)
                                return true;
                }
        return false;
}

static bool list_empty(char **list)
{
        for (int i = 0; i < SIM_MAX_CLIENTS; i++)
                if (list[i])
                        return false;
        return true;
}

struct sim_module *sim_module_by_address(struct sim *sim, const char *address)
{
        for (size_t i = 0; i < sim->n_modules; i++)
                if (strcasecmp(sim->modules[i].address, address) == 0 ||
                        streq(sim->modules[i].path, address))
                        return &sim->modules[i];
        return NULL;
}

struct sim_adapter *sim_adapter_by_name(struct sim *sim, const char *name)
{
        for (size_t i = 0; i < sim->n_adapters; i++)
                if (streq(sim->adapters[i].name, name))
                        return &sim->adapters[i];
        return NULL;
}

bool sim_module_advertising(const struct sim_module *m)
{
        return !m->connected && !m->faults[FAULT_ASLEEP] && !m->faults[FAULT_HELD] && m->adapter->present &&
               m->adapter->powered;
}

static struct sim_gatt *notify_char(struct sim_module *m)
{
        for (size_t i = 0; i < m->n_gatt; i++)
                if (m->gatt[i].notify)
                        return &m->gatt[i];
        return NULL;
}

static struct sim_gatt *write_char(struct sim_module *m)
{
        for (size_t i = 0; i < m->n_gatt; i++)
                if (m->gatt[i].write)
                        return &m->gatt[i];
        return NULL;
}

/* ---- GATT objects ---- */

static int prop_gatt_uuid(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        struct sim_gatt *g = userdata;
        return sd_bus_message_append(reply, "s", g->uuid);
}

static int prop_gatt_primary(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        return sd_bus_message_append(reply, "b", 1);
}

static int prop_gatt_device(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        struct sim_gatt *g = userdata;
        return sd_bus_message_append(reply, "o", g->module->path);
}

static int prop_gatt_includes(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        return sd_bus_message_append(reply, "ao", 0);
}

static int prop_char_service(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        struct sim_gatt *g = userdata;
        return sd_bus_message_append(reply, "o", g->service->path);
}

static int prop_char_value(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        struct sim_gatt *g = userdata;
        struct sim_module *m = g->module;
        if (g->notify)
                return sd_bus_message_append_array(reply, 'y', m->value, m->value_len);
        return sd_bus_message_append_array(reply, 'y', m->write_value, m->write_value_len);
}

static int prop_char_notifying(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        struct sim_gatt *g = userdata;
        return sd_bus_message_append(reply, "b", g->notify && g->module->notifying);
}

static int prop_char_flags(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        struct sim_gatt *g = userdata;
        if (g->notify)
                return sd_bus_message_append(reply, "as", 1, "notify");
        if (g->write)
                return sd_bus_message_append(reply, "as", 2, "write-without-response", "write");
        int r = sd_bus_message_open_container(reply, 'a', "s");
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(g->flags) && g->flags[i]; i++)
                r = sd_bus_message_append(reply, "s", g->flags[i]);
        return r < 0 ? r : sd_bus_message_close_container(reply);
}

/* The other characteristics and the descriptors read as BlueZ's cache has them: the PnP ID
 * (vendor 0x000D, product 0, version 0x0110, as the peripheral's DeviceID in the real-stack
 * tier), CCCDs off, the rest empty. */
/* What the other characteristics and the descriptors hold in BlueZ's cache: the PnP ID (vendor
 * 0x000D, product 0, version 0x0110, as the peripheral's DeviceID in the real-stack tier), CCCDs
 * off, the rest empty. */
static int append_other_value(sd_bus_message *m, const struct sim_gatt *g)
{
        static const uint8_t pnp[] = {0x01, 0x0d, 0x00, 0x00, 0x00, 0x10, 0x01};
        static const uint8_t cccd[] = {0x00, 0x00};
        if (strncmp(g->uuid, "00002a50", 8) == 0)
                return sd_bus_message_append_array(m, 'y', pnp, sizeof pnp);
        if (strncmp(g->uuid, "00002902", 8) == 0)
                return sd_bus_message_append_array(m, 'y', cccd, sizeof cccd);
        return sd_bus_message_append_array(m, 'y', NULL, 0);
}

static int prop_other_value(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        return append_other_value(reply, userdata);
}

static int method_read_other(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = append_other_value(reply, userdata);
        return r < 0 ? r : sd_bus_send(NULL, reply, NULL);
}

static int prop_char_notify_acquired(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        struct sim_gatt *g = userdata;
        return sd_bus_message_append(reply, "b", g->module->notify_fd_src != NULL);
}

static int prop_char_write_acquired(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        struct sim_gatt *g = userdata;
        return sd_bus_message_append(reply, "b", g->module->write_fd_src != NULL);
}

static int prop_char_mtu(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        struct sim_gatt *g = userdata;
        return sd_bus_message_append(reply, "q", (uint16_t)(g->module->timing.chunk_size + 3));
}

static void deliver_request(struct sim_module *m, void *data);

static int parse_write_options(sd_bus_message *msg, const char **type, sd_bus_error *error)
{
        int r = sd_bus_message_enter_container(msg, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(msg, 'e', "sv")) > 0) {
                const char *key;
                if ((r = sd_bus_message_read(msg, "s", &key)) < 0)
                        return r;
                const char *contents;
                if ((r = sd_bus_message_peek_type(msg, NULL, &contents)) < 0)
                        return r;
                if (streq(key, "type")) {
                        if (!streq(contents, "s"))
                                return sd_bus_error_set(error, "org.bluez.Error.InvalidArguments",
                                        "Invalid arguments in method call");
                        if ((r = sd_bus_message_read(msg, "v", "s", type)) < 0)
                                return r;
                        if (!streq(*type, "command") && !streq(*type, "request") &&
                                !streq(*type, "reliable"))
                                return sd_bus_error_set(error, "org.bluez.Error.InvalidArguments",
                                        "Invalid arguments in method call");
                } else if (streq(key, "offset")) {
                        if (!streq(contents, "q"))
                                return sd_bus_error_set(error, "org.bluez.Error.InvalidArguments",
                                        "Invalid arguments in method call");
                        uint16_t off;
                        if ((r = sd_bus_message_read(msg, "v", "q", &off)) < 0)
                                return r;
                        if (off != 0)
                                return sd_bus_error_set(
                                        error, "org.bluez.Error.InvalidOffset", "Invalid offset");
                } else if ((r = sd_bus_message_skip(msg, "v")) < 0)
                        return r; /* unknown keys are ignored, as by BlueZ */
                if ((r = sd_bus_message_exit_container(msg)) < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(msg);
}

struct request_data {
        size_t len;
        uint8_t bytes[512];
};

/* A write reached the module (WriteValue, or a packet on an acquired write socket, or as a
 * peripheral a write from the real BlueZ): it answers a request after its response latency. */
int sim_module_accept_write(struct sim_module *m, const uint8_t *bytes, size_t len)
{
        if (len > sizeof m->write_value)
                return -EMSGSIZE;
        m->n_writes++;
        memcpy(m->write_value, bytes, len);
        m->write_value_len = len;

        struct request_data *d = malloc(sizeof *d);
        if (!d)
                return -ENOMEM;
        d->len = len;
        memcpy(d->bytes, bytes, len);
        if (len == MODBUS_REQUEST_LEN && modbus_crc16(bytes, len) == 0) {
                m->n_requests++;
                m->outstanding++;
                if (m->outstanding > m->max_outstanding)
                        m->max_outstanding = m->outstanding;
        }
        later(m, m->timing.response_ms, deliver_request, d);
        return 0;
}

static void write_reply(struct sim_module *m, void *data)
{
        if (m->pending_write) {
                sd_bus_reply_method_return(m->pending_write, NULL);
                m->pending_write = sd_bus_message_unref(m->pending_write);
        }
}

static int method_write_value(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        struct sim_gatt *g = userdata;
        struct sim_module *m = g->module;
        const void *bytes;
        size_t len;
        int r = sd_bus_message_read_array(msg, 'y', &bytes, &len);
        if (r < 0)
                return r;
        const char *type = NULL;
        if ((r = parse_write_options(msg, &type, error)) < 0 || sd_bus_error_is_set(error))
                return r;
        if (!g->write)
                return sd_bus_error_set(error, "org.bluez.Error.NotSupported", "Operation is not supported");
        if (!m->connected)
                return sd_bus_error_set(error, ERR_FAILED, "Not connected");
        if (m->write_fd_src)
                return sd_bus_error_set(error, "org.bluez.Error.NotPermitted", "Write acquired");
        if (m->pending_write)
                return sd_bus_error_set(error, ERR_IN_PROGRESS, "In Progress");
        if (len > sizeof m->write_value)
                return sd_bus_error_set(error, "org.bluez.Error.InvalidValueLength", "Invalid Length");
        if ((r = sim_module_accept_write(m, bytes, len)) < 0)
                return r;

        /* Write without response is answered once queued; with response after the ATT round
         * trip, and a second write meanwhile gets InProgress. */
        if (type && !streq(type, "command")) {
                m->pending_write = sd_bus_message_ref(msg);
                later(m, 15, write_reply, NULL);
                return 1;
        }
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_start_notify(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        struct sim_gatt *g = userdata;
        struct sim_module *m = g->module;
        if (!g->notify)
                return sd_bus_error_set(error, "org.bluez.Error.NotSupported", "Operation is not supported");
        if (m->notify_fd_src)
                return sd_bus_error_set(error, "org.bluez.Error.NotPermitted", "Notify acquired");
        const char *sender = sd_bus_message_get_sender(msg);
        if (!sender)
                return -EINVAL;
        if (!client_in(m->notify_clients, sender) && client_add(m->notify_clients, sender) < 0)
                return sd_bus_error_set(error, ERR_FAILED, "Too many notify sessions");
        int r = sd_bus_reply_method_return(msg, NULL);
        if (!m->notifying) {
                m->notifying = true;
                emit(m, g->path, "org.bluez.GattCharacteristic1", "Notifying");
        }
        return r;
}

/* The acquirer's end is closed (the client released it or left) or the link dropped: BlueZ
 * forgets the acquisition. */
static void notify_release(struct sim_module *m)
{
        if (!m->notify_fd_src)
                return;
        m->notify_fd_src = sd_event_source_disable_unref(m->notify_fd_src); /* closes our end */
        struct sim_gatt *g = notify_char(m);
        if (g && m->gatt_exported)
                emit(m, g->path, "org.bluez.GattCharacteristic1", "NotifyAcquired");
}

/* The call record's "(socket closed)": the client gave an acquired socket back. */
static void record_client_close(struct sim_module *m, bool notify)
{
        struct sim_gatt *g = notify ? notify_char(m) : write_char(m);
        sim_record(m->sim, notify ? "" : m->write_owner, g ? g->path : "", "(socket closed)",
                notify ? "notify" : "write");
}

/* When the link drops, a client may have closed its end a moment before, with the hang-up not
 * yet dispatched here: it is recorded all the same. */
static void record_if_client_closed(struct sim_module *m, sd_event_source *src, bool notify)
{
        if (!src)
                return;
        struct pollfd p = {.fd = sd_event_source_get_io_fd(src), .events = POLLIN};
        if (poll(&p, 1, 0) == 1 && (p.revents & POLLHUP))
                record_client_close(m, notify);
}

static int on_acquired_fd(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct sim_module *m = userdata;
        uint8_t b[64]; /* BlueZ reads and ignores what the client writes on a notify socket */
        if ((revents & (EPOLLHUP | EPOLLERR)) || recv(fd, b, sizeof b, MSG_DONTWAIT) == 0) {
                record_client_close(m, true);
                notify_release(m);
        }
        return 0;
}

/* AcquireNotify's and AcquireWrite's answer: one end of a SOCK_SEQPACKET pair and the ATT MTU,
 * while *src watches (and owns) the other end. */
static int reply_with_socket(struct sim_module *m, sd_bus_message *msg, sd_event_source **src,
        sd_event_io_handler_t handler, struct sim_gatt *g, const char *acquired, sd_bus_error *error)
{
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
                return sd_bus_error_set_errno(error, errno);
        int r = sd_event_add_io(m->sim->event, src, sv[0], EPOLLIN, handler, m);
        if (r >= 0)
                r = sd_event_source_set_io_fd_own(*src, true);
        /* 5.66 signals NotifyAcquired or WriteAcquired before it answers. */
        if (r >= 0)
                emit(m, g->path, "org.bluez.GattCharacteristic1", acquired);
        if (r >= 0)
                r = sd_bus_reply_method_return(msg, "hq", sv[1], (uint16_t)(m->timing.chunk_size + 3));
        close(sv[1]); /* the reply carries a duplicate */
        if (r < 0) {
                bool owned = *src && sd_event_source_get_io_fd_own(*src) > 0;
                *src = sd_event_source_disable_unref(*src);
                if (!owned)
                        close(sv[0]);
        }
        return r;
}

/* AcquireNotify (BLUEZ.md 1.5): a SOCK_SEQPACKET pair, one notification per packet; refused
 * while another client holds a StartNotify session (InProgress) or the socket (NotPermitted). */
static int method_acquire_notify(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        struct sim_gatt *g = userdata;
        struct sim_module *m = g->module;
        if (m->faults[FAULT_NO_ACQUIRE])
                return sd_bus_error_set(error, "org.freedesktop.DBus.Error.UnknownMethod",
                        "Unknown method AcquireNotify or interface org.bluez.GattCharacteristic1.");
        if (!g->notify)
                return sd_bus_error_set(error, "org.bluez.Error.NotSupported", "Operation is not supported");
        if (!m->connected)
                return sd_bus_error_set(error, ERR_FAILED, "Not connected");
        if (m->notify_fd_src)
                return sd_bus_error_set(error, "org.bluez.Error.NotPermitted", "Notify acquired");
        if (!list_empty(m->notify_clients))
                return sd_bus_error_set(error, "org.bluez.Error.InProgress", "Notify already in progress");
        /* NotifyAcquired only: Notifying stays as StartNotify clients have it. */
        int r = reply_with_socket(m, msg, &m->notify_fd_src, on_acquired_fd, g, "NotifyAcquired", error);
        return r < 0 ? r : 1;
}

/* The acquirer closed its end, or the link dropped (BlueZ shuts the socket down): BlueZ forgets
 * the acquisition and writes go through WriteValue again. */
static void write_release(struct sim_module *m)
{
        if (!m->write_fd_src)
                return;
        m->write_fd_src = sd_event_source_disable_unref(m->write_fd_src); /* closes our end */
        m->write_owner[0] = 0;
        struct sim_gatt *g = write_char(m);
        if (g && m->gatt_exported)
                emit(m, g->path, "org.bluez.GattCharacteristic1", "WriteAcquired");
}

/* BlueZ reads each packet and sends it as a write without response (gatt-client.c sock_read). */
static int on_write_fd(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct sim_module *m = userdata;
        uint8_t b[512];
        ssize_t n = recv(fd, b, sizeof b, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n <= 0) {
                record_client_close(m, false);
                write_release(m);
                return 0;
        }
        char detail[1100];
        sim_hex(detail, sizeof detail, b, (size_t)n);
        struct sim_gatt *g = write_char(m);
        sim_record(m->sim, m->write_owner, g ? g->path : "", "(write socket)", detail);
        if (m->connected)
                sim_module_accept_write(m, b, (size_t)n);
        return 0;
}

/* AcquireWrite (BLUEZ.md 1.5): only on a characteristic that writes without response; one
 * holder at a time, and WriteValue is NotPermitted meanwhile. */
static int method_acquire_write(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        struct sim_gatt *g = userdata;
        struct sim_module *m = g->module;
        if (m->faults[FAULT_NO_ACQUIRE])
                return sd_bus_error_set(error, "org.freedesktop.DBus.Error.UnknownMethod",
                        "Unknown method AcquireWrite or interface org.bluez.GattCharacteristic1.");
        if (!m->connected)
                return sd_bus_error_set(error, ERR_FAILED, "Not connected");
        if (m->write_fd_src)
                return sd_bus_error_set(error, "org.bluez.Error.NotPermitted", "Write acquired");
        if (!g->write)
                return sd_bus_error_set(error, "org.bluez.Error.NotSupported", "Operation is not supported");
        int r = reply_with_socket(m, msg, &m->write_fd_src, on_write_fd, g, "WriteAcquired", error);
        if (r < 0)
                return r;
        snprintf(m->write_owner, sizeof m->write_owner, "%s", sd_bus_message_get_sender(msg) ?: "");
        return 1;
}

static int method_stop_notify(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        struct sim_gatt *g = userdata;
        struct sim_module *m = g->module;
        const char *sender = sd_bus_message_get_sender(msg);
        if (!sender || !client_remove(m->notify_clients, sender))
                return sd_bus_error_set(error, ERR_FAILED, "No notify session started");
        int r = sd_bus_reply_method_return(msg, NULL);
        if (list_empty(m->notify_clients) && m->notifying) {
                m->notifying = false;
                emit(m, g->path, "org.bluez.GattCharacteristic1", "Notifying");
        }
        return r;
}

static int method_read_value(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        struct sim_gatt *g = userdata;
        if (!g->module->connected)
                return sd_bus_error_set(error, ERR_FAILED, "Not connected");
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        if (g->notify)
                r = sd_bus_message_append_array(reply, 'y', g->module->value, g->module->value_len);
        else
                r = sd_bus_message_append_array(
                        reply, 'y', g->module->write_value, g->module->write_value_len);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static const sd_bus_vtable service_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("UUID", "s", prop_gatt_uuid, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Device", "o", prop_gatt_device, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Primary", "b", prop_gatt_primary, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Includes", "ao", prop_gatt_includes, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_VTABLE_END,
};

#define CHAR_VTABLE_COMMON                                                                                  \
        SD_BUS_METHOD("ReadValue", "a{sv}", "ay", method_read_value, SD_BUS_VTABLE_UNPRIVILEGED),           \
                SD_BUS_METHOD("WriteValue", "aya{sv}", "", method_write_value, SD_BUS_VTABLE_UNPRIVILEGED), \
                SD_BUS_METHOD("StartNotify", "", "", method_start_notify, SD_BUS_VTABLE_UNPRIVILEGED),      \
                SD_BUS_METHOD("StopNotify", "", "", method_stop_notify, SD_BUS_VTABLE_UNPRIVILEGED),        \
                SD_BUS_METHOD(                                                                              \
                        "AcquireNotify", "a{sv}", "hq", method_acquire_notify, SD_BUS_VTABLE_UNPRIVILEGED), \
                SD_BUS_METHOD(                                                                              \
                        "AcquireWrite", "a{sv}", "hq", method_acquire_write, SD_BUS_VTABLE_UNPRIVILEGED),   \
                SD_BUS_PROPERTY("UUID", "s", prop_gatt_uuid, 0, SD_BUS_VTABLE_PROPERTY_CONST),              \
                SD_BUS_PROPERTY("Service", "o", prop_char_service, 0, SD_BUS_VTABLE_PROPERTY_CONST),        \
                SD_BUS_PROPERTY("Value", "ay", prop_char_value, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),    \
                SD_BUS_PROPERTY(                                                                            \
                        "Notifying", "b", prop_char_notifying, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),     \
                SD_BUS_PROPERTY("Flags", "as", prop_char_flags, 0, SD_BUS_VTABLE_PROPERTY_CONST),           \
                SD_BUS_PROPERTY("MTU", "q", prop_char_mtu, 0, SD_BUS_VTABLE_PROPERTY_CONST)

/* BlueZ shows WriteAcquired only on characteristics that write without response. */
static const sd_bus_vtable write_char_vtable[] = {
        SD_BUS_VTABLE_START(0),
        CHAR_VTABLE_COMMON,
        SD_BUS_PROPERTY(
                "WriteAcquired", "b", prop_char_write_acquired, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_VTABLE_END,
};

/* BlueZ shows NotifyAcquired only on characteristics that can notify. */
static const sd_bus_vtable notify_char_vtable[] = {
        SD_BUS_VTABLE_START(0),
        CHAR_VTABLE_COMMON,
        SD_BUS_PROPERTY(
                "NotifyAcquired", "b", prop_char_notify_acquired, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_VTABLE_END,
};

static struct sim_gatt *gatt_add(
        struct sim_module *m, struct sim_gatt *parent, unsigned handle, const char *uuid)
{
        struct sim_gatt *g = &m->gatt[m->n_gatt++];
        *g = (struct sim_gatt){.module = m, .service = parent, .uuid = uuid};
        if (!parent)
                snprintf(g->path, sizeof g->path, "%s/service%04x", m->path, handle);
        else if (!parent->service)
                snprintf(g->path, sizeof g->path, "%s/char%04x", parent->path, handle);
        else {
                snprintf(g->path, sizeof g->path, "%s/desc%04x", parent->path, handle);
                g->descriptor = true;
        }
        return g;
}

/* The attribute table BlueZ 5.66 exports for a module, as tests/realstack sees it: Generic
 * Attribute (Service Changed with its CCCD, Client and Database features) and Device
 * Information (PnP ID) before the module's own services, a CCCD under every characteristic that
 * notifies. Generic Access is bluetoothd's own: in UUIDs, never exported. The handles (in the
 * paths) are the firmware's business; clients find characteristics by UUID. */
/* Generic Attribute's, Device Information's and the OTA service's characteristics: read and
 * written by nobody here, present because BlueZ exports them. */
static const sd_bus_vtable other_char_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("ReadValue", "a{sv}", "ay", method_read_other, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_PROPERTY("UUID", "s", prop_gatt_uuid, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Service", "o", prop_char_service, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Flags", "as", prop_char_flags, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Value", "ay", prop_other_value, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_VTABLE_END,
};

static const sd_bus_vtable descriptor_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("ReadValue", "a{sv}", "ay", method_read_other, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_PROPERTY("UUID", "s", prop_gatt_uuid, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Characteristic", "o", prop_char_service, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Flags", "as", prop_char_flags, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Value", "ay", prop_other_value, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_VTABLE_END,
};

static void gatt_layout(struct sim_module *m)
{
        memset(m->gatt, 0, sizeof m->gatt);
        m->n_gatt = 0;
        struct sim_gatt *s, *c;
        s = gatt_add(m, NULL, 0x0006, UUID("1801"));
        c = gatt_add(m, s, 0x0007, UUID("2a05"));
        c->flags[0] = "indicate";
        gatt_add(m, c, 0x0009, UUID("2902"))->flags[0] = "read";
        gatt_add(m, s, 0x000a, UUID("2b29"))->flags[0] = "read";
        gatt_add(m, s, 0x000c, UUID("2b2a"))->flags[0] = "read";
        s = gatt_add(m, NULL, 0x000e, UUID("180a"));
        gatt_add(m, s, 0x000f, UUID("2a50"))->flags[0] = "read";
        if (m->shunt) {
                s = gatt_add(m, NULL, 0x0011, UUID("c011"));
                c = gatt_add(m, s, 0x0012, UUID("c411"));
                c->notify = true;
                gatt_add(m, c, 0x0014, UUID("2902"))->flags[0] = "read";
                return;
        }
        s = gatt_add(m, NULL, 0x0011, UUID("ffd0"));
        gatt_add(m, s, 0x0012, UUID("ffd1"))->write = true;
        s = gatt_add(m, NULL, 0x0014, UUID("fff0"));
        c = gatt_add(m, s, 0x0015, UUID("fff1"));
        c->notify = true;
        gatt_add(m, c, 0x0017, UUID("2902"))->flags[0] = "read";
        /* The CC2541's TI OTA service on a BT-1/BT-2. */
        s = gatt_add(m, NULL, 0x0018, "f000ffc0-0451-4000-b000-000000000000");
        c = gatt_add(m, s, 0x0019, "f000ffc1-0451-4000-b000-000000000000");
        c->flags[0] = "write-without-response";
        c->flags[1] = "notify";
        gatt_add(m, c, 0x001b, UUID("2902"))->flags[0] = "read";
        c = gatt_add(m, s, 0x001c, "f000ffc2-0451-4000-b000-000000000000");
        c->flags[0] = "write-without-response";
        c->flags[1] = "notify";
        gatt_add(m, c, 0x001e, UUID("2902"))->flags[0] = "read";
}

static const char *gatt_iface(const struct sim_gatt *g)
{
        return g->descriptor ? "org.bluez.GattDescriptor1"
               : g->service  ? "org.bluez.GattCharacteristic1"
                             : "org.bluez.GattService1";
}

static const sd_bus_vtable *gatt_vtable(const struct sim_gatt *g)
{
        if (g->descriptor)
                return descriptor_vtable;
        if (!g->service)
                return service_vtable;
        if (g->notify)
                return notify_char_vtable;
        if (g->write)
                return write_char_vtable;
        return other_char_vtable;
}

static void gatt_export(struct sim_module *m)
{
        if (m->gatt_exported)
                return;
        gatt_layout(m);
        for (size_t i = 0; i < m->n_gatt; i++) {
                struct sim_gatt *g = &m->gatt[i];
                const char *iface = gatt_iface(g);
                if (sd_bus_add_object_vtable(
                            m->sim->bus, &m->gatt_slots[i], g->path, iface, gatt_vtable(g), g) < 0)
                        continue;
                if (m->sim->name_owned)
                        sd_bus_emit_interfaces_added(m->sim->bus, g->path, iface, NULL);
        }
        m->gatt_exported = true;
        m->uuids_changed = true;
}

static void gatt_unexport(struct sim_module *m, bool signal)
{
        if (!m->gatt_exported)
                return;
        for (size_t i = m->n_gatt; i-- > 0;) {
                struct sim_gatt *g = &m->gatt[i];
                if (signal && m->sim->name_owned)
                        sd_bus_emit_interfaces_removed(m->sim->bus, g->path, gatt_iface(g), NULL);
                m->gatt_slots[i] = sd_bus_slot_unref(m->gatt_slots[i]);
        }
        m->gatt_exported = false;
        m->uuids_changed = true;
}

/* Device1.UUIDs holds the resolved services: it changes, and is signalled, only when the GATT
 * objects came or went. A connect that finds them cached (BlueZ's Cache=always) changes nothing
 * there, so BlueZ sends no PropertiesChanged(UUIDs) then. */
static void emit_uuids_if_changed(struct sim_module *m)
{
        if (!m->uuids_changed)
                return;
        m->uuids_changed = false;
        emit_device(m, "UUIDs");
}

/* ---- notifications ---- */

/* One notification payload on its way, a chunk at a time. Each chunk's timer sends the next, so
 * the chunks leave in order even when the interval between them is 0: sd-event runs timers due
 * at the same instant in no set order, and a reply's packets would arrive shuffled. */
struct chunks {
        size_t len, sent;
        bool counted;          /* a Modbus reply: its end settles an outstanding request */
        bool drop_after_first; /* FAULT_DROP_MID_RESPONSE: the link drops after the first chunk */
        uint8_t bytes[512];
};

static void send_chunk(struct sim_module *m, void *data)
{
        struct chunks *c = data;
        size_t n = MIN(m->timing.chunk_size, c->len - c->sent);
        struct sim_gatt *g = notify_char(m);
        if (m->sim->peripheral) {
                if (m->connected)
                        sim_peripheral_notify(m, c->bytes + c->sent, n);
        } else if (m->connected && m->notify_fd_src) {
                /* Acquired: a packet on the socket, and Value is left as it was. */
                if (send(sd_event_source_get_io_fd(m->notify_fd_src), c->bytes + c->sent, n,
                            MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
                        notify_release(m);
        } else if (m->connected && m->notifying && g && m->gatt_exported) {
                memcpy(m->value, c->bytes + c->sent, n);
                m->value_len = n;
                /* BlueZ emits Value on every notification, even with the same bytes. */
                emit(m, g->path, "org.bluez.GattCharacteristic1", "Value");
        }
        c->sent += n;
        if (c->sent < c->len && !c->drop_after_first) {
                later(m, m->timing.chunk_interval_ms, send_chunk, c);
                return;
        }
        if (c->counted && m->outstanding > 0)
                m->outstanding--;
        bool drop = c->drop_after_first;
        free(c);
        if (drop)
                sim_module_drop_link(m);
}

static void send_in_chunks(struct sim_module *m, const uint8_t *bytes, size_t len, bool count_outstanding)
{
        struct chunks *c = calloc(1, sizeof *c);
        if (!c || len == 0 || len > sizeof c->bytes) {
                free(c);
                return;
        }
        /* A reply of one chunk has no middle: the fault waits for one of several. */
        if (count_outstanding && m->faults[FAULT_DROP_MID_RESPONSE] && len > m->timing.chunk_size) {
                if (m->faults[FAULT_DROP_MID_RESPONSE] > 0)
                        m->faults[FAULT_DROP_MID_RESPONSE]--;
                c->drop_after_first = true;
        }
        memcpy(c->bytes, bytes, len);
        c->len = len;
        c->counted = count_outstanding;
        later(m, 0, send_chunk, c);
}

static void deliver_request(struct sim_module *m, void *data)
{
        struct request_data *d = data;
        uint8_t reply[MODBUS_MAX_FRAME];
        size_t n = sim_unit_respond(m, d->bytes, d->len, reply, sizeof reply);
        bool modbus = d->len == MODBUS_REQUEST_LEN && modbus_crc16(d->bytes, d->len) == 0;
        free(d);
        if (n == 0) {
                if (modbus && m->outstanding > 0)
                        m->outstanding--;
                return;
        }
        if (m->faults[FAULT_CORRUPT]) {
                if (m->faults[FAULT_CORRUPT] > 0)
                        m->faults[FAULT_CORRUPT]--;
                reply[n / 2] ^= 0x5A;
        }
        send_in_chunks(m, reply, n, true);
}

void sim_shunt_push(struct sim_module *m)
{
        if (!m->shunt || !m->connected || !(m->notifying || m->notify_fd_src))
                return;
        send_in_chunks(m, m->units[0].shunt_frame, SHUNT_LIVE_FRAME_LEN, false);
}

/* ---- Device1 ---- */

static int prop_dev_str(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        struct sim_module *m = userdata;
        if (streq(prop, "Address"))
                return sd_bus_message_append(reply, "s", m->address);
        if (streq(prop, "AddressType"))
                return sd_bus_message_append(reply, "s", "public");
        return sd_bus_message_append(reply, "s", m->name); /* Name, Alias */
}

static int prop_dev_bool(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        struct sim_module *m = userdata;
        int v = 0;
        if (streq(prop, "Connected"))
                v = m->connected;
        else if (streq(prop, "ServicesResolved"))
                v = m->resolved;
        return sd_bus_message_append(reply, "b", v);
}

static int prop_dev_rssi(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        struct sim_module *m = userdata;
        return sd_bus_message_append(reply, "n", m->rssi);
}

static int prop_dev_adapter(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        struct sim_module *m = userdata;
        return sd_bus_message_append(reply, "o", m->adapter->path);
}

static int prop_dev_uuids(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        struct sim_module *m = userdata;
        if (!m->gatt_exported)
                return sd_bus_message_append(reply, "as", 1, m->shunt ? UUID("c011") : UUID("ffd0"));
        /* Resolved: every service, bluetoothd's own Generic Access among them. */
        int r = sd_bus_message_open_container(reply, 'a', "s");
        if (r >= 0)
                r = sd_bus_message_append(reply, "s", UUID("1800"));
        for (size_t i = 0; r >= 0 && i < m->n_gatt; i++)
                if (!m->gatt[i].service)
                        r = sd_bus_message_append(reply, "s", m->gatt[i].uuid);
        return r < 0 ? r : sd_bus_message_close_container(reply);
}

static int prop_dev_modalias(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        return sd_bus_message_append(reply, "s", "bluetooth:v000Dp0000d0110");
}

static const sd_bus_vtable modalias_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Modalias", "s", prop_dev_modalias, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_VTABLE_END,
};

/* Renogy modules echo their MAC: the first two bytes read as a little-endian company id,
 * the other four as the payload (RENOGY_BLE.md §1.2). */
int sim_append_manufacturer_data(sd_bus_message *reply, const char *address)
{
        unsigned b[6];
        if (sscanf(address, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
                return -EINVAL;
        uint8_t payload[4] = {(uint8_t)b[2], (uint8_t)b[3], (uint8_t)b[4], (uint8_t)b[5]};
        int r = sd_bus_message_open_container(reply, 'a', "{qv}");
        if (r < 0)
                return r;
        if ((r = sd_bus_message_open_container(reply, 'e', "qv")) < 0 ||
                (r = sd_bus_message_append(reply, "q", (uint16_t)(b[1] << 8 | b[0]))) < 0 ||
                (r = sd_bus_message_open_container(reply, 'v', "ay")) < 0 ||
                (r = sd_bus_message_append_array(reply, 'y', payload, sizeof payload)) < 0 ||
                (r = sd_bus_message_close_container(reply)) < 0 ||
                (r = sd_bus_message_close_container(reply)) < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

static int prop_dev_mfr(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        struct sim_module *m = userdata;
        return sim_append_manufacturer_data(reply, m->address);
}

static void connect_resolved(struct sim_module *m, void *data);

static void gatt_export_late(struct sim_module *m, void *data)
{
        gatt_export(m);
        emit_uuids_if_changed(m);
}

static void gatt_export_discovered(struct sim_module *m, void *data)
{
        gatt_export(m);
}

static void connect_done(struct sim_module *m, void *data)
{
        m->connected = true;
        m->temporary = false;
        /* When signalled, Connected=true comes before the reply. */
        if (m->connected_signal)
                emit_device(m, "Connected");
        if (m->pending_connect) {
                sd_bus_reply_method_return(m->pending_connect, NULL);
                m->pending_connect = sd_bus_message_unref(m->pending_connect);
        }
        /* On the first connection the services are discovered after the reply (0.6-0.8 s over
         * btvirt), then resolved; a connection that finds them cached exports nothing. */
        if (m->faults[FAULT_RESOLVED_EARLY])
                gatt_unexport(m, true);
        else if (!m->gatt_exported)
                later(m, m->timing.resolve_ms / 2, gatt_export_discovered, NULL);
        later(m, m->timing.resolve_ms, connect_resolved, NULL);
}

static void connect_resolved(struct sim_module *m, void *data)
{
        m->resolved = true;
        /* One signal, as 5.66 sends it: UUIDs (when the services changed) with ServicesResolved. */
        if (m->uuids_changed && m->exported && m->sim->name_owned) {
                m->uuids_changed = false;
                sd_bus_emit_properties_changed(
                        m->sim->bus, m->path, "org.bluez.Device1", "UUIDs", "ServicesResolved", NULL);
        } else
                emit_device(m, "ServicesResolved");
        /* The PnP ID read in the resolution gives Device1 a Modalias, signalled after. */
        if (!m->modalias_slot && m->exported &&
                sd_bus_add_object_vtable(m->sim->bus, &m->modalias_slot, m->path, "org.bluez.Device1",
                        modalias_vtable, m) >= 0)
                emit_device(m, "Modalias");
        if (m->faults[FAULT_RESOLVED_EARLY]) {
                if (m->faults[FAULT_RESOLVED_EARLY] > 0)
                        m->faults[FAULT_RESOLVED_EARLY]--;
                later(m, 300, gatt_export_late, NULL); /* bluez#1489 */
        }
        if (m->shunt)
                sim_shunt_push(m);
}

static void connected_false(struct sim_module *m, void *data)
{
        if (!m->connected)
                return;
        m->connected = false;
        emit_device(m, "Connected");
}

static void connect_aborted(struct sim_module *m, void *data)
{
        /* The link comes up for a moment, the Connect fails, then Connected=false follows. */
        m->connected = true;
        emit_device(m, "Connected");
        if (m->pending_connect) {
                sd_bus_reply_method_errorf(m->pending_connect, ERR_FAILED, "le-connection-abort-by-local");
                m->pending_connect = sd_bus_message_unref(m->pending_connect);
        }
        later(m, 100, connected_false, NULL);
}

/* A Connect to a module that stopped advertising. bluetoothd 5.66 over the kernel gives no
 * reply at all for 35 s and more (tests/realstack: test_asleep_then_awake), until the client's
 * Disconnect cancels it with br-connection-canceled, which the simulator does too. Here the
 * attempt ends by itself after the scenario's le_connect_timeout_ms instead, on purpose: the
 * fault scenarios set 3 s so that a sleeping module's tests take seconds, not minutes. A
 * scenario that wants the real behaviour sets a timeout longer than the client's. */
static void connect_timed_out(struct sim_module *m, void *data)
{
        if (m->pending_connect) {
                sd_bus_reply_method_errorf(m->pending_connect, ERR_FAILED, "le-connection-abort-by-local");
                m->pending_connect = sd_bus_message_unref(m->pending_connect);
        }
}

static int method_connect(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        struct sim_module *m = userdata;
        if (!m->adapter->powered)
                return sd_bus_error_set(error, ERR_NOT_READY, "Resource Not Ready");
        if (m->connected)
                return sd_bus_reply_method_return(msg, NULL); /* LE: already connected is success */
        if (m->pending_connect)
                return sd_bus_error_set(error, ERR_FAILED, "Operation already in progress");
        m->n_connects++;
        if (m->adapter->discovering)
                m->connects_while_discovering++;
        m->pending_connect = sd_bus_message_ref(msg);
        if (m->faults[FAULT_CONNECT_HANG]) {
                if (m->faults[FAULT_CONNECT_HANG] > 0)
                        m->faults[FAULT_CONNECT_HANG]--;
                return 1;
        }
        if (m->faults[FAULT_ASLEEP]) {
                later(m, m->sim->le_connect_timeout_ms, connect_timed_out, NULL);
                return 1;
        }
        if (m->faults[FAULT_HELD] || m->faults[FAULT_CONNECT_ABORT]) {
                if (!m->faults[FAULT_HELD] && m->faults[FAULT_CONNECT_ABORT] > 0)
                        m->faults[FAULT_CONNECT_ABORT]--;
                later(m, m->timing.connect_ms, connect_aborted, NULL);
                return 1;
        }
        later(m, m->timing.connect_ms, connect_done, NULL);
        return 1;
}

/* A module that was not answering connection requests (hang, asleep) answers again: the
 * controller's pending LE connection completes, as it does when the device becomes
 * connectable, instead of waiting for the Connect's timeout. */
void sim_module_connectable_again(struct sim_module *m)
{
        if (m->pending_connect && !m->connected && !m->faults[FAULT_CONNECT_HANG] &&
                !m->faults[FAULT_ASLEEP] && !m->faults[FAULT_HELD])
                later(m, m->timing.connect_ms, connect_done, NULL);
}

/* A link lost from the far side or with bluetoothd stopping: ServicesResolved=false and
 * Connected=false in one PropertiesChanged. */
static void link_down_signal(struct sim_module *m)
{
        char *props[3];
        size_t n = 0;
        if (m->resolved)
                props[n++] = (char *)"ServicesResolved";
        if (m->connected)
                props[n++] = (char *)"Connected";
        props[n] = NULL;
        m->resolved = m->connected = false;
        if (n && m->exported && m->sim->name_owned)
                sd_bus_emit_properties_changed_strv(m->sim->bus, m->path, "org.bluez.Device1", props);
}

/* The acquired sockets and StartNotify sessions end with the link. */
static void release_link_state(struct sim_module *m)
{
        record_if_client_closed(m, m->notify_fd_src, true);
        record_if_client_closed(m, m->write_fd_src, false);
        notify_release(m); /* the client sees HUP on its end */
        write_release(m);
        if (m->notifying) {
                m->notifying = false;
                client_remove(m->notify_clients, NULL);
                struct sim_gatt *g = notify_char(m);
                if (g && m->gatt_exported)
                        emit(m, g->path, "org.bluez.GattCharacteristic1", "Notifying");
        }
}

/* The link drops from the far side (asleep, taken, out of range, a drop in a reply): Connected
 * goes false first, then BlueZ releases the sockets, as 5.66 does. */
void sim_module_drop_link(struct sim_module *m)
{
        if (m->sim->peripheral) {
                sim_peripheral_drop(m); /* the real BlueZ signals it */
                return;
        }
        m->generation++;
        if (m->pending_connect) {
                sd_bus_reply_method_errorf(m->pending_connect, ERR_FAILED, "br-connection-canceled");
                m->pending_connect = sd_bus_message_unref(m->pending_connect);
        }
        if (m->pending_write) {
                sd_bus_reply_method_errorf(m->pending_write, ERR_FAILED, "Not connected");
                m->pending_write = sd_bus_message_unref(m->pending_write);
        }
        m->outstanding = 0;
        link_down_signal(m);
        release_link_state(m);
        if (m->pending_disconnect) {
                sd_bus_reply_method_return(m->pending_disconnect, NULL);
                m->pending_disconnect = sd_bus_message_unref(m->pending_disconnect);
        }
}

/* Our own Disconnect's end, as 5.66 sends it: ServicesResolved=false, the reply, then
 * Connected=false (here after the module's disconnect_ms; 2.3 s over btvirt). Connected=false
 * comes even for a connection whose Connected=true was never signalled. */
static void disconnect_done(struct sim_module *m, void *data)
{
        if (!m->pending_disconnect)
                return;
        if (m->resolved) {
                m->resolved = false;
                emit_device(m, "ServicesResolved");
        }
        sd_bus_reply_method_return(m->pending_disconnect, NULL);
        m->pending_disconnect = sd_bus_message_unref(m->pending_disconnect);
        if (m->connected) {
                m->connected = false;
                emit_device(m, "Connected");
        }
}

static int method_disconnect(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        struct sim_module *m = userdata;
        if (m->pending_connect) {
                sd_bus_reply_method_errorf(m->pending_connect, ERR_FAILED, "br-connection-canceled");
                m->pending_connect = sd_bus_message_unref(m->pending_connect);
                m->generation++;
                return sd_bus_reply_method_return(msg, NULL);
        }
        if (!m->connected)
                return sd_bus_reply_method_return(msg, NULL);
        if (m->pending_disconnect)
                return sd_bus_error_set(error, "org.bluez.Error.InProgress", "In Progress");
        m->n_disconnects++;
        m->generation++;
        m->outstanding = 0;
        /* The acquired flags drop at once; the link's end is signalled, then answered, later. */
        release_link_state(m);
        m->pending_disconnect = sd_bus_message_ref(msg);
        later(m, m->timing.disconnect_ms, disconnect_done, NULL);
        return 1;
}

static int method_not_needed(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        return sd_bus_error_set(error, "org.bluez.Error.NotSupported", "Operation is not supported");
}

static const sd_bus_vtable device_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("Connect", "", "", method_connect, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Disconnect", "", "", method_disconnect, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("ConnectProfile", "s", "", method_not_needed, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("DisconnectProfile", "s", "", method_not_needed, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Pair", "", "", method_not_needed, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("CancelPairing", "", "", method_not_needed, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_PROPERTY("Address", "s", prop_dev_str, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("AddressType", "s", prop_dev_str, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Name", "s", prop_dev_str, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Alias", "s", prop_dev_str, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Paired", "b", prop_dev_bool, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Bonded", "b", prop_dev_bool, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Trusted", "b", prop_dev_bool, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Blocked", "b", prop_dev_bool, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LegacyPairing", "b", prop_dev_bool, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Connected", "b", prop_dev_bool, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("UUIDs", "as", prop_dev_uuids, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Adapter", "o", prop_dev_adapter, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ManufacturerData", "a{qv}", prop_dev_mfr, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ServicesResolved", "b", prop_dev_bool, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_VTABLE_END,
};

/* RSSI exists only while the device is being discovered: a vtable of its own that comes
 * and goes, so that GetAll and InterfacesAdded omit it as BlueZ does. */
static const sd_bus_vtable rssi_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("RSSI", "n", prop_dev_rssi, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_VTABLE_END,
};

static int emit_invalidated(struct sim_module *m, const char *prop)
{
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *sig = NULL;
        int r = sd_bus_message_new_signal(
                m->sim->bus, &sig, m->path, "org.freedesktop.DBus.Properties", "PropertiesChanged");
        if (r < 0)
                return r;
        if ((r = sd_bus_message_append(sig, "sa{sv}", "org.bluez.Device1", 0)) < 0 ||
                (r = sd_bus_message_append_strv(sig, (char *[]){(char *)prop, NULL})) < 0)
                return r;
        return sd_bus_send(m->sim->bus, sig, NULL);
}

static void module_export(struct sim_module *m, bool with_rssi)
{
        if (m->exported)
                return;
        if (sd_bus_add_object_vtable(
                    m->sim->bus, &m->dev_slot, m->path, "org.bluez.Device1", device_vtable, m) < 0)
                return;
        if (with_rssi) {
                sd_bus_add_object_vtable(
                        m->sim->bus, &m->rssi_slot, m->path, "org.bluez.Device1", rssi_vtable, m);
                m->seen = true;
        }
        m->exported = true;
        if (m->sim->name_owned)
                sd_bus_emit_interfaces_added(m->sim->bus, m->path, "org.bluez.Device1", NULL);
}

void sim_module_unexport(struct sim_module *m)
{
        if (!m->exported)
                return;
        sim_module_drop_link(m);
        gatt_unexport(m, true);
        if (m->sim->name_owned)
                sd_bus_emit_interfaces_removed(m->sim->bus, m->path, "org.bluez.Device1", NULL);
        m->rssi_slot = sd_bus_slot_unref(m->rssi_slot);
        m->modalias_slot = sd_bus_slot_unref(m->modalias_slot);
        m->dev_slot = sd_bus_slot_unref(m->dev_slot);
        m->exported = m->seen = false;
}

static void module_lost(struct sim_module *m)
{
        if (!m->seen)
                return;
        m->seen = false;
        m->rssi_slot = sd_bus_slot_unref(m->rssi_slot);
        m->lost_usec = sim_now();
        if (m->exported && m->sim->name_owned)
                emit_invalidated(m, "RSSI");
}

/* ---- discovery filters ---- */

static struct sim_filter *filter_of(struct sim_adapter *a, const char *client)
{
        for (int i = 0; i < SIM_MAX_CLIENTS; i++)
                if (a->filters[i].client && streq(a->filters[i].client, client))
                        return &a->filters[i];
        return NULL;
}

static void filter_clear(struct sim_adapter *a, const char *client)
{
        for (int i = 0; i < SIM_MAX_CLIENTS; i++)
                if (a->filters[i].client && (!client || streq(a->filters[i].client, client))) {
                        free(a->filters[i].client);
                        a->filters[i] = (struct sim_filter){0};
                }
}

/* A filter's UUID as the full lower-case 128-bit string (BlueZ accepts 16-bit short forms). */
static void normalize_uuid(const char *in, char *out, size_t size)
{
        if (strlen(in) == 4)
                snprintf(out, size, "0000%s-0000-1000-8000-00805f9b34fb", in);
        else
                snprintf(out, size, "%s", in);
        for (char *c = out; *c; c++)
                *c = (char)tolower((unsigned char)*c);
}

static bool filter_matches(const struct sim_filter *f, const struct sim_module *m, int16_t rssi)
{
        if (!f->le)
                return false; /* Transport=bredr: LE advertisements are not reported */
        if (f->has_rssi && rssi < f->rssi)
                return false;
        if (f->n_uuids) {
                const char *adv = m->shunt ? UUID("c011") : UUID("ffd0");
                bool any = false;
                for (size_t i = 0; i < f->n_uuids; i++)
                        any = any || streq(f->uuids[i], adv);
                if (!any)
                        return false;
        }
        return !f->pattern[0] || startswith(m->address, f->pattern) || startswith(m->name, f->pattern);
}

/* Whether BlueZ reports this advertisement to D-Bus, and whether repeated ones are reported too
 * (DuplicateData): with every discovering client asking for no duplicates, the controller's
 * duplicate filter lets one report per device through per discovery session. */
static bool discovery_reports(
        struct sim_adapter *a, const struct sim_module *m, int16_t rssi, bool *duplicates)
{
        bool reported = false;
        *duplicates = false;
        for (int i = 0; i < SIM_MAX_CLIENTS; i++) {
                const char *c = a->discovery_clients[i];
                if (!c)
                        continue;
                const struct sim_filter *f = filter_of(a, c);
                if (!f) {
                        reported = *duplicates = true;
                        continue;
                }
                if (filter_matches(f, m, rssi)) {
                        reported = true;
                        *duplicates = *duplicates || f->duplicate_data;
                }
        }
        return reported;
}

static void module_advertised(struct sim_module *m)
{
        m->last_adv_usec = sim_now();
        /* RSSI varies a little from one advertisement to the next. */
        static const int8_t jitter[] = {0, 2, -1, 3, -2, 1, -3, 0};
        /* 127 is HCI's "not available" (btvirt reports it for every advertisement): no jitter. */
        int16_t rssi =
                m->rssi_base == 127 ? 127 : (int16_t)(m->rssi_base + jitter[(m->last_adv_usec / 1000) % 8]);
        bool duplicates;
        if (!discovery_reports(m->adapter, m, rssi, &duplicates) || (m->seen && !duplicates))
                return;
        m->rssi = rssi;
        if (!m->exported) {
                m->temporary = true;
                module_export(m, true);
                return;
        }
        if (!m->seen) {
                sd_bus_add_object_vtable(
                        m->sim->bus, &m->rssi_slot, m->path, "org.bluez.Device1", rssi_vtable, m);
                m->seen = true;
        }
        emit_device(m, "RSSI");
        emit_device(m, "ManufacturerData");
}

/* ---- Adapter1 ---- */

static int adv_tick(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct sim_adapter *a = userdata;
        uint64_t now = sim_now();
        for (size_t i = 0; i < a->sim->n_modules; i++) {
                struct sim_module *m = &a->sim->modules[i];
                if (m->adapter != a || !sim_module_advertising(m))
                        continue;
                if (now - m->last_adv_usec >= (uint64_t)m->timing.advertising_interval_ms * USEC_PER_MSEC)
                        module_advertised(m);
        }
        sd_event_source_set_time_relative(s, 20 * USEC_PER_MSEC);
        return 0;
}

static void discovery_update(struct sim_adapter *a)
{
        bool on = a->powered && a->present && !list_empty(a->discovery_clients);
        if (on == a->discovering)
                return;
        a->discovering = on;
        if (!on) {
                /* 5.66: the devices' RSSI is invalidated first, then Discovering=false. */
                sd_event_source_set_enabled(a->adv_timer, SD_EVENT_OFF);
                for (size_t i = 0; i < a->sim->n_modules; i++)
                        if (a->sim->modules[i].adapter == a)
                                module_lost(&a->sim->modules[i]);
        }
        if (a->sim->name_owned)
                sd_bus_emit_properties_changed(
                        a->sim->bus, a->path, "org.bluez.Adapter1", "Discovering", NULL);
        if (on) {
                if (!a->adv_timer)
                        sd_event_add_time_relative(
                                a->sim->event, &a->adv_timer, CLOCK_MONOTONIC, 0, 1, adv_tick, a);
                sd_event_source_set_enabled(a->adv_timer, SD_EVENT_ON);
                for (size_t i = 0; i < a->sim->n_modules; i++)
                        a->sim->modules[i].last_adv_usec = 0;
        }
}

static int method_start_discovery(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        struct sim_adapter *a = userdata;
        const char *sender = sd_bus_message_get_sender(msg);
        if (!a->powered)
                return sd_bus_error_set(error, ERR_NOT_READY, "Resource Not Ready");
        if (!sender || client_in(a->discovery_clients, sender))
                return sd_bus_error_set(error, ERR_IN_PROGRESS, "Operation already in progress");
        if (client_add(a->discovery_clients, sender) < 0)
                return sd_bus_error_set(error, ERR_FAILED, "Too many discovery sessions");
        int r = sd_bus_reply_method_return(msg, NULL);
        discovery_update(a);
        return r;
}

static int method_stop_discovery(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        struct sim_adapter *a = userdata;
        const char *sender = sd_bus_message_get_sender(msg);
        if (!a->powered)
                return sd_bus_error_set(error, ERR_NOT_READY, "Resource Not Ready");
        if (!sender || !client_remove(a->discovery_clients, sender))
                return sd_bus_error_set(error, ERR_FAILED, "No discovery started");
        int r = sd_bus_reply_method_return(msg, NULL);
        discovery_update(a);
        return r;
}

static int method_set_discovery_filter(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        struct sim_adapter *a = userdata;
        static const struct {
                const char *key, *sig;
        } keys[] = {
                {"UUIDs", "as"},
                {"RSSI", "n"},
                {"Pathloss", "q"},
                {"Transport", "s"},
                {"DuplicateData", "b"},
                {"Discoverable", "b"},
                {"Pattern", "s"},
        };
        if (!a->powered)
                return sd_bus_error_set(error, ERR_NOT_READY, "Resource Not Ready");
        const char *sender = sd_bus_message_get_sender(msg);
        if (!sender)
                return sd_bus_error_set(error, ERR_FAILED, "No sender");
        struct sim_filter f = {.le = true, .bredr = true, .duplicate_data = true};
        bool empty = true;
        int r = sd_bus_message_enter_container(msg, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(msg, 'e', "sv")) > 0) {
                empty = false;
                const char *key, *contents;
                if ((r = sd_bus_message_read(msg, "s", &key)) < 0 ||
                        (r = sd_bus_message_peek_type(msg, NULL, &contents)) < 0)
                        return r;
                bool ok = false;
                for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                        if (streq(key, keys[i].key) && streq(contents, keys[i].sig))
                                ok = true;
                if (!ok)
                        return sd_bus_error_set(error, "org.bluez.Error.InvalidArguments",
                                "Invalid arguments in method call");
                if (streq(key, "Transport")) {
                        const char *t;
                        if ((r = sd_bus_message_read(msg, "v", "s", &t)) < 0)
                                return r;
                        if (!streq(t, "auto") && !streq(t, "le") && !streq(t, "bredr"))
                                return sd_bus_error_set(error, "org.bluez.Error.InvalidArguments",
                                        "Invalid arguments in method call");
                        f.le = !streq(t, "bredr");
                        f.bredr = !streq(t, "le");
                } else if (streq(key, "RSSI")) {
                        if ((r = sd_bus_message_read(msg, "v", "n", &f.rssi)) < 0)
                                return r;
                        f.has_rssi = true;
                } else if (streq(key, "DuplicateData")) {
                        int v;
                        if ((r = sd_bus_message_read(msg, "v", "b", &v)) < 0)
                                return r;
                        f.duplicate_data = v;
                } else if (streq(key, "Pattern")) {
                        const char *p;
                        if ((r = sd_bus_message_read(msg, "v", "s", &p)) < 0)
                                return r;
                        snprintf(f.pattern, sizeof f.pattern, "%s", p);
                } else if (streq(key, "UUIDs")) {
                        const char *u;
                        if ((r = sd_bus_message_enter_container(msg, 'v', "as")) < 0 ||
                                (r = sd_bus_message_enter_container(msg, 'a', "s")) < 0)
                                return r;
                        while ((r = sd_bus_message_read(msg, "s", &u)) > 0)
                                if (f.n_uuids < ELEMENTSOF(f.uuids))
                                        normalize_uuid(u, f.uuids[f.n_uuids++], sizeof f.uuids[0]);
                        if (r < 0 || (r = sd_bus_message_exit_container(msg)) < 0 ||
                                (r = sd_bus_message_exit_container(msg)) < 0)
                                return r;
                } else if ((r = sd_bus_message_skip(msg, "v")) < 0)
                        return r;
                if ((r = sd_bus_message_exit_container(msg)) < 0)
                        return r;
        }
        if (r < 0)
                return r;
        /* An empty dict clears the client's filter. */
        filter_clear(a, sender);
        if (!empty) {
                int i = 0;
                while (i < SIM_MAX_CLIENTS && a->filters[i].client)
                        i++;
                if (i == SIM_MAX_CLIENTS)
                        return sd_bus_error_set(error, ERR_FAILED, "Too many discovery filters");
                f.client = strdup(sender);
                if (!f.client)
                        return -ENOMEM;
                a->filters[i] = f;
        }
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_remove_device(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        struct sim_adapter *a = userdata;
        const char *path;
        int r = sd_bus_message_read(msg, "o", &path);
        if (r < 0)
                return r;
        if (!a->powered)
                return sd_bus_error_set(error, ERR_NOT_READY, "Resource Not Ready");
        struct sim_module *m = sim_module_by_address(a->sim, path);
        if (!m || !m->exported || m->adapter != a)
                return sd_bus_error_set(error, "org.bluez.Error.DoesNotExist", "Does Not Exist");
        r = sd_bus_reply_method_return(msg, NULL);
        sim_module_unexport(m);
        return r;
}

static int method_get_discovery_filters(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        return sd_bus_reply_method_return(msg, "as", 7, "UUIDs", "RSSI", "Pathloss", "Transport",
                "DuplicateData", "Discoverable", "Pattern");
}

static int prop_adapter_str(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        struct sim_adapter *a = userdata;
        if (streq(prop, "Address"))
                return sd_bus_message_append(reply, "s", a->address);
        if (streq(prop, "AddressType"))
                return sd_bus_message_append(reply, "s", "public");
        if (streq(prop, "Modalias"))
                return sd_bus_message_append(reply, "s", "usb:v1D6Bp0246d0542");
        return sd_bus_message_append(reply, "s", "blupow-sim"); /* Name, Alias */
}

static int prop_adapter_bool(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        struct sim_adapter *a = userdata;
        int v = streq(prop, "Powered") ? a->powered : streq(prop, "Discovering") ? a->discovering : 0;
        return sd_bus_message_append(reply, "b", v);
}

static int prop_adapter_u32(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        return sd_bus_message_append(reply, "u", streq(prop, "DiscoverableTimeout") ? 180 : 0);
}

static int prop_adapter_roles(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        if (streq(prop, "UUIDs"))
                return sd_bus_message_append(reply, "as", 2, UUID("1800"), UUID("1801"));
        return sd_bus_message_append(reply, "as", 2, "central", "peripheral");
}

static int set_powered(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *value, void *userdata, sd_bus_error *error)
{
        struct sim_adapter *a = userdata;
        int on;
        int r = sd_bus_message_read(value, "b", &on);
        if (r < 0)
                return r;
        sim_adapter_set_powered(a, on);
        return 0;
}

static const sd_bus_vtable adapter_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("StartDiscovery", "", "", method_start_discovery, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("StopDiscovery", "", "", method_stop_discovery, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD(
                "SetDiscoveryFilter", "a{sv}", "", method_set_discovery_filter, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("RemoveDevice", "o", "", method_remove_device, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD(
                "GetDiscoveryFilters", "", "as", method_get_discovery_filters, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_PROPERTY("Address", "s", prop_adapter_str, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("AddressType", "s", prop_adapter_str, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Name", "s", prop_adapter_str, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Alias", "s", prop_adapter_str, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Class", "u", prop_adapter_u32, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_WRITABLE_PROPERTY(
                "Powered", "b", prop_adapter_bool, set_powered, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Discoverable", "b", prop_adapter_bool, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY(
                "DiscoverableTimeout", "u", prop_adapter_u32, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Pairable", "b", prop_adapter_bool, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("PairableTimeout", "u", prop_adapter_u32, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Discovering", "b", prop_adapter_bool, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("UUIDs", "as", prop_adapter_roles, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Modalias", "s", prop_adapter_str, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Roles", "as", prop_adapter_roles, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_VTABLE_END,
};

void sim_adapter_set_powered(struct sim_adapter *a, bool powered)
{
        if (a->powered == powered)
                return;
        a->powered = powered;
        if (!powered) {
                for (size_t i = 0; i < a->sim->n_modules; i++)
                        if (a->sim->modules[i].adapter == a)
                                sim_module_drop_link(&a->sim->modules[i]);
                client_remove(a->discovery_clients, NULL);
                filter_clear(a, NULL);
                discovery_update(a);
        }
        if (a->slot && a->sim->name_owned)
                sd_bus_emit_properties_changed(a->sim->bus, a->path, "org.bluez.Adapter1", "Powered", NULL);
}

void sim_adapter_add(struct sim_adapter *a)
{
        if (a->slot)
                return;
        a->present = true;
        if (sd_bus_add_object_vtable(
                    a->sim->bus, &a->slot, a->path, "org.bluez.Adapter1", adapter_vtable, a) < 0)
                return;
        if (a->sim->name_owned)
                sd_bus_emit_interfaces_added(a->sim->bus, a->path, "org.bluez.Adapter1", NULL);
}

/* An unplugged adapter: its devices go first, then the adapter itself. */
void sim_adapter_remove(struct sim_adapter *a)
{
        if (!a->slot)
                return;
        client_remove(a->discovery_clients, NULL);
        filter_clear(a, NULL);
        a->discovering = false;
        if (a->adv_timer)
                sd_event_source_set_enabled(a->adv_timer, SD_EVENT_OFF);
        for (size_t i = 0; i < a->sim->n_modules; i++)
                if (a->sim->modules[i].adapter == a)
                        sim_module_unexport(&a->sim->modules[i]);
        if (a->sim->name_owned)
                sd_bus_emit_interfaces_removed(a->sim->bus, a->path, "org.bluez.Adapter1", NULL);
        a->slot = sd_bus_slot_unref(a->slot);
        a->present = false;
}

/* ---- clients leaving the bus, bluetoothd restart ---- */

static int on_name_owner_changed(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        struct sim *sim = userdata;
        const char *name, *old, *new;
        if (sd_bus_message_read(msg, "sss", &name, &old, &new) < 0 || name[0] != ':' || *new)
                return 0;
        /* BlueZ drops the discovery and notify sessions of a client that left the bus. */
        for (size_t i = 0; i < sim->n_adapters; i++) {
                filter_clear(&sim->adapters[i], name);
                if (client_remove(sim->adapters[i].discovery_clients, name))
                        discovery_update(&sim->adapters[i]);
        }
        for (size_t i = 0; i < sim->n_modules; i++) {
                struct sim_module *m = &sim->modules[i];
                if (client_remove(m->notify_clients, name) && list_empty(m->notify_clients) &&
                        m->notifying) {
                        m->notifying = false;
                        struct sim_gatt *g = notify_char(m);
                        if (g && m->gatt_exported)
                                emit(m, g->path, "org.bluez.GattCharacteristic1", "Notifying");
                }
        }
        return 0;
}

static void restart_done(struct sim_module *m, void *data)
{
        struct sim *sim = m->sim;
        for (size_t i = 0; i < sim->n_adapters; i++)
                if (sim->adapters[i].present)
                        sim_adapter_add(&sim->adapters[i]);
        /* Devices BlueZ keeps in /var/lib/bluetooth come back, with their GATT cache. */
        for (size_t i = 0; i < sim->n_modules; i++) {
                struct sim_module *mm = &sim->modules[i];
                if (mm->temporary || !mm->adapter->present || !mm->n_connects)
                        continue;
                module_export(mm, false);
                gatt_export(mm);
        }
        sd_bus_request_name(sim->bus, "org.bluez", 0);
        sim->name_owned = true;
}

/* bluetoothd stopping by SIGTERM, as 5.66 does it: every link ends (ServicesResolved=false,
 * Connected=false), every adapter powers off, every object is removed, and only then does
 * org.bluez leave the bus. Killed (SIGKILL), it just leaves: no signal at all. */
static void bluez_stops(struct sim *sim)
{
        for (size_t i = 0; i < sim->n_modules; i++)
                sim_module_drop_link(&sim->modules[i]);
        for (size_t i = 0; i < sim->n_adapters; i++) {
                struct sim_adapter *a = &sim->adapters[i];
                if (!a->slot || !a->powered)
                        continue;
                a->powered = false;
                sd_bus_emit_properties_changed(sim->bus, a->path, "org.bluez.Adapter1", "Powered", NULL);
                a->powered = true; /* powered again when bluetoothd comes back */
        }
        for (size_t i = 0; i < sim->n_modules; i++) {
                struct sim_module *m = &sim->modules[i];
                gatt_unexport(m, true);
                if (m->exported)
                        sd_bus_emit_interfaces_removed(sim->bus, m->path, "org.bluez.Device1", NULL);
        }
        for (size_t i = 0; i < sim->n_adapters; i++)
                if (sim->adapters[i].slot)
                        sd_bus_emit_interfaces_removed(
                                sim->bus, sim->adapters[i].path, "org.bluez.Adapter1", NULL);
}

void sim_bluez_restart(struct sim *sim, unsigned down_ms, bool killed)
{
        if (!sim->name_owned || sim->n_modules == 0)
                return;
        if (!killed)
                bluez_stops(sim);
        sd_bus_release_name(sim->bus, "org.bluez");
        sim->name_owned = false;
        /* The objects vanish with the process; no further signal. */
        for (size_t i = 0; i < sim->n_modules; i++) {
                struct sim_module *m = &sim->modules[i];
                sim_module_drop_link(m);
                client_remove(m->notify_clients, NULL);
                gatt_unexport(m, false);
                m->rssi_slot = sd_bus_slot_unref(m->rssi_slot);
                m->modalias_slot = sd_bus_slot_unref(m->modalias_slot);
                m->dev_slot = sd_bus_slot_unref(m->dev_slot);
                m->exported = m->seen = false;
        }
        for (size_t i = 0; i < sim->n_adapters; i++) {
                struct sim_adapter *a = &sim->adapters[i];
                client_remove(a->discovery_clients, NULL);
                filter_clear(a, NULL);
                a->discovering = false;
                if (a->adv_timer)
                        sd_event_source_set_enabled(a->adv_timer, SD_EVENT_OFF);
                a->slot = sd_bus_slot_unref(a->slot);
        }
        later_full(&sim->modules[0], down_ms, true, restart_done, NULL);
}

static int tick(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct sim *sim = userdata;
        uint64_t now = sim_now();
        double t = (double)(now - sim->start_usec) / 1e6;
        for (size_t i = 0; i < sim->n_modules; i++) {
                struct sim_module *m = &sim->modules[i];
                for (size_t j = 0; j < m->n_units; j++)
                        sim_unit_tick(&m->units[j], t);
                if (m->shunt)
                        sim_shunt_push(m);
                /* Temporary devices go away TemporaryTimeout after they were last seen. */
                if (m->exported && m->temporary && !m->seen && !m->connected && !m->pending_connect &&
                        now - m->lost_usec >= (uint64_t)sim->temporary_timeout_s * USEC_PER_SEC)
                        sim_module_unexport(m);
        }
        sd_event_source_set_time_relative(s, USEC_PER_SEC);
        return 0;
}

int sim_bluez_start(struct sim *sim)
{
        int r = sd_bus_add_object_manager(sim->bus, NULL, "/");
        if (r < 0)
                return r;
        r = sd_bus_match_signal(sim->bus, NULL, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                "org.freedesktop.DBus", "NameOwnerChanged", on_name_owner_changed, sim);
        if (r < 0)
                return r;
        for (size_t i = 0; i < sim->n_adapters; i++)
                if (sim->adapters[i].present)
                        sim_adapter_add(&sim->adapters[i]);
        sim->start_usec = sim_now();
        r = sd_event_add_time_relative(sim->event, &sim->tick, CLOCK_MONOTONIC, 0, 1, tick, sim);
        if (r < 0)
                return r;
        sd_event_source_set_enabled(sim->tick, SD_EVENT_ON);
        return 0;
}
