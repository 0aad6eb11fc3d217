"""GGUF behavioural path: de-quantize a *.gguf through transformers' gguf_file loader (the `gguf` package reads the
tensors; no native loader, no model-supplied code), write the state dict as safetensors with its config and tokenizer
into a cache folder keyed by the file's sha256, and let `load_encoder` load that folder like any other model.

The static side of GGUF (header and metadata bounds, tensor table, chat template) is the static scanner's job
(scanner/static/); this module only reads what it needs to refuse early: the architecture and the parameter count.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from scanner.errors import ModelLoadError

log = logging.getLogger(__name__)

GGUF_RECORD = "patronus_gguf.json"


def default_cache() -> Path:
    """~/.cache/patronus/gguf (PATRONUS_CACHE_DIR overrides the ~/.cache/patronus root)."""
    root = os.environ.get("PATRONUS_CACHE_DIR") or (Path.home() / ".cache" / "patronus")
    return Path(root) / "gguf"


def gguf_files(model_dir: Path) -> list[Path]:
    return sorted(p for p in Path(model_dir).iterdir() if p.suffix == ".gguf" and p.is_file())


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def supported_architectures() -> list[str]:
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    return [a for a in GGUF_SUPPORTED_ARCHITECTURES if a not in ("general", "tokenizer")]


def describe(path: Path) -> tuple[str, int]:
    """(general.architecture, parameter count) from the GGUF header and tensor table (memory-mapped, not loaded)."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
        field = reader.fields["general.architecture"]
        arch = bytes(field.parts[field.data[0]]).decode("utf-8", "replace")
        params = int(sum(int(t.n_elements) for t in reader.tensors))
    except Exception as exc:  # a malformed file: the static scan reports it, behaviour is not run
        raise ModelLoadError(f"{path.name}: unreadable GGUF header ({type(exc).__name__}: {str(exc)[:200]})") from exc
    return arch, params


def _config_parameters(path: Path) -> int:
    """Parameters of the model transformers would build from the GGUF metadata (config defaults filled in)."""
    from transformers import AutoConfig
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    from scanner.encoder import ConfigInfo, config_parameters

    try:
        raw = dict(load_gguf_checkpoint(str(path), return_tensors=False)["config"])
        model_type = str(raw.pop("model_type"))
        raw.pop("_model_name_or_path", None)
        config = AutoConfig.for_model(model_type, **raw).to_dict()
    except Exception as exc:  # malformed metadata
        raise ModelLoadError(f"{path.name}: GGUF metadata unusable ({type(exc).__name__}: {str(exc)[:200]})") from exc
    return config_parameters(ConfigInfo(model_type=model_type, architectures=[], raw=config))


def dequantize(
    model_dir: Path,
    cache_dir: Path | None = None,
    device: torch.device | None = None,
    layers: int | None = None,
    file_name: str | None = None,
) -> Path:
    """De-quantize the folder's GGUF (the first by name, or `file_name`) into a safetensors folder; cached.
    `layers` keeps only the first n transformer layers (small real test models)."""
    from scanner.encoder import UnsupportedArchitecture, check_fits

    files = [p for p in gguf_files(model_dir) if file_name is None or p.name == file_name]
    if not files:
        raise ModelLoadError(f"no *.gguf file in {model_dir}")
    path = files[0]
    if len(files) > 1:
        log.info("%d GGUF files in %s; de-quantizing %s", len(files), model_dir, path.name)
    arch, params = describe(path)
    if arch not in supported_architectures():
        raise UnsupportedArchitecture(
            f"GGUF architecture {arch!r} cannot be de-quantized by transformers (supported: "
            f"{', '.join(supported_architectures())}); static scan only"
        )
    expected = _config_parameters(path)
    if expected > 2 * params + 1_000_000:
        raise ModelLoadError(
            f"{path.name}: its metadata describes a model of about {expected / 1e6:.0f}M parameters but its tensor "
            f"table holds {params / 1e6:.1f}M; not de-quantized (transformers would build the rest at random)"
        )
    digest = file_sha256(path)
    out = Path(cache_dir or default_cache()) / (digest[:20] + (f"-L{layers}" if layers else ""))
    if (out / GGUF_RECORD).is_file():
        return out
    # de-quantization runs on the CPU in fp32 whatever the scan device (the model and its saved copy)
    check_fits(2 * max(params, expected), torch.float32, torch.device("cpu"))
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _convert(path, tmp, layers)
        (tmp / GGUF_RECORD).write_text(
            json.dumps(
                {"source": path.name, "sha256": digest, "architecture": arch, "parameters": params, "layers": layers}
            )
        )
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _convert(path: Path, out: Path, layers: int | None) -> None:
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    common: dict[str, Any] = {"gguf_file": path.name, "trust_remote_code": False, "local_files_only": True}
    try:
        model = AutoModelForCausalLM.from_pretrained(path.parent, dtype=torch.float32, **common)
        tokenizer = AutoTokenizer.from_pretrained(path.parent, **common)
    except Exception as exc:  # transformers raises many types for files it cannot de-quantize
        raise ModelLoadError(f"could not de-quantize {path.name}: {type(exc).__name__}: {str(exc)[:300]}") from exc
    config = model.config
    state = model.state_dict()
    if layers is not None:
        total = int(config.num_hidden_layers)
        layers = min(layers, total)
        state = {k: v for k, v in state.items() if not _layer_beyond(k, layers)}
        config.num_hidden_layers = layers
        if getattr(config, "layer_types", None):
            config.layer_types = list(config.layer_types)[:layers]
    if getattr(config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)
    save_file(
        {k: v.detach().contiguous().clone() for k, v in state.items()},
        str(out / "model.safetensors"),
        metadata={"format": "pt"},
    )
    config.architectures = [type(model).__name__]
    if hasattr(config, "quantization_config"):  # the weights written are plain fp32, not a gguf-quantized model
        del config.quantization_config
    config.save_pretrained(out)
    saved = json.loads((out / "config.json").read_text())
    if saved.pop("quantization_config", None) is not None:
        (out / "config.json").write_text(json.dumps(saved, indent=2))
    tokenizer.save_pretrained(out)
    del model


def _layer_beyond(key: str, layers: int) -> bool:
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        if part in ("layers", "h", "layer") and parts[i + 1].isdigit():
            return int(parts[i + 1]) >= layers
    return False
