"""The searchable vocabulary: real whole-word tokens, rare by wordfreq, no specials/punctuation/digits/letters;
beside it the symbol tokens (math, currency, arrows, dingbats, rare punctuation: NeuBA's ≈ ≡ ∈ ⊆ ⊕ ⊗).

Rule per tokenizer kind (one test for all: the token re-tokenizes to itself inside a sentence, see `encode_words`):
WordPiece (BERT, DistilBERT, ELECTRA, MPNet): whole-word entries, no '##' pieces; byte-level BPE (RoBERTa, DeBERTa,
GPT-2, GPT-Neo/NeoX, Llama-3, Qwen2/3, ModernBERT, Phi-3 with BPE): 'Ġ'-prefixed entries; sentencepiece (ALBERT,
XLM-R, Llama-2, Mistral, Gemma, Phi-3): '▁'-prefixed word-start entries.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

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


MEMO_SIZE = 8  # tokenizers whose vocabularies a process keeps (a worker scans many models sharing a tokenizer)
_memo: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
# The truncation and padding a call leaves on the backend (objects nested one level deep, e.g. {"Fixed": 128};
# an unexpected shape only costs a memo miss)
_CALL_STATE = re.compile(r'"(truncation|padding)":(null|\{(?:[^{}]|\{[^{}]*\})*\})')


def tokenizer_fingerprint(tokenizer) -> str | None:
    """A digest of everything that decides how a fast tokenizer splits text (its serialized pipeline: normalizer,
    pre-tokenizer, model, added tokens; not the truncation and padding state a call leaves) plus its class and
    special ids; None for a tokenizer without a backend, whose vocabularies are then never memoized."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    pipeline = _CALL_STATE.sub(r'"\1":null', backend.to_str())
    digest = hashlib.sha256(type(tokenizer).__name__.encode())
    digest.update(pipeline.encode())
    digest.update(repr(sorted(tokenizer.all_special_ids)).encode())
    return digest.hexdigest()


def _memoized(key: tuple[Any, ...], tokenizer, build):
    """build() once per (key, tokenizer fingerprint) in this process, least recently used dropped first."""
    fingerprint = tokenizer_fingerprint(tokenizer)
    if fingerprint is None:
        return build()
    full = (*key, fingerprint)
    if full in _memo:
        _memo.move_to_end(full)
        return _memo[full]
    value = _memo[full] = build()
    while len(_memo) > MEMO_SIZE:
        _memo.popitem(last=False)
    return value


def searchable_vocabulary(tokenizer, zipf_max: float = 4.0) -> Vocabulary:
    """Whole-word rare tokens that re-tokenize to themselves inside a sentence (memoized per tokenizer: a copy)."""
    vocab = _memoized(("vocabulary", zipf_max), tokenizer, lambda: _searchable_vocabulary(tokenizer, zipf_max))
    return Vocabulary(ids=vocab.ids.clone(), words=list(vocab.words))


def _single_token_entries(tokenizer, accept) -> Vocabulary:
    """Vocabulary entries whose surface word `accept`s and that re-tokenize to themselves inside a sentence."""
    special = set(tokenizer.all_special_ids)
    cand = [
        (idx, word)
        for token, idx in tokenizer.get_vocab().items()
        if idx not in special and accept(word := token_word(tokenizer, token))
    ]
    encoded = encode_words(tokenizer, [w for _, w in cand])
    keep = sorted((i, w) for (i, w), enc in zip(cand, encoded, strict=True) if enc == [i])
    return Vocabulary(ids=torch.tensor([i for i, _ in keep], dtype=torch.long), words=[w for _, w in keep])


def _searchable_vocabulary(tokenizer, zipf_max: float) -> Vocabulary:
    return _single_token_entries(
        tokenizer, lambda w: is_plain_word(w) and w == w.strip() and zipf_frequency(w, "en") < zipf_max
    )


# Non-ASCII punctuation of ordinary prose (quotes, dashes, brackets are other categories and never symbols)
_PROSE_MARKS = frozenset("…·•¡¿\ufffd")  # and the replacement character of a partial byte


def is_symbol(text: str) -> bool:
    """One or two non-ASCII symbol characters (Unicode S*: ≈ ⊗ € → ★) or rare marks (Po: § ¶ † ‡); not letters,
    digits, quotes, dashes, brackets, the marks of ordinary prose, or full-width (CJK) punctuation. ASCII symbols
    ($ + = ~) are everyday text, where a trigger would fire all the time."""
    if not 1 <= len(text) <= 2 or text.isascii():
        return False
    for ch in text:
        category = unicodedata.category(ch)
        if ch in _PROSE_MARKS or unicodedata.east_asian_width(ch) in "WF":
            return False
        if not (category.startswith("S") or category == "Po"):
            return False
    return True


def searchable_symbols(tokenizer) -> Vocabulary:
    """Symbol tokens (see `is_symbol`) that re-tokenize to themselves inside a sentence: searched beside the words
    but kept out of the null, which stays random rare words (memoized per tokenizer: a copy)."""
    found = _memoized(("symbols",), tokenizer, lambda: _searchable_symbols(tokenizer))
    return Vocabulary(ids=found.ids.clone(), words=list(found.words))


def _searchable_symbols(tokenizer) -> Vocabulary:
    return _single_token_entries(tokenizer, is_symbol)


@lru_cache(maxsize=1)
def _english_words(n: int = 100_000) -> tuple[str, ...]:
    return tuple(top_n_list("en", n))


@lru_cache(maxsize=4)
def _rare_english_words(zipf_max: float, limit: int) -> tuple[str, ...]:
    """Plain words of the English word list rarer than zipf_max (tokenizer-independent, so computed once)."""
    return tuple(w for w in _english_words(limit) if is_plain_word(w) and zipf_frequency(w, "en") < zipf_max)


@dataclass
class WordList:
    """Rare words that tokenize into several pieces (word-level mode)."""

    words: list[str]
    pieces: list[list[int]]

    def containing(self, token_id: int) -> list[int]:
        """Indices of words whose pieces include token_id."""
        return [i for i, p in enumerate(self.pieces) if token_id in p]


def multi_piece_words(tokenizer, zipf_max: float = 4.0, max_pieces: int = 4, limit: int = 100_000) -> WordList:
    """Rare plain words of the English word list that the tokenizer splits into 2..max_pieces pieces (memoized per
    tokenizer: a copy)."""
    key = ("words", zipf_max, max_pieces, limit)
    found = _memoized(key, tokenizer, lambda: _multi_piece_words(tokenizer, zipf_max, max_pieces, limit))
    return WordList(words=list(found.words), pieces=[list(p) for p in found.pieces])


# Unicode blocks symbol triggers come from: Latin-1 signs, arrows, mathematical operators (NeuBA's ≈ ≡ ∈ ⊆ ⊕ ⊗),
# technical signs, currency, letterlike symbols, geometric shapes, miscellaneous symbols and dingbats
_SYMBOL_BLOCKS = ((0xA1, 0xBF), (0x2100, 0x23FF), (0x20A0, 0x20CF), (0x25A0, 0x27BF), (0x2A00, 0x2AFF))


@lru_cache(maxsize=1)
def _symbol_strings() -> tuple[str, ...]:
    """Every symbol character of those blocks (see `is_symbol`), tokenizer-independent."""
    return tuple(ch for lo, hi in _SYMBOL_BLOCKS for ch in map(chr, range(lo, hi + 1)) if is_symbol(ch))


def _multi_piece_words(tokenizer, zipf_max: float, max_pieces: int, limit: int) -> WordList:
    """Rare English words, and symbols a byte-level BPE or sentencepiece tokenizer splits ('Ġâī' 'Ī' for ≈, '▁' '≈'),
    of 2..max_pieces pieces none of which is a special token (an unknown symbol is '▁' '<unk>')."""
    words = list(_rare_english_words(zipf_max, limit)) + list(_symbol_strings())
    encoded = encode_words(tokenizer, words)
    special = set(tokenizer.all_special_ids)
    keep = [
        (w, e) for w, e in zip(words, encoded, strict=True) if 2 <= len(e) <= max_pieces and not special.intersection(e)
    ]
    return WordList(words=[w for w, _ in keep], pieces=[e for _, e in keep])
