"""Regression suite over the static corpus (tests/static_corpus.py): every sample goes through
`patronus scan --static-only` at the default --fail-on high. Malicious samples exit 1, benign ones exit 0, nothing
crashes, nothing is reported safe or skipped without a finding, and no payload ever runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from scanner.cli import main

try:
    from tests import static_corpus as corpus
except ModuleNotFoundError:  # tests/ is not a package on this path
    import static_corpus as corpus

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> list[corpus.Sample]:
    root = tmp_path_factory.mktemp("static") / "corpus"
    built = corpus.build_corpus(root)
    yield built
    assert not corpus.marker_path(root).exists(), "a corpus payload was executed"


def _scan(folder: Path, out: Path) -> tuple[int, dict]:
    """`patronus scan FOLDER --static-only` in-process; the exit code is what `patronus` (scanner.cli.run) exits
    with: the command's return value."""
    result = CliRunner().invoke(
        main, ["scan", str(folder), "--static-only", "-q", "--format", "json", "-o", str(out)], standalone_mode=False
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    code = result.return_value if isinstance(result.return_value, int) else result.exit_code
    return code, json.loads(out.read_text())


def test_corpus_is_large_and_balanced(samples: list[corpus.Sample]) -> None:
    malicious = [s for s in samples if s.malicious]
    benign = [s for s in samples if not s.malicious]
    assert len(malicious) >= 140 and len(benign) >= 20
    assert len({s.name for s in samples}) == len(samples)


def test_every_sample_through_patronus_scan_static_only(samples: list[corpus.Sample], tmp_path: Path) -> None:
    wrong = []
    for sample in samples:
        code, report = _scan(sample.folder, tmp_path / f"{sample.name}.json")
        assert not report["errors"] or code == 1, (sample.name, report["errors"])
        expected = 1 if sample.malicious else 0
        if code != expected:
            wrong.append((sample.name, code, report["severity"]))
            continue
        if sample.malicious:
            main_finding = [f for f in report["serialization"]["files"] if f["path"] == sample.main]
            assert main_finding, f"{sample.name}: {sample.main} vanished from the report"
            assert main_finding[0]["status"] != "safe", sample.name
    assert not wrong, wrong
