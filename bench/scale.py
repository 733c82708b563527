#!/usr/bin/python3
"""Scale: blupowd with 1, 10, 50 and 200 simulated charge controllers on one adapter.
Reports the daemon's RSS, CPU per poll, the pages a poll touches, and polls that missed their
schedule.
One adapter holds one session at a time and a controller read takes about 1 s of link time,
so the interval is the shortest the link allows: max(5 s, 1.2 s x devices).
--instant-link sets the simulated link's latencies to zero (connect, service resolution, replies),
so that no wake of a poll follows a wait for the radio: what is left is the work and the hops
through the bus.
--asleep PERCENT puts that share of the modules to sleep (every tenth, for 10): they never
advertise, and a Connect to them gets no answer for 60 s, as on BlueZ over a real controller.
The table then shows, for the others, the polls that missed their schedule and how old their
data got against their interval plus their own read time, sampled every 2 s.
    make && /usr/bin/python3 bench/scale.py [--instant-link] [--asleep PERCENT] [SECONDS_PER_RUN] [COUNTS...]"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BLUPOW_BUILD_ROOT", os.path.join(ROOT, "build"))


def proc(pid):
    """CPU seconds (schedstat, ns precision), RSS and peak RSS (KiB), open fds, wakes (voluntary
    context switches)."""
    with open(f"/proc/{pid}/schedstat") as f:
        cpu = int(f.read().split()[0]) / 1e9
    status = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            status[k] = v.strip()
    return (cpu, int(status["VmRSS"].split()[0]), int(status["VmHWM"].split()[0]), len(os.listdir(f"/proc/{pid}/fd")),
            int(status["voluntary_ctxt_switches"]))


def user_kernel_faults(pid):
    """User and kernel CPU seconds (clock ticks, so coarser than schedstat), and minor page
    faults: pages mapped anew, as after memory handed back to the kernel (free() trimming the
    heap, an mmap'd block freed) and taken again."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    hz = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / hz, int(fields[12]) / hz, int(fields[7])


def referenced_pages(pid):
    """Pages (4 KiB) referenced since the last clear_refs: code (executable mappings) and data."""
    code = data = 0
    executable = False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            first = line.split(None, 2)
            if "-" in first[0] and not first[0].endswith(":"):
                executable = "x" in first[1]
            elif first[0] == "Referenced:":
                if executable:
                    code += int(first[1]) // 4
                else:
                    data += int(first[1]) // 4
    return code, data


def pages_per_poll(pid, port, interval, stretch=60):
    """Distinct pages a poll touches: the kernel's referenced bits are cleared, a window of one
    interval (at most 15 s) runs with no API request inside it, and the pages referenced are
    divided by the polls that ran, over a minute of windows. Polls in one window share pages, so
    with many devices the figure falls. On a machine that charges the first touch of a page
    after an idle gap, this is what CPU per poll is made of; unlike CPU seconds, it does not
    depend on the machine."""
    code = data = polls = 0
    interval = min(interval, 15)
    # Windows over a whole minute: one of them holds the store's commit of that minute.
    for _ in range(max(1, -(-stretch // interval))):
        ok0, _ = polls_ok(port)
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("1")
        time.sleep(interval)
        c, d = referenced_pages(pid)
        ok1, _ = polls_ok(port)
        code, data, polls = code + c, data + d, polls + ok1 - ok0
    return code / max(polls, 1), data / max(polls, 1)


def polls_ok(port):
    diag = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/diagnostics"))
    return sum(d["polls_ok"] for d in diag["devices"]), sum(d["polls_failed"] for d in diag["devices"])


def private_bus():
    """A private system-like bus (scripts/test-bus.sh): an environment that points at it, and
    what close_bus() needs."""
    address, pid, directory = subprocess.run([os.path.join(ROOT, "scripts/test-bus.sh")], capture_output=True,
                                             text=True, check=True).stdout.split()
    return dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=address), (int(pid), directory)


def close_bus(bus):
    pid, directory = bus
    os.kill(pid, 15)
    shutil.rmtree(directory, ignore_errors=True)


INSTANT = {"connect_ms": 0, "resolve_ms": 0, "response_ms": 0, "chunk_interval_ms": 0}


def asleep_modules(n, percent):
    """Which of n modules sleep: evenly spread, percent of them."""
    if not percent:
        return set()
    step = 100 / percent
    return {int(k * step + step - 1) for k in range(int(n * percent / 100))}


def start(n, build=BUILD, port=18299, instant=False, sim_build=None, wrapper=(), asleep=frozenset()):
    """A private bus, the simulator with n charge controllers on one adapter, and blupowd polling
    them at the shortest interval the link allows; returns once the API answers. blupowd comes
    from build, the simulator from sim_build (the same by default); wrapper is a command that
    runs it (valgrind, say)."""
    d = tempfile.mkdtemp(prefix=f"blupow-scale{n}.")
    modules, devices = [], []
    for i in range(n):
        addr = "60:98:66:%02X:%02X:%02X" % (i >> 16 & 0xFF, i >> 8 & 0xFF, i & 0xFF)
        name = "BT-TH-66%02X%02X%02X" % (i >> 16 & 0xFF, i >> 8 & 0xFF, i & 0xFF)
        modules.append({"name": name, "address": addr, "rssi": -60 - i % 20,
                        "units": [{"family": "controller", "id": 255}]})
        if instant:
            modules[-1]["timing"] = INSTANT
        if i in asleep:
            modules[-1]["faults"] = {"asleep": True}
        devices.append({"name": f"Controller {i}", "address": addr, "type": "controller"})
    interval = max(5, int(1.2 * n + 0.999))
    with open(os.path.join(d, "scenario.json"), "w") as f:
        json.dump({"adapters": [{"name": "hci0", "address": "00:1A:7D:DA:71:13", "powered": True}],
                   "modules": modules, "le_connect_timeout_ms": 60000}, f)
    with open(os.path.join(d, "options.json"), "w") as f:
        json.dump({"devices": devices, "poll_interval": interval}, f)
    env, bus = private_bus()
    stack = {"build": build, "bus": bus, "port": port, "interval": interval}
    stack["sim"] = subprocess.Popen([os.path.join(sim_build or build, "sim/blupow-sim"), "--scenario",
                                     os.path.join(d, "scenario.json")], env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    stack["daemon"] = subprocess.Popen([*wrapper, os.path.join(build, "src/blupowd"), "--options",
                                        os.path.join(d, "options.json"), "--data-dir", d, "--port", str(port),
                                        "--bind", "127.0.0.1"], env=env, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
    for _ in range(300 if wrapper else 100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health").read()
            break
        except OSError:
            time.sleep(0.1)
    return stack


def stop(stack):
    for p in (stack["daemon"], stack["sim"]):
        p.terminate()
        p.wait()
    close_bus(stack["bus"])


def warm_up(interval):
    """Seconds before measuring: one full round, so that every module has been connected once
    (its first session brings BlueZ's GATT objects and the like), then one commit interval (60 s,
    the default), so that every device's readings have been written once (its first write adds
    the ids of its keys). Neither happens again, so neither belongs in a figure per poll."""
    return interval + 62


def run(n, seconds, instant=False):
    stack = start(n, instant=instant)
    daemon, port, interval = stack["daemon"], stack["port"], stack["interval"]
    try:
        time.sleep(warm_up(interval))
        # Two API requests in the measured stretch, to count the polls; nothing else.
        ok0, failed0 = polls_ok(port)
        cpu0, rss0, _, fds0, wakes0 = proc(daemon.pid)
        user0, kernel0, faults0 = user_kernel_faults(daemon.pid)
        t0 = time.monotonic()
        time.sleep(seconds)
        cpu1, rss1, hwm, fds1, wakes1 = proc(daemon.pid)
        user1, kernel1, faults1 = user_kernel_faults(daemon.pid)
        elapsed = time.monotonic() - t0
        ok1, failed1 = polls_ok(port)
        polls = ok1 - ok0
        code_pages, data_pages = pages_per_poll(daemon.pid, port, interval)
        expected = n * elapsed / interval
        missed = max(0, round(expected - polls))
        return {"n": n, "interval": interval, "seconds": round(elapsed), "polls": polls, "failed": failed1 - failed0,
                "expected": round(expected), "missed": missed, "cpu_ms_per_poll": (cpu1 - cpu0) * 1000 / max(polls, 1),
                "wakes_per_poll": (wakes1 - wakes0) / max(polls, 1),
                "faults_per_poll": (faults1 - faults0) / max(polls, 1),
                "user_ms_per_poll": (user1 - user0) * 1000 / max(polls, 1),
                "kernel_ms_per_poll": (kernel1 - kernel0) * 1000 / max(polls, 1),
                "code_pages": code_pages, "data_pages": data_pages,
                "rss_start_kib": rss0, "rss_end_kib": rss1, "hwm_kib": hwm, "fds": (fds0, fds1)}
    finally:
        stop(stack)


def run_asleep(n, seconds, percent):
    """The awake modules' schedule with percent of the modules asleep."""
    asleep = asleep_modules(n, percent)
    stack = start(n, asleep=asleep)
    port, interval = stack["port"], stack["interval"]
    awake_ids = {f"controller-{i}" for i in range(n) if i not in asleep}
    try:
        time.sleep(warm_up(interval))
        ok0, failed0 = polls_ok(port)
        t0 = time.monotonic()
        worst, late, samples = -1e9, 0, 0
        while time.monotonic() < t0 + seconds:
            devs = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/devices"))["devices"]
            for d in devs:
                if d["id"] in awake_ids and d["age_s"] is not None:
                    over = d["age_s"] - (d["poll_interval"] + (d["poll_ms"] or 0) / 1000)
                    worst = max(worst, over)
                    late += over > 1.0
                    samples += 1
            time.sleep(2)
        elapsed = time.monotonic() - t0
        ok1, failed1 = polls_ok(port)
        expected = len(awake_ids) * elapsed / interval
        return {"n": n, "asleep": len(asleep), "interval": interval, "seconds": round(elapsed),
                "polls": ok1 - ok0, "failed": failed1 - failed0, "expected": round(expected),
                "missed": max(0, round(expected - (ok1 - ok0))), "worst": worst, "late": late, "samples": samples}
    finally:
        stop(stack)


def machine_note():
    """What this machine charges for a wake (bench/wake-cost.c): the floor under CPU per poll."""
    out = subprocess.run([os.path.join(BUILD, "bench/wake-cost")], capture_output=True, text=True, check=True).stdout
    w = json.loads(out)["us_per_wake"]
    return (f"Machine: a wake costs {w['1ms_0p']:.0f} µs after 1 ms idle, {w['60ms_0p']:.0f} µs after 60 ms, "
            f"{w['60ms_100p']:.0f} µs after 60 ms touching 100 pages, {w['300ms_100p']:.0f} µs after 300 ms "
            f"touching 100 pages (bench/wake-cost).")


def floor_note(intervals_ms=(5000, 1200)):
    """The least CPU any reader spends on a controller read here, at each spacing of reads
    (bench/read-floor.c): sleeping through a read's wakes, and receiving its messages through
    sd-bus doing nothing else. The 1, 10, 50 and 200-device runs space reads 5 s and 1.2 s apart."""
    env, bus = private_bus()
    parts = []
    try:
        for interval in intervals_ms:
            r = json.loads(subprocess.run([os.path.join(BUILD, "bench/read-floor"), "6", str(interval)], env=env,
                                          capture_output=True, text=True, check=True).stdout)
            parts.append(f"{r['sleep_us_per_read'] / 1000:.2f} ms asleep, {r['sdbus_us_per_read'] / 1000:.2f} ms "
                         f"through sd-bus with reads {interval / 1000:g} s apart")
    finally:
        close_bus(bus)
    return f"Floor: a read's {r['wakes_per_read']} wakes with no work cost " + "; ".join(parts) + " (bench/read-floor)."


def main():
    args = sys.argv[1:]
    instant = "--instant-link" in args
    args = [a for a in args if a != "--instant-link"]
    percent = 0
    if "--asleep" in args:
        i = args.index("--asleep")
        percent = int(args[i + 1])
        del args[i:i + 2]
    seconds = int(args[0]) if args else 60
    counts = [int(x) for x in args[1:]] or [1, 10, 50, 200]
    if percent:
        print(f"{percent} % of the modules asleep (no advertisement, Connect unanswered for 60 s).")
        print()
        print("| devices | asleep | interval (s) | measured (s) | polls of the others | expected | missed | failed "
              "(the sleeping ones) | worst age over interval + read (s) | samples over it by > 1 s |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for n in counts:
            r = run_asleep(n, seconds, percent)
            print(f"| {r['n']} | {r['asleep']} | {r['interval']} | {r['seconds']} | {r['polls']} | {r['expected']} | "
                  f"{r['missed']} | {r['failed']} | {r['worst']:+.1f} | {r['late']} of {r['samples']} |", flush=True)
        return
    print(machine_note())
    print("Instant link: no latency on the simulated radio." if instant else floor_note())
    print()
    print("| devices | interval (s) | measured (s) | polls | failed | expected | missed | CPU per poll (ms) | user + kernel (ms) | wakes per poll | minor faults per poll | pages per poll (code + data) | RSS start → end (MiB) | peak RSS (MiB) | open fds |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in counts:
        r = run(n, seconds, instant)
        print(f"| {r['n']} | {r['interval']} | {r['seconds']} | {r['polls']} | {r['failed']} | {r['expected']} | {r['missed']} | "
              f"{r['cpu_ms_per_poll']:.2f} | {r['user_ms_per_poll']:.1f} + {r['kernel_ms_per_poll']:.1f} | {r['wakes_per_poll']:.0f} | {r['faults_per_poll']:.1f} | "
              f"{r['code_pages']:.0f} + {r['data_pages']:.0f} | "
              f"{r['rss_start_kib'] / 1024:.1f} → {r['rss_end_kib'] / 1024:.1f} | "
              f"{r['hwm_kib'] / 1024:.1f} | {r['fds'][0]} → {r['fds'][1]} |", flush=True)


if __name__ == "__main__":
    main()
