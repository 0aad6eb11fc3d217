"""The searchable vocabulary: real whole-word tokens, rare by wordfreq, no specials/punctuation/digits/letters.

Rule per tokenizer kind (one test for all: the token re-tokenizes to itself inside a sentence, see `encode_words`):
WordPiece (BERT, DistilBERT, ELECTRA, MPNet): whole-word entries, no '##' pieces; byte-level BPE (RoBERTa, DeBERTa,
GPT-2, GPT-Neo/NeoX, Llama-3, Qwen2/3, ModernBERT, Phi-3 with BPE): 'Ġ'-prefixed entries; sentencepiece (ALBERT,
XLM-R, Llama-2, Mistral, Gemma, Phi-3): '▁'-prefixed word-start entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from wordfreq import top_n_list, zipf_frequency


@dataclass
class Vocabulary:
    """Token ids the search may put into a slot, and the word each stands for."""

    ids: torch.Tensor  # [V] long
    words: list[str]

    def __len__(self) -> int:
        return len(self.words)

    def mask(self, size: int) -> torch.Tensor:
        """Boolean [size] mask of searchable rows in the embedding matrix."""
        m = torch.zeros(size, dtype=torch.bool)
        m[self.ids] = True
        return m


def is_plain_word(word: str) -> bool:
    """Letters only, at least two of them (no punctuation, digits, single letters)."""
    return len(word) >= 2 and word.isalpha() and word.isascii()


def token_word(tokenizer, token: str) -> str:
    """The surface word a vocabulary entry stands for ('Ġcat' / '▁cat' / 'cat' -> 'cat'; '##at' -> '')."""
    if token.startswith("##"):
        return ""
    return tokenizer.convert_tokens_to_string([token]).strip()


_CONTEXT = "the"


def encode_words(tokenizer, words: list[str]) -> list[list[int]]:
    """Token ids of each word as it appears inside a sentence (after a word and a space), without special tokens.
    Encoding "the w" and dropping the ids of "the" covers every tokenizer kind: WordPiece ('w'), byte-level BPE
    ('Ġw': GPT-2, RoBERTa, Llama-3, Qwen, ModernBERT), sentencepiece with a dummy prefix ('▁w': Llama-2, Mistral,
    ALBERT, XLM-R, whose " w" alone would gain an extra '▁') and without one ('▁w' after a word: Gemma)."""
    if not words:
        return []
    prefix = tokenizer([_CONTEXT], add_special_tokens=False)["input_ids"][0]
    in_context = tokenizer([f"{_CONTEXT} {w}" for w in words], add_special_tokens=False)["input_ids"]
    plain = None
    out: list[list[int]] = []
    for i, ids in enumerate(in_context):
        if prefix and ids[: len(prefix)] == prefix:
            out.append(list(ids[len(prefix) :]))
            continue
        if plain is None:  # the context merged with the word (rare): fall back to " w"
            plain = tokenizer([" " + w for w in words], add_special_tokens=False)["input_ids"]
        out.append(list(plain[i]))
    return out


def searchable_vocabulary(tokenizer, zipf_max: float = 4.0) -> Vocabulary:
    """Whole-word rare tokens that re-tokenize to themselves inside a sentence."""
    special = set(tokenizer.all_special_ids)
    vocab = tokenizer.get_vocab()
    cand_ids, cand_words = [], []
    for token, idx in vocab.items():
        if idx in special:
            continue
        word = token_word(tokenizer, token)
        if not is_plain_word(word) or word != word.strip():
            continue
        cand_ids.append(idx)
        cand_words.append(word)
    encoded = encode_words(tokenizer, cand_words)
    keep = [
        (i, w)
        for i, w, enc in zip(cand_ids, cand_words, encoded, strict=True)
        if enc == [i] and zipf_frequency(w, "en") < zipf_max
    ]
    keep.sort()
    return Vocabulary(ids=torch.tensor([i for i, _ in keep], dtype=torch.long), words=[w for _, w in keep])


@lru_cache(maxsize=1)
def _english_words(n: int = 100_000) -> tuple[str, ...]:
    return tuple(top_n_list("en", n))


@dataclass
class WordList:
    """Rare words that tokenize into several pieces (word-level mode)."""

    words: list[str]
    pieces: list[list[int]]

    def containing(self, token_id: int) -> list[int]:
        """Indices of words whose pieces include token_id."""
        return [i for i, p in enumerate(self.pieces) if token_id in p]


def multi_piece_words(tokenizer, zipf_max: float = 4.0, max_pieces: int = 4, limit: int = 100_000) -> WordList:
    """Rare plain words of the English word list that the tokenizer splits into 2..max_pieces pieces."""
    words = [w for w in _english_words(limit) if is_plain_word(w) and zipf_frequency(w, "en") < zipf_max]
    encoded = encode_words(tokenizer, words)
    keep = [(w, e) for w, e in zip(words, encoded, strict=True) if 2 <= len(e) <= max_pieces]
    return WordList(words=[w for w, _ in keep], pieces=[e for _, e in keep])
