/* SPDX-License-Identifier: MIT */
/* libFuzzer: what the HTTP layer hands the API from a request: method and path through the
 * router, query times through their parser, the Authorization header through the access check.
 * Input: method NUL path NUL query-time NUL authorization. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *buf = malloc(size + 4);
        if (!buf)
                return 0;
        memcpy(buf, data, size);
        memset(buf + size, 0, 4);
        const char *method = buf;
        const char *path = method + strlen(method) + 1;
        const char *when = path + strlen(path) + 1;
        const char *auth = when + strlen(when) + 1;
        if (auth > buf + size + 3)
                auth = "";

        struct api_match m;
        api_route_match(method, path, &m);
        if (m.route != ROUTE_NONE && m.route != ROUTE_STATIC && !m.allow)
                abort(); /* an API route always knows its methods, for 405 */
        if (strlen(m.id) >= sizeof m.id)
                abort();
        bool bad = false;
        int64_t t = api_parse_time(when, -1, &bad);
        if (!bad && t != -1 && (t < 0 || t > (int64_t)4e15))
                abort();
        int r = api_check_change("203.0.113.9", auth, "token", false);
        if (r == 0 && (strncasecmp(auth, "Bearer ", 7) != 0 || strcmp(auth + 7, "token") != 0))
                abort(); /* only the exact token (the scheme is case-insensitive) opens changes */
        free(buf);
        return 0;
}
