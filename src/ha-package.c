/* SPDX-License-Identifier: MIT */
/* A Home Assistant package for the built-in `rest` integration: one resource per device,
 * one sensor per reading with a stable unique_id, and a connectivity binary sensor. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "api.h"
#include "bank.h"
#include "daemon.h"
#include "log.h"
#include "macro.h"

/* Double-quoted YAML scalar. */
static void yq(FILE *f, const char *s)
{
        fputc('"', f);
        for (; *s; s++) {
                if (*s == '"' || *s == '\\')
                        fputc('\\', f);
                if ((unsigned char)*s < 0x20)
                        continue;
                fputc(*s, f);
        }
        fputc('"', f);
}

static void address_compact(const char *addr, char *out)
{
        size_t n = 0;
        for (const char *p = addr; *p; p++)
                if (*p != ':')
                        out[n++] = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
        out[n] = 0;
}

/* Which readings become sensors: numbers and enums/flags; text and bit lists stay in the API. */
static bool sensor_field(const struct renogy_field *f)
{
        return f->kind == KIND_NUMBER || f->kind == KIND_ENUM || f->kind == KIND_FLAG;
}

static bool field_present(const struct device *dev, const struct renogy_field *f)
{
        if (!dev->have_readings)
                return !f->count_addr || f->index <= 4; /* before the first poll: a sensible default */
        return renogy_readings_get(&dev->readings, f->key) != NULL;
}

/* One device's sensors: a resource fetched as often as the device is read. */
static void render_device(
        FILE *f, const struct daemon *d, const struct device *dev, const char *base_url, const char *fresh)
{
        char mac[16];
        address_compact(dev->cfg.address, mac);
        char uid[64];
        if (device_bank(dev))
                snprintf(uid, sizeof uid, "blupow_%s_bank", mac);
        else
                snprintf(uid, sizeof uid, "blupow_%s_%u", mac, dev->cfg.modbus_id);
        fprintf(f, "  - resource: ");
        char url[400];
        snprintf(url, sizeof url, "%s/api/v1/devices/%s", base_url, dev->cfg.id);
        yq(f, url);
        /* Fetched as often as the device is read, at most every 10 s. */
        unsigned interval = device_interval(d, dev);
        fprintf(f, "\n    scan_interval: %u\n    timeout: 10\n    sensor:\n", interval < 10 ? 10 : interval);
        for (size_t k = 0; k < dev->decoder->n_fields; k++) {
                const struct renogy_field *fd = &dev->decoder->fields[k];
                if (!sensor_field(fd) || !field_present(dev, fd))
                        continue;
                char name[160];
                snprintf(name, sizeof name, "%s %s", dev->cfg.name, fd->label);
                fprintf(f, "      - name: ");
                yq(f, name);
                fprintf(f, "\n        unique_id: %s_%s\n", uid, fd->key);
                /* Guarded, so that a device not read yet renders no template error in
                 * Home Assistant's log on every scan; availability says why it is empty. */
                fprintf(f,
                        "        value_template: \"{{ value_json.readings.%s.value if "
                        "value_json is defined and value_json.readings.%s "
                        "is defined else '' }}\"\n",
                        fd->key, fd->key);
                fprintf(f, "        availability: \"{{ %s and value_json.readings.%s is defined }}\"\n",
                        fresh, fd->key);
                if (fd->kind == KIND_NUMBER) {
                        if (fd->device_class)
                                fprintf(f, "        device_class: %s\n", fd->device_class);
                        if (fd->state_class)
                                fprintf(f, "        state_class: %s\n", fd->state_class);
                        if (fd->unit) {
                                fprintf(f, "        unit_of_measurement: ");
                                yq(f, fd->unit);
                                fputc('\n', f);
                        }
                }
        }
        fprintf(f, "    binary_sensor:\n      - name: ");
        char name[160];
        snprintf(name, sizeof name, "%s connected", dev->cfg.name);
        yq(f, name);
        fprintf(f, "\n        unique_id: %s_connected\n", uid);
        fprintf(f, "        value_template: \"{{ value_json is defined and value_json.state == "
                   "'online' }}\"\n");
        fprintf(f, "        device_class: connectivity\n");
        /* Every bit of a status word the family names, as the integration makes them: a
         * problem sensor for each alarm, protection and fault bit, a plain one for a
         * state. The API lists the names of the bits set. */
        for (size_t k = 0; k < dev->decoder->n_fields; k++) {
                const struct renogy_field *fd = &dev->decoder->fields[k];
                if (fd->kind != KIND_BITS || !field_present(dev, fd))
                        continue;
                for (unsigned b = 0; b < fd->n_names; b++) {
                        const char *bit = fd->names[b];
                        if (!bit)
                                continue;
                        char readable[64];
                        snprintf(readable, sizeof readable, "%s", bit);
                        for (char *c = readable; *c; c++)
                                if (*c == '_')
                                        *c = ' ';
                        snprintf(name, sizeof name, "%s %s: %s", dev->cfg.name, fd->label, readable);
                        fprintf(f, "      - name: ");
                        yq(f, name);
                        fprintf(f, "\n        unique_id: %s_%s_%s\n", uid, fd->key, bit);
                        fprintf(f,
                                "        value_template: \"{{ value_json is defined and "
                                "value_json.readings.%s is defined and '%s' in "
                                "value_json.readings.%s.value }}\"\n",
                                fd->key, bit, fd->key);
                        fprintf(f,
                                "        availability: \"{{ %s and value_json.readings.%s is "
                                "defined "
                                "}}\"\n",
                                fresh, fd->key);
                        if (!(fd->state_bits & (1u << b)))
                                fprintf(f, "        device_class: problem\n");
                }
        }
}

char *ha_package_render(const struct daemon *d, const char *base_url, size_t *len)
{
        char *buf = NULL;
        FILE *f = open_memstream(&buf, len);
        if (!f)
                return NULL;
        /* The API's "available" is the one rule: the device's own data younger than its own
         * schedule allows, whatever the other devices do. The integration reads the same field. */
        /* value_json is undefined when the fetch failed (the add-on stopped or moved): Home
         * Assistant renders availability anyway, and logs an error per sensor per scan unless
         * the template says so first. */
        const char *fresh = "value_json is defined and value_json.available is sameas true";
        fprintf(f,
                "# BluPow: Home Assistant package for the built-in RESTful integration.\n"
                "# Save as /config/packages/blupow.yaml, make sure configuration.yaml has\n"
                "#   homeassistant:\n"
                "#     packages: !include_dir_named packages\n"
                "# then restart Home Assistant (or reload RESTful entities after the first time).\n"
                "# Generated by BluPow %s for %zu device(s).\n"
                "---\n"
                "rest:\n",
                BLUPOW_VERSION, d->n_devices + d->n_banks);
        for (size_t i = 0; i < d->n_devices; i++)
                render_device(f, d, d->devices[i], base_url, fresh);
        for (size_t i = 0; i < d->n_banks; i++)
                render_device(f, d, &d->banks[i]->dev, base_url, fresh);
        if (d->n_devices == 0)
                fprintf(f, "  []\n");
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

/* Under the Supervisor, Home Assistant reaches the add-on by its hostname. Asked once from
 * the Supervisor API (/addons/self/info), at start-up; the container's hostname otherwise. */
static char supervisor_url[300];
static bool supervisor_checked;

static int supervisor_hostname(char *out, size_t size)
{
        const char *token = getenv("SUPERVISOR_TOKEN");
        struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai = NULL;
        if (!token || getaddrinfo("supervisor", "80", &hints, &ai) != 0 || !ai)
                return -ENOENT;
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct timeval tv = {.tv_sec = 2};
        int r = -EIO;
        if (fd >= 0) {
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        }
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
                char req[1024];
                int n = snprintf(req, sizeof req,
                        "GET /addons/self/info HTTP/1.0\r\nHost: supervisor\r\nAuthorization: Bearer "
                        "%s\r\n\r\n",
                        token);
                if (n > 0 && n < (int)sizeof req && write(fd, req, (size_t)n) == n) {
                        char resp[8192];
                        size_t got = 0;
                        ssize_t k;
                        while (got + 1 < sizeof resp &&
                                (k = read(fd, resp + got, sizeof resp - 1 - got)) > 0)
                                got += (size_t)k;
                        resp[got] = 0;
                        const char *h = strstr(resp, "\"hostname\"");
                        const char *q = h ? strchr(h + 10, '"') : NULL;
                        const char *e = q ? strchr(q + 1, '"') : NULL;
                        if (q && e && (size_t)(e - q - 1) < size && e > q + 1) {
                                snprintf(out, size, "%.*s", (int)(e - q - 1), q + 1);
                                r = 0;
                        }
                }
        }
        if (fd >= 0)
                close(fd);
        freeaddrinfo(ai);
        return r;
}

const char *ha_supervisor_base_url(uint16_t port)
{
        if (!getenv("SUPERVISOR_TOKEN"))
                return NULL;
        if (!supervisor_checked) {
                supervisor_checked = true;
                char host[128];
                if (supervisor_hostname(host, sizeof host) < 0 && gethostname(host, sizeof host) < 0)
                        snprintf(host, sizeof host, "local-blupow");
                snprintf(supervisor_url, sizeof supervisor_url, "http://%s:%u", host, port);
                log_info("Home Assistant reaches this add-on at %s", supervisor_url);
        }
        return supervisor_url;
}
