"""The store under the faults an SD-card gateway meets: the daemon killed with SIGKILL at random
moments while it polls and writes, and a full disk; and what the commit interval promises."""
import datetime
import os
import random
import signal
import sqlite3
import subprocess
import time
import unittest

import sysenv

# CI runs a few rounds; the reliability campaign runs 200 (BLUPOW_KILL_ROUNDS=200).
ROUNDS = int(os.environ.get("BLUPOW_KILL_ROUNDS", "12"))


def integrity(path):
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


class KillNine(unittest.TestCase):
    def test_sigkill_at_random_moments(self):
        # Every poll committed at once: what the API has shown, the disk has.
        env = sysenv.Env(options={"poll_interval": 5, "commit_interval": 0})
        rng = random.Random(int(os.environ.get("BLUPOW_KILL_SEED", "1")))
        db = os.path.join(env.data, "blupow.db")
        try:
            last_seen = {}
            for round_ in range(ROUNDS):
                env.start_daemon()
                # Right after the start, before a fresh poll: what the store kept.
                if last_seen:
                    devs = {d["id"]: d for d in env.get_json("/api/v1/devices")["devices"]}
                    for dev_id, readings_at in last_seen.items():
                        d = devs[dev_id]
                        self.assertIsNotNone(d["readings_at"], f"round {round_}: {dev_id} lost its readings")
                        self.assertGreaterEqual(d["readings_at"], readings_at,
                                                f"round {round_}: {dev_id} lost a committed poll")
                        self.assertTrue(d["readings"], dev_id)
                        self.assertNotEqual(d["state"], "online", "readings restored, not yet polled")
                time.sleep(rng.uniform(0.3, 6.0))
                for d in env.get_json("/api/v1/devices")["devices"]:
                    if d["readings_at"]:
                        last_seen[d["id"]] = d["readings_at"]
                env.daemon.send_signal(signal.SIGKILL)
                env.daemon.wait(10)
                self.assertEqual(integrity(db), "ok", f"round {round_}")
            self.assertGreaterEqual(len(last_seen), 4, "the kills never let polls complete")
            env.start_daemon()
            health = env.get_json("/api/v1/health")
            self.assertFalse(health["store"]["recreated"], "the database was never damaged")
            self.assertTrue(health["store"]["ok"])
        finally:
            env.close()


def parse_time(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class CommitInterval(unittest.TestCase):
    def test_stop_keeps_every_poll_and_a_kill_loses_at_most_the_interval(self):
        interval = 10
        env = sysenv.Env(options={"poll_interval": 5, "commit_interval": interval})
        try:
            env.start_daemon()
            env.wait_all_online()
            env.wait_for(lambda: env.get_json("/api/v1/health")["store"]["pending_polls"] > 0, 15,
                         "polls waiting in memory")

            def readings_at():
                return {d["id"]: d["readings_at"] for d in env.get_json("/api/v1/devices")["devices"]
                        if d["readings_at"]}
            # A clean stop writes what waits: the next run serves exactly the last polls.
            seen = readings_at()
            self.assertEqual(env.stop_daemon(), 0, env.log())
            env.start_daemon()
            self.assertEqual(readings_at(), seen, "a clean stop lost polls")

            # Polls go on; a kill loses at most the commit interval (plus the poll being written).
            env.wait_for(lambda: all(parse_time(t) > parse_time(seen[k]) for k, t in readings_at().items()),
                         30, "fresh polls after the restart")
            time.sleep(interval + 6)
            seen = readings_at()
            waiting = env.get_json("/api/v1/health")["store"]["pending_polls"]
            env.daemon.send_signal(signal.SIGKILL)
            env.daemon.wait(10)
            env.start_daemon()
            restored = readings_at()
            self.assertEqual(restored.keys(), seen.keys())
            for dev_id, t in restored.items():
                # A poll may end between the snapshot and the kill: restored can be newer than seen.
                lost = parse_time(seen[dev_id]) - parse_time(t)
                self.assertLessEqual(lost, interval + 6, f"{dev_id}: {lost} s of polls lost, {waiting} were waiting")
            self.assertEqual(env.stop_daemon(), 0, env.log())
        finally:
            env.close()


def can_mount_tmpfs():
    return subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                          capture_output=True).returncode == 0


class DiskFull(unittest.TestCase):
    @unittest.skipUnless(os.geteuid() == 0 and can_mount_tmpfs(), "needs root and a private mount namespace")
    def test_full_disk_keeps_polling_and_recovers(self):
        env = sysenv.Env(options={"poll_interval": 5, "commit_interval": 10})
        try:
            # The data directory becomes a 512 KiB tmpfs seen only by the daemon.
            with open(sysenv.RUN_SCRIPT) as f:
                script = sysenv.rewrite_run_script(f.read(), os.path.join(sysenv.BUILD, "src/blupowd"), env.data,
                                                   env.bus_socket, env.port)
            options = sysenv.read_text(env.options_path)
            script = script.replace("export DBUS", f"mount -t tmpfs -o size=512k tmpfs {env.data}\n"
                                    f"cat > {env.data}/options.json <<'JSON'\n{options}\nJSON\n"
                                    f"echo $$ > {env.dir}/pid\nexport DBUS", 1)
            path = os.path.join(env.dir, "run")
            with open(path, "w") as f:
                f.write(script)
            os.chmod(path, 0o755)
            log = open(os.path.join(env.dir, "daemon.log"), "a")
            env.daemon_log = log
            env.daemon = subprocess.Popen(["unshare", "-m", "--propagation", "private", path],
                                          env={k: v for k, v in env.env.items() if k != "DBUS_SYSTEM_BUS_ADDRESS"},
                                          stdout=log, stderr=subprocess.STDOUT)
            env.procs.append(env.daemon)
            env.wait_for(lambda: env.get_status("/api/v1/health") == 200, 15, "daemon answering")
            env.wait_all_online()
            pid = sysenv.read_text(os.path.join(env.dir, "pid")).strip()
            mnt = ["nsenter", "-t", pid, "-m"]
            # Fill the disk.
            subprocess.run(mnt + ["sh", "-c", f"dd if=/dev/zero of={env.data}/filler bs=4k 2>/dev/null; true"],
                           check=True)

            def full():
                h = env.get_json("/api/v1/health")
                return h["store"]["memory_only"] and "disk full" in (h["store"]["message"] or "")
            env.wait_for(full, 30, "health to report the full disk")
            health = env.get_json("/api/v1/health")
            self.assertEqual(health["status"], "degraded")
            # Polling goes on and the readings are served from memory.
            before = env.get_json("/api/v1/devices/rover")["last_poll"]
            dev = env.wait_device("rover", lambda d: d["last_poll"] > before and d["state"] == "online", 20,
                                  "a fresh poll on a full disk")
            self.assertIn("battery_voltage", dev["readings"])
            # Space comes back: writes resume by themselves.
            subprocess.run(mnt + ["rm", f"{env.data}/filler"], check=True)
            env.wait_for(lambda: not env.get_json("/api/v1/health")["store"]["memory_only"], 30,
                         "writes to resume")
            self.assertEqual(env.stop_daemon(), 0, env.log())
        finally:
            env.close()


if __name__ == "__main__":
    unittest.main()
