"""The contrastive objective of the search (a pure tensor function)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
