"""Set up BluPow: discovered from the add-on through the Supervisor, or by its URL."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import voluptuous as vol
from yarl import URL

from homeassistant.config_entries import ConfigFlow, ConfigFlowResult, OptionsFlow
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_SCAN_INTERVAL, CONF_TOKEN, CONF_URL
from homeassistant.core import callback
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.helpers.service_info.hassio import HassioServiceInfo

from .api import BluPowClient, BluPowConnectionError, BluPowError, Health
from .const import DEFAULT_SCAN_INTERVAL, DOMAIN, LOGGER, MAX_SCAN_INTERVAL, MIN_SCAN_INTERVAL
from .coordinator import BluPowConfigEntry

DEFAULT_URL = "http://homeassistant.local:8099"


class BluPowConfigFlow(ConfigFlow, domain=DOMAIN):
    """The add-on is one config entry, keyed by its own instance id."""

    VERSION = 1

    def __init__(self) -> None:
        """Nothing discovered yet."""
        self._discovered: dict[str, Any] = {}
        self._addon_name = "BluPow"

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: BluPowConfigEntry) -> OptionsFlow:
        """How often the add-on is asked."""
        return BluPowOptionsFlow()

    async def _probe(self, url: str, errors: dict[str, str]) -> Health | None:
        """The add-on at url, checked with GET /api/v1/health; None with errors set."""
        try:
            parsed = URL(url)
        except ValueError:
            parsed = None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
            errors[CONF_URL] = "invalid_url"
            return None
        try:
            health = await BluPowClient(async_get_clientsession(self.hass), url).health()
        except BluPowConnectionError:
            errors["base"] = "cannot_connect"
            return None
        except BluPowError:
            errors["base"] = "not_blupow"
            return None
        if not health.get("instance_id"):
            errors["base"] = "no_instance_id"
            return None
        return health

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Asked for the add-on's URL."""
        errors: dict[str, str] = {}
        if user_input is not None:
            url = user_input[CONF_URL].strip().rstrip("/")
            if health := await self._probe(url, errors):
                await self.async_set_unique_id(health["instance_id"])
                self._abort_if_unique_id_configured(updates={CONF_URL: url})
                data = {CONF_URL: url}
                if token := user_input.get(CONF_TOKEN):
                    data[CONF_TOKEN] = token
                return self.async_create_entry(title="BluPow", data=data)
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(_url_schema(), user_input or {CONF_URL: DEFAULT_URL}),
            errors=errors,
        )

    async def async_step_hassio(self, discovery_info: HassioServiceInfo) -> ConfigFlowResult:
        """The add-on announced itself through the Supervisor."""
        config = discovery_info.config
        url = f"http://{config[CONF_HOST]}:{config[CONF_PORT]}"
        errors: dict[str, str] = {}
        health = await self._probe(url, errors)
        if health is None:
            return self.async_abort(reason=errors.get("base", "cannot_connect"))
        await self.async_set_unique_id(health["instance_id"])
        self._discovered = {CONF_URL: url}
        if config.get(CONF_TOKEN):
            self._discovered[CONF_TOKEN] = config[CONF_TOKEN]
        # Rediscovered with a new host or port (or token): the entry follows.
        self._abort_if_unique_id_configured(updates=self._discovered)
        self._addon_name = discovery_info.name or "BluPow"
        self.context["title_placeholders"] = {"name": self._addon_name}
        return await self.async_step_hassio_confirm()

    async def async_step_hassio_confirm(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Only a confirmation: the Supervisor said where the add-on is."""
        if user_input is None:
            self._set_confirm_only()
            return self.async_show_form(
                step_id="hassio_confirm", description_placeholders={"addon": self._addon_name}
            )
        return self.async_create_entry(title=self._addon_name, data=self._discovered)

    async def async_step_reconfigure(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """A new URL for the same add-on."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            url = user_input[CONF_URL].strip().rstrip("/")
            if health := await self._probe(url, errors):
                await self.async_set_unique_id(health["instance_id"])
                self._abort_if_unique_id_mismatch(reason="wrong_addon")
                updates: dict[str, Any] = {CONF_URL: url}
                if token := user_input.get(CONF_TOKEN):
                    updates[CONF_TOKEN] = token
                return self.async_update_reload_and_abort(entry, data_updates=updates)
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(_url_schema(), user_input or {CONF_URL: entry.data[CONF_URL]}),
            errors=errors,
        )

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """The add-on refused a change: its token changed."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Asked for the add-on's api_token."""
        if user_input is not None:
            LOGGER.debug("New token for %s", self._get_reauth_entry().title)
            return self.async_update_reload_and_abort(
                self._get_reauth_entry(), data_updates={CONF_TOKEN: user_input[CONF_TOKEN]}
            )
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=vol.Schema(
                {vol.Required(CONF_TOKEN): TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))}
            ),
        )


def _url_schema() -> vol.Schema:
    return vol.Schema(
        {
            vol.Required(CONF_URL): TextSelector(TextSelectorConfig(type=TextSelectorType.URL)),
            vol.Optional(CONF_TOKEN): TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD)),
        }
    )


class BluPowOptionsFlow(OptionsFlow):
    """How often Home Assistant asks the add-on (the add-on reads the modules on its own schedule)."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """One option: the scan interval."""
        if user_input is not None:
            return self.async_create_entry(data={CONF_SCAN_INTERVAL: int(user_input[CONF_SCAN_INTERVAL])})
        schema = vol.Schema(
            {
                vol.Required(CONF_SCAN_INTERVAL): NumberSelector(
                    NumberSelectorConfig(
                        min=MIN_SCAN_INTERVAL,
                        max=MAX_SCAN_INTERVAL,
                        step=1,
                        unit_of_measurement="s",
                        mode=NumberSelectorMode.BOX,
                    )
                )
            }
        )
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(
                schema, {CONF_SCAN_INTERVAL: self.config_entry.options.get(CONF_SCAN_INTERVAL, DEFAULT_SCAN_INTERVAL)}
            ),
        )
