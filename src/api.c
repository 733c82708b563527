/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "api.h"
#include "bank.h"
#include "daemon.h"
#include "http.h"
#include "log.h"
#include "macro.h"
#include "poller.h"
#include "readings-json.h"
#include "renogy/settings.h"
#include "store.h"

#define INGRESS_ADDRESS "172.30.32.2"

struct api {
        struct daemon *d;
        struct http_server *http;
        char *web_dir;
        bool under_supervisor;
        struct write_job *write_jobs;
        /* GET /api/v1/devices, the route Home Assistant and the page poll, built once per tick:
         * its age_s has a resolution of 0.1 s, so within a tick a fresh build differs only by
         * what changed in the last 100 ms. Changes made through the API drop it at once. */
        struct http_response *devices_view;
        int64_t devices_view_tick;
};

#define VIEW_TICK_USEC 100000

static int respond_devices(struct api *a, struct http_request *req)
{
        int64_t tick = now_realtime() / VIEW_TICK_USEC;
        if (!a->devices_view || a->devices_view_tick != tick) {
                json_t *view = view_devices(a->d);
                char *text = json_dumps(view, JSON_COMPACT | JSON_REAL_PRECISION(12));
                json_decref(view);
                if (!text)
                        return http_respond(
                                req, 500, "text/plain", (char *)"out of memory\n", 14, false, NULL);
                static const char *const headers[] = {"Cache-Control", "no-store", NULL};
                struct http_response *r = http_response_new("application/json", text, strlen(text), headers);
                if (!r)
                        return -ENOMEM;
                http_response_unref(a->devices_view);
                a->devices_view = r;
                a->devices_view_tick = tick;
        }
        return http_respond_shared(req, 200, a->devices_view);
}

/* ---- access ---- */

bool api_client_trusted(const char *client, bool under_supervisor)
{
        if (streq(client, INGRESS_ADDRESS))
                return true;
        /* Outside Home Assistant, the machine itself is trusted. */
        return !under_supervisor && (startswith(client, "127.") || streq(client, "::1"));
}

static bool token_equal(const char *a, const char *b)
{
        size_t la = strlen(a), lb = strlen(b);
        unsigned char diff = (unsigned char)(la != lb);
        for (size_t i = 0; i < la; i++)
                diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
        return diff == 0;
}

int api_check_change(const char *client, const char *authorization, const char *token, bool under_supervisor)
{
        if (api_client_trusted(client, under_supervisor))
                return 0;
        if (!token || !*token)
                return -EPERM;
        if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
                return -EACCES;
        return token_equal(authorization + 7, token) ? 0 : -EACCES;
}

/* ---- routing ---- */

int api_route_match(const char *method, const char *path, struct api_match *m)
{
        *m = (struct api_match){.route = ROUTE_NONE};
        static const struct {
                const char *path;
                enum api_route route;
                const char *allow;
        } fixed[] = {
                {"/api/v1/health", ROUTE_HEALTH, "GET, HEAD"},
                {"/api/v1/devices", ROUTE_DEVICES, "GET, HEAD, POST"},
                {"/api/v1/diagnostics", ROUTE_DIAGNOSTICS, "GET, HEAD"},
                {"/api/v1/scan", ROUTE_SCAN, "GET, HEAD, POST"},
                {"/api/v1/scan/hub", ROUTE_SCAN_HUB, "POST"},
                {"/api/v1/adapter/power", ROUTE_ADAPTER_POWER, "POST"},
                {"/api/v1/homeassistant/package.yaml", ROUTE_HA_PACKAGE, "GET, HEAD"},
                {"/metrics", ROUTE_METRICS, "GET, HEAD"},
        };
        for (size_t i = 0; i < ELEMENTSOF(fixed); i++)
                if (streq(path, fixed[i].path)) {
                        m->route = fixed[i].route;
                        m->allow = fixed[i].allow;
                        goto method;
                }
        if (startswith(path, "/api/v1/devices/")) {
                const char *id = path + strlen("/api/v1/devices/");
                const char *slash = strchr(id, '/');
                size_t n = slash ? (size_t)(slash - id) : strlen(id);
                if (n == 0 || n >= sizeof m->id)
                        return -ENOENT;
                for (size_t i = 0; i < n; i++)
                        if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9') ||
                                    id[i] == '-'))
                                return -ENOENT;
                memcpy(m->id, id, n);
                m->id[n] = 0;
                const char *rest = slash ? slash : "";
                static const struct {
                        const char *suffix;
                        enum api_route route;
                        const char *allow;
                } sub[] = {
                        {"", ROUTE_DEVICE, "GET, HEAD, DELETE"},
                        {"/history", ROUTE_DEVICE_HISTORY, "GET, HEAD"},
                        {"/poll", ROUTE_DEVICE_POLL, "POST"},
                        {"/verify", ROUTE_DEVICE_VERIFY, "POST"},
                        {"/load", ROUTE_DEVICE_LOAD, "POST"},
                        {"/settings", ROUTE_DEVICE_SETTINGS, "POST"},
                };
                for (size_t i = 0; i < ELEMENTSOF(sub); i++)
                        if (streq(rest, sub[i].suffix)) {
                                m->route = sub[i].route;
                                m->allow = sub[i].allow;
                                goto method;
                        }
                return -ENOENT;
        }
        if (startswith(path, "/api/"))
                return -ENOENT;
        m->route = ROUTE_STATIC;
        m->allow = "GET, HEAD";
method:;
        /* "GET, HEAD" contains "GET": match whole words. */
        char allow[64];
        snprintf(allow, sizeof allow, "%s,", m->allow);
        char want[16];
        snprintf(want, sizeof want, "%s,", method);
        for (char *p = allow; *p;) {
                while (*p == ' ')
                        p++;
                if (strncmp(p, want, strlen(want)) == 0) {
                        m->method_ok = true;
                        break;
                }
                char *comma = strchr(p, ',');
                if (!comma)
                        break;
                p = comma + 1;
        }
        return 0;
}

/* ---- responses ---- */

static const char *const json_headers[] = {"Cache-Control", "no-store", NULL};

static int respond_json(struct http_request *req, unsigned status, json_t *body)
{
        char *text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(12));
        json_decref(body);
        if (!text)
                return http_respond(req, 500, "text/plain", (char *)"out of memory\n", 14, false, NULL);
        return http_respond(req, status, "application/json", text, strlen(text), true, json_headers);
}

static int respond_error(struct http_request *req, unsigned status, const char *code, const char *fmt, ...)
        _printf_(4, 5);
static int respond_error(struct http_request *req, unsigned status, const char *code, const char *fmt, ...)
{
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        return respond_json(req, status, json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
}

static json_t *parse_body(struct http_request *req, const struct http_request_info *info, bool *failed)
{
        *failed = false;
        if (info->body_len == 0)
                return json_object();
        json_error_t err;
        json_t *j = json_loadb(info->body, info->body_len, JSON_REJECT_DUPLICATES, &err);
        if (!j || !json_is_object(j)) {
                respond_error(req, 400, "bad_json", "the request body is not a JSON object%s%s",
                        j ? "" : ": ", j ? "" : err.text);
                json_decref(j);
                *failed = true;
                return NULL;
        }
        return j;
}

/* ---- static files (web/) ---- */

static const char *content_type_of(const char *name)
{
        static const struct {
                const char *ext, *type;
        } types[] = {
                {".html", "text/html; charset=utf-8"},
                {".js", "text/javascript; charset=utf-8"},
                {".css", "text/css; charset=utf-8"},
                {".svg", "image/svg+xml"},
                {".png", "image/png"},
                {".json", "application/json"},
                {".ico", "image/x-icon"},
        };
        const char *dot = strrchr(name, '.');
        for (size_t i = 0; dot && i < ELEMENTSOF(types); i++)
                if (streq(dot, types[i].ext))
                        return types[i].type;
        return NULL;
}

static int serve_static(struct api *a, struct http_request *req, const char *path)
{
        const char *rel = path + 1;
        if (!*rel)
                rel = "index.html";
        /* Only plain names inside web/: no traversal, no hidden files, no links. */
        bool ok = strlen(rel) < 128 && rel[0] != '.' && !strstr(rel, "..") && !strchr(rel, '\\') &&
                  !strstr(rel, "//");
        for (const char *p = rel; ok && *p; p++)
                ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                     *p == '-' || *p == '_' || *p == '.' || *p == '/';
        const char *type = ok ? content_type_of(rel) : NULL;
        if (!type || !a->web_dir)
                return respond_error(req, 404, "not_found", "no such page");
        int dir = open(a->web_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir < 0)
                return respond_error(req, 404, "not_found", "no such page");
        int fd = openat(dir, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        close(dir);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                if (fd >= 0)
                        close(fd);
                return respond_error(req, 404, "not_found", "no such page");
        }
        return http_respond_file(req, fd, (uint64_t)st.st_size, type);
}

/* ---- verify and load: the connection waits for the BLE session ---- */

struct verify_ctx {
        struct verify_job job;
        struct api *api;
        struct http_request *req;
        json_t *steps;
        bool done;
};

static void verify_step(void *userdata, const struct link_step *s)
{
        struct verify_ctx *v = userdata;
        json_array_append_new(v->steps, json_pack("{s:s,s:b,s:f,s:s}", "step", s->name, "ok", s->ok,
                                                "seconds", (double)s->usec / 1e6, "detail", s->detail));
}

static void verify_done(
        void *userdata, struct device *dev, const struct link_report *r, const struct link_unit *u)
{
        struct verify_ctx *v = userdata;
        v->done = true;
        struct daemon *d = v->api->d;
        bool ok = r && r->reached == LINK_STAGE_DONE && u && u->blocks_ok > 0 && dev->state == DEVICE_ONLINE;
        json_t *out = json_object();
        json_object_set_new(out, "device", json_string(dev->cfg.id));
        json_object_set_new(out, "name", json_string(dev->cfg.name));
        json_object_set_new(out, "address", json_string(dev->cfg.address));
        json_object_set_new(out, "ok", json_boolean(ok));
        if (!r) {
                char detail[192];
                int c = device_link_diagnosis(d, dev, detail, sizeof detail);
                json_array_append_new(v->steps, json_pack("{s:s,s:b,s:f,s:s}", "step", "bluez", "ok", 0,
                                                        "seconds", 0.0, "detail", diagnosis_info(c)->code));
        }
        json_object_set_new(out, "steps", json_incref(v->steps));
        json_object_set_new(out, "seconds", json_real(r ? (double)r->duration_usec / 1e6 : 0));
        json_t *dv = view_device(d, dev);
        json_object_set(out, "readings", json_object_get(dv, "readings"));
        json_object_set(out, "state", json_object_get(dv, "state"));
        json_object_set_new(out, "verdict",
                dev->diag != 0 || !ok ? view_diagnosis(dev->diag ?: DIAG_CONNECT_FAILED, dev->diag_detail)
                                      : view_diagnosis(0, NULL));
        json_decref(dv);
        respond_json(v->req, 200, out);
}

static void verify_abandoned(void *userdata)
{
        struct verify_ctx *v = userdata;
        if (!v->done)
                poller_verify_cancel(v->api->d, &v->job);
        json_decref(v->steps);
        free(v);
}

static int start_verify(struct api *a, struct http_request *req, struct device *dev)
{
        struct verify_ctx *v = calloc(1, sizeof *v);
        if (!v)
                return respond_error(req, 500, "oom", "out of memory");
        *v = (struct verify_ctx){.api = a, .req = req, .steps = json_array()};
        v->job = (struct verify_job){.device = dev, .step = verify_step, .done = verify_done, .userdata = v};
        int r = poller_verify(a->d, &v->job);
        if (r < 0) {
                json_decref(v->steps);
                free(v);
                return respond_error(req, 409, "busy", "a verify of this module is already running");
        }
        http_set_abandon(req, verify_abandoned, v);
        http_suspend(req);
        return 0;
}

/* ---- a battery hub's ids, surveyed over one connection ---- */

struct hub_ctx {
        struct api *api;
        struct http_request *req;
        struct hub_probe *probe; /* NULL once done */
};

static void hub_done(
        struct hub_probe *p, const struct link_unit *units, size_t n, const struct link_report *r)
{
        struct hub_ctx *h = p->userdata;
        struct daemon *d = h->api->d;
        h->probe = NULL;
        if (!units || !r || r->reached < LINK_STAGE_EXCHANGE) {
                char detail[192];
                enum diagnosis_code c = daemon_adapter_diagnosis(d, p->radio->name, detail, sizeof detail);
                respond_error(h->req, 502, "survey_failed", "the hub could not be surveyed: %s%s%s",
                        r && r->message[0] ? r->message : "no session",
                        c != DIAG_NONE && c != DIAG_ADAPTER_SHARED ? " — " : "",
                        c != DIAG_NONE && c != DIAG_ADAPTER_SHARED ? diagnosis_info(c)->code : "");
                return;
        }
        json_t *packs = json_array(), *silent = json_array();
        for (size_t i = 0; i < n; i++) {
                const struct link_unit *u = &units[i];
                if (!u->blocks_ok && !u->exceptions) {
                        json_array_append_new(silent, json_integer(u->modbus_id));
                        continue;
                }
                const char *model = NULL;
                struct renogy_readings rd;
                const struct renogy_reading *mr = NULL;
                if (u->blocks_ok && renogy_decode(&renogy_battery, &u->image, &rd) > 0 &&
                        (mr = renogy_readings_get(&rd, "model")) && mr->type == RV_TEXT && mr->text[0])
                        model = mr->text;
                const char *device = NULL;
                for (size_t k = 0; k < d->n_devices; k++)
                        if (streq(d->devices[k]->cfg.address, p->address) &&
                                d->devices[k]->cfg.modbus_id == u->modbus_id)
                                device = d->devices[k]->cfg.id;
                json_array_append_new(packs,
                        json_pack("{s:i,s:s,s:s?,s:b,s:s?}", "modbus_id", (json_int_t)u->modbus_id, "type",
                                "battery", "model", model, "configured", device != NULL, "device", device));
        }
        respond_json(h->req, 200,
                json_pack("{s:s,s:s,s:o,s:o,s:f}", "address", p->address, "adapter", p->radio->name, "packs",
                        packs, "silent", silent, "seconds", (double)r->duration_usec / 1e6));
}

static void hub_abandoned(void *userdata)
{
        struct hub_ctx *h = userdata;
        if (h->probe)
                daemon_probe_cancel(h->api->d, h->probe);
        free(h);
}

static int handle_hub(struct api *a, struct http_request *req, const struct http_request_info *info)
{
        bool failed;
        json_t *body = parse_body(req, info, &failed);
        if (failed)
                return 0;
        json_t *addr = json_object_get(body, "address"), *ad = json_object_get(body, "adapter");
        if (!json_is_string(addr) || (ad && !json_is_null(ad) && !json_is_string(ad))) {
                json_decref(body);
                return respond_error(req, 400, "bad_request",
                        "expected {\"address\": \"F8:55:48:1B:1B:B7\"} and optionally \"adapter\"");
        }
        char address[32], adapter[16] = "";
        snprintf(address, sizeof address, "%s", json_string_value(addr));
        if (json_is_string(ad))
                snprintf(adapter, sizeof adapter, "%s", json_string_value(ad));
        json_decref(body);
        struct hub_ctx *h = calloc(1, sizeof *h);
        if (!h)
                return respond_error(req, 500, "oom", "out of memory");
        *h = (struct hub_ctx){.api = a, .req = req};
        int r = daemon_probe_hub(a->d, address, adapter[0] ? adapter : NULL, hub_done, h, &h->probe);
        if (r < 0) {
                free(h);
                if (r == -EINVAL)
                        return respond_error(
                                req, 400, "bad_request", "'%s' is not a Bluetooth address", address);
                if (r == -ENODEV)
                        return respond_error(
                                req, 404, "no_such_adapter", "no device uses adapter '%s'", adapter);
                if (r == -EXDEV)
                        return respond_error(req, 409, "other_adapter",
                                "%s is configured on another adapter: survey it there", address);
                if (r == -EBUSY)
                        return respond_error(
                                req, 409, "busy", "a survey is already waiting for that adapter");
                return respond_error(req, 500, "survey_failed", "%s", strerror(-r));
        }
        http_set_abandon(req, hub_abandoned, h);
        http_suspend(req);
        return 0;
}

/* A load switch or setting change waiting for its session: the write and its read back. */
struct write_job {
        struct api *api;
        struct http_request *req;
        struct device *dev;
        const char *setting; /* the setting's key, or NULL for the load switch */
        bool on;
        bool done;
        struct write_job *next;
};

static void write_done(struct daemon *d, struct device *dev, int result, const char *message)
{
        struct api *a = d->api_userdata;
        for (struct write_job *j = a->write_jobs; j; j = j->next) {
                if (j->dev != dev || j->done)
                        continue;
                j->done = true;
                const char *what = j->setting ?: "the load switch";
                const char *why = message && *message ? message : strerror(-result);
                if (result == -EBADE)
                        respond_error(j->req, 502, "not_applied", "%s was not applied: %s", what, why);
                else if (result < 0)
                        respond_error(j->req, result == -ENOTCONN ? 503 : 502, "write_failed",
                                "%s write failed: %s", what, why);
                else if (!j->setting)
                        respond_json(j->req, 200,
                                json_pack("{s:s,s:s}", "device", dev->cfg.id, "load", j->on ? "on" : "off"));
                else {
                        const struct renogy_reading *r = renogy_readings_get(&dev->readings, j->setting);
                        respond_json(j->req, 200,
                                json_pack("{s:s,s:s,s:o}", "device", dev->cfg.id, "key", j->setting, "value",
                                        r ? reading_value_json(r) : json_null()));
                }
                return;
        }
}

static void write_abandoned(void *userdata)
{
        struct write_job *j = userdata;
        struct api *a = j->api;
        for (struct write_job **p = &a->write_jobs; *p; p = &(*p)->next)
                if (*p == j) {
                        *p = j->next;
                        break;
                }
        free(j);
}

static int queue_write(struct api *a, struct http_request *req, struct device *dev, const char *setting,
        bool on, uint16_t reg, uint16_t value, uint16_t readback, const struct renogy_field *shows,
        uint16_t shows_value)
{
        int r = daemon_write_register(a->d, dev, reg, value, readback, shows, shows_value);
        if (r == -EBUSY)
                return respond_error(req, 409, "busy", "a change to this module is already in progress");
        if (r < 0)
                return respond_error(req, 500, "write_failed", "%s", strerror(-r));
        struct write_job *j = calloc(1, sizeof *j);
        if (!j)
                return respond_error(req, 500, "oom", "out of memory");
        *j = (struct write_job){
                .api = a, .req = req, .dev = dev, .setting = setting, .on = on, .next = a->write_jobs};
        a->write_jobs = j;
        http_set_abandon(req, write_abandoned, j);
        http_suspend(req);
        return 0;
}

/* ---- handlers ---- */

int64_t api_parse_time(const char *s, int64_t dflt, bool *bad)
{
        if (!s || !*s)
                return dflt;
        char *end;
        double v = strtod(s, &end);
        if (*end || !(v >= 0 && v <= 4e9)) { /* written so that NaN is refused too */
                *bad = true;
                return dflt;
        }
        return (int64_t)(v * 1e6);
}

static int handle_history(struct api *a, struct http_request *req, struct device *dev)
{
        const char *key = http_query(req, "key");
        if (!key || !*key)
                return respond_error(
                        req, 400, "missing_key", "key= is required (a reading key, e.g. battery_voltage)");
        const struct renogy_field *f = renogy_field_find(dev->decoder, key);
        if (!f || f->kind != KIND_NUMBER)
                return respond_error(req, 400, "bad_key", "'%s' is not a numeric reading of a %s", key,
                        dev->cfg.family->name);
        bool bad = false;
        int64_t now = now_realtime();
        int64_t until = api_parse_time(http_query(req, "until"), now, &bad);
        int64_t since = api_parse_time(http_query(req, "since"), until - 24LL * 3600 * 1000000, &bad);
        const char *pts = http_query(req, "points");
        long points = 200;
        if (pts) {
                char *end;
                points = strtol(pts, &end, 10);
                if (*end || points < 1 || points > 2000)
                        bad = true;
        }
        if (bad || since >= until)
                return respond_error(req, 400, "bad_range",
                        "since and until are Unix times in seconds with since < until; points is 1 to 2000");
        if (!a->d->store)
                return respond_error(req, 503, "no_store", "history is not available (no database)");
        struct history_point *p = NULL;
        int n = store_history(a->d->store, dev->cfg.id, key, since, until, (unsigned)points, &p);
        if (n < 0)
                return respond_error(req, 503, "store_error", "history query failed: %s", strerror(-n));
        json_t *arr = json_array();
        for (int i = 0; i < n; i++)
                json_array_append_new(arr, json_pack("[f,f,f,f,i]", (double)p[i].t / 1e6, p[i].min, p[i].avg,
                                                   p[i].max, (json_int_t)p[i].n));
        free(p);
        return respond_json(req, 200,
                json_pack("{s:s,s:s,s:s?,s:f,s:f,s:i,s:[s,s,s,s,s],s:o}", "device", dev->cfg.id, "key", key,
                        "unit", f->unit, "since", (double)since / 1e6, "until", (double)until / 1e6,
                        "points", (json_int_t)points, "columns", "t", "min", "avg", "max", "n", "data",
                        arr));
}

static int handle_add(struct api *a, struct http_request *req, const struct http_request_info *info)
{
        bool failed;
        json_t *body = parse_body(req, info, &failed);
        if (failed)
                return 0;
        json_t *id = json_object_get(body, "modbus_id");
        long long mid = -1;
        if (id && !json_is_null(id)) {
                if (!json_is_integer(id)) {
                        json_decref(body);
                        return respond_error(
                                req, 400, "bad_device", "modbus_id: expected a whole number from 1 to 255");
                }
                mid = json_integer_value(id);
                if (mid == -1)
                        mid = -2;
        }
        struct device_config cfg;
        char err[256];
        int r = device_config_from_fields(&cfg, json_string_value(json_object_get(body, "name")),
                json_string_value(json_object_get(body, "address")),
                json_string_value(json_object_get(body, "type")), mid, "device", err, sizeof err);
        if (r >= 0)
                r = device_schedule_from_json(&cfg, body, "device", err, sizeof err);
        if (r >= 0)
                r = device_model_from_json(&cfg, body, "device", err, sizeof err);
        json_decref(body);
        if (r < 0)
                return respond_error(
                        req, 400, "bad_device", "%s", err + (startswith(err, "option ") ? 7 : 0));
        cfg.from_api = true;
        r = daemon_device_add(a->d, &cfg, true, err, sizeof err);
        if (r == -EEXIST)
                return respond_error(req, 409, "duplicate_device", "%s", err);
        if (r < 0)
                return respond_error(req, r == -ENOSPC ? 409 : 500, "add_failed", "%s",
                        r == -ENOSPC ? err : strerror(-r));
        struct device *dev = daemon_device_find(a->d, cfg.id);
        return respond_json(req, 201, view_device(a->d, dev));
}

static int handle_load(
        struct api *a, struct http_request *req, const struct http_request_info *info, struct device *dev)
{
        if (dev->cfg.family != &renogy_controller)
                return respond_error(req, 400, "no_load_output",
                        "%s is a %s: only charge controllers have a load output", dev->cfg.name,
                        dev->cfg.family->label);
        bool failed;
        json_t *body = parse_body(req, info, &failed);
        if (failed)
                return 0;
        json_t *on = json_object_get(body, "on");
        if (!json_is_boolean(on)) {
                json_decref(body);
                return respond_error(req, 400, "bad_request", "expected {\"on\": true} or {\"on\": false}");
        }
        bool want = json_is_true(on);
        json_decref(body);
        /* 0x010A switches it; the load's state bit in 0x0120 says whether it did. */
        return queue_write(a, req, dev, NULL, want, 0x010A, want ? 1 : 0, 0x0120,
                renogy_field_find(dev->decoder, "load_status"), want ? 1 : 0);
}

/* POST {"key": K, "value": V}: a setting of this model, range-checked, written and read back. */
static int handle_setting(
        struct api *a, struct http_request *req, const struct http_request_info *info, struct device *dev)
{
        bool failed;
        json_t *body = parse_body(req, info, &failed);
        if (failed)
                return 0;
        json_t *key = json_object_get(body, "key"), *value = json_object_get(body, "value");
        if (!json_is_string(key) || !(json_is_number(value) || json_is_string(value))) {
                json_decref(body);
                return respond_error(
                        req, 400, "bad_request", "expected {\"key\": \"load_mode\", \"value\": ...}");
        }
        const struct renogy_setting *s = renogy_setting_find(dev->decoder, json_string_value(key));
        if (!s) {
                const struct renogy_setting *list[8];
                size_t n = renogy_settings(dev->decoder, list, ELEMENTSOF(list));
                char names[160] = "";
                for (size_t i = 0, len = 0; i < n && len < sizeof names; i++)
                        len += (size_t)snprintf(
                                names + len, sizeof names - len, "%s%s", i ? ", " : "", list[i]->key);
                int ret = respond_error(req, 400, "not_settable", "'%s' cannot be set on %s (%s)%s%s",
                        json_string_value(key), dev->cfg.name, dev->decoder->label, n ? "; settable: " : "",
                        n ? names : "; nothing can be set on this model");
                json_decref(body);
                return ret;
        }
        uint16_t raw;
        char err[256];
        int r = renogy_setting_encode(dev->decoder, s,
                json_is_string(value) ? json_string_value(value) : NULL,
                json_is_number(value) ? json_number_value(value) : 0, &raw, err, sizeof err);
        json_decref(body);
        if (r < 0)
                return respond_error(req, 400, r == -ERANGE ? "out_of_range" : "bad_value", "%s", err);
        return queue_write(a, req, dev, s->key, false, s->reg, raw, s->readback,
                renogy_field_find(dev->decoder, s->key), raw);
}

static bool needs_bluez(enum api_route r)
{
        return r == ROUTE_DEVICE_POLL || r == ROUTE_DEVICE_VERIFY || r == ROUTE_DEVICE_LOAD ||
               r == ROUTE_DEVICE_SETTINGS || r == ROUTE_ADAPTER_POWER || r == ROUTE_SCAN ||
               r == ROUTE_SCAN_HUB;
}

static int handle(void *userdata, struct http_request *req, const struct http_request_info *info)
{
        struct api *a = userdata;
        struct daemon *d = a->d;
        struct api_match m;
        if (api_route_match(info->method, info->path, &m) < 0)
                return respond_error(req, 404, "not_found", "no route %s", info->path);
        if (!m.method_ok) {
                const char *allow[] = {"Allow", m.allow, "Cache-Control", "no-store", NULL};
                char *text = NULL;
                int n = asprintf(&text,
                        "{\"error\":{\"code\":\"method_not_allowed\",\"message\":\"%s is not allowed here; "
                        "use %s\"}}",
                        strlen(info->method) < 16 ? info->method : "this method", m.allow);
                if (n < 0)
                        return -ENOMEM;
                /* allow[] lives on the stack: answer now, never from a suspended request. */
                return http_respond(req, 405, "application/json", text, (size_t)n, true, allow);
        }
        if (info->body_too_large)
                return respond_error(
                        req, 413, "body_too_large", "request bodies are limited to %d bytes", HTTP_MAX_BODY);
        bool change = !streq(info->method, "GET") && !streq(info->method, "HEAD");
        if (change) {
                a->devices_view = http_response_unref(a->devices_view);
                const char *auth = http_header(req, "Authorization");
                int r = api_check_change(info->client, auth, d->opts.api_token, a->under_supervisor);
                /* The integration's own token, where the add-on made one. */
                if (r < 0 && d->integration_token[0]) {
                        int ri = api_check_change(
                                info->client, auth, d->integration_token, a->under_supervisor);
                        r = ri == 0 || r == -EPERM ? ri : r;
                }
                if (r == -EACCES) {
                        static const char *const hdr[] = {
                                "WWW-Authenticate", "Bearer realm=\"blupow\"", NULL};
                        char *text = strdup("{\"error\":{\"code\":\"unauthorized\",\"message\":\"changes "
                                            "need Authorization: Bearer <api_token>\"}}");
                        return http_respond(
                                req, 401, "application/json", text, text ? strlen(text) : 0, true, hdr);
                }
                if (r == -EPERM)
                        return respond_error(req, 403, "forbidden",
                                "changes are allowed through Home Assistant's ingress, from this machine, "
                                "or with an "
                                "api_token (none is configured)");
        }
        struct device *dev = NULL;
        if (m.id[0] && !(dev = daemon_device_find(d, m.id)))
                return respond_error(req, 404, "no_such_device", "no device with id '%s'", m.id);
        if (needs_bluez(m.route)) {
                char detail[192];
                enum diagnosis_code c = daemon_system_diagnosis(d, detail, sizeof detail);
                if (c == DIAG_NO_SYSTEM_BUS || c == DIAG_DBUS_ACCESS_DENIED || c == DIAG_BLUEZ_NOT_RUNNING) {
                        char msg[256];
                        diagnosis_message(c, detail, msg, sizeof msg);
                        return respond_error(req, 503, diagnosis_info(c)->code, "%s", msg);
                }
        }

        switch (m.route) {
        case ROUTE_HEALTH:
                return respond_json(req, 200, view_health(d));
        case ROUTE_DEVICES:
                if (streq(info->method, "POST"))
                        return handle_add(a, req, info);
                return respond_devices(a, req);
        case ROUTE_DEVICE:
                if (streq(info->method, "DELETE")) {
                        int r = daemon_device_remove(d, dev);
                        if (r == -EOPNOTSUPP)
                                return respond_error(req, 409, "computed",
                                        "'%s' is the sum of the batteries on module %s: it goes when "
                                        "fewer than two of them remain",
                                        dev->cfg.name, dev->cfg.address);
                        if (r == -EPERM)
                                return respond_error(req, 409, "from_options",
                                        "'%s' comes from the add-on options: remove it there",
                                        dev->cfg.name);
                        if (r == -EBUSY)
                                return respond_error(
                                        req, 409, "busy", "the device is being read; try again in a moment");
                        if (r < 0)
                                return respond_error(req, 500, "remove_failed", "%s", strerror(-r));
                        return http_respond(req, 204, NULL, (char *)"", 0, false, json_headers);
                }
                return respond_json(req, 200, view_device(d, dev));
        case ROUTE_DEVICE_HISTORY:
                return handle_history(a, req, dev);
        case ROUTE_DEVICE_POLL:
                daemon_poll_now(d, dev);
                return respond_json(req, 202, json_pack("{s:s,s:b}", "device", dev->cfg.id, "queued", 1));
        case ROUTE_DEVICE_VERIFY:
                if (device_bank(dev))
                        return respond_error(req, 400, "computed",
                                "'%s' is computed from its packs, not read: verify one of them (%s)",
                                dev->cfg.name, device_bank(dev)->packs[0]->cfg.id);
                return start_verify(a, req, dev);
        case ROUTE_DEVICE_LOAD:
                return handle_load(a, req, info, dev);
        case ROUTE_DEVICE_SETTINGS:
                return handle_setting(a, req, info, dev);
        case ROUTE_DIAGNOSTICS:
                return respond_json(req, 200, view_diagnostics(d));
        case ROUTE_SCAN:
                if (streq(info->method, "POST")) {
                        bool failed;
                        json_t *body = parse_body(req, info, &failed);
                        if (failed)
                                return 0;
                        json_t *sec = json_object_get(body, "seconds");
                        long long seconds = sec ? json_integer_value(sec) : 10;
                        bool not_integer = sec && !json_is_integer(sec);
                        json_decref(body); /* sec belonged to it */
                        if (not_integer || seconds < 1 || seconds > 60)
                                return respond_error(req, 400, "bad_request", "seconds: 1 to 60");
                        int r = daemon_scan(d, (unsigned)seconds);
                        if (r == -EBUSY)
                                return respond_error(req, 409, "busy",
                                        "a device is being read; try again in a few seconds");
                        if (r < 0)
                                return respond_error(req, 503, "scan_failed", "cannot scan: %s",
                                        r == -ENODEV     ? "the adapter does not exist"
                                        : r == -ENETDOWN ? "the adapter is powered off"
                                                         : strerror(-r));
                        return respond_json(
                                req, 202, json_pack("{s:b,s:I}", "scanning", 1, "seconds", seconds));
                }
                return respond_json(req, 200, view_scan(d));
        case ROUTE_SCAN_HUB:
                return handle_hub(a, req, info);
        case ROUTE_ADAPTER_POWER: {
                /* {"adapter": "hci1"} powers that one; no body, every adapter in use that is off. */
                bool failed;
                json_t *body = parse_body(req, info, &failed);
                if (failed)
                        return 0;
                json_t *jname = json_object_get(body, "adapter");
                char name[16] = "";
                if (jname && !json_is_string(jname)) {
                        json_decref(body);
                        return respond_error(req, 400, "bad_request", "adapter: expected a name like hci0");
                }
                if (jname)
                        snprintf(name, sizeof name, "%s", json_string_value(jname));
                json_decref(body);
                if (jname && !daemon_radio_find(d, name))
                        return respond_error(
                                req, 404, "no_such_adapter", "no device uses adapter '%s'", name);
                int r = daemon_power_adapter(d, jname ? name : NULL);
                if (r < 0)
                        return respond_error(req, 503, "power_failed", "cannot power the adapter on: %s",
                                r == -ENODEV ? "it does not exist" : strerror(-r));
                return respond_json(req, 202,
                        json_pack("{s:s,s:b}", "adapter", jname ? name : d->opts.adapter, "powering_on", 1));
        }
        case ROUTE_HA_PACKAGE: {
                char base[300];
                const char *sup = ha_supervisor_base_url(api_port(a));
                if (sup)
                        snprintf(base, sizeof base, "%s", sup);
                else {
                        const char *host = http_header(req, "Host");
                        bool host_ok = host && *host && strlen(host) < 200 && !strpbrk(host, " \"'{}\\\r\n");
                        snprintf(base, sizeof base, "http://%s", host_ok ? host : "localhost:8099");
                }
                size_t len;
                char *yaml = ha_package_render(d, base, &len);
                if (!yaml)
                        return respond_error(req, 500, "oom", "out of memory");
                return http_respond(req, 200, "text/yaml; charset=utf-8", yaml, len, true, json_headers);
        }
        case ROUTE_METRICS: {
                size_t len;
                char *text = metrics_render(d, &len);
                if (!text)
                        return respond_error(req, 500, "oom", "out of memory");
                return http_respond(
                        req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, true, json_headers);
        }
        case ROUTE_STATIC:
                return serve_static(a, req, info->path);
        default:
                return respond_error(req, 404, "not_found", "no route %s", info->path);
        }
}

int api_new(struct api **ret, struct daemon *d, const char *bind_address, uint16_t port, const char *web_dir)
{
        struct api *a = calloc(1, sizeof *a);
        if (!a)
                return -ENOMEM;
        a->d = d;
        a->web_dir = web_dir ? strdup(web_dir) : NULL;
        a->under_supervisor = getenv("SUPERVISOR_TOKEN") != NULL;
        int r = http_server_new(&a->http, d->event, bind_address, port, handle, a);
        if (r < 0) {
                free(a->web_dir);
                free(a);
                return r;
        }
        d->write_done = write_done;
        d->api_userdata = a;
        *ret = a;
        return 0;
}

struct api *api_free(struct api *a)
{
        if (!a)
                return NULL;
        http_server_free(a->http);
        http_response_unref(a->devices_view);
        while (a->write_jobs) {
                struct write_job *j = a->write_jobs;
                a->write_jobs = j->next;
                free(j);
        }
        free(a->web_dir);
        free(a);
        return NULL;
}

uint16_t api_port(const struct api *a)
{
        return http_server_port(a->http);
}
