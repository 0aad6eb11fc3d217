"""Crafted hostile weight files for the serialization tests.

Every payload is written opcode by opcode (never by pickling a live object) and is never loaded: the tests only
hand the bytes to the static scanner. Each payload would run `touch <marker>` if it were unpickled, so a test can
assert the marker file was not created. `is_well_formed` checks a payload with `pickletools.dis`, which walks the
opcodes and the stack statically, so the tests do not pass on payloads a real loader would reject anyway.
"""

from __future__ import annotations

import io
import json
import pickletools
import struct
import tarfile
import zipfile
from pathlib import Path

# -------------------------------------------------------------------------------------------- opcodes

MARK, STOP, POP, TUPLE, TUPLE1, TUPLE2 = b"(", b".", b"0", b"t", b"\x85", b"\x86"
REDUCE, EMPTY_TUPLE, EMPTY_DICT, STACK_GLOBAL, MEMOIZE = b"R", b")", b"}", b"\x93", b"\x94"


def proto(n: int) -> bytes:
    return b"\x80" + bytes([n])


def frame(body: bytes) -> bytes:
    """A protocol 4 FRAME around `body` (what pickle.dumps emits), then the body."""
    return b"\x95" + struct.pack("<Q", len(body)) + body


def text(value: str) -> bytes:
    """SHORT_BINUNICODE / BINUNICODE."""
    raw = value.encode("utf-8")
    if len(raw) < 256:
        return b"\x8c" + bytes([len(raw)]) + raw
    return b"X" + struct.pack("<I", len(raw)) + raw


def glob(module: str, name: str) -> bytes:
    """GLOBAL (protocol 0 text form, valid in every protocol)."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def binput(index: int) -> bytes:
    return b"q" + bytes([index])


def binget(index: int) -> bytes:
    return b"h" + bytes([index])


def call(func: bytes, *args: bytes) -> bytes:
    """func(*args) with MARK/TUPLE + REDUCE."""
    return func + MARK + b"".join(args) + TUPLE + REDUCE


def touch(marker: Path) -> str:
    return f"touch {marker}"


# -------------------------------------------------------------------------------------------- payloads


def os_system(marker: Path, module: str = "os") -> bytes:
    """REDUCE of os.system (or posix.system) with a marker command."""
    return proto(2) + call(glob(module, "system"), text(touch(marker))) + STOP


def getattr_chain(marker: Path) -> bytes:
    """getattr(__import__('os'), 'system')('touch marker')."""
    module = call(glob("builtins", "__import__"), text("os"))
    system = call(glob("builtins", "getattr"), module, text("system"))
    return proto(2) + call(system, text(touch(marker))) + STOP


def builtins_eval(marker: Path) -> bytes:
    return proto(2) + call(glob("builtins", "eval"), text(f"__import__('os').system('{touch(marker)}')")) + STOP


def stack_global(marker: Path) -> bytes:
    """Protocol 4: os.system named by two string pushes and STACK_GLOBAL."""
    body = text("os") + MEMOIZE + text("system") + MEMOIZE + STACK_GLOBAL + MEMOIZE
    return proto(4) + frame(body + text(touch(marker)) + TUPLE1 + REDUCE + STOP)


def stack_global_via_memo(marker: Path) -> bytes:
    """STACK_GLOBAL operands fetched from the memo after decoy strings: the nearest strings pushed before the
    STACK_GLOBAL are 'collections' and 'OrderedDict', the operands the loader sees are 'os' and 'system'."""
    body = (
        text("os")
        + binput(0)
        + POP
        + text("system")
        + binput(1)
        + POP
        + text("collections")
        + binput(2)
        + text("OrderedDict")
        + binput(3)
        + POP
        + POP
        + binget(0)
        + binget(1)
        + STACK_GLOBAL
        + text(touch(marker))
        + TUPLE1
        + REDUCE
        + STOP
    )
    return proto(4) + body


def stack_global_computed(marker: Path) -> bytes:
    """STACK_GLOBAL over strings computed at load time, using only an allowlisted global:
    _codecs.encode('bf', 'rot13') == 'os', _codecs.encode('flfgrz', 'rot13') == 'system'."""
    module = call(glob("_codecs", "encode"), text("bf"), text("rot13"))
    name = call(glob("_codecs", "encode"), text("flfgrz"), text("rot13"))
    return proto(4) + module + name + STACK_GLOBAL + text(touch(marker)) + TUPLE1 + REDUCE + STOP


def protocol0_global(marker: Path) -> bytes:
    return b"cos\nsystem\n(S'" + touch(marker).encode() + b"'\ntR."


def protocol0_inst(marker: Path) -> bytes:
    """INST imports and calls in one opcode."""
    return b"(S'" + touch(marker).encode() + b"'\nios\nsystem\n."


def dotted_traversal(marker: Path) -> bytes:
    """Protocol 4 resolves dotted names attribute by attribute: torch._utils + 'os.system'."""
    body = text("torch._utils") + text("os.system") + STACK_GLOBAL + text(touch(marker)) + TUPLE1 + REDUCE + STOP
    return proto(4) + body


def extension_code() -> bytes:
    """EXT1: a global looked up in copyreg's extension registry."""
    return proto(2) + b"\x82\x01" + EMPTY_TUPLE + REDUCE + STOP


def non_string_stack_global() -> bytes:
    """STACK_GLOBAL over two ints: the loader raises, nothing is imported."""
    return proto(4) + b"K\x01K\x02" + STACK_GLOBAL + STOP


def is_well_formed(payload: bytes) -> bool:
    """Static check (pickletools.dis tracks the stack and memo); nothing is loaded."""
    try:
        pickletools.dis(payload, out=io.StringIO())
    except Exception:  # noqa: BLE001 - any complaint means the payload is not a valid pickle
        return False
    return True


# -------------------------------------------------------------------------------------------- containers


def replace_zip_member(archive: bytes, suffix: str, payload: bytes, extra: dict[str, bytes] | None = None) -> bytes:
    """Copy a zip archive, replacing the member whose name ends with `suffix` and adding `extra` members."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = payload if info.filename.endswith(suffix) else src.read(info)
            dst.writestr(info.filename, data)
        for name, data in (extra or {}).items():
            dst.writestr(name, data)
    return out.getvalue()


def make_zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for name, data in members.items():
            dst.writestr(name, data)
    return out.getvalue()


def legacy_tar(pickle_member: bytes) -> bytes:
    """A pre-1.0 torch tar checkpoint with no storages or tensors and `pickle_member` as its object pickle."""
    empty_count = proto(2) + b"K\x00" + STOP
    members = {
        "sys_info": proto(2) + EMPTY_DICT + STOP,
        "pickle": pickle_member,
        "storages": empty_count + proto(2) + b"]" + STOP,
        "tensors": empty_count,
    }
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def safetensors_bytes(header: dict | bytes, data: bytes = b"", header_len: int | None = None) -> bytes:
    """A safetensors file from a header (dict -> JSON, or raw bytes) and a data section."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    length = len(raw) if header_len is None else header_len
    return struct.pack("<Q", length) + raw + data


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    """Write a hostile sample's bytes under tmp_path (never loaded: the tests only scan it)."""
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
