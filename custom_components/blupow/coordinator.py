"""One coordinator per add-on: GET /api/v1/devices, for every device at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import CONF_SCAN_INTERVAL
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, issue_registry as ir
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed

from .api import BluPowClient, BluPowError, Device, DevicesResponse, Diagnosis
from .const import DEFAULT_SCAN_INTERVAL, DOMAIN, LOGGER

type BluPowConfigEntry = ConfigEntry[BluPowCoordinator]

# Repair issue severities from the API's diagnosis severities.
ISSUE_SEVERITY = {
    "error": ir.IssueSeverity.ERROR,
    "warning": ir.IssueSeverity.WARNING,
    "info": ir.IssueSeverity.WARNING,
}


@dataclass
class BluPowData:
    """What one poll of the add-on returned."""

    devices: dict[str, Device]
    system_diagnosis: Diagnosis | None = None

    @classmethod
    def from_response(cls, response: DevicesResponse) -> BluPowData:
        """Index the devices by their id."""
        return cls({d["id"]: d for d in response["devices"]}, response.get("system_diagnosis"))


@dataclass
class AddOnInfo:
    """The add-on itself, the parent of every Renogy device in Home Assistant."""

    instance_id: str
    version: str
    diagnosis_codes: list[str] = field(default_factory=list)


class BluPowCoordinator(DataUpdateCoordinator[BluPowData]):
    """Polls the add-on; keeps devices and repair issues in step with what it reports."""

    config_entry: BluPowConfigEntry

    def __init__(
        self, hass: HomeAssistant, entry: BluPowConfigEntry, client: BluPowClient, addon: AddOnInfo
    ) -> None:
        """Poll as often as the entry's options say."""
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=DOMAIN,
            update_interval=timedelta(seconds=entry.options.get(CONF_SCAN_INTERVAL, DEFAULT_SCAN_INTERVAL)),
        )
        self.client = client
        self.addon = addon
        self._issues: set[str] = set()

    async def _async_update_data(self) -> BluPowData:
        try:
            return BluPowData.from_response(await self.client.devices())
        except BluPowError as err:
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="update_failed",
                translation_placeholders={"url": self.client.url, "error": str(err)},
            ) from err

    @callback
    def async_sync_registries(self) -> None:
        """Remove Home Assistant devices the add-on no longer has; raise and clear repair issues."""
        if not self.last_update_success or self.data is None:
            return
        self._remove_stale_devices()
        self._sync_issues()

    def is_stale(self, device: dr.DeviceEntry) -> bool:
        """A Home Assistant device of a Renogy device the add-on no longer has (never the add-on's own)."""
        ids = {i for d, i in device.identifiers if d == DOMAIN}
        if self.addon.instance_id in ids:
            return False
        return not ids & {self.device_identifier(dev_id) for dev_id in self.data.devices}

    def _remove_stale_devices(self) -> None:
        registry = dr.async_get(self.hass)
        for device in dr.async_entries_for_config_entry(registry, self.config_entry.entry_id):
            if self.is_stale(device):
                LOGGER.info("Removing %s: the add-on no longer has it", device.name)
                registry.async_update_device(device.id, remove_config_entry_id=self.config_entry.entry_id)

    def device_identifier(self, device_id: str) -> str:
        """A Renogy device's identifier: unique across several add-ons."""
        return f"{self.addon.instance_id}_{device_id}"

    def _issue_id(self, device_id: str | None) -> str:
        return f"{self.config_entry.entry_id}_{device_id or 'system'}"

    def _sync_issues(self) -> None:
        wanted: dict[str, tuple[Diagnosis, str]] = {}
        if self.data.system_diagnosis:
            wanted[self._issue_id(None)] = (self.data.system_diagnosis, "")
        for device in self.data.devices.values():
            if device["diagnosis"] and device["diagnosis"]["code"] != "adapter_shared":
                wanted[self._issue_id(device["id"])] = (device["diagnosis"], device["name"])
        for issue_id, (diagnosis, name) in wanted.items():
            ir.async_create_issue(
                self.hass,
                DOMAIN,
                issue_id,
                is_fixable=False,
                is_persistent=False,
                severity=ISSUE_SEVERITY.get(diagnosis["severity"], ir.IssueSeverity.WARNING),
                translation_key="device_problem" if name else "system_problem",
                translation_placeholders={
                    "device": name,
                    "code": diagnosis["code"],
                    "message": diagnosis["message"],
                    "remedy": diagnosis["remedy"] or "-",
                },
            )
        for issue_id in self._issues - set(wanted):
            ir.async_delete_issue(self.hass, DOMAIN, issue_id)
        self._issues = set(wanted)

    @callback
    def async_clear_issues(self) -> None:
        """The entry goes away: so do its repair issues."""
        for issue_id in self._issues:
            ir.async_delete_issue(self.hass, DOMAIN, issue_id)
        self._issues = set()
