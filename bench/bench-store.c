/* SPDX-License-Identifier: MIT */
/* Storage budget: bytes written per stored sample and the time of a 7-day history query.
 * Seven days of a charge controller polled every 10 s go through the store's real code path
 * (one transaction per commit interval, hourly compaction, retention) with simulated time; the
 * bytes are this process's own I/O counters from /proc/self/io.
 *   bench-store DIR [COMMIT_INTERVAL]   (DIR on the disk to measure, not tmpfs; the interval in
 *                                        seconds, 60 as in the daemon, 0 for a commit per poll) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "frame-decode.h"
#include "store.h"

static void io_counters(long long *wchar, long long *write_bytes)
{
        FILE *f = fopen("/proc/self/io", "re");
        char line[128];
        while (f && fgets(line, sizeof line, f)) {
                sscanf(line, "wchar: %lld", wchar);
                sscanf(line, "write_bytes: %lld", write_bytes);
        }
        if (f)
                fclose(f);
}

static double mono(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
        char *end = NULL;
        unsigned long commit = argc > 2 ? strtoul(argv[2], &end, 10) : OPTIONS_DEFAULT_COMMIT;
        if (argc < 2 || argc > 3 || (end && (*end || commit > 600))) {
                fprintf(stderr, "usage: bench-store DIR [COMMIT_INTERVAL 0..600]\n");
                return 2;
        }
        char path[512], err[256];
        snprintf(path, sizeof path, "%s/bench-store.db", argv[1]);
        for (const char *const *sfx = (const char *const[]){"", "-wal", "-shm", NULL}; *sfx; sfx++) {
                char p[600];
                snprintf(p, sizeof p, "%s%s", path, *sfx);
                unlink(p);
        }
        static struct device dev;
        if (device_config_from_fields(
                    &dev.cfg, "Rover", "60:98:66:ED:FC:11", "controller", -1, "t", err, sizeof err) < 0)
                return 1;
        char *frames[] = {
                "12:ff03102020524e472d4354524c2d52565234303724",
                "256:"
                "ff03440064009000040e1900000000000000e8000400010000008f0091001100000001000000000000000000000"
                "22b000100000000137c00000000000101900000000000040000a3d2",
        };
        if (frames_decode(&renogy_controller, frames, 2, &dev.readings, err, sizeof err) < 0) {
                fprintf(stderr, "%s\n", err);
                return 1;
        }
        dev.have_readings = true;

        struct store *s;
        if (store_open(&s, path, 7, (unsigned)commit) < 0 || !store_health(s)->ok) {
                fprintf(stderr, "cannot open %s\n", path);
                return 1;
        }
        const int64_t second = 1000000, polls = 7 * 86400 / 10;
        int64_t now = now_realtime(), start = now - polls * 10 * second;
        long long w0 = 0, b0 = 0, w1 = 0, b1 = 0;
        io_counters(&w0, &b0);
        double t0 = mono();
        for (int64_t i = 0; i < polls; i++) {
                dev.readings_at = start + i * 10 * second;
                for (size_t k = 0; k < dev.readings.n; k++)
                        if (dev.readings.r[k].field->kind == KIND_NUMBER)
                                dev.readings.r[k].number += (double)((i * 7 + (int64_t)k) % 5 - 2) * 0.01;
                if (store_record(s, &dev) < 0) {
                        fprintf(stderr, "store_record failed at poll %lld\n", (long long)i);
                        return 1;
                }
                /* The daemon runs maintenance steps between polls. */
                if (i % 30 == 0 && !getenv("BENCH_NO_MAINTENANCE"))
                        store_maintenance_step(s, dev.readings_at);
        }
        while (store_maintenance_step(s, now) > 0)
                ;
        store_checkpoint(s);
        double write_s = mono() - t0;
        io_counters(&w1, &b1);
        int64_t samples = store_health(s)->samples_written;

        struct history_point *p = NULL;
        enum { RUNS = 50 };
        double q[RUNS];
        int n = 0;
        for (int r = 0; r < RUNS; r++) {
                double a = mono();
                n = store_history(s, dev.cfg.id, "battery_voltage", start, now + 1, 500, &p);
                q[r] = (mono() - a) * 1e3;
                free(p);
        }
        qsort(q, RUNS, sizeof q[0], cmp_double);
        printf("polls %lld, samples %lld (7 days at 10 s, %zu readings per poll, commit every %lu s), %.1f "
               "s "
               "to write\n",
                (long long)polls, (long long)samples, dev.readings.n, commit, write_s);
        printf("written by write(): %.1f MB = %.1f B/sample (target <= 64)\n", (double)(w1 - w0) / 1e6,
                (double)(w1 - w0) / (double)samples);
        printf("sent to the disk (write_bytes): %.1f MB = %.1f B/sample\n", (double)(b1 - b0) / 1e6,
                (double)(b1 - b0) / (double)samples);
        printf("database file: %.1f MB\n", (double)store_health(s)->bytes / 1e6);
        printf("7-day history of one key, 500 points (%d returned): median %.2f ms, max %.2f ms over %d "
               "runs "
               "(target < 10 ms)\n",
                n, q[RUNS / 2], q[RUNS - 1], RUNS);
        store_close(s);
        return 0;
}
