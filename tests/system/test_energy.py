"""Energy counters of batteries, shunts and inverters, through the API: integrated from each
poll's power over the real time between polls, charge and discharge apart, kept across a
restart, and never ahead of what is on the disk, so that a kill (as a power cut) never makes one
fall."""
import datetime
import signal
import unittest

import sysenv

BATTERY = "F8:55:48:1B:1B:B7"
DEVICES = [d for d in sysenv.DEMO_DEVICES if d["name"] in ("Battery 1", "Inverter", "Shunt")]


def when(iso):
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class EnergyCounters(unittest.TestCase):
    def start(self, **options):
        self.env = sysenv.Env(devices=DEVICES, options=dict({"poll_interval": 5}, **options))
        self.addCleanup(self.env.close)
        self.env.start_daemon()
        self.env.wait_all_online()

    def next_poll(self, dev_id, after=None):
        """The device once it has been read again (after the given snapshot)."""
        before = after["readings_at"] if after else self.env.get_json(f"/api/v1/devices/{dev_id}")["readings_at"]
        return self.env.wait_device(dev_id, lambda x: x["readings_at"] != before, 30, "a new poll")

    def value(self, dev, key):
        return dev["readings"][key]["value"]

    def test_charge_and_discharge_over_the_real_time(self):
        self.start(commit_interval=0)
        # 13.0 V × 300 A: 3.9 kW into the battery, held still (the simulator stops animating).
        self.env.sim_call("SetValue", "sysd", BATTERY, 48, "battery_voltage", 13.0)
        self.env.sim_call("SetValue", "sysd", BATTERY, 48, "battery_current", 300)
        a = self.next_poll("battery-1", self.next_poll("battery-1"))
        meta = a["readings"]["energy_charged"]
        self.assertEqual((meta["unit"], meta["device_class"], meta["state_class"]),
                         ("kWh", "energy", "total_increasing"))
        b = self.next_poll("battery-1", self.next_poll("battery-1", self.next_poll("battery-1", a)))
        self.assertAlmostEqual(self.value(b, "battery_power"), 3900, delta=1)
        hours = (when(b["readings_at"]) - when(a["readings_at"])) / 3600
        want = 3.9 * hours  # kWh
        got = self.value(b, "energy_charged") - self.value(a, "energy_charged")
        self.assertAlmostEqual(got, want, delta=want * 0.1 + 0.001)
        self.assertEqual(self.value(b, "energy_discharged"), self.value(a, "energy_discharged"))
        # The other way: out of the battery, into energy_discharged only.
        self.env.sim_call("SetValue", "sysd", BATTERY, 48, "battery_current", -300)
        c = self.next_poll("battery-1", self.next_poll("battery-1", b))
        d = self.next_poll("battery-1", self.next_poll("battery-1", c))
        hours = (when(d["readings_at"]) - when(c["readings_at"])) / 3600
        got = self.value(d, "energy_discharged") - self.value(c, "energy_discharged")
        self.assertAlmostEqual(got, 3.9 * hours, delta=3.9 * hours * 0.1 + 0.001)
        self.assertEqual(self.value(d, "energy_charged"), self.value(c, "energy_charged"))
        # The inverter counts its output and the shunt both ways: present, never negative.
        for dev_id, keys in (("inverter", ["energy_output"]), ("shunt", ["energy_charged", "energy_discharged"])):
            dev = self.env.get_json(f"/api/v1/devices/{dev_id}")
            for k in keys:
                self.assertGreaterEqual(self.value(dev, k), 0, (dev_id, k))
                self.assertEqual(dev["readings"][k]["state_class"], "total_increasing")

    def test_kept_across_a_restart_and_never_ahead_of_the_disk(self):
        # A minute between commits: the API's counter waits for the commit.
        self.start(commit_interval=60)
        self.env.sim_call("SetValue", "sysd", BATTERY, 48, "battery_voltage", 13.0)
        self.env.sim_call("SetValue", "sysd", BATTERY, 48, "battery_current", 300)
        self.next_poll("battery-1", self.next_poll("battery-1", self.next_poll("battery-1")))
        # A clean stop writes what waits: the next start goes on from all of it.
        self.assertEqual(self.env.stop_daemon(), 0)
        self.env.start_daemon()
        restored = self.env.get_json("/api/v1/devices/battery-1")
        kept = self.value(restored, "energy_charged")
        self.assertGreater(kept, 0.005)  # three polls of 3.9 kW, 5 s apart, and the time before
        a = self.next_poll("battery-1", self.next_poll("battery-1", restored))
        b = self.next_poll("battery-1", self.next_poll("battery-1", a))
        self.assertGreater(self.env.get_json("/api/v1/health")["store"]["pending_polls"], 0)
        # Those polls wait in memory: the counter shown stays at what the disk holds.
        self.assertEqual(self.value(a, "energy_charged"), kept)
        self.assertEqual(self.value(b, "energy_charged"), kept)
        metrics = self.env.request("/metrics")[1].decode()
        line = next(x for x in metrics.splitlines()
                    if x.startswith("blupow_reading{") and 'device="battery-1"' in x and 'key="energy_charged"' in x)
        self.assertEqual(float(line.rsplit(" ", 1)[1]), kept, "/metrics shows the counter as the API does")
        # Killed as by a power cut: what was shown is on the disk, and it goes on from there.
        self.env.daemon.send_signal(signal.SIGKILL)
        self.env.daemon.wait(10)
        self.env.start_daemon()
        after = self.env.get_json("/api/v1/devices/battery-1")
        self.assertGreaterEqual(self.value(after, "energy_charged"), kept)
        later = self.next_poll("battery-1", self.next_poll("battery-1", after))
        self.assertGreaterEqual(self.value(later, "energy_charged"), self.value(after, "energy_charged"))

if __name__ == "__main__":
    unittest.main()
