#!/usr/bin/python3
"""API throughput: wrk on GET /api/v1/devices (10 simulated controllers, polling on) against
nginx serving the same bytes as a static file, same machine, same run.
Needs wrk and nginx-light (BLUPOW_DEPS=full scripts/install-deps.sh).
    make && /usr/bin/python3 bench/api_wrk.py [SECONDS]"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BLUPOW_BUILD_ROOT", os.path.join(ROOT, "build"))
N = 10
INTERVAL = 12  # the shortest interval ten controllers on one adapter allow (about 1 s each)


def wrk(url, seconds):
    out = subprocess.run(["wrk", "-t2", "-c100", f"-d{seconds}s", "--latency", url], capture_output=True, text=True,
                         check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, p99, int(errors.group(1)) if errors else 0


def polls_done(port):
    diag = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/diagnostics"))
    return sum(d["polls_ok"] for d in diag["devices"]), sum(d["polls_failed"] for d in diag["devices"])


def main():
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    d = tempfile.mkdtemp(prefix="blupow-wrk.")
    modules, devices = [], []
    for i in range(N):
        addr = "60:98:66:00:00:%02X" % i
        modules.append({"name": "BT-TH-660000%02X" % i, "address": addr, "rssi": -60,
                        "units": [{"family": "controller", "id": 255}]})
        devices.append({"name": f"Controller {i}", "address": addr, "type": "controller"})
    with open(os.path.join(d, "scenario.json"), "w") as f:
        json.dump({"adapters": [{"name": "hci0", "address": "00:1A:7D:DA:71:13", "powered": True}], "modules": modules}, f)
    with open(os.path.join(d, "options.json"), "w") as f:
        json.dump({"devices": devices, "poll_interval": INTERVAL}, f)
    out = subprocess.run([os.path.join(ROOT, "scripts/test-bus.sh")], capture_output=True, text=True,
                         check=True).stdout.split()
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=out[0])
    procs = [subprocess.Popen([os.path.join(BUILD, "sim/blupow-sim"), "--scenario",
                               os.path.join(d, "scenario.json")], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    time.sleep(0.5)
    port, nginx_port = 18399, 18398
    procs.append(subprocess.Popen([os.path.join(BUILD, "src/blupowd"), "--options", os.path.join(d, "options.json"),
                                   "--data-dir", d, "--port", str(port), "--bind", "127.0.0.1"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        url = f"http://127.0.0.1:{port}/api/v1/devices"
        for _ in range(120):  # every device read once
            try:
                devs = json.load(urllib.request.urlopen(url))["devices"]
                if all(x["readings"] for x in devs):
                    break
            except OSError:
                pass
            time.sleep(0.5)
        body = urllib.request.urlopen(url).read()
        os.makedirs(os.path.join(d, "www/api/v1"))
        with open(os.path.join(d, "www/api/v1/devices"), "wb") as f:
            f.write(body)
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""worker_processes 1; daemon off; pid {d}/nginx.pid; error_log {d}/nginx.err;
events {{ worker_connections 1024; }}
http {{ access_log off; default_type application/json;
  server {{ listen 127.0.0.1:{nginx_port}; root {d}/www; }} }}
""")
        # nginx's workers drop root: they must be able to read the file.
        for root, dirs, files in os.walk(d):
            os.chmod(root, 0o755)
            for name in files:
                os.chmod(os.path.join(root, name), 0o644)
        procs.append(subprocess.Popen(["nginx", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.5)
        static = urllib.request.urlopen(f"http://127.0.0.1:{nginx_port}/api/v1/devices").read()
        if len(static) != len(body):
            sys.exit(f"nginx served {len(static)} bytes instead of {len(body)}")
        ok0, failed0 = polls_done(port)
        t0 = time.monotonic()
        ours = wrk(url, seconds)
        elapsed = time.monotonic() - t0
        ok1, failed1 = polls_done(port)
        polls_during = f"{ok1 - ok0} ({failed1 - failed0} failed)"
        expected = round(N * elapsed / INTERVAL)
        theirs = wrk(f"http://127.0.0.1:{nginx_port}/api/v1/devices", seconds)
        print(f"GET /api/v1/devices, {N} devices, {len(body)} bytes; wrk -t2 -c100 -d{seconds}s, polling on\n")
        print("| server | requests/s | p99 (ms) | non-2xx |")
        print("|---|---|---|---|")
        print(f"| blupowd | {ours[0]:.0f} | {ours[1]:.2f} | {ours[2]} |")
        print(f"| blupowd, polls during the run | {polls_during} of {expected} expected | | |")
        print(f"| nginx (static file, 1 worker) | {theirs[0]:.0f} | {theirs[1]:.2f} | {theirs[2]} |")
        print(f"\nthroughput ratio blupowd/nginx: {ours[0] / theirs[0]:.2f} (target >= 0.8)")
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait()
        os.kill(int(out[1]), 15)


if __name__ == "__main__":
    main()
