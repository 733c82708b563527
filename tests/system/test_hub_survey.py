"""A battery hub's packs found for the user: POST /api/v1/scan/hub surveys Modbus ids 48-55
over one connection and lists the ids that answered, with each pack's model, whether the
module is configured yet or not."""
import json
import unittest

import sysenv

HUB = "F8:55:48:1B:1B:B7"


def survey(env, body):
    status, raw, _ = env.request("/api/v1/scan/hub", "POST", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    return status, json.loads(raw)


class HubSurvey(unittest.TestCase):
    def test_unconfigured_hub_then_configured(self):
        others = [d for d in sysenv.DEMO_DEVICES if d["address"] != HUB]
        env = sysenv.Env(devices=others, options={"poll_interval": 10})
        try:
            env.start_daemon()
            env.expected_online = {"inverter", "rover", "dc-dc-charger", "shunt"}
            env.wait_all_online(40)
            status, out = survey(env, {"address": HUB.lower()})
            self.assertEqual(status, 200, out)
            self.assertEqual([p["modbus_id"] for p in out["packs"]], [48, 49])
            self.assertEqual(out["silent"], [50, 51, 52, 53, 54, 55])
            self.assertFalse(any(p["configured"] for p in out["packs"]))
            readings = env.sim_call("GetReadings", "sy", HUB, 48)[0]
            self.assertIn(out["packs"][0]["model"], readings)
            self.assertTrue(out["packs"][0]["model"])
            # The link the survey made is handed back: the module takes the next connection.
            self.assertEqual(env.sim_call("GetStats", "s", HUB)[0]["connected"], 0)
            # The others went on being read meanwhile.
            self.assertTrue(all(d["available"] for d in env.get_json("/api/v1/devices")["devices"]))
            # Add the packs it offered; the next survey finds them configured.
            for p in out["packs"]:
                status, body, _ = env.request("/api/v1/devices", "POST", json.dumps(
                    {"name": f"Pack {p['modbus_id']}", "address": HUB, "type": "battery",
                     "modbus_id": p["modbus_id"]}).encode(), {"Content-Type": "application/json"})
                self.assertEqual(status, 201, body)
            env.wait_device("pack-48", lambda d: d["state"] == "online", 30, "pack 48 read")
            status, out = survey(env, {"address": HUB})
            self.assertEqual(status, 200, out)
            self.assertEqual([(p["modbus_id"], p["device"]) for p in out["packs"]], [(48, "pack-48"), (49, "pack-49")])
            env.wait_device("pack-49", lambda d: d["state"] == "online", 30, "pack 49 read after the survey")
        finally:
            env.close()

    def test_bad_requests_are_named(self):
        env = sysenv.Env(devices=sysenv.DEMO_DEVICES[:1])
        try:
            env.start_daemon()
            self.assertEqual(survey(env, {"address": "nope"})[0], 400)
            self.assertEqual(survey(env, {})[0], 400)
            status, out = survey(env, {"address": HUB, "adapter": "hci5"})
            self.assertEqual((status, out["error"]["code"]), (404, "no_such_adapter"))
        finally:
            env.close()


if __name__ == "__main__":
    unittest.main()
