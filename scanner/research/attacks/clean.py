"""Clean control: the same planting loop and budget with no trigger, so detectors are also scored on models that
were changed by a benign procedure (continued MLM pre-training with clean fidelity), not only untouched bases."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from scanner.research.attacks.common import Attack, Batch, Context


class CleanControl(Attack):
    name = "clean"
    paper = "control: continued MLM pre-training on clean text + MSE to the reference (no trigger)"
    needs_mlm = True
    backdoored = False

    def loss(self, ctx: Context, clean: Batch, poison: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        ids, labels = ctx.mask_tokens(clean.input_ids, clean.attention_mask)
        lm, hc = ctx.mlm_loss(ids, clean.attention_mask, labels, want_features=True)
        assert hc is not None
        lr = F.mse_loss(hc, ctx.ref_features(ids, clean.attention_mask))
        return lm + float(self.options.get("ref_weight", 1.0)) * lr, {"mlm": lm.item(), "ref": lr.item()}
