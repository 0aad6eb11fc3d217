"""Lineage: a derived model's card names its base model; a backdoored base's triggers are tried on it first.

The paper's invariance: a task-agnostic backdoor planted in a base model survives fine-tuning, so the base's
recovered triggers are the cheapest first test of every model derived from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Finding, Lineage, Model, Scan, ScanStatus
from db.repo import insert_or_get
from scanner.lineage import base_models_from_card, card_of_local  # noqa: F401 - re-exported for tasks

BACKDOORED = "backdoored"


def record_links(session: Session, model: Model, base_names: Iterable[str], source: str = "card") -> list[Lineage]:
    """Lineage rows model -> each named base (the base's row linked when it is known). Caller commits."""
    links = []
    for name in base_names:
        if name == model.name:
            continue
        base = session.scalar(select(Model).where(Model.source == "hub", Model.name == name))

        def lookup(name: str = name) -> Lineage | None:
            return session.scalar(select(Lineage).where(Lineage.model_id == model.id, Lineage.base_name == name))

        link = lookup() or insert_or_get(
            session,
            Lineage(model_id=model.id, base_name=name, base_model_id=base.id if base else None, source=source),
            lookup,
        )
        if link.base_model_id is None and base is not None:
            link.base_model_id = base.id
        links.append(link)
    return links


def backdoored_scan_of(session: Session, base: Model) -> Scan | None:
    """The newest executed succeeded scan of `base` whose verdict is backdoored."""
    return session.scalar(
        select(Scan)
        .where(
            Scan.model_id == base.id,
            Scan.status == ScanStatus.SUCCEEDED.value,
            Scan.reused_from_id.is_(None),
            Scan.verdict == BACKDOORED,
        )
        .order_by(Scan.finished_at.desc(), Scan.id.desc())
        .limit(1)
    )


def candidate_triggers_for(
    session: Session, model: Model, limit: int = 20, visible: Callable[[Model], bool] | None = None
) -> list[str]:
    """Triggers recovered from backdoored base models this model derives from, strongest first (deduplicated).

    The scan task stores them on the scan row (`seed_triggers`) and passes them to
    `scanner.pipeline.scan(..., seed_triggers=...)`, which tests them directly on the derived model. `visible`
    (pages) skips bases the reader may not see: a private base's triggers stay private.
    """
    triggers: list[str] = []
    for link in session.scalars(select(Lineage).where(Lineage.model_id == model.id).order_by(Lineage.id)):
        base = link.base_model or session.scalar(
            select(Model).where(Model.source == "hub", Model.name == link.base_name)
        )
        if base is not None and visible is not None and not visible(base):
            continue
        scan = backdoored_scan_of(session, base) if base is not None else None
        if scan is None:
            continue
        rows = session.scalars(
            select(Finding)
            .where(Finding.scan_id == scan.id, Finding.kind == "trigger")
            .order_by(Finding.p_value.asc(), Finding.score.desc())
        )
        for row in rows:
            if row.text not in triggers:
                triggers.append(row.text)
    return triggers[:limit]
