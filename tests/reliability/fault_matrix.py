#!/usr/bin/python3
"""The fault matrix: every simulator fault on every kind of module, one after another, then
several at once with the adapter switched off and bluetoothd restarted, in one long run of one
daemon. Each device must be back online within two poll intervals after its fault clears; at
the end the daemon must stop cleanly (under ASan: no leak; under valgrind: no error).
    /usr/bin/python3 tests/reliability/fault_matrix.py [--daemon PATH] [--valgrind] [--quick]
Prints one line per fault with the recovery time; exits non-zero on any failure."""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../system"))
import sysenv  # noqa: E402

FAULTS = ["connect_abort", "connect_hang", "drop_mid_response", "resolved_before_characteristics",
          "corrupt_notification", "modbus_exception", "asleep", "held_by_other_central",
          "no_acquire"]  # last: the module reads through StartNotify and WriteValue from then on
MODULES = {  # one module per kind; the hub carries two batteries
    "60:98:66:ED:FC:11": ["rover"],
    "D8:B6:73:10:20:35": ["inverter"],
    "F8:55:48:1B:1B:B7": ["battery-1", "battery-2"],
    "AC:4D:16:17:8A:45": ["dc-dc-charger"],
    "C4:D3:6A:00:11:22": ["shunt"],
}
INTERVAL = 5


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--daemon", default=os.path.join(sysenv.BUILD, "src/blupowd"))
    ap.add_argument("--valgrind", action="store_true")
    ap.add_argument("--quick", action="store_true", help="one module per fault instead of every module")
    args = ap.parse_args()
    slow = 4 if args.valgrind else 1  # valgrind runs the daemon ~20x slower; sessions take longer
    env = sysenv.Env(options={"poll_interval": INTERVAL})
    daemon = args.daemon
    if args.valgrind:
        daemon = os.path.join(env.dir, "valgrind-blupowd")
        with open(daemon, "w") as f:
            f.write(f"#!/bin/sh\nexec valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite "
                    f"--log-file={env.dir}/valgrind.log {args.daemon} \"$@\"\n")
        os.chmod(daemon, 0o755)
    env.blupowd_path = daemon
    failures = []
    recoveries = []
    try:
        env.start_daemon(timeout=60 if args.valgrind else 15)
        env.wait_all_online(60 * slow)
        deadline = 2 * INTERVAL + 3 * slow

        def recover(devs, what):
            t = time.monotonic()
            try:
                for d in devs:
                    env.wait_device(d, lambda x: x["state"] == "online", deadline * 3, "online again")
            except AssertionError as e:
                failures.append(f"{what}: {e}")
                print(f"FAIL {what}: {e}", flush=True)
                return
            dt = time.monotonic() - t
            recoveries.append(dt)
            ok = dt <= deadline
            if not ok:
                failures.append(f"{what}: back online after {dt:.1f} s (limit {deadline} s)")
            print(f"{'ok  ' if ok else 'SLOW'} {what}: online {dt:.1f} s after the fault cleared", flush=True)

        # One after another.
        for fault in FAULTS:
            for addr, devs in MODULES.items():
                env.sim_call("SetFault", "ssi", addr, fault, -1)
                time.sleep(INTERVAL * 2)
                env.sim_call("SetFault", "ssi", addr, fault, 0)
                recover(devs, f"{fault} on {devs[0]}")
                if args.quick:
                    break
        # Overlapping: a fault on every module at once, the adapter off and on, bluetoothd restarted.
        for i, (addr, devs) in enumerate(MODULES.items()):
            env.sim_call("SetFault", "ssi", addr, FAULTS[i % len(FAULTS)], -1)
        time.sleep(INTERVAL)
        env.sim_call("SetPowered", "sb", "hci0", "false")
        time.sleep(INTERVAL)
        env.sim_call("SetPowered", "sb", "hci0", "true")
        env.sim_call("RestartBluez", "u", 1500)
        time.sleep(INTERVAL)
        for addr in MODULES:
            for fault in FAULTS:
                env.sim_call("SetFault", "ssi", addr, fault, 0)
        recover([d for devs in MODULES.values() for d in devs], "everything at once")
        # Bounded faults: a few occurrences each, all modules, while polling.
        for addr in MODULES:
            for fault in ("connect_abort", "corrupt_notification", "drop_mid_response"):
                env.sim_call("SetFault", "ssi", addr, fault, 2)
        time.sleep(INTERVAL * 3)
        recover([d for devs in MODULES.values() for d in devs], "bounded faults on every module")
        code = env.stop_daemon()
        if code != 0:
            failures.append(f"daemon exit status {code} (leaks or errors): see {env.dir}")
        if args.valgrind:
            log = sysenv.read_text(os.path.join(env.dir, "valgrind.log"))
            if log.strip():
                failures.append("valgrind reported:\n" + log[-3000:])
        print(f"\n{len(recoveries)} recoveries, slowest {max(recoveries):.1f} s; daemon exit status {code}")
    except BaseException:
        env.close()
        raise
    return env.close_campaign(failures, "fault matrix")


if __name__ == "__main__":
    sys.exit(main())
