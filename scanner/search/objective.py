"""The contrastive objective and feature standardization (pure tensor functions)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class CleanStats:
    """Per-dimension mean and spread of clean features: the model's own scale."""

    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def fit(cls, features: torch.Tensor) -> CleanStats:
        mean = features.mean(0)
        std = features.std(0)
        floor = std.mean().clamp_min(1e-12) * 1e-3
        return cls(mean=mean, std=std.clamp_min(floor))

    def standardize(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.mean) / self.std


def supcon_loss(features: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020) over [..., M, d] features with [M] labels.
    Same-label samples are positives; returns one loss per leading index."""
    z = F.normalize(features.float(), dim=-1)
    sim = z @ z.transpose(-1, -2) / temperature
    m = labels.shape[0]
    self_mask = torch.eye(m, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=-1, keepdim=True)
    positives = (labels.unsqueeze(0) == labels.unsqueeze(1)) & ~self_mask
    counts = positives.sum(-1)
    has_pos = counts > 0
    pos_log_prob = log_prob.masked_fill(~positives, 0.0).sum(-1) / counts.clamp_min(1)
    return -(pos_log_prob[..., has_pos]).mean(-1)
