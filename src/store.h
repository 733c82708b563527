/* SPDX-License-Identifier: MIT */
#pragma once

/* SQLite store: devices added through the API, every numeric sample, and the last readings
 * for a restart. Written for SD cards: polls wait in memory and go to disk together, one small
 * append per commit interval (page size 512, WAL, synchronous=FULL, so that a commit that
 * returned survives a power cut), and are compacted after each whole hour into per-key chunks
 * of delta-encoded samples. The byte formats of rows and
 * chunks are in store-codec.h. */

#include <stdbool.h>
#include <stdint.h>

#include "options.h"

struct device;
struct store;

struct store_health {
        bool ok;          /* the database works */
        bool memory_only; /* writes fail (disk full, read-only): serving from memory */
        bool recreated;   /* a damaged file was moved aside at start */
        char moved_to[512];
        char message[256];
        int64_t samples_written;
        unsigned pending_polls; /* recorded, not yet on disk */
        int64_t bytes;          /* database + WAL size */
        /* Realtime µs of the newest poll the last commit wrote: every poll up to it is on the
         * disk (synchronous = FULL), 0 before the first commit. */
        int64_t committed_until;
};

struct history_point {
        int64_t t; /* bucket start, realtime µs */
        double min, avg, max;
        unsigned n;
};

/* commit_interval: seconds a recorded poll may wait in memory before it is written (0: at
 * once). A crash loses at most that much history; a clean stop loses nothing. */
int store_open(struct store **ret, const char *path, unsigned history_days, unsigned commit_interval);
struct store *store_close(struct store *s);
const struct store_health *store_health(struct store *s);

/* Queues every reading of the device's last poll; writes the queue in one transaction when
 * its oldest poll is commit_interval old. */
int store_record(struct store *s, const struct device *dev);
/* Writes every queued poll now. History, restore, checkpoint and close do this first. */
int store_flush(struct store *s);
/* fn runs after every transaction that wrote queued polls: each poll recorded before it is on
 * the disk then (the energy counters the API shows follow it). */
void store_on_commit(struct store *s, void (*fn)(void *userdata), void *userdata);
/* Puts the last stored readings back into dev (marked by their time). */
int store_restore_device(struct store *s, struct device *dev);

/* The id Home Assistant knows this installation by: 32 lower-case hex digits, made once and
 * kept in the database. Fills out even when it cannot be kept (memory only: -EROFS, or the
 * write's error); it then lasts until the daemon stops. */
#define STORE_INSTANCE_ID_LEN 32
int store_instance_id(struct store *s, char out[static STORE_INSTANCE_ID_LEN + 1]);

int store_save_device(struct store *s, const struct device_config *cfg);
int store_delete_device(struct store *s, const char *id);
int store_load_devices(struct store *s, struct device_config **ret, size_t *n);

/* Samples of one key in [since, until), downsampled to at most max_points buckets (min, avg,
 * max per bucket). Returns the number of points (≥ 0) or a negative errno. */
int store_history(struct store *s, const char *dev_id, const char *key, int64_t since, int64_t until,
        unsigned max_points, struct history_point **ret);

/* Writes the queue when it is due, then compaction and retention in small steps; returns 1 if
 * there is more to do, 0 when idle. Run at least every minute. */
int store_maintenance_step(struct store *s, int64_t now);
/* Writes everything to the main file (backups, shutdown). */
int store_checkpoint(struct store *s);
