"""Helpers of the gate tests: the sample codebase's location, the models the hub stand-in publishes for it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save

SAMPLE = Path(__file__).resolve().parent / "sample"
SAMPLE_MODELS = ("acme/encoder", "acme/sentence", "acme/classifier", "acme/listed")


def model_files(version: float = 0.0) -> dict[str, bytes]:
    """A small BERT-shaped repo: config, tokenizer files and one safetensors weight file (static checks pass)."""
    return {
        "config.json": json.dumps({"model_type": "bert", "architectures": ["BertModel"], "version": version}).encode(),
        "tokenizer_config.json": b"{}",
        "vocab.txt": b"[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n",
        "model.safetensors": save({"embeddings.weight": np.full((4, 2), version, dtype=np.float32)}),
    }


def write_policy(root: Path, extra: str = "") -> Path:
    path = root / "patronus.toml"
    path.write_text('static_only = true\nprofile = "quick"\nmodels_file = "models.txt"\n' + extra)
    return path
