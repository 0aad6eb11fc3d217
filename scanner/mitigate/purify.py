"""Purification by adversarial pre-training from recovered triggers (METHOD.md section 4), and the adversarial
fine-tuning variant for a downstream task.

Pre-training: start from the suspect model with a frozen copy as reference. Each step takes B clean sentences of
the reference corpus and inserts ONE recovered trigger (token ids, exactly as the scanner inserts them) 3x into
each; L = MSE(h(x), h_ref(x)) + MSE(h(x+t), sg[h(x)]), h = the scanner's features (final hidden state at the
representation position). Choices beyond the paper (each a PurifyConfig switch): the clean side of the second term
is a stop-gradient target, so the trigger learns to look clean instead of clean text drifting toward the trigger;
no dropout (the scanner's view of the model). Paper: 10 epochs, batch 24, lr 5e-5; here a step budget with a
higher lr (2e-4, measured in bench/RESULTS.md, mitigation sections). Deterministic per step (sampling and dropout are
seeded by (seed, step)), so a run resumed from its checkpoint ends in the same state as an uninterrupted one.

Checkpoints (every `checkpoint_every` steps, and on Ctrl-C) go to OUT/.checkpoint: model.safetensors, optimizer
tensors in optimizer.safetensors and the rest in state.json. Nothing is ever unpickled.
"""

from __future__ import annotations

import copy
import html
import json
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from scanner.config import ScanConfig
from scanner.corpus import load_corpus
from scanner.encoder import LoadedEncoder, load_encoder
from scanner.errors import PatronusError, RefusedTarget, UsageError  # noqa: F401  (RefusedTarget re-exported)
from scanner.evidence import (
    CleanStats,
    EvidenceSet,
    FeatureRunner,
    NullModel,
    TokenizedCorpus,
    clean_features,
    insert_rows,
    null_tokens,
    sample_positions,
    tokenize_corpus,
    trim,
)
from scanner.pipeline import scan
from scanner.report import FileStatus, Report
from scanner.search.vocab import encode_words, searchable_vocabulary
from scanner.static import scan_snapshot
from scanner.train import StepInfo as TrainStep
from scanner.train import TrainConfig, Trainer, split_corpus, step_seed

RECORD = "purification.json"
RECORD_SCHEMA = "patronus.purification/1"
CHECKPOINT = ".checkpoint"
HELD_OUT = 200  # the first sentences of the fixed corpus shuffle: measurement only, never trained on


@dataclass
class PurifyConfig:
    """Settings of one purification run."""

    steps: int = 300
    batch_size: int = 24
    lr: float = 2e-4  # the paper's 5e-5 is for 10 epochs; a few hundred CPU steps need more (measured)
    seed: int = 0
    insert_times: int = 3
    max_tokens: int = 40
    warmup_frac: float = 0.06
    weight_decay: float = 0.01
    lookalikes: bool = True  # also purify each trigger's look-alikes ...
    lookalike_ratio: float = 0.25  # ... whose shift is at least this share of their trigger's (as the monitor)
    detach_clean: bool = True
    dropout: bool = False  # train with dropout (the paper's fine-tuning mode) or without (the scanner's view)
    checkpoint_every: int = 50
    eval_sentences: int = 64
    null_tokens: int = 32
    device: str = "cpu"

    def fingerprint(self) -> dict[str, Any]:
        """The settings a checkpoint must share to be resumed (measurement and bookkeeping excluded)."""
        skip = {"checkpoint_every", "eval_sentences", "null_tokens", "device"}
        return {k: v for k, v in asdict(self).items() if k not in skip}


@dataclass
class Unit:
    """A trigger to purify: token ids as the scanner inserts them, and the report trigger it belongs to."""

    text: str
    ids: list[int]
    trigger: str
    source: str  # "trigger" | "lookalike"


@dataclass
class StepInfo:
    step: int
    total: int
    loss: float
    clean: float
    trigger: float


# --- triggers from a report --------------------------------------------------------------------------------------


def _text_ids(tokenizer: Any, text: str) -> list[int]:
    """Ids of a look-alike's text: a vocabulary piece as itself ('##k'), a word as it tokenizes in a sentence."""
    vocab = tokenizer.get_vocab()
    if text in vocab and text.startswith("##"):
        return [vocab[text]]
    return encode_words(tokenizer, [text])[0]


def trigger_units(report: Report, tokenizer: Any, lookalikes: bool = True, min_ratio: float = 0.25) -> list[Unit]:
    """The report's triggers (their scanned token pieces) and, optionally, the look-alikes whose shift is at least
    `min_ratio` of their trigger's; unique by ids."""
    units: dict[tuple[int, ...], Unit] = {}
    unk = getattr(tokenizer, "unk_token_id", None)
    for trig in report.triggers:
        ids = tokenizer.convert_tokens_to_ids(list(trig.tokens)) if trig.tokens else []
        if not ids or unk in ids:
            ids = _text_ids(tokenizer, trig.text)
        if ids:
            units.setdefault(tuple(ids), Unit(trig.text, list(ids), trig.text, "trigger"))
    if lookalikes:
        for trig in report.triggers:
            for look in trig.lookalikes:
                if look.shift < min_ratio * trig.shift:
                    continue
                ids = _text_ids(tokenizer, look.text)
                if ids and unk not in ids:
                    units.setdefault(tuple(ids), Unit(look.text, list(ids), trig.text, "lookalike"))
    return list(units.values())


# --- loading and safety ------------------------------------------------------------------------------------------


def check_target(report: Report, model_dir: Path) -> bool:
    """Refuse dangerous serialization (report or a fresh static scan); True when pickle weights may be loaded
    (weights_only) because both found them safe."""
    if report.serialization.worst_status is FileStatus.DANGEROUS:
        raise RefusedTarget(
            "the report found dangerous pickle content in the target's weight files; refusing "
            "to load them (convert the model to safetensors from a trusted source)"
        )
    files = [str(p.relative_to(model_dir)) for p in model_dir.rglob("*") if p.is_file() and CHECKPOINT not in p.parts]
    fresh, _ = scan_snapshot(model_dir, files)
    if fresh.worst_status is FileStatus.DANGEROUS:
        raise RefusedTarget("the static scan found dangerous pickle content in the target's weight files")
    return fresh.worst_status is FileStatus.SAFE and report.serialization.worst_status is not FileStatus.SUSPICIOUS


def _wrap(model: Any, like: Any) -> Any:
    """A LoadedEncoder view of another copy of the same model (for the scanner's measurements)."""
    base = model.base_model if like.classifier is not None else model
    return LoadedEncoder(
        encoder=base,
        tokenizer=like.tokenizer,
        family=like.family,
        architecture=like.architecture,
        parameters=like.parameters,
        device=like.device,
        classifier=model if like.classifier is not None else None,
    )


# --- measurement -------------------------------------------------------------------------------------------------


@dataclass
class ShiftProbe:
    """The scanner's evidence on fixed held-out sentences (scanner.evidence): per-unit standardized shift, robust z
    of log-shift against a null of random rare tokens of the searchable vocabulary."""

    units: list[Unit]
    corpus: TokenizedCorpus  # the evaluation sentences
    fit_corpus: TokenizedCorpus  # the clean statistics are fitted on these
    positions: torch.Tensor
    null_ids: list[list[int]]

    @classmethod
    def build(cls, tokenizer: Any, held_out: list[str], units: list[Unit], cfg: PurifyConfig) -> ShiftProbe:
        n = min(cfg.eval_sentences, len(held_out) // 2)
        corpus = tokenize_corpus(tokenizer, held_out[:n], cfg.max_tokens)
        fit_corpus = tokenize_corpus(tokenizer, held_out[n:], cfg.max_tokens)
        positions = sample_positions(corpus.slots, cfg.insert_times, torch.Generator().manual_seed(cfg.seed))
        vocab = searchable_vocabulary(tokenizer)
        null = null_tokens(
            vocab.ids.tolist(), cfg.null_tokens, random.Random(cfg.seed), exclude={tuple(u.ids) for u in units}
        )
        return cls(units, corpus, fit_corpus, positions, null)

    @torch.no_grad()
    def measure(self, encoder: Any) -> dict[str, Any]:
        runner = FeatureRunner(encoder, 256)
        stats = CleanStats.fit(clean_features(runner, self.fit_corpus.to(encoder.device)))
        evidence = EvidenceSet(runner, self.corpus.to(encoder.device), stats, self.positions.to(encoder.device))
        null = NullModel.fit(evidence.evaluate(self.null_ids))
        per = evidence.evaluate([u.ids for u in self.units])
        return {
            "clean": evidence.clean.cpu(),
            "null": null.summary(),
            "shift": [s.shift for s in per],
            "score": [null.score(s.shift) for s in per],
        }


def fidelity(before: torch.Tensor, after: torch.Tensor) -> tuple[float, float]:
    """Mean cos(h_after(x), h_before(x)) on clean text, raw and centred on the before-mean."""
    mu = before.mean(0)
    return (
        float(F.cosine_similarity(after, before).mean()),
        float(F.cosine_similarity(after - mu, before - mu).mean()),
    )


# --- the training step (the loop is scanner.train) ---------------------------------------------------------------


def train_config(cfg: PurifyConfig) -> TrainConfig:
    return TrainConfig(
        steps=cfg.steps,
        warmup_frac=cfg.warmup_frac,
        weight_decay=cfg.weight_decay,
        checkpoint_every=cfg.checkpoint_every,
    )


def pick_unit(units: list[Unit], step: int) -> Unit:
    """The trigger of a step: report triggers in turn on even steps, look-alikes in turn on odd ones (triggers
    only when there are no look-alikes), so dozens of look-alikes never starve the triggers themselves."""
    heads = [u for u in units if u.source == "trigger"] or units
    looks = [u for u in units if u.source != "trigger"]
    if not looks or step % 2 == 0:
        return heads[(step // (2 if looks else 1)) % len(heads)]
    return looks[(step // 2) % len(looks)]


@dataclass
class _Objective:
    """One purification step's loss: L = MSE(h(x), h_ref(x)) + MSE(h(x+t), sg[h(x)])."""

    features: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    ref: Any  # LoadedEncoder of the frozen suspect model
    corpus: TokenizedCorpus  # the training pool
    units: list[Unit]
    cfg: PurifyConfig

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Clean ids/mask and the same sentences with unit (step mod K) inserted insert_times times."""
        gen = torch.Generator().manual_seed(step_seed(self.cfg.seed, step))
        rows = torch.randperm(len(self.corpus), generator=gen)[: self.cfg.batch_size]
        part = self.corpus.take(rows)
        unit = pick_unit(self.units, step)
        positions = sample_positions(part.slots, self.cfg.insert_times, gen)
        p_ids, p_mask = insert_rows(part, positions, unit.ids)
        dev = self.ref.device
        ids, mask = trim(part.ids, part.mask)
        return ids.to(dev), mask.to(dev), p_ids.to(dev), p_mask.to(dev)

    def __call__(self, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        ids, mask, p_ids, p_mask = self.batch(step)
        torch.manual_seed(step_seed(self.cfg.seed, step))  # dropout
        with torch.no_grad():
            h_ref = self.ref.features(ids, mask)
        h = self.features(ids, mask)
        hp = self.features(p_ids, p_mask)
        clean = F.mse_loss(h, h_ref)
        trig = F.mse_loss(hp, h.detach() if self.cfg.detach_clean else h)
        return clean + trig, {"clean": clean.item(), "trigger": trig.item()}


# --- the public entry points -------------------------------------------------------------------------------------


def _split_corpus(corpus: Sequence[str] | None) -> tuple[list[str], list[str]]:
    return split_corpus(corpus if corpus is not None else load_corpus(), HELD_OUT)


def purify(
    target: Path | str,
    report: Report,
    out: Path | str,
    cfg: PurifyConfig | None = None,
    corpus: Sequence[str] | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Purify the model at `target` from `report`'s triggers; write the model and purification.json to `out`.
    Resumes from out/.checkpoint when present. `stop_after` ends the run after that many steps in this call
    (as an interruption would; the checkpoint is kept) and returns the partial record without writing a model."""
    cfg = cfg or PurifyConfig()
    target, out = Path(target), Path(out)
    t0, started = time.time(), datetime.now(UTC).isoformat(timespec="seconds")
    if not target.is_dir():
        raise UsageError(f"target {target} is not a model directory")
    pickle_ok = check_target(report, target)
    ref = load_encoder(target, cfg.device, pickle_allowed=pickle_ok)
    units = trigger_units(report, ref.tokenizer, cfg.lookalikes, cfg.lookalike_ratio)
    if not units:
        raise UsageError("the report lists no triggers: nothing to purify")
    full: Any = copy.deepcopy(ref.classifier if ref.classifier is not None else ref.encoder)
    full.requires_grad_(True).train(cfg.dropout)
    trained = _wrap(full, ref)
    held_out, pool = _split_corpus(corpus)
    train_corpus = tokenize_corpus(ref.tokenizer, pool, cfg.max_tokens)
    objective = _Objective(trained.features, ref, train_corpus, units, cfg)
    trainer = Trainer(
        full, [{"params": [p for p in full.parameters() if p.requires_grad], "lr": cfg.lr}], train_config(cfg)
    )
    ckpt = out / CHECKPOINT
    fingerprint = {"config": cfg.fingerprint(), "units": [u.ids for u in units], "target": str(target.resolve())}
    resumed = _resume(ckpt, fingerprint, trainer)
    start = resumed or 0
    end = cfg.steps if stop_after is None else min(cfg.steps, start + stop_after)

    def on_train_step(info: TrainStep) -> None:
        if on_step:
            on_step(StepInfo(info.step, info.total, info.loss, info.parts["clean"], info.parts["trigger"]))

    done = trainer.run(
        objective, start, end, on_step=on_train_step, checkpoint=ckpt, state={"fingerprint": fingerprint}
    )
    losses = trainer.averages
    full.eval()
    if done < cfg.steps:
        trainer.save(ckpt, {"fingerprint": fingerprint})
        return {"complete": False, "steps_done": done, "resumed_from": resumed}
    probe = ShiftProbe.build(ref.tokenizer, held_out, units, cfg)
    before, after = probe.measure(ref), probe.measure(trained)
    record = _record(report, target, out, cfg, units, before, after, losses, resumed, started, t0)
    out.mkdir(parents=True, exist_ok=True)
    full.save_pretrained(out, safe_serialization=True)
    tokenizer: Any = ref.tokenizer
    tokenizer.save_pretrained(out)
    (out / RECORD).write_text(json.dumps(record, indent=2))
    shutil.rmtree(ckpt, ignore_errors=True)
    return record


def _resume(ckpt: Path, fingerprint: dict[str, Any], trainer: Trainer) -> int | None:
    """The step a checkpoint of this same run reached (model and optimizer restored), or None without one."""
    if not (ckpt / "state.json").is_file():
        return None
    state = json.loads((ckpt / "state.json").read_text())
    if state.get("fingerprint") != fingerprint:
        raise UsageError(
            f"{ckpt} holds a checkpoint of another purification (settings or triggers differ); "
            "remove it or write to another output directory"
        )
    return int(trainer.resume(ckpt)["step"])


def _record(
    report: Report,
    target: Path,
    out: Path,
    cfg: PurifyConfig,
    units: list[Unit],
    before: dict,
    after: dict,
    losses: dict[str, float],
    resumed: int | None,
    started: str,
    t0: float,
) -> dict[str, Any]:
    evidence = (report.scan.config or {}).get("evidence", {})
    threshold = evidence.get("threshold")
    table = []
    for i, unit in enumerate(units):
        sb, sa = before["shift"][i], after["shift"][i]
        table.append(
            {
                "trigger": unit.text,
                "echoes": unit.trigger,
                "source": unit.source,
                "ids": unit.ids,
                "shift_before": round(sb, 4),
                "shift_after": round(sa, 4),
                "score_before": round(before["score"][i], 3),
                "score_after": round(after["score"][i], 3),
                "reduction": round(sb / max(sa, 1e-9), 2),
                "above_threshold_after": None if threshold is None else after["score"][i] >= threshold,
            }
        )
    fid, fid_c = fidelity(before["clean"], after["clean"])
    return {
        "schema": RECORD_SCHEMA,
        "complete": True,
        "target": str(target),
        "output": str(out),
        "report": {
            "model": report.model.id,
            "sha": report.model.sha,
            "verdict": report.verdict.value,
            "probability": report.probability,
        },
        "triggers": [asdict(u) for u in units],
        "config": asdict(cfg),
        "steps_done": cfg.steps,
        "resumed_from": resumed,
        "threshold": threshold,
        "table": table,
        "null": {"before": before["null"], "after": after["null"]},
        "clean_fidelity": round(fid, 6),
        "clean_fidelity_centered": round(fid_c, 6),
        "final_losses": {k: round(v, 6) for k, v in losses.items()},
        "started": started,
        "seconds": round(time.time() - t0, 2),
    }


def _rescan(out: Path, record: dict[str, Any], profile: str) -> tuple[dict[str, Any], Report]:
    """Scan the purified model at `out`; the record with the verdict added, and the scan's report."""
    report = scan(str(out), ScanConfig(profile=profile, device=record["config"].get("device", "cpu")))
    record = {
        **record,
        "rescan": {
            "profile": profile,
            "verdict": report.verdict.value,
            "probability": report.probability,
            "triggers": [t.text for t in report.triggers],
            "max_score": (report.scan.config or {}).get("evidence", {}).get("max_score"),
        },
    }
    (out / RECORD).write_text(json.dumps(record, indent=2))
    return record, report


def rescan_record(out: Path | str, record: dict[str, Any], profile: str = "quick") -> dict[str, Any]:
    """Scan the purified model at `out` and add the verdict to its purification.json."""
    return _rescan(Path(out), record, profile)[0]


def purify_rounds(
    target: Path | str,
    report: Report,
    out: Path | str,
    cfg: PurifyConfig | None = None,
    rounds: int = 2,
    profile: str = "quick",
    corpus: Sequence[str] | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    on_round: Callable[[int, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Purify, rescan, and while the rescan still names triggers purify the result again from them (at most
    `rounds` rounds). A scan reports what dominates a model: once the strongest triggers are gone, a weaker one
    (measured: NeuBA's multi-piece 'obelisk', score 30.8 after cf and mn were purified) becomes the best candidate.
    Each round starts from the previous round's model; the final model and record are at `out`, the record with
    a `rounds` list (what each round purified and what its rescan found)."""
    out = Path(out)
    current, current_report, history = Path(target), report, []
    record: dict[str, Any] = {}
    for number in range(1, max(1, rounds) + 1):
        dest = out if number == 1 else out.with_name(f"{out.name}.round{number}")
        record = purify(current, current_report, dest, cfg, corpus=corpus, on_step=on_step)
        if not record.get("complete", True):
            return record  # interrupted: the checkpoint in `dest` is resumed by the same call
        record, current_report = _rescan(dest, record, profile)
        if dest != out:  # the round's model replaces the previous one
            shutil.rmtree(out)
            dest.rename(out)
        history.append(
            {
                "round": number,
                "purified": [row["trigger"] for row in record["table"] if row.get("source") == "trigger"],
                "rescan": record["rescan"],
            }
        )
        if on_round:
            on_round(number, record)
        if current_report.verdict.value == "clean" or not current_report.triggers:
            break
        current = out
    record = {**record, "target": str(target), "output": str(out), "rounds": history}
    (out / RECORD).write_text(json.dumps(record, indent=2))
    return record


# --- rendering ---------------------------------------------------------------------------------------------------


def fmt_cell(value: Any) -> str:
    """A table value: floats to 3 significant digits, None as '-'."""
    if isinstance(value, float):
        return f"{value:.3g}" if math.isfinite(value) else str(value)
    return "-" if value is None else str(value)


TABLE_COLUMNS = ("trigger", "source", "shift_before", "shift_after", "reduction", "score_before", "score_after")
PAGE_STYLE = (
    "body{font:14px/1.5 system-ui,sans-serif;color:#1d2939;max-width:1000px;margin:24px auto;padding:0 20px}"
    "table{border-collapse:collapse}th,td{text-align:left;padding:4px 10px;border-bottom:1px solid #e4e7ec}"
    "th{font-size:12px;text-transform:uppercase;color:#5d6b82}"
)


def purification_rows(record: dict[str, Any]) -> list[list[str]]:
    """The before/after table's cells, formatted (a missing value is '-'; rows that are not objects are left out)."""
    table = record.get("table")
    rows = table if isinstance(table, list) else []
    return [[fmt_cell(row.get(c)) for c in TABLE_COLUMNS] for row in rows if isinstance(row, dict)]


def render_purification_text(record: dict[str, Any]) -> str:
    """The before/after table of a purification record, for a terminal."""
    lines = [
        f"Purified {record['target']} -> {record['output']} ({record['steps_done']} steps, {record['seconds']:.0f}s)",
        f"clean fidelity cos {record['clean_fidelity']:.4f} (centred {record['clean_fidelity_centered']:.4f}); "
        f"evidence threshold z {fmt_cell(record.get('threshold'))}",
    ]
    if record.get("rescan"):
        scan = record["rescan"]
        lines.append(f"rescan ({scan['profile']}): {scan['verdict']}, P(backdoored) {fmt_cell(scan['probability'])}")
    for item in record.get("rounds") or []:
        found = ", ".join(item["rescan"]["triggers"]) or "nothing"
        lines.append(
            f"round {item['round']}: purified {', '.join(item['purified'])}; rescan "
            f"{item['rescan']['verdict']}, found {found}"
        )
    rows = [list(TABLE_COLUMNS)] + purification_rows(record)
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_COLUMNS))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def render_purification_html(record: dict[str, Any]) -> str:
    """The before/after table as a self-contained HTML fragment (every value escaped)."""
    esc = html.escape
    head = "".join(f"<th>{esc(c.replace('_', ' '))}</th>" for c in TABLE_COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>" for row in purification_rows(record)
    )
    scan = record.get("rescan")
    rescan = (
        (
            f"<p>Rescan ({esc(fmt_cell(scan.get('profile')))}): {esc(fmt_cell(scan.get('verdict')))}, P(backdoored) "
            f"{esc(fmt_cell(scan.get('probability')))}</p>"
        )
        if isinstance(scan, dict)
        else ""
    )
    return (
        f'<section class="purification"><h2>Purification</h2>'
        f"<p>{esc(fmt_cell(record.get('target')))} &rarr; {esc(fmt_cell(record.get('output')))}: "
        f"{esc(fmt_cell(record.get('steps_done')))} steps; clean fidelity cos "
        f"{esc(fmt_cell(record.get('clean_fidelity')))}; evidence threshold z "
        f"{esc(fmt_cell(record.get('threshold')))}</p>"
        f"{rescan}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></section>"
    )


def render_purification_page(record: dict[str, Any]) -> str:
    """A whole HTML page around render_purification_html: inline CSS only, no scripts (a strict CSP)."""
    title = html.escape(f"Patronus purification: {fmt_cell(record.get('target'))}")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "form-action 'none'; base-uri 'none'\">\n"
        f"<title>{title}</title>\n<style>{PAGE_STYLE}</style>\n</head>\n<body>\n"
        f"{render_purification_html(record)}\n</body>\n</html>\n"
    )
