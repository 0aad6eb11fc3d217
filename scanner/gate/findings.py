"""The gate's findings: a model report's issues (PAT0xx) and the gate's own policy findings (PATG0x).

Every finding carries its rule, severity, message and the model it concerns; `fails` says whether it fails the gate
(after suppressions), `exit_code` which exit it asks for (1 policy/findings, 2 scan failed, 3 nothing scannable).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scanner.report import Report, Severity
from scanner.report.issues import issues_of
from scanner.report.rules import Rule

# The gate's own rules (the report's rules PAT0xx live in scanner/report/rules.py). Ids are a contract: add, never
# renumber.
GATE_RULES: tuple[Rule, ...] = (
    Rule(
        "PATG01",
        "model-not-fetched",
        "error",
        None,
        "The adopted model could not be fetched or scanned",
        "Resolving, downloading or scanning the model failed; the gate cannot vouch for it.",
    ),
    Rule(
        "PATG02",
        "unresolved-adoption",
        "warning",
        None,
        "A model is loaded from a value not readable statically",
        "The model id or revision is computed at run time (an f-string, a variable); list the model in the "
        "policy's models_file (org/name@revision) so it is scanned.",
    ),
    Rule(
        "PATG03",
        "model-denied",
        "error",
        "8.0",
        "The policy does not allow this model",
        "The model matches a deny pattern, or none of the allow patterns, of the policy.",
    ),
    Rule(
        "PATG04",
        "revision-not-pinned",
        "error",
        "5.0",
        "The model is adopted without a pinned commit sha",
        "The policy requires revision=<40-hex commit sha> so that a moved branch cannot change the model.",
    ),
    Rule(
        "PATG05",
        "lock-drift",
        "error",
        "7.5",
        "The model differs from what patronus.lock records",
        "The branch moved to a commit (or the files changed) with no scan on record; review the new commit and "
        "run `patronus lock`.",
    ),
    Rule(
        "PATG06",
        "behavioural-scan-required",
        "error",
        None,
        "The behavioural scan could not run",
        "Unsupported family or remote code: only the static checks ran, and the policy's fail_on_not_scanned "
        "requires the behavioural scan.",
    ),
    Rule(
        "PATG07",
        "family-not-allowed",
        "error",
        None,
        "The model family is not allowed",
        "The policy's families list does not include this model's family.",
    ),
    Rule(
        "PATG08",
        "signature-mismatch",
        "error",
        "8.5",
        "The model's signature does not verify",
        "OpenSSF Model Signing: a signed file changed, is missing or was added, or the signature is not by the "
        "expected key.",
    ),
    Rule(
        "PATG09",
        "signature-missing",
        "error",
        None,
        "The model ships no verifiable signature",
        "The policy requires an OpenSSF Model Signing signature (signatures.require).",
    ),
    Rule(
        "PATG10",
        "suppression-expired",
        "error",
        None,
        "A suppression in the policy has expired",
        "Renew it with a new reason and expiry date, or fix the finding it suppressed.",
    ),
)
GATE_RULES_BY_ID = {r.id: r for r in GATE_RULES}


@dataclass
class Finding:
    rule: str
    severity: Severity
    message: str
    model: str | None  # org/name or a local path; None for findings not about one model
    file: str | None = None  # model file a report finding points at
    properties: dict[str, Any] = field(default_factory=dict)
    fails: bool = False
    exit_code: int = 0  # what a failing finding asks for
    suppressed_by: str | None = None  # the suppression's reason, when suppressed

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity.value,
            "message": self.message,
            "model": self.model,
            "file": self.file,
            "fails": self.fails,
            "suppressed_by": self.suppressed_by,
            "properties": self.properties,
        }


def report_findings(report: Report, model: str) -> list[Finding]:
    """The report's typed issues (scanner.report.issues) as findings of `model`."""
    return [
        Finding(
            rule=issue.rule,
            severity=Severity(issue.severity),
            message=issue.message,
            model=model,
            file=issue.location,
            properties=dict(issue.details),
        )
        for issue in issues_of(report)
    ]


def gate_finding(
    rule: str,
    message: str,
    model: str | None,
    *,
    exit_code: int = 1,
    fails: bool = True,
    severity: Severity = Severity.HIGH,
    **properties: Any,
) -> Finding:
    return Finding(
        rule=rule,
        severity=severity,
        message=message,
        model=model,
        fails=fails,
        exit_code=exit_code if fails else 0,
        properties=properties,
    )
