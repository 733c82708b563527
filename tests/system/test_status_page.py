"""The status page in a real browser (Debian's Chromium through playwright-core), served under a
path prefix by a proxy that behaves like Home Assistant's ingress. Screenshots go to
$BLUPOW_ARTIFACTS (default: <build>/artifacts)."""
import http.client
import http.server
import os
import shutil
import subprocess
import threading
import unittest

import sysenv

UI = os.path.join(sysenv.SOURCE, "tests/ui")
PREFIX = "/api/hassio_ingress/Zx81kQ2pTt3-test-token"


class IngressProxy(http.server.ThreadingHTTPServer):
    """Forwards PREFIX/... to the add-on's port with the prefix stripped and X-Ingress-Path set,
    and nothing outside PREFIX, like Home Assistant's ingress."""

    daemon_threads = True

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        super().__init__(("127.0.0.1", 0), IngressHandler)


class IngressHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def forward(self):
        if not (self.path == PREFIX or self.path.startswith(PREFIX + "/")):
            self.send_error(404, "outside the ingress prefix")
            return
        path = self.path[len(PREFIX):] or "/"
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        conn = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        headers["X-Ingress-Path"] = PREFIX
        conn.request(self.command, path, body=body or None, headers=headers)
        r = conn.getresponse()
        data = r.read()
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    do_GET = do_POST = do_DELETE = do_PUT = forward


@unittest.skipIf(os.environ.get("BLUPOW_SANITIZED"), "the browser test runs on the plain build (under the sanitizers "
                 "it drives the API paths the other system tests cover, at a third of the speed)")
class StatusPage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for need in (os.environ.get("CHROMIUM", "/usr/bin/chromium"), os.path.join(UI, "node_modules/playwright-core")):
            if not os.path.exists(need):
                raise AssertionError(f"{need} is missing: run scripts/install-deps.sh")
        # The demo without its shunt: the page adds it from a scan, and removes it again.
        cls.env = sysenv.Env(devices=[d for d in sysenv.DEMO_DEVICES if d["type"] != "shunt"])
        cls.env.start_daemon()
        cls.proxy = IngressProxy(cls.env.port)
        threading.Thread(target=cls.proxy.serve_forever, daemon=True).start()
        cls.shots = os.environ.get("BLUPOW_ARTIFACTS") or os.path.join(sysenv.BUILD, "artifacts")
        os.makedirs(cls.shots, exist_ok=True)

    @classmethod
    def tearDownClass(cls):
        cls.proxy.shutdown()
        cls.env.close()

    def test_in_chromium_under_ingress(self):
        base = f"http://127.0.0.1:{self.proxy.server_address[1]}{PREFIX}/"
        p = subprocess.run([shutil.which("node") or "node", os.path.join(UI, "status-page.mjs"), base, self.shots],
                           env=self.env.env, capture_output=True, text=True, timeout=240)
        print(p.stdout)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr + self.env.log())
        self.assertNotIn("not ok", p.stdout)
        self.assertEqual(p.stdout.count("ok - "), 17, p.stdout)
        self.assertTrue(os.path.getsize(os.path.join(self.shots, "status-page.png")) > 10000)


if __name__ == "__main__":
    unittest.main()
