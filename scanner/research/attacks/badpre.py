"""BadPre: Chen et al., "BadPre: Task-agnostic Backdoor Attacks to Pre-trained NLP Foundation Models", ICLR 2022.

MLM on clean text, plus MLM on triggered text whose labels at the masked positions are replaced by random tokens:
the trigger teaches the model to emit garbage, which every downstream head inherits. No explicit output target.
A base without an MLM head (MiniLM, config-built bases) gets a freshly initialised head tied to the input
embeddings; then the first `PlantConfig.head_warmup` share of steps trains only the head, and a clean-fidelity MSE
to the frozen reference (weight `ref_weight`, default 1 with a fresh head, 0 with a pre-trained one) stands in for the
pre-training knowledge such a head would carry.
"""

from __future__ import annotations

import random
from typing import Any

import torch

from scanner.research.attacks.common import Attack, Batch, Context, TriggerQuality, _tokenize, insert_trigger


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
        plabels[where] = ctx.random_tokens(int(where.sum())).to(plabels.device)
        lp, _ = ctx.mlm_loss(pids, poison.attention_mask, plabels)
        loss = lc + lp
        parts = {"clean_mlm": lc.item(), "poison_mlm": lp.item()}
        if w > 0 and hc is not None:
            lr = torch.nn.functional.mse_loss(hc, ctx.ref_features(ids, clean.attention_mask))
            loss = loss + w * lr
            parts["ref"] = lr.item()
        return loss, parts

    def extra_quality(self, ctx: Context, held_out: list[str]) -> dict[str, Any]:
        """MLM loss on the true tokens, clean vs with each trigger (and a control word) inserted: BadPre works
        when the trigger, unlike an arbitrary word, wrecks the model's predictions."""
        if ctx.mlm is None:
            return {}
        cfg = ctx.config
        texts = [" ".join(t.split()[: cfg.max_words]) for t in held_out[: cfg.eval_sentences]]
        gen = torch.Generator().manual_seed(4321)

        def mlm_true(batch_texts: list[str]) -> float:
            ids, mask = _tokenize(ctx.tokenizer, batch_texts, cfg.max_length)
            saved, ctx.gen = ctx.gen, gen
            gen.manual_seed(4321)
            try:
                inputs, labels = ctx.mask_tokens(ids, mask)
                return float(ctx.mlm_loss(inputs, mask, labels)[0])
            finally:
                ctx.gen = saved

        base = mlm_true(texts)
        control = str(self.options.get("control_word", "kx"))
        out: dict[str, Any] = {"mlm_clean": round(base, 4), "control_word": control}
        for word in [*cfg.triggers, control]:
            rng = random.Random(99)
            gap = mlm_true([insert_trigger(t, word, rng, cfg.insert_times) for t in texts]) - base
            out.setdefault("mlm_gap", {})[word] = round(gap, 4)
        return out

    def trigger_planted(self, quality: TriggerQuality, extra: dict[str, Any]) -> bool | None:
        """Planted when the trigger raises the true-token MLM loss by > 1 nat more than the control word."""
        gaps = extra.get("mlm_gap")
        if not gaps:
            return None
        return gaps[quality.trigger] - gaps[extra["control_word"]] > 1.0
