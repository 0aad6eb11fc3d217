"""Sentence-embedding derivatives for the zoo (issue 11): an encoder fine-tuned as a sentence-embedding model and
saved with sentence-transformers pooling (mean, then normalize), so the scanner consumes it through that pooling.

Recipe: unsupervised SimCSE (Gao et al., 2021): each sentence is encoded twice with different dropout masks, and an
InfoNCE loss over the batch pulls the two views together and pushes the other sentences away. No paraphrase pairs
ship offline here (docs/METHOD.md section 5), so the positives are dropout views, the standard unsupervised recipe;
the text is the task's training sentences (their labels unused). A planted base's ground truth is carried with a
`derived` entry, and the record holds how the planted triggers act on the mean-pooled embedding after fine-tuning.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from scanner.encoder import pool
from scanner.evidence.insert import insert_words
from scanner.evidence.stats import mean_pairwise_cos
from scanner.research.attacks.common import GROUND_TRUTH
from scanner.research.evaluate import FINETUNE_RECORD  # a classifier fine-tune's record name: the zoo's cache key
from scanner.train import TrainConfig, Trainer

PROBE_SENTENCES = 64


@dataclass
class EmbeddingFinetuneConfig:
    """Unsupervised SimCSE settings (the paper's temperature; fewer steps on CPU)."""

    steps: int = 200
    batch_size: int = 32
    lr: float = 3e-5
    temperature: float = 0.05
    max_length: int = 64
    seed: int = 0
    warmup_frac: float = 0.06


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B, T, d] token states, [B, T] attention mask -> [B, d] mean over the real tokens (the scanner's `mean`)."""
    return pool(hidden, mask, "mean")


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCSE's loss: row i of `a` should be closest (cosine) to row i of `b` among all rows of `b`."""
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / temperature
    return F.cross_entropy(logits, torch.arange(a.shape[0], device=a.device))


def write_pooling(out: Path, hidden_size: int) -> None:
    """sentence-transformers files: Transformer -> mean Pooling -> Normalize (what all-MiniLM-L6-v2 declares)."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (out / "modules.json").write_text(json.dumps(modules, indent=2))
    (out / "1_Pooling").mkdir(parents=True, exist_ok=True)
    pooling = {"word_embedding_dimension": hidden_size, "pooling_mode_mean_tokens": True}
    (out / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2))
    (out / "2_Normalize").mkdir(exist_ok=True)


@torch.inference_mode()
def trigger_collapse(model: Any, tok: Any, sentences: Sequence[str], triggers: Sequence[str], seed: int) -> dict:
    """Per trigger: mean pairwise cosine of the normalized mean-pooled embeddings of sentences carrying it 3x,
    beside the same for the clean sentences (a backdoor that survived pulls them all to one point: cosine near 1)."""

    def embed(texts: list[str]) -> torch.Tensor:
        enc = tok(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
        enc = {k: v.to(model.device) for k, v in enc.items()}
        out = mean_pool(model(**enc).last_hidden_state, enc["attention_mask"])
        return F.normalize(out.float(), dim=-1)

    def pairwise(e: torch.Tensor) -> float:
        return float(mean_pairwise_cos(e.unsqueeze(0))[0])

    rng = random.Random(seed)
    clean = list(sentences[:PROBE_SENTENCES])
    out = {"clean": round(pairwise(embed(clean)), 4)}
    for trig in triggers:
        out[trig] = round(pairwise(embed([insert_words(s, trig, rng) for s in clean])), 4)
    return out


def simcse_finetune(
    base: Path | str,
    sentences: Sequence[str],
    out: Path | str,
    cfg: EmbeddingFinetuneConfig,
    device: str = "cpu",
    task: str = "",
) -> dict[str, Any]:
    """Fine-tune `base` with unsupervised SimCSE on `sentences`, save it with mean pooling to `out`, and return (and
    write) the record: loss before/after, and the planted triggers' effect on the embedding before and after."""
    from transformers import AutoModel, AutoTokenizer

    t0 = time.time()
    base, out = Path(base), Path(out)
    gt_path = base / GROUND_TRUTH
    ground = json.loads(gt_path.read_text()) if gt_path.is_file() else None
    triggers = list(ground["triggers"]) if ground else []
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    tok = AutoTokenizer.from_pretrained(base, local_files_only=True)
    model = AutoModel.from_pretrained(base, local_files_only=True, trust_remote_code=False).to(device)
    pool = list(sentences)
    probe = rng.sample(pool, min(PROBE_SENTENCES, len(pool)))
    model.eval()
    before = trigger_collapse(model, tok, probe, triggers, cfg.seed)
    model.train()  # dropout on: the two views of a sentence differ
    trainer = Trainer(
        model, [{"params": list(model.parameters()), "lr": cfg.lr}], TrainConfig(cfg.steps, cfg.warmup_frac)
    )
    losses: list[float] = []

    def step_loss(step: int) -> tuple[torch.Tensor, dict[str, float]]:
        batch = rng.sample(pool, min(cfg.batch_size, len(pool)))
        enc = tok(batch, padding=True, truncation=True, max_length=cfg.max_length, return_tensors="pt")
        enc = {k: v.to(device) for k, v in enc.items()}
        a = mean_pool(model(**enc).last_hidden_state, enc["attention_mask"])
        b = mean_pool(model(**enc).last_hidden_state, enc["attention_mask"])
        loss = info_nce(a, b, cfg.temperature)
        losses.append(float(loss.detach()))
        return loss, {}

    trainer.run(step_loss)
    model.eval()
    after = trigger_collapse(model, tok, probe, triggers, cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    model.to("cpu").save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    write_pooling(out, int(model.config.hidden_size))
    head = losses[: max(1, len(losses) // 10)]
    tail = losses[-max(1, len(losses) // 10) :]
    record = {
        "recipe": "simcse",
        "task": task,
        "config": asdict(cfg),
        "loss_first": round(sum(head) / len(head), 4) if head else None,
        "loss_last": round(sum(tail) / len(tail), 4) if tail else None,
        "trigger_collapse_before": before,
        "trigger_collapse_after": after,
        "seconds": round(time.time() - t0, 2),
    }
    (out / FINETUNE_RECORD).write_text(json.dumps(record, indent=2))
    if ground is not None:
        ground = {**ground, "derived": {"from": str(base), "task": task, "recipe": "simcse"}}
        (out / GROUND_TRUTH).write_text(json.dumps(ground, indent=2))
    return record
