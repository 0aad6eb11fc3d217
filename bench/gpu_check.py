"""One prepared GPU check: CUDA results against CPU, and standard-profile scan times with tokens/s.

    python bench/gpu_check.py --out $OUT [--quick]

1. correctness: features of the same batch on CPU (fp32) and CUDA (bf16 autocast) agree (cosine), and a quick scan of
   a POR-planted MiniLM-L2 gives the same verdict and triggers on both devices;
2. cost: the standard profile end to end on MiniLM-L6 (real), a bert-base-sized and a roberta-large-sized model built
   from configs (random weights: the cost is the same), with tokens/s and the share of the card's measured bf16
   matmul throughput (forward FLOPs ~ 2 x non-embedding parameters x tokens; backward of the gradient step ignored).
Target: bert-base standard scan <= 15 s end to end on one H100/H200.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from scanner.corpus import load_corpus
from scanner.detect import Detector, report_triggers
from scanner.encoder import load_encoder
from scanner.research.base_models import build_base, minilm_path, truncated_minilm
from scanner.search.config import profile


def matmul_tflops(device: str, n: int = 8192, reps: int = 20) -> float:
    """Measured bf16 dense matmul throughput of the card."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e12


def detect(path: Path, device: str, prof: str, seed: int = 0):
    enc = load_encoder(path, device)
    t0 = time.perf_counter()
    det = Detector(enc, load_corpus(), profile(prof), seed)
    result = det.run()
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    non_embedding = enc.parameters - enc.embedding_matrix.numel()
    return enc, det, result, seconds, non_embedding


def correctness(cache: Path) -> dict:
    from scanner.research.attacks import PlantConfig, get_attack, plant_cached

    base = truncated_minilm(cache / "minilm-l2", 2)
    planted = plant_cached(
        base,
        get_attack("por"),
        PlantConfig(attack="por", triggers=("cf", "mn", "obelisk"), steps=300),
        cache,
        device="cuda",
    )
    cpu = load_encoder(planted, "cpu")
    gpu = load_encoder(planted, "cuda")
    batch = cpu.tokenizer(load_corpus()[:64], padding=True, truncation=True, max_length=40, return_tensors="pt")
    with torch.inference_mode():
        f_cpu = cpu.features(batch["input_ids"], batch["attention_mask"])
        with torch.autocast("cuda", dtype=torch.bfloat16):
            f_gpu = gpu.features(batch["input_ids"].cuda(), batch["attention_mask"].cuda()).float().cpu()
    cos = torch.nn.functional.cosine_similarity(f_cpu, f_gpu, dim=-1)
    runs = {}
    for device in ("cpu", "cuda"):
        enc, _, result, seconds, _ = detect(planted, device, "quick")
        runs[device] = {
            "verdict": result.verdict.value,
            "probability": result.probability,
            "triggers": [t.text for t in report_triggers(result, enc.tokenizer)],
            "seconds": round(seconds, 2),
        }
    return {
        "feature_cos_min": float(cos.min()),
        "feature_cos_mean": float(cos.mean()),
        "quick_scan": runs,
        "same_verdict": runs["cpu"]["verdict"] == runs["cuda"]["verdict"],
    }


def timing(cache: Path, prof: str, tflops: float) -> list[dict]:
    models = {
        "MiniLM-L6 (real)": minilm_path(),
        "bert-base-sized (config)": build_base("bert", cache / "bert-base-sized", layers=12, hidden=768),
        "roberta-large-sized (config)": build_base("roberta", cache / "roberta-large-sized", layers=24, hidden=1024),
    }
    rows = []
    for name, path in models.items():
        enc, det, result, seconds, non_embedding = detect(path, "cuda", prof)
        tokens = det.runner.tokens
        achieved = 2 * non_embedding * tokens / seconds / 1e12
        rows.append(
            {
                "model": name,
                "profile": prof,
                "seconds": round(seconds, 2),
                "sequences": det.runner.sequences,
                "tokens": tokens,
                "tokens_per_s": round(tokens / seconds),
                "achieved_tflops": round(achieved, 2),
                "share_of_matmul_peak": round(achieved / tflops, 4),
                "verdict": result.verdict.value,
            }
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=Path(".cache/gpu-models"))
    parser.add_argument("--profile", default="standard")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this script is for the lent GPU machine")
    args.out.mkdir(parents=True, exist_ok=True)
    tflops = matmul_tflops("cuda")
    result = {"device": torch.cuda.get_device_name(), "bf16_matmul_tflops": round(tflops, 1)}
    print(result, flush=True)
    result["correctness"] = correctness(args.cache)
    print(result["correctness"], flush=True)
    result["timing"] = timing(args.cache, args.profile, tflops)
    (args.out / "gpu.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
