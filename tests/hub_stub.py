"""A loopback stand-in for the Hugging Face Hub, speaking what huggingface_hub 2.4 calls (no internet needed).

Endpoints (point huggingface_hub at `stub.url`, e.g. with HF_ENDPOINT or `endpoint=`):
- GET /api/models/{repo_id}[/revision/{rev}]   model info: sha, siblings (sizes and LFS data with blobs=true),
  cardData (from the commit's README.md front matter), tags, pipeline_tag, library_name, dates, gated, private
- HEAD/GET /{repo_id}/resolve/{rev}/{filename}  file metadata and content: X-Repo-Commit, ETag, X-Linked-Etag and
  X-Linked-Size for LFS files, Content-Length, Range requests
- GET /api/models/{repo_id}/tree/{rev}[/{path}]   repo tree (recursive), with expand=True the last commit and the
  per-file security info (`securityFileStatus`: status, avScan, pickleImportScan) set with `set_security`
- POST /api/models/{repo_id}/paths-info/{rev}   the same entries for the listed paths (form fields paths, expand)
- GET /api/models   listing with filter / pipeline_tag / library / author / search / gated, sort
  (createdAt, lastModified, downloads, likes, id) and direction, limit as page size, Link rel="next" cursors,
  expand / full / cardData field selection
Errors carry X-Error-Code (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo) and X-Error-Message like the
hub, so huggingface_hub raises its own typed errors. Every request is logged (`stub.log`) for assertions.

    with HubStub() as hub:
        sha = hub.add_repo("org/tiny", {"config.json": b"{}"})
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import yaml

DEFAULT_TOKEN = "hf_stub_valid_token"
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
LFS_SUFFIXES = frozenset(
    {
        ".safetensors",
        ".bin",
        ".pt",
        ".pth",
        ".ckpt",
        ".onnx",
        ".h5",
        ".msgpack",
        ".gguf",
        ".model",
        ".tflite",
        ".ot",
    }
)
LFS_MIN_SIZE = 10 * 1024**2
SORT_KEYS = ("createdAt", "lastModified", "downloads", "likes", "trendingScore", "id")
BASE_LIST_FIELDS = (
    "likes",
    "downloads",
    "trendingScore",
    "private",
    "tags",
    "pipeline_tag",
    "library_name",
    "createdAt",
)
FULL_LIST_FIELDS = ("author", "sha", "lastModified", "gated", "disabled", "siblings")

_SHA_RE = re.compile(r"[0-9a-f]{40}")
_REPO = r"(?P<repo>[^/]+(?:/[^/]+)?)"
_INFO_RE = re.compile(rf"/api/models/{_REPO}(?:/revision/(?P<rev>[^/]+))?")
_TREE_RE = re.compile(rf"/api/models/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?")
_PATHS_INFO_RE = re.compile(rf"/api/models/{_REPO}/paths-info/(?P<rev>[^/]+)")
_RESOLVE_RE = re.compile(rf"/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<file>.+)")
_YAML_BLOCK = re.compile(r"\A\s*---\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.S)


# --------------------------------------------------------------------------------------------------- data


@dataclass
class Commit:
    sha: str
    files: dict[str, bytes]
    date: datetime
    message: str = ""


@dataclass
class StubRepo:
    """One model repository: commits, refs (branches and tags) and hub metadata."""

    repo_id: str
    created_at: datetime
    commits: dict[str, Commit] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    gated: bool = False
    private: bool = False
    allowed_tokens: set[str] | None = None  # None: every valid token may read a gated/private repo
    pipeline_tag: str | None = None
    library_name: str | None = "transformers"
    tags: list[str] = field(default_factory=list)
    downloads: int = 0
    likes: int = 0
    security: dict[str, dict[str, Any]] = field(default_factory=dict)  # path -> the hub's securityFileStatus

    def resolve(self, revision: str | None) -> Commit | None:
        """A branch, tag or full commit sha -> the commit; None when unknown."""
        revision = revision or "main"
        sha = self.refs.get(revision, revision)
        return self.commits.get(sha)

    @property
    def head(self) -> Commit:
        return self.commits[self.refs["main"]]


@dataclass(frozen=True)
class LoggedRequest:
    """One request the stub answered. kind: model_info | resolve | list_models | unknown."""

    method: str
    path: str
    query: dict[str, list[str]]
    token: str | None
    status: int
    kind: str
    repo_id: str | None = None
    revision: str | None = None
    filename: str | None = None


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class _HubError(Exception):
    """An error answer in the hub's shape."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: Mapping[str, str] = ()) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, dict(headers)

    def response(self) -> _Response:
        headers = {"X-Error-Message": self.message, **self.headers}
        if self.code:
            headers["X-Error-Code"] = self.code
        return _json_response({"error": self.message}, self.status, headers)


# --------------------------------------------------------------------------------------------------- server


class HubStub:
    """A Hugging Face Hub stand-in on 127.0.0.1 (random port), in a background thread."""

    def __init__(
        self, *, tokens: Iterable[str] = (DEFAULT_TOKEN,), page_size: int = 1000, bytes_per_s: float | None = None
    ) -> None:
        self.tokens = set(tokens)
        self.page_size = page_size
        self.bytes_per_s = bytes_per_s  # each answer body sent at this rate (a network's bandwidth), None: at once
        self.repos: dict[str, StubRepo] = {}
        self._log: list[LoggedRequest] = []
        self._lock = threading.RLock()
        self._clock = EPOCH
        self._counter = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> HubStub:
        """Listen on a free loopback port; returns self."""
        if self._server is not None:
            return self
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.stub = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="hub-stub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server, self._thread = None, None

    def __enter__(self) -> HubStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL to use as HF_ENDPOINT, e.g. http://127.0.0.1:40123."""
        if self._server is None:
            raise RuntimeError("HubStub is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # content ------------------------------------------------------------------------------------------------

    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, bytes],
        sha: str | None = None,
        *,
        gated: bool = False,
        private: bool = False,
        allowed_tokens: Iterable[str] | None = None,
        card_data: Mapping[str, Any] | None = None,
        created_at: datetime | str | None = None,
        pipeline_tag: str | None = None,
        library_name: str | None = "transformers",
        tags: Iterable[str] | None = None,
        downloads: int = 0,
        likes: int = 0,
    ) -> str:
        """Create a repo whose `main` holds `files`; returns the commit sha.

        card_data becomes README.md front matter unless `files` has a README.md (which then wins). tags default to
        [library_name, pipeline_tag] like the hub's derived tags.
        """
        with self._lock:
            if repo_id in self.repos:
                raise ValueError(f"repo {repo_id} already exists; use add_commit")
            files = dict(files)
            if card_data is not None and "README.md" not in files:
                files["README.md"] = _readme(repo_id, card_data)
            default_tags = [t for t in (library_name, pipeline_tag) if t]
            self.repos[repo_id] = StubRepo(
                repo_id=repo_id,
                created_at=self._tick(created_at),
                gated=gated,
                private=private,
                allowed_tokens=set(allowed_tokens) if allowed_tokens is not None else None,
                pipeline_tag=pipeline_tag,
                library_name=library_name,
                tags=list(tags) if tags is not None else default_tags,
                downloads=downloads,
                likes=likes,
            )
            return self.add_commit(
                repo_id, files, sha=sha, replace=True, date=self.repos[repo_id].created_at, message="initial commit"
            )

    def add_commit(
        self,
        repo_id: str,
        files: Mapping[str, bytes | None],
        *,
        sha: str | None = None,
        branch: str = "main",
        replace: bool = False,
        message: str = "",
        date: datetime | str | None = None,
    ) -> str:
        """Commit on `branch` (created if new): the parent's files updated with `files` (None deletes a file), or
        exactly `files` with replace=True. Returns the new commit sha."""
        with self._lock:
            repo = self.repos[repo_id]
            parent = repo.commits.get(repo.refs.get(branch, ""))
            content = {} if replace or parent is None else dict(parent.files)
            for name, data in files.items():
                if data is None:
                    content.pop(name, None)
                else:
                    content[name] = bytes(data)
            sha = sha or self._new_sha(repo_id, content)
            if not _SHA_RE.fullmatch(sha) or sha in repo.commits:
                raise ValueError(f"commit sha must be 40 lowercase hex digits and new: {sha!r}")
            repo.commits[sha] = Commit(sha=sha, files=content, date=self._tick(date), message=message)
            repo.refs[branch] = sha
            return sha

    def set_ref(self, repo_id: str, name: str, sha: str) -> None:
        """Point a branch or tag `name` at an existing commit."""
        with self._lock:
            repo = self.repos[repo_id]
            if sha not in repo.commits:
                raise KeyError(f"{repo_id} has no commit {sha}")
            repo.refs[name] = sha

    def set_security(
        self,
        repo_id: str,
        path: str,
        status: str = "unsafe",
        *,
        pickle_imports: Iterable[tuple[str, str, str]] | None = None,
        virus_names: Iterable[str] | None = None,
    ) -> None:
        """The hub's own verdict on one file, served by the tree and paths-info endpoints with expand=True.
        status: safe | unsafe | suspicious | caution; pickle_imports: (module, name, safety) triples such as
        ("os", "system", "dangerous"); virus_names: what the AV scan found."""
        imports = [{"module": m, "name": n, "safety": safety} for m, n, safety in pickle_imports or ()]
        levels = [i["safety"] for i in imports]
        highest = next((lvl for lvl in ("dangerous", "suspicious", "innocuous") if lvl in levels), None)
        viruses = list(virus_names or ())
        with self._lock:
            self.repos[repo_id].security[path] = {
                "status": status,
                "avScan": {"virusFound": bool(viruses), "virusNames": viruses or None},
                "pickleImportScan": {"highestSafetyLevel": highest, "imports": imports} if imports else None,
            }

    # request log --------------------------------------------------------------------------------------------

    @property
    def log(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log)

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def requests(
        self, kind: str | None = None, method: str | None = None, repo_id: str | None = None
    ) -> list[LoggedRequest]:
        """Logged requests filtered by kind, method and repo."""
        return [
            r
            for r in self.log
            if (kind is None or r.kind == kind)
            and (method is None or r.method == method)
            and (repo_id is None or r.repo_id == repo_id)
        ]

    def downloaded_files(self, repo_id: str | None = None) -> list[str]:
        """Filenames whose content was served (successful GET on /resolve), in request order."""
        return [
            r.filename
            for r in self.requests("resolve", "GET", repo_id)
            if r.filename is not None and r.status in (200, 206)
        ]

    # internals ----------------------------------------------------------------------------------------------

    def _tick(self, when: datetime | str | None = None) -> datetime:
        """A deterministic clock: one minute per event unless a time is given."""
        if when is None:
            self._clock += timedelta(minutes=1)
            return self._clock
        moment = datetime.fromisoformat(when.replace("Z", "+00:00")) if isinstance(when, str) else when
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        self._clock = max(self._clock, moment)
        return moment

    def _new_sha(self, repo_id: str, files: Mapping[str, bytes]) -> str:
        self._counter += 1
        digest = hashlib.sha1(f"{repo_id}:{self._counter}".encode())
        for name in sorted(files):
            digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
        return digest.hexdigest()

    def _record(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._log.append(entry)

    def dispatch(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes = b"") -> _Response:
        """Answer one request (the HTTP handler's only call); logs it."""
        split = urlsplit(raw_path)
        query = parse_qsl(split.query, keep_blank_values=True)
        token = _bearer(headers)
        meta: dict[str, Any] = {"kind": "unknown"}
        try:
            if token is not None and token not in self.tokens:
                raise _HubError(401, "Invalid credentials in Authorization header")
            response = self._route(split.path, query, token, meta, body)
        except _HubError as exc:
            response = exc.response()
        self._record(
            LoggedRequest(
                method=method,
                path=unquote(split.path),
                query=_multi(query),
                token=token,
                status=response.status,
                **meta,
            )
        )
        return response

    def _route(
        self, path: str, query: list[tuple[str, str]], token: str | None, meta: dict[str, Any], body: bytes = b""
    ) -> _Response:
        if path.rstrip("/") == "/api/models":
            meta["kind"] = "list_models"
            return self._list_models(query, token)
        if match := _PATHS_INFO_RE.fullmatch(path):
            repo_id, rev = unquote(match["repo"]), unquote(match["rev"])
            meta.update(kind="paths_info", repo_id=repo_id, revision=rev)
            form = _multi(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            return self._paths_info(
                repo_id, rev, form.get("paths", []), token, expand=_truthy(form.get("expand", [""])[-1])
            )
        if match := _TREE_RE.fullmatch(path):
            repo_id, rev = unquote(match["repo"]), unquote(match["rev"])
            meta.update(kind="tree", repo_id=repo_id, revision=rev)
            params = _multi(query)
            return self._tree(
                repo_id,
                rev,
                unquote(match["path"] or ""),
                token,
                recursive=_truthy(params.get("recursive", [""])[-1]),
                expand=_truthy(params.get("expand", [""])[-1]),
            )
        if match := _INFO_RE.fullmatch(path):
            repo_id, rev = unquote(match["repo"]), unquote(match["rev"]) if match["rev"] else None
            meta.update(kind="model_info", repo_id=repo_id, revision=rev)
            return self._model_info(repo_id, rev, query, token)
        if match := _RESOLVE_RE.fullmatch(path):
            repo_id, rev, name = unquote(match["repo"]), unquote(match["rev"]), unquote(match["file"])
            meta.update(kind="resolve", repo_id=repo_id, revision=rev, filename=name)
            return self._resolve(repo_id, rev, name, token)
        raise _HubError(404, f"Sorry, we can't find the page you are looking for: {path}")

    # endpoints ----------------------------------------------------------------------------------------------

    def _model_info(self, repo_id: str, rev: str | None, query: list[tuple[str, str]], token: str | None) -> _Response:
        with self._lock:
            repo = self._readable_repo(repo_id, token, files=False)
            commit = self._commit(repo, rev)
            params = _multi(query)
            blobs = _truthy(params.get("blobs", [""])[-1])
            data = _model_json(repo, commit, blobs=blobs)
        expand = params.get("expand", []) + params.get("expand[]", [])
        if expand:
            data = {k: v for k, v in data.items() if k in ("_id", "id", *expand)}
        return _json_response(data)

    def _tree(
        self, repo_id: str, rev: str, folder: str, token: str | None, *, recursive: bool, expand: bool
    ) -> _Response:
        with self._lock:
            repo = self._readable_repo(repo_id, token, files=False)
            commit = self._commit(repo, rev)
            prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
            entries: dict[str, dict[str, Any]] = {}
            for name, data in sorted(commit.files.items()):
                if not name.startswith(prefix):
                    continue
                rest = name[len(prefix) :]
                if "/" in rest and not recursive:
                    sub = prefix + rest.split("/")[0]
                    entries.setdefault(sub, {"type": "directory", "path": sub, "oid": _git_blob_id(sub.encode())})
                    continue
                if recursive:
                    parts = rest.split("/")[:-1]
                    for depth in range(1, len(parts) + 1):
                        sub = prefix + "/".join(parts[:depth])
                        entries.setdefault(sub, {"type": "directory", "path": sub, "oid": _git_blob_id(sub.encode())})
                entries[name] = _tree_file(repo, commit, name, data, expand)
        if prefix and not entries:
            raise _HubError(404, f"Entry not found: {folder}", "EntryNotFound")
        return _json_response(list(entries.values()))

    def _paths_info(self, repo_id: str, rev: str, paths: list[str], token: str | None, *, expand: bool) -> _Response:
        with self._lock:
            repo = self._readable_repo(repo_id, token, files=False)
            commit = self._commit(repo, rev)
            found = [_tree_file(repo, commit, p, commit.files[p], expand) for p in paths if p in commit.files]
        return _json_response(found)

    def _resolve(self, repo_id: str, rev: str, name: str, token: str | None) -> _Response:
        with self._lock:
            repo = self._readable_repo(repo_id, token, files=True)
            commit = self._commit(repo, rev)
            if name not in commit.files:
                raise _HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit.sha})
            content = commit.files[name]
        headers = {"X-Repo-Commit": commit.sha, "Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        if _is_lfs(name, content):
            sha256 = hashlib.sha256(content).hexdigest()
            headers.update({"ETag": f'"{sha256}"', "X-Linked-Etag": f'"{sha256}"', "X-Linked-Size": str(len(content))})
        else:
            headers["ETag"] = f'"{_git_blob_id(content)}"'
        return _Response(200, content, headers)

    def _list_models(self, query: list[tuple[str, str]], token: str | None) -> _Response:
        params = _multi(query)
        with self._lock:
            repos = [r for r in self.repos.values() if _listed(r, params, self._can_read(r, token))]
            repos = _sorted_repos(repos, params)
            offset = _decode_cursor(params.get("cursor", [""])[-1])
            size = min(_int_param(params, "limit", self.page_size), self.page_size)
            page = repos[offset : offset + size]
            items = [_list_item(r, params) for r in page]
        headers = {}
        if offset + size < len(repos):
            rest = [(k, v) for k, v in query if k != "cursor"] + [("cursor", _encode_cursor(offset + size))]
            headers["Link"] = f'<{self.url}/api/models?{urlencode(rest)}>; rel="next"'
        return _json_response(items, headers=headers)

    # access -------------------------------------------------------------------------------------------------

    def _can_read(self, repo: StubRepo, token: str | None) -> bool:
        return token is not None and (repo.allowed_tokens is None or token in repo.allowed_tokens)

    def _readable_repo(self, repo_id: str, token: str | None, *, files: bool) -> StubRepo:
        """The repo if this token may see it (metadata) or read it (files); hub-shaped errors otherwise."""
        repo = self.repos.get(repo_id)
        if repo is None or (repo.private and not self._can_read(repo, token)):
            status = 401 if token is None else 404
            raise _HubError(status, "Repository not found", "RepoNotFound")
        if files and repo.gated and not self._can_read(repo, token):
            if token is None:
                raise _HubError(
                    401,
                    f"Access to model {repo_id} is restricted. You must have access to it and be "
                    "authenticated to access it. Please log in.",
                    "GatedRepo",
                )
            raise _HubError(
                403,
                f"Access to model {repo_id} is restricted and you are not in the authorized list. "
                f"Visit {self.url}/{repo_id} to ask for access.",
                "GatedRepo",
            )
        return repo

    def _commit(self, repo: StubRepo, rev: str | None) -> Commit:
        commit = repo.resolve(rev)
        if commit is None:
            raise _HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return commit


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._serve("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve("HEAD")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def _serve(self, method: str) -> None:
        stub: HubStub = self.server.stub  # type: ignore[attr-defined]
        headers = {k.lower(): v for k, v in self.headers.items()}
        length = int(headers.get("content-length") or 0) if method == "POST" else 0
        body = self.rfile.read(length) if length else b""
        response = stub.dispatch(method, self.path, headers, body)
        body, status, extra = _apply_range(response, headers.get("range") if method == "GET" else None)
        self.send_response(status)
        for key, value in {**response.headers, **extra}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        # No keep-alive: a pooled connection must never outlive its stub and reach a later one on a reused port.
        self.send_header("Connection", "close")
        self.end_headers()
        if method in ("GET", "POST"):
            _write_at(self.wfile, body, stub.bytes_per_s)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
        pass


# --------------------------------------------------------------------------------------------------- helpers


def _write_at(out: Any, body: bytes, bytes_per_s: float | None, chunk: int = 1 << 16) -> None:
    """Write `body`, paced to `bytes_per_s` when given."""
    if not bytes_per_s:
        out.write(body)
        return
    for start in range(0, len(body), chunk):
        out.write(body[start : start + chunk])
        time.sleep(min(chunk, len(body) - start) / bytes_per_s)


def _apply_range(response: _Response, range_header: str | None) -> tuple[bytes, int, dict[str, str]]:
    """Serve `Range: bytes=a-b` on successful file answers (206); the whole body otherwise."""
    match = re.fullmatch(r"bytes=(\d+)-(\d*)", range_header or "")
    if response.status != 200 or match is None or "X-Repo-Commit" not in response.headers:
        return response.body, response.status, {}
    size = len(response.body)
    start, end = int(match[1]), int(match[2]) if match[2] else size - 1
    end = min(end, size - 1)
    return response.body[start : end + 1], 206, {"Content-Range": f"bytes {start}-{end}/{size}"}


def _model_json(repo: StubRepo, commit: Commit, *, blobs: bool) -> dict[str, Any]:
    """The model-info document for one commit, with every field this stub knows."""
    author = repo.repo_id.split("/")[0] if "/" in repo.repo_id else None
    return {
        "_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24],
        "id": repo.repo_id,
        "modelId": repo.repo_id,
        "author": author,
        "sha": commit.sha,
        "lastModified": _iso(commit.date),
        "createdAt": _iso(repo.created_at),
        "private": repo.private,
        "gated": "manual" if repo.gated else False,
        "disabled": False,
        "downloads": repo.downloads,
        "likes": repo.likes,
        "trendingScore": 0,
        "library_name": repo.library_name,
        "pipeline_tag": repo.pipeline_tag,
        "tags": list(repo.tags),
        "cardData": _card_data(commit.files.get("README.md")),
        "siblings": [_sibling(name, data, blobs) for name, data in sorted(commit.files.items())],
        "spaces": [],
        "usedStorage": sum(len(d) for d in commit.files.values()),
    }


def _sibling(name: str, data: bytes, blobs: bool) -> dict[str, Any]:
    if not blobs:
        return {"rfilename": name}
    entry: dict[str, Any] = {"rfilename": name, "size": len(data), "blobId": _git_blob_id(data)}
    if _is_lfs(name, data):
        sha256 = hashlib.sha256(data).hexdigest()
        pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {len(data)}\n".encode()
        entry.update(
            blobId=_git_blob_id(pointer), lfs={"sha256": sha256, "size": len(data), "pointerSize": len(pointer)}
        )
    return entry


def _tree_file(repo: StubRepo, commit: Commit, name: str, data: bytes, expand: bool) -> dict[str, Any]:
    """A file entry of the tree / paths-info answers (lastCommit and securityFileStatus with expand)."""
    entry: dict[str, Any] = {"type": "file", "path": name, "size": len(data), "oid": _git_blob_id(data)}
    if _is_lfs(name, data):
        sha256 = hashlib.sha256(data).hexdigest()
        entry["lfs"] = {"oid": sha256, "size": len(data), "pointerSize": 134}
    if expand:
        entry["lastCommit"] = {"id": commit.sha, "title": commit.message or "commit", "date": _iso(commit.date)}
        if name in repo.security:
            entry["securityFileStatus"] = repo.security[name]
    return entry


def _list_item(repo: StubRepo, params: dict[str, list[str]]) -> dict[str, Any]:
    """A listing entry: the hub's default fields, `full` extras, cardData on request, or exactly `expand`."""
    data = _model_json(repo, repo.head, blobs=False)
    expand = params.get("expand", []) + params.get("expand[]", [])
    if expand:
        keep = {"_id", "id", *expand}
    else:
        keep = {"_id", "id", "modelId", *BASE_LIST_FIELDS}
        if _truthy(params.get("full", [""])[-1]):
            keep.update(FULL_LIST_FIELDS)
        if _truthy(params.get("cardData", [""])[-1]):
            keep.add("cardData")
    return {k: v for k, v in data.items() if k in keep}


def _listed(repo: StubRepo, params: dict[str, list[str]], readable: bool) -> bool:
    """Whether a repo passes the listing filters (all given filters must hold)."""
    labels = set(repo.tags) | {repo.library_name, repo.pipeline_tag} - {None}
    checks = [
        not repo.private or readable,
        all(f in labels for f in params.get("filter", [])),
        all(p == repo.pipeline_tag for p in params.get("pipeline_tag", [])),
        not params.get("library") or repo.library_name in params["library"],
        all(repo.repo_id.startswith(f"{a}/") for a in params.get("author", [])),
        all(s.lower() in repo.repo_id.lower() for s in params.get("search", [])),
        all(_truthy(g) == repo.gated for g in params.get("gated", [])),
    ]
    return all(checks)


def _sorted_repos(repos: list[StubRepo], params: dict[str, list[str]]) -> list[StubRepo]:
    """Order by `sort` (descending unless direction=1), ties by id; insertion order without `sort`."""
    key = params.get("sort", [""])[-1]
    if not key:
        return repos
    if key not in SORT_KEYS:
        raise _HubError(400, f"Invalid sort parameter: {key}")
    direction = params.get("direction", ["-1"])[-1]
    if direction not in ("-1", "1"):
        raise _HubError(400, f"Invalid direction parameter: {direction}")
    values = {
        "createdAt": lambda r: r.created_at,
        "lastModified": lambda r: r.head.date,
        "downloads": lambda r: r.downloads,
        "likes": lambda r: r.likes,
        "trendingScore": lambda r: 0,
        "id": lambda r: r.repo_id,
    }[key]
    ordered = sorted(repos, key=lambda r: r.repo_id)
    return sorted(ordered, key=values, reverse=direction == "-1")


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    if not cursor:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return int(data["offset"])
    except (ValueError, KeyError, TypeError) as exc:
        raise _HubError(400, f"Invalid cursor: {cursor}") from exc


def _int_param(params: dict[str, list[str]], name: str, default: int) -> int:
    raw = params.get(name, [""])[-1]
    try:
        value = int(raw) if raw else default
    except ValueError as exc:
        raise _HubError(400, f"Invalid {name}: {raw}") from exc
    if value < 1:
        raise _HubError(400, f"Invalid {name}: {raw}")
    return value


def _card_data(readme: bytes | None) -> dict[str, Any] | None:
    """README.md front matter, as the hub exposes it in cardData; None without one."""
    if readme is None:
        return None
    match = _YAML_BLOCK.match(readme.decode("utf-8", errors="replace"))
    if match is None:
        return None
    try:
        data = yaml.safe_load(match[1])
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def _readme(repo_id: str, card_data: Mapping[str, Any]) -> bytes:
    front = yaml.safe_dump(dict(card_data), sort_keys=False)
    return f"---\n{front}---\n\n# {repo_id}\n".encode()


def _is_lfs(name: str, data: bytes) -> bool:
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return suffix in LFS_SUFFIXES or len(data) >= LFS_MIN_SIZE


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _bearer(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization", "")
    if not value.lower().startswith("bearer "):
        return None
    return value[len("bearer ") :].strip() or None


def _multi(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in pairs:
        out.setdefault(key, []).append(value)
    return out


def _truthy(value: str) -> bool:
    return value.lower() in ("1", "true", "yes")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> _Response:
    return _Response(status, json.dumps(data).encode(), {"Content-Type": "application/json", **(headers or {})})


def folder_files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, by its relative path: what `HubStub.add_repo` serves."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def copy_with_card(source: Path, dest: Path, base_model: str) -> Path:
    """A copy of a model folder whose model card names `base_model` (a fine-tune as the hub shows one)."""
    import shutil

    shutil.copytree(source, dest)
    (dest / "README.md").write_text(f"---\nbase_model: {base_model}\n---\n# a fine-tune of {base_model}\n")
    return dest
