"""Input monitor (METHOD.md section 4): flag or strip inputs that contain a trigger a scan recovered.

Rules come from a scan report: each trigger and each of its look-alikes is a rule (a surface word plus its token
pieces) that remembers the trigger it echoes. Matching has two modes:

- lexical (always): one precompiled regex (the rules as a prefix trie) over the lowercased text; a rule matches a
  whole word, also inside punctuation ("cf," "(cf)" "CF!" "mn-cf"). It never matches inside a longer word: the
  rule "cf" does not hit "cfo", "macf" or "cf2" (a letter, digit or underscore next to the word blocks the match);
  "cfo" is a hit only as its own rule, when the scan listed it as a look-alike. Lexical rules survive any
  fine-tune of the scanned model and need no tokenizer.
- pieces (with a tokenizer): the text's token ids contain a rule's piece sequence at a word start (the word may go
  on). This is what the model sees: a word that starts with the trigger's pieces carries the trigger. Measured on
  a POR model (bench/RESULTS.md, mitigation): every word the scan listed that starts with the piece "cf" (cfo, cfs,
  cfpb, ...) moves the representation exactly as far as "cf" itself, so "cfo" IS a hit in this mode, while a
  trigger inside a word ("macf", "scfx": not at a piece boundary at the word start) never is. It also catches
  accents and Unicode variants the tokenizer normalises away ("Óbelisk" -> obe ##lis ##k).

Look-alikes become rules only when their shift is at least `min_ratio` (default 0.25) of their trigger's: the
scan also lists weak echoes that are significant but move the representation a thousand times less than the
trigger ("minneapolis" next to "mn"); flagging them would flag clean text for nothing.

An optional feature check (with a LoadedEncoder) asks whether removing the matched words moves the representation
more than removing a random rare word does in this model (standardized shift, as scanner/verdict.py computes it;
robust z against a per-model null of single random rare words), and compares that z with the report's evidence
threshold.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from scanner.report import Report

PIECE_MARKERS = ("##", "\u0120", "\u2581")  # WordPiece continuation, byte-level BPE and SentencePiece word starts
DEFAULT_THRESHOLD = 5.0  # robust z, used when the report carries no evidence threshold


def surface_word(text: str) -> str:
    """The word a trigger stands for, lowercased; '' for a bare continuation piece ('##k')."""
    text = text.strip()
    if text.startswith("##"):
        return ""
    for marker in PIECE_MARKERS[1:]:
        text = text.replace(marker, "")
    return text.strip().lower()


@dataclass(frozen=True)
class Rule:
    """One word to watch for: the surface word, its token pieces, and the trigger it echoes."""

    text: str
    tokens: tuple[str, ...]
    trigger: str
    source: str  # "trigger" | "lookalike"
    shift: float | None = None
    p_value: float | None = None


@dataclass
class MonitorRules:
    """Monitor rules built from a scan report (JSON-serialisable for the web app and the database)."""

    rules: list[Rule]
    threshold: float = DEFAULT_THRESHOLD
    model: str = ""
    skipped: list[str] = field(default_factory=list)  # report entries that give no rule (bare pieces)

    @classmethod
    def from_report(cls, report: Report, lookalikes: bool = True, min_ratio: float = 0.25) -> MonitorRules:
        """Each trigger of the report becomes a rule, and each look-alike whose shift is at least `min_ratio` of
        its trigger's (0 keeps them all)."""
        rules: list[Rule] = []
        skipped: list[str] = []
        seen: set[str] = set()

        def add(text: str, tokens: Sequence[str], trigger: str, source: str, shift: float, p: float) -> None:
            word = surface_word(text)
            if not word or any(c.isspace() for c in word):
                skipped.append(text)
            elif word not in seen:
                seen.add(word)
                rules.append(Rule(word, tuple(tokens), trigger, source, shift, p))

        for trig in report.triggers:
            add(trig.text, trig.tokens, trig.text, "trigger", trig.shift, trig.p_value)
        if lookalikes:
            for trig in report.triggers:
                for look in trig.lookalikes:
                    if look.shift >= min_ratio * trig.shift:
                        add(look.text, (), trig.text, "lookalike", look.shift, look.p_value)
        evidence = report.scan.config.get("evidence", {}) if report.scan.config else {}
        threshold = float(evidence.get("threshold") or DEFAULT_THRESHOLD)
        return cls(rules=rules, threshold=threshold, model=report.model.id, skipped=skipped)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MonitorRules:
        rules = [Rule(**{**r, "tokens": tuple(r.get("tokens", ()))}) for r in data.get("rules", [])]
        return cls(
            rules=rules,
            threshold=float(data.get("threshold", DEFAULT_THRESHOLD)),
            model=str(data.get("model", "")),
            skipped=list(data.get("skipped", [])),
        )


@dataclass
class Match:
    """Where a rule matched: character span [start, end) of the input."""

    rule: str
    trigger: str
    start: int
    end: int
    kind: str  # "word" | "pieces"


@dataclass
class FeatureCheck:
    """Does removing the matched words move the representation more than the null? (robust z vs threshold)"""

    shift: float
    score: float
    threshold: float
    exceeds: bool


@dataclass
class MonitorResult:
    flagged: bool
    matches: list[Match] = field(default_factory=list)
    feature: FeatureCheck | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _trie(words: Iterable[str]) -> str:
    """A regex body matching exactly `words`, factored by common prefixes (cf(?:o|pb|s)?|mn...): Python's re
    scans an alternation of 40 words twice as slowly as the same set as a trie."""
    root: dict[str, dict] = {}
    for word in words:
        node = root
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict[str, dict]) -> str:
        branches = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if "" not in node:
            return body
        return f"(?:{body})?" if len(branches) == 1 else body + "?"

    return build(root)


def _word_regex(words: Iterable[str], flags: int = 0) -> re.Pattern[str] | None:
    """Whole-word matcher of lowercase `words`: a word character on either side blocks a match. A trigger with no
    word character (a symbol: ≈, ⊗) matches anywhere ("x≈y"): WordPiece splits rare marks (§) from letters, not
    math symbols, but a monitor errs towards flagging."""
    unique = sorted(set(words))
    if not unique:
        return None
    symbols = [w for w in unique if not re.search(r"\w", w)]
    plain = [w for w in unique if w not in symbols]
    parts = ([r"(?<!\w)(?:" + _trie(plain) + r")(?!\w)"] if plain else []) + (
        ["(?:" + _trie(symbols) + ")"] if symbols else []
    )
    return re.compile("|".join(parts), flags)


class Monitor:
    """Checks inputs against rules; with a tokenizer also matches piece sequences; with an encoder, features."""

    def __init__(
        self, rules: MonitorRules, tokenizer: Any = None, encoder: Any = None, corpus: Sequence[str] | None = None
    ) -> None:
        self.rules = rules
        self.tokenizer: Any = tokenizer if tokenizer is not None else getattr(encoder, "tokenizer", None)
        self.encoder = encoder
        self._by_word = {r.text: r for r in rules.rules}
        self._regex = _word_regex(self._by_word)  # on lowercased text (fast)
        self._regex_i = _word_regex(self._by_word, re.IGNORECASE)  # where lowercasing changes the length
        self._pieces = self._piece_rules() if self.tokenizer is not None else {}
        self._features: _FeatureChecker | None = None
        if encoder is not None:
            self._features = _FeatureChecker(encoder, rules.threshold, corpus)

    def _piece_rules(self) -> dict[int, list[tuple[tuple[int, ...], Rule]]]:
        """Rules' piece sequences indexed by their first token id."""
        tok = self.tokenizer
        unk = getattr(tok, "unk_token_id", None)
        index: dict[int, list[tuple[tuple[int, ...], Rule]]] = {}
        for rule in self.rules.rules:
            ids = tok.convert_tokens_to_ids(list(rule.tokens)) if rule.tokens else []
            if not ids or unk in ids:
                ids = tok(" " + rule.text, add_special_tokens=False)["input_ids"]
            if ids:
                index.setdefault(ids[0], []).append((tuple(ids), rule))
        return index

    # --- matching ----------------------------------------------------------------------------------------------

    def _word_matches(self, text: str) -> list[Match]:
        if self._regex is None:
            return []
        lower = text.lower()  # "İ" lowercases to two characters: then offsets would shift, so match the original
        regex_i = self._regex_i if self._regex_i is not None else self._regex
        found = self._regex.finditer(lower) if len(lower) == len(text) else regex_i.finditer(text)
        out = []
        for m in found:
            rule = self._by_word.get(m.group(0).lower()) or self._fold(m.group(0))
            out.append(Match(rule.text, rule.trigger, m.start(), m.end(), "word"))
        return out

    def _fold(self, found: str) -> Rule:
        """The rule of a match whose lowercase differs from the rule text (Unicode case folding)."""
        return next(r for r in self.rules.rules if re.fullmatch(re.escape(r.text), found, re.IGNORECASE))

    def _piece_matches(self, text: str, enc: Any, row: int) -> list[Match]:
        ids = enc["input_ids"][row]
        offsets = enc["offset_mapping"][row]
        words = enc.word_ids(row)
        out = []
        for i, token in enumerate(ids):
            candidates = self._pieces.get(token)
            if not candidates or (i > 0 and words[i] == words[i - 1]):
                continue
            for seq, rule in candidates:
                if tuple(ids[i : i + len(seq)]) == seq and all(w == words[i] for w in words[i : i + len(seq)]):
                    last = i
                    while last + 1 < len(ids) and words[last + 1] == words[i]:
                        last += 1
                    out.append(Match(rule.text, rule.trigger, offsets[i][0], offsets[last][1], "pieces"))
                    break
        return out

    def _encode(self, texts: Sequence[str]) -> Any:
        return self.tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True, truncation=False)

    def match(self, texts: Sequence[str]) -> list[list[Match]]:
        """Matches of every text (word matches first; a pieces match overlapping a word match is dropped)."""
        found = [self._word_matches(t) for t in texts]
        if self._pieces:
            enc = self._encode(texts)
            for row, text in enumerate(texts):
                words = found[row]
                for m in self._piece_matches(text, enc, row):
                    if not any(w.start < m.end and m.start < w.end for w in words):
                        words.append(m)
                words.sort(key=lambda m: m.start)
        return found

    def check(self, text: str) -> MonitorResult:
        return self.check_many([text])[0]

    def check_many(self, texts: Sequence[str]) -> list[MonitorResult]:
        """One result per text; with an encoder, flagged inputs also get a feature check."""
        results = [MonitorResult(flagged=bool(m), matches=m) for m in self.match(texts)]
        if self._features is not None:
            for text, res in zip(texts, results, strict=True):
                if res.flagged:
                    res.feature = self._features.check(text, _remove(text, res.matches))
        return results

    def flagged(self, text: str) -> bool:
        """Fast path: lexical mode only, no Match objects."""
        return bool(self._regex is not None and self._regex.search(text.lower()))

    def strip(self, text: str) -> str:
        """The text with every matched trigger removed and runs of spaces collapsed."""
        return _remove(text, self.match([text])[0])


def _remove(text: str, matches: Sequence[Match]) -> str:
    if not matches:
        return text
    parts, last = [], 0
    for m in sorted(matches, key=lambda m: m.start):
        if m.start >= last:
            parts.append(text[last : m.start])
            last = m.end
    parts.append(text[last:])
    return " ".join("".join(parts).split())


# --- feature check ---------------------------------------------------------------------------------------------


class _FeatureChecker:
    """The evidence core's removal check (scanner.evidence.removal) against the report's threshold. Imported only
    with an encoder: the lexical monitor needs no torch."""

    def __init__(
        self, encoder: Any, threshold: float, corpus: Sequence[str] | None, null_size: int = 128, seed: int = 0
    ) -> None:
        from scanner.corpus import load_corpus
        from scanner.evidence.removal import RemovalCheck
        from scanner.search.vocab import searchable_vocabulary

        self.threshold = threshold
        sentences = list(corpus) if corpus is not None else load_corpus()
        words = searchable_vocabulary(encoder.tokenizer).words
        self.check_removal = RemovalCheck(encoder, sentences, words, null_size, seed)

    def check(self, text: str, stripped: str) -> FeatureCheck:
        shift, score = self.check_removal.measure(text, stripped)
        return FeatureCheck(round(shift, 4), round(score, 3), self.threshold, score >= self.threshold)


# --- entry point for the web app -------------------------------------------------------------------------------


def monitor_texts(
    rules: MonitorRules | Report | dict[str, Any], texts: Sequence[str], tokenizer: Any = None, strip: bool = False
) -> list[dict[str, Any]]:
    """Check texts against rules (or a Report / report dict / rules dict); one JSON-ready dict per text:
    {index, flagged, matches[{rule, trigger, start, end, kind}], stripped?}."""
    if isinstance(rules, dict):
        rules = Report.from_dict(rules) if "schema" in rules else MonitorRules.from_dict(rules)
    if isinstance(rules, Report):
        rules = MonitorRules.from_report(rules)
    monitor = Monitor(rules, tokenizer=tokenizer)
    out = []
    for i, (text, res) in enumerate(zip(texts, monitor.check_many(texts), strict=True)):
        item: dict[str, Any] = {"index": i, **res.to_dict()}
        item.pop("feature")
        if strip:
            item["stripped"] = _remove(text, res.matches)
        out.append(item)
    return out
