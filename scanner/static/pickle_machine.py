"""A symbolic pickle machine: walks one pickle opcode by opcode, follows the stack and memo, records every
global the loader would import and every call it would make. Executes nothing.

The opcodes are read through `Window`, which reads the way CPython's C unpickler reads (frame extents
included), so a file crafted to read differently under `pickletools` and under `pickle.load`/`torch.load`
is walked along the C loader's path; when the paths diverge the linear path is walked too and both are
reported (see `walk_both`).
"""

from __future__ import annotations

import pickletools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, cast

from scanner.static.common import LIMITS, ScanBoundError, Window

__all__ = ["GlobalRef", "MalformedPickle", "PickleWalk", "walk_both", "walk_pickle"]

HIGHEST_PICKLE_PROTOCOL = 5


@dataclass(frozen=True)
class GlobalRef:
    """A global the loader would import (GLOBAL, INST or a resolved STACK_GLOBAL)."""

    module: str
    name: str

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(eq=False)
class Instance:
    """The result of calling `ref` (an object of that class, or what the function returned) with `args`."""

    ref: GlobalRef
    args: Any = None


class _Opaque:
    """A value the scan does not model (a dict, ...): never known to be a string."""

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
    calls: list[GlobalRef] = field(default_factory=list)  # globals the loader would call (or __setstate__ of)
    unresolved: list[str] = field(default_factory=list)  # references no static scan can name
    computed_calls: int = 0  # calls of values computed at load time
    persistent_ids: list[Any] = field(default_factory=list)
    divergences: list[str] = field(default_factory=list)  # where the C unpickler and a linear reader part ways
    error: str | None = None
    bound: str | None = None


_STRING_OPS = frozenset(
    {
        "STRING",
        "BINSTRING",
        "SHORT_BINSTRING",
        "UNICODE",
        "BINUNICODE",
        "SHORT_BINUNICODE",
        "BINUNICODE8",
    }
)
_VALUE_OPS = frozenset({"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4"}) | _STRING_OPS
_CONST_OPS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_DATA_OPS = frozenset(
    {
        "BINBYTES",
        "SHORT_BINBYTES",
        "BINBYTES8",
        "BYTEARRAY8",
        "NEXT_BUFFER",
        "FLOAT",
        "BINFLOAT",
    }
)


class _Machine:
    """Follows the stack and memo, records globals and calls; executes nothing."""

    def __init__(self, walk: PickleWalk, window: Window) -> None:
        self.walk = walk
        self.window = window
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
                items = self.stack[i + 1 :]
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
        """Pop what the opcode consumes and push opaque results (SETITEMS, DICT, ...)."""
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

    def _call(self, func: Any, args: Any = None) -> Any:
        """The loader calls `func`; returns what the scan pushes for the result."""
        if isinstance(func, GlobalRef):
            self.walk.calls.append(func)
            return Instance(func, args)
        self.walk.computed_calls += 1
        return OPAQUE

    def op_FRAME(self, op: pickletools.OpcodeInfo, arg: int) -> None:
        problem = self.window.frame(arg)
        if problem:
            raise MalformedPickle(problem)

    def op_PROTO(self, op: pickletools.OpcodeInfo, arg: int) -> None:
        if arg > HIGHEST_PICKLE_PROTOCOL:
            raise MalformedPickle(f"unsupported pickle protocol {arg}")

    def op_GLOBAL(self, op: pickletools.OpcodeInfo, arg: str) -> None:
        self.stack.append(self._record(*_split_pair(arg)))

    def op_INST(self, op: pickletools.OpcodeInfo, arg: str) -> None:
        ref = self._record(*_split_pair(arg))
        self.pop_mark()
        self.stack.append(self._call(ref))

    def op_OBJ(self, op: pickletools.OpcodeInfo, arg: None) -> None:
        items = self.pop_mark()
        if not items:
            raise MalformedPickle("OBJ without a class")
        self.stack.append(self._call(items[0]))

    def op_REDUCE(self, op: pickletools.OpcodeInfo, arg: None) -> None:
        args = self.pop()
        func = self.pop()
        self.stack.append(self._call(func, args))

    def op_NEWOBJ(self, op: pickletools.OpcodeInfo, arg: None) -> None:
        self.pop()
        cls = self.pop()
        self.stack.append(self._call(cls))

    def op_NEWOBJ_EX(self, op: pickletools.OpcodeInfo, arg: None) -> None:
        self.pop()
        self.pop()
        cls = self.pop()
        self.stack.append(self._call(cls))

    def op_BUILD(self, op: pickletools.OpcodeInfo, arg: None) -> None:
        """obj.__setstate__(state) when the class defines it (else a dict update): a call of the class's code."""
        state = self.pop()
        target = self.top()
        if isinstance(target, Instance):
            self.walk.calls.append(target.ref)
            if target.ref.qualname in _JOBLIB_WRAPPERS:
                self._joblib_array(state)
        elif isinstance(target, GlobalRef):
            self.walk.calls.append(target)

    def _joblib_array(self, state: Any) -> None:
        """joblib writes each array's bytes into the stream right after its wrapper's BUILD (read by
        NumpyUnpickler from the file): skip raw data, walk the nested pickle of an object array."""
        if not isinstance(state, dict):
            raise MalformedPickle("joblib array wrapper without a state dict")
        dtype, shape = state.get("dtype"), state.get("shape")
        code = dtype.args[0] if isinstance(dtype, Instance) and isinstance(dtype.args, tuple) and dtype.args else None
        if not isinstance(code, str) or not isinstance(shape, tuple) or not all(type(d) is int for d in shape):
            raise MalformedPickle("joblib array wrapper with an unmodelled dtype or shape")
        if code.startswith("O"):
            nested = walk_pickle(self.window)  # pickle.load of the object array (an unrestricted unpickler)
            self.walk.globals += nested.globals
            self.walk.calls += nested.calls
            self.walk.unresolved += nested.unresolved
            self.walk.computed_calls += nested.computed_calls
            if not nested.complete:
                raise MalformedPickle(f"joblib object array: {nested.error or nested.bound}")
            return
        if state.get("numpy_array_alignment_bytes"):
            pad = self.window.read(1)
            if len(pad) != 1 or not self.window.skip(pad[0]):
                raise MalformedPickle("joblib array padding truncated")
        match = re.fullmatch(r"[<>|=]?([a-zA-Z])(\d+)", code)
        if match is None:
            raise MalformedPickle(f"joblib array dtype {code!r} not modelled")
        width = int(match.group(2)) * (4 if match.group(1) == "U" else 1)
        count = 1
        for dim in shape:
            count *= dim
        if not self.window.skip(count * width):
            raise MalformedPickle("joblib array data truncated")

    def op_EMPTY_DICT(self, op: pickletools.OpcodeInfo, arg: None) -> None:
        self.stack.append({})

    def op_DICT(self, op: pickletools.OpcodeInfo, arg: None) -> None:
        items = self.pop_mark()
        self.stack.append(self._dict_set({}, items))

    @staticmethod
    def _dict_set(target: dict[Any, Any], items: list[Any]) -> dict[Any, Any]:
        for key, value in zip(items[::2], items[1::2], strict=False):
            if isinstance(key, str | int | bool | type(None)):
                target[key] = value
        return target

    def op_STACK_GLOBAL(self, op: pickletools.OpcodeInfo, arg: None) -> None:
        name, module = self.pop(), self.pop()
        if type(module) is str and type(name) is str:
            self.stack.append(self._record(module, name))
        elif any(isinstance(x, _Opaque | GlobalRef | Instance) for x in (module, name)):
            self.walk.unresolved.append("unresolvable STACK_GLOBAL (operands are computed, not literal strings)")
            self.stack.append(OPAQUE)
        else:
            raise MalformedPickle("STACK_GLOBAL operands are not strings")

    def _ext(self, op: pickletools.OpcodeInfo, code: int) -> None:
        self.walk.unresolved.append(f"unresolvable {op.name} (copyreg extension-registry code {code})")
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
        elif isinstance(target, Instance):
            self.walk.calls.append(target.ref)  # list subclass: its append/extend is called

    def op_APPENDS(self, op: pickletools.OpcodeInfo, arg: None) -> None:
        items = self.pop_mark()
        target = self.top()
        if isinstance(target, list):
            target.extend(items)
        elif isinstance(target, Instance):
            self.walk.calls.append(target.ref)

    def op_SETITEM(self, op: pickletools.OpcodeInfo, arg: None) -> None:
        value = self.pop()
        key = self.pop()
        target = self.top()
        if isinstance(target, Instance):
            self.walk.calls.append(target.ref)  # __setitem__ of the object's class
        elif isinstance(target, dict):
            self._dict_set(target, [key, value])

    def op_SETITEMS(self, op: pickletools.OpcodeInfo, arg: None) -> None:
        items = self.pop_mark()
        target = self.top()
        if isinstance(target, Instance):
            self.walk.calls.append(target.ref)
        elif isinstance(target, dict):
            self._dict_set(target, items)

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


_JOBLIB_WRAPPERS = frozenset({"joblib.numpy_pickle.NumpyArrayWrapper"})
_READINTO_OPS = frozenset({"BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"})
_CODE2OP = {op.code.encode("latin-1"): op for op in pickletools.opcodes}


def _genops(window: Window) -> Iterator[tuple[pickletools.OpcodeInfo, Any]]:
    """pickletools.genops, reading each argument the way the C unpickler does (see Window)."""
    while True:
        pos = window.tell()
        code = window.read(1)
        op = _CODE2OP.get(code)
        if op is None:
            raise ValueError(
                "pickle exhausted before seeing STOP" if not code else f"at position {pos}, opcode {code!r} unknown"
            )
        if op.name in _READINTO_OPS:
            window.arm_readinto()
        arg = None if op.arg is None else op.arg.reader(cast(IO[bytes], window))
        yield op, arg
        if op.name == "STOP":
            return


def walk_pickle(window: Window) -> PickleWalk:
    """Walk one pickle from the window's position to its STOP; never raises for bad input."""
    walk = PickleWalk(start=window.tell())
    machine = _Machine(walk, window)
    outer_end = window.end
    window.end = min(outer_end, walk.start + LIMITS.max_pickle_bytes)
    first_divergence = len(window.divergences)
    try:
        for op, arg in _genops(window):
            walk.opcodes += 1
            if walk.opcodes > LIMITS.max_opcodes:
                raise ScanBoundError(f"more than {LIMITS.max_opcodes:,} opcodes in one pickle")
            machine.step(op, arg)
            if walk.complete:
                break
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
    walk.divergences = window.divergences[first_divergence:]
    return walk


def walk_both(window: Window) -> tuple[PickleWalk, PickleWalk | None]:
    """Walk one pickle as the C unpickler reads it; when that reading drops bytes of a frame (the linear
    reading of pickletools and the pure-Python unpickler part ways), walk it linearly too. Returns
    (C walk, linear walk or None); the window is left where the C walk ended."""
    start = window.tell()
    c_walk = walk_pickle(window)
    if not c_walk.divergences:
        return c_walk, None
    c_end = window.tell()
    linear = Window(window.raw, start, window.end, frames=False)
    linear.raw.seek(start)
    linear_walk = walk_pickle(linear)
    window.seek_to(c_end)
    return c_walk, linear_walk
