/* SPDX-License-Identifier: MIT */
/* What this machine charges a process for waking up, as a yardstick for the CPU figures of the
 * other benchmarks. A daemon that waits on a radio link wakes some 20-40 times per poll, mostly
 * after idle gaps of 5-300 ms. On bare metal a wake costs a few microseconds; in some virtual
 * machines the first touch of each 4 KiB page after an idle gap is charged to the process, and
 * a wake that touches a hundred pages costs hundreds of microseconds. The benchmarks print this
 * figure next to theirs so that runs on different machines, or days, can be read side by side.
 *   wake-cost [ROUNDS]   prints one JSON object: microseconds of CPU per wake, by gap and pages */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double cpu_us(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Sleeps `gap_ms`, then touches `pages` pages; returns CPU microseconds per round. */
static double measure(volatile char *mem, int gap_ms, int pages, int rounds)
{
        struct timespec gap = {gap_ms / 1000, (long)(gap_ms % 1000) * 1000000L};
        double t0 = cpu_us();
        for (int i = 0; i < rounds; i++) {
                nanosleep(&gap, NULL);
                for (int p = 0; p < pages; p++)
                        mem[(size_t)p * 4096]++;
        }
        return (cpu_us() - t0) / rounds;
}

int main(int argc, char **argv)
{
        int rounds = argc > 1 ? atoi(argv[1]) : 20;
        if (rounds <= 0) {
                fprintf(stderr, "usage: wake-cost [ROUNDS > 0]\n");
                return 2;
        }
        const int pages_max = 100;
        char *mem = mmap(
                NULL, (size_t)pages_max * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mem == MAP_FAILED)
                return 1;
        madvise(mem, (size_t)pages_max * 4096, MADV_NOHUGEPAGE);
        memset(mem, 1, (size_t)pages_max * 4096);
        printf("{\"rounds\": %d, \"us_per_wake\": {\"1ms_0p\": %.1f, \"60ms_0p\": %.1f, \"60ms_100p\": "
               "%.1f, "
               "\"300ms_100p\": %.1f}}\n",
                rounds, measure(mem, 1, 0, rounds * 5), measure(mem, 60, 0, rounds),
                measure(mem, 60, pages_max, rounds), measure(mem, 300, pages_max, rounds / 2 + 1));
        return 0;
}
