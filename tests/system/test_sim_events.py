"""A scenario's scheduled events, seen through blupowd: the Renogy app takes the controller's
module at a set time and lets it go later; the daemon names the cause while it lasts and reads
the device again by itself afterwards."""
import json
import os
import tempfile
import unittest

import sysenv

ROVER = "60:98:66:ED:FC:11"


class ScheduledHold(unittest.TestCase):
    def setUp(self):
        with open(os.path.join(sysenv.SOURCE, "scenarios/demo.json")) as f:
            scenario = json.load(f)
        scenario["modules"] = [m for m in scenario["modules"] if m["address"] == ROVER]
        scenario["events"] = [
            {"at_s": 10, "module": ROVER, "fault": "held_by_other_central", "set": True},
            {"at_s": 25, "module": ROVER, "fault": "held_by_other_central", "set": False},
        ]
        fd, self.scenario = tempfile.mkstemp(suffix=".json", prefix="blupow-events.")
        with os.fdopen(fd, "w") as f:
            json.dump(scenario, f)
        self.env = sysenv.Env(scenario=self.scenario,
                              devices=[{"name": "Rover", "address": ROVER, "type": "controller"}],
                              options={"poll_interval": 5})
        self.env.start_daemon()

    def tearDown(self):
        self.env.close()
        os.unlink(self.scenario)

    def test_hold_comes_and_goes_on_schedule(self):
        env = self.env
        env.wait_device("rover", lambda d: d["state"] == "online", 10, "rover online before the hold")
        env.wait_device("rover", lambda d: (d.get("diagnosis") or {}).get("code") == "held_by_other_central", 22,
                        "the hold diagnosed")
        env.wait_device("rover", lambda d: d["state"] == "online" and not d.get("diagnosis"), 20,
                        "rover online again after the hold ends")


if __name__ == "__main__":
    unittest.main()
