"""Report writers: text, JSON, SARIF 2.1.0 and HTML, all derived from the canonical Report.

`FORMATS` maps a format name to a renderer (Report -> str); `write_report` renders by name and writes atomically.
The HTML page is the one Jinja2 template `templates/report.html`, shared by the CLI and the web app.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shlex
import tempfile
import unicodedata
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import markupsafe

from scanner import __version__
from scanner.errors import UsageError
from scanner.report import FileFinding, FileStatus, Report, ReportError, Severity, Skipped, Trigger, Verdict

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
TEMPLATE_NAME = "report.html"

TOOL_NAME = "patronus-scanner"
INFORMATION_URI = "https://pypi.org/project/patronus-scanner/"
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SARIF_VERSION = "2.1.0"
BEHAVIOURAL = "behavioural"  # Skipped.category when the trigger search did not run
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".h5", ".msgpack", ".onnx")
TEXT_TOP_TRIGGERS = 5
TEXT_MAX_RULES = 12
REPORT_FILE = "report.json"  # how the mitigation commands name this scan's JSON report
PURIFIED_DIR = "purified"
PURIFICATION_RECORD = "purification.json"  # scanner.mitigate.purify.RECORD, read without importing torch here
PURIFICATION_MAX_BYTES = 5_000_000

Renderer = Callable[[Report], str]


# --------------------------------------------------------------------------------------------------- formatting


def visible(text: Any) -> str:
    """Make control and format characters (ANSI escapes, bidi overrides, zero-width) visible as escapes."""
    if isinstance(text, markupsafe.Markup):
        return text
    return "".join(_escape_char(char) for char in str(text))


_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(char: str) -> str:
    if unicodedata.category(char)[0] != "C":
        return char
    code = ord(char)
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _finite(value: float | None) -> bool:
    return value is not None and not (isinstance(value, float) and not math.isfinite(value))


def fmt_num(value: float | None) -> str:
    """A shift or score: thousands separators when large, 2 decimals when small."""
    if not _finite(value):
        return "n/a"
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    return f"{value:.1f}" if size >= 10 else f"{value:.2f}"


def fmt_p(value: float | None) -> str:
    """A p-value: 3 decimals, scientific below 0.001."""
    if not _finite(value):
        return "n/a"
    return f"{value:.1e}" if 0 < value < 0.001 else f"{value:.3f}"


def fmt_cos(value: float | None) -> str:
    """A cosine or a rate in 0..1."""
    return f"{value:.3f}" if _finite(value) else "n/a"


def fmt_prob(value: float | None) -> str:
    """A calibrated probability as a percentage that never rounds to a false 0% or 100%."""
    if not _finite(value):
        return "not computed"
    if 0.999 < value < 1:
        return ">99.9%"
    if 0 < value < 0.001:
        return "<0.1%"
    return f"{value:.1%}"


def fmt_params(value: int | None) -> str:
    """A parameter count: 22.7M, 110M, 1.3B."""
    if value is None:
        return "unknown"
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:.3g}{suffix} ({value:,})"
    return f"{value:,}"


def fmt_seconds(value: float | None) -> str:
    """Wall time of the scan."""
    if not _finite(value):
        return "n/a"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def yes_no(value: bool | None) -> str:
    return "n/a" if value is None else ("yes" if value else "no")


# --------------------------------------------------------------------------------------------------- shared views


def sorted_triggers(report: Report) -> list[Trigger]:
    """Strongest evidence first: smallest p-value, then largest shift."""
    return sorted(report.triggers, key=lambda t: (_sort_float(t.p_value), -_sort_float(t.shift, 0.0)))


def _sort_float(value: float | None, default: float = math.inf) -> float:
    return value if _finite(value) else default


def behavioural_skip(report: Report) -> Skipped | None:
    """The skipped entry saying the behavioural (trigger) search did not run, if any."""
    return next((s for s in report.skipped if s.category == BEHAVIOURAL), None)


def model_ref(report: Report) -> str:
    """`id@sha` (short sha), or `id@revision` when no sha is known."""
    pin = report.model.sha[:12] if report.model.sha else report.model.revision
    return f"{report.model.id}@{pin}" if pin else report.model.id


def _severity_level(severity: Severity) -> str:
    """SARIF level for a severity."""
    return {Severity.CRITICAL: "error", Severity.HIGH: "error", Severity.MEDIUM: "warning",
            Severity.LOW: "note", Severity.NONE: "none"}[Severity(severity)]


_FILE_SEVERITY = {FileStatus.DANGEROUS: Severity.CRITICAL, FileStatus.SUSPICIOUS: Severity.MEDIUM,
                  FileStatus.SAFE: Severity.NONE, FileStatus.SKIPPED: Severity.NONE}
_REMOTE_CODE = re.compile(r"remote[\s_-]*code|auto_map", re.IGNORECASE)


def is_remote_code(*texts: str) -> bool:
    """Whether a finding says the model needs `trust_remote_code` (custom Python from the repo)."""
    return any(_REMOTE_CODE.search(text or "") for text in texts)


# --------------------------------------------------------------------------------------------------- mitigation


def mitigation(report: Report) -> dict[str, Any] | None:
    """The monitor rules `patronus monitor --report` builds from this report (MonitorRules.from_report with its
    defaults, so they are the same) and the commands to act on them; None when the report has no triggers."""
    if not report.triggers:
        return None
    from scanner.mitigate.monitor import MonitorRules

    rules = MonitorRules.from_report(report)
    return {"rules": rules.rules, "skipped": rules.skipped, "commands": mitigation_commands(report)}


def mitigation_commands(report: Report) -> list[str]:
    """Command lines to monitor inputs for the triggers and to purify the model (TARGET shell-quoted)."""
    target = report.model.id
    if target.startswith("-"):  # a local folder named like an option
        target = f"./{target}"
    rep = REPORT_FILE
    return [f"patronus monitor --report {rep} 'some input text'",
            f"patronus monitor --report {rep} --strip - < inputs.txt",
            f"patronus purify {shlex.quote(target)} --report {rep} -o {PURIFIED_DIR}"]


def load_purification(report: Report) -> dict[str, Any] | None:
    """purification.json of a scanned local model folder (`patronus purify` output), or None when there is none.
    A record that cannot be read comes back as {"problem": reason}: it is shown, never silently dropped."""
    if report.model.source != "local" or not report.model.id:
        return None
    path = Path(report.model.id) / PURIFICATION_RECORD
    try:
        if not path.is_file():
            return None
        if path.stat().st_size > PURIFICATION_MAX_BYTES:
            return {"problem": f"larger than {PURIFICATION_MAX_BYTES:,} bytes"}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return {"problem": f"unreadable ({type(exc).__name__}: {exc})"}
    if not isinstance(data, dict) or not isinstance(data.get("table"), list):
        return {"problem": "not a purification record (no table)"}
    return data


def purification_view(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the HTML and text reports show of a purification record: facts, the before/after table, a problem."""
    if record is None:
        return None
    if "problem" in record:
        return {"problem": str(record["problem"])}
    from scanner.mitigate.purify import TABLE_COLUMNS, fmt_cell, purification_rows

    rescan = record.get("rescan") if isinstance(record.get("rescan"), dict) else None
    rows = purification_rows(record)
    reductions = [r.get("reduction") for r in record["table"] if isinstance(r, dict)]
    reductions = [v for v in reductions if isinstance(v, int | float) and _finite(v)]
    return {
        "problem": None,
        "facts": [("Purified from", fmt_cell(record.get("target"))), ("Steps", fmt_cell(record.get("steps_done"))),
                  ("Clean fidelity (cos)", fmt_cell(record.get("clean_fidelity"))),
                  ("Evidence threshold (z)", fmt_cell(record.get("threshold")))]
                 + ([("Rescan", f"{fmt_cell(rescan.get('profile'))}: {fmt_cell(rescan.get('verdict'))}, P(backdoored) "
                                f"{fmt_cell(rescan.get('probability'))}")] if rescan else []),
        "columns": [c.replace("_", " ") for c in TABLE_COLUMNS],
        "rows": rows,
        "min_reduction": min(reductions) if reductions else None,
        "steps": fmt_cell(record.get("steps_done")),
        "rescan": rescan,
    }


# --------------------------------------------------------------------------------------------------- JSON, text


def render_json(report: Report) -> str:
    """The canonical JSON report."""
    return report.to_json()


def render_text(report: Report) -> str:
    """A short plain-text summary for a terminal or a CI log."""
    lines = [f"Patronus Scanner {report.tool.get('version', __version__)} -- {report.schema}"]
    lines += _text_head(report)
    lines += _text_triggers(report)
    lines += _text_mitigation(report)
    lines += _text_purification(purification_view(load_purification(report)))
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
        lines.append(f"WARNING:  behavioural backdoor search NOT RUN ({visible(skip.reason)}); "
                     "only static checks were done -- this is not a clean result")
    return lines


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
        lines.append(f"  {rank}. \"{visible(trig.text)}\" [{tokens}]  shift={fmt_num(trig.shift)}"
                     f"  p={fmt_p(trig.p_value)}  paper_rule={yes_no(trig.paper_rule)}{extra}")
        if trig.lookalikes:
            names = ", ".join(f"{visible(la.text)} ({fmt_num(la.shift)})" for la in trig.lookalikes[:6])
            more = f", +{len(trig.lookalikes) - 6} more" if len(trig.lookalikes) > 6 else ""
            lines.append(f"       look-alikes: {names}{more}")
    if len(triggers) > TEXT_TOP_TRIGGERS:
        lines.append(f"  ... {len(triggers) - TEXT_TOP_TRIGGERS} more in the full report")
    return lines


def _text_mitigation(report: Report) -> list[str]:
    view = mitigation(report)
    if view is None:
        return []
    shown = view["rules"][:TEXT_MAX_RULES]
    rules = ", ".join(visible(r.text) + ("" if r.source == "trigger" else f" (~{visible(r.trigger)})")
                      for r in shown)
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
    return [f"Purification: {PURIFICATION_RECORD} in the model folder (patronus purify, {visible(view['steps'])} "
            f"steps): {len(view['rows'])} trigger(s){least}{again}; the HTML report has the before/after table"]


def _text_serialization(report: Report) -> list[str]:
    files = report.serialization.files
    if not files:
        return ["Serialization: no files checked"]
    problems = [f for f in files if f.status in (FileStatus.DANGEROUS, FileStatus.SUSPICIOUS)]
    lines = [f"Serialization: {len(files)} file(s) checked, worst = {report.serialization.worst_status.value}"]
    for finding in problems:
        globs = f"; globals: {', '.join(visible(g) for g in finding.globals)}" if finding.globals else ""
        lines.append(f"  {finding.status.upper():<10} {visible(finding.path)} ({visible(finding.format)}): "
                     f"{visible(finding.reason)}{globs}")
    return lines


def _text_skipped(report: Report) -> list[str]:
    others = [s for s in report.skipped if s.category != BEHAVIOURAL]
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
    return (f"Scan:     profile {scan.profile}, seed {scan.seed}, device {visible(scan.device)}, "
            f"{fmt_seconds(scan.seconds)}, {scan.sequences_evaluated:,} sequences evaluated")


# --------------------------------------------------------------------------------------------------- SARIF

SARIF_RULES: list[dict[str, Any]] = [
    {"id": "PAT001", "name": "backdoor-trigger", "level": "error", "security": "9.0",
     "short": "Transferable backdoor trigger",
     "full": "Inserting this token sequence moves the encoder's representation far more than random rare tokens "
             "do (calibrated per model against a null distribution): a planted, task-agnostic backdoor that "
             "survives downstream fine-tuning."},
    {"id": "PAT002", "name": "dangerous-pickle-global", "level": "error", "security": "9.8",
     "short": "Weight file runs dangerous code when loaded",
     "full": "The weight file's pickle stream imports or calls a dangerous global (for example os.system, "
             "builtins.exec, subprocess) or is otherwise unsafe to deserialize. Loading it executes code."},
    {"id": "PAT003", "name": "suspicious-serialization", "level": "warning", "security": "5.5",
     "short": "Suspicious pickle global or malformed weight file",
     "full": "The weight file imports a global outside the known-safe set, or its header/layout is unusual. "
             "Review before loading; prefer safetensors."},
    {"id": "PAT004", "name": "remote-code-required", "level": "warning", "security": "7.0",
     "short": "Model requires trust_remote_code",
     "full": "Loading the model runs Python code shipped in its repository (auto_map / trust_remote_code)."},
    {"id": "PAT005", "name": "scan-error", "level": "error", "security": None,
     "short": "The scan failed",
     "full": "The scanner could not complete; the model's safety is unknown."},
    {"id": "PAT006", "name": "behavioural-scan-not-run", "level": "warning", "security": None,
     "short": "Behavioural backdoor search did not run",
     "full": "Only static serialization checks were performed; backdoors in the weights were not searched for."},
    {"id": "PAT007", "name": "file-not-scanned", "level": "note", "security": None,
     "short": "File not scanned",
     "full": "A file was not scanned (unsupported format, size limit, ...); its contents are unchecked."},
]
_RULE_INDEX = {rule["id"]: index for index, rule in enumerate(SARIF_RULES)}


def _sarif_rule(rule: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = {"tags": ["security", "supply-chain", "ml-model"]}
    if rule["security"]:
        props["security-severity"] = rule["security"]
    return {"id": rule["id"], "name": rule["name"], "shortDescription": {"text": rule["short"]},
            "fullDescription": {"text": rule["full"]}, "helpUri": INFORMATION_URI,
            "defaultConfiguration": {"level": rule["level"]}, "properties": props}


def render_sarif(report: Report) -> str:
    """SARIF 2.1.0: one run, one rule per finding kind, one result per finding."""
    run: dict[str, Any] = {
        "tool": {"driver": {"name": TOOL_NAME, "version": report.tool.get("version", __version__),
                            "semanticVersion": report.tool.get("version", __version__),
                            "informationUri": INFORMATION_URI,
                            "rules": [_sarif_rule(rule) for rule in SARIF_RULES]}},
        "invocations": [_sarif_invocation(report)],
        "results": list(_sarif_results(report)),
        "properties": _clean_json({"schema": report.schema, "verdict": report.verdict.value,
                                   "probability": report.probability, "severity": report.severity.value,
                                   "model": {"id": report.model.id, "source": report.model.source,
                                             "revision": report.model.revision, "sha": report.model.sha}}),
    }
    base = _model_base_uri(report)
    if base:
        run["originalUriBaseIds"] = {"MODELROOT": {"uri": base}}
    sarif = {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}
    return json.dumps(sarif, indent=2, ensure_ascii=False, allow_nan=False)


def _sarif_results(report: Report) -> Iterable[dict[str, Any]]:
    for trig in sorted_triggers(report):
        yield _trigger_result(report, trig)
    for finding in report.serialization.files:
        result = _file_result(report, finding)
        if result:
            yield result
    for skip in report.skipped:
        yield _skip_result(report, skip)
    for error in report.errors:
        yield _error_result(report, error)


def _result(report: Report, rule_id: str, level: str, text: str, uri: str, key: str,
            properties: dict[str, Any] | None = None) -> dict[str, Any]:
    """One SARIF result located at a model file, with the model as its logical location."""
    model = report.model
    fingerprint = hashlib.sha256(f"{rule_id}|{model.id}|{key}".encode()).hexdigest()[:32]
    result: dict[str, Any] = {
        "ruleId": rule_id, "ruleIndex": _RULE_INDEX[rule_id], "level": level, "message": {"text": text},
        "locations": [{
            "physicalLocation": {"artifactLocation": {"uri": quote(uri, safe="/"), "uriBaseId": "MODELROOT"}},
            "logicalLocations": [{"name": model.id, "fullyQualifiedName": model_ref(report), "kind": "module"}],
        }],
        "partialFingerprints": {"patronusFinding/v1": fingerprint},
    }
    if properties:
        result["properties"] = _clean_json(properties)
    return result


def _trigger_result(report: Report, trig: Trigger) -> dict[str, Any]:
    lookalikes = ", ".join(la.text for la in trig.lookalikes[:10])
    text = (f"Backdoor trigger {trig.text!r} (tokens {trig.tokens}) shifts the representation by "
            f"{fmt_num(trig.shift)} standardized units, p = {fmt_p(trig.p_value)}; model verdict "
            f"{report.verdict.value}, P(backdoored) = {fmt_prob(report.probability)}.")
    if lookalikes:
        text += f" Look-alikes: {lookalikes}."
    props = {"probability": report.probability, "shift": trig.shift, "p_value": trig.p_value,
             "score": trig.score, "poison_cos": trig.poison_cos, "diff_cos": trig.diff_cos,
             "paper_rule": trig.paper_rule, "tokens": trig.tokens, "flip_rate": trig.flip_rate,
             "lookalikes": [{"text": la.text, "shift": la.shift, "p_value": la.p_value,
                             "similarity": la.similarity} for la in trig.lookalikes]}
    return _result(report, "PAT001", _severity_level(report.severity), text, primary_file(report),
                   f"trigger:{trig.text}", props)


def _file_result(report: Report, finding: FileFinding) -> dict[str, Any] | None:
    status = FileStatus(finding.status)
    if status in (FileStatus.SAFE, FileStatus.SKIPPED) and not is_remote_code(finding.reason):
        return None
    if is_remote_code(finding.reason, finding.format):
        rule, severity = "PAT004", Severity.worst(_FILE_SEVERITY[status], Severity.MEDIUM)
    else:
        rule, severity = ("PAT002" if status == FileStatus.DANGEROUS else "PAT003"), _FILE_SEVERITY[status]
    globs = f" Globals: {', '.join(finding.globals)}." if finding.globals else ""
    text = f"{finding.path} ({finding.format}) is {status.value}: {finding.reason or 'no reason given'}.{globs}"
    props = {"format": finding.format, "status": status.value, "globals": finding.globals}
    return _result(report, rule, _severity_level(severity), text, finding.path, f"file:{finding.path}", props)


def _skip_result(report: Report, skip: Skipped) -> dict[str, Any]:
    if skip.category == BEHAVIOURAL:
        rule, level, text = "PAT006", "warning", f"Behavioural backdoor search did not run: {skip.reason}"
    elif is_remote_code(skip.category, skip.reason):
        rule, level, text = "PAT004", "warning", f"{skip.path} requires remote code: {skip.reason}"
    else:
        rule, level, text = "PAT007", "note", f"{skip.path} not scanned ({skip.category}): {skip.reason}"
    uri = skip.path if skip.path and skip.category != BEHAVIOURAL else primary_file(report)
    return _result(report, rule, level, text, uri, f"skip:{skip.category}:{skip.path}",
                   {"category": skip.category})


def _error_result(report: Report, error: ReportError) -> dict[str, Any]:
    return _result(report, "PAT005", "error", f"Scan failed [{error.code}]: {error.message}",
                   primary_file(report), f"error:{error.code}", {"code": error.code})


def _sarif_invocation(report: Report) -> dict[str, Any]:
    invocation: dict[str, Any] = {"executionSuccessful": report.verdict != Verdict.ERROR}
    for key, stamp in (("startTimeUtc", report.scan.started), ("endTimeUtc", report.scan.finished)):
        utc = _utc(stamp)
        if utc:
            invocation[key] = utc
    if report.errors:
        invocation["toolExecutionNotifications"] = [
            {"level": "error", "message": {"text": f"[{e.code}] {e.message}"},
             "descriptor": {"id": e.code}} for e in report.errors]
    return invocation


def _utc(stamp: str) -> str | None:
    """An ISO 8601 timestamp as SARIF's UTC date-time, or None when it does not parse."""
    try:
        when = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def primary_file(report: Report) -> str:
    """The file a model-level finding points at: the first weight file, else config.json."""
    names = report.model.files or [f.path for f in report.serialization.files]
    return next((name for name in names if name.lower().endswith(WEIGHT_SUFFIXES)), "config.json")


def _model_base_uri(report: Report) -> str | None:
    """Absolute URI of the model root: the hub tree at the pinned commit, or a local directory."""
    model = report.model
    if model.source == "hub":
        pin = model.sha or model.revision or "main"
        return f"https://huggingface.co/{quote(model.id, safe='/')}/resolve/{quote(pin, safe='')}/"
    path = Path(model.id)
    return path.as_uri().rstrip("/") + "/" if path.is_absolute() else None


def _clean_json(value: Any) -> Any:
    """Drop None and replace non-finite floats (invalid JSON) with None, recursively."""
    if isinstance(value, dict):
        return {k: _clean_json(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_clean_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --------------------------------------------------------------------------------------------------- HTML


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The Jinja2 environment for templates/: autoescape always on, every output made `visible`, undefined
    names are errors."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True, finalize=visible,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(visible=visible, num=fmt_num, pval=fmt_p, cos=fmt_cos, prob=fmt_prob,
                       params=fmt_params, seconds=fmt_seconds, yesno=yes_no)
    return env


def render_html(report: Report, *, embedded: bool = False) -> str:
    """The self-contained HTML report; `embedded=True` leaves out <html>/<head>/<body> for a host page. A scanned
    local folder's purification.json (`patronus purify` output) adds its before/after table."""
    context = report_context(report, embedded=embedded, purification=load_purification(report))
    return environment().get_template(TEMPLATE_NAME).render(**context)


def report_context(report: Report, *, embedded: bool = False,
                   purification: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything templates/report.html needs, for the CLI and the web app alike (`purification`: a
    purification record to show, see load_purification)."""
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
        "mitigation": mitigation(report),
        "report_file": REPORT_FILE,
        "purification": purification_view(purification),
        "purification_file": PURIFICATION_RECORD,
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
    return {"tone": _tone(report), "headline": headline, "detail": detail, "alerts": alerts,
            "static_only": skip is not None, "verdict_class": pill}


def _headline(report: Report) -> tuple[str, str]:
    """The banner's first line, by precedence: failure, backdoor, dangerous file, static-only, verdict."""
    if report.verdict in (Verdict.ERROR, Verdict.BACKDOORED):
        return _verdict_text(report)
    if any(f.status == FileStatus.DANGEROUS for f in report.serialization.files):
        return "Dangerous weight file", ("Loading this model would execute code embedded in its weight files. "
                                         "Do not load it outside a sandbox.")
    skip = behavioural_skip(report)
    if skip:
        return STATIC_ONLY_HEADLINE, ("Only static checks of the weight files were performed, so a backdoor in the "
                                      f"weights would go unnoticed. This is not a clean result. Reason: {skip.reason}")
    return _verdict_text(report)


def _verdict_text(report: Report) -> tuple[str, str]:
    count = len(report.triggers)
    if report.verdict == Verdict.BACKDOORED:
        return "Backdoor detected", (f"{count} transferable backdoor trigger(s) found; they survive downstream "
                                     "fine-tuning. Do not deploy this model.")
    if report.verdict == Verdict.CLEAN:
        return "No backdoor found", ("No candidate trigger stood out from this model's own null distribution of "
                                     "random rare tokens.")
    if report.verdict == Verdict.ERROR:
        first = report.errors[0] if report.errors else None
        reason = f"[{first.code}] {first.message}" if first else "no error recorded"
        return "Scan failed", f"The model's safety is unknown. {reason}"
    return "Inconclusive", ("Some candidates shifted the representation more than the null, but not enough for "
                            "a confident verdict. Review the evidence below.")


def _tone(report: Report) -> str:
    """CSS tone of the banner: danger, warn, ok, partial (static checks only) or error. Never ok when partial."""
    tone = {Verdict.BACKDOORED: "danger", Verdict.CLEAN: "ok", Verdict.INCONCLUSIVE: "warn",
            Verdict.ERROR: "error"}[report.verdict]
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
    others = [s for s in report.skipped if s.category != BEHAVIOURAL]
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
    return [("Model", model.id), ("Source", model.source), ("Revision", model.revision or "default"),
            ("Commit", model.sha or "unknown"), ("Family", model.family or "unknown"),
            ("Architecture", model.architecture or "unknown"), ("Parameters", fmt_params(model.parameters))]


def _scan_rows(report: Report) -> list[tuple[str, str]]:
    scan = report.scan
    return [("Profile", scan.profile), ("Seed", str(scan.seed)), ("Device", scan.device),
            ("Started", scan.started or "n/a"), ("Finished", scan.finished or "n/a"),
            ("Duration", fmt_seconds(scan.seconds)), ("Sequences evaluated", f"{scan.sequences_evaluated:,}"),
            ("Report schema", report.schema)]


def _config_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


# --------------------------------------------------------------------------------------------------- writing

FORMATS: dict[str, Renderer] = {"text": render_text, "json": render_json, "sarif": render_sarif,
                                "html": render_html}


def write_report(report: Report, fmt: str, path: Path | None = None) -> str:
    """Render `report` as `fmt` (a FORMATS key); write it to `path` atomically when given. Returns the text."""
    renderer = FORMATS.get(fmt)
    if renderer is None:
        raise UsageError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")
    text = renderer(report)
    if path is not None:
        atomic_write(Path(path), text if text.endswith("\n") else text + "\n")
    return text


def atomic_write(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, fsync, then rename over it: readers never see half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
