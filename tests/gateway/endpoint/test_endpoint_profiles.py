"""gateway.endpoint.profile: the shipped profiles load; bad files give clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.endpoint import ProfileError, load_profile, parse_profile
from nea.imc import TCP, UDP

PROFILES = Path(__file__).resolve().parents[3] / "examples" / "profiles"


def test_all_example_profiles_load() -> None:
    names = sorted(p.stem for p in PROFILES.glob("*.toml"))
    assert names == ["compliant", "forbidden-package", "forbidden-port", "forwarding",
                     "outdated-os"]
    ids = set()
    for path in PROFILES.glob("*.toml"):
        facts = load_profile(path)
        assert facts.os_id == "debian" and facts.device_id
        ids.add(facts.device_id)
    assert len(ids) == 5  # distinct devices


def test_compliant_profile_values() -> None:
    f = load_profile(PROFILES / "compliant.toml")
    assert (f.os_name, f.os_version, f.arch, f.string_version) == (
        "Debian", "12", "x86_64", "12 x86_64")
    assert f.forwarding == 0 and f.default_password is False
    assert f.listening == ((TCP, 22), (UDP, 500), (UDP, 4500))
    assert ("openssl", "3.0.15-1~deb12u1") in f.packages
    assert f.test_command == "allow"
    assert load_profile(PROFILES / "forwarding.toml").forwarding == 1
    assert (TCP, 23) in load_profile(PROFILES / "forbidden-port.toml").listening


def test_full_profile() -> None:
    f = parse_profile(
        '[device]\nforwarding = "unknown"\n[ports]\nblocked_udp = [69]\n'
        '[swima]\nepoch = 3\n[[swima.events]]\neid = 2\ntimestamp = "2026-11-01T10:00:00Z"\n'
        'action = "deletion"\nname = "nmap"\nversion = "7"\n'
    )
    assert f.forwarding == 2 and f.default_password is None
    assert f.blocked == ((UDP, 69),) and f.swima_epoch == 3 and f.last_eid == 2
    assert f.software_events[0].action == 2


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[oss]\n", "oss", "unknown section"),
        ("[os]\nversion = 12\n", "os.version", "must be a string"),
        ("[os]\nrelease = '12'\n", "os.release", "unknown key"),
        ("[device]\nforwarding = 1\n", "device.forwarding", 'true, false or "unknown"'),
        ("[device]\ndefault_password = 'no'\n", "device.default_password", "true or false"),
        ("[ports]\ntcp = [22, 70000]\n", "ports.tcp", "70000 is not a port"),
        ("[ports]\nudp = 53\n", "ports.udp", "list of port numbers"),
        ("[packages]\nopenssl = 3\n", "packages.openssl", "version string"),
        ("[packages]\nx = '" + "1" * 300 + "'\n", "packages.x", "255 octets"),
        ("os = 'debian'\n", "os", "must be a table"),
        ("[swima]\nepoch = -1\n", "swima.epoch", "integer"),
        ("[[swima.events]]\neid = 1\n", "swima.events[0].timestamp", "missing"),
        ("[[swima.events]]\neid = 1\ntimestamp = 'yesterday'\naction = 'creation'\n"
         "name = 'a'\nversion = '1'\n", "swima.events[0].timestamp", "2026-11-01T10:00:00Z"),
        ("[[swima.events]]\neid = 1\ntimestamp = '2026-11-01T10:00:00Z'\naction = 'born'\n"
         "name = 'a'\nversion = '1'\n", "swima.events[0].action", "creation, deletion"),
    ],
)
def test_bad_profiles(text: str, key: str, reason: str) -> None:
    with pytest.raises(ProfileError) as err:
        parse_profile(text, "laptop.toml")
    assert (err.value.source, err.value.key) == ("laptop.toml", key)
    assert reason in err.value.reason
    assert str(err.value).startswith(f"laptop.toml: {key}: ")


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[os\n")
    with pytest.raises(ProfileError, match=r"bad\.toml: not valid TOML"):
        load_profile(bad)
    with pytest.raises(ProfileError, match="cannot read"):
        load_profile(tmp_path / "missing.toml")
