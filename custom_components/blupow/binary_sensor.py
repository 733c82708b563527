"""Binary sensors: each device's link and problem, its on/off flags, and one sensor for every bit
of its status words the add-on names (a problem sensor for each alarm, protection and fault)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from homeassistant.components.binary_sensor import BinarySensorDeviceClass, BinarySensorEntity
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .api import Device, Reading
from .coordinator import BluPowConfigEntry, BluPowCoordinator
from .entity import BluPowReadingEntity, BluPowStatusEntity, EntityFactory, add_entities_as_they_appear

PARALLEL_UPDATES = 0

# States in which the module answered its last session (the API's device states).
LINKED_STATES = ("online", "stale")


async def async_setup_entry(
    hass: HomeAssistant, entry: BluPowConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """Binary sensors of each device, as devices and readings appear."""

    def make(coordinator: BluPowCoordinator, device: Device) -> Iterable[tuple[str, EntityFactory]]:
        dev_id = device["id"]
        yield "link", partial(BluPowLinkSensor, coordinator, dev_id)
        yield "problem", partial(BluPowProblemSensor, coordinator, dev_id)
        for key, reading in device["readings"].items():
            kind = reading.get("kind")
            if kind == "flag":
                yield key, partial(BluPowFlagSensor, coordinator, dev_id, key, reading)
            elif kind == "bits":
                for bit in reading.get("bits", []):
                    yield f"{key}_{bit}", partial(BluPowBitSensor, coordinator, dev_id, key, reading, bit)

    add_entities_as_they_appear(entry, async_add_entities, make)


class BluPowLinkSensor(BluPowStatusEntity, BinarySensorEntity):
    """Whether the add-on reached the module in its last session."""

    _attr_device_class = BinarySensorDeviceClass.CONNECTIVITY
    _attr_entity_category = EntityCategory.DIAGNOSTIC
    _attr_translation_key = "link"
    entity_key = "link"

    @property
    def is_on(self) -> bool | None:
        """On while the device answers."""
        device = self.device
        return device["state"] in LINKED_STATES if device else None


class BluPowProblemSensor(BluPowStatusEntity, BinarySensorEntity):
    """On while the add-on has a diagnosis for the device (its repair issue says what to do)."""

    _attr_device_class = BinarySensorDeviceClass.PROBLEM
    _attr_translation_key = "problem"
    entity_key = "problem"

    @property
    def is_on(self) -> bool | None:
        """On with a diagnosis other than a shared adapter's wait."""
        device = self.device
        if device is None:
            return None
        diagnosis = device["diagnosis"]
        return diagnosis is not None and diagnosis["code"] != "adapter_shared"


class BluPowFlagSensor(BluPowReadingEntity, BinarySensorEntity):
    """A reading that is on or off (the load output's state, a charging flag)."""

    @property
    def is_on(self) -> bool | None:
        """The add-on reports "on" or "off"."""
        reading = self.reading
        return reading["value"] == "on" if reading else None


class BluPowBitSensor(BluPowReadingEntity, BinarySensorEntity):
    """One bit of a status word, on while the device sets it: a problem for an alarm, protection
    or fault bit, a plain state (a MOSFET on, fully charged) for the others."""

    def __init__(
        self, coordinator: BluPowCoordinator, device_id: str, key: str, reading: Reading, bit: str
    ) -> None:
        """Named after the word and the bit."""
        super().__init__(coordinator, device_id, key, reading)
        self.bit = bit
        # An add-on before problem_bits named only problems.
        if bit in reading.get("problem_bits", reading.get("bits", [])):
            self._attr_device_class = BinarySensorDeviceClass.PROBLEM
        self._attr_unique_id = f"{self._attr_unique_id}_{bit}"
        self._attr_name = f"{reading['label']}: {bit.replace('_', ' ')}"

    @property
    def is_on(self) -> bool | None:
        """The API lists the names of the bits that are set."""
        reading = self.reading
        if reading is None:
            return None
        value = reading["value"]
        return isinstance(value, list) and self.bit in value
