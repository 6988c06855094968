"""Run the benchmarks in bench/ (files named bench_*.py) and write one table of all figures.

``python -m bench`` (or ``make bench``) runs every module's ``collect()`` (see
:mod:`bench.common`), one after another, then prints one table: each figure of ours beside
the same figure for strongSwan charon / FreeRADIUS measured in the same run on the same
machine, and the ratio ours / reference. It writes the table to ``var/bench/results.md`` and
``var/bench/results.json`` with the date and the machine (CPUs, CPU model, Python, charon and
FreeRADIUS versions).

``python -m bench pools radius`` runs only the modules whose name contains one of the words;
``--quick`` uses smaller sizes (the whole run takes a few minutes). A module that is skipped
(no root, a tool not installed) or fails is a row of the table with the reason.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    Figure,
    Result,
    SkipBenchmark,
    Skipped,
    charon_version,
    format_value,
    freeradius_version,
)

__all__ = [
    "ModuleRun",
    "Status",
    "discover",
    "machine_info",
    "main",
    "render_markdown",
    "render_table",
    "run_module",
]

HERE = Path(__file__).resolve().parent


Status = Literal["ok", "skipped", "failed", "no figures"]
"""``no figures``: a module without ``collect`` that ran as a script."""


@dataclass
class ModuleRun:
    """What one module gave: its results, or why it gave none."""

    name: str
    status: Status
    seconds: float
    results: list[Result] = field(default_factory=list)
    reason: str = ""
    output: str = ""
    """A module without ``collect`` ran as a script: what it printed."""

    @property
    def figures(self) -> list[Figure]:
        return [r for r in self.results if isinstance(r, Figure)]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "seconds": round(self.seconds, 2),
            "reason": self.reason,
            "results": [r.to_json() for r in self.results],
        }


def short_name(stem: str) -> str:
    return stem.removeprefix("bench_")


def discover(directory: Path = HERE, words: Sequence[str] = ()) -> list[str]:
    """The module stems (``bench_esp``...) in ``directory``, those matching a word if any."""
    stems = sorted(p.stem for p in directory.glob("bench_*.py"))
    if words:
        stems = [s for s in stems if any(w in s for w in words)]
    return stems


def _reason(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        text = str(exc.code) if exc.code is not None else "exited"
    else:
        text = f"{type(exc).__name__}: {exc}"
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    # the first line says what failed; long tool output after it stays in the log
    return lines[0] if len(lines) == 1 else f"{lines[0]} (...)"


def run_script(path: Path, echo: Callable[[str], None]) -> tuple[int, str]:
    """Run a module without ``collect`` as a script (its defaults); echo and keep its output."""
    proc = subprocess.Popen(
        [sys.executable, str(path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        echo(line.rstrip("\n"))
        lines.append(line)
    return proc.wait(), "".join(lines)


def run_module(
    name: str,
    load: Callable[[], ModuleType],
    quick: bool,
    script: Path | None = None,
    echo: Callable[[str], None] = print,
) -> ModuleRun:
    """Run one module's ``collect(quick)``; never raises for the module's own failures."""
    start = time.perf_counter()
    try:
        module = load()
        collect = getattr(module, "collect", None)
        if collect is None:
            if script is None:
                return ModuleRun(name, "failed", 0.0, reason="the module has no collect()")
            code, output = run_script(script, echo)
            status: Status = "no figures" if code == 0 else "failed"
            reason = "no collect(): ran as a script with its defaults (output in results.md)"
            if code != 0:
                reason = f"ran as a script (no collect()), exit status {code}"
            return ModuleRun(
                name, status, time.perf_counter() - start, reason=reason, output=output
            )
        results = list(collect(quick))
    except SkipBenchmark as exc:
        return ModuleRun(name, "skipped", time.perf_counter() - start, reason=str(exc))
    except KeyboardInterrupt:
        raise
    except (Exception, SystemExit) as exc:  # a broken benchmark must not hide the others
        traceback.print_exc()
        return ModuleRun(name, "failed", time.perf_counter() - start, reason=_reason(exc))
    bad = [r for r in results if not isinstance(r, Figure | Skipped)]
    if bad:
        return ModuleRun(
            name,
            "failed",
            time.perf_counter() - start,
            reason=f"collect() returned {type(bad[0]).__name__}, not Figure/Skipped",
        )
    return ModuleRun(name, "ok", time.perf_counter() - start, results)


# -- the machine ------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "charon": charon_version(),
        "freeradius": freeradius_version(),
        "root": os.geteuid() == 0,
    }


# -- the table ------------------------------------------------------------------------------

COLUMNS = (
    "benchmark",
    "figure",
    "ours",
    "reference",
    "ref value",
    "ours / ref",
    "better",
    "note",
)
NUMERIC = ("ours", "ref value", "ours / ref")


def _value(value: float | None, unit: str) -> str:
    text = format_value(value)
    return text if value is None or not unit else f"{text} {unit}"


def annotated_rows(runs: Sequence[ModuleRun]) -> list[tuple[tuple[str, ...], bool | None, bool]]:
    """(cells, ours ahead of the reference?, a skip/failure row?) per row of the table."""
    out: list[tuple[tuple[str, ...], bool | None, bool]] = []
    for run in runs:
        if run.status != "ok":
            cells = (run.name, f"({run.status})", "—", "—", "—", "—", "", run.reason)
            out.append((cells, None, True))
            continue
        if not run.results:
            cells = (run.name, "(no figures)", "—", "—", "—", "—", "", "collect() returned none")
            out.append((cells, None, True))
        for r in run.results:
            if isinstance(r, Skipped):
                out.append(
                    ((r.benchmark, r.name, "skipped", "—", "—", "—", "", r.reason), None, True)
                )
                continue
            ratio = r.ratio
            cells = (
                r.benchmark,
                r.name,
                _value(r.ours, r.unit),
                r.reference_name or "—",
                _value(r.reference, r.unit) if r.reference is not None else "—",
                f"{ratio:.2f}" if ratio is not None else "—",
                r.better,
                r.note,
            )
            out.append((cells, r.ours_ahead, False))
    return out


def rows(runs: Sequence[ModuleRun]) -> list[tuple[str, ...]]:
    """The table's rows (same columns as :data:`COLUMNS`), ``—`` where nothing compares."""
    return [cells for cells, _, _ in annotated_rows(runs)]


def render_table(runs: Sequence[ModuleRun], title: str) -> Any:
    """The rich Table (benchmarks separated by a rule; ratios green when ours is ahead)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title)
    for col in COLUMNS:
        table.add_column(
            col,
            justify="right" if col in NUMERIC else "left",
            no_wrap=col in NUMERIC or col == "benchmark",
        )
    annotated = annotated_rows(runs)
    for i, (row, ahead, problem) in enumerate(annotated):
        last = i + 1 == len(annotated) or annotated[i + 1][0][0] != row[0]
        cells = [escape(c) for c in row]
        if ahead is True:
            cells[5] = f"[green]{cells[5]}[/]"
        elif ahead is False:
            cells[5] = f"[red]{cells[5]}[/]"
        if problem:
            cells = [f"[yellow]{c}[/]" if c else c for c in cells]
        table.add_row(*cells, end_section=last)
    return table


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(
    runs: Sequence[ModuleRun], machine: dict[str, Any], date: str, quick: bool
) -> str:
    lines = [
        f"# nea-gateway benchmarks, {date}{' (--quick)' if quick else ''}",
        "",
        f"Machine: {machine.get('nproc')} CPUs, {machine.get('cpu_model') or 'CPU unknown'}, "
        f"Linux {machine.get('kernel')}, Python {machine.get('python')}; "
        f"reference: {machine.get('charon') or 'charon not found'}, "
        f"{machine.get('freeradius') or 'FreeRADIUS not found'}.",
        "",
        "ours / ref is our figure divided by the reference's same figure, measured in the same "
        "run on the same machine; `better` says which direction is good for the figure. "
        "— : no reference measurement for this figure.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|"
        + "|".join("---:" if c in ("ours", "ref value", "ours / ref") else "---" for c in COLUMNS)
        + "|",
    ]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows(runs)]
    lines += [
        "",
        "Module run times: "
        + ", ".join(f"{run.name} {run.seconds:.1f} s ({run.status})" for run in runs)
        + ".",
    ]
    for run in runs:
        if run.output:
            lines += ["", f"## {run.name} (its own output)", "", "```", run.output.rstrip(), "```"]
    return "\n".join(lines) + "\n"


def write_results(
    runs: Sequence[ModuleRun], machine: dict[str, Any], date: str, quick: bool, out: Path
) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "results.md", out / "results.json"
    md.write_text(render_markdown(runs, machine, date, quick))
    document = {
        "date": date,
        "quick": quick,
        "machine": machine,
        "modules": [run.to_json() for run in runs],
    }
    js.write_text(json.dumps(document, indent=2) + "\n")
    return md, js


# -- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("words", nargs="*", help="run only modules whose name contains a word")
    parser.add_argument("--quick", action="store_true", help="smaller sizes: a few minutes")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "var" / "bench",
        help="where results.md and results.json go (default var/bench)",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    stems = discover(HERE, args.words)
    if not stems:
        print("no benchmark matched", file=sys.stderr)
        return 2

    from rich.console import Console

    console = Console(width=max(180, Console().width))
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = machine_info()
    console.print(
        f"benchmarks {' '.join(short_name(s) for s in stems)}"
        f"{' (--quick)' if args.quick else ''} on {machine['nproc']} CPUs, {machine['cpu_model']}"
    )
    runs: list[ModuleRun] = []
    interrupted = False
    for i, stem in enumerate(stems, 1):
        name = short_name(stem)
        if interrupted:
            runs.append(ModuleRun(name, "skipped", 0.0, reason="not run: interrupted (Ctrl-C)"))
            continue
        console.rule(f"{name} ({i}/{len(stems)})")
        started = time.perf_counter()
        try:
            run = run_module(
                name,
                lambda stem=stem: importlib.import_module(f"bench.{stem}"),  # type: ignore[misc]
                args.quick,
                script=HERE / f"{stem}.py",
            )
        except KeyboardInterrupt:  # still write what the others measured
            interrupted = True
            run = ModuleRun(
                name, "failed", time.perf_counter() - started, reason="interrupted (Ctrl-C)"
            )
        runs.append(run)
        what = f"{len(run.figures)} figures" if run.status == "ok" else run.reason
        console.print(f"{name}: {run.status}, {what} ({run.seconds:.1f} s)", markup=False)
    title = f"nea-gateway benchmarks ({date}{', --quick' if args.quick else ''})"
    console.print(render_table(runs, title))
    md, js = write_results(runs, machine, date, args.quick, args.out)
    console.print(f"written: {md}, {js}")
    if interrupted:
        return 130
    return 1 if any(run.status == "failed" for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
