#!/usr/bin/python3
"""A BlueZ client nobody here wrote (bleak) against blupow-sim: discover the demo modules,
connect, subscribe to fff1, write a Modbus read to ffd1 and decode the reply. Exit 0 when
every step works; prints what it saw."""
import asyncio
import struct
import sys

from bleak import BleakClient, BleakScanner

WRITE = "0000ffd1-0000-1000-8000-00805f9b34fb"
NOTIFY = "0000fff1-0000-1000-8000-00805f9b34fb"
CONTROLLER = "60:98:66:ED:FC:11"


def crc16(data: bytes) -> int:
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def request(dev_id: int, reg: int, count: int) -> bytes:
    body = struct.pack(">BBHH", dev_id, 3, reg, count)
    return body + struct.pack("<H", crc16(body))


async def main() -> int:
    devices = await BleakScanner.discover(timeout=2.0, return_adv=True)
    names = sorted(adv.local_name or d.name or "" for d, adv in devices.values())
    print("discovered:", ", ".join(names))
    wanted = {"BT-TH-66EDFC11", "BTRIC134000035", "RTMShunt30017000621", "BT-TH-481B1BB7", "BT-TH-16178A45"}
    if not wanted <= set(names):
        print("missing:", wanted - set(names))
        return 1
    d, adv = devices[CONTROLLER]
    print("controller rssi", adv.rssi, "manufacturer data", {k: v.hex() for k, v in adv.manufacturer_data.items()})
    if adv.manufacturer_data.get(0x9860) != bytes.fromhex("66edfc11"):
        print("manufacturer data does not echo the MAC")
        return 1

    reply = bytearray()
    done = asyncio.Event()

    def on_notify(_, data: bytearray):
        reply.extend(data)
        if len(reply) >= 3 and len(reply) >= 5 + reply[2]:
            done.set()

    async with BleakClient(d) as client:
        await client.start_notify(NOTIFY, on_notify)
        await client.write_gatt_char(WRITE, request(0xFF, 0x0100, 34), response=False)
        await asyncio.wait_for(done.wait(), 5)
        await client.stop_notify(NOTIFY)
    frame = bytes(reply[: 5 + reply[2]])
    if crc16(frame) != 0:
        print("bad CRC in", frame.hex())
        return 1
    soc, volts = struct.unpack(">HH", frame[3:7])
    print(f"reply {len(frame)} bytes: battery {soc} %, {volts / 10} V")
    if not (0 <= soc <= 100 and 9 < volts / 10 < 16):
        return 1
    print("bleak: ok")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
