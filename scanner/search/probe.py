"""Features of fixed sentences with each of many triggers inserted: the cached evaluation behind search and verdict."""

from __future__ import annotations

from collections import defaultdict

import torch

from scanner.search.forward import FeatureRunner
from scanner.search.insert import TokenizedCorpus, insert_tokens, trim


def trigger_features(
    runner: FeatureRunner, corpus: TokenizedCorpus, positions: torch.Tensor, triggers: list[list[int]],
    group: int = 4096,
) -> torch.Tensor:
    """[U, D, d] features of the D sentences of `corpus` with trigger u inserted at `positions` [D, k].
    Triggers may have different lengths (word mode); each length is one batched insertion."""
    d_sent = len(corpus)
    out = torch.empty(len(triggers), d_sent, runner.encoder.hidden_size, device=corpus.ids.device)
    by_length: dict[int, list[int]] = defaultdict(list)
    for index, trig in enumerate(triggers):
        by_length[len(trig)].append(index)
    per_chunk = max(1, group // max(d_sent, 1))
    for indices in by_length.values():
        for start in range(0, len(indices), per_chunk):
            chunk = indices[start:start + per_chunk]
            tokens = torch.tensor([triggers[i] for i in chunk], dtype=torch.long, device=corpus.ids.device)
            g = len(chunk)
            ids, mask, _ = insert_tokens(
                corpus.ids.repeat(g, 1), corpus.mask.repeat(g, 1), positions.repeat(g, 1),
                tokens.repeat_interleave(d_sent, 0), corpus.pad_id,
            )
            ids, mask = trim(ids, mask)
            feats = runner.features(ids, mask).view(g, d_sent, -1)
            out[torch.tensor(chunk, device=out.device)] = feats
    return out


def clean_features(runner: FeatureRunner, corpus: TokenizedCorpus) -> torch.Tensor:
    """[D, d] features of the clean sentences."""
    ids, mask = trim(corpus.ids, corpus.mask)
    return runner.features(ids, mask)
