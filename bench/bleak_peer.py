#!/usr/bin/python3
"""BluPow against a Python peer built on bleak, same simulator, same scenario, same machine:
wall time per full read of a charge controller, CPU seconds per read and peak RSS.
The peer does what bleak-based gateways do: find the module by scanning, connect (bleak waits
for service resolution), subscribe, write each register block and wait for its reply,
disconnect. Three peer variants: "find" stops scanning at the first advertisement (bleak's best
case); "discover" scans for a fixed 5 s first, as renogy-bt does (DISCOVERY_TIMEOUT = 5);
"renogy-bt" also waits as renogy-bt does: 0.5 s after each write (BLEManager) and 0.5 s before
the next register block (BaseClient). Both sides start a read every 5 s (or as soon as the last
one ended), as a gateway polls, and CPU is counted over the same stretch, idle included: waking
after each idle gap is part of what a poll costs. Last, blupowd reads again with keep_connected
(no connect, service resolution or disconnect per read).
    make && /usr/bin/python3 bench/bleak_peer.py [READS]"""
import asyncio
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

import scale

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BLUPOW_BUILD_ROOT", os.path.join(ROOT, "build"))
CONTROLLER = "60:98:66:ED:FC:11"
BLOCKS = [(0x000C, 8), (0x001A, 1), (0x0100, 34), (0xE004, 1)]  # what blupowd reads per poll
PERIOD = 5  # seconds from the start of one read to the next: blupowd's poll_interval here
WRITE = "0000ffd1-0000-1000-8000-00805f9b34fb"
NOTIFY = "0000fff1-0000-1000-8000-00805f9b34fb"


def crc16(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def request(reg, count):
    body = struct.pack(">BBHH", 0xFF, 3, reg, count)
    return body + struct.pack("<H", crc16(body))


async def peer_read(mode):
    from bleak import BleakClient, BleakScanner
    if mode == "find":
        device = await BleakScanner.find_device_by_address(CONTROLLER, timeout=20)
    else:  # "discover" and "renogy-bt"
        found = await BleakScanner.discover(timeout=5.0)
        device = next(d for d in found if d.address == CONTROLLER)
    buf = bytearray()
    got = asyncio.Event()

    def on_notify(_, data):
        buf.extend(data)
        if len(buf) >= 3 and len(buf) >= 5 + buf[2]:
            got.set()
    values = 0
    async with BleakClient(device) as client:
        await client.start_notify(NOTIFY, on_notify)
        for reg, count in BLOCKS:
            buf.clear()
            got.clear()
            await client.write_gatt_char(WRITE, request(reg, count), response=False)
            if mode == "renogy-bt":
                await asyncio.sleep(0.5)  # renogy-bt's BLEManager.characteristic_write_value
            await asyncio.wait_for(got.wait(), 5)
            frame = bytes(buf[:5 + buf[2]])
            assert crc16(frame) == 0, frame.hex()
            values += count
            if mode == "renogy-bt" and (reg, count) != BLOCKS[-1]:
                await asyncio.sleep(0.5)  # renogy-bt's BaseClient, before the next section
        await client.stop_notify(NOTIFY)
    return values


def wakes(pid="self"):
    """Voluntary context switches of every thread: how often the process went to sleep and woke."""
    n = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/status") as f:
            n += sum(int(line.split()[1]) for line in f if line.startswith("voluntary_ctxt_switches"))
    return n


def run_peer(mode, reads):
    """In a child process of its own, so that its RSS and CPU are its own. Reads start every
    PERIOD seconds, as blupowd's polls do, so both sides pay for waking after the same idle gaps."""
    code = f"""
import asyncio, json, resource, sys, time
sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
import bleak_peer
import bleak  # imported before measuring: start-up is not a read
walls = []
r0 = resource.getrusage(resource.RUSAGE_SELF)
w0 = bleak_peer.wakes()
for _ in range({reads}):
    t = time.monotonic()
    asyncio.run(bleak_peer.peer_read({mode!r}))
    walls.append(time.monotonic() - t)
    time.sleep(max(0, t + bleak_peer.PERIOD - time.monotonic()))
r1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
print(json.dumps({{"walls": walls, "cpu": cpu, "maxrss_kb": r1.ru_maxrss, "wakes": bleak_peer.wakes() - w0}}))
"""
    p = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True, env=os.environ)
    if p.returncode:
        raise SystemExit(p.stderr)
    return json.loads(p.stdout.strip().splitlines()[-1])


def cpu_seconds(pid):
    """Time on CPU in ns precision (/proc/PID/schedstat), not 10 ms ticks."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e9


def polls_ok(port):
    diag = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/diagnostics"))
    return sum(d["polls_ok"] for d in diag["devices"])


def hwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def run_blupow(reads, env, keep_connected=False):
    d = tempfile.mkdtemp(prefix="blupow-bench.")
    opts = os.path.join(d, "options.json")
    with open(opts, "w") as f:
        json.dump({"devices": [{"name": "Rover", "address": CONTROLLER, "type": "controller"}],
                   "poll_interval": PERIOD, "keep_connected": keep_connected}, f)
    port = 18199
    daemon = subprocess.Popen([os.path.join(BUILD, "src/blupowd"), "--options", opts, "--data-dir", d, "--port",
                               str(port), "--bind", "127.0.0.1"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    polls = {}
    try:
        # Wall time: the daemon's own poll_ms of each read.
        while len(polls) < reads + 1:
            time.sleep(0.5)
            try:
                dev = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/devices/rover"))
            except OSError:
                continue
            if dev["state"] == "online" and dev["last_poll"] not in polls:
                polls[dev["last_poll"]] = dev["poll_ms"] / 1000
        walls = list(polls.values())[1:]
        # CPU: a quiet stretch with no API requests but the two that count the polls.
        n0, cpu0, w0 = polls_ok(port), cpu_seconds(daemon.pid), wakes(daemon.pid)
        time.sleep(reads * PERIOD + 1)
        cpu1, w1, n1 = cpu_seconds(daemon.pid), wakes(daemon.pid), polls_ok(port)
        per = len(walls) / max(n1 - n0, 1)
        return {"walls": walls, "cpu": (cpu1 - cpu0) * per, "wakes": (w1 - w0) * per,
                "maxrss_kb": hwm_kb(daemon.pid)}
    finally:
        daemon.terminate()
        daemon.wait()


def main():
    reads = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    env, bus = scale.private_bus()
    os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = env["DBUS_SYSTEM_BUS_ADDRESS"]
    sim = subprocess.Popen([os.path.join(BUILD, "sim/blupow-sim"), "--scenario",
                            os.path.join(ROOT, "scenarios/demo.json")], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        results = {"blupowd": run_blupow(reads, os.environ)}
        results["bleak (find)"] = run_peer("find", reads)
        results["bleak (discover 5 s)"] = run_peer("discover", max(3, reads // 3))
        results["renogy-bt style"] = run_peer("renogy-bt", max(3, reads // 3))
        # Last: the module stays connected to blupowd until it stops.
        kept = run_blupow(reads, os.environ, keep_connected=True)
    finally:
        sim.terminate()
        sim.wait()
        scale.close_bus(bus)
    ours = results["blupowd"]
    med = lambda xs: sorted(xs)[len(xs) // 2]
    print(f"Reads of one charge controller (4 register blocks), {reads} per side, one every {PERIOD} s.")
    print(scale.machine_note())
    print(scale.floor_note((5000,)) + "\n")
    print("| reader | reads | median wall per read (s) | CPU per read (ms) | wakes per read | peak RSS (MiB) | wall ratio | CPU ratio | RSS ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        n = len(r["walls"])
        cpu_ms = r["cpu"] / n * 1000
        row = f"| {name} | {n} | {med(r['walls']):.3f} | {cpu_ms:.1f} | {r['wakes'] / n:.0f} | {r['maxrss_kb'] / 1024:.1f} |"
        if name == "blupowd":
            row += " 1 | 1 | 1 |"
        else:
            row += (f" {med(r['walls']) / med(ours['walls']):.1f}× | {cpu_ms / (ours['cpu'] / len(ours['walls']) * 1000):.1f}× |"
                    f" {r['maxrss_kb'] / ours['maxrss_kb']:.1f}× |")
        print(row)
    # keep_connected: no connect, service resolution or disconnect per read, at the price of
    # holding the module's one connection (the phone app cannot connect meanwhile).
    n = len(kept["walls"])
    print(f"\nblupowd with keep_connected: {n} reads, median wall {med(kept['walls']):.3f} s, "
          f"CPU {kept['cpu'] / n * 1000:.1f} ms and {kept['wakes'] / n:.0f} wakes per read, peak RSS "
          f"{kept['maxrss_kb'] / 1024:.1f} MiB; wall ratio against it: " +
          ", ".join(f"{name} {med(r['walls']) / med(kept['walls']):.1f}×" for name, r in results.items()
                    if name != "blupowd"))


if __name__ == "__main__":
    main()
