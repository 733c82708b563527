"""The README's first command: `make demo` runs scripts/demo.sh, which must bring up the
simulator and blupowd with every demo device read and the status page served, and must leave
nothing running after Ctrl-C."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request

from sysenv import BUILD, DEMO_DEVICES, SOURCE, free_port

DEMO = os.path.join(SOURCE, "scripts/demo.sh")


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def children(pid):
    pids = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            pids += [int(p) for p in f.read().split()]
    return pids


class Demo(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="blupow-demo.")
        self.port = free_port()
        self.log = open(os.path.join(self.dir, "demo.log"), "w+")
        self.demo = None

    def start(self):
        env = dict(os.environ, BLUPOW_DEMO_PORT=str(self.port), BLUPOW_DEMO_DIR=self.dir)
        # Its own process group, as in a terminal, so that Ctrl-C reaches the whole demo.
        self.demo = subprocess.Popen(["bash", DEMO, BUILD], env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def tearDown(self):
        if self.demo and self.demo.poll() is None:
            os.killpg(self.demo.pid, signal.SIGTERM)  # the script's trap stops the bus as well
            try:
                self.demo.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.demo.pid, signal.SIGKILL)
                self.demo.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def get(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()

    def devices(self):
        try:
            return json.loads(self.get("/api/v1/devices")[2])["devices"]
        except OSError:
            return None

    def test_every_device_is_read_and_ctrl_c_stops_everything(self):
        self.start()
        deadline = time.monotonic() + 60
        devices = None
        while time.monotonic() < deadline:
            self.assertIsNone(self.demo.poll(), "the demo ended by itself:\n" + self.output())
            devices = self.devices()
            # The two batteries on the hub module are also one bank, a device of its own.
            if devices and len(devices) == len(DEMO_DEVICES) + 1 and all(
                    d["state"] == "online" and d["readings"] for d in devices):
                break
            time.sleep(0.5)
        else:
            self.fail(f"not every demo device came online in 60 s: {devices}\n{self.output()}")
        self.assertEqual(sorted(d["name"] for d in devices),
                         sorted([d["name"] for d in DEMO_DEVICES] + ["Battery bank 1BB7"]))
        rover = next(d for d in devices if d["name"] == "Rover")
        self.assertIsInstance(rover["readings"]["battery_voltage"]["value"], (int, float))

        status, ctype, body = self.get("/")
        self.assertEqual(status, 200)
        self.assertIn("text/html", ctype)
        self.assertIn(b"BluPow", body)
        # The history lives where BLUPOW_DEMO_DIR says, not in the source tree.
        self.assertTrue(os.listdir(os.path.join(self.dir, "data")))

        out = self.output()
        self.assertIn(f"http://localhost:{self.port}/", out)
        address = re.search(r"DBUS_SYSTEM_BUS_ADDRESS=(\S+)", out).group(1)
        bus_socket = re.search(r"unix:path=([^,]+)", address).group(1)
        started = children(self.demo.pid)
        self.assertEqual(len(started), 2, "the demo runs the simulator and blupowd")

        os.killpg(self.demo.pid, signal.SIGINT)
        self.demo.wait(timeout=15)
        for pid in started:
            self.assertFalse(alive(pid), f"process {pid} outlived the demo")
        # The private bus is gone too: nothing listens on its socket any more.
        with socket.socket(socket.AF_UNIX) as s:
            with self.assertRaises(OSError):
                s.connect(bus_socket)
        self.assertFalse(os.path.exists(os.path.dirname(bus_socket)), "the bus's directory is left in /tmp")

    def test_a_missing_build_is_named(self):
        missing = os.path.join(self.dir, "no-build")
        r = subprocess.run(["bash", DEMO, missing], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertIn(os.path.join(missing, "sim/blupow-sim") + " is missing", r.stderr)


if __name__ == "__main__":
    unittest.main()
