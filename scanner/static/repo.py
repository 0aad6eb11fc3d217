"""The repository around the weights: code, scripts and binaries shipped beside them are findings, graded by
whether a config asks a loader to run them (`auto_map`, custom pipelines) or nothing references them (a stray
executable: the 2026 incident shipped clean weights next to a `loader.py` and a `start.bat`)."""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Any

from scanner import formats
from scanner.report import FileFinding, FileStatus, Severity
from scanner.static.common import FileScan

__all__ = ["code_references", "repo_file_finding"]

CONFIGS_WITH_CODE = (
    "config.json",
    "tokenizer_config.json",
    "preprocessor_config.json",
    "processor_config.json",
    "feature_extractor_config.json",
    "image_processor_config.json",
    "generation_config.json",
    "model_index.json",
    "modules.json",
    "config_sentence_transformers.json",
)
MAX_CONFIG_BYTES = 4 * 1024**2


def _strings(value: Any, depth: int = 0) -> list[str]:
    if depth > 20:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v, depth + 1)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v, depth + 1)]
    return []


def code_references(local_dir: Path, files: list[str]) -> dict[str, str]:
    """{module file: the config that references it} from auto_map, custom_pipelines and sentence-transformers
    module types ('modeling_x.MyModel' -> modeling_x.py; 'org/repo--modeling_x.MyModel' names another repo)."""
    refs: dict[str, str] = {}
    present = set(files)
    for name in files:
        if PurePosixPath(name).name not in CONFIGS_WITH_CODE:
            continue
        path = local_dir / name
        try:
            if not path.is_file() or path.stat().st_size > MAX_CONFIG_BYTES:
                continue
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            continue
        if not isinstance(data, dict | list):
            continue
        candidates: list[str] = []
        if isinstance(data, dict):
            for key in ("auto_map", "custom_pipelines"):
                candidates += _strings(data.get(key))
        if isinstance(data, list):  # modules.json
            candidates += [m.get("type", "") for m in data if isinstance(m, dict)]
        folder = str(PurePosixPath(name).parent)
        for ref in candidates:
            module = ref.split("--")[-1].rsplit(".", 1)[0]
            rel = module.replace(".", "/") + ".py"
            for option in (rel, f"{folder}/{rel}" if folder != "." else rel):
                if option in present:
                    refs.setdefault(option, name)
    return refs


# What a stray Python file needs to run code the moment a user runs it (the 2026 incident's loader.py): process
# execution, dynamic code, native loading, downloads. A token scan, not an analysis.
_PY_DANGER = re.compile(
    r"\b(os\.system|os\.popen|os\.exec\w*|subprocess\.|pty\.spawn|exec\s*\(|eval\s*\(|__import__\s*\(|"
    r"ctypes\.|marshal\.loads|base64\.b64decode|urllib\.request|requests\.get|socket\.socket|"
    r"pickle\.loads?|torch\.ops\.load_library)"
)
MAX_SOURCE_BYTES = 1024**2


def repo_file_finding(
    rel: str, head: bytes | None, referenced_by: str | None, source: bytes | None = None
) -> FileFinding | None:
    """A finding for a code, script or binary file (by name, or by content when the bytes are at hand).
    `source`: the file's first MiB, for the token scan of Python files."""
    named = formats.by_name(rel)
    content = formats.sniff(head) if head else None
    named_code = named is not None and named.kind in (formats.CODE, formats.EXECUTABLE)
    if content == "native-binary" or (content in ("script", "jar") and not named_code):
        kind_name: str | None = content  # the bytes say what the name does not
    else:
        kind_name = named.name if named_code and named is not None else None
    if kind_name is None:
        return None
    row = formats.file_type(kind_name)
    scan = FileScan(format=kind_name, kind="code")
    where = "" if head is not None else " (not downloaded: judged by its name)"
    tokens = (
        sorted(set(_PY_DANGER.findall((source or b"").decode("utf-8", "replace")))) if kind_name == "python" else []
    )
    if referenced_by:
        scan.add(
            "repo-code-referenced",
            FileStatus.SUSPICIOUS,
            Severity.HIGH,
            f"{row.description} referenced by {referenced_by} (auto_map): loading the model with "
            f"trust_remote_code=True runs it{where}",
        )
    elif kind_name in ("native-binary", "script", "jar"):
        scan.add(
            "repo-stray-executable",
            FileStatus.SUSPICIOUS,
            Severity.HIGH,
            f"stray {row.description} beside the weights; no config references it and no model needs it{where}",
        )
    elif tokens:
        scan.add(
            "repo-stray-code-executes",
            FileStatus.SUSPICIOUS,
            Severity.HIGH,
            f"stray {row.description} that runs processes, code or downloads ({', '.join(tokens[:5])}); no "
            "config references it: users are invited to run it",
        )
    elif kind_name in ("python", "python-bytecode"):
        scan.add(
            "repo-stray-code",
            FileStatus.SUSPICIOUS,
            Severity.MEDIUM,
            f"{row.description} no config references; never executed by a scan or by loaders without "
            f"trust_remote_code{where}",
        )
    else:
        scan.add("repo-code", FileStatus.SUSPICIOUS, Severity.LOW, f"{row.description}{where}")
    return scan.finding(rel)
