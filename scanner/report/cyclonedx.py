"""CycloneDX 1.6 ML-BOM through cyclonedx-python-lib: pure, a Report (or several) in, JSON out; no file reads.

Each scanned model is a `machine-learning-model` component (hub models with a `pkg:huggingface` purl pinned to the
commit), its files nested `file` components with SHA-256 hashes when the caller knows them (the gate does), the scan
verdict as `patronus:*` properties, and every issue of the report as a vulnerability with its PAT rule id that
affects the model component.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from scanner import __version__
from scanner.report.issues import issues_of
from scanner.report.rules import RULES_BY_ID
from scanner.report.schema import Report, Severity

INFORMATION_URI = "https://github.com/patronus-scanner/patronus"
_SEVERITY = {"critical": "CRITICAL", "high": "HIGH", "medium": "MEDIUM", "low": "LOW", "none": "INFO"}


@dataclass
class BomModel:
    """One model of a BOM: its report, and what the caller knows besides (file hashes, where it is adopted)."""

    report: Report
    file_hashes: Mapping[str, str] = field(default_factory=dict)  # path -> sha256 hex
    adopted_at: list[str] = field(default_factory=list)  # file:line of the code that loads it
    signature: str | None = None  # verified | mismatch | unsigned | unverifiable


def render_cyclonedx(report: Report) -> str:
    """The BOM of one scan (`patronus scan --format cyclonedx`)."""
    return render_bom([BomModel(report=report)])


def render_bom(models: Iterable[BomModel], *, timestamp: datetime | None = None) -> str:
    """One CycloneDX 1.6 JSON BOM over `models` (the gate: every adopted model)."""
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6

    bom = Bom()
    bom.metadata.timestamp = timestamp or datetime.now(UTC)
    bom.metadata.tools.components.add(
        Component(type=ComponentType.APPLICATION, name="patronus-scanner", version=__version__, group="patronus")
    )
    seen: set[str] = set()
    for item in models:
        component = _component(item)
        ref = str(component.bom_ref)
        if ref in seen:
            continue
        seen.add(ref)
        bom.components.add(component)
        for vulnerability in _vulnerabilities(item, ref):
            bom.vulnerabilities.add(vulnerability)
    return JsonV1Dot6(bom).output_as_string(indent=2) + "\n"


def _bom_ref(report: Report) -> str:
    model = report.model
    pin = model.sha or model.revision or "unpinned"
    return f"model:{model.source}:{model.id}@{pin}"


def _purl(report: Report):  # noqa: ANN202 - PackageURL | None
    from packageurl import PackageURL

    model = report.model
    if model.source != "hub":
        return None
    namespace, _, name = model.id.rpartition("/")
    return PackageURL(
        type="huggingface", namespace=namespace or None, name=name, version=(model.sha or model.revision or None)
    )


def _component(item: BomModel):  # noqa: ANN202 - cyclonedx Component
    from cyclonedx.model import ExternalReference, ExternalReferenceType, HashAlgorithm, HashType, Property, XsUri
    from cyclonedx.model.component import Component, ComponentType

    report = item.report
    model = report.model
    files = sorted(set(model.files) | set(item.file_hashes))
    children = []
    for path in files:
        digest = item.file_hashes.get(path)
        hashes = [HashType(alg=HashAlgorithm.SHA_256, content=digest)] if digest else []
        children.append(
            Component(type=ComponentType.FILE, name=path, hashes=hashes, bom_ref=f"{_bom_ref(report)}#{path}")
        )
    props = {
        "patronus:verdict": report.verdict.value,
        "patronus:severity": report.severity.value,
        "patronus:probability": "" if report.probability is None else f"{report.probability:.6f}",
        "patronus:engine_version": str(report.scan.config.get("engine_version", ""))
        if isinstance(report.scan.config, dict)
        else "",
        "patronus:profile": report.scan.profile,
        "patronus:scanned_at": report.scan.finished,
        "patronus:family": model.family or "",
        "patronus:architecture": model.architecture or "",
        "patronus:signature": item.signature or "",
    }
    properties = [Property(name=k, value=v) for k, v in props.items() if v]
    properties += [Property(name="patronus:adopted_at", value=where) for where in item.adopted_at]
    refs = []
    if model.source == "hub":
        pin = model.sha or model.revision or "main"
        refs.append(
            ExternalReference(
                type=ExternalReferenceType.DISTRIBUTION, url=XsUri(f"https://huggingface.co/{model.id}/tree/{pin}")
            )
        )
    name, group = model.id, None
    if model.source == "hub" and "/" in model.id:
        group, name = model.id.split("/", 1)
    return Component(
        type=ComponentType.MACHINE_LEARNING_MODEL,
        name=name,
        group=group,
        version=model.sha or model.revision or None,
        bom_ref=_bom_ref(report),
        purl=_purl(report),
        description=f"{model.architecture or model.family or 'model'} scanned by Patronus: {report.verdict.value}",
        components=children,
        properties=properties,
        external_references=refs,
    )


def _vulnerabilities(item: BomModel, ref: str):  # noqa: ANN202 - Iterator[Vulnerability]
    from cyclonedx.model import Property
    from cyclonedx.model.impact_analysis import ImpactAnalysisAffectedStatus
    from cyclonedx.model.vulnerability import (
        BomTarget,
        BomTargetVersionRange,
        Vulnerability,
        VulnerabilityRating,
        VulnerabilitySeverity,
        VulnerabilitySource,
    )

    source = VulnerabilitySource(name="patronus-scanner")
    version = item.report.model.sha or item.report.model.revision
    for index, issue in enumerate(issues_of(item.report)):
        if Severity(issue.severity) is Severity.NONE and issue.rule not in ("PAT005", "PAT006"):
            continue
        rule = RULES_BY_ID.get(issue.rule)
        rating = VulnerabilityRating(source=source, severity=VulnerabilitySeverity[_SEVERITY[issue.severity]])
        versions = (
            [BomTargetVersionRange(version=version, status=ImpactAnalysisAffectedStatus.AFFECTED)] if version else []
        )
        yield Vulnerability(
            bom_ref=f"{ref}/issue/{index}",
            id=issue.rule,
            source=source,
            ratings=[rating],
            description=f"{rule.short}: {issue.message}" if rule else issue.message,
            detail=rule.full if rule else None,
            affects=[BomTarget(ref=ref, versions=versions)],
            properties=[
                Property(name="patronus:location", value=issue.location),
                Property(name="patronus:kind", value=str(issue.kind)),
            ],
        )
