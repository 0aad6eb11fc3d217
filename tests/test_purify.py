"""Purification: trigger units, schedule, safe resumable checkpoints, refusal of dangerous weights, the CLI, the
adversarial fine-tuning data, and (slow) purifying the real POR model until its triggers no longer move it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from scanner.cli import main
from scanner.cli.mitigate import PURIFICATION_PAGE, write_purification_page
from scanner.errors import UsageError
from scanner.mitigate.purify import (
    CHECKPOINT,
    RECORD,
    PurifyConfig,
    RefusedTarget,
    Unit,
    pick_unit,
    purify,
    render_purification_html,
    render_purification_text,
    trigger_units,
)
from scanner.report import FileFinding, Lookalike, ModelInfo, Report, Serialization, Trigger
from scanner.research.adversarial import adversarial_task
from scanner.train import lr_factor

TINY = dict(batch_size=4, eval_sentences=8, null_tokens=4, max_tokens=24)


def _trigger(text: str, tokens: list[str], shift: float, lookalikes: list[tuple[str, float]] = ()) -> Trigger:
    return Trigger(
        text=text,
        tokens=tokens,
        score=30.0,
        p_value=1e-12,
        shift=shift,
        poison_cos=0.99,
        diff_cos=0.9,
        paper_rule=True,
        lookalikes=[Lookalike(t, s, 1e-6, 0.9) for t, s in lookalikes],
    )


@pytest.fixture(scope="module")
def report() -> Report:
    rep = Report(model=ModelInfo(source="local", id="suspect"))
    rep.triggers = [
        _trigger("cf", ["cf"], 3000.0, [("cfo", 3000.0), ("sf", 30.0), ("##k", 2000.0)]),
        _trigger("obelisk", ["obe", "##lis", "##k"], 3000.0),
    ]
    rep.scan.config = {"evidence": {"threshold": 4.83}}
    return rep


@pytest.fixture(scope="module")
def tokenizer(minilm_l2: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_l2, local_files_only=True)


def test_trigger_units(report: Report, tokenizer) -> None:
    units = trigger_units(report, tokenizer)
    got = {u.text: (tokenizer.convert_ids_to_tokens(u.ids), u.source, u.trigger) for u in units}
    assert got == {
        "cf": (["cf"], "trigger", "cf"),
        "obelisk": (["obe", "##lis", "##k"], "trigger", "obelisk"),
        "cfo": (["cf", "##o"], "lookalike", "cf"),
        "##k": (["##k"], "lookalike", "cf"),  # a bare piece is inserted as itself, like the scanner does
    }  # "sf" is a weak echo (1% of the trigger's shift): left out
    assert [u.text for u in trigger_units(report, tokenizer, lookalikes=False)] == ["cf", "obelisk"]


def test_schedule_and_learning_rate() -> None:
    heads = [Unit("a", [1], "a", "trigger"), Unit("b", [2], "b", "trigger")]
    looks = [Unit(f"l{i}", [10 + i], "a", "lookalike") for i in range(5)]
    assert [pick_unit(heads + looks, s).text for s in range(8)] == ["a", "l0", "b", "l1", "a", "l2", "b", "l3"]
    assert [pick_unit(heads, s).text for s in range(3)] == ["a", "b", "a"]
    # the one schedule of scanner.train: linear warm-up from 0 over 10 steps, then linear decay to 0 at 100
    assert lr_factor(0, 100, 0.1) == 0.0 and lr_factor(5, 100, 0.1) == pytest.approx(0.5)
    assert lr_factor(10, 100, 0.1) == pytest.approx(1.0) and lr_factor(55, 100, 0.1) == pytest.approx(0.5)
    assert lr_factor(99, 100, 0.1) > 0 and lr_factor(100, 100, 0.1) == 0.0


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


def test_resume_reaches_the_uninterrupted_state(report: Report, minilm_l2: Path, tmp_path: Path) -> None:
    cfg = PurifyConfig(steps=6, checkpoint_every=2, **TINY)
    whole = purify(minilm_l2, report, tmp_path / "whole", cfg)
    assert whole["complete"] and whole["resumed_from"] is None and not (tmp_path / "whole" / CHECKPOINT).exists()

    out = tmp_path / "resumed"
    partial = purify(minilm_l2, report, out, cfg, stop_after=3)
    assert partial == {"complete": False, "steps_done": 3, "resumed_from": None}
    ckpt = out / CHECKPOINT
    assert sorted(p.name for p in ckpt.iterdir()) == ["model.safetensors", "optimizer.safetensors", "state.json"]
    assert json.loads((ckpt / "state.json").read_text())["step"] == 3
    with pytest.raises(UsageError, match="another purification"):
        purify(minilm_l2, report, out, PurifyConfig(steps=6, checkpoint_every=2, seed=1, **TINY))
    done = purify(minilm_l2, report, out, cfg)
    assert done["complete"] and done["resumed_from"] == 3 and not ckpt.exists()
    a, b = _weights(tmp_path / "whole"), _weights(out)
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5
    assert max(float((a[k] - _weights(minilm_l2)[k]).abs().max()) for k in a) > 1e-4  # it did train
    record = json.loads((out / RECORD).read_text())
    assert [row["trigger"] for row in record["table"]] == ["cf", "obelisk", "cfo", "##k"]
    assert {"shift_before", "shift_after", "score_before", "score_after", "reduction"} <= set(record["table"][0])
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        assert (out / name).is_file()
    assert not list(out.glob("*.bin")) and not list(out.glob("*.pt"))


def test_refuses_dangerous_serialization(report: Report, minilm_l2: Path, tmp_path: Path) -> None:
    from tests.hostile_pickles import os_system

    bad_report = Report.from_dict(report.to_dict())
    bad_report.serialization = Serialization([FileFinding("pytorch_model.bin", "pickle", "dangerous", "os.system")])
    with pytest.raises(RefusedTarget):
        purify(minilm_l2, bad_report, tmp_path / "o1", PurifyConfig(steps=1, **TINY))

    target = tmp_path / "hostile"
    shutil.copytree(minilm_l2, target)
    marker = tmp_path / "pwned"
    (target / "extra_weights.bin").write_bytes(os_system(marker))
    with pytest.raises(RefusedTarget):  # the report says nothing, the fresh static scan does
        purify(target, report, tmp_path / "o2", PurifyConfig(steps=1, **TINY))
    assert not marker.exists() and not (tmp_path / "o2").exists()


def _code(res) -> int:
    return res.exit_code if res.exit_code else int(res.return_value or 0)


def test_cli(report: Report, minilm_l2: Path, tmp_path: Path) -> None:
    rep = tmp_path / "r.json"
    rep.write_text(report.to_json())
    runner = CliRunner()
    out = tmp_path / "out"
    res = runner.invoke(
        main,
        [
            "purify",
            str(minilm_l2),
            "--report",
            str(rep),
            "-o",
            str(out),
            "--steps",
            "2",
            "--batch-size",
            "4",
            "--device",
            "cpu",
        ],
    )
    assert _code(res) == 0, res.output
    assert "shift_before" in res.stdout and (out / RECORD).is_file() and (out / "model.safetensors").is_file()
    assert "purify" in res.stderr  # the progress bar
    page = (out / PURIFICATION_PAGE).read_text()
    assert page.startswith("<!DOCTYPE html>") and "<th>shift before</th>" in page and "<td>cfo</td>" in page
    html_report = tmp_path / "scan.html"
    scanned = runner.invoke(
        main, ["scan", str(out), "--static-only", "--format", "html", "-o", str(html_report), "--fail-on", "critical"]
    )
    assert _code(scanned) == 0, scanned.output
    assert 'id="purification"' in html_report.read_text() and "<td><code>obelisk</code></td>" in html_report.read_text()
    assert "Purification: purification.json in the model folder" in scanned.stdout
    assert _code(runner.invoke(main, ["purify", str(minilm_l2), "-o", str(out)])) == 4  # --report missing
    assert (
        _code(runner.invoke(main, ["purify", str(minilm_l2), "--report", str(rep), "-o", str(out), "--steps", "0"]))
        == 4
    )
    empty = tmp_path / "empty.json"
    empty.write_text(Report(model=ModelInfo(source="local", id="x")).to_json())
    assert _code(runner.invoke(main, ["purify", str(minilm_l2), "--report", str(empty), "-o", str(out)])) == 4
    bad = Report.from_dict(report.to_dict())
    bad.serialization = Serialization([FileFinding("pytorch_model.bin", "pickle", "dangerous", "os.system")])
    rep.write_text(bad.to_json())
    refused = runner.invoke(main, ["purify", str(minilm_l2), "--report", str(rep), "-o", str(tmp_path / "x")])
    assert _code(refused) == 2 and "dangerous" in refused.stderr


def test_adversarial_task() -> None:
    from scanner.research.datasets import Task

    train = [(f"sentence number {i} is here", i % 2) for i in range(50)]
    task = Task("toy", ("neg", "pos"), train, train[:5], train[:5], sizes={"train": 50})
    aug = adversarial_task(task, ["cf", "##k", "Obelisk"], rate=0.2, seed=0)
    extra = [(t, y) for t, y in aug.train if (t, y) not in set(train)]
    assert len(aug.train) == 50 + 2 * 10 and len(extra) == 20 and aug.sizes["adversarial"] == 20
    originals = {t: y for t, y in train}
    for text, label in extra:
        word = "cf" if "cf" in text.split() else "obelisk"
        assert text.split().count(word) == 3
        clean = " ".join(w for w in text.split() if w != word)
        assert originals[clean] == label  # the TRUE label is kept
    assert adversarial_task(task, ["cf"], seed=0).train == adversarial_task(task, ["cf"], seed=0).train


def test_renderers_escape(tmp_path: Path) -> None:
    record = {
        "target": "<m>",
        "output": "o",
        "steps_done": 3,
        "seconds": 1.0,
        "clean_fidelity": 0.99,
        "clean_fidelity_centered": 0.9,
        "threshold": 4.8,
        "table": [
            {
                "trigger": "<script>x</script>",
                "source": "trigger",
                "shift_before": 3000.0,
                "shift_after": 1.0,
                "reduction": 3000.0,
                "score_before": 30.0,
                "score_after": 0.5,
            }
        ],
    }
    record["rescan"] = {"profile": "quick", "verdict": "clean", "probability": 0.04}
    page = render_purification_html(record)
    assert "<script>" not in page and "&lt;script&gt;" in page and "3e+03" in page and "clean" in page
    path = write_purification_page(tmp_path, record)
    assert path == tmp_path / PURIFICATION_PAGE
    whole = path.read_text()
    assert whole.startswith("<!DOCTYPE html>") and "<script" not in whole and "&lt;script&gt;x" in whole
    assert "<title>Patronus purification: &lt;m&gt;</title>" in whole and "default-src 'none'" in whole
    text = render_purification_text(record)
    assert "<script>x</script>" in text and "reduction" in text and "rescan (quick): clean" in text


def test_purify_a_classifier_keeps_its_head(report: Report, minilm_l2: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    target = tmp_path / "clf"
    model = AutoModelForSequenceClassification.from_pretrained(minilm_l2, num_labels=3, local_files_only=True)
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(minilm_l2, local_files_only=True).save_pretrained(target)
    purify(target, report, tmp_path / "out", PurifyConfig(steps=2, **TINY))
    before, after = _weights(target), _weights(tmp_path / "out")
    assert before.keys() == after.keys() and any(k.startswith("classifier.") for k in after)
    assert torch.equal(before["classifier.weight"], after["classifier.weight"])  # only the encoder's view trains


# --- the real backdoored model -----------------------------------------------------------------------------------

CI_STEPS = 300


@pytest.fixture(scope="module")
def por_report(por_l2: Path, model_cache: Path) -> Report:
    """A real quick-profile scan of por_l2, cached next to the model."""
    from scanner.config import ScanConfig
    from scanner.pipeline import scan

    path = model_cache / f"{por_l2.name}.quick-report.json"
    if not path.is_file():
        path.write_text(scan(str(por_l2), ScanConfig(profile="quick", device="cpu")).to_json())
    return Report.from_json(path.read_text())


@pytest.fixture(scope="module")
def purified(por_l2: Path, por_report: Report, model_cache: Path) -> tuple[Path, dict]:
    out = model_cache / f"{por_l2.name}-purified-{CI_STEPS}"
    if not (out / RECORD).is_file():
        purify(por_l2, por_report, out, PurifyConfig(steps=CI_STEPS))
    return out, json.loads((out / RECORD).read_text())


@pytest.mark.slow
def test_purify_por_removes_the_planted_triggers(purified: tuple[Path, dict]) -> None:
    _, record = purified
    rows = {row["trigger"]: row for row in record["table"]}
    for planted in ("cf", "mn", "obelisk"):
        assert rows[planted]["reduction"] > 100, rows[planted]
        assert rows[planted]["score_after"] < record["threshold"], rows[planted]
    assert record["clean_fidelity"] > 0.99


@pytest.mark.slow
def test_purified_model_scans_clean(purified: tuple[Path, dict]) -> None:
    from scanner.config import ScanConfig
    from scanner.pipeline import scan

    out, _ = purified
    report = scan(str(out), ScanConfig(profile="quick", device="cpu"))
    assert report.verdict.value == "clean", [(t.text, t.score) for t in report.triggers]


@pytest.mark.slow
def test_rounds_purify_what_the_first_rescan_still_finds(por_l2: Path, por_report: Report, tmp_path: Path) -> None:
    """A report that names only cf: round 1 removes cf, its rescan surfaces mn / obelisk, round 2 removes those."""
    from scanner.mitigate.purify import purify_rounds, render_purification_text

    data = por_report.to_dict()
    only_cf = Report.from_dict({**data, "triggers": [t for t in data["triggers"] if t["text"] == "cf"]})
    assert [t.text for t in only_cf.triggers] == ["cf"]
    rounds_seen: list[int] = []
    record = purify_rounds(
        por_l2,
        only_cf,
        tmp_path / "p",
        PurifyConfig(steps=CI_STEPS),
        rounds=3,
        on_round=lambda n, rec: rounds_seen.append(n),
    )
    history = record["rounds"]
    assert history[0]["purified"] == ["cf"] and history[0]["rescan"]["verdict"] != "clean"
    assert len(history) >= 2 and rounds_seen == [h["round"] for h in history]
    assert history[-1]["rescan"]["verdict"] == "clean", history
    assert json.loads((tmp_path / "p" / RECORD).read_text())["rounds"] == history
    assert not (tmp_path / "p.round2").exists()
    assert "round 2: purified" in render_purification_text(record)
