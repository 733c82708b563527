#!/usr/bin/python3
"""Link efficiency: the time blupowd takes for a full read of each module, divided by the
simulator's link-time floor (connect + service resolution + the sum of response latencies and
chunk intervals for the blocks one poll reads). Run by hand:
    make && /usr/bin/python3 bench/link_efficiency.py [build]
Prints a Markdown table; targets ratio <= 1.10."""
import json
import math
import os
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, sys.argv[1] if len(sys.argv) > 1 else "build")
# Blocks per poll (src/renogy/*.c) and reply sizes: 5 + 2 * words bytes.
PLANS = {
    "controller": [8, 1, 34, 1],
    "dcc": [8, 1, 32, 8, 1, 18, 1, 1],
    "battery": [17, 17, 6, 4, 8, 2, 1],
    "inverter": [10, 1, 8, 7, 6],
}
DEFAULT_TIMING = {"connect_ms": 300, "resolve_ms": 400, "response_ms": 60, "chunk_interval_ms": 8, "chunk_size": 20}


def floor_ms(module):
    t = dict(DEFAULT_TIMING, **module.get("timing", {}))
    total = t["connect_ms"] + t["resolve_ms"]
    for unit in module["units"]:
        fam = unit["family"]
        if fam == "shunt":
            continue  # pushed frames: bounded by the push period, not by requests
        for words in PLANS[fam]:
            chunks = math.ceil((5 + 2 * words) / t["chunk_size"])
            total += t["response_ms"] + (chunks - 1) * t["chunk_interval_ms"]
    return total


def main():
    env = dict(os.environ)
    out = subprocess.run([os.path.join(ROOT, "scripts/test-bus.sh")], capture_output=True, text=True, check=True).stdout.split()
    env["DBUS_SYSTEM_BUS_ADDRESS"], bus_pid = out[0], int(out[1])
    scenario = os.path.join(ROOT, "scenarios/demo.json")
    sim = subprocess.Popen([os.path.join(BUILD, "sim/blupow-sim"), "--scenario", scenario], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    data = f"/tmp/blupow-bench-{os.getpid()}"
    os.makedirs(data, exist_ok=True)
    port = 18099
    daemon = subprocess.Popen([os.path.join(BUILD, "src/blupowd"), "--options", os.path.join(ROOT, "scenarios/demo.options.json"),
                               "--data-dir", data, "--port", str(port), "--bind", "127.0.0.1"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        samples = {}
        end = time.time() + 45
        while time.time() < end:
            try:
                devs = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/devices"))["devices"]
            except OSError:
                time.sleep(0.2)
                continue
            for d in devs:
                if d["state"] == "online" and d["poll_ms"] and d["family"] != "shunt":
                    samples.setdefault(d["address"], {}).setdefault(d["last_poll"], d["poll_ms"])
            time.sleep(1)
        modules = {m["address"]: m for m in json.load(open(scenario))["modules"]}
        print("| module | families | polls | median poll (ms) | floor (ms) | ratio |")
        print("|---|---|---|---|---|---|")
        for addr, polls in sorted(samples.items()):
            vals = sorted(polls.values())
            med = vals[len(vals) // 2]
            fl = floor_ms(modules[addr])
            fams = "+".join(u["family"] for u in modules[addr]["units"])
            print(f"| {modules[addr]['name']} | {fams} | {len(vals)} | {med} | {fl} | {med / fl:.3f} |")
    finally:
        daemon.terminate()
        sim.terminate()
        daemon.wait()
        sim.wait()
        os.kill(bus_pid, 15)


if __name__ == "__main__":
    main()
