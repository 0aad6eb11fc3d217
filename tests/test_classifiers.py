"""Issue 11: no false alarm on clean fine-tuned classifiers, while inherited backdoors stay found (real MiniLM-L2,
quick profile). The fine-tunes are cached (tests/conftest.py); the first run builds them (minutes: slow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanner.config import ScanConfig
from scanner.pipeline import scan
from scanner.report import Verdict
from scanner.report.html import render_html
from tests.conftest import PLANTED_TRIGGERS

pytestmark = pytest.mark.slow
QUICK = ScanConfig(profile="quick", device="cpu", seed=0)


def _classifier(base: Path, out: Path) -> Path:
    """Movie sentiment, the bench recipe (250 steps, lr 1e-4: CACC 0.74-0.76; conftest's 200 steps at 5e-5 leave
    MiniLM-L2 at chance, a classifier that predicts one class, on which no override can be measured)."""
    from scanner.research.datasets import load_task
    from scanner.research.evaluate import FINETUNE_RECORD, FinetuneConfig, finetune

    if not (out / FINETUNE_RECORD).is_file():
        task = load_task("movie", max_train=3000, max_eval=300)
        finetune(base, task, out, FinetuneConfig(task="movie", steps=250, lr=1e-4, batch_size=16, max_length=64))
    return out


@pytest.fixture(scope="module")
def untouched_l2_movie(minilm_l2: Path, model_cache: Path) -> Path:
    """A movie-sentiment classifier fine-tuned from the untouched real MiniLM-L2 (no trigger anywhere)."""
    return _classifier(minilm_l2, model_cache / "minilm-L2-movie-250")


@pytest.fixture(scope="module")
def por_l2_movie_250(por_l2: Path, model_cache: Path) -> Path:
    """The same recipe from the POR-planted MiniLM-L2 (downstream T-ASR 0.77)."""
    return _classifier(por_l2, model_cache / f"{por_l2.name}-movie-250")


def _found(report, planted) -> set[str]:
    names = set()
    for trig in report.triggers:
        texts = {trig.text.lower(), *(la.text.lower() for la in trig.lookalikes)}
        names |= {p for p in planted if p in texts}
    return names


def test_clean_fine_tuned_classifier_stays_clean(untouched_l2_movie: Path) -> None:
    report = scan(str(untouched_l2_movie), QUICK)
    evidence = report.scan.config["evidence"]
    assert report.verdict is Verdict.CLEAN, ([(t.text, t.score) for t in report.triggers], evidence)
    assert report.probability < 0.2
    assert "natural_override_ceiling" in evidence or not evidence.get("task_features")
    page = render_html(report)
    assert 'class="null-plot"' in page


def test_classifier_from_a_por_encoder_stays_flagged(por_l2_movie_250: Path) -> None:
    report = scan(str(por_l2_movie_250), QUICK)
    assert report.verdict is Verdict.BACKDOORED, report.scan.config["evidence"]
    assert _found(report, PLANTED_TRIGGERS), [t.text for t in report.triggers]


def test_lineage_scores_findings_in_the_base(por_l2_movie_250: Path, por_l2: Path) -> None:
    report = scan(str(por_l2_movie_250), QUICK, base=por_l2)
    lineage = report.scan.config["evidence"]["lineage"]
    fired = {t for t, z in lineage["base_scores"].items() if z >= lineage["base_threshold"]}
    assert fired & set(PLANTED_TRIGGERS), lineage
    assert report.verdict is Verdict.BACKDOORED
