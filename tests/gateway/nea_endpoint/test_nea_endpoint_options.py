"""nea-endpoint options: --server forms, the TOML file, cross-option checks and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.nea_endpoint.cli import main
from gateway.nea_endpoint.options import (
    OptionsError,
    load_options_file,
    merged,
    parse_server,
)


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("vpn.example.com", "vpn.example.com", 500),
        ("192.0.2.1:4501", "192.0.2.1", 4501),
        ("[2001:db8::1]:10500", "2001:db8::1", 10500),
        ("2001:db8::1", "2001:db8::1", 500),
        ("[2001:db8::1]", "2001:db8::1", 500),
    ],
)
def test_parse_server(text: str, host: str, port: int) -> None:
    assert parse_server(text) == (host, port)


@pytest.mark.parametrize("text", ["", "host:0", "host:70000", "host:x", "[::1", "[::1]x", ":500"])
def test_parse_server_rejects(text: str) -> None:
    with pytest.raises(OptionsError):
        parse_server(text)


def _ca(tmp_path: Path) -> Path:
    p = tmp_path / "ca.pem"
    p.write_text("placeholder; only existence is checked here\n")
    return p


def test_file_values_and_command_line_override(tmp_path: Path) -> None:
    ca = _ca(tmp_path)
    cfg = tmp_path / "ep.toml"
    cfg.write_text(
        'server = "192.0.2.1:10500"\nid = "bob"\neap = "eap-peap"\npassword = "x"\n'
        'ca = "ca.pem"\ntimeout = 5\ninner-method = "md5"\n'.replace('inner-method = "md5"\n', "")
    )
    values = load_options_file(cfg)
    assert values["ca"] == (ca,)
    opts = merged(values, {"eap": "eap-ttls", "server": None})
    assert (opts.server, opts.port, opts.eap, opts.timeout) == ("192.0.2.1", 10500, "eap-ttls", 5.0)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ('server = "h"\nbogus = 1\n', "bogus: unknown key"),
        ('server = "h"\ntimeout = "x"\n', "timeout: must be a number"),
        ("server = \n", "not valid TOML"),
        ('server = "h"\nca = 3\n', "ca: must be a file name"),
    ],
)
def test_file_errors(tmp_path: Path, body: str, needle: str) -> None:
    cfg = tmp_path / "ep.toml"
    cfg.write_text(body)
    with pytest.raises(OptionsError, match=needle):
        load_options_file(cfg)


@pytest.mark.parametrize(
    ("cli", "needle"),
    [
        ({}, "--server: missing"),
        ({"server": "h", "eap": "eap-ttls"}, "needs --password"),
        ({"server": "h", "eap": "eap-foo", "password": "x"}, "not one of"),
        ({"server": "h", "eap": "eap-tls"}, "needs --cert and --key"),
        ({"server": "h", "eap": "eap-ttls", "password": "x"}, "--ca"),
        ({"server": "h", "eap": None}, "--psk or --cert"),
        ({"server": "h", "eap": "eap-md5", "password": "x", "psk": "k", "inner": "pap"}, "--inner"),
    ],
)
def test_cross_checks(cli: dict[str, object], needle: str) -> None:
    with pytest.raises(OptionsError, match=needle):
        merged({"eap": cli.pop("eap")} if "eap" in cli else {}, cli)


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--server", "127.0.0.1", "--eap", "eap-ttls", "--ca", str(tmp_path / "no")]) == 2
    assert "needs --password" in capsys.readouterr().err
    assert main(["--server", "127.0.0.1", "--psk", "k", "--profile", str(tmp_path / "x")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_password_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.nea_endpoint.cli import _options, build_parser

    ca = _ca(tmp_path)
    args = build_parser().parse_args(["--server", "192.0.2.1", "--ca", str(ca), "--id", "bob"])
    with pytest.raises(OptionsError, match="needs --password"):
        _options(args)
    monkeypatch.setenv("NEA_ENDPOINT_PASSWORD", "from-env")
    assert _options(args).password == "from-env"


def test_psk_alone_means_ike_authentication(tmp_path: Path) -> None:
    from gateway.nea_endpoint.cli import _options, build_parser

    args = build_parser().parse_args(["--server", "192.0.2.1", "--psk", "k"])
    opts = _options(args)
    assert opts.eap is None and opts.psk == "k"


def test_natt_port_is_where_the_connection_moves_behind_a_nat() -> None:
    from gateway.nea_endpoint.cli import _options, build_parser
    from gateway.nea_endpoint.client import build_peer_config

    args = build_parser().parse_args(
        ["--server", "192.0.2.1:10500", "--natt-port", "14500", "--psk", "k", "--no-posture"]
    )
    config, _posture = build_peer_config(_options(args), None)
    assert config.remote_natt_port == 14500
    default = build_parser().parse_args(["--server", "192.0.2.1", "--psk", "k", "--no-posture"])
    assert build_peer_config(_options(default), None)[0].remote_natt_port == 4500


def test_reassessment_options(tmp_path: Path) -> None:
    from gateway.nea_endpoint.cli import _options, build_parser

    ca = _ca(tmp_path)
    profile = tmp_path / "p.toml"
    profile.write_text("")
    base = ["--server", "192.0.2.1", "--password", "x", "--ca", str(ca)]
    opts = _options(
        build_parser().parse_args(
            [*base, "--profile", str(profile), "--watch-profile", "--reassess-after", "90"]
        )
    )
    assert opts.watch_profile and opts.reassess_after == 90.0
    default = _options(build_parser().parse_args(base))
    assert not default.watch_profile and default.reassess_after is None
    with pytest.raises(OptionsError, match="--watch-profile needs --profile"):
        _options(build_parser().parse_args([*base, "--watch-profile"]))
    with pytest.raises(OptionsError, match="--reassess-after"):
        _options(build_parser().parse_args([*base, "--reassess-after", "0"]))
    cfg = tmp_path / "ep.toml"
    cfg.write_text(
        f'server = "192.0.2.1"\npassword = "x"\nca = "{ca}"\nprofile = "{profile}"\n'
        "watch-profile = true\nreassess-after = 30\n"
    )
    values = load_options_file(cfg)
    assert values["watch_profile"] is True and values["reassess_after"] == 30.0
    cfg.write_text('server = "192.0.2.1"\nwatch-profile = "yes"\n')
    with pytest.raises(OptionsError, match="true or false"):
        load_options_file(cfg)
