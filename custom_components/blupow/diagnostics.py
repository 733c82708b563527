"""The diagnostics download: what the add-on says of itself and of each device."""

from __future__ import annotations

from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_TOKEN
from homeassistant.core import HomeAssistant

from .api import BluPowError
from .coordinator import BluPowConfigEntry

TO_REDACT = {CONF_TOKEN, "api_token", "integration_token"}


async def async_get_config_entry_diagnostics(hass: HomeAssistant, entry: BluPowConfigEntry) -> dict[str, Any]:
    """The entry (token redacted), the add-on's health and diagnostics, and the last poll."""
    coordinator = entry.runtime_data
    result: dict[str, Any] = {
        "entry": {"data": async_redact_data(dict(entry.data), TO_REDACT), "options": dict(entry.options)},
        "last_update_success": coordinator.last_update_success,
        "devices": coordinator.data.devices if coordinator.data else None,
    }
    try:
        result["health"] = await coordinator.client.health()
        result["diagnostics"] = await coordinator.client.diagnostics()
    except BluPowError as err:
        result["error"] = str(err)
    return async_redact_data(result, TO_REDACT)
