/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <time.h>

#include "log.h"

static enum log_level max_level = LOG_LEVEL_INFO;

static const char *const level_names[] = {
        [LOG_LEVEL_ERROR] = "error",
        [LOG_LEVEL_WARNING] = "warning",
        [LOG_LEVEL_INFO] = "info",
        [LOG_LEVEL_DEBUG] = "debug",
        [LOG_LEVEL_TRACE] = "trace",
};

void log_set_level(enum log_level level)
{
        max_level = level;
}

enum log_level log_get_level(void)
{
        return max_level;
}

int log_level_from_string(const char *s)
{
        for (size_t i = 0; i < ELEMENTSOF(level_names); i++)
                if (streq(s, level_names[i]))
                        return (int)i;
        return -EINVAL;
}

int log_full_errno(enum log_level level, int error, const char *fmt, ...)
{
        int saved = errno;
        error = error < 0 ? -error : error;
        if (level > max_level)
                return -error;

        /* glibc's printf implements %m from errno: point errno at our error. */
        errno = error;
        char stamp[32];
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(stamp, sizeof stamp, "%H:%M:%S", &tm);

        va_list ap;
        va_start(ap, fmt);
        flockfile(stderr);
        fprintf(stderr, "%s.%03ld %s: ", stamp, ts.tv_nsec / 1000000L, level_names[level]);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        funlockfile(stderr);
        va_end(ap);
        errno = saved;
        return -error;
}
