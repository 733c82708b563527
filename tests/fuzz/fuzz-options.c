/* SPDX-License-Identifier: MIT */
/* libFuzzer: the add-on's options.json parser (what the Supervisor writes, or a user by hand). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = 0;
        struct options o;
        char err[256];
        options_init(&o);
        if (options_parse(&o, text, err, sizeof err) < 0 && !err[0])
                abort(); /* every refusal says why */
        options_done(&o);
        free(text);
        return 0;
}
