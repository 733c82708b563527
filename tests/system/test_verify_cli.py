"""`blupowd verify` as a user runs it in the add-on's container: through the running daemon, on
its own when no daemon runs, and what it says when a device cannot be read."""
import json
import unittest

import sysenv

ROVER = "60:98:66:ED:FC:11"


class Verify(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = sysenv.Env()
        cls.env.start_daemon()
        cls.env.wait_all_online()

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def verify(self, *args):
        return self.env.blupowd("verify", "--options", self.env.options_path, "--port", str(self.env.port), *args)

    def test_every_device_reads_end_to_end(self):
        p = self.verify()
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        for name in ("Inverter", "Rover", "Battery 1", "Battery 2", "DC-DC charger", "Shunt"):
            self.assertIn(f"\n{name}\n  device ", p.stdout)
        self.assertEqual(p.stdout.count("verdict: ✓ reads end to end"), 6, p.stdout)
        self.assertRegex(p.stdout, r"battery_voltage\s+\d+(\.\d+)? V")

    def test_json_names_steps_and_matches_the_simulator(self):
        p = self.verify("rover", "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        out = json.loads(p.stdout)
        self.assertTrue(out["ok"])
        [res] = out["devices"]
        steps = [s["step"] for s in res["steps"]]
        self.assertIn("connect", steps)
        self.assertTrue(all(s["ok"] for s in res["steps"]), res["steps"])
        sim = json.loads(self.env.sim_call("GetReadings", "sy", ROVER, 255)[0])
        self.assertAlmostEqual(res["readings"]["battery_voltage"]["value"], sim["battery_voltage"]["value"], delta=0.2)

    def test_held_module_named_with_its_remedy(self):
        self.env.sim_call("SetFault", "ssi", ROVER, "held_by_other_central", -1)
        try:
            p = self.verify("Rover")
            self.assertEqual(p.returncode, 1, p.stdout)
            self.assertIn("✗", p.stdout)
            self.assertIn("verdict: ✗", p.stdout)
            self.assertRegex(p.stdout, r"(?i)phone app|another central|other central")
            self.assertIn("remedy:", p.stdout)
            j = json.loads(self.verify("rover", "--json").stdout)
            self.assertFalse(j["ok"])
            self.assertEqual(j["devices"][0]["verdict"]["code"], "held_by_other_central")
        finally:
            self.env.sim_call("SetFault", "ssi", ROVER, "held_by_other_central", 0)

    def test_unknown_device_is_a_usage_error(self):
        p = self.verify("garage")
        self.assertEqual(p.returncode, 2)
        self.assertIn("no device named 'garage'", p.stderr)
        self.assertEqual(p.stdout, "")

    def test_bad_arguments(self):
        for args in (("--port", "99999"), ("a", "b"), ("--bogus",)):
            p = self.verify(*args)
            self.assertEqual(p.returncode, 2, args)
            self.assertTrue(p.stderr.strip(), args)
        p = self.env.blupowd("verify", "--options", "/nonexistent/options.json")
        self.assertEqual(p.returncode, 2)
        self.assertIn("/nonexistent/options.json", p.stderr)


class VerifyStandalone(unittest.TestCase):
    """No daemon: verify talks to BlueZ itself with the daemon's code."""

    @classmethod
    def setUpClass(cls):
        cls.env = sysenv.Env()

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def test_reads_without_a_daemon(self):
        p = self.env.blupowd("verify", "inverter", "--options", self.env.options_path, "--port",
                             str(self.env.port), "--json")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        [res] = json.loads(p.stdout)["devices"]
        self.assertGreaterEqual(len(res["readings"]), 22, "the inverter's 22 sensors and its identity")

    def test_asleep_inverter_told_to_power_cycle(self):
        inverter = "D8:B6:73:10:20:35"
        self.env.sim_call("SetFault", "ssi", inverter, "asleep", -1)
        try:
            p = self.env.blupowd("verify", "Inverter", "--options", self.env.options_path, "--port",
                                 str(self.env.port), timeout=120)
            self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
            self.assertIn("verdict: ✗", p.stdout)
            self.assertRegex(p.stdout, r"(?i)power.?cycle|switch.*off")
        finally:
            self.env.sim_call("SetFault", "ssi", inverter, "asleep", 0)


if __name__ == "__main__":
    unittest.main()
