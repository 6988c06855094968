"""nea-pool run in-process: output content (numbers, not just exit codes), --json, errors."""

from __future__ import annotations

import json
from ipaddress import ip_address as ip
from pathlib import Path

import pytest

from gateway.pools import SqlPools
from gateway.pools.cli import main


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def run(capsys: pytest.CaptureFixture[str], db: str, *args: str) -> tuple[int, str, str]:
    rc = main([*args, "--db", db])
    out, err = capsys.readouterr()
    return rc, out, err


def run_json(capsys: pytest.CaptureFixture[str], db: str, *args: str) -> object:
    rc, out, err = run(capsys, db, *args, "--json")
    assert rc == 0, err
    return json.loads(out)


def test_add_and_status(capsys: pytest.CaptureFixture[str], db: str) -> None:
    rc, out, _ = run(
        capsys,
        db,
        "--add",
        "corp",
        "--start",
        "10.3.0.1",
        "--end",
        "10.3.255.254",
        "--timeout",
        "24",
    )
    assert rc == 0
    assert "added pool 'corp': 10.3.0.1-10.3.255.254, 65534 addresses, timeout 24h" in out
    run(
        capsys,
        db,
        "--add",
        "guests",
        "--start",
        "10.4.0.1",
        "--end",
        "10.4.0.100",
        "--timeout",
        "90m",
    )
    store = SqlPools(db, crash_recovery=False)
    for i in range(25):
        store.acquire("guests", f"user{i}")
    for i in range(5):
        a = store.acquire("corp", f"emp{i}")
        assert a is not None
        if i < 2:
            store.release("corp", a, f"emp{i}")
    store.close()
    rc, out, _ = run(capsys, db, "--status")
    assert rc == 0
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert lines["corp"][1:] == ["10.3.0.1-10.3.255.254", "24h", "65534", "3", "(0%)", "5", "(0%)"]
    assert lines["guests"][1:] == [
        "10.4.0.1-10.4.0.100",
        "90m",
        "100",
        "25",
        "(25%)",
        "25",
        "(25%)",
    ]
    data = run_json(capsys, db, "--status")
    assert isinstance(data, dict)
    pools = {p["name"]: p for p in data["pools"]}
    assert pools["guests"] == {
        "name": "guests",
        "range": "10.4.0.1-10.4.0.100",
        "timeout": 5400,
        "size": 100,
        "online": 25,
        "leased": 25,
        "online_percent": 25.0,
        "leased_percent": 25.0,
    }
    assert (pools["corp"]["online"], pools["corp"]["leased"]) == (3, 5)


def test_leases_listing_and_filters(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path
) -> None:
    run(capsys, db, "--add", "corp", "--start", "10.3.0.1", "--end", "10.3.0.50", "--timeout", "1")
    store = SqlPools(db, crash_recovery=False)
    a = store.acquire("corp", "alice@example.org")
    b = store.acquire("corp", "bob@example.org")
    assert a is not None and b is not None
    store.release("corp", a, "alice@example.org")
    store.close()
    rc, out, _ = run(capsys, db, "--leases", "--utc")
    assert rc == 0
    assert "2 leases" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("corp")]
    assert [(r[1], r[2], r[-1]) for r in rows] == [
        ("10.3.0.2", "online", "bob@example.org"),
        ("10.3.0.1", "valid", "alice@example.org"),
    ]
    data = run_json(capsys, db, "--leases", "--filter", "status=valid")
    assert isinstance(data, dict)
    [lease] = data["leases"]
    assert (lease["address"], lease["status"], lease["identity"]) == (
        "10.3.0.1",
        "valid",
        "alice@example.org",
    )
    assert lease["released"] >= lease["acquired"] > 0
    data = run_json(capsys, db, "--leases", "--filter", "id=bob@example.org")
    assert isinstance(data, dict)
    assert [x["address"] for x in data["leases"]] == ["10.3.0.2"]
    rc, out, err = run(capsys, db, "--leases", "--filter", "pool=corp,status=expired")
    assert rc == 0 and "no matching leases found." in out
    rc, _, err = run(capsys, db, "--leases", "--filter", "status=asleep")
    assert rc == 2 and "online, valid, expired or static" in err
    rc, out, _ = run(capsys, db, "--purge", "corp")
    assert rc == 0 and "purged 1 leases in pool 'corp'" in out
    # the CLI never releases the gateway's online leases (no crash recovery)
    data = run_json(capsys, db, "--leases")
    assert isinstance(data, dict)
    assert [x["status"] for x in data["leases"]] == ["online"]


def test_static_addresses_file(capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path) -> None:
    f = tmp_path / "static.txt"
    f.write_text("10.9.0.1=carol@example.org\n10.9.0.2\n# comment\n\n10.9.0.3=dave@example.org\n")
    rc, out, _ = run(capsys, db, "--add", "static", "--addresses", str(f))
    assert rc == 0 and "added pool 'static': 3 addresses, timeout static" in out
    store = SqlPools(db, crash_recovery=False)
    assert store.acquire("static", "dave@example.org") == ip("10.9.0.3")
    store.close()
    data = run_json(capsys, db, "--status")
    assert isinstance(data, dict)
    [pool] = data["pools"]
    assert (pool["range"], pool["size"], pool["online"], pool["leased"]) == (
        "(address list)",
        3,
        1,
        2,
    )
    rc, _, err = run(capsys, db, "--resize", "static", "--end", "10.9.0.9")
    assert rc == 1 and "is an address list" in err
    f.write_text("10.9.1.1\n10.9.1.x\n")
    rc, _, err = run(capsys, db, "--add", "bad", "--addresses", str(f))
    assert rc == 2 and "line 2: invalid address '10.9.1.x'" in err


def test_resize_replace_delete(capsys: pytest.CaptureFixture[str], db: str) -> None:
    run(capsys, db, "--add", "p", "--start", "10.3.0.1", "--end", "10.3.0.10")
    rc, out, _ = run(capsys, db, "--resize", "p", "--end", "10.3.0.110")
    assert rc == 0 and "resized pool 'p' to end at 10.3.0.110: 100 more addresses" in out
    rc, _, err = run(capsys, db, "--resize", "p", "--end", "10.3.0.5")
    assert rc == 1 and "shrinking" in err
    rc, out, _ = run(capsys, db, "--replace", "p", "--start", "fd00::1", "--end", "fd00::ff")
    assert rc == 0 and "replaced pool 'p': fd00::1-fd00::ff, 255 addresses" in out
    rc, out, _ = run(capsys, db, "--del", "p")
    assert rc == 0 and "deleted pool 'p'" in out
    rc, out, _ = run(capsys, db, "--status")
    assert "no pools found." in out


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--add", "q", "--start", "10.3.0.5", "--end", "10.3.0.20"], 1, "overlaps pool 'p'"),
        (["--add", "p", "--start", "10.5.0.1", "--end", "10.5.0.2"], 1, "use --replace p"),
        (
            ["--add", "q", "--start", "10.5.0.300", "--end", "10.5.0.2"],
            2,
            "invalid --start address '10.5.0.300'",
        ),
        (["--add", "q", "--start", "10.5.0.9", "--end", "10.5.0.2"], 2, "reversed"),
        (["--add", "q", "--start", "10.5.0.1"], 2, "--add q needs --start and --end"),
        (["--add", "q", "--start", "10.5.0.1", "--end", "fd00::1"], 2, "mixes IPv4 and IPv6"),
        (
            ["--add", "q", "--start", "10.5.0.1", "--end", "10.5.0.2", "--timeout", "soon"],
            2,
            "invalid timeout 'soon'",
        ),
        (["--del", "nope"], 1, "pool 'nope' not found"),
        (["--purge", "nope"], 1, "pool 'nope' not found"),
        (["--resize", "nope", "--end", "10.0.0.1"], 1, "pool 'nope' not found"),
        (["--resize", "p"], 2, "needs --end"),
        (["--status", "--leases"], 2, "not allowed with argument"),
        ([], 2, "one of the arguments"),
        (["--addattr", "dns"], 2, "--addattr dns needs a value"),
        (["--addattr", "dns", "--subnet", "10.0.0.0/8"], 2, "give it with --addr"),
        (
            ["--addattr", "banner", "--string", "x", "--identity", "carol"],
            2,
            "--identity requires --pool",
        ),
        (["--addattr", "colour", "--string", "red"], 2, "unknown attribute type 'colour'"),
        (["--delattr", "dns", "--pool", "p"], 1, "no dns attribute matched in pool 'p'"),
        (["--leases", "--filter", "addr=nowhere"], 2, "invalid addr in --filter 'nowhere'"),
        (["--batch", "/nonexistent/batch.txt"], 2, "cannot read --batch file"),
    ],
)
def test_errors_name_what_to_fix(
    capsys: pytest.CaptureFixture[str], db: str, args: list[str], code: int, words: str
) -> None:
    assert run(capsys, db, "--add", "p", "--start", "10.3.0.1", "--end", "10.3.0.10")[0] == 0
    rc, out, err = run(capsys, db, *args)
    assert (rc, words in err) == (code, True), err
    assert err.startswith("nea-pool: ")
    assert out == ""


def test_attributes(capsys: pytest.CaptureFixture[str], db: str) -> None:
    assert run(capsys, db, "--addattr", "dns", "--addr", "10.3.0.53")[0] == 0
    assert run(capsys, db, "--addattr", "dns", "--addr", "fd00::53")[0] == 0
    rc, out, _ = run(
        capsys, db, "--addattr", "split-include", "--subnet", "10.0.0.0/8", "--pool", "corp"
    )
    assert (
        rc == 0 and "added UNITY_SPLIT_INCLUDE (28676) attribute 10.0.0.0/8 for pool 'corp'" in out
    )
    rc, out, _ = run(
        capsys,
        db,
        "--addattr",
        "banner",
        "--string",
        "[red]hi carol",
        "--pool",
        "corp",
        "--identity",
        "carol",
    )
    assert rc == 0
    assert run(capsys, db, "--add", "nbns", "--server", "10.3.0.137")[0] == 0  # ipsec pool habit
    rc, out, _ = run(capsys, db, "--statusattr")
    rows = [line.split(None, 2) for line in out.splitlines()[1:]]
    assert [r[:2] for r in rows] == [
        ["INTERNAL_IP4_DNS", "(3)"],
        ["INTERNAL_IP6_DNS", "(10)"],
        ["INTERNAL_IP4_NBNS", "(4)"],
        ["UNITY_SPLIT_INCLUDE", "(28676)"],
        ["UNITY_BANNER", "(28672)"],
    ]
    assert "[red]hi carol  corp  carol" in out  # shown literally, not as markup
    data = run_json(capsys, db, "--statusattr", "--hexout")
    assert isinstance(data, dict)
    assert data["attributes"][3] == {
        "type": 28676,
        "name": "UNITY_SPLIT_INCLUDE",
        "value": "0x0a000000ff000000",
        "hex": "0a000000ff000000",
        "pool": "corp",
        "identity": None,
    }
    rc, out, _ = run(capsys, db, "--status")
    assert "dns servers: 10.3.0.53 fd00::53" in out and "nbns servers: 10.3.0.137" in out
    rc, out, _ = run(capsys, db, "--delattr", "dns")
    assert rc == 0 and "deleted 2 dns attribute(s)" in out
    rc, out, _ = run(
        capsys,
        db,
        "--delattr",
        "banner",
        "--pool",
        "corp",
        "--identity",
        "carol",
        "--string",
        "[red]hi carol",
    )
    assert rc == 0 and "deleted 1 banner attribute(s)" in out
    store = SqlPools(db, crash_recovery=False)
    assert store.attributes("corp", "carol") == [(28676, bytes([10, 0, 0, 0, 255, 0, 0, 0]))]
    store.close()


def test_showattr_needs_no_database(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc = main(["--showattr", "--json", "--db", f"sqlite:///{tmp_path / 'never' / 'x.db'}"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0
    by_kw = {k["keyword"]: k for k in data["keywords"]}
    assert (by_kw["dns"]["ipv4_type"], by_kw["dns"]["ipv6_type"]) == (3, 10)
    assert (by_kw["split-include"]["ipv4_type"], by_kw["split-include"]["value"]) == (
        28676,
        "subnet",
    )
    assert not (tmp_path / "never").exists()


def test_batch_is_all_or_nothing(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path
) -> None:
    batch = tmp_path / "batch.txt"
    batch.write_text(
        "# pools for the lab\n"
        "--add a --start 10.3.0.1 --end 10.3.0.9\n"
        "--addattr banner --string 'two words' --pool a\n"
        "--add b --start 10.3.0.5 --end 10.3.0.20\n"
    )
    rc, out, err = run(capsys, db, "--batch", str(batch))
    assert rc == 1
    assert "batch line 4: range 10.3.0.5-10.3.0.20 of pool 'b' overlaps pool 'a'" in err
    assert "nothing was changed" in err and out == ""
    data = run_json(capsys, db, "--status")
    assert isinstance(data, dict) and data["pools"] == []
    batch.write_text(
        batch.read_text().replace("10.3.0.5", "10.3.1.5").replace("10.3.0.20", "10.3.1.20")
    )
    data = run_json(capsys, db, "--batch", str(batch))
    assert isinstance(data, list) and [d.get("added") for d in data] == ["a", None, "b"]
    assert data[1]["added_attribute"]["value"] == "two words"
    assert [p["size"] for p in run_json(capsys, db, "--status")["pools"]] == [9, 16]  # type: ignore[index]
    batch.write_text("--status\n--batch other.txt\n")
    rc, _, err = run(capsys, db, "--batch", str(batch))
    assert rc == 2 and "batch line 2: --batch commands can not be nested" in err
    batch.write_text("--status\n--status --frobnicate\n")
    rc, _, err = run(capsys, db, "--batch", str(batch))
    assert rc == 2 and "batch line 2: unrecognized arguments: --frobnicate" in err


def test_default_database_under_var(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NEA_POOL_DB", raising=False)
    assert main(["--add", "p", "--start", "10.3.0.1", "--end", "10.3.0.2"]) == 0
    assert (tmp_path / "var" / "nea-pool.db").is_file()
    monkeypatch.setenv("NEA_POOL_DB", f"sqlite:///{tmp_path / 'env.db'}")
    assert main(["--status"]) == 0
    assert "no pools found." in capsys.readouterr().out
    assert (tmp_path / "env.db").is_file()


def test_bad_database_url_is_a_usage_error_without_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--status", "--db", "nonsense://admin:hunter2@db.example/pools"]) == 2
    err = capsys.readouterr().err
    assert "invalid database URL" in err and "postgresql://" in err
    assert "hunter2" not in err


def test_unreachable_database_is_an_operational_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = f"postgresql://nobody@/pools?host={tmp_path}&port=1"
    assert main(["--status", "--db", url]) == 1
    assert "nea-pool: database error:" in capsys.readouterr().err
