"""The token the add-on makes for the Home Assistant integration: made once in /data (0600),
kept across restarts, and accepted for changes where nothing else is (under the Supervisor,
loopback is not trusted and no api_token is set)."""
import os
import stat
import unittest

import sysenv


class IntegrationToken(unittest.TestCase):
    def setUp(self):
        self.env = sysenv.Env(devices=[d for d in sysenv.DEMO_DEVICES if d["name"] == "Rover"])
        self.env.env["SUPERVISOR_TOKEN"] = "supervisor-token-of-this-test"
        self.env.start_daemon()

    def tearDown(self):
        self.env.close()

    def token(self):
        path = os.path.join(self.env.data, "integration_token")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        with open(path) as f:
            return f.read().strip()

    def poll(self, authorization=None):
        headers = {"Authorization": authorization} if authorization else {}
        return self.env.request("/api/v1/devices/rover/poll", method="POST", body=b"", headers=headers)[0]

    def test_changes_need_the_token_and_it_is_kept(self):
        token = self.token()
        self.assertEqual(len(token), 32)
        self.assertEqual(self.poll(), 401)  # a token exists: ask for it
        self.assertEqual(self.poll("Bearer " + "0" * 32), 401)
        self.assertEqual(self.poll("Bearer " + token), 202)
        self.assertEqual(self.env.stop_daemon(), 0)
        self.env.start_daemon()
        self.assertEqual(self.token(), token)
        self.assertEqual(self.poll("Bearer " + token), 202)

    def test_a_token_too_short_is_replaced(self):
        self.env.stop_daemon()
        with open(os.path.join(self.env.data, "integration_token"), "w") as f:
            f.write("short\n")
        self.env.start_daemon()
        token = self.token()
        self.assertEqual(len(token), 32)
        self.assertEqual(self.poll("Bearer short"), 401)
        self.assertEqual(self.poll("Bearer " + token), 202)

    def verify(self, *args):
        return self.env.blupowd("verify", "rover", "--options", self.env.options_path, "--port", str(self.env.port),
                                *args)

    def test_verify_inside_the_add_on_presents_the_token(self):
        # As DOCS.md tells users: `blupowd verify` in the add-on's shell, where loopback is not
        # trusted; it reads the add-on's token from /data (here --data-dir) and is answered.
        self.env.wait_all_online()
        p = self.verify("--data-dir", self.env.data)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("verdict: ✓ reads end to end", p.stdout)
        self.assertNotIn("standalone", p.stdout + p.stderr)

    def test_verify_without_a_token_says_it_was_refused(self):
        p = self.verify("--data-dir", os.path.join(self.env.dir, "elsewhere"))
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("refused the verify request", p.stdout)
        self.assertIn("--data-dir", p.stdout)


if __name__ == "__main__":
    unittest.main()
