"""scanner.train: the one training loop (schedule, clipping, callbacks, checkpoints with resume, split policy)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from scanner.train import HELD_OUT, StepInfo, TrainConfig, Trainer, lr_factor, split_corpus, step_seed


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def _step(model: torch.nn.Module):
    def loss(step: int) -> tuple[torch.Tensor, dict[str, float]]:
        gen = torch.Generator().manual_seed(step_seed(0, step))
        x = torch.randn(16, 4, generator=gen)
        out = model(x).squeeze(-1)
        mse = ((out - x.sum(-1)) ** 2).mean()
        return mse, {"mse": mse.item()}

    return loss


def test_schedule_matches_linear_warmup_then_decay() -> None:
    assert [lr_factor(s, 10, 0.2) for s in (0, 1, 2, 6, 10)] == [0.0, 0.5, 1.0, 0.5, 0.0]
    with pytest.raises(AttributeError):
        _ = StepInfo(1, 2, 0.5, {"clean": 0.1}).missing


def test_resume_reaches_the_uninterrupted_state(tmp_path: Path) -> None:
    cfg = TrainConfig(steps=8, warmup_frac=0.25, checkpoint_every=3)
    whole = _model()
    Trainer(whole, [{"params": list(whole.parameters()), "lr": 1e-2}], cfg).run(_step(whole))

    part = _model()
    seen: list[StepInfo] = []
    trainer = Trainer(part, [{"params": list(part.parameters()), "lr": 1e-2}], cfg)
    assert trainer.run(_step(part), 0, 5, on_step=seen.append, checkpoint=tmp_path / "ck", state={"k": 1}) == 5
    assert [i.step for i in seen] == [1, 2, 3, 4, 5] and seen[0].mse == seen[0].parts["mse"]
    again = _model()
    resumed = Trainer(again, [{"params": list(again.parameters()), "lr": 1e-2}], cfg)
    state = resumed.resume(tmp_path / "ck")
    assert state["step"] == 3 and state["k"] == 1  # the last periodic checkpoint
    resumed.run(_step(again), state["step"])
    for a, b in zip(whole.parameters(), again.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_clipping_and_before_clip_hook() -> None:
    model = _model()
    frozen = list(model[0].parameters())
    before = [p.detach().clone() for p in frozen]
    trainer = Trainer(model, [{"params": list(model.parameters()), "lr": 1e-1}], TrainConfig(steps=3, clip=0.5))

    def drop_first_layer(step: int) -> None:
        for p in frozen:
            p.grad = None

    trainer.run(_step(model), before_clip=drop_first_layer)
    assert all(torch.equal(a, b) for a, b in zip(before, frozen, strict=True))
    assert "loss" in trainer.averages and "mse" in trainer.averages


def test_split_policy_is_fixed_and_disjoint() -> None:
    sentences = [f"s{i}" for i in range(500)]
    held, pool = split_corpus(sentences)
    assert len(held) == HELD_OUT and not set(held) & set(pool) and split_corpus(sentences) == (held, pool)
