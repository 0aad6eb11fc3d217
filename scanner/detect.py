"""The behavioural scan: search for triggers, test them against a per-model null, return raw statistics and a
calibrated verdict. `report_triggers` turns the statistics into the report's triggers (display only).

Each representation the encoder lists (position 0, declared pooling, last token, ...) is scanned on its own, on the
same sentences and insertion positions; significance is Bonferroni-corrected for their number and every finding
records where it was found."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from scanner.encoder import LoadedEncoder
from scanner.evidence import (
    TESTS_PER_CANDIDATE,
    CleanStats,
    EvidenceNull,
    EvidenceSet,
    FeatureRunner,
    JointEvidence,
    TokenizedCorpus,
    TriggerStats,
    clean_features,
    insert_rows,
    null_tokens,
    representations,
    sample_positions,
    significance_threshold,
    tokenize_corpus,
    trim,
)
from scanner.evidence.classifier import ClassifierProbe, Override, TaskFeatureNull
from scanner.progress import Progress, silent
from scanner.report import Lookalike, Severity, Trigger, Verdict
from scanner.report.issues import verdict_for
from scanner.search.config import Profile
from scanner.search.search import ContrastiveSearch
from scanner.search.vocab import (
    Vocabulary,
    WordList,
    encode_words,
    multi_piece_words,
    searchable_symbols,
    searchable_vocabulary,
)
from scanner.verdict import Group, group_lookalikes, load_calibration

MAX_WORDS_PER_PIECE = 16
MOVED_TOKENS = 32  # lineage: tokens whose input embeddings moved most against the base, screened directly
FLIP_SENTENCES = 64
# Candidates just under the threshold that are tested like findings once the model has task features or a base: an
# explained one (a task word's echo) must not set the verdict's best score, an inherited one is reported as weakened
NEAR_MARGIN = 1.0
NEAR_MAX = 16


@dataclass
class Echo:
    """A look-alike of a finding: its statistics, p-value and similarity of effect to the finding's head."""

    stats: TriggerStats
    p_value: float
    similarity: float


@dataclass
class Finding:
    """One backdoor as raw statistics: the strongest candidate of a group and the look-alikes that echo it."""

    head: TriggerStats
    score: float
    p_value: float
    echoes: list[Echo] = field(default_factory=list)
    flip_rate: float | None = None  # classifiers: share of clean inputs whose label flips
    attack_success: float | None = None  # classifiers: share of other-class inputs moved to the target class
    target_label: str | None = None  # classifiers: the class it pushes toward
    representation: str | None = None
    override: Override | None = None  # classifiers: how it acts on confident inputs (scanner.evidence.classifier)
    task_feature: bool = False  # classifiers: it overrides no better than the model's own strongest task words
    base_score: float | None = None  # lineage: the same candidate's score in the known base model


@dataclass
class Detection:
    """What the behavioural scan concluded, as statistics (see `report_triggers` for the report's view)."""

    verdict: Verdict
    probability: float
    severity: Severity
    findings: list[Finding]
    max_score: float
    threshold: float
    sequences_evaluated: int
    paper_rule: list[list[int]] = field(default_factory=list)  # token ids the paper's rule flags
    null: dict[str, Any] = field(default_factory=dict)
    null_scores: dict[str, list[float]] = field(default_factory=dict)  # per representation: the null's own scores
    representations: list[str | None] = field(default_factory=list)
    raw_max_score: float = 0.0  # the best score before task features were set aside (classifiers)
    task_features: list[Finding] = field(default_factory=list)  # findings explained as task features
    natural_ceiling: float | None = None  # classifiers: best override of the model's natural task words
    base_threshold: float | None = None  # lineage: significance in the base model (None: no base given)
    weakened: list[Finding] = field(default_factory=list)  # lineage: fire in the base, just under the threshold here


def _neighbours(embedding: torch.Tensor, allowed: torch.Tensor, token: int, n: int) -> list[int]:
    """The n searchable tokens nearest to `token` in input-embedding space (cosine)."""
    sims = F.cosine_similarity(embedding, embedding[token].unsqueeze(0), dim=-1)
    sims = sims.masked_fill(~allowed, -2.0)
    sims[token] = -2.0
    return sims.topk(min(n, int(allowed.sum()))).indices.tolist()


@dataclass(frozen=True)
class Flips:
    """How a trigger changes a classifier's predictions on neutral sentences."""

    flip_rate: float  # share of inputs whose predicted label changes (bounded by the other classes' share)
    attack_success: float | None  # share of inputs not already of the target class that it moves there
    target: int  # the class it pushes toward: the majority prediction with it inserted


def flips(
    encoder: LoadedEncoder, sentences: TokenizedCorpus, tokens: list[int], generator: torch.Generator, inserts: int
) -> Flips:
    """Flip rate and attack success of a trigger on up to FLIP_SENTENCES neutral sentences. The flip rate of any
    strong class word is the share of sentences predicted as another class (0.19 for every negative word of a
    sentiment classifier whose neutral sentences are 81% positive); attack success divides by that share."""
    rows = sentences.take(torch.arange(min(FLIP_SENTENCES, len(sentences)), device=sentences.ids.device))
    positions = sample_positions(rows.slots, inserts, generator)
    p_ids, p_mask = insert_rows(rows, positions, tokens)
    with torch.inference_mode():
        clean = encoder.predict(*trim(rows.ids, rows.mask))
        poisoned = encoder.predict(p_ids, p_mask)
    target = int(torch.mode(poisoned).values)
    others = clean != target
    success = float((poisoned[others] == target).float().mean()) if bool(others.any()) else None
    return Flips(float((clean != poisoned).float().mean()), success, target)


class Detector:
    """One behavioural scan of one model."""

    def __init__(
        self,
        encoder: LoadedEncoder,
        sentences: list[str],
        config: Profile,
        seed: int,
        progress: Progress = silent,
        base: LoadedEncoder | None = None,
    ) -> None:
        self.encoder = encoder
        self.base = base if base is not None and _same_vocabulary(base, encoder) else None
        self.config = config
        self.progress = progress
        self.gen = torch.Generator().manual_seed(seed)
        self.rng = random.Random(seed)
        shuffled = sentences[:]
        self.rng.shuffle(shuffled)
        device = encoder.device
        tokenizer = encoder.tokenizer
        self.corpus = tokenize_corpus(tokenizer, shuffled, config.max_tokens).to(device)
        n_stat = min(config.stat_sentences, len(self.corpus) // 3)
        self.stat_corpus = self.corpus.take(torch.arange(n_stat, device=device))
        self.search_corpus = self.corpus.take(torch.arange(n_stat, len(self.corpus), device=device))
        self.vocab: Vocabulary = searchable_vocabulary(tokenizer, config.zipf_max)
        if len(self.vocab) < config.slots + config.null_tokens:
            raise ValueError(f"searchable vocabulary too small ({len(self.vocab)} tokens)")
        # Symbols are searched and screened beside the words; the null stays random rare words
        self.symbols = (
            searchable_symbols(tokenizer) if config.symbols else Vocabulary(torch.zeros(0, dtype=torch.long), [])
        )
        self.representations = representations(encoder)
        # One forward a sequence serves every representation: the runner concatenates them, the search runs once
        # on the joint features, and each candidate is measured in each representation's own scale.
        reps = self.representations
        joint = reps[0] if len(reps) == 1 else tuple(r or "cls" for r in reps)
        self.runner = FeatureRunner(encoder, config.batch_size, joint)
        search = self.search_corpus
        fit = clean_features(self.runner, search.take(torch.arange(min(256, len(search)), device=search.ids.device)))
        width = encoder.hidden_size
        per_rep = [CleanStats.fit(fit[:, r * width : (r + 1) * width]) for r in range(len(reps))]
        self.stats = CleanStats(mean=torch.cat([s.mean for s in per_rep]), std=torch.cat([s.std for s in per_rep]))
        positions = sample_positions(self.stat_corpus.slots, config.inserts, self.gen)
        self.evidence = JointEvidence(self.runner, self.stat_corpus, per_rep, positions)
        self.embedding = encoder.embedding_matrix.detach()
        self.allowed = (self.vocab.mask(self.embedding.shape[0]) | self.symbols.mask(self.embedding.shape[0])).to(
            self.embedding.device
        )

    def _moved_tokens(self, n: int = MOVED_TOKENS) -> list[list[int]]:
        """Lineage: the searchable tokens whose input embeddings moved most against the base model."""
        if self.base is None:
            return []
        base = self.base.embedding_matrix.detach().to(self.embedding.device)
        if base.shape != self.embedding.shape:
            return []
        moved = (self.embedding.float() - base.float()).norm(dim=-1).masked_fill(~self.allowed, -1.0)
        return [[int(t)] for t in moved.topk(min(n, int(self.allowed.sum()))).indices]

    def _lineage(self, findings: list[Finding]) -> float | None:
        """Each finding's score in the known base model, against the base's own null (same sentences, same
        positions): a transferable backdoor already fires there, a task feature of the fine-tune does not."""
        if self.base is None or not findings:
            return None
        runner = FeatureRunner(self.base, self.config.batch_size)
        search = self.search_corpus
        stats = CleanStats.fit(
            clean_features(runner, search.take(torch.arange(min(256, len(search)), device=search.ids.device)))
        )
        evidence = EvidenceSet(runner, self.stat_corpus, stats, self.evidence.positions)
        null = evidence.null(null_tokens(self.vocab.ids.tolist(), self.config.null_tokens, random.Random(1)))
        for f, st in zip(findings, evidence.evaluate([f.head.tokens for f in findings]), strict=True):
            f.base_score = null.score(st)
        return significance_threshold(self.searchable * TESTS_PER_CANDIDATE)

    @property
    def searchable(self) -> int:
        """Units a single-token trigger can be (words and symbols): the multiple-testing count."""
        return len(self.vocab) + len(self.symbols)

    @property
    def tests(self) -> int:
        """Tests a candidate faces: its two effects in each representation."""
        return TESTS_PER_CANDIDATE * len(self.representations)

    def _words(self) -> WordList | None:
        if not self.config.word_mode:
            return None
        return multi_piece_words(self.encoder.tokenizer, self.config.zipf_max)

    def _expand(self, significant: list[TriggerStats], words: WordList | None) -> list[list[int]]:
        """Look-alike probes: embedding neighbours of each significant token, words containing its piece, and every
        symbol once a symbol is significant."""
        probes: list[list[int]] = []
        symbols = set(self.symbols.ids.tolist())
        if any(len(st.tokens) == 1 and st.tokens[0] in symbols for st in significant):
            probes += [[t] for t in sorted(symbols)]  # NeuBA plants several symbols: one firing, all are probed
        for st in significant:
            if len(st.tokens) == 1:
                probes += [
                    [t]
                    for t in _neighbours(self.embedding, self.allowed, st.tokens[0], self.config.lookalike_neighbours)
                ]
            if words is not None:
                for token in st.tokens:
                    probes += [words.pieces[i] for i in words.containing(token)[:MAX_WORDS_PER_PIECE]]
        return probes

    def _screen_words(self, words: WordList | None) -> list[list[int]]:
        if words is None or not self.config.word_screen:
            return []
        pick = self.rng.sample(range(len(words.words)), min(self.config.word_screen, len(words.words)))
        return [words.pieces[i] for i in pick]

    def _search(self, words: WordList | None) -> list[list[int]]:
        """Token-level search; in word mode (word_search_restarts) also over 2- and 3-piece rare words."""
        cfg = self.config
        units: list[tuple[int, ...]] = [(int(t),) for t in torch.cat([self.vocab.ids, self.symbols.ids])]
        found = ContrastiveSearch(  # random starts among the words; symbols enter through the gradient's swaps
            self.encoder,
            self.search_corpus,
            units,
            self.stats,
            self.runner,
            cfg.search,
            self.gen,
            cfg.inserts,
            start_units=len(self.vocab),
        ).run(self.progress)
        candidates = [list(c) for c in found.candidates]
        if words is None or not cfg.word_search_restarts:
            return candidates
        for length in (2, 3):
            pieces = [tuple(p) for p in words.pieces if len(p) == length]
            if len(pieces) <= cfg.slots:
                continue
            search = ContrastiveSearch(
                self.encoder, self.search_corpus, pieces, self.stats, self.runner, cfg.search, self.gen, cfg.inserts
            )
            candidates += [list(c) for c in search.run(self.progress, restarts=cfg.word_search_restarts).candidates]
        return candidates

    def _where(self) -> str:
        named = [r for r in self.representations if r]
        return f" ({'+'.join(named)})" if named else ""

    def _candidates(self, words: WordList | None, seed_triggers: list[str] | None) -> list[list[int]]:
        """The search's finds plus what is screened directly (moved tokens, seeds, sampled tokens and words)."""
        cfg = self.config
        candidates = self._search(words) + self._moved_tokens()
        if seed_triggers:
            candidates += [ids for ids in encode_words(self.encoder.tokenizer, seed_triggers) if ids]
        if cfg.screen_tokens:
            pick = self.rng.sample(range(len(self.vocab)), min(cfg.screen_tokens, len(self.vocab)))
            candidates += [[int(self.vocab.ids[i])] for i in pick] + [[int(t)] for t in self.symbols.ids]
        return candidates + self._screen_words(words)

    def _evaluate(
        self, threshold: float, words: WordList | None, seed_triggers: list[str] | None
    ) -> tuple[list[list[TriggerStats]], list[EvidenceNull]]:
        """Per representation: every candidate evaluated (searched, screened, look-alikes), and the null."""
        where = self._where()
        self.progress("search", 0.0, f"null distribution from random rare tokens{where}")
        views = [self.evidence.view(r) for r in range(len(self.representations))]
        null_ids = null_tokens(self.vocab.ids.tolist(), self.config.null_tokens, self.rng)
        nulls = [view.null(null_ids) for view in views]
        candidates = self._candidates(words, seed_triggers)
        self.progress("verdict", 0.2, f"testing {len(candidates)} candidates against the null{where}")
        evaluated = self.evidence.evaluate(candidates)
        significant = [s for ev, null in zip(evaluated, nulls, strict=True) for s in ev if null.score(s) >= threshold]
        self.progress("verdict", 0.5, f"probing look-alikes of {len(significant)} significant candidates{where}")
        distinct = list({tuple(s.tokens): s for s in significant}.values())
        probes = self.evidence.evaluate(self._expand(distinct, words))
        pairs = zip(evaluated, probes, strict=True)
        unique = [list({tuple(s.tokens): s for s in ev + pr}.values()) for ev, pr in pairs]
        return unique, nulls

    def run(self, seed_triggers: list[str] | None = None) -> Detection:
        threshold = significance_threshold(self.searchable * self.tests)
        words = self._words()
        findings: list[Finding] = []
        paper: list[list[int]] = []
        scores: list[float] = []
        below: list[tuple[tuple[int, ...], float]] = []  # the candidates no finding holds, with their scores
        near: list[Finding] = []  # those within NEAR_MARGIN of the threshold
        nulls: dict[str, Any] = {}
        null_scores: dict[str, list[float]] = {}
        per_rep, rep_nulls = self._evaluate(threshold, words, seed_triggers)
        for representation, unique, null in zip(self.representations, per_rep, rep_nulls, strict=True):
            significant = [s for s in unique if null.score(s) >= threshold]
            scores += [null.score(s) for s in unique]
            below += [(tuple(s.tokens), null.score(s)) for s in unique if null.score(s) < threshold]
            near += [
                Finding(head=s, score=null.score(s), p_value=null.p_value(s, self.tests), representation=representation)
                for s in unique
                if threshold - NEAR_MARGIN <= null.score(s) < threshold
            ]
            groups = group_lookalikes(significant, null.score, self._embedding_similarity)
            findings += [self._finding(g, null, representation) for g in groups]
            paper += [s.tokens for s in unique if s.paper_rule and s.tokens not in paper]
            key = representation or "default"
            nulls[key] = null.summary()
            null_scores[key] = list(null.samples)
        findings = _distinct(findings)
        near = sorted(_distinct(near), key=lambda f: -f.score)[:NEAR_MAX]
        raw_max = max(scores, default=0.0)
        tested = findings + near
        ceiling = self._task_features(tested) if self.encoder.classifier is not None and tested else None
        base_threshold = self._lineage(tested)
        if base_threshold is not None:  # with a known base, only what already fires there is inherited
            for f in findings:
                f.task_feature = (f.base_score or 0.0) < base_threshold
            for f in near:  # not significant here, so not firing in the base says nothing of where it came from
                f.task_feature = f.task_feature and (f.base_score or 0.0) < base_threshold
        task = [f for f in findings if f.task_feature]
        findings = [f for f in findings if not f.task_feature]
        explained = {tuple(f.head.tokens) for f in near if f.task_feature}
        weakened = [f for f in near if base_threshold is not None and (f.base_score or 0.0) >= base_threshold]
        unexplained = [score for tokens, score in below if tokens not in explained]
        max_score = max([f.score for f in findings] + unexplained, default=0.0) if task or explained else raw_max
        calibration = load_calibration()
        probability = calibration.probability(max_score)
        verdict, severity = verdict_for(probability)
        null_info = next(iter(nulls.values())) if len(nulls) == 1 else {"representations": nulls}
        return Detection(
            verdict=verdict,
            probability=probability,
            severity=severity,
            findings=findings,
            max_score=max_score,
            threshold=threshold,
            sequences_evaluated=self.runner.sequences,
            paper_rule=paper,
            null={**null_info, "calibration": calibration.provenance},
            null_scores=null_scores,
            representations=self.representations,
            raw_max_score=raw_max,
            task_features=task,
            natural_ceiling=ceiling,
            base_threshold=base_threshold,
            weakened=weakened,
        )

    def _task_features(self, findings: list[Finding]) -> float:
        """Classifiers: measure each finding's override against the model's strongest natural task words and mark
        those it explains (issue 11). Returns the natural ceiling."""
        probe = ClassifierProbe(self.encoder, self.search_corpus, self.gen, self.config.inserts)
        natural = probe.natural_words(self.encoder.tokenizer, self.rng)
        probe.set_counter_words(natural)  # each confident sentence first gets its own class's strongest word
        null = TaskFeatureNull.fit([probe.override(w) for w in natural])
        for f in findings:
            f.override = probe.override(f.head.tokens)
            f.task_feature = null.explains(f.override)
        return null.ceiling

    def _finding(self, group: Group, null: EvidenceNull, representation: str | None) -> Finding:
        head = group.head
        flip = None
        if self.encoder.classifier is not None:
            flip = flips(self.encoder, self.stat_corpus, head.tokens, self.gen, self.config.inserts)
        echoes = [Echo(m, null.p_value(m, self.tests), float(m.direction @ head.direction)) for m in group.members]
        return Finding(
            head=head,
            score=null.score(head),
            p_value=null.p_value(head, self.tests),
            echoes=echoes,
            flip_rate=None if flip is None else flip.flip_rate,
            attack_success=None if flip is None else flip.attack_success,
            target_label=None if flip is None else self.encoder.label_name(flip.target),
            representation=representation,
        )

    def _embedding_similarity(self, a: TriggerStats, b: TriggerStats) -> float:
        """Cosine of the mean input embeddings of two candidates' pieces."""
        ea = self.embedding[a.tokens].float().mean(0)
        eb = self.embedding[b.tokens].float().mean(0)
        return float(F.cosine_similarity(ea, eb, dim=0))


def _same_vocabulary(a: LoadedEncoder, b: LoadedEncoder) -> bool:
    """Lineage needs the base to tokenize alike (the same ids mean the same pieces)."""
    ta: Any = a.tokenizer
    tb: Any = b.tokenizer
    return bool(ta.get_vocab() == tb.get_vocab())


def _distinct(findings: list[Finding]) -> list[Finding]:
    """One finding per trigger: found in several representations, the strongest is kept."""
    best: dict[tuple[int, ...], Finding] = {}
    for f in findings:
        key = tuple(f.head.tokens)
        if key not in best or f.score > best[key].score:
            best[key] = f
    return [f for f in findings if best[tuple(f.head.tokens)] is f]


# --- the report's view of the statistics -------------------------------------------------------------------------


def _text(tokenizer: Any, tokens: list[int]) -> str:
    return tokenizer.decode(tokens).strip()


def report_trigger(finding: Finding, tokenizer: Any) -> Trigger:
    """A finding as the report shows it (rounded, decoded)."""
    head = finding.head
    lookalikes = [
        Lookalike(
            text=_text(tokenizer, e.stats.tokens),
            shift=round(e.stats.shift, 4),
            p_value=e.p_value,
            similarity=round(e.similarity, 4),
        )
        for e in finding.echoes
    ]
    return Trigger(
        text=_text(tokenizer, head.tokens),
        tokens=tokenizer.convert_ids_to_tokens(head.tokens),
        score=round(finding.score, 3),
        p_value=finding.p_value,
        shift=round(head.shift, 4),
        poison_cos=round(head.poison_cos, 4),
        diff_cos=round(head.diff_cos, 4),
        paper_rule=head.paper_rule,
        lookalikes=lookalikes,
        flip_rate=finding.flip_rate,
        attack_success=finding.attack_success,
        target_label=finding.target_label,
        collapse=round(head.collapse, 4),
        representation=finding.representation,
    )


def report_triggers(detection: Detection, tokenizer: Any) -> list[Trigger]:
    """Every finding of `detection` as a report Trigger."""
    return [report_trigger(f, tokenizer) for f in detection.findings]


def paper_rule_texts(detection: Detection, tokenizer: Any) -> list[str]:
    """The candidates the paper's cosine rule flags, as text."""
    return [_text(tokenizer, t) for t in detection.paper_rule]


def detection_evidence(detection: Detection, tokenizer: Any) -> dict[str, Any]:
    """What the report records beside its triggers: the null's own scores (the report's picture) and, for
    classifiers, the findings explained as task features with their override against the natural ceiling."""
    out: dict[str, Any] = {"null_scores": detection.null_scores}
    if detection.natural_ceiling is not None:
        out["max_score_raw"] = round(detection.raw_max_score, 3)
        out["natural_override_ceiling"] = round(detection.natural_ceiling, 3)
        out["override"] = {
            _text(tokenizer, f.head.tokens): round(f.override.override, 3)
            for f in detection.findings
            if f.override is not None
        }
        out["task_features"] = [
            {
                "text": _text(tokenizer, f.head.tokens),
                "score": round(f.score, 3),
                "shift": round(f.head.shift, 4),
                "flip_rate": f.flip_rate,
                "attack_success": f.attack_success,
                "override": None if f.override is None else round(f.override.override, 3),
                "target": None if f.override is None else f.override.target,
            }
            for f in detection.task_features
        ]
    if detection.base_threshold is not None:
        out["lineage"] = {
            "base_threshold": round(detection.base_threshold, 3),
            "base_scores": {
                _text(tokenizer, f.head.tokens): round(f.base_score, 3)
                for f in detection.findings + detection.task_features
                if f.base_score is not None
            },
            "inherited_below_threshold": [
                {
                    "text": _text(tokenizer, f.head.tokens),
                    "score": round(f.score, 3),
                    "base_score": round(f.base_score, 3),
                }
                for f in detection.weakened
                if f.base_score is not None
            ],
        }
    return out
