"""Severity policy and the pickle global lists: what a file may import, and what a finding costs.

Every check a reader records carries a rule id, a file status (safe < skipped-unverified < suspicious <
dangerous) and a severity (none < low < medium < high < critical). The default CI gate fails at high, so:

- critical: the file would run code on load with a known primitive (a denylisted global, an import computed at
  load time, an extension-registry code, a Keras Lambda, a chat template that reaches Python internals).
- high: the loader would call something nobody vetted (a call of a global on neither list), the loaders would
  disagree on what the file holds (frame differential), a name hides the content (a pickle named .onnx), an
  archive escapes its folder, a weight-bearing file was not scanned, a stray executable or script ships beside
  the weights, repository code the config asks loaders to run.
- medium: something a loader would refuse or that needs a human (malformed files, imports of unvetted globals
  that are not called, custom ONNX op domains, TorchScript code, stray Python files nothing references).
- low/none: informational; safe.
"""

from __future__ import annotations

import _compat_pickle
from dataclasses import dataclass

from scanner.report import FileStatus, Severity

__all__ = [
    "DANGEROUS_CALLABLES",
    "DANGEROUS_MODULES",
    "SAFE_GLOBALS",
    "STATUS_RANK",
    "Check",
    "classify_global",
    "denied",
    "is_safe_global",
    "normalise",
    "pat_rule",
    "worst_status",
]

STATUS_RANK = [FileStatus.SAFE, FileStatus.SKIPPED, FileStatus.SUSPICIOUS, FileStatus.DANGEROUS]


def worst_status(*statuses: FileStatus) -> FileStatus:
    return max(statuses, key=STATUS_RANK.index, default=FileStatus.SAFE)


@dataclass(frozen=True)
class Check:
    """One thing a reader found in a file."""

    rule: str
    status: FileStatus
    severity: Severity
    message: str

    @property
    def pat(self) -> str:
        return pat_rule(self.rule)

    def as_dict(self) -> dict[str, str]:
        return {
            "rule": self.pat,
            "check": self.rule,
            "status": self.status.value,
            "severity": self.severity.value,
            "message": self.message,
        }


# The static scanner's check names -> the report's rule catalogue (scanner/report/rules.py).
_PAT_BY_PREFIX = (
    ("pickle-dangerous-global", "PAT002"),
    ("pickle-unresolvable-import", "PAT002"),
    ("keras-lambda", "PAT002"),
    ("keras-dangerous-object", "PAT002"),
    ("torchscript-dangerous-code", "PAT002"),
    ("repo-code-referenced", "PAT004"),
    ("format-not-analysed", "PAT007"),
    ("unscanned", "PAT007"),
    ("archive-unread-member", "PAT007"),
    ("hub-flagged-unscanned", "PAT007"),
    ("not-scanned", "PAT007"),
    ("repo-", "PAT009"),
    ("format-mismatch", "PAT010"),
    ("template-", "PAT011"),
    ("archive-", "PAT012"),
    ("hub-", "PAT013"),
)


def pat_rule(check: str) -> str:
    """The PAT rule id a check reports under (PAT003, suspicious serialization, unless listed)."""
    return next((pat for prefix, pat in _PAT_BY_PREFIX if check.startswith(prefix)), "PAT003")


# Storage classes named in torch persistent ids, with the element size their records are written in.
STORAGE_ELEMENT_SIZES = {
    "DoubleStorage": 8,
    "FloatStorage": 4,
    "HalfStorage": 2,
    "BFloat16Storage": 2,
    "LongStorage": 8,
    "IntStorage": 4,
    "ShortStorage": 2,
    "CharStorage": 1,
    "ByteStorage": 1,
    "BoolStorage": 1,
    "ComplexDoubleStorage": 16,
    "ComplexFloatStorage": 8,
    "QInt8Storage": 1,
    "QInt32Storage": 4,
    "QUInt8Storage": 1,
    "QUInt4x2Storage": 1,
    "QUInt2x4Storage": 1,
    "UntypedStorage": 1,
}
TORCH_DTYPES = (
    "float64",
    "float32",
    "float16",
    "bfloat16",
    "int64",
    "int32",
    "int16",
    "int8",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
    "complex32",
    "complex64",
    "complex128",
    "float8_e4m3fn",
    "float8_e4m3fnuz",
    "float8_e5m2",
    "float8_e5m2fnuz",
    "float8_e8m0fnu",
    "float4_e2m1fn_x2",
    "qint8",
    "qint32",
    "quint8",
    "quint4x2",
    "quint2x4",
)

# ------------------------------------------------------------------------------------------------ allowlist

# Exactly what real checkpoints need; each entry is a type or a rebuild function whose arguments are data:
#   collections.OrderedDict, builtins set/frozenset/bytearray/complex/slice/range   inert containers
#   torch._utils._rebuild_tensor(_v2/_v3), _rebuild_parameter(_with_state), _rebuild_sparse_tensor,
#   torch._tensor._rebuild_from_type_v2 with torch.Tensor / torch.nn.Parameter     tensors, parameters, sparse
#   torch.<X>Storage, torch.cuda.<X>Storage, UntypedStorage, torch.<dtype>, Size, device, layouts, memory formats
#   numpy _reconstruct / ndarray / dtype / scalar / _frombuffer, numpy dtype classes, numpy.random state
#                                            (rng_state.pth, optimizer states, numpy arrays in any checkpoint)
#   _codecs.encode                           how protocol 2 spells bytes (it can compute strings, e.g. rot13:
#                                            hence unresolvable STACK_GLOBAL operands are dangerous anyway)
#   transformers TrainingArguments and its enums, accelerate's enums   (training_args.bin)
#   joblib's NumpyArrayWrapper and scikit-learn estimator classes (see is_safe_global)
_NUMPY_CORE = ("numpy.core", "numpy._core")
_NUMPY_DTYPE_CLASSES = (
    "Float64DType",
    "Float32DType",
    "Float16DType",
    "Int64DType",
    "Int32DType",
    "Int16DType",
    "Int8DType",
    "UInt64DType",
    "UInt32DType",
    "UInt16DType",
    "UInt8DType",
    "BoolDType",
    "Complex64DType",
    "Complex128DType",
    "LongDType",
    "ULongDType",
    "LongLongDType",
    "ULongLongDType",
    "ObjectDType",
    "StrDType",
    "BytesDType",
    "LongDoubleDType",
    "DateTime64DType",
    "TimeDelta64DType",
    "VoidDType",
)
_TRAINING_ENUMS = (
    "transformers.training_args.TrainingArguments",
    "transformers.training_args.OptimizerNames",
    "transformers.training_args.ParallelMode",
    "transformers.trainer_utils.IntervalStrategy",
    "transformers.trainer_utils.SaveStrategy",
    "transformers.trainer_utils.HubStrategy",
    "transformers.trainer_utils.SchedulerType",
    "transformers.trainer_utils.EvaluationStrategy",
    "transformers.trainer_utils.FSDPOption",
    "transformers.debug_utils.DebugOption",
    "transformers.training_args_seq2seq.Seq2SeqTrainingArguments",
    "transformers.generation.configuration_utils.GenerationConfig",
    "transformers.trainer_pt_utils.AcceleratorConfig",
    "transformers.trainer_utils.HPSearchBackend",
    "transformers.training_args.TrainerMemoryTracker",
    "accelerate.utils.dataclasses.DistributedType",
    "accelerate.state.PartialState",
    "accelerate.utils.dataclasses.DeepSpeedPlugin",
    "accelerate.utils.dataclasses.FullyShardedDataParallelPlugin",
    "sentence_transformers.training_args.SentenceTransformerTrainingArguments",
    "sentence_transformers.training_args.BatchSamplers",
    "sentence_transformers.training_args.MultiDatasetBatchSamplers",
)
_TENSOR_KINDS = ("BFloat16", "Bool", "Byte", "Char", "Double", "Float", "Half", "Int", "Long", "Short")
SAFE_GLOBALS = frozenset(
    {
        "collections.OrderedDict",
        "collections.defaultdict",
        "builtins.dict",
        "builtins.list",
        "builtins.tuple",
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor_v3",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch._utils._rebuild_sparse_tensor",
        "torch._utils._rebuild_qtensor",
        "torch._utils._rebuild_meta_tensor_no_storage",
        "torch._utils._rebuild_wrapper_subclass",
        "torch._tensor._rebuild_from_type_v2",
        "torch.Tensor",
        "torch.nn.parameter.Parameter",
        "torch.nn.Parameter",
        "torch.nn.parameter.Buffer",
        "torch.UntypedStorage",
        "torch.storage.UntypedStorage",
        "torch.storage.TypedStorage",
        "torch.Size",
        "torch.device",
        "torch.sparse_coo",
        "torch.sparse_csr",
        "torch.sparse_csc",
        "torch.sparse_bsr",
        "torch.sparse_bsc",
        "torch.strided",
        "torch.contiguous_format",
        "torch.channels_last",
        "torch.channels_last_3d",
        "torch.preserve_format",
        "torch.per_tensor_affine",
        "torch.per_channel_affine",
        "torch.serialization._get_layout",
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.random._pickle.__randomstate_ctor",
        "numpy.random._pickle.__bit_generator_ctor",
        "numpy.random._pickle.__generator_ctor",
        "numpy.random.mtrand.RandomState",
        "numpy.random._mt19937.MT19937",
        "numpy.random._pcg64.PCG64",
        "numpy.random._generator.Generator",
        "numpy.random.bit_generator.SeedSequence",
        "_codecs.encode",
        "builtins.set",
        "builtins.frozenset",
        "builtins.bytearray",
        "builtins.complex",
        "builtins.slice",
        "builtins.range",
        "builtins.bytes",
        "builtins.int",
        "builtins.float",
        "builtins.str",
        "builtins.bool",
        "joblib.numpy_pickle.NumpyArrayWrapper",
        "joblib.numpy_pickle_compat.NDArrayWrapper",
        "datetime.datetime",
        "datetime.date",
        "datetime.timedelta",
        "datetime.timezone",
        "decimal.Decimal",
        "fractions.Fraction",
        "uuid.UUID",
        "pathlib.PosixPath",
        "pathlib.WindowsPath",
        "argparse.Namespace",
    }
    | set(_TRAINING_ENUMS)
    | {
        "collections.Counter",
        "torch._utils._rebuild_device_tensor_from_cpu_tensor",
        "torch._utils._rebuild_device_tensor_from_numpy",
        "torch._utils._rebuild_nested_tensor",
        "torch.per_channel_affine_float_qparams",
        "torch.per_channel_symmetric",
        "torch.per_tensor_symmetric",
    }
    | {f"torch.{prefix}{kind}Tensor" for prefix in ("", "cuda.", "sparse.", "cuda.sparse.") for kind in _TENSOR_KINDS}
    | {
        f"torch.{kind}{bits}"
        for kind in ("int", "uint", "bits")
        for bits in ("1", "2", "3", "4", "5", "6", "7", "8", "16", "1x8", "2x4", "4x2")
    }
    | {f"torch.{name}" for name in STORAGE_ELEMENT_SIZES if name != "UntypedStorage"}
    | {f"torch.cuda.{name}" for name in STORAGE_ELEMENT_SIZES if not name.startswith(("Q", "Untyped"))}
    | {f"torch.{dtype}" for dtype in TORCH_DTYPES}
    | {f"{core}.multiarray.{name}" for core in _NUMPY_CORE for name in ("_reconstruct", "scalar")}
    | {f"{core}.numeric._frombuffer" for core in _NUMPY_CORE}
    | {f"numpy.dtypes.{name}" for name in _NUMPY_DTYPE_CLASSES}
)
# scikit-learn: estimator classes (CamelCase names) of these packages are data containers whose __setstate__
# only restores attributes; sklearn's functions (dataset fetchers, ...) stay unvetted.
_SKLEARN_SAFE_PREFIXES = ("sklearn.",)
_SKLEARN_EXCLUDED = (
    "sklearn.datasets",
    "sklearn.externals",
    "sklearn.utils._testing",
    "sklearn.utils.fixes",
    "sklearn.utils._joblib",
    "sklearn.utils.parallel",
    "sklearn.experimental",
)

# ------------------------------------------------------------------------------------------------ denylist

# Any attribute of these modules: process and code execution, imports and name resolvers, file/network I/O,
# deserialisers (a nested load escapes this scan), profilers/tracers/debuggers, packaging tools, logging
# handlers, interpreter internals and torch's compiler/JIT/packaging gadgets (the 2025-26 bypass classes).
DANGEROUS_MODULES = frozenset(
    {
        "os",
        "posix",
        "nt",
        "subprocess",
        "_posixsubprocess",
        "sys",
        "runpy",
        "importlib",
        "imp",
        "pkgutil",
        "zipimport",
        "pty",
        "socket",
        "_socket",
        "ssl",
        "select",
        "selectors",
        "shutil",
        "tempfile",
        "glob",
        "webbrowser",
        "marshal",
        "pickle",
        "_pickle",
        "cPickle",
        "pickletools",
        "shelve",
        "dbm",
        "dill",
        "cloudpickle",
        "joblib.numpy_pickle_utils",
        "types",
        "ctypes",
        "_ctypes",
        "cffi",
        "code",
        "codeop",
        "timeit",
        "bdb",
        "pdb",
        "trace",
        "tracemalloc",
        "profile",
        "cProfile",
        "_lsprof",
        "pstats",
        "doctest",
        "unittest",
        "asyncio",
        "multiprocessing",
        "_multiprocessing",
        "concurrent",
        "threading",
        "_thread",
        "signal",
        "ensurepip",
        "pip",
        "venv",
        "distutils",
        "setuptools",
        "pkg_resources",
        "site",
        "sysconfig",
        "idlelib",
        "lib2to3",
        "tkinter",
        "turtle",
        "pydoc",
        "pydoc_data",
        "antigravity",
        "this",
        "builtins.__import__",
        "http",
        "urllib",
        "ftplib",
        "smtplib",
        "telnetlib",
        "poplib",
        "imaplib",
        "nntplib",
        "xmlrpc",
        "socketserver",
        "wsgiref",
        "requests",
        "httpx",
        "httpx2",
        "urllib3",
        "aiohttp",
        "paramiko",
        "websocket",
        "websockets",
        "commands",
        "popen2",
        "sqlite3",
        "logging",
        "inspect",
        "gc",
        "weakref",
        "atexit",
        "faulthandler",
        "io",
        "_io",
        "fileinput",
        "linecache",
        "mmap",
        "zipfile",
        "tarfile",
        "operator",
        "_operator",
        "functools",
        "_functools",
        "copyreg._extension_registry",
        "numpy.testing",
        "numpy.f2py",
        "numpy.distutils",
        "numpy.lib.npyio",
        "numpy.ctypeslib",
        "torch.hub",
        "torch.package",
        "torch.utils.cpp_extension",
        "torch._dynamo",
        "torch._inductor",
        "torch.fx",
        "torch.jit",
        "torch._jit_internal",
        "torch.utils.collect_env",
        "torch.utils.bottleneck",
        "torch.utils.data.datapipes",
        "torch.distributed",
        "torch.multiprocessing",
        "torch._C",
        "torch._weights_only_unpickler",
        "torch.testing",
        "torch.utils.benchmark",
        "torch.compiler",
        "torch.export",
        "torch._export",
        "torch.onnx",
        "torch.library",
        "torch._ops",
        "torch.ops",
        "torch._classes",
        "torch.classes",
        "transformers.dynamic_module_utils",
        "transformers.utils.hub",
        "huggingface_hub",
        "keras.src.saving",
    }
)
# Single callables: builtins that evaluate code, import, touch files or reach arbitrary attributes; loaders that
# would deserialize further (untrusted) pickles.
DANGEROUS_CALLABLES = frozenset(
    {
        f"builtins.{name}"
        for name in (
            "eval",
            "exec",
            "execfile",
            "compile",
            "open",
            "file",
            "getattr",
            "setattr",
            "delattr",
            "__import__",
            "globals",
            "locals",
            "vars",
            "input",
            "breakpoint",
            "exit",
            "quit",
            "help",
            "reload",
            "apply",
            "memoryview",
            "object",
            "type",
            "super",
            "classmethod",
            "staticmethod",
            "property",
            "print",
            "dir",
            "id",
            "hasattr",
        )
    }
    | {
        "codecs.open",
        "numpy.load",
        "numpy.save",
        "numpy.fromfile",
        "numpy.loadtxt",
        "numpy.genfromtxt",
        "numpy.memmap",
        "joblib.load",
        "joblib.dump",
        "torch.load",
        "torch.save",
        "torch.storage._load_from_bytes",
        "numpy.core.multiarray._reconstruct.__globals__",
        "copyreg._reconstructor.__globals__",
        "copyreg.add_extension",
        "torch.from_file",
        "torch.UntypedStorage.from_file",
        "torch.serialization.load",
        "torch.serialization._load",
        "torch.serialization._legacy_load",
        "torch.serialization.load_from_file",
    }
)
_DUNDER_OK = frozenset({"__main__", "__builtin__", "__torch__"})  # __builtin__: Python 2 builtins, mapped on load


def normalise(module: str, name: str) -> tuple[str, str]:
    """Python 2 names the unpickler maps for protocols < 3 (`__builtin__` -> `builtins`, ...)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _is_dunder(part: str) -> bool:
    return len(part) > 4 and part.startswith("__") and part.endswith("__") and part not in _DUNDER_OK


def denied(module: str, name: str) -> str | None:
    """Why `module.name` reaches a denylisted capability, or None.

    Protocol 4 resolves dotted names attribute by attribute from the imported module, so `torch._utils` +
    `os.system` is `os.system`: tails starting in the name part are checked too. Dunder hops (`__builtins__`,
    `__globals__`, `__class__`, `__subclasses__`, ...) anywhere are attribute traversal no checkpoint needs;
    a dotted name at all is attribute traversal (the unpickler walks it with getattr).
    """
    name_parts = name.split(".")
    if any(
        _is_dunder(p) for p in name_parts if p not in ("__randomstate_ctor", "__bit_generator_ctor", "__generator_ctor")
    ):
        return "dunder attribute traversal"
    if any(_is_dunder(p) for p in module.split(".")):
        return "dunder module path"
    module_parts = module.split(".")
    parts = module_parts + name_parts
    for start in [0, *range(len(module_parts), len(parts))]:
        for stop in range(start + 1, len(parts) + 1):
            dotted = ".".join(parts[start:stop])
            if dotted in DANGEROUS_CALLABLES:
                return f"denylisted callable {dotted}"
            if dotted in DANGEROUS_MODULES and (stop < len(parts) or start > 0):
                return f"denylisted module {dotted}"
    if len(name_parts) > 1 and f"{module}.{name}" not in SAFE_GLOBALS:
        return "dotted name (attribute traversal)"
    return None


def is_safe_global(module: str, name: str) -> bool:
    qualname = f"{module}.{name}"
    if qualname in SAFE_GLOBALS:
        return True
    if module == "__torch__" or module.startswith("__torch__."):
        return True  # a TorchScript class: resolved by torch.jit's own loader from the archive's code (analysed)
    if module.startswith(_SKLEARN_SAFE_PREFIXES) and not module.startswith(_SKLEARN_EXCLUDED):
        return "." not in name and name[:1].isupper() and not name.startswith("_")
    return False


# Harmless helpers inside denylisted packages (checked before the denylist): TorchScript's list builders.
SAFE_OVERRIDES = frozenset(
    f"torch.jit._pickle.{name}"
    for name in (
        "build_intlist",
        "build_tensorlist",
        "build_doublelist",
        "build_boollist",
        "build_tensor_from_id",
        "restore_type_tag",
    )
)


def classify_global(module: str, name: str) -> FileStatus:
    """SAFE (allowlisted), DANGEROUS (denylisted anywhere in the dotted path) or SUSPICIOUS (anything else)."""
    norm_module, norm_name = normalise(module, name)
    if f"{norm_module}.{norm_name}" in SAFE_OVERRIDES:
        return FileStatus.SAFE
    if denied(module, name) or denied(norm_module, norm_name):
        return FileStatus.DANGEROUS
    if is_safe_global(norm_module, norm_name):
        return FileStatus.SAFE
    return FileStatus.SUSPICIOUS
