/* SPDX-License-Identifier: MIT */
/* org.blupow.Sim1 on "/": faults, values and the record of what clients asked of BlueZ. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "modbus.h"
#include "readings-json.h"
#include "sim.h"

void sim_call_free(struct sim_call *c)
{
        free(c->sender);
        free(c->path);
        free(c->member);
        free(c->detail);
}

void sim_record(
        struct sim *sim, const char *sender, const char *path, const char *member, const char *detail)
{
        if (sim->n_calls == sim->calls_cap) {
                size_t cap = sim->calls_cap ? sim->calls_cap * 2 : 256;
                if (cap > 100000) /* bounded: a long soak keeps the newest half */
                        cap = 100000;
                if (sim->n_calls == cap) {
                        for (size_t i = 0; i < cap / 2; i++) {
                                sim_call_free(&sim->calls[i]);
                        }
                        memmove(sim->calls, sim->calls + cap / 2, (cap - cap / 2) * sizeof *sim->calls);
                        sim->n_calls = cap - cap / 2;
                } else {
                        struct sim_call *c = realloc(sim->calls, cap * sizeof *c);
                        if (!c)
                                return;
                        sim->calls = c;
                        sim->calls_cap = cap;
                }
        }
        struct sim_call *c = &sim->calls[sim->n_calls++];
        c->usec = sim_now() - sim->start_usec;
        c->sender = strdup(sender ?: "");
        c->path = strdup(path ?: "");
        c->member = strdup(member ?: "");
        c->detail = strdup(detail ?: "");
}

void sim_record_call(struct sim *sim, sd_bus_message *m, const char *detail)
{
        sim_record(sim, sd_bus_message_get_sender(m), sd_bus_message_get_path(m),
                sd_bus_message_get_member(m), detail);
}

void sim_hex(char *out, size_t size, const uint8_t *bytes, size_t len)
{
        out[0] = 0;
        for (size_t i = 0; i < len && 2 * i + 3 <= size; i++)
                snprintf(out + 2 * i, 3, "%02x", bytes[i]);
}

static int on_message(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        struct sim *sim = userdata;
        if (!sd_bus_message_is_method_call(m, NULL, NULL))
                return 0;
        const char *iface = sd_bus_message_get_interface(m), *path = sd_bus_message_get_path(m);
        if (!iface || !path)
                return 0;
        bool bluez = startswith(iface, "org.bluez.") ||
                     (startswith(path, "/org/bluez") && streq(iface, "org.freedesktop.DBus.Properties") &&
                             streq(sd_bus_message_get_member(m), "Set")) ||
                     streq(sd_bus_message_get_member(m), "GetManagedObjects");
        if (!bluez || !sim->name_owned)
                return 0;
        char detail[1100] = "";
        if (sd_bus_message_is_method_call(m, "org.bluez.GattCharacteristic1", "WriteValue")) {
                const uint8_t *bytes;
                size_t len;
                if (sd_bus_message_read_array(m, 'y', (const void **)&bytes, &len) >= 0)
                        sim_hex(detail, sizeof detail, bytes, len);
                sd_bus_message_rewind(m, true);
        } else if (!sd_bus_message_get_expect_reply(m))
                snprintf(detail, sizeof detail, "no reply expected");
        sim_record_call(sim, m, detail);
        return 0;
}

static struct sim_module *find_module(struct sim *sim, const char *address, sd_bus_error *error)
{
        struct sim_module *m = sim_module_by_address(sim, address);
        if (!m)
                sd_bus_error_setf(
                        error, "org.blupow.Sim1.Error.NoSuchModule", "No module with address %s", address);
        return m;
}

static int method_set_fault(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        struct sim *sim = userdata;
        const char *address, *fault;
        int32_t count;
        int r = sd_bus_message_read(msg, "ssi", &address, &fault, &count);
        if (r < 0)
                return r;
        struct sim_module *m = find_module(sim, address, error);
        if (!m)
                return -ENOENT;
        int f = sim_fault_from_name(fault);
        if (f < 0)
                return sd_bus_error_setf(
                        error, "org.blupow.Sim1.Error.NoSuchFault", "Unknown fault %s", fault);
        if (sim->peripheral && !sim_peripheral_fault_supported(f))
                return sd_bus_error_setf(error, "org.blupow.Sim1.Error.NotSupported",
                        "%s is the real BlueZ's to show as a peripheral: use another central, or stop "
                        "bluetoothd",
                        fault);
        sim_module_set_fault(m, f, count);
        return sd_bus_reply_method_return(msg, NULL);
}

void sim_module_set_fault(struct sim_module *m, int fault, int count)
{
        if (m->sim->peripheral) {
                sim_peripheral_fault(m, fault, count);
                return;
        }
        m->faults[fault] = count;
        /* A module that falls asleep drops our link. One taken by another central is taken once
         * it is free: its one connection is ours until we let it go, and the phone gets it then. */
        if (fault == FAULT_ASLEEP && count != 0)
                sim_module_drop_link(m);
        if ((fault == FAULT_ASLEEP || fault == FAULT_CONNECT_HANG) && count == 0)
                sim_module_connectable_again(m);
}

/* ---- scheduled events ---- */

static int on_event(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct sim_event *e = userdata;
        if (e->sim->peripheral && e->kind != SIM_EVENT_FAULT) {
                log_warning("blupow-sim: scheduled adapter or bluetoothd event skipped: the real BlueZ's");
                return 0;
        }
        switch (e->kind) {
        case SIM_EVENT_FAULT:
                log_info("blupow-sim: scheduled: %s fault %d = %d", e->module->address, e->fault, e->count);
                sim_module_set_fault(e->module, e->fault, e->count);
                break;
        case SIM_EVENT_POWERED:
                log_info("blupow-sim: scheduled: %s powered %s", e->adapter->name, e->on ? "on" : "off");
                sim_adapter_set_powered(e->adapter, e->on);
                break;
        case SIM_EVENT_PRESENT:
                log_info("blupow-sim: scheduled: %s %s", e->adapter->name, e->on ? "plugged in" : "removed");
                if (e->on)
                        sim_adapter_add(e->adapter);
                else
                        sim_adapter_remove(e->adapter);
                break;
        case SIM_EVENT_RESTART_BLUEZ:
                log_info("blupow-sim: scheduled: bluetoothd restart (%u ms down)", e->down_ms);
                sim_bluez_restart(e->sim, e->down_ms, false);
                break;
        case SIM_EVENT_KILL_BLUEZ:
                log_info("blupow-sim: scheduled: bluetoothd killed and restarted (%u ms down)", e->down_ms);
                sim_bluez_restart(e->sim, e->down_ms, true);
                break;
        }
        return 0;
}

int sim_events_start(struct sim *sim)
{
        for (size_t i = 0; i < sim->n_events; i++) {
                struct sim_event *e = &sim->events[i];
                int r = sd_event_add_time_relative(
                        sim->event, NULL, CLOCK_MONOTONIC, e->at_usec, 1000, on_event, e);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Adapters and bluetoothd belong to the real BlueZ when the modules are its peripherals. */
static int refuse_if_peripheral(struct sim *sim, sd_bus_error *error)
{
        if (!sim->peripheral)
                return 0;
        return sd_bus_error_setf(error, "org.blupow.Sim1.Error.NotSupported",
                "peripheral mode: adapters and bluetoothd are the real BlueZ's (btmgmt, kill)");
}

static int method_set_powered(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        struct sim *sim = userdata;
        if (sim->peripheral)
                return refuse_if_peripheral(sim, error);
        const char *name;
        int on;
        int r = sd_bus_message_read(msg, "sb", &name, &on);
        if (r < 0)
                return r;
        struct sim_adapter *a = sim_adapter_by_name(sim, name);
        if (!a)
                return sd_bus_error_setf(
                        error, "org.blupow.Sim1.Error.NoSuchAdapter", "No adapter %s", name);
        sim_adapter_set_powered(a, on);
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_adapter_presence(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        struct sim *sim = userdata;
        if (sim->peripheral)
                return refuse_if_peripheral(sim, error);
        const char *name;
        int r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        struct sim_adapter *a = sim_adapter_by_name(sim, name);
        if (!a)
                return sd_bus_error_setf(
                        error, "org.blupow.Sim1.Error.NoSuchAdapter", "No adapter %s", name);
        if (streq(sd_bus_message_get_member(msg), "RemoveAdapter"))
                sim_adapter_remove(a);
        else
                sim_adapter_add(a);
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_restart_bluez(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        struct sim *sim = userdata;
        if (sim->peripheral)
                return refuse_if_peripheral(sim, error);
        uint32_t down_ms;
        int r = sd_bus_message_read(msg, "u", &down_ms);
        if (r < 0)
                return r;
        r = sd_bus_reply_method_return(msg, NULL);
        sim_bluez_restart(sim, down_ms, streq(sd_bus_message_get_member(msg), "KillBluez"));
        return r;
}

static struct sim_unit *find_unit(struct sim_module *m, uint8_t id)
{
        for (size_t i = 0; i < m->n_units; i++)
                if (m->units[i].id == id || m->shunt)
                        return &m->units[i];
        return NULL;
}

static int method_set_value(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        struct sim *sim = userdata;
        const char *address, *key;
        uint8_t id;
        double value;
        int r = sd_bus_message_read(msg, "sysd", &address, &id, &key, &value);
        if (r < 0)
                return r;
        struct sim_module *m = find_module(sim, address, error);
        if (!m)
                return -ENOENT;
        struct sim_unit *u = find_unit(m, id);
        if (!u)
                return sd_bus_error_setf(
                        error, "org.blupow.Sim1.Error.NoSuchUnit", "No unit with id %u", id);
        u->animate = false;
        r = sim_unit_set_value(u, key, value);
        if (r < 0)
                return sd_bus_error_setf(
                        error, "org.blupow.Sim1.Error.BadValue", "Cannot set %s: %s", key, strerror(-r));
        sim_unit_rebase(u, key, value);
        return sd_bus_reply_method_return(msg, NULL);
}

/* What the unit's registers decode to, read with the family's own poll plan. */
static int method_get_readings(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        struct sim *sim = userdata;
        const char *address;
        uint8_t id;
        int r = sd_bus_message_read(msg, "sy", &address, &id);
        if (r < 0)
                return r;
        struct sim_module *m = find_module(sim, address, error);
        if (!m)
                return -ENOENT;
        struct sim_unit *u = find_unit(m, id);
        if (!u)
                return sd_bus_error_setf(
                        error, "org.blupow.Sim1.Error.NoSuchUnit", "No unit with id %u", id);
        struct renogy_image img;
        renogy_image_init(&img);
        if (u->family->byte_addressed)
                renogy_image_add_bytes(&img, 0, u->shunt_frame, sizeof u->shunt_frame);
        else
                for (size_t i = 0; i < u->family->n_blocks; i++) {
                        const struct renogy_block *b = &u->family->blocks[i];
                        bool ok = true;
                        for (uint32_t x = b->reg; x < (uint32_t)b->reg + b->count; x++)
                                ok = ok && (u->defined[x / 8] & (1u << (x % 8)));
                        if (ok)
                                renogy_image_add_words(
                                        &img, b->reg, (uint8_t *)u->regs + 2 * (size_t)b->reg, b->count);
                }
        struct renogy_readings rd;
        renogy_decode(u->family, &img, &rd);
        json_t *j = readings_json(&rd, false);
        _cleanup_free_ char *text = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(12));
        json_decref(j);
        return sd_bus_reply_method_return(msg, "s", text ? text : "{}");
}

static int method_get_stats(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        struct sim *sim = userdata;
        const char *address;
        int r = sd_bus_message_read(msg, "s", &address);
        if (r < 0)
                return r;
        struct sim_module *m = find_module(sim, address, error);
        if (!m)
                return -ENOENT;
        return sd_bus_reply_method_return(msg, "a{su}", 9, "connects", m->n_connects, "disconnects",
                m->n_disconnects, "writes", m->n_writes, "requests", m->n_requests, "max_outstanding",
                m->max_outstanding, "connects_while_discovering", m->connects_while_discovering, "connected",
                (uint32_t)m->connected, "notifying", (uint32_t)(m->notifying || m->notify_fd_src),
                "exported", (uint32_t)m->exported);
}

static int method_get_calls(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        struct sim *sim = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        if ((r = sd_bus_message_open_container(reply, 'a', "(tssss)")) < 0)
                return r;
        for (size_t i = 0; i < sim->n_calls; i++) {
                struct sim_call *c = &sim->calls[i];
                if ((r = sd_bus_message_append(
                             reply, "(tssss)", c->usec, c->sender, c->path, c->member, c->detail)) < 0)
                        return r;
        }
        if ((r = sd_bus_message_close_container(reply)) < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_clear_calls(sd_bus_message *msg, void *userdata, sd_bus_error *error)
{
        struct sim *sim = userdata;
        for (size_t i = 0; i < sim->n_calls; i++) {
                sim_call_free(&sim->calls[i]);
        }
        sim->n_calls = 0;
        return sd_bus_reply_method_return(msg, NULL);
}

static const sd_bus_vtable control_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("SetFault", "ssi", "", method_set_fault, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("SetPowered", "sb", "", method_set_powered, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("RemoveAdapter", "s", "", method_adapter_presence, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("AddAdapter", "s", "", method_adapter_presence, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("RestartBluez", "u", "", method_restart_bluez, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("KillBluez", "u", "", method_restart_bluez, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("SetValue", "sysd", "", method_set_value, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("GetReadings", "sy", "s", method_get_readings, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("GetStats", "s", "a{su}", method_get_stats, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("GetCalls", "", "a(tssss)", method_get_calls, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("ClearCalls", "", "", method_clear_calls, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

int sim_control_start(struct sim *sim)
{
        int r = sd_bus_add_filter(sim->bus, NULL, on_message, sim);
        if (r < 0)
                return r;
        /* Under the well-known name org.blupow.Sim too, so it stays reachable while
         * org.bluez is released during a simulated bluetoothd restart. */
        r = sd_bus_add_object_vtable(sim->bus, NULL, "/", "org.blupow.Sim1", control_vtable, sim);
        if (r < 0)
                return r;
        return sd_bus_request_name(sim->bus, "org.blupow.Sim", 0);
}
