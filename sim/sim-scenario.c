/* SPDX-License-Identifier: MIT */
/* Scenario files: adapters, modules with their units, timing and faults (see --help). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "sim.h"

static const char *const fault_names[_FAULT_MAX] = {
        [FAULT_CONNECT_ABORT] = "connect_abort",
        [FAULT_CONNECT_HANG] = "connect_hang",
        [FAULT_DROP_MID_RESPONSE] = "drop_mid_response",
        [FAULT_RESOLVED_EARLY] = "resolved_before_characteristics",
        [FAULT_CORRUPT] = "corrupt_notification",
        [FAULT_EXCEPTION] = "modbus_exception",
        [FAULT_ASLEEP] = "asleep",
        [FAULT_HELD] = "held_by_other_central",
        [FAULT_NO_ACQUIRE] = "no_acquire",
        [FAULT_NO_MODEL_REPLY] = "no_model_reply",
        [FAULT_WRITE_ECHO_WRONG] = "write_echo_wrong",
        [FAULT_WRITE_IGNORED] = "write_ignored",
};

const char *sim_fault_name(enum sim_fault f)
{
        return f < _FAULT_MAX ? fault_names[f] : NULL;
}

int sim_fault_from_name(const char *s)
{
        for (int i = 0; i < _FAULT_MAX; i++)
                if (streq(s, fault_names[i]))
                        return i;
        return -EINVAL;
}

static bool valid_address(const char *s)
{
        if (strlen(s) != 17)
                return false;
        for (int i = 0; i < 17; i++) {
                if (i % 3 == 2 ? s[i] != ':' : !strchr("0123456789ABCDEF", s[i]))
                        return false;
        }
        return true;
}

#define FAIL(...)                                                                                           \
        do {                                                                                                \
                snprintf(err, err_size, __VA_ARGS__);                                                       \
                return -EINVAL;                                                                             \
        } while (0)

static int get_uint(json_t *obj, const char *key, unsigned max, unsigned *out, const char *where, char *err,
        size_t err_size)
{
        json_t *v = json_object_get(obj, key);
        if (!v)
                return 0;
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > (json_int_t)max)
                FAIL("%s.%s: expected an integer from 0 to %u", where, key, max);
        *out = (unsigned)json_integer_value(v);
        return 0;
}

static int parse_unit(struct sim_module *m, json_t *ju, size_t idx, char *err, size_t err_size)
{
        char where[96];
        snprintf(where, sizeof where, "%s.units[%zu]", m->name, idx);
        if (!json_is_object(ju))
                FAIL("%s: expected an object", where);
        const char *fam_name = json_string_value(json_object_get(ju, "family"));
        const struct renogy_family *fam = fam_name ? renogy_family_find(fam_name) : NULL;
        if (!fam)
                FAIL("%s.family: expected controller, dcc, battery, inverter or shunt", where);
        /* A variant keeps its registers in its own map, plan and scales, told by its name or its
         * model (a Battery Pro, an HF inverter, a G6 DC-DC charger). */
        char why[128];
        const char *model = json_string_value(json_object_get(json_object_get(ju, "values"), "model"));
        fam = renogy_family_variant(fam, m->name, model, why, sizeof why);
        unsigned id = fam->default_id;
        if (get_uint(ju, "id", 255, &id, where, err, err_size) < 0)
                return -EINVAL;
        struct sim_unit *u = &m->units[m->n_units];
        int r = sim_unit_init(u, fam, (uint8_t)id);
        if (r < 0)
                FAIL("%s: %s", where, strerror(-r));
        m->n_units++;
        if (fam->byte_addressed)
                m->shunt = true;

        json_t *jv = json_object_get(ju, "values"), *val;
        const char *key;
        json_object_foreach(jv, key, val)
        {
                if (json_is_string(val))
                        r = sim_unit_set_text(u, key, json_string_value(val));
                else if (json_is_number(val))
                        r = sim_unit_set_value(u, key, json_number_value(val));
                else
                        r = -EINVAL;
                if (r < 0)
                        FAIL("%s.values.%s: %s", where, key,
                                r == -ENOENT ? "no such reading in this family"
                                             : "value out of range or of the wrong type");
                if (json_is_number(val))
                        sim_unit_rebase(u, key, json_number_value(val));
        }
        json_t *jr = json_object_get(ju, "registers");
        json_object_foreach(jr, key, val)
        {
                char *end;
                unsigned long reg = strtoul(key, &end, 0);
                if (*end || reg > 0xFFFF || !json_is_integer(val) || json_integer_value(val) < 0 ||
                        json_integer_value(val) > 0xFFFF || fam->byte_addressed)
                        FAIL("%s.registers.%s: expected register (0x…) → 16-bit value", where, key);
                uint16_t v = (uint16_t)json_integer_value(val);
                ((uint8_t *)u->regs)[2 * reg] = (uint8_t)(v >> 8);
                ((uint8_t *)u->regs)[2 * reg + 1] = (uint8_t)v;
        }
        json_t *ex = json_object_get(ju, "missing_blocks"), *b;
        size_t j;
        json_array_foreach(ex, j, b)
        {
                /* Registers this model lacks: reads touching them get exception 02. */
                unsigned long reg = (unsigned long)json_integer_value(b);
                for (const struct renogy_block *bl = fam->blocks; bl < fam->blocks + fam->n_blocks; bl++)
                        if (bl->reg == reg)
                                for (uint32_t x = bl->reg; x < (uint32_t)bl->reg + bl->count; x++)
                                        u->defined[x / 8] &= (uint8_t) ~(1u << (x % 8));
        }
        json_t *silent = json_object_get(ju, "silent_blocks");
        json_array_foreach(silent, j, b)
        {
                /* Reads starting there get no reply at all (firmware that ignores them). */
                if (!json_is_integer(b) || json_integer_value(b) < 0 || json_integer_value(b) > 0xFFFF ||
                        u->n_silent >= ELEMENTSOF(u->silent_at))
                        FAIL("%s.silent_blocks: expected at most %zu registers", where,
                                ELEMENTSOF(u->silent_at));
                u->silent_at[u->n_silent++] = (uint16_t)json_integer_value(b);
        }
        json_t *anim = json_object_get(ju, "animate");
        if (anim)
                u->animate = json_is_true(anim);
        return 0;
}

static int parse_module(
        struct sim *sim, struct sim_module *m, json_t *jm, size_t idx, char *err, size_t err_size)
{
        char where[64];
        snprintf(where, sizeof where, "modules[%zu]", idx);
        if (!json_is_object(jm))
                FAIL("%s: expected an object", where);
        const char *name = json_string_value(json_object_get(jm, "name"));
        const char *addr = json_string_value(json_object_get(jm, "address"));
        if (!name || strlen(name) >= sizeof m->name)
                FAIL("%s.name: expected a string (the advertised name)", where);
        if (!addr || !valid_address(addr))
                FAIL("%s.address: expected an upper-case address like C4:D3:6A:00:11:22", where);
        m->sim = sim;
        snprintf(m->name, sizeof m->name, "%s", name);
        snprintf(m->address, sizeof m->address, "%s", addr);
        const char *ad = json_string_value(json_object_get(jm, "adapter"));
        m->adapter = sim_adapter_by_name(sim, ad ? ad : sim->adapters[0].name);
        if (!m->adapter)
                FAIL("%s.adapter: no adapter named %s", where, ad);
        snprintf(m->path, sizeof m->path, "%s/dev_%s", m->adapter->path, addr);
        for (char *p = m->path + strlen(m->adapter->path); *p; p++)
                if (*p == ':')
                        *p = '_';

        m->rssi = -60;
        json_t *rssi = json_object_get(jm, "rssi");
        if (rssi) {
                if (!json_is_integer(rssi) || json_integer_value(rssi) < -127 ||
                        (json_integer_value(rssi) > 20 && json_integer_value(rssi) != 127))
                        FAIL("%s.rssi: expected dBm from -127 to 20, or 127 (not available)", where);
                m->rssi = (int16_t)json_integer_value(rssi);
        }
        m->rssi_base = m->rssi;
        m->timing = (struct sim_timing){
                .connect_ms = 300,
                .resolve_ms = 400,
                .response_ms = 60,
                .chunk_interval_ms = 8,
                .chunk_size = 20,
                .advertising_interval_ms = 200,
                .disconnect_ms = 40,
        };
        json_t *jt = json_object_get(jm, "timing");
        if (jt && !json_is_object(jt))
                FAIL("%s.timing: expected an object", where);
        if (get_uint(jt, "connect_ms", 60000, &m->timing.connect_ms, where, err, err_size) < 0 ||
                get_uint(jt, "resolve_ms", 60000, &m->timing.resolve_ms, where, err, err_size) < 0 ||
                get_uint(jt, "response_ms", 60000, &m->timing.response_ms, where, err, err_size) < 0 ||
                get_uint(jt, "chunk_interval_ms", 10000, &m->timing.chunk_interval_ms, where, err,
                        err_size) < 0 ||
                get_uint(jt, "chunk_size", 512, &m->timing.chunk_size, where, err, err_size) < 0 ||
                get_uint(jt, "advertising_interval_ms", 60000, &m->timing.advertising_interval_ms, where,
                        err, err_size) < 0 ||
                get_uint(jt, "disconnect_ms", 60000, &m->timing.disconnect_ms, where, err, err_size) < 0)
                return -EINVAL;
        m->connected_signal = true;
        json_t *cs = json_object_get(jm, "connected_signal");
        if (cs && !json_is_boolean(cs))
                FAIL("%s.connected_signal: expected true or false", where);
        if (cs)
                m->connected_signal = json_is_true(cs);
        if (m->timing.chunk_size < 1)
                FAIL("%s.timing.chunk_size: must be at least 1", where);

        json_t *units = json_object_get(jm, "units"), *ju;
        if (!json_is_array(units) || json_array_size(units) == 0 || json_array_size(units) > SIM_MAX_UNITS)
                FAIL("%s.units: expected a list of 1 to %d units", where, SIM_MAX_UNITS);
        size_t i;
        json_array_foreach(units, i, ju)
        {
                if (parse_unit(m, ju, i, err, err_size) < 0)
                        return -EINVAL;
        }
        json_t *faults = json_object_get(jm, "faults"), *fv;
        const char *fk;
        json_object_foreach(faults, fk, fv)
        {
                int f = sim_fault_from_name(fk);
                if (f < 0)
                        FAIL("%s.faults.%s: unknown fault", where, fk);
                if (json_is_true(fv))
                        m->faults[f] = -1;
                else if (json_is_integer(fv) && json_integer_value(fv) >= 0)
                        m->faults[f] = (int)json_integer_value(fv);
                else if (!json_is_false(fv))
                        FAIL("%s.faults.%s: expected true or a count", where, fk);
        }
        return 0;
}

/* {"at_s": 30, "module": ADDRESS, "fault": NAME, "set": true | false | COUNT}
 * {"at_s": 30, "adapter": "hci0", "powered": BOOL} or {..., "present": BOOL}
 * {"at_s": 30, "restart_bluetoothd_ms": 2000} */
static int parse_event(
        struct sim *sim, struct sim_event *e, json_t *je, size_t idx, char *err, size_t err_size)
{
        char where[32];
        snprintf(where, sizeof where, "events[%zu]", idx);
        if (!json_is_object(je))
                FAIL("%s: expected an object", where);
        json_t *at = json_object_get(je, "at_s");
        if (!json_is_number(at) || !(json_number_value(at) >= 0) || json_number_value(at) > 86400)
                FAIL("%s.at_s: expected seconds after start, from 0 to 86400", where);
        *e = (struct sim_event){.sim = sim, .at_usec = (uint64_t)(json_number_value(at) * 1e6)};
        json_t *fault = json_object_get(je, "fault");
        if (fault) {
                const char *addr = json_string_value(json_object_get(je, "module"));
                if (!addr || !(e->module = sim_module_by_address(sim, addr)))
                        FAIL("%s.module: expected the address of a module of this scenario", where);
                if (!json_is_string(fault) || (e->fault = sim_fault_from_name(json_string_value(fault))) < 0)
                        FAIL("%s.fault: unknown fault", where);
                json_t *set = json_object_get(je, "set");
                if (!set || json_is_true(set))
                        e->count = -1;
                else if (json_is_false(set))
                        e->count = 0;
                else if (json_is_integer(set) && json_integer_value(set) >= 0 &&
                         json_integer_value(set) <= 1000)
                        e->count = (int)json_integer_value(set);
                else
                        FAIL("%s.set: expected true, false or a count up to 1000", where);
                e->kind = SIM_EVENT_FAULT;
                return 0;
        }
        json_t *restart = json_object_get(je, "restart_bluetoothd_ms");
        if (restart) {
                e->kind = SIM_EVENT_RESTART_BLUEZ;
                return get_uint(je, "restart_bluetoothd_ms", 60000, &e->down_ms, where, err, err_size);
        }
        if (json_object_get(je, "kill_bluetoothd_ms")) {
                e->kind = SIM_EVENT_KILL_BLUEZ;
                return get_uint(je, "kill_bluetoothd_ms", 60000, &e->down_ms, where, err, err_size);
        }
        json_t *powered = json_object_get(je, "powered"), *present = json_object_get(je, "present");
        if (!powered == !present)
                FAIL("%s: expected one of fault, powered, present, restart_bluetoothd_ms, "
                     "kill_bluetoothd_ms",
                        where);
        json_t *v = powered ?: present;
        if (!json_is_boolean(v))
                FAIL("%s.%s: expected true or false", where, powered ? "powered" : "present");
        const char *name = json_string_value(json_object_get(je, "adapter"));
        if (!(e->adapter = sim_adapter_by_name(sim, name ?: "hci0")))
                FAIL("%s.adapter: no adapter %s in this scenario", where, name ?: "hci0");
        e->kind = powered ? SIM_EVENT_POWERED : SIM_EVENT_PRESENT;
        e->on = json_is_true(v);
        return 0;
}

int sim_scenario_parse(struct sim *sim, const char *text, char *err, size_t err_size)
{
        json_error_t jerr;
        json_t *root = json_loads(text, 0, &jerr);
        if (!root)
                FAIL("line %d: %s", jerr.line, jerr.text);
        int r = -EINVAL;
        json_t *adapters = json_object_get(root, "adapters"), *ja;
        sim->temporary_timeout_s = 30;
        sim->le_connect_timeout_ms = 20000;
        if (!json_is_object(root)) {
                snprintf(err, err_size, "expected a JSON object");
                goto out;
        }
        if (get_uint(root, "temporary_timeout_s", 3600, &sim->temporary_timeout_s, "scenario", err,
                    err_size) < 0 ||
                get_uint(root, "le_connect_timeout_ms", 120000, &sim->le_connect_timeout_ms, "scenario", err,
                        err_size) < 0)
                goto out;
        size_t i;
        if (!adapters) {
                sim->n_adapters = 1;
                struct sim_adapter *a = &sim->adapters[0];
                *a = (struct sim_adapter){.sim = sim, .present = true, .powered = true};
                snprintf(a->name, sizeof a->name, "hci0");
                snprintf(a->address, sizeof a->address, "00:1A:7D:DA:71:13");
        } else if (!json_is_array(adapters) || json_array_size(adapters) == 0 ||
                   json_array_size(adapters) > ELEMENTSOF(sim->adapters)) {
                snprintf(err, err_size, "adapters: expected a list of 1 to 4 adapters");
                goto out;
        }
        json_array_foreach(adapters, i, ja)
        {
                struct sim_adapter *a = &sim->adapters[sim->n_adapters++];
                const char *name = json_string_value(json_object_get(ja, "name"));
                const char *addr = json_string_value(json_object_get(ja, "address"));
                json_t *pw = json_object_get(ja, "powered");
                if (!name || strncmp(name, "hci", 3) || strlen(name) > 8) {
                        snprintf(err, err_size, "adapters[%zu].name: expected hciN", i);
                        goto out;
                }
                *a = (struct sim_adapter){.sim = sim, .present = true, .powered = !pw || json_is_true(pw)};
                snprintf(a->name, sizeof a->name, "%s", name);
                snprintf(a->address, sizeof a->address, "%s",
                        addr && valid_address(addr) ? addr : "00:1A:7D:DA:71:13");
        }
        for (i = 0; i < sim->n_adapters; i++)
                snprintf(sim->adapters[i].path, sizeof sim->adapters[i].path, "/org/bluez/%s",
                        sim->adapters[i].name);

        json_t *modules = json_object_get(root, "modules"), *jm;
        if (!json_is_array(modules)) {
                snprintf(err, err_size, "modules: expected a list");
                goto out;
        }
        sim->modules = calloc(json_array_size(modules) + 1, sizeof *sim->modules);
        if (!sim->modules) {
                r = -ENOMEM;
                goto out;
        }
        json_array_foreach(modules, i, jm)
        {
                if (parse_module(sim, &sim->modules[sim->n_modules++], jm, i, err, err_size) < 0)
                        goto out;
                for (size_t k = 0; k + 1 < sim->n_modules; k++)
                        if (streq(sim->modules[k].address, sim->modules[i].address)) {
                                snprintf(err, err_size,
                                        "modules[%zu].address: %s is already used by modules[%zu]", i,
                                        sim->modules[i].address, k);
                                goto out;
                        }
        }
        json_t *events = json_object_get(root, "events"), *je;
        if (events && (!json_is_array(events) || json_array_size(events) > 64)) {
                snprintf(err, err_size, "events: expected a list of at most 64 events");
                goto out;
        }
        if (events && json_array_size(events)) {
                sim->events = calloc(json_array_size(events), sizeof *sim->events);
                if (!sim->events) {
                        r = -ENOMEM;
                        goto out;
                }
                json_array_foreach(events, i, je)
                {
                        if (parse_event(sim, &sim->events[sim->n_events++], je, i, err, err_size) < 0)
                                goto out;
                }
        }
        r = 0;
out:
        json_decref(root);
        return r;
}

int sim_scenario_load(struct sim *sim, const char *name_or_path, char *err, size_t err_size)
{
        char path[1024];
        if (strchr(name_or_path, '/') || strstr(name_or_path, ".json"))
                snprintf(path, sizeof path, "%s", name_or_path);
        else {
                const char *dir = getenv("BLUPOW_SCENARIO_DIR");
                snprintf(path, sizeof path, "%s/%s.json", dir ? dir : BLUPOW_DATADIR "/scenarios",
                        name_or_path);
        }
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f) {
                snprintf(err, err_size, "cannot open scenario %s: %s", path, strerror(errno));
                return -errno;
        }
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        FILE *mem = open_memstream(&text, &size);
        if (!mem)
                return -ENOMEM;
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0)
                fwrite(buf, 1, n, mem);
        fclose(mem);
        char inner[512];
        int r = sim_scenario_parse(sim, text, inner, sizeof inner);
        if (r < 0)
                snprintf(err, err_size, "%s: %s", path, inner);
        return r;
}

void sim_free(struct sim *sim)
{
        for (size_t i = 0; i < sim->n_adapters; i++)
                for (int c = 0; c < SIM_MAX_CLIENTS; c++) {
                        free(sim->adapters[i].discovery_clients[c]);
                        free(sim->adapters[i].filters[c].client);
                }
        for (size_t i = 0; i < sim->n_modules; i++) {
                for (size_t j = 0; j < sim->modules[i].n_units; j++) {
                        free(sim->modules[i].units[j].regs);
                        free(sim->modules[i].units[j].defined);
                }
                for (int c = 0; c < SIM_MAX_CLIENTS; c++)
                        free(sim->modules[i].notify_clients[c]);
                sd_event_source_disable_unref(sim->modules[i].notify_fd_src); /* and its socket */
                sd_event_source_disable_unref(sim->modules[i].write_fd_src);
        }
        free(sim->modules);
        free(sim->events);
        for (size_t i = 0; i < sim->n_calls; i++)
                sim_call_free(&sim->calls[i]);
        free(sim->calls);
}
