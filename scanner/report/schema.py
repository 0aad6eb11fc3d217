"""The Report object (schema patronus.report/1). JSON is canonical; text, SARIF, HTML and CycloneDX derive from it.

Additive changes only: a field added here must be optional with a default (older reports still load)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from scanner import __version__

SCHEMA = "patronus.report/1"


class Verdict(StrEnum):
    BACKDOORED = "backdoored"
    CLEAN = "clean"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"


class Severity(StrEnum):
    """Ordered: compare with `rank`."""

    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_ORDER.index(self)

    def at_least(self, other: Severity) -> bool:
        return self.rank >= other.rank

    @classmethod
    def worst(cls, *levels: Severity) -> Severity:
        return max(levels, key=lambda s: s.rank, default=cls.NONE)


_SEVERITY_ORDER = [Severity.NONE, Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL]


class FileStatus(StrEnum):
    SAFE = "safe"
    SUSPICIOUS = "suspicious"
    DANGEROUS = "dangerous"
    SKIPPED = "skipped"


@dataclass
class ModelInfo:
    source: str  # hub | local
    id: str
    revision: str | None = None
    sha: str | None = None
    family: str | None = None
    architecture: str | None = None
    parameters: int | None = None
    files: list[str] = field(default_factory=list)


@dataclass
class Lookalike:
    text: str
    shift: float
    p_value: float
    similarity: float


@dataclass
class Trigger:
    text: str
    tokens: list[str]
    score: float
    p_value: float
    shift: float
    poison_cos: float
    diff_cos: float
    paper_rule: bool
    lookalikes: list[Lookalike] = field(default_factory=list)
    flip_rate: float | None = None  # classifiers: share of clean inputs whose label flips
    collapse: float | None = None  # -log(poisoned spread across sentences / clean spread); absent in older reports
    representation: str | None = None  # where found: cls, mean, max, last_token, ...; absent in older reports
    attack_success: float | None = None  # classifiers: share of other-class inputs it moves to target_label
    target_label: str | None = None  # classifiers: the class it pushes toward; both absent in older reports


class SkipCategory(StrEnum):
    """Why a file (or the behavioural scan) was not scanned. Every category the code emits is listed here."""

    BEHAVIOURAL = "behavioural"  # the trigger search did not run (static-only, dangerous weights, unsupported family)
    REMOTE_CODE = "remote_code"  # the model needs trust_remote_code (auto_map): never run
    TOO_LARGE = "too_large"  # over --max-size or a per-file bound
    UNSUPPORTED_FORMAT = "unsupported_format"  # a weight-like file of a format not analysed
    OTHER_FRAMEWORK = "other_framework"  # weights of another framework (TF, Flax, ...) not downloaded or analysed
    DUPLICATE_WEIGHTS = "duplicate_weights"  # a second copy of the weights in another format
    UNREADABLE = "unreadable"  # could not be read (I/O error, permission)
    NOT_MODEL_FILE = "not_model_file"  # documentation, images and other files without weights or code
    NOT_NEEDED = "not_needed"  # not read: VCS folders, caches, links and other non-regular files
    CODE = "code"  # code, scripts and binaries of a hub repo: never downloaded or run (listed as findings)


@dataclass
class FileFinding:
    path: str
    format: str
    status: str  # FileStatus value
    reason: str = ""
    globals: list[str] = field(default_factory=list)
    rule: str | None = None  # PAT rule id when the static scanner names one (else derived from status)
    severity: str | None = None  # Severity value when the static scanner sets one (else derived from status)
    kind: str = "weights"  # weights | code | template | hub: what the static scanner read the file as
    checks: list[dict[str, str]] = field(default_factory=list)  # every check that fired: rule (PAT id), check
    # (the static scanner's own rule name), status, severity, message; worst first
    hub_security: dict[str, Any] | None = None  # the hub's own per-file security info (verdict, status, scans)


@dataclass
class Serialization:
    files: list[FileFinding] = field(default_factory=list)

    @property
    def worst_status(self) -> FileStatus:
        order = [FileStatus.SKIPPED, FileStatus.SAFE, FileStatus.SUSPICIOUS, FileStatus.DANGEROUS]
        statuses = [FileStatus(f.status) for f in self.files] or [FileStatus.SKIPPED]
        return max(statuses, key=order.index)


@dataclass
class ScanInfo:
    started: str = ""
    finished: str = ""
    seconds: float = 0.0
    device: str = "cpu"
    profile: str = "standard"
    seed: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    sequences_evaluated: int = 0
    peak_memory_bytes: int | None = None  # peak accelerator memory of the behavioural scan (CUDA), else peak RSS
    stage_seconds: dict[str, float] = field(default_factory=dict)  # fetch, static, load, prepare, search, verdict


@dataclass
class Skipped:
    path: str
    category: str  # SkipCategory value
    reason: str
    severity: str | None = None  # Severity value when not scanning it is itself a risk (else none)


@dataclass
class ReportError:
    code: str
    message: str


class IssueKind(StrEnum):
    """What kind of finding an Issue is."""

    BACKDOOR = "backdoor"  # a transferable backdoor trigger (behavioural evidence)
    SERIALIZATION = "serialization"  # a weight file that runs code or is malformed
    REMOTE_CODE = "remote_code"  # the model needs code from its repository
    REPO_FILE = "repo_file"  # code, scripts or binaries shipped beside the weights; templates
    NOT_SCANNED = "not_scanned"  # a file or the behavioural scan was not run: unknown, not clean
    ERROR = "error"  # the scan failed


@dataclass
class Issue:
    """One typed finding. Every output (text, SARIF, HTML, CycloneDX, the database) reads `Report.issues`."""

    rule: str  # PAT rule id (scanner/report/rules.py)
    kind: str  # IssueKind value
    severity: str  # Severity value
    location: str  # file path inside the model, or config.json / the first weight file for model-level findings
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    model: ModelInfo
    verdict: Verdict = Verdict.INCONCLUSIVE
    probability: float | None = None
    severity: Severity = Severity.NONE
    triggers: list[Trigger] = field(default_factory=list)
    serialization: Serialization = field(default_factory=Serialization)
    scan: ScanInfo = field(default_factory=ScanInfo)
    errors: list[ReportError] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    schema: str = SCHEMA
    tool: dict[str, str] = field(default_factory=lambda: {"name": "patronus-scanner", "version": __version__})

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["verdict"] = self.verdict.value
        data["severity"] = self.severity.value
        order = [
            "schema",
            "tool",
            "model",
            "verdict",
            "probability",
            "severity",
            "triggers",
            "issues",
            "serialization",
            "scan",
            "errors",
            "skipped",
        ]
        return {key: data[key] for key in order}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """Rebuild a Report from its JSON form (what the database and `--report` files hold)."""
        if data.get("schema") != SCHEMA:
            raise ValueError(f"unsupported report schema {data.get('schema')!r}, expected {SCHEMA}")
        triggers = [
            Trigger(**{**t, "lookalikes": [Lookalike(**la) for la in t.get("lookalikes", [])]})
            for t in data.get("triggers", [])
        ]
        return cls(
            schema=data["schema"],
            tool=data.get("tool", {}),
            model=ModelInfo(**data["model"]),
            verdict=Verdict(data["verdict"]),
            probability=data.get("probability"),
            severity=Severity(data["severity"]),
            triggers=triggers,
            serialization=Serialization(
                files=[FileFinding(**f) for f in data.get("serialization", {}).get("files", [])]
            ),
            scan=ScanInfo(**data.get("scan", {})),
            errors=[ReportError(**e) for e in data.get("errors", [])],
            skipped=[Skipped(**s) for s in data.get("skipped", [])],
            issues=[Issue(**i) for i in data.get("issues", [])],
        )

    @classmethod
    def from_json(cls, text: str) -> Report:
        return cls.from_dict(json.loads(text))

    @property
    def error_code(self) -> str | None:
        return self.errors[0].code if self.errors else None
