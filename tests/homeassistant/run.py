"""Runs BluPow's Home Assistant tests in a real Home Assistant core (2025.10, Python 3.13).

This side (the machine's Python) starts blupow-sim and blupowd as the system tests do, and
answers the test's requests to change them (a simulator fault, the daemon stopped and started)
on a small HTTP control port on loopback. The Home Assistant side runs in the root that
setup.sh makes (chroot: same network, its own Python), from a copy of the integration and the
tests, with the add-on's URL and the control port in its environment.

    run.py [TEST ...]        TEST: names of ha_tests.py functions (default: all)
Exits 77 (skipped) only when BLUPOW_HA=skip."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "../system"))
import sysenv  # noqa: E402

# Battery 2 is left out of the options: the tests add it through the API and remove it again.
DEVICES = [d for d in sysenv.DEMO_DEVICES if d["name"] != "Battery 2"]
BATTERY_2 = next(d for d in sysenv.DEMO_DEVICES if d["name"] == "Battery 2")


# The RIV4835 of the models scenario is on the air too but not in the options: the test of its
# numeric setting adds it and removes it again, so the other tests poll what they always did.
RIV4835 = {"name": "Inverter RIV4835", "address": "C4:D3:6A:26:8F:08", "type": "inverter", "model": "RIV4835CSH1S"}


def scenario_with_riv4835(path):
    with open(os.path.join(sysenv.SOURCE, "scenarios/demo.json")) as f:
        scenario = json.load(f)
    with open(os.path.join(sysenv.SOURCE, "scenarios/models.json")) as f:
        models = json.load(f)
    scenario["modules"] += [m for m in models["modules"] if m["address"] == RIV4835["address"]]
    with open(path, "w") as f:
        json.dump(scenario, f)
    return path


class Control:
    """What the Home Assistant side may ask of the machine's side."""

    def __init__(self):
        self.scenario = tempfile.NamedTemporaryFile(prefix="blupow-ha-scenario.", suffix=".json", delete=False)
        self.scenario.close()
        self.env = sysenv.Env(scenario=scenario_with_riv4835(self.scenario.name), devices=DEVICES)
        self.env.start_daemon()
        self.env.wait_all_online()

    def handle(self, what, args):
        env = self.env
        if what == "sim":
            return env.sim_call(args["method"], args.get("signature", ""), *args.get("args", []))
        if what == "stop_daemon":
            return env.stop_daemon()
        if what == "start_daemon":
            env.start_daemon()
            return True
        if what == "move_daemon":
            # The add-on on another port (a new host network setting): same data, same id.
            env.stop_daemon()
            env.port = sysenv.free_port()
            env.start_daemon()
            return {"url": env.url("")}
        if what == "supervised":
            # As under the Supervisor: loopback is no longer trusted, changes need a token.
            env.stop_daemon()
            if args.get("on", True):
                env.env["SUPERVISOR_TOKEN"] = "supervisor-token-of-this-test"
            else:
                env.env.pop("SUPERVISOR_TOKEN", None)
            env.start_daemon()
            return True
        if what == "info":
            with open(os.path.join(env.data, "integration_token")) as f:
                token = f.read().strip()
            return {"url": env.url(""), "battery_2": BATTERY_2, "riv4835": RIV4835, "devices": DEVICES,
                    "integration_token": token}
        raise ValueError(f"no control {what!r}")


def serve(control):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            try:
                result, status = {"result": control.handle(self.path.strip("/"), body)}, 200
            except Exception as e:  # the HA side shows it as its own failure
                result, status = {"error": f"{type(e).__name__}: {e}"}, 500
            data = json.dumps(result).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def in_root(root, command, cwd="/tmp/blupow-ha"):
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8", "AIOHTTP_NO_EXTENSIONS": "1",
           "PYTHONPATH": "/opt/ha-site:/opt/ha", "PYTHONDONTWRITEBYTECODE": "1", "MYPYPATH": "/opt/ha"}
    return subprocess.run(["/usr/sbin/chroot", root, "sh", "-c", f"cd {cwd} && {command}"], env=env,
                          capture_output=True, text=True)


def static_checks(root):
    """Home Assistant's hassfest; the quality scale's rules (hassfest checks those for core
    integrations only); mypy --strict against Home Assistant's own types."""
    integration = "/tmp/blupow-ha/config/custom_components/blupow"
    checks = [
        ("hassfest", "python3 -m script.hassfest --integration-path " + integration, "/opt/ha"),
        ("quality scale", f"python3 /tmp/blupow-ha/quality_scale_check.py {integration}", "/opt/ha"),
        # Home Assistant's own typing_extensions copy would shadow mypy's: only the tree on MYPYPATH.
        ("mypy --strict", "env -u PYTHONPATH mypy --strict --python-version 3.13 --follow-imports=silent "
                          "--cache-dir /var/cache/blupow-mypy -p custom_components.blupow", "/tmp/blupow-ha/config"),
    ]
    failed = 0
    for name, command, cwd in checks:
        p = in_root(root, command, cwd)
        ok = p.returncode == 0 and "Invalid integrations: 0" in p.stdout if name == "hassfest" else p.returncode == 0
        print(f"{name}: {'ok' if ok else 'FAIL'}")
        if not ok:
            print(p.stdout[-3000:], p.stderr[-3000:])
            failed = 1
    return failed


def main():
    if os.environ.get("BLUPOW_HA") == "skip":
        print("homeassistant: skipped (BLUPOW_HA=skip)")
        return 77
    root = subprocess.run([os.path.join(here, "setup.sh")], check=True, capture_output=True,
                          text=True).stdout.strip().splitlines()[-1]
    work = os.path.join(root, "tmp/blupow-ha")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "config/custom_components"))
    shutil.copytree(os.path.join(sysenv.SOURCE, "custom_components/blupow"),
                    os.path.join(work, "config/custom_components/blupow"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    for f in ("ha_tests.py", "ha_harness.py", "quality_scale_check.py"):
        shutil.copy(os.path.join(here, f), work)
    status = static_checks(root)
    control = Control()
    server = serve(control)
    try:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8", "AIOHTTP_NO_EXTENSIONS": "1",
               "PYTHONPATH": "/opt/ha-site:/opt/ha", "PYTHONDONTWRITEBYTECODE": "1",
               "BLUPOW_CONTROL": f"http://127.0.0.1:{server.server_address[1]}",
               "BLUPOW_URL": control.env.url(""), "BLUPOW_SOURCE_IN_ROOT": "/tmp/blupow-ha"}
        p = subprocess.run(["chroot", root, "python3", "/tmp/blupow-ha/ha_tests.py", *sys.argv[1:]], env=env)
        if p.returncode != 0:
            print(control.env.log())
        return p.returncode or status
    finally:
        server.shutdown()
        control.env.close()
        os.unlink(control.scenario.name)


if __name__ == "__main__":
    sys.exit(main())
