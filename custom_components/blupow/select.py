"""Settings with options (a controller's load working mode, a battery type)."""

from __future__ import annotations

from homeassistant.components.select import SelectEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .api import Setting
from .coordinator import BluPowConfigEntry, BluPowCoordinator
from .entity_setting import BluPowSettingEntity, add_setting_entities

# One change at a time per add-on: each is a Bluetooth session of its own.
PARALLEL_UPDATES = 1


async def async_setup_entry(
    hass: HomeAssistant, entry: BluPowConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """A select entity for each setting with options a device's model has."""
    add_setting_entities(entry, async_add_entities, BluPowSettingSelect, with_options=True)


class BluPowSettingSelect(BluPowSettingEntity, SelectEntity):
    """One of the options this model allows, as the add-on lists them."""

    def __init__(self, coordinator: BluPowCoordinator, device_id: str, setting: Setting) -> None:
        """The options the add-on allows for this model."""
        super().__init__(coordinator, device_id, setting)
        self._attr_options = list(setting.get("options", []))

    @property
    def current_option(self) -> str | None:
        """The option the device last reported, if it is one of those allowed."""
        value = self.current
        return value if isinstance(value, str) and value in self._attr_options else None

    async def async_select_option(self, option: str) -> None:
        """Write it; the add-on answers once it has read it back."""
        await self._write(option)
