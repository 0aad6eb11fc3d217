"""Dispatch: every file of a snapshot is classified by content first (scanner.formats), read by the reader of
what its bytes are, and reported; a name that promises another format is a finding of its own."""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath
from typing import IO, Any

from scanner import formats
from scanner.report import FileFinding, FileStatus, Serialization, Severity, Skipped
from scanner.static.archives import is_tar, scan_compressed, scan_seven_zip, scan_tar, scan_zip
from scanner.static.common import FileScan, Window, stream_size
from scanner.static.formats_other import scan_gguf, scan_h5, scan_onnx
from scanner.static.hub import attach_hub_security
from scanner.static.numpy_files import scan_npy
from scanner.static.pickle_machine import walk_pickle
from scanner.static.pickles import scan_pickle_stream
from scanner.static.repo import MAX_SOURCE_BYTES, code_references, repo_file_finding
from scanner.static.safetensors import scan_safetensors
from scanner.static.templates import scan_template_file

__all__ = ["scan_file", "scan_snapshot", "scan_stream"]

HEAD_BYTES = 8192
S, D, K = FileStatus.SUSPICIOUS, FileStatus.DANGEROUS, FileStatus.SKIPPED
TEMPLATE_FILES = frozenset({"tokenizer_config.json", "chat_template.json", "chat_template.jinja"})
_COMPRESSED = frozenset({"gzip", "bzip2", "xz", "zstd", "zlib"})
_NOT_ANALYSED = {
    "ggml": "legacy GGML weights",
    "tflite": "TensorFlow Lite",
    "tensorflow-protobuf": "TensorFlow protobuf",
    "flax-msgpack": "Flax msgpack",
    "rust-bert": "rust-bert",
    "coreml": "Core ML",
    "onnx-data": "ONNX external data",
}


def _zip_offset(stream: IO[bytes]) -> int | None:
    """Where zip data starts when the file is a zip behind a prefix (zipfile reads such files; torch does not)."""
    try:
        if not zipfile.is_zipfile(stream):
            return None
        with zipfile.ZipFile(stream) as archive:
            infos = archive.infolist()
        return min((i.header_offset for i in infos), default=0)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None
    finally:
        stream.seek(0)


def scan_stream(stream: IO[bytes], size: int, rel: str, depth: int = 0, path: str | None = None) -> FileScan:
    """Read one file (or archive member) by what its bytes are; never executes anything."""
    stream.seek(0)
    head = stream.read(HEAD_BYTES)
    stream.seek(0)
    classification = formats.classify(rel, head)
    content = classification.content
    scan = FileScan(format=classification.format)
    junk = 0
    if content is None or content == "pickle":
        offset = _zip_offset(stream)
        if offset is not None and content is None:
            content, junk = "zip", offset
        elif offset:
            scan.add(
                "archive-polyglot",
                S,
                Severity.HIGH,
                f"polyglot: {rel} is a pickle stream and also a zip archive (zip data from byte {offset:,})",
            )
            scan_zip(stream, size, scan, "embedded zip", depth + 1, _nested)
            stream.seek(0)
    if content is None and is_tar(stream):
        content = "tar"
    if content is not None:
        scan.format = content
        mismatch = formats.Classification(content, classification.named).mismatch
        if mismatch:
            row = formats.file_type(content) if content in {t.name for t in formats.FILE_TYPES} else None
            severity = Severity.HIGH if row is not None and row.executes_on_load else Severity.MEDIUM
            scan.add("format-mismatch", S, severity, f"{rel}: {mismatch} (classified by content)")
    _read(stream, size, rel, depth, path, content, classification.named, scan, junk)
    return scan


def _nested(stream: IO[bytes], size: int, rel: str, depth: int) -> FileScan:
    return scan_stream(stream, size, rel, depth)


def _read(
    stream: IO[bytes],
    size: int,
    rel: str,
    depth: int,
    path: str | None,
    content: str | None,
    named: formats.FileType | None,
    scan: FileScan,
    junk: int,
) -> None:
    if content == "safetensors":
        scan_safetensors(stream, size, scan, rel)
    elif content in ("pickle", "pytorch-legacy"):
        fmt = scan.format
        scan_pickle_stream(stream, 0, size, scan, "stream")
        if fmt not in ("pickle", "pytorch-legacy"):  # the embedded zip's layout named it; the bytes are a pickle
            scan.format = "pickle" if scan.format != "pytorch-legacy" else scan.format
    elif content == "zip":
        if junk:
            leading = walk_pickle(Window(stream, 0, min(junk, 1024**2)))
            if leading.globals or leading.unresolved:
                from scanner.static.pickles import add_walk

                scan.add(
                    "archive-polyglot", S, Severity.HIGH, f"polyglot: {rel} starts with a pickle before its zip data"
                )
                add_walk(scan, leading, "leading pickle")
            stream.seek(0)
        scan_zip(stream, size, scan, rel, depth, _nested, junk_prefix=junk)
    elif content == "tar":
        scan_tar(stream, scan, rel, depth, _nested)
    elif content == "7z":
        scan_seven_zip(stream, scan, rel, depth, _nested)
    elif content in _COMPRESSED:
        scan_compressed(stream, size, scan, rel, depth, _nested)
    elif content == "numpy":
        scan_npy(stream, size, scan, rel)
    elif content == "hdf5":
        scan_h5(stream, size, scan, rel)
    elif content == "onnx":
        scan_onnx(stream, size, scan, rel)
    elif content == "gguf":
        scan_gguf(stream, size, scan, rel, path)
    elif content in ("native-binary", "script"):
        scan.add("repo-stray-executable", S, Severity.HIGH, f"{rel}: {formats.file_type(content).description}")
    elif content in _NOT_ANALYSED or (content is None and named is not None and named.name in _NOT_ANALYSED):
        name = content or (named.name if named else "")
        scan.format = name
        scan.add(
            "format-not-analysed",
            K,
            Severity.LOW,
            f"{_NOT_ANALYSED[name]} is not statically analysed (its loaders run no code it carries)",
        )
    elif content in ("image", "pdf"):
        scan.notes.append(f"{content} data: nothing to execute")
    elif named is not None and named.name in _BY_NAME_READERS:  # bytes prove nothing: the named reader explains
        _BY_NAME_READERS[named.name](stream, size, scan, rel)
    elif named is not None and named.name in ("ambiguous-model", "sentencepiece"):
        scan.format = "sentencepiece" if head_is_protobuf(stream) else "binary"
        scan.notes.append("not a pickle, zip or archive: a tokenizer model or other binary with nothing to execute")
    else:
        _unknown(stream, size, scan, named)


_BY_NAME_READERS = {"onnx": scan_onnx, "safetensors": scan_safetensors, "numpy": scan_npy, "hdf5": scan_h5}


def head_is_protobuf(stream: IO[bytes]) -> bool:
    stream.seek(0)
    first = stream.read(1)
    stream.seek(0)
    return first in (b"\n", b"\x12", b"\x1a", b"\x22", b"\x2a")


def _unknown(stream: IO[bytes], size: int, scan: FileScan, named: formats.FileType | None) -> None:
    """No magic matched: a pickle the sniffer missed is still walked (anything it imports is reported)."""
    probe = FileScan(format="pickle")
    scan_pickle_stream(stream, 0, size, probe, "stream")
    if probe.globals or any(c.rule == "pickle-unresolvable-import" for c in probe.checks):
        scan.merge(probe)
        scan.format = "pickle"
        return
    what = named.description if named is not None else "file"
    scan.format = named.name if named is not None else "unknown"
    scan.add(
        "not-scanned-unknown-format",
        K,
        Severity.LOW,
        f"not a pickle, zip, tar or any format in the table (named as {what}); pickle.load and torch.load "
        "would fail before executing anything",
    )


def scan_file(path: Path, rel: str) -> FileFinding:
    """Statically scan one file; never raises for file contents, never executes anything."""
    try:
        with path.open("rb") as stream:
            scan = scan_stream(stream, stream_size(stream), rel, 0, str(path))
        return scan.finding(rel)
    except OSError as exc:
        return FileFinding(rel, "unknown", K.value, f"unreadable: {exc}", severity=Severity.MEDIUM.value, rule="PAT007")
    except Exception as exc:  # noqa: BLE001 - a scanner bug must not pass a file as safe
        return FileFinding(
            rel,
            "unknown",
            S.value,
            f"internal scanner error ({type(exc).__name__}: {exc}); file not verified",
            severity=Severity.HIGH.value,
            rule="PAT003",
        )


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # a multi-byte character cut at the 8 KiB boundary
    return True


def _entry(path: Path, rel: str, refs: dict[str, str]) -> tuple[FileFinding | None, Skipped | None]:
    try:
        with path.open("rb") as stream:
            head = stream.read(HEAD_BYTES)
    except OSError as exc:
        return None, Skipped(rel, "unreadable", f"unreadable: {exc}", severity=Severity.MEDIUM.value)
    named = formats.by_name(rel)
    content = formats.sniff(head)
    content_row = formats.file_type(content) if content else None
    is_code_name = named is not None and named.kind in (formats.CODE, formats.EXECUTABLE)
    weight_content = content_row is not None and content_row.weight_bearing
    if (is_code_name and not weight_content) or content in ("native-binary", "script"):
        source = None
        if named is not None and named.name == "python":
            with path.open("rb") as stream:
                source = stream.read(MAX_SOURCE_BYTES)
        return repo_file_finding(rel, head, refs.get(rel), source), None
    if PurePosixPath(rel).name in TEMPLATE_FILES and not weight_content:
        scan = FileScan(format="chat-template", kind="template")
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return None, Skipped(rel, "unreadable", f"unreadable: {exc}")
        scan_template_file(text, rel, scan)
        return (scan.finding(rel) if scan.checks or "chat_template" in text else None), None
    if (
        weight_content
        or (named is not None and named.weight_bearing)
        or (content is None and not _is_text(head) and named is None)
    ):
        if content is None and named is None and not _looks_weighty(head):
            return None, Skipped(
                rel,
                "unsupported_format",
                "unrecognised binary file (no known format); not read by any loader Patronus knows",
            )
        finding = scan_file(path, rel)
        if finding.status == K.value:
            category = "unreadable" if finding.reason.startswith("unreadable") else "unsupported_format"
            return finding, Skipped(rel, category, finding.reason, severity=finding.severity)
        return finding, None
    if content is not None and content_row is not None and content_row.kind == formats.TEXT:
        return None, None
    if (
        content in ("image", "pdf")
        or _is_text(head)
        or (named is not None and named.kind in (formats.TEXT, formats.DATA))
    ):
        return None, None
    return None, Skipped(
        rel, "unsupported_format", "unrecognised binary file (not a pickle, archive or known weight format)"
    )


def _looks_weighty(head: bytes) -> bool:
    """A nameless binary is scanned when its first bytes could be a pickle the sniffer did not prove."""
    return bool(head) and head[0] in b"(c]}\x80"


def scan_snapshot(
    local_dir: Path,
    files: list[str],
    *,
    repo_files: list[str] | None = None,
    hub_security: dict[str, dict[str, Any]] | None = None,
) -> tuple[Serialization, list[Skipped]]:
    """Scan every file among `files` (paths relative to `local_dir`), by content first.

    Weight-bearing files (by content or by name) are read and listed in the Serialization (unsupported formats
    with status "skipped" and a Skipped entry); code, scripts and binaries become findings graded by whether a
    config references them; chat templates are checked; text, images and documentation are left out.
    `repo_files` (every file of a hub repo, downloaded or not) adds name-based findings for code files that were
    never downloaded; `hub_security` ({path: the hub's security info}) is shown beside each finding.
    """
    serialization, skipped = Serialization(), []
    local_dir = Path(local_dir)
    present = sorted(dict.fromkeys(files))
    refs = code_references(local_dir, present)
    for rel in present:
        path = local_dir / rel
        if not path.is_file():
            skipped.append(
                Skipped(
                    rel, "unreadable", "listed in the snapshot but not a readable file", severity=Severity.MEDIUM.value
                )
            )
            continue
        finding, skip = _entry(path, rel, refs)
        if finding is not None:
            serialization.files.append(finding)
        if skip is not None:
            skipped.append(skip)
    for rel in sorted(set(repo_files or ()) - set(present)):
        finding = repo_file_finding(rel, None, None)
        if finding is not None:
            serialization.files.append(finding)
    if hub_security:
        serialization.files += attach_hub_security(serialization.files, hub_security)
    return serialization, skipped
