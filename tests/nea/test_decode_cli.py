"""nea-decode on strongSwan's PA-TNC / PB-TNC corpora and transcripts (text and JSON), on hex
input, on PT-TLS and PT-EAP wrappings, and on malformed input (exit 2, code and offset)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from nea.decode import decode, detect_kind, main
from nea.pt_eap import EapCode, EapEnvelope, EapTncPacket, PtEapPacket
from nea.pt_tls import (
    PbTncBatchMessage,
    SaslAuthenticationData,
    SaslMechanisms,
    SaslMechanismSelection,
    SaslResult,
    VersionRequest,
    VersionResponse,
    encode_message,
)

VECTORS = Path(__file__).resolve().parents[2] / ".." / "shared" / "vectors"
pytestmark = pytest.mark.skipif(not VECTORS.is_dir(), reason="shared vectors (../shared) absent")

# strongSwan's fuzzing corpus holds one deliberately malformed PA-TNC message (see
# tests/nea/pa/test_pa_vectors.py): rejected with Invalid Parameter at offset 46.
MALFORMED = {"f1a628fe": ("INVALID_PARAMETER", 46)}


def _files() -> list[Path]:
    if not VECTORS.is_dir():
        return []
    return sorted(
        [*VECTORS.glob("strongswan-pb_tnc/*.bin"), *VECTORS.glob("strongswan-pa_tnc/*.bin"),
         *VECTORS.glob("strongswan-transcripts/*/*.bin")]
    )


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


@pytest.mark.parametrize("path", _files(), ids=lambda p: f"{p.parent.name}/{p.name[:12]}")
def test_every_vector(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = MALFORMED.get(path.name[:8])
    code, text = run(capsys, str(path))
    jcode, out = run(capsys, "--json", str(path))
    doc = json.loads(out)
    assert code == jcode == (2 if bad else 0)
    expected_kind = "pa-tnc" if "pa" in path.name[:3] or "pa_tnc" in str(path) else "pb-tnc"
    assert doc["kind"] == expected_kind
    if bad:
        name, offset = bad
        assert f"{name} (code 1) at offset {offset}" in text
        assert doc["errors"][0]["name"] == name and doc["errors"][0]["offset"] == offset
        return
    assert "ERROR" not in text and "errors" not in doc
    if expected_kind == "pb-tnc":
        assert text.startswith("PB-TNC batch ")
        # every PB-PA message is decoded down to PA-TNC
        for msg in doc["messages"]:
            if msg["message"] == "PbPa":
                assert msg["pa_tnc"]["kind"] == "pa-tnc"
    else:
        assert text.startswith("PA-TNC message v1")


def test_transcript_content(capsys: pytest.CaptureFixture[str]) -> None:
    path = VECTORS / "strongswan-transcripts" / "block" / "04-s2c-RESULT.bin"
    code, text = run(capsys, str(path))
    assert code == 0
    assert "PB-TNC batch RESULT from server" in text
    assert "recommendation: DENIED" in text
    assert "PB-Reason-String" in text
    code, text = run(capsys, str(VECTORS / "strongswan-transcripts" / "allow" / "01-c2s-CDATA.bin"))
    assert "PB-Language-Preference" in text and "languages: 'en'" in text
    assert "ITA Command" in text and "product_name='Debian'" in text


def test_hex_input_and_stdin(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = VECTORS / "strongswan-transcripts" / "isolate" / "04-s2c-RESULT.bin"
    data = path.read_bytes()
    _, binary_out = run(capsys, str(path))
    hexfile = tmp_path / "batch.hex"
    hexfile.write_text("0x" + "\n".join(data[i : i + 16].hex(" ") for i in range(0, len(data), 16)))
    code, hex_out = run(capsys, str(hexfile))
    assert code == 0 and hex_out == binary_out
    colon = tmp_path / "colon.txt"
    colon.write_text(":".join(f"{b:02X}" for b in data) + "\n")
    assert run(capsys, str(colon)) == (0, binary_out)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert run(capsys, "-") == (0, binary_out)


def _batch() -> bytes:
    return (VECTORS / "strongswan-transcripts" / "allow" / "01-c2s-CDATA.bin").read_bytes()


def test_pt_tls_stream(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stream = b"".join(
        encode_message(m, i)
        for i, m in enumerate(
            [VersionRequest(), VersionResponse(), SaslMechanisms(("PLAIN",)),
             SaslResult(0, short=True), SaslMechanisms(), PbTncBatchMessage(_batch()),
             SaslMechanismSelection("PLAIN", b"\x00alice\x00sup3r-secret"),
             SaslAuthenticationData(b"opaque")]
        )
    )
    assert detect_kind(stream) == "pt-tls"
    f = tmp_path / "s.bin"
    f.write_bytes(stream)
    code, text = run(capsys, str(f))
    assert code == 0
    assert "PT-TLS: 8 messages" in text
    assert "PLAIN authcid 'alice', password hidden" in text
    assert "sup3r" not in text and b"sup3r".hex() not in text
    assert "VERSION_REQUEST id 0, 20 bytes" in text
    assert "PB-TNC batch CDATA from client" in text and "ITA Command" in text
    code, out = run(capsys, "--json", "--as", "pt-tls", str(f))
    doc = json.loads(out)
    assert code == 0 and doc["messages"][5]["pb_tnc"]["batch_type"] == "CDATA"
    assert doc["messages"][2]["mechanisms"] == ["PLAIN"]
    assert doc["messages"][6]["initial"]["authcid"] == "alice"
    assert "sup3r" not in out and b"sup3r".hex() not in out
    assert doc["messages"][7]["data"] == "<6 bytes hidden>"


def test_pt_eap_packets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    full = EapEnvelope(EapCode.RESPONSE, 9, 54, PtEapPacket(_batch()).encode()).encode()
    assert detect_kind(full) == "pt-eap"
    f = tmp_path / "eap.bin"
    f.write_bytes(full)
    code, text = run(capsys, str(f))
    assert code == 0
    assert text.startswith("EAP RESPONSE id 9, PT-EAP v1")
    assert "ITA Command" in text
    # just the Type-Data needs --as
    f.write_bytes(PtEapPacket(_batch()).encode())
    code, out = run(capsys, "--as", "pt-eap", "--json", str(f))
    assert code == 0 and json.loads(out)["pb_tnc"]["batch_type"] == "CDATA"
    # the Start message
    f.write_bytes(EapEnvelope(EapCode.REQUEST, 1, 54, b"\x81").encode())
    code, text = run(capsys, str(f))
    assert code == 0 and "PT-EAP v1 Start, 0 bytes" in text
    # EAP-TNC, whole and fragment
    f.write_bytes(EapEnvelope(EapCode.REQUEST, 2, 38, EapTncPacket(_batch()).encode()).encode())
    code, text = run(capsys, str(f))
    assert code == 0 and "EAP-TNC v1" in text and "PB-TNC batch CDATA" in text
    frag = EapTncPacket(_batch()[:20], more=True, total_length=len(_batch())).encode()
    f.write_bytes(EapEnvelope(EapCode.REQUEST, 3, 38, frag).encode())
    code, text = run(capsys, str(f))
    assert code == 0 and "flags [LM]" in text and "a fragment" in text


MALFORMED_INPUTS = [
    # (bytes, --as, protocol, error name, offset)
    (bytes.fromhex("02000001 00000010 00"), None, "PB-TNC", "INVALID_PARAMETER", 4),
    (bytes.fromhex("02000001 00000009 00"), None, "PB-TNC", "INVALID_PARAMETER", 8),
    (bytes.fromhex("03000001 00000008"), "pb", "PB-TNC", "VERSION_NOT_SUPPORTED", 0),
    (bytes.fromhex("02000009 00000008"), None, "PB-TNC", "INVALID_PARAMETER", 3),
    (bytes.fromhex("01000000 00000001 000000 00000001 0000000b"), "pa", "PA-TNC",
     "INVALID_PARAMETER", 8),
    (bytes.fromhex("02000000 00000001"), "pa", "PA-TNC", "VERSION_NOT_SUPPORTED", 0),
    (bytes.fromhex("00000000 00000002 00000014 00000000 00000001 0000"), None, "PT-TLS",
     "MALFORMED_MESSAGE", 20),
    (bytes.fromhex("00000000 00000002 00000014 00000000 00000001 00000000 00000001 00000003"
                   " 00000000"), None, "PT-TLS", "MALFORMED_MESSAGE", 28),
    (bytes.fromhex("00000000 00000001 00000013 00000000 000101"), None, "PT-TLS",
     "MALFORMED_MESSAGE", 8),
    (bytes.fromhex("00000000 00000001 00000014 00000000 00020101"), None, "PT-TLS",
     "INVALID_PARAMETER", 17),
    (bytes.fromhex("0201000536"), None, "PT-EAP", "EAP-Failure", 5),
    (bytes.fromhex("0201000926 81000000"), None, "PT-EAP", "EAP-Failure", 6),
    (b"", "pt-eap", "PT-EAP", "EAP-Failure", 0),
    (bytes.fromhex("ff"), None, "nea-decode", "UNKNOWN_KIND", 0),
]


@pytest.mark.parametrize(("data", "kind", "protocol", "name", "offset"), MALFORMED_INPUTS)
def test_malformed(data: bytes, kind: str | None, protocol: str, name: str, offset: int,
                   tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "bad.bin"
    f.write_bytes(data)
    args = (["--as", kind] if kind else []) + [str(f)]
    code, text = run(capsys, *args)
    assert code == 2
    assert f"ERROR {protocol} {name}" in text and f"at offset {offset}" in text
    code, out = run(capsys, "--json", *args)
    assert code == 2
    err = json.loads(out)["errors"][0]
    assert (err["protocol"], err["name"], err["offset"]) == (protocol, name, offset)


def test_nested_pa_error_fails_the_whole(capsys: pytest.CaptureFixture[str]) -> None:
    from nea.pb_tnc import Batch, BatchType, PbPa

    batch = Batch(BatchType.CDATA, False, (PbPa(0, 1, 1, 0xFFFF, b"\x01\x00\x00\x00\x00\x00"),))
    result = decode(batch.encode())
    errs = result.all_errors()
    assert [(e["protocol"], e["offset"]) for e in errs] == [("PA-TNC", 0)]


def test_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main([str(tmp_path / "nope")]) == 1
