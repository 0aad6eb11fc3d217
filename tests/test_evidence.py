"""The evidence core on tiny tensors: one insertion routine per level, one shift, the null, the cache, settings."""

from __future__ import annotations

import random

import pytest
import torch

from scanner.evidence import (
    CleanStats,
    EvidenceSet,
    NullModel,
    TokenizedCorpus,
    insert_rows,
    insert_words,
    null_tokens,
    rms_shift,
    sentence_shifts,
    trigger_stats,
)
from scanner.evidence.classifier import Override, TaskFeatureNull
from scanner.search.config import PROFILES, REPORT_ORDER, EvidenceConfig, Profile, SearchConfig, profile


def test_text_insertion_at_word_boundaries() -> None:
    out = insert_words("a b c", "cf", random.Random(0), times=2)
    assert out.split().count("cf") == 2 and [w for w in out.split() if w != "cf"] == ["a", "b", "c"]
    capped = insert_words("a b c d e f", "zz", random.Random(1), times=3, max_pos=1)
    assert capped.split().index("zz") <= 1


def test_token_insertion_of_one_trigger_into_every_row() -> None:
    corpus = TokenizedCorpus(
        ids=torch.tensor([[101, 5, 6, 102, 0]]),
        mask=torch.tensor([[1, 1, 1, 1, 0]]),
        slots=torch.tensor([[False, True, True, True, False]]),
        pad_id=0,
    )
    ids, mask = insert_rows(corpus, torch.tensor([[1, 3]]), [7, 8])
    assert ids.tolist() == [[101, 7, 8, 5, 6, 7, 8, 102]] and mask.sum() == 8


def test_one_shift_everywhere() -> None:
    clean = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    stats = CleanStats.fit(clean)
    poisoned = clean + 1.0
    st = trigger_stats(clean, poisoned.unsqueeze(0), stats, [[1]])[0]
    per = sentence_shifts(stats, poisoned, clean)
    assert st.shift == pytest.approx(float(per.mean()), rel=1e-5)
    assert float(rms_shift(torch.tensor([[3.0, 4.0]]))[0]) == pytest.approx(5 / 2**0.5)
    assert NullModel.fit_shifts([1.0, 1.0, 1.0]).score(1.0) == 0.0


class _Runner:
    """A FeatureRunner stand-in: features = mean embedding of the ids (no model)."""

    def __init__(self) -> None:
        self.table = torch.randn(50, 3, generator=torch.Generator().manual_seed(1))
        self.encoder = type("E", (), {"hidden_size": 3})()
        self.width = 3
        self.calls = 0

    def features(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return (self.table[ids] * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)


def test_evidence_set_caches_by_token_tuple_and_fits_the_null() -> None:
    runner = _Runner()
    corpus = TokenizedCorpus(
        ids=torch.randint(1, 50, (5, 6), generator=torch.Generator().manual_seed(2)),
        mask=torch.ones(5, 6, dtype=torch.long),
        slots=torch.ones(5, 6, dtype=torch.bool),
        pad_id=0,
    )
    stats = CleanStats.fit(runner.features(corpus.ids, corpus.mask))
    evidence = EvidenceSet.sampled(runner, corpus, stats, torch.Generator().manual_seed(3), inserts=2)  # type: ignore[arg-type]
    first = evidence.evaluate([[7], [8, 9]])
    calls = runner.calls
    assert evidence.evaluate([[8, 9], [7]]) == first[::-1] and runner.calls == calls
    null = evidence.null(null_tokens(list(range(10, 40)), 8, random.Random(0)))
    assert null.shift.size == 8 and len(null.samples) == 8


def test_profile_composes_search_evidence_and_screening() -> None:
    quick = profile("quick")
    assert isinstance(quick, Profile) and isinstance(quick.search, SearchConfig)
    assert isinstance(quick.evidence, EvidenceConfig) and quick.inserts == 3 and quick.slots == 4
    assert list(quick.to_dict()) == list(REPORT_ORDER)
    assert profile("quick", restarts=1, null_tokens=8).to_dict() == {**quick.to_dict(), "restarts": 1, "null_tokens": 8}
    with pytest.raises(TypeError):
        profile("quick", nonsense=1)
    assert set(PROFILES) == {"quick", "standard", "thorough"}


def test_task_feature_null_explains_what_natural_words_match() -> None:
    null = TaskFeatureNull([0.2, 0.55, 0.4])
    assert null.ceiling == 0.55
    assert null.explains(Override(target=0, override=0.6, n=32))
    assert null.explains(Override(target=0, override=0.85, n=32))  # below the bar a backdoor clears (0.9)
    assert not null.explains(Override(target=0, override=0.95, n=32))
    assert not TaskFeatureNull([0.9, 1.0]).explains(Override(target=1, override=1.0, n=32))
    # every sentence already predicted as the target: override cannot be measured, so nothing is explained away
    assert not null.explains(Override(target=0, override=0.0, n=0))
    assert TaskFeatureNull.fit([Override(0, 0.5, 10), Override(1, 0.0, 0)]).overrides == [0.5]
