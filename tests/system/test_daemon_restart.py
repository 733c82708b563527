"""A module left connected by a daemon that died (SIGKILL in the middle of a read) must not stay
stuck: BlueZ keeps the link of a client that vanished, and the next run must take it over,
read the module and release it."""
import json
import signal
import subprocess
import time
import unittest

import sysenv

ROVER = "60:98:66:ED:FC:11"
PATH = "/org/bluez/hci0/dev_" + ROVER.replace(":", "_")


class LeftConnected(unittest.TestCase):
    def connected(self, env):
        p = subprocess.run(["busctl", "--system", "--json=short", "get-property", "org.bluez", PATH,
                            "org.bluez.Device1", "Connected"], env=env.env, capture_output=True, text=True)
        return p.returncode == 0 and json.loads(p.stdout)["data"] is True

    def test_next_run_takes_over_and_releases(self):
        env = sysenv.Env(devices=[{"name": "Rover", "address": ROVER, "type": "controller"}],
                         options={"poll_interval": 30})
        try:
            env.start_daemon()
            env.wait_for(lambda: self.connected(env), 20, "the daemon connected to the module")
            env.daemon.send_signal(signal.SIGKILL)
            env.daemon.wait(10)
            time.sleep(1)
            self.assertTrue(self.connected(env), "BlueZ keeps the link of a client that vanished")

            env.sim_call("ClearCalls", "")
            env.start_daemon()
            dev = env.wait_device("rover", lambda d: d["state"] == "online" and d["readings_at"], 20,
                                  "read through the link the dead run left")
            self.assertIsNone(dev["diagnosis"])
            env.wait_for(lambda: not self.connected(env), 10, "the module released after the poll")
            calls = env.sim_call("GetCalls", "")[0]
            members = [c[3] for c in calls if c[2] == PATH]
            self.assertIn("Disconnect", members, calls)
            self.assertEqual(env.stop_daemon(), 0, env.log())
        finally:
            env.close()


if __name__ == "__main__":
    unittest.main()
