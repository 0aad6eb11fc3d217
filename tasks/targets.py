"""What the service accepts as a scan target, checked before a row is written.

- A hub repo id must pass huggingface_hub's own validator (`validate_repo_id`): ids the hub rejects (`foo--bar`,
  `org/name.git`) fail at once with 400 instead of being retried as network errors.
- Hub ids never resolve to local paths: only an absolute path (`/...`) is a local target, never a relative name
  that happens to exist in the server's working directory.
- Local targets need PATRONUS_ALLOW_LOCAL_TARGETS=1 and must resolve (symlinks followed) inside one of
  PATRONUS_LOCAL_ROOTS; /proc, /sys and /dev never qualify; the folder's files are bounded by the same size bound as
  hub downloads (PATRONUS_SCAN_MAX_SIZE), checked before anything is hashed.
"""

from __future__ import annotations

import os
from pathlib import Path

from db.repo import Target
from scanner.errors import UsageError
from scanner.fetch import LocalTargets, ModelRef, check_revision
from tasks.settings import Settings

FORBIDDEN_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))
MAX_LOCAL_FILES = 10_000


class TargetError(ValueError):
    """The target is not acceptable; `status` is the HTTP status the API answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def has_control(value: str) -> bool:
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in value)


def validate_hub_id(target: str) -> str:
    """`target` if the hub would accept it as a repo id (the one target parser, scanner.fetch.ModelRef.parse,
    with huggingface_hub's rules), else TargetError."""
    ref = _parse(target)
    if ref.repo_id is None:
        raise TargetError("not a valid hub repo id: a path")
    return ref.repo_id


def validate_revision(revision: str | None) -> str | None:
    """A branch, tag or commit sha (scanner.fetch.check_revision's rules); blank means none."""
    if revision is None or not revision.strip():
        return None
    try:
        return check_revision(revision)
    except UsageError as exc:
        raise TargetError(str(exc)) from exc


def _parse(target: str) -> ModelRef:
    try:
        return ModelRef.parse(target, local=LocalTargets.PATHS_ONLY)
    except UsageError as exc:
        raise TargetError(str(exc)[:300]) from exc


def classify_target(target: str, settings: Settings) -> Target:
    """A hub repo id, or (when allowed) a local folder under a configured root. Raises TargetError. Parsed by the
    CLI's parser (scanner.fetch.ModelRef.parse) in its service mode: hub ids never resolve to local folders."""
    target = target.strip()
    if not target:
        raise TargetError("the target is empty: give a hub repo id (org/name)")
    ref = _parse(target)
    if ref.path is not None:
        return Target("local", str(local_folder(target, settings)))
    return Target("hub", str(ref.repo_id))


def local_folder(target: str, settings: Settings) -> Path:
    """The resolved folder of a local target, if local targets are allowed and it lies under a configured root."""
    if not settings.allow_local_targets:
        raise TargetError("local paths are not accepted as targets here (set PATRONUS_ALLOW_LOCAL_TARGETS=1)", 403)
    if not settings.local_roots:
        raise TargetError("local targets need PATRONUS_LOCAL_ROOTS (the folders they may come from)", 403)
    if not target.startswith("/"):
        raise TargetError("a local target must be an absolute path")
    try:
        path = Path(os.path.realpath(target))
    except (OSError, ValueError) as exc:
        raise TargetError("the local target cannot be resolved") from exc
    roots = [Path(os.path.realpath(root)) for root in settings.local_roots]
    if any(path == bad or path.is_relative_to(bad) for bad in FORBIDDEN_ROOTS) or not any(
        path.is_relative_to(root) for root in roots
    ):
        raise TargetError("local targets must lie inside PATRONUS_LOCAL_ROOTS", 403)
    if not path.is_dir():
        raise TargetError("the local target is not a directory")
    total = 0
    count = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            count += 1
            if count > MAX_LOCAL_FILES:
                raise TargetError(f"the local folder holds more than {MAX_LOCAL_FILES:,} files", 413)
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
            if total > settings.scan_max_size:
                raise TargetError(f"the local folder is over the size bound of {settings.scan_max_size:,} bytes", 413)
    return path
