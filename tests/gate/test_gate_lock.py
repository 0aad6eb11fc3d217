"""patronus.lock: `patronus lock` records what was scanned; `gate --locked` fails on supply-chain drift."""

from __future__ import annotations

import json
from pathlib import Path

from scanner.gate.lock import LOCK_SCHEMA, read_lock
from tests.gate.gatekit import model_files


def test_branch_moved_fails_locked_until_relocked(hub, sample: Path, cli) -> None:
    missing = cli("gate", "--locked")
    assert missing.code == 1 and "not in patronus.lock" in missing.stdout

    locked = cli("lock")
    assert locked.code == 0, locked.stderr
    data = json.loads((sample / "patronus.lock").read_text())
    assert data["schema"] == LOCK_SCHEMA
    entry = data["models"]["acme/encoder@main"]
    assert entry["sha"] == hub.repos["acme/encoder"].refs["main"] and entry["verdict"] == "inconclusive"
    assert set(entry["files"]) >= {"config.json", "model.safetensors"} and entry["report_digest"].startswith("sha256:")
    assert entry["engine_version"] is not None and entry["config_hash"]
    assert cli("gate", "--locked").code == 0
    assert cli("lock", "--check").code == 0

    old = entry["sha"]
    new = hub.add_commit("acme/encoder", model_files(42.0), message="quietly swap the weights")
    drifted = cli("gate", "--locked", "--format", "json")
    assert drifted.code == 1
    result = json.loads(drifted.stdout)
    failing = {m["model"] for m in result["models"] if m["fails"]}
    assert failing == {"acme/encoder"}  # both adoptions of it (default branch and @main)
    message = next(f["message"] for m in result["models"] if m["model"] == "acme/encoder" for f in m["findings"])
    assert "PATG05" in {f["rule"] for m in result["models"] for f in m["findings"]}
    assert new in message and old in message and "acme/encoder" in message
    assert result["scans_run"] == 0  # a drifted sha is not scanned under --locked: it has no scan on record

    assert cli("lock", "--check").code == 1
    assert cli("lock").code == 0
    assert read_lock(sample / "patronus.lock").get("acme/encoder", "main").sha == new
    assert cli("gate", "--locked").code == 0


def test_local_folder_files_changed_is_drift(hub, sample: Path, cli) -> None:
    folder = sample / "models" / "mine"
    folder.mkdir(parents=True)
    for name, data in model_files(3.0).items():
        (folder / name).write_bytes(data)
    (sample / "app" / "mine.py").write_text(
        "from transformers import AutoModel\n\nm = AutoModel.from_pretrained('./models/mine')\n"
    )
    assert cli("lock", "app/mine.py").code == 0
    assert cli("gate", "app/mine.py", "--locked").code == 0
    (folder / "vocab.txt").write_bytes(b"[PAD]\n[UNK]\nswapped\n")
    result = cli("gate", "app/mine.py", "--locked")
    assert result.code == 1 and "vocab.txt" in result.stdout


def test_nothing_scannable_exits_3_and_is_not_locked(hub, sample: Path, cli) -> None:
    hub.add_repo("acme/empty", {"config.json": b'{"model_type": "bert"}'})
    (sample / "models.txt").write_text("acme/empty@main\n")
    result = cli("lock", "app/classify.py")
    assert result.code == 3
    assert set(read_lock(sample / "patronus.lock").entries) == {"acme/classifier@v1"}
    assert cli("gate", "app/classify.py", "--locked").code == 1  # acme/empty: not in patronus.lock
