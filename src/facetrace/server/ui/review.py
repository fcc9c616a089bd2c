"""The review queue (/ui/review): every candidate awaiting the signed-in reviewer's decision, across the cases they
work in, strongest first and grouped by case and search (engine.cases.review_queue applies case access and the
four-eyes rule). Each candidate can be confirmed or rejected with a note, and the rest of a search's unreviewed
candidates rejected at once (engine.cases.reject_rest: one review and one audit entry per candidate).

The queue shows faces inline (the probe face crop beside the candidate's thumbnail), so a view of it is one audited
view_review_queue entry per case shown, naming its faces (engine.gallery.show_faces), not one entry per picture. At
most QUEUE_SEARCHES searches are shown at a time; the rest come up as these are decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from facetrace.core.errors import InvalidRequestError
from facetrace.core.limits import catalog_id
from facetrace.core.types import Case, FaceRecord, SearchRecord, StoredHit, Strength
from facetrace.core.vocabulary import AuditAction
from facetrace.governance.cases import AwaitingReview
from facetrace.server.api.common import IdPath
from facetrace.server.auth import engine_of
from facetrace.server.hit_badges import HitBadges
from facetrace.server.ui.common import VIEWERS, Visitor, check_csrf, data_uri, probes_of, redirect, render, signed_in

router = APIRouter()
_reviewers = signed_in(*VIEWERS)  # investigators and reviewers review (four eyes permitting)
QUEUE_SEARCHES = 10  # a page of about 100 candidates, each with two inline pictures (about 0.9 MB)
_LEADS = (Strength.STRONG, Strength.MODERATE, Strength.UNCALIBRATED)  # shown open; weak hits start collapsed
MAX_FACE_IDS = 10_000  # a reject-the-rest form's list of shown faces (a search has at most 100 per probe face)


@dataclass(frozen=True)
class QueuedCandidate(HitBadges):
    hit: StoredHit
    face: FaceRecord | None  # None: erased since the search
    thumbnail_uri: str | None
    probe_uri: str | None


@dataclass(frozen=True)
class QueuedSearch:
    search: SearchRecord
    leads: list[QueuedCandidate]
    weak: list[QueuedCandidate]

    @property
    def face_ids(self) -> list[int]:
        return [c.hit.face_id for c in (*self.leads, *self.weak)]


@dataclass(frozen=True)
class QueuedCase:
    case: Case
    searches: list[QueuedSearch]


def _queued_cases(request: Request, visitor: Visitor, queue: list[AwaitingReview]) -> list[QueuedCase]:
    """The queue's first QUEUE_SEARCHES searches with their faces: one audited look per case."""
    engine = engine_of(request)
    probes = probes_of(request)
    shown: list[QueuedCase] = []
    for _case_id, items in groupby(queue[:QUEUE_SEARCHES], key=lambda item: item.case.case_id):
        waiting = list(items)
        case = waiting[0].case
        context = engine.cases.reading(visitor.user, case.case_id, "review queue")
        faces = engine.gallery.show_faces(
            visitor.user,
            {hit.face_id for item in waiting for hit in item.candidates},
            context,
            AuditAction.VIEW_REVIEW_QUEUE,
            f"case:{case.case_id}",
            searches=[item.search.search_id for item in waiting],
        )
        searches = []
        for item in waiting:
            crops: dict[int, str | None] = {}
            candidates = []
            for hit in item.candidates:
                index = hit.probe_face_index
                if index is not None and index not in crops:
                    crop = probes.crop(item.search.search_id, index)
                    crops[index] = data_uri(crop) if crop else None
                thumbnail = faces.thumbnails.get(hit.face_id)
                candidates.append(
                    QueuedCandidate(
                        hit,
                        faces.faces.get(hit.face_id),
                        data_uri(thumbnail) if thumbnail else None,
                        crops.get(index) if index is not None else None,
                    )
                )
            searches.append(
                QueuedSearch(
                    item.search,
                    [c for c in candidates if c.strength in _LEADS],
                    [c for c in candidates if c.strength not in _LEADS],
                )
            )
        shown.append(QueuedCase(case, searches))
    return shown


@router.get("/review", response_class=HTMLResponse)
def review_queue(request: Request, visitor: Annotated[Visitor, Depends(_reviewers)]) -> HTMLResponse:
    queue = engine_of(request).cases.review_queue(visitor.user)
    return render(
        request,
        "review.html",
        visitor,
        cases=_queued_cases(request, visitor, queue),
        total_candidates=sum(len(item.candidates) for item in queue),
        total_searches=len(queue),
        more_searches=max(0, len(queue) - QUEUE_SEARCHES),
    )


@router.post("/review/searches/{search_id}/decisions", response_model=None)
def decide(
    search_id: IdPath,
    request: Request,
    visitor: Annotated[Visitor, Depends(_reviewers)],
    face_id: Annotated[str, Form()] = "",
    decision: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Confirm or reject one candidate from the queue (the case service's review, as on the search page)."""
    check_csrf(visitor, csrf_token)
    candidate = catalog_id(face_id, "a review's candidate face id")
    engine_of(request).cases.review(visitor.user, search_id, candidate, decision, note)
    return redirect(f"/review#search-{search_id}")


@router.post("/review/searches/{search_id}/reject-rest", response_model=None)
def reject_rest(
    search_id: IdPath,
    request: Request,
    visitor: Annotated[Visitor, Depends(_reviewers)],
    face_ids: Annotated[str, Form(max_length=MAX_FACE_IDS * 12)] = "",
    note: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Reject the search's candidates the reviewer saw unreviewed in the queue (face_ids, space-separated) and that
    nobody has reviewed since."""
    check_csrf(visitor, csrf_token)
    shown = [catalog_id(part, "a candidate face id") for part in face_ids.split()]
    if not shown:
        raise InvalidRequestError("no candidates named to reject")
    engine_of(request).cases.reject_rest(visitor.user, search_id, note, shown=shown)
    return redirect("/review")
