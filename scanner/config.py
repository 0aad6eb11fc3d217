"""ScanConfig: everything one scan needs besides the target."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from scanner import ENGINE_VERSION

PROFILES = ("quick", "standard", "thorough")
DEFAULT_MAX_SIZE = 5 * 1024**3  # bytes a hub download may take
BASE_FROM_CARD = "auto"  # `--base auto` (the default): the first `base_model` the model card declares
NO_BASE = "none"  # `--base none`: no lineage evidence


@dataclass
class ScanConfig:
    """Knobs of one scan. `profile` selects the search budget (scanner.search.config)."""

    profile: str = "standard"
    device: str = "auto"  # auto | cpu | cuda
    seed: int = 0
    corpus: Path | None = None
    token: str | None = None
    max_size: int = DEFAULT_MAX_SIZE
    cache_dir: Path | None = None
    behavioural: bool = True  # False: static checks only
    hub_endpoint: str | None = None  # the hub to fetch from (default: $HF_ENDPOINT, else huggingface.co)

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}; choose one of {', '.join(PROFILES)}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"unknown device {self.device!r}; choose auto, cpu or cuda")

    def identity(self) -> dict:
        """The settings that change a scan's result (not where files are cached, not the token)."""
        data = asdict(self)
        for volatile in ("token", "cache_dir", "device", "max_size", "hub_endpoint"):
            data.pop(volatile)
        data["corpus"] = str(self.corpus) if self.corpus else None
        data["engine_version"] = ENGINE_VERSION
        return data

    def config_hash(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
