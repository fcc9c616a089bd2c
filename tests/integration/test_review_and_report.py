"""The review queue and the case report that leads with findings, on a real engine over the small gallery with real
searches: the queue holds what the signed-in reviewer may review (case access, four eyes), strongest first; confirm
from the queue, reject the rest (one audited review per candidate); the HTML report and the server-made PDF show the
same sections in the same order, confirmed findings first, and a view of either is one audit entry."""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import SmallGallery
from facetrace.core.errors import NotFoundError, PermissionDeniedError
from facetrace.core.types import User
from facetrace.core.vocabulary import AuditAction, ReviewDecision
from facetrace.engine import Engine, open_engine
from facetrace.governance.cases import CaseService, strongest_first
from facetrace.server.app import create_app
from facetrace.server.case_report import SECTIONS
from facetrace.server.passwords import Argon2Hasher
from facetrace.server.ui.probes import ProbeStore

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple"
USERS = [
    ("ines", "investigator"),
    ("ivan", "investigator"),
    ("rita", "reviewer"),
    ("rolf", "reviewer"),  # works in no case
    ("aude", "auditor"),
    ("adam", "admin"),
]
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_H2 = re.compile(r"<h2[^>]*>(.*?)</h2>", re.S)
_QUEUED = re.compile(r'id="queue-(\d+)-(\d+)"')


@dataclass
class Workbench:
    engine: Engine
    clients: dict[str, TestClient]
    case_a: int  # ines's, four eyes; rita and ivan are members
    case_b: int  # ivan's; rita is not a member
    search_1: int  # ines, case A, the obama probe
    search_2: int  # ines, case A, the kit harington probe
    search_3: int  # ivan, case B

    def user(self, name: str) -> User:
        return self.engine.users.user(name)

    def csrf(self, name: str) -> str:
        found = _CSRF.search(self.clients[name].get("/ui/cases").text)
        assert found
        return found.group(1)

    def entries(self, since: int) -> list[Any]:
        return self.engine.audit.entries(since, 100_000)


def _sign_in(client: TestClient, name: str) -> None:
    page = client.get("/ui/login")
    token = _CSRF.search(page.text)
    assert token
    signed = client.post(
        "/ui/login", data={"username": name, "password": PASSWORD, "csrf_token": token.group(1), "next": "/ui/cases"}
    )
    assert signed.status_code == 303, signed.text


def _search(engine: Engine, user: str, case_id: int, probe: Path) -> int:
    data = probe.read_bytes()
    record, results = engine.search.in_case(
        engine.users.user(user), case_id, "who is in the photo", data, probe.name, top_k=5
    )
    ProbeStore(engine.settings.data, engine.settings.max_image_pixels).save(record.search_id, data, probe.name, results)
    return record.search_id


@pytest.fixture(scope="module")
def bench(small_gallery: SmallGallery, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workbench]:
    engine = open_engine(tmp_path_factory.mktemp("review") / "data", workers=1)
    assert engine.ingest.run(manifests=[small_gallery.manifest]).errors == 0
    hasher = Argon2Hasher()
    for name, role in USERS:
        engine.users.add_user(name, role, "cli:test", password=PASSWORD, hasher=hasher)
    cases, admin = engine.cases, engine.users.user("adam")
    case_a = cases.open_case(engine.users.user("ines"), "Burglary 17", "identify the burglar", "warrant 17").case_id
    case_b = cases.open_case(engine.users.user("ivan"), "Fraud 4", "identify the caller", "warrant 4").case_id
    for member in ("rita", "ivan"):
        cases.add_member(admin, case_a, member)
    search_1 = _search(engine, "ines", case_a, small_gallery.probe)
    search_2 = _search(engine, "ines", case_a, small_gallery.other_probe)
    search_3 = _search(engine, "ivan", case_b, small_gallery.probe)
    app = create_app(engine)
    clients = {}
    for name, _role in USERS:
        client = TestClient(app, raise_server_exceptions=False, follow_redirects=False)
        _sign_in(client, name)
        clients[name] = client
    yield Workbench(engine, clients, case_a, case_b, search_1, search_2, search_3)
    for client in clients.values():
        client.close()
    engine.close()


def _queued(page: str) -> list[tuple[int, int]]:
    return [(int(search), int(face)) for search, face in _QUEUED.findall(page)]


def test_the_queue_holds_what_each_reviewer_may_review(bench: Workbench, small_gallery: SmallGallery) -> None:
    cases = bench.engine.cases
    rita = {item.search.search_id for item in cases.review_queue(bench.user("rita"))}
    assert rita == {bench.search_1, bench.search_2}  # not case B: she is no member of it
    # Four eyes: ines ran both searches of case A, ivan ran case B's; each sees only the other's.
    assert {item.search.search_id for item in cases.review_queue(bench.user("ines"))} == set()
    assert {item.search.search_id for item in cases.review_queue(bench.user("ivan"))} == {
        bench.search_1,
        bench.search_2,
    }
    assert cases.review_queue(bench.user("rolf")) == [] and cases.review_queue(bench.user("aude")) == []
    # Where four eyes are optional and the case does not ask for them, the searcher may review their own.
    lenient = CaseService(bench.engine.catalog.governance_store(), bench.engine.audit, math.inf, "optional")
    own = lenient.open_case(bench.user("ines"), "Own", "p", "l", requires_independent_review=False)
    search = _search(bench.engine, "ines", own.case_id, small_gallery.other_probe)
    assert [item.search.search_id for item in lenient.review_queue(bench.user("ines"))] == [search]
    # The nav's count, counted in the catalog, is the queue's length for everyone.
    for service, name in [*((cases, name) for name, _ in USERS), (lenient, "ines")]:
        queued = sum(len(item.candidates) for item in service.review_queue(bench.user(name)))
        assert service.awaiting_count(bench.user(name)) == queued, name
    assert lenient.awaiting_count(bench.user("ines")) == 5 and cases.awaiting_count(bench.user("ines")) == 0
    assert search not in {item.search.search_id for item in cases.review_queue(bench.user("ines"))}  # the policy's

    page = bench.clients["rita"].get("/ui/review")
    assert page.status_code == 200, page.text
    shown = _queued(page.text)
    expected = [
        (item.search.search_id, hit.face_id)
        for item in cases.review_queue(bench.user("rita"))
        for hit in item.candidates
    ]
    assert len(expected) == 10  # two searches, five candidates each
    # Strongest first: searches by their strongest candidate, candidates by strength (weak ones after, collapsed).
    queue = cases.review_queue(bench.user("rita"))
    tops = [strongest_first(item.candidates[0]) for item in queue]
    assert tops == sorted(tops)
    for item in queue:
        assert list(item.candidates) == sorted(item.candidates, key=strongest_first)
    assert shown == expected  # the page in the queue's order
    assert f'<span class="count" title="candidates awaiting your review">{len(expected)}</span>' in page.text
    assert "Show " in page.text and "weak candidate" in page.text  # weak hits start collapsed
    for name in ("aude", "adam"):
        assert bench.clients[name].get("/ui/review").status_code == 403


def test_a_queue_view_is_one_audit_entry_per_case_not_one_per_face(bench: Workbench) -> None:
    start = bench.engine.audit.length()
    page = bench.clients["ivan"].get("/ui/review")
    assert page.status_code == 200 and "data:image/jpeg;base64," in page.text
    written = bench.entries(start)
    assert [(e.action, e.target) for e in written] == [(AuditAction.VIEW_REVIEW_QUEUE, f"case:{bench.case_a}")]
    assert sorted(written[0].details["face_ids"]) == sorted(  # type: ignore[arg-type]
        {face for _search, face in _queued(page.text)}
    )


def test_confirm_from_the_queue_then_reject_the_rest(bench: Workbench) -> None:
    cases = bench.engine.cases
    queue = {item.search.search_id: item for item in cases.review_queue(bench.user("rita"))}
    top = queue[bench.search_1].candidates[0]
    rest = [hit.face_id for hit in queue[bench.search_1].candidates[1:]]
    client = bench.clients["rita"]
    confirmed = client.post(
        f"/ui/review/searches/{bench.search_1}/decisions",
        data={
            "face_id": str(top.face_id),
            "decision": "confirmed",
            "note": "same scar",
            "csrf_token": bench.csrf("rita"),
        },
    )
    assert confirmed.status_code == 303 and confirmed.headers["location"] == f"/ui/review#search-{bench.search_1}"
    page = client.get("/ui/review").text
    assert (bench.search_1, top.face_id) not in _queued(page)
    assert sorted(face for search, face in _queued(page) if search == bench.search_1) == sorted(rest)

    # The searcher cannot reject the rest of their own search (four eyes), a stranger face is refused: no change.
    with pytest.raises(PermissionDeniedError):
        cases.reject_rest(bench.user("ines"), bench.search_1)
    with pytest.raises(NotFoundError):
        cases.reject_rest(bench.user("rita"), bench.search_1, shown=[*rest, 999_999])
    with pytest.raises(NotFoundError):
        cases.reject_rest(bench.user("rita"), bench.search_3)  # case B is not hers
    assert [r.face_id for r in cases.reviews(bench.search_1)] == [top.face_id]

    # Meanwhile ivan confirms one of the rest: reject-the-rest leaves his decision alone.
    cases.review(bench.user("ivan"), bench.search_1, rest[0], ReviewDecision.CONFIRMED, "agreed")
    start = bench.engine.audit.length()
    rejected = client.post(
        f"/ui/review/searches/{bench.search_1}/reject-rest",
        data={"face_ids": " ".join(map(str, rest)), "note": "different people", "csrf_token": bench.csrf("rita")},
    )
    assert rejected.status_code == 303, rejected.text
    reviews = cases.reviews(bench.search_1)
    decided = {(r.face_id, r.reviewer): r.decision for r in reviews}
    assert decided[(top.face_id, "rita")] == ReviewDecision.CONFIRMED
    assert decided[(rest[0], "ivan")] == ReviewDecision.CONFIRMED and (rest[0], "rita") not in decided
    assert {face for (face, who), d in decided.items() if who == "rita" and d == ReviewDecision.REJECTED} == set(
        rest[1:]
    )
    # One audit entry per rejection, each naming its face and saying it was part of "reject the rest".
    entries = [e for e in bench.entries(start) if e.action == AuditAction.REVIEW]
    assert sorted(e.details["face_id"] for e in entries) == sorted(rest[1:])  # type: ignore[type-var]
    assert all(
        e.details["decision"] == "rejected"
        and e.details["rest_of"] == len(rest) - 1
        and e.details["note"] == "different people"
        for e in entries
    )
    assert bench.search_1 not in {item.search.search_id for item in cases.review_queue(bench.user("rita"))}
    # Nothing left: a second click changes nothing.
    assert cases.reject_rest(bench.user("rita"), bench.search_1) == []


def _sections(html: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", heading).strip() for heading in _H2.findall(html)]


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def _in_order(text: str, phrases: list[str]) -> bool:
    at = -1
    for phrase in phrases:
        at = text.find(phrase, at + 1)
        if at < 0:
            return False
    return True


def test_the_report_leads_with_findings_and_the_pdf_follows_the_same_order(bench: Workbench) -> None:
    cases = bench.engine.cases
    confirmed = [r for r in cases.reviews(bench.search_1) if r.decision == ReviewDecision.CONFIRMED]
    assert confirmed, "run after the queue test: it confirms candidates of search 1"
    client = bench.clients["rita"]
    start = bench.engine.audit.length()
    html = client.get(f"/ui/cases/{bench.case_a}/report")
    assert html.status_code == 200, html.text
    written = bench.entries(start)
    assert [e.action for e in written] == [AuditAction.EXPORT]  # one entry per view, not one per face
    assert list(SECTIONS) == _sections(html.text)
    first = re.search(r'<article class="finding" id="report-face-(\d+)"', html.text)
    assert first
    findings = re.findall(r'<article class="finding" id="report-face-(\d+)"', html.text)
    assert len(findings) == 2  # rita's confirmation and ivan's
    assert "same scar" in html.text and "confirmed</span> by rita" in html.text
    rejected = sum(1 for r in cases.reviews(bench.search_1) if r.decision == ReviewDecision.REJECTED)
    assert f"{rejected} candidates rejected (search {bench.search_1}: {rejected})" in html.text
    assert "not reviewed: leads, not findings" in html.text and 'class="report-candidate"' not in html.text
    assert sorted(written[0].details["face_ids"]) == sorted(int(f) for f in findings)  # type: ignore[arg-type]

    listed = client.get(f"/ui/cases/{bench.case_a}/report?include=unreviewed")
    assert listed.status_code == 200 and _sections(listed.text) == list(SECTIONS)
    assert listed.text.count('class="report-candidate"') == 5  # search 2's five candidates
    assert client.get(f"/ui/cases/{bench.case_a}/report?include=everything").status_code == 422

    for query, extra in (("", []), ("?include=unreviewed", ["Unreviewed 1"])):
        pdf = client.get(f"/ui/cases/{bench.case_a}/report.pdf{query}")
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
        text = " ".join(_pdf_text(pdf.content).split())
        # The PDF's sections are the HTML's, in the HTML's order, and its first finding is the HTML's first.
        assert _in_order(text, ["Case report:", *SECTIONS]), text[:2000]
        assert _in_order(text, [SECTIONS[0], f"Finding 1: face {findings[0]}", f"Finding 2: face {findings[1]}"])
        assert _in_order(text, [SECTIONS[2], *extra, SECTIONS[3]])
        assert "Confirmed by rita" in text and "same scar" in text
