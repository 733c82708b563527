"""Model variants (RENOGY_BLE.md §3, §4.2, §8 P1, P3, P4, P6): each model read with its own map
and poll plan, told by the model it reports or, where the firmware does not report it, by the
model its configuration names. Every reading the API shows equals what the simulator's
registers hold, decoded with the same variant; a silent block costs no diagnosis."""
import json
import os
import unittest

import sysenv

SCENARIO = os.path.join(sysenv.SOURCE, "scenarios/models.json")
HF = {"name": "HF", "address": "D8:B6:73:30:12:17", "type": "inverter"}
RIV4835 = {"name": "Lycan", "address": "C4:D3:6A:26:8F:08", "type": "inverter", "model": "RIV4835CSH1S"}
G6 = {"name": "G6", "address": "F8:55:48:7B:8C:96", "type": "dcc"}
ROVER = {"name": "Rover", "address": "60:98:66:ED:FC:22", "type": "controller"}
UNIT_IDS = {"hf": 32, "lycan": 32, "g6": 255, "rover": 255}
ADDRESSES = {"hf": HF["address"], "lycan": RIV4835["address"], "g6": G6["address"], "rover": ROVER["address"]}


class ModelVariants(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = sysenv.Env(scenario=SCENARIO, devices=[HF, RIV4835, G6, ROVER], options={"poll_interval": 5})
        cls.env.start_daemon()

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def sim_readings(self, dev_id):
        return json.loads(self.env.sim_call("GetReadings", "sy", ADDRESSES[dev_id], UNIT_IDS[dev_id])[0])

    def assert_readings_equal_registers(self, dev, keys_at_least):
        sim = self.sim_readings(dev["id"])
        got = dev["readings"]
        for key in keys_at_least:
            self.assertIn(key, got, f"{dev['id']}: {key} not read")
        for key, want in sim.items():
            if key in got:
                self.assertEqual(got[key]["value"], want["value"], f"{dev['id']}: {key}")
        # Nothing beyond what the registers hold, except what BluPow counts or derives itself.
        extra = set(got) - set(sim) - {"energy_output", "solar_power"}
        self.assertEqual(extra, set(), dev["id"])
        self.assertIsNone(dev["diagnosis"], dev["id"])
        self.assertEqual(dev["consecutive_failures"], 0, dev["id"])

    def test_hf_inverter_charger_read_with_its_own_map(self):
        dev = self.env.wait_device("hf", lambda d: d["variant"] and d["variant"]["name"] == "hf" and
                                   "operating_mode" in d["readings"], 60, "read with the HF map")
        self.assertIn("RIV1230PCH-23S", dev["variant"]["why"])
        self.assertEqual(dev["model"], "RIV1230PCH-23S")
        self.assertEqual(dev["family_label"], "Inverter-charger (HF)")
        r = dev["readings"]
        self.assertEqual(r["input_frequency"]["unit"], "Hz")
        self.assertEqual(r["input_frequency"]["value"], 50.0)
        self.assertEqual(r["charging_current"]["unit"], "A")  # watts in the generic map
        self.assertNotIn("input_current", r)
        self.assert_readings_equal_registers(dev, ["input_voltage", "battery_current", "charging_active",
                                                   "line_charging_current", "charge_current_setting"])

    def test_riv4835_silent_on_4311_uses_the_configured_model(self):
        dev = self.env.wait_device("lycan", lambda d: d["state"] == "online" and
                                   "max_ac_charging_current" in d["readings"], 60, "settings read")
        self.assertEqual(dev["variant"]["name"], "riv4835")
        self.assertIn("RIV4835CSH1S", dev["variant"]["why"])
        self.assertEqual(dev["not_reported"], ["model"])
        r = dev["readings"]
        self.assertEqual(r["max_ac_charging_current"]["value"], 25.0)
        self.assertEqual(r["output_priority"]["value"], "utility_first")
        # The generic plan's setpoints are not this model's: never asked.
        self.assertNotIn("ac_input_current_limit", r)
        self.assert_readings_equal_registers(dev, ["input_voltage", "load_active_power", "battery_percentage"])

    def test_g6_dcc_found_by_its_model_and_read_without_0x0120(self):
        dev = self.env.wait_device("g6", lambda d: d["variant"] and d["variant"]["name"] == "g6" and
                                   "charging_status" in d["readings"], 90, "read with the G6 plan")
        self.assertEqual(dev["model"], "RBC50D1S-G6")
        r = dev["readings"]
        self.assertEqual(r["charging_status"]["value"], "boost")
        self.assertEqual(r["fault_high"]["value"], ["starter_reverse_polarity"])
        self.assertNotIn("fault_low", r)  # 0x0122: past what a G6 answers
        self.assert_readings_equal_registers(dev, ["battery_voltage", "solar_power_reported", "boost_voltage"])
        # The silent 0x0120 was one session's detour, never a failure.
        diag = next(d for d in self.env.get_json("/api/v1/diagnostics")["devices"] if d["id"] == "g6")
        self.assertEqual(diag["polls_failed"], 0, diag)

    def test_controller_settings_read_and_shown_with_units(self):
        dev = self.env.wait_device("rover", lambda d: "load_mode" in d["readings"], 60, "settings read")
        r = dev["readings"]
        self.assertEqual(r["load_mode"]["value"], "dusk_to_dawn")
        self.assertEqual(r["boost_voltage"]["value"], 14.5)
        self.assertEqual(r["boost_voltage"]["unit"], "V")
        self.assertEqual(r["end_of_discharge_soc"]["unit"], "%")
        self.assert_readings_equal_registers(dev, ["battery_capacity", "float_voltage", "pv_power"])
        # Settings are kept between their refreshes: a later poll that does not ask them still
        # shows them.
        stats0 = self.env.sim_call("GetStats", "s", ROVER["address"])[0]["requests"]
        last = dev["last_poll"]
        dev = self.env.wait_device("rover", lambda d: d["last_poll"] != last, 30, "polled again")
        self.assertEqual(self.env.sim_call("GetStats", "s", ROVER["address"])[0]["requests"] - stats0, 3,
                         "0x001A, 0x0100 and 0xE004 only")
        self.assertEqual(dev["readings"]["load_mode"]["value"], "dusk_to_dawn")


class SettingsWrites(unittest.TestCase):
    """Writes only where the encoding is validated on hardware: range-checked against the model,
    acknowledged with the same value, read back, and a failure when the module says otherwise."""

    @classmethod
    def setUpClass(cls):
        cls.env = sysenv.Env(scenario=SCENARIO, devices=[RIV4835, ROVER], options={"poll_interval": 30})
        cls.env.start_daemon()
        for dev_id in ("rover", "lycan"):
            cls.env.wait_device(dev_id, lambda d: d["state"] == "online" and d["settings"], 60, "online")

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def set(self, dev_id, key, value):
        status, body, _ = self.env.request(f"/api/v1/devices/{dev_id}/settings", method="POST",
                                           body=json.dumps({"key": key, "value": value}).encode(),
                                           headers={"Content-Type": "application/json"})
        return status, json.loads(body)

    def register(self, dev_id, key):
        return json.loads(self.env.sim_call("GetReadings", "sy", ADDRESSES[dev_id], UNIT_IDS[dev_id])[0])[key]["value"]

    def test_each_model_offers_only_its_validated_settings(self):
        rover = self.env.get_json("/api/v1/devices/rover")["settings"]
        self.assertEqual([s["key"] for s in rover], ["load_mode", "battery_type"])
        mode = rover[0]
        self.assertEqual(mode["value"], "dusk_to_dawn")
        self.assertEqual(mode["options"][0], "dusk_to_dawn")
        self.assertEqual(mode["options"][-1], "always_on")
        self.assertEqual(rover[1]["options"], ["open", "sealed", "gel", "lithium", "custom"])
        lycan = self.env.get_json("/api/v1/devices/lycan")["settings"]
        self.assertEqual(lycan, [{"key": "max_ac_charging_current", "label": "Maximum AC charging current",
                                  "value": 25.0, "min": 0.0, "max": 40.0, "step": 5.0, "unit": "A"}])

    def test_in_range_written_and_read_back(self):
        status, body = self.set("rover", "load_mode", "manual")
        self.assertEqual((status, body), (200, {"device": "rover", "key": "load_mode", "value": "manual"}))
        self.assertEqual(self.register("rover", "load_mode"), "manual")
        self.assertEqual(self.env.get_json("/api/v1/devices/rover")["readings"]["load_mode"]["value"], "manual")
        status, body = self.set("lycan", "max_ac_charging_current", 35)
        self.assertEqual((status, body["value"]), (200, 35.0), body)
        self.assertEqual(self.register("lycan", "max_ac_charging_current"), 35.0)

    def test_out_of_range_refused_with_the_range(self):
        for value in (37, 45, -5, "fast"):
            status, body = self.set("lycan", "max_ac_charging_current", value)
            self.assertEqual(status, 400, value)
            self.assertIn(body["error"]["code"], ("out_of_range", "bad_value"), body)
        status, body = self.set("lycan", "max_ac_charging_current", 37)
        self.assertIn("from 0 to 40 A in steps of 5", body["error"]["message"])
        status, body = self.set("rover", "battery_type", "agm")
        self.assertEqual((status, body["error"]["code"]), (400, "out_of_range"))
        self.assertIn("open, sealed, gel, lithium, custom", body["error"]["message"])
        status, body = self.set("rover", "boost_voltage", 14.6)
        self.assertEqual((status, body["error"]["code"]), (400, "not_settable"))
        self.assertIn("load_mode, battery_type", body["error"]["message"])
        self.assertEqual(self.register("rover", "boost_voltage"), 14.5, "nothing written")

    def test_a_wrong_echo_is_a_failure(self):
        self.env.sim_call("SetFault", "ssi", ROVER["address"], "write_echo_wrong", 1)
        status, body = self.set("rover", "battery_type", "gel")
        self.assertEqual((status, body["error"]["code"]), (502, "write_failed"), body)
        self.assertIn("acknowledgement echoed 0xE004", body["error"]["message"])

    def test_a_write_not_applied_is_reported(self):
        before = self.register("lycan", "max_ac_charging_current")
        self.env.sim_call("SetFault", "ssi", RIV4835["address"], "write_ignored", 1)
        want = 10 if before != 10 else 15
        status, body = self.set("lycan", "max_ac_charging_current", want)
        self.assertEqual((status, body["error"]["code"]), (502, "not_applied"), body)
        self.assertIn(f"reads back {before:.1f}", body["error"]["message"])

    def test_the_load_switch_reads_its_state_back(self):
        status, body, _ = self.env.request("/api/v1/devices/rover/load", method="POST", body=b'{"on": false}',
                                           headers={"Content-Type": "application/json"})
        self.assertEqual(status, 200, body)
        self.assertEqual(self.register("rover", "load_status"), "off")
        self.assertEqual(self.env.get_json("/api/v1/devices/rover")["readings"]["load_status"]["value"], "off")
        self.env.sim_call("SetFault", "ssi", ROVER["address"], "write_ignored", 1)
        status, body, _ = self.env.request("/api/v1/devices/rover/load", method="POST", body=b'{"on": true}',
                                           headers={"Content-Type": "application/json"})
        self.assertEqual(status, 502, body)
        self.assertIn("load_status reads back off", json.loads(body)["error"]["message"])


class ModelNamedThroughTheApi(unittest.TestCase):
    """A device added through the API with its model (an RIV4835 whose firmware does not report
    it) gets that model's plan and settings, and keeps them across a restart; a model that is
    not one a device prints is refused with the reason."""

    def test_added_with_its_model_and_kept(self):
        env = sysenv.Env(scenario=SCENARIO, devices=[ROVER], options={"poll_interval": 5})
        try:
            env.start_daemon()
            for bad in ("RIV 4835", "", 4835):
                status, body, _ = env.request("/api/v1/devices", "POST", json.dumps(dict(RIV4835, model=bad)).encode(),
                                              headers={"Content-Type": "application/json"})
                self.assertEqual(status, 400, bad)
                self.assertIn("device.model", json.loads(body)["error"]["message"], bad)
            status, body, _ = env.request("/api/v1/devices", "POST", json.dumps(RIV4835).encode(),
                                          headers={"Content-Type": "application/json"})
            self.assertEqual(status, 201, body)
            for attempt in ("added", "after a restart"):
                dev = env.wait_device("lycan", lambda d: d["state"] == "online" and d["settings"], 60,
                                      f"lycan read with its plan ({attempt})")
                self.assertEqual(dev["variant"]["name"], "riv4835", attempt)
                self.assertIn("RIV4835CSH1S", dev["variant"]["why"], attempt)
                self.assertEqual([x["key"] for x in dev["settings"]], ["max_ac_charging_current"], attempt)
                env.stop_daemon()
                env.start_daemon()
        finally:
            env.close()


if __name__ == "__main__":
    unittest.main()
