"""engine.transparency: what the system was used for in a period, the figures a regulator asks for, read from the
tamper-evident audit log and the ingest runs; the CLI (`facetrace report transparency`) and the auditor's page
render the same TransparencyReport.

- Searches by purpose and outcome: with hits (at least one candidate shown), without, and failed (the probe could
  not be searched: unreadable, no face, no such face; `search_failed` entries).
- Reviews: candidates confirmed and rejected.
- Erasure: a request opens with its first preview (or with the erasure itself when none was previewed) and closes
  with the erasure of the same mode and subject; the time taken is from the one to the other (median and max over
  the erasures made in the period whose request was previewed). Requests opened in the period and not closed by
  its end are pending.
- Suppressed re-ingests: faces (and whole photos) of erased people met again by an ingest run started in the period
  and not stored (the run's stats).
- Retention purges, and the users active (everyone with an audit entry in the period, with their entry count).

A period is whole UTC days, both ends included.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from facetrace.core.errors import InvalidRequestError
from facetrace.core.ports import Catalog
from facetrace.core.types import AuditEntry, AuditQuery
from facetrace.core.vocabulary import AuditAction, ReviewDecision
from facetrace.governance.audit import AuditLog

NO_PURPOSE = "(no purpose stated)"
MAX_PERIOD_DAYS = 3_660


@dataclass
class SearchOutcomes:
    """Searches made for one purpose, by outcome."""

    with_hits: int = 0
    without_hits: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.with_hits + self.without_hits + self.failed


@dataclass(frozen=True)
class ErasureFigures:
    requests: int  # requests opened in the period
    erased: int  # erasures made in the period
    faces_erased: int
    pending: int  # requests opened in the period, not erased by its end
    timed: int  # erasures made in the period whose request was previewed (the times below are theirs)
    median_s: float | None
    max_s: float | None


@dataclass(frozen=True)
class TransparencyReport:
    since: date  # first day, UTC
    until: date  # last day, UTC, included
    searches: dict[str, SearchOutcomes]  # by purpose, most searched first (NO_PURPOSE after its equals)
    confirmed: int
    rejected: int
    erasure: ErasureFigures
    ingest_runs: int
    suppressed_faces: int
    suppressed_images: int
    purges: int
    purged_faces: int
    purged_assets: int
    active_users: dict[str, int] = field(default_factory=dict)  # actor -> audit entries, most active first
    audit_entries: int = 0

    @property
    def search_totals(self) -> SearchOutcomes:
        total = SearchOutcomes()
        for outcome in self.searches.values():
            total.with_hits += outcome.with_hits
            total.without_hits += outcome.without_hits
            total.failed += outcome.failed
        return total

    def to_dict(self) -> dict[str, object]:
        totals = self.search_totals
        return {
            "from": self.since.isoformat(),
            "to": self.until.isoformat(),
            "searches": {
                "total": totals.total,
                "with_hits": totals.with_hits,
                "without_hits": totals.without_hits,
                "failed": totals.failed,
                "by_purpose": [
                    {
                        "purpose": purpose,
                        "total": outcome.total,
                        "with_hits": outcome.with_hits,
                        "without_hits": outcome.without_hits,
                        "failed": outcome.failed,
                    }
                    for purpose, outcome in self.searches.items()
                ],
            },
            "reviews": {"confirmed": self.confirmed, "rejected": self.rejected},
            "erasure": {
                "requests": self.erasure.requests,
                "erased": self.erasure.erased,
                "faces_erased": self.erasure.faces_erased,
                "pending": self.erasure.pending,
                "timed": self.erasure.timed,
                "median_seconds": self.erasure.median_s,
                "max_seconds": self.erasure.max_s,
            },
            "suppressed_reingests": {
                "ingest_runs": self.ingest_runs,
                "faces": self.suppressed_faces,
                "photos": self.suppressed_images,
            },
            "retention_purges": {"purges": self.purges, "faces": self.purged_faces, "assets": self.purged_assets},
            "active_users": [{"user": user, "audit_entries": n} for user, n in self.active_users.items()],
            "audit_entries": self.audit_entries,
        }


def day_bounds(since: date, until: date) -> tuple[datetime, datetime]:
    """[since 00:00 UTC, the day after until 00:00 UTC): whole days, both ends included."""
    if until < since:
        raise InvalidRequestError(f"the period ends ({until}) before it starts ({since})")
    if (until - since).days > MAX_PERIOD_DAYS:
        raise InvalidRequestError(f"a period is at most {MAX_PERIOD_DAYS} days")
    start = datetime.combine(since, time(), tzinfo=UTC)
    return start, datetime.combine(until + timedelta(days=1), time(), tzinfo=UTC)


class Transparency:
    def __init__(self, audit: AuditLog, catalog: Catalog) -> None:
        self._audit = audit
        self._catalog = catalog

    def report(self, since: date, until: date) -> TransparencyReport:
        """The figures for the days since..until (UTC, both included); reads only."""
        start, end = day_bounds(since, until)
        entries = self._audit.find(AuditQuery(since=start, until=end), newest_first=False)
        searches: dict[str, SearchOutcomes] = {}
        decisions: Counter[str] = Counter()
        actors: Counter[str] = Counter()
        purges = purged_faces = purged_assets = 0
        for entry in entries:
            actors[entry.actor] += 1
            if entry.action in (AuditAction.SEARCH, AuditAction.SEARCH_FAILED):
                purpose = str(entry.details.get("purpose") or "").strip() or NO_PURPOSE
                outcome = searches.setdefault(purpose, SearchOutcomes())
                if entry.action == AuditAction.SEARCH_FAILED:
                    outcome.failed += 1
                elif entry.details.get("hit_face_ids"):
                    outcome.with_hits += 1
                else:
                    outcome.without_hits += 1
            elif entry.action == AuditAction.REVIEW:
                decisions[str(entry.details.get("decision"))] += 1
            elif entry.action == AuditAction.PURGE:
                purges += 1
                purged_faces += _count(entry.details.get("faces"))
                purged_assets += _count(entry.details.get("assets"))
        earlier = self._audit.find(
            AuditQuery(actions=(AuditAction.ERASE_PREVIEW, AuditAction.ERASE), until=start), newest_first=False
        )
        runs = [run for run in self._catalog.runs() if start <= run.started_at < end]
        return TransparencyReport(
            since=since,
            until=until,
            # Most searched first; among equals, stated purposes before searches that stated none.
            searches=dict(sorted(searches.items(), key=lambda item: (-item[1].total, item[0] == NO_PURPOSE, item[0]))),
            confirmed=decisions[ReviewDecision.CONFIRMED],
            rejected=decisions[ReviewDecision.REJECTED],
            erasure=_erasure_figures([*earlier, *entries], start),
            ingest_runs=len(runs),
            suppressed_faces=sum(_count(run.stats.get("faces_suppressed")) for run in runs),
            suppressed_images=sum(_count(run.stats.get("images_suppressed")) for run in runs),
            purges=purges,
            purged_faces=purged_faces,
            purged_assets=purged_assets,
            active_users=dict(sorted(actors.items(), key=lambda item: (-item[1], item[0]))),
            audit_entries=len(entries),
        )


def _erasure_figures(entries: Iterable[AuditEntry], start: datetime) -> ErasureFigures:
    """Requests opened and erasures made from start on (entries: every preview and erasure up to the period's end,
    in order)."""
    opened: dict[tuple[str, str], tuple[datetime, bool]] = {}  # (mode, subject) -> (opened at, by a preview)
    requests = erased = faces = 0
    taken: list[float] = []
    for entry in entries:
        if entry.action not in (AuditAction.ERASE_PREVIEW, AuditAction.ERASE):
            continue
        key = (str(entry.details.get("mode")), str(entry.details.get("subject")))
        if key not in opened:
            opened[key] = (entry.at, entry.action == AuditAction.ERASE_PREVIEW)
            requests += entry.at >= start
        if entry.action == AuditAction.ERASE:
            at, previewed = opened.pop(key)
            if entry.at >= start:
                erased += 1
                faces += len(_list(entry.details.get("face_ids")))
                if previewed:
                    taken.append((entry.at - at).total_seconds())
    pending = sum(1 for at, _ in opened.values() if at >= start)
    return ErasureFigures(
        requests=requests,
        erased=erased,
        faces_erased=faces,
        pending=pending,
        timed=len(taken),
        median_s=statistics.median(taken) if taken else None,
        max_s=max(taken) if taken else None,
    )


def duration_words(seconds: float) -> str:
    """A duration as a person reads it: seconds, minutes, hours or days."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []
