"""The evidence core: trigger insertion (token level on the device, text level), features at a representation,
per-candidate statistics in the model's own scale, the per-model null, and cached evidence sets.

Search, verdict, purification, the monitor and the attack-quality code all measure "features of sentences with a
trigger inserted, against the model's own null" through this package (METHOD.md sections 2-4)."""

from scanner.evidence.features import (
    FeatureRunner,
    autocast,
    clean_features,
    encoder_features,
    representations,
    text_features,
    trigger_features,
)
from scanner.evidence.insert import (
    TokenizedCorpus,
    insert_rows,
    insert_tokens,
    insert_words,
    sample_positions,
    tokenize_corpus,
    trim,
)
from scanner.evidence.null import (
    SCALE_FLOOR,
    TESTS_PER_CANDIDATE,
    EvidenceNull,
    NullModel,
    significance_threshold,
    tail,
)
from scanner.evidence.probe import EvidenceSet, EvidenceView, JointEvidence, null_tokens
from scanner.evidence.stats import (
    CleanStats,
    TriggerStats,
    collapse_scores,
    mean_pairwise_cos,
    rms_shift,
    sentence_shifts,
    trigger_stats,
)

__all__ = [
    "SCALE_FLOOR",
    "TESTS_PER_CANDIDATE",
    "CleanStats",
    "EvidenceNull",
    "EvidenceSet",
    "EvidenceView",
    "FeatureRunner",
    "JointEvidence",
    "NullModel",
    "TokenizedCorpus",
    "TriggerStats",
    "autocast",
    "clean_features",
    "collapse_scores",
    "encoder_features",
    "insert_rows",
    "insert_tokens",
    "insert_words",
    "mean_pairwise_cos",
    "null_tokens",
    "representations",
    "rms_shift",
    "sample_positions",
    "sentence_shifts",
    "significance_threshold",
    "tail",
    "text_features",
    "tokenize_corpus",
    "trigger_features",
    "trigger_stats",
    "trim",
]
