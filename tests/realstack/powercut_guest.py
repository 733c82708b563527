"""One boot of the power-cut test, inside the VM (tests/realstack/powercut.py drives it). The data
directory is on /dev/vda, a raw image on the host attached as a virtio disk without host cache,
ext4. After a cut: the file system is checked, the database's integrity, every poll the daemon
had reported committed, and the readings and energy counters the restarted daemon serves at once.
Then, unless this is the last boot, it polls and records what the daemon reports committed in
/mnt/reported-ROUND.jsonl (synced line by line to the host) until the host cuts the power.
    powercut_guest.py ROUND LAST_ROUND COMMIT_INTERVAL"""
import atexit
import datetime
import glob
import shutil
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../system"))
import sysenv  # noqa: E402

DISK, MOUNT = "/dev/vda", "/tmp/disk"
DATA = os.path.join(MOUNT, "data")
POLL_INTERVAL = 5
DEVICES = [d for d in sysenv.DEMO_DEVICES if d["name"] in ("Rover", "Battery 1", "Inverter", "Shunt")]
ENERGY = [("battery-1", "energy_charged"), ("battery-1", "energy_discharged"), ("shunt", "energy_charged"),
          ("shunt", "energy_discharged"), ("inverter", "energy_output")]


def run(*argv):
    return subprocess.run(argv, capture_output=True, text=True)


def seconds(iso):
    return datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()


def check_file_system(failures):
    for module in ("virtio_blk", "ext4"):
        run("modprobe", module)
    end = time.monotonic() + 20
    while not os.path.exists(DISK) and time.monotonic() < end:
        time.sleep(0.1)
    os.makedirs(MOUNT, exist_ok=True)
    # Mounting replays the journal, as a boot does; the file system must then be clean.
    for argv in (["mount", "-t", "ext4", DISK, MOUNT], ["umount", MOUNT]):
        p = run(*argv)
        if p.returncode:
            failures.append(f"{' '.join(argv)}: {p.stderr.strip()}")
            return False
    p = run("e2fsck", "-fn", DISK)
    if p.returncode:
        failures.append(f"e2fsck after the cut: exit {p.returncode}: {p.stdout[-600:]}")
    p = run("mount", "-t", "ext4", "-o", "noatime", DISK, MOUNT)
    if p.returncode:
        failures.append(f"mount: {p.stderr.strip()}")
        return False
    os.makedirs(DATA, exist_ok=True)
    return True


def reported(round_no):
    path = f"/mnt/reported-{round_no}.jsonl"
    out = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass  # the line the cut interrupted
    return out


def check_database(previous, failures, result):
    db = os.path.join(DATA, "blupow.db")
    if not os.path.exists(db):
        failures.append("the database is gone")
        return
    con = sqlite3.connect(db)
    try:
        ok = con.execute("PRAGMA integrity_check").fetchone()[0]
        if ok != "ok":
            failures.append(f"integrity_check: {ok}")
        committed, missing, lost = [], [], []
        for r in previous:
            t = seconds(r["last_poll"])
            n = con.execute("SELECT count(*) FROM polls JOIN device_ids USING (dev) WHERE id = ? AND t >= ? AND t < ?",
                            (r["device"], int(t * 1e6), int((t + 1) * 1e6))).fetchone()[0]
            if r["committed"]:
                committed.append(r)
                if not n:
                    missing.append(r)
            elif not n:
                lost.append(t)
        result["committed_reported"] = len(committed)
        result["committed_missing"] = len(missing)
        if missing:
            failures.append(f"{len(missing)} of {len(committed)} polls reported committed are missing: {missing[:3]}")
        # Polls not committed yet when the power went: lost, but none older than the commit
        # interval (and the poll being written) at the cut, the newest poll seen before it.
        cut = max([seconds(r["last_poll"]) for r in previous] or [0])
        result["seconds_lost_at_most"] = round(max([cut - t for t in lost] or [0.0]), 1)
        result["polls_lost"] = len(set(lost))
        newest = {}
        for dev_id, t in con.execute("SELECT id, max(t) FROM polls JOIN device_ids USING (dev) GROUP BY id"):
            newest[dev_id] = t / 1e6
        result["newest_in_db"] = newest
    finally:
        con.close()


def check_restart(env, previous, commit_interval, failures, result):
    """The restarted daemon serves the last committed readings at once, and no counter fell."""
    devs = {d["id"]: d for d in env.get_json("/api/v1/devices")["devices"]}
    last_committed, energy = {}, {}
    for r in previous:
        t = seconds(r["last_poll"])
        if r["committed"]:
            last_committed[r["device"]] = max(last_committed.get(r["device"], 0), t)
        for key, v in r.get("energy", {}).items():
            energy[(r["device"], key)] = max(energy.get((r["device"], key), 0), v)
    for dev_id, t in last_committed.items():
        d = devs.get(dev_id)
        served = seconds(d["readings_at"]) if d and d["readings_at"] else 0
        if served < t:
            failures.append(f"{dev_id}: served readings of {d and d['readings_at']}, older than a poll reported committed")
        if not d or not d["readings"]:
            failures.append(f"{dev_id}: no readings served at once after the restart")
    lost = result.get("seconds_lost_at_most", 0.0)
    if lost > commit_interval + POLL_INTERVAL + 2:
        failures.append(f"polls of {lost:.1f} s before the cut lost with commit_interval {commit_interval}")
    for (dev_id, key), v in energy.items():
        now = devs[dev_id]["readings"].get(key, {}).get("value")
        if now is None and dev_id not in last_committed and v == 0:
            continue  # nothing of it had reached the disk, and nothing was counted yet
        if now is None or now + 1e-9 < v:
            failures.append(f"{dev_id}.{key}: {v} before the cut, {now} after")


def record(env, round_no):
    """Until the power goes: every new poll the daemon reports, and whether it says it is committed."""
    seen = {}
    path = f"/mnt/reported-{round_no}.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    open(f"/mnt/polling-{round_no}", "w").close()
    while True:
        try:
            health = env.get_json("/api/v1/health")
            devs = env.get_json("/api/v1/devices")["devices"]
        except (OSError, AssertionError, ValueError):
            time.sleep(0.2)
            continue
        until = health["store"]["committed_until"]
        for d in devs:
            if not d["last_poll"]:
                continue
            committed = until is not None and seconds(d["last_poll"]) <= seconds(until)
            if seen.get(d["id"]) == (d["last_poll"], committed):
                continue
            seen[d["id"]] = (d["last_poll"], committed)
            energy = {k: d["readings"][k]["value"] for dev_id, k in ENERGY if dev_id == d["id"] and k in d["readings"]}
            line = json.dumps({"device": d["id"], "last_poll": d["last_poll"], "committed": committed,
                               "energy": energy}) + "\n"
            os.write(fd, line.encode())
            os.fsync(fd)
        time.sleep(0.3)


def keep_logs(round_no):
    for log in glob.glob("/tmp/blupow-system.*/*.log"):
        shutil.copy(log, f"/mnt/{round_no}-{os.path.basename(log)}")


def main():
    round_no, last_round, commit_interval = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    failures, result = [], {"round": round_no}
    # busctl asks for a name's credentials, cgroup included (the system tests' environment waits
    # for the simulator with it): the guest's init mounts no cgroup file system.
    run("mount", "-t", "cgroup2", "cgroup2", "/sys/fs/cgroup")
    if check_file_system(failures):
        previous = reported(round_no - 1) if round_no else []
        if round_no:
            check_database(previous, failures, result)
        # The simulator's and the daemon's logs go to the host's share at the end (sockets cannot
        # live on 9p, so the environment itself stays on tmpfs).
        tempfile.tempdir = "/tmp"
        os.environ["BLUPOW_KEEP_TEST_DIR"] = "1"
        atexit.register(keep_logs, round_no)
        env = sysenv.Env(devices=DEVICES, options={"poll_interval": POLL_INTERVAL, "commit_interval": commit_interval})
        with open(env.options_path) as f:
            options = f.read()
        env.data = DATA
        env.options_path = os.path.join(DATA, "options.json")
        with open(env.options_path, "w") as f:
            f.write(options)
        env.start_daemon(timeout=60)
        if round_no:
            check_restart(env, previous, commit_interval, failures, result)
        result["failures"] = failures
        with open(f"/mnt/result-{round_no}.json", "w") as f:
            json.dump(result, f)
            f.flush()
            os.fsync(f.fileno())
        if round_no < last_round and not failures:
            env.wait_all_online(60)
            record(env, round_no)  # until the cut
        env.close()
        run("umount", MOUNT)
    else:
        with open(f"/mnt/result-{round_no}.json", "w") as f:
            json.dump({"round": round_no, "failures": failures}, f)
    print(json.dumps(result))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
