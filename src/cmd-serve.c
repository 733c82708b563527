/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "commands.h"
#include "bank.h"
#include "daemon.h"
#include "device-energy.h"
#include "log.h"
#include "macro.h"
#include "integration-token.h"
#include "store.h"

struct serve_args {
        const char *options_path;
        const char *data_dir;
        const char *web_dir;
        const char *bind;
        const char *db_path;
        long port;
};

static void on_commit(void *userdata)
{
        device_energy_committed(userdata);
}

static int parse_args(int argc, char **argv, struct serve_args *a)
{
        static const struct option opts[] = {
                {"options", required_argument, NULL, 'o'},
                {"data-dir", required_argument, NULL, 'd'},
                {"web-dir", required_argument, NULL, 'w'},
                {"bind", required_argument, NULL, 'b'},
                {"port", required_argument, NULL, 'p'},
                {"db", required_argument, NULL, 'D'},
                {},
        };
        *a = (struct serve_args){
                .options_path = "/data/options.json",
                .data_dir = "/data",
                .web_dir = getenv("BLUPOW_WEB_DIR") ?: BLUPOW_DATADIR "/web",
                .port = -1,
        };
        optind = 1;
        int c;
        while ((c = getopt_long(argc, argv, "o:d:w:b:p:D:", opts, NULL)) >= 0) {
                switch (c) {
                case 'o':
                        a->options_path = optarg;
                        break;
                case 'd':
                        a->data_dir = optarg;
                        break;
                case 'w':
                        a->web_dir = optarg;
                        break;
                case 'b':
                        a->bind = optarg;
                        break;
                case 'D':
                        a->db_path = optarg;
                        break;
                case 'p': {
                        char *end;
                        a->port = strtol(optarg, &end, 10);
                        if (*end || a->port < 0 || a->port > 65535) {
                                fprintf(stderr, "blupowd: --port: '%s' is not a port number\n", optarg);
                                return -EINVAL;
                        }
                        break;
                }
                default:
                        fprintf(stderr, "Try blupowd --help.\n");
                        return -EINVAL;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "blupowd: unexpected argument '%s'\n", argv[optind]);
                return -EINVAL;
        }
        return 0;
}

static void on_shutdown_done(struct daemon *d)
{
        sd_event_exit(d->event, 0);
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        struct daemon *d = userdata;
        if (d->shutting_down) {
                sd_event_exit(d->event, 0); /* a second signal: go now */
                return 0;
        }
        log_info("Stopping: disconnecting every module");
        daemon_shutdown(d, on_shutdown_done);
        return 0;
}

static int on_maintenance(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct daemon *d = userdata;
        int more = d->store ? store_maintenance_step(d->store, now_realtime()) : 0;
        /* Small steps: again soon while there is work, otherwise in a minute. */
        sd_event_source_set_time_relative(s, more > 0 ? 200 * USEC_PER_MSEC : 60 * USEC_PER_SEC);
        sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

int cmd_serve(int argc, char **argv)
{
        struct serve_args a;
        if (parse_args(argc, argv, &a) < 0)
                return EXIT_USAGE;
        struct options opts;
        options_init(&opts);
        char err[512];
        if (options_load(&opts, a.options_path, err, sizeof err) < 0) {
                fprintf(stderr, "blupowd: %s\n", err);
                options_done(&opts);
                return EXIT_USAGE;
        }
        log_set_level(opts.log_level);
        if (a.port >= 0)
                opts.port = (uint16_t)a.port;

        _cleanup_free_ char *db_path = NULL;
        if (a.db_path)
                db_path = strdup(a.db_path);
        else if (asprintf(&db_path, "%s/blupow.db", a.data_dir) < 0)
                db_path = NULL;
        if (!db_path)
                return EXIT_RUNTIME;
        mkdir(a.data_dir, 0755);

        sd_event *event = NULL;
        int r = sd_event_default(&event);
        if (r < 0) {
                log_error_errno(r, "Cannot create the event loop: %m");
                return EXIT_RUNTIME;
        }
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);

        struct daemon *d = NULL;
        struct store *store = NULL;
        struct api *api = NULL;
        sd_event_source *maint = NULL;
        int ret = EXIT_RUNTIME;
        if ((r = daemon_new(&d, event, &opts)) < 0) {
                log_error_errno(r, "Cannot set up devices: %m");
                goto out;
        }
        store_open(&store, db_path, opts.history_days, opts.commit_interval);
        d->store = store;
        if ((r = integration_token_load(a.data_dir, d->integration_token, sizeof d->integration_token)) < 0)
                log_warning_errno(r,
                        "No token for the Home Assistant integration in %s: %m; it can read but "
                        "not change",
                        a.data_dir);
        if (store_instance_id(store, d->instance_id) == 0)
                d->instance_id_kept = true;
        else
                log_warning("The database cannot keep this installation's id; Home Assistant will see a new "
                            "BluPow after the next start");
        for (size_t i = 0; i < d->n_devices; i++)
                if (store_restore_device(store, d->devices[i]) >= 0)
                        device_energy_resume(d->devices[i]);
        for (size_t i = 0; i < d->n_banks; i++)
                if (store_restore_device(store, &d->banks[i]->dev) >= 0)
                        device_energy_resume(&d->banks[i]->dev);
        if (store)
                store_on_commit(store, on_commit, d);
        /* Devices added through the API, unless the options now carry the same one. */
        struct device_config *extra = NULL;
        size_t n_extra = 0;
        store_load_devices(store, &extra, &n_extra);
        for (size_t i = 0; i < n_extra; i++)
                if (daemon_device_add(d, &extra[i], false, err, sizeof err) < 0)
                        log_warning("Not adding stored device '%s': %s", extra[i].name, err);
        free(extra);

        if ((r = api_new(&api, d, a.bind, opts.port, a.web_dir)) < 0) {
                log_error_errno(r, "Cannot listen on port %u: %m%s", opts.port,
                        r == -EACCES || r == -EPERM
                                ? " (refused by the host's confinement: AppArmor or seccomp)"
                        : r == -EADDRINUSE ? " (another program listens on it)"
                                           : "");
                goto out;
        }
        d->api = api;
        ha_supervisor_base_url(api_port(api)); /* the one blocking look-up, before the loop */
        sd_event_add_signal(event, NULL, SIGTERM, on_signal, d);
        sd_event_add_signal(event, NULL, SIGINT, on_signal, d);
        sd_event_add_time_relative(
                event, &maint, CLOCK_MONOTONIC, 5 * USEC_PER_SEC, USEC_PER_SEC, on_maintenance, d);
        if ((r = daemon_start(d)) < 0) {
                log_error_errno(r, "Cannot start: %m");
                goto out;
        }
        log_info("blupowd %s: %zu device(s), poll every %u s, API on port %u", BLUPOW_VERSION, d->n_devices,
                opts.poll_interval, api_port(api));
        r = sd_event_loop(event);
        ret = r < 0 ? EXIT_RUNTIME : EXIT_OK;
out:
        sd_event_source_unref(maint);
        api_free(api);
        if (d)
                d->api = NULL;
        store_close(store);
        if (d)
                d->store = NULL;
        daemon_free(d);
        sd_event_unref(event);
        options_done(&opts);
        return ret;
}
