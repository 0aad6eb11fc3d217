"""NumPy .npy (and, through the zip reader, .npz): the header is parsed as a literal; object arrays are pickles
after the header and are walked like any pickle."""

from __future__ import annotations

import ast
import math
import re
import struct
from typing import IO, Any

from scanner.report import FileStatus, Severity
from scanner.static.common import FileScan, Window, short
from scanner.static.pickles import scan_pickle_stream, scan_trailing

__all__ = ["scan_npy"]

MAX_HEADER = 1024**2  # numpy's own default bound is 10,000 bytes; anything larger is hostile or broken
_SIMPLE_DESCR = re.compile(r"[<>|=]?([biufcmMOSUVa?])(\d*)(?:\[\w+\])?")
S = FileStatus.SUSPICIOUS


def _has_object(descr: Any) -> bool:
    if isinstance(descr, str):
        match = _SIMPLE_DESCR.fullmatch(descr)
        return match is None or match.group(1) == "O"
    if isinstance(descr, list):
        for field in descr:
            if not isinstance(field, tuple) or len(field) < 2:
                return True
            if _has_object(field[1]):
                return True
        return False
    return True


def _itemsize(descr: Any) -> int | None:
    if isinstance(descr, str):
        match = _SIMPLE_DESCR.fullmatch(descr)
        if match is None or not match.group(2):
            return 1 if match is not None and match.group(1) == "?" else None
        width = int(match.group(2))
        return width * 4 if match.group(1) == "U" else width
    if isinstance(descr, list):
        total = 0
        for field in descr:
            size = _itemsize(field[1]) if isinstance(field, tuple) and len(field) >= 2 else None
            if size is None:
                return None
            shape = field[2] if len(field) > 2 else ()
            total += size * math.prod(shape if isinstance(shape, tuple) else (shape,))
        return total
    return None


def scan_npy(stream: IO[bytes], size: int, scan: FileScan, where: str) -> None:
    scan.format = "numpy"
    stream.seek(0)
    prefix = stream.read(8)
    major = prefix[6] if len(prefix) > 6 else 0
    if major == 1:
        raw = stream.read(2)
        header_len = struct.unpack("<H", raw)[0] if len(raw) == 2 else -1
    elif major in (2, 3):
        raw = stream.read(4)
        header_len = struct.unpack("<I", raw)[0] if len(raw) == 4 else -1
    else:
        scan.add("numpy-malformed", S, Severity.MEDIUM, f"unsupported .npy version {short(prefix[6:8])}")
        return
    if not 0 <= header_len <= MAX_HEADER:
        scan.add("numpy-malformed", S, Severity.MEDIUM, f".npy header length {header_len:,} out of bounds")
        return
    header_raw = stream.read(header_len)
    data_start = stream.tell()
    try:
        header = ast.literal_eval(header_raw.decode("latin-1" if major < 3 else "utf-8").strip())
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError) as exc:
        scan.add("numpy-malformed", S, Severity.MEDIUM, f".npy header is not a literal dict: {type(exc).__name__}")
        return
    if not isinstance(header, dict) or not {"descr", "fortran_order", "shape"} <= set(header):
        scan.add("numpy-malformed", S, Severity.MEDIUM, f".npy header lacks descr/fortran_order/shape: {short(header)}")
        return
    descr, shape = header["descr"], header["shape"]
    if not isinstance(shape, tuple) or not all(type(d) is int and d >= 0 for d in shape):
        scan.add("numpy-malformed", S, Severity.MEDIUM, f".npy shape {short(shape)} is not a tuple of sizes")
        return
    if _has_object(descr):
        scan.add(
            "numpy-object-array",
            S,
            Severity.MEDIUM,
            f"object array (dtype {short(descr)}): its data is a pickle, loaded only with allow_pickle=True",
        )
        scan_pickle_stream(stream, data_start, size, scan, f"{where} object data")
        scan.format = "numpy"
        return
    itemsize = _itemsize(descr)
    if itemsize is None:
        scan.add("numpy-malformed", S, Severity.MEDIUM, f"unrecognised dtype {short(descr)}")
        return
    expected = itemsize * math.prod(shape)
    actual = size - data_start
    scan.notes.append(f"numeric array {short(descr)} shape {short(shape)}")
    if actual < expected:
        scan.add("numpy-malformed", S, Severity.MEDIUM, f"data truncated: {actual:,} of {expected:,} bytes")
    elif actual > expected:
        window = Window(stream, data_start + expected, size)
        stream.seek(data_start + expected)
        scan_trailing(window, size, scan, where, "after the array data")
