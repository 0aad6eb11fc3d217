"""What every reader shares: the work bounds, a bounded window over a stream, and the per-file accumulator."""

from __future__ import annotations

import io
import reprlib
from dataclasses import dataclass, field
from typing import IO

from scanner.report import FileFinding, FileStatus, Severity
from scanner.static.policy import STATUS_RANK, Check, worst_status

__all__ = ["LIMITS", "FileScan", "Limits", "ScanBoundError", "Window", "short", "some", "stream_size"]


@dataclass
class Limits:
    """Bounds on the work one file may cost; a file that exceeds one is reported suspicious, never safe.
    (Mutable so tests can lower a bound on the shared LIMITS.)"""

    max_header_bytes: int = 100_000_000  # safetensors header (the reference loader's own bound)
    max_pickle_bytes: int = 2 * 1024**3  # bytes walked per pickle
    max_arg_bytes: int = 256 * 1024**2  # one opcode argument (BINBYTES8, BINUNICODE8, ...)
    max_line_bytes: int = 16 * 1024**2  # one protocol-0 text line
    max_opcodes: int = 20_000_000  # per pickle
    max_pickles: int = 10_000  # consecutive pickles in one stream
    max_members: int = 200_000  # archive members
    max_records: int = 1_000_000  # storage records in a legacy checkpoint
    max_depth: int = 3  # nested archives followed
    max_ratio: int = 200  # uncompressed / compressed size of an archive member before it is a bomb
    max_unpacked_bytes: int = 8 * 1024**3  # total uncompressed bytes of an archive
    max_template_bytes: int = 256 * 1024  # a chat template
    max_member_read: int = 512 * 1024**2  # bytes of one nested member read into memory (7z, gzip)


LIMITS = Limits()


class ScanBoundError(Exception):
    """A bound in LIMITS was reached: the rest of the file is not verified."""


class Window:
    """Read-only view of a seekable binary stream from `start` to `end`, reading the way CPython's C unpickler
    reads a stream without `peek` (torch.load hands it a BytesIO):

    the unpickler holds one buffer. Outside a FRAME it reads exactly what an opcode needs; a FRAME loads the
    frame's bytes into the buffer, and opcodes are then served from it. An opcode or argument (or a text line)
    that does not fit in the rest of the buffer makes the C unpickler *drop* the rest of the frame and read it
    from the bytes after the frame (`_Unpickler_Read`), while `pickletools` reads on linearly and the
    pure-Python unpickler raises. Only the data of BINBYTES/SHORT_BINBYTES/BINBYTES8/BYTEARRAY8 is read with
    `_Unpickler_ReadInto`, which uses the buffered bytes first (linear, like pickletools; the pure-Python
    unpickler still raises): `arm_readinto` marks that read. `frames=True` follows the C unpickler and records
    every disagreement in `divergences`; `frames=False` reads linearly. Reads are capped so length fields
    cannot force huge allocations; positions are absolute (what pickletools.genops reports).
    """

    def __init__(self, raw: IO[bytes], start: int, end: int, *, frames: bool = True) -> None:
        self.raw, self.pos, self.end, self.frames = raw, start, end, frames
        self.buf_end = start  # end of the bytes the C unpickler holds in its buffer
        self.divergences: list[str] = []
        self._reads_before_readinto: int | None = None

    def arm_readinto(self) -> None:
        """The opcode being read is a counted bytes opcode: its second read (the data) is a ReadInto."""
        self._reads_before_readinto = 1

    def _drop_buffer(self, why: str) -> None:
        self.divergences.append(
            f"{self.buf_end - self.pos:,} byte(s) of a frame at byte {self.pos:,} skipped by the C unpickler ({why})"
        )
        self.raw.seek(self.buf_end)
        self.pos = self.buf_end

    def read(self, n: int | None = -1) -> bytes:
        want = self.end - self.pos if n is None or n < 0 else n
        readinto = self._reads_before_readinto == 0
        if self._reads_before_readinto is not None:
            self._reads_before_readinto = None if readinto else self._reads_before_readinto - 1
        if self.frames and self.pos < self.buf_end < self.pos + want:
            if readinto:
                self.divergences.append(
                    f"a {want:,}-byte bytes argument at byte {self.pos:,} crosses the frame end (the C unpickler "
                    "reads on, the pure-Python unpickler raises)"
                )
            else:
                self._drop_buffer(f"a {want:,}-byte read crosses the frame end")
        want = min(want, self.end - self.pos)
        if want > LIMITS.max_arg_bytes:
            raise ScanBoundError(f"a {want:,}-byte read exceeds the {LIMITS.max_arg_bytes:,}-byte argument bound")
        data = self.raw.read(want)
        self.pos += len(data)
        self.buf_end = max(self.buf_end, self.pos)
        return data

    def readline(self, limit: int | None = -1) -> bytes:
        if self.frames and self.pos < self.buf_end:
            line = self.raw.readline(self.buf_end - self.pos)
            self.pos += len(line)
            if line.endswith(b"\n"):
                return line
            self.pos -= len(line)
            self._drop_buffer("a text line crosses the frame end")
        line = self.raw.readline(max(0, min(self.end - self.pos, LIMITS.max_line_bytes)))
        self.pos += len(line)
        self.buf_end = max(self.buf_end, self.pos)
        return line

    def frame(self, length: int) -> str | None:
        """A FRAME opcode announced `length` bytes; returns an error the C unpickler would raise, if any."""
        if not self.frames or self.pos + length <= self.buf_end:
            return None
        if self.pos < self.buf_end:
            self._drop_buffer("a new frame starts before the current one ends")
        if self.pos + length > self.end:
            return f"FRAME of {length:,} bytes runs past the end of the data (pickle data was truncated)"
        self.buf_end = self.pos + length
        return None

    def tell(self) -> int:
        return self.pos

    def seek_to(self, pos: int) -> None:
        self.raw.seek(pos)
        self.pos = self.buf_end = pos

    def skip(self, n: int) -> bool:
        """Seek past `n` bytes; False when they are not there."""
        if n < 0 or self.pos + n > self.end:
            return False
        self.raw.seek(self.pos + n)
        self.pos += n
        self.buf_end = max(self.buf_end, self.pos)
        return True


def stream_size(stream: IO[bytes]) -> int:
    here = stream.tell()
    size = stream.seek(0, io.SEEK_END)
    stream.seek(here)
    return size


def short(value: object) -> str:
    """A bounded repr (values come from hostile files: deep, long or large)."""
    bounded = reprlib.Repr()
    bounded.maxlevel, bounded.maxtuple, bounded.maxlist, bounded.maxstring, bounded.maxother = 3, 6, 6, 60, 60
    return bounded.repr(value)


def some(items: list[str], shown: int = 3) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


@dataclass
class FileScan:
    """One file's findings: checks (rule, status, severity, message), the globals its pickles import (with
    where they were seen and whether the loader calls them), and counts."""

    format: str
    checks: list[Check] = field(default_factory=list)
    globals: dict[str, tuple[FileStatus, str]] = field(default_factory=dict)
    called: set[str] = field(default_factory=set)
    denied_why: dict[str, str] = field(default_factory=dict)
    pickles: int = 0
    opcodes: int = 0
    notes: list[str] = field(default_factory=list)
    kind: str = "weights"

    def add(self, rule: str, status: FileStatus, severity: Severity, message: str) -> None:
        self.checks.append(Check(rule, status, severity, message))

    def merge(self, other: FileScan, prefix: str = "") -> None:
        """Fold a nested file's scan (an archive member) into this one."""
        for check in other.checks:
            self.checks.append(Check(check.rule, check.status, check.severity, f"{prefix}{check.message}"))
        for qualname, (status, where) in other.globals.items():
            self.globals.setdefault(qualname, (status, f"{prefix}{where}"))
        self.called |= other.called
        self.denied_why.update(other.denied_why)
        self.pickles += other.pickles
        self.opcodes += other.opcodes
        self.notes += [f"{prefix}{note}" for note in other.notes]

    @property
    def status(self) -> FileStatus:
        return worst_status(*(c.status for c in self._all_checks()))

    def _global_checks(self) -> list[Check]:
        checks = []
        dangerous = [
            f"{q} ({w}{'; ' + self.denied_why[q] if q in self.denied_why else ''})"
            for q, (s, w) in self.globals.items()
            if s is FileStatus.DANGEROUS
        ]
        if dangerous:
            checks.append(
                Check(
                    "pickle-dangerous-global",
                    FileStatus.DANGEROUS,
                    Severity.CRITICAL,
                    f"dangerous globals: {', '.join(dangerous)}",
                )
            )
        unvetted = [(q, w) for q, (s, w) in self.globals.items() if s is FileStatus.SUSPICIOUS]
        called = [f"{q} ({w})" for q, w in unvetted if q in self.called]
        imported = [f"{q} ({w})" for q, w in unvetted if q not in self.called]
        if called:
            checks.append(
                Check(
                    "pickle-unvetted-call",
                    FileStatus.SUSPICIOUS,
                    Severity.HIGH,
                    f"the loader would call non-allowlisted globals: {', '.join(called)}",
                )
            )
        if imported:
            checks.append(
                Check(
                    "pickle-unvetted-global",
                    FileStatus.SUSPICIOUS,
                    Severity.MEDIUM,
                    f"non-allowlisted globals imported (not called): {', '.join(imported)}",
                )
            )
        return checks

    def _all_checks(self) -> list[Check]:
        return self.checks + self._global_checks()

    def finding(self, rel: str) -> FileFinding:
        checks = self._all_checks()
        ordered = sorted(checks, key=lambda c: (-c.severity.rank, -STATUS_RANK.index(c.status)))
        status = worst_status(*(c.status for c in checks))
        severity = Severity.worst(*(c.severity for c in checks))
        summary = self._summary()
        reason = "; ".join([c.message for c in ordered] + ([summary] if summary else []))
        return FileFinding(
            path=rel,
            format=self.format,
            status=status.value,
            reason=reason,
            globals=list(self.globals),
            severity=severity.value,
            rule=ordered[0].pat if ordered else None,
            kind=self.kind,
            checks=[c.as_dict() for c in ordered],
        )

    def _summary(self) -> str:
        parts = list(self.notes)
        if self.pickles or self.globals:
            safe = all(s is FileStatus.SAFE for s, _ in self.globals.values())
            parts.append(
                f"{self.pickles} pickle(s), {self.opcodes:,} opcodes, {len(self.globals)} distinct "
                f"global(s){', all allowlisted' if safe and self.globals else ''}"
            )
        return "; ".join(parts)
