"""What the number and select entities share: one setting of a device's model."""

from __future__ import annotations

from typing import Any

from homeassistant.const import EntityCategory

from .api import Setting
from .coordinator import BluPowCoordinator
from .entity import BluPowEntity
from .helpers import blupow_action


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
