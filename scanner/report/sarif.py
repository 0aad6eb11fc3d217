"""SARIF 2.1.0: one run, one rule per finding kind (scanner/report/rules.py), one result per Issue."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from scanner import __version__
from scanner.report.issues import issues_of
from scanner.report.rules import RULE_INDEX, RULES, Rule, rule
from scanner.report.schema import Issue, Report, Severity, Verdict
from scanner.report.views import clean_json, model_ref, sarif_level

TOOL_NAME = "patronus-scanner"
INFORMATION_URI = "https://pypi.org/project/patronus-scanner/"
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SARIF_VERSION = "2.1.0"
# Rules whose SARIF level follows the finding's severity; the others keep their rule's default level.
_LEVEL_BY_SEVERITY = {"PAT001", "PAT002", "PAT003", "PAT008"}


def sarif_rule(entry: Rule) -> dict[str, Any]:
    props: dict[str, Any] = {"tags": ["security", "supply-chain", "ml-model"]}
    if entry.security:
        props["security-severity"] = entry.security
    return {
        "id": entry.id,
        "name": entry.name,
        "shortDescription": {"text": entry.short},
        "fullDescription": {"text": entry.full},
        "helpUri": INFORMATION_URI,
        "defaultConfiguration": {"level": entry.level},
        "properties": props,
    }


def render_sarif(report: Report) -> str:
    """The report as a SARIF 2.1.0 log."""
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": TOOL_NAME,
                "version": report.tool.get("version", __version__),
                "semanticVersion": report.tool.get("version", __version__),
                "informationUri": INFORMATION_URI,
                "rules": [sarif_rule(entry) for entry in RULES],
            }
        },
        "invocations": [_invocation(report)],
        "results": [sarif_result(report, issue) for issue in issues_of(report)],
        "properties": clean_json(
            {
                "schema": report.schema,
                "verdict": report.verdict.value,
                "probability": report.probability,
                "severity": report.severity.value,
                "model": {
                    "id": report.model.id,
                    "source": report.model.source,
                    "revision": report.model.revision,
                    "sha": report.model.sha,
                },
            }
        ),
    }
    base = _model_base_uri(report)
    if base:
        run["originalUriBaseIds"] = {"MODELROOT": {"uri": base}}
    sarif = {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}
    return json.dumps(sarif, indent=2, ensure_ascii=False, allow_nan=False)


def sarif_level_of(issue: Issue) -> str:
    """The SARIF level of one finding."""
    if issue.rule in _LEVEL_BY_SEVERITY and Severity(issue.severity) is not Severity.NONE:
        return sarif_level(Severity(issue.severity))
    if Severity(issue.severity).at_least(Severity.HIGH):
        return "error"
    return rule(issue.rule).level if issue.rule in RULE_INDEX else "warning"


def sarif_result(report: Report, issue: Issue) -> dict[str, Any]:
    """One SARIF result located at a model file, with the model as its logical location."""
    model = report.model
    subject = issue.details.get("trigger") or issue.details.get("code") or issue.details.get("category") or ""
    key = f"{issue.location}|{subject}"
    fingerprint = hashlib.sha256(f"{issue.rule}|{model.id}|{key}".encode()).hexdigest()[:32]
    result: dict[str, Any] = {
        "ruleId": issue.rule,
        "level": sarif_level_of(issue),
        "message": {"text": issue.message},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": quote(issue.location, safe="/"), "uriBaseId": "MODELROOT"}
                },
                "logicalLocations": [{"name": model.id, "fullyQualifiedName": model_ref(report), "kind": "module"}],
            }
        ],
        "partialFingerprints": {"patronusFinding/v1": fingerprint},
        "properties": clean_json({"kind": issue.kind, "severity": issue.severity, **issue.details}),
    }
    if issue.rule in RULE_INDEX:
        result["ruleIndex"] = RULE_INDEX[issue.rule]
    return result


def _invocation(report: Report) -> dict[str, Any]:
    invocation: dict[str, Any] = {"executionSuccessful": report.verdict != Verdict.ERROR}
    for key, stamp in (("startTimeUtc", report.scan.started), ("endTimeUtc", report.scan.finished)):
        utc = _utc(stamp)
        if utc:
            invocation[key] = utc
    if report.errors:
        invocation["toolExecutionNotifications"] = [
            {"level": "error", "message": {"text": f"[{e.code}] {e.message}"}, "descriptor": {"id": e.code}}
            for e in report.errors
        ]
    return invocation


def _utc(stamp: str) -> str | None:
    """An ISO 8601 timestamp as SARIF's UTC date-time, or None when it does not parse."""
    try:
        when = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _model_base_uri(report: Report) -> str | None:
    """Absolute URI of the model root: the hub tree at the pinned commit, or a local directory."""
    model = report.model
    if model.source == "hub":
        pin = model.sha or model.revision or "main"
        return f"https://huggingface.co/{quote(model.id, safe='/')}/resolve/{quote(pin, safe='')}/"
    path = Path(model.id)
    return path.as_uri().rstrip("/") + "/" if path.is_absolute() else None
