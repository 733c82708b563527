"""A real Home Assistant core, started in-process for BluPow's tests (inside the Home Assistant
root, Python 3.13). One instance for the whole run: tests are async functions run in order on
its loop, each reported ok or FAIL with its traceback."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

from homeassistant import bootstrap
from homeassistant.core import HomeAssistant
from homeassistant.runner import RuntimeConfig

WORK = os.environ.get("BLUPOW_SOURCE_IN_ROOT", "/tmp/blupow-ha")
CONFIG_DIR = os.path.join(WORK, "config")
BLUPOW_URL = os.environ["BLUPOW_URL"].rstrip("/")
CONTROL = os.environ["BLUPOW_CONTROL"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


HTTP_PORT = free_port()
PACKAGE_TEXT = ""  # the package as saved into the configuration at start


class Records(logging.Handler):
    """Every log record of Home Assistant's run, to tell what the integration logged."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def since(self, mark: int, level: int = logging.WARNING) -> list[logging.LogRecord]:
        return [r for r in self.records[mark:] if r.levelno >= level]


RECORDS = Records()


def blocking_json(url: str, body: Any = None, method: str | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None else "GET"),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"null")


async def control(hass: HomeAssistant, what: str, **args: Any) -> Any:
    """Asks the machine's side (simulator, daemon) for something; off the event loop."""
    reply = await hass.async_add_executor_job(blocking_json, f"{CONTROL}/{what}", args)
    return reply["result"]


async def api(hass: HomeAssistant, path: str, body: Any = None, method: str | None = None) -> Any:
    """The add-on's API, asked directly (what the integration shows is compared with it)."""
    return await hass.async_add_executor_job(blocking_json, f"{BLUPOW_URL}{path}", body, method)


async def remove_device(hass: HomeAssistant, dev_id: str) -> None:
    """DELETE through the API; the add-on answers 409 busy while the device is being read, and
    a user tries again in a moment, as this does."""
    end = time.monotonic() + 30
    while True:
        try:
            await api(hass, f"/api/v1/devices/{dev_id}", method="DELETE")
            return
        except urllib.error.HTTPError as err:
            if err.code != 409 or time.monotonic() > end:
                raise
        await asyncio.sleep(0.5)


async def wait_until(pred: Callable[[], Any], seconds: float, what: str, interval: float = 0.2) -> Any:
    end = time.monotonic() + seconds
    last = None
    while time.monotonic() < end:
        last = pred()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {seconds} s waiting for {what} (last: {last!r})")


async def start_home_assistant() -> HomeAssistant:
    os.makedirs(CONFIG_DIR, exist_ok=True)
    with open(os.path.join(CONFIG_DIR, "configuration.yaml"), "w") as f:
        f.write(
            "homeassistant:\n  name: BluPow test\n  latitude: 52.0\n  longitude: 5.0\n  elevation: 0\n"
            "  unit_system: metric\n  time_zone: UTC\n  currency: EUR\n  country: NL\n"
            "  packages: !include_dir_named packages\n"
            "frontend:\n  development_repo: /opt/frontend\n"
            f"http:\n  server_host: 127.0.0.1\n  server_port: {HTTP_PORT}\n"
            "diagnostics:\n"
            # Warnings of everything; what the integration says at info too (lost, back).
            "logger:\n  default: warning\n  logs:\n    custom_components.blupow: info\n"
            "    homeassistant.components.rest: info\n"
        )
    # The generated rest package, as a user saves it: loaded by the same Home Assistant.
    os.makedirs(os.path.join(CONFIG_DIR, "packages"), exist_ok=True)
    global PACKAGE_TEXT
    with urllib.request.urlopen(f"{BLUPOW_URL}/api/v1/homeassistant/package.yaml", timeout=30) as r:
        PACKAGE_TEXT = r.read().decode()
    with open(os.path.join(CONFIG_DIR, "packages/blupow.yaml"), "w") as f:
        f.write(PACKAGE_TEXT)
    logging.getLogger().addHandler(RECORDS)
    hass = await bootstrap.async_setup_hass(RuntimeConfig(config_dir=CONFIG_DIR, skip_pip=True))
    assert hass is not None, "Home Assistant did not set up"
    assert not hass.config.recovery_mode, "Home Assistant fell into recovery mode"
    await hass.async_start()
    return hass


Test = Callable[[HomeAssistant], Awaitable[None]]


async def run_tests(tests: list[Test], only: list[str]) -> int:
    hass = await start_home_assistant()
    failed = []
    try:
        for test in tests:
            if only and test.__name__ not in only:
                continue
            t0 = time.monotonic()
            print(f"{test.__name__} ({(test.__doc__ or '').strip().splitlines()[0]}) ...", end=" ", flush=True)
            try:
                await test(hass)
                print(f"ok ({time.monotonic() - t0:.1f} s)", flush=True)
            except Exception:
                failed.append(test.__name__)
                print("FAIL", flush=True)
                traceback.print_exc()
    finally:
        await hass.async_stop()
    print(f"{len(failed)} failed: {', '.join(failed)}" if failed else "all ok")
    return 1 if failed else 0


def main(tests: list[Test]) -> None:
    sys.exit(asyncio.run(run_tests(tests, sys.argv[1:])))
