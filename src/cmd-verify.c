/* SPDX-License-Identifier: MIT */
/* `blupowd verify [DEVICE]` and `blupowd scan`: end-to-end checks that bypass Home Assistant.
 * verify asks a running daemon when there is one (it owns the links), and otherwise talks to
 * BlueZ itself with the same code the daemon uses. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api.h"
#include "commands.h"
#include "daemon.h"
#include "integration-token.h"
#include "log.h"
#include "macro.h"
#include "poller.h"

struct run {
        struct daemon *d;
        json_t *results;
        json_t *steps;
        size_t next;
        const char *only;
        bool json;
        bool all_ok;
        unsigned scan_seconds;
        struct verify_job job;
};

/* ---- asking a running daemon ---- */

/* token: presented as a bearer token, for a daemon that does not trust loopback (inside the
 * add-on, where the Supervisor's proxy also comes from a local address). */
static int http_post(uint16_t port, const char *path, const char *token, char **body)
{
        *body = NULL;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
                if (fd >= 0)
                        close(fd);
                return -ECONNREFUSED;
        }
        char req[1024];
        int n = snprintf(req, sizeof req,
                "POST %s HTTP/1.0\r\nHost: localhost\r\n%s%s%sContent-Length: 0\r\n\r\n", path,
                token ? "Authorization: Bearer " : "", token ? token : "", token ? "\r\n" : "");
        if (n < 0 || (size_t)n >= sizeof req || write(fd, req, (size_t)n) != n) {
                close(fd);
                return -EIO;
        }
        size_t cap = 1 << 16, len = 0;
        char *buf = malloc(cap);
        ssize_t k;
        while (buf && (k = read(fd, buf + len, cap - len - 1)) > 0) {
                len += (size_t)k;
                if (len + 1 == cap) {
                        char *nb = realloc(buf, cap *= 2);
                        if (!nb)
                                break;
                        buf = nb;
                }
        }
        close(fd);
        if (!buf)
                return -ENOMEM;
        buf[len] = 0;
        int status = 0;
        sscanf(buf, "HTTP/1.%*d %d", &status);
        char *b = strstr(buf, "\r\n\r\n");
        *body = strdup(b ? b + 4 : "");
        free(buf);
        return status;
}

/* ---- printing ---- */

static void print_result(json_t *res)
{
        const char *name = json_string_value(json_object_get(res, "name"));
        printf("\n%s\n  device %s, module %s\n", name ? name : "?",
                json_string_value(json_object_get(res, "device")) ?: "?",
                json_string_value(json_object_get(res, "address")) ?: "?");
        size_t i;
        json_t *s;
        json_array_foreach(json_object_get(res, "steps"), i, s)
                printf("  %s %-13s %6.2f s  %s\n", json_is_true(json_object_get(s, "ok")) ? "✓" : "✗",
                        json_string_value(json_object_get(s, "step")),
                        json_real_value(json_object_get(s, "seconds")),
                        json_string_value(json_object_get(s, "detail")));
        const char *key;
        json_t *r;
        json_t *readings = json_object_get(res, "readings");
        if (json_object_size(readings))
                printf("  readings:\n");
        json_object_foreach(readings, key, r)
        {
                char *v = json_dumps(json_object_get(r, "value"), JSON_ENCODE_ANY | JSON_REAL_PRECISION(12));
                const char *unit = json_string_value(json_object_get(r, "unit"));
                printf("    %-32s %s%s%s\n", key, v ? v : "?", unit ? " " : "", unit ? unit : "");
                free(v);
        }
        json_t *verdict = json_object_get(res, "verdict");
        if (json_is_true(json_object_get(res, "ok")) && !json_is_object(verdict))
                printf("  verdict: ✓ reads end to end\n");
        else if (json_is_object(verdict))
                printf("  verdict: ✗ %s\n  remedy: %s\n",
                        json_string_value(json_object_get(verdict, "message")),
                        json_string_value(json_object_get(verdict, "remedy")));
        else
                printf("  verdict: ✗ failed\n");
}

/* ---- standalone ---- */

static void next_device(struct run *run);

static void on_step(void *userdata, const struct link_step *s)
{
        struct run *run = userdata;
        json_array_append_new(run->steps, json_pack("{s:s,s:b,s:f,s:s}", "step", s->name, "ok", s->ok,
                                                  "seconds", (double)s->usec / 1e6, "detail", s->detail));
        if (!run->json)
                fprintf(stderr, "  %s %s: %s\n", s->ok ? "✓" : "✗", s->name, s->detail);
}

static void on_done(
        void *userdata, struct device *dev, const struct link_report *r, const struct link_unit *u)
{
        struct run *run = userdata;
        bool ok = r && r->reached == LINK_STAGE_DONE && u && u->blocks_ok > 0 && dev->state == DEVICE_ONLINE;
        json_t *dv = view_device(run->d, dev);
        char detail[192];
        int code = dev->diag;
        if (!r)
                code = device_link_diagnosis(run->d, dev, detail, sizeof detail);
        json_t *res = json_pack("{s:s,s:s,s:s,s:b,s:O,s:O,s:O,s:o}", "device", dev->cfg.id, "name",
                dev->cfg.name, "address", dev->cfg.address, "ok", ok, "steps", run->steps, "readings",
                json_object_get(dv, "readings"), "state", json_object_get(dv, "state"), "verdict",
                ok ? json_null()
                   : view_diagnosis(code ?: DIAG_CONNECT_FAILED, r ? dev->diag_detail : detail));
        json_decref(dv);
        json_decref(run->steps);
        run->steps = NULL;
        run->all_ok = run->all_ok && ok;
        json_array_append_new(run->results, res);
        next_device(run);
}

static void finished(struct daemon *d)
{
        sd_event_exit(d->event, 0);
}

static void next_device(struct run *run)
{
        struct daemon *d = run->d;
        while (run->next < d->n_devices) {
                struct device *dev = d->devices[run->next++];
                if (run->only && !streq(run->only, dev->cfg.id) && !streq(run->only, dev->cfg.name))
                        continue;
                if (!run->json)
                        fprintf(stderr, "%s (%s, %s):\n", dev->cfg.name, dev->cfg.family->label,
                                dev->cfg.address);
                run->steps = json_array();
                run->job = (struct verify_job){
                        .device = dev, .step = on_step, .done = on_done, .userdata = run};
                poller_verify(d, &run->job);
                return;
        }
        daemon_shutdown(d, finished);
}

static int on_ready(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct run *run = userdata;
        if (run->d->sync_pending && usec < 5 * USEC_PER_SEC + run->scan_seconds) {
                sd_event_source_set_time_relative(s, 50 * USEC_PER_MSEC);
                sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
                return 0;
        }
        sd_event_source_set_enabled(s, SD_EVENT_OFF);
        next_device(run);
        return 0;
}

static int load(const char *path, struct options *o)
{
        char err[512];
        options_init(o);
        if (options_load(o, path, err, sizeof err) < 0) {
                fprintf(stderr, "blupowd: %s\n", err);
                return -EINVAL;
        }
        log_set_level(LOG_LEVEL_WARNING);
        return 0;
}

int cmd_verify(int argc, char **argv)
{
        static const struct option opts[] = {
                {"options", required_argument, NULL, 'o'},
                {"json", no_argument, NULL, 'j'},
                {"standalone", no_argument, NULL, 's'},
                {"port", required_argument, NULL, 'p'},
                {"data-dir", required_argument, NULL, 'd'},
                {},
        };
        const char *options_path = "/data/options.json";
        const char *data_dir = "/data";
        long port = 0;
        struct run run = {.all_ok = true};
        bool standalone = false;
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "o:jsp:d:", opts, NULL)) >= 0) {
                if (c == 'o')
                        options_path = optarg;
                else if (c == 'd')
                        data_dir = optarg;
                else if (c == 'p') {
                        char *end;
                        port = strtol(optarg, &end, 10);
                        if (*end || port < 1 || port > 65535) {
                                fprintf(stderr, "blupowd verify: --port takes 1 to 65535, not '%s'\n",
                                        optarg);
                                return EXIT_USAGE;
                        }
                } else if (c == 'j')
                        run.json = true;
                else if (c == 's')
                        standalone = true;
                else
                        return EXIT_USAGE;
        }
        if (optind + 1 < argc) {
                fprintf(stderr, "usage: blupowd verify [DEVICE] [--json] [--options FILE] [--port N] "
                                "[--data-dir DIR] [--standalone]\n");
                return EXIT_USAGE;
        }
        run.only = optind < argc ? argv[optind] : NULL;
        struct options o;
        if (load(options_path, &o) < 0)
                return EXIT_USAGE;
        if (port)
                o.port = (uint16_t)port;
        bool known = !run.only;
        for (size_t i = 0; !known && i < o.n_devices; i++)
                known = streq(run.only, o.devices[i].id) || streq(run.only, o.devices[i].name);
        if (!known) {
                fprintf(stderr, "blupowd verify: no device named '%s' in %s\n", run.only, options_path);
                options_done(&o);
                return EXIT_USAGE;
        }
        run.results = json_array();

        /* A running daemon owns the links: ask it, with the api_token if one is set, else the
         * add-on's own token (readable only by root, as the daemon's data is). */
        char token[128];
        const char *bearer = o.api_token;
        if (!bearer && integration_token_read(data_dir, token, sizeof token) == 0)
                bearer = token;
        char *body = NULL;
        bool asked = false;
        for (size_t i = 0; !standalone && i < o.n_devices; i++) {
                if (run.only && !streq(run.only, o.devices[i].id) && !streq(run.only, o.devices[i].name))
                        continue;
                char path[200];
                snprintf(path, sizeof path, "/api/v1/devices/%s/verify", o.devices[i].id);
                int status = http_post(o.port, path, bearer, &body);
                if (status == -ECONNREFUSED)
                        break;
                asked = true;
                json_t *res = body ? json_loads(body, 0, NULL) : NULL;
                free(body);
                if (status != 200 || !res) {
                        json_decref(res);
                        res = json_pack("{s:s,s:s,s:s,s:b,s:[],s:{},s:{s:s,s:s,s:s}}", "device",
                                o.devices[i].id, "name", o.devices[i].name, "address", o.devices[i].address,
                                "ok", 0, "steps", "readings", "verdict", "code", "api_error", "message",
                                status == 401 || status == 403
                                        ? "the running daemon refused the verify request (no token it "
                                          "accepts)"
                                        : "the running daemon did not answer the verify request",
                                "remedy",
                                status == 401 || status == 403 ? "Run verify where the daemon's data "
                                                                 "directory is readable (--data-dir), "
                                                                 "or set api_token in the options it reads."
                                                               : "Look at the add-on's log; restart the "
                                                                 "add-on if it keeps happening.");
                }
                run.all_ok = run.all_ok && json_is_true(json_object_get(res, "ok"));
                json_array_append_new(run.results, res);
        }
        if (!asked) {
                sd_event *event = NULL;
                sd_event_default(&event);
                sigset_t mask;
                sigemptyset(&mask);
                sigaddset(&mask, SIGTERM);
                sigaddset(&mask, SIGINT);
                sigprocmask(SIG_BLOCK, &mask, NULL);
                sd_event_add_signal(event, NULL, SIGINT, NULL, NULL);
                if (daemon_new(&run.d, event, &o) < 0 || daemon_start(run.d) < 0) {
                        fprintf(stderr, "blupowd: cannot start\n");
                        return EXIT_RUNTIME;
                }
                /* No schedule of its own: only the verify jobs run. */
                for (size_t i = 0; i < run.d->n_modules; i++) {
                        run.d->modules[i]->next_due = UINT64_MAX;
                        poller_requeue(run.d, run.d->modules[i]);
                }
                sd_event_source *ready = NULL;
                sd_event_add_time_relative(
                        event, &ready, CLOCK_MONOTONIC, 50 * USEC_PER_MSEC, 1, on_ready, &run);
                sd_event_loop(event);
                sd_event_source_unref(ready);
                daemon_free(run.d);
                sd_event_unref(event);
        }
        if (run.json) {
                _cleanup_(json_decrefp) json_t *out =
                        json_pack("{s:b,s:o}", "ok", run.all_ok, "devices", run.results);
                json_dumpf(out, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(12));
                fputc('\n', stdout);
        } else {
                size_t i;
                json_t *r;
                json_array_foreach(run.results, i, r) print_result(r);
                json_decref(run.results);
        }
        options_done(&o);
        return run.all_ok ? EXIT_OK : EXIT_RUNTIME;
}

static int on_scan_done(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct run *run = userdata;
        json_t *v = view_scan(run->d);
        size_t i;
        json_t *m;
        if (run->json) {
                json_dumpf(v, stdout, JSON_INDENT(2));
                fputc('\n', stdout);
        } else {
                printf("%-22s %-18s %5s  %-10s %s\n", "NAME", "ADDRESS", "RSSI", "FAMILY", "CONFIGURED");
                json_array_foreach(json_object_get(v, "modules"), i, m)
                {
                        json_t *rssi = json_object_get(m, "rssi");
                        char rs[16] = "-";
                        if (json_is_integer(rssi))
                                snprintf(rs, sizeof rs, "%lld", json_integer_value(rssi));
                        printf("%-22s %-18s %5s  %-10s %s\n", json_string_value(json_object_get(m, "name")),
                                json_string_value(json_object_get(m, "address")), rs,
                                json_string_value(json_object_get(m, "family")) ?: "(ask)",
                                json_is_true(json_object_get(m, "configured")) ? "yes" : "no");
                }
        }
        json_decref(v);
        sd_event_exit(run->d->event, 0);
        return 0;
}

static int on_scan_start(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct run *run = userdata;
        if (run->d->sync_pending) {
                sd_event_source_set_time_relative(s, 50 * USEC_PER_MSEC);
                sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
                return 0;
        }
        char detail[192];
        enum diagnosis_code c = daemon_system_diagnosis(run->d, detail, sizeof detail);
        if (c != DIAG_NONE && c != DIAG_ADAPTER_SHARED) {
                char msg[300];
                diagnosis_message(c, detail, msg, sizeof msg);
                fprintf(stderr, "blupowd scan: %s\n%s\n", msg, diagnosis_info(c)->remedy);
                sd_event_exit(run->d->event, 1);
                return 0;
        }
        daemon_scan(run->d, run->scan_seconds);
        sd_event_add_time_relative(run->d->event, NULL, CLOCK_MONOTONIC, run->scan_seconds * USEC_PER_SEC, 1,
                on_scan_done, run);
        return 0;
}

int cmd_scan(int argc, char **argv)
{
        static const struct option opts[] = {
                {"seconds", required_argument, NULL, 't'},
                {"options", required_argument, NULL, 'o'},
                {"adapter", required_argument, NULL, 'a'},
                {"json", no_argument, NULL, 'j'},
                {},
        };
        struct run run = {.scan_seconds = 10};
        const char *options_path = NULL, *adapter = NULL;
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "t:o:a:j", opts, NULL)) >= 0) {
                if (c == 't') {
                        char *end;
                        long v = strtol(optarg, &end, 10);
                        if (*end || v < 1 || v > 120) {
                                fprintf(stderr, "blupowd scan: --seconds takes 1 to 120\n");
                                return EXIT_USAGE;
                        }
                        run.scan_seconds = (unsigned)v;
                } else if (c == 'o')
                        options_path = optarg;
                else if (c == 'a')
                        adapter = optarg;
                else if (c == 'j')
                        run.json = true;
                else
                        return EXIT_USAGE;
        }
        struct options o;
        options_init(&o);
        if (options_path && load(options_path, &o) < 0)
                return EXIT_USAGE;
        if (adapter)
                snprintf(o.adapter, sizeof o.adapter, "%s", adapter);
        log_set_level(LOG_LEVEL_ERROR);
        sd_event *event = NULL;
        sd_event_default(&event);
        if (daemon_new(&run.d, event, &o) < 0 || daemon_start(run.d) < 0)
                return EXIT_RUNTIME;
        for (size_t i = 0; i < run.d->n_modules; i++) {
                run.d->modules[i]->next_due = UINT64_MAX;
                poller_requeue(run.d, run.d->modules[i]);
        }
        sd_event_add_time_relative(event, NULL, CLOCK_MONOTONIC, 50 * USEC_PER_MSEC, 1, on_scan_start, &run);
        int r = sd_event_loop(event);
        daemon_free(run.d);
        sd_event_unref(event);
        options_done(&o);
        return r == 0 ? EXIT_OK : EXIT_RUNTIME;
}
