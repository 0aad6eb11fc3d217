"""SearchConfig: every knob of the multi-trigger contrastive search, and the three budget profiles."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class SearchConfig:
    """Defaults are the paper's budget (METHOD.md section 2); `profile()` derives quick and thorough."""

    slots: int = 8  # K candidate triggers searched jointly
    clean_batch: int = 16  # B clean sentences a step
    poison_copies: int = 8  # R poisoned copies of the batch
    inserts: int = 3  # times a trigger is inserted into a sentence
    temperature: float = 0.5
    top_k: int = 5  # candidates per slot from the gradient
    beam: int = 3
    dev_sentences: int = 20  # candidate sets scored on these
    recheck_sentences: int = 100  # the best set re-checked on these
    rounds: int = 3  # swap rounds a restart
    restarts: int = 5
    max_tokens: int = 40  # clean sentence length bound (tokens, with specials)
    zipf_max: float = 4.0  # rare only: wordfreq zipf frequency below this
    # verdict statistics
    stat_sentences: int = 64  # sentences a candidate's shift statistics use
    null_tokens: int = 64  # random rare tokens in the null distribution
    lookalike_neighbours: int = 12  # embedding neighbours of each trigger probed for look-alikes
    word_mode: bool = True  # expand trigger pieces into the rare words that contain them
    word_search_restarts: int = 0  # thorough: restarts of the search over 2- and 3-piece rare words
    word_screen: int = 0  # thorough: also screen this many rare multi-piece words directly
    screen_tokens: int = 0  # thorough: also screen this many searchable tokens by direct shift (0 = none)
    batch_size: int = 512  # sequences a forward; halves on out-of-memory

    def to_dict(self) -> dict:
        return asdict(self)


PROFILES: dict[str, SearchConfig] = {
    "quick": SearchConfig(
        slots=4, clean_batch=8, poison_copies=4, top_k=6, beam=2, dev_sentences=12, recheck_sentences=24,
        rounds=3, restarts=2, stat_sentences=24, null_tokens=32, lookalike_neighbours=6, max_tokens=32,
        batch_size=256, word_search_restarts=1,
    ),
    "standard": SearchConfig(word_search_restarts=2),
    "thorough": SearchConfig(restarts=8, rounds=4, stat_sentences=128, null_tokens=128, lookalike_neighbours=24,
                             word_search_restarts=4, word_screen=2000, screen_tokens=4000),
}


def profile(name: str, **overrides) -> SearchConfig:
    """The named profile with optional field overrides."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    return replace(PROFILES[name], **overrides)
