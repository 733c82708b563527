"""Buttons: read a device now, and walk its Bluetooth link step by step."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from homeassistant.components.button import ButtonEntity
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .api import Device
from .const import DOMAIN, LOGGER
from .coordinator import BluPowConfigEntry, BluPowCoordinator
from .entity import BluPowStatusEntity, EntityFactory, add_entities_as_they_appear
from .helpers import blupow_action

PARALLEL_UPDATES = 1


async def async_setup_entry(
    hass: HomeAssistant, entry: BluPowConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """Poll now and Verify for each device."""

    def make(coordinator: BluPowCoordinator, device: Device) -> Iterable[tuple[str, EntityFactory]]:
        dev_id = device["id"]
        yield "poll", partial(BluPowPollButton, coordinator, dev_id)
        # A battery bank is computed from its packs: there is no link of its own to walk.
        if device.get("source") != "computed":
            yield "verify", partial(BluPowVerifyButton, coordinator, dev_id)

    add_entities_as_they_appear(entry, async_add_entities, make)


class BluPowPollButton(BluPowStatusEntity, ButtonEntity):
    """Reads the device at once instead of at its next turn."""

    _attr_translation_key = "poll"
    entity_key = "poll"

    async def async_press(self) -> None:
        """Ask for the read; the next refresh shows it."""
        async with blupow_action(self.coordinator, "poll_failed"):
            await self.coordinator.client.poll(self.device_id)
        await self.coordinator.async_request_refresh()


class BluPowVerifyButton(BluPowStatusEntity, ButtonEntity):
    """Connects, finds the services, subscribes and reads once, reporting each step."""

    _attr_translation_key = "verify"
    _attr_entity_category = EntityCategory.DIAGNOSTIC
    entity_key = "verify"

    async def async_press(self) -> None:
        """Run the walk-through; a step that fails is the error shown."""
        async with blupow_action(self.coordinator, "verify_failed"):
            result = await self.coordinator.client.verify(self.device_id)
        await self.coordinator.async_request_refresh()
        steps = result.get("steps", [])
        LOGGER.debug("Verify %s: %s", self.device_id, steps)
        if result.get("ok"):
            return
        failed = next((s for s in steps if not s.get("ok")), None)
        step = f"{failed.get('step')}: {failed.get('detail')}" if failed else "no reading"
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="verify_step_failed",
            translation_placeholders={"device": self.device_id, "step": step},
        )
