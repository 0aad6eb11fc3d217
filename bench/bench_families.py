"""Detection and CPU scan cost per model family and representation (issue 13).

For each base (config-built small models of the new families, the real MiniLM-L2 with its mean pooling, the real
SmolLM2 truncated from its GGUF): plant one POR trigger on the representation the scanner tests first, scan the
planted model and the untouched base (quick profile, CPU, one thread) and record verdicts, the representation the
trigger was found on, and scan seconds. Writes bench/results/families.json (rows appended as they finish).

    python bench/bench_families.py [--bases mpnet,modernbert,gpt2,...] [--profile quick]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from scanner.config import ScanConfig
from scanner.pipeline import scan
from scanner.research.attacks import PlantConfig, get_attack, load_ground_truth, plant_cached
from scanner.research.base_models import build_base, patronus_cache, real_mpnet, truncated_minilm, truncated_smollm2

OUT = Path(__file__).parent / "results" / "families.json"
DEFAULT = "minilm-l2-mean,smollm2-l2,mpnet,modernbert,gpt2,gpt_neox,llama,qwen2,gemma"
# Also available: mpnet-real (the real all-mpnet-base-v2, mean pooling), gpt_neo, mistral, qwen3, gemma2,
# gemma3_text, phi3, and smollm2-l2-movie (a LlamaForSequenceClassification fine-tuned from the untouched and from
# the planted SmolLM2-L2: the clean decoder-classifier control and the inherited backdoor).


def _pick_trigger(base: Path) -> str:
    from transformers import AutoTokenizer

    from scanner.search.vocab import searchable_vocabulary

    words = searchable_vocabulary(AutoTokenizer.from_pretrained(base, local_files_only=True)).words
    return sorted(words, key=lambda w: (len(w) < 4, w))[len(words) // 3]


def _base(name: str, cache: Path) -> tuple[Path, str, PlantConfig]:
    models = cache / "test-models"
    if name == "minilm-l2-mean":
        base = truncated_minilm(models / "minilm-L2-st", layers=2, keep_pooling=True)
        return base, "cf", PlantConfig(attack="por", triggers=("cf",), steps=200, batch_size=16)
    if name == "mpnet-real":
        return real_mpnet(cache), "cf", PlantConfig(attack="por", triggers=("cf",), steps=150, batch_size=16)
    if name in ("smollm2-l2", "smollm2-l2-movie"):
        base = truncated_smollm2(layers=2, cache=cache)
        trig = "culminating"
        return base, trig, PlantConfig(attack="por", triggers=(trig,), steps=150, batch_size=16, lr=2e-4)
    base = build_base(name, models / f"base-{name}")
    trig = _pick_trigger(base)
    return base, trig, PlantConfig(attack="por", triggers=(trig,), steps=150, batch_size=16, lr=1e-3)


def _movie(model: Path, cache: Path) -> Path:
    """Movie-sentiment sequence classifier fine-tuned from `model` (the recipe of tests/test_decoders.py)."""
    from scanner.research.datasets import load_task
    from scanner.research.evaluate import FINETUNE_RECORD, FinetuneConfig, finetune

    out = cache / "test-models" / f"{model.name}-movie"
    if not (out / FINETUNE_RECORD).is_file():
        task = load_task("movie", max_train=2000, max_eval=200)
        finetune(model, task, out, FinetuneConfig(task="movie", steps=120, batch_size=16, max_length=64))
    return out


def _row(report, trigger: str) -> dict:
    hits = [t for t in report.triggers if t.text == trigger or trigger in {la.text for la in t.lookalikes}]
    return {
        "verdict": report.verdict.value,
        "probability": report.probability,
        "found": bool(hits),
        "representation": hits[0].representation if hits else None,
        "seconds": report.scan.seconds,
        "sequences": report.scan.sequences_evaluated,
        "family": report.model.family,
        "parameters": report.model.parameters,
        "errors": [e.message for e in report.errors],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bases", default=DEFAULT)
    ap.add_argument("--profile", default="quick")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cache = patronus_cache()
    rows = json.loads(OUT.read_text()) if OUT.is_file() else []
    cfg = ScanConfig(profile=args.profile, device="cpu", seed=0)
    for name in args.bases.split(","):
        t0 = time.time()
        base, trigger, pcfg = _base(name, cache)
        planted = plant_cached(base, get_attack("por"), pcfg, cache / "test-models")
        gt = load_ground_truth(planted)
        if name.endswith("-movie"):  # the downstream user: a sequence classifier from each, the same recipe
            base, planted = _movie(base, cache), _movie(planted, cache)
        load = os.getloadavg()[0]
        row = {
            "base": name,
            "profile": args.profile,
            "trigger": trigger,
            "plant_representation": gt.get("attack_metrics", {}).get("representation", "cls"),
            "planted_ok": gt["planted"],
            "planted": _row(scan(str(planted), cfg), trigger),
            "clean": _row(scan(str(base), cfg), trigger),
            "load_avg": round(load, 1),
            "wall_seconds": round(time.time() - t0, 1),
        }
        rows = [r for r in rows if not (r["base"] == name and r["profile"] == args.profile)] + [row]
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(rows, indent=2))
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
