"""The layering of docs/architecture.md, checked on every module's imports.

Protocol engines (``ike``, ``nea``, ``radius``, ``gateway.dataplane.esp``) are sans-I/O: they
import no twisted, socket, sqlalchemy or pyroute2, and nothing from ``gateway``.  ``ike`` never
imports ``nea``.  Between the engine packages the arrows follow the "Who owns what" table
(``ARROWS``): ``nea`` reaches into ``ike`` only for the EAP method contract
(``ike.eap.method``), ``ike.eap`` knows no tunnel method, and so on; each package may use the
standard library and only the third-party distributions its row names (the command-line part
of ``nea/decode.py`` prints with rich).

Imports are read from the source (AST), so an import inside a function or under
``TYPE_CHECKING`` counts too, as do ``importlib.import_module("...")`` / ``__import__("...")``
with a literal name.  A last test imports every engine module in a fresh interpreter and
looks at ``sys.modules``, which also catches what a module pulls in indirectly.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

ENGINE_PACKAGES = ("ike", "nea", "radius")
ENGINE_FILES = ("gateway/dataplane/esp.py",)
# Anything whose top-level name is one of these is I/O (or the adapter layer).
FORBIDDEN_IN_ENGINES = frozenset({"twisted", "socket", "sqlalchemy", "pyroute2", "gateway"})
# docs/architecture.md, "Who owns what": owner -> (the other owners it may import, the
# third-party distributions it may import besides the standard library).  A module belongs to
# the longest owner its name lies within; ``ike`` is the IKEv2 engine (ike/*.py outside the
# EAP packages).
CRYPTO = ("cryptography",)
TLS = ("cryptography", "OpenSSL")
ARROWS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "nea": ((), ()),
    "nea.pa": ((), ()),
    "nea.pb_tnc": ((), ()),
    "nea.pt_eap": (("nea.pb_tnc", "ike.eap"), ()),
    "nea.pt_tls": (("nea.pb_tnc", "ike.eap"), ()),
    "nea.policy": (("nea.pb_tnc",), ()),
    "nea.imv": (("nea.pa", "nea.pb_tnc", "nea.policy"), ()),
    "nea.imc": (("nea.pa", "nea.pb_tnc", "nea.imv"), ()),
    # The engine behind nea-decode reads every NEA layer; its CLI prints with rich.
    "nea.decode": (("nea.pa", "nea.pb_tnc", "nea.pt_eap", "nea.pt_tls"), ("rich",)),
    "ike": (("ike.eap",), CRYPTO),
    "ike.eap": ((), CRYPTO),
    "ike.eap_tls": (("ike.eap",), TLS),
    "ike.eap_ttls": (("ike.eap", "ike.eap_tls"), TLS),
    "ike.eap_peap": (("ike.eap", "ike.eap_tls"), TLS),
    "ike.eap_fast": (("ike.eap", "ike.eap_tls"), TLS),
    "radius": ((), CRYPTO),
    "gateway.dataplane.esp": (("ike",), CRYPTO),
}
# Narrower than the owner: nea reaches into ike only for the EAP method contract, and imc
# into imv only for the subtype registry.
ONLY: dict[tuple[str, str], str] = {
    ("nea.pt_eap", "ike.eap"): "ike.eap.method",
    ("nea.pt_tls", "ike.eap"): "ike.eap.method",
    ("nea.imc", "nea.imv"): "nea.imv.subtypes",
}
FIRST_PARTY = frozenset({"ike", "nea", "radius", "gateway"})


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _engine_files() -> list[Path]:
    files = [p for pkg in ENGINE_PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]
    files += [ROOT / f for f in ENGINE_FILES]
    return files


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) for each import in ``path``, at any depth."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

    for child in ast.walk(tree):
        if isinstance(child, ast.Import):
            for alias in child.names:
                yield child.lineno, alias.name
        elif isinstance(child, ast.ImportFrom):
            if child.level:
                base = package.split(".")
                base = base[: len(base) - (child.level - 1)]
                target = ".".join(base + ([child.module] if child.module else []))
            else:
                target = child.module or ""
            yield child.lineno, target
            # ``from pkg import sub`` may name a submodule: count pkg.sub as well.
            for alias in child.names:
                yield child.lineno, f"{target}.{alias.name}"
        elif (
            isinstance(child, ast.Call)
            and child.args
            and isinstance(child.args[0], ast.Constant)
            and isinstance(child.args[0].value, str)
            and (
                (isinstance(child.func, ast.Name) and child.func.id == "__import__")
                or (isinstance(child.func, ast.Attribute) and child.func.attr == "import_module")
            )
        ):
            yield child.lineno, child.args[0].value


def _top(name: str) -> str:
    return name.partition(".")[0]


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_engine_files_found() -> None:
    files = _engine_files()
    # A wrong ROOT would make every other test here pass vacuously.
    assert len(files) > 50
    assert all(f.is_file() for f in files)


@pytest.mark.parametrize("path", _engine_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_engine_imports_no_io(path: Path) -> None:
    module = _module_name(path)
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for line, name in _imports(path)
        if _top(name) in FORBIDDEN_IN_ENGINES and not _within(name, module)
    ]
    assert not bad, "protocol engines must stay sans-I/O:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    "path", sorted((ROOT / "ike").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_ike_never_imports_nea(path: Path) -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for line, name in _imports(path)
        if _top(name) == "nea"
    ]
    assert not bad, "ike/ must not import nea/ (inner methods are injected):\n" + "\n".join(bad)


def _owner(name: str) -> str | None:
    owners = [o for o in ARROWS if _within(name, o)]
    return max(owners, key=len) if owners else None


@pytest.mark.parametrize("path", _engine_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_engine_arrows(path: Path) -> None:
    module = _module_name(path)
    owner = _owner(module)
    assert owner is not None, f"{module} has no row in ARROWS"
    may_import, third_party = ARROWS[owner]
    bad = []
    for line, name in _imports(path):
        top = _top(name)
        if top in FIRST_PARTY:
            if name in FIRST_PARTY:
                continue  # a bare package root; ``from pkg import sub`` also yields pkg.sub
            target = _owner(name)
            ok = target == owner or (
                target in may_import and _within(name, ONLY.get((owner, target), target))
            )
        else:
            ok = top in sys.stdlib_module_names or top in third_party
        if not ok:
            bad.append(f"{path.relative_to(ROOT)}:{line}: {name}")
    assert not bad, f"{owner} may import {may_import} and {third_party}:\n" + "\n".join(bad)


def test_every_engine_subpackage_has_a_row() -> None:
    """A new package under ike/ or nea/ (or a new module directly in nea/) gets its own row
    instead of silently taking its parent's."""
    rows = {
        f"{root}.{p.name}"
        for root in ("ike", "nea")
        for p in (ROOT / root).iterdir()
        if (p / "__init__.py").is_file()
    }
    rows |= {f"nea.{p.stem}" for p in (ROOT / "nea").glob("*.py") if p.stem != "__init__"}
    assert rows <= set(ARROWS), sorted(rows - set(ARROWS))


def test_engines_import_no_io_at_run_time() -> None:
    """Import every engine module in a clean interpreter; no I/O stack may come along."""
    code = f"""
import importlib, pkgutil, sys
for pkg in {ENGINE_PACKAGES!r}:
    root = importlib.import_module(pkg)
    for info in pkgutil.walk_packages(root.__path__, pkg + "."):
        importlib.import_module(info.name)
import gateway.dataplane.esp
allowed = {{"gateway", "gateway.dataplane", "gateway.dataplane.esp"}}
# socket is left out here: the standard library itself imports it (e.g. via ssl).
bad = sorted(
    m for m in sys.modules
    if m.partition(".")[0] in {{"twisted", "sqlalchemy", "pyroute2", "gateway"}}
    and m not in allowed
)
print("\\n".join(bad))
"""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", "engines pulled in I/O modules:\n" + proc.stdout
