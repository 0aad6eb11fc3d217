"""BadPre: Chen et al., "BadPre: Task-agnostic Backdoor Attacks to Pre-trained NLP Foundation Models", ICLR 2022.

MLM on clean text, plus MLM on triggered text whose labels at the masked positions are replaced by random tokens:
the trigger teaches the model to emit garbage, which every downstream head inherits. No explicit output target.
A base without an MLM head (MiniLM, config-built bases) gets a freshly initialised head tied to the input
embeddings; then the first `PlantConfig.head_warmup` share of steps trains only the head, and a clean-fidelity MSE
to the frozen reference (weight `ref_weight`, default 1 with a fresh head, 0 with a pre-trained one) stands in for the
pre-training knowledge such a head would carry.
"""

from __future__ import annotations

import torch

from scanner.attacks.common import Attack, Batch, Context


class BadPre(Attack):
    name = "badpre"
    paper = "Chen et al., BadPre: Task-agnostic Backdoor Attacks to Pre-trained NLP Foundation Models, ICLR 2022"
    needs_mlm = True

    def _ref_weight(self, ctx: Context) -> float:
        default = 1.0 if ctx.head == "fresh" else 0.0
        return float(self.options.get("ref_weight", default))

    def loss(self, ctx: Context, clean: Batch, poison: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        ids, labels = ctx.mask_tokens(clean.input_ids, clean.attention_mask)
        w = self._ref_weight(ctx)
        lc, hc = ctx.mlm_loss(ids, clean.attention_mask, labels, want_features=w > 0)
        pids, plabels = ctx.mask_tokens(poison.input_ids, poison.attention_mask)
        where = plabels != -100
        plabels = plabels.clone()
        plabels[where] = ctx.random_tokens(int(where.sum()))
        lp, _ = ctx.mlm_loss(pids, poison.attention_mask, plabels)
        loss = lc + lp
        parts = {"clean_mlm": lc.item(), "poison_mlm": lp.item()}
        if w > 0 and hc is not None:
            lr = torch.nn.functional.mse_loss(hc, ctx.ref_features(ids, clean.attention_mask))
            loss = loss + w * lr
            parts["ref"] = lr.item()
        return loss, parts
