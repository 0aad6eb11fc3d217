"""Load a model for analysis without running model-supplied code; features at the representation(s) its users consume.

Representations (first = primary): position 0 ("cls") for encoders and their classifiers; the pooling a
sentence-transformers repo declares (modules.json -> 1_Pooling/config.json, read as plain JSON: "mean", "max", "cls",
"last_token", "weighted_mean", "mean_sqrt_len"; L2-normalized when a Normalize module is declared) followed by "cls"
(the same encoder is also fine-tuned through its first token); the last non-padding token ("last_token") for decoders
and decoder classifiers (left or right padding).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from scanner.errors import (  # noqa: F401  (RemoteCodeRequired, UnsupportedArchitecture re-exported)
    ModelLoadError,
    ModelTooLargeError,
    PatronusError,
    RemoteCodeRequired,
    UnsupportedArchitecture,
)

log = logging.getLogger(__name__)

# model_type (config.json) -> family name used in reports. Encoders: position 0 ([CLS] / <s>), or the declared pooling.
ENCODER_FAMILIES: dict[str, str] = {
    "bert": "bert",
    "roberta": "roberta",
    "distilbert": "distilbert",
    "albert": "albert",
    "electra": "electra",
    "deberta-v2": "deberta-v2",
    "xlm-roberta": "xlm-roberta",
    "mpnet": "mpnet",
    "modernbert": "modernbert",
}
# Decoders (all native in transformers): the last non-padding token.
DECODER_FAMILIES: dict[str, str] = {
    "gpt2": "gpt2",
    "gpt_neo": "gpt-neo",
    "gpt_neox": "gpt-neox",
    "llama": "llama",
    "mistral": "mistral",
    "qwen2": "qwen2",
    "qwen3": "qwen3",
    "gemma": "gemma",
    "gemma2": "gemma2",
    "gemma3_text": "gemma3",
    "phi3": "phi3",
}
SUPPORTED_FAMILIES: dict[str, str] = {**ENCODER_FAMILIES, **DECODER_FAMILIES}
REPRESENTATIONS = ("cls", "mean", "max", "last_token", "weighted_mean", "mean_sqrt_len")
# What a feature call asks for: the primary representation (None), one by name, or several concatenated (a tuple).
Representation = str | tuple[str, ...] | None
# sentence-transformers 1_Pooling/config.json flags -> representation names
_POOLING_FLAGS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
    "pooling_mode_weightedmean_tokens": "weighted_mean",
    "pooling_mode_lasttoken": "last_token",
}
_POOLING_NAMES = {
    "cls": "cls",
    "mean": "mean",
    "max": "max",
    "lasttoken": "last_token",
    "last_token": "last_token",
    "weightedmean": "weighted_mean",
    "weighted_mean": "weighted_mean",
    "mean_sqrt_len_tokens": "mean_sqrt_len",
    "mean_sqrt_len": "mean_sqrt_len",
}
MAX_JSON_BYTES = 1_000_000
CODE_SUFFIXES = (".py",)


@dataclass
class ConfigInfo:
    """What config.json says, read as plain JSON (never through remote code)."""

    model_type: str | None
    architectures: list[str]
    auto_map: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict)

    @property
    def family(self) -> str | None:
        return SUPPORTED_FAMILIES.get(self.model_type or "")

    @property
    def is_classifier(self) -> bool:
        return any(a.endswith("ForSequenceClassification") for a in self.architectures)

    @property
    def is_decoder(self) -> bool:
        return (self.model_type or "") in DECODER_FAMILIES


def read_config(model_dir: Path) -> ConfigInfo:
    """Parse config.json; a missing or malformed one is a load error."""
    path = model_dir / "config.json"
    if not path.is_file():
        raise ModelLoadError(f"no config.json in {model_dir}")
    if path.stat().st_size > 1_000_000:
        raise ModelLoadError("config.json is larger than 1 MB; refusing to parse it")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"config.json is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ModelLoadError("config.json is not a JSON object")
    archs = raw.get("architectures") or []
    return ConfigInfo(
        model_type=raw.get("model_type"),
        architectures=[str(a) for a in archs] if isinstance(archs, list) else [],
        auto_map=raw.get("auto_map") or {},
        raw=raw,
    )


def _read_json(path: Path) -> object | None:
    """A small JSON file as plain data (None when absent, too large or malformed: pooling is optional metadata)."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_JSON_BYTES:
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


@dataclass
class Pooling:
    """What a sentence-transformers repo declares: the pooling representations and whether outputs are normalized."""

    representations: list[str]
    normalize: bool = False


def read_pooling(model_dir: Path) -> Pooling | None:
    """modules.json + the Pooling module's config.json, read as plain JSON (never imports sentence-transformers).
    None when the folder is not a sentence-transformers model or declares nothing usable."""
    model_dir = Path(model_dir)
    modules = _read_json(model_dir / "modules.json")
    if not isinstance(modules, list):
        return None
    pooling_dir, normalize = None, False
    for mod in modules:
        if not isinstance(mod, dict):
            continue
        kind = str(mod.get("type", ""))
        if kind.endswith("Pooling") and pooling_dir is None:
            rel = str(mod.get("path", ""))
            candidate = (model_dir / rel).resolve()
            if rel and not Path(rel).is_absolute() and candidate.is_relative_to(model_dir.resolve()):
                pooling_dir = candidate
        elif kind.endswith("Normalize"):
            normalize = True
    if pooling_dir is None:
        return None
    cfg = _read_json(pooling_dir / "config.json")
    if not isinstance(cfg, dict):
        return None
    reps = [name for flag, name in _POOLING_FLAGS.items() if cfg.get(flag) is True]
    mode = cfg.get("pooling_mode")
    if isinstance(mode, str) and _POOLING_NAMES.get(mode.lower()) and _POOLING_NAMES[mode.lower()] not in reps:
        reps.insert(0, _POOLING_NAMES[mode.lower()])
    return Pooling(representations=reps, normalize=normalize) if reps else None


def representations_for(info: ConfigInfo, model_dir: Path) -> tuple[list[str], bool]:
    """The representations a scan tests (first = primary) and whether the declared pooling is L2-normalized."""
    if info.is_decoder:
        return ["last_token"], False
    if info.is_classifier:
        if info.model_type == "modernbert" and info.raw.get("classifier_pooling") == "mean":
            return ["mean"], False
        return ["cls"], False
    pooling = read_pooling(model_dir)
    if pooling is None:
        return ["cls"], False
    reps = list(dict.fromkeys(pooling.representations))
    if "cls" not in reps:
        reps.append("cls")
    return reps, pooling.normalize


def pool(hidden: torch.Tensor, mask: torch.Tensor, representation: str) -> torch.Tensor:
    """[N, L, d] final hidden states -> [N, d] at `representation`; padding excluded (left or right padding)."""
    m = mask.to(hidden.dtype).unsqueeze(-1)
    if representation == "cls":
        return hidden[:, 0]
    if representation == "last_token":
        positions = torch.arange(1, mask.shape[1] + 1, device=mask.device)
        last = (mask.long() * positions).argmax(1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    if representation in ("mean", "mean_sqrt_len"):
        total = (hidden * m).sum(1)
        count = m.sum(1).clamp_min(1.0)
        return total / (count if representation == "mean" else count.sqrt())
    if representation == "max":
        return hidden.masked_fill(m == 0, torch.finfo(hidden.dtype).min).max(1).values
    if representation == "weighted_mean":
        w = m * torch.arange(1, mask.shape[1] + 1, device=hidden.device, dtype=hidden.dtype).view(1, -1, 1)
        return (hidden * w).sum(1) / w.sum(1).clamp_min(1.0)
    raise ValueError(f"unknown representation {representation!r} (known: {', '.join(REPRESENTATIONS)})")


def check_loadable(info: ConfigInfo, code_files: list[str]) -> None:
    """Refuse models that need remote code or that no supported family covers."""
    if info.auto_map or (code_files and info.family is None):
        shipped = ", ".join(code_files) or "none shipped"
        raise RemoteCodeRequired(
            f"model requires custom code (auto_map={sorted(info.auto_map) or '-'}; code files: {shipped}); "
            "Patronus never runs model-supplied code, behavioural scan not run"
        )
    if info.family is None:
        raise UnsupportedArchitecture(
            f"model_type {info.model_type!r} is not supported for the behavioural scan "
            f"(supported: {', '.join(SUPPORTED_FAMILIES)})"
        )


@dataclass
class LoadedEncoder:
    """A model ready for analysis. `encoder` is the bare transformer (encoder or decoder stack); `classifier` the full
    model if any. `representations` are the outputs its users consume, first = primary (see the module doc)."""

    encoder: nn.Module
    tokenizer: object
    family: str
    architecture: str
    parameters: int
    device: torch.device
    classifier: nn.Module | None = None
    representations: list[str] = field(default_factory=lambda: ["cls"])
    normalize: bool = False  # the declared pooling is L2-normalized (sentence-transformers Normalize module)
    is_decoder: bool = False

    @property
    def representation(self) -> str:
        """The primary representation."""
        return self.representations[0]

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor, representation: Representation) -> torch.Tensor:
        """One representation, or several concatenated (a tuple: one forward serves them all)."""
        if isinstance(representation, tuple):
            return torch.cat([self._pool(hidden, mask, rep) for rep in representation], dim=-1)
        rep = representation or self.representation
        if rep not in self.representations and rep not in REPRESENTATIONS:
            raise ValueError(f"unknown representation {rep!r}")
        feats = pool(hidden, mask, rep)
        declared = not self.is_decoder and rep == self.representation and rep != "cls"
        return F.normalize(feats, dim=-1) if self.normalize and declared else feats

    @property
    def embedding_matrix(self) -> torch.Tensor:
        return self.encoder.get_input_embeddings().weight  # type: ignore[operator]

    @property
    def hidden_size(self) -> int:
        return int(self.encoder.config.hidden_size)  # type: ignore[union-attr, arg-type]

    def features(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, representation: Representation = None
    ) -> torch.Tensor:
        """[N, d] final hidden states at `representation` (default: the primary one) for a batch of token ids;
        [N, R*d] for a tuple of R representations."""
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        return self._pool(out.last_hidden_state, attention_mask, representation)

    def features_from_embeds(
        self, embeds: torch.Tensor, attention_mask: torch.Tensor, representation: Representation = None
    ) -> torch.Tensor:
        """Same as `features`, from input embeddings (for gradients w.r.t. the inputs)."""
        out = self.encoder(inputs_embeds=embeds, attention_mask=attention_mask)
        return self._pool(out.last_hidden_state, attention_mask, representation)

    def label_name(self, label: int) -> str:
        """A classifier's name for a class id (its config's id2label), else the id as text."""
        names = getattr(getattr(self.classifier, "config", None), "id2label", None) or {}
        return str(names.get(label, names.get(str(label), label)))

    def predict(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Predicted labels of the classifier (only for fine-tuned classifiers)."""
        if self.classifier is None:
            raise ValueError("not a classifier")
        return self.classifier(input_ids=input_ids, attention_mask=attention_mask).logits.argmax(-1)


def resolve_device(device: str) -> torch.device:
    """auto -> cuda when present, else cpu."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise PatronusError("--device cuda requested but no CUDA device is available")
    return torch.device(device)


def _weight_kind(model_dir: Path) -> str:
    names = [p.name for p in model_dir.iterdir()]
    if any(n.endswith(".safetensors") for n in names):
        return "safetensors"
    if any(n.endswith(".bin") for n in names):
        return "pickle"
    if any(n.endswith(".gguf") for n in names):
        return "gguf"
    return "none"


_ST_DTYPE_BYTES = {
    "F64": 8,
    "I64": 8,
    "U64": 8,
    "F32": 4,
    "I32": 4,
    "U32": 4,
    "F16": 2,
    "BF16": 2,
    "I16": 2,
    "U16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
}
MAX_ST_HEADER = 100_000_000


def safetensors_parameters(model_dir: Path) -> tuple[int, int] | None:
    """(parameters, bytes) summed over the safetensors headers (nothing but the headers is read); None if no file."""
    import struct

    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        return None
    params = size = 0
    for path in files:
        with path.open("rb") as fh:
            raw = fh.read(8)
            if len(raw) != 8:
                raise ModelLoadError(f"{path.name}: truncated safetensors header")
            (n,) = struct.unpack("<Q", raw)
            if n > MAX_ST_HEADER:
                raise ModelLoadError(f"{path.name}: safetensors header of {n} bytes exceeds the bound")
            try:
                header = json.loads(fh.read(n))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ModelLoadError(f"{path.name}: safetensors header is not JSON: {exc}") from exc
        for name, entry in header.items() if isinstance(header, dict) else []:
            if name == "__metadata__" or not isinstance(entry, dict):
                continue
            numel = 1
            for dim in entry.get("shape") or []:
                numel *= int(dim)
            params += numel
            size += numel * _ST_DTYPE_BYTES.get(str(entry.get("dtype")), 4)
    return params, size


def config_parameters(info: ConfigInfo) -> int:
    """A rough parameter count from config.json alone (when no safetensors header says better)."""
    raw = info.raw
    h = int(raw.get("hidden_size") or raw.get("n_embd") or raw.get("d_model") or raw.get("dim") or 768)
    layers = int(raw.get("num_hidden_layers") or raw.get("n_layer") or raw.get("n_layers") or 12)
    vocab = int(raw.get("vocab_size") or 32000)
    inter = int(raw.get("intermediate_size") or raw.get("n_inner") or raw.get("hidden_dim") or 4 * h)
    return vocab * h + layers * (4 * h * h + 3 * h * inter)


def available_memory(device: torch.device) -> int:
    """Free bytes on the device (PATRONUS_MEMORY_LIMIT, in bytes, overrides: for tests and shared machines)."""
    import os

    if os.environ.get("PATRONUS_MEMORY_LIMIT"):
        return int(os.environ["PATRONUS_MEMORY_LIMIT"])
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def load_dtype(info: ConfigInfo, device: torch.device) -> torch.dtype:
    """bf16 for decoders on CUDA (their size), fp32 otherwise (encoders run under bf16 autocast on CUDA)."""
    return torch.bfloat16 if device.type == "cuda" and info.is_decoder else torch.float32


def check_fits(params: int, dtype: torch.dtype, device: torch.device, available: int | None = None) -> int:
    """Refuse (before loading) a model whose weights, at `dtype`, would not fit the device; returns the bytes needed.
    Headroom: 25% for activations of the search batches plus 256 MiB."""
    need = int(params * torch.empty((), dtype=dtype).element_size() * 1.25) + (256 << 20)
    free = available_memory(device) if available is None else available
    if need > free:
        raise ModelTooLargeError(
            f"model too large for {device.type}: {params / 1e9:.2f}B parameters as {str(dtype).removeprefix('torch.')} "
            f"need about {need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB available; not loaded (scan it on a device "
            "with more memory, e.g. --device cuda)"
        )
    return need


def prepare_tokenizer(tokenizer: object, decoder: bool) -> object:
    """Decoders: a pad token (eos, else unk) and right padding, so the last real token is at mask.sum() - 1."""
    if decoder:
        if getattr(tokenizer, "pad_token", None) is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token  # type: ignore[attr-defined]
        tokenizer.padding_side = "right"  # type: ignore[attr-defined]
    return tokenizer


OPTIONAL_WEIGHTS = ("pooler.", "classifier.", "position_ids", "lm_head", "cls.predictions")


def _check_weights_complete(loading: dict) -> None:
    """Weights missing from the checkpoint would be randomly initialised: that is not the model under audit."""
    missing = sorted(k for k in loading.get("missing_keys", []) if not any(o in k for o in OPTIONAL_WEIGHTS))
    mismatched = sorted(map(str, loading.get("mismatched_keys", [])))
    if missing or mismatched:
        names = ", ".join([*missing[:5], *mismatched[:5]])
        raise ModelLoadError(
            f"checkpoint does not match its config: {len(missing)} missing and {len(mismatched)} mismatched "
            f"weights ({names}); refusing to scan a partly random model"
        )


def load_encoder(
    model_dir: Path, device: str = "auto", *, pickle_allowed: bool = False, cache_dir: Path | None = None
) -> LoadedEncoder:
    """Load weights for analysis. Safetensors preferred; a pickle checkpoint only if `pickle_allowed`
    (the static scan found nothing dangerous) and then only through torch.load(weights_only=True); a folder holding
    only *.gguf is de-quantized through transformers' gguf path into safetensors under `cache_dir` and loaded from
    there. A model too large for the device is refused before its weights are read."""
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    model_dir = Path(model_dir)
    target = resolve_device(device)
    kind = _weight_kind(model_dir)
    source_format = kind
    if kind == "gguf":  # no safetensors or pickle weights beside it: the GGUF is the model
        from scanner.gguf_load import dequantize

        model_dir = dequantize(model_dir, cache_dir=cache_dir, device=target)
        kind = _weight_kind(model_dir)
    info = read_config(model_dir)
    code_files = sorted(p.name for p in model_dir.iterdir() if p.suffix in CODE_SUFFIXES)
    check_loadable(info, code_files)
    if kind in ("none", "gguf"):
        raise ModelLoadError("no loadable weights (model.safetensors, pytorch_model.bin or *.gguf) found")
    if kind == "pickle" and not pickle_allowed:
        raise ModelLoadError("pickle checkpoint not loaded: the static scan did not clear it")
    dtype = load_dtype(info, target)
    counted = safetensors_parameters(model_dir) if kind == "safetensors" else None
    check_fits(counted[0] if counted else config_parameters(info), dtype, target)
    cls = AutoModelForSequenceClassification if info.is_classifier else AutoModel
    common: dict[str, Any] = {"trust_remote_code": False, "local_files_only": True}
    try:
        model, loading = cls.from_pretrained(
            model_dir,
            use_safetensors=(kind == "safetensors"),
            weights_only=True,
            output_loading_info=True,
            dtype=dtype,
            **common,
        )
        tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(model_dir, **common), info.is_decoder)
    except PatronusError:
        raise
    except Exception as exc:  # transformers raises many types for unreadable models
        raise ModelLoadError(f"could not load model: {type(exc).__name__}: {str(exc)[:300]}") from exc
    _check_weights_complete(loading)
    model.eval().requires_grad_(False).to(target)
    if info.is_classifier and info.is_decoder and model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id  # type: ignore[attr-defined]
    encoder = model.base_model if info.is_classifier else model
    representations, normalize = representations_for(info, model_dir)
    log.info("loaded %s (%s weights); representations %s", info.family, source_format, representations)
    return LoadedEncoder(
        encoder=encoder,
        tokenizer=tokenizer,
        family=info.family or "",
        architecture=(info.architectures or [type(model).__name__])[0],
        parameters=sum(p.numel() for p in model.parameters()),
        device=target,
        classifier=model if info.is_classifier else None,
        representations=representations,
        normalize=normalize,
        is_decoder=info.is_decoder,
    )
