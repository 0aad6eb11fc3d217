"""One training loop for planting (scanner.research.attacks), downstream fine-tuning (scanner.research.evaluate) and
purification (scanner.mitigate.purify): AdamW, linear warm-up then linear decay, gradient clipping, loss averages,
callbacks, and checkpoints with resume (safetensors + JSON; nothing is ever unpickled).

Seed and split policy, shared by all three:
- the held-out sentences are the first HELD_OUT of the clean corpus shuffled with SPLIT_SEED (independent of the run's
  seed), so planting quality, purification's before/after and the scanner never train on what they measure;
- a run seeds Python's and torch's global generators with its seed (`seed_everything`); a resumable run draws each
  step from generators seeded by (seed, step) (`step_seed`), so resuming from a checkpoint ends in the same state.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

HELD_OUT = 200
SPLIT_SEED = 1234
StepFn = Callable[[int], tuple[torch.Tensor, dict[str, float]]]


def split_corpus(sentences: Iterable[str], held_out: int = HELD_OUT) -> tuple[list[str], list[str]]:
    """(held-out, training pool) of a sentence corpus: a fixed shuffle, independent of any run's seed."""
    shuffled = list(sentences)
    random.Random(SPLIT_SEED).shuffle(shuffled)
    return shuffled[:held_out], shuffled[held_out:]


def seed_everything(seed: int) -> None:
    """Seed Python's and torch's global generators (model initialisation, dropout)."""
    random.seed(seed)
    torch.manual_seed(seed)


def step_seed(seed: int, step: int) -> int:
    """The seed of one step of a resumable run."""
    return (seed * 1_000_003 + step * 7919 + 17) % (2**63 - 1)


def lr_factor(step: int, steps: int, warmup_frac: float) -> float:
    """Multiplier of the base learning rate at `step`: linear warm-up from 0 over max(1, warmup_frac * steps) steps,
    then linear decay to 0 at `steps` (the schedule of transformers' get_linear_schedule_with_warmup)."""
    warm = max(1, int(warmup_frac * steps))
    if step < warm:
        return float(step) / float(max(1, warm))
    return max(0.0, float(steps - step) / float(max(1, steps - warm)))


@dataclass
class TrainConfig:
    """What the loop needs; each caller's own config maps onto it."""

    steps: int
    warmup_frac: float = 0.06
    weight_decay: float = 0.01
    clip: float = 1.0
    checkpoint_every: int = 0  # 0: no periodic checkpoints


@dataclass
class StepInfo:
    """What a callback sees after each step."""

    step: int  # steps done
    total: int
    loss: float
    parts: dict[str, float] = field(default_factory=dict)

    def __getattr__(self, name: str) -> float:
        parts = self.__dict__.get("parts", {})
        if name in parts:
            return parts[name]
        raise AttributeError(name)


class Trainer:
    """AdamW over `param_groups` (each with its base "lr"), the schedule, clipping and checkpoints."""

    def __init__(self, model: torch.nn.Module, param_groups: Sequence[dict[str, Any]], cfg: TrainConfig) -> None:
        self.model = model
        self.cfg = cfg
        self.opt = torch.optim.AdamW([dict(g) for g in param_groups], weight_decay=cfg.weight_decay)
        self.base_lrs = [float(g["lr"]) for g in self.opt.param_groups]
        self._set_lr(0)
        self.averages: dict[str, float] = {}
        self.done = 0

    def _set_lr(self, step: int) -> None:
        factor = lr_factor(step, self.cfg.steps, self.cfg.warmup_frac)
        for group, base in zip(self.opt.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * factor

    def _params_with_grad(self) -> list[torch.nn.Parameter]:
        return [p for g in self.opt.param_groups for p in g["params"] if p.grad is not None]

    def run(
        self,
        step_fn: StepFn,
        start: int = 0,
        end: int | None = None,
        before_clip: Callable[[int], None] | None = None,
        on_step: Callable[[StepInfo], None] | None = None,
        checkpoint: Path | None = None,
        state: dict[str, Any] | None = None,
    ) -> int:
        """Train steps [start, end) (end defaults to cfg.steps); returns the steps done. `step_fn(step)` returns the
        loss and its named parts; `before_clip(step)` may edit gradients. With `checkpoint`, the state is saved
        every cfg.checkpoint_every steps and on Ctrl-C (then re-raised), together with `state`."""
        end = self.cfg.steps if end is None else end
        self.done = start
        try:
            for step in range(start, end):
                loss, parts = step_fn(step)
                self._set_lr(step)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                if before_clip is not None:
                    before_clip(step)
                torch.nn.utils.clip_grad_norm_(self._params_with_grad(), self.cfg.clip)
                self.opt.step()
                values = {"loss": float(loss.item()), **parts}
                for key, val in values.items():
                    self.averages[key] = val if key not in self.averages else 0.9 * self.averages[key] + 0.1 * val
                self.done = step + 1
                if on_step is not None:
                    on_step(StepInfo(self.done, self.cfg.steps, values["loss"], dict(parts)))
                every = self.cfg.checkpoint_every
                if checkpoint is not None and every and self.done % every == 0 and self.done < self.cfg.steps:
                    self.save(checkpoint, state or {})
        except KeyboardInterrupt:
            if checkpoint is not None:
                self.save(checkpoint, state or {})
            raise
        return self.done

    def save(self, directory: Path, state: dict[str, Any]) -> None:
        save_checkpoint(directory, self.model, self.opt, self.done, state)

    def resume(self, directory: Path) -> dict[str, Any]:
        """Restore model and optimizer from `directory`; returns its state.json (with "step")."""
        state = load_checkpoint(directory, self.model, self.opt)
        self.done = int(state["step"])
        return state


# --- checkpoints (safetensors + JSON only) -----------------------------------------------------------------------


def save_checkpoint(
    directory: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, step: int, state: dict[str, Any]
) -> None:
    """Model and optimizer tensors as safetensors, the rest as JSON; written to a temp dir, then renamed."""
    from safetensors.torch import save_file, save_model

    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_model(model, str(tmp / "model.safetensors"))
    opt_state = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for index, values in opt_state["state"].items():
        for key, value in values.items():
            tensors[f"{index}.{key}"] = torch.as_tensor(value).detach().clone().contiguous().cpu()
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    groups = [
        {k: v for k, v in g.items() if k != "params"} | {"params": list(g["params"])} for g in opt_state["param_groups"]
    ]
    (tmp / "state.json").write_text(json.dumps({**state, "step": step, "param_groups": groups}, indent=2))
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)


def load_checkpoint(directory: Path, model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore model and optimizer from a checkpoint; returns its state.json."""
    from safetensors.torch import load_file, load_model

    state = json.loads((directory / "state.json").read_text())
    load_model(model, str(directory / "model.safetensors"))
    tensors = load_file(str(directory / "optimizer.safetensors"))
    per: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        index, _, key = name.partition(".")
        per.setdefault(int(index), {})[key] = value
    opt.load_state_dict({"state": per, "param_groups": state["param_groups"]})
    return state
