"""Lineage inputs (issue 11): which base a scan uses (`--base REF`, or `auto`: the card's base_model), and that a
base named by an untrusted card is only ever a hub repo, never a path on the scanning machine."""

from __future__ import annotations

from pathlib import Path

from scanner.config import ScanConfig
from scanner.fetch import ModelRef, fetch
from scanner.lineage import (
    BASE_FROM_CARD,
    TOKENIZER_DIFFERS,
    base_models_from_card,
    card_of_local,
    load_base,
    resolve_base_name,
)


def _card(folder: Path, front_matter: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text(f"---\n{front_matter}\n---\n# model\n")
    return folder


def test_auto_reads_the_first_base_model_of_the_card(tmp_path: Path) -> None:
    folder = _card(tmp_path / "m", "base_model:\n- org/base-a\n- org/base-b")
    card = fetch(ModelRef.parse(str(folder))).card
    assert base_models_from_card(card) == ["org/base-a", "org/base-b"]
    assert resolve_base_name(BASE_FROM_CARD, card) == ("org/base-a", "card")


def test_auto_without_a_card_uses_no_base(tmp_path: Path) -> None:
    assert resolve_base_name(BASE_FROM_CARD, {}) is None
    assert resolve_base_name(BASE_FROM_CARD, {"base_model": ["", 3]}) is None
    assert resolve_base_name(None, {"base_model": "org/base"}) is None
    assert resolve_base_name("org/base", {}) == ("org/base", "cli")


def test_a_card_naming_a_local_path_is_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret-model"
    secret.mkdir()
    (secret / "config.json").write_text("{}")
    loaded = load_base(str(secret), "card", ScanConfig(device="cpu"))
    assert loaded.encoder is None and "not a hub repo id" in loaded.note


def test_an_unusable_base_leaves_a_note_not_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    loaded = load_base(str(empty), "cli", ScanConfig(device="cpu"))
    assert loaded.encoder is None and loaded.note.startswith(f"base {empty} not used:"), loaded.note


def test_a_local_card_is_read_within_the_card_bound(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("---\nbase_model: org/base\nlicense: mit\n---\n# a model\n")
    assert card_of_local(tmp_path) == {"base_model": "org/base", "license": "mit"}
    (tmp_path / "README.md").write_text("---\nbase_model: org/base\n---\n" + "x" * (1024**2 + 1))
    assert card_of_local(tmp_path) == {}  # over 1 MiB: not parsed, like a hub card
    assert card_of_local(tmp_path / "missing") == {}


def test_a_base_that_tokenizes_differently_is_refused_before_its_weights_load(tmp_path: Path, family_base) -> None:
    from transformers import AutoTokenizer

    from scanner.research.base_models import minilm_path

    wordpiece = AutoTokenizer.from_pretrained(minilm_path(), local_files_only=True)
    other = family_base("roberta")  # byte-level BPE: other ids for other pieces
    (tmp_path / "roberta").mkdir()
    for f in other.iterdir():  # the tokenizer files only: loading weights would fail, so a refusal proves none were
        if "token" in f.name or f.name in ("config.json", "vocab.json", "merges.txt"):
            (tmp_path / "roberta" / f.name).write_bytes(f.read_bytes())
    (tmp_path / "roberta" / "model.safetensors").write_bytes(b"not weights")
    refused = load_base(str(tmp_path / "roberta"), "cli", ScanConfig(device="cpu"), tokenizer=wordpiece)
    assert refused.encoder is None and refused.note.endswith(TOKENIZER_DIFFERS), refused.note
    same = load_base(str(minilm_path()), "cli", ScanConfig(device="cpu"), tokenizer=wordpiece)
    assert same.encoder is not None and "loaded for lineage evidence" in same.note
