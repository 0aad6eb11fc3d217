"""Pickle streams: raw pickles (joblib, dill, scikit-learn, gensim), legacy torch streams, and how a walked
pickle becomes checks on a file."""

from __future__ import annotations

import struct
from typing import IO, Any

from scanner.report import FileStatus, Severity
from scanner.static.common import LIMITS, FileScan, Window, short
from scanner.static.pickle_machine import GlobalRef, PickleWalk, walk_both, walk_pickle
from scanner.static.policy import STORAGE_ELEMENT_SIZES, classify_global, denied, normalise

__all__ = ["add_walk", "scan_pickle_stream", "walk_stream"]

TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
TORCH_LEGACY_PROTOCOL = 1001  # torch.serialization.PROTOCOL_VERSION

S, D = FileStatus.SUSPICIOUS, FileStatus.DANGEROUS


def add_walk(scan: FileScan, walk: PickleWalk, where: str) -> None:
    """Fold one walked pickle into a file's checks: its globals and calls, unresolvable references, loader
    differentials, malformation and bounds."""
    scan.opcodes += walk.opcodes
    scan.pickles += walk.complete
    for ref in walk.globals:
        if ref.qualname not in scan.globals:
            status = classify_global(ref.module, ref.name)
            scan.globals[ref.qualname] = (status, where)
            if status is D:
                why = denied(ref.module, ref.name) or denied(*normalise(ref.module, ref.name))
                if why:
                    scan.denied_why[ref.qualname] = why
    scan.called.update(ref.qualname for ref in walk.calls)
    for message in dict.fromkeys(walk.unresolved):
        scan.add("pickle-unresolvable-import", D, Severity.CRITICAL, f"{message} in {where}")
    if walk.computed_calls:
        scan.add(
            "pickle-computed-call",
            S,
            Severity.HIGH,
            f"{walk.computed_calls} call(s) of a value computed at load time in {where}",
        )
    if walk.divergences:
        scan.add(
            "pickle-frame-differential",
            S,
            Severity.HIGH,
            f"loaders disagree on {where}: {walk.divergences[0]}; pickletools and the pure-Python unpickler "
            "read these bytes differently (both readings scanned)",
        )
    if walk.error:
        scan.add("pickle-malformed", S, Severity.MEDIUM, f"malformed pickle in {where}: {walk.error}")
    if walk.bound:
        scan.add("scan-bound", S, Severity.MEDIUM, f"scan bound reached in {where}: {walk.bound}; rest not verified")


def walk_one(window: Window, scan: FileScan, where: str) -> PickleWalk:
    """One pickle as the C unpickler reads it (and linearly too where the readings part)."""
    c_walk, linear = walk_both(window)
    add_walk(scan, c_walk, where)
    if linear is not None:
        add_walk(scan, linear, f"{where} (linear reading)")
    return c_walk


def walk_stream(window: Window, scan: FileScan, where: str, first_index: int = 0) -> list[PickleWalk]:
    """Walk consecutive pickles until the window ends or one fails; returns the walks."""
    walks: list[PickleWalk] = []
    while window.tell() < window.end:
        if len(walks) >= LIMITS.max_pickles:
            scan.add(
                "scan-bound",
                S,
                Severity.MEDIUM,
                f"more than {LIMITS.max_pickles:,} pickles in {where}; rest not verified",
            )
            break
        walk = walk_one(window, scan, f"{where} pickle #{first_index + len(walks) + 1} @{window.tell():,}")
        walks.append(walk)
        if not walk.complete:
            break
    return walks


def scan_pickle_stream(stream: IO[bytes], start: int, size: int, scan: FileScan, where: str) -> None:
    """A non-archive stream: a legacy torch checkpoint or raw pickles, every pickle in it walked."""
    window = Window(stream, start, size)
    stream.seek(start)
    first = walk_pickle(window)
    if first.complete and type(first.value) is int and first.value == TORCH_LEGACY_MAGIC:
        scan.format = "pytorch-legacy"
        add_walk(scan, first, f"{where} pickle #1 (magic number)")
        _scan_legacy_torch(window, size, scan, where)
        return
    window.seek_to(start)
    walks = walk_stream(window, scan, where)
    if len(walks) > 1:
        scan.notes.append(f"{len(walks)} consecutive pickles")


def _scan_legacy_torch(window: Window, size: int, scan: FileScan, where: str) -> None:
    """torch.save(_use_new_zipfile_serialization=False): magic, protocol, sys_info, data and storage-key
    pickles, then one raw record per storage. Anything after the records is walked too."""
    names = ["protocol version", "sys_info", "data", "storage keys"]
    walks = []
    for index, label in enumerate(names, start=2):
        walk = walk_one(window, scan, f"{where} pickle #{index} ({label})")
        walks.append(walk)
        if not walk.complete:
            return
    protocol, _sys_info, data, keys = walks
    if protocol.value != TORCH_LEGACY_PROTOCOL:
        scan.add("torch-layout", S, Severity.MEDIUM, f"unexpected legacy protocol version {short(protocol.value)}")
    records = _legacy_records(data.persistent_ids, keys.value)
    if isinstance(records, str):
        scan.add("torch-layout", S, Severity.MEDIUM, f"legacy storage layout: {records}")
        return
    problem = _skip_storage_records(window, records)
    if problem:
        scan.add("torch-layout", S, Severity.MEDIUM, f"legacy storage records: {problem}")
        return
    scan.notes.append(f"{len(records)} storage record(s)")
    if window.tell() < size:
        scan_trailing(window, size, scan, where, "after the storage records")


def _legacy_records(persistent_ids: list[Any], keys: Any) -> list[tuple[str, int, int]] | str:
    """(key, numel, element size) per storage in the order the records follow, or what is wrong."""
    if not isinstance(keys, list) or not all(type(k) is str for k in keys):
        return "the storage-key pickle is not a list of strings"
    declared: dict[str, tuple[int, int]] = {}
    for pid in persistent_ids:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            return f"unexpected persistent id {short(pid)}"
        storage_type, key, numel = pid[1], pid[2], pid[4]
        if not isinstance(storage_type, GlobalRef) or storage_type.name not in STORAGE_ELEMENT_SIZES:
            return f"unknown storage type in persistent id {short(pid)}"
        if type(key) is not str or type(numel) is not int or numel < 0:
            return f"bad persistent id {short(pid)}"
        declared.setdefault(key, (numel, STORAGE_ELEMENT_SIZES[storage_type.name]))
    missing = [k for k in keys if k not in declared]
    if missing:
        return f"storage key(s) {missing[:5]} not referenced by the data pickle"
    if len(keys) > LIMITS.max_records:
        return f"more than {LIMITS.max_records:,} storages"
    return [(k, *declared[k]) for k in keys]


def _skip_storage_records(window: Window, records: list[tuple[str, int, int]]) -> str | None:
    """Seek over each `<u64 numel><numel * element size bytes>` record; what is wrong, if anything."""
    for key, numel, element_size in records:
        header = window.read(8)
        if len(header) != 8:
            return f"storage {key!r}: record header missing"
        (count,) = struct.unpack("<q", header)
        if count != numel:
            return f"storage {key!r}: record holds {count} elements, the data pickle declares {numel}"
        if not window.skip(count * element_size):
            return f"storage {key!r}: record truncated"
    return None


def scan_trailing(window: Window, size: int, scan: FileScan, where: str, context: str) -> None:
    """Bytes no loader reads: walked as pickles (a payload for another loader) and always reported."""
    start = window.tell()
    walks = walk_stream(window, scan, f"{where} trailing data")
    parsed = sum(w.complete for w in walks)
    scan.add(
        "trailing-data",
        S,
        Severity.MEDIUM,
        f"{size - start:,} trailing byte(s) {context} at byte {start:,} ({parsed} complete pickle(s) among them)",
    )
