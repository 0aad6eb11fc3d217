"""Service settings from the environment (typed, validated). Defaults give the embedded one-machine mode.

Nothing here imports the database, the broker or the web app: the CLI and the service shells read it.
"""

from __future__ import annotations

import os
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from scanner.config import PROFILES

SUPPORTED_FAMILIES = ("bert", "roberta", "distilbert", "albert", "electra", "deberta-v2", "xlm-roberta")
DEFAULT_PIPELINE_TAGS = (
    "fill-mask",
    "feature-extraction",
    "sentence-similarity",
    "text-classification",
    "token-classification",
    "question-answering",
    "zero-shot-classification",
)


def data_dir() -> Path:
    """Where the embedded mode keeps its SQLite files: $XDG_DATA_HOME/patronus (~/.local/share/patronus)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "patronus"


def _default_database_url() -> str:
    return f"sqlite:///{data_dir() / 'patronus.db'}"


def _default_broker_url() -> str:
    # kombu's SQLAlchemy transport on its own SQLite file: transactional hand-off, no server to run.
    return f"sqla+sqlite:///{data_dir() / 'broker.db'}"


CommaList = Annotated[list[str], NoDecode]


def _split(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Everything the web app, the workers and beat read from the environment (prefix PATRONUS_)."""

    model_config = SettingsConfigDict(env_prefix="PATRONUS_", extra="ignore", populate_by_name=True)

    database_url: str = Field(default_factory=_default_database_url)
    broker_url: str = Field(default_factory=_default_broker_url)
    result_backend: str | None = None  # results live in the scans table; Celery's backend is off by default
    hf_token: str | None = Field(default=None, validation_alias=AliasChoices("HF_TOKEN", "PATRONUS_HF_TOKEN"))
    hf_endpoint: str | None = Field(default=None, validation_alias=AliasChoices("HF_ENDPOINT", "PATRONUS_HF_ENDPOINT"))
    api_tokens: CommaList = Field(default_factory=list)  # submit scans, use the monitor, read everything
    read_tokens: CommaList = Field(default_factory=list)  # read everything (private, gated and local reports)
    public_reads: bool = True  # anyone may read reports of public hub models; False: every read needs a token
    allow_local_targets: bool = False
    local_roots: CommaList = Field(default_factory=list)  # local targets only inside these folders

    # scans
    scan_profile: str = "standard"
    scan_device: str = "auto"
    scan_behavioural: bool = True
    scan_max_size: int = 5 * 1024**3
    cache_dir: Path | None = None
    scan_max_retries: int = 5  # transient (network/hub) failures only
    scan_retry_backoff_s: float = 30.0  # first retry delay; doubles each time, capped at 30 minutes
    scan_time_limit_s: int = 6 * 3600  # cooperative deadline + Celery hard limit (prefork pools)
    scan_lease_s: float = 60.0  # a running scan whose heartbeat is older is taken over (heartbeat: lease / 5)
    queue_lease_s: float = 300.0  # a queued scan due this long, passed by the queue (or the queue empty), is re-sent
    reaper_interval_s: float | None = None  # every worker sweeps for lost scans this often (default lease / 2)
    scan_progress_delay_s: float = 0.0  # throttle: sleep this long in every progress report (tests, shared hosts)
    scan_prefetch: int = 1  # queued hub models whose files a worker downloads while it scans (0: off)

    # broker / queues
    queue_prefix: str = ""  # prepended to the queue names `gpu` and `default`
    broker_visibility_timeout_s: int = 3600  # redis: unacked tasks return to the queue after this long

    # discovery
    discovery_families: CommaList = Field(default_factory=lambda: list(SUPPORTED_FAMILIES))
    discovery_pipeline_tags: CommaList = Field(default_factory=lambda: list(DEFAULT_PIPELINE_TAGS))
    discovery_max_models: int = 500  # listings read per family per run
    discovery_since: datetime | None = None  # first run: read uploads created after this (else the lookback)
    discovery_lookback_hours: float = 24.0
    discovery_page_size: int = 100
    discovery_interval_s: float = 900.0  # beat schedule

    # web
    page_size: int = 50
    max_body_bytes: int = 4 * 1024**2  # request bodies over this are refused (413) before they are read
    submit_rate_per_minute: float = 30.0  # per API token (token bucket, burst = submit_burst)
    submit_burst: int = 20
    submit_quota_per_day: int = 2000  # scans created per API token per rolling 24 hours
    max_base_models: int = 20  # card data kept per model (base_model entries)
    lineage_base: bool = True  # load the card's base_model (a hub repo) and score each finding in it too

    # database
    db_connect_timeout_s: int = 5
    db_statement_timeout_s: float = 30.0
    db_pool_timeout_s: float = 5.0
    health_timeout_s: float = 2.0

    @field_validator("api_tokens", "discovery_families", "discovery_pipeline_tags", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        return _split(value)

    @field_validator("scan_profile")
    @classmethod
    def _profile(cls, value: str) -> str:
        if value not in PROFILES:
            raise ValueError(f"unknown profile {value!r}; choose one of {', '.join(PROFILES)}")
        return value

    @field_validator("scan_device")
    @classmethod
    def _device(cls, value: str) -> str:
        if value not in ("auto", "cpu", "cuda"):
            raise ValueError(f"unknown device {value!r}; choose auto, cpu or cuda")
        return value

    @field_validator("discovery_families")
    @classmethod
    def _families(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(SUPPORTED_FAMILIES))
        if unknown:
            raise ValueError(f"unsupported families {unknown}; supported: {', '.join(SUPPORTED_FAMILIES)}")
        return value

    @field_validator("read_tokens", "local_roots", mode="before")
    @classmethod
    def _comma_list_2(cls, value: object) -> object:
        return _split(value)

    @property
    def reaper_every_s(self) -> float:
        """How often each worker sweeps for lost scans."""
        if self.reaper_interval_s:
            return max(self.reaper_interval_s, 0.2)
        return max(min(self.scan_lease_s, self.queue_lease_s) / 2, 0.2)

    def engine_kwargs(self) -> dict:
        """Connect and statement timeouts for Postgres (a stalled server fails requests, it does not hang them)."""
        if not self.database_url.startswith("postgresql"):
            return {}
        ms = int(self.db_statement_timeout_s * 1000)
        return {
            "connect_args": {
                "connect_timeout": self.db_connect_timeout_s,
                "options": f"-c statement_timeout={ms} -c lock_timeout={ms}",
                "keepalives": 1,
                "keepalives_idle": 10,
                "keepalives_interval": 5,
                "keepalives_count": 3,
                "tcp_user_timeout": self.db_connect_timeout_s * 1000,
            },
            "pool_timeout": self.db_pool_timeout_s,
        }

    @property
    def gpu_queue(self) -> str:
        return f"{self.queue_prefix}gpu"

    @property
    def default_queue(self) -> str:
        return f"{self.queue_prefix}default"

    @property
    def embedded(self) -> bool:
        """True when the broker needs no server (the SQLAlchemy/filesystem transports)."""
        return self.broker_url.startswith(("sqla+", "sqlalchemy+", "filesystem:", "memory:"))

    def scan_config(self):  # -> scanner.config.ScanConfig
        """The ScanConfig every service scan uses (its hash is part of the reuse key)."""
        from scanner.config import ScanConfig

        return ScanConfig(
            profile=self.scan_profile,
            device=self.scan_device,
            token=self.hf_token,
            max_size=self.scan_max_size,
            cache_dir=self.cache_dir,
            behavioural=self.scan_behavioural,
            hub_endpoint=self.hf_endpoint,
        )

    def ensure_data_dir(self) -> None:
        """Create the directory of any SQLite file the URLs name (embedded mode)."""
        for url in (self.database_url, self.broker_url):
            if "sqlite:///" in url:
                path = url.split("sqlite:///", 1)[1].split("?", 1)[0]
                if path and path != ":memory:":
                    Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
