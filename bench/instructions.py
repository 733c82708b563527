#!/usr/bin/python3
"""CPU work per read as instructions, for blupowd and the bleak peer (bench/bleak_peer.py), counted
by valgrind's callgrind in user space. CPU seconds depend on the machine: where waking a process
is dear (some virtual machines charge hundreds of microseconds for the first touch of each page
after an idle gap), a reader that wakes 20 times per read pays for the wakes, not for its work.
Instructions do not depend on that, so this is the ratio of work done; kernel time is not
counted on either side, and the peer wakes twice as often.
    make && /usr/bin/python3 bench/instructions.py [READS] [--blupowd-only]
    make && /usr/bin/python3 bench/instructions.py --scale [COUNTS...]
--scale counts blupowd's instructions per poll with 1, 10, 50 and 200 controllers, set up as
bench/scale.py sets them up (its warm-up, then 60 s): the work a poll does as the devices grow.
BLUPOW_BUILD_ROOT=DIR measures the blupowd of another build (an older version, say)."""
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

import bleak_peer
import scale

ROOT = bleak_peer.ROOT
BUILD = bleak_peer.BUILD


def collected(log):
    m = re.search(r"Collected : (\d+)", log)
    if not m:
        raise SystemExit("callgrind printed no total:\n" + log[-2000:])
    return int(m.group(1))


def self_cost_by_object(path):
    """Instructions spent in each shared object's own code (self cost), from a callgrind file:
    cost lines count for the function they are in, except the line after calls=, which is the
    inclusive cost of that call. Names may be compressed as "(id) name" and later "(id)"."""
    names, cost = {}, collections.Counter()
    ob = fn_ob = None
    after_call = False

    def name(v):
        m = re.match(r"\((\d+)\)(?: (.*))?", v)
        if not m:
            return v
        if m.group(2):
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), "?")
    with open(path) as f:
        for line in f:
            if line.startswith("ob="):
                ob = name(line[3:].strip())
            elif line.startswith("cob="):
                name(line[4:].strip())
            elif line.startswith("fn="):
                fn_ob = ob
            elif line.startswith("calls="):
                after_call = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                if after_call:
                    after_call = False
                elif len(line.split()) >= 2:
                    cost[os.path.basename(fn_ob or "?")] += int(line.split()[1])
    return cost


def blupowd_per_poll(reads, env):
    """Counts from zero after two warm-up polls to the dump `reads` intervals later. The two API
    requests that count the polls fall outside that window: under valgrind each costs about as much
    as a poll."""
    d = tempfile.mkdtemp(prefix="blupow-instr.")
    opts = os.path.join(d, "options.json")
    with open(opts, "w") as f:
        json.dump({"devices": [{"name": "Rover", "address": bleak_peer.CONTROLLER, "type": "controller"}],
                   "poll_interval": bleak_peer.PERIOD}, f)
    port = 18198
    out = os.path.join(d, "callgrind.out")
    daemon = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                               os.path.join(BUILD, "src/blupowd"), "--options", opts, "--data-dir", d,
                               "--port", str(port), "--bind", "127.0.0.1"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def polls():
            try:
                return bleak_peer.polls_ok(port)
            except OSError:
                return -1
        while polls() < 2:
            time.sleep(0.5)
        n0 = polls()
        subprocess.run(["callgrind_control", "-z", str(daemon.pid)], check=True, capture_output=True)
        time.sleep(reads * bleak_peer.PERIOD + 1)
        subprocess.run(["callgrind_control", "-d", str(daemon.pid)], check=True, capture_output=True)
        n1 = polls()
        dumps = [f for f in os.listdir(d) if f.startswith("callgrind.out.")]
        dump = os.path.join(d, sorted(dumps)[-1])
        with open(dump) as f:
            total = int(re.search(r"^totals: (\d+)", f.read(), re.M).group(1))
        return total / (n1 - n0), self_cost_by_object(dump)
    finally:
        daemon.terminate()
        daemon.wait()


def blupowd_at_scale(n, seconds=60):
    """Instructions per poll with n controllers: scale.py's set-up and warm-up under callgrind,
    counted from zero over `seconds`; the API requests that count the polls fall outside."""
    d = tempfile.mkdtemp(prefix=f"blupow-instr{n}.")
    out = os.path.join(d, "callgrind.out")
    stack = scale.start(n, build=BUILD, wrapper=["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"])
    pid, port = stack["daemon"].pid, stack["port"]
    try:
        time.sleep(scale.warm_up(stack["interval"]))
        n0 = scale.polls_ok(port)[0]
        subprocess.run(["callgrind_control", "-z", str(pid)], check=True, capture_output=True)
        time.sleep(seconds)
        subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
        n1 = scale.polls_ok(port)[0]
        dump = os.path.join(d, sorted(f for f in os.listdir(d) if f.startswith("callgrind.out."))[-1])
        with open(dump) as f:
            total = int(re.search(r"^totals: (\d+)", f.read(), re.M).group(1))
        return stack["interval"], n1 - n0, total / max(n1 - n0, 1)
    finally:
        scale.stop(stack)


def main_scale(counts):
    print("blupowd's user-space instructions per poll (callgrind) with n charge controllers on one adapter, "
          "set up as bench/scale.py does, 60 s counted.\n")
    print("| devices | interval (s) | polls | instructions per poll (millions) |")
    print("|---|---|---|---|")
    for n in counts:
        interval, polls, per_poll = blupowd_at_scale(n)
        print(f"| {n} | {interval} | {polls} | {per_poll / 1e6:.2f} |", flush=True)


def peer_per_read(mode, reads, env):
    """Runs the peer under callgrind with 1 read and with 1 + `reads`: the difference is the reads,
    without Python's start-up and the first read's imports."""
    code = f"""
import asyncio, sys, time
sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
import bleak_peer, bleak
for _ in range(int(sys.argv[1])):
    t = time.monotonic()
    asyncio.run(bleak_peer.peer_read({mode!r}))
    time.sleep(max(0, t + bleak_peer.PERIOD - time.monotonic()))
"""
    totals = []
    for n in (1, 1 + reads):
        p = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                            "/usr/bin/python3", "-c", code, str(n)], capture_output=True, text=True, env=env)
        if p.returncode:
            raise SystemExit(p.stderr[-3000:])
        totals.append(collected(p.stderr))
    return (totals[1] - totals[0]) / reads


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if "--scale" in sys.argv:
        return main_scale([int(a) for a in args] or [1, 10, 50, 200])
    reads = int(args[0]) if args else 10
    only_ours = "--blupowd-only" in sys.argv
    env, bus = scale.private_bus()
    sim = subprocess.Popen([os.path.join(BUILD, "sim/blupow-sim"), "--scenario",
                            os.path.join(ROOT, "scenarios/demo.json")], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        ours, split = blupowd_per_poll(reads, env)
        results = {"blupowd": ours}
        if not only_ours:
            results["bleak (find)"] = peer_per_read("find", reads, env)
            results["bleak (discover 5 s)"] = peer_per_read("discover", max(2, reads // 4), env)
    finally:
        sim.terminate()
        sim.wait()
        scale.close_bus(bus)
    print(f"User-space instructions per read of one charge controller (callgrind), one read every "
          f"{bleak_peer.PERIOD} s.\n")
    print("| reader | instructions per read (millions) | ratio |")
    print("|---|---|---|")
    for name, v in results.items():
        print(f"| {name} | {v / 1e6:.2f} | {v / results['blupowd']:.1f}× |")
    total = sum(split.values())
    print("\nblupowd's instructions by where they run: " +
          ", ".join(f"{ob} {100 * n / total:.0f}%" for ob, n in split.most_common() if n >= total / 200))


if __name__ == "__main__":
    main()
