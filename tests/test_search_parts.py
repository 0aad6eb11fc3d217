"""The search's pure parts on tiny tensors: insertion, sampling, objective, gradients, candidates, beams."""

from __future__ import annotations

import math

import pytest
import torch

from scanner.evidence import CleanStats, TokenizedCorpus, insert_tokens, sample_positions, trim
from scanner.search.objective import supcon_loss
from scanner.search.step import expand_beams, poisoned_batch, set_losses, slot_gradients, swap_scores, top_candidates


def test_insert_tokens_places_trigger_before_each_position_without_losing_tokens():
    ids = torch.tensor([[101, 11, 12, 13, 102, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]])
    positions = torch.tensor([[1, 3, 3]])
    out, out_mask, trig_pos = insert_tokens(ids, mask, positions, torch.tensor([[7]]), pad_id=0)
    assert out[0].tolist() == [101, 7, 11, 12, 7, 7, 13, 102, 0]
    assert out_mask[0].tolist() == [1, 1, 1, 1, 1, 1, 1, 1, 0]
    assert trig_pos[0].tolist() == [1, 4, 5]


def test_insert_multi_piece_trigger_keeps_pieces_together():
    ids = torch.tensor([[101, 11, 12, 102]])
    mask = torch.ones_like(ids)
    out, _, trig_pos = insert_tokens(ids, mask, torch.tensor([[2, 3]]), torch.tensor([[8, 9]]), pad_id=0)
    assert out[0].tolist() == [101, 11, 8, 9, 12, 8, 9, 102]
    assert out[0, trig_pos[0]].tolist() == [8, 9, 8, 9]


def test_sample_positions_only_uses_allowed_slots_and_is_sorted():
    slots = torch.tensor([[False, True, False, True, True, False]] * 50)
    gen = torch.Generator().manual_seed(0)
    pos = sample_positions(slots, 3, gen)
    assert pos.shape == (50, 3)
    assert set(pos.flatten().tolist()) <= {1, 3, 4}
    assert (pos[:, 1:] >= pos[:, :-1]).all()


def test_trim_drops_unused_padding():
    ids = torch.tensor([[1, 2, 0, 0], [1, 0, 0, 0]])
    mask = (ids != 0).long()
    t_ids, t_mask = trim(ids, mask)
    assert t_ids.shape == (2, 2) and t_mask.sum() == 3


def naive_supcon(feats, labels, temperature):
    z = torch.nn.functional.normalize(feats, dim=-1)
    total, anchors = 0.0, 0
    for i in range(len(z)):
        pos = [j for j in range(len(z)) if j != i and labels[j] == labels[i]]
        if not pos:
            continue
        denom = sum(math.exp(float(z[i] @ z[a]) / temperature) for a in range(len(z)) if a != i)
        total += -sum(float(z[i] @ z[p]) / temperature - math.log(denom) for p in pos) / len(pos)
        anchors += 1
    return total / anchors


def test_supcon_matches_the_definition_and_rewards_clusters():
    torch.manual_seed(0)
    feats = torch.randn(9, 5)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    assert supcon_loss(feats, labels, 0.5).item() == pytest.approx(naive_supcon(feats, labels, 0.5), rel=1e-4)
    centers = torch.eye(5)[:3] * 5
    clustered = centers[labels] + 0.01 * torch.randn(9, 5)
    assert supcon_loss(clustered, labels, 0.5) < supcon_loss(feats, labels, 0.5)


def test_clean_stats_standardize_and_floor():
    feats = torch.tensor([[1.0, 5.0], [3.0, 5.0]])
    stats = CleanStats.fit(feats)
    z = stats.standardize(feats)
    assert torch.allclose(z[:, 0], torch.tensor([-1 / math.sqrt(2), 1 / math.sqrt(2)]), atol=1e-5)
    assert torch.isfinite(z).all()  # a constant dimension does not divide by zero


def test_poisoned_batch_labels_and_positions():
    corpus = TokenizedCorpus(
        ids=torch.tensor([[101, 11, 12, 102], [101, 21, 102, 0]]),
        mask=torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]),
        slots=torch.tensor([[False, True, True, True], [False, True, True, False]]),
        pad_id=0,
    )
    slot_tokens = torch.tensor([[500], [600]])
    gen = torch.Generator().manual_seed(1)
    ids, mask, labels, trig_pos, slot_of_row = poisoned_batch(corpus, slot_tokens, 3, 2, gen)
    assert ids.shape[0] == 2 + 6 and labels[:2].tolist() == [0, 0]
    assert (labels[2:] == slot_of_row + 1).all()
    poisoned = ids[2:]
    rows = torch.arange(6).unsqueeze(1)
    assert (poisoned[rows, trig_pos] == slot_tokens[slot_of_row]).all()
    assert (mask[2:].sum(1) == corpus.mask.repeat(3, 1).sum(1) + 2).all()


def test_slot_gradients_sum_per_slot_and_piece():
    grad = torch.zeros(2, 6, 3)
    grad[0, 1] = torch.tensor([1.0, 0, 0])
    grad[0, 4] = torch.tensor([2.0, 0, 0])
    grad[1, 2] = torch.tensor([0, 1.0, 0])
    trig_pos = torch.tensor([[1, 4], [2, 5]])
    out = slot_gradients(grad, trig_pos, torch.tensor([1, 0]), slots=2, length=1)
    assert out.shape == (2, 1, 3)
    assert out[1, 0].tolist() == [3.0, 0, 0] and out[0, 0].tolist() == [0, 1.0, 0]


def test_swap_scores_first_order_and_mask():
    grad = torch.tensor([[[1.0, 0.0]]])
    embeds = torch.tensor([[[2.0, 0.0]], [[-3.0, 1.0]], [[-9.0, 0.0]]])
    allowed = torch.tensor([True, True, False])
    scores = swap_scores(grad, embeds, allowed)
    assert scores[0, :2].tolist() == [-2.0, 3.0] and scores[0, 2] == float("-inf")
    assert top_candidates(scores, 1).tolist() == [[1]]


def test_expand_beams_drops_repeats_and_duplicates():
    beams = torch.tensor([[1, 2, 3]])
    sets = expand_beams(beams, 0, torch.tensor([2, 4, 5]))
    as_lists = sorted(map(tuple, sets.tolist()))
    assert as_lists == [(1, 2, 3), (4, 2, 3), (5, 2, 3)]


def test_set_losses_equals_loss_of_assembled_features():
    torch.manual_seed(0)
    clean = torch.randn(4, 6)
    token_z = torch.randn(5, 4, 6)
    sets = torch.tensor([[0, 1], [2, 4]])
    got = set_losses(clean, token_z, sets, 0.5)
    labels = torch.arange(3).repeat_interleave(4)
    for i, s in enumerate(sets):
        feats = torch.cat([clean, token_z[s[0]], token_z[s[1]]])
        assert got[i].item() == pytest.approx(supcon_loss(feats, labels, 0.5).item(), rel=1e-5)
