"""How a poll ends: blupowd closes its notification and write sockets, which gives them back to
BlueZ, before it disconnects (a wake saved per poll), and the Disconnect's reply ends the
session: bluetoothd 5.66 answers before it signals Connected=false, and signals no Connected at
all for some connections (tests/realstack). The session must end at once rather than on the
disconnect timer."""
import time
import unittest

import sysenv

ROVER = "60:98:66:ED:FC:11"
PATH = "/org/bluez/hci0/dev_60_98_66_ED_FC_11"


class SessionEnd(unittest.TestCase):
    def test_sockets_closed_then_disconnect(self):
        env = sysenv.Env(devices=[{"name": "Rover", "address": ROVER, "type": "controller"}],
                         options={"poll_interval": 5})
        try:
            env.start_daemon()
            env.wait_device("rover", lambda d: d["state"] == "online" and d["readings_at"], 20, "rover read")
            env.sim_call("ClearCalls", "")
            polls0 = env.get_json("/api/v1/diagnostics")["devices"][0]["polls_ok"]
            time.sleep(11)  # two polls
            diag = env.get_json("/api/v1/diagnostics")["devices"][0]
            self.assertGreaterEqual(diag["polls_ok"] - polls0, 2, diag)
            self.assertEqual(diag["polls_failed"], 0, diag)
            calls = [c for c in env.sim_call("GetCalls", "")[0] if c[2].startswith(PATH)]
            members = [c[3] for c in calls]
            disconnects = [i for i, m in enumerate(members) if m == "Disconnect"]
            self.assertGreaterEqual(len(disconnects), 2, members)
            connects = [i for i, m in enumerate(members) if m == "Connect"] + [len(members)]
            for i in disconnects:
                self.assertNotEqual(calls[i][4], "no reply expected", calls[i])
                # This session's sockets were closed by blupowd, not by the link's end: the
                # simulator records a close its client made, either when it handles the hang-up
                # or, if it handles the Disconnect first, when that drops the link and finds the
                # client's end already closed. The daemon closes them before it sends Disconnect,
                # so the kernel has marked them closed by the time the Disconnect arrives.
                start = max([j for j in connects if j < i], default=0)
                end = min(j for j in connects if j > i)
                closed = sorted(c[4] for c in calls[start:end] if c[3] == "(socket closed)")
                self.assertEqual(closed, ["notify", "write"], members[start:end])
            # No session waited for the disconnect timer (5 s): a read of the rover is about 1 s.
            dev = env.get_json("/api/v1/devices/rover")
            self.assertLess(dev["poll_ms"], 3000, dev)
            self.assertEqual(env.stop_daemon(), 0, env.log())
        finally:
            env.close()


if __name__ == "__main__":
    unittest.main()
