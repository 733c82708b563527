"""Sensors: every numeric, enum and text reading the add-on reports, and each device's diagnosis."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import Any

from homeassistant.components.sensor import SensorDeviceClass, SensorEntity, SensorStateClass
from homeassistant.const import SIGNAL_STRENGTH_DECIBELS_MILLIWATT, EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .api import Device, Reading
from .coordinator import BluPowConfigEntry, BluPowCoordinator
from .entity import BluPowReadingEntity, BluPowStatusEntity, EntityFactory, add_entities_as_they_appear

# Read-only: the coordinator does all the fetching.
PARALLEL_UPDATES = 0

SENSOR_KINDS = ("number", "enum", "text")


def _device_class(name: str | None) -> SensorDeviceClass | None:
    try:
        return SensorDeviceClass(name) if name else None
    except ValueError:
        return None


def _state_class(name: str | None) -> SensorStateClass | None:
    try:
        return SensorStateClass(name) if name else None
    except ValueError:
        return None


async def async_setup_entry(
    hass: HomeAssistant, entry: BluPowConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """Sensors of each device, as devices and readings appear."""

    def make(coordinator: BluPowCoordinator, device: Device) -> Iterable[tuple[str, EntityFactory]]:
        dev_id = device["id"]
        yield "diagnosis", partial(BluPowDiagnosisSensor, coordinator, dev_id)
        yield "signal_strength", partial(BluPowSignalSensor, coordinator, dev_id)
        settable = {s["key"] for s in device.get("settings", [])}
        for key, reading in device["readings"].items():
            # A setting is a number or select entity of its own, not a sensor as well.
            if reading.get("kind", "number") in SENSOR_KINDS and key not in settable:
                yield key, partial(BluPowReadingSensor, coordinator, dev_id, key, reading)

    add_entities_as_they_appear(entry, async_add_entities, make)


class BluPowReadingSensor(BluPowReadingEntity, SensorEntity):
    """A reading, with the class, unit and precision the add-on gives it."""

    def __init__(self, coordinator: BluPowCoordinator, device_id: str, key: str, reading: Reading) -> None:
        """Describe the sensor from the reading's metadata."""
        super().__init__(coordinator, device_id, key, reading)
        kind = reading.get("kind", "number")
        if kind == "enum":
            self._attr_device_class = SensorDeviceClass.ENUM
            self._attr_options = list(reading.get("options", []))
        elif kind == "text":
            # Identity and version strings: the device page shows them already.
            self._attr_entity_category = EntityCategory.DIAGNOSTIC
            self._attr_entity_registry_enabled_default = False
        else:
            self._attr_device_class = _device_class(reading.get("device_class"))
            self._attr_state_class = _state_class(reading.get("state_class"))
            self._attr_native_unit_of_measurement = reading.get("unit")
            if "precision" in reading:
                self._attr_suggested_display_precision = reading["precision"]

    @property
    def native_value(self) -> Any:
        """The value; an enum value the add-on could not name is unknown."""
        reading = self.reading
        if reading is None:
            return None
        value = reading["value"]
        if self._attr_device_class == SensorDeviceClass.ENUM and value not in (self._attr_options or []):
            return None
        return value


class BluPowDiagnosisSensor(BluPowStatusEntity, SensorEntity):
    """What keeps the device from being read, as a code (ok when nothing does)."""

    _attr_device_class = SensorDeviceClass.ENUM
    _attr_entity_category = EntityCategory.DIAGNOSTIC
    _attr_translation_key = "diagnosis"
    entity_key = "diagnosis"

    def __init__(self, coordinator: BluPowCoordinator, device_id: str) -> None:
        """Offer every code the add-on knows."""
        super().__init__(coordinator, device_id)
        self._attr_options = coordinator.addon.diagnosis_codes

    @property
    def native_value(self) -> str | None:
        """The device's diagnosis code, or ok."""
        device = self.device
        if device is None:
            return None
        code = device["diagnosis"]["code"] if device["diagnosis"] else "ok"
        return code if code in (self._attr_options or []) else None

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        """The message and remedy in words."""
        device = self.device
        if device is None or not device["diagnosis"]:
            return None
        return {"message": device["diagnosis"]["message"], "remedy": device["diagnosis"]["remedy"]}


class BluPowSignalSensor(BluPowStatusEntity, SensorEntity):
    """The module's advertised RSSI, where the adapter reports one."""

    _attr_device_class = SensorDeviceClass.SIGNAL_STRENGTH
    _attr_state_class = SensorStateClass.MEASUREMENT
    _attr_native_unit_of_measurement = SIGNAL_STRENGTH_DECIBELS_MILLIWATT
    _attr_entity_category = EntityCategory.DIAGNOSTIC
    _attr_entity_registry_enabled_default = False
    entity_key = "signal_strength"

    @property
    def native_value(self) -> int | None:
        """Unknown when the adapter reports none (RSSI 127 is never shown)."""
        device = self.device
        return device["rssi"] if device else None
