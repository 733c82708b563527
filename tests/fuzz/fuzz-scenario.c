/* SPDX-License-Identifier: MIT */
/* libFuzzer: blupow-sim's scenario parser (scenario files are user input to the simulator). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = 0;
        struct sim sim;
        memset(&sim, 0, sizeof sim);
        char err[256];
        if (sim_scenario_parse(&sim, text, err, sizeof err) < 0 && !err[0])
                abort();
        sim_free(&sim);
        free(text);
        return 0;
}
