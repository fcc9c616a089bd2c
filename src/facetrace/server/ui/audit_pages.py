"""The web UI's audit pages (auditors and admins): the log with its chain's verification, filtered by actor, action,
case and period, repeated views folded into one line, and its CSV export; and the transparency report for a period.

Folding is for reading only: a run of one person's views (nothing else by them in between) shows as one line per
action and thing viewed, the faces of one case counting as one thing, within FOLD_GAP ("view_thumbnail ×96, 9
targets in case:3, 14:02–14:10"); every entry is still in the log, in the API's listing and in the CSV. The export
is itself audited (an `export` entry recording the filter and the last seq it covers), and covers exactly the
entries up to that seq.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from facetrace.core.errors import InvalidRequestError
from facetrace.core.limits import MAX_CATALOG_ID
from facetrace.core.types import AuditEntry, AuditQuery
from facetrace.core.vocabulary import AuditAction, Role
from facetrace.engine.transparency import duration_words
from facetrace.governance.audit import AuditLog, canonical_json
from facetrace.server.api.audit import MAX_ACTOR, audit_query
from facetrace.server.auth import engine_of
from facetrace.server.reads import audited_read
from facetrace.server.ui.common import Visitor, render, signed_in

router = APIRouter()
_readers = signed_in(Role.AUDITOR, Role.ADMIN)
AUDIT_PAGE_SIZE = 500  # entries read for one page (fewer lines once folded)
EXPORT_BATCH = 2_000
FOLD_GAP = timedelta(minutes=30)
TRANSPARENCY_DAYS = 30  # the period shown when none is asked for: the last 30 days
_SPREADSHEET_FORMULA = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class AuditLine:
    """One line of the page: an entry, or a run of one person's views of one thing (newest first)."""

    scope: str
    entries: list[AuditEntry] = field(default_factory=list)

    @property
    def newest(self) -> AuditEntry:
        return self.entries[0]

    @property
    def oldest(self) -> AuditEntry:
        return self.entries[-1]

    @property
    def count(self) -> int:
        return len(self.entries)

    @property
    def targets(self) -> list[str]:
        return list(dict.fromkeys(entry.target for entry in reversed(self.entries)))


def is_view(action: str) -> bool:
    """Reads fold; changes, searches, exports and denials never do."""
    return action.startswith(("view_", "list_")) or action == AuditAction.READ_AUDIT


def _scope(entry: AuditEntry) -> str:
    case_id = entry.details.get("case_id")
    return f"case:{case_id}" if isinstance(case_id, int) and entry.target != f"case:{case_id}" else entry.target


def fold_views(entries: list[AuditEntry]) -> list[AuditLine]:
    """entries newest first -> lines. A person's run of views (nothing but views by them in between) folds into one
    line per action and scope (the thing viewed, or the case its faces were shown under), each line spanning at most
    FOLD_GAP; any other entry of theirs ends the run. A line stands where its newest entry is."""
    lines: list[AuditLine] = []
    runs: dict[str, dict[tuple[str, str], AuditLine]] = {}  # actor -> their open lines in the current run of views
    for entry in entries:
        scope = _scope(entry)
        if not is_view(entry.action):
            runs.pop(entry.actor, None)
            lines.append(AuditLine(scope, [entry]))
            continue
        run = runs.setdefault(entry.actor, {})
        line = run.get((entry.action, scope))
        if line is not None and line.newest.at - entry.at <= FOLD_GAP:
            line.entries.append(entry)
            continue
        line = AuditLine(scope, [entry])
        run[(entry.action, scope)] = line
        lines.append(line)
    return lines


@dataclass(frozen=True)
class AuditFilter:
    """The page's filter as the form sends it (blank fields: any), and the query it stands for."""

    actor: str = ""
    action: str = ""
    case_id: str = ""
    since: str = ""
    until: str = ""

    def query(self) -> AuditQuery:
        case_id = _number(self.case_id, "a case id")
        return audit_query(
            self.actor, [self.action] if self.action else [], case_id, _day(self.since), _day(self.until)
        )

    def params(self) -> dict[str, str]:
        """The filter as query parameters (for the next page's and the export's links)."""
        fields = {"actor": self.actor, "action": self.action, "case_id": self.case_id}
        fields |= {"from": self.since, "to": self.until}
        return {key: value for key, value in fields.items() if value}


def _number(text: str, what: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= MAX_CATALOG_ID:
        raise InvalidRequestError(f"{what} is a whole number from 1, not {text[:40]!r}")
    return int(text)


def _day(text: str) -> date | None:
    text = text.strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidRequestError(f"a day is written YYYY-MM-DD, not {text[:40]!r}") from None


def _filter(
    actor: Annotated[str, Query(max_length=MAX_ACTOR)] = "",
    action: Annotated[str, Query(max_length=64)] = "",
    case_id: Annotated[str, Query(max_length=32)] = "",
    since: Annotated[str, Query(alias="from", max_length=32)] = "",
    until: Annotated[str, Query(alias="to", max_length=32)] = "",
) -> AuditFilter:
    return AuditFilter(actor.strip(), action.strip(), case_id.strip(), since.strip(), until.strip())


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    visitor: Annotated[Visitor, Depends(_readers)],
    chosen: Annotated[AuditFilter, Depends(_filter)],
    before: Annotated[int | None, Query(ge=1, le=MAX_CATALOG_ID)] = None,
) -> HTMLResponse:
    engine = engine_of(request)
    # Verifying recomputes every hash of the log (docs/ui/audit-and-admin.md: about 2.5 s for 20,000 entries on a
    # loaded machine): done on the log's own first page, not again for every filter and page an auditor reads.
    chain = engine.audit.verify() if not chosen.params() and before is None else None
    error, lines, older = None, [], None
    try:
        query = chosen.query()
    except InvalidRequestError as exc:
        error, query = str(exc), None
    if query is not None:
        entries = engine.audit.find(query, before_seq=before, limit=AUDIT_PAGE_SIZE)
        lines = fold_views(entries)
        older = entries[-1].seq if len(entries) == AUDIT_PAGE_SIZE else None
        # The filter is part of what was read: each filter is its own (folded) read.
        target = "audit?" + urlencode(chosen.params()) if chosen.params() else "audit"
        audited_read(request, visitor.user, AuditAction.READ_AUDIT, target, before=before, filter=query.described())
    return render(
        request,
        "audit.html",
        visitor,
        status_code=422 if error else 200,
        chain=chain,
        lines=lines,
        older=older,
        chosen=chosen,
        params=chosen.params(),
        error=error,
        actions=sorted(str(action) for action in AuditAction),
        users=[user.name for user in engine.users.users()],
    )


@router.get("/audit.csv", response_model=None)
def audit_csv(
    request: Request,
    visitor: Annotated[Visitor, Depends(_readers)],
    chosen: Annotated[AuditFilter, Depends(_filter)],
) -> Response:
    """Every entry the filter selects, oldest first, as CSV; the export is recorded first, with its filter and the
    last seq it covers (entries written later, the export's own entry among them, are not in it)."""
    query = chosen.query()
    audit = engine_of(request).audit
    up_to = audit.length()
    audit.record(
        visitor.user.name, AuditAction.EXPORT, "audit", format="csv", filter=query.described(), up_to_seq=up_to
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        _csv_rows(audit, query, up_to),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="facetrace-audit-{stamp}.csv"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


def _csv_rows(audit: AuditLog, query: AuditQuery, up_to: int) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["seq", "at", "actor", "action", "target", "details", "prev_hash", "hash"])
    after = 0
    while True:
        batch = audit.find(query, after_seq=after, before_seq=up_to + 1, limit=EXPORT_BATCH, newest_first=False)
        for entry in batch:
            writer.writerow(
                [
                    entry.seq,
                    entry.at.astimezone(UTC).isoformat(),
                    _cell(entry.actor),
                    entry.action,
                    _cell(entry.target),
                    canonical_json(entry.details),
                    entry.prev_hash,
                    entry.hash,
                ]
            )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(batch) < EXPORT_BATCH:
            return
        after = batch[-1].seq


def _cell(text: str) -> str:
    """A spreadsheet would run a cell starting with = + - @ as a formula: such a cell gets a leading apostrophe."""
    return "'" + text if text.startswith(_SPREADSHEET_FORMULA) else text


@router.get("/audit/transparency", response_class=HTMLResponse)
def transparency_page(
    request: Request,
    visitor: Annotated[Visitor, Depends(_readers)],
    since: Annotated[str, Query(alias="from", max_length=32)] = "",
    until: Annotated[str, Query(alias="to", max_length=32)] = "",
) -> HTMLResponse:
    today = datetime.now(UTC).date()
    error, report = None, None
    try:
        last = _day(until) or today
        first = _day(since) or last - timedelta(days=TRANSPARENCY_DAYS - 1)
        report = engine_of(request).transparency.report(first, last)
    except InvalidRequestError as exc:
        error, first, last = str(exc), today - timedelta(days=TRANSPARENCY_DAYS - 1), today
    if report is not None:
        audited_read(
            request, visitor.user, AuditAction.READ_AUDIT, "audit:transparency", since=str(first), until=str(last)
        )
    return render(
        request,
        "transparency.html",
        visitor,
        status_code=422 if error else 200,
        report=report,
        since=since or str(first),
        until=until or str(last),
        error=error,
        duration=duration_words,
    )
