#!/usr/bin/python3
"""Two builds of blupowd side by side, at the same time: CPU per poll, wakes per poll and pages
a poll touches. On a machine whose charge for a wake moves with the host's load (see
bench/wake-cost.c), two runs an hour apart cannot say which build is lighter; two daemons
measured over the same stretch can. Each gets its own private bus, simulator and N simulated
charge controllers, polled at the shortest interval the link allows (as in bench/scale.py).
    make && /usr/bin/python3 bench/side_by_side.py OTHER_BUILD_DIR [DEVICES] [SECONDS]
OTHER_BUILD_DIR is another build tree (an older version, say: git worktree, meson setup, ninja
src/blupowd); both daemons talk to this tree's simulator. With few devices the machine idles
between polls and the daemon started first (this tree's) tends to pay for waking it: run the
comparison both ways, from each tree."""
import os
import sys
import time

import scale


def main():
    if len(sys.argv) < 2:
        print(__doc__.split("\n    ")[1].split("\n")[0].strip(), file=sys.stderr)
        return 2
    other = os.path.abspath(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    seconds = int(sys.argv[3]) if len(sys.argv) > 3 else 120
    # One simulator build for both: the daemons differ, the radio and BlueZ they talk to do not.
    runs = [scale.start(n, scale.BUILD, 18271), scale.start(n, other, 18272, sim_build=scale.BUILD)]
    try:
        interval = runs[0]["interval"]
        time.sleep(scale.warm_up(interval))
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
            scale.stop(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
