"""Forty modules on one adapter, more than one interval can hold: each is found (its device
object by address, its characteristics under it), each is read in turn, and none waits for a
second turn while another has its third. The simulator answers at once (no modelled radio
time), so the schedule is always behind and the agenda decides who goes next."""
import json
import os
import time
import unittest

import sysenv

MODULES = 40
INSTANT = {"connect_ms": 0, "resolve_ms": 0, "response_ms": 0, "chunk_interval_ms": 0}


class ManyModules(unittest.TestCase):
    def test_every_module_read_in_turn(self):
        modules, devices = [], []
        for i in range(MODULES):
            address = "60:98:66:00:%02X:%02X" % (i >> 8, i & 0xFF)
            modules.append({"name": "BT-TH-6600%02X%02X" % (i >> 8, i & 0xFF), "address": address,
                            "rssi": -60 - i % 20, "timing": INSTANT,
                            "units": [{"family": "controller", "id": 255}]})
            # Lower case in the options: the module must still be found from BlueZ's capitals.
            devices.append({"name": f"Controller {i}", "address": address.lower() if i % 2 else address,
                            "type": "controller"})
        scenario = os.path.join(sysenv.tempfile.mkdtemp(prefix="blupow-many."), "scenario.json")
        with open(scenario, "w") as f:
            json.dump({"adapters": [{"name": "hci0", "address": "00:1A:7D:DA:71:13", "powered": True}],
                       "modules": modules}, f)
        env = sysenv.Env(scenario=scenario, devices=devices, options={"poll_interval": 5})
        try:
            env.start_daemon()

            def all_read_twice():
                diag = env.get_json("/api/v1/diagnostics")["devices"]
                return len(diag) == MODULES and all(d["polls_ok"] >= 2 for d in diag)
            env.wait_for(all_read_twice, 120, "every module read twice")
            diag = env.get_json("/api/v1/diagnostics")["devices"]
            self.assertEqual(sum(d["polls_failed"] for d in diag), 0, diag)
            # The 73-byte reply comes as four packets sent at the same instant: in order, whole.
            self.assertEqual(sum(d["bad_frames"] for d in diag), 0,
                             [(d["id"], d["bad_frames"]) for d in diag if d["bad_frames"]])
            counts = [d["polls_ok"] for d in diag]
            # In turn: a poll in progress may put one module a poll ahead, never two.
            self.assertLessEqual(max(counts) - min(counts), 1, counts)
            for dev in env.get_json("/api/v1/devices")["devices"]:
                self.assertEqual(dev["state"], "online", dev)
                self.assertIsNone(dev["diagnosis"], dev)
                self.assertIsInstance(dev["readings"]["battery_voltage"]["value"], float, dev)
            time.sleep(1)
            self.assertEqual(env.stop_daemon(), 0, env.log())
        finally:
            env.close()


if __name__ == "__main__":
    unittest.main()
