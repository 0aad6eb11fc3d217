"""Archives: zip (torch.save, TorchScript, Keras 3, .npz, plain zips), tar (pre-1.0 torch, NeMo, plain tars),
7z, and compressed streams. Members are read the way their loaders read them and dispatched by content;
path traversal, bombs, nesting depth, junk prefixes and duplicate names are findings."""

from __future__ import annotations

import bz2
import io
import lzma
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import IO, Any

from scanner.report import FileStatus, Severity
from scanner.static.common import LIMITS, FileScan, Window, some
from scanner.static.pickles import walk_stream
from scanner.static.policy import STORAGE_ELEMENT_SIZES

__all__ = ["scan_compressed", "scan_seven_zip", "scan_tar", "scan_zip"]

S, D, K = FileStatus.SUSPICIOUS, FileStatus.DANGEROUS, FileStatus.SKIPPED
ZIP_ERRORS = (
    zipfile.BadZipFile,
    OSError,
    ValueError,
    EOFError,
    NotImplementedError,
    RuntimeError,
    zlib.error,
    struct.error,
    KeyError,
)
_TORCH_RECORDS = frozenset({"byteorder", "version", ".format_version", ".storage_alignment", "serialization_id"})
_PICKLE_MEMBER_SUFFIXES = (".pkl", ".debug_pkl")

# A nested member is scanned by the dispatcher: (stream, size, name, depth) -> FileScan
Nested = Callable[[IO[bytes], int, str, int], FileScan]


def unsafe_member_name(name: str) -> str | None:
    """Why an archive member name escapes the extraction folder, if it does."""
    if "\x00" in name:
        return "NUL byte in the name"
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        return "absolute path"
    if ".." in PurePosixPath(normalised).parts:
        return "'..' component"
    return None


def _check_names(names: list[str], scan: FileScan, where: str) -> None:
    escaping = [f"{n!r} ({why})" for n in names if (why := unsafe_member_name(n))]
    if escaping:
        scan.add(
            "archive-path-traversal",
            S,
            Severity.HIGH,
            f"{where}: member names escape the extraction folder: {some(escaping)}",
        )
    seen: set[str] = set()
    duplicates = sorted({n for n in names if n in seen or seen.add(n)})  # type: ignore[func-returns-value]
    if duplicates:
        scan.add(
            "archive-duplicate-member",
            S,
            Severity.MEDIUM,
            f"{where}: duplicate member names (readers pick different copies): {some(duplicates)}",
        )


def _check_bomb(entries: list[tuple[str, int, int]], scan: FileScan, where: str) -> bool:
    """(name, compressed, uncompressed) per member; True when the archive is a decompression bomb."""
    total = sum(u for _, _, u in entries)
    bombs = [n for n, c, u in entries if u > 16 * 1024**2 and u > LIMITS.max_ratio * max(c, 1)]
    if bombs or total > LIMITS.max_unpacked_bytes:
        detail = f"members {some(bombs)} expand over {LIMITS.max_ratio}x" if bombs else f"{total:,} bytes uncompressed"
        scan.add("archive-bomb", S, Severity.HIGH, f"{where}: decompression bomb ({detail}); those members not read")
        return True
    return False


# --------------------------------------------------------------------------------------------------- zip


class _StoredMember(io.RawIOBase):
    """A stored (uncompressed) zip member read straight from its bytes, as torch's reader does: no CRC check."""

    def __init__(self, raw: IO[bytes], offset: int, size: int) -> None:
        self.raw, self.offset, self.size, self.pos = raw, offset, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.size}[whence]
        self.pos = max(0, base + pos)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int | None = -1) -> bytes:
        want = self.size - self.pos if n is None or n < 0 else min(n, self.size - self.pos)
        if want <= 0:
            return b""
        self.raw.seek(self.offset + self.pos)
        data = self.raw.read(want)
        self.pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readline(self, limit: int | None = -1) -> bytes:
        start = self.pos
        chunks = []
        budget = self.size - self.pos if limit is None or limit < 0 else min(limit, self.size - self.pos)
        while budget > 0:
            chunk = self.read(min(8192, budget))
            if not chunk:
                break
            cut = chunk.find(b"\n")
            if cut >= 0:
                chunks.append(chunk[: cut + 1])
                self.pos = start + sum(len(c) for c in chunks)
                break
            chunks.append(chunk)
            budget -= len(chunk)
        return b"".join(chunks)


def open_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, raw: IO[bytes]) -> IO[bytes]:
    """A member's bytes without the CRC check (torch ignores CRCs): stored members straight from the archive,
    compressed ones through zipfile with the CRC comparison disabled."""
    if info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 0x1:
        raw.seek(info.header_offset)
        header = raw.read(30)
        if len(header) == 30 and header[:4] == b"PK\x03\x04":
            name_len, extra_len = struct.unpack("<HH", header[26:30])
            offset = info.header_offset + 30 + name_len + extra_len
            return io.BufferedReader(_StoredMember(raw, offset, info.file_size))
    member = archive.open(info)
    member._expected_crc = None  # type: ignore[attr-defined]  # what torch does: CRC mismatches are ignored
    return member


def _crc_mismatch(member: IO[bytes], info: zipfile.ZipInfo) -> bool:
    member.seek(0)
    crc = 0
    while chunk := member.read(1024**2):
        crc = zlib.crc32(chunk, crc)
    member.seek(0)
    return crc != info.CRC


def _zip_kind(names: list[str]) -> str:
    """What a zip holds, by its member layout."""
    bare = [PurePosixPath(n) for n in names]
    if any(p.name == "data.pkl" for p in bare):
        return (
            "torchscript"
            if any("code" in p.parts[:2] for p in bare) and any(p.name == "constants.pkl" for p in bare)
            else "pytorch-zip"
        )
    if any(p.name == "constants.pkl" for p in bare) or any(len(p.parts) >= 2 and p.parts[1] == "code" for p in bare):
        return "torchscript"
    if {"config.json", "metadata.json"} <= {str(p) for p in bare}:
        return "keras"
    if names and all(n.endswith(".npy") for n in names if not n.endswith("/")):
        return "numpy-npz"
    if "META-INF/MANIFEST.MF" in names:
        return "jar"
    return "zip"


def scan_zip(
    stream: IO[bytes], size: int, scan: FileScan, where: str, depth: int, nested: Nested, junk_prefix: int = 0
) -> None:
    """A zip archive: the layout decides the format; pickle members are walked as the C unpickler reads them,
    other members are dispatched by content; names, sizes and nesting are checked."""
    try:
        archive = zipfile.ZipFile(stream)
        members = archive.infolist()
    except ZIP_ERRORS as exc:
        scan.add("archive-unreadable", S, Severity.MEDIUM, f"unreadable zip archive {where}: {exc}")
        return
    if junk_prefix:
        scan.add(
            "archive-junk-prefix",
            S,
            Severity.MEDIUM,
            f"{junk_prefix:,} byte(s) before the zip data in {where} (readers that check the magic disagree)",
        )
    names = [m.filename for m in members]
    kind = _zip_kind(names)
    if depth == 0 or scan.format in ("zip", "unknown"):
        scan.format = kind
    _check_names(names, scan, where)
    if len(members) > LIMITS.max_members:
        scan.add(
            "scan-bound",
            S,
            Severity.MEDIUM,
            f"{len(members):,} members in {where}; only the first {LIMITS.max_members:,} were checked",
        )
        members = members[: LIMITS.max_members]
    bomb = _check_bomb([(m.filename, m.compress_size, m.file_size) for m in members], scan, where)
    kinds: dict[str, list[str]] = {}
    for info in members:
        label = f"{where}:{info.filename}" if depth else info.filename
        if bomb and info.file_size > LIMITS.max_ratio * max(info.compress_size, 1):
            continue
        try:
            member_kind = _scan_zip_member(archive, info, stream, scan, label, depth, kind, nested)
        except ZIP_ERRORS as exc:
            scan.add("archive-unreadable", S, Severity.MEDIUM, f"unreadable archive member {label}: {exc}")
            continue
        kinds.setdefault(member_kind, []).append(label)
    if kind == "torchscript":
        from scanner.static.formats_other import check_code

        check_code(archive, [m for m in members if "code" in PurePosixPath(m.filename).parts[:2]], stream, scan)
    if kind == "keras":
        from scanner.static.formats_other import scan_keras_zip

        scan_keras_zip(archive, stream, scan, where)
    if kind == "pytorch-zip" and "pickle" not in kinds:
        scan.add("torch-layout", S, Severity.MEDIUM, f"zip archive {where} holds no readable data.pkl")


def _scan_zip_member(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    raw: IO[bytes],
    scan: FileScan,
    label: str,
    depth: int,
    kind: str,
    nested: Nested,
) -> str:
    """Walk a member that is (or looks like) a pickle, dispatch anything else; returns the member's kind."""
    if info.is_dir():
        return "dir"
    name = PurePosixPath(info.filename)
    if kind in ("pytorch-zip", "torchscript") and _is_torch_record(info.filename):
        return "record"
    if kind == "torchscript" and "code" in name.parts[:2]:
        return "code"
    if kind == "keras" and name.name in ("config.json", "metadata.json"):
        return "config"
    with open_member(archive, info, raw) as member:
        head = member.read(4)
        member.seek(0)
        is_pickle = name.suffix in _PICKLE_MEMBER_SUFFIXES or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5)
        if is_pickle and kind in ("pytorch-zip", "torchscript"):
            if name.suffix not in _PICKLE_MEMBER_SUFFIXES:
                scan.add(
                    "archive-hidden-pickle",
                    S,
                    Severity.MEDIUM,
                    f"pickle data in archive member {label} without a .pkl name",
                )
            if info.file_size <= LIMITS.max_member_read and _crc_mismatch(member, info):
                scan.add(
                    "zip-crc-mismatch",
                    FileStatus.SAFE,
                    Severity.LOW,
                    f"{label}: CRC-32 mismatch (torch.load ignores it; the bytes were scanned as torch reads them)",
                )
            walks = walk_stream(Window(member, 0, info.file_size), scan, label)
            if len(walks) > 1:
                scan.add(
                    "trailing-data", S, Severity.MEDIUM, f"{len(walks)} pickles in {label}; loaders read only the first"
                )
            return "pickle"
        if depth + 1 > LIMITS.max_depth:
            scan.add(
                "archive-nesting",
                S,
                Severity.MEDIUM,
                f"{label}: archive nesting deeper than {LIMITS.max_depth} levels not followed",
            )
            return "deep"
        inner = nested(member, info.file_size, label, depth + 1)
    if inner.format in ("zip", "pytorch-zip", "keras", "numpy-npz", "torchscript", "tar", "7z", "gzip") and kind in (
        "pytorch-zip",
        "torchscript",
    ):
        scan.add("archive-nested", S, Severity.MEDIUM, f"nested archive {label} inside a {kind} file")
    scan.merge(inner, prefix="")
    return "pickle" if inner.pickles else inner.format


def _is_torch_record(filename: str) -> bool:
    """Raw tensor bytes (`<archive>/data/<key>`) and torch's small metadata records."""
    parts = PurePosixPath(filename).parts
    if len(parts) >= 2 and parts[-2] == "data" and parts[-1].isdigit():
        return True
    if len(parts) >= 2 and parts[-2] in (".data", "extra") and parts[-1] != "data.pkl":
        return not parts[-1].endswith(_PICKLE_MEMBER_SUFFIXES)
    return parts[-1] in _TORCH_RECORDS if parts else False


# --------------------------------------------------------------------------------------------------- tar


def is_tar(stream: IO[bytes]) -> bool:
    """What torch.load tries before the pickle stream: an uncompressed tar archive."""
    start = stream.tell()
    try:
        with tarfile.open(fileobj=stream, mode="r:"):
            return True
    except (tarfile.TarError, OSError, ValueError, EOFError):
        return False
    finally:
        stream.seek(start)


_TORCH_TAR_MEMBERS = frozenset({"sys_info", "pickle", "storages", "tensors"})


def scan_tar(stream: IO[bytes], scan: FileScan, where: str, depth: int, nested: Nested) -> None:
    """A tar archive. Pre-1.0 torch checkpoints ('sys_info', 'pickle', 'storages', 'tensors') are read with
    their own layouts; members of other tars are dispatched by content. Links and names are checked."""
    try:
        with tarfile.open(fileobj=stream, mode="r:") as archive:
            members = archive.getmembers()[: LIMITS.max_members]
            names = [m.name for m in members]
            _check_names(names, scan, where)
            links = [
                f"{m.name} -> {m.linkname}"
                for m in members
                if (m.issym() or m.islnk()) and unsafe_member_name(m.linkname)
            ]
            if links:
                scan.add(
                    "archive-path-traversal",
                    S,
                    Severity.HIGH,
                    f"{where}: links escape the extraction folder: {some(links)}",
                )
            torch_tar = set(names) >= _TORCH_TAR_MEMBERS
            if torch_tar:
                scan.format = "pytorch-tar"
                scan.add(
                    "torch-layout",
                    S,
                    Severity.MEDIUM,
                    "obsolete torch tar checkpoint format; re-save it "
                    "(torch.save or safetensors) to have it fully verified",
                )
            elif scan.format in ("unknown", "tar", "pytorch"):
                scan.format = "tar"
            for info in members:
                _scan_tar_member(archive, info, scan, where, depth, torch_tar, nested)
    except (tarfile.TarError, OSError, ValueError, EOFError) as exc:
        scan.add("archive-unreadable", S, Severity.MEDIUM, f"unreadable tar archive {where}: {exc}")


def _scan_tar_member(
    archive: tarfile.TarFile,
    info: tarfile.TarInfo,
    scan: FileScan,
    where: str,
    depth: int,
    torch_tar: bool,
    nested: Nested,
) -> None:
    member = archive.extractfile(info) if info.isfile() else None
    if member is None:
        return
    label = f"{where}:{info.name}"
    with member:
        if torch_tar:
            reader = {"storages": _tar_storages, "tensors": _tar_tensors}.get(info.name, _tar_plain)
            problem = reader(Window(member, 0, info.size), scan, label)
            if problem:
                scan.add("torch-layout", S, Severity.MEDIUM, f"tar member {label}: {problem}")
            return
        if depth + 1 > LIMITS.max_depth:
            scan.add(
                "archive-nesting",
                S,
                Severity.MEDIUM,
                f"{label}: nesting deeper than {LIMITS.max_depth} levels not followed",
            )
            return
        scan.merge(nested(member, info.size, label, depth + 1))


def _tar_plain(window: Window, scan: FileScan, label: str) -> str | None:
    walks = walk_stream(window, scan, label)
    return f"{len(walks)} pickles (expected one)" if len(walks) > 1 else None


def _tar_records(window: Window, scan: FileScan, label: str, read_record: Any) -> str | None:
    """`<count pickle>` then `count` times `<args pickle><raw record>`, optionally then more pickles."""
    from scanner.static.pickles import walk_one

    count = walk_one(window, scan, f"{label} count pickle")
    if not count.complete:
        return "count pickle unreadable"
    if type(count.value) is not int or not 0 <= count.value <= LIMITS.max_records:
        return "bad record count"
    for index in range(count.value):
        args = walk_one(window, scan, f"{label} record #{index + 1} args")
        if not args.complete:
            return f"record #{index + 1}: args pickle unreadable"
        problem = read_record(window, args.value)
        if problem:
            return f"record #{index + 1}: {problem}"
    if window.tell() < window.end:
        walk_stream(window, scan, label)
    return None


def _tar_storages(window: Window, scan: FileScan, label: str) -> str | None:
    from scanner.static.pickle_machine import GlobalRef

    def read_storage(win: Window, args: Any) -> str | None:
        if not (isinstance(args, tuple) and len(args) == 3 and isinstance(args[2], GlobalRef)):
            return "unexpected storage args"
        element_size = STORAGE_ELEMENT_SIZES.get(args[2].name)
        if element_size is None:
            return f"unknown storage type {args[2].qualname}"
        header = win.read(8)
        if len(header) != 8:
            return "storage size missing"
        (count,) = struct.unpack("<q", header)
        return None if win.skip(count * element_size) else "storage data truncated"

    return _tar_records(window, scan, label, read_storage)


def _tar_tensors(window: Window, scan: FileScan, label: str) -> str | None:
    def read_tensor(win: Window, args: Any) -> str | None:
        head = win.read(4)
        if len(head) != 4:
            return "tensor header missing"
        (ndim,) = struct.unpack("<i", head)
        if not 0 <= ndim <= 64:
            return f"bad tensor rank {ndim}"
        return None if win.skip(4 + 16 * ndim + 8) else "tensor header truncated"

    return _tar_records(window, scan, label, read_tensor)


# --------------------------------------------------------------------------------------------------- 7z, streams


def scan_seven_zip(stream: IO[bytes], scan: FileScan, where: str, depth: int, nested: Nested) -> None:
    """7z archives through py7zr (listing and bounded extraction into memory; nothing is written to disk)."""
    import py7zr

    try:
        with py7zr.SevenZipFile(stream, mode="r") as archive:
            infos = archive.list()
            names = [i.filename for i in infos]
            _check_names(names, scan, where)
            entries = [(i.filename, int(i.compressed or 0), int(i.uncompressed or 0)) for i in infos]
            if _check_bomb(entries, scan, where):
                return
            if archive.needs_password():
                scan.add("archive-encrypted", S, Severity.HIGH, f"{where}: encrypted 7z archive, members not read")
                return
            wanted = [
                i.filename
                for i in infos
                if not i.is_directory
                and unsafe_member_name(i.filename) is None
                and int(i.uncompressed or 0) <= LIMITS.max_member_read
            ]
            skipped = [i.filename for i in infos if not i.is_directory and i.filename not in wanted]
            data = _read_7z(archive, wanted)
    except Exception as exc:  # noqa: BLE001 - py7zr raises many types for hostile input
        scan.add(
            "archive-unreadable", S, Severity.MEDIUM, f"unreadable 7z archive {where}: {type(exc).__name__}: {exc}"
        )
        return
    if skipped:
        scan.add("archive-unread-member", K, Severity.HIGH, f"{where}: members not read: {some(skipped)}")
    for name, content in data.items():
        if depth + 1 > LIMITS.max_depth:
            scan.add("archive-nesting", S, Severity.MEDIUM, f"{where}:{name}: nesting too deep, not followed")
            continue
        scan.merge(nested(io.BytesIO(content), len(content), f"{where}:{name}", depth + 1))


def _read_7z(archive: Any, names: list[str]) -> dict[str, bytes]:
    """Member bytes in memory (py7zr >= 1.0 wants a writer factory; older versions return BytesIO objects)."""
    try:
        from py7zr.io import BytesIOFactory

        factory = BytesIOFactory(LIMITS.max_member_read)
        archive.extract(targets=names, factory=factory)
        out = {}
        for name in names:
            if name in factory.products:
                product = factory.products[name]
                product.seek(0)
                out[name] = product.read()
        return out
    except ImportError:  # pragma: no cover - py7zr < 1.0
        read = archive.read(targets=names) or {}
        return {name: buffer.read() for name, buffer in read.items()}


_DECOMPRESSORS: dict[str, Callable[[], Any]] = {
    "gzip": lambda: zlib.decompressobj(16 + zlib.MAX_WBITS),
    "zlib": lambda: zlib.decompressobj(),
    "bzip2": bz2.BZ2Decompressor,
    "xz": lzma.LZMADecompressor,
}


def scan_compressed(stream: IO[bytes], size: int, scan: FileScan, where: str, depth: int, nested: Nested) -> None:
    """A compressed stream (a .tar.gz, a joblib file compressed with zlib/gzip/bz2/xz): decompressed in
    memory within the bounds, then dispatched by content."""
    fmt = scan.format
    if fmt == "zstd":
        try:
            from compression import zstd

            factory: Callable[[], Any] = zstd.ZstdDecompressor
        except ImportError:
            try:
                from backports import zstd

                factory = zstd.ZstdDecompressor
            except ImportError:
                scan.add("format-not-analysed", K, Severity.MEDIUM, f"{where}: zstd stream, no decompressor here")
                return
    else:
        factory = _DECOMPRESSORS[fmt]
    decompressor = factory()
    stream.seek(0)
    out = io.BytesIO()
    read = 0
    try:
        while chunk := stream.read(64 * 1024):  # zlib expands at most ~1000x: 64 MiB per step at worst
            read += len(chunk)
            out.write(decompressor.decompress(chunk))
            if out.tell() > LIMITS.max_member_read or out.tell() > LIMITS.max_ratio * max(read, 1) + 16 * 1024**2:
                scan.add(
                    "archive-bomb",
                    S,
                    Severity.HIGH,
                    f"{where}: {fmt} stream expands past {out.tell():,} bytes from {read:,}; not read further",
                )
                return
    except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error) as exc:
        scan.add("archive-unreadable", S, Severity.MEDIUM, f"{where}: corrupt {fmt} stream: {exc}")
        if not out.tell():
            return
    if depth + 1 > LIMITS.max_depth:
        scan.add("archive-nesting", S, Severity.MEDIUM, f"{where}: nesting too deep, not followed")
        return
    inner = nested(out, out.tell(), f"{where}:<{fmt}>", depth + 1)
    scan.merge(inner)
    scan.notes.append(f"{fmt}-compressed {inner.format}")
