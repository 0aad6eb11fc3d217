"""Adversarial fine-tuning (METHOD.md section 4): fine-tune a downstream task with extra samples that carry the
recovered triggers and keep their TRUE label, so the classifier learns to ignore them."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from scanner.evidence.insert import insert_words
from scanner.mitigate.monitor import surface_word
from scanner.research.datasets import Task
from scanner.research.evaluate import DownstreamResult, FinetuneConfig, finetune


def adversarial_task(
    task: Task, triggers: Sequence[str], rate: float = 0.2, times: int = 3, seed: int = 0, max_pos: int | None = None
) -> Task:
    """The task with, per trigger, rate*|train| extra training samples that carry the trigger `times` times and
    keep their TRUE label. Bare continuation pieces ('##k') cannot be written as text and are left out."""
    rng = random.Random(seed)
    words = [w for w in dict.fromkeys(surface_word(t) for t in triggers) if w]
    n = round(rate * len(task.train))
    extra = []
    for word in words:
        for text, label in rng.sample(task.train, min(n, len(task.train))):
            extra.append((insert_words(text, word, rng, times, max_pos), label))
    train = task.train + extra
    rng.shuffle(train)
    return replace(task, train=train, sizes={**task.sizes, "adversarial": len(extra)})


def adversarial_finetune(
    base: Path | str,
    task: Task,
    out: Path | str,
    cfg: FinetuneConfig,
    triggers: Sequence[str],
    eval_triggers: Sequence[str] | None = None,
    rate: float = 0.2,
    device: str = "cpu",
) -> DownstreamResult:
    """`finetune` on the adversarially augmented task; ASR measured with `eval_triggers` (default: the same)."""
    augmented = adversarial_task(task, triggers, rate, 3, cfg.seed, max_pos=cfg.max_length // 2)
    return finetune(base, augmented, out, cfg, triggers=list(eval_triggers or triggers), device=device)
