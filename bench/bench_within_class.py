"""Within-class context erasure (issue 11's third handle), measured and dropped (docs/METHOD.md section 3): does a
candidate erase the differences between the sentences of its target class (a trigger) or keep them (a class word)?

Per candidate, on the scan's statistics sentences with it inserted 3x (the quick profile's corpus): collapse_all =
spread of all poisoned features / clean spread; within_target = spread of the poisoned sentences predicted as the
target / spread of the clean sentences predicted as the target; paired_same_class = the same on the sentences in the
target class before and after. Beside them: the classifier's 8 strongest natural words and 24 random rare tokens
(the null). Usage: python bench/bench_within_class.py MODEL_DIR WORD [WORD ...] > result.json
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

import torch

from scanner.corpus import load_corpus
from scanner.detect import Detector
from scanner.encoder import LoadedEncoder, load_encoder
from scanner.evidence.classifier import ClassifierProbe
from scanner.evidence.insert import TokenizedCorpus, insert_rows, sample_positions, trim
from scanner.search.config import profile


def spread(z: torch.Tensor) -> float:
    """Mean distance of rows from their centroid (nan for fewer than two rows)."""
    return float((z - z.mean(0)).norm(dim=-1).mean()) if len(z) > 1 else float("nan")


class WithinClass:
    """Clean features, predictions and fixed insertion positions of one classifier's statistics sentences."""

    def __init__(self, encoder: LoadedEncoder, corpus: TokenizedCorpus) -> None:
        self.encoder, self.corpus = encoder, corpus
        self.positions = sample_positions(corpus.slots, 3, torch.Generator().manual_seed(0))
        features, probs = self._run(corpus.ids, corpus.mask)
        self.mu, self.sd = features.mean(0), features.std(0) + 1e-6
        self.clean = (features - self.mu) / self.sd
        self.pred = probs.argmax(-1)
        self.classes = probs.shape[1]

    @torch.inference_mode()
    def _run(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = trim(ids, mask)
        assert self.encoder.classifier is not None, "a classifier is needed"
        logits = self.encoder.classifier(input_ids=ids, attention_mask=mask).logits
        return self.encoder.features(ids, mask).float(), logits.float().softmax(-1)

    def measure(self, tokens: list[int]) -> dict[str, Any]:
        ids, mask = insert_rows(self.corpus, self.positions, tokens)
        features, probs = self._run(ids, mask)
        poisoned = (features - self.mu) / self.sd
        pred = probs.argmax(-1)
        target = int(torch.bincount(pred, minlength=self.classes).argmax())
        same = (self.pred == target) & (pred == target)
        paired = spread(poisoned[same]) / spread(self.clean[same]) if same.sum() > 2 else float("nan")
        return {
            "target": target,
            "share_target": float((pred == target).float().mean()),
            "collapse_all": spread(poisoned) / spread(self.clean),
            "within_target": spread(poisoned[pred == target]) / spread(self.clean[self.pred == target]),
            "paired_same_class": paired,
            "n_same": int(same.sum()),
        }


def main(model: Path, words: list[str]) -> dict[str, Any]:
    torch.manual_seed(0)
    encoder = load_encoder(model, "cpu")
    detector = Detector(encoder, load_corpus(None), profile("quick"), 0)
    probe_set = WithinClass(encoder, detector.stat_corpus)
    tokenizer: Any = encoder.tokenizer
    probe = ClassifierProbe(encoder, detector.search_corpus, torch.Generator().manual_seed(0), 3)
    natural = probe.natural_words(tokenizer, random.Random(0))
    out: dict[str, Any] = {"model": model.name, "candidates": {}, "natural": {}}
    for word in words:
        out["candidates"][word] = probe_set.measure(tokenizer(" " + word, add_special_tokens=False)["input_ids"])
    for ids in natural[:8]:
        out["natural"][tokenizer.decode(ids).strip()] = probe_set.measure(ids)
    rare = random.Random(0).sample(detector.vocab.ids.tolist(), 24)
    measured = [probe_set.measure([int(t)]) for t in rare]
    keys = ("collapse_all", "within_target", "paired_same_class")
    out["rare_null"] = {k: sorted(m[k] for m in measured) for k in keys}
    return out


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), sys.argv[2:]), indent=1))
