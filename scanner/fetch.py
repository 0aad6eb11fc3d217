"""Fetch a model: a local folder as it is, or a partial download of a Hugging Face Hub repo pinned to a commit.

Hub downloads take only what a scan reads (config, tokenizer, model card, weights; safetensors preferred over
pickle) and list every other repo file in `Snapshot.skipped` with its reason. Code files are never downloaded and
nothing here imports transformers or runs model-supplied code. The hub endpoint is read at call time
(`endpoint=` argument, else the HF_ENDPOINT environment variable), not only when huggingface_hub is imported.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import yaml
from huggingface_hub import HfApi, constants, hf_hub_download
from huggingface_hub import errors as hf_errors
from huggingface_hub.file_download import repo_folder_name
from huggingface_hub.repocard import metadata_load
from huggingface_hub.utils import validate_repo_id
from tqdm.std import tqdm

from scanner import __version__, formats
from scanner.config import DEFAULT_MAX_SIZE, ScanConfig
from scanner.errors import FetchError, GatedRepoError, SizeLimitError, UsageError
from scanner.progress import Progress, silent
from scanner.report import Skipped

try:  # the HTTP client under huggingface_hub: httpx2 since 2.x, httpx before
    import httpx2 as _http
except ImportError:  # pragma: no cover - huggingface_hub 1.x
    import httpx as _http  # type: ignore[no-redef]

__all__ = [
    "DEFAULT_MAX_SIZE",
    "LocalTargets",
    "ModelRef",
    "Snapshot",
    "check_revision",
    "fetch",
    "hub_endpoint",
    "select_files",
]

MAX_LOCAL_FILES = 10_000  # a model folder holding more is almost certainly the wrong folder
MAX_CARD_BYTES = 1024**2  # README.md larger than this is not parsed for metadata
CARD_KEYS = ("base_model", "pipeline_tag", "tags", "license", "library_name")

CARD_FILE = "README.md"
CONFIG_FILES = frozenset(
    {
        "config.json",
        "modules.json",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
    }
)
TOKENIZER_FILES = frozenset(
    {
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "vocab.txt",
        "vocab.json",
        "merges.txt",
        "spiece.model",
        "sentencepiece.bpe.model",
        "tokenizer.model",
        "spm.model",
    }
)
TEMPLATE_FILES = frozenset({"chat_template.jinja", "chat_template.json"})
CODE_SUFFIXES = formats.CODE_SUFFIXES  # the one file-type table (scanner/formats.py)
IGNORED_DIRS = {".git": "version-control metadata", ".cache": "download cache metadata"}

CODE_REASON = "not downloaded: code is never executed"


# --------------------------------------------------------------------------------------------------- targets


class LocalTargets(StrEnum):
    """How a target string may name a local folder (the one target parser serves the CLI and the service)."""

    ANY = "any"  # the CLI: an existing folder (relative or absolute) is local, anything else a hub id
    PATHS_ONLY = "paths_only"  # the service: only a path-shaped string (/, ~, ./, ../) is local; a hub id never
    #                            resolves to a folder that happens to exist in the server's working directory


PATH_PREFIXES = ("/", "~", "./", "../", "\\")
MAX_REVISION = 255


def check_revision(revision: str | None) -> str | None:
    """A branch, tag or commit sha: printable ASCII without spaces, at most 255 characters, no '..'; None stays
    None. Raises UsageError."""
    if revision is None:
        return None
    revision = revision.strip()
    if not revision:
        raise UsageError("--revision must not be empty")
    if (
        len(revision) > MAX_REVISION
        or not revision.isascii()
        or not revision.isprintable()
        or " " in revision
        or ".." in revision
        or revision.startswith(("-", "/"))
    ):
        raise UsageError("revision must be a branch, tag or commit sha (letters, digits, . _ - /, at most 255)")
    return revision


@dataclass(frozen=True)
class ModelRef:
    """What to scan: a hub repo (`repo_id`, optional `revision`) or a local folder (`path`)."""

    repo_id: str | None = None
    path: Path | None = None
    revision: str | None = None

    def __post_init__(self) -> None:
        if (self.repo_id is None) == (self.path is None):
            raise UsageError("a model reference needs exactly one of a hub repo id or a local path")

    @classmethod
    def parse(cls, target: str, revision: str | None = None, local: LocalTargets = LocalTargets.ANY) -> ModelRef:
        """The one target parser. With LocalTargets.ANY (the CLI) an existing folder is local; otherwise (and always
        with PATHS_ONLY, the service) a path-shaped string is local (not resolved: the caller applies its roots)
        and anything else must be a valid hub repo id (huggingface_hub's own rules). Raises UsageError."""
        target = target.strip()
        revision = check_revision(revision)
        if not target:
            raise UsageError("TARGET is empty: give a model folder or a hub repo id such as org/name")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in target):
            raise UsageError("TARGET contains control characters")
        if local is LocalTargets.PATHS_ONLY:
            if target.startswith(PATH_PREFIXES) or target in (".", ".."):
                if revision is not None:
                    raise UsageError("a revision applies to hub repositories, not to a local folder")
                return cls(path=Path(target))
            if _is_repo_id(target):
                return cls(repo_id=target, revision=revision)
            raise UsageError(_bad_target_message(target))
        path = Path(target).expanduser()
        try:
            is_dir, exists = path.is_dir(), path.exists()
        except (OSError, ValueError):  # a name too long for the file system is no folder
            is_dir = exists = False
        if is_dir:
            if revision is not None:
                raise UsageError(f"--revision applies to hub repositories, not to the local folder {target}")
            return cls(path=path.resolve())
        if exists:
            raise UsageError(f"{target} is a file; TARGET must be a model folder or a hub repo id")
        if _is_repo_id(target):
            return cls(repo_id=target, revision=revision)
        raise UsageError(_bad_target_message(target))

    @property
    def is_local(self) -> bool:
        return self.path is not None

    @property
    def display(self) -> str:
        """How reports and logs name the target: `org/name@rev`, `org/name`, or the folder path."""
        if self.path is not None:
            return str(self.path)
        return f"{self.repo_id}@{self.revision}" if self.revision else str(self.repo_id)


def _is_repo_id(text: str) -> bool:
    """Hub naming rules: ASCII letters, digits, '-', '_', '.'; at most one '/'; no '--' or '..'."""
    if not text.isascii() or text.endswith(".git"):
        return False
    try:
        validate_repo_id(text)
    except hf_errors.HFValidationError:
        return False
    return True


def _bad_target_message(target: str) -> str:
    looks_like_path = target.startswith((".", "/", "~")) or target.count("/") > 1 or "\\" in target
    if looks_like_path:
        return f"folder {target} does not exist (TARGET must be a model folder or a hub repo id)"
    return (
        f"{target!r} is neither an existing folder nor a valid hub repo id "
        "(expected 'name' or 'org/name' with letters, digits, '-', '_' or '.')"
    )


# --------------------------------------------------------------------------------------------------- snapshot


@dataclass
class Snapshot:
    """A fetched model. Scan `downloaded` (the files present under `local_dir`), not whatever else lies there.

    files: every file of the repo or folder (relative, '/'-separated); downloaded: those available to the scan
    (for a local folder: all readable files); skipped: every file not made available, with its reason;
    size_bytes: total size of the files a scan reads (the selection the size bound applies to).
    """

    ref: ModelRef
    local_dir: Path
    sha: str | None
    source: Literal["hub", "local"]
    files: list[str] = field(default_factory=list)
    downloaded: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    card: dict[str, Any] = field(default_factory=dict)
    size_bytes: int = 0
    hub_security: dict[str, dict[str, Any]] = field(default_factory=dict)  # the hub's per-file security info


@dataclass
class Selection:
    """Which repo files a scan needs, what the rest are skipped for, and the needed bytes."""

    files: list[str]
    skipped: list[Skipped]
    size: int


def fetch(
    ref: ModelRef | str,
    *,
    token: str | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
    cache_dir: Path | str | None = None,
    progress: Progress = silent,
    endpoint: str | None = None,
) -> Snapshot:
    """Make `ref` available locally. Hub: pinned to the resolved commit, partial, cached; local: listed as is.

    Raises FetchError (network, missing repo or revision, over `max_size`), GatedRepoError (access refused) and
    UsageError (unusable local folder).
    """
    if isinstance(ref, str):
        ref = ModelRef.parse(ref)
    if ref.path is not None:
        return _fetch_local(ref, ref.path, max_size, progress)
    return _fetch_hub(
        ref, token=token, max_size=max_size, cache_dir=cache_dir, progress=progress, endpoint=hub_endpoint(endpoint)
    )


def fetch_for(ref: ModelRef, config: ScanConfig, progress: Progress = silent) -> Snapshot:
    """fetch() with a scan's token, size bound, cache and hub endpoint."""
    return fetch(
        ref,
        token=config.token,
        max_size=config.max_size,
        cache_dir=config.cache_dir,
        endpoint=config.hub_endpoint,
        progress=progress,
    )


def hub_endpoint(endpoint: str | None = None) -> str:
    """The hub to talk to: the argument, else HF_ENDPOINT as set now, else huggingface_hub's default."""
    chosen = endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
    return chosen.rstrip("/")


def default_cache_dir() -> Path:
    """Patronus' own download cache (hub cache layout), kept apart from other tools' cached files."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "patronus" / "hub"


# --------------------------------------------------------------------------------------------------- selection


def select_files(sizes: dict[str, int], max_size: int | None = None) -> Selection:
    """Pick what a scan reads from `{path: size}`; every other file goes to `skipped` with a reason.

    Required: configs, tokenizer and chat-template files, the card, the root safetensors (else the root pickle
    weights) and sentence-transformers module configs; they must fit `max_size` (else SizeLimitError). Then
    every other weight-bearing file of the repo (all pickles, archives, numpy, HDF5, ONNX, GGUF, ... anywhere in
    the tree, by the file-type table) is added, the formats whose loaders can run code first, smallest first,
    while the total stays within `max_size`; one that does not fit is skipped as too large with a severity that
    fails the default gate when its format can run code on load (the repo is partly unscanned).
    """
    has_safetensors = any(_is_root(p) and p.endswith(".safetensors") for p in sizes)
    chosen: list[str] = []
    optional: list[str] = []
    skipped: list[Skipped] = []
    for path in sorted(sizes):
        verdict = _classify(path, has_safetensors)
        if verdict is None:
            chosen.append(path)
        elif verdict[0] == "weights":
            optional.append(path)
        else:
            skipped.append(Skipped(path=path, category=verdict[0], reason=verdict[1]))
    size = sum(sizes[p] for p in chosen)
    if max_size is not None:
        _check_size(size, max_size)
    for path in sorted(optional, key=lambda p: (not _executes(p), sizes[p], p)):
        if max_size is None or size + sizes[path] <= max_size:
            chosen.append(path)
            size += sizes[path]
            continue
        executes = _executes(path)
        skipped.append(
            Skipped(
                path=path,
                category="too_large",
                severity="high" if executes else "medium",
                reason=f"weight-bearing file not downloaded: {_human(sizes[path])} would take the download over "
                f"--max-size {_human(max_size)}; not scanned"
                + (" (its format can run code when loaded)" if executes else ""),
            )
        )
    return Selection(files=sorted(chosen), skipped=skipped, size=size)


def _executes(path: str) -> bool:
    row = formats.by_name(path)
    return row is None or row.executes_on_load


def _classify(path: str, has_safetensors: bool) -> tuple[str, str] | None:
    """None when a scan needs `path`; ("weights", "") for another weight-bearing file (downloaded within the
    size budget); else (category, reason) for skipping it."""
    pure = PurePosixPath(path)
    row = formats.by_name(path)
    if row is not None and row.kind in (formats.CODE, formats.EXECUTABLE):
        return "code", CODE_REASON
    if _is_root(path) and (
        pure.name in CONFIG_FILES
        or pure.name in TOKENIZER_FILES
        or pure.name == CARD_FILE
        or pure.name in TEMPLATE_FILES
    ):
        return None
    if _is_module_config(pure):
        return None
    if _is_root(path) and (pure.suffix == ".safetensors" or pure.name.endswith(".safetensors.index.json")):
        return None
    if (
        _is_root(path)
        and not has_safetensors
        and ((row is not None and row.name == "pytorch") or pure.name.endswith(".bin.index.json"))
    ):
        return None
    if formats.is_weight_bearing(path) and not pure.name.endswith(".index.json"):
        return "weights", ""
    if pure.name.endswith(".index.json"):
        return "not_model_file", "not downloaded: an index of weights not read (its weights are)"
    return "not_model_file", "not downloaded: not needed for a scan"


def _is_root(path: str) -> bool:
    return "/" not in path


def _is_module_config(pure: PurePosixPath) -> bool:
    """sentence-transformers module configs such as 1_Pooling/config.json (pooling decides the embedding)."""
    return len(pure.parts) == 2 and pure.name == "config.json" and pure.parts[0].split("_")[0].isdigit()


def _check_size(size: int, max_size: int) -> None:
    if size > max_size:
        raise SizeLimitError(f"model is {_human(size)}, over --max-size {_human(max_size)}")


def _human(n: int) -> str:
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


# --------------------------------------------------------------------------------------------------- local


def _fetch_local(ref: ModelRef, folder: Path, max_size: int, progress: Progress) -> Snapshot:
    """List a local folder (no symlinks leading outside it), check the size bound, read the card."""
    progress("fetch", 0.0, f"listing {folder}")
    if not folder.is_dir():
        raise UsageError(f"folder {folder} does not exist")
    sizes, skipped = _list_folder(folder)
    selection = select_files(sizes)  # every file stays readable; the bound applies to what a scan needs
    has_safetensors = any(_is_root(p) and p.endswith(".safetensors") for p in sizes)
    _check_size(sum(size for p, size in sizes.items() if _classify(p, has_safetensors) is None), max_size)
    card = card_from_readme(folder / CARD_FILE) if CARD_FILE in sizes else {}
    progress("fetch", 1.0, f"{len(sizes)} files in {folder}")
    files = sorted(sizes)
    return Snapshot(
        ref=ref,
        local_dir=folder,
        sha=None,
        source="local",
        files=files,
        downloaded=list(files),
        skipped=skipped,
        card=card,
        size_bytes=selection.size,
    )


def _list_folder(folder: Path) -> tuple[dict[str, int], list[Skipped]]:
    """{relative path: size} of the regular files under `folder`, and what was left out and why."""
    roots = _allowed_roots(folder)
    sizes: dict[str, int] = {}
    skipped: list[Skipped] = []
    for rel, entry in _walk(folder, "", skipped):
        size = _entry_size(entry, rel, roots, skipped)
        if size is None:
            continue
        sizes[rel] = size
        if len(sizes) > MAX_LOCAL_FILES:
            raise UsageError(f"{folder} holds more than {MAX_LOCAL_FILES} files; point TARGET at a model folder")
    return sizes, skipped


def _walk(folder: Path, prefix: str, skipped: list[Skipped]) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """Depth-first over `folder` without following symlinked folders."""
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            rel = f"{prefix}{entry.name}"
            if entry.is_dir(follow_symlinks=False):
                if entry.name in IGNORED_DIRS:
                    skipped.append(Skipped(rel, "not_needed", f"not listed: {IGNORED_DIRS[entry.name]}"))
                else:
                    yield from _walk(Path(entry.path), f"{rel}/", skipped)
            else:
                yield rel, entry


def _entry_size(entry: os.DirEntry[str], rel: str, roots: list[Path], skipped: list[Skipped]) -> int | None:
    """Size of a regular file (or of a symlink's target inside `roots`); None, with a Skipped, otherwise."""
    if entry.is_symlink():
        target = Path(entry.path).resolve()
        if not any(target.is_relative_to(root) for root in roots):
            skipped.append(Skipped(rel, "symlink", "not read: symlink points outside the model folder"))
            return None
        if target.is_dir():
            skipped.append(Skipped(rel, "symlink", "not followed: symlinked folder"))
            return None
        if not target.is_file():
            skipped.append(Skipped(rel, "symlink", "not read: broken symlink"))
            return None
        return target.stat().st_size
    info = entry.stat(follow_symlinks=False)
    if not stat.S_ISREG(info.st_mode):
        skipped.append(Skipped(rel, "not_needed", "not read: not a regular file"))
        return None
    return info.st_size


def _allowed_roots(folder: Path) -> list[Path]:
    """Where symlinks may point: the folder, plus the blob store when it is a hub-cache snapshot folder."""
    folder = folder.resolve()
    roots = [folder]
    if folder.parent.name == "snapshots":
        roots.append(folder.parent.parent / "blobs")
    return roots


def card_from_readme(path: Path) -> dict[str, Any]:
    """Model-card metadata (YAML front matter) from a README.md; {} when absent or unreadable."""
    try:
        if path.stat().st_size > MAX_CARD_BYTES:
            return {}
        data = metadata_load(path)
    except (OSError, ValueError, yaml.YAMLError):  # a broken card must not fail a scan
        return {}
    return _pick_card(data or {})


def _pick_card(data: dict[str, Any]) -> dict[str, Any]:
    return {key: data[key] for key in CARD_KEYS if data.get(key) not in (None, "", [])}


# --------------------------------------------------------------------------------------------------- hub


def _fetch_hub(
    ref: ModelRef,
    *,
    token: str | None,
    max_size: int,
    cache_dir: Path | str | None,
    progress: Progress,
    endpoint: str,
) -> Snapshot:
    """Resolve the revision to a commit, select files, check the size bound, download pinned to the commit."""
    assert ref.repo_id is not None
    token = token or os.environ.get("HF_TOKEN") or None
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    progress("fetch", 0.0, f"resolving {ref.display} on {endpoint}")
    with _hub_errors(ref, endpoint, token):
        info = HfApi(endpoint=endpoint, library_name="patronus-scanner", library_version=__version__).model_info(
            ref.repo_id, revision=ref.revision, files_metadata=True, token=token
        )
    if not info.sha:
        raise FetchError(f"{endpoint} did not say which commit {ref.display} is at")
    sizes = {s.rfilename: _sibling_size(s) for s in info.siblings or []}
    selection = select_files(sizes, max_size)
    hub_security = _hub_security(ref, info.sha, token=token, endpoint=endpoint)
    local_dir = cache / repo_folder_name(repo_id=ref.repo_id, repo_type="model") / "snapshots" / info.sha
    with _hub_errors(ref, endpoint, token):
        _download(
            ref.repo_id, info.sha, selection, sizes, token=token, cache=cache, endpoint=endpoint, progress=progress
        )
    local_dir.mkdir(parents=True, exist_ok=True)
    card = _hub_card(info, local_dir, selection.files)
    return Snapshot(
        ref=ref,
        local_dir=local_dir,
        sha=info.sha,
        source="hub",
        files=sorted(sizes),
        downloaded=selection.files,
        skipped=selection.skipped,
        card=card,
        size_bytes=selection.size,
        hub_security=hub_security,
    )


def _hub_security(ref: ModelRef, sha: str, *, token: str | None, endpoint: str) -> dict[str, dict[str, Any]]:
    """The hub's own per-file security info (`list_repo_tree(expand=True)`: status, AV scan, pickle-import
    scan), {path: info}; {} when the hub does not serve it (a second opinion, never a reason to fail)."""
    assert ref.repo_id is not None
    api = HfApi(endpoint=endpoint, library_name="patronus-scanner", library_version=__version__)
    try:
        entries = api.list_repo_tree(ref.repo_id, revision=sha, recursive=True, expand=True, token=token)
        found: dict[str, dict[str, Any]] = {}
        for entry in entries:
            security = getattr(entry, "security", None)
            if security is not None:
                found[entry.path] = dict(security)
        return found
    except (hf_errors.HfHubHTTPError, _http.TransportError, ConnectionError, OSError, ValueError, KeyError, TypeError):
        return {}


def _sibling_size(sibling: Any) -> int:
    if sibling.size is not None:
        return int(sibling.size)
    return int(sibling.lfs.size) if sibling.lfs else 0


def _download(
    repo_id: str,
    sha: str,
    selection: Selection,
    sizes: dict[str, int],
    *,
    token: str | None,
    cache: Path,
    endpoint: str,
    progress: Progress,
) -> None:
    """Download the selected files at commit `sha`; files already cached for that commit cost no request."""
    meter = _Meter(progress, max(selection.size, 1))
    for name in selection.files:
        meter.start(name)
        hf_hub_download(
            repo_id,
            name,
            revision=sha,
            cache_dir=cache,
            token=token,
            endpoint=endpoint,
            library_name="patronus-scanner",
            library_version=__version__,
            tqdm_class=meter.bar_class(),
        )
        meter.finish(sizes[name])
    progress("fetch", 1.0, f"{len(selection.files)} files at {sha[:12]}")


class _Meter:
    """Turns per-chunk download counts into `progress("fetch", fraction, message)` calls."""

    def __init__(self, progress: Progress, total: int) -> None:
        self.progress = progress
        self.total = total
        self.done = 0  # bytes of finished files
        self.current = 0  # bytes of the file being downloaded
        self.name = ""

    def start(self, name: str) -> None:
        self.name, self.current = name, 0

    def advance(self, n: int) -> None:
        self.current += n
        self.progress("fetch", min((self.done + self.current) / self.total, 1.0), f"downloading {self.name}")

    def finish(self, size: int) -> None:
        self.done += size
        self.progress("fetch", min(self.done / self.total, 1.0), f"have {self.name}")

    def bar_class(self) -> type[tqdm]:
        """A silent tqdm whose updates feed this meter (huggingface_hub drives it while streaming)."""
        meter = self

        class _Bar(tqdm):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                kwargs.pop("name", None)
                kwargs["disable"] = True
                super().__init__(*args, **kwargs)

            def update(self, n: float | None = 1) -> bool | None:
                meter.advance(int(n or 0))
                return super().update(n)

        return _Bar


def _hub_card(info: Any, local_dir: Path, downloaded: list[str]) -> dict[str, Any]:
    """Card metadata from the hub's cardData (else the downloaded README.md), completed by the repo info."""
    card_data = getattr(info, "card_data", None)
    if card_data is not None:
        card = _pick_card(card_data.to_dict())
    elif CARD_FILE in downloaded:
        card = card_from_readme(local_dir / CARD_FILE)
    else:
        card = {}
    for key, value in (("pipeline_tag", info.pipeline_tag), ("library_name", info.library_name), ("tags", info.tags)):
        if value and key not in card:
            card[key] = value
    return card


@contextmanager
def _hub_errors(ref: ModelRef, endpoint: str, token: str | None) -> Iterator[None]:
    """Translate huggingface_hub and transport errors into FetchError / GatedRepoError with actionable text."""
    try:
        yield
    except hf_errors.GatedRepoError as exc:
        raise GatedRepoError(_gated_message(ref, endpoint, token)) from exc
    except hf_errors.RevisionNotFoundError as exc:
        raise FetchError(f"revision {ref.revision!r} not found in {ref.repo_id} on {endpoint}") from exc
    except hf_errors.RepositoryNotFoundError as exc:
        hint = "" if token else " (a private repository needs --token or HF_TOKEN)"
        raise FetchError(f"repository {ref.repo_id} not found on {endpoint}{hint}") from exc
    except hf_errors.RemoteEntryNotFoundError as exc:
        raise FetchError(f"{ref.display}: a listed file is missing on {endpoint}: {_first_line(exc)}") from exc
    except hf_errors.HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        detail = _first_line(exc.server_message or "") or _first_line(exc)
        if status in (401, 403):
            raise GatedRepoError(
                f"{endpoint} refused access to {ref.repo_id} ({status}: {detail}); check --token or HF_TOKEN"
            ) from exc
        raise FetchError(f"{endpoint} answered {status} for {ref.display}: {detail}") from exc
    except hf_errors.LocalEntryNotFoundError as exc:
        raise FetchError(f"cannot download {ref.display} from {endpoint}: {_first_line(exc)}") from exc
    except (_http.TransportError, ConnectionError) as exc:
        raise FetchError(f"cannot reach {endpoint}: {_first_line(exc) or type(exc).__name__}") from exc
    except OSError as exc:
        raise FetchError(f"download of {ref.display} failed: {_first_line(exc) or type(exc).__name__}") from exc


def _gated_message(ref: ModelRef, endpoint: str, token: str | None) -> str:
    where = f"{endpoint}/{ref.repo_id}"
    if token:
        return f"the token given has no access to gated repository {ref.repo_id}: request access at {where}"
    return f"repository {ref.repo_id} is gated: request access at {where}, then pass --token or set HF_TOKEN"


def _first_line(exc: BaseException | str) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else ""
