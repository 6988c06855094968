"""The endpoint side's I/O: read the real host (:func:`read_host`) or a simulated endpoint
profile (:func:`load_profile`) into a :class:`nea.imc.HostFacts` for the collectors."""

from gateway.endpoint.host import read_host
from gateway.endpoint.profile import ProfileError, load_profile, parse_profile

__all__ = ["ProfileError", "load_profile", "parse_profile", "read_host"]
