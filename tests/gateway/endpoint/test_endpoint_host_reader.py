"""gateway.endpoint.host: the real host read into HostFacts, and the parsers on fake trees."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from gateway.endpoint.host import (
    listening_ports,
    parse_dpkg_status,
    parse_os_release,
    parse_proc_net,
    read_host,
)
from nea.imc import TCP, UDP, HostFacts, OsCollector
from nea.pa import PaMessage, ProductInformation
from nea.pb_tnc import ConnectionState

OS_RELEASE = Path("/etc/os-release")


def test_real_host_shapes() -> None:
    facts = read_host()
    assert isinstance(facts, HostFacts)
    assert facts.os_id and facts.os_name
    assert facts.forwarding in (0, 1, 2)
    for proto, port in facts.listening:
        assert proto in (TCP, UDP) and 0 <= port <= 65535
    for name, version in facts.packages:
        assert name and isinstance(version, str)
    if Path("/etc/machine-id").exists() and Path("/etc/machine-id").read_text().strip():
        assert facts.device_id == Path("/etc/machine-id").read_text().strip()
    if Path("/proc/sys/net/ipv4/ip_forward").exists():
        assert facts.forwarding in (0, 1)


@pytest.mark.skipif(not OS_RELEASE.exists(), reason="no /etc/os-release on this machine")
def test_real_host_matches_os_release() -> None:
    fields = parse_os_release(OS_RELEASE.read_text())
    facts = read_host()
    assert facts.os_id == fields["ID"]
    assert facts.os_version == fields.get("VERSION_ID", "")
    if fields["ID"] == "debian":  # this machine: Debian 12
        assert facts.os_name == "Debian"
        assert Path("/var/lib/dpkg/status").exists()
        names = {n for n, _ in facts.packages}
        assert {"dpkg", "bash"} <= names
        # what the OS collector makes of it matches strongSwan's OS collector on this host
        c = OsCollector(facts)
        c.notify_connection_change(1, ConnectionState.CREATE)
        c.notify_connection_change(1, ConnectionState.HANDSHAKE)
        [out] = c.begin_handshake(1)
        info = PaMessage.parse(out.body).first(ProductInformation)
        assert info == ProductInformation(9586, 0, "Debian")


def test_real_listening_socket_is_seen() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        if not Path("/proc/net/tcp").exists():
            pytest.skip("no /proc/net/tcp (not Linux)")
        assert (TCP, port) in listening_ports()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.bind(("127.0.0.1", 0))
        assert (UDP, u.getsockname()[1]) in listening_ports()


def test_os_release_quoting() -> None:
    text = (
        '# comment\nNAME="Debian GNU/Linux"\nID=debian\nVERSION_ID="12"\n'
        "PRETTY_NAME='It''s'\nBUG=\"say \\\"hi\\\" \\$x\"\n\nnot a line\n"
    )
    f = parse_os_release(text)
    assert f["NAME"] == "Debian GNU/Linux" and f["ID"] == "debian" and f["VERSION_ID"] == "12"
    assert f["BUG"] == 'say "hi" $x'


def test_dpkg_status_only_installed() -> None:
    text = (
        "Package: bash\nStatus: install ok installed\nVersion: 5.2.15-2+b7\n"
        "Description: shell\n multi-line\n\n"
        "Package: gone\nStatus: deinstall ok config-files\nVersion: 1.0\n\n"
        "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\n"
        "Version: 2.36-9+deb12u9\n\n"
        "Package: libc6\nStatus: install ok installed\nArchitecture: i386\n"
        "Version: 2.36-9+deb12u9\n"
    )
    assert parse_dpkg_status(text) == [("bash", "5.2.15-2+b7"), ("libc6", "2.36-9+deb12u9")]


def test_proc_net_states() -> None:
    tcp = (
        "  sl  local_address rem_address   st tx_queue rx_queue\n"
        "   0: 0100007F:0016 00000000:0000 0A 00000000:00000000\n"
        "   1: 0100007F:D431 0100007F:0016 01 00000000:00000000\n"
    )
    assert parse_proc_net(tcp, udp=False) == {22}
    udp = (
        "  sl  local_address rem_address   st\n"
        "   5: 00000000:01F4 00000000:0000 07 00000000:00000000\n"
        "   6: 0100007F:E000 0100007F:0035 01 00000000:00000000\n"
    )
    assert parse_proc_net(udp, udp=True) == {500}


def make_root(tmp_path: Path, *, forward: str = "1\n") -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text('NAME="Ubuntu"\nID=ubuntu\nVERSION_ID="24.04"\n')
    (tmp_path / "etc/machine-id").write_text("cafe0123\n")
    (tmp_path / "var/lib/dpkg").mkdir(parents=True)
    (tmp_path / "var/lib/dpkg/status").write_text(
        "Package: zsh\nStatus: install ok installed\nVersion: 5.9-6\n")
    (tmp_path / "proc/sys/net/ipv4").mkdir(parents=True)
    (tmp_path / "proc/sys/net/ipv4/ip_forward").write_text(forward)
    (tmp_path / "proc/net").mkdir(parents=True)
    (tmp_path / "proc/net/tcp6").write_text(
        "  sl  local_address rem_address st\n"
        "   0: 00000000000000000000000000000000:01BB 00000000000000000000000000000000:0000 0A\n")
    (tmp_path / "proc/stat").write_text("cpu  1 2 3\nbtime 1764316800\n")
    return tmp_path


def test_fake_root(tmp_path: Path) -> None:
    facts = read_host(make_root(tmp_path), default_password=lambda: True, test_command="allow")
    assert (facts.os_id, facts.os_name, facts.os_version) == ("ubuntu", "Ubuntu", "24.04")
    assert facts.packages == (("zsh", "5.9-6"),)
    assert facts.forwarding == 1 and facts.default_password is True
    assert facts.listening == ((TCP, 443),)
    assert facts.device_id == "cafe0123"
    assert facts.last_boot is not None and facts.last_boot.year == 2025
    assert facts.numeric_version == (24, 4) and facts.test_command == "allow"


def test_fake_root_missing_files(tmp_path: Path) -> None:
    facts = read_host(tmp_path)
    assert (facts.os_id, facts.os_name, facts.packages) == ("linux", "Linux", ())
    assert facts.forwarding == 2 and facts.device_id is None and facts.listening == ()
    assert facts.default_password is None
