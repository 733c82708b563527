"""The add-on's AppArmor profile (apparmor.txt) on a real kernel: loaded with apparmor_parser
(its paths mapped to this build), the add-on's s6 run script started confined under it with
Docker's default capabilities (as Home Assistant's Supervisor starts an add-on) and with all of
them, its helpers under the add-on's profile and blupowd under its child profile, reading the
peripheral through real BlueZ over a system bus that runs with AppArmor mediation enabled.
Every reading right, the API served, the Supervisor discovery announced and withdrawn, and no
AppArmor denial in the kernel's log while it polls, verifies, scans, stores and stops; the real
D-Bus denial diagnosed wherever the bus denies. Runs inside the VM (tests/realstack/run.sh), on
Debian's newest kernel in `make check` (BLUPOW_VM_KERNEL=trixie-backports)."""
import http.server
import json
import os
import re
import subprocess
import threading
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../system"))
import stack  # noqa: E402
import sysenv  # noqa: E402

PROFILE = os.path.join(stack.SOURCE, "apparmor.txt")
DATA = "/tmp/blupow-addon-data"
# What the kernel loads: apparmor.txt with the container's paths replaced by this machine's.
LOADED = "/tmp/blupow-apparmor.txt"
SECURITYFS = "/sys/kernel/security/apparmor"
# Docker's default capabilities: what a Home Assistant add-on gets without `privileged`.
DOCKER_CAPS = ["chown", "dac_override", "fsetid", "fowner", "mknod", "net_raw", "setgid", "setuid", "setfcap",
               "setpcap", "net_bind_service", "sys_chroot", "kill", "audit_write"]
MODULES = 5


def kernel_log():
    return subprocess.run(["dmesg"], capture_output=True, text=True, check=True).stdout.splitlines()


def profile_for_this_machine(text):
    """apparmor.txt with the container's paths replaced by this machine's, as the run script's are
    (sysenv.rewrite_run_script); nothing else changes."""
    for needle in ("/usr/bin/blupowd", "/data/", "/usr/share/blupow/web/"):
        assert needle in text, f"apparmor.txt no longer contains {needle}"
    text = text.replace("/usr/bin/blupowd", os.path.join(stack.BUILD, "src/blupowd"))
    text = text.replace("/data/", DATA + "/")
    return text.replace("/usr/share/blupow/web/", os.path.join(stack.SOURCE, "web") + "/")


def load_profile(text):
    """Loads (or replaces) the profile; apparmor_parser's warnings."""
    with open(LOADED, "w") as f:
        f.write(profile_for_this_machine(text))
    load = subprocess.run(["apparmor_parser", "--replace", "--skip-cache", LOADED], capture_output=True, text=True)
    if load.returncode != 0:
        raise AssertionError(f"apparmor_parser refused apparmor.txt: {load.stderr}")
    return load.stderr.strip()


def apparmor_lines(since):
    return [line for line in kernel_log()[since:] if "apparmor=" in line]


class FakeSupervisor(http.server.ThreadingHTTPServer):
    """The Supervisor's discovery API as the add-on's discovery helper uses it: what it was asked."""

    def __init__(self, token):
        self.token, self.requests = token, []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, body):
                length = int(self.headers.get("Content-Length") or 0)
                sent = json.loads(self.rfile.read(length)) if length else None
                self.server.requests.append((self.command, self.path, self.headers.get("Authorization"), sent))
                data = json.dumps(body).encode()
                self.send_response(200 if self.headers.get("Authorization") == f"Bearer {token}" else 401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self.answer({"result": "ok", "data": {"hostname": "local-blupow"}})

            def do_POST(self):
                self.answer({"result": "ok", "data": {"uuid": "d1a5c0"}})

            def do_DELETE(self):
                self.answer({"result": "ok", "data": {}})

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class Confined(unittest.TestCase):
    """The profile enforced on the whole start path: the run script's shell and helpers, blupowd,
    and blupowd verify run in the add-on."""

    @classmethod
    def setUpClass(cls):
        if not os.path.isdir(SECURITYFS):
            raise AssertionError("the guest kernel has no AppArmor (securityfs has no apparmor/)")
        cls.stack = stack.Stack(controllers=MODULES + 1)
        cls.central = cls.stack.adapters[0]
        cls.peripheral = stack.Peripheral(cls.stack, "demo", cls.stack.adapters[1:])
        with open(PROFILE) as f:
            cls.shipped = f.read()
        cls.parser_warnings = load_profile(cls.shipped)
        with open(os.path.join(SECURITYFS, "profiles")) as f:
            profiles = f.read()
        if "blupow (enforce)" not in profiles or "blupow//blupowd (enforce)" not in profiles:
            raise AssertionError(f"profile not loaded in enforce mode: {profiles}")
        cls.dbus_mediation = os.path.exists(os.path.join(SECURITYFS, "features/dbus"))
        cls.dbus_mask = None
        if cls.dbus_mediation:
            with open(os.path.join(SECURITYFS, "features/dbus/mask")) as f:
                cls.dbus_mask = f.read().strip()
        addr = {name: a for name, (a, _) in cls.peripheral.modules.items()}
        cls.devices = [
            {"name": "Inverter", "address": addr["BTRIC134000035"], "type": "inverter"},
            {"name": "Rover", "address": addr["BT-TH-66EDFC11"], "type": "controller"},
            {"name": "Battery 1", "address": addr["BT-TH-481B1BB7"], "type": "battery", "modbus_id": 48},
            {"name": "Shunt", "address": addr["RTMShunt30017000621"], "type": "shunt"},
        ]

    @classmethod
    def tearDownClass(cls):
        with open(os.path.join(stack.LOGS, "dmesg.log"), "w") as f:
            f.write("\n".join(kernel_log()) + "\n")
        subprocess.run(["apparmor_parser", "--remove", "--skip-cache", LOADED], capture_output=True)
        cls.peripheral.close()
        cls.stack.close()

    def setUp(self):
        self.data = DATA
        subprocess.run(["rm", "-rf", self.data], check=True)
        os.makedirs(self.data)
        with open(os.path.join(self.data, "options.json"), "w") as f:
            json.dump({"devices": self.devices, "poll_interval": 10, "adapter": self.central, "keep_connected": False,
                       "history_days": 7, "commit_interval": 0, "log_level": "debug", "install_integration": True},
                      f)
        self.ha_config = "/tmp/blupow-ha-config"
        subprocess.run(["rm", "-rf", self.ha_config], check=True)
        os.makedirs(self.ha_config)
        with open(sysenv.RUN_SCRIPT) as f:
            script = sysenv.rewrite_run_script(f.read(), os.path.join(stack.BUILD, "src/blupowd"), self.data,
                                               stack.BUS_SOCKET, stack.PORT)
        self.run_script = os.path.join(self.data, "run")
        with open(self.run_script, "w") as f:
            f.write(script)
        os.chmod(self.run_script, 0o755)
        with open(sysenv.FINISH_SCRIPT) as f:
            finish = f.read()
        self.assertTrue(finish.startswith("#!/command/with-contenv bash\n"))
        self.finish_script = os.path.join(self.data, "finish")
        with open(self.finish_script, "w") as f:
            f.write(finish.replace("#!/command/with-contenv bash", "#!/bin/bash", 1).replace(
                "/usr/lib/blupow/", os.path.join(stack.SOURCE, "addon/rootfs/usr/lib/blupow/")))
        os.chmod(self.finish_script, 0o755)
        # Under the Supervisor: its token in the environment, its discovery API answering.
        self.supervisor = FakeSupervisor("supervisor-token")
        self.addCleanup(self.supervisor.server_close)
        self.addCleanup(self.supervisor.shutdown)
        self.env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "BLUPOW_HA_CONFIG": self.ha_config,
                    "BLUPOW_WEB_DIR": os.path.join(stack.SOURCE, "web"),
                    "BLUPOW_OPTIONS": os.path.join(self.data, "options.json"),
                    "BLUPOW_BUNDLED_INTEGRATION": os.path.join(stack.SOURCE, "custom_components/blupow"),
                    "SUPERVISOR_TOKEN": self.supervisor.token, "BLUPOW_SUPERVISOR_URL": self.supervisor.url,
                    "BLUPOW_DATA_DIR": self.data, "BLUPOW_PORT": str(stack.PORT)}
        self.proc = None

    def tearDown(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc and self.proc.stdout:
            self.copier.join(10)  # the pipe ends with the run script's last process
            self.proc.stdout.close()

    def confined(self, argv, caps=DOCKER_CAPS, shell=False):
        """argv with the container's capabilities only, then under the profile (setpriv first:
        the profile itself does not allow dropping capabilities). shell: started from a shell
        under the profile, as a user's command in the add-on is: aa-exec's own exec takes the
        profile it names, where a shell's exec of blupowd goes on to the daemon's child profile."""
        if shell:
            argv = ["/bin/sh", "-c", 'exec "$@"', "sh"] + argv
        bounding = "-all," + ",".join("+" + c for c in caps) if caps else "+all"
        return ["setpriv", f"--bounding-set={bounding}", f"--inh-caps={bounding}", "--", "aa-exec", "-p",
                "blupow", "--"] + argv

    def verify(self):
        """`blupowd verify rover` as a user runs it in the add-on: from a shell under its profile,
        with the container's environment."""
        return subprocess.run(self.confined([os.path.join(stack.BUILD, "src/blupowd"), "verify", "rover", "--options",
                                             os.path.join(self.data, "options.json"), "--data-dir", self.data,
                                             "--port", str(stack.PORT)], shell=True),
                              capture_output=True, text=True, timeout=120, env=self.env)

    def api(self, path, method="GET", body=None):
        headers = {"Content-Type": "application/json"} if body else {}
        if method != "GET":
            # Under the Supervisor loopback is not trusted: the integration's token, as it sends it.
            with open(os.path.join(self.data, "integration_token")) as f:
                headers["Authorization"] = "Bearer " + f.read().strip()
        req = urllib.request.Request(f"http://127.0.0.1:{stack.PORT}{path}", method=method, data=body,
                                     headers=headers)
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.load(r) if r.status != 204 else None

    def start(self, caps=DOCKER_CAPS):
        # s6 gives the service the container's environment (self.env) and a pipe for its output
        # (a log file would need a rule the add-on does not); Home Assistant's configuration mapped
        # where install-integration copies the bundled integration.
        self.proc = subprocess.Popen(self.confined([self.run_script], caps), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=self.env)

        def copy(out, log):
            with os.fdopen(log, "wb") as f:
                for line in out:
                    f.write(line)
                    f.flush()
        self.copier = threading.Thread(target=copy, args=(self.proc.stdout, stack.log_file("blupowd-confined.log")),
                                       daemon=True)
        self.copier.start()
        stack.wait_for(lambda: self.api("/api/v1/health"), 30, "the confined daemon's API")

    def stop(self):
        """SIGTERM as s6-supervise sends it, from a process under the add-on's profile; then the
        finish script, as s6 runs it with the exit code."""
        subprocess.run(["aa-exec", "-p", "blupow", "--", "kill", "-TERM", str(self.proc.pid)], check=True)
        code = self.proc.wait(20)
        self.assertEqual(code, 0)
        finish = subprocess.run(self.confined([self.finish_script, str(code)]), env=self.env, capture_output=True,
                                text=True, timeout=60)
        self.assertEqual(finish.returncode, 0, finish.stdout + finish.stderr)

    def check_confinement(self):
        with open(f"/proc/{self.proc.pid}/attr/current") as f:
            label = f.read().strip()
        self.assertEqual(label, "blupow//blupowd (enforce)", "blupowd is not running under its profile")
        with open(f"/proc/{self.proc.pid}/status") as f:
            bounding = int(re.search(r"CapBnd:\s+([0-9a-f]+)", f.read()).group(1), 16)
        self.assertFalse(bounding & (1 << 12), "CAP_NET_ADMIN should not be in the bounding set")

    def wait_online(self, dev_id, timeout=120):
        return stack.wait_for(lambda: (lambda d: d if d["state"] == "online" else None)(
            self.api(f"/api/v1/devices/{dev_id}")), timeout, f"{dev_id} online")

    def test_polls_verifies_scans_stores_and_stops_with_no_denial(self):
        mark = len(kernel_log())
        self.start()
        self.check_confinement()
        # Every reading right: what the peripheral's registers hold.
        for dev_id, module, unit in (("rover", "BT-TH-66EDFC11", 255), ("battery-1", "BT-TH-481B1BB7", 48),
                                     ("inverter", "BTRIC134000035", 32), ("shunt", "RTMShunt30017000621", 0)):
            dev = self.wait_online(dev_id)
            sim = self.peripheral.readings(self.peripheral.modules[module][0], unit)
            compared = 0
            for key, want in sim.items():
                got = dev["readings"].get(key, {}).get("value")
                if isinstance(want["value"], str):
                    self.assertEqual(got, want["value"], (dev_id, key))
                    compared += 1
                elif isinstance(want["value"], (int, float)) and got is not None:
                    # The simulator's values move with its clock and are read a moment apart: currents
                    # (and the powers made from them) swing most.
                    swing = 0.3 if key.endswith(("_current", "_power")) else 0.15
                    self.assertAlmostEqual(got, want["value"], delta=max(1.0, abs(want["value"]) * swing),
                                           msg=(dev_id, key))
                    compared += 1
            self.assertGreater(compared, 3, dev_id)
            self.assertIsNone(dev["diagnosis"], dev_id)
        # verify, run in the add-on as DOCS.md tells users to: under the same profile.
        p = self.verify()
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("reads end to end", p.stdout)
        # A scan, the store (history written: commit_interval 0), the status page.
        self.api("/api/v1/scan", "POST", b'{"seconds": 3}')
        scan = stack.wait_for(lambda: (lambda s: s if not s["scanning"] and s["modules"] else None)(
            self.api("/api/v1/scan")), 60, "the scan's end")
        self.assertGreaterEqual(len(scan["modules"]), 3, scan)
        store = stack.wait_for(lambda: (lambda s: s if s["committed_until"] and s["samples_written"] > 50 else None)(
            self.api("/api/v1/health")["store"]), 60, "polls written to the database")
        self.assertTrue(store["ok"] and not store["memory_only"], store)
        hist = self.api("/api/v1/devices/rover/history?key=battery_voltage")
        self.assertTrue(hist["data"], hist)
        with urllib.request.urlopen(f"http://127.0.0.1:{stack.PORT}/", timeout=10) as r:
            self.assertIn(b"BluPow", r.read())
        # The discovery helper, confined too, announced the add-on to the Supervisor with the token.
        announced = stack.wait_for(lambda: [r for r in self.supervisor.requests if r[:2] == ("POST", "/discovery")],
                                   30, "the discovery announcement")
        self.assertEqual(len(announced), 1, self.supervisor.requests)
        with open(os.path.join(self.data, "integration_token")) as f:
            self.assertEqual(announced[0][3], {"service": "blupow", "config": {
                "host": "local-blupow", "port": stack.PORT, "token": f.read().strip()}})
        # Stop as s6 does; the finish script withdraws the announcement.
        self.stop()
        self.assertIn(("DELETE", "/discovery/d1a5c0", "Bearer supervisor-token", None), self.supervisor.requests)
        time.sleep(0.5)
        denials = [line for line in apparmor_lines(mark) if 'apparmor="DENIED"' in line]
        self.assertEqual(denials, [], "AppArmor denied the confined daemon")
        self.assertTrue(os.path.getsize(os.path.join(self.data, "blupow.db")) > 0)
        # The run script's helpers ran under the profile too: the integration was installed.
        self.assertTrue(os.path.exists(os.path.join(self.ha_config, "custom_components/blupow/manifest.json")))

    def test_all_capabilities_still_no_denial(self):
        """With every capability (a privileged add-on) libsystemd asks for SO_RCVBUFFORCE on the bus
        socket, which needs net_admin; the profile refuses it quietly and libsystemd falls back."""
        mark = len(kernel_log())
        self.start(caps=None)
        with open(f"/proc/{self.proc.pid}/attr/current") as f:
            self.assertEqual(f.read().strip(), "blupow//blupowd (enforce)")
        self.wait_online("rover")
        self.stop()
        denials = [line for line in apparmor_lines(mark) if 'apparmor="DENIED"' in line]
        self.assertEqual(denials, [], "AppArmor denied the confined daemon")

    def bus_refuses_an_unlisted_peer(self):
        """True when the bus really denies a confined client a peer its profile does not list;
        otherwise why not. A kernel may list D-Bus in its AppArmor features and the bus turn its
        mediation on, and still answer the bus's label query with "allow" (seen with Debian's
        7.3 kernel and both Debian 12's and 13's apparmor_parser)."""
        probe = ("abi <abi/3.0>,\n#include <tunables/global>\nprofile blupow-probe {\n  #include <abstractions/base>\n"
                 "  file,\n  deny capability net_admin,\n  network unix stream,\n"
                 "  dbus (send) bus=system peer=(name=org.freedesktop.DBus),\n  dbus (receive) bus=system,\n}\n")
        path = "/tmp/blupow-probe.txt"
        with open(path, "w") as f:
            f.write(probe)
        subprocess.run(["apparmor_parser", "--replace", "--skip-cache", path], check=True, capture_output=True)
        try:
            call = subprocess.run(["aa-exec", "-p", "blupow-probe", "--", "busctl", "--system", "call", "org.bluez", "/",
                                   "org.freedesktop.DBus.Introspectable", "Introspect"], capture_output=True, text=True,
                                  timeout=30)
        finally:
            subprocess.run(["apparmor_parser", "--remove", "--skip-cache", path], capture_output=True)
        if call.returncode != 0 and "AppArmor" in call.stderr:
            return True
        return (f"this kernel lists AppArmor D-Bus mediation (features/dbus/mask: {self.dbus_mask!r}) and the bus "
                "labels its clients, but a client whose profile allows sending only to org.freedesktop.DBus was let "
                f"through to org.bluez (busctl: {call.returncode}, {call.stderr.strip() or 'no error'}): the kernel's "
                "label query allows it, so no real D-Bus denial can be produced here")

    def test_dbus_denial_is_diagnosed_everywhere(self):
        """The shipped profile without its org.bluez rule: the bus's real AppArmor denial gives
        dbus_access_denied in health, diagnostics, every device, verify and the status page, with
        the remedy; the denial's audit line is the one DOCS.md quotes."""
        if not self.dbus_mediation:
            self.skipTest("this kernel has no AppArmor D-Bus mediation (securityfs apparmor/features/dbus is "
                          f"absent; apparmor_parser: {self.parser_warnings or 'no warning'}): the bus cannot "
                          "deny; the realstack-apparmor-dbus test boots a kernel that has it")
        refused = self.bus_refuses_an_unlisted_peer()
        if refused is not True:
            self.skipTest(refused)
        rule = "dbus (send) bus=system peer=(name=org.bluez),"
        self.assertIn(rule, self.shipped)
        load_profile(self.shipped.replace(rule, ""))
        self.addCleanup(load_profile, self.shipped)
        mark = len(kernel_log())
        self.start()
        self.check_confinement()

        def denied():
            d = self.api("/api/v1/health")["system"]["diagnosis"]
            return d if d and d["code"] == "dbus_access_denied" else None
        diag = stack.wait_for(denied, 60, "dbus_access_denied in health")
        self.assertIn("AppArmor", diag["remedy"])
        self.assertIn("AppArmor policy prevents", diag["message"], "the bus's own words, passed on")
        diagnostics = self.api("/api/v1/diagnostics")
        self.assertEqual(diagnostics["system"]["diagnosis"]["code"], "dbus_access_denied", diagnostics)
        devices = self.api("/api/v1/devices")
        self.assertEqual(devices["system_diagnosis"]["code"], "dbus_access_denied")
        for dev in devices["devices"]:
            self.assertEqual((dev["diagnosis"] or {}).get("code"), "dbus_access_denied", dev["id"])
            self.assertEqual(dev["diagnosis"]["remedy"], diag["remedy"], dev["id"])
            self.assertFalse(dev["available"], dev["id"])
        # verify in the add-on, as DOCS.md tells users to run it: fails, names the cause and the fix.
        p = self.verify()
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertIn("AppArmor policy prevents", p.stdout)
        self.assertIn(diag["remedy"], p.stdout)
        # The status page, in Chromium: the banner above the cards and every card.
        shot = os.path.join(stack.LOGS, "status-page-dbus-access-denied.png")
        page = subprocess.run(["node", os.path.join(stack.SOURCE, "tests/ui/diagnosis-page.mjs"),
                               f"http://127.0.0.1:{stack.PORT}/", "dbus_access_denied", shot],
                              capture_output=True, text=True, timeout=300,
                              env=dict(os.environ, NODE_PATH=os.path.join(stack.SOURCE, "tests/ui/node_modules")))
        self.assertEqual(page.returncode, 0, page.stdout + page.stderr)
        # The denial as the host logs it: dbus-daemon's AppArmor check, sent to the kernel's audit.
        line = stack.wait_for(lambda: next((x for x in kernel_log()[mark:] if 'apparmor="DENIED"' in x
                                            and 'operation="dbus_method_call"' in x), None), 30,
                              "the bus's AppArmor denial in the kernel's log")
        with open(os.path.join(stack.LOGS, "apparmor-dbus-denial.txt"), "w") as f:
            f.write(line + "\n")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', line))
        self.assertEqual(fields.get("bus"), "system", line)
        self.assertEqual(fields.get("name"), "org.bluez", line)
        self.assertEqual(fields.get("label"), "blupow//blupowd", line)
        self.assertEqual(fields.get("mask"), "send", line)
        # DOCS.md quotes such a line; every field it shows must be one the real line has, with the
        # same value where the value does not depend on the host (pids and times do, and the label
        # carries the name the Supervisor gives the profile).
        with open(os.path.join(stack.SOURCE, "DOCS.md")) as f:
            quoted = next((x for x in f if 'apparmor="DENIED"' in x and 'operation="dbus_method_call"' in x), None)
        self.assertIsNotNone(quoted, "DOCS.md quotes no D-Bus denial line")
        for key, value in re.findall(r'(\w+)="([^"]*)"', quoted):
            self.assertIn(key, fields, f"DOCS.md shows {key}=, the real line has none: {line}")
            if key in ("apparmor", "operation", "bus", "mask", "name", "interface", "member", "path"):
                self.assertEqual(fields[key], value, f"DOCS.md's {key}= differs from the real line: {line}")
        self.stop()


if __name__ == "__main__":
    unittest.main()
