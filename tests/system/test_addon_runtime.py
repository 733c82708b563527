"""The add-on as the Supervisor runs it: /data/options.json, the host's bus socket, port 8099,
started by the s6 run script; and the finish script's exit-code handling."""
import os
import re
import socket
import subprocess
import tempfile
import unittest

import sysenv


class RunScript(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = sysenv.Env()
        cls.env.start_daemon()

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def test_status_page_and_api_served(self):
        status, body, headers = self.env.request("/")
        self.assertEqual(status, 200)
        self.assertIn("text/html", headers["Content-Type"])
        self.assertIn(b"BluPow", body)
        for asset in re.findall(rb'(?:src|href)="([^"#]+)"', body):
            if asset.startswith(b"data:"):
                continue
            self.assertFalse(asset.startswith(b"/"), f"{asset!r} is absolute and would break under ingress")
            self.assertEqual(self.env.get_status("/" + asset.decode()), 200, asset)
        health = self.env.get_json("/api/v1/health")
        self.assertEqual(health["status"], "ok")

    def test_devices_from_the_options_file_come_online(self):
        self.env.wait_all_online()
        devs = {d["id"]: d for d in self.env.get_json("/api/v1/devices")["devices"]}
        self.assertEqual(set(devs), self.env.expected_online)
        self.assertEqual(devs["battery-2"]["modbus_id"], 49)
        self.assertEqual(devs["rover"]["source"], "options")
        self.assertIsInstance(devs["rover"]["readings"]["battery_voltage"]["value"], float)

    def test_database_in_data_dir(self):
        self.env.wait_all_online()
        files = os.listdir(self.env.data)
        self.assertTrue(any(f.endswith(".db") for f in files), files)

    def test_sigterm_from_s6_stops_cleanly(self):
        env = sysenv.Env()
        try:
            env.start_daemon()
            env.wait_all_online()
            self.assertEqual(env.stop_daemon(), 0, env.log())
        finally:
            env.close()


class RunScriptConfigError(unittest.TestCase):
    def test_bad_options_exit_2_with_a_message(self):
        env = sysenv.Env(devices=[{"name": "X", "address": "not-a-mac", "type": "controller"}])
        try:
            with open(sysenv.RUN_SCRIPT) as f:
                script = sysenv.rewrite_run_script(f.read(), os.path.join(sysenv.BUILD, "src/blupowd"), env.data,
                                                   env.bus_socket, env.port)
            path = os.path.join(env.dir, "run")
            with open(path, "w") as f:
                f.write(script)
            os.chmod(path, 0o755)
            p = subprocess.run([path], capture_output=True, text=True, timeout=20)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn("not-a-mac", p.stderr)
        finally:
            env.close()


class ListenRefused(unittest.TestCase):
    """A port that cannot be had is reported with its real cause, and blupowd exits."""

    def serve(self, env, port, **kw):
        return subprocess.run([os.path.join(sysenv.BUILD, "src/blupowd"), "--options", env.options_path,
                               "--data-dir", env.data, "--port", str(port)], env=env.env, capture_output=True,
                              text=True, timeout=20, **kw)

    def test_port_taken_by_another_program(self):
        env = sysenv.Env()
        try:
            with socket.socket(socket.AF_INET6) as other:
                other.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                other.bind(("::", env.port))
                other.listen()
                p = self.serve(env, env.port)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn(f"Cannot listen on port {env.port}: Address already in use (another program listens on it)",
                          p.stderr)
        finally:
            env.close()

    def test_socket_refused_is_not_called_address_in_use(self):
        # An unprivileged process may not bind port 80: the kernel's EACCES, as a confining
        # profile's denial gives it.
        env = sysenv.Env()
        try:
            os.chmod(env.dir, 0o755)
            os.chmod(env.data, 0o777)
            os.chmod(env.options_path, 0o644)
            os.chmod(env.bus_socket, 0o777)
            p = self.serve(env, 80, user=65534, group=65534, extra_groups=[])
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("Cannot listen on port 80: Permission denied (refused by the host's confinement", p.stderr)
            self.assertNotIn("already in use", p.stderr)
        finally:
            env.close()


class FinishScript(unittest.TestCase):
    """finish halts the container on a configuration error (2) and lets s6 restart otherwise."""

    def run_finish(self, *args):
        with tempfile.TemporaryDirectory() as d:
            with open(sysenv.FINISH_SCRIPT) as f:
                text = f.read()
            results = os.path.join(d, "exitcode")
            halt = os.path.join(d, "halt")
            with open(halt, "w") as f:
                f.write(f"#!/bin/sh\necho halted > {d}/halted\n")
            os.chmod(halt, 0o755)
            self.assertIn("/run/s6-linux-init-container-results/exitcode", text)
            self.assertIn("/run/s6/basedir/bin/halt", text)
            text = text.replace("#!/command/with-contenv bash", "#!/bin/bash", 1)
            text = text.replace("/run/s6-linux-init-container-results/exitcode", results)
            text = text.replace("/run/s6/basedir/bin/halt", halt)
            path = os.path.join(d, "finish")
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, 0o755)
            p = subprocess.run([path, *map(str, args)], capture_output=True, text=True, timeout=10)
            halted = os.path.exists(os.path.join(d, "halted"))
            code_written = None
            if os.path.exists(results):
                with open(results) as f:
                    code_written = f.read().strip()
            return p.returncode, halted, code_written

    def test_config_error_halts(self):
        rc, halted, code = self.run_finish(2)
        self.assertTrue(halted)
        self.assertEqual(code, "2")

    def test_crash_restarts(self):
        for args in ((1,), (0,), (256, 11), (256, 15)):
            rc, halted, written = self.run_finish(*args)
            self.assertFalse(halted, args)
            self.assertIsNone(written)


if __name__ == "__main__":
    unittest.main()
