"""The gate's policy: `[tool.patronus]` in pyproject.toml or the top level of patronus.toml, validated by pydantic.

Unknown keys are an error (`PolicyError`, exit 4), never ignored. The JSON schema of this model ships as
scanner/data/policy.schema.json (`python -m scanner.gate.policy` rewrites it; a test keeps it in step).
"""

from __future__ import annotations

import fnmatch
import json
import re
import sys
import tomllib
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from scanner.errors import PolicyError

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "data" / "policy.schema.json"
SCHEMA_ID = "https://patronus.invalid/schemas/policy.schema.json"
POLICY_FILES = ("patronus.toml", "pyproject.toml")
SHA_RE = re.compile(r"[0-9a-f]{40}")
SIZE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*")
SIZE_UNITS = {
    "": 1,
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
}

Level = Literal["low", "medium", "high", "critical"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Suppression(_Strict):
    """Accept one finding kind for matching models until `expires`; an expired suppression fails the gate."""

    rule: str = Field(description="Rule id to suppress (PAT001..., PATG01...), or a glob such as 'PAT00*'.")
    model: str = Field(default="*", description="Model id glob (org/name); '*' for every model.")
    reason: str = Field(min_length=1, description="Why this is accepted (shown in every report).")
    expires: date = Field(description="ISO date (YYYY-MM-DD); from this day on the suppression fails the gate.")

    def matches(self, rule: str, model: str) -> bool:
        return fnmatch.fnmatchcase(rule, self.rule) and fnmatch.fnmatchcase(model, self.model)

    def expired(self, today: date | None = None) -> bool:
        return (today or date.today()) >= self.expires


class Signatures(_Strict):
    """OpenSSF Model Signing verification (model-signing library)."""

    require: bool = Field(default=False, description="Fail a model that ships no signature or does not verify.")
    file: str = Field(default="model.sig", description="Signature file name inside the model repo or folder.")
    public_key: str | None = Field(default=None, description="PEM public key (path) for key-signed models.")
    certificate_chain: list[str] = Field(
        default_factory=list, description="PEM certificate chain (paths) for certificate-signed models."
    )
    identity: str | None = Field(default=None, description="Sigstore identity (e-mail or workflow URI).")
    oidc_issuer: str | None = Field(default=None, description="Sigstore OIDC issuer of `identity`.")


class Policy(_Strict):
    """What the adoption gate accepts. Every key is optional; defaults follow `patronus scan`."""

    fail_on: Level = Field(default="high", description="Fail on a finding at or above this severity.")
    profile: Literal["quick", "standard", "thorough"] = Field(default="standard", description="Search budget.")
    static_only: bool = Field(default=False, description="Only the static weight-file checks (no trigger search).")
    allow: list[str] = Field(
        default_factory=list, description="Globs of org/name a model must match (empty: any model)."
    )
    deny: list[str] = Field(default_factory=list, description="Globs of org/name that fail the gate.")
    families: list[str] = Field(
        default_factory=list, description="Model families (bert, roberta, ...) allowed (empty: any)."
    )
    require_pinned: bool = Field(
        default=False, description="Every hub adoption must name a 40-hex commit sha as its revision."
    )
    max_size: str | int = Field(default="5GB", description="Largest download allowed (bytes or 500MB, 5GB, ...).")
    fail_on_not_scanned: bool = Field(
        default=False,
        description="Fail a model whose behavioural scan could not run (unsupported family, remote code).",
    )
    fail_on_unresolved: bool = Field(
        default=False, description="Fail on an adoption whose model id or revision is not a literal."
    )
    models_file: str | None = Field(
        default=None, description="Extra models, org/name@revision per line (relative to the policy)."
    )
    exclude: list[str] = Field(default_factory=list, description="Source path globs not searched for adoptions.")
    server: str | None = Field(default=None, description="Patronus service URL whose verdict API is asked first.")
    lock_file: str = Field(default="patronus.lock", description="Lock file path (relative to the policy).")
    signatures: Signatures = Field(default_factory=Signatures)
    suppress: list[Suppression] = Field(default_factory=list)

    @field_validator("max_size")
    @classmethod
    def _size(cls, value: str | int) -> str | int:
        parse_size(value)
        return value

    @property
    def max_bytes(self) -> int:
        return parse_size(self.max_size)

    def denied(self, model: str) -> str | None:
        """Why `model` (org/name) is refused by allow/deny, or None."""
        for pattern in self.deny:
            if fnmatch.fnmatchcase(model, pattern):
                return f"{model} matches deny pattern {pattern!r}"
        if self.allow and not any(fnmatch.fnmatchcase(model, p) for p in self.allow):
            return f"{model} matches none of the allowed patterns ({', '.join(self.allow)})"
        return None

    def suppression_for(self, rule: str, model: str) -> Suppression | None:
        return next((s for s in self.suppress if s.matches(rule, model)), None)


def parse_size(value: str | int) -> int:
    if isinstance(value, int):
        if value <= 0:
            raise ValueError("max_size must be positive")
        return value
    match = SIZE_RE.fullmatch(value)
    if not match or match.group(2).upper() not in SIZE_UNITS:
        raise ValueError(f"{value!r} is not a size like 500MB or 5GB")
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2).upper()])


class LoadedPolicy(BaseModel):
    policy: Policy
    path: Path | None  # the file it came from; None: defaults
    root: Path  # relative paths in the policy are relative to this folder


def find_policy(start: Path) -> Path | None:
    """patronus.toml, else a pyproject.toml with [tool.patronus], in `start` or the nearest parent."""
    start = start.resolve()
    for folder in (start, *start.parents):
        candidate = folder / "patronus.toml"
        if candidate.is_file():
            return candidate
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and "patronus" in _read_toml(pyproject).get("tool", {}):
            return pyproject
    return None


def load_policy(path: Path | None = None, start: Path | None = None) -> LoadedPolicy:
    """The policy in `path` (or found from `start`); defaults when there is none. PolicyError on a bad one."""
    if path is None:
        path = find_policy(start or Path.cwd())
    if path is None:
        return LoadedPolicy(policy=Policy(), path=None, root=(start or Path.cwd()).resolve())
    if not path.is_file():
        raise PolicyError(f"policy file {path} does not exist")
    data = _read_toml(path)
    if path.name == "pyproject.toml":
        data = data.get("tool", {}).get("patronus", {})
    return LoadedPolicy(policy=validate(data, str(path)), path=path.resolve(), root=path.resolve().parent)


def validate(data: dict[str, Any], where: str = "policy") -> Policy:
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in exc.errors())
        raise PolicyError(f"invalid policy in {where}: {problems}") from exc


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"cannot read {path}: {exc}") from exc


def json_schema() -> dict[str, Any]:
    schema = Policy.model_json_schema()
    return {
        **schema,
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Patronus adoption-gate policy ([tool.patronus] or patronus.toml)",
    }


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # python -m scanner.gate.policy [--check]
    if "--check" in sys.argv:
        sys.exit(0 if SCHEMA_PATH.read_text() == schema_text() else 1)
    SCHEMA_PATH.write_text(schema_text())
    print(f"wrote {SCHEMA_PATH}")
