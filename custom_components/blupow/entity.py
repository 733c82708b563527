"""The base of every BluPow entity: one Home Assistant device per Renogy device."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .api import Device, Reading
from .const import DOMAIN, MANUFACTURER
from .coordinator import BluPowConfigEntry, BluPowCoordinator


class BluPowEntity(CoordinatorEntity[BluPowCoordinator]):
    """Something of one Renogy device, as the add-on reports it."""

    _attr_has_entity_name = True
    # The key of an entity every device has one of (its unique id's last part).
    entity_key = ""

    def __init__(self, coordinator: BluPowCoordinator, device_id: str, key: str | None = None) -> None:
        """Name the entity after the device and a key unique within it."""
        super().__init__(coordinator)
        key = key or self.entity_key
        self.device_id = device_id
        self._attr_unique_id = f"{coordinator.device_identifier(device_id)}_{key}"
        device = coordinator.data.devices[device_id]
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, coordinator.device_identifier(device_id))},
            manufacturer=MANUFACTURER,
            model=device["model"] or device["family_label"],
            name=device["name"],
            serial_number=device["serial"],
            sw_version=device["firmware"],
            via_device=(DOMAIN, coordinator.addon.instance_id),
        )

    @property
    def device(self) -> Device | None:
        """The device as the last poll of the add-on returned it."""
        return self.coordinator.data.devices.get(self.device_id) if self.coordinator.data else None

    @property
    def available(self) -> bool:
        """The add-on answered, and its data of this device is fresh (its own schedule decides)."""
        device = self.device
        return super().available and device is not None and device["available"] is True


class BluPowStatusEntity(BluPowEntity):
    """Says how the device is doing: shown whenever the add-on answers, even if the device does not."""

    @property
    def available(self) -> bool:
        """Available while the add-on answers and has the device."""
        return self.coordinator.last_update_success and self.device is not None


class BluPowReadingEntity(BluPowEntity):
    """One reading of the device, made from the API's metadata for it."""

    def __init__(self, coordinator: BluPowCoordinator, device_id: str, key: str, reading: Reading) -> None:
        """Take the name from the add-on's label."""
        super().__init__(coordinator, device_id, key)
        self.key = key
        self._attr_name = reading["label"]

    @property
    def reading(self) -> Reading | None:
        """The reading in the last poll, if the device reported it."""
        device = self.device
        return device["readings"].get(self.key) if device else None

    @property
    def available(self) -> bool:
        """A reading the device stopped reporting is unavailable too."""
        return super().available and self.reading is not None


type EntityFactory = Callable[[], Entity]


def add_entities_as_they_appear(
    entry: BluPowConfigEntry,
    add: Callable[[Iterable[Entity]], None],
    make: Callable[[BluPowCoordinator, Device], Iterable[tuple[str, EntityFactory]]],
) -> None:
    """Add each device's entities now, and later those of devices added to the add-on and of
    readings a device reports for the first time, without a restart. make names each entity by
    a key unique within the device and says how to build it; devices removed go with their
    registry entries."""
    coordinator = entry.runtime_data
    known: set[tuple[str, str]] = set()

    @callback
    def add_new() -> None:
        if not coordinator.data:
            return
        known.difference_update({k for k in known if k[0] not in coordinator.data.devices})
        new: list[Entity] = []
        for device in coordinator.data.devices.values():
            for key, factory in make(coordinator, device):
                if (device["id"], key) not in known:
                    known.add((device["id"], key))
                    new.append(factory())
        if new:
            add(new)

    add_new()
    entry.async_on_unload(coordinator.async_add_listener(add_new))
