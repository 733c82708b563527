"""Several adapters: each device is read through its own (the per-device adapter option), one
session at a time per adapter and the adapters in parallel; an adapter that goes away takes only
its own devices with it, and the API names each device's adapter and diagnosis."""
import json
import os
import shutil
import tempfile
import time
import unittest

import sysenv

# The hub's bank goes with its packs.
ON_HCI1 = {"battery-1", "battery-2", "dc-dc-charger", "shunt", "battery-bank-1bb7"}


def scenario(directory):
    with open(os.path.join(sysenv.SOURCE, "scenarios/demo.json")) as f:
        s = json.load(f)
    s["adapters"] = [{"name": "hci0", "address": "00:1A:7D:DA:71:13", "powered": True},
                     {"name": "hci1", "address": "00:1A:7D:DA:71:14", "powered": True}]
    for m in s["modules"]:
        if m["address"] in ("F8:55:48:1B:1B:B7", "AC:4D:16:17:8A:45", "C4:D3:6A:00:11:22"):
            m["adapter"] = "hci1"
    path = os.path.join(directory, "two-adapters.json")
    with open(path, "w") as f:
        json.dump(s, f)
    return path


def devices():
    out = []
    for d in sysenv.DEMO_DEVICES:
        d = dict(d)
        if sysenv.slug(d["name"]) in ON_HCI1:
            d["adapter"] = "hci1"
        out.append(d)
    return out


def sessions(calls):
    """(adapter, start, end) of every session in the simulator's call log: Connect to Disconnect."""
    open_at, out = {}, []
    for usec, _sender, path, member, _detail in calls:
        if "/dev_" not in path:
            continue
        dev = path.split("/dev_")[0] + "/dev_" + path.split("/dev_")[1].split("/")[0]
        if member == "Connect":
            open_at.setdefault(dev, usec)
        elif member == "Disconnect" and dev in open_at:
            out.append((dev.split("/")[3], open_at.pop(dev) / 1e6, usec / 1e6))
    return out


class TwoAdapters(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="blupow-adapters.")
        self.env = sysenv.Env(scenario=scenario(self.dir), devices=devices(), options={"poll_interval": 5})
        self.env.start_daemon()

    def tearDown(self):
        self.env.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_read_in_parallel_and_one_adapter_gone_leaves_the_other(self):
        env = self.env
        env.wait_all_online(60)
        by_id = {d["id"]: d for d in env.get_json("/api/v1/devices")["devices"]}
        for dev_id, d in by_id.items():
            self.assertEqual(d["adapter"], "hci1" if dev_id in ON_HCI1 else "hci0", dev_id)
        adapters = {a["name"]: a for a in env.get_json("/api/v1/health")["system"]["adapters"]}
        self.assertEqual(set(adapters), {"hci0", "hci1"})
        self.assertEqual((adapters["hci0"]["modules"], adapters["hci1"]["modules"]), (2, 3))

        # Each adapter has one session at a time; the two adapters overlap.
        time.sleep(12)
        s = sessions(env.sim_call("GetCalls", "")[0])
        for name in ("hci0", "hci1"):
            own = sorted((a, b) for ad, a, b in s if ad == name)
            self.assertGreater(len(own), 3, name)
            for (a0, b0), (a1, _) in zip(own, own[1:]):
                self.assertGreaterEqual(a1, b0 - 0.001, f"two sessions at once on {name}")
        overlaps = [(a, b) for ad, a, b in s if ad == "hci0"
                    for ad2, c, e in s if ad2 == "hci1" and c < b and a < e]
        self.assertTrue(overlaps, f"no session on hci1 overlapped one on hci0: {s}")

        # hci1 unplugged: its devices say so, hci0's stay online and available.
        env.sim_call("RemoveAdapter", "s", "hci1")
        dev = env.wait_device("shunt", lambda d: d["diagnosis"] and d["diagnosis"]["code"] == "adapter_missing", 20,
                              "adapter_missing")
        self.assertIn("hci1", dev["diagnosis"]["message"])
        health = env.get_json("/api/v1/health")
        self.assertEqual(health["system"]["diagnosis"]["code"], "adapter_missing")
        end = time.monotonic() + 3 * 5
        while time.monotonic() < end:
            for d in env.get_json("/api/v1/devices")["devices"]:
                if d["id"] not in ON_HCI1:
                    self.assertTrue(d["available"] and d["state"] == "online" and not d["diagnosis"], d)
                    self.assertLess(d["age_s"], 5 + 3)
            time.sleep(1)
        env.sim_call("AddAdapter", "s", "hci1")
        for dev_id in ON_HCI1:
            env.wait_device(dev_id, lambda d: d["state"] == "online" and not d["diagnosis"], 40, "back online")

    def test_power_one_adapter_from_the_api(self):
        env = self.env
        env.wait_all_online(60)
        env.sim_call("SetPowered", "sb", "hci1", False)
        env.wait_device("shunt", lambda d: d["diagnosis"] and d["diagnosis"]["code"] == "adapter_off", 20,
                        "adapter_off")
        self.assertEqual(env.get_json("/api/v1/devices/rover")["diagnosis"], None)
        status, body, _ = env.request("/api/v1/adapter/power", "POST", json.dumps({"adapter": "hci1"}).encode(),
                                      {"Content-Type": "application/json"})
        self.assertEqual(status, 202, body)
        self.assertEqual(json.loads(body)["adapter"], "hci1")
        status, body, _ = env.request("/api/v1/adapter/power", "POST", json.dumps({"adapter": "hci7"}).encode(),
                                      {"Content-Type": "application/json"})
        self.assertEqual(status, 404, body)
        env.wait_device("shunt", lambda d: d["state"] == "online" and not d["diagnosis"], 30, "online again")


class AdapterBack(unittest.TestCase):
    """A long interval: a device whose reads failed only because its adapter was off is read as
    soon as the adapter is back, not an interval (here five minutes) later."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="blupow-adapters.")
        self.env = sysenv.Env(scenario=scenario(self.dir), devices=devices(), options={"poll_interval": 300})
        self.env.start_daemon()

    def tearDown(self):
        self.env.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_read_at_once_when_its_adapter_is_powered_again(self):
        env = self.env
        env.wait_all_online(60)
        env.sim_call("SetPowered", "sb", "hci1", False)
        env.request("/api/v1/devices/shunt/poll", "POST", b"")
        env.wait_device("shunt", lambda d: d["diagnosis"] and d["diagnosis"]["code"] == "adapter_off", 20,
                        "adapter_off")
        before = env.get_json("/api/v1/devices/shunt")["last_poll"]
        env.sim_call("SetPowered", "sb", "hci1", True)
        dev = env.wait_device("shunt", lambda d: d["state"] == "online" and not d["diagnosis"], 20,
                              "read again without being asked")
        self.assertNotEqual(dev["last_poll"], before)
        self.assertIsNone(env.get_json("/api/v1/devices/rover")["diagnosis"])


if __name__ == "__main__":
    unittest.main()
