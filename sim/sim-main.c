/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "sim.h"

void sim_laters_free(void);

static void help(void)
{
        printf("blupow-sim " BLUPOW_VERSION " - BlueZ 5.66 and Renogy modules, simulated\n"
               "\n"
               "usage: blupow-sim [--scenario NAME|FILE] [--peripheral ADAPTER[,ADAPTER...]] [--check]\n"
               "                  [--verbose]\n"
               "\n"
               "Claims org.bluez (and org.blupow.Sim) on the bus named by DBUS_SYSTEM_BUS_ADDRESS\n"
               "and behaves like bluetoothd with the adapters and modules of the scenario.\n"
               "With --peripheral, a real bluetoothd owns org.bluez instead, and each module of the\n"
               "scenario becomes a peripheral on one of its adapters, in order: its GATT services\n"
               "registered with GattManager1, its advertisement with LEAdvertisingManager1, its\n"
               "address the adapter's. Prints \"module ADDRESS ADAPTER NAME\" per module, then\n"
               "\"ready\". Faults there: asleep, drop_mid_response, corrupt_notification,\n"
               "modbus_exception; the others are the real stack's to produce.\n"
               "NAME is a shipped scenario (" BLUPOW_DATADIR "/scenarios, or $BLUPOW_SCENARIO_DIR);\n"
               "FILE a path. --check validates the scenario and exits.\n"
               "\n"
               "Scenario format (JSON):\n"
               "  {\n"
               "    \"adapters\": [{\"name\": \"hci0\", \"address\": \"00:1A:7D:DA:71:13\", \"powered\": "
               "true}],\n"
               "    \"temporary_timeout_s\": 30,        seconds a discovered-only device stays after it is "
               "lost\n"
               "    \"le_connect_timeout_ms\": 20000,   how long a Connect to a silent module takes to "
               "fail\n"
               "    \"modules\": [{\n"
               "      \"name\": \"BT-TH-66EDFC11\", \"address\": \"60:98:66:ED:FC:11\", \"adapter\": "
               "\"hci0\",\n"
               "      \"rssi\": -62,\n"
               "      \"timing\": {\"connect_ms\": 300, \"resolve_ms\": 400, \"response_ms\": 60,\n"
               "                 \"chunk_interval_ms\": 8, \"chunk_size\": 20, \"advertising_interval_ms\": "
               "200,\n"
               "                 \"disconnect_ms\": 40},\n"
               "      \"connected_signal\": true,  false: no Connected=true when a Connect succeeds, as\n"
               "                                  bluetoothd 5.66 often does (Get reads it)\n"
               "      \"units\": [{\"family\": \"controller\", \"id\": 255,\n"
               "                 \"values\": {\"battery_voltage\": 13.2, \"model\": \"RNG-CTRL-RVR40\"},\n"
               "                 \"registers\": {\"0x0100\": 87}, \"missing_blocks\": [4311], \"animate\": "
               "true}],\n"
               "      \"faults\": {\"connect_abort\": 2}\n"
               "    }],\n"
               "    \"events\": [                      changes at a time after start\n"
               "      {\"at_s\": 30, \"module\": \"60:98:66:ED:FC:11\", \"fault\": "
               "\"held_by_other_central\", "
               "\"set\": true},\n"
               "      {\"at_s\": 60, \"module\": \"60:98:66:ED:FC:11\", \"fault\": "
               "\"held_by_other_central\", "
               "\"set\": false},\n"
               "      {\"at_s\": 90, \"adapter\": \"hci0\", \"powered\": false},   or \"present\": false "
               "(unplugged)\n"
               "      {\"at_s\": 120, \"restart_bluetoothd_ms\": 2000}   stopped, or "
               "\"kill_bluetoothd_ms\"\n"
               "    ]\n"
               "  }\n"
               "Families: controller, dcc, battery, inverter, shunt. Values use the reading keys of\n"
               "`blupowd decode`. Faults (a count, or true for \"until cleared\"): connect_abort,\n"
               "connect_hang, drop_mid_response, resolved_before_characteristics, corrupt_notification,\n"
               "modbus_exception, asleep, held_by_other_central, no_acquire (BlueZ before 5.46: neither\n"
               "AcquireNotify nor AcquireWrite).\n"
               "\n"
               "Run-time control, e.g. with busctl --system:\n"
               "  call org.blupow.Sim / org.blupow.Sim1 SetFault ssi ADDRESS FAULT COUNT  (0 clears)\n"
               "  call org.blupow.Sim / org.blupow.Sim1 SetPowered sb hci0 false\n"
               "  call org.blupow.Sim / org.blupow.Sim1 RemoveAdapter s hci0 | AddAdapter s hci0\n"
               "  call org.blupow.Sim / org.blupow.Sim1 RestartBluez u 1000   (as SIGTERM: all signalled)\n"
               "  call org.blupow.Sim / org.blupow.Sim1 KillBluez u 1000      (as SIGKILL: nothing "
               "signalled)\n"
               "  call org.blupow.Sim / org.blupow.Sim1 SetValue sysd ADDRESS ID KEY VALUE\n"
               "  call org.blupow.Sim / org.blupow.Sim1 GetReadings sy ADDRESS ID\n"
               "  call org.blupow.Sim / org.blupow.Sim1 GetStats s ADDRESS\n"
               "  call org.blupow.Sim / org.blupow.Sim1 GetCalls | ClearCalls\n"
               "GetCalls lists the calls to org.bluez (time, sender, path, member, detail: the bytes of a\n"
               "WriteValue in hex, or \"no reply expected\" for a call sent without asking for one),\n"
               "each packet written to an acquired write socket as member \"(write socket)\", and each\n"
               "acquired socket its client closed as \"(socket closed)\" (detail notify or write).\n");
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                {"scenario", required_argument, NULL, 's'},
                {"peripheral", required_argument, NULL, 'p'},
                {"check", no_argument, NULL, 'c'},
                {"verbose", no_argument, NULL, 'v'},
                {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, 'V'},
                {},
        };
        const char *scenario = "demo";
        char *peripheral = NULL; /* ADAPTER[,ADAPTER…] */
        bool check_only = false;
        int c;
        while ((c = getopt_long(argc, argv, "s:p:cvh", opts, NULL)) >= 0) {
                switch (c) {
                case 's':
                        scenario = optarg;
                        break;
                case 'p':
                        peripheral = optarg;
                        break;
                case 'c':
                        check_only = true;
                        break;
                case 'v':
                        log_set_level(LOG_LEVEL_DEBUG);
                        break;
                case 'h':
                        help();
                        return 0;
                case 'V':
                        printf("blupow-sim %s\n", BLUPOW_VERSION);
                        return 0;
                default:
                        fprintf(stderr, "Try blupow-sim --help.\n");
                        return 2;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "blupow-sim: unexpected argument '%s'\n", argv[optind]);
                return 2;
        }

        struct sim sim = {0};
        char err[600];
        if (sim_scenario_load(&sim, scenario, err, sizeof err) < 0) {
                fprintf(stderr, "blupow-sim: %s\n", err);
                sim_free(&sim);
                return 2;
        }
        if (check_only) {
                printf("scenario ok: %zu adapter(s), %zu module(s)\n", sim.n_adapters, sim.n_modules);
                sim_free(&sim);
                return 0;
        }

        int r = sd_event_default(&sim.event);
        if (r < 0)
                return log_error_errno(r, "Failed to create event loop: %m"), 1;
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        sd_event_add_signal(sim.event, NULL, SIGTERM, NULL, NULL);
        sd_event_add_signal(sim.event, NULL, SIGINT, NULL, NULL);

        r = sd_bus_open_system_with_description(&sim.bus, "blupow-sim");
        if (r < 0) {
                log_error_errno(r, "Failed to connect to the system bus (DBUS_SYSTEM_BUS_ADDRESS=%s): %m",
                        getenv("DBUS_SYSTEM_BUS_ADDRESS") ?: "unset");
                return 1;
        }
        if ((r = sd_bus_attach_event(sim.bus, sim.event, SD_EVENT_PRIORITY_NORMAL)) < 0 ||
                (r = sim_control_start(&sim)) < 0) {
                log_error_errno(r, "Failed to set up the simulator: %m");
                return 1;
        }
        if (peripheral) {
                char *adapters[16];
                size_t n = 0;
                for (char *save = NULL, *a = strtok_r(peripheral, ",", &save); a && n < ELEMENTSOF(adapters);
                        a = strtok_r(NULL, ",", &save))
                        adapters[n++] = a;
                if ((r = sim_peripheral_start(&sim, adapters, n)) < 0) {
                        log_error_errno(r, "Failed to set up the peripherals: %m");
                        return r == -EINVAL ? 2 : 1;
                }
        } else {
                if ((r = sim_bluez_start(&sim)) < 0) {
                        log_error_errno(r, "Failed to set up the simulator: %m");
                        return 1;
                }
                r = sd_bus_request_name(sim.bus, "org.bluez", 0);
                if (r < 0) {
                        log_error_errno(
                                r, "Failed to acquire org.bluez (is bluetoothd running on this bus?): %m");
                        return 1;
                }
                sim.name_owned = true;
        }
        if ((r = sim_events_start(&sim)) < 0) {
                log_error_errno(r, "Failed to schedule the scenario's events: %m");
                return 1;
        }
        if (!peripheral) {
                log_info("blupow-sim: serving %zu module(s) on %zu adapter(s)", sim.n_modules,
                        sim.n_adapters);
                printf("ready\n");
                fflush(stdout);
        }

        r = sd_event_loop(sim.event);
        sim_laters_free();
        sim_peripheral_free();
        for (size_t i = 0; i < sim.n_modules; i++) {
                sd_bus_message_unref(sim.modules[i].pending_connect);
                sd_bus_message_unref(sim.modules[i].pending_disconnect);
                sd_bus_message_unref(sim.modules[i].pending_write);
        }
        sd_bus_flush_close_unref(sim.bus);
        for (size_t i = 0; i < sim.n_adapters; i++)
                sd_event_source_unref(sim.adapters[i].adv_timer);
        sd_event_source_unref(sim.tick);
        sd_event_unref(sim.event);
        sim_free(&sim);
        return r < 0 ? 1 : 0;
}
