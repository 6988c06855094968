"""A small, fully known set of assessments written through the evidence sink.

Devices and their sessions (day 1 = 2026-11-20, day 2 = 2026-11-21, UTC):

======  ===========  ===================  =====  ============================================
device  identity     OS                   day    verdict
======  ===========  ===================  =====  ============================================
dev-a   alice@corp   Debian 12 x86_64     1, 2   allow, allow (no-forwarding skipped: max_age)
dev-b   bob@corp     Debian 12 x86_64     1      isolate (forwarding on; remediation sent)
dev-c   carol@corp   Ubuntu 22.04 x86_64  2      block (blacklisted openssl; remediation sent)
dev-d   dave@corp    Debian 12 x86_64     2      none: interrupted (no decision, no end)
--      eve@corp     --                   2      allow (endpoint sent no device id)
======  ===========  ===================  =====  ============================================

So: 6 sessions, 5 decided, 1 interrupted; 3 devices with a verdict, 1 compliant (33.3 %);
session allow rate 3/5 = 60 %. Per policy: no-forwarding passed 3 (a1, c, d), skipped 1,
failed 1; packages passed 3, failed 1; default-password passed 2, no_result 1.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from nea.imv.evidence import (
    DeviceFacts,
    EvidenceSink,
    PolicyOutcome,
    PolicyResult,
    RemediationRecord,
    SessionDecision,
    SessionStart,
)
from nea.pb_tnc.imv import ActionRecommendation as Rec
from nea.pb_tnc.messages import AccessRecommendation as Access
from nea.pb_tnc.messages import AssessmentResult as Eval
from nea.policy import PolicyConfig, parse_policy

DAY1 = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)
DAY2 = dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.UTC)

POLICY_TOML = """
[groups.default]
description = "every device"
[groups.debian]
parent = "default"
products = ["Debian*"]

[policies.no-forwarding]
type = "FWDEN"
rec_fail = "isolate"
reason = { en = "IP forwarding is enabled" }
remediation_uri = "https://help.example.com/forwarding"

[policies.packages]
type = "PCKGS"
rec_fail = "block"
reason = { en = "vulnerable packages installed" }

[policies.default-password]
type = "PWDEN"
rec_fail = "block"
rec_noresult = "allow"

[[enforcements]]
policy = "no-forwarding"
group = "default"
max_age = "1d"

[[enforcements]]
policy = "packages"
group = "debian"

[[enforcements]]
policy = "default-password"
group = "default"
"""

TYPES = {"no-forwarding": "FWDEN", "packages": "PCKGS", "default-password": "PWDEN"}
RECS = {"allow": Rec.ALLOW, "isolate": Rec.ISOLATE, "block": Rec.NO_ACCESS}
ACCESS = {"allow": Access.ALLOWED, "isolate": Access.QUARANTINED, "block": Access.DENIED}

SESSIONS = 6
DECIDED = 5
DEVICES_ASSESSED = 3
COMPLIANT = 1


def policy_config() -> PolicyConfig:
    return parse_policy(POLICY_TOML, "evidence-test-policy.toml")


def _result(
    cid: int,
    device: str | None,
    who: str,
    policy: str,
    outcome: str,
    at: dt.datetime,
    rec: str = "allow",
    evidence: dict[str, Any] | None = None,
    reason: str = "",
    remediation: tuple[str, ...] = (),
    group: str = "default",
) -> PolicyResult:
    ok = outcome in ("passed", "skipped")
    return PolicyResult(
        connection_id=cid,
        device_id=device,
        identity=who,
        policy=policy,
        policy_type=TYPES[policy],
        group=group,
        outcome=PolicyOutcome(outcome),
        recommendation=RECS[rec],
        evaluation=Eval.COMPLIANT
        if ok
        else (Eval.DONT_KNOW if outcome == "no_result" else Eval.NONCOMPLIANT_MAJOR),
        at=at,
        evidence=evidence or {},
        reason=reason,
        remediation=remediation,
        validator="os",
    )


def _facts(
    cid: int, device: str | None, at: dt.datetime, product: str, version: str, **more: Any
) -> DeviceFacts:
    return DeviceFacts(
        connection_id=cid,
        at=at,
        device_id=device,
        product=product,
        product_vendor_id=9586 if product == "Debian" else 0,
        product_id=0,
        version=version,
        **more,
    )


def _decide(
    cid: int, device: str | None, who: str, verdict: str, at: dt.datetime, reason: str = ""
) -> SessionDecision:
    return SessionDecision(
        connection_id=cid,
        device_id=device,
        identity=who,
        access=ACCESS[verdict],
        recommendation=RECS[verdict],
        evaluation=Eval.COMPLIANT if verdict == "allow" else Eval.NONCOMPLIANT_MAJOR,
        at=at,
        per_validator={
            "os": (RECS[verdict], Eval.COMPLIANT if verdict == "allow" else Eval.NONCOMPLIANT_MAJOR)
        },
        reasons={"os": reason} if reason else {},
    )


def write_assessments(sink: EvidenceSink, *, bind_address: Any = None) -> None:
    """Write the assessments above. ``bind_address(connection_id, address)`` when given."""
    m = dt.timedelta(minutes=1)
    debian_pkgs = (("openssl", "3.0.15-1~deb12u1"), ("bash", "5.2.15-2+b2"))

    def start(cid: int, who: str, at: dt.datetime, address: str) -> None:
        if bind_address is not None:
            bind_address(cid, address)
        sink.session_started(SessionStart(cid, who, at))

    # dev-a, day 1: everything passes
    start(1, "alice@corp", DAY1, "192.0.2.10")
    sink.facts_measured(
        _facts(
            1,
            "dev-a",
            DAY1,
            "Debian",
            "12 x86_64",
            forwarding=0,
            default_password=False,
            packages=debian_pkgs,
        )
    )
    sink.policy_result(
        _result(
            1, "dev-a", "alice@corp", "no-forwarding", "passed", DAY1, evidence={"forwarding": 0}
        )
    )
    sink.policy_result(
        _result(1, "dev-a", "alice@corp", "packages", "passed", DAY1, group="debian")
    )
    sink.policy_result(_result(1, "dev-a", "alice@corp", "default-password", "passed", DAY1))
    sink.session_decided(_decide(1, "dev-a", "alice@corp", "allow", DAY1 + m))
    sink.session_ended(1, DAY1 + 2 * m)

    # dev-b, day 1: forwarding enabled -> isolate, remediation sent
    start(2, "bob@corp", DAY1 + 5 * m, "192.0.2.20")
    sink.facts_measured(
        _facts(2, "dev-b", DAY1 + 5 * m, "Debian", "12 x86_64", forwarding=1, packages=debian_pkgs)
    )
    sink.policy_result(
        _result(
            2,
            "dev-b",
            "bob@corp",
            "no-forwarding",
            "failed",
            DAY1 + 5 * m,
            rec="isolate",
            evidence={"forwarding": 1},
            reason="IP forwarding is enabled",
            remediation=("https://help.example.com/forwarding",),
        )
    )
    sink.remediation_sent(
        RemediationRecord(
            2,
            "dev-b",
            "bob@corp",
            "os",
            "no-forwarding",
            "https://help.example.com/forwarding",
            "Disable IP forwarding",
            "en",
            DAY1 + 5 * m,
        )
    )
    sink.policy_result(
        _result(2, "dev-b", "bob@corp", "packages", "passed", DAY1 + 5 * m, group="debian")
    )
    sink.policy_result(
        _result(2, "dev-b", "bob@corp", "default-password", "no_result", DAY1 + 5 * m)
    )
    sink.session_decided(
        _decide(2, "dev-b", "bob@corp", "isolate", DAY1 + 6 * m, "IP forwarding is enabled")
    )
    sink.session_ended(2, DAY1 + 7 * m)

    # dev-a, day 2 (a new gateway run reuses connection id 1): forwarding skipped (max_age)
    start(1, "alice@corp", DAY2, "192.0.2.11")
    sink.facts_measured(_facts(1, "dev-a", DAY2, "Debian", "12 x86_64", packages=debian_pkgs))
    sink.policy_result(_result(1, "dev-a", "alice@corp", "no-forwarding", "skipped", DAY2))
    sink.policy_result(
        _result(1, "dev-a", "alice@corp", "packages", "passed", DAY2, group="debian")
    )
    sink.session_decided(_decide(1, "dev-a", "alice@corp", "allow", DAY2 + m))
    sink.session_ended(1, DAY2 + 2 * m)

    # dev-c, day 2: blacklisted openssl -> block
    start(3, "carol@corp", DAY2 + 10 * m, "198.51.100.7")
    sink.facts_measured(
        _facts(
            3,
            "dev-c",
            DAY2 + 10 * m,
            "Ubuntu",
            "22.04 x86_64",
            forwarding=0,
            default_password=False,
            packages=(("openssl", "3.0.9-1"),),
            software=("swid:ubuntu.com/openssl-3.0.9",),
        )
    )
    sink.policy_result(_result(3, "dev-c", "carol@corp", "no-forwarding", "passed", DAY2 + 10 * m))
    sink.policy_result(
        _result(
            3,
            "dev-c",
            "carol@corp",
            "packages",
            "failed",
            DAY2 + 10 * m,
            rec="block",
            evidence={"blacklisted": [["openssl", "3.0.9-1"]]},
            reason="vulnerable packages installed",
            group="debian",
        )
    )
    sink.remediation_sent(
        RemediationRecord(
            3, "dev-c", "carol@corp", "os", "packages", None, "Upgrade openssl", "en", DAY2 + 10 * m
        )
    )
    sink.policy_result(
        _result(3, "dev-c", "carol@corp", "default-password", "passed", DAY2 + 10 * m)
    )
    sink.session_decided(
        _decide(3, "dev-c", "carol@corp", "block", DAY2 + 11 * m, "vulnerable packages installed")
    )
    sink.session_ended(3, DAY2 + 12 * m)

    # dev-d, day 2: interrupted after one result (no decision, no end)
    start(4, "dave@corp", DAY2 + 20 * m, "203.0.113.4")
    sink.facts_measured(_facts(4, "dev-d", DAY2 + 20 * m, "Debian", "12 x86_64", forwarding=0))
    sink.policy_result(_result(4, "dev-d", "dave@corp", "no-forwarding", "passed", DAY2 + 20 * m))

    # eve, day 2: no device id, allowed
    start(5, "eve@corp", DAY2 + 30 * m, "203.0.113.5")
    sink.session_decided(_decide(5, None, "eve@corp", "allow", DAY2 + 31 * m))
    sink.session_ended(5, DAY2 + 32 * m)
