/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "integration-token.h"
#include "log.h"
#include "macro.h"
#include "random-id.h"

#define TOKEN_MIN_LEN 16

static char *token_path(const char *data_dir)
{
        char *path = NULL;
        return asprintf(&path, "%s/integration_token", data_dir) < 0 ? NULL : path;
}

int integration_token_read(const char *data_dir, char *out, size_t size)
{
        _cleanup_free_ char *path = token_path(data_dir);
        if (!path)
                return -ENOMEM;
        out[0] = 0;
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f)
                return -errno;
        if (!fgets(out, (int)size, f))
                out[0] = 0;
        out[strcspn(out, " \t\r\n")] = 0;
        if (strlen(out) >= TOKEN_MIN_LEN)
                return 0;
        out[0] = 0;
        return -ENOENT;
}

int integration_token_load(const char *data_dir, char *out, size_t size)
{
        int r = integration_token_read(data_dir, out, size);
        if (r == 0)
                return 0;
        _cleanup_free_ char *path = token_path(data_dir);
        if (!path)
                return -ENOMEM;
        if (r == -ENOENT && access(path, F_OK) == 0)
                log_warning("%s holds no usable token (%d characters or more); making a new one", path,
                        TOKEN_MIN_LEN);
        char token[33];
        if (random_hex_secret(token, 16) < 0)
                return -EAGAIN; /* no kernel entropy yet: no token rather than a guessable one */
        _cleanup_free_ char *tmp = NULL;
        if (asprintf(&tmp, "%s.new", path) < 0)
                return -ENOMEM;
        _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        size_t len = strlen(token);
        bool ok = write(fd, token, len) == (ssize_t)len && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
        if (!ok || rename(tmp, path) < 0) {
                r = ok ? -errno : -EIO;
                unlink(tmp);
                return r;
        }
        snprintf(out, size, "%s", token);
        return 0;
}
