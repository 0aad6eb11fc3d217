"""Find the models a Python codebase adopts by parsing its source (ast; nothing is imported or run).

Recognised calls (by the called name, whatever module it came from):
- `<anything>.from_pretrained(ID, revision=REV)` (transformers Auto*/model/tokenizer classes, peft, ...)
- `SentenceTransformer(ID, revision=REV)`, `CrossEncoder(ID, revision=REV)` (sentence-transformers)
- `pipeline(TASK, model=ID, revision=REV)` (transformers; `pipeline(task)` alone adopts the task's default model)
- `hf_hub_download(ID, FILE, revision=REV)`, `snapshot_download(ID, revision=REV)` (huggingface_hub, model repos)

An ID or REV is resolved when it is a string literal, an f-string of literals only, or a module-level name bound once
to such a string. Anything else is reported as an unresolved adoption (never skipped silently). An explicit list file
(`org/name@revision` per line, `#` comments) names the models the source cannot show.
"""

from __future__ import annotations

import ast
import fnmatch
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        "env",
        ".env",
        "node_modules",
        "__pycache__",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        "build",
        "dist",
        "site-packages",
        ".eggs",
    }
)
FROM_PRETRAINED = "from_pretrained"
ST_CLASSES = frozenset({"SentenceTransformer", "CrossEncoder", "SparseEncoder"})
HUB_DOWNLOADS = frozenset({"hf_hub_download", "snapshot_download"})
MODEL_KWARGS = {
    FROM_PRETRAINED: ("pretrained_model_name_or_path",),
    "SentenceTransformer": ("model_name_or_path",),
    "CrossEncoder": ("model_name_or_path", "model_name"),
    "SparseEncoder": ("model_name_or_path",),
    "pipeline": ("model",),
    "hf_hub_download": ("repo_id",),
    "snapshot_download": ("repo_id",),
}
MODEL_POSITION = {"pipeline": 1}  # pipeline(task, model, ...); every other call takes the model first


@dataclass(frozen=True)
class Adoption:
    """One place that loads a model: where (`file`, 1-based `line`, `column`), how (`call`), and what.

    model/revision: the literal values (revision None: the default branch). unresolved: why the model or revision
    could not be read statically (then `expression` shows the source text); None when resolved.
    """

    file: str
    line: int
    column: int
    call: str
    model: str | None
    revision: str | None = None
    unresolved: str | None = None
    expression: str | None = None
    source: str = "code"  # code | list

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def target(self) -> str:
        return f"{self.model}@{self.revision}" if self.revision else str(self.model)


# --------------------------------------------------------------------------------------------------- files


def python_files(paths: Iterable[Path], exclude: Iterable[str] = ()) -> list[Path]:
    """The .py files under `paths` (files taken as given), skipping virtualenvs, caches and `exclude` globs."""
    patterns = list(exclude)
    found: list[Path] = []
    for root in paths:
        if root.is_file():
            found.append(root)
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info"))
            for name in sorted(filenames):
                if name.endswith(".py"):
                    found.append(Path(dirpath) / name)
    return [p for p in found if not _excluded(p, patterns)]


def _excluded(path: Path, patterns: list[str]) -> bool:
    text = path.as_posix()
    return any(fnmatch.fnmatch(text, pat) or fnmatch.fnmatch(text, f"*/{pat}") for pat in patterns)


def discover(paths: Iterable[Path], root: Path | None = None, exclude: Iterable[str] = ()) -> list[Adoption]:
    """Every adoption in the Python files under `paths`; file names relative to `root` (default: cwd)."""
    root = (root or Path.cwd()).resolve()
    found: list[Adoption] = []
    for path in python_files(paths, exclude):
        found.extend(discover_file(path, _relative(path, root)))
    return found


def _relative(path: Path, root: Path) -> str:
    resolved = path.resolve()
    try:
        return resolved.relative_to(root).as_posix()
    except ValueError:
        return resolved.as_posix()


def discover_file(path: Path, name: str | None = None) -> list[Adoption]:
    """The adoptions in one file. A file that does not parse is one unresolved adoption naming the error."""
    name = name or path.as_posix()
    try:
        source = path.read_text(encoding="utf-8", errors="replace")
        tree = ast.parse(source, filename=name)
    except SyntaxError as exc:
        return [
            Adoption(
                file=name,
                line=exc.lineno or 1,
                column=exc.offset or 0,
                call="parse",
                model=None,
                unresolved=f"file does not parse: {exc.msg}",
            )
        ]
    except OSError as exc:
        return [Adoption(file=name, line=1, column=0, call="read", model=None, unresolved=f"unreadable: {exc}")]
    return list(_Visitor(name, source, _module_constants(tree)).scan(tree))


# --------------------------------------------------------------------------------------------------- ast


def _module_constants(tree: ast.Module) -> dict[str, str]:
    """Module-level names bound exactly once, to a string literal (MODEL_ID = "org/name")."""
    values: dict[str, str | None] = {}
    for node in tree.body:
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        for target in targets:
            if isinstance(target, ast.Name):
                known = {k: v for k, v in values.items() if v is not None}
                literal = _literal(value, known) if value is not None else None
                values[target.id] = None if target.id in values else literal
    # names rebound anywhere else (loops, functions assigning globals) are not constants
    for inner in ast.walk(tree):
        if isinstance(inner, ast.Global):
            for name in inner.names:
                values[name] = None
    return {k: v for k, v in values.items() if v is not None}


def _literal(node: ast.expr | None, constants: dict[str, str]) -> str | None:
    """The string `node` always evaluates to, or None when that is not known statically."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name) and node.id in constants:
        return constants[node.id]
    if isinstance(node, ast.JoinedStr):
        parts: list[str] = []
        for value in node.values:
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                parts.append(value.value)
            elif isinstance(value, ast.FormattedValue) and value.conversion == -1 and value.format_spec is None:
                inner = _literal(value.value, constants)
                if inner is None:
                    return None
                parts.append(inner)
            else:
                return None
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _literal(node.left, constants), _literal(node.right, constants)
        return left + right if left is not None and right is not None else None
    return None


def _call_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


def _kwarg(call: ast.Call, names: Iterable[str]) -> ast.keyword | None:
    wanted = set(names)
    return next((kw for kw in call.keywords if kw.arg in wanted), None)


@dataclass(frozen=True)
class _Site:
    file: str
    line: int
    column: int
    call: str

    def adoption(
        self,
        *,
        model: str | None,
        revision: str | None = None,
        unresolved: str | None = None,
        expression: str | None = None,
    ) -> Adoption:
        return Adoption(
            file=self.file,
            line=self.line,
            column=self.column,
            call=self.call,
            model=model,
            revision=revision,
            unresolved=unresolved,
            expression=expression,
        )


class _Visitor:
    def __init__(self, name: str, source: str, constants: dict[str, str]) -> None:
        self.name = name
        self.source = source
        self.constants = constants

    def scan(self, tree: ast.Module) -> Iterator[Adoption]:
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                adoption = self.adoption(node)
                if adoption is not None:
                    yield adoption

    def adoption(self, call: ast.Call) -> Adoption | None:
        name = _call_name(call.func)
        if name is None:
            return None
        if name == FROM_PRETRAINED:
            kind = FROM_PRETRAINED
        elif name in ST_CLASSES or name == "pipeline" or name in HUB_DOWNLOADS:
            kind = name
        else:
            return None
        if kind in HUB_DOWNLOADS and self._not_a_model_repo(call):
            return None
        shown = ast.unparse(call.func) if kind == FROM_PRETRAINED else name
        model_node = self._model_node(call, kind)
        base = _Site(self.name, call.lineno, call.col_offset, shown)
        if model_node is None:
            if kind == "pipeline" and not any(kw.arg is None for kw in call.keywords):
                return base.adoption(
                    model=None,
                    unresolved="no model= given: transformers picks the task's default model, unpinned",
                    expression=self._text(call),
                )
            if kind == "pipeline":
                return base.adoption(
                    model=None, unresolved="model passed through **kwargs", expression=self._text(call)
                )
            return base.adoption(model=None, unresolved="no model argument found", expression=self._text(call))
        model = _literal(model_node, self.constants)
        if model is None:
            return base.adoption(model=None, unresolved=self._why(model_node), expression=self._text(model_node))
        revision_kw = _kwarg(call, ("revision",))
        revision: str | None = None
        if revision_kw is not None and not (
            isinstance(revision_kw.value, ast.Constant) and revision_kw.value.value is None
        ):
            revision = _literal(revision_kw.value, self.constants)
            if revision is None:
                return base.adoption(
                    model=model,
                    unresolved=f"revision: {self._why(revision_kw.value)}",
                    expression=self._text(revision_kw.value),
                )
        return base.adoption(model=model, revision=revision)

    def _model_node(self, call: ast.Call, kind: str) -> ast.expr | None:
        keyword = _kwarg(call, MODEL_KWARGS[kind])
        if keyword is not None:
            return keyword.value
        position = MODEL_POSITION.get(kind, 0)
        args = call.args
        if any(isinstance(a, ast.Starred) for a in args[: position + 1]):
            return None
        return args[position] if len(args) > position else None

    def _not_a_model_repo(self, call: ast.Call) -> bool:
        repo_type = _kwarg(call, ("repo_type",))
        if repo_type is None:
            return False
        value = _literal(repo_type.value, self.constants)
        return value is not None and value != "model"

    def _why(self, node: ast.expr) -> str:
        if isinstance(node, ast.JoinedStr):
            return "f-string with values known only at run time"
        if isinstance(node, ast.Name):
            return f"variable {node.id!r} is not a module-level string constant"
        return f"{type(node).__name__.lower()} expression is not a literal"

    def _text(self, node: ast.AST) -> str:
        text = ast.get_source_segment(self.source, node) or ast.unparse(node)
        return text if len(text) <= 200 else text[:197] + "..."


# --------------------------------------------------------------------------------------------------- list file


def read_list_file(path: Path, name: str | None = None) -> list[Adoption]:
    """`org/name@revision` (or `org/name`, or a local folder) per line; `#` starts a comment."""
    name = name or path.as_posix()
    found: list[Adoption] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        model, _, revision = text.partition("@")
        model, revision = model.strip(), revision.strip()
        if not model or ("@" in text and not revision):
            found.append(
                Adoption(
                    file=name,
                    line=number,
                    column=0,
                    call="list",
                    model=None,
                    source="list",
                    unresolved="expected org/name@revision",
                    expression=text,
                )
            )
            continue
        found.append(
            Adoption(
                file=name, line=number, column=0, call="list", model=model, revision=revision or None, source="list"
            )
        )
    return found
