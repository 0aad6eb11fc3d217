"""The one file-type table: what a file is, by its bytes first and its name second.

fetch (which files of a hub repo to download), the static scanner (which reader to run), the encoder loader and
the renderers all read this table. `sniff` decides by magic bytes; `by_name` by suffix (or a well-known file
name); `classify` combines them: the content wins, and a name that promises another format is reported
(`Classification.mismatch`). Nothing here opens a file or imports a format library.
"""

from __future__ import annotations

import io
import pickletools
import struct
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath

__all__ = [
    "CODE_SUFFIXES",
    "FILE_TYPES",
    "Classification",
    "FileType",
    "by_name",
    "classify",
    "file_type",
    "is_weight_bearing",
    "looks_like_pickle",
    "sniff",
]

# kinds
WEIGHTS, ARCHIVE, CODE, EXECUTABLE, TEXT, DATA = "weights", "archive", "code", "executable", "text", "data"


@dataclass(frozen=True)
class FileType:
    """One row of the table.

    name: the format id reports show ("pickle", "pytorch-zip", "safetensors", ...); kind: weights, archive,
    code, executable, text or data; suffixes: names that promise it; weight_bearing: a loader may build a model
    (or execute something) from it, so fetch downloads it and the static scan reads it; executes_on_load: its
    usual loader can run code it carries (pickle, Keras Lambda layers, TorchScript).
    """

    name: str
    kind: str
    suffixes: tuple[str, ...] = ()
    weight_bearing: bool = False
    executes_on_load: bool = False
    description: str = ""


FILE_TYPES: tuple[FileType, ...] = (
    FileType("safetensors", WEIGHTS, (".safetensors",), True, False, "safetensors tensors (header + raw bytes)"),
    FileType(
        "pickle",
        WEIGHTS,
        (".pkl", ".pickle", ".joblib", ".dill", ".sav", ".p", ".pdparams", ".pdopt"),
        True,
        True,
        "Python pickle stream (joblib, dill, scikit-learn, raw pickles)",
    ),
    FileType(
        "pytorch",
        WEIGHTS,
        (".bin", ".pt", ".pth", ".ckpt", ".pt2"),
        True,
        True,
        "PyTorch checkpoint (torch.save: zip, legacy stream or tar; all pickle-based)",
    ),
    FileType("pytorch-zip", WEIGHTS, (), True, True, "torch.save zip archive (data.pkl + tensor records)"),
    FileType("pytorch-legacy", WEIGHTS, (), True, True, "torch.save legacy stream (magic number + pickles)"),
    FileType("pytorch-tar", WEIGHTS, (), True, True, "pre-1.0 torch tar checkpoint"),
    FileType("torchscript", WEIGHTS, (".ptl", ".torchscript"), True, True, "TorchScript archive (code/ + pickles)"),
    FileType("numpy", WEIGHTS, (".npy",), True, True, "NumPy .npy array (object arrays hold a pickle)"),
    FileType("numpy-npz", WEIGHTS, (".npz",), True, True, "NumPy .npz archive of .npy arrays"),
    FileType("hdf5", WEIGHTS, (".h5", ".hdf5", ".hdf"), True, True, "HDF5 (Keras 2 / tf.keras .h5 models)"),
    FileType("keras", WEIGHTS, (".keras",), True, True, "Keras 3 .keras zip (config.json + weights)"),
    FileType("onnx", WEIGHTS, (".onnx",), True, False, "ONNX protobuf model"),
    FileType("onnx-data", WEIGHTS, (".onnx_data", ".onnx.data"), True, False, "ONNX external tensor data"),
    FileType("gguf", WEIGHTS, (".gguf",), True, False, "GGUF (llama.cpp) tensors + metadata"),
    FileType("ggml", WEIGHTS, (".ggml", ".ggmlv3"), True, False, "legacy GGML weights"),
    FileType("tflite", WEIGHTS, (".tflite",), True, False, "TensorFlow Lite flatbuffer"),
    FileType("tensorflow-protobuf", WEIGHTS, (".pb",), True, False, "TensorFlow protobuf graph"),
    FileType("flax-msgpack", WEIGHTS, (".msgpack",), True, False, "Flax msgpack weights"),
    FileType("rust-bert", WEIGHTS, (".ot",), True, False, "tch-rs / rust-bert weights"),
    FileType("coreml", WEIGHTS, (".mlmodel",), True, False, "Core ML model"),
    FileType("nemo", WEIGHTS, (".nemo",), True, True, "NVIDIA NeMo tar archive"),
    FileType(
        "ambiguous-model",
        WEIGHTS,
        (".model",),
        True,
        True,
        "'.model': a sentencepiece tokenizer or a gensim/word2vec pickle; the bytes decide",
    ),
    FileType("zip", ARCHIVE, (".zip", ".mar", ".whl", ".egg"), True, True, "zip archive"),
    FileType("tar", ARCHIVE, (".tar",), True, True, "tar archive"),
    FileType("gzip", ARCHIVE, (".gz", ".tgz"), True, True, "gzip stream (often a tar)"),
    FileType("bzip2", ARCHIVE, (".bz2", ".tbz2"), True, True, "bzip2 stream"),
    FileType("xz", ARCHIVE, (".xz", ".txz"), True, True, "xz stream"),
    FileType("zstd", ARCHIVE, (".zst",), True, True, "zstandard stream"),
    FileType("7z", ARCHIVE, (".7z",), True, True, "7-Zip archive"),
    FileType("zlib", ARCHIVE, (".z", ".zlib"), True, True, "zlib stream (joblib's default compression)"),
    FileType("jar", EXECUTABLE, (".jar",), False, True, "Java archive"),
    FileType(
        "native-binary",
        EXECUTABLE,
        (".so", ".dll", ".dylib", ".exe", ".pyd", ".bin.exe", ".o", ".a"),
        False,
        True,
        "native executable or library (ELF, PE, Mach-O)",
    ),
    FileType(
        "script",
        CODE,
        (".sh", ".bash", ".zsh", ".bat", ".cmd", ".ps1", ".vbs", ".command"),
        False,
        True,
        "shell, batch or PowerShell script",
    ),
    FileType("python", CODE, (".py", ".pyx", ".pyw", ".pyi"), False, True, "Python source"),
    FileType("python-bytecode", CODE, (".pyc", ".pyo"), False, True, "compiled Python"),
    FileType("notebook", CODE, (".ipynb",), False, True, "Jupyter notebook"),
    FileType("javascript", CODE, (".js", ".mjs", ".cjs"), False, True, "JavaScript"),
    FileType("jinja-template", TEXT, (".jinja", ".jinja2", ".j2"), False, False, "Jinja2 (chat) template"),
    FileType("json", TEXT, (".json",), False, False, "JSON"),
    FileType(
        "text",
        TEXT,
        (".txt", ".md", ".yaml", ".yml", ".cfg", ".toml", ".csv", ".tsv", ".vocab", ".gitattributes", ".gitignore"),
        False,
        False,
        "text",
    ),
    FileType("image", DATA, (".png", ".jpg", ".jpeg", ".gif", ".webp", ".ico", ".bmp", ".svg"), False, False, "image"),
    FileType("pdf", DATA, (".pdf",), False, False, "PDF document"),
    FileType("sentencepiece", DATA, (".spm",), False, False, "sentencepiece model (protobuf)"),
)
_BY_NAME = {t.name: t for t in FILE_TYPES}
_BY_SUFFIX = {suffix: t for t in FILE_TYPES for suffix in t.suffixes}

CODE_SUFFIXES = frozenset(s for t in FILE_TYPES if t.kind in (CODE, EXECUTABLE) for s in t.suffixes)
# Formats that share a loader family: a name promising one and bytes of another are no disagreement.
_FAMILIES = {
    "pytorch": {"pytorch-zip", "pytorch-legacy", "pytorch-tar", "pickle", "torchscript", "zip", "tar"},
    # joblib/dill write pickles, compressed with zlib (joblib's default), gzip, bz2 or xz on request
    "pickle": {"pickle", "pytorch-zip", "pytorch-legacy", "zip", "zlib", "gzip", "bzip2", "xz"},
    "torchscript": {"torchscript", "pytorch-zip", "zip"},
    "numpy": {"numpy"},
    "numpy-npz": {"zip", "numpy-npz"},
    "keras": {"zip", "keras"},
    "hdf5": {"hdf5"},
    "onnx": {"onnx"},
    "nemo": {"tar", "gzip"},
    "ambiguous-model": {"pickle", "sentencepiece", "unknown-binary", "zip", "pytorch-zip"},
    "zip": {"zip", "pytorch-zip", "keras", "numpy-npz", "torchscript", "jar"},
    "jar": {"zip", "jar"},
    "gzip": {"gzip"},
}


def file_type(name: str) -> FileType:
    """The table row for a format id (KeyError for an unknown one)."""
    return _BY_NAME[name]


def by_name(rel: str) -> FileType | None:
    """What a path's name promises: the longest matching suffix ('.onnx.data' before '.data')."""
    name = PurePosixPath(rel).name.lower()
    for index in range(len(name)):
        if name[index] == "." and name[index:] in _BY_SUFFIX:
            return _BY_SUFFIX[name[index:]]
    return None


def is_weight_bearing(rel: str) -> bool:
    """Whether a repo file must be downloaded and read by a static scan, judged by its name (fetch decides
    before it has the bytes): every pickle-, archive-, numpy-, HDF5-, ONNX-, GGUF- or safetensors-named file."""
    found = by_name(rel)
    if found is not None:
        return found.weight_bearing
    return PurePosixPath(rel).name.endswith((".safetensors.index.json", ".bin.index.json"))


# --------------------------------------------------------------------------------------------------- content

TORCH_LEGACY_PREFIX = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"  # pickled torch MAGIC_NUMBER
_MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"\x93NUMPY", "numpy"),
    (b"\x89HDF\r\n\x1a\n", "hdf5"),
    (b"GGUF", "gguf"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),
    (b"PK\x07\x08", "zip"),
    (b"\x7fELF", "native-binary"),
    (b"\xcf\xfa\xed\xfe", "native-binary"),
    (b"\xce\xfa\xed\xfe", "native-binary"),
    (b"\xfe\xed\xfa\xcf", "native-binary"),
    (b"\xfe\xed\xfa\xce", "native-binary"),
    (b"\x89PNG", "image"),
    (b"\xff\xd8\xff", "image"),
    (b"GIF8", "image"),
    (b"%PDF", "pdf"),
    (b"lmgg", "ggml"),
    (b"fmgg", "ggml"),
    (b"tjgg", "ggml"),
    (b"algg", "ggml"),
)
_HDF5_USERBLOCK_OFFSETS = (512, 1024, 2048, 4096)
_ZLIB_HEADERS = (b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda")
# First opcodes of a protocol 0/1 pickle (MARK, GLOBAL, EMPTY_LIST/DICT/TUPLE, NONE, INT/LONG/FLOAT/STRING/...)
_PROTO01_OPENERS = frozenset(b"(c]})NILFSVKJMXUGTi\x88\x89")


def sniff(head: bytes) -> str | None:
    """The format the first bytes (ideally 8 KiB or more) prove, or None when they prove nothing."""
    if head.startswith(TORCH_LEGACY_PREFIX):
        return "pytorch-legacy"
    for magic, name in _MAGICS:
        if head.startswith(magic):
            return name
    if head[:2] == b"MZ" and len(head) >= 64:
        (pe_offset,) = struct.unpack_from("<I", head, 0x3C)
        if head[pe_offset : pe_offset + 4] == b"PE\x00\x00" or pe_offset >= len(head):
            return "native-binary"
    if head.startswith(b"#!"):
        return "script"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    if any(head[offset : offset + 8] == b"\x89HDF\r\n\x1a\n" for offset in _HDF5_USERBLOCK_OFFSETS):
        return "hdf5"
    if len(head) >= 8 and head[4:8] == b"TFL3":
        return "tflite"
    if _looks_like_safetensors(head):
        return "safetensors"
    if head[:2] in _ZLIB_HEADERS and _inflates(head):
        return "zlib"
    if looks_like_pickle(head):
        return "pickle"
    if _looks_like_onnx(head):
        return "onnx"
    return None


def _looks_like_safetensors(head: bytes) -> bool:
    if len(head) < 10:
        return False
    (length,) = struct.unpack_from("<Q", head)
    return 2 <= length <= 100_000_000 and head[8:9] == b"{" and head[9:10] in (b'"', b"}", b" ", b"\n")


def _inflates(head: bytes) -> bool:
    try:
        zlib.decompressobj().decompress(head, 64)
    except zlib.error:
        return False
    return True


def looks_like_pickle(head: bytes) -> bool:
    """PROTO 2..5 first, or protocol 0/1 opcodes that walk cleanly to a STOP (or to the end of `head`)."""
    if len(head) >= 2 and head[0] == 0x80:
        return 2 <= head[1] <= 5
    if not head or head[0] not in _PROTO01_OPENERS:
        return False
    opcodes = 0
    try:
        for op, _arg, _pos in pickletools.genops(io.BytesIO(head)):
            opcodes += 1
            if op.name == "STOP":
                return opcodes >= 2
    except Exception:  # noqa: BLE001 - ran off the end of `head` or hit a byte that is no opcode
        return opcodes >= 8  # a long clean opcode run cut by the 8 KiB window
    return False


def _looks_like_onnx(head: bytes) -> bool:
    """ModelProto starts with ir_version (field 1, varint, 1..20), then producer/graph/opset fields."""
    return (
        len(head) >= 4
        and head[0] == 0x08
        and 1 <= head[1] <= 20
        and head[2] in (0x12, 0x1A, 0x22, 0x2A, 0x3A, 0x42, 0x72)
    )


# --------------------------------------------------------------------------------------------------- combined


@dataclass(frozen=True)
class Classification:
    """content: the format the bytes prove (None: they prove nothing); named: what the name promises;
    mismatch: a description when the two disagree (a finding in itself)."""

    content: str | None
    named: FileType | None

    @property
    def format(self) -> str:
        if self.content is not None:
            return self.content
        return self.named.name if self.named is not None else "unknown"

    @property
    def mismatch(self) -> str | None:
        if self.content is None or self.named is None or self.content == self.named.name:
            return None
        if self.content in _FAMILIES.get(self.named.name, ()):
            return None
        if self.named.kind == TEXT and self.content in ("pickle",) and self.named.name == "text":
            return f"{self.content} content in a file named as text"
        return f"content is {self.content} but the name promises {self.named.name}"


def classify(rel: str, head: bytes) -> Classification:
    """Content first, name second."""
    return Classification(content=sniff(head), named=by_name(rel))
