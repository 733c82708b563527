"""Constants of the BluPow integration."""

from __future__ import annotations

import logging
from typing import Final

DOMAIN: Final = "blupow"
LOGGER = logging.getLogger(__package__)

# The add-on's API is on the same host or network and answers from memory: polling it often
# costs nothing over Bluetooth (the add-on reads the modules on its own schedule).
DEFAULT_SCAN_INTERVAL: Final = 10
MIN_SCAN_INTERVAL: Final = 5
MAX_SCAN_INTERVAL: Final = 300

# A verify reads the module over Bluetooth while the request waits.
VERIFY_TIMEOUT: Final = 90
REQUEST_TIMEOUT: Final = 15

MANUFACTURER: Final = "Renogy"
