"""Discovery: list new hub uploads of the supported families, newest first, and enqueue a scan for each.

One listing per family (`filter=<family>`, sorted by creation date, newest first). Each family's cursor keeps the
creation-date ranges already read, so a run reads only what is new plus whatever an earlier run left unread when it
hit its budget; everything older than the first run's floor (PATRONUS_DISCOVERY_SINCE, else the lookback) counts as
read. Scans are collapsed and reused by the database (a repo at a listed commit is never queued twice).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from db.models import DiscoveryCursor, Scan, utcnow
from db.repo import FULL_SHA, ScanKey, Target, get_or_create_model, submit_scan
from db.session import session_scope
from tasks.context import TaskContext
from tasks.lifecycle import bounded_base_models, clean_word, valid_repo_id
from tasks.lineage import base_models_from_card, record_links

log = logging.getLogger(__name__)

EXPAND = ["createdAt", "pipeline_tag", "tags", "sha", "cardData", "library_name"]
EPSILON = timedelta(microseconds=1)
BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)

Interval = tuple[datetime, datetime]  # [low, high], inclusive


@dataclass
class FamilyResult:
    listed: int = 0  # listings read from the hub
    fresh: int = 0  # of those, not read by an earlier run (the budget counts these)
    matched: int = 0  # passed the family / task filters and were not read before
    enqueued: int = 0  # new scan rows sent to the broker
    existing: int = 0  # collapsed onto an active scan or answered by a finished one
    complete: bool = False  # reached the floor or the end of the listing (nothing left unread)


@dataclass
class DiscoveryResult:
    families: dict[str, FamilyResult] = field(default_factory=dict)

    @property
    def enqueued(self) -> int:
        return sum(r.enqueued for r in self.families.values())

    @property
    def listed(self) -> int:
        return sum(r.listed for r in self.families.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "listed": self.listed,
            "enqueued": self.enqueued,
            "families": {k: vars(v) for k, v in self.families.items()},
        }


# --------------------------------------------------------------------------------------------------- intervals


def parse_covered(raw: list[Any] | None) -> list[Interval]:
    out = []
    for low, high in raw or []:
        out.append((_parse_dt(low), _parse_dt(high)))
    return sorted(out, key=lambda iv: iv[1], reverse=True)


def dump_covered(intervals: list[Interval]) -> list[list[str]]:
    return [[low.isoformat(), high.isoformat()] for low, high in intervals]


def merge(intervals: list[Interval]) -> list[Interval]:
    """Union of intervals (touching ones within a microsecond merge), newest first."""
    ordered = sorted(intervals, key=lambda iv: iv[0])
    out: list[list[datetime]] = []
    for low, high in ordered:
        if out and low <= out[-1][1] + EPSILON:
            out[-1][1] = max(out[-1][1], high)
        else:
            out.append([low, high])
    return [(low, high) for low, high in reversed(out)]


def covered_by(intervals: list[Interval], moment: datetime) -> bool:
    return any(low <= moment <= high for low, high in intervals)


def _parse_dt(value: str | datetime) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --------------------------------------------------------------------------------------------------- run


def discover(ctx: TaskContext, api: Any = None, now: datetime | None = None) -> DiscoveryResult:
    """One discovery run over every configured family; returns what it read and enqueued."""
    settings = ctx.settings
    api = api or _hub_api(ctx)
    now = now or utcnow()
    key = ScanKey.from_config(settings.scan_config())
    result = DiscoveryResult()
    for family in settings.discovery_families:
        result.families[family] = discover_family(ctx, api, family, key, now)
        log.info("discovery %s: %s", family, vars(result.families[family]))
    return result


def discover_family(ctx: TaskContext, api: Any, family: str, key: ScanKey, now: datetime) -> FamilyResult:
    """Read one family's listing newest first until it meets read ranges or the budget; enqueue matches."""
    settings = ctx.settings
    name = f"hub:{family}"
    covered = _load_cursor(ctx, name, now)
    floor_high = min(high for _low, high in covered) if covered else now
    result = FamilyResult()
    top: datetime | None = None
    low: datetime | None = None
    boundary: datetime | None = None
    batch: list[Any] = []
    listing = api.list_models(filter=family, sort="created_at", expand=EXPAND)
    for item in listing:
        created = _parse_dt(item.created_at) if item.created_at else None
        if created is None:
            continue
        if created <= floor_high:
            result.complete = True
            break
        if covered_by(covered, created):  # read by an earlier run: page on without spending the budget
            result.listed += 1
            top, low = top or created, created
            continue
        if result.fresh >= settings.discovery_max_models:
            boundary = created  # the first unread listing: a tie with `low` means `low` was not read in full
            break
        result.listed += 1
        result.fresh += 1
        top, low = top or created, created
        if _wanted(item, family, settings.discovery_pipeline_tags):
            batch.append(item)
        if len(batch) >= settings.discovery_page_size:
            _flush(ctx, family, key, batch, result)
            batch = []
            covered = _save_cursor(ctx, name, covered, (low + EPSILON, top), result)
    else:
        result.complete = True
    _flush(ctx, family, key, batch, result)
    if top is not None and low is not None:
        covered = _save_cursor(ctx, name, covered, (_span_low(result, low, boundary), top), result)
    else:
        _save_cursor(ctx, name, covered, None, result)
    return result


def _span_low(result: FamilyResult, low: datetime, boundary: datetime | None) -> datetime:
    """Lowest creation date this run covered: all of history when complete, else down to the last listing read
    (inclusive unless the first unread listing ties with it)."""
    if result.complete:
        return BEGINNING
    return low if boundary is not None and boundary < low else low + EPSILON


def _wanted(item: Any, family: str, pipeline_tags: list[str]) -> bool:
    tags = set(item.tags or [])
    if family not in tags:
        return False
    return not pipeline_tags or item.pipeline_tag in pipeline_tags


def _flush(ctx: TaskContext, family: str, key: ScanKey, items: list[Any], result: FamilyResult) -> None:
    """Record models, lineage and scan rows for a batch, commit, then send the new scans."""
    if not items:
        return
    to_send: list[tuple[int, str]] = []
    with session_scope(ctx.sessions) as s:
        for item in items:
            if not valid_repo_id(item.id):  # hub-supplied: validated and bounded before the database
                log.warning("discovery: skipped a listing with an invalid repo id (%.80r)", item.id)
                continue
            created = _parse_dt(item.created_at)
            sha = item.sha if isinstance(item.sha, str) and FULL_SHA.match(item.sha) else None
            model = get_or_create_model(
                s,
                Target("hub", item.id),
                family=family,
                pipeline_tag=clean_word(item.pipeline_tag, 64),
                hub_created_at=created,
            )
            if model.private is None:
                model.private = bool(getattr(item, "private", False)) or bool(getattr(item, "gated", False))
            try:
                bases = base_models_from_card(getattr(item, "card_data", None))
            except Exception:  # malformed card data is not a discovery failure
                bases = []
            record_links(s, model, bounded_base_models(bases, ctx.settings.max_base_models))
            sub = submit_scan(s, model, sha, key, origin="discovery")
            result.matched += 1
            if sub.created:
                to_send.append((sub.scan.id, sub.scan.celery_task_id or ""))
            else:
                result.existing += 1
    sent = []
    for scan_id, task_id in to_send:
        try:
            if ctx.send_scan(scan_id, task_id):
                sent.append(scan_id)
        except Exception:  # the row stays queued with enqueued_at NULL; the reaper sends it later
            log.warning("could not enqueue scan %s", scan_id, exc_info=True)
    if sent:
        with session_scope(ctx.sessions) as s:
            s.execute(update(Scan).where(Scan.id.in_(sent)).values(enqueued_at=utcnow()))
    result.enqueued += len(sent)


def _load_cursor(ctx: TaskContext, name: str, now: datetime) -> list[Interval]:
    with session_scope(ctx.sessions) as s:
        cursor = s.get(DiscoveryCursor, name)
        if cursor is not None and cursor.covered:
            return parse_covered(cursor.covered)
    floor = ctx.settings.discovery_since or now - timedelta(hours=ctx.settings.discovery_lookback_hours)
    return [(BEGINNING, _parse_dt(floor))]


def _save_cursor(
    ctx: TaskContext, name: str, covered: list[Interval], span: Interval | None, result: FamilyResult
) -> list[Interval]:
    """Add the span just read to the cursor's ranges and store run statistics."""
    if span is not None and span[0] <= span[1]:
        covered = merge([*covered, span])
    with session_scope(ctx.sessions) as s:
        cursor = s.scalar(select(DiscoveryCursor).where(DiscoveryCursor.name == name).with_for_update())
        if cursor is None:
            cursor = DiscoveryCursor(name=name)
            s.add(cursor)
        else:  # another run may have advanced it meanwhile: keep both
            covered = merge([*covered, *parse_covered(cursor.covered)])
        cursor.covered = dump_covered(covered)
        cursor.last_run_at = utcnow()
        cursor.last_run_listed, cursor.last_run_enqueued = result.listed, result.enqueued
    return covered


def _hub_api(ctx: TaskContext) -> Any:
    from huggingface_hub import HfApi

    from scanner.fetch import hub_endpoint

    return HfApi(
        endpoint=hub_endpoint(ctx.settings.hf_endpoint),
        token=ctx.settings.hf_token or False,
        library_name="patronus-scanner",
    )
