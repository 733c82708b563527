/* SPDX-License-Identifier: MIT */
#pragma once

#include "macro.h"

enum log_level {
        LOG_LEVEL_ERROR,
        LOG_LEVEL_WARNING,
        LOG_LEVEL_INFO,
        LOG_LEVEL_DEBUG,
        LOG_LEVEL_TRACE,
};

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
int log_level_from_string(const char *s);

/* Logs and returns -abs(error) so that callers can write `return log_error_errno(r, ...)`.
 * "%m" in the format expands to strerror(error). */
int log_full_errno(enum log_level level, int error, const char *fmt, ...) _printf_(3, 4);

#define log_error(...)            log_full_errno(LOG_LEVEL_ERROR, 0, __VA_ARGS__)
#define log_warning(...)          log_full_errno(LOG_LEVEL_WARNING, 0, __VA_ARGS__)
#define log_info(...)             log_full_errno(LOG_LEVEL_INFO, 0, __VA_ARGS__)
#define log_debug(...)            log_full_errno(LOG_LEVEL_DEBUG, 0, __VA_ARGS__)
#define log_trace(...)            log_full_errno(LOG_LEVEL_TRACE, 0, __VA_ARGS__)
#define log_error_errno(e, ...)   log_full_errno(LOG_LEVEL_ERROR, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_LEVEL_WARNING, (e), __VA_ARGS__)
#define log_info_errno(e, ...)    log_full_errno(LOG_LEVEL_INFO, (e), __VA_ARGS__)
#define log_debug_errno(e, ...)   log_full_errno(LOG_LEVEL_DEBUG, (e), __VA_ARGS__)
