"""Power cuts on a real kernel: blupowd's data directory on an ext4 file system on a raw image,
attached to the VM as a virtio disk without host cache; the VM killed outright (qemu SIGKILL, no
shutdown, no sync) at a random moment while blupowd polls, then booted again on the same disk,
ROUNDS times. Each boot checks the last one's cut (tests/realstack/powercut_guest.py): fsck
clean, PRAGMA integrity_check ok, every poll the daemon had reported committed still there, the
last committed readings served at once, at most the commit interval lost, no energy counter
fallen.
    /usr/bin/python3 tests/realstack/powercut.py [BUILD] [--rounds N] [--commit-interval S]"""
import argparse
import json
import os
import random
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.abspath(os.path.join(HERE, "../.."))


def boot(build, out, round_no, last, commit_interval, cut):
    job = os.path.join(out, f"job-{round_no}.sh")
    with open(job, "w") as f:
        f.write(f"export BLUPOW_SOURCE_ROOT='{SOURCE}' BLUPOW_BUILD_ROOT='{build}' PYTHONDONTWRITEBYTECODE=1\n"
                f"/usr/bin/python3 '{HERE}/powercut_guest.py' {round_no} {last} {commit_interval}\n")
    env = dict(os.environ, BLUPOW_VM_CACHE=os.path.join(build, "realstack"),
               BLUPOW_VM_DISK=os.path.join(out, "disk.img"))
    vm = subprocess.Popen([os.path.join(HERE, "vm.sh"), "run", out, job], env=env, start_new_session=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    cut_after = None
    if cut:
        marker = os.path.join(out, f"polling-{round_no}")
        end = time.monotonic() + 300
        while not os.path.exists(marker) and vm.poll() is None and time.monotonic() < end:
            time.sleep(0.2)
        if os.path.exists(marker):
            # Anywhere in a commit interval or two, so that cuts fall before, at and after commits.
            cut_after = random.uniform(2, 14 + commit_interval * 1.5)
            time.sleep(cut_after)
            # The power goes: qemu killed outright (timeout runs it in a process group of its own,
            # so it is found by its disk).
            subprocess.run(["pkill", "-KILL", "-f", f"file={env['BLUPOW_VM_DISK']},"], check=False)
    output = vm.communicate()[0]
    return vm.returncode, output, cut_after


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default=os.path.join(SOURCE, "build"))
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("BLUPOW_POWERCUT_ROUNDS", "3")))
    ap.add_argument("--commit-interval", type=int, default=0)
    a = ap.parse_args()
    if os.environ.get("BLUPOW_REALSTACK") == "skip":
        print("powercut: skipped (BLUPOW_REALSTACK=skip)")
        return 77
    if os.getuid() != 0:
        print("powercut: needs root (qemu's 9p share of / and apt)", file=sys.stderr)
        return 1
    build = os.path.abspath(a.build)
    out = os.path.join(build, "realstack", f"powercut-{a.commit_interval}")
    subprocess.run(["rm", "-rf", out], check=True)
    os.makedirs(out)
    image = os.path.join(out, "disk.img")
    with open(image, "wb") as f:
        f.truncate(64 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", image], check=True)
    failures, rows = [], []
    for round_no in range(a.rounds + 1):
        cut = round_no < a.rounds
        status, output, cut_after = boot(build, out, round_no, a.rounds, a.commit_interval, cut)
        try:
            with open(os.path.join(out, f"result-{round_no}.json")) as f:
                result = json.load(f)
        except (OSError, ValueError):
            failures.append(f"boot {round_no}: no result (exit {status}):\n{output[-2000:]}")
            break
        rows.append((round_no, cut_after, result))
        failures += [f"boot {round_no}: {x}" for x in result.get("failures", [])]
        if cut and cut_after is None:
            failures.append(f"boot {round_no}: never started polling:\n{output[-2000:]}")
        if failures:
            break
        print(f"boot {round_no}: " + ", ".join(f"{k} {v}" for k, v in result.items() if k not in ("round", "failures",
                                                                                                   "newest_in_db"))
              + (f"; cut after {cut_after:.1f} s of polling" if cut_after else ""), flush=True)
    lost = max([r.get("seconds_lost_at_most", 0) for _, _, r in rows] or [0])
    reported = sum(r.get("committed_reported", 0) for _, _, r in rows)
    missing = sum(r.get("committed_missing", 0) for _, _, r in rows)
    print(f"powercut: {len(rows) - 1} cuts, commit_interval {a.commit_interval}: {reported} polls reported "
          f"committed, {missing} missing; at most {lost} s of polls lost")
    if failures:
        print("\n".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
