"""Virtual IP pools and configuration attributes (memory and SQL).

* :class:`MemoryPools` -- pools from the configuration (``[pools.NAME] addrs = ...``).
* :class:`SqlPools` -- strongSwan attr-sql style pools in SQLite/PostgreSQL (``nea-pool``).
* :class:`DeferredPools` -- the Twisted wrapper (SQL runs in a thread).

All implement :class:`PoolProvider`: ``acquire(pool, identity, requested=None)``,
``release(pool, address, identity)``, ``attributes(pool, identity)`` and ``status()``.
"""

from gateway.pools.adapter import DeferredPools
from gateway.pools.addresses import AddressRange, IPAddress, parse_ranges
from gateway.pools.attributes import (
    ATTRIBUTE_KEYWORDS,
    AttributeStore,
    ConfigAttributeType,
    ValueKind,
    encode_attribute,
    format_attribute_value,
)
from gateway.pools.base import Lease, LeaseState, PoolProvider, PoolStatus
from gateway.pools.errors import (
    InvalidArgument,
    NotResizable,
    PoolError,
    PoolExists,
    PoolNotFound,
    PoolOverlap,
)
from gateway.pools.memory import MemoryPool, MemoryPools
from gateway.pools.sql import DEFAULT_DB_URL, LeaseFilter, SqlPools, create_pool_engine

__all__ = [
    "ATTRIBUTE_KEYWORDS",
    "DEFAULT_DB_URL",
    "AddressRange",
    "AttributeStore",
    "ConfigAttributeType",
    "DeferredPools",
    "IPAddress",
    "InvalidArgument",
    "Lease",
    "LeaseFilter",
    "LeaseState",
    "MemoryPool",
    "MemoryPools",
    "NotResizable",
    "PoolError",
    "PoolExists",
    "PoolNotFound",
    "PoolOverlap",
    "PoolProvider",
    "PoolStatus",
    "SqlPools",
    "ValueKind",
    "create_pool_engine",
    "encode_attribute",
    "format_attribute_value",
    "parse_ranges",
]
