"""What bluetoothd 5.66 does on the real stack (tests/realstack), played by the simulator and
handled by blupowd: a connection BlueZ never signals, bluetoothd stopping in the middle of a
reply, and advertisements without an RSSI."""
import json
import os
import tempfile
import time
import unittest

import sysenv

ROVER = "60:98:66:ED:FC:11"
PATH = "/org/bluez/hci0/dev_60_98_66_ED_FC_11"
ROVER_DEVICE = [{"name": "Rover", "address": ROVER, "type": "controller"}]


def rover_scenario(**module):
    with open(os.path.join(sysenv.SOURCE, "scenarios/demo.json")) as f:
        scenario = json.load(f)
    scenario["modules"] = [dict(m, **module) for m in scenario["modules"] if m["address"] == ROVER]
    fd, path = tempfile.mkstemp(suffix=".json", prefix="blupow-566.")
    with os.fdopen(fd, "w") as f:
        json.dump(scenario, f)
    return path


class Bluez566(unittest.TestCase):
    def start(self, options=None, **module):
        self.scenario = rover_scenario(**module)
        self.env = sysenv.Env(scenario=self.scenario, devices=ROVER_DEVICE, options=options or {"poll_interval": 5})
        self.env.start_daemon()
        return self.env

    def tearDown(self):
        self.env.close()
        os.unlink(self.scenario)

    def stats(self):
        return dict(self.env.sim_call("GetStats", "s", ROVER)[0])

    def test_unsignalled_connection_ends_with_disconnect(self):
        """BlueZ signals neither Connected=true nor false: every session still disconnects, and
        waits for the Disconnect's reply, which is then the only sign the link is down."""
        env = self.start(connected_signal=False)
        env.wait_device("rover", lambda d: d["state"] == "online" and d["readings_at"], 20, "rover read")
        env.sim_call("ClearCalls", "")
        time.sleep(11)  # two polls
        diag = env.get_json("/api/v1/diagnostics")["devices"][0]
        self.assertEqual(diag["polls_failed"], 0, diag)
        members = [(c[3], c[4]) for c in env.sim_call("GetCalls", "")[0] if c[2] == PATH]
        connects = [m for m in members if m[0] == "Connect"]
        disconnects = [m for m in members if m[0] == "Disconnect"]
        self.assertGreaterEqual(len(connects), 2, members)
        self.assertEqual(len(disconnects), len(connects), members)
        self.assertTrue(all(d[1] != "no reply expected" for d in disconnects), disconnects)
        self.assertEqual(self.stats()["connected"], 0)
        # Not "already connected" on the next session: the reply said the link is down.
        dev = env.get_json("/api/v1/devices/rover")
        self.assertLess(dev["poll_ms"], 3000, dev)

    def test_kept_unsignalled_link_handed_back_at_shutdown(self):
        env = self.start(options={"poll_interval": 5, "keep_connected": True}, connected_signal=False)
        env.wait_device("rover", lambda d: d["state"] == "online" and d["readings_at"], 20, "rover read")
        self.assertEqual(self.stats()["connected"], 1, "keep_connected keeps the link")
        self.assertEqual(env.stop_daemon(), 0, env.log())
        # The module's side: the Disconnect sent as blupowd stopped takes the link down.
        env.wait_for(lambda: self.stats()["connected"] == 0, 3, "the kept link handed back on SIGTERM")

    def test_bluetoothd_stopping_mid_reply_is_not_a_weak_signal(self):
        """bluetoothd stopped (SIGTERM) while a reply is on its way: the link goes down first,
        then the adapter, then BlueZ leaves. The verdict is BlueZ's absence."""
        env = self.start(options={"poll_interval": 5}, timing={"response_ms": 1500})
        env.wait_device("rover", lambda d: d["state"] == "online", 30, "rover online")
        # Into the exchange of the next session: the first request waits 1.5 s for its reply.
        env.sim_call("ClearCalls", "")
        sysenv.Env.wait_for(lambda: any(c[3] in ("(write socket)", "WriteValue") for c in
                                        env.sim_call("GetCalls", "")[0]), 10, "a request in flight")
        env.sim_call("RestartBluez", "u", 4000)
        codes = set()
        for _ in range(30):
            dev = env.get_json("/api/v1/devices/rover")
            if dev["diagnosis"]:
                codes.add(dev["diagnosis"]["code"])
            time.sleep(0.1)
        self.assertNotIn("weak_signal", codes)
        dev = env.wait_device("rover", lambda d: d["diagnosis"] is not None, 10, "a diagnosis")
        self.assertEqual(dev["diagnosis"]["code"], "bluez_not_running", dev)
        env.wait_device("rover", lambda d: d["state"] == "online" and not d["diagnosis"], 30, "online again")

    def test_bluetoothd_killed_is_bluez_not_running(self):
        env = self.start(options={"poll_interval": 5})
        env.wait_device("rover", lambda d: d["state"] == "online", 30, "rover online")
        env.sim_call("KillBluez", "u", 3000)
        time.sleep(0.3)
        h = env.get_json("/api/v1/health")
        self.assertEqual(h["system"]["diagnosis"]["code"], "bluez_not_running", h)
        env.wait_device("rover", lambda d: d["state"] == "online" and not d["diagnosis"], 30, "online again")

    def test_rssi_not_available_is_no_value(self):
        env = self.start(rssi=127)
        dev = env.wait_device("rover", lambda d: d["state"] == "online", 30, "rover online")
        self.assertIsNone(dev["rssi"], dev)
        metrics = env.request("/metrics")[1].decode()
        self.assertNotIn("blupow_rssi_dbm{", metrics)
        scan = env.blupowd("scan", "--seconds", "3", "--json", "--options", env.options_path)
        self.assertNotIn("127", scan.stdout, scan.stdout)


if __name__ == "__main__":
    unittest.main()
