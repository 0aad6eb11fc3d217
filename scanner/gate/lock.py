"""patronus.lock: per adopted model, what was approved (JSON, schema `patronus.lock/1`, sorted and diff-friendly).

An entry records the resolved commit sha, the scanned files' sha256, the verdict, probability and severity, the
engine version and scan config hash, and the report digest. `patronus gate --locked` fails a model whose resolved
sha (or, for a local folder, whose files) differ from its entry; `patronus lock` rewrites the entries after scanning.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scanner.errors import PolicyError

LOCK_SCHEMA = "patronus.lock/1"


@dataclass
class LockEntry:
    model: str
    revision: str | None
    sha: str | None
    files: dict[str, str] = field(default_factory=dict)  # path -> sha256 hex
    verdict: str | None = None
    probability: float | None = None
    severity: str | None = None
    engine_version: int | None = None
    config_hash: str | None = None
    report_digest: str | None = None
    scanned_at: str | None = None
    source: str = "hub"

    @property
    def key(self) -> str:
        return lock_key(self.model, self.revision)


def lock_key(model: str, revision: str | None) -> str:
    return f"{model}@{revision}" if revision else model


@dataclass
class LockFile:
    entries: dict[str, LockEntry] = field(default_factory=dict)
    path: Path | None = None

    def get(self, model: str, revision: str | None) -> LockEntry | None:
        return self.entries.get(lock_key(model, revision))

    def put(self, entry: LockEntry) -> None:
        self.entries[entry.key] = entry

    def to_json(self) -> str:
        data = {"schema": LOCK_SCHEMA, "models": {key: asdict(self.entries[key]) for key in sorted(self.entries)}}
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    def pins(self) -> dict[str, tuple]:
        """What the lock pins, per entry (sha, files, engine, config); not when or how often it was scanned."""
        return {
            key: (e.sha, tuple(sorted(e.files.items())), e.engine_version, e.config_hash)
            for key, e in self.entries.items()
        }

    def write(self, path: Path | None = None) -> Path:
        target = path or self.path
        if target is None:
            raise ValueError("no lock path")
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        tmp.replace(target)
        return target


def read_lock(path: Path) -> LockFile:
    """The lock at `path`; an empty one when the file does not exist; PolicyError when it is malformed."""
    if not path.exists():
        return LockFile(path=path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("schema") != LOCK_SCHEMA:
            raise ValueError(f"schema {data.get('schema')!r}, expected {LOCK_SCHEMA}")
        entries = {key: LockEntry(**value) for key, value in data.get("models", {}).items()}
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise PolicyError(f"cannot read lock file {path}: {exc}") from exc
    return LockFile(entries=entries, path=path)


def file_hashes(folder: Path, names: list[str]) -> dict[str, str]:
    """sha256 of each of `names` under `folder` (symlinks followed: hub snapshots link into the blob store)."""
    hashes: dict[str, str] = {}
    for name in sorted(names):
        path = folder / name
        if not path.is_file():
            continue
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        hashes[name] = digest.hexdigest()
    return hashes


def content_digest(hashes: dict[str, str]) -> str:
    """One digest over a folder's file hashes: the identity of a local model (it has no commit sha)."""
    blob = json.dumps(hashes, sort_keys=True).encode()
    return "files-" + hashlib.sha256(blob).hexdigest()[:40]


def report_digest(report_json: str) -> str:
    return "sha256:" + hashlib.sha256(report_json.encode()).hexdigest()


def drift(entry: LockEntry, sha: str | None, hashes: dict[str, str]) -> str | None:
    """Why the resolved model differs from its lock entry, or None."""
    if entry.sha != sha:
        return f"resolved to {sha} but patronus.lock records {entry.sha}"
    changed = sorted(name for name in set(entry.files) | set(hashes) if entry.files.get(name) != hashes.get(name))
    if changed:
        return f"files differ from patronus.lock: {', '.join(changed[:10])}"
    return None


def entry_to_dict(entry: LockEntry) -> dict[str, Any]:
    return asdict(entry)
