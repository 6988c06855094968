"""Posture policy data: device groups, policies, enforcements and package tables, read from
TOML (:func:`load_policy` / :func:`parse_policy`). The validators' shared
:class:`nea.imv.PolicyEngine` applies it; re-assess live connections after a change with
``for cid in engine.reload(load_policy(path)): tncs[cid].request_retry()``.
"""

from nea.policy.config import (
    DeviceGroup,
    Enforcement,
    PackageRule,
    Policy,
    PolicyConfig,
    PolicyError,
    PolicyType,
    ProductTable,
    load_policy,
    parse_policy,
    parse_recommendation,
)
from nea.policy.version import compare_versions, parse_os_version

__all__ = [
    "DeviceGroup",
    "Enforcement",
    "PackageRule",
    "Policy",
    "PolicyConfig",
    "PolicyError",
    "PolicyType",
    "ProductTable",
    "compare_versions",
    "load_policy",
    "parse_os_version",
    "parse_policy",
    "parse_recommendation",
]
