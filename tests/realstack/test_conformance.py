"""blupow-sim held to the real BlueZ: conformance.py's client sequence (discover, connect,
AcquireNotify and AcquireWrite, one Modbus request, release, disconnect, and again with the
services cached) against bluetoothd 5.66 with a module on a real adapter, and against
blupow-sim on a bus of its own in the same VM. The two traces must agree but where
conformance.ON_PURPOSE says why not; both are kept in the logs."""
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import conformance  # noqa: E402
import stack  # noqa: E402

ROVER = "60:98:66:ED:FC:11"


def trace(env, adapter, address):
    p = subprocess.run(["/usr/bin/python3", os.path.join(os.path.dirname(__file__), "conformance.py"), "trace",
                        adapter, address], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout)


class Conformance(unittest.TestCase):
    def test_simulator_signals_as_bluez_566(self):
        st = stack.Stack(controllers=2)
        try:
            with open(os.path.join(stack.SOURCE, "scenarios/demo.json")) as f:
                scenario = json.load(f)
            scenario["modules"] = [m for m in scenario["modules"] if m["address"] == ROVER]
            path = "/tmp/conformance-rover.json"
            with open(path, "w") as f:
                json.dump(scenario, f)
            per = stack.Peripheral(st, path, st.adapters[1:])
            address = per.modules["BT-TH-66EDFC11"][0]
            real = trace(dict(os.environ), st.adapters[0], address)
            per.close()
            with open(os.path.join(stack.LOGS, "conformance-bluetoothd.json"), "w") as f:
                json.dump(real, f, indent=1)
        finally:
            st.close()
        # The simulator on a bus of its own, as every simulator test runs it.
        out = subprocess.run(["dbus-daemon", "--config-file", os.path.join(stack.SOURCE, "tests/data/system-bus.conf"),
                              "--fork", "--print-address=1", "--print-pid=1"], check=True, capture_output=True,
                             text=True).stdout.split()
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=out[0])
        log = stack.log_file("conformance-sim.log")
        sim = subprocess.Popen([os.path.join(stack.BUILD, "sim/blupow-sim"), "--scenario", path], env=env,
                               stdout=subprocess.PIPE, stderr=log, text=True)
        os.close(log)
        try:
            self.assertEqual(sim.stdout.readline().strip(), "ready")
            simulated = trace(env, "hci0", ROVER)
        finally:
            sim.terminate()
            sim.wait(10)
            sim.stdout.close()
            os.kill(int(out[1]), 15)
        with open(os.path.join(stack.LOGS, "conformance-blupow-sim.json"), "w") as f:
            json.dump(simulated, f, indent=1)
        diff = conformance.compare(real, simulated)
        self.assertEqual(diff, [], "\n" + "\n".join(diff[:30]))


if __name__ == "__main__":
    unittest.main(verbosity=2)
