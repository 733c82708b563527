"""The load output of a charge controller."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import Any

from homeassistant.components.switch import SwitchEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .api import Device
from .coordinator import BluPowConfigEntry, BluPowCoordinator
from .entity import BluPowEntity, EntityFactory, add_entities_as_they_appear
from .helpers import blupow_action

# One change at a time per add-on: each is a Bluetooth session of its own.
PARALLEL_UPDATES = 1

LOAD_READING = "load_status"


async def async_setup_entry(
    hass: HomeAssistant, entry: BluPowConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """A load switch for each device that has a load output."""

    def make(coordinator: BluPowCoordinator, device: Device) -> Iterable[tuple[str, EntityFactory]]:
        if device["family"] == "controller":
            dev_id = device["id"]
            yield "load", partial(BluPowLoadSwitch, coordinator, dev_id)

    add_entities_as_they_appear(entry, async_add_entities, make)


class BluPowLoadSwitch(BluPowEntity, SwitchEntity):
    """Switches the controller's load output; the add-on reads it back before it answers."""

    _attr_translation_key = "load"
    entity_key = "load"

    @property
    def is_on(self) -> bool | None:
        """The load state the controller last reported."""
        device = self.device
        reading = device["readings"].get(LOAD_READING) if device else None
        return reading["value"] == "on" if reading else None

    async def async_turn_on(self, **kwargs: Any) -> None:
        """Switch the load on."""
        await self._set(True)

    async def async_turn_off(self, **kwargs: Any) -> None:
        """Switch the load off."""
        await self._set(False)

    async def _set(self, on: bool) -> None:
        async with blupow_action(self.coordinator, "load_failed"):
            await self.coordinator.client.set_load(self.device_id, on)
        await self.coordinator.async_request_refresh()
