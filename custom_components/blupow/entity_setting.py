"""What the number and select entities share: one setting of a device's model."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from homeassistant.const import EntityCategory
from homeassistant.helpers.entity import Entity

from .api import Device, Setting
from .coordinator import BluPowConfigEntry, BluPowCoordinator
from .entity import BluPowEntity, EntityFactory, add_entities_as_they_appear
from .helpers import blupow_action


def add_setting_entities(
    entry: BluPowConfigEntry,
    add: Callable[[Iterable[Entity]], None],
    entity: Callable[[BluPowCoordinator, str, Setting], Entity],
    with_options: bool,
) -> None:
    """One entity per setting a device's model has: those with options (select) or those with a
    range (number), as devices and settings appear."""

    def make(coordinator: BluPowCoordinator, device: Device) -> Iterable[tuple[str, EntityFactory]]:
        for setting in device.get("settings", []):
            if ("options" in setting) == with_options:
                yield f"setting_{setting['key']}", partial(entity, coordinator, device["id"], setting)

    add_entities_as_they_appear(entry, add, make)


class BluPowSettingEntity(BluPowEntity):
    """A setting the add-on lists for this device; a change is written, then read back."""

    _attr_entity_category = EntityCategory.CONFIG

    def __init__(self, coordinator: BluPowCoordinator, device_id: str, setting: Setting) -> None:
        """Take the name from the add-on's label."""
        super().__init__(coordinator, device_id, f"setting_{setting['key']}")
        self.key = setting["key"]
        self._attr_name = setting["label"]

    @property
    def setting(self) -> Setting | None:
        """The setting as the last poll of the add-on listed it."""
        device = self.device
        if not device:
            return None
        return next((s for s in device.get("settings", []) if s["key"] == self.key), None)

    @property
    def current(self) -> Any:
        """The value the device last reported."""
        setting = self.setting
        return setting["value"] if setting else None

    @property
    def available(self) -> bool:
        """Available while the device is, and its value is known."""
        return super().available and self.current is not None

    async def _write(self, value: float | str) -> None:
        async with blupow_action(self.coordinator, "setting_failed"):
            await self.coordinator.client.set_setting(self.device_id, self.key, value)
        await self.coordinator.async_request_refresh()
