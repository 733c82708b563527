/* SPDX-License-Identifier: MIT */
#pragma once

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f)   __attribute__((cleanup(f)))
#define _unused_       __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _pure_         __attribute__((pure))

#define ELEMENTSOF(x)              (sizeof(x) / sizeof((x)[0]))
#define sizeof_field(type, member) sizeof(((type *)0)->member)
#define MIN(a, b)                  ((a) < (b) ? (a) : (b))
#define MAX(a, b)                  ((a) > (b) ? (a) : (b))

static inline void freep(void *p)
{
        free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd)
{
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f)
{
        if (*f)
                fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

static inline void *steal_ptr(void *pp)
{
        void **p = pp;
        void *v = *p;
        *p = NULL;
        return v;
}
#define TAKE_PTR(p) steal_ptr(&(p))

static inline int steal_fd(int *fd)
{
        int v = *fd;
        *fd = -1;
        return v;
}
#define TAKE_FD(fd) steal_fd(&(fd))

static inline int streq(const char *a, const char *b)
{
        return strcmp(a, b) == 0;
}

static inline int startswith(const char *s, const char *prefix)
{
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

#define USEC_PER_SEC  1000000ULL
#define USEC_PER_MSEC 1000ULL
