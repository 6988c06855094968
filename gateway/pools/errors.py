"""Errors of the pool layer.

One root, :class:`PoolError`. Each subclass carries the exit code ``nea-pool`` returns for it
(the "code that goes on the wire" of a command-line tool): 2 when the caller has to fix the
arguments (a malformed range, address or attribute value), 1 when the request was well formed
but the database state refuses it (an unknown pool, an overlap, a pool that exists).
"""

from __future__ import annotations

__all__ = [
    "InvalidArgument",
    "NotResizable",
    "PoolError",
    "PoolExists",
    "PoolNotFound",
    "PoolOverlap",
]


class PoolError(Exception):
    """Root of every error raised by :mod:`gateway.pools`."""

    exit_code = 1


class InvalidArgument(PoolError):
    """A malformed range, address, timeout or attribute value: the caller must fix it."""

    exit_code = 2


class PoolNotFound(PoolError):
    """The named pool does not exist."""

    def __init__(self, name: str) -> None:
        super().__init__(f"pool '{name}' not found (list pools with --status)")
        self.name = name


class PoolExists(PoolError):
    """``--add`` of a pool name that is taken (use ``--replace``)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"pool '{name}' exists; use --replace {name} to redefine it")
        self.name = name


class PoolOverlap(PoolError):
    """A new or resized range overlaps the addresses of another pool."""


class NotResizable(PoolError):
    """``--resize`` of a pool that cannot grow (an address-list pool, or shrinking)."""
