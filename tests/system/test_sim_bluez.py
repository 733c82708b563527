"""blupow-sim seen as a BlueZ client sees BlueZ 5.66: property types, signal order and error
names, checked over the bus with dbus-fast (the D-Bus library bleak uses), not with our code."""
import asyncio
import os
import select
import socket
import struct
import unittest

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

import sysenv

ROVER = "60:98:66:ED:FC:11"
ADAPTER = "/org/bluez/hci0"


def sig(variant):
    return variant.signature


def modbus_read(reg, count):
    """A Modbus read of holding registers from id 0xFF, CRC appended."""
    body = struct.pack(">BBHH", 0xFF, 3, reg, count)
    crc = 0xFFFF
    for b in body:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return body + struct.pack("<H", crc)


def take_fd(reply):
    """Our own socket; dbus-fast's copy is closed, or BlueZ would never see the last close."""
    fd = reply.unix_fds[reply.body[0]]
    sock = socket.socket(fileno=os.dup(fd))
    os.close(fd)
    return sock


def read_frame(sock, size):
    """Packets from a notification socket until `size` bytes have come."""
    frame, packets = b"", []
    sock.setblocking(False)
    while len(frame) < size:
        ready, _, _ = select.select([sock], [], [], 3)
        if not ready:
            raise AssertionError(f"only {len(frame)} bytes arrived")
        packets.append(sock.recv(512))
        frame += packets[-1]
    return frame, packets


class Bluez(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = sysenv.Env()

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def run_async(self, coro):
        return asyncio.run(asyncio.wait_for(coro, 60))

    async def connect(self):
        bus = await MessageBus(bus_type=BusType.SYSTEM, bus_address=self.env.bus_address).connect()
        seen = []
        bus.add_message_handler(lambda m: seen.append(m) and None)
        await self.call(bus, "/org/freedesktop/DBus", "org.freedesktop.DBus", "AddMatch", "s",
                        ["type='signal',sender='org.bluez'"], dest="org.freedesktop.DBus")
        return bus, seen

    async def call(self, bus, path, iface, member, signature="", body=None, dest="org.bluez"):
        return await bus.call(Message(destination=dest, path=path, interface=iface, member=member,
                                      signature=signature, body=body or []))

    async def objects(self, bus):
        r = await self.call(bus, "/", "org.freedesktop.DBus.ObjectManager", "GetManagedObjects")
        return r.body[0]

    async def discover(self, bus):
        r = await self.call(bus, ADAPTER, "org.bluez.Adapter1", "StartDiscovery")
        self.assertEqual(r.message_type, MessageType.METHOD_RETURN, r.body)
        for _ in range(50):
            objs = await self.objects(bus)
            # A device object may be left from an earlier scan without RSSI (BlueZ drops it when
            # discovery stops): wait for an advertisement seen by this discovery.
            dev = next((p for p, i in objs.items() if i.get("org.bluez.Device1", {}).get("Address") and
                        i["org.bluez.Device1"]["Address"].value == ROVER and
                        "RSSI" in i["org.bluez.Device1"]), None)
            if dev:
                return dev, objs
            await asyncio.sleep(0.1)
        self.fail("the controller was not discovered")

    async def connect_device(self, bus, path):
        """Connects and waits for ServicesResolved; returns the objects then."""
        r = await self.call(bus, path, "org.bluez.Device1", "Connect")
        self.assertEqual(r.message_type, MessageType.METHOD_RETURN, r.body)
        for _ in range(50):
            objs = await self.objects(bus)
            if objs[path]["org.bluez.Device1"]["ServicesResolved"].value:
                return objs
            await asyncio.sleep(0.1)
        self.fail("services were not resolved")

    def test_property_types(self):
        async def go():
            bus, _ = await self.connect()
            path, objs = await self.discover(bus)
            a = objs[ADAPTER]["org.bluez.Adapter1"]
            for k, s in {"Address": "s", "AddressType": "s", "Powered": "b", "Discovering": "b", "Roles": "as",
                         "UUIDs": "as", "Alias": "s", "Name": "s"}.items():
                self.assertEqual(sig(a[k]), s, k)
            d = objs[path]["org.bluez.Device1"]
            for k, s in {"Address": "s", "AddressType": "s", "Alias": "s", "Name": "s", "RSSI": "n",
                         "ManufacturerData": "a{qv}", "UUIDs": "as", "Connected": "b", "ServicesResolved": "b",
                         "Adapter": "o", "Paired": "b", "Trusted": "b"}.items():
                self.assertIn(k, d)
                self.assertEqual(sig(d[k]), s, k)
            self.assertTrue(d["Name"].value.startswith("BT-TH-"))
            for v in d["ManufacturerData"].value.values():
                self.assertEqual(v.signature, "ay")
            objs = await self.connect_device(bus, path)
            chars = {p: i["org.bluez.GattCharacteristic1"] for p, i in objs.items()
                     if p.startswith(path + "/") and "org.bluez.GattCharacteristic1" in i}
            uuids = {c["UUID"].value[4:8]: c for c in chars.values()}
            self.assertLessEqual({"ffd1", "fff1"}, set(uuids))
            for c in chars.values():
                for k, s in {"UUID": "s", "Service": "o", "Flags": "as", "Value": "ay"}.items():
                    self.assertEqual(sig(c[k]), s, k)
                self.assertNotIn("Handle", c, "no Handle on remote characteristics in 5.66")
            self.assertIn("notify", uuids["fff1"]["Flags"].value)
            self.assertIn("write-without-response", uuids["ffd1"]["Flags"].value)
            await self.call(bus, path, "org.bluez.Device1", "Disconnect")
            await self.call(bus, ADAPTER, "org.bluez.Adapter1", "StopDiscovery")
            bus.disconnect()
        self.run_async(go())

    def test_signal_order(self):
        """Connect: Connected=true, the GATT objects, UUIDs, then ServicesResolved=true; a connect
        that finds the GATT objects cached signals no UUIDs. Disconnect: the reply first, then
        Connected=false (bleak fails with EOFError the other way round). Stop discovery: RSSI
        invalidated."""
        async def go():
            bus, seen = await self.connect()
            path, _ = await self.discover(bus)
            # RemoveDevice drops the cached GATT database, so that this connect resolves it afresh.
            r = await self.call(bus, ADAPTER, "org.bluez.Adapter1", "RemoveDevice", "o", [path])
            self.assertEqual(r.message_type, MessageType.METHOD_RETURN, r.body)
            for _ in range(100):
                objs = await self.objects(bus)
                if path in objs and not any(p.startswith(path + "/") for p in objs):
                    break
                await asyncio.sleep(0.1)
            else:
                self.fail("the device did not come back without its GATT cache")
            del seen[:]
            await self.connect_resolved(bus, path, seen)
            events = []
            for m in seen:
                if m.member == "PropertiesChanged" and m.path == path:
                    events += [f"{k}={v.value}" if k != "UUIDs" else k for k, v in m.body[1].items()
                               if k in ("Connected", "ServicesResolved", "UUIDs")]
                elif m.member == "InterfacesAdded" and "org.bluez.GattCharacteristic1" in m.body[1]:
                    events.append("characteristic")
            self.assertEqual(events[0], "Connected=True", events)
            self.assertEqual(events[-1], "ServicesResolved=True", events)
            self.assertIn("characteristic", events)
            self.assertLess(events.index("characteristic"), events.index("ServicesResolved=True"))
            self.assertLess(events.index("characteristic"), events.index("UUIDs"))
            self.assertLess(events.index("UUIDs"), events.index("ServicesResolved=True"))

            del seen[:]
            reply = await self.call(bus, path, "org.bluez.Device1", "Disconnect")
            self.assertEqual(reply.message_type, MessageType.METHOD_RETURN)
            for _ in range(50):
                if any(m.member == "PropertiesChanged" and "Connected" in m.body[1] for m in seen):
                    break
                await asyncio.sleep(0.1)
            order = []
            for m in seen:
                if m.message_type == MessageType.METHOD_RETURN and m.reply_serial == reply.reply_serial:
                    order.append("reply")
                elif m.member == "PropertiesChanged" and m.path == path and "Connected" in m.body[1]:
                    order.append(f"Connected={m.body[1]['Connected'].value}")
            self.assertEqual(order[:2], ["reply", "Connected=False"], order)

            # Again, with the GATT objects cached: no UUIDs change, no InterfacesAdded.
            del seen[:]
            await self.connect_resolved(bus, path, seen)
            changed = [k for m in seen if m.member == "PropertiesChanged" and m.path == path for k in m.body[1]]
            self.assertNotIn("UUIDs", changed)
            self.assertFalse([m for m in seen if m.member == "InterfacesAdded"], "GATT objects are cached")
            await self.call(bus, path, "org.bluez.Device1", "Disconnect")
            for _ in range(50):
                if any(m.member == "PropertiesChanged" and m.path == path and "Connected" in m.body[1]
                       and not m.body[1]["Connected"].value for m in seen):
                    break
                await asyncio.sleep(0.1)

            del seen[:]
            await self.call(bus, ADAPTER, "org.bluez.Adapter1", "StopDiscovery")
            for _ in range(50):
                if any(m.member == "PropertiesChanged" and m.path == path and "RSSI" in m.body[2] for m in seen):
                    break
                await asyncio.sleep(0.1)
            else:
                self.fail("RSSI was not invalidated when discovery stopped")
            bus.disconnect()
        self.run_async(go())

    async def connect_resolved(self, bus, path, seen):
        """Connect, then wait for ServicesResolved=true among the signals seen."""
        r = await self.call(bus, path, "org.bluez.Device1", "Connect")
        self.assertEqual(r.message_type, MessageType.METHOD_RETURN, r.body)
        for _ in range(50):
            if any(m.member == "PropertiesChanged" and m.path == path and "ServicesResolved" in m.body[1]
                   and m.body[1]["ServicesResolved"].value for m in seen):
                return
            await asyncio.sleep(0.1)
        self.fail(f"{path}: services not resolved after Connect")

    async def reported(self, *filters, seconds=2.0):
        """Sets the filters in turn (none: no SetDiscoveryFilter), starts a discovery and counts
        the advertisements reported per device path."""
        bus, seen = await self.connect()
        for flt in filters:
            r = await self.call(bus, ADAPTER, "org.bluez.Adapter1", "SetDiscoveryFilter", "a{sv}", [flt])
            self.assertEqual(r.message_type, MessageType.METHOD_RETURN, r.body)
        r = await self.call(bus, ADAPTER, "org.bluez.Adapter1", "StartDiscovery")
        self.assertEqual(r.message_type, MessageType.METHOD_RETURN, r.body)
        await asyncio.sleep(seconds)
        await self.call(bus, ADAPTER, "org.bluez.Adapter1", "StopDiscovery")
        counts = {}
        for m in seen:
            if m.member == "PropertiesChanged" and m.body[0] == "org.bluez.Device1" and "RSSI" in m.body[1]:
                counts[m.path] = counts.get(m.path, 0) + 1
            elif m.member == "InterfacesAdded" and "RSSI" in m.body[1].get("org.bluez.Device1", {}):
                counts[m.body[0]] = counts.get(m.body[0], 0) + 1
        bus.disconnect()
        return counts

    def test_discovery_filters(self):
        """SetDiscoveryFilter is applied per client, as BlueZ 5.66 does: RSSI threshold, Pattern
        (address or name prefix), UUIDs, Transport, DuplicateData."""
        rover = ADAPTER + "/dev_60_98_66_ED_FC_11"
        shunt = ADAPTER + "/dev_C4_D3_6A_00_11_22"
        inverter = ADAPTER + "/dev_D8_B6_73_10_20_35"
        battery = ADAPTER + "/dev_F8_55_48_1B_1B_B7"

        async def go():
            everything = await self.reported()
            self.assertLessEqual({rover, shunt, inverter, battery}, set(everything), everything)
            # The default reports every advertisement (every 200 ms here).
            self.assertGreaterEqual(everything[rover], 4, everything)

            strong = await self.reported({"RSSI": Variant("n", -62)})
            self.assertIn(rover, strong)  # -58 dBm
            self.assertNotIn(inverter, strong)  # -66 dBm
            self.assertNotIn(battery, strong)  # -71 dBm

            by_name = await self.reported({"Pattern": Variant("s", "BT-TH-66ED")})
            self.assertEqual(set(by_name), {rover}, by_name)
            by_address = await self.reported({"Pattern": Variant("s", "C4:D3:6A")})
            self.assertEqual(set(by_address), {shunt}, by_address)

            shunt_service = await self.reported({"UUIDs": Variant("as", ["c011"])})
            self.assertEqual(set(shunt_service), {shunt}, shunt_service)

            self.assertEqual(await self.reported({"Transport": Variant("s", "bredr")}), {})

            once = await self.reported({"Pattern": Variant("s", "BT-TH-66ED"), "DuplicateData": Variant("b", False)})
            self.assertEqual(once, {rover: 1}, "without duplicates, one report per discovery session")

            # An empty dict clears the filter.
            self.assertIn(rover, await self.reported({"Transport": Variant("s", "bredr")}, {}))
        self.run_async(go())

    def test_acquire_notify(self):
        """AcquireNotify as 5.66 has it: a SOCK_SEQPACKET socket with one notification per packet
        and the MTU; Value left alone while acquired; StartNotify refused meanwhile, and
        AcquireNotify refused while another client has a StartNotify session; released when the
        client closes its end; HUP on disconnect."""
        prop = self.char_prop

        async def exchange(bus):
            other, fdbus, path, chars = await self.connected_chars(bus)
            notify, write = chars["fff1"][0], chars["ffd1"][0]
            self.assertEqual(sig(chars["fff1"][1]["NotifyAcquired"]), "b")
            self.assertFalse(chars["fff1"][1]["NotifyAcquired"].value)
            self.assertNotIn("NotifyAcquired", chars["ffd1"][1], "only on characteristics that notify")

            r = await self.call(fdbus, write, "org.bluez.GattCharacteristic1", "AcquireNotify", "a{sv}", [{}])
            self.assertEqual(r.error_name, "org.bluez.Error.NotSupported")
            value_before = await prop(bus, notify, "Value")
            r = await self.call(fdbus, notify, "org.bluez.GattCharacteristic1", "AcquireNotify", "a{sv}", [{}])
            self.assertEqual(r.message_type, MessageType.METHOD_RETURN, r.body)
            self.assertEqual(r.signature, "hq")
            self.assertEqual(r.body[1], 23, "the ATT MTU")
            sock = take_fd(r)
            self.assertEqual(sock.type, socket.SOCK_SEQPACKET)
            self.assertTrue(await prop(bus, notify, "NotifyAcquired"))
            # As bluetoothd 5.66 reads it (tests/realstack/test_conformance.py): an acquired notify
            # is not Notifying, and nothing signals it.
            self.assertFalse(await prop(bus, notify, "Notifying"))
            r = await self.call(other, notify, "org.bluez.GattCharacteristic1", "StartNotify")
            self.assertEqual((r.error_name, r.body[0]), ("org.bluez.Error.NotPermitted", "Notify acquired"))
            r = await self.call(other, notify, "org.bluez.GattCharacteristic1", "AcquireNotify", "a{sv}", [{}])
            self.assertEqual(r.error_name, "org.bluez.Error.NotPermitted")

            # A read of 34 registers: 73 bytes in packets of at most MTU - 3.
            r = await self.call(bus, write, "org.bluez.GattCharacteristic1", "WriteValue", "aya{sv}",
                                [modbus_read(0x0100, 34), {"type": Variant("s", "command")}])
            self.assertEqual(r.message_type, MessageType.METHOD_RETURN, r.body)
            frame, packets = read_frame(sock, 73)
            self.assertEqual(len(frame), 73)
            self.assertEqual(frame[:3], bytes([0xFF, 3, 68]))
            self.assertTrue(all(0 < len(p) <= 20 for p in packets), [len(p) for p in packets])
            self.assertEqual(await prop(bus, notify, "Value"), value_before, "Value is not updated while acquired")

            # Closing our end releases it; then a StartNotify session blocks AcquireNotify.
            sock.close()
            for _ in range(30):
                if not await prop(bus, notify, "NotifyAcquired"):
                    break
                await asyncio.sleep(0.1)
            else:
                self.fail("NotifyAcquired stayed true after the socket was closed")
            r = await self.call(other, notify, "org.bluez.GattCharacteristic1", "StartNotify")
            self.assertEqual(r.message_type, MessageType.METHOD_RETURN, r.body)
            r = await self.call(fdbus, notify, "org.bluez.GattCharacteristic1", "AcquireNotify", "a{sv}", [{}])
            self.assertEqual(r.error_name, "org.bluez.Error.InProgress")
            await self.call(other, notify, "org.bluez.GattCharacteristic1", "StopNotify")

            # Acquired again, then the link drops: our end sees end-of-file.
            r = await self.call(fdbus, notify, "org.bluez.GattCharacteristic1", "AcquireNotify", "a{sv}", [{}])
            self.assertEqual(r.message_type, MessageType.METHOD_RETURN, r.body)
            sock = take_fd(r)
            await self.call(bus, path, "org.bluez.Device1", "Disconnect")
            ready, _, _ = select.select([sock], [], [], 3)
            self.assertTrue(ready)
            self.assertEqual(sock.recv(512), b"", "HUP on disconnect")
            sock.close()
            for b in (other, fdbus):
                b.disconnect()
        self.run_async(self.connected_session(exchange))

    async def char_prop(self, bus, path, name):
        r = await self.call(bus, path, "org.freedesktop.DBus.Properties", "Get", "ss",
                            ["org.bluez.GattCharacteristic1", name])
        return r.body[0].value

    async def connected_chars(self, bus):
        """Two more clients that can take descriptors (another program, and the acquirer), the
        controller connected, and its characteristics by short UUID: (path, properties)."""
        other = await MessageBus(bus_type=BusType.SYSTEM, bus_address=self.env.bus_address,
                                 negotiate_unix_fd=True).connect()
        fdbus = await MessageBus(bus_type=BusType.SYSTEM, bus_address=self.env.bus_address,
                                 negotiate_unix_fd=True).connect()
        path, _ = await self.discover(bus)
        objs = await self.connect_device(bus, path)
        chars = {i["org.bluez.GattCharacteristic1"]["UUID"].value[4:8]: (p, i["org.bluez.GattCharacteristic1"])
                 for p, i in objs.items() if p.startswith(path + "/") and "org.bluez.GattCharacteristic1" in i}
        return other, fdbus, path, chars

    async def connected_session(self, exchange):
        bus, _ = await self.connect()
        try:
            await exchange(bus)
        finally:
            # Connected, the controller would not advertise to the next test.
            await self.call(bus, ADAPTER + "/dev_60_98_66_ED_FC_11", "org.bluez.Device1", "Disconnect")
            await self.call(bus, ADAPTER, "org.bluez.Adapter1", "StopDiscovery")
            bus.disconnect()

    def test_acquire_write(self):
        """AcquireWrite as 5.66 has it: only on a characteristic that writes without response
        (WriteAcquired only there); a SOCK_SEQPACKET socket whose every packet is a write;
        WriteValue and a second AcquireWrite refused meanwhile; released when the client closes
        its end; closed by BlueZ on disconnect."""
        prop = self.char_prop

        async def exchange(bus):
            other, fdbus, path, chars = await self.connected_chars(bus)
            notify, write = chars["fff1"][0], chars["ffd1"][0]
            self.assertEqual(sig(chars["ffd1"][1]["WriteAcquired"]), "b")
            self.assertFalse(chars["ffd1"][1]["WriteAcquired"].value)
            self.assertNotIn("WriteAcquired", chars["fff1"][1], "only where write-without-response is")

            r = await self.call(fdbus, notify, "org.bluez.GattCharacteristic1", "AcquireWrite", "a{sv}", [{}])
            self.assertEqual(r.error_name, "org.bluez.Error.NotSupported")
            r = await self.call(fdbus, notify, "org.bluez.GattCharacteristic1", "AcquireNotify", "a{sv}", [{}])
            self.assertEqual(r.message_type, MessageType.METHOD_RETURN, r.body)
            replies = take_fd(r)
            r = await self.call(fdbus, write, "org.bluez.GattCharacteristic1", "AcquireWrite", "a{sv}", [{}])
            self.assertEqual(r.message_type, MessageType.METHOD_RETURN, r.body)
            self.assertEqual(r.signature, "hq")
            self.assertEqual(r.body[1], 23, "the ATT MTU")
            sock = take_fd(r)
            self.assertEqual(sock.type, socket.SOCK_SEQPACKET)
            self.assertTrue(await prop(bus, write, "WriteAcquired"))
            r = await self.call(other, write, "org.bluez.GattCharacteristic1", "WriteValue", "aya{sv}",
                                [modbus_read(0x0100, 34), {"type": Variant("s", "command")}])
            self.assertEqual((r.error_name, r.body[0]), ("org.bluez.Error.NotPermitted", "Write acquired"))
            r = await self.call(other, write, "org.bluez.GattCharacteristic1", "AcquireWrite", "a{sv}", [{}])
            self.assertEqual((r.error_name, r.body[0]), ("org.bluez.Error.NotPermitted", "Write acquired"))

            # One packet is one write: the controller answers the read it carries.
            sock.send(modbus_read(0x0100, 34))
            frame, _ = read_frame(replies, 73)
            self.assertEqual(frame[:3], bytes([0xFF, 3, 68]))

            # Closing our end releases it: WriteValue works again.
            sock.close()
            for _ in range(30):
                if not await prop(bus, write, "WriteAcquired"):
                    break
                await asyncio.sleep(0.1)
            else:
                self.fail("WriteAcquired stayed true after the socket was closed")
            r = await self.call(other, write, "org.bluez.GattCharacteristic1", "WriteValue", "aya{sv}",
                                [modbus_read(0x0100, 34), {"type": Variant("s", "command")}])
            self.assertEqual(r.message_type, MessageType.METHOD_RETURN, r.body)
            frame, _ = read_frame(replies, 73)
            self.assertEqual(frame[:3], bytes([0xFF, 3, 68]))

            # Acquired again, then the link drops: BlueZ closes its end.
            r = await self.call(fdbus, write, "org.bluez.GattCharacteristic1", "AcquireWrite", "a{sv}", [{}])
            self.assertEqual(r.message_type, MessageType.METHOD_RETURN, r.body)
            sock = take_fd(r)
            await self.call(bus, path, "org.bluez.Device1", "Disconnect")
            ready, _, _ = select.select([sock], [], [], 3)
            self.assertTrue(ready)
            self.assertEqual(sock.recv(512), b"", "closed on disconnect")
            for s in (sock, replies):
                s.close()
            for b in (other, fdbus):
                b.disconnect()
        self.run_async(self.connected_session(exchange))

    def test_error_names(self):
        async def go():
            bus, _ = await self.connect()
            await self.call(bus, ADAPTER, "org.bluez.Adapter1", "StartDiscovery")
            r = await self.call(bus, ADAPTER, "org.bluez.Adapter1", "StartDiscovery")
            self.assertEqual(r.error_name, "org.bluez.Error.InProgress")
            r = await self.call(bus, ADAPTER, "org.bluez.Adapter1", "SetDiscoveryFilter", "a{sv}",
                                [{"Bogus": __import__("dbus_fast").Variant("s", "x")}])
            self.assertEqual(r.error_name, "org.bluez.Error.InvalidArguments")
            r = await self.call(bus, ADAPTER, "org.bluez.Adapter1", "RemoveDevice", "o",
                                [ADAPTER + "/dev_00_00_00_00_00_00"])
            self.assertEqual(r.error_name, "org.bluez.Error.DoesNotExist")
            await self.call(bus, ADAPTER, "org.bluez.Adapter1", "StopDiscovery")
            r = await self.call(bus, ADAPTER, "org.bluez.Adapter1", "StopDiscovery")
            self.assertEqual(r.error_name, "org.bluez.Error.Failed")
            self.env.sim_call("SetPowered", "sb", "hci0", "false")
            try:
                r = await self.call(bus, ADAPTER, "org.bluez.Adapter1", "StartDiscovery")
                self.assertEqual(r.error_name, "org.bluez.Error.NotReady")
            finally:
                self.env.sim_call("SetPowered", "sb", "hci0", "true")
            bus.disconnect()
        self.run_async(go())


if __name__ == "__main__":
    unittest.main()
