"""The hub's own per-file security verdicts (huggingface_hub `list_repo_tree(expand=True)` security info), shown
beside ours; a disagreement is a check of its own."""

from __future__ import annotations

from typing import Any

from scanner.report import FileFinding, FileStatus, Severity
from scanner.static.policy import pat_rule

__all__ = ["attach_hub_security", "hub_status"]

_HUB_BAD = frozenset({"unsafe", "dangerous", "malicious", "infected"})
_HUB_WARN = frozenset({"suspicious", "caution", "warning"})


def hub_status(info: dict[str, Any]) -> str:
    """The hub's verdict for one file: safe | suspicious | unsafe | unknown (status, AV and pickle scans)."""
    status = str(info.get("status") or "").lower()
    av = info.get("av_scan") or info.get("avScan") or {}
    pickle_scan = info.get("pickle_import_scan") or info.get("pickleImportScan") or {}
    if status in _HUB_BAD or (isinstance(av, dict) and av.get("virusFound")):
        return "unsafe"
    pickle_status = str(pickle_scan.get("highestSafetyLevel", "")).lower() if isinstance(pickle_scan, dict) else ""
    if pickle_status in _HUB_BAD:
        return "unsafe"
    if status in _HUB_WARN or pickle_status in _HUB_WARN:
        return "suspicious"
    if status == "safe":
        return "safe"
    return "unknown"


def _check(finding: FileFinding, rule: str, status: FileStatus, severity: Severity, message: str) -> None:
    finding.checks.insert(
        0,
        {"rule": pat_rule(rule), "check": rule, "status": status.value, "severity": severity.value, "message": message},
    )
    rank = [FileStatus.SAFE, FileStatus.SKIPPED, FileStatus.SUSPICIOUS, FileStatus.DANGEROUS]
    if rank.index(status) > rank.index(FileStatus(finding.status)):
        finding.status = status.value
    if Severity(severity).rank > Severity(finding.severity or "none").rank:
        finding.severity = severity.value
        finding.rule = pat_rule(rule)
    finding.reason = f"{message}; {finding.reason}" if finding.reason else message


def attach_hub_security(findings: list[FileFinding], security: dict[str, dict[str, Any]]) -> list[FileFinding]:
    """Record the hub's verdict on each finding; returns findings for hub-flagged files we had not listed."""
    by_path = {f.path: f for f in findings}
    extra = []
    for path, info in sorted(security.items()):
        verdict = hub_status(info)
        record = {
            "verdict": verdict,
            **{
                k: v
                for k, v in info.items()
                if k in ("status", "av_scan", "pickle_import_scan", "avScan", "pickleImportScan")
            },
        }
        finding = by_path.get(path)
        if finding is None:
            if verdict in ("unsafe", "suspicious"):
                extra_finding = FileFinding(
                    path=path,
                    format="unknown",
                    status=FileStatus.SKIPPED.value,
                    reason="",
                    severity=Severity.NONE.value,
                    kind="hub",
                )
                extra_finding.hub_security = record
                _check(
                    extra_finding,
                    "hub-flagged-unscanned",
                    FileStatus.SKIPPED,
                    Severity.HIGH,
                    f"the hub marks this file {verdict}; it was not scanned here",
                )
                extra.append(extra_finding)
            continue
        finding.hub_security = record
        ours = FileStatus(finding.status)
        if verdict == "unsafe" and ours in (FileStatus.SAFE, FileStatus.SKIPPED):
            _check(
                finding,
                "hub-disagreement",
                FileStatus.SUSPICIOUS,
                Severity.HIGH,
                f"the hub marks this file unsafe but the static scan found it {ours.value}",
            )
        elif verdict == "suspicious" and ours is FileStatus.SAFE:
            _check(
                finding,
                "hub-disagreement",
                FileStatus.SUSPICIOUS,
                Severity.MEDIUM,
                "the hub marks this file suspicious but the static scan found it safe",
            )
        elif verdict == "safe" and ours is FileStatus.DANGEROUS:
            finding.checks.append(
                {
                    "rule": "PAT013",
                    "check": "hub-disagreement",
                    "status": ours.value,
                    "severity": "low",
                    "message": "the hub marks this file safe; the static scan found it dangerous (ours stands)",
                }
            )
    return extra
