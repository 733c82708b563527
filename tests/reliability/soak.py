#!/usr/bin/python3
"""Soak: many simulated modules with fast links, polled at a short interval for a long run
(30 minutes by default), with the status page's requests going on. Every minute it records the
daemon's RSS, open file descriptors, database size and the polls done; at the end it checks
that RSS and fds stayed flat, that no poll missed its schedule, and that the database grew by
the poll rows only.
    /usr/bin/python3 tests/reliability/soak.py [--minutes 30] [--devices 40] [--daemon PATH]"""
import argparse
import json
import os
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../system"))
import sysenv  # noqa: E402

FAST = {"connect_ms": 20, "resolve_ms": 30, "response_ms": 5, "chunk_interval_ms": 2,
        "advertising_interval_ms": 200}


def proc(pid):
    status = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            status[k] = v.strip()
    return int(status["VmRSS"].split()[0]), len(os.listdir(f"/proc/{pid}/fd"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--devices", type=int, default=40)
    ap.add_argument("--interval", type=int, default=5)
    ap.add_argument("--daemon", default=os.path.join(sysenv.BUILD, "src/blupowd"))
    args = ap.parse_args()
    modules, devices = [], []
    for i in range(args.devices):
        addr = "60:98:66:AA:%02X:%02X" % (i >> 8, i & 0xFF)
        family = "battery" if i % 4 == 3 else "controller"
        modules.append({"name": "BT-TH-66AA%04X" % i, "address": addr, "rssi": -60 - i % 15, "timing": FAST,
                        "units": [{"family": family, "id": 48 if family == "battery" else 255, "animate": True}]})
        devices.append({"name": f"Soak {i}", "address": addr, "type": family,
                        **({"modbus_id": 48} if family == "battery" else {})})
    scenario_path = os.path.join(sysenv.tempfile.gettempdir(), f"blupow-soak-{os.getpid()}.json")
    with open(scenario_path, "w") as f:
        json.dump({"adapters": [{"name": "hci0", "address": "00:1A:7D:DA:71:13", "powered": True}],
                   "modules": modules}, f)
    env = sysenv.Env(scenario=scenario_path, devices=devices, options={"poll_interval": args.interval})
    env.blupowd_path = args.daemon
    failures = []
    try:
        env.start_daemon()
        env.wait_all_online(120)
        pid = env.daemon.pid
        db = os.path.join(env.data, "blupow.db")

        def sample():
            diag = env.get_json("/api/v1/diagnostics")
            ok = sum(d["polls_ok"] for d in diag["devices"])
            failed = sum(d["polls_failed"] for d in diag["devices"])
            rss, fds = proc(pid)
            size = sum(os.path.getsize(p) for p in (db, db + "-wal") if os.path.exists(p))
            return {"t": time.monotonic(), "ok": ok, "failed": failed, "rss": rss, "fds": fds, "db": size}

        first = sample()
        rows = [first]
        print("| minute | polls | failed | RSS (KiB) | fds | database (KiB) |")
        print("|---|---|---|---|---|---|")
        end = first["t"] + args.minutes * 60
        minute = 0
        while time.monotonic() < end:
            # What the status page asks for every few seconds.
            for _ in range(12):
                env.get_json("/api/v1/devices")
                urllib.request.urlopen(env.url("/api/v1/devices/soak-0/history?key=battery_voltage&points=120")).read()
                time.sleep(5)
                if time.monotonic() >= end:
                    break
            minute += 1
            s = sample()
            rows.append(s)
            print(f"| {minute} | {s['ok'] - first['ok']} | {s['failed'] - first['failed']} | {s['rss']} | {s['fds']} | "
                  f"{s['db'] // 1024} |", flush=True)
        last = rows[-1]
        elapsed = last["t"] - first["t"]
        polls = last["ok"] - first["ok"]
        expected = args.devices * elapsed / args.interval
        # RSS settles in the first minutes while SQLite's page cache fills up to its bound
        # (512 KiB) as the database grows: the second half of the run must be flat.
        settled = rows[len(rows) // 2]
        growth = last["rss"] - settled["rss"]
        print(f"\n{args.devices} devices every {args.interval} s for {elapsed / 60:.1f} min: {polls} polls "
              f"({last['failed'] - first['failed']} failed) of {expected:.0f} expected; RSS {first['rss']} -> "
              f"{last['rss']} KiB (second half: {growth:+d} KiB); fds {first['fds']} -> {last['fds']}; "
              f"database {first['db'] // 1024} -> {last['db'] // 1024} KiB "
              f"({(last['db'] - first['db']) / max(polls, 1):.0f} B per poll)")
        if polls < expected * 0.98:
            failures.append(f"{expected - polls:.0f} polls missed their schedule")
        if growth > 256:
            failures.append(f"RSS grew by {growth} KiB after settling")
        if last["fds"] > first["fds"] + 2:
            failures.append(f"open fds grew from {first['fds']} to {last['fds']}")
        code = env.stop_daemon()
        if code != 0:
            failures.append(f"daemon exit status {code}")
    except BaseException:
        env.close()
        raise
    finally:
        os.unlink(scenario_path)
    return env.close_campaign(failures, "soak")


if __name__ == "__main__":
    sys.exit(main())
