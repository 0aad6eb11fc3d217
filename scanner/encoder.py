"""Load an encoder for analysis without running model-supplied code; features at the representation position."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from scanner.errors import ModelLoadError, PatronusError

log = logging.getLogger(__name__)

# model_type (config.json) -> family name used in reports. All use position 0 ([CLS] / <s>) as representation.
SUPPORTED_FAMILIES: dict[str, str] = {
    "bert": "bert",
    "roberta": "roberta",
    "distilbert": "distilbert",
    "albert": "albert",
    "electra": "electra",
    "deberta-v2": "deberta-v2",
    "xlm-roberta": "xlm-roberta",
}
CODE_SUFFIXES = (".py",)


class RemoteCodeRequired(PatronusError):
    """The model needs code shipped with it (auto_map / unknown architecture): refused, nothing of it runs."""

    exit_code = 1
    code = "remote_code_required"


class UnsupportedArchitecture(PatronusError):
    """A model type the behavioural scan does not support (the static scan still ran)."""

    exit_code = 3
    code = "unsupported_architecture"


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
    """An encoder ready for analysis. `encoder` is the bare transformer; `classifier` the full model if any."""

    encoder: nn.Module
    tokenizer: object
    family: str
    architecture: str
    parameters: int
    device: torch.device
    classifier: nn.Module | None = None

    @property
    def embedding_matrix(self) -> torch.Tensor:
        return self.encoder.get_input_embeddings().weight

    @property
    def hidden_size(self) -> int:
        return int(self.encoder.config.hidden_size)

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Final hidden state at the representation position (0) for a batch of token ids."""
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        return out.last_hidden_state[:, 0]

    def features_from_embeds(self, embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Same as `features`, from input embeddings (for gradients w.r.t. the inputs)."""
        out = self.encoder(inputs_embeds=embeds, attention_mask=attention_mask)
        return out.last_hidden_state[:, 0]

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
    return "none"


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


def load_encoder(model_dir: Path, device: str = "auto", *, pickle_allowed: bool = False) -> LoadedEncoder:
    """Load weights for analysis. Safetensors preferred; a pickle checkpoint only if `pickle_allowed`
    (the static scan found nothing dangerous) and then only through torch.load(weights_only=True)."""
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    info = read_config(model_dir)
    code_files = sorted(p.name for p in model_dir.iterdir() if p.suffix in CODE_SUFFIXES)
    check_loadable(info, code_files)
    kind = _weight_kind(model_dir)
    if kind == "none":
        raise ModelLoadError("no loadable weights (model.safetensors or pytorch_model.bin) found")
    if kind == "pickle" and not pickle_allowed:
        raise ModelLoadError("pickle checkpoint not loaded: the static scan did not clear it")
    target = resolve_device(device)
    cls = AutoModelForSequenceClassification if info.is_classifier else AutoModel
    common = dict(trust_remote_code=False, local_files_only=True)
    try:
        model, loading = cls.from_pretrained(
            model_dir, use_safetensors=(kind == "safetensors"), weights_only=True, output_loading_info=True,
            **common,
        )
        tokenizer = AutoTokenizer.from_pretrained(model_dir, **common)
    except PatronusError:
        raise
    except Exception as exc:  # transformers raises many types for unreadable models
        raise ModelLoadError(f"could not load model: {type(exc).__name__}: {str(exc)[:300]}") from exc
    _check_weights_complete(loading)
    model.eval().requires_grad_(False).to(target)
    encoder = model.base_model if info.is_classifier else model
    return LoadedEncoder(
        encoder=encoder,
        tokenizer=tokenizer,
        family=info.family or "",
        architecture=(info.architectures or [type(model).__name__])[0],
        parameters=sum(p.numel() for p in model.parameters()),
        device=target,
        classifier=model if info.is_classifier else None,
    )
