"""``nea-gateway``: the composition root and the daemon.

* :mod:`gateway.daemon.config` -- TOML configuration in swanctl.conf's vocabulary
  (:func:`load_config`, :func:`default_config`, :class:`ConfigError`).
* :mod:`gateway.daemon.compose` -- engines from the configuration (:func:`compose`).
* :mod:`gateway.daemon.service` -- the running gateway (:class:`Gateway`).
* :mod:`gateway.daemon.control` -- the unix control socket (JSON lines) and its client.
* :mod:`gateway.daemon.cli` -- ``nea-gateway run | list-sas | list-conns | initiate |
  terminate | reload | stats``.
"""

from gateway.daemon.compose import AccessRouter, Composition, Verdict, compose
from gateway.daemon.config import (
    ConfigError,
    GatewayConfig,
    default_config,
    load_config,
    parse_config,
)
from gateway.daemon.control import ControlError, call
from gateway.daemon.service import Dataplane, Gateway

__all__ = [
    "AccessRouter",
    "Composition",
    "ConfigError",
    "ControlError",
    "Dataplane",
    "Gateway",
    "GatewayConfig",
    "Verdict",
    "call",
    "compose",
    "default_config",
    "load_config",
    "parse_config",
]
