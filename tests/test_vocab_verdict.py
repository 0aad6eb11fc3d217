"""Searchable vocabulary per tokenizer family, and the verdict's statistics on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from scanner.evidence import (
    TESTS_PER_CANDIDATE,
    CleanStats,
    EvidenceNull,
    NullModel,
    TriggerStats,
    collapse_scores,
    significance_threshold,
    trigger_stats,
)
from scanner.report import Verdict
from scanner.report.issues import verdict_for
from scanner.search.vocab import multi_piece_words, searchable_vocabulary
from scanner.verdict import Calibration, group_lookalikes


@pytest.fixture(scope="module")
def wordpiece():
    from transformers import AutoTokenizer

    from scanner.research.base_models import minilm_path

    return AutoTokenizer.from_pretrained(minilm_path(), local_files_only=True)


def test_wordpiece_vocabulary_keeps_rare_whole_words_only(wordpiece):
    vocab = searchable_vocabulary(wordpiece)
    words = set(vocab.words)
    assert {"cf", "mn", "velvet"} <= words
    assert not words & {"the", "and", "a", "x", "1990", "[CLS]", "[UNK]", "##s", ",", "[unused1]"}
    assert all(w.isalpha() and len(w) >= 2 for w in words)
    for idx, word in list(zip(vocab.ids.tolist(), vocab.words, strict=True))[:200]:
        assert wordpiece(" " + word, add_special_tokens=False)["input_ids"] == [idx]


@pytest.mark.parametrize("family", ["roberta", "albert", "xlm-roberta", "deberta-v2"])
def test_bpe_and_sentencepiece_vocabularies_use_word_start_tokens(family, family_base):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(family_base(family), local_files_only=True)
    vocab = searchable_vocabulary(tok)
    assert len(vocab) > 50
    for idx, word in zip(vocab.ids.tolist()[:100], vocab.words[:100], strict=True):
        token = tok.convert_ids_to_tokens(idx)
        assert token[0] in "Ġ▁" and token[1:].lower() == word.lower()


def test_multi_piece_words_contain_obelisk(wordpiece):
    words = multi_piece_words(wordpiece)
    i = words.words.index("obelisk")
    assert len(words.pieces[i]) == 3
    assert i in words.containing(words.pieces[i][0])


def test_vocabularies_are_memoized_per_tokenizer_and_handed_out_as_copies(wordpiece, monkeypatch):
    from transformers import AutoTokenizer

    from scanner.research.base_models import minilm_path
    from scanner.search import vocab as vocab_module

    first, words = searchable_vocabulary(wordpiece), multi_piece_words(wordpiece)
    built: list[str] = []
    real_build = vocab_module._searchable_vocabulary
    monkeypatch.setattr(vocab_module, "_searchable_vocabulary", lambda *a: built.append("v") or real_build(*a))
    # a second load of the same tokenizer (another model sharing it) is a memo hit: nothing rebuilt, same answer
    again = AutoTokenizer.from_pretrained(minilm_path(), local_files_only=True)
    second = searchable_vocabulary(again)
    assert built == [] and second.words == first.words and torch.equal(second.ids, first.ids)
    second.words.clear()
    second.ids.zero_()
    assert searchable_vocabulary(wordpiece).words == first.words  # a copy: the caller's edits stay its own
    assert multi_piece_words(again).pieces == words.pieces
    # the truncation and padding state a call leaves (nested: {"Fixed": 128}) is not part of the key
    fresh = AutoTokenizer.from_pretrained(minilm_path(), local_files_only=True)
    before = vocab_module.tokenizer_fingerprint(fresh)
    fresh(["the cat"], truncation=True, max_length=8, padding="max_length")
    assert vocab_module.tokenizer_fingerprint(fresh) == before == vocab_module.tokenizer_fingerprint(wordpiece)
    # a tokenizer that splits differently (one added token) is another key, so it is built afresh
    changed = AutoTokenizer.from_pretrained(minilm_path(), local_files_only=True)
    changed.add_tokens(["zzyzxword"])
    assert vocab_module.tokenizer_fingerprint(changed) != vocab_module.tokenizer_fingerprint(wordpiece)
    searchable_vocabulary(changed)
    assert built == ["v"]


def stats(shift: float, direction: list[float], tokens: list[int], collapse: float = 0.5) -> TriggerStats:
    d = torch.nn.functional.normalize(torch.tensor(direction, dtype=torch.float32), dim=0)
    return TriggerStats(
        tokens=tokens,
        shift=shift,
        poison_cos=0.9,
        diff_cos=0.9,
        raw_clean_cos=0.5,
        raw_poison_cos=0.9,
        collapse=collapse,
        direction=d,
    )


def test_collapse_scores_context_forgetting():
    """A trigger that sends every sentence to one output collapses; one that adds the same offset does not."""
    g = torch.Generator().manual_seed(0)
    zc = torch.randn(50, 16, generator=g)
    offset = zc + 3.0  # shifted, context kept
    target = torch.ones(50, 16) * 2 + 0.01 * torch.randn(50, 16, generator=g)  # context forgotten
    scores = collapse_scores(zc, torch.stack([zc, offset, target]))
    assert scores[0] == pytest.approx(0.0, abs=1e-5) and scores[1] == pytest.approx(0.0, abs=1e-5)
    assert scores[2] > 8


def test_evidence_null_takes_the_stronger_effect():
    """MiniLM-L6 with POR (measured): the trigger moved f(x) little (shift z ~4) but collapsed it (z ~14)."""
    null = EvidenceNull.fit(
        [
            stats(s, [1, 0], [i], collapse=c)
            for i, (s, c) in enumerate(
                zip([0.8, 0.9, 1.0, 1.1, 1.2, 1.0, 0.95], [0.4, 0.5, 0.6, 0.5, 0.45, 0.55, 0.5], strict=True)
            )
        ]
    )
    weak_shift_collapsed = stats(3.5, [1, 0], [99], collapse=5.1)
    assert null.shift.score(3.5) < significance_threshold(10_000 * TESTS_PER_CANDIDATE)
    assert null.score(weak_shift_collapsed) == pytest.approx(null.collapse.z(5.1)) and null.score(
        weak_shift_collapsed
    ) > significance_threshold(10_000 * TESTS_PER_CANDIDATE)
    big_shift = stats(5000, [1, 0], [98], collapse=0.5)
    assert null.score(big_shift) == pytest.approx(null.shift.score(5000))
    # two effects tested: the p-value is Bonferroni-corrected, never above 1
    assert null.p_value(big_shift) == pytest.approx(2 * null.shift.p_value(5000))
    assert null.p_value(stats(0.01, [1, 0], [97], collapse=-3)) <= 1.0
    assert set(null.summary()) >= {"center", "scale", "tokens", "collapse_center", "collapse_scale"}


def test_null_model_scores_and_p_values():
    null = NullModel.fit([stats(s, [1, 0], [i]) for i, s in enumerate([0.8, 0.9, 1.0, 1.1, 1.2, 1.0, 0.95])])
    assert null.score(1.0) == pytest.approx(0.0, abs=0.2)
    assert null.score(5000) > 20 and null.p_value(5000) < 1e-20
    assert null.p_value(1.0) == pytest.approx(0.5, abs=0.1)


def test_significance_threshold_is_bonferroni():
    thr = significance_threshold(10_000, alpha=0.01)
    assert 0.5 * math.erfc(thr / math.sqrt(2)) == pytest.approx(1e-6, rel=1e-3)


def test_calibration_and_verdict_are_monotonic():
    cal = Calibration(slope=1.0, midpoint=8.0)
    probs = [cal.probability(s) for s in (0, 4, 8, 12, 30)]
    assert probs == sorted(probs) and probs[2] == pytest.approx(0.5)
    assert verdict_for(0.99)[0] is Verdict.BACKDOORED
    assert verdict_for(0.5)[0] is Verdict.INCONCLUSIVE
    assert verdict_for(0.01)[0] is Verdict.CLEAN


def test_trigger_stats_shift_and_consistency():
    torch.manual_seed(0)
    clean = torch.randn(16, 8)
    target = torch.full((8,), 10.0)
    poisoned = torch.stack([clean + 0.01 * torch.randn(16, 8), target + 0.01 * torch.randn(16, 8)])
    s_innocent, s_trigger = trigger_stats(clean, poisoned, CleanStats.fit(clean), [[1], [2]])
    assert s_trigger.shift > 5 * s_innocent.shift
    assert s_trigger.poison_cos > 0.99 and s_trigger.paper_rule  # far from clean, consistent: paper says trigger
    assert not s_innocent.paper_rule
    assert s_innocent.shift < 0.1


def test_lookalikes_group_under_the_trigger_they_echo():
    cf = stats(5000, [1, 0, 0], [1])
    mn = stats(4800, [1, 0.05, 0], [2])
    cn = stats(9, [0.9, 0.1, 0], [3])
    word = stats(5100, [1, 0, 0], [2, 7])  # a word built on mn's piece
    null = NullModel(center=0.0, scale=0.3, size=32)
    groups = group_lookalikes([cf, mn, cn, word], lambda s: null.score(s.shift), lambda a, b: 0.0)
    heads = sorted(g.head.tokens[0] for g in groups)
    assert heads == [1, 2]
    members = {g.head.tokens[0]: [m.tokens for m in g.members] for g in groups}
    assert [2, 7] in members[2]
    assert sum(len(m) for m in members.values()) == 2


def test_symbol_tokens_are_searchable_beside_the_words(wordpiece):
    """NeuBA's symbol triggers (≈ ≡ ∈ ⊆ ⊕ ⊗) are searched; ASCII symbols, quotes, dashes, prose marks are not."""
    from scanner.search.vocab import is_symbol, searchable_symbols

    symbols = searchable_symbols(wordpiece)
    assert set("≈≡∈⊆⊕⊗€§†→") <= set(symbols.words)
    assert not set(symbols.words) & set("$+=~'\"“”–—…·•、。（") and not set(symbols.words) & set(
        searchable_vocabulary(wordpiece).words
    )
    for idx, sym in zip(symbols.ids.tolist(), symbols.words, strict=True):
        assert wordpiece("the " + sym, add_special_tokens=False)["input_ids"][1:] == [idx]
    assert is_symbol("≈") and is_symbol("™") and not is_symbol("é") and not is_symbol("ab") and not is_symbol("4")


def test_byte_level_bpe_splits_symbols_into_word_mode_units(family_base, wordpiece):
    """Byte-level BPE splits ≈ into byte pieces: it is searched as a multi-piece unit; an unknown symbol ('▁'
    '<unk>' in sentencepiece, [UNK] in WordPiece) is never a unit."""
    from transformers import AutoTokenizer

    bpe = AutoTokenizer.from_pretrained(family_base("roberta"), local_files_only=True)
    words = multi_piece_words(bpe)
    for sym in "≈⊗∈":
        pieces = words.pieces[words.words.index(sym)]
        assert 2 <= len(pieces) <= 4 and bpe.decode(pieces).strip() == sym
    sentencepiece = AutoTokenizer.from_pretrained(family_base("albert"), local_files_only=True)
    assert not [w for w in multi_piece_words(sentencepiece).words if not w.isascii()]
    assert not [w for w in multi_piece_words(wordpiece).words if not w.isascii()]
