/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

/* The add-on's own token for changes: the Supervisor discovery hands it to the Home Assistant
 * integration, and `blupowd verify` inside the add-on presents it, where loopback is not
 * trusted. Kept in DATA_DIR/integration_token (0600), one line of 16 characters or more. */

/* Reads it into out (size bytes); -ENOENT when the file is missing or holds no usable token,
 * another negative errno when it cannot be read. */
int integration_token_read(const char *data_dir, char *out, size_t size);

/* Reads it, or makes a new one there (written whole, synced, renamed into place). */
int integration_token_load(const char *data_dir, char *out, size_t size);
