"""`patronus gate`: discover adoptions, resolve each model to a commit, scan each sha once (or reuse a scan on
record), verify signatures, apply the policy and suppressions, and decide the exit code.

Exit codes (ARCHITECTURE.md): 0 nothing fails; 1 a finding at or above fail_on or a policy violation; 2 a model could
not be fetched or scanned; 3 a model has nothing scannable; 4 usage or policy error (raised, never returned).
When several apply the lowest non-zero code wins: a real finding matters more than a failed scan.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from scanner.config import ScanConfig
from scanner.errors import PatronusError, UsageError, error_class
from scanner.fetch import ModelRef, Snapshot, default_cache_dir, fetch, hub_endpoint
from scanner.gate.discovery import Adoption, discover, read_list_file
from scanner.gate.findings import Finding, gate_finding, report_findings
from scanner.gate.lock import LockEntry, LockFile, content_digest, drift, file_hashes, read_lock, report_digest
from scanner.gate.policy import SHA_RE, LoadedPolicy
from scanner.gate.records import ResultsCache, ServerAnswer, ask_server, server_scan_falls_short
from scanner.gate.signing import SignatureResult, verify_folder
from scanner.report import Report, Severity, Verdict

Echo = Callable[[str], None]
NOT_RUN_CATEGORIES = ("behavioural", "remote_code")


def _quiet(_: str) -> None:
    return None


@dataclass
class GateOptions:
    paths: list[Path]
    loaded: LoadedPolicy
    root: Path
    models_file: Path | None = None
    server: str | None = None
    server_token: str | None = None
    locked: bool = False
    cache_dir: Path | None = None  # holds hub/ (snapshots) and results/ (reports by sha)
    device: str = "auto"
    token: str | None = None
    refresh: bool = False  # ignore cached results (scan again)
    today: date | None = None
    echo: Echo = _quiet

    @property
    def policy(self):  # noqa: ANN201 - the Policy
        return self.loaded.policy

    @property
    def cache(self) -> Path:
        return (self.cache_dir or default_cache_dir().parent).expanduser()


@dataclass
class ModelResult:
    """One adopted model (a model id at one requested revision) and everything the gate learned about it."""

    model: str
    revision: str | None
    source: str  # hub | local
    adoptions: list[Adoption]
    ref: ModelRef | None = None
    sha: str | None = None
    identity: str | None = None  # the sha, or a local folder's content digest
    files: dict[str, str] = field(default_factory=dict)
    report: Report | None = None
    origin: str = "none"  # scanned | cache | server | none
    origin_detail: str = ""
    signature: SignatureResult | None = None
    findings: list[Finding] = field(default_factory=list)
    config_hash: str | None = None

    @property
    def display(self) -> str:
        return f"{self.model}@{self.revision}" if self.revision else self.model

    @property
    def fails(self) -> bool:
        return any(f.fails for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        report = self.report
        return {
            "model": self.model,
            "revision": self.revision,
            "source": self.source,
            "sha": self.sha,
            "identity": self.identity,
            "origin": self.origin,
            "origin_detail": self.origin_detail,
            "verdict": report.verdict.value if report else None,
            "probability": report.probability if report else None,
            "severity": report.severity.value if report else None,
            "family": report.model.family if report else None,
            "signature": self.signature.to_dict() if self.signature else None,
            "adoptions": [{"file": a.file, "line": a.line, "call": a.call} for a in self.adoptions],
            "findings": [f.to_dict() for f in self.findings],
            "fails": self.fails,
        }


@dataclass
class GateResult:
    models: list[ModelResult]
    unresolved: list[Adoption]
    findings: list[Finding]  # not about one model: unresolved adoptions, expired suppressions
    adoptions: list[Adoption]
    seconds: float = 0.0
    scans_run: int = 0
    policy_path: Path | None = None
    root: Path = field(default_factory=Path.cwd)

    def all_findings(self) -> list[Finding]:
        return [f for m in self.models for f in m.findings] + self.findings

    @property
    def exit_code(self) -> int:
        codes = {f.exit_code for f in self.all_findings() if f.fails and f.exit_code}
        return min(codes) if codes else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "patronus.gate/1",
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 3),
            "scans_run": self.scans_run,
            "policy": str(self.policy_path) if self.policy_path else None,
            "adoptions": len(self.adoptions),
            "models": [m.to_dict() for m in self.models],
            "unresolved": [
                {"file": a.file, "line": a.line, "call": a.call, "reason": a.unresolved, "expression": a.expression}
                for a in self.unresolved
            ],
            "findings": [f.to_dict() for f in self.findings],
        }


# --------------------------------------------------------------------------------------------------- discovery


def collect_adoptions(options: GateOptions) -> list[Adoption]:
    """Adoptions in the source under `options.paths`, plus the list file (option, else the policy's)."""
    policy = options.policy
    found = discover(options.paths, options.root, policy.exclude)
    list_file = options.models_file
    if list_file is None and policy.models_file:
        list_file = options.loaded.root / policy.models_file
    if list_file is not None:
        if not list_file.is_file():
            raise UsageError(f"models file {list_file} does not exist")
        found.extend(read_list_file(list_file, _rel(list_file, options.root)))
    return found


def _rel(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def _classify(adoption: Adoption, root: Path) -> tuple[str, str, ModelRef] | str:
    """(source, model name, ModelRef) for a resolved adoption, or why it cannot be scanned."""
    assert adoption.model is not None
    text = adoption.model
    candidates = [(root / adoption.file).parent / text, root / text] if adoption.source == "code" else [root / text]
    for folder in candidates:
        if text and folder.expanduser().is_dir():
            if adoption.revision:
                return f"revision {adoption.revision!r} given for the local folder {text}"
            return "local", _rel(folder, root), ModelRef.parse(str(folder.expanduser().resolve()))
    try:
        ref = ModelRef.parse(text, adoption.revision)
    except PatronusError as exc:
        return f"neither a hub repo id nor an existing folder: {exc}"
    if ref.path is not None:  # an existing folder relative to the working directory
        return "local", _rel(ref.path, root), ref
    return "hub", str(ref.repo_id), ref


# --------------------------------------------------------------------------------------------------- the gate


def run_gate(options: GateOptions, lock: LockFile | None = None) -> GateResult:
    """The whole gate. `lock` (default: the policy's lock file) is read for --locked and returned entries are
    written by `patronus lock` (scanner.gate.runner.update_lock)."""
    t0 = time.monotonic()
    policy = options.policy
    adoptions = collect_adoptions(options)
    lock = lock if lock is not None else read_lock(options.loaded.root / policy.lock_file)
    result = GateResult(
        models=[], unresolved=[], findings=[], adoptions=adoptions, policy_path=options.loaded.path, root=options.root
    )
    groups: dict[tuple[str, str, str | None], ModelResult] = {}
    for adoption in adoptions:
        if adoption.unresolved is not None:
            result.unresolved.append(adoption)
            result.findings.append(_unresolved(adoption, adoption.unresolved, policy.fail_on_unresolved))
            continue
        classified = _classify(adoption, options.root)
        if isinstance(classified, str):
            result.unresolved.append(adoption)
            result.findings.append(_unresolved(adoption, classified, policy.fail_on_unresolved))
            continue
        source, name, ref = classified
        key = (source, name, adoption.revision)
        if key not in groups:
            groups[key] = ModelResult(model=name, revision=adoption.revision, source=source, adoptions=[], ref=ref)
        groups[key].adoptions.append(adoption)
    options.echo(f"gate: {len(adoptions)} adoption(s), {len(groups)} model(s), {len(result.unresolved)} unresolved")
    config = ScanConfig(
        profile=policy.profile,
        device=options.device,
        token=options.token,
        max_size=policy.max_bytes,
        cache_dir=options.cache / "hub",
        behavioural=not policy.static_only,
    )
    cache = ResultsCache(options.cache / "results")
    scanned: dict[tuple[str, str], Report] = {}  # (model, identity) -> report: each sha scanned once per run
    for model in groups.values():
        _check_model(model, options, config, cache, lock, scanned, result)
        result.models.append(model)
    _apply_suppressions(result, options)
    result.seconds = time.monotonic() - t0
    return result


def _unresolved(adoption: Adoption, reason: str, fails: bool) -> Finding:
    finding = gate_finding(
        "PATG02",
        f"{adoption.call} at {adoption.location}: model not resolved: {reason}"
        + (f" ({adoption.expression})" if adoption.expression else ""),
        adoption.model,
        fails=fails,
        severity=Severity.MEDIUM,
        expression=adoption.expression,
        reason=reason,
    )
    finding.properties["adoption"] = {"file": adoption.file, "line": adoption.line, "column": adoption.column}
    return finding


def _check_model(
    model: ModelResult,
    options: GateOptions,
    config: ScanConfig,
    cache: ResultsCache,
    lock: LockFile,
    scanned: dict[tuple[str, str], Report],
    result: GateResult,
) -> None:
    policy = options.policy
    echo = options.echo
    if model.source == "hub":
        why = policy.denied(model.model)
        if why:
            model.findings.append(
                gate_finding("PATG03", f"{model.display}: denied by policy: {why}", model.model, severity=Severity.HIGH)
            )
            echo(f"  {model.display}: denied ({why})")
            return
        if policy.require_pinned and not (model.revision and SHA_RE.fullmatch(model.revision)):
            model.findings.append(
                gate_finding(
                    "PATG04",
                    f"{model.display}: revision {model.revision or '(default branch)'} is not a pinned "
                    "40-hex commit sha (policy require_pinned)",
                    model.model,
                    severity=Severity.MEDIUM,
                )
            )
    assert model.ref is not None
    try:
        snapshot = fetch(model.ref, token=config.token, max_size=config.max_size, cache_dir=config.cache_dir)
    except PatronusError as exc:
        model.findings.append(
            gate_finding(
                "PATG01",
                f"{model.display}: {exc}",
                model.model,
                exit_code=exc.exit_code if exc.exit_code in (2, 3) else 2,
                code=exc.code,
            )
        )
        echo(f"  {model.display}: fetch failed: {exc}")
        return
    model.sha = snapshot.sha
    model.files = file_hashes(snapshot.local_dir, snapshot.downloaded)
    model.identity = snapshot.sha or content_digest(model.files)
    model.config_hash = config.config_hash()
    if options.locked and not _lock_ok(model, lock, echo):
        return
    report = _report_for(model, snapshot, options, config, cache, scanned, result)
    model.report = report
    model.findings.extend(_report_verdict_findings(model, report, policy.fail_on))
    model.findings.extend(_policy_findings(model, report, options))
    model.signature = _signature(model, snapshot, options)
    model.findings.extend(_signature_findings(model, options))
    status = "FAIL" if model.fails else "ok"
    echo(
        f"  {model.display} @ {(model.sha or model.identity or '')[:12]}: {report.verdict.value}, severity "
        f"{report.severity.value} ({model.origin}) -> {status}"
    )


def _lock_ok(model: ModelResult, lock: LockFile, echo: Echo) -> bool:
    entry = lock.get(model.model, model.revision)
    if entry is None:
        why = "not in patronus.lock (no scan on record); run `patronus lock`"
    else:
        why = drift(entry, model.sha, model.files) or ""
        if why:
            why += "; no scan of it on record: review it, then run `patronus lock`"
    if not why:
        return True
    model.findings.append(
        gate_finding(
            "PATG05",
            f"{model.display}: {why}",
            model.model,
            severity=Severity.HIGH,
            locked_sha=entry.sha if entry else None,
            resolved_sha=model.sha,
        )
    )
    echo(f"  {model.display}: lock drift: {why}")
    return False


def _report_for(
    model: ModelResult,
    snapshot: Snapshot,
    options: GateOptions,
    config: ScanConfig,
    cache: ResultsCache,
    scanned: dict[tuple[str, str], Report],
    result: GateResult,
) -> Report:
    """The scan of this sha: from this run, the results cache, the server, else a local scan (each sha once)."""
    assert model.identity is not None and model.config_hash is not None
    key = (model.model, model.identity)
    if key in scanned:
        model.origin, model.origin_detail = "this run", "scanned earlier in this run"
        return scanned[key]
    report = None if options.refresh else cache.get(model.model, model.identity, model.config_hash)
    if report is not None:
        model.origin, model.origin_detail = "cache", str(cache.path(model.model, model.identity, model.config_hash))
    server = options.server or options.policy.server
    if report is None and server and model.source == "hub":
        answer = ask_server(server, model.model, model.sha, options.server_token)
        short = server_scan_falls_short(answer.report, config) if answer.report is not None else None
        if short is not None:
            answer = ServerAnswer(None, f"{answer.detail}: {short}", answer.scan_id)
        model.origin_detail = answer.detail
        if answer.report is not None:
            report, model.origin = answer.report, "server"
            cache.put(model.model, model.identity, model.config_hash, report)
        else:
            options.echo(f"  {model.display}: {answer.detail}; scanning locally")
    if report is None:
        from scanner.lineage import BASE_FROM_CARD
        from scanner.pipeline import scan

        target = ModelRef(repo_id=model.model, revision=model.sha) if model.source == "hub" else model.ref
        assert target is not None
        options.echo(f"  {model.display}: scanning {model.identity[:12]} (profile {config.profile})")
        report = scan(target, config, base=BASE_FROM_CARD)  # lineage when the card names a base, like the service
        if model.source == "hub":
            report.model.revision = model.revision or report.model.revision
        result.scans_run += 1
        model.origin = "scanned"
        cache.put(model.model, model.identity, model.config_hash, report)
    scanned[key] = report
    return report


def _report_verdict_findings(model: ModelResult, report: Report, fail_on_level: str) -> list[Finding]:
    fail_on = Severity(fail_on_level)
    findings = report_findings(report, model.model)
    code = _error_exit(report)
    for finding in findings:
        if finding.rule == "PAT005":
            finding.fails, finding.exit_code = True, code if code in (2, 3) else 2
        elif finding.severity is not Severity.NONE and finding.severity.at_least(fail_on):
            finding.fails, finding.exit_code = True, 1
    if report.verdict is Verdict.ERROR and not any(f.rule == "PAT005" for f in findings):
        findings.append(gate_finding("PATG01", f"{model.display}: the scan failed", model.model, exit_code=code))
    return findings


def _error_exit(report: Report) -> int:
    """2 for a failed scan, 3 when nothing was scannable (the error class's own exit code)."""
    cls = error_class(report.error_code)
    return cls.exit_code if cls is not None and cls.exit_code in (2, 3) else 2


def _policy_findings(model: ModelResult, report: Report, options: GateOptions) -> list[Finding]:
    policy = options.policy
    found: list[Finding] = []
    if report.verdict is Verdict.ERROR:
        return found
    if policy.fail_on_not_scanned and not policy.static_only:
        not_run = [s for s in report.skipped if s.category in NOT_RUN_CATEGORIES]
        if not_run:
            found.append(
                gate_finding(
                    "PATG06",
                    f"{model.display}: behavioural scan not run: {not_run[0].reason}",
                    model.model,
                    severity=Severity.MEDIUM,
                )
            )
    if policy.families:
        family = report.model.family
        if family not in policy.families:
            found.append(
                gate_finding(
                    "PATG07",
                    f"{model.display}: family {family or 'unknown'} is not in the "
                    f"policy's families ({', '.join(policy.families)})",
                    model.model,
                    severity=Severity.MEDIUM,
                )
            )
    return found


def _signature(model: ModelResult, snapshot: Snapshot, options: GateOptions) -> SignatureResult:
    cfg = options.policy.signatures
    if model.source == "local":
        return verify_folder(snapshot.local_dir, cfg, present=snapshot.downloaded, base=options.loaded.root)
    if cfg.file not in snapshot.files:
        return SignatureResult("unsigned", f"no signature ({cfg.file}) in the repository")
    from huggingface_hub import hf_hub_download

    try:
        sig = Path(
            hf_hub_download(
                str(model.model),
                cfg.file,
                revision=model.sha,
                cache_dir=options.cache / "hub",
                token=options.token,
                endpoint=hub_endpoint(),
            )
        )
    except Exception as exc:  # noqa: BLE001 - a failed download is reported like any unverifiable signature
        return SignatureResult("unverifiable", f"cannot download {cfg.file}: {type(exc).__name__}: {exc}")
    return verify_folder(
        snapshot.local_dir, cfg, signature=sig, present=snapshot.downloaded, partial=True, base=options.loaded.root
    )


def _signature_findings(model: ModelResult, options: GateOptions) -> list[Finding]:
    sig = model.signature
    if sig is None:
        return []
    if sig.status == "mismatch":
        return [
            gate_finding(
                "PATG08",
                f"{model.display}: {sig.message}",
                model.model,
                severity=Severity.HIGH,
                mismatched=sig.mismatched,
            )
        ]
    if options.policy.signatures.require and sig.status != "verified":
        return [
            gate_finding(
                "PATG09",
                f"{model.display}: {sig.message} (policy signatures.require)",
                model.model,
                severity=Severity.HIGH,
            )
        ]
    return []


def _apply_suppressions(result: GateResult, options: GateOptions) -> None:
    """A live suppression un-fails the findings it matches; every expired suppression fails the gate."""
    policy = options.policy
    today = options.today or date.today()
    for finding in result.all_findings():
        suppression = policy.suppression_for(finding.rule, finding.model or "")
        if suppression is None or suppression.expired(today):
            continue
        finding.suppressed_by = f"{suppression.reason} (until {suppression.expires.isoformat()})"
        finding.fails, finding.exit_code = False, 0
    for suppression in policy.suppress:
        if suppression.expired(today):
            result.findings.append(
                gate_finding(
                    "PATG10",
                    f"suppression of {suppression.rule} for {suppression.model} expired on "
                    f"{suppression.expires.isoformat()} ({suppression.reason})",
                    None,
                    severity=Severity.MEDIUM,
                    suppressed_rule=suppression.rule,
                    pattern=suppression.model,
                    expires=suppression.expires.isoformat(),
                )
            )


# --------------------------------------------------------------------------------------------------- lock


def update_lock(result: GateResult, lock: LockFile) -> list[str]:
    """Record every model the gate has a finished scan of; returns the keys written. Entries of models no longer
    adopted (or whose scan failed) are dropped."""
    keep: dict[str, LockEntry] = {}
    for model in result.models:
        if model.report is None or model.report.verdict is Verdict.ERROR:
            continue  # a failed scan approves nothing: `gate --locked` keeps failing it
        report = model.report
        entry = LockEntry(
            model=model.model,
            revision=model.revision,
            sha=model.sha,
            files=dict(model.files),
            verdict=report.verdict.value,
            probability=report.probability,
            severity=report.severity.value,
            engine_version=_engine(report),
            config_hash=model.config_hash,
            report_digest=report_digest(report.to_json()),
            scanned_at=report.scan.finished or None,
            source=model.source,
        )
        keep[entry.key] = entry
    lock.entries = keep
    return sorted(keep)


def _engine(report: Report) -> int | None:
    value = report.scan.config.get("engine_version") if isinstance(report.scan.config, dict) else None
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else None
