"""Errors the pipeline raises on purpose; each carries the CLI exit code, a report error code, and whether a
service retry could help (`retryable`: network and hub hiccups yes; size bound, usage, nothing scannable, access
refused no). The service decides retries by `retryable_code(code)`, never by a list of code strings of its own.
"""

from __future__ import annotations


class PatronusError(Exception):
    """Base class: a scan that cannot go on, with a message a user can act on."""

    exit_code = 2
    code = "scan_failed"
    retryable = False


class FetchError(PatronusError):
    """The model could not be fetched (network, missing repo, bad revision)."""

    code = "fetch_failed"
    retryable = True


class SizeLimitError(FetchError):
    """The model is over the size bound (--max-size / PATRONUS_SCAN_MAX_SIZE): retrying cannot help."""

    code = "too_large"
    retryable = False


class GatedRepoError(FetchError):
    """The hub refused access (gated or private repo without a valid token)."""

    code = "access_denied"
    retryable = False


class ModelLoadError(PatronusError):
    """The weights or config could not be read."""

    code = "load_failed"
    retryable = False


class NothingScannableError(PatronusError):
    """The target holds no supported weight files."""

    exit_code = 3
    code = "nothing_scannable"
    retryable = False


class UsageError(PatronusError):
    """Bad arguments."""

    exit_code = 4
    code = "usage"
    retryable = False


def _classes(root: type[PatronusError] = PatronusError) -> list[type[PatronusError]]:
    out = [root]
    for sub in root.__subclasses__():
        out.extend(_classes(sub))
    return out


def error_class(code: str | None) -> type[PatronusError] | None:
    """The error class whose `code` is `code` (None for codes no class declares)."""
    return next((cls for cls in _classes() if cls.code == code), None)


def retryable_code(code: str | None) -> bool:
    """Whether a failure with this report error code is worth retrying (unknown codes: no)."""
    cls = error_class(code)
    return bool(cls is not None and cls.retryable)


class PolicyError(UsageError):
    """The adoption gate's policy ([tool.patronus] / patronus.toml) or lock file is invalid or has unknown keys."""

    code = "policy_invalid"
    retryable = False


class ModelTooLargeError(ModelLoadError):
    """The model needs more memory than the device has (known from config.json and the safetensors headers before
    anything is loaded): refused, not retried on the same device."""

    code = "model_too_large"
    retryable = False


class RemoteCodeRequired(PatronusError):
    """The model needs code shipped with it (auto_map / unknown architecture): refused, nothing of it runs."""

    code = "remote_code_required"
    retryable = False


class UnsupportedArchitecture(PatronusError):
    """A model type the behavioural scan does not support (the static scan still ran)."""

    code = "unsupported_architecture"
    retryable = False


class RefusedTarget(PatronusError):
    """Purification refuses to load the target's weights: its report (or a fresh static scan) found dangerous
    serialization."""

    code = "refused_dangerous"
    retryable = False
