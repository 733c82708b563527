"""HTTP under abuse, with polling going on: a client from another address (a network
namespace joined by a veth pair) that may read but not change anything without the token,
slow and idle connections, malformed and oversized requests. Polls keep their schedule."""
import os
import socket
import subprocess
import time
import unittest
import uuid

import sysenv

TOKEN = "s3cret-" + uuid.uuid4().hex


def netns_available():
    if os.geteuid() != 0:
        return False
    name = "bpprobe" + uuid.uuid4().hex[:6]
    ok = subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return ok


class Abuse(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = sysenv.Env(options={"poll_interval": 5, "api_token": TOKEN})
        cls.env.start_daemon()
        cls.env.wait_all_online()

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def raw(self, data, timeout=10):
        with socket.create_connection(("127.0.0.1", self.env.port), timeout=timeout) as s:
            s.sendall(data)
            out = b""
            try:
                while chunk := s.recv(65536):
                    out += chunk
            except socket.timeout:
                pass
            return out

    def assert_polling_on_schedule(self, since):
        """Every device polled after `since` (ISO time) within two intervals."""
        for d in self.env.get_json("/api/v1/devices")["devices"]:
            self.env.wait_device(d["id"], lambda x: x["last_poll"] > since, 15, "polled during the abuse")

    def now_iso(self):
        return max(d["last_poll"] for d in self.env.get_json("/api/v1/devices")["devices"])

    def test_malformed_requests_rejected(self):
        # A request line without a target or version: answered 400 or closed without an answer.
        r = self.raw(b"GARBAGE\r\n\r\n")
        self.assertTrue(r == b"" or r.startswith(b"HTTP/1.1 400"), r[:40])
        self.assertTrue(self.raw(b"GET /api/v1/health HTTP/9.9\r\n\r\n").startswith(b"HTTP/1.1 505"))
        r = self.raw(b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertRegex(r[:12], rb"HTTP/1.1 (414|431|400)")
        r = self.raw(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"b" * 80000 + b"\r\n\r\n")
        self.assertRegex(r[:12], rb"HTTP/1.1 (431|400|413)")
        # The daemon still answers.
        self.assertEqual(self.env.get_status("/api/v1/health"), 200)

    def test_traversal_methods_bodies(self):
        for path in ("/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2fetc/passwd", "/app.js/../../x",
                     "/.%00/etc"):
            r = self.raw(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            self.assertRegex(r[:12], rb"HTTP/1.1 (400|404)", path)
            self.assertNotIn(b"root:", r)
        status, body, headers = self.env.request("/api/v1/health", method="DELETE")
        self.assertEqual(status, 405)
        self.assertIn("GET", headers["Allow"])
        status, body, _ = self.env.request("/api/v1/devices", method="POST", body=b"[" * 5000,
                                           headers={"Content-Type": "application/json"})
        self.assertEqual(status, 400)
        status, _, _ = self.env.request("/api/v1/devices", method="POST", body=b"{" + b" " * (2 << 20) + b"}")
        self.assertEqual(status, 413)

    def test_slow_and_idle_clients_do_not_stop_polling(self):
        before = {d["id"]: d["polls_ok"] for d in self.env.get_json("/api/v1/diagnostics")["devices"]}
        slow = socket.create_connection(("127.0.0.1", self.env.port), timeout=30)
        slow.sendall(b"GET /api/v1/health HTTP/1.1\r\nHo")  # and nothing more
        idle = []
        for _ in range(300):  # more than the connection limits: the rest are refused, not queued
            try:
                idle.append(socket.create_connection(("127.0.0.1", self.env.port), timeout=2))
            except OSError:
                break
        try:
            # The slow client is dropped by the connection timeout (15 s); meanwhile polls go on.
            t = time.monotonic()
            try:
                data = slow.recv(100)
            except (ConnectionResetError, socket.timeout):
                data = b""
            self.assertTrue(10 < time.monotonic() - t < 25, time.monotonic() - t)
            self.assertNotIn(b"200 OK", data)
        finally:
            slow.close()
            for s in idle:
                s.close()
        time.sleep(0.5)
        after = {d["id"]: d["polls_ok"] for d in self.env.get_json("/api/v1/diagnostics")["devices"]}
        for dev_id, n in before.items():
            # At least two polls each in ~15 s at a 5 s interval: the schedule held.
            self.assertGreaterEqual(after[dev_id] - n, 2, dev_id)
        self.assertEqual(self.env.get_status("/api/v1/health"), 200)

    @unittest.skipUnless(netns_available(), "needs root and network namespaces")
    def test_other_address_reads_but_cannot_change_without_token(self):
        ns = "bp" + uuid.uuid4().hex[:8]
        host_if, ns_if = "bpa" + ns[-6:], "bpb" + ns[-6:]
        net = "10.%d.%d" % (200 + os.getpid() % 50, os.getpid() % 250)
        sh = lambda *cmd: subprocess.run(cmd, check=True, capture_output=True)
        sh("ip", "netns", "add", ns)
        try:
            sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
            sh("ip", "link", "set", ns_if, "netns", ns)
            sh("ip", "addr", "add", f"{net}.1/24", "dev", host_if)
            sh("ip", "link", "set", host_if, "up")
            sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{net}.2/24", "dev", ns_if)
            sh("ip", "netns", "exec", ns, "ip", "link", "set", ns_if, "up")
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")

            def curl(*args):
                p = subprocess.run(["ip", "netns", "exec", ns, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                    "--max-time", "20", *args], capture_output=True, text=True)
                return int(p.stdout or 0)
            base = f"http://{net}.1:{self.env.port}"
            self.assertEqual(curl(f"{base}/api/v1/devices"), 200)  # reading is open
            self.assertEqual(curl(f"{base}/"), 200)
            self.assertEqual(curl("-X", "POST", f"{base}/api/v1/devices/rover/poll"), 401)
            self.assertEqual(curl("-X", "POST", "-H", "Authorization: Bearer wrong", f"{base}/api/v1/devices/rover/poll"),
                             401)
            self.assertEqual(curl("-X", "DELETE", f"{base}/api/v1/devices/rover"), 401)
            self.assertEqual(curl("-X", "POST", "-d", '{"name":"x","address":"60:98:66:00:00:01","type":"controller"}',
                                  f"{base}/api/v1/devices"), 401)
            self.assertEqual(curl("-X", "POST", "-H", f"Authorization: Bearer {TOKEN}",
                                  f"{base}/api/v1/devices/rover/poll"), 202)
            # The same request from the machine itself needs no token.
            status, _, _ = self.env.request("/api/v1/devices/rover/poll", method="POST")
            self.assertEqual(status, 202)
        finally:
            subprocess.run(["ip", "link", "del", host_if], capture_output=True)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


if __name__ == "__main__":
    unittest.main()
