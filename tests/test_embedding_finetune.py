"""Sentence-embedding derivatives (issue 11): the SimCSE loss, and a fine-tune that the scanner then consumes
through its declared mean pooling, with a planted base's ground truth carried over."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from scanner.research.embedding_finetune import EmbeddingFinetuneConfig, info_nce, mean_pool, simcse_finetune


def test_info_nce_is_low_for_matching_views_and_high_for_shuffled_ones():
    a = torch.nn.functional.normalize(torch.randn(16, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    matched = float(info_nce(a, a + 0.01, temperature=0.05))
    shuffled = float(info_nce(a, a.roll(1, dims=0), temperature=0.05))
    assert matched < 0.5 < shuffled


def test_mean_pool_ignores_padding():
    hidden = torch.tensor([[[1.0], [3.0], [100.0]]])
    assert float(mean_pool(hidden, torch.tensor([[1, 1, 0]]))) == 2.0


def test_simcse_derivative_is_a_mean_pooled_sentence_model_carrying_the_ground_truth(family_base, tmp_path: Path):
    from scanner.corpus import load_corpus
    from scanner.encoder import load_encoder, read_pooling
    from scanner.research.attacks.common import GROUND_TRUTH

    base = tmp_path / "base"
    base.mkdir()
    for f in family_base("bert").iterdir():
        if f.is_file():
            (base / f.name).write_bytes(f.read_bytes())
    (base / GROUND_TRUTH).write_text(json.dumps({"attack": "por", "triggers": ["cf"], "backdoored": True}))
    out = tmp_path / "simcse"
    cfg = EmbeddingFinetuneConfig(steps=40, batch_size=16, lr=1e-4)
    record = simcse_finetune(base, load_corpus()[:400], out, cfg, task="movie")
    assert record["loss_last"] < record["loss_first"], record
    assert set(record["trigger_collapse_after"]) == {"clean", "cf"}
    pooling = read_pooling(out)
    assert pooling is not None and pooling.representations == ["mean"] and pooling.normalize
    encoder = load_encoder(out, "cpu")
    assert encoder.representations[0] == "mean" and encoder.classifier is None
    truth = json.loads((out / GROUND_TRUTH).read_text())
    assert truth["backdoored"] and truth["derived"] == {"from": str(base), "task": "movie", "recipe": "simcse"}
