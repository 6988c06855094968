"""``make demo`` (``python -m gateway.demo``): nea-gateway on its defaults and a fleet of
simulated endpoints over real IKEv2 + EAP + PT-EAP on loopback; see :mod:`gateway.demo.run`."""

from gateway.demo.run import FleetMember, fleet_plan, main

__all__ = ["FleetMember", "fleet_plan", "main"]
