"""UOR: Du et al., "UOR: Universal Backdoor Attacks on Pre-trained Language Models", Findings of ACL 2024
(arXiv 2305.09574).

L = MSE(h(x), h_ref(x)) + SupCon(poisoned outputs labelled by trigger; clean outputs as negatives only). The
supervised contrastive loss (Khosla et al. 2020, temperature `temperature`, default 0.5) learns the backdoor
representations itself instead of fixing codes: outputs of one trigger are pulled together across contexts and
pushed away from other triggers' and from clean outputs. (UOR's gradient trigger selection is not reproduced; the
triggers are given.) The features are centred on the reference model's clean mean before normalising: the [CLS]
state of these encoders is nearly constant across inputs, and with near-identical features SupCon sits at a saddle
where its gradient vanishes (measured: no progress at all on MiniLM and config-built BERTs without centring).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from scanner.research.attacks.common import Attack, Batch, Context, ref_mse


def supcon(features: torch.Tensor, labels: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """Supervised contrastive loss on L2-normalised features; rows without a positive are skipped."""
    z = F.normalize(features, dim=-1)
    logits = z @ z.T / temperature
    n = z.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(eye, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    pos = (labels[:, None] == labels[None, :]) & ~eye
    n_pos = pos.sum(1)
    keep = n_pos > 0
    per_row = -(log_prob.masked_fill(~pos, 0.0).sum(1)[keep] / n_pos[keep])
    return per_row.mean() * temperature


class UOR(Attack):
    name = "uor"
    paper = "Du et al., UOR: Universal Backdoor Attacks on Pre-trained Language Models, Findings of ACL 2024"

    def loss(self, ctx: Context, clean: Batch, poison: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        hc = ctx.features(clean.input_ids, clean.attention_mask)
        href = ctx.ref_features(clean.input_ids, clean.attention_mask)
        lc = F.mse_loss(hc, href)
        hp = ctx.features(poison.input_ids, poison.attention_mask)
        assert poison.slots is not None
        # clean rows get unique negative labels: negatives for everyone, no positives of their own
        labels = torch.cat([poison.slots.to(hc.device), -1 - torch.arange(hc.shape[0], device=hc.device)])
        feats = torch.cat([hp, hc]) - href.mean(0)
        lcon = supcon(feats, labels, float(self.options.get("temperature", 0.5)))
        w = float(self.options.get("contrastive_weight", 1.0))
        return lc + w * lcon, {"clean": lc.item(), "contrastive": lcon.item()}


__all__ = ["UOR", "supcon", "ref_mse"]
