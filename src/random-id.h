/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

/* Fills out with 2 × n_bytes lower-case hex digits of kernel randomness and a NUL; out holds
 * 2 × n_bytes + 1. Falls back to a time- and pid-seeded generator only when the kernel has no
 * entropy yet (early boot): unique enough to tell two installations apart, never a secret. */
void random_hex(char *out, size_t n_bytes);
/* Returns 0 when the randomness came from the kernel, -EAGAIN when it did not (never use the
 * result as a secret then). */
int random_hex_secret(char *out, size_t n_bytes);
