/* SPDX-License-Identifier: MIT */
/* Options, access rules, routing, BlueZ error mapping, diagnosis messages, the poll agenda. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "bluez.h"
#include "diagnosis.h"
#include "options.h"
#include "poller.h"
#include "run-suite.h"

static int parse(const char *text, struct options *o, char *err, size_t n)
{
        options_init(o);
        return options_parse(o, text, err, n);
}

START_TEST(options_valid_and_defaults)
{
        struct options o;
        char err[512];
        ck_assert_int_eq(parse("{\"devices\":[{\"name\":\"Rover "
                               "1\",\"address\":\"60:98:66:ed:fc:11\",\"type\":\"controller\"},"
                               "{\"name\":\"Bat\",\"address\":\"F8:55:48:1B:1B:B7\",\"type\":\"battery\","
                               "\"modbus_id\":49}],"
                               "\"poll_interval\":15,\"commit_interval\":0}",
                                 &o, err, sizeof err),
                0);
        ck_assert_uint_eq(o.n_devices, 2);
        ck_assert_str_eq(o.devices[0].id, "rover-1");
        ck_assert_str_eq(o.devices[0].address, "60:98:66:ED:FC:11");
        ck_assert_uint_eq(o.devices[0].modbus_id, 255);
        ck_assert_uint_eq(o.devices[1].modbus_id, 49);
        ck_assert_uint_eq(o.poll_interval, 15);
        ck_assert_uint_eq(o.commit_interval, 0);
        ck_assert_str_eq(o.adapter, "hci0");
        ck_assert_uint_eq(o.port, 8099);
        ck_assert(!o.keep_connected);
        /* No adapter or interval of their own: the global ones. */
        ck_assert_str_eq(device_config_adapter(&o.devices[0], &o), "hci0");
        ck_assert_uint_eq(device_config_interval(&o.devices[1], &o), 15);
        options_done(&o);
}
END_TEST

/* A device's own adapter and interval; one equal to the global option is the default. */
START_TEST(options_per_device_adapter_and_interval)
{
        struct options o;
        char err[512];
        ck_assert_int_eq(
                parse("{\"adapter\":\"hci0\",\"poll_interval\":20,\"devices\":["
                      "{\"name\":\"Inverter\",\"address\":\"D8:B6:73:10:20:35\",\"type\":\"inverter\","
                      "\"adapter\":\"hci1\",\"poll_interval\":60},"
                      "{\"name\":\"Rover\",\"address\":\"60:98:66:ED:FC:11\",\"type\":\"controller\","
                      "\"adapter\":\"hci0\",\"poll_interval\":20}]}",
                        &o, err, sizeof err),
                0);
        ck_assert_str_eq(device_config_adapter(&o.devices[0], &o), "hci1");
        ck_assert_uint_eq(device_config_interval(&o.devices[0], &o), 60);
        ck_assert_str_eq(o.devices[1].adapter, "");
        ck_assert_uint_eq(o.devices[1].poll_interval, 0);
        ck_assert_str_eq(device_config_adapter(&o.devices[1], &o), "hci0");
        ck_assert_uint_eq(device_config_interval(&o.devices[1], &o), 20);
        options_done(&o);
}
END_TEST

START_TEST(options_rejected_with_the_option_named)
{
        static const struct {
                const char *text, *needle;
        } bad[] = {
                {"[", "not valid JSON"},
                {"{\"poll_interval\": 1}", "'poll_interval'"},
                {"{\"poll_interval\": \"10\"}", "'poll_interval'"},
                {"{\"adapter\": \"wlan0\"}", "'adapter'"},
                {"{\"commit_interval\": 601}", "'commit_interval'"},
                {"{\"poll_interval\": 3601}", "'poll_interval'"},
                {"{\"history_days\": 366}", "'history_days'"},
                {"{\"commit_interval\": -1}", "'commit_interval'"},
                {"{\"keep_connected\": 1}", "'keep_connected'"},
                {"{\"log_level\": \"loud\"}", "'log_level'"},
                {"{\"api_token\": \"short\"}", "'api_token'"},
                {"{\"devices\": {}}", "'devices'"},
                {"{\"devices\": [{\"name\":\"A\",\"address\":\"zz\",\"type\":\"controller\"}]}",
                        "'devices[0].address'"},
                {"{\"devices\": [{\"name\":\"A\",\"address\":\"60:98:66:ED:FC:11\",\"type\":\"fridge\"}]}",
                        "'devices[0].type'"},
                {"{\"devices\": "
                 "[{\"name\":\"A\",\"address\":\"60:98:66:ED:FC:11\",\"type\":\"battery\",\"modbus_id\":300}"
                 "]}",
                        "'devices[0].modbus_id'"},
                {"{\"devices\": "
                 "[{\"name\":\"A\",\"address\":\"60:98:66:ED:FC:11\",\"type\":\"battery\",\"colour\":1}]}",
                        "'devices[0].colour'"},
                {"{\"devices\": [{\"address\":\"60:98:66:ED:FC:11\",\"type\":\"battery\"}]}",
                        "'devices[0].name'"},
                {"{\"devices\": [{\"name\":\"A\",\"address\":\"60:98:66:ED:FC:11\",\"type\":\"battery\","
                 "\"adapter\":\"usb0\"}]}",
                        "'devices[0].adapter'"},
                {"{\"devices\": [{\"name\":\"A\",\"address\":\"60:98:66:ED:FC:11\",\"type\":\"battery\","
                 "\"poll_interval\":2}]}",
                        "'devices[0].poll_interval'"},
                {"{\"devices\": [{\"name\":\"A\",\"address\":\"60:98:66:ED:FC:11\",\"type\":\"battery\","
                 "\"poll_interval\":0}]}",
                        "'devices[0].poll_interval'"},
                /* One module, one link, one adapter. */
                {"{\"devices\": [{\"name\":\"A\",\"address\":\"60:98:66:ED:FC:11\",\"type\":\"battery\","
                 "\"modbus_id\":48,\"adapter\":\"hci1\"},"
                 "{\"name\":\"B\",\"address\":\"60:98:66:ED:FC:11\",\"type\":\"battery\",\"modbus_id\":49}]"
                 "}",
                        "name different adapters"},
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                struct options o;
                char err[512] = "";
                ck_assert_int_eq(parse(bad[i].text, &o, err, sizeof err), -EINVAL);
                ck_assert_msg(strstr(err, bad[i].needle), "%s: message '%s' does not name %s", bad[i].text,
                        err, bad[i].needle);
                ck_assert_ptr_null(strchr(err, '\n'));
                options_done(&o);
        }
}
END_TEST

START_TEST(options_duplicates_name_both_entries)
{
        struct options o;
        char err[512];
        ck_assert_int_eq(
                parse("{\"devices\":[{\"name\":\"Rover\",\"address\":\"60:98:66:ED:FC:11\",\"type\":"
                      "\"controller\"},"
                      "{\"name\":\"Rover "
                      "B\",\"address\":\"60:98:66:ed:fc:11\",\"type\":\"controller\",\"modbus_id\":255}]}",
                        &o, err, sizeof err),
                -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "devices[1] ('Rover B')"));
        ck_assert_ptr_nonnull(strstr(err, "devices[0] ('Rover')"));
        ck_assert_ptr_nonnull(strstr(err, "same device"));
        ck_assert_int_eq(
                parse("{\"devices\":[{\"name\":\"Rover\",\"address\":\"60:98:66:ED:FC:11\",\"type\":"
                      "\"controller\"},"
                      "{\"name\":\"rover\",\"address\":\"11:98:66:ED:FC:11\",\"type\":\"controller\"}]}",
                        &o, err, sizeof err),
                -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "same name"));
        /* Same module, different ids: a hub, allowed. */
        ck_assert_int_eq(parse("{\"devices\":[{\"name\":\"B1\",\"address\":\"F8:55:48:1B:1B:B7\",\"type\":"
                               "\"battery\",\"modbus_id\":48},"
                               "{\"name\":\"B2\",\"address\":\"F8:55:48:1B:1B:B7\",\"type\":\"battery\","
                               "\"modbus_id\":49}]}",
                                 &o, err, sizeof err),
                0);
        options_done(&o);
}
END_TEST

START_TEST(access_rules)
{
        /* Ingress is trusted; loopback only outside the Supervisor. */
        ck_assert_int_eq(api_check_change("172.30.32.2", NULL, NULL, true), 0);
        ck_assert_int_eq(api_check_change("127.0.0.1", NULL, NULL, false), 0);
        ck_assert_int_eq(api_check_change("::1", NULL, NULL, false), 0);
        ck_assert_int_eq(api_check_change("127.0.0.1", NULL, NULL, true), -EPERM);
        ck_assert_int_eq(api_check_change("192.0.2.7", NULL, NULL, false), -EPERM);
        const char *tok = "0123456789abcdef0123";
        ck_assert_int_eq(api_check_change("192.0.2.7", NULL, tok, false), -EACCES);
        ck_assert_int_eq(api_check_change("192.0.2.7", "Bearer nope", tok, false), -EACCES);
        ck_assert_int_eq(api_check_change("192.0.2.7", "Basic 0123456789abcdef0123", tok, false), -EACCES);
        ck_assert_int_eq(api_check_change("192.0.2.7", "Bearer 0123456789abcdef012", tok, false), -EACCES);
        ck_assert_int_eq(api_check_change("192.0.2.7", "Bearer 0123456789abcdef0123", tok, false), 0);
        ck_assert_int_eq(api_check_change("192.0.2.7", "bearer 0123456789abcdef0123", tok, false), 0);
}
END_TEST

START_TEST(routing)
{
        struct api_match m;
        ck_assert_int_eq(api_route_match("GET", "/api/v1/health", &m), 0);
        ck_assert(m.route == ROUTE_HEALTH && m.method_ok);
        ck_assert_int_eq(api_route_match("POST", "/api/v1/health", &m), 0);
        ck_assert(!m.method_ok);
        ck_assert_str_eq(m.allow, "GET, HEAD");
        ck_assert_int_eq(api_route_match("GET", "/api/v1/devices/rover-1/history", &m), 0);
        ck_assert(m.route == ROUTE_DEVICE_HISTORY && m.method_ok);
        ck_assert_str_eq(m.id, "rover-1");
        ck_assert_int_eq(api_route_match("DELETE", "/api/v1/devices/rover", &m), 0);
        ck_assert(m.route == ROUTE_DEVICE && m.method_ok);
        ck_assert_int_eq(api_route_match("GET", "/api/v1/devices/rover/poll", &m), 0);
        ck_assert(m.route == ROUTE_DEVICE_POLL && !m.method_ok);
        ck_assert_int_eq(api_route_match("POST", "/api/v1/devices/Rover", &m), -ENOENT);
        ck_assert_int_eq(api_route_match("GET", "/api/v1/devices/../../etc", &m), -ENOENT);
        ck_assert_int_eq(api_route_match("GET", "/api/v1/nothing", &m), -ENOENT);
        ck_assert_int_eq(api_route_match("GET", "/api/v1/devices/x/y/z", &m), -ENOENT);
        ck_assert_int_eq(api_route_match("GET", "/app.js", &m), 0);
        ck_assert(m.route == ROUTE_STATIC && m.method_ok);
        ck_assert_int_eq(api_route_match("GETX", "/metrics", &m), 0);
        ck_assert(!m.method_ok);
}
END_TEST

START_TEST(bluez_errors_mapped_once)
{
        ck_assert_int_eq(bluez_error_from_dbus("org.bluez.Error.Failed", "le-connection-abort-by-local"),
                BLUEZ_ERR_ABORT_BY_LOCAL);
        ck_assert_int_eq(bluez_error_from_dbus("org.bluez.Error.Failed", "Software caused connection abort"),
                BLUEZ_ERR_ABORT_BY_LOCAL);
        ck_assert_int_eq(bluez_error_from_dbus("org.bluez.Error.Failed", "br-connection-canceled"),
                BLUEZ_ERR_CANCELED);
        ck_assert_int_eq(bluez_error_from_dbus("org.bluez.Error.Failed", "Operation already in progress"),
                BLUEZ_ERR_CONNECT_PENDING);
        ck_assert_int_eq(bluez_error_from_dbus("org.bluez.Error.Failed", "le-connection-timeout"),
                BLUEZ_ERR_CONNECTION);
        ck_assert_int_eq(
                bluez_error_from_dbus("org.bluez.Error.Failed", "Not connected"), BLUEZ_ERR_NOT_CONNECTED);
        ck_assert_int_eq(
                bluez_error_from_dbus("org.bluez.Error.InProgress", "Operation already in progress"),
                BLUEZ_ERR_IN_PROGRESS);
        ck_assert_int_eq(bluez_error_from_dbus("org.bluez.Error.NotReady", "Resource Not Ready"),
                BLUEZ_ERR_NOT_READY);
        ck_assert_int_eq(bluez_error_from_dbus("org.bluez.Error.AlreadyConnected", NULL), BLUEZ_OK);
        ck_assert_int_eq(bluez_error_from_dbus("org.freedesktop.DBus.Error.AccessDenied", "x"),
                BLUEZ_ERR_ACCESS_DENIED);
        ck_assert_int_eq(
                bluez_error_from_dbus("org.freedesktop.DBus.Error.ServiceUnknown", "x"), BLUEZ_ERR_NO_OWNER);
        ck_assert_int_eq(
                bluez_error_from_dbus("org.freedesktop.DBus.Error.NoReply", "x"), BLUEZ_ERR_TIMEOUT);
        ck_assert_int_eq(bluez_error_from_dbus("org.freedesktop.DBus.Error.UnknownObject", "x"),
                BLUEZ_ERR_UNKNOWN_OBJECT);
        ck_assert_int_eq(bluez_error_from_dbus("com.example.Weird", "x"), BLUEZ_ERR_FAILED);
        ck_assert(bluez_error_is_transient(BLUEZ_ERR_ABORT_BY_LOCAL));
        ck_assert(!bluez_error_is_transient(BLUEZ_ERR_NOT_READY));
}
END_TEST

/* Polls keep a fixed rate: a 1.3 s session does not push a 10 s period to 11.3 s. */
START_TEST(schedule_fixed_rate)
{
        const uint64_t s = 1000000, iv = 10 * s;
        ck_assert_uint_eq(next_due_after(100 * s, 101 * s + 300000, iv), 110 * s);
        /* Behind schedule: due now, not in the past and not an interval later. */
        ck_assert_uint_eq(next_due_after(100 * s, 125 * s, iv), 125 * s);
        ck_assert_uint_eq(next_due_after(100 * s, 110 * s, iv), 110 * s);
        /* A due time far ahead (manual poll) comes back to one interval from now. */
        ck_assert_uint_eq(next_due_after(500 * s, 101 * s, iv), 111 * s);
}
END_TEST

/* A failed module is retried every interval at first, then less and less often, never less
 * often than every five minutes (or its interval, if longer). */
START_TEST(retry_backs_off_to_a_cap)
{
        const uint64_t s = 1000000;
        ck_assert_uint_eq(retry_delay(10 * s, 1), 10 * s);
        ck_assert_uint_eq(retry_delay(10 * s, 3), 10 * s);
        ck_assert_uint_eq(retry_delay(10 * s, 4), 20 * s);
        ck_assert_uint_eq(retry_delay(10 * s, 6), 80 * s);
        ck_assert_uint_eq(retry_delay(10 * s, 9), 300 * s);
        ck_assert_uint_eq(retry_delay(10 * s, 1000), 300 * s);
        ck_assert_uint_eq(retry_delay(600 * s, 7), 600 * s);
}
END_TEST

static void check_heap(const struct agenda *a)
{
        for (size_t i = 0; i < a->n; i++) {
                ck_assert_ptr_eq(a->v[i].module->queue, a);
                ck_assert_uint_eq(a->v[i].module->queue_pos, i + 1);
                if (i)
                        ck_assert_uint_le(a->v[(i - 1) / 2].key, a->v[i].key);
        }
}

/* Each module waits in the right agenda of its radio: the due one while it answers or a
 * session was asked for (key 0), the retry one after a failure, none without devices; each
 * agenda's head is its earliest. Checked against every module after each of a few thousand
 * random changes, with modules leaving and coming back. */
START_TEST(agenda_head_is_the_earliest_module)
{
        enum { MODULES = 200, STEPS = 3000 };
        static struct module mods[MODULES];
        struct daemon d = {0};
        struct radio r = {.daemon = &d};
        memset(mods, 0, sizeof mods);
        srand(11);
        for (int i = 0; i < MODULES; i++) {
                mods[i].radio = &r;
                mods[i].n_devices = 1;
                mods[i].next_due = (uint64_t)(rand() % 1000) * 1000;
                mods[i].backoff = i % 3 ? 0 : 2;
                ck_assert_int_eq(poller_requeue(&d, &mods[i]), 0);
        }
        for (int step = 0; step < STEPS; step++) {
                struct module *m = &mods[rand() % MODULES];
                switch (rand() % 5) {
                case 0:
                        m->next_due = (uint64_t)(rand() % 1000) * 1000;
                        break;
                case 1:
                        m->poll_now = !m->poll_now;
                        break;
                case 2:
                        m->n_devices = !m->n_devices; /* leaves, or comes back */
                        break;
                case 3:
                        m->backoff = m->backoff ? 0 : 1 + (unsigned)(rand() % 4); /* fails, or answers */
                        m->ok_at = 1;
                        break;
                default:
                        m->next_due = UINT64_MAX; /* no schedule (blupowd verify) */
                }
                ck_assert_int_eq(poller_requeue(&d, m), 0);
                size_t in_due = 0, in_retry = 0;
                uint64_t best_due = UINT64_MAX, best_retry = UINT64_MAX;
                for (int i = 0; i < MODULES; i++) {
                        struct module *x = &mods[i];
                        if (!x->n_devices) {
                                ck_assert_ptr_null(x->queue);
                                continue;
                        }
                        bool due = x->poll_now || !x->backoff;
                        ck_assert_ptr_eq(x->queue, due ? &r.due : &r.retry);
                        uint64_t key = x->poll_now ? 0 : x->next_due;
                        ck_assert_uint_eq(x->queue->v[x->queue_pos - 1].key, key);
                        if (due) {
                                in_due++;
                                best_due = key < best_due ? key : best_due;
                        } else {
                                in_retry++;
                                best_retry = key < best_retry ? key : best_retry;
                        }
                }
                ck_assert_uint_eq(r.due.n, in_due);
                ck_assert_uint_eq(r.retry.n, in_retry);
                if (in_due)
                        ck_assert_uint_eq(r.due.v[0].key, best_due);
                if (in_retry)
                        ck_assert_uint_eq(r.retry.v[0].key, best_retry);
                check_heap(&r.due);
                check_heap(&r.retry);
        }
        free(r.due.v);
        free(r.retry.v);
}
END_TEST

START_TEST(every_diagnosis_has_text)
{
        for (int c = 1; c < _DIAG_MAX; c++) {
                const struct diagnosis_info *i = diagnosis_info(c);
                ck_assert(i->code && *i->code && i->message && *i->message && i->remedy && *i->remedy);
                ck_assert_int_eq(diagnosis_from_string(i->code), c);
                char buf[400];
                diagnosis_message(c, "DETAIL", buf, sizeof buf);
                ck_assert_ptr_null(strstr(buf, "%s"));
        }
        ck_assert_ptr_nonnull(strstr(diagnosis_info(DIAG_INVERTER_ASLEEP)->remedy, "wait 60 seconds"));
        ck_assert_ptr_nonnull(strstr(diagnosis_info(DIAG_DBUS_ACCESS_DENIED)->remedy, "last resort"));
}
END_TEST

int main(void)
{
        Suite *s = suite_create("daemon-units");
        TCase *tc = tcase_create("core");
        /* The agenda check walks 3000 random changes of 200 modules: seconds under ASan on a
         * loaded machine, past check's default of 4 s. */
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, options_valid_and_defaults);
        tcase_add_test(tc, options_rejected_with_the_option_named);
        tcase_add_test(tc, options_per_device_adapter_and_interval);
        tcase_add_test(tc, options_duplicates_name_both_entries);
        tcase_add_test(tc, access_rules);
        tcase_add_test(tc, routing);
        tcase_add_test(tc, bluez_errors_mapped_once);
        tcase_add_test(tc, every_diagnosis_has_text);
        tcase_add_test(tc, schedule_fixed_rate);
        tcase_add_test(tc, agenda_head_is_the_earliest_module);
        tcase_add_test(tc, retry_backs_off_to_a_cap);
        suite_add_tcase(s, tc);
        return run_suite(s);
}
