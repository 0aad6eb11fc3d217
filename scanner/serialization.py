"""Static scan of weight files: pickle opcodes and globals, safetensors headers. Nothing is ever executed.

Pickle-based files (torch zip checkpoints, legacy torch streams, legacy tar checkpoints, raw pickles) are walked
opcode by opcode with `pickletools.genops`, while a small symbolic stack machine follows the memo and the stack so
that STACK_GLOBAL operands are resolved from the strings the loader would see. Every global a file imports is
classified default-deny: an allowlist of what a torch state dict legitimately needs (safe), a denylist of
known code-execution / I/O primitives (dangerous), and everything else (suspicious). Safetensors files cannot
execute code; their header is checked the way the reference loader checks it, and malformed ones are reported as
suspicious with the precise reason. Work is bounded (`LIMITS`); files are streamed, never read whole.
"""

from __future__ import annotations

import _compat_pickle
import io
import json
import math
import pickletools
import reprlib
import struct
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from scanner.report import FileFinding, FileStatus, Serialization, Skipped

__all__ = [
    "DANGEROUS_CALLABLES", "DANGEROUS_MODULES", "LIMITS", "PICKLE_FORMATS", "SAFE_GLOBALS", "WEIGHT_SUFFIXES",
    "Limits", "classify_global", "has_dangerous", "is_weight_file", "scan_file", "scan_snapshot",
]

# ------------------------------------------------------------------------------------------------ constants


@dataclass(frozen=True)
class Limits:
    """Bounds on the work one file may cost; a file that exceeds one is reported suspicious, never safe."""

    max_header_bytes: int = 100_000_000  # safetensors header (the reference loader's own bound)
    max_pickle_bytes: int = 2 * 1024**3  # bytes walked per pickle
    max_arg_bytes: int = 256 * 1024**2  # one opcode argument (BINBYTES8, BINUNICODE8, ...)
    max_line_bytes: int = 16 * 1024**2  # one protocol-0 text line
    max_opcodes: int = 20_000_000  # per pickle
    max_pickles: int = 10_000  # consecutive pickles in one stream
    max_members: int = 200_000  # archive members
    max_records: int = 1_000_000  # storage records in a legacy checkpoint
    max_depth: int = 2  # nested archives followed


LIMITS = Limits()

SAFETENSORS_SUFFIXES = frozenset({".safetensors"})
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib", ".dill", ".pdparams"})
UNSUPPORTED_WEIGHTS = {
    ".h5": "hdf5", ".hdf5": "hdf5", ".keras": "keras", ".msgpack": "flax-msgpack", ".onnx": "onnx",
    ".onnx_data": "onnx", ".gguf": "gguf", ".ggml": "ggml", ".tflite": "tflite", ".pb": "tensorflow-protobuf",
    ".npy": "numpy", ".npz": "numpy", ".ot": "rust-bert", ".mlmodel": "coreml", ".nemo": "nemo",
}
WEIGHT_SUFFIXES = SAFETENSORS_SUFFIXES | PICKLE_SUFFIXES | frozenset(UNSUPPORTED_WEIGHTS)
# Binary files that are not weights (sentencepiece tokenizers, images): sniffed for pickles, else left out.
OTHER_BINARY_SUFFIXES = frozenset({".model", ".spm", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".ico", ".pdf"})
CODE_SUFFIXES = {
    ".py": "Python source", ".pyc": "compiled Python", ".pyo": "compiled Python", ".pyx": "Cython source",
    ".pyd": "native Python extension", ".so": "native library", ".dll": "native library",
    ".dylib": "native library", ".exe": "native executable", ".sh": "shell script", ".bash": "shell script",
    ".bat": "batch script", ".cmd": "batch script", ".ps1": "PowerShell script", ".js": "JavaScript",
    ".ipynb": "Jupyter notebook", ".jar": "Java archive",
}

PICKLE_FORMATS = frozenset({"pickle", "pytorch-zip", "pytorch-legacy", "pytorch-tar"})

ZIP_MAGIC = b"PK\x03\x04"
TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
TORCH_LEGACY_PROTOCOL = 1001  # torch.serialization.PROTOCOL_VERSION
HIGHEST_PICKLE_PROTOCOL = 5

# Storage classes named in torch persistent ids, with the element size their records are written in.
STORAGE_ELEMENT_SIZES = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "LongStorage": 8,
    "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1,
    "ComplexDoubleStorage": 16, "ComplexFloatStorage": 8, "QInt8Storage": 1, "QInt32Storage": 4,
    "QUInt8Storage": 1, "QUInt4x2Storage": 1, "QUInt2x4Storage": 1, "UntypedStorage": 1,
}
TORCH_DTYPES = (
    "float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "uint16", "uint32",
    "uint64", "bool", "complex32", "complex64", "complex128", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2",
    "float8_e5m2fnuz", "float8_e8m0fnu", "float4_e2m1fn_x2", "qint8", "qint32", "quint8", "quint4x2", "quint2x4",
)

# ------------------------------------------------------------------------------------------------ policy

# Allowlist: exactly what torch.save of a state dict (any dtype, new zip or legacy format, CPU or old CUDA
# checkpoints) and the numpy state in HF Trainer checkpoints (rng_state.pth) need. Each entry is a type or a
# rebuild function whose arguments are data, so no argument the pickle supplies can reach code execution:
#   collections.OrderedDict                  the state dict container
#   torch._utils._rebuild_tensor(_v2/_v3)    rebuild a tensor view over a persistent-id storage (v3: new dtypes)
#   torch._utils._rebuild_parameter          nn.Parameter(tensor, requires_grad) (no attribute state)
#   torch.<X>Storage, torch.cuda.<X>Storage  storage types named in persistent ids (dtype lookup only)
#   torch(.storage).UntypedStorage           storage type for dtypes without a typed storage class (float8, ...)
#   torch.<dtype>, torch.Size, torch.device  inert values
#   numpy ..._reconstruct / ndarray / dtype / scalar / _frombuffer   numpy arrays and scalars (numpy 1.x, 2.x paths)
#   _codecs.encode                           how protocol 2 spells bytes objects in Python 3 (it can also
#                                            compute strings, e.g. rot13: hence unresolvable STACK_GLOBAL
#                                            operands are dangerous however allowlisted their source)
#   builtins set / frozenset / bytearray / complex   inert containers
# Deliberately left out (they make a file suspicious, not dangerous): _rebuild_parameter_with_state and
# torch._tensor._rebuild_from_type_v2 (set arbitrary attributes / tensor subclasses), quantized and sparse
# rebuilds, copyreg._reconstructor, functools.partial, any class of a user's package (pickled whole models).
_NUMPY_CORE = ("numpy.core", "numpy._core")
SAFE_GLOBALS = frozenset(
    {
        "collections.OrderedDict",
        "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor_v3",
        "torch._utils._rebuild_parameter",
        "torch.UntypedStorage", "torch.storage.UntypedStorage", "torch.Size", "torch.device",
        "numpy.ndarray", "numpy.dtype",
        "_codecs.encode",
        "builtins.set", "builtins.frozenset", "builtins.bytearray", "builtins.complex",
    }
    | {f"torch.{name}" for name in STORAGE_ELEMENT_SIZES if name != "UntypedStorage"}
    | {f"torch.cuda.{name}" for name in STORAGE_ELEMENT_SIZES if not name.startswith(("Q", "Untyped"))}
    | {f"torch.{dtype}" for dtype in TORCH_DTYPES}
    | {f"{core}.multiarray.{name}" for core in _NUMPY_CORE for name in ("_reconstruct", "scalar")}
    | {f"{core}.numeric._frombuffer" for core in _NUMPY_CORE}
)

# Denylist, any attribute of these modules: process and code execution, imports, file/network I/O,
# deserialisers (a nested load escapes this scan), debuggers and the like.
DANGEROUS_MODULES = frozenset({
    "os", "posix", "nt", "subprocess", "_posixsubprocess", "sys", "runpy", "importlib", "imp", "pkgutil",
    "zipimport", "pty", "socket", "_socket", "shutil", "webbrowser", "marshal", "pickle", "_pickle", "cPickle",
    "dill", "cloudpickle", "types", "ctypes", "_ctypes", "code", "codeop", "timeit", "bdb", "pdb", "asyncio",
    "multiprocessing", "_multiprocessing", "signal", "_thread", "ensurepip", "pip", "venv", "http", "ftplib",
    "smtplib", "telnetlib", "requests", "httpx", "urllib3", "commands", "popen2", "pydoc", "sqlite3",
    "antigravity",
    "numpy.testing", "numpy.f2py", "numpy.distutils", "torch.hub", "torch.package", "torch.utils.cpp_extension",
})
# Denylist, single callables: builtins that evaluate code, import, touch files or reach arbitrary attributes;
# generic attribute/method access; loaders that would deserialize further (untrusted) pickles.
DANGEROUS_CALLABLES = frozenset(
    {
        f"builtins.{name}"
        for name in (
            "eval", "exec", "execfile", "compile", "open", "file", "getattr", "setattr", "delattr", "__import__",
            "globals", "locals", "vars", "input", "breakpoint", "exit", "quit", "help", "reload", "apply",
        )
    }
    | {f"{mod}.{name}" for mod in ("operator", "_operator") for name in ("attrgetter", "methodcaller")}
    | {
        "io.open", "_io.open", "io.FileIO", "_io.FileIO", "codecs.open", "urllib.request", "numpy.load",
        "numpy.lib.npyio.load", "joblib.load", "torch.load", "torch.serialization.load", "torch.jit.load",
        "torch.storage._load_from_bytes", "torch.ops.load_library", "torch.classes.load_library",
    }
)


def classify_global(module: str, name: str) -> FileStatus:
    """SAFE (allowlisted), DANGEROUS (denylisted anywhere in the dotted path) or SUSPICIOUS (anything else)."""
    norm_module, norm_name = _normalise(module, name)
    if _denied(module, name) or _denied(norm_module, norm_name):
        return FileStatus.DANGEROUS
    if f"{norm_module}.{norm_name}" in SAFE_GLOBALS:
        return FileStatus.SAFE
    return FileStatus.SUSPICIOUS


def _normalise(module: str, name: str) -> tuple[str, str]:
    """Python 2 names the unpickler maps for protocols < 3 (`__builtin__` -> `builtins`, ...)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _denied(module: str, name: str) -> bool:
    """Whether any tail of `module.name` reaches a denylisted module or callable.

    Protocol 4 resolves dotted names attribute by attribute from the imported module, so `torch._utils` +
    `os.system` is `os.system`: tails starting in the name part are checked too (a module path such as
    `torch.jit._pickle` is imported whole and is not the stdlib `_pickle`). Dunder hops in a dotted name
    (`f.__globals__...`) are attribute traversal, which no checkpoint needs.
    """
    name_parts = name.split(".")
    if len(name_parts) > 1 and any(p.startswith("__") and p.endswith("__") for p in name_parts):
        return True
    module_parts = module.split(".")
    parts = module_parts + name_parts
    for start in [0, *range(len(module_parts), len(parts))]:
        for stop in range(start + 1, len(parts) + 1):
            dotted = ".".join(parts[start:stop])
            if dotted in DANGEROUS_CALLABLES or (dotted in DANGEROUS_MODULES and stop < len(parts)):
                return True
    return False


# ------------------------------------------------------------------------------------------------ streams


class ScanBoundError(Exception):
    """A bound in LIMITS was reached: the rest of the file is not verified."""


class _Window:
    """Read-only view of a binary stream from `start` to `end`; caps reads so length fields cannot force
    huge allocations, and reports absolute positions (what pickletools.genops needs)."""

    def __init__(self, raw: IO[bytes], start: int, end: int) -> None:
        self.raw, self.pos, self.end = raw, start, end

    def read(self, n: int | None = -1) -> bytes:
        avail = self.end - self.pos
        want = avail if n is None or n < 0 else min(n, avail)
        if want > LIMITS.max_arg_bytes:
            raise ScanBoundError(f"a {want:,}-byte read exceeds the {LIMITS.max_arg_bytes:,}-byte argument bound")
        data = self.raw.read(want)
        self.pos += len(data)
        return data

    def readline(self, limit: int | None = -1) -> bytes:
        line = self.raw.readline(min(self.end - self.pos, LIMITS.max_line_bytes))
        self.pos += len(line)
        return line

    def tell(self) -> int:
        return self.pos

    def skip(self, n: int) -> bool:
        """Seek past `n` bytes; False when they are not there."""
        if n < 0 or self.pos + n > self.end:
            return False
        self.raw.seek(n, io.SEEK_CUR)
        self.pos += n
        return True


def _stream_size(stream: IO[bytes]) -> int:
    here = stream.tell()
    size = stream.seek(0, io.SEEK_END)
    stream.seek(here)
    return size


# ------------------------------------------------------------------------------------------------ pickle walk


@dataclass(frozen=True)
class GlobalRef:
    """A global the loader would import (GLOBAL, INST or a resolved STACK_GLOBAL)."""

    module: str
    name: str

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"


class _Opaque:
    """A value the scan does not model (result of a call, a dict, ...): never known to be a string."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<computed>"


class _Data:
    """bytes, bytearray, floats, out-of-band buffers: inert and never a string."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<data>"


class _Mark:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<mark>"


OPAQUE, DATA, MARK = _Opaque(), _Data(), _Mark()


class MalformedPickle(Exception):
    """The loader would fail here too (bad opcode, stack underflow, missing memo entry, ...)."""


@dataclass
class PickleWalk:
    """What one pickle (up to its STOP) holds."""

    start: int
    end: int = 0
    opcodes: int = 0
    value: Any = None  # the top of the stack at STOP, when it is modelled (ints, strings, tuples, lists)
    complete: bool = False
    globals: list[GlobalRef] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)  # references no static scan can name
    persistent_ids: list[Any] = field(default_factory=list)
    error: str | None = None
    bound: str | None = None


_STRING_OPS = frozenset({
    "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8",
})
_VALUE_OPS = frozenset({"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4"}) | _STRING_OPS
_CONST_OPS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_DATA_OPS = frozenset({
    "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8", "NEXT_BUFFER", "FLOAT", "BINFLOAT",
})


class _Machine:
    """Symbolic pickle machine: follows the stack and memo, records globals; executes nothing."""

    def __init__(self, walk: PickleWalk) -> None:
        self.walk = walk
        self.stack: list[Any] = []
        self.memo: dict[int, Any] = {}

    # -- stack helpers
    def pop(self) -> Any:
        if not self.stack or self.stack[-1] is MARK:
            raise MalformedPickle("stack underflow")
        return self.stack.pop()

    def pop_mark(self) -> list[Any]:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i] is MARK:
                items = self.stack[i + 1:]
                del self.stack[i:]
                return items
        raise MalformedPickle("no MARK on the stack")

    def top(self) -> Any:
        if not self.stack or self.stack[-1] is MARK:
            raise MalformedPickle("stack underflow")
        return self.stack[-1]

    # -- one opcode
    def step(self, op: pickletools.OpcodeInfo, arg: Any) -> None:
        name = op.name
        if name in _VALUE_OPS:
            self.stack.append(arg)
        elif name in _CONST_OPS:
            self.stack.append(_CONST_OPS[name])
        elif name in _DATA_OPS:
            self.stack.append(DATA)
        else:
            getattr(self, f"op_{name}", self.generic)(op, arg)

    def generic(self, op: pickletools.OpcodeInfo, arg: Any) -> None:
        """Pop what the opcode consumes and push opaque results (REDUCE, BUILD, SETITEMS, NEWOBJ, ...)."""
        before = op.stack_before
        if pickletools.markobject in before:
            self.pop_mark()
            count = before.index(pickletools.markobject)
        else:
            count = len(before)
        for _ in range(count):
            self.pop()
        for item in op.stack_after:
            self.stack.append(MARK if item is pickletools.markobject else OPAQUE)

    def op_PROTO(self, op: pickletools.OpcodeInfo, arg: int) -> None:
        if arg > HIGHEST_PICKLE_PROTOCOL:
            raise MalformedPickle(f"unsupported pickle protocol {arg}")

    def op_GLOBAL(self, op: pickletools.OpcodeInfo, arg: str) -> None:
        self.stack.append(self._record(*_split_pair(arg)))

    def op_INST(self, op: pickletools.OpcodeInfo, arg: str) -> None:
        self._record(*_split_pair(arg))
        self.pop_mark()
        self.stack.append(OPAQUE)

    def op_STACK_GLOBAL(self, op: pickletools.OpcodeInfo, arg: None) -> None:
        name, module = self.pop(), self.pop()
        if type(module) is str and type(name) is str:
            self.stack.append(self._record(module, name))
            return
        if isinstance(module, _Opaque | GlobalRef) or isinstance(name, _Opaque | GlobalRef):
            self.walk.unresolved.append("unresolvable STACK_GLOBAL (operands are computed, not literal strings)")
            self.stack.append(OPAQUE)
            return
        raise MalformedPickle("STACK_GLOBAL operands are not strings")

    def _ext(self, op: pickletools.OpcodeInfo, code: int) -> None:
        self.walk.unresolved.append(f"unresolvable {op.name} (extension-registry code {code})")
        self.stack.append(OPAQUE)

    op_EXT1 = op_EXT2 = op_EXT4 = _ext

    def _put(self, op: pickletools.OpcodeInfo, index: int) -> None:
        self.memo[index] = self.top()

    op_PUT = op_BINPUT = op_LONG_BINPUT = _put

    def op_MEMOIZE(self, op: pickletools.OpcodeInfo, arg: None) -> None:
        self.memo[len(self.memo)] = self.top()

    def _get(self, op: pickletools.OpcodeInfo, index: int) -> None:
        if index not in self.memo:
            raise MalformedPickle(f"memo entry {index} read before it was written")
        self.stack.append(self.memo[index])

    op_GET = op_BINGET = op_LONG_BINGET = _get

    def op_DUP(self, op: pickletools.OpcodeInfo, arg: None) -> None:
        self.stack.append(self.top())

    def op_EMPTY_TUPLE(self, op: pickletools.OpcodeInfo, arg: None) -> None:
        self.stack.append(())

    def op_TUPLE(self, op: pickletools.OpcodeInfo, arg: None) -> None:
        self.stack.append(tuple(self.pop_mark()))

    def _tuple_n(self, op: pickletools.OpcodeInfo, arg: None) -> None:
        items = [self.pop() for _ in op.stack_before]
        self.stack.append(tuple(reversed(items)))

    op_TUPLE1 = op_TUPLE2 = op_TUPLE3 = _tuple_n

    def op_EMPTY_LIST(self, op: pickletools.OpcodeInfo, arg: None) -> None:
        self.stack.append([])

    def op_LIST(self, op: pickletools.OpcodeInfo, arg: None) -> None:
        self.stack.append(self.pop_mark())

    def op_APPEND(self, op: pickletools.OpcodeInfo, arg: None) -> None:
        item = self.pop()
        target = self.top()
        if isinstance(target, list):
            target.append(item)

    def op_APPENDS(self, op: pickletools.OpcodeInfo, arg: None) -> None:
        items = self.pop_mark()
        target = self.top()
        if isinstance(target, list):
            target.extend(items)

    def op_PERSID(self, op: pickletools.OpcodeInfo, arg: str) -> None:
        self.walk.persistent_ids.append(arg)
        self.stack.append(OPAQUE)

    def op_BINPERSID(self, op: pickletools.OpcodeInfo, arg: None) -> None:
        self.walk.persistent_ids.append(self.pop())
        self.stack.append(OPAQUE)

    def op_STOP(self, op: pickletools.OpcodeInfo, arg: None) -> None:
        self.walk.value = self.pop()
        self.walk.complete = True

    def _record(self, module: str, name: str) -> GlobalRef:
        ref = GlobalRef(module, name)
        self.walk.globals.append(ref)
        return ref


def _split_pair(arg: str) -> tuple[str, str]:
    """pickletools joins GLOBAL/INST's module and name lines with a space."""
    module, _, name = arg.partition(" ")
    return module, name


def walk_pickle(window: _Window) -> PickleWalk:
    """Walk one pickle from the window's position to its STOP; never raises for bad input."""
    walk = PickleWalk(start=window.tell())
    machine = _Machine(walk)
    outer_end = window.end
    window.end = min(outer_end, walk.start + LIMITS.max_pickle_bytes)
    try:
        for op, arg, _pos in pickletools.genops(window):
            walk.opcodes += 1
            if walk.opcodes > LIMITS.max_opcodes:
                raise ScanBoundError(f"more than {LIMITS.max_opcodes:,} opcodes in one pickle")
            machine.step(op, arg)
    except ScanBoundError as exc:
        walk.bound = str(exc)
    except MalformedPickle as exc:
        walk.error = f"{exc} (near byte {window.tell():,})"
    except Exception as exc:  # noqa: BLE001 - pickletools raises ValueError, UnicodeError, struct.error, ...
        walk.error = str(exc) or type(exc).__name__
    if not walk.complete and window.end < outer_end and window.tell() >= window.end:
        walk.error, walk.bound = None, f"pickle longer than the {LIMITS.max_pickle_bytes:,}-byte bound"
    window.end = outer_end
    walk.end = window.tell()
    return walk


# ------------------------------------------------------------------------------------------------ findings


@dataclass
class _Scan:
    """Accumulates one file's findings: globals (with where they were seen), issues and counts."""

    format: str
    globals: dict[str, tuple[FileStatus, str]] = field(default_factory=dict)
    issues: list[tuple[FileStatus, str]] = field(default_factory=list)
    pickles: int = 0
    opcodes: int = 0
    notes: list[str] = field(default_factory=list)

    def issue(self, status: FileStatus, message: str) -> None:
        self.issues.append((status, message))

    def add_walk(self, walk: PickleWalk, where: str) -> None:
        """Fold one walked pickle in: its globals, unresolvable references, malformation and bounds."""
        self.opcodes += walk.opcodes
        self.pickles += walk.complete
        for ref in walk.globals:
            if ref.qualname not in self.globals:
                self.globals[ref.qualname] = (classify_global(ref.module, ref.name), where)
        for message in dict.fromkeys(walk.unresolved):
            self.issue(FileStatus.DANGEROUS, f"{message} in {where}")
        if walk.error:
            self.issue(FileStatus.SUSPICIOUS, f"malformed pickle in {where}: {walk.error}")
        if walk.bound:
            self.issue(FileStatus.SUSPICIOUS, f"scan bound reached in {where}: {walk.bound}; rest not verified")

    def finding(self, rel: str) -> FileFinding:
        issues = list(self.issues)
        for status in (FileStatus.DANGEROUS, FileStatus.SUSPICIOUS):
            named = [f"{q} ({w})" for q, (s, w) in self.globals.items() if s is status]
            if named:
                label = "dangerous" if status is FileStatus.DANGEROUS else "non-allowlisted"
                issues.append((status, f"{label} globals: {', '.join(named)}"))
        status = max((s for s, _ in issues), key=_RANK.index, default=FileStatus.SAFE)
        ordered = sorted(issues, key=lambda item: -_RANK.index(item[0]))
        summary = self._summary()
        reason = "; ".join([m for _, m in ordered] + ([summary] if summary else []))
        return FileFinding(path=rel, format=self.format, status=status.value, reason=reason,
                           globals=list(self.globals))

    def _summary(self) -> str:
        parts = list(self.notes)
        if self.format in PICKLE_FORMATS or self.pickles:
            safe = all(s is FileStatus.SAFE for s, _ in self.globals.values())
            parts.append(f"{self.pickles} pickle(s), {self.opcodes:,} opcodes, {len(self.globals)} distinct "
                         f"global(s){', all allowlisted' if safe and self.globals else ''}")
        return "; ".join(parts)


_RANK = [FileStatus.SKIPPED, FileStatus.SAFE, FileStatus.SUSPICIOUS, FileStatus.DANGEROUS]


# ------------------------------------------------------------------------------------------------ pickle files


def _walk_stream(window: _Window, scan: _Scan, where: str, first_index: int = 0) -> list[PickleWalk]:
    """Walk consecutive pickles until the window ends or one fails; returns the walks."""
    walks: list[PickleWalk] = []
    while window.tell() < window.end:
        if len(walks) >= LIMITS.max_pickles:
            scan.issue(FileStatus.SUSPICIOUS, f"more than {LIMITS.max_pickles:,} pickles in {where}; rest not "
                                              "verified")
            break
        walk = walk_pickle(window)
        walks.append(walk)
        scan.add_walk(walk, f"{where} pickle #{first_index + len(walks)} @{walk.start:,}")
        if not walk.complete:
            break
    return walks


def _scan_pickle_stream(stream: IO[bytes], size: int, scan: _Scan, where: str) -> None:
    """A non-archive stream: a legacy torch checkpoint or raw pickles, every pickle in it walked."""
    start = stream.tell()
    claims_pickle = _looks_like_pickle(stream.read(2))
    stream.seek(start)
    window = _Window(stream, start, size)
    first = walk_pickle(window)
    if not (claims_pickle or first.complete or first.globals or first.unresolved or first.bound):
        scan.format = "unknown"
        scan.issue(FileStatus.SKIPPED, f"not a pickle, zip or tar file ({first.error}); torch.load would fail "
                                       "before executing anything")
        return
    if first.complete and first.value == TORCH_LEGACY_MAGIC and type(first.value) is int:
        scan.format = "pytorch-legacy"
        scan.add_walk(first, f"{where} pickle #1 (magic number)")
        _scan_legacy_torch(window, size, scan, where)
        return
    scan.format = "pickle"
    scan.add_walk(first, f"{where} pickle #1 @0")
    if first.complete:
        _walk_stream(window, scan, where, first_index=1)


def _scan_legacy_torch(window: _Window, size: int, scan: _Scan, where: str) -> None:
    """torch.save(_use_new_zipfile_serialization=False): magic, protocol, sys_info, data and storage-key
    pickles, then one raw record per storage. Anything after the records is walked too."""
    names = ["protocol version", "sys_info", "data", "storage keys"]
    walks = []
    for index, label in enumerate(names, start=2):
        walk = walk_pickle(window)
        scan.add_walk(walk, f"{where} pickle #{index} ({label})")
        walks.append(walk)
        if not walk.complete:
            return
    protocol, _sys_info, data, keys = walks
    if protocol.value != TORCH_LEGACY_PROTOCOL:
        scan.issue(FileStatus.SUSPICIOUS, f"unexpected legacy protocol version {protocol.value!r}")
    records = _legacy_records(data.persistent_ids, keys.value)
    if isinstance(records, str):
        scan.issue(FileStatus.SUSPICIOUS, f"legacy storage layout: {records}")
        return
    problem = _skip_storage_records(window, records)
    if problem:
        scan.issue(FileStatus.SUSPICIOUS, f"legacy storage records: {problem}")
        return
    scan.notes.append(f"{len(records)} storage record(s)")
    if window.tell() < size:
        _scan_trailing(window, size, scan, where, "after the storage records")


def _legacy_records(persistent_ids: list[Any], keys: Any) -> list[tuple[str, int, int]] | str:
    """(key, numel, element size) per storage in the order the records follow, or what is wrong."""
    if not isinstance(keys, list) or not all(type(k) is str for k in keys):
        return "the storage-key pickle is not a list of strings"
    declared: dict[str, tuple[int, int]] = {}
    for pid in persistent_ids:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            return f"unexpected persistent id {_short(pid)}"
        storage_type, key, numel = pid[1], pid[2], pid[4]
        if not isinstance(storage_type, GlobalRef) or storage_type.name not in STORAGE_ELEMENT_SIZES:
            return f"unknown storage type in persistent id {_short(pid)}"
        if type(key) is not str or type(numel) is not int or numel < 0:
            return f"bad persistent id {_short(pid)}"
        declared.setdefault(key, (numel, STORAGE_ELEMENT_SIZES[storage_type.name]))
    missing = [k for k in keys if k not in declared]
    if missing:
        return f"storage key(s) {missing[:5]} not referenced by the data pickle"
    if len(keys) > LIMITS.max_records:
        return f"more than {LIMITS.max_records:,} storages"
    return [(k, *declared[k]) for k in keys]


def _skip_storage_records(window: _Window, records: list[tuple[str, int, int]]) -> str | None:
    """Seek over each `<u64 numel><numel * element size bytes>` record; what is wrong, if anything."""
    for key, numel, element_size in records:
        header = window.read(8)
        if len(header) != 8:
            return f"storage {key!r}: record header missing"
        (count,) = struct.unpack("<q", header)
        if count != numel:
            return f"storage {key!r}: record holds {count} elements, the data pickle declares {numel}"
        if not window.skip(count * element_size):
            return f"storage {key!r}: record truncated"
    return None


def _scan_trailing(window: _Window, size: int, scan: _Scan, where: str, context: str) -> None:
    """Bytes no loader reads: walked as pickles (a payload for another loader) and always reported."""
    start = window.tell()
    walks = _walk_stream(window, scan, f"{where} trailing data", first_index=0)
    parsed = sum(w.complete for w in walks)
    scan.issue(FileStatus.SUSPICIOUS, f"{size - start:,} trailing byte(s) {context} at byte {start:,} "
                                      f"({parsed} complete pickle(s) among them)")


def _short(value: Any) -> str:
    """A bounded repr (values come from hostile files: deep, long or large)."""
    bounded = reprlib.Repr()
    bounded.maxlevel, bounded.maxtuple, bounded.maxlist, bounded.maxstring, bounded.maxother = 3, 6, 6, 40, 40
    return bounded.repr(value)


# ------------------------------------------------------------------------------------------------ archives


_TORCH_RECORDS = frozenset({"byteorder", "version", ".format_version", ".storage_alignment", "serialization_id"})


def _scan_zip(stream: IO[bytes], scan: _Scan, where: str, depth: int) -> None:
    """A zip archive (torch.save's default): every .pkl member walked, nested archives followed."""
    try:
        archive = zipfile.ZipFile(stream)
        members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        scan.issue(FileStatus.SUSPICIOUS, f"unreadable zip archive {where}: {exc}")
        return
    if len(members) > LIMITS.max_members:
        scan.issue(FileStatus.SUSPICIOUS, f"{len(members):,} members in {where}; only the first "
                                          f"{LIMITS.max_members:,} were checked")
        members = members[: LIMITS.max_members]
    kinds: dict[str, list[str]] = {}
    for info in members:
        label = f"{where}:{info.filename}" if depth else info.filename
        try:
            kind = _scan_member(archive, info, scan, label, depth)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError) as exc:
            scan.issue(FileStatus.SUSPICIOUS, f"unreadable archive member {label}: {exc}")
            continue
        kinds.setdefault(kind, []).append(label)
    if "code" in kinds:
        scan.issue(FileStatus.SUSPICIOUS, f"TorchScript code (not analysed) in {_some(kinds['code'])}")
    if "pickle" not in kinds:
        scan.issue(FileStatus.SUSPICIOUS, f"zip archive {where} holds no pickle (.pkl) member: not a "
                                          "recognised torch checkpoint")


def _some(items: list[str], shown: int = 3) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


_PICKLE_MEMBER_SUFFIXES = (".pkl", ".debug_pkl")


def _scan_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, scan: _Scan, label: str, depth: int) -> str:
    """Walk a member that is (or looks like) a pickle, follow a nested archive; returns the member's kind."""
    if info.is_dir() or _is_torch_record(info.filename):
        return "record"
    name = PurePosixPath(info.filename)
    with archive.open(info) as member:
        head = member.read(4)
        member.seek(0)
        if name.suffix in _PICKLE_MEMBER_SUFFIXES or _looks_like_pickle(head):
            if name.suffix not in _PICKLE_MEMBER_SUFFIXES:
                scan.issue(FileStatus.SUSPICIOUS, f"pickle data in archive member {label} without a .pkl name")
            walks = _walk_stream(_Window(member, 0, info.file_size), scan, label)
            if len(walks) > 1:
                scan.issue(FileStatus.SUSPICIOUS, f"{len(walks)} pickles in {label}; loaders read only the first")
            return "pickle"
        if head == ZIP_MAGIC:
            scan.issue(FileStatus.SUSPICIOUS, f"nested archive {label}")
            if depth + 1 >= LIMITS.max_depth:
                scan.issue(FileStatus.SUSPICIOUS, f"archive nesting deeper than {LIMITS.max_depth} not followed")
            else:
                _scan_zip(member, scan, label, depth + 1)
            return "nested"
    return "code" if name.suffix == ".py" or "code" in name.parts else "other"


def _is_torch_record(filename: str) -> bool:
    """Raw tensor bytes (`<archive>/data/<key>`) and torch's small metadata records."""
    parts = PurePosixPath(filename).parts
    if len(parts) >= 2 and parts[-2] == "data" and parts[-1].isdigit():
        return True
    return parts[-1] in _TORCH_RECORDS if parts else False


def _looks_like_pickle(head: bytes) -> bool:
    """A protocol 2+ pickle starts with PROTO <n>."""
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= HIGHEST_PICKLE_PROTOCOL


def _scan_tar(stream: IO[bytes], scan: _Scan, where: str) -> None:
    """Pre-1.0 torch tar checkpoints: 'sys_info' and 'pickle' are plain pickles, 'storages' and 'tensors'
    interleave pickles with raw records; each is walked with its own layout. Any other member is walked too."""
    scan.issue(FileStatus.SUSPICIOUS, "obsolete torch tar checkpoint format; re-save it (torch.save or "
                                      "safetensors) to have it fully verified")
    try:
        with tarfile.open(fileobj=stream, mode="r:") as archive:
            for info in archive.getmembers()[: LIMITS.max_members]:
                _scan_tar_member(archive, info, scan, where)
    except (tarfile.TarError, OSError, ValueError, EOFError) as exc:
        scan.issue(FileStatus.SUSPICIOUS, f"unreadable tar archive: {exc}")


def _scan_tar_member(archive: tarfile.TarFile, info: tarfile.TarInfo, scan: _Scan, where: str) -> None:
    member = archive.extractfile(info) if info.isfile() else None
    if member is None:
        return
    with member:
        label = f"{where}:{info.name}"
        reader = {"storages": _tar_storages, "tensors": _tar_tensors}.get(info.name, _tar_plain)
        problem = reader(_Window(member, 0, info.size), scan, label)
        if problem:
            scan.issue(FileStatus.SUSPICIOUS, f"tar member {label}: {problem}")


def _tar_plain(window: _Window, scan: _Scan, label: str) -> str | None:
    walks = _walk_stream(window, scan, label)
    return f"{len(walks)} pickles (expected one)" if len(walks) > 1 else None


def _tar_records(window: _Window, scan: _Scan, label: str, read_record: Any) -> str | None:
    """`<count pickle>` then `count` times `<args pickle><raw record>`, optionally then more pickles."""
    count = walk_pickle(window)
    scan.add_walk(count, f"{label} count pickle")
    if not count.complete:
        return "count pickle unreadable"
    if type(count.value) is not int or not 0 <= count.value <= LIMITS.max_records:
        return f"bad record count {_short(count.value)}"
    for index in range(count.value):
        args = walk_pickle(window)
        scan.add_walk(args, f"{label} record #{index + 1} args")
        if not args.complete:
            return f"record #{index + 1}: args pickle unreadable"
        problem = read_record(window, args.value)
        if problem:
            return f"record #{index + 1}: {problem}"
    if window.tell() < window.end:
        _walk_stream(window, scan, label)
    return None


def _tar_storages(window: _Window, scan: _Scan, label: str) -> str | None:
    def read_storage(win: _Window, args: Any) -> str | None:
        if not (isinstance(args, tuple) and len(args) == 3 and isinstance(args[2], GlobalRef)):
            return f"unexpected storage args {_short(args)}"
        element_size = STORAGE_ELEMENT_SIZES.get(args[2].name)
        if element_size is None:
            return f"unknown storage type {args[2].qualname}"
        header = win.read(8)
        if len(header) != 8:
            return "storage size missing"
        (count,) = struct.unpack("<q", header)
        return None if win.skip(count * element_size) else "storage data truncated"

    return _tar_records(window, scan, label, read_storage)


def _tar_tensors(window: _Window, scan: _Scan, label: str) -> str | None:
    def read_tensor(win: _Window, args: Any) -> str | None:
        head = win.read(4)
        if len(head) != 4:
            return "tensor header missing"
        (ndim,) = struct.unpack("<i", head)
        if not 0 <= ndim <= 64:
            return f"bad tensor rank {ndim}"
        return None if win.skip(4 + 16 * ndim + 8) else "tensor header truncated"

    return _tar_records(window, scan, label, read_tensor)


def _is_tar(stream: IO[bytes]) -> bool:
    """What torch.load tries before the pickle stream: an uncompressed tar archive."""
    start = stream.tell()
    try:
        with tarfile.open(fileobj=stream, mode="r:"):
            return True
    except (tarfile.TarError, OSError, ValueError, EOFError):
        return False
    finally:
        stream.seek(start)


def _prefix_pickle(stream: IO[bytes], size: int, scan: _Scan, container: str) -> None:
    """Polyglot check: an archive whose first bytes also parse as a pickle that imports something, which
    `pickle.load` on the file (rather than torch.load) would execute."""
    stream.seek(0)
    walk = walk_pickle(_Window(stream, 0, min(size, 1024**2)))
    if walk.globals or walk.unresolved:
        scan.issue(FileStatus.SUSPICIOUS, f"polyglot: the {container} also starts with a pickle")
        scan.add_walk(walk, "leading pickle")
    stream.seek(0)


# ------------------------------------------------------------------------------------------------ dispatch


def _scan_pickle_file(path: Path) -> _Scan:
    """Format by magic, the way torch.load decides: zip, then tar, then a pickle stream."""
    scan = _Scan(format="pickle")
    with path.open("rb") as stream:
        size = _stream_size(stream)
        head = stream.read(4)
        stream.seek(0)
        if head == ZIP_MAGIC:
            scan.format = "pytorch-zip"
            _scan_zip(stream, scan, path.name, depth=0)
        elif _is_tar(stream):
            scan.format = "pytorch-tar"
            _scan_tar(stream, scan, "tar")
            _prefix_pickle(stream, size, scan, "tar archive")
        else:
            _scan_pickle_stream(stream, size, scan, "stream")
            if scan.format != "unknown" and zipfile.is_zipfile(stream):
                scan.issue(FileStatus.SUSPICIOUS, "polyglot: the pickle stream is also a zip archive")
                _scan_zip(stream, scan, "embedded zip", depth=1)
    return scan


def scan_file(path: Path, rel: str) -> FileFinding:
    """Statically scan one weight file; never raises for file contents, never executes anything."""
    suffix = PurePosixPath(rel).suffix.lower()
    if suffix in UNSUPPORTED_WEIGHTS:
        fmt = UNSUPPORTED_WEIGHTS[suffix]
        return FileFinding(rel, fmt, FileStatus.SKIPPED.value, f"{fmt} weights are not statically scanned")
    try:
        if suffix in SAFETENSORS_SUFFIXES:
            return _scan_safetensors(path, rel)
        scan = _scan_pickle_file(path)
        if scan.format == "unknown":
            return FileFinding(rel, "unknown", FileStatus.SKIPPED.value, scan.issues[0][1])
        return scan.finding(rel)
    except OSError as exc:
        return FileFinding(rel, suffix.lstrip(".") or "unknown", FileStatus.SKIPPED.value, f"unreadable: {exc}")
    except Exception as exc:  # noqa: BLE001 - a scanner bug must not pass a file as safe
        return FileFinding(rel, suffix.lstrip(".") or "unknown", FileStatus.SUSPICIOUS.value,
                           f"internal scanner error ({type(exc).__name__}: {exc}); file not verified")


def is_weight_file(rel: str) -> bool:
    """Whether a path names model weights by its suffix (scanned, or listed as an unsupported format)."""
    return PurePosixPath(rel).suffix.lower() in WEIGHT_SUFFIXES


def has_dangerous(serialization: Serialization) -> bool:
    """Whether any file was found able to execute code on load."""
    return any(f.status == FileStatus.DANGEROUS.value for f in serialization.files)


def scan_snapshot(local_dir: Path, files: list[str]) -> tuple[Serialization, list[Skipped]]:
    """Scan every weight file among `files` (paths relative to `local_dir`).

    Weight files are listed in the Serialization (unsupported formats with status "skipped"); code files and
    unrecognised binary files go to the skipped list with a category; text and tokenizer files are not
    weights and are left out. A non-weight file whose bytes are a pickle or a zip is scanned as weights.
    """
    serialization, skipped = Serialization(), []
    for rel in sorted(dict.fromkeys(files)):
        path = Path(local_dir) / rel
        finding, skip = _scan_entry(path, rel)
        if finding is not None:
            serialization.files.append(finding)
        if skip is not None:
            skipped.append(skip)
    return serialization, skipped


def _scan_entry(path: Path, rel: str) -> tuple[FileFinding | None, Skipped | None]:
    suffix = PurePosixPath(rel).suffix.lower()
    if not path.is_file():
        return None, Skipped(rel, "missing", "listed in the snapshot but not a readable file")
    if suffix in CODE_SUFFIXES:
        return None, Skipped(rel, "code", f"{CODE_SUFFIXES[suffix]}: never executed or analysed; loading the "
                                          "model with trust_remote_code=True would run repository code")
    if is_weight_file(rel):
        finding = scan_file(path, rel)
        if finding.status == FileStatus.SKIPPED.value:
            category = "unreadable" if finding.reason.startswith("unreadable") else "unsupported_format"
            return finding, Skipped(rel, category, finding.reason)
        return finding, None
    return _sniff_other(path, rel)


def _sniff_other(path: Path, rel: str) -> tuple[FileFinding | None, Skipped | None]:
    """Non-weight names: pickles and zips holding pickles are scanned anyway (at least suspicious: a loader
    that reads them is custom code), other binary files are listed as skipped, text is left out."""
    try:
        with path.open("rb") as stream:
            head = stream.read(8192)
    except OSError as exc:
        return None, Skipped(rel, "unreadable", str(exc))
    if head[:4] == ZIP_MAGIC or _looks_like_pickle(head):
        finding = scan_file(path, rel)
        if head[:4] == ZIP_MAGIC and not finding.globals and finding.status != FileStatus.DANGEROUS.value:
            return None, Skipped(rel, "unsupported_format", "zip archive without pickle data (not scanned)")
        worst = max(FileStatus(finding.status), FileStatus.SUSPICIOUS, key=_RANK.index)
        finding.status = worst.value
        finding.reason = f"pickle data in a file not named as weights; {finding.reason}"
        return finding, None
    if _is_text(head) or PurePosixPath(rel).suffix.lower() in OTHER_BINARY_SUFFIXES:
        return None, None
    return None, Skipped(rel, "unsupported_format", "unrecognised binary file (not a pickle, zip or safetensors)")


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # a multi-byte character cut at the 8 KiB boundary
    return True


# ------------------------------------------------------------------------------------------------ safetensors

# Bits per element (sub-byte types pack; the reference loader rejects tensors whose bits do not fill bytes).
SAFETENSORS_DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "F8_E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "I64": 64, "U64": 64,
    "F64": 64, "C64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}


class SafetensorsError(Exception):
    """The file breaks the safetensors format; the message says where."""


def _scan_safetensors(path: Path, rel: str) -> FileFinding:
    """Check the header the way the reference loader does; a malformed file is suspicious, never dangerous."""
    try:
        count, header_len = _check_safetensors(path)
    except SafetensorsError as exc:
        return FileFinding(rel, "safetensors", FileStatus.SUSPICIOUS.value, f"malformed safetensors: {exc}")
    return FileFinding(rel, "safetensors", FileStatus.SAFE.value,
                       f"valid safetensors: {count} tensor(s), {header_len:,}-byte header")


def _check_safetensors(path: Path) -> tuple[int, int]:
    with path.open("rb") as stream:
        size = _stream_size(stream)
        raw_len = stream.read(8)
        if len(raw_len) != 8:
            raise SafetensorsError(f"file is {size} bytes, shorter than the 8-byte header length")
        (header_len,) = struct.unpack("<Q", raw_len)
        if header_len > LIMITS.max_header_bytes:
            raise SafetensorsError(f"header length {header_len:,} exceeds {LIMITS.max_header_bytes:,} bytes")
        if 8 + header_len > size:
            raise SafetensorsError(f"header length {header_len:,} runs past the end of the {size:,}-byte file")
        header = _parse_header(stream.read(header_len))
    entries = _tensor_entries(header)
    _check_layout(entries, size - 8 - header_len)
    return len(entries), header_len


def _parse_header(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SafetensorsError(f"header is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if not text.startswith("{"):
        raise SafetensorsError("header does not start with '{'")
    try:
        header = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_reject_constant)
    except (json.JSONDecodeError, SafetensorsError, RecursionError) as exc:
        raise SafetensorsError(f"header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise SafetensorsError("header is not a JSON object")
    return header


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        duplicate = next(k for k in keys if keys.count(k) > 1)
        raise SafetensorsError(f"duplicate key {duplicate!r}")
    return dict(pairs)


def _reject_constant(name: str) -> Any:
    raise SafetensorsError(f"non-standard JSON constant {name}")


@dataclass(frozen=True)
class _Tensor:
    name: str
    begin: int
    end: int


def _tensor_entries(header: dict[str, Any]) -> list[_Tensor]:
    entries = []
    for name, info in header.items():
        if name == "__metadata__":
            _check_metadata(info)
            continue
        entries.append(_tensor_entry(name, info))
    return entries


def _check_metadata(info: Any) -> None:
    if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
        raise SafetensorsError("__metadata__ must map strings to strings")


def _is_int(value: Any) -> bool:
    return type(value) is int


def _tensor_entry(name: str, info: Any) -> _Tensor:
    if not isinstance(info, dict):
        raise SafetensorsError(f"tensor {name!r}: entry is not an object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if dtype not in SAFETENSORS_DTYPE_BITS:
        raise SafetensorsError(f"tensor {name!r}: unknown dtype {_short(dtype)}")
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        raise SafetensorsError(f"tensor {name!r}: shape {_short(shape)} is not a list of non-negative integers")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) and o >= 0 for o in offsets)):
        raise SafetensorsError(f"tensor {name!r}: data_offsets {_short(offsets)} is not [begin, end]")
    begin, end = offsets
    if end < begin:
        raise SafetensorsError(f"tensor {name!r}: data_offsets end {end} before begin {begin}")
    bits = math.prod(shape) * SAFETENSORS_DTYPE_BITS[dtype]
    if bits % 8:
        raise SafetensorsError(f"tensor {name!r}: {bits} bits of {dtype} do not fill whole bytes")
    if end - begin != bits // 8:
        raise SafetensorsError(f"tensor {name!r}: {end - begin} bytes for shape {shape} of {dtype}, "
                               f"expected {bits // 8}")
    return _Tensor(name, begin, end)


def _check_layout(entries: list[_Tensor], data_len: int) -> None:
    """Tensors tile the data section exactly: in bounds, no overlap, no gap, nothing after the last."""
    cursor = 0
    for tensor in sorted(entries, key=lambda t: (t.begin, t.end)):
        if tensor.end > data_len:
            raise SafetensorsError(f"tensor {tensor.name!r}: data_offsets end {tensor.end:,} beyond the "
                                   f"{data_len:,}-byte data section")
        if tensor.begin < cursor:
            raise SafetensorsError(f"tensor {tensor.name!r}: bytes {tensor.begin:,}..{tensor.end:,} overlap "
                                   f"the previous tensor (ends at {cursor:,})")
        if tensor.begin > cursor:
            raise SafetensorsError(f"{tensor.begin - cursor:,} unreferenced byte(s) before tensor "
                                   f"{tensor.name!r} at offset {cursor:,}")
        cursor = tensor.end
    if cursor != data_len:
        raise SafetensorsError(f"{data_len - cursor:,} unreferenced byte(s) after the last tensor")

