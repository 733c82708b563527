"""keep_connected: the link stays up between polls, and every poll still gets its own
notification and write sockets: those of the previous poll are closed, so BlueZ (here the
simulator) has released them before the next AcquireNotify and AcquireWrite, which would
otherwise be refused ("Notify acquired", "Write acquired")."""
import time
import unittest

import sysenv

ROVER = "60:98:66:ED:FC:11"
PATH = "/org/bluez/hci0/dev_60_98_66_ED_FC_11"


class KeepConnected(unittest.TestCase):
    def test_polls_on_one_link_each_with_its_own_sockets(self):
        env = sysenv.Env(devices=[{"name": "Rover", "address": ROVER, "type": "controller"}],
                         options={"poll_interval": 5, "keep_connected": True})
        try:
            env.start_daemon()
            env.wait_device("rover", lambda d: d["state"] == "online" and d["readings_at"], 20, "rover read")
            env.sim_call("ClearCalls", "")
            polls0 = env.get_json("/api/v1/diagnostics")["devices"][0]["polls_ok"]
            time.sleep(21)  # four intervals: at least three polls even under a sanitizer
            diag = env.get_json("/api/v1/diagnostics")["devices"][0]
            self.assertGreaterEqual(diag["polls_ok"] - polls0, 3, diag)
            self.assertEqual(diag["polls_failed"], 0, diag)
            members = [c[3] for c in env.sim_call("GetCalls", "")[0] if c[2].startswith(PATH)]
            self.assertNotIn("Disconnect", members, "the link is kept between polls")
            self.assertNotIn("StartNotify", members, "no fallback: each AcquireNotify was granted")
            self.assertGreaterEqual(members.count("AcquireNotify"), 3, members)
            self.assertNotIn("WriteValue", members, "no fallback: each AcquireWrite was granted")
            self.assertGreaterEqual(members.count("AcquireWrite"), 3, members)
            self.assertGreaterEqual(members.count("(write socket)"), 12, "four requests per poll")
            self.assertEqual(env.stop_daemon(), 0, env.log())
        finally:
            env.close()


if __name__ == "__main__":
    unittest.main()
