"""The static scanner: every file of a model repository read without executing anything.

Layout (one seam per module): policy (global lists, severities, rule ids), pickle_machine (a symbolic
unpickler that reads like CPython's C unpickler), pickles (pickle streams and legacy torch), archives (zip, tar,
7z, compressed streams; torch/TorchScript/Keras/npz layouts), safetensors, numpy_files, formats_other (ONNX,
Keras HDF5/.keras, GGUF, TorchScript code), templates (chat templates in a Jinja2 sandbox), repo (code, scripts,
binaries beside the weights), hub (the hub's own verdicts beside ours), scan (dispatch by content through the
one file-type table, scanner.formats).

Entry point: `scan_snapshot(local_dir, files) -> (Serialization, list[Skipped])`.
"""

from __future__ import annotations

from scanner import formats
from scanner.report import FileStatus, Serialization, Severity
from scanner.static.common import LIMITS, Limits
from scanner.static.policy import DANGEROUS_CALLABLES, DANGEROUS_MODULES, SAFE_GLOBALS, classify_global
from scanner.static.scan import scan_file, scan_snapshot

__all__ = [
    "DANGEROUS_CALLABLES",
    "DANGEROUS_MODULES",
    "LIMITS",
    "SAFE_GLOBALS",
    "Limits",
    "classify_global",
    "has_dangerous",
    "is_weight_file",
    "scan_file",
    "scan_snapshot",
    "static_severity",
    "weights_scanned",
]


def is_weight_file(rel: str) -> bool:
    """Whether a path names model weights (or anything a loader builds a model from) by its name."""
    return formats.is_weight_bearing(rel)


def has_dangerous(serialization: Serialization) -> bool:
    """Whether any file was found able to execute code on load."""
    return any(f.status == FileStatus.DANGEROUS.value for f in serialization.files)


def weights_scanned(serialization: Serialization) -> bool:
    """Whether at least one weight file was actually read (else the target has nothing scannable)."""
    return any(f.kind == "weights" and f.status != FileStatus.SKIPPED.value for f in serialization.files)


def weights_status(serialization: Serialization) -> FileStatus:
    """The worst status among weight files only (code, templates and hub-only entries left out): what decides
    whether pickle weights may be loaded with torch.load(weights_only=True)."""
    order = [FileStatus.SKIPPED, FileStatus.SAFE, FileStatus.SUSPICIOUS, FileStatus.DANGEROUS]
    statuses = [FileStatus(f.status) for f in serialization.files if f.kind == "weights"] or [FileStatus.SKIPPED]
    return max(statuses, key=order.index)


def static_severity(serialization: Serialization) -> Severity:
    """The worst severity of the static findings."""
    return Severity.worst(*(Severity(f.severity) for f in serialization.files if f.severity))
