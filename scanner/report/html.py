"""The HTML report: one Jinja2 template (templates/report.html) shared by the CLI, the web app and the purification
page; every model-supplied value is autoescaped and made `visible`."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from scanner import __version__
from scanner.report.issues import issues_of
from scanner.report.nullplot import null_plot
from scanner.report.schema import FileStatus, Report, Severity, SkipCategory, Verdict
from scanner.report.views import (
    NO_EXTRAS,
    PURIFICATION_RECORD,
    REPORT_FILE,
    ReportExtras,
    behavioural_skip,
    fmt_bytes,
    fmt_cell,
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

TEMPLATE_NAME = "report.html"
PURIFICATION_TEMPLATE = "purification.html"
TOOL_NAME = "patronus-scanner"


def templates_dir() -> Path:
    """The shipped templates: scanner/templates in an installed wheel (package data), else the repository's
    top-level templates/ folder."""
    packaged = Path(__file__).resolve().parent.parent / "templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent.parent / "templates"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The Jinja2 environment for templates/: autoescape always on, every output made `visible`, undefined
    names are errors."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        autoescape=True,
        finalize=visible,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        visible=visible,
        num=fmt_num,
        pval=fmt_p,
        cos=fmt_cos,
        prob=fmt_prob,
        params=fmt_params,
        seconds=fmt_seconds,
        yesno=yes_no,
        cell=fmt_cell,
    )
    return env


def render_html(report: Report, extras: ReportExtras = NO_EXTRAS, *, embedded: bool = False) -> str:
    """The self-contained HTML report; `embedded=True` leaves out <html>/<head>/<body> for a host page. `extras`:
    the monitor rules and a purification record to show (built by the caller)."""
    context = report_context(report, extras, embedded=embedded)
    return environment().get_template(TEMPLATE_NAME).render(**context)


def render_purification_page(record: dict[str, Any]) -> str:
    """The purification page (before/after table of a purification record) on the one layout; values escaped."""
    view = purification_view(record) or {}
    context = {
        "view": view,
        "target": fmt_cell(record.get("target")),
        "output": fmt_cell(record.get("output")),
        "fidelity": fmt_cell(record.get("clean_fidelity")),
        "threshold": fmt_cell(record.get("threshold")),
    }
    return environment().get_template(PURIFICATION_TEMPLATE).render(**context)


def report_context(report: Report, extras: ReportExtras = NO_EXTRAS, *, embedded: bool = False) -> dict[str, Any]:
    """Everything templates/report.html needs, for the CLI and the web app alike."""
    triggers = sorted_triggers(report)
    skip = behavioural_skip(report)
    return {
        "report": report,
        "embedded": embedded,
        "title": f"Patronus report: {model_ref(report)}",
        "tool_name": report.tool.get("name", TOOL_NAME),
        "tool_version": report.tool.get("version", __version__),
        "model_ref": model_ref(report),
        "banner": banner(report),
        "behavioural_skip": skip,
        "summary": _summary(report),
        "model_rows": _model_rows(report),
        "triggers": triggers,
        "show_flip_rate": any(t.flip_rate is not None for t in triggers),
        "null_plot": null_plot(report),
        "lineage": lineage_view(report),
        "hub_judged": any(f.hub_security for f in report.serialization.files),
        "mitigation": extras.mitigation,
        "report_file": REPORT_FILE,
        "purification": purification_view(extras.purification),
        "purification_file": PURIFICATION_RECORD,
        "issues": issues_of(report),
        "files": report.serialization.files,
        "skipped": report.skipped,
        "errors": report.errors,
        "scan_rows": _scan_rows(report),
        "config_rows": [(key, _config_value(value)) for key, value in report.scan.config.items()],
    }


STATIC_ONLY_HEADLINE = "Behavioural backdoor search did not run"


def banner(report: Report) -> dict[str, Any]:
    """Headline, explanation, alerts and colour class of the verdict banner."""
    skip = behavioural_skip(report)
    headline, detail = _headline(report)
    alerts = _alerts(report)
    if skip and headline != STATIC_ONLY_HEADLINE:
        alerts.insert(0, f"{STATIC_ONLY_HEADLINE} ({skip.reason}): this is not a clean result")
    pill = "v-static" if skip and report.verdict == Verdict.CLEAN else f"v-{report.verdict.value}"
    return {
        "tone": _tone(report),
        "headline": headline,
        "detail": detail,
        "alerts": alerts,
        "static_only": skip is not None,
        "verdict_class": pill,
    }


def _headline(report: Report) -> tuple[str, str]:
    """The banner's first line, by precedence: failure, backdoor, dangerous file, static-only, verdict."""
    if report.verdict in (Verdict.ERROR, Verdict.BACKDOORED):
        return _verdict_text(report)
    if any(f.status == FileStatus.DANGEROUS for f in report.serialization.files):
        return "Dangerous weight file", (
            "Loading this model would execute code embedded in its weight files. Do not load it outside a sandbox."
        )
    skip = behavioural_skip(report)
    if skip:
        return STATIC_ONLY_HEADLINE, (
            "Only static checks of the weight files were performed, so a backdoor in the "
            f"weights would go unnoticed. This is not a clean result. Reason: {skip.reason}"
        )
    return _verdict_text(report)


def _verdict_text(report: Report) -> tuple[str, str]:
    count = len(report.triggers)
    if report.verdict == Verdict.BACKDOORED:
        return "Backdoor detected", (
            f"{count} transferable backdoor trigger(s) found; they survive downstream "
            "fine-tuning. Do not deploy this model."
        )
    if report.verdict == Verdict.CLEAN:
        return "No backdoor found", (
            "No candidate trigger stood out from this model's own null distribution of random rare tokens."
        )
    if report.verdict == Verdict.ERROR:
        first = report.errors[0] if report.errors else None
        reason = f"[{first.code}] {first.message}" if first else "no error recorded"
        return "Scan failed", f"The model's safety is unknown. {reason}"
    return "Inconclusive", (
        "Some candidates shifted the representation more than the null, but not enough for "
        "a confident verdict. Review the evidence below."
    )


def _tone(report: Report) -> str:
    """CSS tone of the banner: danger, warn, ok, partial (static checks only) or error. Never ok when partial."""
    tone = {Verdict.BACKDOORED: "danger", Verdict.CLEAN: "ok", Verdict.INCONCLUSIVE: "warn", Verdict.ERROR: "error"}[
        report.verdict
    ]
    if tone == "error":
        return tone
    if report.severity.at_least(Severity.HIGH):
        return "danger"
    if behavioural_skip(report):
        return "partial"
    return "warn" if tone == "ok" and report.severity.at_least(Severity.MEDIUM) else tone


def _alerts(report: Report) -> list[str]:
    """Short lines under the headline for what the verdict alone does not say."""
    files = report.serialization.files
    dangerous = sum(f.status == FileStatus.DANGEROUS for f in files)
    suspicious = sum(f.status == FileStatus.SUSPICIOUS for f in files)
    alerts = []
    if dangerous:
        alerts.append(f"{dangerous} weight file(s) would run dangerous code when loaded")
    if suspicious:
        alerts.append(f"{suspicious} file(s) with suspicious serialization")
    if report.errors and report.verdict != Verdict.ERROR:
        alerts.append(f"{len(report.errors)} error(s) during the scan")
    others = [s for s in report.skipped if s.category != SkipCategory.BEHAVIOURAL]
    if others:
        alerts.append(f"{len(others)} file(s) not scanned")
    return alerts


def _summary(report: Report) -> list[tuple[str, str]]:
    files = report.serialization.files
    return [
        ("Triggers", str(len(report.triggers))),
        ("Look-alikes", str(sum(len(t.lookalikes) for t in report.triggers))),
        ("Files checked", str(sum(f.status != FileStatus.SKIPPED for f in files))),
        ("Unsafe files", str(sum(f.status in (FileStatus.DANGEROUS, FileStatus.SUSPICIOUS) for f in files))),
        ("Skipped", str(len(report.skipped))),
        ("Errors", str(len(report.errors))),
    ]


def _model_rows(report: Report) -> list[tuple[str, str]]:
    model = report.model
    return [
        ("Model", model.id),
        ("Source", model.source),
        ("Revision", model.revision or "default"),
        ("Commit", model.sha or "unknown"),
        ("Family", model.family or "unknown"),
        ("Architecture", model.architecture or "unknown"),
        ("Parameters", fmt_params(model.parameters)),
    ]


def _scan_rows(report: Report) -> list[tuple[str, str]]:
    scan = report.scan
    return [
        ("Profile", scan.profile),
        ("Seed", str(scan.seed)),
        ("Device", scan.device),
        ("Started", scan.started or "n/a"),
        ("Finished", scan.finished or "n/a"),
        ("Duration", fmt_seconds(scan.seconds)),
        ("Time by stage", ", ".join(f"{k} {fmt_seconds(v)}" for k, v in scan.stage_seconds.items()) or "n/a"),
        ("Sequences evaluated", f"{scan.sequences_evaluated:,}"),
        ("Peak memory", fmt_bytes(scan.peak_memory_bytes)),
        ("Report schema", report.schema),
    ]


def _config_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
