"""Errors the pipeline raises on purpose; each carries the CLI exit code and a report error code."""

from __future__ import annotations


class PatronusError(Exception):
    """Base class: a scan that cannot go on, with a message a user can act on."""

    exit_code = 2
    code = "scan_failed"


class FetchError(PatronusError):
    """The model could not be fetched (network, missing repo, bad revision, size bound)."""

    code = "fetch_failed"


class GatedRepoError(FetchError):
    """The hub refused access (gated or private repo without a valid token)."""

    code = "access_denied"


class ModelLoadError(PatronusError):
    """The weights or config could not be read."""

    code = "load_failed"


class NothingScannableError(PatronusError):
    """The target holds no supported weight files."""

    exit_code = 3
    code = "nothing_scannable"


class UsageError(PatronusError):
    """Bad arguments."""

    exit_code = 4
    code = "usage"
