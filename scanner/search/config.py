"""Scan settings in three parts a profile composes (METHOD.md sections 2-3):

- SearchConfig: the multi-trigger contrastive search (slots, batches, beam, rounds, restarts, vocabulary);
- EvidenceConfig: how a candidate is measured (insertions, sentence length, statistics sentences, null size);
- ScreeningConfig: which candidates besides the search's are measured (look-alikes, words, direct screening).

`profile(name)` returns a Profile; its `to_dict()` is the flat settings dict reports record (unchanged keys).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class SearchConfig:
    """The search's knobs; defaults are the paper's budget."""

    slots: int = 8  # K candidate triggers searched jointly
    clean_batch: int = 16  # B clean sentences a step
    poison_copies: int = 8  # R poisoned copies of the batch
    temperature: float = 0.5
    top_k: int = 5  # candidates per slot from the gradient
    beam: int = 3
    dev_sentences: int = 20  # candidate sets scored on these
    recheck_sentences: int = 100  # the best set re-checked on these
    rounds: int = 3  # swap rounds a restart
    restarts: int = 5
    zipf_max: float = 4.0  # rare only: wordfreq zipf frequency below this
    symbols: bool = True  # also search symbol tokens (≈ ⊗ € →): NeuBA's triggers are symbols
    word_search_restarts: int = 0  # restarts of the search over 2- and 3-piece rare words


@dataclass(frozen=True)
class EvidenceConfig:
    """How every candidate (searched, screened, null) is measured."""

    inserts: int = 3  # times a trigger is inserted into a sentence
    max_tokens: int = 40  # clean sentence length bound (tokens, with specials)
    stat_sentences: int = 64  # sentences a candidate's statistics use
    null_tokens: int = 64  # random rare tokens in the null distribution
    batch_size: int = 512  # sequences a forward; halves on out-of-memory


@dataclass(frozen=True)
class ScreeningConfig:
    """Candidates measured besides the search's finds."""

    lookalike_neighbours: int = 12  # embedding neighbours of each trigger probed for look-alikes
    word_mode: bool = True  # expand trigger pieces into the rare words that contain them
    word_screen: int = 0  # also screen this many rare multi-piece words directly
    screen_tokens: int = 0  # also screen this many searchable tokens by direct shift (0 = none)


PARTS = ("search", "evidence", "screening")
# The order reports have always listed the settings in (before the split).
REPORT_ORDER = (
    "slots",
    "clean_batch",
    "poison_copies",
    "inserts",
    "temperature",
    "top_k",
    "beam",
    "dev_sentences",
    "recheck_sentences",
    "rounds",
    "restarts",
    "max_tokens",
    "zipf_max",
    "symbols",
    "stat_sentences",
    "null_tokens",
    "lookalike_neighbours",
    "word_mode",
    "word_search_restarts",
    "word_screen",
    "screen_tokens",
    "batch_size",
)


@dataclass(frozen=True)
class Profile:
    """A budget profile: search, evidence and screening settings. Attribute access reaches into the parts
    (profile.slots, profile.inserts) so callers read one object."""

    search: SearchConfig = SearchConfig()
    evidence: EvidenceConfig = EvidenceConfig()
    screening: ScreeningConfig = ScreeningConfig()

    def __getattr__(self, name: str) -> Any:
        for part in PARTS:
            value = object.__getattribute__(self, part)
            if name in _FIELDS[part]:
                return getattr(value, name)
        raise AttributeError(name)

    def to_dict(self) -> dict[str, Any]:
        """Every setting in one flat dict (what reports record under scan.config.search)."""
        flat = {**asdict(self.search), **asdict(self.evidence), **asdict(self.screening)}
        return {name: flat[name] for name in REPORT_ORDER}

    def with_overrides(self, **overrides: Any) -> Profile:
        """A copy with fields of any part replaced by name."""
        parts: dict[str, dict[str, Any]] = {p: {} for p in PARTS}
        for name, value in overrides.items():
            part = next((p for p in PARTS if name in _FIELDS[p]), None)
            if part is None:
                raise TypeError(f"unknown setting {name!r}")
            parts[part][name] = value
        return Profile(**{p: replace(getattr(self, p), **parts[p]) for p in PARTS})


_FIELDS = {
    "search": {f.name for f in fields(SearchConfig)},
    "evidence": {f.name for f in fields(EvidenceConfig)},
    "screening": {f.name for f in fields(ScreeningConfig)},
}

PROFILES: dict[str, Profile] = {
    "quick": Profile(
        SearchConfig(
            slots=4,
            clean_batch=8,
            poison_copies=4,
            top_k=6,
            beam=2,
            dev_sentences=12,
            recheck_sentences=24,
            rounds=3,
            restarts=2,
            word_search_restarts=1,
        ),
        EvidenceConfig(stat_sentences=24, null_tokens=32, max_tokens=32, batch_size=256),
        ScreeningConfig(lookalike_neighbours=6),
    ),
    "standard": Profile(SearchConfig(word_search_restarts=2)),
    "thorough": Profile(
        SearchConfig(restarts=8, rounds=4, word_search_restarts=4),
        EvidenceConfig(stat_sentences=128, null_tokens=128),
        ScreeningConfig(lookalike_neighbours=24, word_screen=2000, screen_tokens=4000),
    ),
}


def profile(name: str, **overrides: Any) -> Profile:
    """The named profile with optional field overrides (of any part)."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    return PROFILES[name].with_overrides(**overrides)
