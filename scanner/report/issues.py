"""The typed findings list (`Report.issues`), built once from a report's evidence; its worst severity is the
report's severity. Text, SARIF, HTML, CycloneDX and the database's findings all read this list."""

from __future__ import annotations

from scanner import formats
from scanner.report.schema import (
    FileFinding,
    FileStatus,
    Issue,
    IssueKind,
    Report,
    ReportError,
    Severity,
    SkipCategory,
    Skipped,
    Trigger,
    Verdict,
)
from scanner.report.views import fmt_num, fmt_p, fmt_prob, sorted_triggers

WEIGHT_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".pkl",
    ".pickle",
    ".h5",
    ".msgpack",
    ".onnx",
    ".gguf",
)
BACKDOORED_AT = 0.8  # calibrated P(backdoored) from which a model is called backdoored
CRITICAL_AT = 0.95
INCONCLUSIVE_ABOVE = 0.2

_FILE_RULE = {FileStatus.DANGEROUS: ("PAT002", Severity.CRITICAL), FileStatus.SUSPICIOUS: ("PAT003", Severity.MEDIUM)}


def verdict_for(probability: float) -> tuple[Verdict, Severity]:
    """The verdict and severity of a calibrated P(backdoored): the one mapping the detector and reports use."""
    if probability >= BACKDOORED_AT:
        return Verdict.BACKDOORED, Severity.CRITICAL if probability >= CRITICAL_AT else Severity.HIGH
    if probability > INCONCLUSIVE_ABOVE:
        return Verdict.INCONCLUSIVE, Severity.MEDIUM
    return Verdict.CLEAN, Severity.NONE


def primary_file(report: Report) -> str:
    """The file a model-level finding points at: the first weight file, else config.json."""
    names = report.model.files or [f.path for f in report.serialization.files]
    return next(
        (name for name in names if name.lower().endswith(WEIGHT_SUFFIXES) or formats.is_weight_bearing(name)),
        "config.json",
    )


def _behavioural_severity(report: Report) -> Severity:
    if report.verdict in (Verdict.BACKDOORED, Verdict.INCONCLUSIVE) and report.probability is not None:
        return verdict_for(report.probability)[1]
    return Severity.NONE


def _trigger_issue(report: Report, trig: Trigger, severity: Severity) -> Issue:
    where = f" on the {trig.representation} representation" if trig.representation else ""
    message = (
        f"Backdoor trigger {trig.text!r} (tokens {trig.tokens}) shifts the representation{where} by "
        f"{fmt_num(trig.shift)} standardized units, p = {fmt_p(trig.p_value)}; model verdict "
        f"{report.verdict.value}, P(backdoored) = {fmt_prob(report.probability)}."
    )
    if trig.lookalikes:
        message += f" Look-alikes: {', '.join(la.text for la in trig.lookalikes[:10])}."
    details = {
        "trigger": trig.text,
        "probability": report.probability,
        "shift": trig.shift,
        "p_value": trig.p_value,
        "score": trig.score,
        "poison_cos": trig.poison_cos,
        "diff_cos": trig.diff_cos,
        "paper_rule": trig.paper_rule,
        "tokens": list(trig.tokens),
        "flip_rate": trig.flip_rate,
        "attack_success": trig.attack_success,
        "target_label": trig.target_label,
        "representation": trig.representation,
        "lookalikes": [
            {"text": la.text, "shift": la.shift, "p_value": la.p_value, "similarity": la.similarity}
            for la in trig.lookalikes
        ],
    }
    return Issue(
        rule="PAT001",
        kind=IssueKind.BACKDOOR,
        severity=severity,
        location=primary_file(report),
        message=message,
        details=details,
    )


def _file_issue(finding: FileFinding) -> Issue | None:
    status = FileStatus(finding.status)
    if finding.rule:
        severity = Severity(finding.severity) if finding.severity else _FILE_RULE.get(status, ("", Severity.LOW))[1]
        rule_id = finding.rule
    elif status in _FILE_RULE:
        rule_id, severity = _FILE_RULE[status]
    else:
        return None
    kind = IssueKind.SERIALIZATION if rule_id in ("PAT002", "PAT003") else IssueKind.REPO_FILE
    globs = f" Globals: {', '.join(finding.globals)}." if finding.globals else ""
    if finding.hub_security:  # the hub's own verdict, beside ours in every format that shows issues
        globs += f" Hub security scan: {finding.hub_security.get('verdict', 'unknown')}."
    return Issue(
        rule=rule_id,
        kind=kind,
        severity=severity,
        location=finding.path,
        message=f"{finding.path} ({finding.format}) is {status.value}: {finding.reason or 'no reason given'}.{globs}",
        details={
            "format": finding.format,
            "status": status.value,
            "globals": list(finding.globals),
            **({"checks": list(finding.checks)} if finding.checks else {}),
            **({"hub_security": finding.hub_security} if finding.hub_security else {}),
        },
    )


def _skip_issue(report: Report, skip: Skipped) -> Issue:
    severity = Severity(skip.severity) if skip.severity else Severity.NONE
    if skip.category == SkipCategory.BEHAVIOURAL:
        return Issue(
            rule="PAT006",
            kind=IssueKind.NOT_SCANNED,
            severity=severity,
            location=primary_file(report),
            message=f"Behavioural backdoor search did not run: {skip.reason}",
            details={"category": skip.category},
        )
    if skip.category == SkipCategory.REMOTE_CODE:
        return Issue(
            rule="PAT004",
            kind=IssueKind.REMOTE_CODE,
            severity=Severity.worst(severity, Severity.HIGH),
            location=skip.path,
            message=f"{skip.path} requires remote code: {skip.reason}",
            details={"category": skip.category},
        )
    return Issue(
        rule="PAT007",
        kind=IssueKind.NOT_SCANNED,
        severity=severity,
        location=skip.path,
        message=f"{skip.path} not scanned ({skip.category}): {skip.reason}",
        details={"category": skip.category},
    )


def _error_issue(report: Report, error: ReportError) -> Issue:
    return Issue(
        rule="PAT005",
        kind=IssueKind.ERROR,
        severity=Severity.NONE,
        location=primary_file(report),
        message=f"Scan failed [{error.code}]: {error.message}",
        details={"code": error.code},
    )


def build_issues(report: Report) -> list[Issue]:
    """Every finding of `report` as a typed Issue, most severe evidence first (triggers, files, skips, errors)."""
    behavioural = _behavioural_severity(report)
    issues = [_trigger_issue(report, t, behavioural) for t in sorted_triggers(report)]
    if not report.triggers and behavioural is not Severity.NONE:
        issues.append(
            Issue(
                rule="PAT008",
                kind=IssueKind.BACKDOOR,
                severity=behavioural,
                location=primary_file(report),
                message=f"Verdict {report.verdict.value} (P(backdoored) {report.probability:.2f}) "
                "without a trigger above the significance threshold",
                details={"probability": report.probability},
            )
        )
    issues += [issue for f in report.serialization.files if (issue := _file_issue(f)) is not None]
    issues += [_skip_issue(report, s) for s in report.skipped]
    issues += [_error_issue(report, e) for e in report.errors]
    return issues


def finalize(report: Report) -> Report:
    """Build `report.issues` and set the report's severity to the worst issue's. Call once, when the report is
    complete (the pipeline does)."""
    report.issues = build_issues(report)
    report.severity = Severity.worst(*(Severity(i.severity) for i in report.issues))
    return report


def issues_of(report: Report) -> list[Issue]:
    """The report's issues; rebuilt for reports written before `issues` existed."""
    return report.issues if report.issues else build_issues(report)
