"""Battery variants (RENOGY_BLE.md §4.3, §8 P8): a Battery Pro reports current in 0.1 A, a
standard pack in 0.01 A, over the same registers. The simulator keeps each pack's registers in
its own scale; BluPow tells them apart by the module's advertised name and says which it chose."""
import json
import os
import unittest

import sysenv

SCENARIO = os.path.join(sysenv.SOURCE, "scenarios/battery-variants.json")
PRO = {"name": "Pro", "address": "4C:E1:74:57:94:7B", "type": "battery", "modbus_id": 255}
HUB = {"name": "Hub battery", "address": "F8:55:48:1B:1B:B7", "type": "battery", "modbus_id": 48}


class BatteryVariants(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = sysenv.Env(scenario=SCENARIO, devices=[PRO, HUB])
        cls.env.start_daemon()
        for dev_id in ("pro", "hub-battery"):
            cls.env.wait_device(dev_id, lambda d: d["state"] == "online" and d["readings"], 40, "online")

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def read_with_sim(self, dev_id, address, unit):
        """The API's readings after a poll asked for now, and the simulator's registers (the
        values move with time: read together, compared within a little)."""
        before = self.env.get_json(f"/api/v1/devices/{dev_id}")["last_poll"]
        self.env.request(f"/api/v1/devices/{dev_id}/poll", method="POST", body=b"")
        dev = self.env.wait_device(dev_id, lambda d: d["last_poll"] != before, 30, "polled again")
        return dev, json.loads(self.env.sim_call("GetReadings", "sy", address, unit)[0])

    def test_pro_current_is_tenths_of_an_amp(self):
        dev, sim = self.read_with_sim("pro", PRO["address"], 255)
        self.assertEqual(dev["variant"]["name"], "pro")
        self.assertEqual(dev["variant"]["current_scale"], 0.1)
        self.assertIn("RNGRBP12100B0042", dev["variant"]["why"])
        self.assertEqual(dev["family_label"], "Smart lithium battery (Pro)")
        r = dev["readings"]
        # A Pro's current read with the standard scale would be ten times smaller.
        self.assertAlmostEqual(r["battery_current"]["value"], sim["battery_current"]["value"], delta=0.35)
        self.assertGreater(abs(r["battery_current"]["value"]), 0.3)
        self.assertEqual(r["battery_current"]["precision"], 1)
        self.assertAlmostEqual(r["battery_power"]["value"],
                               r["battery_voltage"]["value"] * r["battery_current"]["value"], places=1)

    def test_standard_pack_keeps_hundredths(self):
        dev, sim = self.read_with_sim("hub-battery", HUB["address"], 48)
        self.assertEqual(dev["variant"]["name"], "standard")
        self.assertEqual(dev["variant"]["current_scale"], 0.01)
        self.assertIn("BT-TH-481B1BB7", dev["variant"]["why"])
        self.assertAlmostEqual(dev["readings"]["battery_current"]["value"], sim["battery_current"]["value"],
                               delta=0.35)
        self.assertEqual(dev["readings"]["battery_current"]["precision"], 2)

    def test_scan_offers_the_pro_at_its_own_id(self):
        self.env.request("/api/v1/scan", method="POST", body=b'{"seconds": 2}',
                         headers={"Content-Type": "application/json"})
        def listed():
            mods = {m["address"]: m for m in self.env.get_json("/api/v1/scan")["modules"]}
            return mods if PRO["address"] in mods and HUB["address"] in mods else None
        sysenv.Env.wait_for(listed, 20, "both modules in the scan")
        mods = listed()
        self.assertEqual(mods[PRO["address"]]["modbus_id"], 255)
        self.assertIsNone(mods[HUB["address"]]["modbus_id"])


if __name__ == "__main__":
    unittest.main()
