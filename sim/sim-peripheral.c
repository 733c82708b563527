/* SPDX-License-Identifier: MIT */
/* blupow-sim as a peripheral of a real BlueZ: each module of the scenario becomes one
 * controller (hci1, hci2, …) of a real bluetoothd, which serves the module's GATT services
 * (GattManager1.RegisterApplication) and advertises it (LEAdvertisingManager1). A central on
 * another controller then reads it through the real kernel and bluetoothd, with the same
 * register values, timing and faults as on the simulated BlueZ.
 *
 * What a module does here as on the hardware: one connection at a time (it stops advertising
 * while connected), replies as notifications of 20 bytes whatever the ATT MTU (two BlueZ ends
 * agree on 517), and nothing at all when it sleeps. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "macro.h"
#include "sim.h"

#define BLUEZ           "org.bluez"
#define UUID(x)         "0000" x "-0000-1000-8000-00805f9b34fb"
#define TI_OTA_SERVICE  "f000ffc0-0451-4000-b000-000000000000"
#define TI_OTA_IDENTIFY "f000ffc1-0451-4000-b000-000000000000"
#define TI_OTA_BLOCK    "f000ffc2-0451-4000-b000-000000000000"
#define ADV_REFRESH_MS  1000
#define APP_ROOT        "/org/blupow/peripheral"

/* One GATT object of a module's application. */
struct periph_obj {
        struct periph *p;
        char path[96];
        const char *uuid;
        int service; /* index of its service, -1 for a service itself */
        const char *flags[3];
        bool is_notify, is_write;
        sd_bus_slot *slot;
};

struct periph {
        struct sim_module *m;
        char adapter[16];
        char adapter_path[32];
        char app_path[64];
        char adv_path[80];
        struct periph_obj objs[8];
        size_t n_objs;
        sd_bus_slot *om_slot, *adv_slot;
        bool app_registered;
        bool adv_registered, adv_pending;
        unsigned attempts; /* asking for the adapter's address */
        char central[128]; /* the peripheral side's Device1 of the connected central */
        uint8_t value[512];
        size_t value_len;
};

static struct periph *periphs;
static size_t n_periphs;
static bool announced;

static struct periph *periph_of(const struct sim_module *m)
{
        for (size_t i = 0; i < n_periphs; i++)
                if (periphs[i].m == m)
                        return &periphs[i];
        return NULL;
}

/* ---- the GATT application ---- */

static int prop_uuid(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        struct periph_obj *o = userdata;
        return sd_bus_message_append(reply, "s", o->uuid);
}

static int prop_primary(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        return sd_bus_message_append(reply, "b", 1);
}

static int prop_service(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        struct periph_obj *o = userdata;
        return sd_bus_message_append(reply, "o", o->p->objs[o->service].path);
}

static int prop_flags(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        struct periph_obj *o = userdata;
        int r = sd_bus_message_open_container(reply, 'a', "s");
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(o->flags) && o->flags[i]; i++)
                r = sd_bus_message_append(reply, "s", o->flags[i]);
        return r < 0 ? r : sd_bus_message_close_container(reply);
}

static int prop_value(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        struct periph_obj *o = userdata;
        if (o->is_notify)
                return sd_bus_message_append_array(reply, 'y', o->p->value, o->p->value_len);
        return sd_bus_message_append_array(reply, 'y', NULL, 0);
}

static int method_read_value(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        struct periph_obj *o = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        if (o->is_notify)
                r = sd_bus_message_append_array(reply, 'y', o->p->value, o->p->value_len);
        else
                r = sd_bus_message_append_array(reply, 'y', NULL, 0);
        return r < 0 ? r : sd_bus_send(NULL, reply, NULL);
}

static void periph_drop(struct periph *p);

/* A packet of the module's reply or stream (sim-bluez.c cuts and times them): a notification
 * through the real BlueZ, to the central that subscribed. */
void sim_peripheral_notify(struct sim_module *m, const uint8_t *packet, size_t len)
{
        struct periph *p = periph_of(m);
        if (!p || len > sizeof p->value)
                return;
        memcpy(p->value, packet, len);
        p->value_len = len;
        for (size_t i = 0; i < p->n_objs; i++)
                if (p->objs[i].is_notify)
                        sd_bus_emit_properties_changed(m->sim->bus, p->objs[i].path,
                                "org.bluez.GattCharacteristic1", "Value", NULL);
}

void sim_peripheral_drop(struct sim_module *m)
{
        struct periph *p = periph_of(m);
        if (p)
                periph_drop(p);
}

static int method_write_value(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        struct periph_obj *o = userdata;
        struct sim_module *m = o->p->m;
        const void *data;
        size_t len;
        int r = sd_bus_message_read_array(msg, 'y', &data, &len);
        if (r < 0)
                return r;
        if (o->is_write) {
                sim_record(m->sim, sd_bus_message_get_sender(msg), o->path, "WriteValue", NULL);
                sim_module_accept_write(m, data, len);
        }
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_notify(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        struct periph_obj *o = userdata;
        o->p->m->notifying = streq(sd_bus_message_get_member(msg), "StartNotify");
        return sd_bus_reply_method_return(msg, NULL);
}

static const sd_bus_vtable service_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("UUID", "s", prop_uuid, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Primary", "b", prop_primary, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_VTABLE_END,
};

static const sd_bus_vtable char_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("UUID", "s", prop_uuid, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Service", "o", prop_service, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Flags", "as", prop_flags, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Value", "ay", prop_value, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD("ReadValue", "a{sv}", "ay", method_read_value, 0),
        SD_BUS_METHOD("WriteValue", "aya{sv}", "", method_write_value, 0),
        SD_BUS_METHOD("StartNotify", "", "", method_notify, 0),
        SD_BUS_METHOD("StopNotify", "", "", method_notify, 0),
        SD_BUS_VTABLE_END,
};

static struct periph_obj *add_obj(struct periph *p, const char *uuid, int service)
{
        struct periph_obj *o = &p->objs[p->n_objs];
        *o = (struct periph_obj){.p = p, .uuid = uuid, .service = service};
        if (service < 0)
                snprintf(o->path, sizeof o->path, "%s/service%zu", p->app_path, p->n_objs);
        else
                snprintf(o->path, sizeof o->path, "%s/char%zu", p->objs[service].path, p->n_objs);
        p->n_objs++;
        return o;
}

/* The services of a BT-1/BT-2 (Modbus over ffd1 → fff1, and the TI OTA service of its CC2541),
 * or of the shunt's own module (a stream on c411). bluetoothd adds Generic Access, Generic
 * Attribute and, with a DeviceID in main.conf, Device Information, as a module has them. */
static int app_build(struct periph *p)
{
        if (p->m->shunt) {
                add_obj(p, UUID("c011"), -1);
                struct periph_obj *n = add_obj(p, UUID("c411"), 0);
                n->flags[0] = "notify";
                n->is_notify = true;
        } else {
                add_obj(p, UUID("ffd0"), -1);
                struct periph_obj *w = add_obj(p, UUID("ffd1"), 0);
                w->flags[0] = "write-without-response";
                w->flags[1] = "write";
                w->is_write = true;
                add_obj(p, UUID("fff0"), -1);
                struct periph_obj *n = add_obj(p, UUID("fff1"), 2);
                n->flags[0] = "notify";
                n->flags[1] = "read";
                n->is_notify = true;
                add_obj(p, TI_OTA_SERVICE, -1);
                struct periph_obj *id = add_obj(p, TI_OTA_IDENTIFY, 4);
                id->flags[0] = "write-without-response";
                id->flags[1] = "notify";
                struct periph_obj *blk = add_obj(p, TI_OTA_BLOCK, 4);
                blk->flags[0] = "write-without-response";
                blk->flags[1] = "notify";
        }
        sd_bus *bus = p->m->sim->bus;
        int r = sd_bus_add_object_manager(bus, &p->om_slot, p->app_path);
        for (size_t i = 0; r >= 0 && i < p->n_objs; i++) {
                struct periph_obj *o = &p->objs[i];
                r = sd_bus_add_object_vtable(bus, &o->slot, o->path,
                        o->service < 0 ? "org.bluez.GattService1" : "org.bluez.GattCharacteristic1",
                        o->service < 0 ? service_vtable : char_vtable, o);
        }
        return r;
}

/* ---- the advertisement ---- */

static int prop_adv_type(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        return sd_bus_message_append(reply, "s", "peripheral");
}

static int prop_adv_name(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        struct periph *p = userdata;
        return sd_bus_message_append(reply, "s", p->m->name);
}

static int prop_adv_uuids(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        struct periph *p = userdata;
        return sd_bus_message_append(reply, "as", 1, p->m->shunt ? UUID("c011") : UUID("ffd0"));
}

static int prop_adv_mfr(sd_bus *bus, const char *path, const char *iface, const char *prop,
        sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        struct periph *p = userdata;
        return sim_append_manufacturer_data(reply, p->m->address);
}

static int method_release(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        struct periph *p = userdata;
        p->adv_registered = false;
        return sd_bus_reply_method_return(msg, NULL);
}

static const sd_bus_vtable adv_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Type", "s", prop_adv_type, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("LocalName", "s", prop_adv_name, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ServiceUUIDs", "as", prop_adv_uuids, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ManufacturerData", "a{qv}", prop_adv_mfr, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD("Release", "", "", method_release, 0),
        SD_BUS_VTABLE_END,
};

static bool should_advertise(const struct periph *p)
{
        return p->app_registered && !p->m->connected && !p->m->faults[FAULT_ASLEEP];
}

static int on_adv_registered(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error)
{
        struct periph *p = userdata;
        p->adv_pending = false;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        if (e) {
                log_warning("blupow-sim: %s: RegisterAdvertisement: %s", p->adapter, e->message);
                return 0;
        }
        p->adv_registered = true;
        /* Connected or asleep meanwhile: not advertising after all. */
        if (!should_advertise(p)) {
                p->adv_registered = false;
                sd_bus_call_method_async(p->m->sim->bus, NULL, BLUEZ, p->adapter_path,
                        "org.bluez.LEAdvertisingManager1", "UnregisterAdvertisement", NULL, NULL, "o",
                        p->adv_path);
        }
        return 0;
}

static void adv_register(struct periph *p)
{
        if (p->adv_pending || p->adv_registered || !should_advertise(p))
                return;
        p->adv_pending = true;
        int r = sd_bus_call_method_async(p->m->sim->bus, NULL, BLUEZ, p->adapter_path,
                "org.bluez.LEAdvertisingManager1", "RegisterAdvertisement", on_adv_registered, p, "oa{sv}",
                p->adv_path, 0);
        if (r < 0) {
                p->adv_pending = false;
                log_warning_errno(r, "blupow-sim: %s: RegisterAdvertisement: %m", p->adapter);
        }
}

static void adv_unregister(struct periph *p)
{
        if (!p->adv_registered)
                return;
        p->adv_registered = false;
        sd_bus_call_method_async(p->m->sim->bus, NULL, BLUEZ, p->adapter_path,
                "org.bluez.LEAdvertisingManager1", "UnregisterAdvertisement", NULL, NULL, "o", p->adv_path);
}

/* btvirt sends one advertising report per scan start, and the kernel may drop it, while a real
 * module advertises all the time: an idle module advertises afresh about once a second. */
static int on_adv_refresh(sd_event_source *s, uint64_t usec, void *userdata)
{
        for (size_t i = 0; i < n_periphs; i++) {
                struct periph *p = &periphs[i];
                adv_unregister(p);
                adv_register(p);
        }
        sd_event_source_set_time_relative(s, ADV_REFRESH_MS * USEC_PER_MSEC);
        sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

/* ---- the link, seen from the module's side ---- */

/* The module ends the link (asleep, or a drop in the middle of a reply): BlueZ on this side
 * disconnects the central. */
static void periph_drop(struct periph *p)
{
        if (!p->central[0])
                return;
        sd_bus_call_method_async(
                p->m->sim->bus, NULL, BLUEZ, p->central, "org.bluez.Device1", "Disconnect", NULL, NULL, "");
}

static void link_changed(struct periph *p, const char *device_path, bool connected)
{
        struct sim_module *m = p->m;
        if (connected == m->connected)
                return;
        m->connected = connected;
        m->generation++; /* replies in flight die with the link */
        if (connected) {
                m->n_connects++;
                snprintf(p->central, sizeof p->central, "%s", device_path);
                adv_unregister(p); /* one connection at a time, as a BT-1/BT-2 */
                log_info("blupow-sim: %s: connected (%s)", m->address, device_path);
                if (m->faults[FAULT_ASLEEP])
                        periph_drop(p);
        } else {
                m->n_disconnects++;
                m->notifying = false;
                p->central[0] = 0;
                log_info("blupow-sim: %s: disconnected", m->address);
                adv_register(p);
        }
}

static struct periph *periph_of_device(const char *path)
{
        for (size_t i = 0; i < n_periphs; i++) {
                size_t n = strlen(periphs[i].adapter_path);
                if (strncmp(path, periphs[i].adapter_path, n) == 0 && path[n] == '/' &&
                        !strchr(path + n + 1, '/'))
                        return &periphs[i];
        }
        return NULL;
}

/* Reads Connected out of an a{sv}; returns 1 and sets *v when present. */
static int read_connected(sd_bus_message *m, int *v)
{
        int found = 0, r = sd_bus_message_enter_container(m, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *key;
                if ((r = sd_bus_message_read(m, "s", &key)) < 0)
                        break;
                if (streq(key, "Connected")) {
                        r = sd_bus_message_read(m, "v", "b", v);
                        found = 1;
                } else
                        r = sd_bus_message_skip(m, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        return r < 0 ? r : found;
}

static int on_device_props(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        const char *path = sd_bus_message_get_path(msg), *iface;
        struct periph *p = path ? periph_of_device(path) : NULL;
        int v;
        if (!p || sd_bus_message_read(msg, "s", &iface) < 0 || !streq(iface, "org.bluez.Device1"))
                return 0;
        if (read_connected(msg, &v) > 0)
                link_changed(p, path, v);
        return 0;
}

static void ask_address(struct periph *p);

static int on_interfaces_added(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        const char *path;
        if (sd_bus_message_read(msg, "o", &path) < 0)
                return 0;
        /* An adapter plugged in again: the module it carries registers once more. Its
         * LEAdvertisingManager1 may come later than Adapter1 (once powered): advertise then. */
        for (size_t i = 0; i < n_periphs; i++)
                if (streq(path, periphs[i].adapter_path)) {
                        struct periph *a = &periphs[i];
                        bool adapter = false, advertising = false;
                        const char *iface;
                        if (sd_bus_message_enter_container(msg, 'a', "{sa{sv}}") < 0)
                                return 0;
                        while (sd_bus_message_enter_container(msg, 'e', "sa{sv}") > 0) {
                                if (sd_bus_message_read(msg, "s", &iface) < 0 ||
                                        sd_bus_message_skip(msg, "a{sv}") < 0 ||
                                        sd_bus_message_exit_container(msg) < 0)
                                        return 0;
                                adapter = adapter || streq(iface, "org.bluez.Adapter1");
                                advertising = advertising || streq(iface, "org.bluez.LEAdvertisingManager1");
                        }
                        if (adapter) {
                                a->app_registered = a->adv_registered = a->adv_pending = false;
                                if (a->m->connected)
                                        link_changed(a, a->central, false);
                                ask_address(a);
                        } else if (advertising)
                                adv_register(a);
                        return 0;
                }
        struct periph *p = periph_of_device(path);
        if (!p || sd_bus_message_enter_container(msg, 'a', "{sa{sv}}") < 0)
                return 0;
        while (sd_bus_message_enter_container(msg, 'e', "sa{sv}") > 0) {
                const char *iface;
                int v;
                if (sd_bus_message_read(msg, "s", &iface) < 0)
                        return 0;
                if (streq(iface, "org.bluez.Device1")) {
                        if (read_connected(msg, &v) > 0 && v)
                                link_changed(p, path, true);
                } else if (sd_bus_message_skip(msg, "a{sv}") < 0)
                        return 0;
                if (sd_bus_message_exit_container(msg) < 0)
                        return 0;
        }
        return 0;
}

static int on_interfaces_removed(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        const char *path;
        if (sd_bus_message_read(msg, "o", &path) < 0)
                return 0;
        struct periph *p = periph_of_device(path);
        if (p && streq(p->central, path))
                link_changed(p, path, false);
        return 0;
}

/* ---- setting up on a BlueZ ---- */

static int on_app_registered(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error)
{
        struct periph *p = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        /* AlreadyExists: an earlier call (the adapter and BlueZ both announced themselves)
         * registered it. */
        if (e && !streq(e->name, "org.bluez.Error.AlreadyExists")) {
                log_error("blupow-sim: %s: RegisterApplication: %s", p->adapter, e->message);
                return 0;
        }
        p->app_registered = true;
        adv_register(p);
        return 0;
}

static int retry_adapter(sd_event_source *s, uint64_t usec, void *userdata)
{
        ask_address(userdata);
        return 0;
}

static void announce_if_ready(void)
{
        if (announced)
                return;
        for (size_t i = 0; i < n_periphs; i++)
                if (!periphs[i].m->address[0])
                        return;
        announced = true;
        for (size_t i = 0; i < n_periphs; i++)
                printf("module %s %s %s\n", periphs[i].m->address, periphs[i].adapter, periphs[i].m->name);
        printf("ready\n");
        fflush(stdout);
}

/* The adapter's address is the module's: read it, name the adapter after the module (its GAP
 * Device Name), power it, and register the services. */
static int on_adapter_address(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error)
{
        struct periph *p = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        const char *address;
        if (e || sd_bus_message_read(reply, "v", "s", &address) < 0) {
                /* bluetoothd exports an adapter only once the kernel has set it up. */
                if (p->attempts++ % 20 == 0)
                        log_warning("blupow-sim: %s: not on this BlueZ yet (%s); waiting", p->adapter,
                                e ? e->message : "no Address");
                sd_event_add_time_relative(p->m->sim->event, NULL, CLOCK_MONOTONIC, 500 * USEC_PER_MSEC,
                        USEC_PER_MSEC, retry_adapter, p);
                return 0;
        }
        p->attempts = 0;
        snprintf(p->m->address, sizeof p->m->address, "%s", address);
        sd_bus *bus = p->m->sim->bus;
        sd_bus_call_method_async(bus, NULL, BLUEZ, p->adapter_path, "org.freedesktop.DBus.Properties", "Set",
                NULL, NULL, "ssv", "org.bluez.Adapter1", "Alias", "s", p->m->name);
        sd_bus_call_method_async(bus, NULL, BLUEZ, p->adapter_path, "org.freedesktop.DBus.Properties", "Set",
                NULL, NULL, "ssv", "org.bluez.Adapter1", "Powered", "b", 1);
        int r = sd_bus_call_method_async(bus, NULL, BLUEZ, p->adapter_path, "org.bluez.GattManager1",
                "RegisterApplication", on_app_registered, p, "oa{sv}", p->app_path, 0);
        if (r < 0)
                log_error_errno(r, "blupow-sim: %s: RegisterApplication: %m", p->adapter);
        announce_if_ready();
        return 0;
}

static void ask_address(struct periph *p)
{
        sd_bus_call_method_async(p->m->sim->bus, NULL, BLUEZ, p->adapter_path,
                "org.freedesktop.DBus.Properties", "Get", on_adapter_address, p, "ss", "org.bluez.Adapter1",
                "Address");
}

static void bluez_up(void)
{
        for (size_t i = 0; i < n_periphs; i++) {
                struct periph *p = &periphs[i];
                p->app_registered = p->adv_registered = p->adv_pending = false;
                ask_address(p);
        }
}

static int on_name_owner_changed(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        const char *name, *old, *new;
        if (sd_bus_message_read(msg, "sss", &name, &old, &new) < 0 || !streq(name, BLUEZ))
                return 0;
        if (*old) {
                log_info("blupow-sim: bluetoothd left the bus");
                for (size_t i = 0; i < n_periphs; i++) {
                        struct periph *p = &periphs[i];
                        if (p->m->connected)
                                link_changed(p, p->central, false);
                        p->app_registered = p->adv_registered = p->adv_pending = false;
                }
        }
        if (*new) {
                log_info("blupow-sim: bluetoothd is on the bus: registering again");
                bluez_up();
        }
        return 0;
}

static void on_tick(struct sim *sim, double t)
{
        for (size_t i = 0; i < n_periphs; i++) {
                struct sim_module *m = periphs[i].m;
                for (size_t j = 0; j < m->n_units; j++)
                        sim_unit_tick(&m->units[j], t);
                sim_shunt_push(m);
        }
}

static int tick(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct sim *sim = userdata;
        on_tick(sim, (double)(sim_now() - sim->start_usec) / 1e6);
        sd_event_source_set_time_relative(s, USEC_PER_SEC);
        return 0;
}

void sim_peripheral_fault(struct sim_module *m, int fault, int count)
{
        struct periph *p = periph_of(m);
        m->faults[fault] = count;
        if (!p || fault != FAULT_ASLEEP)
                return;
        if (count != 0) {
                adv_unregister(p);
                periph_drop(p);
        } else
                adv_register(p);
}

bool sim_peripheral_fault_supported(int fault)
{
        return fault == FAULT_ASLEEP || fault == FAULT_DROP_MID_RESPONSE || fault == FAULT_CORRUPT ||
               fault == FAULT_EXCEPTION || fault == FAULT_NO_MODEL_REPLY ||
               fault == FAULT_WRITE_ECHO_WRONG || fault == FAULT_WRITE_IGNORED;
}

int sim_peripheral_start(struct sim *sim, char *const *adapters, size_t n_adapters)
{
        if (n_adapters < sim->n_modules) {
                log_error("blupow-sim: %zu module(s) need as many adapters; %zu given", sim->n_modules,
                        n_adapters);
                return -EINVAL;
        }
        periphs = calloc(sim->n_modules, sizeof *periphs);
        if (!periphs)
                return -ENOMEM;
        n_periphs = sim->n_modules;
        int r = 0;
        for (size_t i = 0; r >= 0 && i < n_periphs; i++) {
                struct periph *p = &periphs[i];
                p->m = &sim->modules[i];
                p->m->address[0] = 0; /* the adapter's, once read */
                snprintf(p->adapter, sizeof p->adapter, "%s", adapters[i]);
                snprintf(p->adapter_path, sizeof p->adapter_path, "/org/bluez/%s", adapters[i]);
                snprintf(p->app_path, sizeof p->app_path, APP_ROOT "/%s", adapters[i]);
                snprintf(p->adv_path, sizeof p->adv_path, APP_ROOT "/%s/advertisement", adapters[i]);
                r = app_build(p);
                if (r >= 0)
                        r = sd_bus_add_object_vtable(sim->bus, &p->adv_slot, p->adv_path,
                                "org.bluez.LEAdvertisement1", adv_vtable, p);
        }
        if (r >= 0)
                r = sd_bus_match_signal(sim->bus, NULL, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                        "org.freedesktop.DBus", "NameOwnerChanged", on_name_owner_changed, NULL);
        if (r >= 0)
                r = sd_bus_match_signal(sim->bus, NULL, BLUEZ, NULL, "org.freedesktop.DBus.Properties",
                        "PropertiesChanged", on_device_props, NULL);
        if (r >= 0)
                r = sd_bus_match_signal(sim->bus, NULL, BLUEZ, "/", "org.freedesktop.DBus.ObjectManager",
                        "InterfacesAdded", on_interfaces_added, NULL);
        if (r >= 0)
                r = sd_bus_match_signal(sim->bus, NULL, BLUEZ, "/", "org.freedesktop.DBus.ObjectManager",
                        "InterfacesRemoved", on_interfaces_removed, NULL);
        if (r >= 0)
                r = sd_event_add_time_relative(sim->event, NULL, CLOCK_MONOTONIC,
                        ADV_REFRESH_MS * USEC_PER_MSEC, USEC_PER_MSEC * 50, on_adv_refresh, NULL);
        if (r >= 0)
                r = sd_event_add_time_relative(sim->event, &sim->tick, CLOCK_MONOTONIC, 0, 1, tick, sim);
        if (r < 0)
                return r;
        sd_event_source_set_enabled(sim->tick, SD_EVENT_ON);
        sim->start_usec = sim_now();
        sim->peripheral = true;
        bluez_up();
        return 0;
}

void sim_peripheral_free(void)
{
        for (size_t i = 0; i < n_periphs; i++) {
                struct periph *p = &periphs[i];
                for (size_t j = 0; j < p->n_objs; j++)
                        sd_bus_slot_unref(p->objs[j].slot);
                sd_bus_slot_unref(p->om_slot);
                sd_bus_slot_unref(p->adv_slot);
        }
        free(periphs);
        periphs = NULL;
        n_periphs = 0;
}
