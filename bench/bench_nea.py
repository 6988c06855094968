"""Decode and encode speed of the NEA layers.

Cases:

* a PB-TNC batch with one PB-PA message whose PA-TNC message carries an Installed Packages
  attribute (RFC 5792 4.2.7) of 5,000 packages (about 100 KB: above strongSwan's default
  batch limit, the size a full Debian inventory reaches);
* a PB-TNC batch of 50 small PA messages (one ITA Command / Product Information attribute
  each), the shape of a first CDATA with many collectors;
* the same two batches inside a PT-TLS message (framing + stream parser) and a PT-EAP packet
  (the 5,000-package batch does not fit one EAP packet: over PT-EAP it needs TCG PA-TNC
  segmentation, ``nea.pa.AttributeSegmenter``).

Decode = ``decode_batch`` plus ``PaMessage.parse`` of every PB-PA body (what a TNCS and its
validators do); encode = ``PaMessage.serialize`` of every message plus ``Batch.encode``.

Run: ``python bench/bench_nea.py`` (prints a table: microseconds per operation and MB/s).
Not part of the tests.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.common import Figure, Result, Skipped  # noqa: E402
from nea.pa import (  # noqa: E402
    InstalledPackages,
    ItaCommand,
    Package,
    PaMessage,
    ProductInformation,
)
from nea.pb_tnc import Batch, BatchType, PbPa, decode_batch  # noqa: E402
from nea.pt_eap import MAX_TYPE_DATA, PtEapPacket  # noqa: E402
from nea.pt_tls import FrameParser, PbTncBatchMessage, decode_value, encode_message  # noqa: E402

PEN_ITA = 0x00902A


def packages_messages() -> list[tuple[int, int, PaMessage]]:
    pkgs = tuple(
        Package(f"package-{i:05d}-lib{'x' * (i % 7)}", f"{i % 13}.{i % 97}.{i % 5}-deb12u{i % 3}")
        for i in range(5000)
    )
    return [(0, 1, PaMessage(1, (InstalledPackages(pkgs),)))]


def small_messages() -> list[tuple[int, int, PaMessage]]:
    out = []
    for i in range(50):
        if i % 2:
            attr: object = ItaCommand(f"allow-{i}")
        else:
            attr = ProductInformation(9586, i, f"Debian {i}")
        out.append((PEN_ITA if i % 2 else 0, 1, PaMessage(i, (attr,))))  # type: ignore[arg-type]
    return out


def encode(messages: list[tuple[int, int, PaMessage]]) -> bytes:
    pbs = tuple(
        PbPa(vendor, subtype, collector_id=n + 1, validator_id=0xFFFF, body=msg.serialize())
        for n, (vendor, subtype, msg) in enumerate(messages)
    )
    return Batch(BatchType.CDATA, False, pbs).encode()


def decode(data: bytes) -> int:
    batch = decode_batch(data)
    attrs = 0
    for m in batch.messages:
        if isinstance(m, PbPa):
            attrs += len(PaMessage.parse(m.body).attributes)
    return attrs


def pt_tls_round(batch: bytes) -> Callable[[], object]:
    wire = encode_message(PbTncBatchMessage(batch), 1)

    def run() -> object:
        (frame,) = FrameParser(max_length=1 << 24).feed(wire)
        return decode(decode_value(frame).batch)  # type: ignore[union-attr]

    return run


def pt_eap_round(batch: bytes) -> Callable[[], object]:
    wire = PtEapPacket(batch).encode()
    return lambda: decode(PtEapPacket.parse(wire).data)


def measure(fn: Callable[[], object], budget: float = 0.4) -> float:
    """Best seconds per call over three rounds of about ``budget`` / 3 seconds each."""
    fn()
    best = float("inf")
    for _ in range(3):
        n, start = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            elapsed = time.perf_counter() - start
            if elapsed >= budget / 3:
                break
        best = min(best, elapsed / n)
    return best


CASES = (
    ("PB-TNC, 5,000 packages", packages_messages),
    ("PB-TNC, 50 small PA messages", small_messages),
)


def run(budget: float = 0.4) -> list[tuple[str, int, float | None, float | None, str]]:
    """(case, bytes, decode s/op, encode s/op or None, note) per row of the table."""
    out: list[tuple[str, int, float | None, float | None, str]] = []
    for name, make in CASES:
        messages = make()
        batch = encode(messages)
        assert decode(batch) == len(messages)
        size = len(batch)
        t_dec = measure(lambda b=batch: decode(b), budget)  # type: ignore[misc]
        t_enc = measure(lambda m=messages: encode(m), budget)  # type: ignore[misc]
        out.append((name, size, t_dec, t_enc, ""))
        for label, wrap in (("in PT-TLS", pt_tls_round), ("in PT-EAP", pt_eap_round)):
            if wrap is pt_eap_round and size > MAX_TYPE_DATA - 1:
                out.append((f"{name}, {label}", size, None, None, "too big for one EAP packet"))
                continue
            out.append((f"{name}, {label}", size, measure(wrap(batch), budget), None, ""))
    return out


def collect(quick: bool) -> list[Result]:
    """Decode (and encode) µs per operation of each case: the runner's figures."""
    results: list[Result] = []
    for name, size, t_dec, t_enc, note in run(0.15 if quick else 0.4):
        if t_dec is None:
            results.append(Skipped("nea", f"decode {name}", f"{note} ({size:,} bytes)"))
            continue
        best = f"{size:,} bytes, best of 3"
        results.append(Figure("nea", f"decode {name}", "µs/op", t_dec * 1e6, note=best))
        if t_enc is not None:
            results.append(Figure("nea", f"encode {name}", "µs/op", t_enc * 1e6, note=best))
    return results


def main() -> int:
    table = Table(title="NEA codec speed (best of 3)")
    for col in ("case", "bytes", "decode µs/op", "decode MB/s", "encode µs/op", "encode MB/s"):
        table.add_column(col, justify="right" if col != "case" else "left")
    for name, size, t_dec, t_enc, note in run():
        label = "  " + name.rsplit(", ", 1)[1] if name.endswith(("PT-TLS", "PT-EAP")) else name
        if t_dec is None:
            table.add_row(label, f"{size:,}", "n/a", note, "", "")
            continue
        enc = [f"{t_enc * 1e6:,.1f}", f"{size / t_enc / 1e6:,.1f}"] if t_enc else ["", ""]
        table.add_row(label, f"{size:,}", f"{t_dec * 1e6:,.1f}", f"{size / t_dec / 1e6:,.1f}", *enc)
    Console(width=120).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
