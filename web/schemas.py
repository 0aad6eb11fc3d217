"""The API's request and response models: /api/openapi.json documents the CI-gate contract from these."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from db.models import ScanStatus, ScanVerdict
from tasks.targets import TargetError, has_control, validate_revision

MAX_ID = 2**31 - 1
MONITOR_MAX_TEXTS = 1000
MONITOR_MAX_CHARS = 100_000  # per text
MONITOR_MAX_TOTAL_CHARS = 2_000_000


# --------------------------------------------------------------------------------------------------- requests


class ScanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: str = Field(min_length=1, max_length=1024, description="hub repo id (org/name) or a local folder")
    revision: str | None = Field(default=None, max_length=255, description="branch, tag or commit sha")

    @field_validator("target")
    @classmethod
    def _printable(cls, value: str) -> str:
        if has_control(value):
            raise ValueError("the target contains control characters")
        return value

    @field_validator("revision")
    @classmethod
    def _revision(cls, value: str | None) -> str | None:
        try:
            return validate_revision(value)
        except TargetError as exc:
            raise ValueError(str(exc)) from exc


class MonitorRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scan_id: int | None = Field(
        default=None, ge=1, le=MAX_ID, description="a finished scan whose report gives the rules"
    )
    model: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="a model as stored (repo id or local path): its newest finished scan",
    )
    texts: list[str] = Field(min_length=1, max_length=MONITOR_MAX_TEXTS, description="inputs to check")
    strip: bool = Field(default=False, description="also return each text with the triggers removed")

    @field_validator("model")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and has_control(value):
            raise ValueError("the model name contains control characters")
        return value

    @field_validator("texts")
    @classmethod
    def bounded(cls, texts: list[str]) -> list[str]:
        """Each text at most MONITOR_MAX_CHARS characters, all together at most MONITOR_MAX_TOTAL_CHARS."""
        for index, value in enumerate(texts):
            if len(value) > MONITOR_MAX_CHARS:
                raise ValueError(f"texts[{index}] has {len(value):,} characters; the limit is {MONITOR_MAX_CHARS:,}")
        total = sum(map(len, texts))
        if total > MONITOR_MAX_TOTAL_CHARS:
            raise ValueError(f"texts have {total:,} characters in all; the limit is {MONITOR_MAX_TOTAL_CHARS:,}")
        return texts

    @model_validator(mode="after")
    def one_source(self) -> MonitorRequest:
        if (self.scan_id is None) == (self.model is None):
            raise ValueError("give exactly one of scan_id and model")
        return self


# --------------------------------------------------------------------------------------------------- responses


class Problem(BaseModel):
    """Every 4xx/5xx answer: a short message (422: a list of {loc, msg, type}, never the input echoed)."""

    detail: str | list[dict[str, Any]]


class ScanSubmitted(BaseModel):
    id: int
    status: ScanStatus
    created: bool = Field(description="False: collapsed onto an active scan or answered by a finished one")
    enqueued: bool = Field(description="a broker message for this scan is known to exist")
    url: str


class Progress(BaseModel):
    stage: str | None
    fraction: float | None
    message: str | None


class ErrorInfo(BaseModel):
    code: str | None
    message: str | None


class ScanOut(BaseModel):
    id: int
    status: ScanStatus
    model: str
    source: str
    requested_revision: str | None
    sha: str | None
    verdict: ScanVerdict | None
    severity: str | None
    probability: float | None
    progress: Progress
    error: ErrorInfo | None
    attempts: int
    engine_version: str
    config_hash: str
    profile: str
    queued_at: str | None
    started_at: str | None
    finished_at: str | None
    seconds: float | None
    reused_from: int | None
    url: str
    report: dict[str, Any] | None = Field(default=None, description="the patronus.report/1 JSON, once finished")


class VerdictOut(BaseModel):
    """The CI gate's answer: 200 known (`verdict` set; `error` when the scan failed), 202 in progress, 404 unknown."""

    model: str
    sha: str | None
    status: str = Field(description="succeeded | failed | queued | running | unknown")
    verdict: ScanVerdict | None
    severity: str | None = None
    probability: float | None = None
    scan_id: int | None = None
    engine_version: str | None = None
    current_engine: bool | None = None
    config_hash: str | None = None
    finished_at: str | None = None
    url: str | None = None
    error: ErrorInfo | None = None
    detail: str | None = None


class MonitorRule(BaseModel):
    text: str
    trigger: str
    source: str
    tokens: list[Any]
    shift: float | None
    p_value: float | None


class MonitorMatch(BaseModel):
    trigger: str
    rule: str
    text: str
    start: int
    end: int
    source: str


class MonitorResult(BaseModel):
    model_config = ConfigDict(extra="allow")

    index: int
    flagged: bool
    matches: list[MonitorMatch]


class MonitorOut(BaseModel):
    scan_id: int
    model: str
    sha: str | None
    verdict: str
    rules: list[MonitorRule]
    skipped: list[str]
    flagged: int
    results: list[MonitorResult]


class Health(BaseModel):
    status: str = Field(description="ok | error")
    database: str = Field(description="ok, timeout, or the error's type")
    seconds: float = Field(description="how long the database check took")
