"""safetensors: the header checked the way the reference loader checks it. The format cannot execute code; a
malformed file is suspicious (a loader would refuse it, or two loaders would read it differently)."""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import IO, Any

from scanner.report import FileStatus, Severity
from scanner.static.common import LIMITS, FileScan, short

__all__ = ["SafetensorsError", "check_safetensors", "scan_safetensors"]


def scan_safetensors(stream: IO[bytes], size: int, scan: FileScan, where: str) -> None:
    scan.format = "safetensors"
    try:
        count, header_len = check_safetensors(stream, size)
    except SafetensorsError as exc:
        scan.add("safetensors-malformed", FileStatus.SUSPICIOUS, Severity.MEDIUM, f"malformed safetensors: {exc}")
        return
    scan.notes.append(f"valid safetensors: {count} tensor(s), {header_len:,}-byte header")


# Bits per element (sub-byte types pack; the reference loader rejects tensors whose bits do not fill bytes).
SAFETENSORS_DTYPE_BITS = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "I64": 64,
    "U64": 64,
    "F64": 64,
    "C64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}


class SafetensorsError(Exception):
    """The file breaks the safetensors format; the message says where."""


def check_safetensors(stream: IO[bytes], size: int) -> tuple[int, int]:
    """(tensor count, header length); SafetensorsError says what breaks the format."""
    stream.seek(0)
    raw_len = stream.read(8)
    if len(raw_len) != 8:
        raise SafetensorsError(f"file is {size} bytes, shorter than the 8-byte header length")
    (header_len,) = struct.unpack("<Q", raw_len)
    if header_len > LIMITS.max_header_bytes:
        raise SafetensorsError(f"header length {header_len:,} exceeds {LIMITS.max_header_bytes:,} bytes")
    if 8 + header_len > size:
        raise SafetensorsError(f"header length {header_len:,} runs past the end of the {size:,}-byte file")
    header = _parse_header(stream.read(header_len))
    entries = _tensor_entries(header)
    _check_layout(entries, size - 8 - header_len)
    return len(entries), header_len


def _parse_header(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SafetensorsError(f"header is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if not text.startswith("{"):
        raise SafetensorsError("header does not start with '{'")
    try:
        header = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_reject_constant)
    except (json.JSONDecodeError, SafetensorsError, RecursionError) as exc:
        raise SafetensorsError(f"header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise SafetensorsError("header is not a JSON object")
    return header


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        duplicate = next(k for k in keys if keys.count(k) > 1)
        raise SafetensorsError(f"duplicate key {duplicate!r}")
    return dict(pairs)


def _reject_constant(name: str) -> Any:
    raise SafetensorsError(f"non-standard JSON constant {name}")


@dataclass(frozen=True)
class _Tensor:
    name: str
    begin: int
    end: int


def _tensor_entries(header: dict[str, Any]) -> list[_Tensor]:
    entries = []
    for name, info in header.items():
        if name == "__metadata__":
            _check_metadata(info)
            continue
        entries.append(_tensor_entry(name, info))
    return entries


def _check_metadata(info: Any) -> None:
    if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
        raise SafetensorsError("__metadata__ must map strings to strings")


def _is_int(value: Any) -> bool:
    return type(value) is int


def _tensor_entry(name: str, info: Any) -> _Tensor:
    if not isinstance(info, dict):
        raise SafetensorsError(f"tensor {name!r}: entry is not an object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if dtype not in SAFETENSORS_DTYPE_BITS:
        raise SafetensorsError(f"tensor {name!r}: unknown dtype {short(dtype)}")
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        raise SafetensorsError(f"tensor {name!r}: shape {short(shape)} is not a list of non-negative integers")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) and o >= 0 for o in offsets)):
        raise SafetensorsError(f"tensor {name!r}: data_offsets {short(offsets)} is not [begin, end]")
    begin, end = offsets
    if end < begin:
        raise SafetensorsError(f"tensor {name!r}: data_offsets end {end} before begin {begin}")
    bits = math.prod(shape) * SAFETENSORS_DTYPE_BITS[dtype]
    if bits % 8:
        raise SafetensorsError(f"tensor {name!r}: {bits} bits of {dtype} do not fill whole bytes")
    if end - begin != bits // 8:
        raise SafetensorsError(
            f"tensor {name!r}: {end - begin} bytes for shape {shape} of {dtype}, expected {bits // 8}"
        )
    return _Tensor(name, begin, end)


def _check_layout(entries: list[_Tensor], data_len: int) -> None:
    """Tensors tile the data section exactly: in bounds, no overlap, no gap, nothing after the last."""
    cursor = 0
    for tensor in sorted(entries, key=lambda t: (t.begin, t.end)):
        if tensor.end > data_len:
            raise SafetensorsError(
                f"tensor {tensor.name!r}: data_offsets end {tensor.end:,} beyond the {data_len:,}-byte data section"
            )
        if tensor.begin < cursor:
            raise SafetensorsError(
                f"tensor {tensor.name!r}: bytes {tensor.begin:,}..{tensor.end:,} overlap "
                f"the previous tensor (ends at {cursor:,})"
            )
        if tensor.begin > cursor:
            raise SafetensorsError(
                f"{tensor.begin - cursor:,} unreferenced byte(s) before tensor {tensor.name!r} at offset {cursor:,}"
            )
        cursor = tensor.end
    if cursor != data_len:
        raise SafetensorsError(f"{data_len - cursor:,} unreferenced byte(s) after the last tensor")
