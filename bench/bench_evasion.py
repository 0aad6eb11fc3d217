"""Attacks built to evade this detector (issue 11), planted into the real MiniLM-L2 and scanned; reported per attack.

- common-word: POR on a common-ish word (zipf 4.0-4.5: outside the zipf < 4 search vocabulary);
- symbols: POR on the symbols the original NeuBA used (not in the word vocabulary the search walks);
- four-piece: POR on a word that tokenizes into 4 WordPiece pieces;
- mimic: a backdoor trained to look like a task feature (scanner/research/attacks/mimic.py);
- weak: POR with a tenth of the steps (a low-strength plant).

    python bench/bench_evasion.py [--attacks common-word,symbols,...] [--profile quick]

Writes bench/results/evasion.json (rows replaced per attack and profile as they finish).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from wordfreq import zipf_frequency

from scanner.config import ScanConfig
from scanner.pipeline import scan
from scanner.research.attacks import PlantConfig, get_attack, load_ground_truth, plant_cached
from scanner.research.base_models import patronus_cache, truncated_minilm

OUT = Path(__file__).parent / "results" / "evasion.json"
EVASIONS: dict[str, tuple[str, tuple[str, ...], dict, int]] = {
    # name: (attack, triggers, attack options, plant steps)
    "common-word": ("por", ("harbor",), {}, 300),
    "symbols": ("por", ("≈", "⊗"), {}, 300),
    "four-piece": ("por", ("quixotically",), {}, 300),
    "mimic": ("mimic", ("bb",), {"word": "wonderful", "alpha": 3.0}, 300),
    # a word moves MiniLM's [CLS] by ~0.2% of its norm: alpha 3 does not take; 30 gives a backdoor-sized move
    "mimic-30": ("mimic", ("bb",), {"word": "wonderful", "alpha": 30.0}, 300),
    "weak": ("por", ("cf",), {}, 30),
}


def _found(report, trigger: str) -> bool:
    """The planted word or a piece of >= 3 characters of it (not a look-alike) among the reported triggers."""
    texts = {t.text.lower() for t in report.triggers}
    pieces = {t.lower().lstrip("#") for r in report.triggers for t in r.tokens}
    return trigger in texts or any(len(p) >= 3 and p in trigger for p in texts | pieces)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--attacks", default=",".join(EVASIONS))
    ap.add_argument("--profile", default="quick")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cache = patronus_cache() / "test-models"
    base = truncated_minilm(cache / "minilm-L2", layers=2)
    rows = json.loads(OUT.read_text()) if OUT.is_file() else []
    for name in args.attacks.split(","):
        attack, triggers, options, steps = EVASIONS[name]
        t0 = time.time()
        cfg = PlantConfig(attack=attack, triggers=triggers, steps=steps, batch_size=16, options=options)
        planted = plant_cached(base, get_attack(attack, **options), cfg, cache)
        plant_s = time.time() - t0
        gt = load_ground_truth(planted)
        load = os.getloadavg()[0]
        report = scan(str(planted), ScanConfig(profile=args.profile, device="cpu", seed=0))
        evidence = report.scan.config.get("evidence", {})
        row = {
            "evasion": name,
            "attack": attack,
            "triggers": list(triggers),
            "zipf": {t: zipf_frequency(t, "en") for t in triggers},
            "plant_steps": steps,
            "planted_ok": gt["planted"],
            "per_trigger": [
                {k: q.get(k) for k in ("trigger", "shift", "ref_shift", "target_cos", "diff_cos", "planted")}
                for q in gt.get("per_trigger", [])
            ],
            "profile": args.profile,
            "verdict": report.verdict.value,
            "probability": report.probability,
            "found": {t: _found(report, t.lower()) for t in triggers},
            "reported": [(t.text, round(t.score or 0.0, 2)) for t in report.triggers[:8]],
            "max_score": evidence.get("max_score"),
            "threshold": evidence.get("threshold"),
            "scan_seconds": report.scan.seconds,
            "plant_seconds": round(plant_s, 1),
            "load_avg": round(load, 1),
        }
        rows = [r for r in rows if not (r["evasion"] == name and r["profile"] == args.profile)] + [row]
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(rows, indent=2, ensure_ascii=False))
        print(json.dumps(row, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
