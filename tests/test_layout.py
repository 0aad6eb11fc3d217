"""The import rules of docs/ARCHITECTURE.md, checked on the source (ast; nothing is imported or run).

- The core (scanner/ minus cli/ and research/) never imports the shells (scanner.cli, db, tasks, web) or the
  research toolkit; so `scanner.pipeline.scan` runs with no database, broker or web app installed.
- scanner/report/ is a pure view layer: no torch, no scanner.mitigate, no file reads by the renderers.
- The service (db, tasks, web) never imports the research toolkit.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHELLS = ("scanner.cli", "db", "tasks", "web")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _core_files() -> list[Path]:
    return [
        p
        for p in sorted((ROOT / "scanner").rglob("*.py"))
        if p.relative_to(ROOT / "scanner").parts[0] not in ("cli", "research")
    ]


def test_core_imports_neither_shells_nor_research() -> None:
    bad = [
        f"{p.relative_to(ROOT)}:{line} imports {mod}"
        for p in _core_files()
        for line, mod in _imports(p)
        if _under(mod, (*SHELLS, "scanner.research"))
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("package", ["db", "tasks", "web"])
def test_service_does_not_import_research(package: str) -> None:
    bad = [
        f"{p.relative_to(ROOT)}:{line} imports {mod}"
        for p in sorted((ROOT / package).rglob("*.py"))
        for line, mod in _imports(p)
        if _under(mod, ("scanner.research",))
    ]
    assert not bad, "\n".join(bad)


def test_report_layer_is_pure() -> None:
    bad = [
        f"{p.relative_to(ROOT)}:{line} imports {mod}"
        for p in sorted((ROOT / "scanner" / "report").rglob("*.py"))
        for line, mod in _imports(p)
        if _under(mod, ("torch", "transformers", "scanner.mitigate", *SHELLS))
    ]
    assert not bad, "\n".join(bad)
    for path in (ROOT / "scanner" / "report").glob("*.py"):
        if path.name == "output.py":  # the one writer
            continue
        source = path.read_text(encoding="utf-8")
        assert ".read_text(" not in source and "open(" not in source, f"{path.name} reads files"


def test_cli_has_no_late_imports_at_module_level() -> None:
    """Module-level imports sit at the top of every CLI module (no `import` after the first definition)."""
    for path in sorted((ROOT / "scanner" / "cli").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        seen_definition = False
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
                seen_definition = True
            elif isinstance(node, ast.Import | ast.ImportFrom) and seen_definition:
                pytest.fail(f"{path.name}:{node.lineno} imports after a definition")
