/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "daemon.h"
#include "id-cache.h"
#include "log.h"
#include "macro.h"
#include "random-id.h"
#include "store-codec.h"
#include "store.h"

#define SCHEMA_VERSION 5
#define HOUR_USEC      (3600LL * 1000000)
/* An hour is compacted once it is this long over, plus the commit interval: a poll that
 * started before the hour ended may still be recorded, and then wait in memory. */
#define COMPACT_GRACE_USEC (300LL * 1000000)

enum {
        STMT_KEY_GET,
        STMT_KEY_ADD,
        STMT_DEV_GET,
        STMT_DEV_ADD,
        STMT_POLL_ADD,
        STMT_POLL_LAST,
        STMT_INFO_SET,
        STMT_INFO_GET,
        STMT_KEY_NAME,
        STMT_BEGIN,
        STMT_COMMIT,
        STMT_ROLLBACK,
        _STMT_MAX,
};

static const char *const stmt_sql[_STMT_MAX] = {
        [STMT_KEY_GET] = "SELECT kid FROM keys WHERE dev = ? AND key = ?",
        [STMT_KEY_ADD] = "INSERT INTO keys (dev, key) VALUES (?, ?)",
        [STMT_DEV_GET] = "SELECT dev FROM device_ids WHERE id = ?",
        [STMT_DEV_ADD] = "INSERT INTO device_ids (id) VALUES (?)",
        [STMT_POLL_ADD] = "INSERT INTO polls (dev, t, data) VALUES (?, ?, ?)",
        [STMT_POLL_LAST] = "SELECT t, data FROM polls WHERE dev = ? ORDER BY rowid DESC LIMIT 1",
        [STMT_INFO_SET] = "INSERT INTO device_info (dev, model, serial, firmware) VALUES (?, ?, ?, ?) "
                          "ON CONFLICT(dev) DO UPDATE SET model = excluded.model, serial = excluded.serial, "
                          "firmware = excluded.firmware",
        [STMT_INFO_GET] = "SELECT model, serial, firmware FROM device_info WHERE dev = ?",
        [STMT_KEY_NAME] = "SELECT key FROM keys WHERE kid = ?",
        /* Prepared once: every poll is one transaction. */
        [STMT_BEGIN] = "BEGIN IMMEDIATE",
        [STMT_COMMIT] = "COMMIT",
        [STMT_ROLLBACK] = "ROLLBACK",
};

/* One poll's readings as they will be stored: keys are the register maps' own strings. */
struct pending_value {
        const char *key;
        int32_t value;
        uint8_t kind;
};

struct pending_poll {
        struct pending_poll *next;
        int64_t at;
        char dev_id[DEVICE_ID_MAX];
        char model[sizeof_field(struct device, model)], serial[sizeof_field(struct device, serial)],
                firmware[sizeof_field(struct device, firmware)];
        size_t n;
        struct pending_value v[];
};

/* Past this many polls waiting, a poll is written at once whatever the interval: 200 devices
 * every 4 minutes come to 50 a minute. */
#define PENDING_MAX 256

struct store {
        sqlite3 *db;
        char *path;
        unsigned history_days;
        sqlite3_stmt *stmt[_STMT_MAX];
        /* Row ids of device ids (scope -1) and of keys (scope: the device's row id). Rows of
         * device_ids and keys are never deleted, so an id stays right while this database is
         * open and no transaction that added it was rolled back. */
        struct id_cache ids;
        struct store_health health;
        /* Polls recorded but not yet written: one transaction every commit_usec carries them
         * all, oldest first. */
        struct pending_poll *pending, **pending_tail;
        int64_t commit_usec;
        void (*on_commit)(void *userdata);
        void *on_commit_userdata;
};

static int errno_of(int rc)
{
        switch (rc & 0xFF) {
        case SQLITE_OK:
        case SQLITE_DONE:
        case SQLITE_ROW:
                return 0;
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_READONLY:
                return -EROFS;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
                return -EBADMSG;
        case SQLITE_CANTOPEN:
                return -EACCES;
        default:
                return -EIO;
        }
}

static int exec(struct store *s, const char *sql)
{
        char *msg = NULL;
        int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
        if (rc != SQLITE_OK) {
                log_warning("store: %s: %s", sql, msg ? msg : sqlite3_errstr(rc));
                sqlite3_free(msg);
        }
        return errno_of(rc);
}

/* A failed write leaves the daemon serving from memory; health says why. */
static int write_failed(struct store *s, int rc, const char *what)
{
        int r = errno_of(rc);
        if (!s->health.memory_only)
                log_error("store: %s failed: %s; keeping readings in memory only", what,
                        sqlite3_errmsg(s->db));
        s->health.memory_only = true;
        snprintf(s->health.message, sizeof s->health.message, "%s failed: %s (%s)", what,
                sqlite3_errmsg(s->db),
                r == -ENOSPC  ? "disk full"
                : r == -EROFS ? "read-only"
                              : "I/O error");
        return r;
}

static void write_ok(struct store *s)
{
        if (s->health.memory_only)
                log_info("store: writes work again");
        s->health.memory_only = false;
        s->health.message[0] = 0;
}

static void pending_drop(struct store *s)
{
        while (s->pending) {
                struct pending_poll *next = s->pending->next;
                free(s->pending);
                s->pending = next;
        }
        s->pending_tail = &s->pending;
        s->health.pending_polls = 0;
}

static const char schema[] =
        "CREATE TABLE IF NOT EXISTS device_ids (dev INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE);"
        "CREATE TABLE IF NOT EXISTS keys (kid INTEGER PRIMARY KEY, dev INTEGER NOT NULL, key TEXT NOT NULL,"
        "  UNIQUE (dev, key));"
        /* One row per device per poll, appended: (u16 kid, u8 kind|decimals, i32 value) per reading. */
        "CREATE TABLE IF NOT EXISTS polls (dev INTEGER NOT NULL, t INTEGER NOT NULL, data BLOB NOT NULL);"
        /* An hour of one key: varint deltas of time (ms) and value (scaled integer). */
        "CREATE TABLE IF NOT EXISTS chunks (kid INTEGER NOT NULL, t0 INTEGER NOT NULL, t1 INTEGER NOT NULL,"
        "  decimals INTEGER NOT NULL, n INTEGER NOT NULL, data BLOB NOT NULL);"
        "CREATE INDEX IF NOT EXISTS chunks_by_key ON chunks (kid, t0);"
        "CREATE TABLE IF NOT EXISTS device_info (dev INTEGER PRIMARY KEY, model TEXT, serial TEXT, firmware "
        "TEXT);"
        "CREATE TABLE IF NOT EXISTS devices (id TEXT PRIMARY KEY, name TEXT NOT NULL, address TEXT NOT NULL,"
        "  family TEXT NOT NULL, modbus_id INTEGER NOT NULL);";

/* Format 1 rows (fixed seven bytes per reading, time deltas in chunks) to format 2
 * (store-codec.h): rewrites every poll row and chunk. One transaction, run once at start. */
static int rewrite_rows_2(struct store *s, const char *select, const char *update, bool chunks)
{
        sqlite3_stmt *sel = NULL, *upd = NULL;
        int rc = sqlite3_prepare_v2(s->db, select, -1, &sel, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_prepare_v2(s->db, update, -1, &upd, NULL);
        while (rc == SQLITE_OK && sqlite3_step(sel) == SQLITE_ROW) {
                const uint8_t *old = sqlite3_column_blob(sel, 1);
                size_t len = (size_t)sqlite3_column_bytes(sel, 1), out_len = 0;
                /* Format 2 is never longer per item than format 1 plus its bound's slack. */
                uint8_t *out = malloc(len * CHUNK_SAMPLE_MAX + 1);
                if (!out) {
                        rc = SQLITE_NOMEM;
                        break;
                }
                if (chunks) {
                        struct chunk_reader cr;
                        struct chunk_writer w;
                        int64_t t0 = sqlite3_column_int64(sel, 2) / 1000, t, v;
                        chunk_reader_init(&cr, old, len, t0, 1);
                        chunk_writer_init(&w, out, t0);
                        while (chunk_next(&cr, &t, &v) > 0)
                                chunk_put(&w, t, v);
                        out_len = w.len;
                } else {
                        struct poll_row_reader rd;
                        struct stored_reading r;
                        int64_t prev = 0;
                        poll_row_reader_init(&rd, old, len, 1);
                        while (poll_row_next(&rd, &r) > 0)
                                out_len += poll_row_put(out + out_len, &prev, &r);
                }
                sqlite3_reset(upd);
                sqlite3_bind_blob(upd, 1, out, (int)out_len, SQLITE_TRANSIENT);
                sqlite3_bind_int64(upd, 2, sqlite3_column_int64(sel, 0));
                rc = sqlite3_step(upd) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(s->db);
                free(out);
        }
        sqlite3_finalize(sel);
        sqlite3_finalize(upd);
        return rc == SQLITE_OK ? 0 : errno_of(rc);
}

static int migrate_2(struct store *s)
{
        int r = exec(s, "BEGIN");
        if (r == 0)
                r = rewrite_rows_2(s, "SELECT rowid, data FROM polls",
                        "UPDATE polls SET data = ? WHERE rowid = ?", false);
        if (r == 0)
                r = rewrite_rows_2(s, "SELECT rowid, data, t0 FROM chunks",
                        "UPDATE chunks SET data = ? WHERE rowid = ?", true);
        if (r == 0)
                r = exec(s, "PRAGMA user_version = 2; COMMIT");
        if (r < 0)
                exec(s, "ROLLBACK");
        return r;
}

static int migrate(struct store *s)
{
        sqlite3_stmt *st;
        int version = 0;
        if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
                return errno_of(sqlite3_errcode(s->db));
        if (sqlite3_step(st) == SQLITE_ROW)
                version = sqlite3_column_int(st, 0);
        int rc = sqlite3_finalize(st);
        if (rc != SQLITE_OK)
                return errno_of(rc);
        if (version > SCHEMA_VERSION) {
                log_error(
                        "store: database schema %d is newer than this BluPow (%d)", version, SCHEMA_VERSION);
                return -EPROTO;
        }
        /* Forward migrations, one step per version. */
        if (version < 1) {
                int r = exec(s, "BEGIN");
                if (r == 0)
                        r = exec(s, schema);
                if (r == 0)
                        r = exec(s, "PRAGMA user_version = 1; COMMIT");
                if (r < 0) {
                        exec(s, "ROLLBACK");
                        return r;
                }
        }
        if (version < 2) {
                int r = migrate_2(s);
                if (r < 0)
                        return r;
                if (version == 1)
                        log_info("store: rows rewritten in the compact format of schema 2");
        }
        if (version < 3) {
                /* Devices added through the API keep their own adapter and interval. */
                int r = exec(s, "BEGIN; ALTER TABLE devices ADD COLUMN adapter TEXT;"
                                "ALTER TABLE devices ADD COLUMN poll_interval INTEGER;"
                                "PRAGMA user_version = 3; COMMIT");
                if (r < 0) {
                        exec(s, "ROLLBACK");
                        return r;
                }
        }
        if (version < 4) {
                /* Facts about this installation, such as the instance id Home Assistant knows it by. */
                int r = exec(s,
                        "BEGIN; CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                        "PRAGMA user_version = 4; COMMIT");
                if (r < 0) {
                        exec(s, "ROLLBACK");
                        return r;
                }
        }
        if (version < 5) {
                /* A device added through the API keeps the model it was named with. */
                int r = exec(s, "BEGIN; ALTER TABLE devices ADD COLUMN model TEXT; PRAGMA user_version = 5; "
                                "COMMIT");
                if (r < 0) {
                        exec(s, "ROLLBACK");
                        return r;
                }
        }
        return 0;
}

static int check_integrity(struct store *s)
{
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(s->db, "PRAGMA integrity_check(1)", -1, &st, NULL);
        if (rc != SQLITE_OK)
                return errno_of(rc);
        int r = -EBADMSG;
        if (sqlite3_step(st) == SQLITE_ROW && streq((const char *)sqlite3_column_text(st, 0) ?: "", "ok"))
                r = 0;
        sqlite3_finalize(st);
        return r;
}

static int open_db(struct store *s)
{
        int rc = sqlite3_open_v2(
                s->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc != SQLITE_OK)
                return errno_of(rc);
        sqlite3_busy_timeout(s->db, 100);

        /* Small pages keep the per-poll append small; set before the first table exists. */
        exec(s, "PRAGMA page_size = 512");
        int r = exec(s, "PRAGMA journal_mode = WAL");
        if (r < 0)
                return r;
        exec(s, "PRAGMA synchronous = FULL");
        /* SQLite's default page cache grows to 2 MiB: more than the rest of the daemon's heap.
         * A week of history for a chart reads a few hundred KiB; the page cache of the OS holds
         * the rest. */
        exec(s, "PRAGMA cache_size = -512");
        exec(s, "PRAGMA wal_autocheckpoint = 4000");
        exec(s, "PRAGMA journal_size_limit = 2097152");
        if ((r = check_integrity(s)) < 0)
                return r;
        if ((r = migrate(s)) < 0)
                return r;
        for (int i = 0; i < _STMT_MAX; i++) {
                rc = sqlite3_prepare_v3(
                        s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[i], NULL);
                if (rc != SQLITE_OK)
                        return errno_of(rc);
        }
        return 0;
}

static void close_db(struct store *s)
{
        id_cache_clear(&s->ids);
        for (int i = 0; i < _STMT_MAX; i++)
                s->stmt[i] = (sqlite3_finalize(s->stmt[i]), NULL);
        if (s->db)
                sqlite3_close(s->db);
        s->db = NULL;
}

/* Moves a damaged database (and its WAL) aside with a timestamp; a fresh one starts. */
static int move_aside(struct store *s)
{
        char stamp[32];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
        snprintf(s->health.moved_to, sizeof s->health.moved_to, "%s.corrupt-%s", s->path, stamp);
        if (rename(s->path, s->health.moved_to) < 0 && errno != ENOENT)
                return -errno;
        char side[600];
        snprintf(side, sizeof side, "%s-wal", s->path);
        char dst[700];
        snprintf(dst, sizeof dst, "%s-wal", s->health.moved_to);
        rename(side, dst);
        snprintf(side, sizeof side, "%s-shm", s->path);
        unlink(side);
        return 0;
}

int store_open(struct store **ret, const char *path, unsigned history_days, unsigned commit_interval)
{
        struct store *s = calloc(1, sizeof *s);
        if (!s || !(s->path = strdup(path))) {
                free(s);
                return -ENOMEM;
        }
        s->history_days = history_days;
        s->commit_usec = (int64_t)commit_interval * 1000000;
        s->pending_tail = &s->pending;
        int r = open_db(s);
        if (r == -EBADMSG || r == -EPROTO) {
                close_db(s);
                if (move_aside(s) == 0) {
                        log_error("store: %s was damaged or unreadable; moved it to %s and started a new "
                                  "database",
                                path, s->health.moved_to);
                        s->health.recreated = true;
                        r = open_db(s);
                }
        }
        if (r < 0) {
                log_error_errno(r, "store: cannot open %s: %m; readings are kept in memory only", path);
                close_db(s);
                s->health.memory_only = true;
                snprintf(s->health.message, sizeof s->health.message, "cannot open %s: %s", path,
                        strerror(-r));
        }
        s->health.ok = s->db != NULL;
        *ret = s;
        return 0;
}

struct store *store_close(struct store *s)
{
        if (!s)
                return NULL;
        if (s->db)
                store_checkpoint(s);
        pending_drop(s);
        close_db(s);
        free(s->path);
        free(s);
        return NULL;
}

static bool instance_id_valid(const char *id)
{
        if (!id || strlen(id) != STORE_INSTANCE_ID_LEN)
                return false;
        for (const char *p = id; *p; p++)
                if (!isxdigit((unsigned char)*p) || isupper((unsigned char)*p))
                        return false;
        return true;
}

int store_instance_id(struct store *s, char out[static STORE_INSTANCE_ID_LEN + 1])
{
        out[0] = 0;
        if (s->db) {
                sqlite3_stmt *st;
                if (sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key = 'instance_id'", -1, &st,
                            NULL) == SQLITE_OK) {
                        if (sqlite3_step(st) == SQLITE_ROW &&
                                instance_id_valid((const char *)sqlite3_column_text(st, 0)))
                                strcpy(out, (const char *)sqlite3_column_text(st, 0));
                        sqlite3_finalize(st);
                }
                if (out[0])
                        return 0;
        }
        random_hex(out, STORE_INSTANCE_ID_LEN / 2);
        if (!s->db)
                return -EROFS;
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(
                s->db, "INSERT OR REPLACE INTO meta (key, value) VALUES ('instance_id', ?)", -1, &st, NULL);
        if (rc == SQLITE_OK) {
                sqlite3_bind_text(st, 1, out, -1, SQLITE_STATIC);
                rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(s->db);
                sqlite3_finalize(st);
        }
        return rc == SQLITE_OK ? 0 : errno_of(rc);
}

const struct store_health *store_health(struct store *s)
{
        struct stat st;
        s->health.bytes = 0;
        if (stat(s->path, &st) == 0)
                s->health.bytes += st.st_size;
        char wal[600];
        snprintf(wal, sizeof wal, "%s-wal", s->path);
        if (stat(wal, &st) == 0)
                s->health.bytes += st.st_size;
        return &s->health;
}

int store_checkpoint(struct store *s)
{
        if (!s->db)
                return -ENOTCONN;
        store_flush(s);
        int rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
        return errno_of(rc);
}

/* ---- ids ---- */

static int64_t lookup_or_add(struct store *s, int get, int add, int64_t dev, const char *text)
{
        int64_t v;
        if (id_cache_get(&s->ids, dev, text, &v))
                return v;
        sqlite3_stmt *g = s->stmt[get], *a = s->stmt[add];
        int i = 1;
        sqlite3_reset(g);
        if (dev >= 0)
                sqlite3_bind_int64(g, i++, dev);
        sqlite3_bind_text(g, i, text, -1, SQLITE_STATIC);
        if (sqlite3_step(g) == SQLITE_ROW) {
                v = sqlite3_column_int64(g, 0);
                sqlite3_reset(g);
        } else {
                sqlite3_reset(g);
                i = 1;
                sqlite3_reset(a);
                if (dev >= 0)
                        sqlite3_bind_int64(a, i++, dev);
                sqlite3_bind_text(a, i, text, -1, SQLITE_STATIC);
                int rc = sqlite3_step(a);
                sqlite3_reset(a);
                if (rc != SQLITE_DONE)
                        return errno_of(rc) ?: -EIO;
                v = sqlite3_last_insert_rowid(s->db);
        }
        (void)id_cache_put(&s->ids, dev, text, v); /* without memory, the next poll asks SQLite */
        return v;
}

static int64_t dev_id(struct store *s, const char *id)
{
        return lookup_or_add(s, STMT_DEV_GET, STMT_DEV_ADD, -1, id);
}

/* ---- sample encoding ---- */

static int enum_index(const struct renogy_reading *r)
{
        const struct renogy_field *f = r->field;
        for (unsigned i = 0; i < f->n_names; i++)
                if (f->names[i] && streq(f->names[i], r->text))
                        return (int)i;
        unsigned v;
        if (sscanf(r->text, "unknown(%u)", &v) == 1)
                return (int)v;
        return -1;
}

static int step_once(struct store *s, int stmt)
{
        sqlite3_stmt *st = s->stmt[stmt];
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        return rc;
}

/* The readings of a poll as stored values; text is kept in device_info, not here. */
static struct pending_poll *pending_new(const struct device *dev)
{
        struct pending_poll *p = malloc(sizeof *p + dev->readings.n * sizeof p->v[0]);
        if (!p)
                return NULL;
        *p = (struct pending_poll){.at = dev->readings_at};
        snprintf(p->dev_id, sizeof p->dev_id, "%s", dev->cfg.id);
        snprintf(p->model, sizeof p->model, "%s", dev->model);
        snprintf(p->serial, sizeof p->serial, "%s", dev->serial);
        snprintf(p->firmware, sizeof p->firmware, "%s", dev->firmware);
        for (size_t i = 0; i < dev->readings.n; i++) {
                const struct renogy_reading *r = &dev->readings.r[i];
                uint8_t kind;
                int64_t v;
                if (r->type == RV_NUMBER) {
                        kind = STORED_NUM | (r->decimals & 0x0F);
                        v = renogy_scaled(r->number, r->decimals);
                } else if (r->type == RV_BITS) {
                        kind = STORED_BITS;
                        v = (int32_t)r->bits;
                } else if (r->field->kind == KIND_FLAG) {
                        kind = STORED_FLAG;
                        v = streq(r->text, "on");
                } else if (r->field->kind == KIND_ENUM) {
                        kind = STORED_ENUM;
                        v = enum_index(r);
                        if (v < 0)
                                continue;
                } else
                        continue;
                if (v < INT32_MIN || v > INT32_MAX)
                        continue;
                p->v[p->n++] =
                        (struct pending_value){.key = r->field->key, .value = (int32_t)v, .kind = kind};
        }
        return p;
}

/* One poll's row, and its device info when that changed; inside the caller's transaction. */
static int write_poll(struct store *s, const struct pending_poll *p)
{
        uint8_t blob[RENOGY_MAX_READINGS * POLL_ROW_READING_MAX];
        size_t len = 0;
        int64_t prev_kid = 0;
        int64_t dv = dev_id(s, p->dev_id);
        if (dv < 0)
                return (int)dv;
        for (size_t i = 0; i < p->n; i++) {
                int64_t kid = lookup_or_add(s, STMT_KEY_GET, STMT_KEY_ADD, dv, p->v[i].key);
                if (kid < 0)
                        return (int)kid;
                len += poll_row_put(blob + len, &prev_kid,
                        &(struct stored_reading){.kid = kid, .kind = p->v[i].kind, .value = p->v[i].value});
        }
        sqlite3_stmt *st = s->stmt[STMT_POLL_ADD];
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, dv);
        sqlite3_bind_int64(st, 2, p->at);
        sqlite3_bind_blob(st, 3, blob, (int)len, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
                return -EIO;
        if (!p->model[0] && !p->serial[0] && !p->firmware[0])
                return 0;
        /* Only when it changed: most polls write nothing here. */
        sqlite3_stmt *g = s->stmt[STMT_INFO_GET];
        sqlite3_reset(g);
        sqlite3_bind_int64(g, 1, dv);
        bool same = sqlite3_step(g) == SQLITE_ROW &&
                    streq((const char *)sqlite3_column_text(g, 0) ?: "", p->model) &&
                    streq((const char *)sqlite3_column_text(g, 1) ?: "", p->serial) &&
                    streq((const char *)sqlite3_column_text(g, 2) ?: "", p->firmware);
        sqlite3_reset(g);
        if (same)
                return 0;
        sqlite3_stmt *u = s->stmt[STMT_INFO_SET];
        sqlite3_reset(u);
        sqlite3_bind_int64(u, 1, dv);
        sqlite3_bind_text(u, 2, p->model, -1, SQLITE_STATIC);
        sqlite3_bind_text(u, 3, p->serial, -1, SQLITE_STATIC);
        sqlite3_bind_text(u, 4, p->firmware, -1, SQLITE_STATIC);
        rc = sqlite3_step(u);
        sqlite3_reset(u);
        return rc == SQLITE_DONE ? 0 : -EIO;
}

int store_flush(struct store *s)
{
        if (!s->pending)
                return 0;
        if (!s->db) {
                pending_drop(s);
                return -ENOTCONN;
        }
        int64_t samples = 0, newest = 0;
        int rc = step_once(s, STMT_BEGIN);
        if (rc != SQLITE_DONE) {
                pending_drop(s); /* as a poll was lost before writes were batched: memory serves */
                return write_failed(s, rc, "BEGIN");
        }
        for (struct pending_poll *p = s->pending; p; p = p->next) {
                if (write_poll(s, p) < 0)
                        goto fail;
                samples += (int64_t)p->n;
                newest = MAX(newest, p->at);
        }
        rc = step_once(s, STMT_COMMIT);
        if (rc != SQLITE_DONE)
                goto fail;
        pending_drop(s);
        s->health.samples_written += samples;
        s->health.committed_until = MAX(s->health.committed_until, newest);
        write_ok(s);
        if (s->on_commit)
                s->on_commit(s->on_commit_userdata);
        return 0;
fail:
        rc = sqlite3_errcode(s->db);
        if (!sqlite3_get_autocommit(s->db))
                step_once(s, STMT_ROLLBACK);
        /* Ids added in this transaction are gone with it. */
        id_cache_clear(&s->ids);
        pending_drop(s);
        return write_failed(s, rc, "recording polls");
}

void store_on_commit(struct store *s, void (*fn)(void *userdata), void *userdata)
{
        s->on_commit = fn;
        s->on_commit_userdata = userdata;
}

/* Written when the oldest waiting poll is commit_usec old (a clock stepped back counts too),
 * so the disk sees one transaction per interval, not one per poll. */
static bool flush_due(const struct store *s, int64_t now)
{
        if (!s->pending)
                return false;
        int64_t age = now - s->pending->at;
        return age < 0 || age >= s->commit_usec || s->health.pending_polls >= PENDING_MAX;
}

int store_record(struct store *s, const struct device *dev)
{
        if (!s->db)
                return -ENOTCONN;
        struct pending_poll *p = pending_new(dev);
        if (!p)
                return store_flush(s) ?: -ENOMEM;
        *s->pending_tail = p;
        s->pending_tail = &p->next;
        s->health.pending_polls++;
        return flush_due(s, dev->readings_at) ? store_flush(s) : 0;
}

static const char *key_name(struct store *s, int64_t kid, char *buf, size_t size)
{
        sqlite3_stmt *st = s->stmt[STMT_KEY_NAME];
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, kid);
        const char *r = NULL;
        if (sqlite3_step(st) == SQLITE_ROW) {
                snprintf(buf, size, "%s", (const char *)sqlite3_column_text(st, 0) ?: "");
                r = buf;
        }
        sqlite3_reset(st);
        return r;
}

int store_restore_device(struct store *s, struct device *dev)
{
        if (!s->db)
                return -ENOTCONN;
        store_flush(s);
        sqlite3_stmt *g = s->stmt[STMT_DEV_GET];
        sqlite3_reset(g);
        sqlite3_bind_text(g, 1, dev->cfg.id, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(g) != SQLITE_ROW) {
                sqlite3_reset(g);
                return 0;
        }
        int64_t dv = sqlite3_column_int64(g, 0);
        sqlite3_reset(g);

        sqlite3_stmt *info = s->stmt[STMT_INFO_GET];
        sqlite3_reset(info);
        sqlite3_bind_int64(info, 1, dv);
        if (sqlite3_step(info) == SQLITE_ROW) {
                snprintf(dev->model, sizeof dev->model, "%s",
                        (const char *)sqlite3_column_text(info, 0) ?: "");
                snprintf(dev->serial, sizeof dev->serial, "%s",
                        (const char *)sqlite3_column_text(info, 1) ?: "");
                snprintf(dev->firmware, sizeof dev->firmware, "%s",
                        (const char *)sqlite3_column_text(info, 2) ?: "");
        }
        sqlite3_reset(info);
        device_choose_decoder(dev); /* the model kept may name the variant the poll was read as */

        sqlite3_stmt *st = s->stmt[STMT_POLL_LAST];
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, dv);
        if (sqlite3_step(st) != SQLITE_ROW) {
                sqlite3_reset(st);
                return 0;
        }
        int64_t t = sqlite3_column_int64(st, 0);
        const uint8_t *blob = sqlite3_column_blob(st, 1);
        size_t len = (size_t)sqlite3_column_bytes(st, 1);
        uint8_t copy[RENOGY_MAX_READINGS * POLL_ROW_READING_MAX];
        len = MIN(len, sizeof copy);
        if (blob)
                memcpy(copy, blob, len);
        sqlite3_reset(st);

        struct renogy_readings rd = {0};
        struct poll_row_reader row;
        struct stored_reading sr;
        poll_row_reader_init(&row, copy, len, 2);
        while (poll_row_next(&row, &sr) > 0) {
                uint8_t kind = sr.kind;
                int32_t v = sr.value;
                char key[64];
                if (!key_name(s, sr.kid, key, sizeof key))
                        continue;
                const struct renogy_field *f = renogy_field_find(dev->decoder, key);
                if (!f || rd.n >= RENOGY_MAX_READINGS)
                        continue;
                struct renogy_reading *r = &rd.r[rd.n];
                memset(r, 0, sizeof *r);
                r->field = f;
                switch (kind & 0xF0) {
                case STORED_NUM:
                        r->type = RV_NUMBER;
                        r->decimals = kind & 0x0F;
                        r->number = renogy_round((double)v / renogy_pow10(r->decimals), r->decimals);
                        break;
                case STORED_BITS:
                        r->type = RV_BITS;
                        r->bits = (uint32_t)v;
                        break;
                case STORED_FLAG:
                        r->type = RV_TEXT;
                        snprintf(r->text, sizeof r->text, "%s", v ? "on" : "off");
                        break;
                case STORED_ENUM:
                        r->type = RV_TEXT;
                        if (v >= 0 && (unsigned)v < f->n_names && f->names[v])
                                snprintf(r->text, sizeof r->text, "%s", f->names[v]);
                        else
                                snprintf(r->text, sizeof r->text, "unknown(%d)", v);
                        break;
                default:
                        continue;
                }
                rd.n++;
        }
        if (rd.n == 0)
                return 0;
        dev->readings = rd;
        dev->have_readings = true;
        dev->readings_at = t;
        dev->state = DEVICE_STALE; /* until a fresh poll */
        return 1;
}

/* ---- devices added through the API ---- */

int store_save_device(struct store *s, const struct device_config *cfg)
{
        if (!s->db)
                return -ENOTCONN;
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(s->db,
                "INSERT OR REPLACE INTO devices (id, name, address, family, modbus_id, adapter, "
                "poll_interval, model) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                -1, &st, NULL);
        if (rc != SQLITE_OK)
                return write_failed(s, rc, "saving a device");
        sqlite3_bind_text(st, 1, cfg->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, cfg->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, cfg->address, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, cfg->family->name, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 5, cfg->modbus_id);
        if (cfg->adapter[0])
                sqlite3_bind_text(st, 6, cfg->adapter, -1, SQLITE_STATIC);
        if (cfg->poll_interval)
                sqlite3_bind_int(st, 7, (int)cfg->poll_interval);
        if (cfg->model[0])
                sqlite3_bind_text(st, 8, cfg->model, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
                return write_failed(s, rc, "saving a device");
        return 0;
}

int store_delete_device(struct store *s, const char *id)
{
        if (!s->db)
                return -ENOTCONN;
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(s->db, "DELETE FROM devices WHERE id = ?", -1, &st, NULL);
        if (rc != SQLITE_OK)
                return errno_of(rc);
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? 0 : write_failed(s, rc, "removing a device");
}

int store_load_devices(struct store *s, struct device_config **ret, size_t *n)
{
        *ret = NULL;
        *n = 0;
        if (!s->db)
                return 0;
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(s->db,
                "SELECT id, name, address, family, modbus_id, adapter, poll_interval, model FROM devices "
                "ORDER BY rowid",
                -1, &st, NULL);
        if (rc != SQLITE_OK)
                return errno_of(rc);
        while (sqlite3_step(st) == SQLITE_ROW) {
                struct device_config c;
                char err[256];
                if (device_config_from_fields(&c, (const char *)sqlite3_column_text(st, 1),
                            (const char *)sqlite3_column_text(st, 2),
                            (const char *)sqlite3_column_text(st, 3),
                            /* the shunt is stored with id 0: "its default" */
                            sqlite3_column_int(st, 4) ?: -1, "stored device", err, sizeof err) < 0 ||
                        device_config_set_schedule(&c, (const char *)sqlite3_column_text(st, 5),
                                sqlite3_column_int(st, 6), "stored device", err, sizeof err) < 0 ||
                        device_config_set_model(&c, (const char *)sqlite3_column_text(st, 7),
                                "stored device", err, sizeof err) < 0) {
                        log_warning("store: ignoring a stored device: %s", err);
                        continue;
                }
                c.from_api = true;
                struct device_config *a = realloc(*ret, (*n + 1) * sizeof *a);
                if (!a)
                        break;
                *ret = a;
                a[(*n)++] = c;
        }
        sqlite3_finalize(st);
        return 0;
}

/* ---- compaction, retention ---- */

struct sample {
        int64_t t;
        int64_t v;
        uint8_t dec;
};

struct key_samples {
        int64_t kid;
        struct sample *s;
        size_t n, cap;
};

static int chunk_write(struct store *s, struct key_samples *ks, int64_t t0)
{
        uint8_t dec = 0;
        for (size_t i = 0; i < ks->n; i++)
                dec = MAX(dec, ks->s[i].dec);
        uint8_t *blob = malloc(ks->n * CHUNK_SAMPLE_MAX + 1);
        if (!blob)
                return -ENOMEM;
        struct chunk_writer w;
        chunk_writer_init(&w, blob, t0 / 1000);
        for (size_t i = 0; i < ks->n; i++) {
                int64_t v = ks->s[i].v;
                for (uint8_t k = ks->s[i].dec; k < dec; k++)
                        v *= 10;
                chunk_put(&w, ks->s[i].t / 1000, v);
        }
        size_t len = w.len;
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(s->db,
                "INSERT INTO chunks (kid, t0, t1, decimals, n, data) VALUES (?, ?, ?, ?, ?, ?)", -1, &st,
                NULL);
        if (rc == SQLITE_OK) {
                sqlite3_bind_int64(st, 1, ks->kid);
                sqlite3_bind_int64(st, 2, t0);
                sqlite3_bind_int64(st, 3, ks->s[ks->n - 1].t);
                sqlite3_bind_int(st, 4, dec);
                sqlite3_bind_int64(st, 5, (int64_t)ks->n);
                sqlite3_bind_blob(st, 6, blob, (int)len, SQLITE_STATIC);
                rc = sqlite3_step(st);
                sqlite3_finalize(st);
        }
        free(blob);
        return rc == SQLITE_DONE ? 0 : errno_of(rc) ?: -EIO;
}

/* Moves one finished device-hour of poll rows into per-key chunks: whole hours only, since each
 * chunk costs a row, an index entry and their pages, so a chunk per hour per key is what keeps the
 * writes per sample low. The newest row of each device stays: it holds the readings a restart
 * serves. */
static int compact_one(struct store *s, int64_t now)
{
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(s->db,
                "SELECT dev, MIN(t) FROM polls p WHERE t < ?1 AND rowid < (SELECT MAX(rowid) FROM polls q "
                "WHERE q.dev = p.dev) "
                "GROUP BY dev ORDER BY MIN(t) LIMIT 1",
                -1, &st, NULL);
        if (rc != SQLITE_OK)
                return errno_of(rc);
        int64_t done_before = (now - COMPACT_GRACE_USEC - s->commit_usec) / HOUR_USEC * HOUR_USEC;
        sqlite3_bind_int64(st, 1, done_before);
        if (sqlite3_step(st) != SQLITE_ROW) {
                sqlite3_finalize(st);
                return 0;
        }
        int64_t dv = sqlite3_column_int64(st, 0);
        int64_t t0 = sqlite3_column_int64(st, 1) / HOUR_USEC * HOUR_USEC;
        sqlite3_finalize(st);
        int64_t t1 = t0 + HOUR_USEC;

        struct key_samples *keys = NULL;
        size_t n_keys = 0;
        int r = -EIO;
        if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
                return write_failed(s, sqlite3_errcode(s->db), "compaction");
        rc = sqlite3_prepare_v2(s->db,
                "SELECT t, data FROM polls WHERE dev = ?1 AND t >= ?2 AND t < ?3 AND "
                "rowid < (SELECT MAX(rowid) FROM polls WHERE dev = ?1) ORDER BY rowid",
                -1, &st, NULL);
        if (rc != SQLITE_OK)
                goto out;
        sqlite3_bind_int64(st, 1, dv);
        sqlite3_bind_int64(st, 2, t0);
        sqlite3_bind_int64(st, 3, t1);
        while (sqlite3_step(st) == SQLITE_ROW) {
                int64_t t = sqlite3_column_int64(st, 0);
                const uint8_t *b = sqlite3_column_blob(st, 1);
                size_t len = (size_t)sqlite3_column_bytes(st, 1);
                struct poll_row_reader row;
                struct stored_reading sr;
                poll_row_reader_init(&row, b, len, 2);
                while (poll_row_next(&row, &sr) > 0) {
                        if ((sr.kind & 0xF0) != STORED_NUM)
                                continue; /* history is kept for numbers */
                        int64_t kid = sr.kid;
                        size_t k = 0;
                        while (k < n_keys && keys[k].kid != kid)
                                k++;
                        if (k == n_keys) {
                                struct key_samples *nk = realloc(keys, (n_keys + 1) * sizeof *nk);
                                if (!nk)
                                        goto out_stmt;
                                keys = nk;
                                keys[n_keys++] = (struct key_samples){.kid = kid};
                        }
                        struct key_samples *ks = &keys[k];
                        if (ks->n == ks->cap) {
                                size_t cap = ks->cap ? ks->cap * 2 : 64;
                                struct sample *ns = realloc(ks->s, cap * sizeof *ns);
                                if (!ns)
                                        goto out_stmt;
                                ks->s = ns;
                                ks->cap = cap;
                        }
                        ks->s[ks->n++] = (struct sample){.t = t, .v = sr.value, .dec = sr.kind & 0x0F};
                }
        }
        sqlite3_finalize(st);
        st = NULL;
        for (size_t k = 0; k < n_keys; k++)
                if (keys[k].n && (r = chunk_write(s, &keys[k], t0)) < 0)
                        goto out;
        rc = sqlite3_prepare_v2(s->db,
                "DELETE FROM polls WHERE dev = ?1 AND t >= ?2 AND t < ?3 AND rowid < (SELECT MAX(rowid) "
                "FROM polls WHERE dev = ?1)",
                -1, &st, NULL);
        if (rc != SQLITE_OK)
                goto out;
        sqlite3_bind_int64(st, 1, dv);
        sqlite3_bind_int64(st, 2, t0);
        sqlite3_bind_int64(st, 3, t1);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        st = NULL;
        if (rc != SQLITE_DONE)
                goto out;
        if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
                goto out;
        r = 1;
        goto done;
out_stmt:
        sqlite3_finalize(st);
out:
        if (r != 1) {
                int code = sqlite3_errcode(s->db);
                sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
                r = code == SQLITE_OK ? -ENOMEM : write_failed(s, code, "compaction");
        }
done:
        for (size_t k = 0; k < n_keys; k++)
                free(keys[k].s);
        free(keys);
        return r;
}

int store_maintenance_step(struct store *s, int64_t now)
{
        if (!s->db)
                return 0;
        if (flush_due(s, now))
                store_flush(s);
        int r = compact_one(s, now);
        if (r != 0)
                return r;
        /* Retention: at most 200 chunks per step, so no request waits on a long delete. */
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(s->db,
                "DELETE FROM chunks WHERE rowid IN (SELECT rowid FROM chunks WHERE t1 < ? LIMIT 200)", -1,
                &st, NULL);
        if (rc != SQLITE_OK)
                return errno_of(rc);
        sqlite3_bind_int64(st, 1, now - (int64_t)s->history_days * 86400 * 1000000);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
                return write_failed(s, rc, "retention");
        int deleted = sqlite3_changes(s->db);
        rc = sqlite3_prepare_v2(s->db,
                "DELETE FROM polls WHERE rowid IN (SELECT rowid FROM polls p WHERE t < ? AND "
                "rowid < (SELECT MAX(rowid) FROM polls q WHERE q.dev = p.dev) LIMIT 200)",
                -1, &st, NULL);
        if (rc == SQLITE_OK) {
                sqlite3_bind_int64(st, 1, now - (int64_t)s->history_days * 86400 * 1000000);
                sqlite3_step(st);
                deleted += sqlite3_changes(s->db);
                sqlite3_finalize(st);
        }
        return deleted > 0;
}

/* ---- history ---- */

struct buckets {
        int64_t since, width;
        unsigned n;
        struct history_point *p;
};

static void bucket_add(struct buckets *b, int64_t t, double v)
{
        if (t < b->since)
                return;
        uint64_t i = (uint64_t)(t - b->since) / (uint64_t)b->width;
        if (i >= b->n)
                return;
        struct history_point *p = &b->p[i];
        if (p->n == 0) {
                p->min = p->max = v;
                p->avg = 0;
        }
        p->min = MIN(p->min, v);
        p->max = MAX(p->max, v);
        p->avg += v;
        p->n++;
}

int store_history(struct store *s, const char *dev_id_text, const char *key, int64_t since, int64_t until,
        unsigned max_points, struct history_point **ret)
{
        *ret = NULL;
        if (!s->db)
                return -ENOTCONN;
        if (until <= since || max_points == 0)
                return -EINVAL;
        store_flush(s); /* the chart ends at the last poll, not the last commit */
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(s->db,
                "SELECT k.kid, d.dev FROM keys k JOIN device_ids d ON d.dev = k.dev WHERE d.id = ? AND "
                "k.key = ?",
                -1, &st, NULL);
        if (rc != SQLITE_OK)
                return errno_of(rc);
        sqlite3_bind_text(st, 1, dev_id_text, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_ROW) {
                sqlite3_finalize(st);
                return 0; /* nothing stored yet */
        }
        int64_t kid = sqlite3_column_int64(st, 0), dv = sqlite3_column_int64(st, 1);
        sqlite3_finalize(st);

        struct buckets b = {.since = since, .n = max_points};
        b.width = (until - since + max_points - 1) / max_points;
        if (b.width < 1)
                b.width = 1;
        b.p = calloc(max_points, sizeof *b.p);
        if (!b.p)
                return -ENOMEM;

        rc = sqlite3_prepare_v2(s->db,
                "SELECT t0, decimals, data FROM chunks WHERE kid = ? AND t0 < ? AND t1 >= ? ORDER BY t0", -1,
                &st, NULL);
        if (rc == SQLITE_OK) {
                sqlite3_bind_int64(st, 1, kid);
                sqlite3_bind_int64(st, 2, until);
                sqlite3_bind_int64(st, 3, since);
                while (sqlite3_step(st) == SQLITE_ROW) {
                        double scale = renogy_pow10((unsigned)sqlite3_column_int(st, 1));
                        struct chunk_reader cr;
                        chunk_reader_init(&cr, sqlite3_column_blob(st, 2),
                                (size_t)sqlite3_column_bytes(st, 2), sqlite3_column_int64(st, 0) / 1000, 2);
                        int64_t tms, v;
                        while (chunk_next(&cr, &tms, &v) > 0) {
                                int64_t t = tms * 1000;
                                if (t >= since && t < until)
                                        bucket_add(&b, t, (double)v / scale);
                        }
                }
                sqlite3_finalize(st);
        }
        rc = sqlite3_prepare_v2(
                s->db, "SELECT t, data FROM polls WHERE dev = ? AND t >= ? AND t < ?", -1, &st, NULL);
        if (rc == SQLITE_OK) {
                sqlite3_bind_int64(st, 1, dv);
                sqlite3_bind_int64(st, 2, since);
                sqlite3_bind_int64(st, 3, until);
                while (sqlite3_step(st) == SQLITE_ROW) {
                        int64_t t = sqlite3_column_int64(st, 0);
                        const uint8_t *d = sqlite3_column_blob(st, 1);
                        size_t len = (size_t)sqlite3_column_bytes(st, 1);
                        struct poll_row_reader row;
                        struct stored_reading sr;
                        poll_row_reader_init(&row, d, len, 2);
                        while (poll_row_next(&row, &sr) > 0)
                                if (sr.kid == kid && (sr.kind & 0xF0) == STORED_NUM)
                                        bucket_add(&b, t, (double)sr.value / renogy_pow10(sr.kind & 0x0F));
                }
                sqlite3_finalize(st);
        }
        unsigned n = 0;
        for (unsigned i = 0; i < b.n; i++)
                if (b.p[i].n) {
                        b.p[n] = b.p[i];
                        b.p[n].avg /= b.p[n].n;
                        b.p[n].t = since + (int64_t)i * b.width;
                        n++;
                }
        *ret = b.p;
        return (int)n;
}
