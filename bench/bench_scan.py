"""Scan cost on this machine: seconds per scan and sequences/s for each profile on MiniLM-L2 and MiniLM-L6, and the
cost in forward-equivalents (issue 16): scan seconds x the model's raw forward rate (sequences/s of plain batched
forwards at the profile's sentence length, measured in the same run).

    python bench/bench_scan.py [--profiles quick standard] [--models l2 l6] [--device cpu]

Writes bench/results/scan_<device>.json and prints a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from scanner.config import ScanConfig
from scanner.pipeline import scan
from scanner.research.base_models import minilm_path, truncated_minilm
from scanner.search.config import profile

CACHE = Path(os.environ.get("PATRONUS_TEST_CACHE") or Path.home() / ".cache" / "patronus" / "test-models")


def models(names: list[str]) -> dict[str, Path]:
    available = {"l2": lambda: truncated_minilm(CACHE / "minilm-L2", 2), "l6": minilm_path}
    return {f"MiniLM-{n.upper()}": available[n]() for n in names}


def raw_forward_rate(path: Path, device: str, max_tokens: int, batch: int, seconds: float = 10.0) -> float:
    """Sequences/s of plain no-grad forwards of the model on corpus sentences padded to `max_tokens`."""
    from transformers import AutoModel, AutoTokenizer

    from scanner.corpus import load_corpus

    dev = torch.device("cuda" if device == "cuda" else "cpu")
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True).to(dev).eval()
    texts = (load_corpus() * 4)[: batch * 8]
    enc = tok(texts, padding="max_length", truncation=True, max_length=max_tokens, return_tensors="pt").to(dev)
    done, t0 = 0, time.perf_counter()
    with torch.no_grad():
        while time.perf_counter() - t0 < seconds:
            for i in range(0, len(texts), batch):
                model(input_ids=enc["input_ids"][i : i + batch], attention_mask=enc["attention_mask"][i : i + batch])
                done += min(batch, len(texts) - i)
    return done / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profiles", nargs="+", default=["quick", "standard"])
    parser.add_argument("--models", nargs="+", default=["l2", "l6"])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    rows = []
    for name, path in models(args.models).items():
        for prof in args.profiles:
            t0 = time.perf_counter()
            report = scan(str(path), ScanConfig(profile=prof, device=args.device, seed=0))
            seconds = time.perf_counter() - t0
            seqs = report.scan.sequences_evaluated
            evidence = profile(prof).evidence
            rate = raw_forward_rate(path, args.device, evidence.max_tokens, evidence.batch_size)
            rows.append(
                {
                    "model": name,
                    "profile": prof,
                    "seconds": round(seconds, 1),
                    "sequences": seqs,
                    "sequences_per_s": round(seqs / seconds, 1),
                    "raw_forward_per_s": round(rate, 1),
                    "forward_equivalents": round(seconds * rate),
                    "verdict": report.verdict.value,
                    "probability": report.probability,
                    "load_average_1min_after": round(os.getloadavg()[0], 2),
                }
            )  # other jobs on the CPU
            print(rows[-1], flush=True)
    machine = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": args.device,
    }
    out = Path(__file__).parent / "results" / f"scan_{args.device}_{'_'.join(args.models)}.json"
    out.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    print("| model | profile | seconds | sequences | sequences/s | raw forward/s | forward-equivalents | verdict |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['profile']} | {r['seconds']} | {r['sequences']} | {r['sequences_per_s']} | "
            f"{r['raw_forward_per_s']} | {r['forward_equivalents']} | {r['verdict']} |"
        )


if __name__ == "__main__":
    main()
