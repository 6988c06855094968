"""RADIUS front-end: the Twisted UDP adapter for :mod:`radius` and its composition root.

* :mod:`gateway.radius.adapter`: :class:`RadiusService` and :class:`RadiusDatagramProtocol`
  (auth 1812, accounting 1813) feeding :class:`radius.RadiusServer`.
* :mod:`gateway.radius.config`: the TOML configuration.
* :mod:`gateway.radius.compose`: builds the EAP server (``ike.eap.server.EapServer``) with the
  configured methods, and the whole service.
* ``python -m gateway.radius --config FILE`` runs it.
"""

from gateway.radius.adapter import RadiusDatagramProtocol, RadiusService
from gateway.radius.compose import (
    ConversationEap,
    available_methods,
    build_eap_factory,
    build_server,
    current_conversation,
    listen,
)
from gateway.radius.config import ConfigError, RadiusConfig, load_config, parse_config

__all__ = [
    "ConfigError",
    "ConversationEap",
    "RadiusConfig",
    "RadiusDatagramProtocol",
    "RadiusService",
    "available_methods",
    "build_eap_factory",
    "build_server",
    "current_conversation",
    "listen",
    "load_config",
    "parse_config",
]
