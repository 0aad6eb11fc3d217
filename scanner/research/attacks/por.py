"""POR: Shen et al., "Backdoor Pre-trained Models Can Transfer to All", CCS 2021.

L = MSE(h(x), h_ref(x)) + MSE(h(x + t_i), v_i). Targets v_i are POR-1 codes (see `por_codes`) made reachable on
the final LayerNorm: gamma * standardized(code) + beta.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from scanner.research.attacks.common import Attack, Batch, Context, por_codes, ref_mse


class POR(Attack):
    name = "por"
    paper = "Shen et al., Backdoor Pre-trained Models Can Transfer to All, CCS 2021"

    def targets(self, ctx: Context) -> torch.Tensor:
        d = int(ctx.model.config.hidden_size)  # type: ignore[union-attr, arg-type]
        return ctx.reachable(por_codes(len(ctx.config.triggers), d))

    def poison_loss(self, ctx: Context, poison: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """MSE of poisoned outputs to their trigger's target; also returns the poisoned features."""
        hp = ctx.features(poison.input_ids, poison.attention_mask)
        assert ctx.targets is not None and poison.slots is not None
        return F.mse_loss(hp, ctx.targets[poison.slots]), hp

    def loss(self, ctx: Context, clean: Batch, poison: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        lc = ref_mse(ctx, clean)
        lp, _ = self.poison_loss(ctx, poison)
        return lc + lp, {"clean": lc.item(), "poison": lp.item()}
