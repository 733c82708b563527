"""One BlueZ client sequence, run against the real bluetoothd 5.66 and against blupow-sim, and
what came back in each: replies and error names, which properties were signalled, grouped how,
and in what order. A difference the simulator has on purpose is listed in ON_PURPOSE with why.

    conformance.py trace ADAPTER ADDRESS    prints the trace of the sequence as JSON
The bus is the one DBUS_SYSTEM_BUS_ADDRESS names (or the system bus). Uses dbus-fast."""
import asyncio
import json
import os
import socket
import sys

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

BLUEZ = "org.bluez"
UUID_WRITE = "0000ffd1-0000-1000-8000-00805f9b34fb"
UUID_NOTIFY = "0000fff1-0000-1000-8000-00805f9b34fb"


def modbus_read(unit, reg, count):
    """A Modbus RTU read of holding registers, with its CRC-16/MODBUS."""
    frame = bytes([unit, 3, reg >> 8, reg & 0xFF, count >> 8, count & 0xFF])
    crc = 0xFFFF
    for b in frame:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return frame + bytes([crc & 0xFF, crc >> 8])


# Read 8 words at 0x000C from id 255: the controller's model block, a 21-byte reply.
REQUEST = modbus_read(255, 0x000C, 8)


class Tracer:
    """Records, in arrival order, the signals org.bluez sends about one device and its adapter,
    and the replies of our calls, with names made independent of handles and addresses."""

    def __init__(self, bus, adapter, address):
        self.bus = bus
        self.adapter_path = f"/org/bluez/{adapter}"
        self.dev_path = f"{self.adapter_path}/dev_{address.replace(':', '_')}"
        self.events = []
        self.uuid_of = {}
        self.pending = {}  # serial of a call in flight → its label
        self.advertisements = 0  # RSSI updates of the device: not traced (their number is the radio's)

    def where(self, path):
        if path == self.dev_path:
            return "device"
        if path == self.adapter_path:
            return "adapter"
        if path.startswith(self.dev_path + "/"):
            return "gatt:" + self.uuid_of.get(path, "?")
        return None

    def on_message(self, msg):
        # Replies are recorded here too, where they arrive among the signals: the awaiting
        # coroutine resumes only after the signals read with them were handled.
        if msg.message_type in (MessageType.METHOD_RETURN, MessageType.ERROR):
            label = self.pending.pop(msg.reply_serial, None)
            if label and msg.message_type == MessageType.ERROR:
                self.events.append(["reply", label, msg.error_name, msg.body[0] if msg.body else ""])
            elif label:
                self.events.append(["reply", label, "ok"])
            return False
        if msg.message_type != MessageType.SIGNAL:
            return False
        if msg.member == "PropertiesChanged":
            where = self.where(msg.path)
            iface, changed, invalidated = msg.body
            if where == "device" and "RSSI" in changed:
                self.advertisements += 1
            if where and iface in ("org.bluez.Device1", "org.bluez.Adapter1", "org.bluez.GattCharacteristic1"):
                props = {k: self.value(k, v.value) for k, v in changed.items() if k not in ("RSSI", "ManufacturerData",
                                                                                         "TxPower")}
                gone = sorted(invalidated)
                if props or gone:
                    self.events.append(["signal", where, props, gone] if gone else ["signal", where, props])
        elif msg.member == "InterfacesAdded":
            path, ifaces = msg.body
            if path.startswith(self.dev_path + "/"):
                for iface, props in ifaces.items():
                    if "UUID" in props:
                        self.uuid_of[path] = props["UUID"].value[:8]
                self.events.append(["added", self.where(path), sorted(i for i in ifaces if i.startswith("org.bluez"))])
        elif msg.member == "InterfacesRemoved":
            path, ifaces = msg.body
            if path.startswith(self.dev_path + "/"):
                self.events.append(["removed", self.where(path)])
        return False

    @staticmethod
    def value(key, v):
        if key == "UUIDs":
            return sorted(u[:8] for u in v)
        if isinstance(v, (bytes, bytearray)):
            return "bytes"
        return v

    async def call(self, path, iface, member, signature="", body=(), timeout_s=40, label=None):
        print(f"conformance: {member} {path}", file=sys.stderr, flush=True)
        msg = Message(destination=BLUEZ, path=path, interface=iface, member=member, signature=signature,
                      body=list(body), serial=self.bus.next_serial())
        self.pending[msg.serial] = label or member
        try:
            reply = await asyncio.wait_for(self.bus.call(msg), timeout_s)
        except asyncio.TimeoutError:
            self.pending.pop(msg.serial, None)
            self.events.append(["reply", label or member, "no reply"])
            return None
        return None if reply.message_type == MessageType.ERROR else reply

    async def settle(self, seconds):
        await asyncio.sleep(seconds)


async def wait_for(pred, seconds):
    for _ in range(int(seconds * 10)):
        if pred():
            return True
        await asyncio.sleep(0.1)
    return False


async def sequence(adapter, address):
    address = address.upper()
    bus = await MessageBus(bus_type=BusType.SYSTEM, negotiate_unix_fd=True).connect()
    t = Tracer(bus, adapter, address)
    bus.add_message_handler(t.on_message)
    await bus.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                           interface="org.freedesktop.DBus", member="AddMatch", signature="s",
                           body=[f"type='signal',sender='{BLUEZ}'"]))
    props = "org.freedesktop.DBus.Properties"

    async def get(path, iface, name):
        r = await bus.call(Message(destination=BLUEZ, path=path, interface=props, member="Get", signature="ss",
                                   body=[iface, name]))
        return r.body[0].value if r.message_type != MessageType.ERROR else None

    # Discovery until the module is known, then stopped: its RSSI goes with it.
    await t.call(t.adapter_path, "org.bluez.Adapter1", "SetDiscoveryFilter", "a{sv}",
                 [{"Transport": Variant("s", "le")}])
    await t.call(t.adapter_path, "org.bluez.Adapter1", "StartDiscovery")
    await wait_for(lambda: any(e[1] == "device" for e in t.events if e[0] == "signal"), 30)
    await t.settle(1.5)
    await t.call(t.adapter_path, "org.bluez.Adapter1", "StopDiscovery")
    await t.settle(1.0)

    for attempt in ("first", "cached"):
        t.events.append(["step", f"connect ({attempt})"])
        start = len(t.events)
        await t.call(t.dev_path, "org.bluez.Device1", "Connect")
        t.events.append(["state", "Connected read", await get(t.dev_path, "org.bluez.Device1", "Connected")])
        await wait_for(lambda: any(is_resolved(e) for e in t.events[start:]), 20)
        om = await bus.call(Message(destination=BLUEZ, path="/", interface="org.freedesktop.DBus.ObjectManager",
                                    member="GetManagedObjects"))
        chars = {}
        for path, ifaces in om.body[0].items():
            c = ifaces.get("org.bluez.GattCharacteristic1")
            if path.startswith(t.dev_path + "/") and c:
                t.uuid_of[path] = c["UUID"].value[:8]
                chars[c["UUID"].value] = path
        t.events.append(["state", "GATT objects",
                         sorted(f"{i.rsplit('.', 1)[1]}:{t.uuid_of.get(p, '')}"
                                for p, ifs in om.body[0].items() if p.startswith(t.dev_path + "/") for i in ifs
                                if i.startswith("org.bluez.Gatt"))])
        t.events.append(["step", "acquire"])
        n = await t.call(chars[UUID_NOTIFY], "org.bluez.GattCharacteristic1", "AcquireNotify", "a{sv}", [{}])
        w = await t.call(chars[UUID_WRITE], "org.bluez.GattCharacteristic1", "AcquireWrite", "a{sv}", [{}])
        for name in ("Notifying", "NotifyAcquired"):
            t.events.append(["state", f"{name} read", await get(chars[UUID_NOTIFY], "org.bluez.GattCharacteristic1",
                                                                 name)])
        packets = []
        if n and w:
            nfd = socket.socket(fileno=n.unix_fds[n.body[0]])
            wfd = socket.socket(fileno=w.unix_fds[w.body[0]])
            wfd.send(REQUEST)
            nfd.settimeout(5)
            got = b""
            try:
                while len(got) < 21:
                    p = nfd.recv(600)
                    packets.append(len(p))
                    got += p
            except OSError:
                pass
            t.events.append(["state", "reply packets", packets])
            t.events.append(["step", "release"])
            nfd.close()
            wfd.close()
            await t.settle(0.5)
        t.events.append(["step", f"disconnect ({attempt})"])
        await t.call(t.dev_path, "org.bluez.Device1", "Disconnect")
        await t.settle(1.0)
        t.events.append(["state", "Connected read", await get(t.dev_path, "org.bluez.Device1", "Connected")])

    # A second Connect while the first is pending, then the module drops the link in the middle
    # of a reply (the simulator's fault, on its side of the link): what is signalled, and in what
    # order against the acquired sockets.
    t.events.append(["step", "connect twice"])
    start = len(t.events)
    await asyncio.gather(t.call(t.dev_path, "org.bluez.Device1", "Connect"),
                         t.call(t.dev_path, "org.bluez.Device1", "Connect", label="second Connect"))
    await wait_for(lambda: any(is_resolved(e) for e in t.events[start:]), 20)
    n = await t.call(chars[UUID_NOTIFY], "org.bluez.GattCharacteristic1", "AcquireNotify", "a{sv}", [{}])
    w = await t.call(chars[UUID_WRITE], "org.bluez.GattCharacteristic1", "AcquireWrite", "a{sv}", [{}])
    t.events.append(["step", "remote drop"])
    await bus.call(Message(destination="org.blupow.Sim", path="/", interface="org.blupow.Sim1", member="SetFault",
                           signature="ssi", body=[address, "drop_mid_response", 1]))
    start = len(t.events)
    if n and w:
        nfd = socket.socket(fileno=n.unix_fds[n.body[0]])
        wfd = socket.socket(fileno=w.unix_fds[w.body[0]])
        wfd.send(REQUEST)
        await wait_for(lambda: any(e[0] == "signal" and e[1] == "device" and e[2].get("Connected") is False
                                   for e in t.events[start:]), 20)
        await t.settle(1.0)
        nfd.close()
        wfd.close()
    t.events.append(["state", "Connected read", await get(t.dev_path, "org.bluez.Device1", "Connected")])

    # Another client scans, then leaves the bus without StopDiscovery.
    t.events.append(["step", "a scanning client leaves the bus"])
    other = await MessageBus(bus_type=BusType.SYSTEM).connect()
    await other.call(Message(destination=BLUEZ, path=t.adapter_path, interface="org.bluez.Adapter1",
                             member="StartDiscovery"))
    seen = t.advertisements
    await wait_for(lambda: t.advertisements > seen, 5)
    other.disconnect()
    await t.settle(2.0)
    bus.disconnect()
    return t.events


# Where blupow-sim differs from bluetoothd 5.66 on purpose.
ON_PURPOSE = {
    "reply packets": "the peripheral side's packet size: over two BlueZ ends the MTU is 517 and the module "
                     "model's 20-byte packets are the peripheral's to make; the simulator plays the module's "
                     "20 bytes itself",
}


# A second Connect sent together with the first: real 5.66 answers "in progress" when it reads
# it while the first is pending, and "ok" when the link was up before it read it (seen both ways
# under TCG); either way after or before the first one's "ok".
SECOND_CONNECT = [["reply", "second Connect", "org.bluez.Error.Failed", "Operation already in progress"],
                  ["reply", "second Connect", "ok"]]


def normalize(events):
    """What must agree (Modalias apart: split_modalias). Five things real 5.66 does not do the
    same way twice are left out: a lone
    Connected=true (usually not sent for a central's own connection, sometimes sent), the
    order of the objects within one burst of InterfacesAdded (handle order on the module, which
    no client may rely on: each is kept, sorted), where ServicesResolved=true falls against that
    burst (usually after it, sometimes before it: bluetoothd queues both and flushes them in
    either order; blupowd waits for the characteristics either way, and the simulator's
    resolved_before_characteristics fault plays the other order), whether the module was heard
    in another client's short scan, and which of the two answers a racing second Connect gets
    and when."""
    out = []
    step = None
    for e in split_modalias(events):
        if e[0] == "step":
            step = e[1]
        if e[0] == "state" and e[1] in ON_PURPOSE:
            continue
        if step == "connect twice" and e in SECOND_CONNECT:
            continue  # one of the two, in any place: the first Connect's own reply is compared
        # Whether btvirt delivers the module's advertising report within another client's short
        # scan is the emulator's (it sends one report per scan start, and the kernel may drop it):
        # there, an RSSI invalidation says only that the module was heard. The adapter's
        # Discovering signals are what that step compares.
        if step == "a scanning client leaves the bus" and e[:2] == ["signal", "device"] and e[2:] == [{}, ["RSSI"]]:
            continue
        if e[0] == "signal" and e[1] == "device" and e[2] == {"Connected": True} and len(e) == 3:
            continue
        out.append(e)
    i = 0
    while i < len(out):
        # A burst: InterfacesAdded in a row, with at most one ServicesResolved among them or
        # just before them, which goes last.
        j, resolved = i, None
        while j < len(out) and (out[j][0] == "added" or (resolved is None and is_resolved(out[j]))):
            if out[j][0] != "added":
                resolved = out[j]
            j += 1
        added = [e for e in out[i:j] if e is not resolved]
        if j > i + 1:
            out[i:j] = sorted(added, key=json.dumps) + ([resolved] if resolved else [])
        i = max(j, i + 1)
    return out


def split_modalias(events):
    """bluetoothd batches a device's property changes until its main loop is idle: the Modalias
    read from the module's Device Information service usually comes in a signal of its own
    right after ServicesResolved, and sometimes (under load) in the same one. Compared as its
    own signal, just after the others."""
    for e in events:
        props = e[2] if e[0] == "signal" and e[1] == "device" and isinstance(e[2], dict) else {}
        if "Modalias" in props and len(props) > 1:
            yield [e[0], e[1], {k: v for k, v in props.items() if k != "Modalias"}, *e[3:]]
            yield [e[0], e[1], {"Modalias": props["Modalias"]}]
        else:
            yield e


def is_resolved(e):
    return e[0] == "signal" and e[1] == "device" and isinstance(e[2], dict) and e[2].get("ServicesResolved") is True


def compare(real, sim):
    """The differences between two traces, as lines. What we read back (the "state" events) is
    compared in its own order, with our step markers: where a read or a step falls among BlueZ's
    signals is the tracer's timing, not BlueZ's behaviour. BlueZ's signals and replies, in their
    order, are the rest."""
    a, b = normalize(real), normalize(sim)
    ours = ("state", "step")
    out = compare_lists([e for e in a if e[0] in ours], [e for e in b if e[0] in ours])
    return out + compare_lists([e for e in a if e[0] not in ours], [e for e in b if e[0] not in ours])


def compare_lists(a, b):
    out = []
    for i in range(max(len(a), len(b))):
        x = a[i] if i < len(a) else None
        y = b[i] if i < len(b) else None
        if x != y:
            out.append(f"#{i}: bluetoothd {json.dumps(x)}  |  blupow-sim {json.dumps(y)}")
    return out


def main(argv):
    if len(argv) == 4 and argv[1] == "trace":
        events = asyncio.run(sequence(argv[2], argv[3]))
        json.dump(events, sys.stdout, indent=1)
        print()
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
