"""ONNX, Keras (.h5 and .keras), GGUF and TorchScript, each read with the field's own parser (onnx protobuf,
h5py, gguf), never with a loader that runs what the file carries."""

from __future__ import annotations

import json
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import IO, Any

from scanner.report import FileStatus, Severity
from scanner.static.archives import open_member, unsafe_member_name
from scanner.static.common import LIMITS, FileScan, some
from scanner.static.policy import denied
from scanner.static.templates import check_template

__all__ = ["check_code", "scan_gguf", "scan_h5", "scan_keras_zip", "scan_onnx"]

S, D, K = FileStatus.SUSPICIOUS, FileStatus.DANGEROUS, FileStatus.SKIPPED


@contextmanager
def as_path(stream: IO[bytes], path: str | None) -> Iterator[str]:
    """A filesystem path for parsers that want one (a nested member is spilled to a temporary file)."""
    if path is not None:
        yield path
        return
    with tempfile.NamedTemporaryFile(prefix="patronus-", suffix=".bin") as tmp:
        stream.seek(0)
        copied = 0
        while chunk := stream.read(1024**2):
            copied += len(chunk)
            if copied > LIMITS.max_member_read:
                raise ValueError("member too large to spill for parsing")
            tmp.write(chunk)
        tmp.flush()
        yield tmp.name


# --------------------------------------------------------------------------------------------------- ONNX

STANDARD_ONNX_DOMAINS = frozenset(
    {
        "",
        "ai.onnx",
        "ai.onnx.ml",
        "ai.onnx.training",
        "ai.onnx.preview.training",
        "com.microsoft",
        "com.microsoft.nchwc",
        "com.microsoft.experimental",
        "org.pytorch.aten",
        "com.ms.internal.nhwc",
        "ai.onnx.contrib",
    }
)


def _onnx_graphs(graph: Any) -> Iterator[Any]:
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _onnx_graphs(attr.g)
            for sub in attr.graphs:
                yield from _onnx_graphs(sub)


def _onnx_tensors(model: Any) -> Iterator[Any]:
    for graph in _onnx_graphs(model.graph):
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield sparse.values
        for node in graph.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors


def scan_onnx(stream: IO[bytes], size: int, scan: FileScan, where: str) -> None:
    import onnx
    from google.protobuf.message import DecodeError

    scan.format = "onnx"
    if size > 2 * 1024**3:
        scan.add("scan-bound", K, Severity.MEDIUM, f"{where}: ONNX file over 2 GiB (protobuf limit) not parsed")
        return
    stream.seek(0)
    try:
        model = onnx.ModelProto.FromString(stream.read())
    except (DecodeError, ValueError, RuntimeError) as exc:
        scan.add("onnx-malformed", S, Severity.MEDIUM, f"{where}: not a parseable ONNX model: {exc}")
        return
    domains = {o.domain for o in model.opset_import} | {n.domain for g in _onnx_graphs(model.graph) for n in g.node}
    domains |= {n.domain for f in model.functions for n in f.node}
    custom = sorted(d for d in domains if d not in STANDARD_ONNX_DOMAINS)
    if custom:
        scan.add(
            "onnx-custom-op",
            S,
            Severity.MEDIUM,
            f"{where}: custom operator domains {some(custom)} (run native code from a custom-op library)",
        )
    escaping = []
    external = 0
    for tensor in _onnx_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        external += 1
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        why = unsafe_member_name(location) if location else "no location"
        if why:
            escaping.append(f"{tensor.name}: {location!r} ({why})")
    if escaping:
        scan.add(
            "onnx-external-data-escape",
            S,
            Severity.HIGH,
            f"{where}: external-data paths escape the model folder (a loader reads any file): {some(escaping)}",
        )
    scan.notes.append(f"ONNX IR {model.ir_version}, {len(model.graph.node)} node(s), {external} external tensor(s)")


# --------------------------------------------------------------------------------------------------- Keras

_KERAS_MODULES = ("keras", "tensorflow", "tf_keras", "tensorflow.keras")
_LAMBDA_CLASSES = frozenset({"Lambda"})


def _keras_objects(config: Any, depth: int = 0) -> Iterator[dict[str, Any]]:
    if depth > 200:
        return
    if isinstance(config, dict):
        if "class_name" in config:
            yield config
        for value in config.values():
            yield from _keras_objects(value, depth + 1)
    elif isinstance(config, list):
        for value in config:
            yield from _keras_objects(value, depth + 1)


def check_keras_config(config: Any, scan: FileScan, where: str) -> None:
    """Lambda layers (marshalled Python bytecode or source), objects of modules outside Keras, registered custom
    objects."""
    lambdas, foreign, custom, bad = [], [], [], []
    for obj in _keras_objects(config):
        class_name = str(obj.get("class_name"))
        module = obj.get("module")
        name = str((obj.get("config") or {}).get("name", "")) if isinstance(obj.get("config"), dict) else ""
        if class_name in _LAMBDA_CLASSES:
            lambdas.append(name or class_name)
        if isinstance(module, str) and module:
            target = (
                obj.get("config") if class_name == "function" and isinstance(obj.get("config"), str) else class_name
            )
            if denied(module, str(target)) or denied(module.split(".")[0], str(target)):
                bad.append(f"{module}.{target}")
            elif not module.startswith(_KERAS_MODULES):
                foreign.append(f"{module}.{target}")
        registered = obj.get("registered_name")
        if (
            isinstance(registered, str)
            and registered
            and registered != class_name
            and "Custom>" not in registered
            or isinstance(registered, str)
            and ">" in registered
        ):
            custom.append(registered)
    if bad:
        scan.add("keras-dangerous-object", D, Severity.CRITICAL, f"{where}: config imports {some(bad)}")
    if lambdas:
        scan.add(
            "keras-lambda",
            D,
            Severity.CRITICAL,
            f"{where}: Lambda layer(s) {some(lambdas)}: Python code that runs when the model is loaded",
        )
    if foreign:
        scan.add(
            "keras-foreign-module",
            S,
            Severity.HIGH,
            f"{where}: objects from modules outside Keras: {some(foreign)} (imported and called on load)",
        )
    if custom:
        scan.add(
            "keras-custom-object",
            S,
            Severity.MEDIUM,
            f"{where}: custom objects {some(sorted(set(custom)))} (need user code to load)",
        )


def _json_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return json.loads(value) if isinstance(value, str) else None


def scan_h5(stream: IO[bytes], size: int, scan: FileScan, where: str) -> None:
    import h5py

    scan.format = "hdf5"
    stream.seek(0)
    try:
        with h5py.File(stream, "r") as h5:
            attrs = {
                key: h5.attrs[key]
                for key in ("model_config", "training_config", "keras_version", "backend")
                if key in h5.attrs
            }
    except Exception as exc:  # noqa: BLE001 - h5py raises OSError, ValueError, KeyError, ... on hostile files
        scan.add("hdf5-malformed", S, Severity.MEDIUM, f"{where}: unreadable HDF5: {type(exc).__name__}: {exc}")
        return
    for key in ("model_config", "training_config"):
        if key not in attrs:
            continue
        try:
            config = _json_attr(attrs[key])
        except (json.JSONDecodeError, RecursionError) as exc:
            scan.add("keras-malformed", S, Severity.MEDIUM, f"{where}: {key} is not JSON: {exc}")
            continue
        check_keras_config(config, scan, f"{where} {key}")
    scan.notes.append("Keras HDF5 model" if "model_config" in attrs else "HDF5 without a Keras model config")


def scan_keras_zip(archive: zipfile.ZipFile, raw: IO[bytes], scan: FileScan, where: str) -> None:
    for name in ("config.json", "metadata.json"):
        try:
            info = archive.getinfo(name)
        except KeyError:
            continue
        if info.file_size > 64 * 1024**2:
            scan.add("scan-bound", S, Severity.MEDIUM, f"{where}:{name} larger than 64 MiB; not parsed")
            continue
        with open_member(archive, info, raw) as member:
            try:
                config = json.loads(member.read())
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
                scan.add("keras-malformed", S, Severity.MEDIUM, f"{where}:{name} is not JSON: {exc}")
                continue
        if name == "config.json":
            check_keras_config(config, scan, f"{where}:{name}")


# --------------------------------------------------------------------------------------------------- GGUF


# A chat template is a few KiB (the largest on the hub are ~20 KiB); a single metadata string of megabytes is
# either a payload or an attempt to exhaust a renderer. Token vocabularies are arrays of short strings.
GGUF_STRING_BOUND = 256 * 1024
GGUF_ARRAY_BOUND = 2_000_000  # tokenizer.ggml.tokens of the largest vocabularies is ~262k
GGUF_SHOWN_KEYS = (
    "general.architecture",
    "general.name",
    "general.basename",
    "general.size_label",
    "general.license",
    "general.quantization_version",
    "general.file_type",
)
GGUF_SHOWN_CHARS = 120


def _gguf_metadata_checks(fields: dict[str, Any], scan: FileScan, where: str) -> list[tuple[str, str]]:
    """Bound every string and array in the metadata, show the identifying keys; return the chat templates."""
    templates: list[tuple[str, str]] = []
    for key, field in fields.items():
        if len(field.data) > GGUF_ARRAY_BOUND:
            scan.add(
                "gguf-metadata-bound",
                S,
                Severity.MEDIUM,
                f"{where}: metadata {key[:80]!r} holds {len(field.data):,} values (bound {GGUF_ARRAY_BOUND:,})",
            )
            continue
        longest = max((len(field.parts[i]) for i in field.data), default=0) if field.types else 0
        if longest > GGUF_STRING_BOUND:
            scan.add(
                "gguf-metadata-bound",
                S,
                Severity.MEDIUM,
                f"{where}: metadata {key[:80]!r} holds a {longest:,}-byte value (bound {GGUF_STRING_BOUND:,})",
            )
            continue
        if key.startswith("tokenizer.chat_template"):
            value = field.contents()
            if isinstance(value, str):
                templates.append((key, value))
        elif key in GGUF_SHOWN_KEYS:
            value = field.contents()
            text = str(value)
            shown = text[:GGUF_SHOWN_CHARS] + ("..." if len(text) > GGUF_SHOWN_CHARS else "")
            scan.notes.append(f"GGUF {key} = {shown!r}")
    return templates


def scan_gguf(stream: IO[bytes], size: int, scan: FileScan, where: str, path: str | None) -> None:
    from gguf import GGUFReader

    scan.format = "gguf"
    try:
        with as_path(stream, path) as file_path:
            reader = GGUFReader(file_path, "r")
            templates = _gguf_metadata_checks(dict(reader.fields), scan, where)
            tensors = len(reader.tensors)
            beyond = [t.name for t in reader.tensors if int(t.data_offset) + int(t.n_bytes) > size]
            del reader
    except Exception as exc:  # noqa: BLE001 - the reader raises ValueError, IndexError, ... on hostile files
        scan.add("gguf-malformed", S, Severity.MEDIUM, f"{where}: unreadable GGUF: {type(exc).__name__}: {exc}")
        return
    if beyond:
        scan.add(
            "gguf-malformed",
            S,
            Severity.MEDIUM,
            f"{where}: {len(beyond)} tensor(s) extend past the end of the file (first {beyond[0][:80]!r})",
        )
    for key, template in templates:
        for rule, status, severity, message in check_template(template, f"{where} {key}"):
            scan.add(rule, status, severity, message)
    scan.notes.append(f"GGUF: {tensors} tensor(s), {len(templates)} chat template(s) checked")


# --------------------------------------------------------------------------------------------------- TorchScript

# TorchScript code is a restricted Python subset compiled by torch.jit; what it can reach is torch ops. Custom op
# namespaces (torch.ops.<lib>) need a native library; file and process access have no TorchScript spelling
# except through such ops or the few builtins below.
_TS_BUILTIN_NAMESPACES = (
    "aten",
    "prim",
    "quantized",
    "_caffe2",
    "profiler",
    "cuda",
    "_quantized",
    "vulkan_prepack",
    "mkldnn",
    "mkldnn_prepacked",
    "_prims",
    "prepacked",
    "cudnn",
    "xnnpack",
    "metal",
)
_TS_DANGEROUS_TOKENS = (
    "__import__",
    "os.system",
    "subprocess",
    "builtins.open",
    "torch.ops.load_library",
    "exec(",
    "eval(",
    "ops.__",
    "__globals__",
    "__builtins__",
)


def check_code(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], raw: IO[bytes], scan: FileScan) -> None:
    """A token-level analysis of a TorchScript archive's code/ members (not a full analysis of the program)."""
    import re

    namespaces: set[str] = set()
    dangerous: list[str] = []
    files = 0
    for info in members:
        if info.is_dir() or info.file_size > 64 * 1024**2 or PurePosixPath(info.filename).suffix not in (".py", ""):
            continue
        files += 1
        with open_member(archive, info, raw) as member:
            text = member.read().decode("utf-8", "replace")
        namespaces |= set(re.findall(r"\bops\.([A-Za-z_][A-Za-z0-9_]*)\.", text))
        dangerous += [f"{info.filename}: {tok}" for tok in _TS_DANGEROUS_TOKENS if tok in text]
    custom = sorted(n for n in namespaces if n not in _TS_BUILTIN_NAMESPACES)
    if dangerous:
        scan.add("torchscript-dangerous-code", D, Severity.CRITICAL, f"TorchScript code reaches {some(dangerous)}")
    if custom:
        scan.add(
            "torchscript-custom-op",
            S,
            Severity.HIGH,
            f"TorchScript calls custom op namespaces {some(custom)} (native code from a loaded library)",
        )
    scan.add(
        "torchscript-code",
        S,
        Severity.MEDIUM,
        f"TorchScript archive: {files} code file(s) checked at token level only (torch.jit.load compiles and "
        "runs this code; prefer safetensors)",
    )
