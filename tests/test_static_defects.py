"""Issue 12's defects, one regression test each, plus the severity policy, content-first classification, the
repo-file rules, chat templates and the hub's second opinion. No payload is ever executed: the C-unpickler
proofs below use an Unpickler whose find_class raises before anything is imported."""

from __future__ import annotations

import io
import json
import pickle
import pickletools
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from hostile_pickles import write  # noqa: I001  (tests/ is on the path)

from scanner import formats
from scanner.config import ScanConfig
from scanner.pipeline import scan
from scanner.report import FileStatus, Severity
from scanner.report.html import render_html
from scanner.report.sarif import render_sarif
from scanner.report.text import render_text
from scanner.static import scan_file, scan_snapshot, static_severity

try:
    from tests import hostile_pickles as hp
    from tests import static_corpus as corpus
    from tests.hub_stub import HubStub
except ModuleNotFoundError:  # tests/ is not a package on this path
    import hostile_pickles as hp
    import static_corpus as corpus
    from hub_stub import HubStub

torch.set_num_threads(1)


class _Imported(Exception):
    pass


class _SpyUnpickler(pickle.Unpickler):
    """The C unpickler, stopped at the first import: tells which global a loader would reach first."""

    def find_class(self, module: str, name: str) -> object:
        raise _Imported((module, name))


def first_import_of_c_unpickler(data: bytes) -> tuple[str, str] | None:
    try:
        _SpyUnpickler(io.BytesIO(data)).load()
    except _Imported as stop:
        return stop.args[0]
    except Exception:  # noqa: BLE001 - the payload is malformed for this loader
        return None
    return None


def checks(finding) -> set[str]:
    return {c["check"] for c in finding.checks}


# --------------------------------------------------------------------------------------------------- defects


def test_frame_differential_is_followed_like_the_c_unpickler(tmp_path: Path, marker: Path) -> None:
    payload = corpus.frame_differential(marker)
    linear_globals = [arg for op, arg, _ in pickletools.genops(payload) if op.name in ("GLOBAL", "STACK_GLOBAL")]
    assert linear_globals == []  # pickletools never sees the import
    assert first_import_of_c_unpickler(payload) == ("os", "system")  # the C unpickler reaches it
    for name, data in (("model.pkl", payload), ("pytorch_model.bin", corpus.torch_zip_with(payload))):
        finding = scan_file(write(tmp_path, name, data), name)
        assert finding.status == FileStatus.DANGEROUS.value, finding.reason
        assert "os.system" in finding.globals
        assert "pickle-frame-differential" in checks(finding)


def test_benign_frames_have_no_differential(tmp_path: Path) -> None:
    data = pickle.dumps({"a": list(range(20000)), "b": b"x" * 100_000}, protocol=5)
    finding = scan_file(write(tmp_path, "model.pkl", data), "model.pkl")
    assert finding.status == FileStatus.SAFE.value and "pickle-frame-differential" not in checks(finding)


def test_crc_mismatched_member_is_read_as_torch_reads_it(tmp_path: Path, marker: Path) -> None:
    benign = corpus.crc_mismatch_zip(hp.proto(2) + hp.EMPTY_DICT + hp.STOP)
    benign = corpus.crc_mismatch_zip(pickle.dumps(OrderedDict(), protocol=2))
    assert torch.load(io.BytesIO(benign), weights_only=True) == OrderedDict()  # torch ignores the CRC
    finding = scan_file(write(tmp_path, "ok.bin", benign), "ok.bin")
    assert finding.status == FileStatus.SAFE.value and "zip-crc-mismatch" in checks(finding)
    hostile = corpus.crc_mismatch_zip(corpus.call_pickle("os", "system", corpus.cmd(marker)))
    finding = scan_file(write(tmp_path, "bad.bin", hostile), "bad.bin")
    assert finding.status == FileStatus.DANGEROUS.value and "os.system" in finding.globals


@pytest.mark.parametrize(
    "name, data_fn, fmt",
    [
        ("array.npy", lambda m: corpus.npy_object(corpus.call_pickle("os", "system", corpus.cmd(m))), "numpy"),
        ("model.h5", lambda m: corpus.torch_zip_with(corpus.call_pickle("os", "system", corpus.cmd(m))), "pytorch-zip"),
        ("model.onnx", lambda m: corpus.call_pickle("os", "system", corpus.cmd(m)), "pickle"),
    ],
)
def test_content_decides_not_the_extension(tmp_path: Path, marker: Path, name: str, data_fn, fmt: str) -> None:
    finding = scan_file(write(tmp_path, name, data_fn(marker)), name)
    assert finding.status == FileStatus.DANGEROUS.value and finding.format == fmt
    if name != "array.npy":
        assert "format-mismatch" in checks(finding)  # the name promises another format: a finding itself
        assert any(c["rule"] == "PAT010" and c["severity"] == "high" for c in finding.checks)


@pytest.mark.parametrize("name", ["model.sav", "word2vec.model", "notes.txt"])
def test_protocol0_pickles_never_vanish(tmp_path: Path, marker: Path, name: str) -> None:
    write(tmp_path, name, corpus.call_pickle("os", "system", corpus.cmd(marker), protocol=0))
    serialization, skipped = scan_snapshot(tmp_path, [name])
    assert [f.path for f in serialization.files] == [name]
    assert serialization.files[0].status == FileStatus.DANGEROUS.value


def test_hub_target_scans_the_pickle_beside_safetensors_and_shows_the_hub_verdict(
    tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    files = {
        "config.json": json.dumps({"model_type": "bert"}).encode(),
        "model.safetensors": corpus.safetensors_file(),
        "pytorch_model.bin": corpus.torch_zip_with(corpus.call_pickle("os", "system", corpus.cmd(marker))),
        "start.bat": b"@echo off\r\n",
    }
    with HubStub() as hub:
        hub.add_repo("org/poisoned", files)
        hub.set_security("org/poisoned", "pytorch_model.bin", "unsafe", pickle_imports=[("os", "system", "dangerous")])
        hub.set_security("org/poisoned", "model.safetensors", "unsafe", virus_names=["Eicar-Test"])
        report = scan("org/poisoned", ScanConfig(behavioural=False, hub_endpoint=hub.url, cache_dir=tmp_path / "c"))
    by_path = {f.path: f for f in report.serialization.files}
    assert by_path["pytorch_model.bin"].status == FileStatus.DANGEROUS.value
    assert by_path["pytorch_model.bin"].hub_security["verdict"] == "unsafe"
    assert by_path["model.safetensors"].hub_security["verdict"] == "unsafe"
    assert "hub-disagreement" in checks(by_path["model.safetensors"])  # the hub says unsafe, we said safe
    assert by_path["start.bat"].rule == "PAT009"  # never downloaded, judged by its name
    assert report.severity is Severity.CRITICAL
    text = render_text(report)
    assert "Hub security: the hub judged 2 file(s); 1 disagreement(s)" in text
    assert "!! model.safetensors: hub unsafe" in text
    sarif = json.loads(render_sarif(report))
    properties = [r["properties"] for r in sarif["runs"][0]["results"] if "hub_security" in r["properties"]]
    assert {p["hub_security"]["verdict"] for p in properties} == {"unsafe"}
    page = render_html(report)
    assert "Hub security scan: unsafe" in page
    assert "<th>Hub scan</th>" in page  # the hub's verdict beside ours in the files table, disagreement marked
    assert '<td class="hub-verdict">unsafe <strong>(disagrees)</strong></td>' in page
    assert '<td class="hub-verdict">unsafe</td>' in page  # pytorch_model.bin: we agree it is dangerous


# --------------------------------------------------------------------------------------------------- policy


def test_unvetted_call_fails_the_gate_but_an_unvetted_import_does_not(tmp_path: Path) -> None:
    called = corpus.call_pickle("uuid", "_get_command_stdout", "true")
    finding = scan_file(write(tmp_path, "a.pkl", called), "a.pkl")
    assert finding.severity == "high" and finding.status == FileStatus.SUSPICIOUS.value
    imported = hp.proto(2) + hp.glob("mypackage.layers", "Thing") + hp.STOP
    finding = scan_file(write(tmp_path, "b.pkl", imported), "b.pkl")
    assert finding.severity == "medium"


def test_benign_artifacts_stay_safe(tmp_path: Path) -> None:
    samples = {s.name: s for s in corpus.build_corpus(tmp_path / "c") if not s.malicious}
    for name in (
        "benign-training-args",
        "benign-rng-state",
        "benign-optimizer-scheduler",
        "benign-sparse-tensors",
        "benign-sklearn-joblib",
    ):
        sample = samples[name]
        serialization, _ = scan_snapshot(sample.folder, list(sample.files))
        assert all(f.status == FileStatus.SAFE.value for f in serialization.files), (name, serialization.files)


# --------------------------------------------------------------------------------------------------- formats, repo


def test_file_type_table_classifies_by_content() -> None:
    assert formats.sniff(b"\x80\x04\x95") == "pickle"
    assert formats.sniff(b"PK\x03\x04rest") == "zip"
    assert formats.sniff(b"\x93NUMPY\x01\x00") == "numpy"
    assert formats.sniff(b"GGUF\x03\x00") == "gguf"
    assert formats.sniff(b"\x7fELF\x02") == "native-binary"
    assert formats.sniff(b"cos\nsystem\n(S'x'\ntR.") == "pickle"
    assert formats.sniff(b"# a readme\n") is None
    assert formats.classify("model.onnx", b"\x80\x02N.").mismatch
    assert not formats.classify("model.joblib", b"\x80\x02N.").mismatch
    assert formats.is_weight_bearing("sub/model.npz") and not formats.is_weight_bearing("README.md")


def test_repo_code_graded_by_reference(tmp_path: Path) -> None:
    write(tmp_path, "config.json", json.dumps({"auto_map": {"AutoModel": "modeling_x.X"}}).encode())
    write(tmp_path, "modeling_x.py", b"class X: pass\n")
    write(tmp_path, "helper.py", b"print(1)\n")
    write(tmp_path, "run.sh", b"#!/bin/sh\necho\n")
    write(tmp_path, "model.safetensors", corpus.safetensors_file())
    serialization, _ = scan_snapshot(
        tmp_path, ["config.json", "modeling_x.py", "helper.py", "run.sh", "model.safetensors"]
    )
    by_path = {f.path: f for f in serialization.files}
    assert (by_path["modeling_x.py"].rule, by_path["modeling_x.py"].severity) == ("PAT004", "high")
    assert (by_path["helper.py"].rule, by_path["helper.py"].severity) == ("PAT009", "medium")
    assert (by_path["run.sh"].rule, by_path["run.sh"].severity) == ("PAT009", "high")
    assert by_path["model.safetensors"].status == FileStatus.SAFE.value


@pytest.mark.parametrize(
    "template, bad",
    [
        (corpus.LLAMA3_TEMPLATE, False),
        ("{{ messages[0]['content'] | trim }}", False),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", True),
        ("{{ cycler.__init__.__globals__.os.popen('id').read() }}", True),
        ("{{ request|attr('application')|attr('\\x5f\\x5fglobals\\x5f\\x5f') }}", True),
    ],
)
def test_chat_templates_in_a_sandbox(tmp_path: Path, template: str, bad: bool) -> None:
    write(tmp_path, "tokenizer_config.json", json.dumps({"chat_template": template}).encode())
    serialization, _ = scan_snapshot(tmp_path, ["tokenizer_config.json"])
    severity = static_severity(serialization)
    assert severity.at_least(Severity.HIGH) is bad, serialization.files


def test_hub_stub_serves_security_info_through_tree_and_paths_info() -> None:
    from huggingface_hub import HfApi

    with HubStub() as hub:
        sha = hub.add_repo("org/tree", {"config.json": b"{}", "sub/model.bin": b"\x80\x02N.", "a.pkl": b"x"})
        hub.set_security("org/tree", "sub/model.bin", "unsafe", pickle_imports=[("os", "system", "dangerous")])
        api = HfApi(endpoint=hub.url)
        tree = {e.path: e for e in api.list_repo_tree("org/tree", revision=sha, recursive=True, expand=True)}
        assert set(tree) == {"config.json", "sub", "sub/model.bin", "a.pkl"}
        assert tree["sub/model.bin"].security["status"] == "unsafe"
        assert tree["config.json"].security is None  # no verdict set: no field served
        flat = [e.path for e in api.list_repo_tree("org/tree", revision=sha)]
        assert sorted(flat) == ["a.pkl", "config.json", "sub"]
        (info,) = api.get_paths_info("org/tree", ["sub/model.bin"], revision=sha, expand=True)
        assert info.security["pickle_import_scan"]["imports"][0]["module"] == "os"
