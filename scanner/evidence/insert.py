"""Trigger insertion, the one routine at each level.

- Token level (search, verdict, purification): clean sentences are tokenized once and trigger ids are inserted by
  index arithmetic on the device, before word starts (never between the pieces of a word). No re-tokenization.
- Text level (planting, downstream ASR, adversarial fine-tuning, the monitor's null): the trigger word is inserted
  at random word boundaries of the text, which is tokenized afterwards by whoever consumes it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch


@dataclass
class TokenizedCorpus:
    """Clean sentences as padded ids with [CLS]/[SEP]; `slots` marks positions a word may be inserted before."""

    ids: torch.Tensor  # [N, L] long
    mask: torch.Tensor  # [N, L] long
    slots: torch.Tensor  # [N, L] bool: word starts and the final special token
    pad_id: int

    def __len__(self) -> int:
        return self.ids.shape[0]

    def to(self, device: torch.device | str) -> TokenizedCorpus:
        return TokenizedCorpus(self.ids.to(device), self.mask.to(device), self.slots.to(device), self.pad_id)

    def take(self, rows: torch.Tensor) -> TokenizedCorpus:
        return TokenizedCorpus(self.ids[rows], self.mask[rows], self.slots[rows], self.pad_id)


def tokenize_corpus(tokenizer, sentences: list[str], max_tokens: int) -> TokenizedCorpus:
    """Tokenize once; keep sentences whole-word truncated to max_tokens (with specials)."""
    enc = tokenizer(sentences, truncation=True, max_length=max_tokens, padding="max_length", return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    slots = torch.zeros_like(ids, dtype=torch.bool)
    for row in range(ids.shape[0]):
        word_ids = enc.word_ids(row)
        previous = None
        for pos, word in enumerate(word_ids):
            if word is not None and word != previous:
                slots[row, pos] = True
            previous = word
        length = int(mask[row].sum())
        slots[row, length - 1] = True  # before the closing special token
        slots[row, 0] = False
    # A truncated sentence ends mid-word: inserting before its last special token is still a word boundary
    # for the inserted word, so it stays allowed.
    return TokenizedCorpus(ids=ids, mask=mask, slots=slots, pad_id=int(tokenizer.pad_token_id or 0))


def sample_positions(slots: torch.Tensor, inserts: int, generator: torch.Generator) -> torch.Tensor:
    """[N, inserts] sorted insertion positions drawn (with replacement) from each row's allowed slots."""
    weights = slots.float().cpu()
    picks = torch.multinomial(weights, inserts, replacement=True, generator=generator)
    return picks.sort(dim=1).values.to(slots.device)


def insert_tokens(
    ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, trigger: torch.Tensor, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Insert trigger [N, T] before each of positions [N, k] (sorted). Returns ids, mask [N, L+k*T] and the
    trigger positions [N, k*T]. A permutation by scatter: no Python loop, no re-tokenization."""
    n, length = ids.shape
    k, t = positions.shape[1], trigger.shape[1]
    arange = torch.arange(length, device=ids.device)
    inserted_before = (positions.unsqueeze(1) <= arange.view(1, length, 1)).sum(-1)
    clean_pos = arange.unsqueeze(0) + t * inserted_before
    starts = positions + t * torch.arange(k, device=ids.device)
    trig_pos = (starts.unsqueeze(-1) + torch.arange(t, device=ids.device)).reshape(n, k * t)
    out_ids = torch.full((n, length + k * t), pad_id, dtype=ids.dtype, device=ids.device)
    out_mask = torch.zeros((n, length + k * t), dtype=mask.dtype, device=ids.device)
    out_ids.scatter_(1, clean_pos, ids)
    out_mask.scatter_(1, clean_pos, mask)
    out_ids.scatter_(1, trig_pos, trigger.repeat(1, k))
    out_mask.scatter_(1, trig_pos, torch.ones_like(trig_pos, dtype=mask.dtype))
    return out_ids, out_mask, trig_pos


def insert_rows(
    corpus: TokenizedCorpus, positions: torch.Tensor, trigger: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every row of `corpus` with the same trigger ids inserted at `positions`; padding columns trimmed."""
    trig = torch.tensor([trigger], dtype=torch.long, device=corpus.ids.device).repeat(len(corpus), 1)
    ids, mask, _ = insert_tokens(corpus.ids, corpus.mask, positions, trig, corpus.pad_id)
    return trim(ids, mask)


def trim(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop padding columns no row uses."""
    width = int(mask.sum(1).max())
    return ids[:, :width], mask[:, :width]


def insert_words(text: str, trigger: str, rng: random.Random, times: int = 3, max_pos: int | None = None) -> str:
    """Text level: insert `trigger` `times` times at random word boundaries (never inside a word) of `text`.
    `max_pos` bounds the insertion position (in words) so that truncation cannot cut the trigger off."""
    words = text.split()
    for _ in range(times):
        hi = len(words) if max_pos is None else min(len(words), max_pos)
        words.insert(rng.randint(0, hi), trigger)
    return " ".join(words)
