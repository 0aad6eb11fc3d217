"""The base model a scanned model was fine-tuned from: named by the user (`--base`) or by the model card's
`base_model`, fetched and statically scanned like any target, and loaded for lineage evidence (docs/METHOD.md,
"Lineage"): a transferable backdoor already fires in the base, a task feature learnt in fine-tuning does not."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scanner.config import BASE_FROM_CARD, NO_BASE, ScanConfig
from scanner.encoder import LoadedEncoder, load_encoder
from scanner.errors import PatronusError
from scanner.fetch import LocalTargets, ModelRef, fetch_for
from scanner.report import FileStatus
from scanner.static import scan_snapshot, weights_status

__all__ = [  # the card constants live in scanner.config (the CLI reads them without importing torch)
    "BASE_FROM_CARD",
    "NO_BASE",
    "TOKENIZER_DIFFERS",
    "BaseModel",
    "base_models_from_card",
    "card_of_local",
    "load_base",
    "resolve_base_name",
    "vocabulary_differs",
]


def base_models_from_card(card_data: Any) -> list[str]:
    """The `base_model` entries of a model card's metadata (a string or a list), deduplicated, in order."""
    if card_data is None:
        return []
    if hasattr(card_data, "to_dict"):
        card_data = card_data.to_dict()
    value = card_data.get("base_model") if isinstance(card_data, dict) else getattr(card_data, "base_model", None)
    names = [value] if isinstance(value, str) else list(value or [])
    out: list[str] = []
    for name in names:
        if isinstance(name, str) and name.strip() and name.strip() not in out:
            out.append(name.strip())
    return out


def card_of_local(path: str | Path) -> dict[str, Any]:
    """The card metadata of a local model's README.md (bounded like a hub card; {} when absent or unreadable)."""
    from scanner.fetch import CARD_FILE, card_from_readme

    return card_from_readme(Path(path) / CARD_FILE)


@dataclass
class BaseModel:
    """The loaded base (None when it could not be used) and what the report says about it."""

    name: str
    source: str  # "cli" | "card"
    encoder: LoadedEncoder | None
    note: str


def resolve_base_name(base: str | Path | None, card: dict[str, Any]) -> tuple[str, str] | None:
    """(name, source) of the base to load: `base` itself, or with `auto` the card's first `base_model` (`card`:
    the snapshot's card metadata, the hub's cardData or the size-bounded README.md front matter)."""
    if base is None:
        return None
    if str(base) == BASE_FROM_CARD:
        names = base_models_from_card(card)
        return (names[0], "card") if names else None
    return str(base), "cli"


TOKENIZER_DIFFERS = "its tokenizer differs from the model's"


def vocabulary_differs(base_dir: Path, tokenizer: Any) -> bool:
    """Lineage needs the base to tokenize alike (the same ids mean the same pieces): checked on the base's tokenizer
    alone, before any of its weights are read. False when the base has no tokenizer files to compare (a GGUF-only
    base); the detector compares the loaded tokenizers again."""
    from transformers import AutoTokenizer

    try:
        theirs = AutoTokenizer.from_pretrained(base_dir, trust_remote_code=False, local_files_only=True)
    except Exception:  # transformers raises many types for a folder without a readable tokenizer
        return False
    return bool(theirs.get_vocab() != tokenizer.get_vocab())


def load_base(name: str, source: str, config: ScanConfig, tokenizer: Any = None) -> BaseModel:
    """Fetch, statically scan and load the base like a target: dangerous weights are never loaded, a pickle only
    when the static scan cleared it, and (given the scanned model's `tokenizer`) nothing is loaded when the base
    tokenizes differently. Any failure leaves the scan without lineage evidence, said in `note`."""
    try:
        ref = ModelRef.parse(name, local=LocalTargets.ANY if source == "cli" else LocalTargets.PATHS_ONLY)
        if ref.path is not None and source != "cli":  # a card names hub repos; never a path on this machine
            return BaseModel(name, source, None, f"base {name!r} from the card is not a hub repo id; not used")
        snapshot = fetch_for(ref, config)
        serialization, _skipped = scan_snapshot(snapshot.local_dir, snapshot.downloaded, repo_files=snapshot.files)
        worst = weights_status(serialization)
        if worst is FileStatus.DANGEROUS:
            return BaseModel(name, source, None, f"base {name} not loaded: its weights are dangerous")
        if tokenizer is not None and vocabulary_differs(snapshot.local_dir, tokenizer):
            return BaseModel(name, source, None, f"base {name} not used: {TOKENIZER_DIFFERS}")
        encoder = load_encoder(
            snapshot.local_dir, config.device, pickle_allowed=worst is not FileStatus.SUSPICIOUS, cache_dir=None
        )
    except PatronusError as exc:
        return BaseModel(name, source, None, f"base {name} not used: {exc}")
    return BaseModel(name, source, encoder, f"base {name} ({source}) loaded for lineage evidence")
