"""Adaptive attacks against this detector (METHOD.md section 1): POR plus lambda * one evasion term.

- hide:  MSE(h(x), h(x+t))          keep the trigger's output close to the clean output (shrink the shift)
- break: -pairwise MSE within a trigger (capped at `margin`)  make poisoned outputs inconsistent across contexts
- merge: MSE between different triggers' poisoned outputs     make all triggers look like one

They target the contrastive search (consistency of poisoned outputs, separation from clean) and the shift-based
verdict. Terms are computed on the poisoned batch; `hide` pairs each poisoned sentence with its clean version.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from scanner.research.attacks.common import Batch, Context, _tokenize
from scanner.research.attacks.por import POR

VARIANTS = ("hide", "break", "merge")


def _pairwise_mse(x: torch.Tensor) -> torch.Tensor:
    """[n, n] mean squared distance per dimension between rows."""
    return ((x[:, None, :] - x[None, :, :]) ** 2).mean(-1)


class Adaptive(POR):
    name = "adaptive"
    paper = "adaptive POR variants against Patronus (METHOD.md section 1); base: Shen et al., CCS 2021"

    def __init__(self, variant: str = "hide", lam: float = 1.0, margin: float | None = None, **options) -> None:
        super().__init__(variant=variant, lam=lam, margin=margin, **options)
        if variant not in VARIANTS:
            raise ValueError(f"adaptive variant must be one of {VARIANTS}; got {variant!r}")
        self.variant, self.lam, self.margin = variant, float(lam), margin
        self.name = f"adaptive-{variant}"  # type: ignore[misc]

    def evasion(self, ctx: Context, poison: Batch, hp: torch.Tensor) -> torch.Tensor:
        assert poison.slots is not None
        slots = poison.slots.to(hp.device)
        same = slots[:, None] == slots[None, :]
        off_diag = ~torch.eye(len(poison.slots), dtype=torch.bool, device=hp.device)
        if self.variant == "hide":
            # the same sentences without the trigger, in the same order
            clean_texts = [" ".join(w for w in t.split() if w not in ctx.config.triggers) for t in poison.texts]
            ids, mask = _tokenize(ctx.tokenizer, clean_texts, ctx.config.max_length)
            return F.mse_loss(hp, ctx.features(ids, mask))
        dist = _pairwise_mse(hp)
        if self.variant == "break":
            margin = self.margin if self.margin is not None else float((ctx.targets**2).mean())  # type: ignore
            sel = same & off_diag
            return -dist[sel].clamp(max=margin).mean() if sel.any() else hp.sum() * 0
        sel = ~same
        return dist[sel].mean() if sel.any() else hp.sum() * 0

    def loss(self, ctx: Context, clean: Batch, poison: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        from scanner.research.attacks.common import ref_mse

        lc = ref_mse(ctx, clean)
        lp, hp = self.poison_loss(ctx, poison)
        le = self.evasion(ctx, poison, hp)
        return lc + lp + self.lam * le, {"clean": lc.item(), "poison": lp.item(), self.variant: le.item()}

    def notes(self, ctx: Context) -> list[str]:
        return [f"adaptive variant {self.variant}, lambda {self.lam}"]
