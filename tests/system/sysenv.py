"""A running BluPow for system tests: a private system-like bus, blupow-sim with a scenario, and
blupowd started by the add-on's own s6 run script (only the host paths are pointed elsewhere)."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

SOURCE = os.environ.get("BLUPOW_SOURCE_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
BUILD = os.environ.get("BLUPOW_BUILD_ROOT") or os.path.join(SOURCE, "build")
RUN_SCRIPT = os.path.join(SOURCE, "addon/rootfs/etc/s6-overlay/s6-rc.d/blupow/run")
FINISH_SCRIPT = os.path.join(SOURCE, "addon/rootfs/etc/s6-overlay/s6-rc.d/blupow/finish")

DEMO_DEVICES = [
    {"name": "Inverter", "address": "D8:B6:73:10:20:35", "type": "inverter"},
    {"name": "Rover", "address": "60:98:66:ED:FC:11", "type": "controller"},
    {"name": "Battery 1", "address": "F8:55:48:1B:1B:B7", "type": "battery", "modbus_id": 48},
    {"name": "Battery 2", "address": "F8:55:48:1B:1B:B7", "type": "battery", "modbus_id": 49},
    {"name": "DC-DC charger", "address": "AC:4D:16:17:8A:45", "type": "dcc"},
    {"name": "Shunt", "address": "C4:D3:6A:00:11:22", "type": "shunt"},
]


def slug(name):
    """The API's id for a device name (options.c slugify)."""
    out, dash = [], False
    for c in name:
        if c.isascii() and c.isalnum():
            if dash and out:
                out.append("-")
            out.append(c.lower())
            dash = False
        else:
            dash = True
    return "".join(out)


def read_text(path):
    with open(path) as f:
        return f.read()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rewrite_run_script(text, blupowd, data_dir, bus_socket, port):
    """The run script with the container's paths replaced by this machine's; nothing else changes."""
    assert text.startswith("#!/command/with-contenv bash\n"), "run script must start under with-contenv"
    for needle in ("/usr/bin/blupowd", "/data", "/run/dbus/system_bus_socket", "--port 8099"):
        assert needle in text, f"run script no longer contains {needle}"
    text = text.replace("#!/command/with-contenv bash", "#!/bin/bash", 1)
    text = text.replace("/run/dbus/system_bus_socket", bus_socket)
    text = text.replace("/usr/bin/blupowd", blupowd)
    text = text.replace("/usr/lib/blupow/", os.path.join(SOURCE, "addon/rootfs/usr/lib/blupow/"))
    text = text.replace("/data", data_dir)
    return text.replace("--port 8099", f"--port {port}")


class Env:
    def __init__(self, scenario="demo", devices=None, options=None):
        self.dir = tempfile.mkdtemp(prefix="blupow-system.")
        self.data = os.path.join(self.dir, "data")
        os.makedirs(self.data)
        self.port = free_port()
        self.procs = []
        self.bus_pid = None
        opts = {"devices": devices if devices is not None else DEMO_DEVICES, "poll_interval": 10,
                "keep_connected": False, "history_days": 7}
        opts.update(options or {})
        self.options_path = os.path.join(self.data, "options.json")
        with open(self.options_path, "w") as f:
            json.dump(opts, f)
        self.bus_socket = os.path.join(self.dir, "system_bus_socket")
        out = subprocess.run(["dbus-daemon", "--config-file", os.path.join(SOURCE, "tests/data/system-bus.conf"),
                              "--address", "unix:path=" + self.bus_socket, "--fork", "--print-address=1",
                              "--print-pid=1"], check=True, capture_output=True, text=True).stdout.split("\n")
        self.bus_address, self.bus_pid = out[0], int(out[1])
        self.env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus_address,
                        BLUPOW_WEB_DIR=os.path.join(SOURCE, "web"))
        self.sim_log = open(os.path.join(self.dir, "sim.log"), "w")
        self.sim = subprocess.Popen([os.path.join(BUILD, "sim/blupow-sim"), "--scenario",
                                     scenario if scenario.endswith(".json")
                                     else os.path.join(SOURCE, "scenarios", scenario + ".json")],
                                    env=self.env, stdout=self.sim_log, stderr=subprocess.STDOUT)
        self.procs.append(self.sim)
        self.wait_for(lambda: subprocess.run(["busctl", "--system", "status", "org.blupow.Sim"], env=self.env,
                                             capture_output=True).returncode == 0, 10, "simulator on the bus")
        self.daemon = None

    blupowd_path = os.path.join(BUILD, "src/blupowd")

    def start_daemon(self, timeout=15):
        with open(RUN_SCRIPT) as f:
            script = rewrite_run_script(f.read(), self.blupowd_path, self.data, self.bus_socket, self.port)
        path = os.path.join(self.dir, "run")
        with open(path, "w") as f:
            f.write(script)
        os.chmod(path, 0o755)
        if getattr(self, "daemon_log", None):
            self.daemon_log.close()
        self.daemon_log = open(os.path.join(self.dir, "daemon.log"), "a")
        # s6 starts the service with the container environment only: no bus address of ours.
        env = {k: v for k, v in self.env.items() if k != "DBUS_SYSTEM_BUS_ADDRESS"}
        self.daemon = subprocess.Popen([path], env=env, stdout=self.daemon_log, stderr=subprocess.STDOUT)
        self.procs.append(self.daemon)
        self.wait_for(lambda: self.get_status("/api/v1/health") == 200, timeout, "daemon answering")

    def stop_daemon(self):
        if self.daemon and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            return self.daemon.wait(10)
        return self.daemon.returncode if self.daemon else None

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if self.bus_pid:
            try:
                os.kill(self.bus_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for f in (self.sim_log, getattr(self, "daemon_log", None)):
            if f:
                f.close()
        if not os.environ.get("BLUPOW_KEEP_TEST_DIR"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def close_campaign(self, failures, name):
        """End of a campaign script: on failure keeps the test directory and prints the daemon's
        log and the failures. Returns the script's exit status."""
        if failures:
            os.environ["BLUPOW_KEEP_TEST_DIR"] = "1"
            print(self.log())
        self.close()
        if failures:
            print("\n".join(failures))
            return 1
        print(f"{name}: ok")
        return 0

    def log(self):
        try:
            with open(os.path.join(self.dir, "daemon.log")) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    @staticmethod
    def wait_for(pred, seconds, what):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                if pred():
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def request(self, path, method="GET", body=None, headers=None):
        req = urllib.request.Request(self.url(path), data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            return e.code, e.read(), e.headers

    def get_status(self, path):
        return self.request(path)[0]

    def get_json(self, path):
        status, body, _ = self.request(path)
        assert status == 200, f"{path}: {status} {body[:200]!r}"
        return json.loads(body)

    def wait_device(self, dev_id, pred, seconds, what):
        last = {}

        def check():
            last["dev"] = self.get_json(f"/api/v1/devices/{dev_id}")
            return pred(last["dev"])
        try:
            self.wait_for(check, seconds, f"{dev_id}: {what}")
        except AssertionError as e:
            raise AssertionError(f"{e}; last seen {json.dumps(last.get('dev'))[:600]}") from None
        return last["dev"]

    def wait_all_online(self, seconds=40):
        def check():
            devs = self.get_json("/api/v1/devices")["devices"]
            return all(d["state"] == "online" for d in devs if d["id"] in self.expected_online)
        self.wait_for(check, seconds, "every simulated device online")

    # The bank is the two hub batteries combined: online when both are.
    expected_online = {"inverter", "rover", "battery-1", "battery-2", "dc-dc-charger", "shunt", "battery-bank-1bb7"}

    def sim_call(self, method, signature, *args):
        """org.blupow.Sim1 through busctl; the reply's values as a list."""
        p = subprocess.run(["busctl", "--system", "--json=short", "call", "org.blupow.Sim", "/", "org.blupow.Sim1",
                            method, "--", *([signature] if signature else []), *[str(a) for a in args]], env=self.env,
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise AssertionError(f"Sim1.{method}{args}: {p.stderr.strip()}")
        return json.loads(p.stdout)["data"] if p.stdout.strip() else []

    def blupowd(self, *args, timeout=60):
        return subprocess.run([os.path.join(BUILD, "src/blupowd"), *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)
