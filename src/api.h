/* SPDX-License-Identifier: MIT */
#pragma once

/* The REST API, /metrics, the Home Assistant package and the status page's files. */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct daemon;
struct device;
struct api;

int api_new(
        struct api **ret, struct daemon *d, const char *bind_address, uint16_t port, const char *web_dir);
struct api *api_free(struct api *a);
uint16_t api_port(const struct api *a);

/* Access rules (DESIGN.md "Access"). */
enum api_access {
        ACCESS_READ,   /* may read */
        ACCESS_CHANGE, /* may change: trusted address or valid token */
};
bool api_client_trusted(const char *client, bool under_supervisor);
/* 0 allowed, -EACCES (401: token missing or wrong) or -EPERM (403: no token configured). */
int api_check_change(
        const char *client, const char *authorization, const char *token, bool under_supervisor);

/* JSON views (api-views.c). */
json_t *view_device(const struct daemon *d, const struct device *dev);
json_t *view_devices(const struct daemon *d);
json_t *view_health(const struct daemon *d);
json_t *view_diagnostics(const struct daemon *d);
json_t *view_scan(const struct daemon *d);
json_t *view_diagnosis(int code, const char *detail);
char *iso8601(int64_t usec, char *buf, size_t size);
bool device_available(const struct daemon *d, const struct device *dev);

/* Text views. */
char *metrics_render(const struct daemon *d, size_t *len);
char *ha_package_render(const struct daemon *d, const char *base_url, size_t *len);
/* The base URL Home Assistant should use for this add-on; NULL outside the Supervisor. */
const char *ha_supervisor_base_url(uint16_t port);

/* Router helpers, exposed for the tests. */
enum api_route {
        ROUTE_NONE,
        ROUTE_HEALTH,
        ROUTE_DEVICES,
        ROUTE_DEVICE,
        ROUTE_DEVICE_HISTORY,
        ROUTE_DEVICE_POLL,
        ROUTE_DEVICE_VERIFY,
        ROUTE_DEVICE_LOAD,
        ROUTE_DEVICE_SETTINGS,
        ROUTE_DIAGNOSTICS,
        ROUTE_SCAN,
        ROUTE_SCAN_HUB,
        ROUTE_ADAPTER_POWER,
        ROUTE_HA_PACKAGE,
        ROUTE_METRICS,
        ROUTE_STATIC,
};

struct api_match {
        enum api_route route;
        char id[80];       /* {id} for device routes */
        const char *allow; /* methods the route accepts, for 405 */
        bool method_ok;
};

int api_route_match(const char *method, const char *path, struct api_match *m);
/* A query time in Unix seconds (fractions allowed) as µs; sets *bad and returns dflt when
 * the text is not a time between 1970 and 2096. */
int64_t api_parse_time(const char *s, int64_t dflt, bool *bad);
