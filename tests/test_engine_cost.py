"""Issue 16's CPU cost path: one forward serves every representation, and the search never evaluates the same unit
on the same sentences twice. Each shortcut is checked against the plain computation it replaces."""

from __future__ import annotations

import torch

from scanner.corpus import load_corpus
from scanner.encoder import load_encoder
from scanner.evidence import (
    CleanStats,
    EvidenceSet,
    FeatureRunner,
    JointEvidence,
    clean_features,
    sample_positions,
    tokenize_corpus,
    trigger_features,
)
from scanner.search.config import profile
from scanner.search.search import ContrastiveSearch
from scanner.search.step import set_losses
from scanner.search.vocab import searchable_vocabulary

REPS = ("mean", "cls")


def _corpus(enc, n: int = 40):
    return tokenize_corpus(enc.tokenizer, load_corpus()[:n], 32)


def test_joint_runner_is_the_representations_side_by_side_from_one_forward(minilm_l2_st):
    torch.set_num_threads(1)
    enc = load_encoder(minilm_l2_st, "cpu")
    corpus = _corpus(enc, 12)
    joint = FeatureRunner(enc, 64, REPS)
    both = clean_features(joint, corpus)
    assert joint.width == 2 * enc.hidden_size and both.shape == (12, 2 * enc.hidden_size)
    assert joint.sequences == 12  # one pass, not one per representation
    for r, rep in enumerate(REPS):
        alone = clean_features(FeatureRunner(enc, 64, rep), corpus)
        part = both[:, r * enc.hidden_size : (r + 1) * enc.hidden_size]
        assert torch.allclose(part, alone, atol=1e-5), rep


def test_joint_evidence_measures_each_representation_as_its_own_evidence_set(minilm_l2_st):
    torch.set_num_threads(1)
    enc = load_encoder(minilm_l2_st, "cpu")
    corpus = _corpus(enc, 16)
    positions = sample_positions(corpus.slots, 3, torch.Generator().manual_seed(0))
    joint_runner = FeatureRunner(enc, 64, REPS)
    fit = clean_features(joint_runner, corpus)
    d = enc.hidden_size
    stats = [CleanStats.fit(fit[:, r * d : (r + 1) * d]) for r in range(len(REPS))]
    before = joint_runner.sequences
    joint = JointEvidence(joint_runner, corpus, stats, positions)
    triggers = [[2000], [3000], [5000, 5001]]
    per_rep = joint.evaluate(triggers)
    spent = joint_runner.sequences
    assert spent - before == 16 + 16 * len(triggers)  # clean + each trigger once, for both representations
    for r, rep in enumerate(REPS):
        plain = EvidenceSet(FeatureRunner(enc, 64, rep), corpus, stats[r], positions).evaluate(triggers)
        for a, b in zip(per_rep[r], plain, strict=True):
            assert a.tokens == b.tokens
            assert abs(a.shift - b.shift) <= 1e-4 * b.shift
            assert abs(a.collapse - b.collapse) <= 1e-3
            assert abs(a.diff_cos - b.diff_cos) <= 1e-4
    assert joint.view(1).evaluate(triggers)[0] is per_rep[1][0]  # cached: no second forward
    assert joint_runner.sequences == spent


def test_search_scores_each_unit_once_per_restart_with_the_plain_losses(minilm_l2):
    torch.set_num_threads(1)
    enc = load_encoder(minilm_l2, "cpu")
    corpus = _corpus(enc)
    runner = FeatureRunner(enc, 64)
    stats = CleanStats.fit(clean_features(runner, corpus))
    vocab = searchable_vocabulary(enc.tokenizer, 4.0)
    units = [(int(t),) for t in vocab.ids[:200]]
    search = ContrastiveSearch(
        enc, corpus, units, stats, runner, profile("quick").search, torch.Generator().manual_seed(0)
    )
    scored = search._scored_sentences(8)
    before = runner.sequences
    sets = torch.tensor([[0, 1, 2, 3], [0, 1, 2, 4], [5, 1, 2, 3]])
    first = search._losses(sets, scored)
    spent = runner.sequences
    assert spent - before == 8 * 6  # six distinct units inserted into eight sentences, each once
    again = search._losses(torch.tensor([[0, 1, 2, 4], [4, 3, 2, 1]]), scored)
    assert runner.sequences == spent  # every unit already cached on these sentences
    fresh_runner = FeatureRunner(enc, 64)
    unique, index = torch.unique(sets, return_inverse=True)
    feats = trigger_features(fresh_runner, scored.sentences, scored.positions, search.units[unique].tolist())
    plain = set_losses(scored.clean_z, stats.standardize(feats), index.view(sets.shape), 0.5)
    assert torch.allclose(first, plain, atol=1e-5)
    assert torch.allclose(again[0], first[1], atol=1e-6)


def test_two_representations_cost_about_one(minilm_l2, minilm_l2_st):
    """The same weights scanned with one representation and with two (mean + cls, the sentence-transformers repo):
    the joint search and shared evidence keep the second within a fraction of the first's sequences."""
    from scanner.detect import Detector

    torch.set_num_threads(1)
    sentences = load_corpus()
    one = Detector(load_encoder(minilm_l2, "cpu"), sentences, profile("quick"), 0)
    two = Detector(load_encoder(minilm_l2_st, "cpu"), sentences, profile("quick"), 0)
    assert two.representations == ["mean", "cls"] and one.representations == ["cls"]
    a, b = one.run(), two.run()
    assert set(b.null_scores) == {"mean", "cls"}
    assert b.sequences_evaluated < 1.25 * a.sequences_evaluated, (a.sequences_evaluated, b.sequences_evaluated)
