"""The wheel users install carries everything a scan needs: templates (HTML reports), migrations, data files.

Regression: a non-editable install had no templates, so `--format html` and every web page failed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

RENDER = """
import scanner, sys
from scanner.report import ModelInfo, Report, render
html = render(Report(model=ModelInfo(source="local", id="m")), "html")
assert "<html" in html and "Patronus" in html, html[:200]
print(scanner.__file__)
"""


SOURCES = ("scanner", "db", "tasks", "web", "templates", "pyproject.toml", "README.md", "LICENSE", "alembic.ini")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the tree (the build leaves nothing in the repository)."""
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, src / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            shutil.copy2(ROOT / name, src / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return next(out.glob("patronus_scanner-*.whl"))


def test_wheel_carries_templates_migrations_and_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "scanner/templates/report.html" in names
    assert "scanner/data/calibration.json" in names and "scanner/data/clean_corpus.txt" in names
    assert any(n.startswith("db/migrations/versions/") for n in names)
    assert not any(n.startswith(("tests/", "bench/")) for n in names)


def test_installed_wheel_renders_an_html_report(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = subprocess.run(
        [sys.executable, "-c", RENDER], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().startswith(str(target)), run.stdout  # the installed copy, not the repository
