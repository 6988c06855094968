"""The benchmark runner (``python -m bench``) with fake modules: no real benchmark runs."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Callable
from pathlib import Path

import pytest

import bench.__main__ as runner
from bench.common import Figure, Result, SkipBenchmark, Skipped, format_value


def fake(collect: Callable[[bool], list[Result]] | None) -> Callable[[], types.ModuleType]:
    module = types.ModuleType("bench_fake")
    if collect is not None:
        module.collect = collect  # type: ignore[attr-defined]
    return lambda: module


def test_ratio_and_direction() -> None:
    f = Figure("ike", "CPU per IKE_SA", "ms", 3.0, 1.5, "charon 5.9.8")
    assert f.ratio == 2.0
    assert f.ours_ahead is False
    up = Figure("esp", "throughput", "Mbit/s", 300.0, 100.0, "charon", better="higher")
    assert up.ours_ahead is True
    assert Figure("nea", "decode", "µs/op", 1.0).ratio is None
    assert Figure("x", "y", "ms", 1.0, 0.0, "ref").ratio is None
    with pytest.raises(ValueError):
        Figure("x", "y", "ms", 1.0, 2.0)  # a value without the reference's name
    with pytest.raises(ValueError):
        Figure("x", "y", "ms", 1.0, better="faster")  # type: ignore[arg-type]


def test_format_value() -> None:
    assert format_value(None) == "—"
    assert format_value(226034.4) == "226,034"
    assert format_value(12.34) == "12.3"
    assert format_value(12.0) == "12"
    assert format_value(1.234) == "1.23"
    assert format_value(0.04261) == "0.0426"


def test_quick_is_passed_and_figures_kept() -> None:
    seen: list[bool] = []

    def collect(quick: bool) -> list[Result]:
        seen.append(quick)
        return [Figure("radius", "EAP-TLS", "ms", 4.0, 2.0, "FreeRADIUS 3.2.1")]

    run = runner.run_module("radius", fake(collect), quick=True)
    assert seen == [True]
    assert run.status == "ok"
    assert [f.ratio for f in run.figures] == [2.0]


def test_skip_failure_and_exit_become_rows_with_reasons() -> None:
    def skip(quick: bool) -> list[Result]:
        raise SkipBenchmark("needs root for network namespaces")

    def boom(quick: bool) -> list[Result]:
        raise RuntimeError("charon did not start\nlong log tail")

    def exits(quick: bool) -> list[Result]:
        raise SystemExit("EAP-TLS: 3 of 4 authentications succeeded")

    runs = [
        runner.run_module("esp", fake(skip), quick=False),
        runner.run_module("ike", fake(boom), quick=False),
        runner.run_module("eap", fake(exits), quick=False),
        runner.run_module("nea", fake(None), quick=False),
    ]
    assert [r.status for r in runs] == ["skipped", "failed", "failed", "failed"]
    assert runs[0].reason == "needs root for network namespaces"
    assert runs[1].reason == "RuntimeError: charon did not start (...)"
    assert runs[2].reason == "EAP-TLS: 3 of 4 authentications succeeded"
    table = runner.rows(runs)
    assert [(row[0], row[1], row[2], row[7]) for row in table] == [
        ("esp", "(skipped)", "—", "needs root for network namespaces"),
        ("ike", "(failed)", "—", "RuntimeError: charon did not start (...)"),
        ("eap", "(failed)", "—", "EAP-TLS: 3 of 4 authentications succeeded"),
        ("nea", "(failed)", "—", "the module has no collect()"),
    ]


def test_wrong_result_type_is_a_failure() -> None:
    def collect(quick: bool) -> list[object]:
        return ["12 ms"]

    run = runner.run_module("x", fake(collect), quick=False)  # type: ignore[arg-type]
    assert run.status == "failed"
    assert "str" in run.reason


def test_table_rows_reference_dash_and_partial_skip() -> None:
    def collect(quick: bool) -> list[Result]:
        return [
            Figure(
                "esp",
                "throughput",
                "Mbit/s",
                100.0,
                400.0,
                "charon kernel-libipsec",
                better="higher",
            ),
            Figure("esp", "CPU per GB", "s", 30.0, note="reference failed: no SA"),
            Skipped("esp", "kernel XFRM", "the kernel has no ESP"),
        ]

    run = runner.run_module("esp", fake(collect), quick=False)
    rows = runner.rows([run])
    assert rows[0] == (
        "esp",
        "throughput",
        "100 Mbit/s",
        "charon kernel-libipsec",
        "400 Mbit/s",
        "0.25",
        "higher",
        "",
    )
    assert rows[1] == (
        "esp",
        "CPU per GB",
        "30 s",
        "—",
        "—",
        "—",
        "lower",
        "reference failed: no SA",
    )
    assert rows[2] == ("esp", "kernel XFRM", "skipped", "—", "—", "—", "", "the kernel has no ESP")
    annotated = runner.annotated_rows([run])
    assert [a for _, a, _ in annotated] == [False, None, None]
    assert [p for _, _, p in annotated] == [False, False, True]


def test_script_fallback_for_a_module_without_collect(tmp_path: Path) -> None:
    script = tmp_path / "bench_old.py"
    script.write_text("print('old table')\n")
    echoed: list[str] = []
    run = runner.run_module("old", fake(None), quick=True, script=script, echo=echoed.append)
    assert run.status == "no figures"
    assert echoed == ["old table"]
    assert "old table" in run.output
    failing = tmp_path / "bench_bad.py"
    failing.write_text("raise SystemExit(3)\n")
    run = runner.run_module("bad", fake(None), quick=True, script=failing, echo=echoed.append)
    assert run.status == "failed"
    assert "exit status 3" in run.reason


def test_discover_filters_by_word(tmp_path: Path) -> None:
    for name in ("bench_ike.py", "bench_radius.py", "bench_eap.py", "common.py"):
        (tmp_path / name).write_text("")
    assert runner.discover(tmp_path) == ["bench_eap", "bench_ike", "bench_radius"]
    assert runner.discover(tmp_path, ["ike", "rad"]) == ["bench_ike", "bench_radius"]


def test_main_writes_markdown_and_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bench_dir = tmp_path / "bench"
    bench_dir.mkdir()
    for name in ("bench_good.py", "bench_skip.py"):
        (bench_dir / name).write_text("")
    good = types.ModuleType("bench.bench_good")
    good.collect = lambda quick: [  # type: ignore[attr-defined]
        Figure("good", "CPU | per auth", "ms", 3.0, 1.0, "FreeRADIUS 3.2.1")
    ]
    skip = types.ModuleType("bench.bench_skip")

    def skipped(quick: bool) -> list[Result]:
        raise SkipBenchmark("eapol_test not installed (Debian package eapoltest)")

    skip.collect = skipped  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bench.bench_good", good)
    monkeypatch.setitem(sys.modules, "bench.bench_skip", skip)
    monkeypatch.setattr(runner, "HERE", bench_dir)
    machine = {
        "nproc": 2,
        "cpu_model": "Test CPU",
        "kernel": "6.1",
        "python": "3.11.2",
        "charon": "strongSwan 5.9.8",
        "freeradius": None,
        "root": True,
    }
    monkeypatch.setattr(runner, "machine_info", lambda: machine)
    out = tmp_path / "out"
    assert runner.main(["--quick", "--out", str(out)]) == 0
    md = (out / "results.md").read_text()
    assert "2 CPUs, Test CPU" in md
    assert "strongSwan 5.9.8" in md and "FreeRADIUS not found" in md
    assert (
        "| good | CPU \\| per auth | 3.00 ms | FreeRADIUS 3.2.1 | 1.00 ms | 3.00 | lower |  |" in md
    )
    assert "| skip | (skipped) | — | — | — | — |  | eapol_test not installed (Debian" in md
    doc = json.loads((out / "results.json").read_text())
    assert doc["quick"] is True
    assert doc["machine"] == machine
    assert [m["status"] for m in doc["modules"]] == ["ok", "skipped"]
    assert doc["modules"][0]["results"][0]["ratio"] == 3.0
    assert doc["modules"][1]["reason"].startswith("eapol_test not installed")


def test_main_fails_when_a_module_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bench_dir = tmp_path / "bench"
    bench_dir.mkdir()
    (bench_dir / "bench_broken.py").write_text("")
    broken = types.ModuleType("bench.bench_broken")

    def collect(quick: bool) -> list[Result]:
        raise ValueError("bad size")

    broken.collect = collect  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bench.bench_broken", broken)
    monkeypatch.setattr(runner, "HERE", bench_dir)
    assert runner.main(["--out", str(tmp_path / "out")]) == 1
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["modules"][0]["reason"] == "ValueError: bad size"
    assert runner.main(["nothing-matches", "--out", str(tmp_path / "out")]) == 2


def test_reference_versions_from_their_first_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bench.common as common

    lines = {
        "freeradius": "radiusd: FreeRADIUS Version 3.2.1, for host x86_64-pc-linux-gnu, built on",
    }
    monkeypatch.setattr(common, "_first_line", lambda cmd: lines.get(Path(cmd[0]).name))
    assert common.freeradius_version() == "FreeRADIUS 3.2.1"
    lines["freeradius"] = "something else"
    assert common.freeradius_version() == "FreeRADIUS"
    del lines["freeradius"]
    assert common.freeradius_version() is None
    charon = tmp_path / "charon"
    monkeypatch.setattr(common, "CHARON_PATHS", (str(tmp_path / "absent"), str(charon)))
    assert common.charon_version() is None
    charon.write_text("")
    lines["charon"] = "Linux strongSwan 5.9.8"
    assert common.charon_version() == "strongSwan 5.9.8"


def test_interrupt_keeps_what_was_measured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bench_dir = tmp_path / "bench"
    bench_dir.mkdir()
    modules = {}
    for name in ("bench_a", "bench_b", "bench_c"):
        (bench_dir / f"{name}.py").write_text("")
        modules[name] = types.ModuleType(f"bench.{name}")
        monkeypatch.setitem(sys.modules, f"bench.{name}", modules[name])
    modules["bench_a"].collect = lambda quick: [Figure("a", "x", "ms", 1.0)]  # type: ignore[attr-defined]

    def interrupted(quick: bool) -> list[Result]:
        raise KeyboardInterrupt

    modules["bench_b"].collect = interrupted  # type: ignore[attr-defined]
    modules["bench_c"].collect = lambda quick: pytest.fail("ran after Ctrl-C")  # type: ignore[attr-defined]
    monkeypatch.setattr(runner, "HERE", bench_dir)
    assert runner.main(["--out", str(tmp_path / "out")]) == 130
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [(m["name"], m["status"]) for m in doc["modules"]] == [
        ("a", "ok"),
        ("b", "failed"),
        ("c", "skipped"),
    ]
    assert doc["modules"][2]["reason"] == "not run: interrupted (Ctrl-C)"
