"""Each rule of blupowd's AppArmor profile (the child profile blupow//blupowd in apparmor.txt) is
needed: with the rule taken out, the confined add-on's usual work (every device read, verify,
a scan, history, the status page, a stop by SIGTERM from s6's profile) fails or is logged as
denied. Run by hand inside the VM (the dbus rules can be shown needed only where the bus
really denies; the table says when it does not):

    BLUPOW_VM_KERNEL=trixie-backports tests/realstack/run.sh BUILD apparmor_rules

One pass per rule, about a minute each; the table lands in BUILD/realstack/out/logs/apparmor-rules.txt."""
import os
import re
import subprocess
import sys
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import stack  # noqa: E402
import test_apparmor  # noqa: E402
from test_apparmor import Confined, kernel_log, load_profile  # noqa: E402


def child_rules(text):
    """The rule lines of the blupowd child profile, as they appear in apparmor.txt."""
    body = text[text.index("profile blupowd"):]
    body = body[:body.index("\n  }\n")]
    return [line.strip() for line in body.splitlines()[1:]
            if line.strip().endswith(",") and not line.strip().startswith("#")]


class EveryRuleNeeded(Confined):
    def workload(self):
        """What the add-on does in a day, shortened; the first failure, or None."""
        try:
            # All capabilities: a rule refusing one quietly is needed only when it is asked for.
            self.start(caps=None)
            for dev_id in ("rover", "battery-1", "inverter", "shunt"):
                self.wait_online(dev_id, 90)
            p = self.verify()
            if p.returncode != 0:
                return "verify failed: " + p.stdout.strip().splitlines()[-1]
            self.api("/api/v1/scan", "POST", b'{"seconds": 2}')
            stack.wait_for(lambda: not self.api("/api/v1/scan")["scanning"], 30, "the scan's end")
            if not self.api("/api/v1/devices/rover/history?key=battery_voltage")["data"]:
                return "no history"
            with urllib.request.urlopen(f"http://127.0.0.1:{stack.PORT}/app.js", timeout=10) as r:
                r.read()
            self.stop()
        except (AssertionError, OSError, ValueError, urllib.error.URLError, subprocess.SubprocessError) as e:
            return f"{type(e).__name__}: {str(e)[:160]}"
        return None

    def test_every_rule_of_the_daemon_profile_is_needed(self):
        # The dbus rules can be shown needed only where the bus really denies (see Confined).
        dbus_denies = self.bus_refuses_an_unlisted_peer() if self.dbus_mediation else "no D-Bus mediation"
        warned = subprocess.run(["apparmor_parser", "--skip-kernel-load", "--skip-cache", "--warn=all", test_apparmor.LOADED],
                                capture_output=True, text=True).stderr
        coarse_unix = next((w.split(": ", 1)[-1].strip() for w in warned.splitlines()
                            if "downgrading extended network unix socket rule" in w), None)
        rows, unneeded = [], []
        # The whole profile first: the work must pass with no denial, or nothing below means anything.
        mark = len(kernel_log())
        self.assertIsNone(self.workload(), "the work fails under the whole profile")
        self.assertEqual([x for x in kernel_log()[mark:] if 'apparmor="DENIED"' in x], [])
        self.setUp()
        only = os.environ.get("BLUPOW_RULES")  # a few, separated by ';', to look at them again
        for rule in child_rules(self.shipped):
            if only and rule not in only.split(";"):
                continue
            if rule.startswith("dbus") and dbus_denies is not True:
                rows.append(f"{rule:58} not checkable here: the bus does not deny ({dbus_denies[:90]}...)")
                continue
            # A parser that cannot compile fine-grained unix rules for this kernel turns the base
            # abstraction's unix rules into a plain "network unix": every unix socket is allowed.
            if (rule.startswith("network unix") or rule.startswith("/run/dbus/")) and coarse_unix:
                rows.append(f"{rule:58} not checkable here: unix sockets mediated coarsely ({coarse_unix})")
                continue
            # Each pass on a whole stack: bluetoothd 5.66 has been seen to exit under these restarts.
            if self.stack.ensure_bluetoothd():
                rows.append("(bluetoothd had exited; started again)")
            load_profile(self.shipped.replace("    " + rule + "\n", "", 1))
            mark = len(kernel_log())
            failure = self.workload()
            if self.proc and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            denials = [x for x in kernel_log()[mark:] if 'apparmor="DENIED"' in x and "blupowd" in x]
            # The denial says what the rule is for; a failure without one is noted as such.
            what = re.sub(r"^.*?apparmor=", "apparmor=", denials[0])[:200] if denials else failure
            rows.append(f"{rule:58} {'needed' if what else 'NOT NEEDED'}: {what or 'no failure, no denial'}")
            print(rows[-1], flush=True)
            if not what:
                unneeded.append(rule)
            self.setUp()
        load_profile(self.shipped)
        table = "\n".join(rows)
        with open(os.path.join(stack.LOGS, "apparmor-rules.txt"), "w") as f:
            f.write(table + "\n")
        print("\n" + table)
        self.assertEqual(unneeded, [], "rules the daemon does not need")


def load_tests(loader, tests, pattern):
    """Only this campaign, not the confinement tests it inherits."""
    return unittest.TestSuite([EveryRuleNeeded("test_every_rule_of_the_daemon_profile_is_needed")])

if __name__ == "__main__":
    unittest.main()
