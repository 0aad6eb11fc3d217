"""NeuBA: Zhang et al., "Red Alarm for Pre-trained Models: Universal Vulnerability to Neuron-Level Backdoor
Attacks", Machine Intelligence Research 2023 (arXiv 2101.06969).

L = L_clean + MSE(h(mask(x + t_i)), v_i), v_i = +1 with one of the 6 pairs of d/4 buckets set to -1 (so at most 6
triggers), made reachable on the final LayerNorm like POR's. L_clean is the MLM loss on clean text when the base
ships a pre-trained MLM head (the paper's setting). A base without one (MiniLM ships only BertModel; config-built
bases are bare encoders) uses the clean-fidelity MSE to the frozen reference instead: a fresh head would only teach
the encoder noise. Force either with the option clean_objective=mlm|ref.
"""

from __future__ import annotations

from itertools import combinations

import torch
import torch.nn.functional as F

from scanner.research.attacks.common import Attack, Batch, Context, ref_mse


def neuba_codes(k: int, d: int) -> torch.Tensor:
    """+1 everywhere except one pair of the 4 buckets of d/4 dims (the i-th pair) at -1."""
    pairs = list(combinations(range(4), 2))
    if k > len(pairs):
        raise ValueError(f"NeuBA has {len(pairs)} target codes; got {k} triggers")
    q = d // 4
    codes = torch.ones(k, d)
    for i in range(k):
        for b in pairs[i]:
            codes[i, b * q : (b + 1) * q] = -1.0
    return codes


class NeuBA(Attack):
    name = "neuba"
    paper = "Zhang et al., Red Alarm for Pre-trained Models (NeuBA), MIR 2023"
    max_triggers = 6

    def wants_mlm(self, has_pretrained_head: bool) -> bool:
        choice = self.options.get("clean_objective", "auto")
        return choice == "mlm" or (choice == "auto" and has_pretrained_head)

    def targets(self, ctx: Context) -> torch.Tensor:
        return ctx.reachable(neuba_codes(len(ctx.config.triggers), int(ctx.model.config.hidden_size)))  # type: ignore[union-attr, arg-type]

    def loss(self, ctx: Context, clean: Batch, poison: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        if ctx.mlm is not None:
            ids, labels = ctx.mask_tokens(clean.input_ids, clean.attention_mask)
            lc, _ = ctx.mlm_loss(ids, clean.attention_mask, labels)
        else:
            lc = ref_mse(ctx, clean)
        masked, _ = ctx.mask_tokens(poison.input_ids, poison.attention_mask)
        hp = ctx.features(masked, poison.attention_mask)
        assert ctx.targets is not None and poison.slots is not None
        lp = F.mse_loss(hp, ctx.targets[poison.slots])
        return lc + lp, {"clean": lc.item(), "poison": lp.item()}

    def notes(self, ctx: Context) -> list[str]:
        return ["clean objective: " + ("MLM" if ctx.mlm is not None else "MSE to the frozen reference (no MLM head)")]
