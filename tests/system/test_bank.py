"""A battery bank: the packs behind one hub module also shown as one battery, a device of its own
in the API, the package and the history. Its figures are the packs' as the simulator's registers
give them (capacity-weighted state of charge, summed current and power, cell and temperature
extremes); it has none while a pack has none, and says which pack and why; it comes and goes with
its packs; and its energy counters run from the summed power and survive a restart."""
import copy
import datetime
import json
import os
import unittest

import sysenv

HUB = "F8:55:48:1B:1B:B7"
BANK = "battery-bank-1bb7"
PACKS = [d for d in sysenv.DEMO_DEVICES if d["address"] == HUB]
ROVER = [d for d in sysenv.DEMO_DEVICES if d["name"] == "Rover"]


def when(iso):
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def value(dev, key):
    return dev["readings"][key]["value"]


class Bank(unittest.TestCase):
    def start(self, devices, scenario="demo", **options):
        self.env = sysenv.Env(scenario=scenario, devices=devices, options=dict({"poll_interval": 5}, **options))
        self.addCleanup(self.env.close)
        self.env.start_daemon()

    def set_pack(self, modbus_id, **values):
        for key, v in values.items():
            self.env.sim_call("SetValue", "sysd", HUB, modbus_id, key, v)

    def fresh_bank(self, after=None):
        """The bank once it has summed a poll newer than the given snapshot's."""
        before = after["readings_at"] if after else None
        return self.env.wait_device(BANK, lambda b: b["available"] and b["readings_at"] != before, 40,
                                    "a new sum of its packs")

    def test_the_adapter_off_shows_on_the_bank_as_on_its_packs(self):
        self.start(PACKS)
        self.fresh_bank()
        self.env.sim_call("SetPowered", "sb", "hci0", False)
        bank = self.env.wait_device(BANK, lambda b: (b["diagnosis"] or {}).get("code") == "adapter_off", 30,
                                    "the bank says the adapter is off")
        self.assertEqual(bank["state"], "error")
        self.assertFalse(bank["available"])
        for pack in ("battery-1", "battery-2"):
            self.assertEqual(self.env.get_json(f"/api/v1/devices/{pack}")["diagnosis"]["code"], "adapter_off")

    def test_figures_are_the_packs_summed(self):
        self.start(PACKS + ROVER)
        # Held still (the simulator stops animating what is set): a full small pack and an
        # emptier big one, so that the capacity-weighted figure differs from the mean.
        self.set_pack(48, remaining_capacity=90, full_capacity=100, battery_voltage=13.3, battery_current=12.5,
                      cell_voltage_1=3.3, cell_voltage_2=3.4, temperature_1=21.0)
        self.set_pack(49, remaining_capacity=40, full_capacity=200, battery_voltage=13.1, battery_current=-4.2,
                      cell_voltage_1=3.0, cell_voltage_2=3.3, temperature_1=-1.5)
        bank = self.fresh_bank(self.fresh_bank())
        devices = {d["id"]: d for d in self.env.get_json("/api/v1/devices")["devices"]}
        self.assertEqual(devices[BANK]["packs"], ["battery-1", "battery-2"])
        self.assertEqual(devices[BANK]["family"], "battery_bank")
        self.assertEqual(devices[BANK]["source"], "computed")
        self.assertIsNone(devices[BANK]["modbus_id"])
        self.assertEqual(len([d for d in devices.values() if d["family"] == "battery_bank"]), 1,
                         "one bank, for the hub: a module with one device has none")
        self.assertAlmostEqual(value(bank, "battery_percentage"), 43.3, places=6)  # 130 of 300 Ah
        self.assertAlmostEqual(value(bank, "remaining_capacity"), 130, places=6)
        self.assertAlmostEqual(value(bank, "full_capacity"), 300, places=6)
        self.assertAlmostEqual(value(bank, "battery_current"), 8.3, places=6)
        self.assertAlmostEqual(value(bank, "battery_power"), 13.3 * 12.5 - 13.1 * 4.2, places=2)
        self.assertAlmostEqual(value(bank, "battery_voltage"), 13.2, places=6)
        self.assertAlmostEqual(value(bank, "cell_voltage_min"), 3.0, places=6)
        self.assertGreaterEqual(value(bank, "cell_voltage_max"), 3.4)
        self.assertAlmostEqual(value(bank, "temperature_min"), -1.5, places=6)
        self.assertEqual(value(bank, "pack_count"), 2)
        # Every figure is also what the packs show in the same answer.
        p1, p2 = devices["battery-1"], devices["battery-2"]
        cells = [r["value"] for p in (p1, p2) for k, r in p["readings"].items()
                 if k.startswith("cell_voltage_") and k[13:].isdigit()]
        self.assertEqual(value(bank, "cell_voltage_max"), max(cells))
        meta = bank["readings"]["energy_charged"]
        self.assertEqual((meta["unit"], meta["state_class"]), ("kWh", "total_increasing"))
        self.assertEqual(bank["readings"]["battery_percentage"]["device_class"], "battery")
        # A history like any device's.
        hist = self.env.get_json(f"/api/v1/devices/{BANK}/history?key=battery_percentage")
        self.assertGreaterEqual(len(hist["data"]), 1, hist)
        self.assertEqual(hist["unit"], "%")
        # It is computed, not read: it cannot be verified or removed, but "poll" reads its packs.
        status, body = self.env.request(f"/api/v1/devices/{BANK}/verify", "POST")[:2]
        self.assertEqual(status, 400, body)
        self.assertEqual(json.loads(body)["error"]["code"], "computed")
        self.assertIn("battery-1", json.loads(body)["error"]["message"], "it names a pack to verify")
        status, body = self.env.request(f"/api/v1/devices/{BANK}", "DELETE")[:2]
        self.assertEqual(status, 409, body)
        self.assertEqual(json.loads(body)["error"]["code"], "computed")
        before = self.env.get_json("/api/v1/devices/battery-1")["readings_at"]
        self.assertEqual(self.env.request(f"/api/v1/devices/{BANK}/poll", "POST")[0], 202)
        self.env.wait_device("battery-1", lambda d: d["readings_at"] != before, 15, "read at the bank's poll")
        # /metrics lists it as the API does: up, its readings, their age; no link figures.
        metrics = self.env.request("/metrics")[1].decode().splitlines()
        labels = f'device="{BANK}",name="{devices[BANK]["name"]}",family="battery_bank"'
        self.assertIn(f"blupow_device_up{{{labels}}} 1", metrics)
        soc = next(x for x in metrics if x.startswith(f'blupow_reading{{{labels},key="battery_percentage"'))
        self.assertAlmostEqual(float(soc.rsplit(" ", 1)[1]), 43.3, places=6)
        self.assertTrue(any(x.startswith(f"blupow_data_age_seconds{{{labels}}}") for x in metrics))
        self.assertFalse(any(x.startswith(f"blupow_polls_total{{{labels}") for x in metrics))
        # The package gives it sensors of its own.
        package = self.env.request("/api/v1/homeassistant/package.yaml")[1].decode()
        self.assertIn("blupow_f855481b1bb7_bank_battery_percentage", package)

    def test_a_pack_without_data_leaves_the_bank_without_a_total(self):
        # Pack 49 answers nothing (a pack switched off behind the hub): it fails, and the bank
        # says so through it.
        with open(os.path.join(sysenv.SOURCE, "scenarios/demo.json")) as f:
            scenario = json.load(f)
        scenario = copy.deepcopy(scenario)
        hub = next(m for m in scenario["modules"] if m["address"] == HUB)
        hub["units"][1]["silent_blocks"] = [5000, 5017, 5042, 5104, 5122, 5130, 5223]
        path = os.path.join(self.id().rsplit(".", 1)[-1] + ".json")
        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "blupow-bank-" + path)
        with open(path, "w") as f:
            json.dump(scenario, f)
        self.addCleanup(os.remove, path)
        self.start(PACKS, scenario=path)
        self.env.wait_device("battery-1", lambda d: d["available"], 30, "read")
        pack2 = self.env.wait_device("battery-2", lambda d: d["diagnosis"] is not None, 60,
                                     "a diagnosis")
        bank = self.env.get_json(f"/api/v1/devices/{BANK}")
        self.assertFalse(bank["available"], "a total without a pack would be wrong")
        self.assertEqual(bank["diagnosis"]["code"], pack2["diagnosis"]["code"])
        self.assertIn("Battery 2", bank["diagnosis"]["message"])
        self.assertEqual(bank["diagnosis"]["remedy"], pack2["diagnosis"]["remedy"])

    def test_comes_and_goes_with_its_packs_and_keeps_its_energy(self):
        self.start(PACKS[:1], commit_interval=0)
        ids = {d["id"] for d in self.env.get_json("/api/v1/devices")["devices"]}
        self.assertNotIn(BANK, ids, "one battery is no bank")
        status, body = self.env.request("/api/v1/devices", "POST", json.dumps({
            "name": "Battery 2", "address": HUB, "type": "battery", "modbus_id": 49}).encode(),
            {"Content-Type": "application/json"})[:2]
        self.assertEqual(status, 201, body)
        self.set_pack(48, battery_voltage=13.0, battery_current=100)
        self.set_pack(49, battery_voltage=13.0, battery_current=200)
        a = self.fresh_bank(self.fresh_bank())
        b = self.fresh_bank(self.fresh_bank(a))
        self.assertAlmostEqual(value(b, "battery_power"), 3900, delta=1)
        hours = (when(b["readings_at"]) - when(a["readings_at"])) / 3600
        got = value(b, "energy_charged") - value(a, "energy_charged")
        self.assertAlmostEqual(got, 3.9 * hours, delta=3.9 * hours * 0.1 + 0.001)
        self.assertEqual(value(b, "energy_discharged"), value(a, "energy_discharged"))
        # Restarted: the same bank, its counter going on from what is on the disk.
        self.assertEqual(self.env.stop_daemon(), 0)
        self.env.start_daemon()
        restored = self.env.get_json(f"/api/v1/devices/{BANK}")
        self.assertGreaterEqual(value(restored, "energy_charged"), value(b, "energy_charged"))
        c = self.fresh_bank(self.fresh_bank(restored))
        self.assertGreater(value(c, "energy_charged"), value(restored, "energy_charged"))
        # The second pack removed: the bank goes with it.
        self.assertEqual(self.env.request("/api/v1/devices/battery-2", "DELETE")[0], 204)
        self.assertEqual(self.env.get_status(f"/api/v1/devices/{BANK}"), 404)


if __name__ == "__main__":
    unittest.main()
