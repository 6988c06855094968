"""The package exports what nea.decode and other users need (no reaching into submodules)."""

from __future__ import annotations

import ast
from pathlib import Path

import nea.pb_tnc
from nea.pb_tnc import PbPa, PbReasonString, message_key, message_offsets
from nea.pb_tnc.batch import BATCH_HEADER_SIZE

REPO = Path(__file__).resolve().parents[3]


def test_message_helpers_are_public() -> None:
    assert "message_key" in nea.pb_tnc.__all__
    assert "message_offsets" in nea.pb_tnc.__all__


def test_message_offsets_and_key_from_package() -> None:
    pa = PbPa(pa_vendor_id=0, pa_subtype=1, collector_id=1, validator_id=0, body=b"\x00" * 8)
    reason = PbReasonString(reason="x", language="en")
    offsets = list(message_offsets([pa, reason]))
    assert offsets[0] == (BATCH_HEADER_SIZE, pa)
    # RFC 5793, 4.1 and 4.5: 12-octet message header + 12-octet PB-PA header + 8-octet body
    assert offsets[1] == (BATCH_HEADER_SIZE + 12 + 12 + 8, reason)
    assert message_key(pa) == (0, 1)


def test_decode_uses_package_imports() -> None:
    tree = ast.parse((REPO / "nea" / "decode.py").read_text())
    submodule_imports = [
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and node.module is not None
        and node.module.startswith("nea.pb_tnc.")
    ]
    assert submodule_imports == []
