"""The add-on announces itself to Home Assistant through the Supervisor's discovery (run script,
once the API answers) and withdraws on stop (finish script); install-integration copies the
bundled integration into Home Assistant's configuration. Against a Supervisor stand-in that
checks the add-on's SUPERVISOR_TOKEN."""
import json
import os
import shutil
import subprocess
import tempfile
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import sysenv

SUPERVISOR_TOKEN = "supervisor-token-of-this-test"
SCRIPTS = os.path.join(sysenv.SOURCE, "addon/rootfs/usr/lib/blupow")
INTEGRATION = os.path.join(sysenv.SOURCE, "custom_components/blupow")


class Supervisor:
    """GET /addons/self/info, POST /discovery, DELETE /discovery/<uuid>, as the Supervisor answers."""

    def __init__(self):
        self.calls = []
        self.event = threading.Event()
        sup = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self, status, data):
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def handle_call(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length)) if length else None
                sup.calls.append((self.command, self.path, body))
                sup.event.set()
                if self.headers.get("Authorization") != f"Bearer {SUPERVISOR_TOKEN}":
                    return self.answer(401, {"result": "error", "message": "unauthorized"})
                if self.command == "GET" and self.path == "/addons/self/info":
                    return self.answer(200, {"result": "ok", "data": {"hostname": "local-blupow", "slug": "local_blupow"}})
                if self.command == "POST" and self.path == "/discovery":
                    return self.answer(200, {"result": "ok", "data": {"uuid": "5e1f0c2b7a"}})
                if self.command == "DELETE" and self.path == "/discovery/5e1f0c2b7a":
                    return self.answer(200, {"result": "ok", "data": {}})
                return self.answer(404, {"result": "error", "message": "no such path"})

            do_GET = do_POST = do_DELETE = handle_call

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, method, path, seconds=30):
        sysenv.Env.wait_for(lambda: any(c[0] == method and c[1] == path for c in self.calls), seconds,
                            f"{method} {path} at the Supervisor")
        return next(c for c in self.calls if c[0] == method and c[1] == path)

    def close(self):
        self.server.shutdown()


class Discovery(unittest.TestCase):
    def setUp(self):
        self.supervisor = Supervisor()
        self.env = sysenv.Env(devices=[d for d in sysenv.DEMO_DEVICES if d["name"] == "Rover"])
        self.state = os.path.join(self.env.dir, "discovery")
        self.env.env.update(SUPERVISOR_TOKEN=SUPERVISOR_TOKEN, BLUPOW_SUPERVISOR_URL=self.supervisor.url,
                            BLUPOW_PORT=str(self.env.port), BLUPOW_DATA_DIR=self.env.data,
                            BLUPOW_DISCOVERY_STATE=self.state)

    def tearDown(self):
        self.env.close()
        self.supervisor.close()

    def test_announced_once_the_api_answers_and_withdrawn_on_stop(self):
        self.env.start_daemon()
        _, _, body = self.supervisor.wait_for("POST", "/discovery")
        with open(os.path.join(self.env.data, "integration_token")) as f:
            token = f.read().strip()
        self.assertEqual(body, {"service": "blupow",
                                "config": {"host": "local-blupow", "port": self.env.port, "token": token}})
        # The hostname was asked for; Home Assistant is told the API only once it answers.
        self.assertIn(("GET", "/addons/self/info", None), self.supervisor.calls)
        sysenv.Env.wait_for(lambda: os.path.exists(self.state), 10, "the discovery's uuid kept")
        self.assertEqual(self.env.stop_daemon(), 0)
        with open(sysenv.FINISH_SCRIPT) as f:
            text = f.read()
        self.assertIn("/usr/lib/blupow/discovery withdraw", text)
        text = text.replace("#!/command/with-contenv bash", "#!/bin/bash", 1)
        text = text.replace("/usr/lib/blupow/", SCRIPTS + "/")
        path = os.path.join(self.env.dir, "finish")
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o755)
        subprocess.run([path, "0"], env=self.env.env, check=True, timeout=20)
        self.supervisor.wait_for("DELETE", "/discovery/5e1f0c2b7a")
        self.assertFalse(os.path.exists(self.state))

    def test_a_refused_announcement_leaves_the_daemon_running(self):
        self.env.env["SUPERVISOR_TOKEN"] = "not-the-supervisors-token"
        self.env.start_daemon()
        self.supervisor.wait_for("GET", "/addons/self/info")
        self.assertIsNone(self.env.daemon.poll())
        self.assertEqual(self.env.get_json("/api/v1/health")["status"] in ("ok", "degraded"), True)
        self.assertFalse([c for c in self.supervisor.calls if c[0] == "POST"])
        self.assertFalse(os.path.exists(self.state))


class InstallIntegration(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="blupow-install.")
        self.config = os.path.join(self.dir, "homeassistant")
        os.makedirs(self.config)
        self.options = os.path.join(self.dir, "options.json")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def install(self, enabled):
        with open(self.options, "w") as f:
            json.dump({"devices": [], "install_integration": enabled}, f)
        env = dict(os.environ, BLUPOW_OPTIONS=self.options, BLUPOW_BUNDLED_INTEGRATION=INTEGRATION,
                   BLUPOW_HA_CONFIG=self.config)
        return subprocess.run([os.path.join(SCRIPTS, "install-integration")], env=env, capture_output=True,
                              text=True, timeout=20)

    def same_as_bundled(self):
        target = os.path.join(self.config, "custom_components/blupow")
        return subprocess.run(["diff", "-rq", "--exclude=__pycache__", INTEGRATION, target],
                              capture_output=True).returncode == 0

    def test_off_by_default_then_installed_updated_and_left_alone(self):
        self.assertEqual(self.install(False).returncode, 0)
        self.assertFalse(os.path.exists(os.path.join(self.config, "custom_components")))
        p = self.install(True)
        self.assertEqual(p.returncode, 0)
        self.assertIn("restart Home Assistant", p.stderr)
        self.assertTrue(self.same_as_bundled())
        p = self.install(True)
        self.assertIn("is installed", p.stderr)
        with open(os.path.join(self.config, "custom_components/blupow/const.py"), "a") as f:
            f.write("# an older copy\n")
        self.assertFalse(self.same_as_bundled())
        p = self.install(True)
        self.assertIn("installed in", p.stderr)
        self.assertTrue(self.same_as_bundled())
        self.assertFalse(os.path.exists(os.path.join(self.config, "custom_components/blupow.new")))


if __name__ == "__main__":
    unittest.main()
