"""What the entities that change things share: the add-on's errors as Home Assistant's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from homeassistant.exceptions import HomeAssistantError

from .api import BluPowAuthError, BluPowError
from .const import DOMAIN
from .coordinator import BluPowCoordinator


@asynccontextmanager
async def blupow_action(coordinator: BluPowCoordinator, translation_key: str) -> AsyncIterator[None]:
    """Turn the add-on's errors into a translated HomeAssistantError; a refused token starts
    reauthentication."""
    try:
        yield
    except BluPowAuthError as err:
        coordinator.config_entry.async_start_reauth(coordinator.hass)
        raise HomeAssistantError(
            translation_domain=DOMAIN, translation_key="unauthorized", translation_placeholders={"error": str(err)}
        ) from err
    except BluPowError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN, translation_key=translation_key, translation_placeholders={"error": str(err)}
        ) from err
