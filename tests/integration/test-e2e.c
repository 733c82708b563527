/* SPDX-License-Identifier: MIT */
/* blupowd against blupow-sim on a private bus, through the daemon's real interfaces. */
#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define CONTROLLER "60:98:66:ED:FC:11"
#define INVERTER   "D8:B6:73:10:20:35"
#define HUB        "F8:55:48:1B:1B:B7"

static struct env env;
static bool env_up;

static void teardown(void)
{
        if (env_up)
                env_stop(&env);
        env_up = false;
}

static void start(const char *scenario, const char *options, const char *options_json)
{
        char sc[400], op[400];
        struct env_config cfg = {
                .scenario = source_path(scenario, sc, sizeof sc),
                .options = options ? source_path(options, op, sizeof op) : NULL,
                .options_json = options_json,
        };
        int r = env_start(&env, &cfg);
        env_up = true;
        ck_assert_msg(r == 0, "environment did not start: %s", strerror(-r));
}

static json_t *must_wait(
        const char *id, bool (*pred)(json_t *, const void *), const void *arg, double seconds)
{
        json_t *d = wait_device(&env, id, pred, arg, seconds);
        if (!d) {
                char path[128];
                snprintf(path, sizeof path, "/api/v1/devices/%s", id);
                json_t *now = http_json(&env, "GET", path, NULL, NULL);
                char *s = now ? json_dumps(now, JSON_COMPACT) : strdup("(no answer)");
                if (s && strlen(s) > 600)
                        s[600] = 0;
                ck_abort_msg("%s: condition not reached in %.0f s; now %s", id, seconds, s);
        }
        return d;
}

static const char *demo_options =
        "{\"devices\": ["
        "{\"name\": \"Inverter\", \"address\": \"D8:B6:73:10:20:35\", \"type\": \"inverter\"},"
        "{\"name\": \"Rover\", \"address\": \"60:98:66:ED:FC:11\", \"type\": \"controller\"},"
        "{\"name\": \"Battery 1\", \"address\": \"F8:55:48:1B:1B:B7\", \"type\": \"battery\", "
        "\"modbus_id\": 48},"
        "{\"name\": \"Battery 2\", \"address\": \"F8:55:48:1B:1B:B7\", \"type\": \"battery\", "
        "\"modbus_id\": 49},"
        "{\"name\": \"DC-DC charger\", \"address\": \"AC:4D:16:17:8A:45\", \"type\": \"dcc\"},"
        "{\"name\": \"Shunt\", \"address\": \"C4:D3:6A:00:11:22\", \"type\": \"shunt\"}],"
        " \"poll_interval\": 5}";

static const struct {
        const char *id, *address;
        unsigned modbus_id;
} demo_devices[] = {
        {"inverter", INVERTER, 32},
        {"rover", CONTROLLER, 255},
        {"battery-1", HUB, 48},
        {"battery-2", HUB, 49},
        {"dc-dc-charger", "AC:4D:16:17:8A:45", 255},
        {"shunt", "C4:D3:6A:00:11:22", 0},
};

/* Every device online, every reading equal to what the simulator's registers decode to. */
START_TEST(demo_every_reading_matches_the_simulator)
{
        start("tests/integration/scenarios/static.json", NULL, demo_options);
        for (size_t i = 0; i < sizeof demo_devices / sizeof demo_devices[0]; i++) {
                json_t *dev = must_wait(demo_devices[i].id, dev_state_is, "online", 40);
                json_t *want = sim_readings(&env, demo_devices[i].address, demo_devices[i].modbus_id);
                ck_assert_ptr_nonnull(want);
                ck_assert_int_gt((int)json_object_size(want), 5);
                json_t *got = json_object_get(dev, "readings");
                const char *key;
                json_t *w;
                json_object_foreach(want, key, w)
                {
                        json_t *g = json_object_get(json_object_get(got, key), "value");
                        json_t *wv = json_object_get(w, "value");
                        char *ws = json_dumps(wv, JSON_ENCODE_ANY);
                        ck_assert_msg(
                                g != NULL, "%s.%s missing (simulator has %s)", demo_devices[i].id, key, ws);
                        if (json_is_number(wv))
                                ck_assert_msg(fabs(json_number_value(g) - json_number_value(wv)) < 1e-9,
                                        "%s.%s: %g != %s", demo_devices[i].id, key, json_number_value(g),
                                        ws);
                        else
                                ck_assert_msg(json_equal(g, wv), "%s.%s differs from %s", demo_devices[i].id,
                                        key, ws);
                        free(ws);
                }
                json_decref(want);
                json_decref(dev);
        }
        /* The daemon's manners, from the simulator's record: one outstanding request per module,
         * discovery never running while connecting. */
        const char *modules[] = {CONTROLLER, INVERTER, HUB, "AC:4D:16:17:8A:45", "C4:D3:6A:00:11:22"};
        for (size_t i = 0; i < 5; i++) {
                ck_assert_int_le(sim_stat(&env, modules[i], "max_outstanding"), 1);
                ck_assert_int_eq(sim_stat(&env, modules[i], "connects_while_discovering"), 0);
                ck_assert_int_ge(sim_stat(&env, modules[i], "connects"), 1);
        }
        /* Both batteries behind the hub are read over one connection per poll. */
        ck_assert_int_le(sim_stat(&env, HUB, "connects"), sim_stat(&env, CONTROLLER, "connects") + 1);
        ck_assert_int_eq(sim_count_calls(&env, "WriteValue", "dev_C4_D3_6A_00_11_22"), 0);

        /* SIGTERM: exit 0 within 5 s, and no module left connected. */
        double secs;
        ck_assert_int_eq(env_stop_daemon(&env, &secs), 0);
        ck_assert_double_lt(secs, 5.0);
        for (size_t i = 0; i < 5; i++)
                ck_assert_int_eq(sim_stat(&env, modules[i], "connected"), 0);
}
END_TEST

START_TEST(shutdown_mid_session_disconnects)
{
        /* Slow links: SIGTERM lands while a session is under way. */
        start("tests/integration/scenarios/slow.json", NULL,
                "{\"devices\": [{\"name\": \"Rover\", \"address\": \"60:98:66:ED:FC:11\", \"type\": "
                "\"controller\"}],"
                " \"poll_interval\": 5}");
        for (int i = 0; i < 100 && sim_stat(&env, CONTROLLER, "connected") != 1; i++)
                sleep_s(0.05);
        ck_assert_int_eq(sim_stat(&env, CONTROLLER, "connected"), 1);
        double secs;
        ck_assert_int_eq(env_stop_daemon(&env, &secs), 0);
        ck_assert_double_lt(secs, 5.0);
        ck_assert_int_eq(sim_stat(&env, CONTROLLER, "connected"), 0);
        ck_assert_int_ge(sim_count_calls(&env, "Disconnect", "dev_60_98_66_ED_FC_11"), 1);
}
END_TEST

START_TEST(fault_connect_abort_retries_within_the_poll)
{
        start("scenarios/fault-connect-abort.json", "scenarios/fault-connect-abort.options.json", NULL);
        json_decref(must_wait("rover", dev_state_is, "online", 20));
        ck_assert_int_ge(sim_stat(&env, CONTROLLER, "connects"), 3);
}
END_TEST

START_TEST(fault_connect_hang_is_cancelled)
{
        start("scenarios/fault-connect-hang.json", "scenarios/fault-connect-hang.options.json", NULL);
        json_decref(must_wait("rover", dev_state_is, "online", 60));
        /* The hung Connect was cancelled with Disconnect before the next attempt. */
        ck_assert_int_ge(sim_count_calls(&env, "Disconnect", "dev_60_98_66_ED_FC_11"), 1);
        ck_assert_int_ge(sim_stat(&env, CONTROLLER, "connects"), 2);
}
END_TEST

static bool has_error(json_t *diag, const char *id, const char *kind)
{
        size_t i;
        json_t *d;
        json_array_foreach(json_object_get(diag, "devices"), i,
                d) if (strcmp(json_string_value(json_object_get(d, "id")), id) ==
                       0) return json_integer_value(json_object_get(json_object_get(d, "errors"), kind)) >
                        0 ||
                (strcmp(kind, "bad_frames") == 0 &&
                        json_integer_value(json_object_get(d, "bad_frames")) > 0);
        return false;
}

START_TEST(fault_drop_mid_response_recovers)
{
        start("scenarios/fault-drop-mid-response.json", "scenarios/fault-drop-mid-response.options.json",
                NULL);
        json_t *dev = must_wait("rover", dev_diag_is, "weak_signal", 20);
        json_decref(dev);
        json_decref(must_wait("rover", dev_state_is, "online", 15));
        json_t *diag = http_json(&env, "GET", "/api/v1/diagnostics", NULL, NULL);
        ck_assert(has_error(diag, "rover", "weak_signal"));
        json_decref(diag);
}
END_TEST

START_TEST(fault_resolved_before_characteristics)
{
        start("scenarios/fault-resolved-early.json", "scenarios/fault-resolved-early.options.json", NULL);
        json_decref(must_wait("rover", dev_state_is, "online", 20));
        json_decref(must_wait("inverter", dev_state_is, "online", 20));
}
END_TEST

START_TEST(fault_corrupt_notification_counted)
{
        start("scenarios/fault-corrupt.json", "scenarios/fault-corrupt.options.json", NULL);
        json_decref(must_wait("rover", dev_state_is, "online", 20));
        json_t *diag = http_json(&env, "GET", "/api/v1/diagnostics", NULL, NULL);
        ck_assert(has_error(diag, "rover", "bad_frames"));
        json_decref(diag);
}
END_TEST

START_TEST(fault_modbus_exception_survived)
{
        start("scenarios/fault-modbus-exception.json", "scenarios/fault-modbus-exception.options.json",
                NULL);
        json_decref(must_wait("rover", dev_state_is, "online", 20));
        json_t *dev = must_wait("rover", dev_online_polled_after, "0", 20);
        ck_assert_ptr_nonnull(json_object_get(json_object_get(dev, "readings"), "battery_voltage"));
        json_decref(dev);
}
END_TEST

/* Notifications through AcquireNotify's socket and requests through AcquireWrite's; against a
 * BlueZ without either (UnknownMethod), StartNotify and WriteValue, and neither Acquire is asked
 * again. */
START_TEST(sockets_and_fallback_to_start_notify_and_write_value)
{
        const char *path = "dev_60_98_66_ED_FC_11";
        start("scenarios/fault-connect-abort.json", "scenarios/fault-connect-abort.options.json", NULL);
        json_t *dev = must_wait("rover", dev_online_polled_after, "0", 20);
        ck_assert_ptr_nonnull(json_object_get(json_object_get(dev, "readings"), "battery_voltage"));
        json_decref(dev);
        ck_assert_int_ge(sim_count_calls(&env, "AcquireNotify", path), 1);
        ck_assert_int_ge(sim_count_calls(&env, "AcquireWrite", path), 1);
        ck_assert_int_eq(sim_count_calls(&env, "StartNotify", path), 0);
        ck_assert_int_eq(sim_count_calls(&env, "WriteValue", path), 0);
        /* The controller's four register blocks, each one packet on the write socket. */
        ck_assert_int_ge(sim_count_calls(&env, "(write socket)", path), 4);

        ck_assert_int_ge(sim_set_fault(&env, CONTROLLER, "no_acquire", -1), 0);
        int acquires = sim_count_calls(&env, "AcquireNotify", path);
        int write_acquires = sim_count_calls(&env, "AcquireWrite", path);
        char t[64];
        for (int poll = 0; poll < 2; poll++) {
                dev = must_wait("rover", dev_state_is, "online", 5);
                snprintf(t, sizeof t, "%s", json_string_value(json_object_get(dev, "last_poll")));
                json_decref(dev);
                dev = must_wait("rover", dev_online_polled_after, t, 20);
                ck_assert_ptr_nonnull(json_object_get(json_object_get(dev, "readings"), "battery_voltage"));
                json_decref(dev);
        }
        ck_assert_int_ge(sim_count_calls(&env, "StartNotify", path), 1);
        ck_assert_int_ge(sim_count_calls(&env, "WriteValue", path), 4);
        ck_assert_int_le(sim_count_calls(&env, "AcquireNotify", path), acquires + 1);
        /* AcquireWrite comes after the subscription: asked at most once after the fault. */
        ck_assert_int_le(sim_count_calls(&env, "AcquireWrite", path), write_acquires + 1);
}
END_TEST

START_TEST(fault_held_by_phone_app_then_released)
{
        start("scenarios/fault-connect-abort.json", "scenarios/fault-connect-abort.options.json", NULL);
        json_decref(must_wait("rover", dev_state_is, "online", 20));
        ck_assert_int_ge(sim_set_fault(&env, CONTROLLER, "held_by_other_central", -1), 0);
        json_t *dev = must_wait("rover", dev_diag_is, "held_by_other_central", 20);
        ck_assert(dev_state_is(dev, "busy"));
        ck_assert_ptr_nonnull(
                strstr(json_string_value(json_object_get(json_object_get(dev, "diagnosis"), "remedy")),
                        "Renogy DC Home"));
        json_decref(dev);
        ck_assert_int_ge(sim_set_fault(&env, CONTROLLER, "held_by_other_central", 0), 0);
        /* Back within two poll intervals after the fault clears. */
        json_decref(must_wait("rover", dev_state_is, "online", 2 * 5 + 3));
}
END_TEST

START_TEST(fault_inverter_asleep_power_cycle_advice)
{
        start("scenarios/fault-connect-abort.json", "scenarios/fault-connect-abort.options.json", NULL);
        json_decref(must_wait("inverter", dev_state_is, "online", 20));
        ck_assert_int_ge(sim_set_fault(&env, INVERTER, "asleep", -1), 0);
        json_t *dev = must_wait("inverter", dev_diag_is, "inverter_asleep", 40);
        ck_assert(dev_state_is(dev, "asleep"));
        const char *remedy = json_string_value(json_object_get(json_object_get(dev, "diagnosis"), "remedy"));
        ck_assert_ptr_nonnull(strstr(remedy, "wait 60"));
        ck_assert_ptr_nonnull(strstr(remedy, "2 minutes"));
        /* Readings stay, with their age. */
        ck_assert_ptr_nonnull(json_object_get(json_object_get(dev, "readings"), "battery_voltage"));
        ck_assert(!json_is_true(json_object_get(dev, "available")) ||
                  json_real_value(json_object_get(dev, "age_s")) < 15);
        json_decref(dev);
        ck_assert_int_ge(sim_set_fault(&env, INVERTER, "asleep", 0), 0);
        json_decref(must_wait("inverter", dev_state_is, "online", 2 * 5 + 15));
}
END_TEST

START_TEST(fault_adapter_off_then_powered_from_the_api)
{
        start("scenarios/fault-adapter-off.json", "scenarios/fault-adapter-off.options.json", NULL);
        json_t *dev = must_wait("rover", dev_diag_is, "adapter_off", 15);
        json_decref(dev);
        int status;
        json_t *r = http_json(&env, "POST", "/api/v1/adapter/power", NULL, &status);
        ck_assert_int_eq(status, 202);
        json_decref(r);
        json_decref(must_wait("rover", dev_state_is, "online", 20));
}
END_TEST

START_TEST(fault_wrong_modbus_id_probed)
{
        start("scenarios/fault-wrong-id.json", "scenarios/fault-wrong-id.options.json", NULL);
        json_t *dev = must_wait("rover", dev_diag_is, "wrong_modbus_id", 40);
        const char *msg = json_string_value(json_object_get(json_object_get(dev, "diagnosis"), "message"));
        ck_assert_ptr_nonnull(strstr(msg, "id 17 configured; id 255 answered"));
        json_decref(dev);
}
END_TEST

START_TEST(bluetoothd_restart_and_adapter_unplug)
{
        start("scenarios/fault-connect-abort.json", "scenarios/fault-connect-abort.options.json", NULL);
        json_t *dev = must_wait("rover", dev_state_is, "online", 20);
        char t0[64];
        snprintf(t0, sizeof t0, "%s", json_string_value(json_object_get(dev, "last_poll")));
        json_decref(dev);

        ck_assert_int_ge(sim_simple(&env, "RestartBluez", "u", 1500), 0);
        sleep_s(0.3);
        json_t *h = http_json(&env, "GET", "/api/v1/health", NULL, NULL);
        ck_assert_str_eq(json_string_value(json_object_get(
                                 json_object_get(json_object_get(h, "system"), "diagnosis"), "code")),
                "bluez_not_running");
        json_decref(h);
        json_decref(must_wait("rover", dev_online_polled_after, t0, 20));

        ck_assert_int_ge(sim_simple(&env, "RemoveAdapter", "s", "hci0"), 0);
        dev = must_wait("rover", dev_diag_is, "no_adapter", 15); /* its only adapter */
        json_decref(dev);
        ck_assert_int_ge(sim_simple(&env, "AddAdapter", "s", "hci0"), 0);
        dev = must_wait("rover", dev_state_is, "online", 20);
        json_decref(dev);
}
END_TEST

static json_t *system_diagnosis(void)
{
        json_t *h = http_json(&env, "GET", "/api/v1/health", NULL, NULL);
        json_t *d = json_incref(json_object_get(json_object_get(h, "system"), "diagnosis"));
        json_decref(h);
        return d;
}

START_TEST(bus_access_denied_named)
{
        char sc[400];
        struct env_config cfg = {.scenario = source_path("scenarios/demo.json", sc, sizeof sc),
                .deny_bluez = true,
                .options_json = demo_options};
        ck_assert_int_eq(env_start(&env, &cfg), 0);
        env_up = true;
        json_t *d = NULL;
        for (int i = 0; i < 50; i++) {
                json_decref(d);
                d = system_diagnosis();
                if (json_is_object(d))
                        break;
                sleep_s(0.1);
        }
        ck_assert_str_eq(json_string_value(json_object_get(d, "code")), "dbus_access_denied");
        ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(d, "remedy")), "AppArmor"));
        json_decref(d);
        json_t *dev = must_wait("rover", dev_diag_is, "dbus_access_denied", 10);
        json_decref(dev);
        int status;
        json_decref(http_json(&env, "POST", "/api/v1/devices/rover/poll", NULL, &status));
        ck_assert_int_eq(status, 503);
}
END_TEST

START_TEST(bus_missing_and_bluez_missing_named)
{
        char sc[400];
        struct env_config cfg = {.scenario = source_path("scenarios/demo.json", sc, sizeof sc),
                .no_sim = true,
                .options_json = demo_options};
        ck_assert_int_eq(env_start(&env, &cfg), 0);
        env_up = true;
        json_t *dev = must_wait("rover", dev_diag_is, "bluez_not_running", 10);
        json_decref(dev);
        env_stop_daemon(&env, NULL);
        cfg.bus_address_override = "unix:path=/nonexistent/blupow/system_bus_socket";
        ck_assert_int_eq(env_start_daemon(&env, &cfg), 0);
        dev = must_wait("rover", dev_diag_is, "no_system_bus", 10);
        ck_assert_ptr_nonnull(
                strstr(json_string_value(json_object_get(json_object_get(dev, "diagnosis"), "remedy")),
                        "host_dbus"));
        json_decref(dev);
}
END_TEST

static int status_of(const char *method, const char *path, const char *body, char **resp)
{
        return http(&env, method, path, body, NULL, resp);
}

/* The REST API as curl and the status page use it. */
START_TEST(api_routes_and_errors)
{
        start("tests/integration/scenarios/static.json", NULL, demo_options);
        json_decref(must_wait("rover", dev_state_is, "online", 30));
        char *r;
        ck_assert_int_eq(status_of("GET", "/api/v1/nothing", NULL, &r), 404);
        ck_assert_ptr_nonnull(strstr(r, "\"error\""));
        free(r);
        ck_assert_int_eq(status_of("PUT", "/api/v1/health", NULL, &r), 405);
        free(r);
        ck_assert_int_eq(status_of("GET", "/api/v1/devices/ghost", NULL, &r), 404);
        free(r);
        ck_assert_int_eq(status_of("POST", "/api/v1/devices", "{not json", &r), 400);
        free(r);
        char *big = malloc(40000);
        memset(big, ' ', 39999);
        big[0] = '{';
        big[39998] = '}';
        big[39999] = 0;
        ck_assert_int_eq(status_of("POST", "/api/v1/devices", big, &r), 413);
        free(big);
        free(r);
        ck_assert_int_eq(status_of("GET", "/../../etc/passwd", NULL, &r), 404);
        free(r);
        ck_assert_int_eq(status_of("GET", "/", NULL, &r), 200);
        ck_assert_ptr_nonnull(strstr(r, "app.js"));
        ck_assert_ptr_null(strstr(r, "src=\"/"));
        free(r);

        /* Add, refuse the duplicate, remove; options devices cannot be removed here. */
        const char *shunt2 =
                "{\"name\":\"Shunt copy\",\"address\":\"C4:D3:6A:00:11:22\",\"type\":\"shunt\"}";
        ck_assert_int_eq(status_of("POST", "/api/v1/devices", shunt2, &r), 409);
        ck_assert_ptr_nonnull(strstr(r, "same device"));
        free(r);
        const char *extra =
                "{\"name\":\"Spare "
                "Rover\",\"address\":\"60:98:66:ED:FC:11\",\"type\":\"controller\",\"modbus_id\":16}";
        ck_assert_int_eq(status_of("GET", "/api/v1/devices", NULL, &r), 200); /* the list is cached now */
        ck_assert_ptr_null(strstr(r, "spare-rover"));
        free(r);
        ck_assert_int_eq(status_of("POST", "/api/v1/devices", extra, &r), 201);
        free(r);
        /* A change through the API shows in the very next list, cache or not. */
        ck_assert_int_eq(status_of("GET", "/api/v1/devices", NULL, &r), 200);
        ck_assert_ptr_nonnull(strstr(r, "\"spare-rover\""));
        free(r);
        ck_assert_int_eq(status_of("POST", "/api/v1/devices",
                                 "{\"name\":\"X\",\"address\":\"bad\",\"type\":\"controller\"}", &r),
                400);
        free(r);
        ck_assert_int_eq(status_of("DELETE", "/api/v1/devices/rover", NULL, &r), 409);
        free(r);
        for (int i = 0; i < 50; i++) {
                int s = status_of("DELETE", "/api/v1/devices/spare-rover", NULL, &r);
                free(r);
                if (s == 204)
                        break;
                ck_assert_int_eq(s, 409); /* busy while it is being read */
                sleep_s(0.2);
        }
        ck_assert_int_eq(status_of("GET", "/api/v1/devices/spare-rover", NULL, &r), 404);
        free(r);
        ck_assert_int_eq(status_of("GET", "/api/v1/devices", NULL, &r), 200);
        ck_assert_ptr_null(strstr(r, "spare-rover"));
        free(r);

        /* Verify: steps, readings, verdict. */
        int st;
        json_t *v = http_json(&env, "POST", "/api/v1/devices/inverter/verify", NULL, &st);
        ck_assert_int_eq(st, 200);
        ck_assert(json_is_true(json_object_get(v, "ok")));
        ck_assert_int_ge((int)json_array_size(json_object_get(v, "steps")), 6);
        ck_assert_ptr_nonnull(json_object_get(json_object_get(v, "readings"), "load_active_power"));
        json_decref(v);

        /* Load switch: the simulator's register really changes. */
        v = http_json(&env, "POST", "/api/v1/devices/rover/load", "{\"on\": false}", &st);
        ck_assert_int_eq(st, 200);
        json_decref(v);
        json_t *regs = sim_readings(&env, CONTROLLER, 255);
        ck_assert_str_eq(
                json_string_value(json_object_get(json_object_get(regs, "load_status"), "value")), "off");
        json_decref(regs);
        ck_assert_int_eq(status_of("POST", "/api/v1/devices/inverter/load", "{\"on\": true}", &r), 400);
        free(r);

        /* History, metrics, the Home Assistant package. */
        json_t *h = http_json(&env, "GET", "/api/v1/devices/rover/history?key=battery_voltage", NULL, &st);
        ck_assert_int_eq(st, 200);
        ck_assert_int_ge((int)json_array_size(json_object_get(h, "data")), 1);
        json_decref(h);
        ck_assert_int_eq(status_of("GET", "/api/v1/devices/rover/history?key=model", NULL, &r), 400);
        free(r);
        ck_assert_int_eq(status_of("GET", "/metrics", NULL, &r), 200);
        ck_assert_ptr_nonnull(strstr(r, "blupow_reading{device=\"rover\""));
        ck_assert_ptr_nonnull(strstr(r, "blupow_device_up{device=\"inverter\""));
        free(r);
        ck_assert_int_eq(status_of("GET", "/api/v1/homeassistant/package.yaml", NULL, &r), 200);
        ck_assert_ptr_nonnull(strstr(r, "unique_id: blupow_609866edfc11_255_battery_voltage"));
        ck_assert_ptr_nonnull(strstr(r, "state_class: total_increasing"));
        ck_assert_ptr_nonnull(strstr(r, "device_class: connectivity"));
        free(r);
}
END_TEST

/* Another client (Home Assistant's Bluetooth integration) scans on the same adapter: BluPow
 * says so as information and keeps polling; when the other scan stops, the note goes. */
START_TEST(adapter_shared_with_another_scanner)
{
        start("scenarios/demo.json", NULL, demo_options);
        json_decref(must_wait("rover", dev_state_is, "online", 20));
        json_t *d = system_diagnosis();
        ck_assert_msg(json_is_null(d), "a system diagnosis before anyone else scans");
        sd_bus_error error = SD_BUS_ERROR_NULL;
        /* The test's own bus connection is the other client; its session lasts while it is on the bus. */
        int r = sd_bus_call_method(env.bus, "org.bluez", "/org/bluez/hci0", "org.bluez.Adapter1",
                "StartDiscovery", &error, NULL, "");
        ck_assert_msg(r >= 0, "StartDiscovery: %s", error.message);
        sd_bus_error_free(&error);
        for (int i = 0; i < 100; i++) {
                json_decref(d);
                d = system_diagnosis();
                if (json_is_object(d))
                        break;
                sleep_s(0.1);
        }
        ck_assert_msg(json_is_object(d), "no system diagnosis while another client scans");
        ck_assert_str_eq(json_string_value(json_object_get(d, "code")), "adapter_shared");
        ck_assert_str_eq(json_string_value(json_object_get(d, "severity")), "info");
        json_decref(d);
        char t0[64];
        json_t *before = http_json(&env, "GET", "/api/v1/devices/rover", NULL, NULL);
        snprintf(t0, sizeof t0, "%s", json_string_value(json_object_get(before, "last_poll")));
        json_decref(before);
        /* Polling goes on; devices are not blamed on the shared adapter. */
        json_t *dev = must_wait("rover", dev_online_polled_after, t0, 15);
        ck_assert(json_is_null(json_object_get(dev, "diagnosis")));
        json_decref(dev);
        json_t *h = http_json(&env, "GET", "/api/v1/health", NULL, NULL);
        ck_assert_str_eq(json_string_value(json_object_get(h, "status")), "ok");
        ck_assert_str_eq(json_string_value(json_object_get(
                                 json_object_get(json_object_get(h, "system"), "diagnosis"), "code")),
                "adapter_shared");
        json_decref(h);

        r = sd_bus_call_method(env.bus, "org.bluez", "/org/bluez/hci0", "org.bluez.Adapter1",
                "StopDiscovery", &error, NULL, "");
        ck_assert_msg(r >= 0, "StopDiscovery: %s", error.message);
        sd_bus_error_free(&error);
        d = NULL;
        for (int i = 0; i < 100; i++) {
                json_decref(d);
                d = system_diagnosis();
                if (json_is_null(d))
                        break;
                sleep_s(0.1);
        }
        ck_assert_msg(json_is_null(d), "adapter_shared stayed after the other scan stopped");
        json_decref(d);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("e2e");
        struct {
                const char *name;
                const TTest *test;
        } tests[] = {
                {"demo", demo_every_reading_matches_the_simulator},
                {"shutdown", shutdown_mid_session_disconnects},
                {"connect_abort", fault_connect_abort_retries_within_the_poll},
                {"connect_hang", fault_connect_hang_is_cancelled},
                {"drop_mid_response", fault_drop_mid_response_recovers},
                {"resolved_early", fault_resolved_before_characteristics},
                {"corrupt", fault_corrupt_notification_counted},
                {"modbus_exception", fault_modbus_exception_survived},
                {"held", fault_held_by_phone_app_then_released},
                {"notify_socket", sockets_and_fallback_to_start_notify_and_write_value},
                {"asleep", fault_inverter_asleep_power_cycle_advice},
                {"adapter_off", fault_adapter_off_then_powered_from_the_api},
                {"wrong_id", fault_wrong_modbus_id_probed},
                {"restart", bluetoothd_restart_and_adapter_unplug},
                {"access_denied", bus_access_denied_named},
                {"no_bus", bus_missing_and_bluez_missing_named},
                {"api", api_routes_and_errors},
                {"adapter_shared", adapter_shared_with_another_scanner},
        };
        const char *only = getenv("BLUPOW_TEST_ONLY");
        for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
                if (only && !strstr(only, tests[i].name))
                        continue;
                TCase *tc = tcase_create(tests[i].name);
                tcase_add_checked_fixture(tc, NULL, teardown);
                tcase_add_test(tc, tests[i].test);
                suite_add_tcase(s, tc);
        }
        return s;
}

int main(void)
{
        signal(SIGPIPE, SIG_IGN);
        SRunner *sr = srunner_create(suite());
        srunner_set_fork_status(sr, CK_NOFORK);
        srunner_run_all(sr, CK_VERBOSE);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? 1 : 0;
}
