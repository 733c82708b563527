/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "random-id.h"

int random_hex_secret(char *out, size_t n_bytes)
{
        uint8_t raw[64];
        int r = 0;
        if (n_bytes > sizeof raw)
                n_bytes = sizeof raw;
        if (getrandom(raw, n_bytes, GRND_NONBLOCK) != (ssize_t)n_bytes) {
                uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)out;
                for (size_t i = 0; i < n_bytes; i++) {
                        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                        raw[i] = (uint8_t)(seed >> 56);
                }
                r = -EAGAIN;
        }
        for (size_t i = 0; i < n_bytes; i++)
                snprintf(out + 2 * i, 3, "%02x", raw[i]);
        out[2 * n_bytes] = 0;
        return r;
}

void random_hex(char *out, size_t n_bytes)
{
        (void)random_hex_secret(out, n_bytes);
}
