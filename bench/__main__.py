"""Run every benchmark module in bench/ (files named bench_*.py), one after another.

`python -m bench` (or `make bench`) runs them all; `python -m bench pools pb_tnc` runs only
those whose name contains one of the words.
"""

from __future__ import annotations

import runpy
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    here = Path(__file__).resolve().parent
    modules = sorted(p for p in here.glob("bench_*.py"))
    if words:
        modules = [p for p in modules if any(w in p.stem for w in words)]
    if not modules:
        print("no benchmark matched", file=sys.stderr)
        return 2
    failed = 0
    for path in modules:
        print(f"== {path.stem} ==", flush=True)
        start = time.perf_counter()
        try:
            runpy.run_path(str(path), run_name="__main__")
        except SystemExit as exc:
            if exc.code not in (None, 0):
                failed += 1
                print(f"{path.stem} exited with {exc.code}", file=sys.stderr)
        except Exception as exc:  # a broken benchmark must not hide the others
            failed += 1
            print(f"{path.stem} failed: {exc!r}", file=sys.stderr)
        print(f"({time.perf_counter() - start:.1f} s)\n", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
