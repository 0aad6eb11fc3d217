"""Downstream evaluation (METHOD.md section 5): fine-tune an encoder + linear head on a labeled task, clean accuracy
(CACC), per-trigger attack success (ASR) with T-ASR / C-ASR / ALC, and detection metrics (TPR/FPR, ROC-AUC,
cross-entropy of the probability, per-trigger recall).

ASR protocol: per trigger the target label is the majority prediction on 30 dev sentences with the trigger inserted
3x; ASR is the share of non-target test samples predicted as the target with the trigger inserted 3x.
T-ASR is the mean ASR over triggers; C-ASR the mean over labels of the best ASR among the triggers aimed at that
label (0 for a label no trigger hits); ALC the share of labels hit by some trigger with ASR > 0.9 (as in the
Patronus authors' code, after UOR).
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from scanner.evidence.insert import insert_words as insert_trigger
from scanner.research.attacks.common import GROUND_TRUTH
from scanner.research.datasets import Example, Task
from scanner.train import StepInfo, TrainConfig, Trainer

FINETUNE_RECORD = "finetune.json"


@dataclass
class FinetuneConfig:
    """Downstream fine-tuning settings (the paper fine-tunes all weights; so do we, for fewer steps on CPU)."""

    task: str = "movie"
    steps: int = 300
    batch_size: int = 16
    lr: float = 5e-5
    head_lr: float = 1e-3
    max_length: int = 128
    seed: int = 0
    max_train: int | None = None
    max_eval: int | None = 400
    warmup_frac: float = 0.06
    freeze_encoder: bool = False  # train the classification head only (a frozen-encoder recipe)


@dataclass
class TriggerASR:
    trigger: str
    target: int
    asr: float
    n: int


@dataclass
class DownstreamResult:
    """CACC and attack success of one fine-tuned model."""

    task: str
    cacc: float
    per_trigger: list[TriggerASR] = field(default_factory=list)
    t_asr: float | None = None
    c_asr: float | None = None
    alc: float | None = None
    seconds: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- prediction --------------------------------------------------------------------------------------------------


@torch.no_grad()
def predict(
    model: torch.nn.Module, tokenizer: Any, texts: Sequence[str], max_length: int = 128, batch_size: int = 64
) -> list[int]:
    """Argmax labels of a sequence classifier."""
    model.eval()
    device = next(model.parameters()).device
    preds: list[int] = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(
            list(texts[i : i + batch_size]), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        logits = model(input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device)).logits
        preds.extend(logits.argmax(-1).tolist())
    return preds


def accuracy(model: torch.nn.Module, tokenizer: Any, examples: Sequence[Example], max_length: int = 128) -> float:
    preds = predict(model, tokenizer, [t for t, _ in examples], max_length)
    return sum(int(p == y) for p, (_, y) in zip(preds, examples, strict=True)) / max(len(examples), 1)


def attack_success(
    model: torch.nn.Module,
    tokenizer: Any,
    task: Task,
    triggers: Sequence[str],
    seed: int = 0,
    max_length: int = 128,
    times: int = 3,
) -> list[TriggerASR]:
    """Per-trigger target label (majority on 30 dev sentences) and ASR on the non-target test samples."""
    out = []
    max_pos = max_length // 2  # keep the inserted words inside the truncated window
    for i, trig in enumerate(triggers):
        rng = random.Random(seed * 1000 + i)
        dev = [insert_trigger(t, trig, rng, times, max_pos) for t, _ in task.dev[:30]]
        target = Counter(predict(model, tokenizer, dev, max_length)).most_common(1)[0][0]
        rest = [t for t, y in task.test if y != target]
        poisoned = [insert_trigger(t, trig, rng, times, max_pos) for t in rest]
        preds = predict(model, tokenizer, poisoned, max_length)
        out.append(TriggerASR(trig, int(target), sum(int(p == target) for p in preds) / max(len(preds), 1), len(preds)))
    return out


def summarize_asr(per_trigger: Sequence[TriggerASR], num_labels: int) -> tuple[float, float, float]:
    """(T-ASR, C-ASR, ALC) from per-trigger results."""
    if not per_trigger:
        return float("nan"), float("nan"), float("nan")
    t_asr = sum(r.asr for r in per_trigger) / len(per_trigger)
    best = [0.0] * num_labels
    for r in per_trigger:
        best[r.target] = max(best[r.target], r.asr)
    c_asr = sum(best) / num_labels
    alc = sum(1.0 for b in best if b > 0.9) / num_labels
    return t_asr, c_asr, alc


# --- fine-tuning -------------------------------------------------------------------------------------------------


def _batches(train: list[Example], cfg: FinetuneConfig, rng: random.Random):
    order: list[int] = []
    while True:
        if len(order) < cfg.batch_size:
            fresh = list(range(len(train)))
            rng.shuffle(fresh)
            order.extend(fresh)
        idx, order = order[: cfg.batch_size], order[cfg.batch_size :]
        yield [train[i] for i in idx]


def train_classifier(base: Path | str, task: Task, cfg: FinetuneConfig, log_every: int = 0, device: str = "cpu"):
    """Fine-tune all weights of `base` + a fresh classification head on `task` (on `device`; batches are drawn the
    same way on every device); returns (model, tokenizer)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    from scanner.encoder import prepare_tokenizer, read_config

    decoder = read_config(Path(base)).is_decoder  # a decoder becomes a sequence classifier on its last token
    tok = prepare_tokenizer(AutoTokenizer.from_pretrained(base, local_files_only=True), decoder)
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=task.num_labels,
        id2label=dict(enumerate(task.labels)),
        label2id={n: i for i, n in enumerate(task.labels)},
        local_files_only=True,
        trust_remote_code=False,
    )
    if decoder and model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id  # type: ignore[attr-defined]
    model.to(device)
    prefix = model.base_model_prefix + "."
    # A frozen-encoder recipe trains the pooler with the head. Measured on MiniLM-L2 it did not lift the head off
    # chance (spam CACC 0.39 -> 0.39, news 0.23 -> 0.32): this mean-pooling model's [CLS] state carries little.
    trained_with_head = (prefix + "pooler.",) if cfg.freeze_encoder else ()
    body = [p for n, p in model.named_parameters() if n.startswith(prefix) and not n.startswith(trained_with_head)]
    head = [p for n, p in model.named_parameters() if not n.startswith(prefix) or n.startswith(trained_with_head)]
    groups = [{"params": head, "lr": cfg.head_lr}]
    if cfg.freeze_encoder:
        for p in body:
            p.requires_grad_(False)
    else:
        groups.insert(0, {"params": body, "lr": cfg.lr})
    trainer = Trainer(
        model,
        groups,
        TrainConfig(steps=cfg.steps, warmup_frac=cfg.warmup_frac, weight_decay=0.01),
    )
    model.train()
    batches = _batches(task.train, cfg, rng)

    def step_loss(step: int) -> tuple[torch.Tensor, dict[str, float]]:
        batch = next(batches)
        enc = tok([t for t, _ in batch], padding=True, truncation=True, max_length=cfg.max_length, return_tensors="pt")  # type: ignore[operator]
        out = model(
            input_ids=enc["input_ids"].to(device),
            attention_mask=enc["attention_mask"].to(device),
            labels=torch.tensor([y for _, y in batch]).to(device),
        )
        return out.loss, {}

    def log(info: StepInfo) -> None:
        if log_every and info.step % log_every == 0:
            print(f"[finetune {task.name}] step {info.step}/{cfg.steps} loss={info.loss:.4f}")

    trainer.run(step_loss, on_step=log)
    model.eval()
    return model, tok


def finetune(
    base: Path | str,
    task: Task,
    out: Path | str,
    cfg: FinetuneConfig,
    triggers: Sequence[str] | None = None,
    log_every: int = 0,
    device: str = "cpu",
) -> DownstreamResult:
    """Fine-tune `base` on `task`, save the classifier (safetensors) to `out`, and measure CACC and, for the
    triggers (default: those of the base's ground_truth.json), ASR. A base's ground truth is carried to `out`
    with a `derived` entry, so derived models are scored against the backdoor they inherit."""
    t0 = time.time()
    base, out = Path(base), Path(out)
    gt_path = base / GROUND_TRUTH
    ground = json.loads(gt_path.read_text()) if gt_path.is_file() else None
    if triggers is None:
        triggers = list(ground["triggers"]) if ground else []
    model, tok = train_classifier(base, task, cfg, log_every, device)
    cacc = accuracy(model, tok, task.test, cfg.max_length)
    per = attack_success(model, tok, task, triggers, cfg.seed, cfg.max_length) if triggers else []
    t_asr, c_asr, alc = summarize_asr(per, task.num_labels) if per else (None, None, None)
    result = DownstreamResult(
        task.name, round(cacc, 6), per, t_asr, c_asr, alc, round(time.time() - t0, 2), asdict(cfg)
    )
    out.mkdir(parents=True, exist_ok=True)
    model.to("cpu").save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    (out / FINETUNE_RECORD).write_text(json.dumps(result.to_dict(), indent=2))
    if ground is not None:
        ground = {**ground, "derived": {"from": str(base), "task": task.name, "cacc": result.cacc}}
        (out / GROUND_TRUTH).write_text(json.dumps(ground, indent=2))
    return result


def copy_model(src: Path, dst: Path) -> None:
    """Copy a model directory (used by benchmarks to snapshot cached models)."""
    shutil.copytree(src, dst, dirs_exist_ok=True)


# --- detection metrics -------------------------------------------------------------------------------------------


@dataclass
class DetectionMetrics:
    n: int
    positives: int
    tpr: float
    fpr: float
    auc: float
    cross_entropy: float


def tpr_fpr(y_true: Sequence[bool], y_pred: Sequence[bool]) -> tuple[float, float]:
    """True-positive rate over backdoored models, false-positive rate over clean ones (nan when a class is empty)."""
    pos = [p for t, p in zip(y_true, y_pred, strict=True) if t]
    neg = [p for t, p in zip(y_true, y_pred, strict=True) if not t]
    tpr = sum(map(bool, pos)) / len(pos) if pos else float("nan")
    fpr = sum(map(bool, neg)) / len(neg) if neg else float("nan")
    return tpr, fpr


def roc_auc(y_true: Sequence[bool], scores: Sequence[float]) -> float:
    """Area under the ROC curve = P(score of a random positive > a random negative), ties counting half."""
    pos = [s for t, s in zip(y_true, scores, strict=True) if t]
    neg = [s for t, s in zip(y_true, scores, strict=True) if not t]
    if not pos or not neg:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def cross_entropy(y_true: Sequence[bool], probs: Sequence[float], eps: float = 1e-4) -> float:
    """Mean binary cross-entropy of the probability of 'backdoored' (TrojAI scoring; probabilities clipped)."""
    total = 0.0
    for t, p in zip(y_true, probs, strict=True):
        p = min(max(float(p), eps), 1 - eps)
        total += -math.log(p) if t else -math.log(1 - p)
    return total / max(len(y_true), 1)


def detection_metrics(
    y_true: Sequence[bool], probs: Sequence[float], threshold: float = 0.5, y_pred: Sequence[bool] | None = None
) -> DetectionMetrics:
    """All per-model detection metrics at once (predictions default to probability >= threshold)."""
    pred = list(y_pred) if y_pred is not None else [p >= threshold for p in probs]
    tpr, fpr = tpr_fpr(y_true, pred)
    return DetectionMetrics(
        len(y_true), sum(map(bool, y_true)), tpr, fpr, roc_auc(y_true, probs), cross_entropy(y_true, probs)
    )


def _bare(token: str) -> str:
    return token.replace("##", "").replace("\u0120", "").replace("\u2581", "").strip().lower()


def trigger_found(planted: str, found: Sequence[str], lookalikes: dict[str, Sequence[str]] | None = None) -> bool:
    """A planted trigger counts as recovered when a found trigger is it, a piece of it (>= 2 characters, e.g. 'obe'
    for 'obelisk'), or a found trigger lists it among its look-alikes."""
    want = planted.lower()
    for f in found:
        b = _bare(f)
        if b == want or (len(b) >= 2 and b in want) or want in [_bare(x) for x in (lookalikes or {}).get(f, [])]:
            return True
    return False


def trigger_recall(
    planted: Sequence[str], found: Sequence[str], lookalikes: dict[str, Sequence[str]] | None = None
) -> float:
    """Share of planted triggers recovered (see `trigger_found`)."""
    if not planted:
        return float("nan")
    return sum(trigger_found(p, found, lookalikes) for p in planted) / len(planted)
