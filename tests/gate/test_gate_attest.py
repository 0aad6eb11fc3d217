"""Attestations: the CycloneDX 1.6 ML-BOM (validated by cyclonedx-python-lib's own validator) and OpenSSF Model
Signing signatures made in the test with a key through model-signing, verified, tampered with and named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from scanner.gate.policy import Signatures
from scanner.gate.signing import verify_folder
from tests.gate.gatekit import model_files, write_policy


def validate_bom(text: str) -> dict:
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    assert errors is None, errors
    bom = json.loads(text)
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.6"
    return bom


def test_gate_bom_over_every_adopted_model_validates(hub, sample: Path, cli) -> None:
    result = cli("gate", "--format", "cyclonedx")
    assert result.code == 0, result.stderr
    bom = validate_bom(result.stdout)
    models = [c for c in bom["components"] if c["type"] == "machine-learning-model"]
    assert {f"{c['group']}/{c['name']}" for c in models} == {
        "acme/encoder",
        "acme/sentence",
        "acme/classifier",
        "acme/listed",
    }  # acme/encoder@main: same sha, once
    encoder = next(c for c in models if c["name"] == "encoder")
    assert encoder["purl"] == f"pkg:huggingface/acme/encoder@{hub.repos['acme/encoder'].refs['main']}"
    weights = next(f for f in encoder["components"] if f["name"] == "model.safetensors")
    assert weights["hashes"][0]["alg"] == "SHA-256" and len(weights["hashes"][0]["content"]) == 64
    adopted = {p["value"] for p in encoder["properties"] if p["name"] == "patronus:adopted_at"}
    assert adopted == {"app/download.py:5", "app/encoder.py:7", "app/encoder.py:8"}
    assert {v["id"] for v in bom["vulnerabilities"]} == {"PAT006"}  # static-only: behavioural search not run


def test_scan_format_cyclonedx_lists_findings_as_vulnerabilities(tmp_path: Path) -> None:
    import pickle

    from scanner.cli import main  # noqa: F401 - the CLI's format list includes cyclonedx
    from scanner.config import ScanConfig
    from scanner.pipeline import scan
    from scanner.report.cyclonedx import render_cyclonedx

    class Evil:
        def __reduce__(self):
            return (eval, ("1+1",))

    folder = tmp_path / "evil"
    folder.mkdir()
    files = model_files()
    del files["model.safetensors"]
    files["pytorch_model.bin"] = pickle.dumps(Evil())
    for name, data in files.items():
        (folder / name).write_bytes(data)
    report = scan(str(folder), ScanConfig(profile="quick", behavioural=False))
    bom = validate_bom(render_cyclonedx(report))
    ids = {v["id"]: v for v in bom["vulnerabilities"]}
    assert "PAT002" in ids and ids["PAT002"]["ratings"][0]["severity"] == "critical"
    assert ids["PAT002"]["affects"][0]["ref"] == bom["components"][0]["bom-ref"]


# --------------------------------------------------------------------------------------------------- signing


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = tmp_path / "signing-key.pem", tmp_path / "signing-key.pub"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


def sign(folder: Path, private: Path) -> Path:
    from model_signing import hashing, signing

    signature = folder / "model.sig"
    config = signing.Config().use_elliptic_key_signer(private_key=private)
    config.set_hashing_config(hashing.Config().set_ignored_paths(paths=["model.sig"]))
    config.sign(folder, signature)
    return signature


def signed_folder(root: Path, private: Path) -> Path:
    folder = root / "signed-model"
    folder.mkdir(parents=True)
    for name, data in model_files(7.0).items():
        (folder / name).write_bytes(data)
    sign(folder, private)
    return folder


def test_signed_folder_verifies_and_a_tampered_file_is_named(tmp_path: Path, keys) -> None:
    private, public = keys
    folder = signed_folder(tmp_path, private)
    config = Signatures(public_key=str(public))
    ok = verify_folder(folder, config)
    assert ok.status == "verified" and "model.safetensors" in ok.verified

    (folder / "model.safetensors").write_bytes(b"tampered" + (folder / "model.safetensors").read_bytes()[8:])
    bad = verify_folder(folder, config)
    assert bad.status == "mismatch" and bad.mismatched == ["model.safetensors"]
    assert "model.safetensors" in bad.message

    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    (tmp_path / "other.pub").write_bytes(
        other.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    wrong = verify_folder(folder, Signatures(public_key=str(tmp_path / "other.pub")))
    assert wrong.status == "mismatch" and wrong.mismatched == ["model.sig"]
    assert verify_folder(tmp_path, config).status == "unsigned"


def test_gate_verifies_signatures_local_and_hub_and_can_require_them(hub, sample: Path, cli, keys) -> None:
    private, public = keys
    folder = signed_folder(sample / "models", private)
    hub.add_repo("acme/signed", {p.name: p.read_bytes() for p in folder.iterdir()})
    (sample / "app" / "signed.py").write_text(
        "from transformers import AutoModel\n\n"
        "local = AutoModel.from_pretrained('models/signed-model')\n"
        "remote = AutoModel.from_pretrained('acme/signed')\n"
    )
    write_policy(sample, f'[signatures]\npublic_key = "{public}"\n')
    first = cli("gate", "app/signed.py", "--format", "json")
    assert first.stdout, first.stderr
    data = json.loads(first.stdout)
    status = {m["model"]: m["signature"]["status"] for m in data["models"]}
    assert status == {"models/signed-model": "verified", "acme/signed": "verified", "acme/listed": "unsigned"}
    assert data["exit_code"] == 0

    write_policy(sample, f'[signatures]\npublic_key = "{public}"\nrequire = true\n')
    data = json.loads(cli("gate", "app/signed.py", "--format", "json").stdout)
    assert {m["model"] for m in data["models"] if m["fails"]} == {"acme/listed"}  # PATG09: unsigned

    (folder / "vocab.txt").write_bytes(b"[PAD]\n[UNK]\nevil\n")
    result = cli("gate", "app/signed.py", "--format", "json")
    data = json.loads(result.stdout)
    local = next(m for m in data["models"] if m["model"] == "models/signed-model")
    assert result.code == 1 and local["signature"]["mismatched"] == ["vocab.txt"]
    assert any(f["rule"] == "PATG08" and "vocab.txt" in f["message"] for f in local["findings"])
