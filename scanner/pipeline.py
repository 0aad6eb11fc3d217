"""scan(ref, config) -> Report: the one function the CLI, the Celery task and the web app call.

fetch -> static serialization scan -> load encoder -> trigger search -> calibrated verdict -> Report.
Never raises for model or network problems: a failed scan is a Report with verdict "error" and its reason.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import torch

from scanner.config import ScanConfig
from scanner.encoder import LoadedEncoder, RemoteCodeRequired, UnsupportedArchitecture, load_encoder, read_config
from scanner.errors import NothingScannableError, PatronusError
from scanner.fetch import ModelRef, Snapshot, fetch_for
from scanner.lineage import TOKENIZER_DIFFERS
from scanner.progress import Progress, StageClock, silent
from scanner.report import (
    FileStatus,
    ModelInfo,
    Report,
    ReportError,
    ScanInfo,
    Severity,
    SkipCategory,
    Skipped,
    Verdict,
)
from scanner.report.issues import finalize
from scanner.static import scan_snapshot, static_severity, weights_scanned, weights_status

log = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _model_info(snapshot: Snapshot) -> ModelInfo:
    ref = snapshot.ref
    return ModelInfo(
        source=snapshot.source,
        id=ref.repo_id or str(ref.path),
        revision=ref.revision,
        sha=snapshot.sha,
        files=list(snapshot.files),
    )


def _describe_config(report: Report, local_dir: Path) -> None:
    """Family and architecture from config.json, read as plain JSON."""
    try:
        info = read_config(local_dir)
    except PatronusError:
        return
    report.model.family = info.family or info.model_type
    report.model.architecture = info.architectures[0] if info.architectures else None


def _skip_behavioural(report: Report, reason: str, severity: Severity | None = None) -> None:
    report.skipped.append(
        Skipped(path="config.json", category=SkipCategory.BEHAVIOURAL, reason=reason, severity=severity)
    )


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> int:
    """Peak memory of the scan: the CUDA allocator's peak since the reset, else this process's peak RSS."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


def _lineage_base(
    report: Report,
    snapshot: Snapshot,
    config: ScanConfig,
    progress: Progress,
    base: str | Path | None,
    encoder: LoadedEncoder,
) -> LoadedEncoder | None:
    """The base model for lineage evidence (`--base REF`, or `auto`: the card's `base_model`), recorded in the
    report's scan config; None when none is named or it cannot be used (the scan goes on without it)."""
    from scanner.lineage import load_base, resolve_base_name

    named = resolve_base_name(base, snapshot.card)
    if named is None:
        return None
    progress("load", None, f"loading base model {named[0]} for lineage evidence")
    loaded = load_base(*named, config, tokenizer=encoder.tokenizer)
    report.scan.config["lineage"] = {"base": loaded.name, "source": loaded.source, "note": loaded.note}
    return loaded.encoder


def _behavioural(
    report: Report,
    snapshot: Snapshot,
    config: ScanConfig,
    progress: Progress,
    seed_triggers: list[str] | None,
    base: str | Path | None = None,
) -> None:
    """Load the encoder (never remote code, pickle only when cleared) and run the trigger search."""
    from scanner.corpus import load_corpus
    from scanner.detect import Detector, detection_evidence, paper_rule_texts, report_triggers
    from scanner.search.config import profile

    worst = weights_status(report.serialization)  # weight files only: a stray script does not block the load
    if worst is FileStatus.DANGEROUS:
        _skip_behavioural(report, "weights not loaded: the static scan found dangerous pickle content")
        return
    progress("load", None, "loading encoder (no remote code)")
    try:
        encoder = load_encoder(snapshot.local_dir, config.device, pickle_allowed=worst is not FileStatus.SUSPICIOUS)
    except RemoteCodeRequired as exc:
        report.skipped.append(
            Skipped(path="config.json", category=SkipCategory.REMOTE_CODE, reason=str(exc), severity=Severity.HIGH)
        )
        _skip_behavioural(report, "behavioural scan not run: the model requires remote code")
        return
    except UnsupportedArchitecture as exc:
        _skip_behavioural(report, str(exc), Severity.LOW)
        return
    reset_peak_memory(encoder.device)
    report.model.family = encoder.family
    report.model.architecture = encoder.architecture
    report.model.parameters = encoder.parameters
    report.scan.device = str(encoder.device)
    search_config = profile(config.profile)
    report.scan.config = {**config.identity(), "search": search_config.to_dict()}
    progress("prepare", None, "corpus, clean statistics and the candidate vocabulary")
    sentences = load_corpus(config.corpus)
    base_encoder = _lineage_base(report, snapshot, config, progress, base, encoder)
    detector = Detector(encoder, sentences, search_config, config.seed, progress, base=base_encoder)
    if base_encoder is not None and detector.base is None:  # a base without tokenizer files, loaded, then compared
        report.scan.config["lineage"]["note"] = f"base not used: {TOKENIZER_DIFFERS}"
    detection = detector.run(seed_triggers)
    report.verdict = detection.verdict
    report.probability = round(detection.probability, 6)
    report.triggers = report_triggers(detection, encoder.tokenizer)
    report.scan.sequences_evaluated = detection.sequences_evaluated
    report.scan.peak_memory_bytes = peak_memory(encoder.device)
    report.scan.config["evidence"] = {
        "max_score": round(detection.max_score, 3),
        "threshold": round(detection.threshold, 3),
        "null": detection.null,
        "paper_rule_triggers": paper_rule_texts(detection, encoder.tokenizer)[:50],
        "paper_rule_verdict": "backdoored" if detection.paper_rule else "clean",
        **detection_evidence(detection, encoder.tokenizer),
    }


def scan(
    target: str | ModelRef,
    config: ScanConfig | None = None,
    progress: Progress = silent,
    seed_triggers: list[str] | None = None,
    base: str | Path | None = None,
) -> Report:
    """Scan one model. `seed_triggers` (e.g. a backdoored base model's triggers) are tested directly too; `base`
    (a local folder or hub repo this one was fine-tuned from, or "auto": the card's `base_model`) adds lineage
    evidence: each finding scored in the base, and what does not fire there is a task feature."""
    config = config or ScanConfig()
    started, t0 = _now(), time.monotonic()
    progress = clock = StageClock(progress)
    report = Report(model=ModelInfo(source="local", id=str(target)))
    report.scan = ScanInfo(started=started, profile=config.profile, seed=config.seed, config=config.identity())
    try:
        ref = target if isinstance(target, ModelRef) else ModelRef.parse(target)
        report.model.source = "local" if ref.path is not None else "hub"
        progress("fetch", 0.0, f"fetching {ref.display}")
        snapshot = fetch_for(ref, config, progress)
        report.model = _model_info(snapshot)
        report.skipped.extend(snapshot.skipped)
        progress("static", None, "static scan of weight files")
        serialization, skipped = scan_snapshot(
            snapshot.local_dir,
            snapshot.downloaded,
            repo_files=snapshot.files,
            hub_security=getattr(snapshot, "hub_security", None),
        )
        report.serialization = serialization
        report.skipped.extend(skipped)
        if not weights_scanned(serialization) and not static_severity(serialization).at_least(Severity.HIGH):
            raise NothingScannableError(f"no supported weight files (safetensors or PyTorch pickle) in {ref.display}")
        _describe_config(report, snapshot.local_dir)
        if config.behavioural:
            _behavioural(report, snapshot, config, progress, seed_triggers, base)
        else:
            _skip_behavioural(report, "behavioural scan disabled (--static-only)")
    except PatronusError as exc:
        report.verdict = Verdict.ERROR
        report.errors.append(ReportError(code=exc.code, message=str(exc)))
    except Exception as exc:  # a bug or an unforeseen model defect: recorded, never a traceback to the user
        log.exception("scan of %s failed", target)
        report.verdict = Verdict.ERROR
        report.errors.append(ReportError(code="internal_error", message=f"{type(exc).__name__}: {exc}"))
    finalize(report)
    report.scan.finished = _now()
    report.scan.seconds = round(time.monotonic() - t0, 3)
    report.scan.stage_seconds = clock.stop()
    progress("report", 1.0, f"verdict {report.verdict.value}")
    return report


def report_summary(report: Report) -> dict:
    """A small dict for logs and task results."""
    return {
        "verdict": report.verdict.value,
        "probability": report.probability,
        "severity": report.severity.value,
        "triggers": [t.text for t in report.triggers],
        "errors": [asdict(e) for e in report.errors],
    }
