/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

void sleep_s(double s)
{
        struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
        nanosleep(&ts, NULL);
}

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *source_path(const char *rel, char *buf, size_t size)
{
        const char *root = getenv("BLUPOW_SOURCE_ROOT");
        snprintf(buf, size, "%s/%s", root ? root : ".", rel);
        return buf;
}

const char *build_path(const char *rel, char *buf, size_t size)
{
        const char *root = getenv("BLUPOW_BUILD_ROOT");
        snprintf(buf, size, "%s/%s", root ? root : "build", rel);
        return buf;
}

static pid_t spawn(char *const argv[], const char *log, const char *bus_address)
{
        pid_t pid = fork();
        if (pid != 0)
                return pid;
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive a test that died */
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
        }
        if (bus_address)
                setenv("DBUS_SYSTEM_BUS_ADDRESS", bus_address, 1);
        unsetenv("SUPERVISOR_TOKEN");
        execv(argv[0], argv);
        _exit(127);
}

static int start_bus(struct env *e, bool deny)
{
        char conf[512], sock[300];
        source_path(
                deny ? "tests/data/system-bus-deny.conf" : "tests/data/system-bus.conf", conf, sizeof conf);
        snprintf(sock, sizeof sock, "%s/bus", e->dir);
        char addr_arg[400], conf_arg[600];
        snprintf(addr_arg, sizeof addr_arg, "--address=unix:path=%s", sock);
        snprintf(conf_arg, sizeof conf_arg, "--config-file=%s", conf);
        int p[2];
        if (pipe(p) < 0)
                return -errno;
        pid_t pid = fork();
        if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGTERM);
                dup2(p[1], 1);
                close(p[0]);
                execlp("dbus-daemon", "dbus-daemon", conf_arg, addr_arg, "--nofork", "--print-address=1",
                        (char *)NULL);
                _exit(127);
        }
        close(p[1]);
        char buf[512] = "";
        ssize_t n = read(p[0], buf, sizeof buf - 1);
        close(p[0]);
        if (n <= 0)
                return -EIO;
        buf[n] = 0;
        buf[strcspn(buf, "\n")] = 0;
        snprintf(e->bus_address, sizeof e->bus_address, "%s", buf);
        e->bus_pid = pid;
        return 0;
}

static int open_test_bus(struct env *e)
{
        int r = sd_bus_new(&e->bus);
        if (r < 0)
                return r;
        sd_bus_set_address(e->bus, e->bus_address);
        sd_bus_set_bus_client(e->bus, 1);
        return sd_bus_start(e->bus);
}

static bool name_has_owner(struct env *e, const char *name)
{
        sd_bus_error err = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int r = sd_bus_call_method(e->bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                "org.freedesktop.DBus", "NameHasOwner", &err, &reply, "s", name);
        int has = 0;
        if (r >= 0)
                sd_bus_message_read(reply, "b", &has);
        sd_bus_message_unref(reply);
        sd_bus_error_free(&err);
        return has;
}

int env_start_daemon(struct env *e, const struct env_config *cfg)
{
        char opts[400], bin[400], web[400], dbdir[300];
        if (cfg->options)
                snprintf(opts, sizeof opts, "%s", cfg->options);
        else {
                snprintf(opts, sizeof opts, "%s/options.json", e->dir);
                FILE *f = fopen(opts, "we");
                if (!f)
                        return -errno;
                fputs(cfg->options_json ? cfg->options_json : "{}", f);
                fclose(f);
        }
        build_path("src/blupowd", bin, sizeof bin);
        source_path("web", web, sizeof web);
        snprintf(dbdir, sizeof dbdir, "%s/data", e->dir);
        mkdir(dbdir, 0755);
        snprintf(e->daemon_log, sizeof e->daemon_log, "%s/blupowd.log", e->dir);
        unlink(e->daemon_log);
        char *argv[] = {bin, "--options", opts, "--data-dir", dbdir, "--port", "0", "--bind", "127.0.0.1",
                "--web-dir", web, NULL};
        e->daemon_pid = spawn(
                argv, e->daemon_log, cfg->bus_address_override ? cfg->bus_address_override : e->bus_address);
        /* The daemon logs the port it got. */
        for (double t0 = now_s(); now_s() - t0 < 10;) {
                FILE *f = fopen(e->daemon_log, "re");
                char line[512];
                while (f && fgets(line, sizeof line, f)) {
                        const char *p = strstr(line, "API on port ");
                        if (p) {
                                e->port = atoi(p + 12);
                                fclose(f);
                                return 0;
                        }
                }
                if (f)
                        fclose(f);
                int status;
                if (waitpid(e->daemon_pid, &status, WNOHANG) == e->daemon_pid) {
                        e->daemon_pid = 0;
                        return -ECHILD;
                }
                sleep_s(0.02);
        }
        return -ETIMEDOUT;
}

int env_start(struct env *e, const struct env_config *cfg)
{
        if (e->bus_pid || e->sim_pid || e->daemon_pid)
                env_stop(e); /* a failed test in no-fork mode skips its teardown */
        memset(e, 0, sizeof *e);
        snprintf(e->dir, sizeof e->dir, "/tmp/blupow-test.XXXXXX");
        if (!mkdtemp(e->dir))
                return -errno;
        int r = start_bus(e, cfg->deny_bluez);
        if (r < 0)
                return r;
        if ((r = open_test_bus(e)) < 0)
                return r;
        if (!cfg->no_sim) {
                char bin[400], log[300];
                build_path("sim/blupow-sim", bin, sizeof bin);
                snprintf(log, sizeof log, "%s/sim.log", e->dir);
                char *argv[] = {bin, "--scenario", (char *)cfg->scenario, NULL};
                e->sim_pid = spawn(argv, log, e->bus_address);
                double t0 = now_s();
                while (!name_has_owner(e, "org.bluez") && now_s() - t0 < 10)
                        sleep_s(0.02);
                if (!name_has_owner(e, "org.bluez"))
                        return -ETIMEDOUT;
        }
        if (!cfg->no_daemon)
                return env_start_daemon(e, cfg);
        return 0;
}

static void kill_wait(pid_t *pid)
{
        if (*pid <= 0)
                return;
        kill(*pid, SIGTERM);
        for (int i = 0; i < 300; i++) {
                if (waitpid(*pid, NULL, WNOHANG) == *pid) {
                        *pid = 0;
                        return;
                }
                sleep_s(0.02);
        }
        kill(*pid, SIGKILL);
        waitpid(*pid, NULL, 0);
        *pid = 0;
}

int env_stop_daemon(struct env *e, double *seconds)
{
        if (e->daemon_pid <= 0)
                return -1;
        double t0 = now_s();
        kill(e->daemon_pid, SIGTERM);
        int status = -1;
        for (int i = 0; i < 1000; i++) {
                if (waitpid(e->daemon_pid, &status, WNOHANG) == e->daemon_pid)
                        break;
                sleep_s(0.01);
        }
        if (seconds)
                *seconds = now_s() - t0;
        if (!WIFEXITED(status)) {
                kill(e->daemon_pid, SIGKILL);
                waitpid(e->daemon_pid, NULL, 0);
                e->daemon_pid = 0;
                return -1;
        }
        e->daemon_pid = 0;
        return WEXITSTATUS(status);
}

void env_stop(struct env *e)
{
        kill_wait(&e->daemon_pid);
        kill_wait(&e->sim_pid);
        e->bus = sd_bus_flush_close_unref(e->bus);
        kill_wait(&e->bus_pid);
        if (getenv("BLUPOW_KEEP_TEST_DIR"))
                return;
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->dir);
        if (system(cmd) != 0)
                fprintf(stderr, "could not remove %s\n", e->dir);
}

int http(struct env *e, const char *method, const char *path, const char *body, const char *extra_header,
        char **resp)
{
        *resp = NULL;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)e->port)};
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
                if (fd >= 0)
                        close(fd);
                return -1;
        }
        char *req = NULL;
        int n = asprintf(&req, "%s %s HTTP/1.0\r\nHost: localhost:%d\r\n%s%s%sContent-Length: %zu\r\n\r\n%s",
                method, path, e->port, extra_header ? extra_header : "", extra_header ? "\r\n" : "",
                body ? "Content-Type: application/json\r\n" : "", body ? strlen(body) : 0, body ? body : "");
        if (n < 0 || write(fd, req, (size_t)n) != n) {
                free(req);
                close(fd);
                return -1;
        }
        free(req);
        size_t cap = 65536, len = 0;
        char *buf = malloc(cap);
        ssize_t k;
        while (buf && (k = read(fd, buf + len, cap - len - 1)) > 0) {
                len += (size_t)k;
                if (len + 1 == cap) {
                        cap *= 2;
                        buf = realloc(buf, cap);
                }
        }
        close(fd);
        if (!buf)
                return -1;
        buf[len] = 0;
        int status = 0;
        sscanf(buf, "HTTP/1.%*d %d", &status);
        char *b = strstr(buf, "\r\n\r\n");
        *resp = strdup(b ? b + 4 : "");
        free(buf);
        return status;
}

json_t *http_json(struct env *e, const char *method, const char *path, const char *body, int *status)
{
        char *resp;
        int s = http(e, method, path, body, NULL, &resp);
        if (status)
                *status = s;
        json_t *j = resp ? json_loads(resp, 0, NULL) : NULL;
        free(resp);
        return j;
}

json_t *wait_device(struct env *e, const char *id, bool (*pred)(json_t *dev, const void *arg),
        const void *arg, double seconds)
{
        char path[200];
        snprintf(path, sizeof path, "/api/v1/devices/%s", id);
        for (double t0 = now_s(); now_s() - t0 < seconds; sleep_s(0.1)) {
                json_t *dev = http_json(e, "GET", path, NULL, NULL);
                if (dev && pred(dev, arg))
                        return dev;
                json_decref(dev);
        }
        return NULL;
}

bool dev_state_is(json_t *dev, const void *state)
{
        const char *s = json_string_value(json_object_get(dev, "state"));
        return s && strcmp(s, state) == 0;
}

bool dev_diag_is(json_t *dev, const void *code)
{
        const char *s = json_string_value(json_object_get(json_object_get(dev, "diagnosis"), "code"));
        return s && strcmp(s, code) == 0;
}

bool dev_online_polled_after(json_t *dev, const void *iso)
{
        const char *t = json_string_value(json_object_get(dev, "last_poll"));
        return dev_state_is(dev, "online") && t && strcmp(t, iso) > 0;
}

int sim_set_fault(struct env *e, const char *address, const char *fault, int count)
{
        return sim_simple(e, "SetFault", "ssi", address, fault, count);
}

int sim_simple(struct env *e, const char *method, const char *types, ...)
{
        sd_bus_error err = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        int r = sd_bus_message_new_method_call(e->bus, &m, "org.blupow.Sim", "/", "org.blupow.Sim1", method);
        if (r >= 0 && types) {
                va_list ap;
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
        }
        if (r >= 0)
                r = sd_bus_call(e->bus, m, 5000000, &err, &reply);
        if (r < 0)
                fprintf(stderr, "sim %s: %s\n", method, err.message ? err.message : strerror(-r));
        sd_bus_error_free(&err);
        sd_bus_message_unref(m);
        sd_bus_message_unref(reply);
        return r;
}

json_t *sim_readings(struct env *e, const char *address, unsigned id)
{
        sd_bus_error err = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        json_t *j = NULL;
        if (sd_bus_call_method(e->bus, "org.blupow.Sim", "/", "org.blupow.Sim1", "GetReadings", &err, &reply,
                    "sy", address, (uint8_t)id) >= 0) {
                const char *s;
                if (sd_bus_message_read(reply, "s", &s) >= 0)
                        j = json_loads(s, 0, NULL);
        }
        sd_bus_error_free(&err);
        sd_bus_message_unref(reply);
        return j;
}

int sim_stat(struct env *e, const char *address, const char *key)
{
        sd_bus_error err = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int value = -1;
        if (sd_bus_call_method(e->bus, "org.blupow.Sim", "/", "org.blupow.Sim1", "GetStats", &err, &reply,
                    "s", address) >= 0 &&
                sd_bus_message_enter_container(reply, 'a', "{su}") >= 0) {
                const char *k;
                uint32_t v;
                while (sd_bus_message_read(reply, "{su}", &k, &v) > 0)
                        if (strcmp(k, key) == 0)
                                value = (int)v;
        }
        sd_bus_error_free(&err);
        sd_bus_message_unref(reply);
        return value;
}

int sim_count_calls(struct env *e, const char *member, const char *path_part)
{
        sd_bus_error err = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int n = 0;
        if (sd_bus_call_method(
                    e->bus, "org.blupow.Sim", "/", "org.blupow.Sim1", "GetCalls", &err, &reply, "") >= 0 &&
                sd_bus_message_enter_container(reply, 'a', "(tssss)") >= 0) {
                uint64_t t;
                const char *sender, *path, *mem, *detail;
                while (sd_bus_message_read(reply, "(tssss)", &t, &sender, &path, &mem, &detail) > 0)
                        if (strcmp(mem, member) == 0 && (!path_part || strstr(path, path_part)))
                                n++;
        }
        sd_bus_error_free(&err);
        sd_bus_message_unref(reply);
        return n;
}
