"""Numeric settings (an inverter's maximum AC charging current): range and step from the add-on."""

from __future__ import annotations

from homeassistant.components.number import NumberEntity, NumberMode
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
    """A number entity for each numeric setting a device's model has."""
    add_setting_entities(entry, async_add_entities, BluPowSettingNumber, with_options=False)


class BluPowSettingNumber(BluPowSettingEntity, NumberEntity):
    """A setting with a range; the add-on refuses values outside it."""

    _attr_mode = NumberMode.BOX

    def __init__(self, coordinator: BluPowCoordinator, device_id: str, setting: Setting) -> None:
        """Range, step and unit as the add-on gives them for this model."""
        super().__init__(coordinator, device_id, setting)
        self._attr_native_min_value = setting.get("min", 0.0)
        self._attr_native_max_value = setting.get("max", 0.0)
        self._attr_native_step = setting.get("step", 1.0)
        self._attr_native_unit_of_measurement = setting.get("unit")

    @property
    def native_value(self) -> float | None:
        """The value the device last reported."""
        value = self.current
        return float(value) if isinstance(value, (int, float)) else None

    async def async_set_native_value(self, value: float) -> None:
        """Write it; the add-on answers once it has read it back."""
        await self._write(value)
