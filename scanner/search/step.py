"""One search step as pure tensor functions: poisoned batch, slot gradients, swap scores, beam expansion, set loss."""

from __future__ import annotations

import torch

from scanner.evidence.insert import TokenizedCorpus, insert_tokens, sample_positions
from scanner.search.objective import supcon_loss


def poisoned_batch(
    batch: TokenizedCorpus, slot_tokens: torch.Tensor, copies: int, inserts: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clean batch plus `copies` poisoned copies, each sentence carrying a random slot's trigger (slot_tokens
    [K, T]) `inserts` times. Returns ids, mask (padded to one width), labels (0 clean, i+1 slot i), trigger
    positions [Np, inserts*T] and slot per poisoned row."""
    n = len(batch)
    k = slot_tokens.shape[0]
    rep_ids = batch.ids.repeat(copies, 1)
    rep_mask = batch.mask.repeat(copies, 1)
    rep_slots = batch.slots.repeat(copies, 1)
    slot_of_row = torch.randint(0, k, (n * copies,), generator=generator).to(batch.ids.device)
    positions = sample_positions(rep_slots, inserts, generator)
    p_ids, p_mask, trig_pos = insert_tokens(rep_ids, rep_mask, positions, slot_tokens[slot_of_row], batch.pad_id)
    width = p_ids.shape[1]
    clean_ids = torch.nn.functional.pad(batch.ids, (0, width - batch.ids.shape[1]), value=batch.pad_id)
    clean_mask = torch.nn.functional.pad(batch.mask, (0, width - batch.mask.shape[1]), value=0)
    ids = torch.cat([clean_ids, p_ids])
    mask = torch.cat([clean_mask, p_mask])
    labels = torch.cat([torch.zeros(n, dtype=torch.long, device=ids.device), slot_of_row + 1])
    return ids, mask, labels, trig_pos, slot_of_row


def slot_gradients(
    embed_grad: torch.Tensor, trig_pos: torch.Tensor, slot_of_row: torch.Tensor, slots: int, length: int
) -> torch.Tensor:
    """Sum the loss gradient w.r.t. input embeddings over every insertion of each slot's trigger, per piece:
    [K, T, e] for triggers of `length` T pieces."""
    rows = torch.arange(trig_pos.shape[0], device=trig_pos.device).unsqueeze(1)
    per_row = embed_grad[rows, trig_pos]  # [Np, inserts*T, e]
    per_row = per_row.view(per_row.shape[0], -1, length, per_row.shape[-1]).sum(1)  # [Np, T, e]
    out = torch.zeros(slots, length, embed_grad.shape[-1], device=embed_grad.device, dtype=embed_grad.dtype)
    return out.index_add_(0, slot_of_row, per_row)


def swap_scores(grad: torch.Tensor, unit_embeds: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """First-order score of putting each unit (a token or a word's pieces) into each slot:
    -sum_t g[i, t] . E[u, t]; grad [K, T, e], unit_embeds [U, T, e], allowed [U] -> [K, U], disallowed -inf."""
    scores = -torch.einsum("kte,ute->ku", grad.float(), unit_embeds.float())
    return scores.masked_fill(~allowed.unsqueeze(0), float("-inf"))


def top_candidates(scores: torch.Tensor, k: int) -> torch.Tensor:
    """[K, k] best-scoring token ids per slot."""
    return scores.topk(k, dim=1).indices


def expand_beams(beams: torch.Tensor, slot: int, candidates: torch.Tensor) -> torch.Tensor:
    """Every beam kept as is plus every beam with `slot` swapped to each candidate; sets with a repeated
    token are dropped, duplicates removed. beams [b, K], candidates [k] -> [<= b*(k+1), K]."""
    b, k = beams.shape[0], candidates.shape[0]
    swapped = beams.repeat_interleave(k, 0).clone()
    swapped[:, slot] = candidates.repeat(b)
    sets = torch.cat([beams, swapped])
    sorted_sets = sets.sort(dim=1).values
    no_repeat = (sorted_sets[:, 1:] != sorted_sets[:, :-1]).all(1)
    sets = sets[no_repeat]
    return torch.unique(sets, dim=0, sorted=False) if sets.shape[0] > 1 else sets


def set_losses(
    clean_z: torch.Tensor, token_z: torch.Tensor, sets: torch.Tensor, temperature: float, chunk: int = 64
) -> torch.Tensor:
    """Contrastive loss of each candidate set from cached features.
    clean_z [D, d]: standardized clean features; token_z [U, D, d]: the same sentences with token u inserted;
    sets [S, K] indices into U. Returns [S]."""
    d_sent, k = clean_z.shape[0], sets.shape[1]
    labels = torch.arange(k + 1, device=clean_z.device).repeat_interleave(d_sent)
    losses = []
    for start in range(0, sets.shape[0], chunk):
        part = sets[start : start + chunk]
        poisoned = token_z[part].reshape(part.shape[0], k * d_sent, -1)
        feats = torch.cat([clean_z.expand(part.shape[0], -1, -1), poisoned], dim=1)
        losses.append(supcon_loss(feats, labels, temperature))
    return torch.cat(losses)
