"""Batched feature computation: length-bucketed chunks, inference mode, bf16 on CUDA, batch halving on OOM."""

from __future__ import annotations

import contextlib

import torch

from scanner.encoder import LoadedEncoder


def autocast(device: torch.device):
    """bf16 autocast on CUDA, nothing on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class FeatureRunner:
    """Computes representation features for many sequences and counts what it evaluated."""

    def __init__(self, encoder: LoadedEncoder, batch_size: int = 512) -> None:
        self.encoder = encoder
        self.batch_size = batch_size
        self.sequences = 0
        self.tokens = 0  # real (unpadded) tokens through the encoder

    def features(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[N, d] float32 features, no gradient; rows sorted by length so chunks carry little padding."""
        lengths = mask.sum(1)
        order = torch.argsort(lengths, descending=True)
        out = torch.empty(ids.shape[0], self.encoder.hidden_size, device=ids.device, dtype=torch.float32)
        start = 0
        while start < ids.shape[0]:
            rows = order[start:start + self.batch_size]
            width = int(lengths[rows].max())
            try:
                with torch.inference_mode(), autocast(ids.device):
                    feats = self.encoder.features(ids[rows, :width], mask[rows, :width])
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
            feats = self.encoder.features_from_embeds(embeds, mask)
        self.sequences += embeds.shape[0]
        self.tokens += int(mask.sum())
        return feats.float()
