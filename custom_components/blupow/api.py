"""A small asynchronous client of the BluPow add-on's REST API (/api/v1)."""

from __future__ import annotations

import asyncio
from typing import Any, NotRequired, TypedDict, cast

import aiohttp
from yarl import URL

from .const import REQUEST_TIMEOUT, VERIFY_TIMEOUT


class Diagnosis(TypedDict):
    """Why a device, or the whole add-on, cannot read (the API's diagnosis object)."""

    code: str
    severity: str
    message: str
    remedy: str


class Reading(TypedDict):
    """One reading with the metadata the API gives for it."""

    value: Any
    kind: str
    label: str
    device_class: str | None
    state_class: str | None
    unit: NotRequired[str]
    precision: NotRequired[int]
    options: NotRequired[list[str]]
    bits: NotRequired[list[str]]
    problem_bits: NotRequired[list[str]]


class Setting(TypedDict):
    """One setting of a device's model that can be changed (the add-on range-checks and reads back)."""

    key: str
    label: str
    value: Any
    options: NotRequired[list[str]]
    min: NotRequired[float]
    max: NotRequired[float]
    step: NotRequired[float]
    unit: NotRequired[str | None]


class Device(TypedDict):
    """One Renogy device as GET /api/v1/devices lists it (the fields the integration uses)."""

    id: str
    name: str
    address: str
    family: str
    family_label: str
    source: str
    adapter: str
    state: str
    available: bool
    model: str | None
    serial: str | None
    firmware: str | None
    rssi: int | None
    diagnosis: Diagnosis | None
    readings: dict[str, Reading]
    settings: NotRequired[list[Setting]]
    # A battery bank (source "computed"): the ids of the packs it sums.
    packs: NotRequired[list[str]]


class DevicesResponse(TypedDict):
    """GET /api/v1/devices."""

    devices: list[Device]
    system_diagnosis: Diagnosis | None


class Health(TypedDict):
    """GET /api/v1/health (the fields the integration uses)."""

    status: str
    version: str
    instance_id: str | None


class BluPowError(Exception):
    """The add-on could not do what was asked."""


class BluPowConnectionError(BluPowError):
    """The add-on cannot be reached, or did not answer in time."""


class BluPowAuthError(BluPowError):
    """The add-on refused a change: the token is missing or wrong."""


class BluPowResponseError(BluPowError):
    """The add-on answered with an error (its code and message are kept)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        """Keep the API's own error code and message."""
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class BluPowClient:
    """Talks to one BluPow add-on. Reading is open; changes carry the bearer token."""

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str | None = None) -> None:
        """Use Home Assistant's shared session (the caller injects it)."""
        self._session = session
        self._url = URL(url.rstrip("/") + "/")
        self._token = token

    @property
    def url(self) -> str:
        """The base URL, without a trailing slash."""
        return str(self._url).rstrip("/")

    async def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = REQUEST_TIMEOUT
    ) -> Any:
        headers = {"Accept": "application/json"}
        if method != "GET" and self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            async with self._session.request(
                method,
                self._url.join(URL(path)),
                json=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                if resp.status in (401, 403):
                    raise BluPowAuthError(f"{resp.status}: the add-on refused the change")
                try:
                    data = await resp.json(content_type=None)
                except ValueError as err:
                    raise BluPowError(f"{path}: the answer is not JSON ({resp.status})") from err
                if resp.status >= 400:
                    error = data.get("error", {}) if isinstance(data, dict) else {}
                    raise BluPowResponseError(
                        resp.status, str(error.get("code", "error")), str(error.get("message", resp.reason))
                    )
                return data
        except (TimeoutError, asyncio.TimeoutError) as err:
            raise BluPowConnectionError(f"{self.url} did not answer within {timeout:g} s") from err
        except aiohttp.ClientError as err:
            raise BluPowConnectionError(f"{self.url}: {err}") from err

    async def health(self) -> Health:
        """Whether the add-on runs, and its instance id."""
        data = await self._request("GET", "api/v1/health")
        if not isinstance(data, dict) or "version" not in data or "status" not in data:
            raise BluPowError(f"{self.url} does not answer as a BluPow add-on")
        return cast(Health, data)

    async def devices(self) -> DevicesResponse:
        """Every device, with its readings and their metadata, in one request."""
        data = await self._request("GET", "api/v1/devices")
        if not isinstance(data, dict) or not isinstance(data.get("devices"), list):
            raise BluPowError(f"{self.url}: the device list is not what BluPow answers")
        data.setdefault("system_diagnosis", None)
        return cast(DevicesResponse, data)

    async def diagnostics(self) -> dict[str, Any]:
        """System and per-device diagnosis, error counts and every diagnosis code."""
        return cast(dict[str, Any], await self._request("GET", "api/v1/diagnostics"))

    async def poll(self, device_id: str) -> None:
        """Asks the add-on to read the device now."""
        await self._request("POST", f"api/v1/devices/{device_id}/poll")

    async def verify(self, device_id: str) -> dict[str, Any]:
        """Runs the link walk-through (connect, services, notify, one read); waits for it."""
        return cast(
            dict[str, Any], await self._request("POST", f"api/v1/devices/{device_id}/verify", timeout=VERIFY_TIMEOUT)
        )

    async def set_setting(self, device_id: str, key: str, value: float | str) -> None:
        """Changes a setting; the add-on checks the range, writes, and reads it back before it answers."""
        await self._request(
            "POST", f"api/v1/devices/{device_id}/settings", {"key": key, "value": value}, timeout=VERIFY_TIMEOUT
        )

    async def set_load(self, device_id: str, on: bool) -> None:
        """Switches a controller's load output; the add-on reads it back before it answers."""
        await self._request("POST", f"api/v1/devices/{device_id}/load", {"on": on}, timeout=VERIFY_TIMEOUT)
