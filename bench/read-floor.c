/* SPDX-License-Identifier: MIT */
/* The least CPU any reader can spend on one charge-controller read on this machine.
 *
 * A read is a schedule of wakes set by the radio, not by the reader: the poll timer after the
 * idle gap, Connected 300 ms later, ServicesResolved 400 ms after that, the two Acquire replies,
 * then each register block's reply 60 ms after its request and each further 20-byte packet 8 ms
 * later, and the disconnect (blupow-sim's default timing, the controller's four blocks of
 * 21, 7, 73 and 7 bytes). This program goes through that schedule doing nothing at each wake,
 * twice:
 *   - "sleep": one process sleeps through the gaps (the cost of the wakes alone);
 *   - "sd-bus": a second process sends a D-Bus signal at each step and this one receives it in
 *     an sd-event loop, reading its payload and nothing else (the cost of the wakes plus the
 *     library every BlueZ client on this stack goes through).
 * Only the receiving process's CPU is counted. On bare metal both are some tens of
 * microseconds; where they are larger, they are the floor under the CPU per poll of
 * bench/scale.py and bench/bleak_peer.py on that machine.
 *   read-floor [READS] [INTERVAL_MS]   needs a bus in DBUS_SYSTEM_BUS_ADDRESS for the second
 *                                      figure (scripts/test-bus.sh); prints one JSON object */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "macro.h"

struct step {
        double gap_ms;     /* after the previous step */
        unsigned messages; /* sent together at this step */
};

/* The first step is the poll timer; its gap is the rest of the interval. */
static const struct step read_steps[] = {
        {0, 1},   /* poll timer */
        {300, 2}, /* Connected, then Connect's reply */
        {400, 1}, /* ServicesResolved */
        {0.4, 2}, /* AcquireNotify's and AcquireWrite's replies */
        {60, 1},  /* block 0x000C (21 bytes): first packet */
        {8, 1},   /* second packet */
        {60, 1},  /* block 0x001A (7 bytes) */
        {60, 1},  /* block 0x0100 (73 bytes): four packets */
        {8, 1},
        {8, 1},
        {8, 1},
        {60, 1},  /* block 0xE004 (7 bytes) */
        {0.3, 2}, /* Disconnect's reply, Connected false */
};
#define N_STEPS ELEMENTSOF(read_steps)

static double read_span_ms(void)
{
        double sum = 0;
        for (size_t i = 0; i < N_STEPS; i++)
                sum += read_steps[i].gap_ms;
        return sum;
}

static double cpu_us(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void nap_ms(double ms)
{
        struct timespec t = {(time_t)(ms / 1000), (long)((ms - (double)(time_t)(ms / 1000) * 1000) * 1e6)};
        while (nanosleep(&t, &t) < 0 && errno == EINTR)
                ;
}

static unsigned messages_per_read(void)
{
        unsigned n = 0;
        for (size_t i = 0; i < N_STEPS; i++)
                n += read_steps[i].messages;
        return n;
}

/* CPU microseconds per read of a process that only sleeps through the schedule. */
static double sleep_floor(unsigned reads, double interval_ms)
{
        double idle = interval_ms - read_span_ms();
        nap_ms(idle); /* the first gap is not from the measured stretch */
        double t0 = cpu_us();
        for (unsigned r = 0; r < reads; r++) {
                for (size_t i = 0; i < N_STEPS; i++)
                        nap_ms(i == 0 ? idle : read_steps[i].gap_ms);
        }
        return (cpu_us() - t0) / reads;
}

#define FLOOR_PATH      "/org/blupow/floor"
#define FLOOR_INTERFACE "org.blupow.Floor"

/* The sending side: one warm-up read, then `reads` reads, on the schedule. */
static int send_reads(unsigned reads, double interval_ms, int ready_fd)
{
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r = sd_bus_open_system(&bus);
        if (r < 0)
                return r;
        char go;
        if (read(ready_fd, &go, 1) != 1)
                return -EPIPE;
        /* About the size of a PropertiesChanged or a notification's bytes. */
        static const char payload[] = "/org/bluez/hci0/dev_60_98_66_00_00_00/service0010/char0011 "
                                      "org.bluez.Device1 Connected true ServicesResolved";
        double idle = interval_ms - read_span_ms();
        for (unsigned n = 0; n < reads + 1; n++) {
                for (size_t i = 0; i < N_STEPS; i++) {
                        nap_ms(i == 0 ? idle : read_steps[i].gap_ms);
                        for (unsigned m = 0; m < read_steps[i].messages; m++) {
                                r = sd_bus_emit_signal(bus, FLOOR_PATH, FLOOR_INTERFACE, "Tick", "s", payload);
                                if (r < 0)
                                        return r;
                        }
                        r = sd_bus_flush(bus);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

struct receiver {
        unsigned per_read, total, seen;
        double cpu_start, cpu_end;
};

static int on_tick(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        struct receiver *rc = userdata;
        const char *s;
        (void)error;
        int r = sd_bus_message_read(m, "s", &s);
        if (r < 0)
                return r;
        rc->seen++;
        if (rc->seen == rc->per_read)
                rc->cpu_start = cpu_us(); /* the warm-up read is done */
        if (rc->seen == rc->total) {
                rc->cpu_end = cpu_us();
                return sd_event_exit(sd_bus_get_event(sd_bus_message_get_bus(m)), 0);
        }
        return 0;
}

/* CPU microseconds per read of a process that receives the schedule's messages over D-Bus. */
static int sdbus_floor(unsigned reads, double interval_ms, double *out)
{
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r = sd_event_new(&event);
        if (r < 0)
                return r;
        r = sd_bus_open_system(&bus);
        if (r < 0)
                return r;
        r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return r;
        struct receiver rc = {.per_read = messages_per_read()};
        rc.total = rc.per_read * (reads + 1);
        r = sd_bus_match_signal(bus, NULL, NULL, FLOOR_PATH, FLOOR_INTERFACE, "Tick", on_tick, &rc);
        if (r < 0)
                return r;

        int ready[2];
        if (pipe(ready) < 0)
                return -errno;
        pid_t child = fork();
        if (child < 0)
                return -errno;
        if (child == 0) {
                close(ready[1]);
                _exit(send_reads(reads, interval_ms, ready[0]) < 0 ? 1 : 0);
        }
        close(ready[0]);
        /* The match is in place (sd_bus_match_signal waits for the bus's answer): start. */
        ssize_t w = write(ready[1], "g", 1);
        close(ready[1]);
        if (w != 1) {
                kill(child, SIGTERM);
                waitpid(child, NULL, 0);
                return -EPIPE;
        }
        r = sd_event_loop(event);
        int status = 0;
        waitpid(child, &status, 0);
        if (r < 0)
                return r;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return -EIO;
        *out = (rc.cpu_end - rc.cpu_start) / reads;
        return 0;
}

int main(int argc, char **argv)
{
        int reads = argc > 1 ? atoi(argv[1]) : 6;
        double interval_ms = argc > 2 ? atof(argv[2]) : 5000;
        if (reads <= 0 || interval_ms < read_span_ms() + 1) {
                fprintf(stderr, "usage: read-floor [READS > 0] [INTERVAL_MS > %.0f]\n", read_span_ms() + 1);
                return 2;
        }
        double sleep_us = sleep_floor((unsigned)reads, interval_ms);
        double sdbus_us = -1;
        int r = sdbus_floor((unsigned)reads, interval_ms, &sdbus_us);
        if (r < 0)
                fprintf(stderr, "read-floor: no sd-bus figure: %s\n", strerror(-r));
        printf("{\"reads\": %d, \"interval_ms\": %.0f, \"wakes_per_read\": %zu, \"sleep_us_per_read\": %.1f, "
               "\"sdbus_us_per_read\": %.1f}\n",
                reads, interval_ms, N_STEPS, sleep_us, sdbus_us);
        return r < 0 ? 1 : 0;
}
