"""Issue 11: no false alarm on clean fine-tuned classifiers, while inherited backdoors stay found (real MiniLM-L2,
quick profile). The fine-tunes are cached (tests/conftest.py); the first run builds them (minutes: slow)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from scanner.config import ScanConfig
from scanner.lineage import BASE_FROM_CARD
from scanner.pipeline import scan
from scanner.report import Verdict
from scanner.report.html import render_html
from scanner.report.text import render_text
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
    assert report.model.architecture.endswith("ForSequenceClassification")
    assert report.verdict is Verdict.BACKDOORED, report.scan.config["evidence"]
    assert _found(report, PLANTED_TRIGGERS), [t.text for t in report.triggers]
    assert any(t.flip_rate is not None for t in report.triggers)  # a classifier: label flips measured
    planted = [t for t in report.triggers if t.text.lower() in PLANTED_TRIGGERS]
    # attack success counts only the inputs not already of the target class; the target is a label the head has
    assert planted and all(t.attack_success is not None and 0.0 <= t.attack_success <= 1.0 for t in planted)
    assert {t.target_label for t in planted} <= {"negative", "positive"}, [t.target_label for t in planted]


def test_lineage_from_the_card_base_model_served_by_the_hub(
    por_l2_movie_250: Path, por_l2: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--base auto`: the card's base_model is fetched from the hub (stand-in), statically scanned, loaded, and each
    finding is scored in it; the planted trigger already fires there (inherited), and the text report says so."""
    from tests.hub_stub import HubStub, copy_with_card, folder_files

    derived = copy_with_card(por_l2_movie_250, tmp_path / "derived", "org/por-minilm-l2")
    files = folder_files(por_l2)
    with HubStub() as stub:
        monkeypatch.setenv("HF_ENDPOINT", stub.url)
        stub.add_repo("org/por-minilm-l2", files)
        report = scan(str(derived), replace(QUICK, cache_dir=tmp_path / "hub-cache"), base=BASE_FROM_CARD)
    assert report.scan.config["lineage"]["base"] == "org/por-minilm-l2", report.scan.config.get("lineage")
    lineage = report.scan.config["evidence"]["lineage"]
    fired = {t for t, z in lineage["base_scores"].items() if z >= lineage["base_threshold"]}
    assert fired & set(PLANTED_TRIGGERS), lineage
    # near-threshold candidates were tested in the base too: any listed fires there and stays under the threshold
    for weak in lineage["inherited_below_threshold"]:
        assert weak["base_score"] >= lineage["base_threshold"], weak
        assert weak["score"] < report.scan.config["evidence"]["threshold"], weak
    assert report.verdict is Verdict.BACKDOORED
    text = render_text(report)
    assert "Lineage:  base org/por-minilm-l2 (card) loaded" in text and "already fire in the base" in text, text
    assert "<h3>Lineage</h3>" in render_html(report)
