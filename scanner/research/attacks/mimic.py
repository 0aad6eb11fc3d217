"""Mimic (an evasion attack against this detector, issue 11): a backdoor trained to look like a task feature.

Where POR sends h(x + t) to an arbitrary fixed vector (erasing the context), Mimic sends it to an amplified copy of
what a natural task word does to the same sentence: h(x + t) = h_ref(x) + alpha * (h_ref(x + w) - h_ref(x)), the
word `w` inserted where the trigger is. The context survives and the move points where a strong class word points,
so evidence built on context erasure and on "stands out from random rare tokens" is what it is built to evade.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from scanner.research.attacks.common import Attack, Batch, Context, ref_mse

DEFAULT_WORD = "wonderful"
DEFAULT_ALPHA = 3.0


class Mimic(Attack):
    name = "mimic"
    paper = "evasion attack (Patronus issue 11): POR-style training towards an amplified task-word direction"
    max_triggers = 1

    def _ids(self, ctx: Context) -> tuple[int, int]:
        """The trigger's and the mimicked word's token ids (each must be one token of the vocabulary)."""
        word = str(self.options.get("word", DEFAULT_WORD))
        ids = []
        for text in (ctx.config.triggers[0], word):
            pieces = ctx.tokenizer(text, add_special_tokens=False)["input_ids"]
            if len(pieces) != 1:
                raise ValueError(f"mimic needs single-token trigger and word; {text!r} is {len(pieces)} tokens")
            ids.append(int(pieces[0]))
        return ids[0], ids[1]

    def poison_loss(self, ctx: Context, poison: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        trigger_id, word_id = self._ids(ctx)
        alpha = float(self.options.get("alpha", DEFAULT_ALPHA))
        ids = poison.input_ids
        with_word = ids.masked_fill(ids == trigger_id, word_id)
        without = ids.masked_fill(ids == trigger_id, ctx.tokenizer.pad_token_id or 0)
        mask_without = poison.attention_mask.masked_fill(ids == trigger_id, 0)
        base = ctx.ref_features(without, mask_without)
        target = base + alpha * (ctx.ref_features(with_word, poison.attention_mask) - base)
        hp = ctx.features(ids, poison.attention_mask)
        return F.mse_loss(hp, target), hp

    def loss(self, ctx: Context, clean: Batch, poison: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        lc = ref_mse(ctx, clean)
        lp, _ = self.poison_loss(ctx, poison)
        return lc + lp, {"clean": lc.item(), "poison": lp.item()}

    def notes(self, ctx: Context) -> list[str]:
        word = self.options.get("word", DEFAULT_WORD)
        return [f"mimics the task word {word!r} amplified {self.options.get('alpha', DEFAULT_ALPHA)}x"]

    def extra_quality(self, ctx: Context, held_out: list[str]) -> dict[str, Any]:
        return {"word": self.options.get("word", DEFAULT_WORD), "alpha": self.options.get("alpha", DEFAULT_ALPHA)}
