"""The gate's outputs: a text summary, JSON, SARIF located at the adopting file:line, and the CycloneDX ML-BOM over
every adopted model. Pure: a GateResult in, a string out."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import quote

from scanner import __version__
from scanner.gate.discovery import Adoption
from scanner.gate.findings import GATE_RULES, Finding
from scanner.gate.runner import GateResult, ModelResult
from scanner.report import Severity
from scanner.report.rules import RULES, Rule

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/patronus-scanner/patronus"
ALL_RULES: tuple[Rule, ...] = (*RULES, *GATE_RULES)
RULE_INDEX = {r.id: i for i, r in enumerate(ALL_RULES)}
SEVERITY_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.NONE: "note",
}


def render(result: GateResult, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n"
    if fmt == "sarif":
        return render_sarif(result)
    if fmt == "cyclonedx":
        from scanner.report.cyclonedx import render_bom

        return render_bom(bom_models(result))
    return render_text(result)


def bom_models(result: GateResult) -> list[Any]:
    """One BOM entry per scanned sha, with every place that adopts it (a model adopted as `org/name` and as
    `org/name@main` at the same commit is one component)."""
    from scanner.report.cyclonedx import BomModel

    merged: dict[tuple[str, str | None], Any] = {}
    for model in result.models:
        if model.report is None:
            continue
        key = (model.model, model.identity)
        sites = [a.location for a in model.adoptions]
        if key in merged:
            merged[key].adopted_at.extend(s for s in sites if s not in merged[key].adopted_at)
            continue
        merged[key] = BomModel(
            report=model.report,
            file_hashes=model.files,
            adopted_at=sites,
            signature=model.signature.status if model.signature else None,
        )
    return list(merged.values())


# --------------------------------------------------------------------------------------------------- text


def render_text(result: GateResult) -> str:
    lines = [
        f"Patronus gate: {len(result.adoptions)} adoption(s), {len(result.models)} model(s), "
        f"{len(result.unresolved)} unresolved; {result.scans_run} scan(s) run in {result.seconds:.1f} s"
    ]
    for model in result.models:
        report = model.report
        state = "FAIL" if model.fails else "ok"
        verdict = f"{report.verdict.value}, severity {report.severity.value}" if report else "not scanned"
        pin = (model.sha or model.identity or "")[:12]
        sig = f", signature {model.signature.status}" if model.signature else ""
        lines.append(f"[{state}] {model.display}{' @ ' + pin if pin else ''}: {verdict} ({model.origin}){sig}")
        lines.append(f"       adopted at {', '.join(a.location for a in model.adoptions)}")
        for finding in model.findings:
            if finding.fails or finding.suppressed_by or finding.rule.startswith("PATG"):
                lines.append(_finding_line(finding))
    for finding in result.findings:
        lines.append(_finding_line(finding))
    lines.append(f"exit {result.exit_code}")
    return "\n".join(lines) + "\n"


def _finding_line(finding: Finding) -> str:
    mark = "x" if finding.fails else ("~" if finding.suppressed_by else "-")
    extra = f" [suppressed: {finding.suppressed_by}]" if finding.suppressed_by else ""
    return f"   {mark} {finding.rule} {finding.severity.value}: {finding.message}{extra}"


# --------------------------------------------------------------------------------------------------- SARIF


def _rule(rule: Rule) -> dict[str, Any]:
    props: dict[str, Any] = {"tags": ["security", "supply-chain", "ml-model"]}
    if rule.security:
        props["security-severity"] = rule.security
    return {
        "id": rule.id,
        "name": rule.name,
        "shortDescription": {"text": rule.short},
        "fullDescription": {"text": rule.full},
        "helpUri": INFORMATION_URI,
        "defaultConfiguration": {"level": rule.level},
        "properties": props,
    }


def render_sarif(result: GateResult) -> str:
    """SARIF 2.1.0, one run; every finding of a model is reported at each place that adopts the model."""
    results: list[dict[str, Any]] = []
    for model in result.models:
        for finding in model.findings:
            if finding.severity is Severity.NONE and not finding.fails and finding.rule != "PAT006":
                continue  # PAT007 notes (files not needed) stay in the JSON output, not in code review
            for adoption in model.adoptions:
                results.append(_result(finding, adoption, model))
    for finding in result.findings:
        where = finding.properties.get("adoption")
        site: Adoption | None = None
        if where:
            site = Adoption(file=where["file"], line=where["line"], column=where["column"], call="", model=None)
        elif result.policy_path is not None:
            site = Adoption(file=_policy_uri(result), line=1, column=0, call="policy", model=None)
        results.append(_result(finding, site, None))
    run = {
        "tool": {
            "driver": {
                "name": "patronus-gate",
                "version": __version__,
                "semanticVersion": __version__,
                "informationUri": INFORMATION_URI,
                "rules": [_rule(r) for r in ALL_RULES],
            }
        },
        "originalUriBaseIds": {"%SRCROOT%": {"uri": result.root.resolve().as_uri().rstrip("/") + "/"}},
        "invocations": [{"executionSuccessful": result.exit_code in (0, 1)}],
        "results": results,
        "properties": {"exit_code": result.exit_code, "models": len(result.models), "scans_run": result.scans_run},
    }
    return json.dumps({"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}, indent=2, ensure_ascii=False) + "\n"


def _policy_uri(result: GateResult) -> str:
    assert result.policy_path is not None
    try:
        return result.policy_path.resolve().relative_to(result.root.resolve()).as_posix()
    except ValueError:
        return result.policy_path.name


def _result(finding: Finding, adoption: Adoption | None, model: ModelResult | None) -> dict[str, Any]:
    level = SEVERITY_LEVEL[finding.severity] if finding.fails or finding.severity is not Severity.NONE else "note"
    if finding.fails and level == "note":
        level = "error"
    prefix = f"{model.display}: " if model is not None and not finding.message.startswith(model.display) else ""
    out: dict[str, Any] = {
        "ruleId": finding.rule,
        "ruleIndex": RULE_INDEX.get(finding.rule, 0),
        "level": level,
        "message": {"text": prefix + finding.message},
    }
    if adoption is not None:
        out["locations"] = [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": quote(adoption.file, safe="/"), "uriBaseId": "%SRCROOT%"},
                    "region": {"startLine": adoption.line, "startColumn": adoption.column + 1},
                }
            }
        ]
        if model is not None:
            out["locations"][0]["logicalLocations"] = [
                {"name": model.model, "kind": "module", "fullyQualifiedName": model.display}
            ]
    if model is not None and finding.file:
        pin = model.sha or model.revision or "main"
        uri = (
            f"https://huggingface.co/{quote(model.model, safe='/')}/blob/{pin}/{quote(finding.file, safe='/')}"
            if model.source == "hub"
            else f"{quote(model.model, safe='/')}/{quote(finding.file, safe='/')}"
        )
        out["relatedLocations"] = [
            {
                "id": 1,
                "physicalLocation": {"artifactLocation": {"uri": uri}},
                "message": {"text": f"{finding.file} in {model.display}"},
            }
        ]
    key = f"{finding.rule}|{finding.model}|{finding.file}|{finding.message if model is None else ''}"
    if model is not None and finding.rule == "PAT001":
        key += f"|{finding.properties.get('trigger')}"
    out["partialFingerprints"] = {"patronusGate/v1": hashlib.sha256(key.encode()).hexdigest()[:32]}
    props: dict[str, Any] = {"severity": finding.severity.value, "fails": finding.fails}
    if model is not None:
        props.update(
            {
                "model": model.model,
                "revision": model.revision,
                "sha": model.sha,
                "verdict": model.report.verdict.value if model.report else None,
            }
        )
    out["properties"] = {k: v for k, v in props.items() if v is not None}
    if finding.suppressed_by:
        out["suppressions"] = [{"kind": "external", "justification": finding.suppressed_by}]
    return out
