#!/usr/bin/python3
"""Two builds of blupowd side by side, at the same time: CPU per poll, wakes per poll and pages
a poll touches. On a machine whose charge for a wake moves with the host's load (see
bench/wake-cost.c), two runs an hour apart cannot say which build is lighter; two daemons
measured over the same stretch can. Each gets its own private bus, simulator and N simulated
charge controllers, polled at the shortest interval the link allows (as in bench/scale.py).
    make && /usr/bin/python3 bench/side_by_side.py OTHER_BUILD_DIR [DEVICES] [SECONDS]
OTHER_BUILD_DIR is another build tree (an older version, say: git worktree, meson setup, ninja
src/blupowd tests/sim/blupow-sim)."""
import json
import os
import subprocess
import sys
import tempfile
import time

import scale

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start(build, n, port, tag):
    d = tempfile.mkdtemp(prefix=f"blupow-side{tag}.")
    modules, devices = [], []
    for i in range(n):
        addr = "60:98:66:%02X:%02X:%02X" % (tag, i >> 8 & 0xFF, i & 0xFF)
        modules.append({"name": "BT-TH-66%02X%04X" % (tag, i), "address": addr, "rssi": -60,
                        "units": [{"family": "controller", "id": 255}]})
        devices.append({"name": f"Controller {i}", "address": addr, "type": "controller"})
    interval = max(5, int(1.2 * n + 0.999))
    with open(os.path.join(d, "scenario.json"), "w") as f:
        json.dump({"adapters": [{"name": "hci0", "address": "00:1A:7D:DA:71:13", "powered": True}],
                   "modules": modules}, f)
    with open(os.path.join(d, "options.json"), "w") as f:
        json.dump({"devices": devices, "poll_interval": interval}, f)
    out = subprocess.run([os.path.join(ROOT, "scripts/test-bus.sh")], capture_output=True, text=True,
                         check=True).stdout.split()
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=out[0])
    sim = subprocess.Popen([os.path.join(build, "tests/sim/blupow-sim"), "--scenario",
                            os.path.join(d, "scenario.json")], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    daemon = subprocess.Popen([os.path.join(build, "src/blupowd"), "--options", os.path.join(d, "options.json"),
                               "--data-dir", d, "--port", str(port), "--bind", "127.0.0.1"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return {"build": build, "daemon": daemon, "sim": sim, "bus": int(out[1]), "port": port, "interval": interval}


def main():
    if len(sys.argv) < 2:
        print(__doc__.split("\n    ")[1].split("\n")[0].strip(), file=sys.stderr)
        return 2
    other = os.path.abspath(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    seconds = int(sys.argv[3]) if len(sys.argv) > 3 else 120
    runs = [start(scale.BUILD, n, 18271, 1), start(other, n, 18272, 2)]
    try:
        interval = runs[0]["interval"]
        time.sleep(interval + 5)
        before = [(scale.proc(r["daemon"].pid), scale.polls_ok(r["port"])[0]) for r in runs]
        time.sleep(seconds)
        after = [(scale.proc(r["daemon"].pid), scale.polls_ok(r["port"])[0]) for r in runs]
        # Pages one after the other: clearing the referenced bits is not free.
        pages = [scale.pages_per_poll(r["daemon"].pid, r["port"], interval) for r in runs]
        print(scale.machine_note())
        print(f"\n{n} devices each, interval {interval} s, {seconds} s measured at the same time.\n")
        print("| build | polls | CPU per poll (ms) | wakes per poll | pages per poll (code + data) | RSS (MiB) |")
        print("|---|---|---|---|---|---|")
        for r, (p0, ok0), (p1, ok1), (code, data) in zip(runs, before, after, pages):
            polls = max(ok1 - ok0, 1)
            print(f"| {r['build']} | {ok1 - ok0} | {(p1[0] - p0[0]) * 1000 / polls:.2f} | "
                  f"{(p1[4] - p0[4]) / polls:.1f} | {code:.0f} + {data:.0f} | {p1[1] / 1024:.1f} |")
    finally:
        for r in runs:
            for p in (r["daemon"], r["sim"]):
                p.terminate()
                p.wait()
            os.kill(r["bus"], 15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
