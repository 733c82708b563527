"""Identity blocks some firmware never answers (RENOGY_BLE.md §8 P3, P5): a controller that
gives no reply to its model block 0x000C, an inverter none to 4311. The live data is read first
and all of it comes through; the silence shows as "not reported by this model", never as a
failure or a reason to probe other Modbus ids, and the block is not asked again for an hour."""
import copy
import json
import os
import tempfile
import unittest

import sysenv

ROVER = "60:98:66:ED:FC:11"
INVERTER = "D8:B6:73:10:20:35"
HUB = "F8:55:48:1B:1B:B7"
DEVICES = [d for d in sysenv.DEMO_DEVICES if d["name"] in ("Rover", "Inverter")]


class OptionalIdentity(unittest.TestCase):
    def setUp(self):
        self.env = sysenv.Env(devices=DEVICES, options={"poll_interval": 5})
        self.addCleanup(self.env.close)
        for address in (ROVER, INVERTER):
            self.env.sim_call("SetFault", "ssi", address, "no_model_reply", -1)
        self.env.start_daemon()

    def polls_ok(self, dev_id):
        diag = self.env.get_json("/api/v1/diagnostics")
        return next(d for d in diag["devices"] if d["id"] == dev_id)["polls_ok"]

    def test_live_data_read_and_the_model_not_reported(self):
        for dev_id, live in (("rover", ["battery_voltage", "pv_power", "load_status", "battery_type"]),
                             ("inverter", ["input_voltage", "output_voltage", "load_active_power"])):
            dev = self.env.wait_device(dev_id, lambda x: x["state"] == "online", 60, "online")
            self.assertIsNone(dev["diagnosis"], dev_id)
            self.assertTrue(dev["available"], dev_id)
            self.assertEqual(dev["not_reported"], ["model"], dev_id)
            self.assertIsNone(dev["model"], dev_id)
            self.assertNotIn("model", dev["readings"], dev_id)
            for key in live:
                self.assertIn(key, dev["readings"], f"{dev_id}: {key}")
            self.assertEqual(dev["consecutive_failures"], 0, dev_id)
        # Not asked again within the hour: once the settings block after it has been read (the
        # session after the silence), every session is one request per live block.
        self.env.wait_device("rover", lambda x: "boost_voltage" in x["readings"], 30, "settings read")
        stats = self.env.sim_call("GetStats", "s", ROVER)[0]
        n0, p0 = stats["requests"], self.polls_ok("rover")
        self.env.wait_for(lambda: self.polls_ok("rover") >= p0 + 2, 40, "two more polls")
        stats = self.env.sim_call("GetStats", "s", ROVER)[0]
        polls = self.polls_ok("rover") - p0
        live_blocks = 3  # 0x001A, 0x0100, 0xE004
        self.assertIn(stats["requests"] - n0, (polls * live_blocks, (polls + 1) * live_blocks),
                      "the model block is not asked again")

    def test_verify_says_not_reported_never_no_reply(self):
        self.env.wait_device("rover", lambda x: x["state"] == "online", 60, "online")
        p = self.env.blupowd("verify", "rover", "--options", self.env.options_path, "--port", str(self.env.port))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("verdict: ✓ reads end to end", p.stdout)
        self.assertNotIn("no_reply", p.stdout)
        self.assertNotIn("probe", p.stdout)

    def test_a_model_that_answers_again_is_read(self):
        self.env.wait_device("rover", lambda x: x["not_reported"] == ["model"], 60, "model not reported")
        # The firmware answers after all (an update): a restart asks again and reads it.
        self.env.sim_call("SetFault", "ssi", ROVER, "no_model_reply", 0)
        self.assertEqual(self.env.stop_daemon(), 0)
        self.env.start_daemon()
        dev = self.env.wait_device("rover", lambda x: x["state"] == "online" and x["model"], 60, "model read")
        self.assertEqual(dev["not_reported"], [])
        self.assertEqual(dev["model"], dev["readings"]["model"]["value"])


class LiveBlockSilent(unittest.TestCase):
    """A pack behind the hub that answers every block but 5042 (current, voltage, capacity): once
    its model is read, the poll is not taken for whole. The device says which block went silent
    and that its readings are missing, while the blocks that answer are still shown; the bank of
    the hub's packs passes that on."""

    def start(self, silent_blocks_of_pack_48):
        with open(os.path.join(sysenv.SOURCE, "scenarios/demo.json")) as f:
            scenario = copy.deepcopy(json.load(f))
        hub = next(m for m in scenario["modules"] if m["address"] == HUB)
        hub["units"][0]["silent_blocks"] = silent_blocks_of_pack_48
        fd, path = tempfile.mkstemp(prefix="blupow-live-silent.", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(scenario, f)
        self.addCleanup(os.remove, path)
        env = sysenv.Env(scenario=path, devices=[d for d in sysenv.DEMO_DEVICES if d["address"] == HUB],
                         options={"poll_interval": 5})
        self.addCleanup(env.close)
        env.start_daemon()
        return env

    def test_missing_live_readings_are_diagnosed(self):
        env = self.start([5042])
        dev = env.wait_device("battery-1", lambda x: x["diagnosis"] is not None, 60, "a diagnosis")
        self.assertEqual(dev["diagnosis"]["code"], "weak_signal", dev["diagnosis"])
        self.assertIn("stopped answering at 0x13B2", dev["diagnosis"]["message"])
        self.assertIn("missing", dev["diagnosis"]["message"])
        # The model (read once the silent block was set aside) and the other blocks are shown.
        self.assertEqual(dev["model"], json.loads(env.sim_call("GetReadings", "sy", HUB, 48)[0])["model"]["value"])
        self.assertIn("cell_voltage_1", dev["readings"])
        self.assertIn("temperature_1", dev["readings"])
        self.assertNotIn("battery_current", dev["readings"])
        self.assertNotIn("battery_voltage", dev["readings"])
        # The bank of the two packs has no total without the pack's current, and says why.
        bank = env.wait_device("battery-bank-1bb7", lambda x: x["diagnosis"] is not None, 30, "the bank's diagnosis")
        self.assertFalse(bank["available"])
        self.assertEqual(bank["diagnosis"]["code"], "weak_signal", bank["diagnosis"])
        self.assertIn("Battery 1: id 48 stopped answering at 0x13B2", bank["diagnosis"]["message"])
        # The pack after it on the hub is read at every poll all the same.
        self.assert_read_at_every_poll(env, "battery-2")

    def test_a_silent_first_pack_costs_the_next_one_nothing(self):
        # Pack 48 switched off: it answers nothing, and pack 49 (asked after it, in the same
        # session) is still read whole at every poll.
        env = self.start([5000, 5017, 5042, 5104, 5122, 5130, 5223])
        dev = env.wait_device("battery-1", lambda x: x["diagnosis"] is not None, 60, "a diagnosis")
        self.assertEqual(dev["diagnosis"]["code"], "no_reply", dev["diagnosis"])
        self.assert_read_at_every_poll(env, "battery-2")

    def assert_read_at_every_poll(self, env, dev_id):
        latest = env.wait_device(dev_id, lambda x: x["available"], 30, "read")
        for _ in range(2):
            latest = env.wait_device(dev_id, lambda x, at=latest["readings_at"]: x["readings_at"] != at, 15,
                                     "read again at the next poll")
            self.assertIsNone(latest["diagnosis"], latest)
            self.assertTrue(latest["available"], latest)
        stats = next(d for d in env.get_json("/api/v1/diagnostics")["devices"] if d["id"] == dev_id)
        self.assertEqual(stats["polls_failed"], 0, stats)


if __name__ == "__main__":
    unittest.main()
