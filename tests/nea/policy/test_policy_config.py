"""The TOML policy format: the shipped example parses; every error names file, key, reason."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from nea.pb_tnc import ActionRecommendation
from nea.policy import (
    PolicyError,
    PolicyType,
    compare_versions,
    load_policy,
    parse_os_version,
    parse_policy,
)

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "policy.toml"


def test_example_policy_parses() -> None:
    cfg = load_policy(EXAMPLE)
    assert cfg.source == str(EXAMPLE)
    assert set(cfg.groups) >= {"default", "debian", "servers"}
    assert cfg.ancestors("servers") == ["servers", "debian", "default"]
    fwd = cfg.policies["no-forwarding"]
    assert fwd.type is PolicyType.FWDEN and fwd.type.strongswan_code == 3
    assert fwd.rec_fail is ActionRecommendation.ISOLATE
    assert fwd.reason["de"].startswith("IP-Forwarding")
    telnet = cfg.policies["no-telnet"]
    assert telnet.argument == "23 2323" and telnet.port_listed(2323) and not telnet.port_listed(22)
    assert cfg.policies["supported-os"].min_versions == (
        ("Debian", (12,)), ("Ubuntu", (22, 4)), ("Fedora*", (40,))
    )
    pk = next(e for e in cfg.enforcements if e.policy == "packages")
    assert pk.max_age == dt.timedelta(days=1)
    table = cfg.product_table("Debian 12 x86_64")
    assert table is not None and table.packages["openssl"].blacklist == ("3.0.9-1",)
    assert cfg.product_table("Debian 10 x86_64") is None


def test_defaults_and_implicit_default_group() -> None:
    cfg = parse_policy('[policies.p]\ntype = "pwden"\n[[enforcements]]\npolicy = "p"\n')
    p = cfg.policies["p"]
    assert p.type is PolicyType.PWDEN
    assert (p.rec_fail, p.rec_noresult) == (ActionRecommendation.NO_ACCESS,
                                            ActionRecommendation.ALLOW)
    assert cfg.enforcements[0].group == "default" and "default" in cfg.groups


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[policies.p]\n", "policies.p.type", "missing"),
        ('[policies.p]\ntype = "NOPE"\n', "policies.p.type", "unknown policy type 'NOPE'"),
        ('[policies.p]\ntype = "FWDEN"\nrec_fail = "deny"\n', "policies.p.rec_fail",
         "'deny' is not one of allow, isolate, block, none"),
        ('[policies.p]\ntype = "FWDEN"\nargument = "x"\n', "policies.p.argument",
         "FWDEN takes no argument"),
        ('[policies.p]\ntype = "TCPBL"\nargument = "23 70000"\n', "policies.p.argument",
         "outside 0-65535"),
        ('[policies.p]\ntype = "TCPBL"\nargument = "ssh"\n', "policies.p.argument",
         "'ssh' is not a port"),
        ('[policies.p]\ntype = "TCPOP"\nargument = "90-80"\n', "policies.p.argument",
         "reversed"),
        ('[policies.p]\ntype = "OSVER"\n', "policies.p.argument", "needs a table"),
        ('[policies.p]\ntype = "OSVER"\nargument = { Debian = "bookworm" }\n',
         "policies.p.argument.Debian", "not a numeric version"),
        ('[policies.p]\ntype = "SWFRB"\n', "policies.p.argument", "needs software"),
        ('[policies.p]\ntype = "FWDEN"\ncolour = 1\n', "policies.p.colour", "unknown key"),
        ('[policies.p]\ntype = "FWDEN"\n[[enforcements]]\npolicy = "q"\n',
         "enforcements[0].policy", "no policy named 'q'"),
        ('[policies.p]\ntype = "FWDEN"\n[[enforcements]]\npolicy = "p"\ngroup = "g"\n',
         "enforcements[0].group", "no group named 'g'"),
        ('[policies.p]\ntype = "FWDEN"\n[[enforcements]]\npolicy = "p"\nmax_age = "soon"\n',
         "enforcements[0].max_age", "duration"),
        ('[policies.p]\ntype = "FWDEN"\n[[enforcements]]\npolicy = "p"\n'
         '[[enforcements]]\npolicy = "p"\n', "enforcements[1]", "already enforced"),
        ('[groups.a]\nparent = "b"\n[groups.b]\nparent = "a"\n', "groups.a.parent",
         "parent chain loops"),
        ('[groups.a]\nparent = "zz"\n', "groups.a.parent", "no group named 'zz'"),
        ('[groups.a]\nproducts = 5\n', "groups.a.products", "list of strings"),
        ('[products."Debian*".packages]\nopenssl = { minimum = "1" }\n',
         "products.Debian*.packages.openssl.minimum", "unknown key"),
        ("enforcements = 3\n", "enforcements", "array of tables"),
        ("[policy.p]\n", "(top level).policy", "unknown key"),
    ],
)
def test_errors_name_file_key_reason(text: str, key: str, reason: str) -> None:
    with pytest.raises(PolicyError) as err:
        parse_policy(text, "site.toml")
    assert err.value.source == "site.toml"
    assert err.value.key == key
    assert reason in err.value.reason
    assert str(err.value).startswith(f"site.toml: {key}: ")


def test_invalid_toml_and_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"^bad\.toml: not valid TOML"):
        parse_policy("[groups\n", "bad.toml")
    missing = tmp_path / "nope.toml"
    with pytest.raises(PolicyError, match="cannot read") as err:
        load_policy(missing)
    assert err.value.source == str(missing)


@pytest.mark.parametrize(
    ("value", "seconds"), [(90, 90), ("90", 90), ("30m", 1800), ("12h", 43200), ("7d", 604800)]
)
def test_max_age_units(value: object, seconds: int) -> None:
    v = f'"{value}"' if isinstance(value, str) else str(value)
    cfg = parse_policy(f'[policies.p]\ntype = "FWDEN"\n[[enforcements]]\npolicy = "p"\n'
                       f"max_age = {v}\n")
    assert cfg.enforcements[0].max_age == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("1.0", "1.0", 0),
        ("1.0~rc1", "1.0", -1),
        ("1.0", "1.0+deb12u1", -1),
        ("3.0.11-1~deb12u2", "3.0.15-1~deb12u1", -1),
        ("3.0.15-1~deb12u1", "3.0.15-1~deb12u1", 0),
        ("3.0.15-1", "3.0.15-1~deb12u1", 1),
        ("1:1.0", "2.0", 1),
        ("2.36-9+deb12u9", "2.36-9+deb12u7", 1),
        ("1.10", "1.9", 1),
        ("1.0a", "1.0", 1),
        ("5.2.15-2+b7", "5.2.15-2+b2", 1),
    ],
)
def test_version_ordering(a: str, b: str, expected: int) -> None:
    assert compare_versions(a, b) == expected
    assert compare_versions(b, a) == -expected


def test_os_version_parse() -> None:
    assert parse_os_version("22.04") == (22, 4)
    assert parse_os_version("12") == (12,)
    assert parse_os_version("12 x86_64") == (12,)
    assert parse_os_version("40.1beta") == (40, 1)
    assert parse_os_version("bookworm") == ()


def test_group_matching_requires_every_criterion() -> None:
    cfg = parse_policy(
        '[groups.g]\nidentities = ["*@corp"]\nproducts = ["Debian 12*", "Ubuntu*"]\n'
    )
    g = cfg.groups["g"]
    assert g.matches("a@corp", "Debian 12 x86_64", None)
    assert g.matches("a@corp", "Ubuntu 22.04 x86_64", "x")
    assert not g.matches("a@home", "Debian 12 x86_64", None)
    assert not g.matches("a@corp", None, None)  # product not known yet
    assert cfg.groups["default"].matches(None, None, None)
