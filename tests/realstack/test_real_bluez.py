"""BluPow on the real Bluetooth stack: Debian 12's kernel and bluetoothd 5.66, btvirt's LE
controllers, the demo's modules served by blupow-sim as real peripherals, blupowd the central.
Runs inside the VM (tests/realstack/run.sh), as root. What the link does is asked of the
peripheral's side, never taken from blupowd's own log."""
import functools
import os
import signal
import subprocess
import sys
import time
import unittest

import dbus

sys.path.insert(0, os.path.dirname(__file__))
import stack  # noqa: E402

DEMO_MODULES = 5  # inverter, controller, battery hub (two packs), DC-DC charger, shunt


def family_devices(peripheral):
    """The demo's devices at the addresses the peripherals really have."""
    by_name = peripheral.modules
    addr = {name: a for name, (a, _) in by_name.items()}
    return [
        {"name": "Inverter", "address": addr["BTRIC134000035"], "type": "inverter"},
        {"name": "Rover", "address": addr["BT-TH-66EDFC11"], "type": "controller"},
        {"name": "Battery 1", "address": addr["BT-TH-481B1BB7"], "type": "battery", "modbus_id": 48},
        {"name": "Battery 2", "address": addr["BT-TH-481B1BB7"], "type": "battery", "modbus_id": 49},
        {"name": "DC-DC charger", "address": addr["BT-TH-16178A45"], "type": "dcc"},
        {"name": "Shunt", "address": addr["RTMShunt30017000621"], "type": "shunt"},
    ]


def again_on_a_broken_stack(test):
    """A test that fails with the emulated stack broken under it (bluetoothd or btvirt gone, an
    adapter lost, the kernel's Bluetooth oopsed, a module's advertising not coming back, a
    central that another client cannot connect from either) runs once more on a stack built
    afresh, after the first failure and its evidence are printed. Without this, one such break
    failed every later test of the class in CI. A failure on a sound stack stands, and so does a
    module left linked: that one is blupowd's."""
    @functools.wraps(test)
    def run(self):
        try:
            return test(self)
        except Exception as failure:
            self.tearDown()
            why = self.stack_trouble() or self.central_trouble()
            self.print_evidence(failure, why)
            if not why:
                raise
        print(f"realstack: {self.id()}: the stack was broken ({'; '.join(why)}): built afresh, once more",
              file=sys.stderr, flush=True)
        type(self).rebuild()
        self.setUp()
        return test(self)
    return run


class RealStack(unittest.TestCase):
    """One bluetoothd for the class: the central's adapter, the five modules, one spare central."""

    @classmethod
    def setUpClass(cls):
        cls.kernel = stack.KernelLog()
        cls.build()

    @classmethod
    def build(cls):
        cls.stack = stack.Stack(controllers=DEMO_MODULES + 2)
        cls.central = cls.stack.adapters[0]
        cls.other_central = cls.stack.adapters[1]
        cls.peripheral = stack.Peripheral(cls.stack, "demo", cls.stack.adapters[2:])
        cls.devices = family_devices(cls.peripheral)

    @classmethod
    def rebuild(cls):
        cls.peripheral.close()
        cls.stack.close()
        cls.build()

    @classmethod
    def tearDownClass(cls):
        cls.peripheral.close()
        cls.stack.close()

    def setUp(self):
        self.daemon = None
        # A test that left bluetoothd stopped, or a kernel that took it down, costs only itself.
        if self.stack.ensure_bluetoothd():
            self.peripheral.wait_registered()
        # A module a failed test left linked is let go, so that the next test starts clean. (A
        # daemon just stopped may still be handing its links back: a few seconds first.)
        try:
            stack.wait_for(lambda: not any(self.peripheral.stats(a)["connected"]
                                           for a, _ in self.peripheral.modules.values()), 10, "every link down")
        except AssertionError:
            pass
        for name, (address, _) in self.peripheral.modules.items():
            for central in (self.central, self.other_central):
                try:
                    if self.stack.device_connected(central, address):
                        print(f"realstack: {self.id()}: {name} was left linked to {central}; disconnecting it",
                              file=sys.stderr)
                        self.stack.disconnect_from(central, address)
                except dbus.DBusException:
                    pass  # the health check below says what is wrong
        why = self.stack_trouble()
        if why:
            print(f"realstack: {self.id()}: the stack was broken before it ({'; '.join(why)}): built afresh",
                  file=sys.stderr, flush=True)
            type(self).rebuild()

    def tearDown(self):
        if self.daemon:
            self.daemon.stop()
            self.daemon = None

    def stack_trouble(self):
        """What is wrong with the stack but blupowd's own doing (see again_on_a_broken_stack)."""
        self.kernel_lines = self.kernel.new()
        oops = [x for x in self.kernel_lines if any(m in x for m in stack.KernelLog.OOPS)]
        why = self.stack.trouble() + [f"kernel: {x.strip()}" for x in oops[:3]]
        if not why:
            why = self.peripheral.trouble()
        return why

    def central_trouble(self):
        """Whether another client connects from each central to a module that advertises (the
        Rover): a controller left with an LE connection that never completes refuses every
        other, whoever asks."""
        rover = self.address("BT-TH-66EDFC11")
        for central in (self.central, self.other_central):
            try:
                self.stack.connect_from(central, rover)
                self.stack.disconnect_from(central, rover)
            except (AssertionError, dbus.DBusException) as e:
                return [f"{central} cannot connect to the Rover for another client either ({str(e)[:200]})"]
        return []

    def print_evidence(self, failure, why):
        """What the logs held when a test failed: the CI's output is all there is to read later."""
        out = [f"realstack: {self.id()} failed: {str(failure)[:600]}",
               f"  the stack after it: {'; '.join(why) or 'sound'}",
               "  blupowd, last lines:", *("    " + x for x in stack.log_tail("blupowd.log", 12)),
               "  bluetoothd, last errors:",
               *("    " + x for x in stack.log_tail("bluetoothd.log", 8, ("rror", "ailed", "imeout", "crash"))
                   if "sap_server_register" not in x and "start_discovery_timeout" not in x),
               "  blupow-sim, last lines:", *("    " + x for x in stack.log_tail("sim.log", 8)),
               "  the kernel's Bluetooth warnings meanwhile:", *("    " + x for x in self.kernel_lines[-8:])]
        print("\n".join(out), file=sys.stderr, flush=True)

    def start_daemon(self, devices=None, **options):
        self.daemon = stack.Daemon(devices or self.devices, self.central, **options)
        return self.daemon

    def address(self, name):
        return self.peripheral.modules[name][0]

    def link_up_seen_by_module(self, name):
        return bool(self.peripheral.stats(self.address(name))["connected"])

    # ---- every family, read right ----

    def test_every_family_read_equal_to_registers(self):
        d = self.start_daemon()
        for dev_id in ("inverter", "rover", "battery-1", "battery-2", "dc-dc-charger", "shunt"):
            d.wait_device(dev_id, lambda x: x["state"] == "online", 120, "online")
        checks = [("rover", "BT-TH-66EDFC11", 255, ["battery_voltage", "pv_power", "battery_percentage", "load_status"]),
                  ("battery-2", "BT-TH-481B1BB7", 49, ["battery_current", "cell_voltage_3", "remaining_capacity", "model"]),
                  ("inverter", "BTRIC134000035", 32, ["model"]),
                  ("dc-dc-charger", "BT-TH-16178A45", 255, ["battery_voltage"]),
                  ("shunt", "RTMShunt30017000621", 0, ["shunt_voltage", "starter_battery_voltage"])]
        for dev_id, module, unit, keys in checks:
            # Values animate: poll now, and compare with the registers of the same moment. The
            # shunt streams: its latest frame is what the API shows.
            # The registers just before the poll and just after it bound what the poll read.
            before = self.peripheral.readings(self.address(module), unit)
            got = d.read_now(dev_id)["readings"] if dev_id != "shunt" else d.device(dev_id)["readings"]
            after = self.peripheral.readings(self.address(module), unit)
            for k in keys:
                self.assertIn(k, got, f"{dev_id}: {k} missing")
                w0, w1, g = before[k]["value"], after[k]["value"], got[k]["value"]
                if isinstance(w1, (int, float)) and not isinstance(w1, bool):
                    lo, hi = min(w0, w1), max(w0, w1)
                    slack = max(abs(hi) * 0.05, 0.2)
                    self.assertTrue(lo - slack <= g <= hi + slack, f"{dev_id}.{k}: {g} outside {w0}..{w1}")
                else:
                    self.assertEqual(g, w1, f"{dev_id}.{k}")

    # ---- fault 1: every session hands the link back ----

    def test_link_down_after_every_poll_and_after_sigterm(self):
        rover = self.address("BT-TH-66EDFC11")
        # Counted before blupowd starts: its first session may connect within a second.
        stack.wait_for(lambda: not self.link_up_seen_by_module("BT-TH-66EDFC11"), 10,
                       "the module's link down before the test")
        before = self.peripheral.stats(rover)
        d = self.start_daemon(devices=[x for x in self.devices if x["name"] == "Rover"], poll_interval=10)
        d.wait_device("rover", lambda x: x["state"] == "online", 60, "online")
        for n in range(3):
            self.assertEqual(d.poll("rover")["state"], "online")
            # The module's side sees the link go down within the disconnect's 2.5 s.
            stack.wait_for(lambda: not self.link_up_seen_by_module("BT-TH-66EDFC11"), 10,
                           f"the module's link down after poll {n + 1}")
        after = self.peripheral.stats(rover)
        self.assertGreaterEqual(after["connects"] - before["connects"], 3)
        # Every link that came up went down, but for one a scheduled poll may have just opened.
        self.assertEqual(after["connects"] - before["connects"],
                         after["disconnects"] - before["disconnects"] + int(bool(after["connected"])))
        self.assertFalse(self.stack.device_connected(self.central, rover))

        # SIGTERM in the middle of a session: the link still goes down.
        d.post("/api/v1/devices/rover/poll")
        stack.wait_for(lambda: self.link_up_seen_by_module("BT-TH-66EDFC11"), 20, "a session's link up")
        self.assertEqual(d.stop(signal.SIGTERM), 0)
        self.daemon = None
        stack.wait_for(lambda: not self.link_up_seen_by_module("BT-TH-66EDFC11"), 10,
                       "the module's link down after SIGTERM")

    def test_waiting_between_polls_follows_no_advertisement(self):
        """Another program scans, as Home Assistant's Bluetooth integration does, and the module
        advertises every second: between polls blupowd leaves the module's signals unwatched once
        it has seen it advertise, and a poll still finds and reads it at once."""
        d = self.start_daemon(devices=[x for x in self.devices if x["name"] == "Rover"], poll_interval=3600)
        d.wait_device("rover", lambda x: x["state"] == "online", 60, "online")
        path = self.stack.device_path(self.central, self.address("BT-TH-66EDFC11"))

        def watched():
            return [r for r in self.stack.match_rules_of(d.proc.pid) if f"path='{path}'" in r]
        self.assertTrue(watched(), "the module's signals followed before anyone scans")
        adapter = dbus.Interface(self.stack.bus().get_object("org.bluez", "/org/bluez/" + self.central),
                                 "org.bluez.Adapter1")
        adapter.SetDiscoveryFilter({"Transport": "le", "DuplicateData": True})
        adapter.StartDiscovery()
        try:
            stack.wait_for(lambda: not watched(), 30, "the module's signals unwatched between polls")
            dev = d.poll("rover")
            self.assertEqual((dev["state"], dev["diagnosis"]), ("online", None))
            stack.wait_for(lambda: not watched(), 30, "unwatched again after the poll")
        finally:
            adapter.StopDiscovery()

    def test_keep_connected_link_handed_back_at_shutdown(self):
        d = self.start_daemon(devices=[x for x in self.devices if x["name"] == "Rover"], keep_connected=True)
        d.wait_device("rover", lambda x: x["state"] == "online", 60, "online")
        time.sleep(3)
        self.assertTrue(self.link_up_seen_by_module("BT-TH-66EDFC11"), "keep_connected keeps the link up")
        self.assertEqual(d.stop(signal.SIGTERM), 0)
        self.daemon = None
        stack.wait_for(lambda: not self.link_up_seen_by_module("BT-TH-66EDFC11"), 10,
                       "the kept link down after SIGTERM")

    # ---- notifications and writes through BlueZ's sockets, and the D-Bus way ----

    def steps(self, d, dev_id):
        status, out = d.post(f"/api/v1/devices/{dev_id}/verify")
        self.assertEqual(status, 200, out)
        return {s["step"]: s for s in out["steps"]}

    def test_acquired_sockets_and_the_start_notify_fallback(self):
        rover = self.address("BT-TH-66EDFC11")
        d = self.start_daemon(devices=[x for x in self.devices if x["name"] == "Rover"], keep_connected=True,
                              poll_interval=300)
        d.wait_device("rover", lambda x: x["state"] == "online", 60, "online")
        steps = self.steps(d, "rover")
        self.assertIn("notification socket", steps["notify"]["detail"])
        self.assertIn("write socket", steps["write"]["detail"])
        # Another program on the host subscribes to the module's notifications first: BlueZ
        # refuses AcquireNotify, and blupowd takes them as PropertiesChanged signals instead.
        dev_path = self.stack.device_path(self.central, rover)
        notify = [p for p, ifs in self.stack.objects().items() if str(p).startswith(dev_path + "/") and
                  "org.bluez.GattCharacteristic1" in ifs and
                  str(ifs["org.bluez.GattCharacteristic1"]["UUID"]).startswith("0000fff1")]
        self.assertEqual(len(notify), 1, notify)
        other = self.stack.bus()
        char = stack.dbus.Interface(other.get_object("org.bluez", notify[0]), "org.bluez.GattCharacteristic1")
        char.StartNotify()
        try:
            steps = self.steps(d, "rover")
            self.assertTrue(all(s["ok"] for s in steps.values()), steps)
            self.assertEqual(steps["notify"]["detail"], "subscribed", steps["notify"])
            self.assertEqual(d.device("rover")["state"], "online")
        finally:
            char.StopNotify()
        self.assertEqual(self.peripheral.stats(rover)["connected"], 1)

    # ---- fault 2: RSSI 127 is no value ----

    def test_rssi_not_available_is_no_value(self):
        d = self.start_daemon(devices=[x for x in self.devices if x["name"] == "Rover"])
        dev = d.wait_device("rover", lambda x: x["state"] == "online", 60, "online")
        # btvirt has no radio: every advertising report carries 127, "RSSI not available".
        self.assertIsNone(dev["rssi"])
        self.assertNotIn("blupow_rssi_dbm{", d.get_text("/metrics"))
        verify = subprocess.run([os.path.join(stack.BUILD, "src/blupowd"), "verify", "Rover", "--options",
                                 d.options], capture_output=True, text=True, timeout=120)
        # A verify that finds the last poll's link still up has no advertisement to show.
        self.assertTrue("RSSI not reported" in verify.stdout or "already connected" in verify.stdout,
                        verify.stdout)
        self.assertNotIn("127", verify.stdout)

    # ---- faults, each with its diagnosis and recovery ----

    def test_asleep_then_awake(self):
        inverter = self.address("BTRIC134000035")
        d = self.start_daemon(devices=[x for x in self.devices if x["name"] == "Inverter"], poll_interval=10)
        d.wait_device("inverter", lambda x: x["state"] == "online", 60, "online")
        self.peripheral.set_fault(inverter, "asleep", -1)
        try:
            dev = d.wait_device("inverter", lambda x: x["diagnosis"] and x["diagnosis"]["code"] == "inverter_asleep",
                                150, "diagnosed asleep")
            # A new session sets it connecting while it tries again.
            self.assertIn(dev["state"], ("asleep", "connecting"))
        finally:
            self.peripheral.set_fault(inverter, "asleep", 0)
        d.wait_device("inverter", lambda x: x["state"] == "online" and not x["diagnosis"], 120, "online again")

    def test_drop_mid_reply_is_weak_signal_and_recovers(self):
        rover = self.address("BT-TH-66EDFC11")
        d = self.start_daemon(devices=[x for x in self.devices if x["name"] == "Rover"])
        d.wait_device("rover", lambda x: x["state"] == "online", 60, "online")
        self.peripheral.set_fault(rover, "drop_mid_response", 1)
        d.poll("rover")
        dev = d.wait_device("rover", lambda x: x["diagnosis"] and x["diagnosis"]["code"] == "weak_signal", 40,
                            "weak_signal after the drop")
        self.assertIn("dropped", dev["diagnosis"]["message"])
        d.poll("rover")
        d.wait_device("rover", lambda x: x["state"] == "online" and not x["diagnosis"], 40, "online again")

    def test_wrong_modbus_id_never_answered(self):
        devs = [dict(x, modbus_id=17) for x in self.devices if x["name"] == "Rover"]
        d = self.start_daemon(devices=devs)
        dev = d.wait_device("rover", lambda x: x["diagnosis"] and x["diagnosis"]["code"] in
                            ("no_reply", "wrong_modbus_id"), 90, "no reply diagnosed")
        self.assertIn(dev["diagnosis"]["code"], ("no_reply", "wrong_modbus_id"))

    def test_held_by_another_central(self):
        rover = self.address("BT-TH-66EDFC11")
        d = self.start_daemon(devices=[x for x in self.devices if x["name"] == "Rover"])
        d.wait_device("rover", lambda x: x["state"] == "online", 60, "online")
        # Another central (a phone with the Renogy app) finds the module and takes its one
        # connection between two polls.
        other = self.stack.connect_from(self.other_central, rover)
        try:
            stack.wait_for(lambda: self.link_up_seen_by_module("BT-TH-66EDFC11"), 30, "the other central's link")
            dev = d.wait_device("rover", lambda x: x["diagnosis"] and x["diagnosis"]["code"] in
                                ("held_by_other_central", "device_asleep"), 150, "diagnosed held or asleep")
            self.assertIn("DC Home", dev["diagnosis"]["remedy"])
            self.assertEqual(self.peripheral.stats(rover)["connected"], 1)
        finally:
            self.stack.disconnect_from(self.other_central, rover)
        d.wait_device("rover", lambda x: x["state"] == "online" and not x["diagnosis"], 150, "online again")

    def test_bluetoothd_stopped_is_bluez_not_running_then_recovers(self):
        d = self.start_daemon(devices=[x for x in self.devices if x["name"] == "Rover"])
        d.wait_device("rover", lambda x: x["state"] == "online", 60, "online")
        d.post("/api/v1/devices/rover/poll")
        stack.wait_for(lambda: self.link_up_seen_by_module("BT-TH-66EDFC11"), 20, "a session's link up")
        self.stack.stop_bluetoothd(signal.SIGTERM)
        try:
            dev = d.wait_device("rover", lambda x: x["diagnosis"] is not None, 20, "a diagnosis")
            self.assertEqual(dev["diagnosis"]["code"], "bluez_not_running", dev["diagnosis"])
            time.sleep(3)
            self.assertNotEqual(d.device("rover")["diagnosis"]["code"], "weak_signal")
        finally:
            self.stack.start_bluetoothd()
        d.wait_device("rover", lambda x: x["state"] == "online" and not x["diagnosis"], 120, "online again")

    def test_bluetoothd_killed_then_restarted(self):
        d = self.start_daemon(devices=[x for x in self.devices if x["name"] == "Rover"])
        d.wait_device("rover", lambda x: x["state"] == "online", 60, "online")
        self.stack.stop_bluetoothd(signal.SIGKILL)
        try:
            h = stack.wait_for(lambda: (lambda h: h if h["system"]["diagnosis"] else None)(d.get("/api/v1/health")),
                               20, "a system diagnosis")
            self.assertEqual(h["system"]["diagnosis"]["code"], "bluez_not_running")
        finally:
            self.stack.start_bluetoothd()
        d.wait_device("rover", lambda x: x["state"] == "online" and not x["diagnosis"], 120, "online again")

    # ---- isolation: a module that cannot be reached costs the others nothing ----

    def test_asleep_module_costs_the_others_nothing(self):
        """The inverter asleep among four modules that answer, all polled every 30 s (four reads
        of about 4 s each under TCG fill half the interval). On this stack a Connect to a module
        that does not advertise gets no answer at all. Sampled every second: every other device
        stays available and its data is never older than its interval plus its own read time,
        while the inverter is diagnosed asleep and then read as soon as it wakes."""
        inverter = self.address("BTRIC134000035")
        self.peripheral.set_fault(inverter, "asleep", -1)
        errors, worst, diagnosed = [], {}, False
        try:
            d = self.start_daemon(poll_interval=30)
            others = [stack.slug(x["name"]) for x in self.devices if x["name"] != "Inverter"]
            for dev_id in others:
                d.wait_device(dev_id, lambda y: y["state"] == "online", 120, "online")
            time.sleep(30)
            start = time.monotonic()
            while time.monotonic() < start + 75:
                t0 = time.monotonic()
                devs = {x["id"]: x for x in d.get("/api/v1/devices")["devices"]}
                diag = devs["inverter"]["diagnosis"]
                diagnosed = diagnosed or bool(diag and diag["code"] in ("inverter_asleep", "not_found"))
                for dev_id in others:
                    x = devs[dev_id]
                    if not x["available"] or x["diagnosis"]:
                        errors.append(f"{t0 - start:.0f} s: {dev_id} available={x['available']} {x['diagnosis']}")
                    over = x["age_s"] - (x["poll_interval"] + (x["poll_ms"] or 0) / 1000 + 1.0)
                    worst[dev_id] = round(max(worst.get(dev_id, -99), over), 1)
                    if over > 0:
                        errors.append(f"{t0 - start:.0f} s: {dev_id} data {x['age_s']} s old")
                time.sleep(max(0, 1 - (time.monotonic() - t0)))
        finally:
            self.peripheral.set_fault(inverter, "asleep", 0)
        print(f"asleep inverter: worst age against the allowance: {worst}", file=sys.stderr)
        self.assertTrue(diagnosed, "the inverter was never diagnosed asleep")
        self.assertEqual(errors[:10], [])
        d.wait_device("inverter", lambda x: x["state"] == "online" and not x["diagnosis"], 120, "awake again")

    def test_two_adapters_read_in_parallel_and_one_off_leaves_the_other(self):
        """Rover through the central's adapter, the inverter and the DC-DC charger through a
        second one: the modules see links from both at once; the second adapter powered off
        takes only its own devices."""
        second = self.other_central
        devs = [dict(x) for x in self.devices if x["name"] in ("Rover", "Inverter", "DC-DC charger")]
        for x in devs:
            if x["name"] != "Rover":
                x["adapter"] = second
        d = self.start_daemon(devices=devs, poll_interval=10)
        for x in devs:
            d.wait_device(stack.slug(x["name"]), lambda y: y["state"] == "online", 120, "online")
        self.assertEqual(d.device("inverter")["adapter"], second)
        self.assertEqual(d.device("rover")["adapter"], self.central)
        rover, inverter = self.address("BT-TH-66EDFC11"), self.address("BTRIC134000035")

        def both_linked():
            return self.peripheral.stats(rover)["connected"] and self.peripheral.stats(inverter)["connected"]
        # Both asked at the same moment, each of its own adapter: their sessions overlap. (Left to
        # their schedules, two 10 s intervals can keep a phase at which they never do.)
        for attempt in range(4):
            d.post("/api/v1/devices/rover/poll")
            d.post("/api/v1/devices/inverter/poll")
            try:
                stack.wait_for(both_linked, 15, "both modules linked at once", interval=0.02)
                break
            except AssertionError:
                if attempt == 3:
                    raise
        # Off between sessions (a pending LE connect under a powered-off adapter oopses 6.1).
        d.stop()
        d = self.start_daemon(devices=devs, poll_interval=300)
        for x in devs:
            d.wait_device(stack.slug(x["name"]), lambda y: y["state"] == "online", 120, "online")
        stack.wait_for(lambda: all(not a["session"] for a in d.get("/api/v1/health")["system"]["adapters"]), 30,
                       "no session running")
        time.sleep(1)
        idx = second.replace("hci", "")
        self.assertEqual(self.stack.btmgmt("--index", idx, "power", "off").returncode, 0)
        try:
            d.post("/api/v1/devices/inverter/poll")
            dev = d.wait_device("inverter", lambda x: x["diagnosis"] and x["diagnosis"]["code"] == "adapter_off", 40,
                                "adapter_off")
            self.assertIn(second, dev["diagnosis"]["message"])
            dev = d.poll("rover")
            self.assertEqual((dev["state"], dev["diagnosis"], dev["available"]), ("online", None, True))
        finally:
            self.stack.btmgmt("--index", idx, "power", "on")
        d.post("/api/v1/devices/inverter/poll")
        try:
            d.wait_device("inverter", lambda x: x["state"] == "online" and not x["diagnosis"], 120, "online again")
        except AssertionError as e:
            # What the daemon's own schedule shows, for a failure seen rarely and not yet explained.
            raise AssertionError(f"{e}; inverter: {d.device('inverter')}; adapters: "
                                 f"{d.get('/api/v1/health')['system']['adapters']}") from None

    def test_adapter_powered_off_then_on(self):
        # Between sessions: Debian 12's kernel oopses (hci_chan_del, from l2cap_sock_release) when
        # the adapter goes off under a pending LE connection, and takes bluetoothd with it.
        d = self.start_daemon(devices=[x for x in self.devices if x["name"] == "Rover"], poll_interval=300)
        d.wait_device("rover", lambda x: x["state"] == "online", 60, "online")
        stack.wait_for(lambda: not self.link_up_seen_by_module("BT-TH-66EDFC11"), 20, "the session's end")
        time.sleep(1)
        idx = self.central.replace("hci", "")
        self.assertEqual(self.stack.btmgmt("--index", idx, "power", "off").returncode, 0)
        try:
            d.post("/api/v1/devices/rover/poll")
            dev = d.wait_device("rover", lambda x: x["diagnosis"] and x["diagnosis"]["code"] == "adapter_off", 40,
                                "adapter_off")
            self.assertIn(self.central, dev["diagnosis"]["message"])
        finally:
            self.stack.btmgmt("--index", idx, "power", "on")
        d.post("/api/v1/devices/rover/poll")
        d.wait_device("rover", lambda x: x["state"] == "online" and not x["diagnosis"], 120, "online again")

    def test_adapter_removed_then_back(self):
        d = self.start_daemon(devices=[x for x in self.devices if x["name"] == "Rover"], poll_interval=300)
        d.wait_device("rover", lambda x: x["state"] == "online", 60, "online")
        stack.wait_for(lambda: not self.link_up_seen_by_module("BT-TH-66EDFC11"), 20, "the session's end")
        time.sleep(1)
        self.stack.unplug_controllers()
        try:
            d.post("/api/v1/devices/rover/poll")
            dev = d.wait_device("rover", lambda x: x["diagnosis"] and x["diagnosis"]["code"] in
                                ("no_adapter", "adapter_missing"), 30, "the adapter missing")
            self.assertEqual(dev["state"], "error", dev)
        finally:
            self.stack.plug_controllers()
            self.peripheral.wait_registered()
        d.post("/api/v1/devices/rover/poll")
        d.wait_device("rover", lambda x: x["state"] == "online" and not x["diagnosis"], 120, "online again")


for _name, _test in list(vars(RealStack).items()):
    if _name.startswith("test_"):
        setattr(RealStack, _name, again_on_a_broken_stack(_test))

if __name__ == "__main__":
    unittest.main(verbosity=2)
