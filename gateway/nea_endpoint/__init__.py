"""``nea-endpoint``: the endpoint side of nea-gateway (IKEv2 initiator, EAP peer, PT-EAP with
the posture collectors).

* :mod:`gateway.nea_endpoint.options` -- :class:`EndpointOptions` from the command line or a
  small TOML file.
* :mod:`gateway.nea_endpoint.client` -- :class:`EndpointClient` (one connection on a Twisted
  reactor) and its :class:`EndpointResult`; :func:`run_many` for fleets.
* :mod:`gateway.nea_endpoint.cli` -- ``nea-endpoint`` (``main(argv) -> int``).
"""

from gateway.nea_endpoint.client import (
    EXIT_CODES,
    ChildInfo,
    EndpointClient,
    EndpointResult,
    eap_fast_available,
    load_facts,
    run_many,
)
from gateway.nea_endpoint.options import EndpointOptions, OptionsError, parse_server

__all__ = [
    "EXIT_CODES",
    "ChildInfo",
    "EndpointClient",
    "EndpointOptions",
    "EndpointResult",
    "OptionsError",
    "eap_fast_available",
    "load_facts",
    "parse_server",
    "run_many",
]
