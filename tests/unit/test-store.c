/* SPDX-License-Identifier: MIT */
/* The SQLite store: restart, compaction and history, damaged files, read-only disks. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sqlite3.h>
#include <unistd.h>

#include "daemon.h"
#include "frame-decode.h"
#include "store.h"
#include "run-suite.h"

static char dir[64], path[128];

static void setup(void)
{
        snprintf(dir, sizeof dir, "/tmp/blupow-store.XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(dir));
        snprintf(path, sizeof path, "%s/blupow.db", dir);
}

static void teardown(void)
{
        char cmd[128];
        snprintf(cmd, sizeof cmd, "chmod -R u+w %s; rm -rf %s", dir, dir);
        if (system(cmd) != 0)
                fprintf(stderr, "cleanup failed\n");
}

static struct device *rover(void)
{
        static struct device dev;
        memset(&dev, 0, sizeof dev);
        char err[256];
        ck_assert_int_eq(device_config_from_fields(&dev.cfg, "Rover", "60:98:66:ED:FC:11", "controller", -1,
                                 "t", err, sizeof err),
                0);
        char *frames[] = {
                "12:ff03102020524e472d4354524c2d52565234303724",
                "256:"
                "ff03440064009000040e1900000000000000e8000400010000008f0091001100000001000000000000000000000"
                "22b000100000000137c00000000000101900000000000040000a3d2",
        };
        ck_assert_int_eq(frames_decode(&renogy_controller, frames, 2, &dev.readings, err, sizeof err), 0);
        dev.have_readings = true;
        snprintf(dev.model, sizeof dev.model, "RNG-CTRL-RVR40");
        return &dev;
}

START_TEST(restart_serves_the_last_readings)
{
        struct store *s;
        ck_assert_int_eq(store_open(&s, path, 7, 0), 0);
        ck_assert(store_health(s)->ok);
        struct device *dev = rover();
        dev->readings_at = now_realtime() - 5000000;
        ck_assert_int_eq(store_record(s, dev), 0);
        struct renogy_readings before = dev->readings;
        store_close(s);

        ck_assert_int_eq(store_open(&s, path, 7, 0), 0);
        struct device fresh = {.cfg = dev->cfg};
        ck_assert_int_eq(store_restore_device(s, &fresh), 1);
        ck_assert(fresh.have_readings);
        ck_assert_int_eq(fresh.readings_at, dev->readings_at);
        ck_assert_int_eq(fresh.state, DEVICE_STALE);
        ck_assert_str_eq(fresh.model, "RNG-CTRL-RVR40");
        size_t compared = 0;
        for (size_t i = 0; i < before.n; i++) {
                const struct renogy_reading *a = &before.r[i];
                if (a->field->kind == KIND_TEXT)
                        continue;
                const struct renogy_reading *b = renogy_readings_get(&fresh.readings, a->field->key);
                ck_assert_msg(b, "%s not restored", a->field->key);
                if (a->type == RV_NUMBER)
                        ck_assert_double_eq_tol(a->number, b->number, 1e-9);
                else if (a->type == RV_BITS)
                        ck_assert_uint_eq(a->bits, b->bits);
                else
                        ck_assert_str_eq(a->text, b->text);
                compared++;
        }
        ck_assert_uint_gt(compared, 30);
        store_close(s);
}
END_TEST

START_TEST(history_across_compaction)
{
        struct store *s;
        ck_assert_int_eq(store_open(&s, path, 7, 0), 0);
        struct device *dev = rover();
        int64_t now = now_realtime();
        /* Three hours of 10-second samples with a known voltage ramp. */
        for (int i = 0; i < 3 * 360; i++) {
                dev->readings_at = now - 3LL * 3600 * 1000000 + (int64_t)i * 10 * 1000000;
                for (size_t k = 0; k < dev->readings.n; k++)
                        if (strcmp(dev->readings.r[k].field->key, "battery_voltage") == 0)
                                dev->readings.r[k].number = 12.0 + (i % 20) * 0.1;
                ck_assert_int_eq(store_record(s, dev), 0);
        }
        int steps = 0;
        while (store_maintenance_step(s, now) > 0 && steps < 100)
                steps++;
        ck_assert_int_ge(steps, 2); /* at least two device-hours were compacted */
        struct history_point *p;
        int n = store_history(
                s, dev->cfg.id, "battery_voltage", now - 4LL * 3600 * 1000000, now + 1, 90, &p);
        ck_assert_int_gt(n, 60);
        ck_assert_int_le(n, 90);
        unsigned total = 0;
        for (int i = 0; i < n; i++) {
                ck_assert(p[i].min <= p[i].avg + 1e-9 && p[i].avg <= p[i].max + 1e-9);
                ck_assert(p[i].min >= 12.0 - 1e-9 && p[i].max <= 13.9 + 1e-9);
                total += p[i].n;
        }
        ck_assert_uint_eq(total, 3 * 360);
        free(p);
        ck_assert_int_eq(store_history(s, dev->cfg.id, "no_such_key", now - 1000000, now, 10, &p), 0);
        free(p);
        /* Retention: with one day kept, samples older than a day are purged. */
        store_close(s);
        ck_assert_int_eq(store_open(&s, path, 1, 0), 0);
        while (store_maintenance_step(s, now + 2LL * 86400 * 1000000) > 0)
                ;
        n = store_history(s, dev->cfg.id, "battery_voltage", now - 4LL * 3600 * 1000000, now + 1, 90, &p);
        ck_assert_int_le(n, 1); /* only the newest poll row stays, for a restart */
        free(p);
        store_close(s);
}
END_TEST

START_TEST(damaged_file_moved_aside)
{
        int fd = open(path, O_WRONLY | O_CREAT, 0644);
        ck_assert_int_ge(fd, 0);
        const char junk[] = "this is not an SQLite database, just some text on an SD card.........";
        for (int i = 0; i < 200; i++)
                ck_assert_int_eq(write(fd, junk, sizeof junk), (int)sizeof junk);
        close(fd);
        struct store *s;
        ck_assert_int_eq(store_open(&s, path, 7, 0), 0);
        const struct store_health *h = store_health(s);
        ck_assert(h->ok);
        ck_assert(h->recreated);
        struct stat st;
        ck_assert_int_eq(stat(h->moved_to, &st), 0);
        ck_assert_ptr_nonnull(strstr(h->moved_to, ".corrupt-"));
        ck_assert_int_eq(store_record(s, rover()), 0);
        store_close(s);
}
END_TEST

/* A place the database cannot live (root ignores file modes, so /proc stands in for a
 * read-only disk): the store says so and the daemon keeps serving from memory. */
START_TEST(unwritable_place_keeps_serving)
{
        struct store *s;
        ck_assert_int_eq(store_open(&s, "/proc/blupow-no-such-dir/blupow.db", 7, 0), 0);
        const struct store_health *h = store_health(s);
        ck_assert(!h->ok);
        ck_assert(h->memory_only);
        ck_assert_ptr_nonnull(strstr(h->message, "cannot open"));
        ck_assert_int_eq(store_record(s, rover()), -ENOTCONN);
        store_close(s);
}
END_TEST

/* A database written by BluPow 0.2 (schema 1: seven bytes per reading, time deltas in chunks)
 * opens in the new format with its last readings and its history intact. */
START_TEST(schema_1_database_is_migrated)
{
        struct device *dev = rover();
        int64_t hour = 3600LL * 1000000, t0 = (now_realtime() / hour - 3) * hour;
        sqlite3 *db;
        ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
        char sql[2048];
        snprintf(sql, sizeof sql,
                "PRAGMA page_size = 512; PRAGMA journal_mode = WAL;"
                "CREATE TABLE device_ids (dev INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE);"
                "CREATE TABLE keys (kid INTEGER PRIMARY KEY, dev INTEGER NOT NULL, key TEXT NOT NULL,"
                "  UNIQUE (dev, key));"
                "CREATE TABLE polls (dev INTEGER NOT NULL, t INTEGER NOT NULL, data BLOB NOT NULL);"
                "CREATE TABLE chunks (kid INTEGER NOT NULL, t0 INTEGER NOT NULL, t1 INTEGER NOT NULL,"
                "  decimals INTEGER NOT NULL, n INTEGER NOT NULL, data BLOB NOT NULL);"
                "CREATE INDEX chunks_by_key ON chunks (kid, t0);"
                "CREATE TABLE device_info (dev INTEGER PRIMARY KEY, model TEXT, serial TEXT, firmware TEXT);"
                "CREATE TABLE devices (id TEXT PRIMARY KEY, name TEXT NOT NULL, address TEXT NOT NULL,"
                "  family TEXT NOT NULL, modbus_id INTEGER NOT NULL);"
                "INSERT INTO devices VALUES ('shed', 'Shed', 'C4:D3:6A:00:11:22', 'shunt', 0);"
                "INSERT INTO device_ids VALUES (1, '%s');"
                "INSERT INTO keys VALUES (1, 1, 'battery_voltage'), (2, 1, 'load_status');"
                /* battery 13.4 V (one decimal), load on */
                "INSERT INTO polls VALUES (1, %lld, x'0001010000008600022000000001');"
                /* an hour earlier: 12.0 V at t0 + 5 ms, 11.7 V ten seconds later */
                "INSERT INTO chunks VALUES (1, %lld, %lld, 1, 2, x'05f00190"
                "4e05');"
                "PRAGMA user_version = 1;",
                dev->cfg.id, (long long)(t0 + 2 * hour), (long long)t0, (long long)(t0 + 10005000));
        char *err = NULL;
        ck_assert_msg(sqlite3_exec(db, sql, NULL, NULL, &err) == SQLITE_OK, "%s", err ?: "");
        sqlite3_close(db);

        struct store *s;
        ck_assert_int_eq(store_open(&s, path, 7, 0), 0);
        ck_assert(store_health(s)->ok);
        ck_assert(!store_health(s)->recreated);
        struct device fresh = {.cfg = dev->cfg};
        ck_assert_int_eq(store_restore_device(s, &fresh), 1);
        const struct renogy_reading *v = renogy_readings_get(&fresh.readings, "battery_voltage");
        ck_assert_ptr_nonnull(v);
        ck_assert_double_eq_tol(v->number, 13.4, 1e-9);
        const struct renogy_reading *load = renogy_readings_get(&fresh.readings, "load_status");
        ck_assert_ptr_nonnull(load);
        ck_assert_str_eq(load->text, "on");
        struct history_point *p;
        int n = store_history(s, dev->cfg.id, "battery_voltage", t0, t0 + 3 * hour, 3 * 360, &p);
        ck_assert_int_eq(n, 3);
        ck_assert_int_eq(p[0].t, t0);
        ck_assert_double_eq_tol(p[0].avg, 12.0, 1e-9);
        ck_assert_double_eq_tol(p[1].avg, 11.7, 1e-9);
        ck_assert_double_eq_tol(p[2].avg, 13.4, 1e-9);
        free(p);
        /* New polls go on in the new format next to the migrated ones. */
        dev->readings_at = t0 + 2 * hour + 10 * 1000000;
        ck_assert_int_eq(store_record(s, dev), 0);
        /* A device added through the API before schema 3 is kept, with the global adapter and
         * interval; one added now keeps its own. */
        struct device_config *cfgs;
        size_t n_cfgs;
        ck_assert_int_eq(store_load_devices(s, &cfgs, &n_cfgs), 0);
        ck_assert_uint_eq(n_cfgs, 1);
        ck_assert_str_eq(cfgs[0].id, "shed");
        ck_assert_str_eq(cfgs[0].adapter, "");
        ck_assert_uint_eq(cfgs[0].poll_interval, 0);
        ck_assert_str_eq(cfgs[0].model, "");
        free(cfgs);
        struct device_config van;
        char msg[256];
        ck_assert_int_eq(device_config_from_fields(
                                 &van, "Van", "60:98:66:ED:FC:12", "controller", -1, "t", msg, sizeof msg),
                0);
        ck_assert_int_eq(device_config_set_schedule(&van, "hci1", 120, "t", msg, sizeof msg), 0);
        ck_assert_int_eq(device_config_set_model(&van, "RNG-CTRL-RVR40", "t", msg, sizeof msg), 0);
        ck_assert_int_eq(store_save_device(s, &van), 0);
        ck_assert_int_eq(store_load_devices(s, &cfgs, &n_cfgs), 0);
        ck_assert_uint_eq(n_cfgs, 2);
        ck_assert_str_eq(cfgs[1].adapter, "hci1");
        ck_assert_uint_eq(cfgs[1].poll_interval, 120);
        ck_assert_str_eq(cfgs[1].model, "RNG-CTRL-RVR40");
        free(cfgs);
        /* A model that is not one a device prints is refused, the one set before kept. */
        ck_assert_int_eq(device_config_set_model(&van, "RIV 4835", "t", msg, sizeof msg), -EINVAL);
        ck_assert_str_eq(van.model, "RNG-CTRL-RVR40");
        ck_assert_ptr_nonnull(strstr(msg, "t.model"));
        store_close(s);
        ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
        sqlite3_stmt *st;
        ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
        ck_assert_int_eq(sqlite3_column_int(st, 0), 5);
        sqlite3_finalize(st);
        sqlite3_close(db);
}
END_TEST

/* Home Assistant keys its config entry by this id: made once, the same after every restart,
 * different for another database; a store that cannot keep it still gives one, and says so. */
START_TEST(instance_id_is_made_once_and_kept)
{
        struct store *s;
        char first[STORE_INSTANCE_ID_LEN + 1], again[STORE_INSTANCE_ID_LEN + 1];
        ck_assert_int_eq(store_open(&s, path, 7, 0), 0);
        ck_assert_int_eq(store_instance_id(s, first), 0);
        ck_assert_uint_eq(strlen(first), STORE_INSTANCE_ID_LEN);
        ck_assert_uint_eq(strspn(first, "0123456789abcdef"), STORE_INSTANCE_ID_LEN);
        ck_assert_int_eq(store_instance_id(s, again), 0);
        ck_assert_str_eq(first, again);
        store_close(s);
        ck_assert_int_eq(store_open(&s, path, 7, 0), 0);
        ck_assert_int_eq(store_instance_id(s, again), 0);
        ck_assert_str_eq(first, again);
        store_close(s);

        char other_path[160];
        snprintf(other_path, sizeof other_path, "%s/other.db", dir);
        ck_assert_int_eq(store_open(&s, other_path, 7, 0), 0);
        ck_assert_int_eq(store_instance_id(s, again), 0);
        ck_assert_str_ne(first, again);
        store_close(s);

        ck_assert_int_eq(store_open(&s, "/proc/blupow-no-such-dir/blupow.db", 7, 0), 0);
        ck_assert_int_eq(store_instance_id(s, again), -EROFS);
        ck_assert_uint_eq(strlen(again), STORE_INSTANCE_ID_LEN);
        store_close(s);
}
END_TEST

/* Rows of polls on disk, as another reader of the file sees them. */
static int rows_on_disk(void)
{
        sqlite3 *db;
        ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        sqlite3_stmt *st;
        ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM polls", -1, &st, NULL), SQLITE_OK);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
        int n = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        sqlite3_close(db);
        return n;
}

static void record_at(struct store *s, struct device *dev, int64_t t)
{
        dev->readings_at = t;
        ck_assert_int_eq(store_record(s, dev), 0);
}

#define SEC 1000000LL

/* A store that writes polls a minute after the oldest waiting one. */
static struct store *open_batched(void)
{
        struct store *s;
        ck_assert_int_eq(store_open(&s, path, 7, 60), 0);
        return s;
}

START_TEST(polls_wait_for_the_commit_interval)
{
        struct store *s = open_batched();
        struct device *dev = rover();
        int64_t t0 = now_realtime() - 3600 * SEC;
        for (int i = 0; i < 6; i++)
                record_at(s, dev, t0 + i * 10 * SEC);
        ck_assert_int_eq(rows_on_disk(), 0);
        ck_assert_uint_eq(store_health(s)->pending_polls, 6);
        ck_assert_int_eq(store_health(s)->samples_written, 0);
        /* The poll that finds the oldest waiting one 60 s old writes all seven together. */
        record_at(s, dev, t0 + 60 * SEC);
        ck_assert_int_eq(rows_on_disk(), 7);
        ck_assert_uint_eq(store_health(s)->pending_polls, 0);
        ck_assert_int_gt(store_health(s)->samples_written, 7 * 30);
        /* A clock stepped back does not hold polls back. */
        record_at(s, dev, t0 + 70 * SEC);
        ck_assert_int_eq(rows_on_disk(), 7);
        record_at(s, dev, t0 - 3600 * SEC);
        ck_assert_int_eq(rows_on_disk(), 9);
        store_close(s);
}
END_TEST

START_TEST(maintenance_history_and_close_write_what_waits)
{
        struct store *s = open_batched();
        struct device *dev = rover();
        int64_t t0 = now_realtime() - 600 * SEC;
        record_at(s, dev, t0);
        /* Polls stopped (the module is off): maintenance writes the poll once it is due. */
        ck_assert_int_ge(store_maintenance_step(s, t0 + 30 * SEC), 0);
        ck_assert_int_eq(rows_on_disk(), 0);
        ck_assert_int_ge(store_maintenance_step(s, t0 + 61 * SEC), 0);
        ck_assert_int_eq(rows_on_disk(), 1);
        /* A chart ends at the last poll, waiting or not. */
        record_at(s, dev, t0 + 100 * SEC);
        struct history_point *p;
        int n = store_history(s, dev->cfg.id, "battery_voltage", t0, t0 + 200 * SEC, 200, &p);
        ck_assert_int_eq(n, 2);
        ck_assert_int_eq(p[1].t, t0 + 100 * SEC);
        free(p);
        ck_assert_int_eq(rows_on_disk(), 2);
        /* A clean stop loses nothing. */
        record_at(s, dev, t0 + 110 * SEC);
        ck_assert_uint_eq(store_health(s)->pending_polls, 1);
        store_close(s);
        ck_assert_int_eq(rows_on_disk(), 3);
        s = open_batched();
        struct device fresh = {.cfg = dev->cfg};
        ck_assert_int_eq(store_restore_device(s, &fresh), 1);
        ck_assert_int_eq(fresh.readings_at, t0 + 110 * SEC);
        store_close(s);
}
END_TEST

int main(void)
{
        Suite *su = suite_create("store");
        TCase *tc = tcase_create("sqlite");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, restart_serves_the_last_readings);
        tcase_add_test(tc, history_across_compaction);
        tcase_add_test(tc, damaged_file_moved_aside);
        tcase_add_test(tc, unwritable_place_keeps_serving);
        tcase_add_test(tc, schema_1_database_is_migrated);
        tcase_add_test(tc, instance_id_is_made_once_and_kept);
        tcase_add_test(tc, polls_wait_for_the_commit_interval);
        tcase_add_test(tc, maintenance_history_and_close_write_what_waits);
        suite_add_tcase(su, tc);
        return run_suite(su);
}
