"""Features of many sequences at a model's representation: length-bucketed chunks, inference mode, bf16 on CUDA,
batch halving on out-of-memory. Every measurement of the scanner (search, verdict, purification, monitor, attack
quality) computes features through here."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from scanner.evidence.insert import TokenizedCorpus, insert_tokens, trim

if TYPE_CHECKING:
    from scanner.encoder import Representation


def autocast(device: torch.device):
    """bf16 autocast on CUDA, nothing on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def representations(encoder: Any) -> list[str | None]:
    """The representations an encoder offers (LoadedEncoder.representations once it lists them); [None] means
    the encoder's one default representation."""
    listed = getattr(encoder, "representations", None)
    return list(listed) if listed else [None]


def encoder_features(
    encoder: Any, ids: torch.Tensor, mask: torch.Tensor, representation: Representation = None
) -> torch.Tensor:
    """encoder.features at `representation` (the default one when None; a tuple: several, concatenated)."""
    if representation is None:
        return encoder.features(ids, mask)
    return encoder.features(ids, mask, representation=representation)


class FeatureRunner:
    """Computes representation features for many sequences and counts what it evaluated. A tuple of
    representations is a joint runner: one forward a sequence, the representations' features concatenated."""

    def __init__(self, encoder: Any, batch_size: int = 512, representation: Representation = None) -> None:
        self.encoder = encoder
        self.batch_size = batch_size
        self.representation = representation
        self.sequences = 0
        self.tokens = 0  # real (unpadded) tokens through the encoder

    @property
    def width(self) -> int:
        """Feature width: the hidden size times the number of representations."""
        count = len(self.representation) if isinstance(self.representation, tuple) else 1
        return int(self.encoder.hidden_size) * count

    def features(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[N, d] float32 features, no gradient; rows sorted by length so chunks carry little padding."""
        lengths = mask.sum(1)
        order = torch.argsort(lengths, descending=True)
        out = torch.empty(ids.shape[0], self.width, device=ids.device, dtype=torch.float32)
        start = 0
        while start < ids.shape[0]:
            rows = order[start : start + self.batch_size]
            width = int(lengths[rows].max())
            try:
                with torch.inference_mode(), autocast(ids.device):
                    feats = encoder_features(self.encoder, ids[rows, :width], mask[rows, :width], self.representation)
            except torch.cuda.OutOfMemoryError:
                if self.batch_size == 1:
                    raise
                self.batch_size //= 2
                torch.cuda.empty_cache()
                continue
            out[rows] = feats.float()
            start += len(rows)
        self.sequences += ids.shape[0]
        self.tokens += int(lengths.sum())
        return out

    def features_with_grad(self, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Features from input embeddings, keeping the graph (one batch: the gradient step is small)."""
        with autocast(embeds.device):
            if self.representation is None:
                feats = self.encoder.features_from_embeds(embeds, mask)
            else:
                feats = self.encoder.features_from_embeds(embeds, mask, representation=self.representation)
        self.sequences += embeds.shape[0]
        self.tokens += int(mask.sum())
        return feats.float()


def clean_features(runner: FeatureRunner, corpus: TokenizedCorpus) -> torch.Tensor:
    """[D, d] features of the clean sentences."""
    ids, mask = trim(corpus.ids, corpus.mask)
    return runner.features(ids, mask)


def trigger_features(
    runner: FeatureRunner,
    corpus: TokenizedCorpus,
    positions: torch.Tensor,
    triggers: list[list[int]],
    group: int = 4096,
) -> torch.Tensor:
    """[U, D, d] features of the D sentences of `corpus` with trigger u inserted at `positions` [D, k].
    Triggers may have different lengths (word mode); each length is one batched insertion."""
    d_sent = len(corpus)
    out = torch.empty(len(triggers), d_sent, runner.width, device=corpus.ids.device)
    by_length: dict[int, list[int]] = defaultdict(list)
    for index, trig in enumerate(triggers):
        by_length[len(trig)].append(index)
    per_chunk = max(1, group // max(d_sent, 1))
    for indices in by_length.values():
        for start in range(0, len(indices), per_chunk):
            chunk = indices[start : start + per_chunk]
            tokens = torch.tensor([triggers[i] for i in chunk], dtype=torch.long, device=corpus.ids.device)
            g = len(chunk)
            ids, mask, _ = insert_tokens(
                corpus.ids.repeat(g, 1),
                corpus.mask.repeat(g, 1),
                positions.repeat(g, 1),
                tokens.repeat_interleave(d_sent, 0),
                corpus.pad_id,
            )
            ids, mask = trim(ids, mask)
            feats = runner.features(ids, mask).view(g, d_sent, -1)
            out[torch.tensor(chunk, device=out.device)] = feats
    return out


@torch.no_grad()
def text_features(
    encoder: Any, texts: Sequence[str], max_length: int = 128, batch_size: int = 64, representation: str | None = None
) -> torch.Tensor:
    """[N, d] float32 CPU features of raw texts, tokenized as the model's users would (padding, truncation)."""
    tok = encoder.tokenizer
    out = []
    for i in range(0, len(texts), batch_size):
        enc = tok(
            list(texts[i : i + batch_size]), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        ids = enc["input_ids"].to(encoder.device)
        mask = enc["attention_mask"].to(encoder.device)
        out.append(encoder_features(encoder, ids, mask, representation).float().cpu())
    return torch.cat(out)
