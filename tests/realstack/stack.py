"""The real Bluetooth stack inside the VM (tests/realstack/vm.sh): the kernel's hci_vhci with
btvirt's emulated LE controllers, the system bus, bluetoothd 5.66, blupow-sim as the modules'
peripheral side and blupowd as the central. Runs as root in the guest; every log goes to
/mnt/logs (the host's build/realstack/out/logs)."""
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

import dbus

SOURCE = os.environ.get("BLUPOW_SOURCE_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
BUILD = os.environ.get("BLUPOW_BUILD_ROOT") or os.path.join(SOURCE, "build")
LOGS = os.environ.get("BLUPOW_REALSTACK_LOGS", "/mnt/logs")
BLUETOOTHD = "/usr/libexec/bluetooth/bluetoothd"
BUS_SOCKET = "/run/dbus/system_bus_socket"
PORT = 8099

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <!-- Mediation where the kernel offers it (test_apparmor); Debian 12's kernel does not. -->
  <apparmor mode="enabled"/>
  <policy context="default">
    <allow user="*"/> <allow own="*"/>
    <allow send_type="method_call"/> <allow send_type="signal"/>
    <allow send_type="method_return"/> <allow send_type="error"/>
    <allow receive_type="method_call"/> <allow receive_type="signal"/>
    <allow receive_type="method_return"/> <allow receive_type="error"/>
  </policy>
</busconfig>
"""


def slug(name):
    """The API's id for a device name."""
    return "-".join("".join(c.lower() if c.isalnum() else " " for c in name).split())


def wait_for(pred, timeout, what, interval=0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except (OSError, ValueError, dbus.DBusException) as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def log_tail(name, lines=15, only=None):
    """The last `lines` lines of a log under LOGS (those containing one of `only`, if given)."""
    try:
        with open(os.path.join(LOGS, name), errors="replace") as f:
            text = f.read().splitlines()
    except OSError as e:
        return [f"({name}: {e.strerror})"]
    if only:
        text = [t for t in text if any(o in t for o in only)]
    return text[-lines:]


class KernelLog:
    """The kernel's warnings since the last look: an oops in the Bluetooth core takes links and
    adapters with it, and says so only there."""
    OOPS = ("BUG", "WARNING", "Oops", "general protection")  # the kernel itself broke
    MARKS = OOPS + ("Call Trace", "hung_task", "Bluetooth: hci")

    def __init__(self):
        self.seen = len(self.lines())

    @staticmethod
    def lines():
        p = subprocess.run(["dmesg"], capture_output=True, text=True)
        return p.stdout.splitlines()

    def new(self):
        lines = self.lines()
        fresh, self.seen = lines[self.seen:], len(lines)
        return [x for x in fresh if any(m in x for m in self.MARKS)]


def log_file(name):
    """A log under LOGS, handed to a child process (which keeps it open: ours is closed)."""
    os.makedirs(LOGS, exist_ok=True)
    return os.open(os.path.join(LOGS, name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


class Stack:
    """One machine's Bluetooth: n working controllers, bluetoothd, the system bus."""

    def __init__(self, controllers):
        self.procs = {}
        self.controllers = controllers
        subprocess.run(["modprobe", "hci_vhci"], check=True)
        os.makedirs("/run/dbus", exist_ok=True)
        with open("/run/dbus/blupow-bus.conf", "w") as f:
            f.write(BUS_CONFIG)
        if not os.path.exists(BUS_SOCKET):
            subprocess.run(["dbus-daemon", "--config-file", "/run/dbus/blupow-bus.conf", "--fork", "--nopidfile"],
                           check=True)
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = "unix:path=" + BUS_SOCKET
        # One more than needed: the first controller btvirt makes times out its HCI Reset under
        # TCG ("hci0: Opcode 0x0c03 failed: -110") and never reaches bluetoothd.
        self.spawn("btvirt", ["btvirt", "-L", f"-l{controllers + 1}"])
        # Every message on the bus, for reading what bluetoothd really signalled.
        self.spawn("dbus-monitor", ["dbus-monitor", "--system"])
        self.start_bluetoothd()
        # The last n: the first controller comes up at some boots and not at others, and the
        # tests' layout (central, spare central, one adapter per module) must not move with it.
        self.adapters = self.wait_adapters(controllers)[-controllers:]

    def spawn(self, name, argv, env=None):
        out = log_file(name + ".log")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        os.close(out)
        self.procs[name] = p
        return p

    def start_bluetoothd(self):
        self.spawn("bluetoothd", [BLUETOOTHD, "-n", "-d", "-f", os.path.join(SOURCE, "tests/realstack/main.conf")])
        wait_for(lambda: self.bus().name_has_owner("org.bluez"), 20, "bluetoothd on the bus")

    def unplug_controllers(self):
        """Every emulated controller goes, as an unplugged USB adapter does (btvirt exits: the
        kernel removes its hci devices)."""
        p = self.procs.pop("btvirt")
        p.terminate()
        p.wait(timeout=10)
        wait_for(lambda: not any("org.bluez.Adapter1" in ifs for ifs in self.objects().values()), 20,
                 "the adapters gone")

    def plug_controllers(self):
        """The same controllers again, under the same names. The one whose HCI Reset timed out
        at the first plug may come up this time (seen under load): one more adapter, unused."""
        self.spawn("btvirt", ["btvirt", "-L", f"-l{self.controllers + 1}"])

        try:
            wait_for(lambda: set(self.adapters) <= set(self.adapter_names()), 60, f"the adapters {self.adapters} back")
        except AssertionError as e:
            raise AssertionError(f"the controllers came back as {self.adapter_names()}, were {self.adapters}") from e

    def ensure_bluetoothd(self):
        """Starts bluetoothd again if it is gone; True when it had to."""
        p = self.procs.get("bluetoothd")
        if p and p.poll() is None:
            return False
        if p:
            print(f"realstack: bluetoothd had exited ({p.returncode}); starting it again", flush=True)
        self.start_bluetoothd()
        self.wait_adapters(self.controllers)
        return True

    def stop_bluetoothd(self, sig=signal.SIGTERM):
        p = self.procs.pop("bluetoothd")
        p.send_signal(sig)
        p.wait(timeout=20)

    def trouble(self):
        """What is wrong with the stack itself, in words; empty when nothing is."""
        found = [f"{name} exited ({p.returncode})" for name, p in self.procs.items() if p.poll() is not None]
        try:
            names = self.adapter_names()
        except dbus.DBusException as e:
            return found + [f"bluetoothd does not answer ({e.get_dbus_name()})"]
        missing = [a for a in self.adapters if a not in names]
        if missing:
            found.append(f"adapters {missing} gone (bluetoothd has {names})")
        for a in self.adapters:
            if a in names and not self.adapter_property(a, "Powered"):
                found.append(f"{a} powered off")
        return found

    def adapter_property(self, name, prop):
        props = dbus.Interface(self.bus().get_object("org.bluez", "/org/bluez/" + name),
                               "org.freedesktop.DBus.Properties")
        return props.Get("org.bluez.Adapter1", prop)

    def bus(self):
        return dbus.SystemBus()

    def objects(self):
        om = dbus.Interface(self.bus().get_object("org.bluez", "/"), "org.freedesktop.DBus.ObjectManager")
        return om.GetManagedObjects()

    def adapter_names(self):
        """The adapters bluetoothd offers now, ready to advertise, by name."""
        return sorted(str(p).rsplit("/", 1)[1] for p, ifs in self.objects().items()
                      if "org.bluez.Adapter1" in ifs and "org.bluez.LEAdvertisingManager1" in ifs)

    def wait_adapters(self, n):
        def ready():
            found = self.adapter_names()
            return found if len(found) >= n else None
        return wait_for(ready, 60, f"{n} adapters on bluetoothd")

    def adapter_address(self, name):
        return str(self.adapter_property(name, "Address"))

    def device_connected(self, adapter, address):
        """Connected as the bluetoothd of `adapter` sees the device with `address`."""
        path = self.device_path(adapter, address)
        try:
            props = dbus.Interface(self.bus().get_object("org.bluez", path), "org.freedesktop.DBus.Properties")
            return bool(props.Get("org.bluez.Device1", "Connected"))
        except dbus.DBusException:
            return False

    def match_rules_of(self, pid):
        """The bus's match rules of the connections of process `pid` (the bus's Debug.Stats)."""
        bus = self.bus()
        dbus_if = dbus.Interface(bus.get_object("org.freedesktop.DBus", "/org/freedesktop/DBus"),
                                 "org.freedesktop.DBus")
        stats = dbus.Interface(bus.get_object("org.freedesktop.DBus", "/org/freedesktop/DBus"),
                               "org.freedesktop.DBus.Debug.Stats")
        rules = []
        for name, of_name in stats.GetAllMatchRules().items():
            try:
                if int(dbus_if.GetConnectionUnixProcessID(name)) == pid:
                    rules += [str(r) for r in of_name]
            except dbus.DBusException:
                pass  # gone meanwhile
        return rules

    def device_path(self, adapter, address):
        return f"/org/bluez/{adapter}/dev_{address.replace(':', '_')}"

    def connect_from(self, adapter, address):
        """Another central: discovers the module on `adapter` and connects to it."""
        bus = self.bus()
        a = dbus.Interface(bus.get_object("org.bluez", "/org/bluez/" + adapter), "org.bluez.Adapter1")
        a.SetDiscoveryFilter({"Transport": "le"})
        a.StartDiscovery()
        path = self.device_path(adapter, address)
        try:
            wait_for(lambda: path in self.objects(), 30, f"{address} discovered on {adapter}")
        finally:
            a.StopDiscovery()
        dbus.Interface(bus.get_object("org.bluez", path), "org.bluez.Device1").Connect(timeout=40)

    def disconnect_from(self, adapter, address):
        path = self.device_path(adapter, address)
        dbus.Interface(self.bus().get_object("org.bluez", path), "org.bluez.Device1").Disconnect(timeout=20)

    def btmgmt(self, *args):
        return subprocess.run(["btmgmt", *args], capture_output=True, text=True, timeout=30)

    def close(self):
        for name, p in reversed(list(self.procs.items())):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        self.procs.clear()


class Peripheral:
    """blupow-sim --peripheral: the scenario's modules, one per adapter."""

    def __init__(self, stack, scenario, adapters):
        self.stack = stack
        path = scenario if scenario.startswith("/") else os.path.join(SOURCE, "scenarios", scenario + ".json")
        err = log_file("sim.log")
        self.proc = subprocess.Popen([os.path.join(BUILD, "sim/blupow-sim"), "--scenario", path, "--peripheral",
                                      ",".join(adapters)], stdout=subprocess.PIPE, stderr=err, text=True)
        os.close(err)
        self.modules = {}  # name → (address, adapter)
        deadline = time.monotonic() + 60
        for line in self.proc.stdout:
            if line.startswith("module "):
                _, address, adapter, name = line.split(maxsplit=3)
                self.modules[name.strip()] = (address, adapter)
            if line.strip() == "ready" or time.monotonic() > deadline:
                break
        assert self.modules, "blupow-sim --peripheral announced no module"

    def wait_registered(self):
        """Every module advertising again on a new bluetoothd."""
        wait_for(lambda: sum(self.adverts().values()) >= len(self.modules), 60, "the modules advertising again")

    def adverts(self):
        """Active advertisements by adapter name."""
        return {str(p).rsplit("/", 1)[1]: int(ifs["org.bluez.LEAdvertisingManager1"]["ActiveInstances"])
                for p, ifs in self.stack.objects().items() if "org.bluez.LEAdvertisingManager1" in ifs}

    def trouble(self, settle=15):
        """What keeps a module from being found: the simulator gone, or a module neither linked
        (a linked one is blupowd's doing, not the stack's) nor advertising. Asked a few times over
        `settle` seconds, as a link just handed back takes a moment to advertise again."""
        if self.proc.poll() is not None:
            return [f"blupow-sim exited ({self.proc.returncode})"]
        deadline = time.monotonic() + settle
        while True:
            found = []
            try:
                ads = self.adverts()
                for name, (address, adapter) in self.modules.items():
                    if not self.stats(address)["connected"] and not ads.get(adapter):
                        found.append(f"{name} not advertising on {adapter}")
            except dbus.DBusException as e:
                found.append(f"no answer on the bus ({e.get_dbus_name()})")
            if not found or time.monotonic() > deadline:
                return found
            time.sleep(0.5)

    def control(self):
        return dbus.Interface(self.stack.bus().get_object("org.blupow.Sim", "/"), "org.blupow.Sim1")

    def stats(self, address):
        return {str(k): int(v) for k, v in self.control().GetStats(address).items()}

    def set_fault(self, address, fault, count):
        self.control().SetFault(address, fault, dbus.Int32(count))

    def readings(self, address, unit_id):
        return json.loads(str(self.control().GetReadings(address, dbus.Byte(unit_id))))

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc.stdout.close()


class Daemon:
    """blupowd serving on PORT, the central on `adapter`."""

    def __init__(self, devices, adapter, binary=None, **options):
        self.dir = "/tmp/blupowd"
        os.makedirs(self.dir, exist_ok=True)
        opts = {"devices": devices, "poll_interval": 10, "adapter": adapter, "keep_connected": False,
                "log_level": "debug"}
        opts.update(options)
        self.options = os.path.join(self.dir, "options.json")
        with open(self.options, "w") as f:
            json.dump(opts, f)
        out = log_file("blupowd.log")
        self.proc = subprocess.Popen([binary or os.path.join(BUILD, "src/blupowd"), "serve", "--options", self.options,
                                      "--data-dir", self.dir, "--port", str(PORT),
                                      "--web-dir", os.path.join(SOURCE, "web")],
                                     stdout=out, stderr=subprocess.STDOUT)
        os.close(out)
        wait_for(lambda: self.get("/api/v1/health"), 20, "blupowd's API")

    def get(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}{path}", timeout=10) as r:
            return json.load(r)

    def get_text(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}{path}", timeout=10) as r:
            return r.read().decode()

    def post(self, path):
        req = urllib.request.Request(f"http://127.0.0.1:{PORT}{path}", method="POST", data=b"")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    def poll(self, dev_id, timeout=60):
        """Asks for a poll and waits for its end: the device's last_attempt moves. (It has a
        resolution of a second and moves when a session starts; read_now waits for readings.)"""
        before = self.device(dev_id)["last_attempt"]
        status, _ = self.post(f"/api/v1/devices/{dev_id}/poll")
        assert status in (200, 202), f"poll {dev_id}: HTTP {status}"
        return self.wait_device(dev_id, lambda x: x["last_attempt"] != before, timeout, "the poll's end")

    def read_now(self, dev_id, timeout=60):
        """Asks for a poll and waits for readings taken after the request: readings of age A,
        in an answer asked for E seconds after the request, are newer when A + 0.1 < E."""
        asked = time.monotonic()
        status, _ = self.post(f"/api/v1/devices/{dev_id}/poll")
        assert status in (200, 202), f"poll {dev_id}: HTTP {status}"

        def newer():
            elapsed = time.monotonic() - asked
            dev = self.device(dev_id)
            return dev if dev["age_s"] is not None and dev["age_s"] + 0.1 < elapsed else None
        return wait_for(newer, timeout, f"{dev_id}: readings newer than the poll request")

    def device(self, dev_id):
        return self.get(f"/api/v1/devices/{dev_id}")

    def wait_device(self, dev_id, pred, timeout, what):
        seen = {}

        def check():
            seen["last"] = self.device(dev_id)
            return seen["last"] if pred(seen["last"]) else None
        try:
            return wait_for(check, timeout, f"{dev_id}: {what}")
        except AssertionError as e:
            last = seen.get("last") or {}
            shown = {k: last.get(k) for k in ("state", "available", "diagnosis", "age_s", "last_attempt")}
            raise AssertionError(f"{e}; the device last: {shown}") from None

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            return self.proc.wait(timeout=20)
        return self.proc.returncode
