"""``nea-decode``: show what a NEA message says, layer by layer.

::

    nea-decode [--as pa|pb|pt-tls|pt-eap] [--json] FILE|-

Reads a PA-TNC message (RFC 5792), a PB-TNC batch (RFC 5793; the PA-TNC messages inside its
PB-PA messages are decoded too), one or more PT-TLS messages (RFC 6876; their PB-TNC batches
are decoded) or a PT-EAP / EAP-TNC packet (RFC 7171; a whole EAP packet of type 54 or 38, or
with ``--as pt-eap`` just its Type-Data).  The input may be binary or hex text (whitespace,
colons and a leading ``0x`` are ignored).  Without ``--as`` the kind is told from the header:
an EAP Request/Response of type 54/38 whose length matches, a PT-TLS header (vendor 0, length
at least 16), a PB-TNC batch header (version 2), a PA-TNC header (version 1, reserved 0).

Malformed input prints the error the protocol would send (its code and the offset of the
field in error) and exits with status 2.  Readable text by default, JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import re
import string
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nea.pa import PaMessage, PaTncError
from nea.pb_tnc import (
    Batch,
    PbError,
    PbPa,
    PbTncError,
    decode_batch,
    message_key,
    message_offsets,
)
from nea.pt_eap import (
    EapCode,
    EapTncPacket,
    PostureEapType,
    PtEapError,
    PtEapPacket,
    parse_eap,
)
from nea.pt_tls import (
    PbTncBatchMessage,
    PtTlsError,
    PtTlsErrorMessage,
    SaslAuthenticationData,
    SaslMechanismSelection,
    decode_value,
    parse_plain,
)
from nea.pt_tls.errors import PtTlsErrorCode
from nea.pt_tls.messages import Frame, FrameParser

__all__ = ["Decoded", "decode", "detect_kind", "main", "read_input"]

KINDS = ("pa", "pb", "pt-tls", "pt-eap")
_HEX = set(string.hexdigits)


@dataclass
class Decoded:
    """A decoded layer: a readable ``title``, JSON ``data`` and nested layers."""

    title: str
    data: dict[str, Any]
    lines: list[str] = field(default_factory=list)
    children: list[Decoded] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    """Protocol errors found at this layer or below."""

    def all_errors(self) -> list[dict[str, Any]]:
        out = list(self.errors)
        for child in self.children:
            out.extend(child.all_errors())
        return out

    def render(self, indent: int = 0) -> list[str]:
        pad = "  " * indent
        out = [pad + self.title]
        out += [pad + "  " + line for line in self.lines]
        for err in self.errors:
            out.append(pad + "  " + _error_text(err))
        for child in self.children:
            out += child.render(indent + 1)
        return out


# --------------------------------------------------------------------------- input


def read_input(path: str) -> bytes:
    raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    return _maybe_hex(raw)


def _maybe_hex(raw: bytes) -> bytes:
    """Hex text (whitespace, ':' and a leading 0x allowed) becomes bytes; else ``raw``."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return raw
    compact = "".join(text.split()).replace(":", "")
    if compact[:2].lower() == "0x":
        compact = compact[2:]
    if compact and len(compact) % 2 == 0 and set(compact) <= _HEX:
        return bytes.fromhex(compact)
    return raw


def detect_kind(data: bytes) -> str | None:
    """Tell the message kind from its header, or None."""
    if len(data) >= 5 and data[0] in (EapCode.REQUEST, EapCode.RESPONSE):
        length = int.from_bytes(data[2:4], "big")
        if length == len(data) and data[4] in (PostureEapType.PT_EAP, PostureEapType.EAP_TNC):
            return "pt-eap"
    if len(data) >= 16 and data[:4] == b"\x00\x00\x00\x00":
        if int.from_bytes(data[8:12], "big") >= 16:
            return "pt-tls"
    if len(data) >= 8 and data[0] == 2:
        return "pb"
    if len(data) >= 8 and data[0] == 1 and data[1:4] == b"\x00\x00\x00":
        return "pa"
    return None


# --------------------------------------------------------------------------- rendering helpers


def _jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _fields(value)
    return value


def _fields(obj: Any) -> dict[str, Any]:
    return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def _short(value: Any) -> str:
    if isinstance(value, bytes):
        shown = value[:32].hex()
        return f"{shown}{'...' if len(value) > 32 else ''} ({len(value)} bytes)"
    if isinstance(value, enum.Enum):
        return value.name
    return repr(value)


def _error(protocol: str, code: Any, name: str, offset: int, reason: str) -> dict[str, Any]:
    return {"protocol": protocol, "code": code, "name": name, "offset": offset, "reason": reason}


def _error_text(err: dict[str, Any]) -> str:
    return (
        f"ERROR {err['protocol']} {err['name']} (code {err['code']}) at offset "
        f"{err['offset']}: {err['reason']}"
    )


# --------------------------------------------------------------------------- PA-TNC


def decode_pa(data: bytes) -> Decoded:
    try:
        msg = PaMessage.parse(data)
    except PaTncError as exc:
        err = _error("PA-TNC", int(exc.code), exc.code.name, exc.offset, str(exc))
        return Decoded("PA-TNC message (malformed)", {"kind": "pa-tnc", "error": err}, errors=[err])
    described = msg.describe().splitlines()
    return Decoded(described[0], {"kind": "pa-tnc", **msg.to_dict()},
                   lines=[line.strip() for line in described[1:]])


# --------------------------------------------------------------------------- PB-TNC


def _pb_name(message: Any) -> str:
    """``PbLanguagePreference`` -> ``PB-Language-Preference`` (the RFC's spelling)."""
    cls = type(message).__name__
    if cls == "PbPa":
        return "PB-PA"
    if cls == "UnknownMessage":
        return "unknown message"
    return "PB-" + re.sub(r"(?<!^)(?=[A-Z])", "-", cls[2:])


def _pb_message_node(offset: int, message: Any) -> Decoded:
    vendor, mtype = message_key(message)
    name = _pb_name(message)
    data: dict[str, Any] = {
        "offset": offset,
        "message": name,
        "vendor_id": vendor,
        "message_type": mtype,
        "noskip": message.noskip,
        **_fields(message),
    }
    flag = " NOSKIP" if message.noskip else ""
    title = f"[{offset}] {name} (vendor 0x{vendor:06x}, type {mtype}){flag}"
    node = Decoded(title, data)
    if isinstance(message, PbPa):
        node.lines.append(
            f"PA message type vendor 0x{message.pa_vendor_id:06x} subtype {message.pa_subtype}, "
            f"collector {message.collector_id}, validator {message.validator_id}"
            f"{', EXCL' if message.exclusive else ''}"
        )
        pa = decode_pa(message.body)
        data["pa_tnc"] = pa.data
        del data["body"]
        node.children.append(pa)
    elif isinstance(message, PbError):
        code = message.ietf_code
        node.lines.append(
            f"{'fatal ' if message.fatal else ''}error "
            f"{code.name if code is not None else message.error_code}"
            + (f", offset {message.offset}" if message.offset is not None else "")
            + (f", versions {message.version_info}" if message.version_info else "")
        )
    else:
        for f in dataclasses.fields(message):
            if f.name == "msg_flags" or (f.name == "reserved" and not getattr(message, f.name)):
                continue
            node.lines.append(f"{f.name}: {_short(getattr(message, f.name))}")
    return node


def decode_pb(data: bytes) -> Decoded:
    try:
        batch: Batch = decode_batch(data)
    except PbTncError as exc:
        err = _error("PB-TNC", int(exc.code), exc.code.name, exc.offset, exc.reason)
        return Decoded("PB-TNC batch (malformed)", {"kind": "pb-tnc", "error": err}, errors=[err])
    direction = "server" if batch.from_server else "client"
    n = len(batch.messages)
    node = Decoded(
        f"PB-TNC batch {batch.batch_type.name} from {direction}, {n} message"
        f"{'s' if n != 1 else ''}, {len(data)} bytes",
        {
            "kind": "pb-tnc",
            "version": 2,
            "batch_type": batch.batch_type.name,
            "from_server": batch.from_server,
            "length": len(data),
            "messages": [],
        },
    )
    for offset, message in message_offsets(batch.messages):
        child = _pb_message_node(offset, message)
        node.data["messages"].append(child.data)
        node.children.append(child)
    return node


# --------------------------------------------------------------------------- PT-TLS


def decode_pt_tls(data: bytes) -> Decoded:
    root = Decoded("PT-TLS messages", {"kind": "pt-tls", "messages": []})
    parser = FrameParser(max_length=0xFFFFFFFF)
    frames: list[tuple[int, Frame]] = []
    at = 0
    for frame in parser.feed(data):
        frames.append((at, frame))
        at += frame.length
    stream_error: dict[str, Any] | None = None
    if parser.error is not None:
        exc = parser.error
        stream_error = _error("PT-TLS", int(exc.code), exc.code.name, at + exc.offset, exc.reason)
    elif parser.pending:
        left = parser.pending
        stream_error = _error(
            "PT-TLS", int(PtTlsErrorCode.MALFORMED_MESSAGE), "MALFORMED_MESSAGE",
            at + (8 if left >= 16 else 0),
            f"{left} octets left, not a whole PT-TLS message (truncated)",
        )
    n = len(frames)
    root.title = f"PT-TLS: {n} message{'s' if n != 1 else ''}"
    if stream_error is not None:
        root.title += " (then a malformed stream)"
        root.data["error"] = stream_error
        root.errors.append(stream_error)
    for offset, frame in frames:
        info: dict[str, Any] = {
            "offset": offset,
            "type": frame.type_name(),
            "vendor_id": frame.vendor_id,
            "message_type": frame.message_type,
            "length": frame.length,
            "identifier": frame.identifier,
        }
        node = Decoded(
            f"[{offset}] {frame.type_name()} id {frame.identifier}, {frame.length} bytes", info
        )
        try:
            msg = decode_value(frame)
        except PtTlsError as exc:
            err = _error("PT-TLS", int(exc.code), exc.code.name, offset + exc.offset, exc.reason)
            info["error"] = err
            node.errors.append(err)
        else:
            if isinstance(msg, PbTncBatchMessage):
                pb = decode_pb(msg.batch)
                info["pb_tnc"] = pb.data
                node.children.append(pb)
            else:
                info.update(_fields(msg))
                if isinstance(msg, SaslMechanismSelection | SaslAuthenticationData):
                    _hide_credentials(msg, info, node)
                elif isinstance(msg, PtTlsErrorMessage):
                    try:
                        name = PtTlsErrorCode(msg.error_code).name
                    except ValueError:
                        name = str(msg.error_code)
                    node.lines.append(f"error {name} (vendor {msg.vendor_id}), copy of "
                                      f"{len(msg.original)} bytes")
                else:
                    for f in dataclasses.fields(msg):
                        node.lines.append(f"{f.name}: {_short(getattr(msg, f.name))}")
        root.data["messages"].append(info)
        root.children.append(node)
    return root


def _hide_credentials(
    msg: SaslMechanismSelection | SaslAuthenticationData, info: dict[str, Any], node: Decoded
) -> None:
    """SASL data may carry a PLAIN password: show who, never the password."""
    raw = msg.initial if isinstance(msg, SaslMechanismSelection) else msg.data
    key = "initial" if isinstance(msg, SaslMechanismSelection) else "data"
    if isinstance(msg, SaslMechanismSelection):
        node.lines.append(f"mechanism: {msg.mechanism}")
    try:
        creds = parse_plain(raw)
    except ValueError:
        info[key] = f"<{len(raw)} bytes hidden>"
        node.lines.append(f"{key}: <{len(raw)} bytes hidden>")
        return
    info[key] = {"authzid": creds.authzid, "authcid": creds.authcid, "password": "<hidden>"}
    node.lines.append(
        f"PLAIN authcid {creds.authcid!r}"
        + (f", authzid {creds.authzid!r}" if creds.authzid else "")
        + ", password hidden"
    )


# --------------------------------------------------------------------------- PT-EAP


def _eap_failure(exc: PtEapError, base: int) -> dict[str, Any]:
    return _error("PT-EAP", exc.code, "EAP-Failure", base + exc.offset, exc.reason)


def decode_pt_eap(data: bytes) -> Decoded:
    eap_type = int(PostureEapType.PT_EAP)
    type_data = data
    info: dict[str, Any] = {"kind": "pt-eap"}
    base = 0
    header = ""
    if detect_kind(data) == "pt-eap":
        try:
            env = parse_eap(data)
        except PtEapError as exc:  # pragma: no cover - detect_kind checked the length
            err = _eap_failure(exc, 0)
            return Decoded("EAP packet (malformed)", {**info, "error": err}, errors=[err])
        assert env.eap_type is not None
        eap_type, type_data, base = env.eap_type, env.type_data, 5
        info.update({"code": env.code.name, "identifier": env.identifier, "eap_type": eap_type})
        header = f"EAP {env.code.name} id {env.identifier}, "
    if eap_type == PostureEapType.EAP_TNC:
        return _decode_eap_tnc(type_data, info, header, base)
    try:
        pkt = PtEapPacket.parse(type_data)
    except PtEapError as exc:
        err = _eap_failure(exc, base)
        return Decoded(f"{header}PT-EAP (malformed)", {**info, "error": err}, errors=[err])
    info.update({"start": pkt.start, "version": pkt.version, "reserved_flags": pkt.reserved,
                 "data_length": len(pkt.data)})
    node = Decoded(
        f"{header}PT-EAP v{pkt.version}{' Start' if pkt.start else ''}, "
        f"{len(pkt.data)} bytes of PB-TNC",
        info,
    )
    if pkt.data:
        pb = decode_pb(pkt.data)
        info["pb_tnc"] = pb.data
        node.children.append(pb)
    return node


def _decode_eap_tnc(type_data: bytes, info: dict[str, Any], header: str, base: int) -> Decoded:
    try:
        pkt = EapTncPacket.parse(type_data)
    except PtEapError as exc:
        err = _eap_failure(exc, base)
        return Decoded(f"{header}EAP-TNC (malformed)", {**info, "error": err}, errors=[err])
    info.update({"start": pkt.start, "more": pkt.more, "total_length": pkt.total_length,
                 "version": pkt.version, "data_length": len(pkt.data)})
    flags = "".join(c for c, on in (("L", pkt.total_length is not None), ("M", pkt.more),
                                    ("S", pkt.start)) if on)
    node = Decoded(
        f"{header}EAP-TNC v{pkt.version} flags [{flags}], {len(pkt.data)} bytes", info
    )
    whole = not pkt.more and pkt.total_length in (None, len(pkt.data))
    if pkt.data and whole:
        pb = decode_pb(pkt.data)
        info["pb_tnc"] = pb.data
        node.children.append(pb)
    elif pkt.data:
        node.lines.append("a fragment: reassemble all fragments to decode the batch")
    return node


DECODERS = {"pa": decode_pa, "pb": decode_pb, "pt-tls": decode_pt_tls, "pt-eap": decode_pt_eap}


def decode(data: bytes, kind: str | None = None) -> Decoded:
    """Decode ``data`` as ``kind`` (detected from the header when None)."""
    kind = kind or detect_kind(data)
    if kind is None:
        err = _error("nea-decode", "unknown", "UNKNOWN_KIND", 0,
                     "not a PA-TNC, PB-TNC, PT-TLS or PT-EAP header; try --as")
        return Decoded("unrecognised input", {"kind": None, "error": err}, errors=[err])
    return DECODERS[kind](data)


# --------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nea-decode",
        description="Decode PA-TNC, PB-TNC, PT-TLS and PT-EAP messages (binary or hex input).",
    )
    p.add_argument("--as", dest="kind", choices=KINDS, help="what the input is (default: detect)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("file", help="input file, or - for standard input")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        data = read_input(args.file)
    except OSError as exc:
        print(f"nea-decode: {exc}", file=sys.stderr)
        return 1
    result = decode(data, args.kind)
    errors = result.all_errors()
    if args.json:
        out = dict(result.data)
        if errors:
            out["errors"] = errors
        print(json.dumps(out, indent=2, default=_jsonable))
    else:
        from rich.console import Console

        console = Console(highlight=False, soft_wrap=True)
        for line in result.render():
            console.print(line, markup=False)
    return 2 if errors else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
