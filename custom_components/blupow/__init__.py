"""BluPow: Renogy solar equipment, read over Bluetooth by the BluPow add-on."""

from __future__ import annotations

from datetime import timedelta

from homeassistant.const import CONF_SCAN_INTERVAL, CONF_TOKEN, CONF_URL, Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryNotReady
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .api import BluPowClient, BluPowError
from .const import DEFAULT_SCAN_INTERVAL, DOMAIN
from .coordinator import AddOnInfo, BluPowConfigEntry, BluPowCoordinator

PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.BUTTON,
    Platform.NUMBER,
    Platform.SELECT,
    Platform.SENSOR,
    Platform.SWITCH,
]


async def async_setup_entry(hass: HomeAssistant, entry: BluPowConfigEntry) -> bool:
    """Set up one add-on: check it answers, then poll it."""
    client = BluPowClient(async_get_clientsession(hass), entry.data[CONF_URL], entry.data.get(CONF_TOKEN))
    try:
        health = await client.health()
        diagnostics = await client.diagnostics()
    except BluPowError as err:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="cannot_connect",
            translation_placeholders={"url": client.url, "error": str(err)},
        ) from err
    addon = AddOnInfo(
        instance_id=health.get("instance_id") or entry.unique_id or entry.entry_id,
        version=health["version"],
        diagnosis_codes=["ok"] + [c["code"] for c in diagnostics.get("codes", [])],
    )
    coordinator = BluPowCoordinator(hass, entry, client, addon)
    await coordinator.async_config_entry_first_refresh()

    dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={(DOMAIN, addon.instance_id)},
        manufacturer="BluPow",
        model="BluPow add-on",
        name=entry.title,
        sw_version=addon.version,
        entry_type=dr.DeviceEntryType.SERVICE,
    )
    entry.runtime_data = coordinator
    entry.async_on_unload(coordinator.async_add_listener(coordinator.async_sync_registries))
    entry.async_on_unload(entry.add_update_listener(_options_updated))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    coordinator.async_sync_registries()
    return True


async def _options_updated(hass: HomeAssistant, entry: BluPowConfigEntry) -> None:
    """A new scan interval applies at once; data changes (URL, token) reload through their flows."""
    entry.runtime_data.update_interval = timedelta(
        seconds=entry.options.get(CONF_SCAN_INTERVAL, DEFAULT_SCAN_INTERVAL)
    )


async def async_unload_entry(hass: HomeAssistant, entry: BluPowConfigEntry) -> bool:
    """Unload the platforms; the entry's repair issues go with it."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        entry.runtime_data.async_clear_issues()
    return unloaded


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: BluPowConfigEntry, device: dr.DeviceEntry
) -> bool:
    """A device may be deleted by hand once the add-on no longer has it."""
    return entry.runtime_data.is_stale(device)
