"""The plain-text report: a short summary for a terminal or a CI log."""

from __future__ import annotations

from typing import Any

from scanner import __version__
from scanner.report.issues import issues_of
from scanner.report.schema import FileStatus, Report, Severity, SkipCategory, Verdict
from scanner.report.views import (
    NO_EXTRAS,
    PURIFICATION_RECORD,
    REPORT_FILE,
    ReportExtras,
    behavioural_skip,
    fmt_cos,
    fmt_num,
    fmt_p,
    fmt_params,
    fmt_prob,
    fmt_seconds,
    lineage_view,
    model_ref,
    purification_view,
    sorted_triggers,
    visible,
    yes_no,
)

TEXT_TOP_TRIGGERS = 5
TEXT_MAX_RULES = 12
TEXT_MAX_ISSUES = 8


def render_text(report: Report, extras: ReportExtras = NO_EXTRAS) -> str:
    """A short plain-text summary for a terminal or a CI log."""
    lines = [f"Patronus Scanner {report.tool.get('version', __version__)} -- {report.schema}"]
    lines += _text_head(report)
    lines += _text_issues(report)
    lines += _text_triggers(report)
    lines += _text_lineage(lineage_view(report))
    lines += _text_mitigation(extras.mitigation)
    lines += _text_purification(purification_view(extras.purification))
    lines += _text_serialization(report)
    lines += _text_skipped(report)
    lines += _text_errors(report)
    lines.append(_text_scan(report))
    return "\n".join(lines) + "\n"


def _text_head(report: Report) -> list[str]:
    model = report.model
    facts = [model.source, model.family, model.architecture]
    if model.parameters is not None:
        facts.append(f"{fmt_params(model.parameters).split(' ')[0]} params")
    lines = [
        f"Model:    {visible(model_ref(report))} ({visible(', '.join(f for f in facts if f))})",
        f"Verdict:  {report.verdict.value.upper()}   P(backdoored) = {fmt_prob(report.probability)}"
        f"   severity = {report.severity.value}",
    ]
    skip = behavioural_skip(report)
    if skip:
        lines.append(
            f"WARNING:  behavioural backdoor search NOT RUN ({visible(skip.reason)}); "
            "only static checks were done -- this is not a clean result"
        )
    return lines


def _text_issues(report: Report) -> list[str]:
    """The findings at low severity or above, worst first (the full list is in the JSON report's issues[])."""
    issues = [i for i in issues_of(report) if Severity(i.severity) is not Severity.NONE]
    if not issues:
        return []
    issues.sort(key=lambda i: -Severity(i.severity).rank)
    lines = [f"Findings ({len(issues)}):"]
    for issue in issues[:TEXT_MAX_ISSUES]:
        lines.append(
            f"  {issue.severity.upper():<8} {issue.rule} {visible(issue.location)}: "
            f"{visible(_first_sentence(issue.message))}"
        )
    if len(issues) > TEXT_MAX_ISSUES:
        lines.append(f"  ... {len(issues) - TEXT_MAX_ISSUES} more in the full report")
    return lines


def _first_sentence(text: str, limit: int = 160) -> str:
    cut = text.split(". ")[0]
    return cut if len(cut) <= limit else cut[: limit - 3] + "..."


def _text_triggers(report: Report) -> list[str]:
    triggers = sorted_triggers(report)
    if not triggers:
        if behavioural_skip(report):
            return []
        return ["Triggers: not searched (the scan failed)" if report.verdict == Verdict.ERROR else "Triggers: none"]
    lines = [f"Triggers ({len(triggers)}, strongest first):"]
    for rank, trig in enumerate(triggers[:TEXT_TOP_TRIGGERS], 1):
        tokens = " ".join(visible(tok) for tok in trig.tokens)
        extra = f"  flip={fmt_cos(trig.flip_rate)}" if trig.flip_rate is not None else ""
        if trig.attack_success is not None:
            extra += f"  asr={fmt_cos(trig.attack_success)}->{visible(trig.target_label or '?')}"
        lines.append(
            f'  {rank}. "{visible(trig.text)}" [{tokens}]  shift={fmt_num(trig.shift)}'
            f"  p={fmt_p(trig.p_value)}  paper_rule={yes_no(trig.paper_rule)}{extra}"
        )
        if trig.lookalikes:
            names = ", ".join(f"{visible(la.text)} ({fmt_num(la.shift)})" for la in trig.lookalikes[:6])
            more = f", +{len(trig.lookalikes) - 6} more" if len(trig.lookalikes) > 6 else ""
            lines.append(f"       look-alikes: {names}{more}")
    if len(triggers) > TEXT_TOP_TRIGGERS:
        lines.append(f"  ... {len(triggers) - TEXT_TOP_TRIGGERS} more in the full report")
    return lines


def _text_lineage(view: dict[str, Any] | None) -> list[str]:
    if view is None:
        return []
    lines = [f"Lineage:  {visible(view['note'])}"]
    if view["rows"]:
        fired = [r for r in view["rows"] if r["fires"]]
        names = ", ".join(f"{visible(r['text'])} ({fmt_num(r['score'])})" for r in view["rows"][:6])
        lines.append(
            f"  {len(fired)} of {len(view['rows'])} candidate(s) already fire in the base "
            f"(threshold {fmt_num(view['threshold'])}): {names}"
        )
    if view["weakened"]:
        names = ", ".join(
            f"{visible(w['text'])} ({fmt_num(w['score'])} here, {fmt_num(w['base_score'])} in the base)"
            for w in view["weakened"][:6]
        )
        lines.append(
            f"  the base fires on {len(view['weakened'])} candidate(s) this model keeps below threshold: {names}"
        )
    return lines


def _text_mitigation(view: dict[str, Any] | None) -> list[str]:
    if view is None:
        return []
    shown = view["rules"][:TEXT_MAX_RULES]
    rules = ", ".join(visible(r.text) + ("" if r.source == "trigger" else f" (~{visible(r.trigger)})") for r in shown)
    more = f", +{len(view['rules']) - len(shown)} more" if len(view["rules"]) > len(shown) else ""
    lines = [f"Mitigation: {len(view['rules'])} monitor rule(s): {rules or 'none'}{more}"]
    if view["skipped"]:
        lines.append(f"  no rule for: {', '.join(visible(t) for t in view['skipped'])}")
    lines += [f"  $ {visible(cmd)}" for cmd in view["commands"]]
    lines.append(f"  ({REPORT_FILE}: this scan's JSON report, --format json)")
    return lines


def _text_purification(view: dict[str, Any] | None) -> list[str]:
    if view is None:
        return []
    if view["problem"]:
        return [f"Purification: {PURIFICATION_RECORD} in the model folder is {visible(view['problem'])}"]
    least = f", shift reduced at least {fmt_num(view['min_reduction'])}x" if view["min_reduction"] else ""
    rescan = view["rescan"]
    again = f"; rescan {visible(rescan.get('verdict'))}" if rescan else ""
    return [
        f"Purification: {PURIFICATION_RECORD} in the model folder (patronus purify, {visible(view['steps'])} "
        f"steps): {len(view['rows'])} trigger(s){least}{again}; the HTML report has the before/after table"
    ]


def _text_serialization(report: Report) -> list[str]:
    files = report.serialization.files
    if not files:
        return ["Serialization: no files checked"]
    problems = [f for f in files if f.status in (FileStatus.DANGEROUS, FileStatus.SUSPICIOUS)]
    lines = [f"Serialization: {len(files)} file(s) checked, worst = {report.serialization.worst_status.value}"]
    for finding in problems:
        globs = f"; globals: {', '.join(visible(g) for g in finding.globals)}" if finding.globals else ""
        hub = f" [hub: {visible(finding.hub_security.get('verdict', '?'))}]" if finding.hub_security else ""
        lines.append(
            f"  {finding.status.upper():<10} {visible(finding.path)} ({visible(finding.format)}){hub}: "
            f"{visible(finding.reason)}{globs}"
        )
    lines += _text_hub_security(files)
    return lines


def _text_hub_security(files: list) -> list[str]:
    """The hub's own per-file verdicts beside ours; a disagreement is marked."""
    judged = [f for f in files if f.hub_security]
    if not judged:
        return []
    disagree = [f for f in judged if any(c.get("check") == "hub-disagreement" for c in f.checks)]
    lines = [f"Hub security: the hub judged {len(judged)} file(s); {len(disagree)} disagreement(s) with this scan"]
    for finding in judged:
        mark = "!! " if finding in disagree else "   "
        lines.append(
            f"  {mark}{visible(finding.path)}: hub {visible(finding.hub_security.get('verdict', '?'))}, "
            f"patronus {visible(finding.status)}"
        )
    return lines


def _text_skipped(report: Report) -> list[str]:
    others = [s for s in report.skipped if s.category != SkipCategory.BEHAVIOURAL]
    if not others:
        return []
    categories = sorted({s.category for s in others})
    return [f"Skipped:  {len(others)} file(s) not scanned ({visible(', '.join(categories))}); see the full report"]


def _text_errors(report: Report) -> list[str]:
    if not report.errors:
        return []
    return [f"Errors ({len(report.errors)}):"] + [f"  [{visible(e.code)}] {visible(e.message)}" for e in report.errors]


def _text_scan(report: Report) -> str:
    scan = report.scan
    return (
        f"Scan:     profile {scan.profile}, seed {scan.seed}, device {visible(scan.device)}, "
        f"{fmt_seconds(scan.seconds)}, {scan.sequences_evaluated:,} sequences evaluated"
    )
