#!/usr/bin/python3
"""BluPow on the real Bluetooth stack, measured: tests/realstack's VM (Debian 12's kernel,
bluetoothd 5.66, btvirt) with the demo's modules as real peripherals.

1. A full read of each family by blupowd: wall time (the API's poll_ms), and the CPU it cost
   blupowd and bluetoothd (the host pays for both).
2. The same controller read by a bleak reader (connect, notify, the controller's four
   requests, disconnect), with its own CPU and bluetoothd's: a client that makes bluetoothd
   work harder is not lighter. bleak 0.20.2 cannot connect on 5.66, so the same read is also
   made along bleak's D-Bus path by hand (BLEAK_PATH_READER).
3. blupowd waiting between polls while other modules advertise and another program scans,
   as Home Assistant's Bluetooth integration does: its CPU per minute, and the signals it got.

Under TCG the absolute figures are slow: compare ratios.
    /usr/bin/python3 bench/realstack.py [BUILD] [READS]        (as root; boots the VM)
BLUPOW_BENCH_BASELINE=OTHER/src/blupowd adds that build to the waiting figure;
BLUPOW_BENCH_NO_IDLE=1 leaves the waiting figure out.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
CLK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


BLEAK_READER = r'''
import asyncio, sys, time
from bleak import BleakClient
REQS = [bytes.fromhex(h) for h in sys.argv[3:]]
async def main():
    async with BleakClient(sys.argv[1], adapter=sys.argv[2], timeout=60) as c:
        got = asyncio.Queue()
        await c.start_notify("0000fff1-0000-1000-8000-00805f9b34fb", lambda _, d: got.put_nowait(bytes(d)))
        for r in REQS:
            await c.write_gatt_char("0000ffd1-0000-1000-8000-00805f9b34fb", r, response=False)
            want = 5 + 2 * r[5]
            buf = b""
            while len(buf) < want:
                buf += await asyncio.wait_for(got.get(), 10)
        await c.stop_notify("0000fff1-0000-1000-8000-00805f9b34fb")
asyncio.run(main())
'''

# What bleak does on D-Bus for the same read, written out with dbus-fast (bleak's own D-Bus
# library): every BlueZ signal subscribed, GetManagedObjects, Connect, wait for ServicesResolved,
# StartNotify, WriteValue (type command) per request with the reply from Value signals,
# StopNotify, Disconnect. bleak 0.20.2 itself cannot connect on 5.66: it waits for
# ServicesResolved only while it believes the device connected, and 5.66 never signals
# Connected=true ("failed to discover services, device disconnected").
BLEAK_PATH_READER = r'''
import asyncio, sys
from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus
B = "org.bluez"
ADDR, ADAPTER, REQS = sys.argv[1], sys.argv[2], [bytes.fromhex(h) for h in sys.argv[3:]]
DEV = f"/org/bluez/{ADAPTER}/dev_" + ADDR.replace(":", "_")
async def main():
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    got, resolved = asyncio.Queue(), asyncio.Event()
    def on_message(m):
        if m.message_type != MessageType.SIGNAL or m.member != "PropertiesChanged":
            return
        ch = m.body[1]
        if m.path == DEV and ch.get("ServicesResolved") and ch["ServicesResolved"].value:
            resolved.set()
        if "Value" in ch and m.path.startswith(DEV + "/"):
            got.put_nowait(bytes(ch["Value"].value))
    bus.add_message_handler(on_message)
    async def call(path, iface, member, sig="", body=()):
        r = await bus.call(Message(destination=B, path=path, interface=iface, member=member, signature=sig,
                                   body=list(body)))
        if r.message_type == MessageType.ERROR:
            raise RuntimeError(f"{member}: {r.error_name} {r.body}")
        return r
    await bus.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                           interface="org.freedesktop.DBus", member="AddMatch", signature="s",
                           body=[f"type='signal',sender='{B}'"]))
    await call("/", "org.freedesktop.DBus.ObjectManager", "GetManagedObjects")
    await call(DEV, "org.bluez.Device1", "Connect")
    props = await call(DEV, "org.freedesktop.DBus.Properties", "Get", "ss", ("org.bluez.Device1", "ServicesResolved"))
    if not props.body[0].value:
        await asyncio.wait_for(resolved.wait(), 30)
    om = await call("/", "org.freedesktop.DBus.ObjectManager", "GetManagedObjects")
    chars = {c["UUID"].value[4:8]: p for p, ifs in om.body[0].items() if p.startswith(DEV + "/")
             for c in [ifs.get("org.bluez.GattCharacteristic1")] if c}
    await call(chars["fff1"], "org.bluez.GattCharacteristic1", "StartNotify")
    for r in REQS:
        await call(chars["ffd1"], "org.bluez.GattCharacteristic1", "WriteValue", "aya{sv}",
                   (r, {"type": Variant("s", "command")}))
        want, buf = 5 + 2 * r[5], b""
        while len(buf) < want:
            buf += await asyncio.wait_for(got.get(), 10)
    await call(chars["fff1"], "org.bluez.GattCharacteristic1", "StopNotify")
    await call(DEV, "org.bluez.Device1", "Disconnect")
asyncio.run(main())
'''


def run_reader(source, addr, central, reqs, reads, btd, env):
    """Runs a Python reader `reads` times: its wall time, its own CPU, bluetoothd's, or an error."""
    script = tempfile.mktemp(suffix=".py", dir="/tmp")
    with open(script, "w") as f:
        f.write(source)
    walls, own, bt = [], [], []
    for _ in range(reads):
        b0 = cpu_s(btd)
        t0 = time.monotonic()
        p = subprocess.run(["/usr/bin/python3", "-c",
                            "import resource,subprocess,sys;"
                            "r=subprocess.run(sys.argv[1:]);"
                            "u=resource.getrusage(resource.RUSAGE_CHILDREN);"
                            "print(u.ru_utime+u.ru_stime);sys.exit(r.returncode)",
                            "/usr/bin/python3", script, addr, central, *reqs],
                           capture_output=True, text=True, env=env, timeout=180)
        walls.append(time.monotonic() - t0)
        bt.append(cpu_s(btd) - b0)
        if p.returncode != 0:
            return None, p.stderr[-500:]
        own.append(float(p.stdout.strip().splitlines()[-1]))
        time.sleep(1)
    return {"wall_s": sum(walls) / reads, "cpu_s": sum(own) / reads, "bluetoothd_cpu_s": sum(bt) / reads}, None


def guest(reads):
    sys.path.insert(0, os.path.join(SOURCE, "tests/realstack"))
    import stack  # noqa: E402
    from conformance import modbus_read  # noqa: E402
    import dbus  # noqa: E402
    extra = 4  # other modules advertising nearby
    st = stack.Stack(controllers=5 + 2 + extra)
    central = st.adapters[0]  # st.adapters[1] stays idle: a spare central
    # The demo's modules, and other modules nearby (copies of its controllers and shunt under
    # other names), all from one blupow-sim.
    with open(os.path.join(SOURCE, "scenarios/demo.json")) as f:
        sc = json.load(f)
    nearby = [dict(m, name=f"BT-TH-NEARBY{i:02d}", address=f"00:00:00:00:00:{i + 1:02X}")
              for i, m in enumerate((sc["modules"] * 2)[:extra])]
    sc["modules"] = sc["modules"] + nearby
    path = "/tmp/bench-scenario.json"
    with open(path, "w") as f:
        json.dump(sc, f)
    per = stack.Peripheral(st, path, st.adapters[2:])
    addr = {name: a for name, (a, _) in per.modules.items()}
    devices = [
        {"name": "Inverter", "address": addr["BTRIC134000035"], "type": "inverter"},
        {"name": "Rover", "address": addr["BT-TH-66EDFC11"], "type": "controller"},
        {"name": "Battery 1", "address": addr["BT-TH-481B1BB7"], "type": "battery", "modbus_id": 48},
        {"name": "DC-DC charger", "address": addr["BT-TH-16178A45"], "type": "dcc"},
        {"name": "Shunt", "address": addr["RTMShunt30017000621"], "type": "shunt"},
    ]
    btd = st.procs["bluetoothd"].pid
    d = stack.Daemon(devices, central, poll_interval=3600, log_level="info")
    for dev in ("inverter", "rover", "battery-1", "dc-dc-charger", "shunt"):
        d.wait_device(dev, lambda x: x["state"] == "online", 180, "online")
    results = {"reads": reads, "families": {}}
    for dev in ("inverter", "rover", "battery-1", "dc-dc-charger", "shunt"):
        walls, own, bt = [], [], []
        for _ in range(reads):
            c0, b0 = cpu_s(d.proc.pid), cpu_s(btd)
            x = d.poll(dev, timeout=120)
            own.append(cpu_s(d.proc.pid) - c0)
            bt.append(cpu_s(btd) - b0)
            walls.append(x["poll_ms"] / 1000)
            time.sleep(1)
        results["families"][dev] = {"wall_s": sum(walls) / reads, "blupowd_cpu_s": sum(own) / reads,
                                    "bluetoothd_cpu_s": sum(bt) / reads}
    # bleak, reading the controller as blupowd does (its four blocks).
    reqs = [modbus_read(255, reg, n).hex() for reg, n in ((0x000C, 8), (0x001A, 1), (0x0100, 34), (0xE004, 1))]
    env = dict(os.environ, BLEAK_LOGGING="0")
    rover = addr["BT-TH-66EDFC11"]
    results["bleak_controller"], results["bleak_error"] = run_reader(BLEAK_READER, rover, central, reqs, reads, btd,
                                                                     env)
    results["bleak_path_controller"], results["bleak_path_error"] = run_reader(BLEAK_PATH_READER, rover, central,
                                                                               reqs, reads, btd, env)
    d.stop()
    # Waiting between polls while another client scans the central's adapter and the other
    # modules advertise (their advertisements refresh every second); and, for comparison, a
    # blupowd that follows every device's signals (BLUPOW_BENCH_BASELINE, an earlier build).
    bus = dbus.SystemBus()
    a = dbus.Interface(bus.get_object("org.bluez", "/org/bluez/" + central), "org.bluez.Adapter1")
    a.SetDiscoveryFilter({"Transport": "le", "DuplicateData": True})
    a.StartDiscovery()
    results["idle_while_scanned"] = {}
    if os.environ.get("BLUPOW_BENCH_NO_IDLE"):
        per.close()
        st.close()
        print("RESULT " + json.dumps(results))
        return
    for label, binary in (("this build", None), ("baseline", os.environ.get("BLUPOW_BENCH_BASELINE"))):
        if label == "baseline" and not binary:
            continue
        d = stack.Daemon(devices, central, binary=binary, poll_interval=3600, log_level="info")
        for dev in ("inverter", "rover", "battery-1", "dc-dc-charger", "shunt"):
            d.wait_device(dev, lambda x: x["state"] == "online", 240, "online")
        time.sleep(10)
        c0, b0 = cpu_s(d.proc.pid), cpu_s(btd)
        time.sleep(60)
        results["idle_while_scanned"][label] = {"blupowd_cpu_s_per_min": cpu_s(d.proc.pid) - c0,
                                                "bluetoothd_cpu_s_per_min": cpu_s(btd) - b0}
        d.stop()
    a.StopDiscovery()
    per.close()
    st.close()
    print("RESULT " + json.dumps(results))


def host(build, reads):
    out = os.path.join(build, "realstack", "bench")
    os.makedirs(out, exist_ok=True)
    job = os.path.join(out, "bench-job.sh")
    with open(job, "w") as f:
        f.write(f"export BLUPOW_SOURCE_ROOT='{SOURCE}' BLUPOW_BUILD_ROOT='{build}' "
                "BLUPOW_REALSTACK_LOGS=/mnt/logs PYTHONDONTWRITEBYTECODE=1\n"
                f"export BLUPOW_BENCH_BASELINE='{os.environ.get('BLUPOW_BENCH_BASELINE', '')}'\n"
                f"export BLUPOW_BENCH_NO_IDLE='{os.environ.get('BLUPOW_BENCH_NO_IDLE', '')}'\n"
                f"/usr/bin/python3 '{os.path.abspath(__file__)}' --guest {reads}\n")
    subprocess.run([os.path.join(SOURCE, "tests/realstack/vm.sh"), "run", out, job],
                   env=dict(os.environ, BLUPOW_VM_CACHE=os.path.join(build, "realstack")))
    with open(os.path.join(out, "guest.log")) as f:
        lines = [line for line in f if line.startswith("RESULT ")]
    if not lines:
        print("realstack bench: no result; see", os.path.join(out, "guest.log"))
        return 1
    r = json.loads(lines[-1][7:])
    print(f"real stack (bluetoothd 5.66, kernel 6.1, btvirt, TCG), {r['reads']} reads each")
    print(f"{'read':16} {'wall s':>7} {'blupowd CPU ms':>15} {'bluetoothd CPU ms':>18}")
    for fam, v in r["families"].items():
        print(f"{fam:16} {v['wall_s']:7.2f} {v['blupowd_cpu_s'] * 1000:15.1f} {v['bluetoothd_cpu_s'] * 1000:18.1f}")
    for key, label in (("bleak", "bleak"), ("bleak_path", "bleak's D-Bus path")):
        b = r.get(key + "_controller")
        if not b:
            print(f"{label}: {r.get(key + '_error')}")
            continue
        c = r["families"]["rover"]
        print(f"{label + ', rover':16} {b['wall_s']:7.2f} {b['cpu_s'] * 1000:15.1f} "
              f"{b['bluetoothd_cpu_s'] * 1000:18.1f}")
        own = c["blupowd_cpu_s"] or 1e-9
        total = c["blupowd_cpu_s"] + c["bluetoothd_cpu_s"]
        print(f"ratios {label}/blupowd: client CPU {b['cpu_s'] / own:.1f}x, client+bluetoothd "
              f"{(b['cpu_s'] + b['bluetoothd_cpu_s']) / total:.1f}x, bluetoothd "
              f"{b['bluetoothd_cpu_s'] / max(c['bluetoothd_cpu_s'], 1e-9):.2f}x, wall {b['wall_s'] / c['wall_s']:.2f}x")
    for label, i in r["idle_while_scanned"].items():
        print(f"waiting, another client scanning, 4 other modules advertising ({label}): blupowd "
              f"{i['blupowd_cpu_s_per_min'] * 1000:.0f} ms CPU per minute, bluetoothd "
              f"{i['bluetoothd_cpu_s_per_min'] * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--guest":
        guest(int(sys.argv[2]))
    else:
        build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(SOURCE, "build"))
        sys.exit(host(build, int(sys.argv[2]) if len(sys.argv) > 2 else 5))
