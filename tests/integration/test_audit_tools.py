"""The auditor's tools on a real engine over the small gallery: the log filtered by actor, action, case and period
(API and UI), repeated views folded on the page, the CSV export and its own audit entry, and the transparency report
(engine, API, UI and `facetrace report transparency --json`) on a scenario whose counts are known."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import SmallGallery
from facetrace.cli.main import app as cli_app
from facetrace.core.errors import NoFaceError
from facetrace.core.types import AuditQuery
from facetrace.core.vocabulary import AuditAction, ReviewDecision
from facetrace.engine import Engine, open_engine
from facetrace.engine.transparency import NO_PURPOSE
from facetrace.server.app import create_app
from facetrace.server.passwords import Argon2Hasher
from facetrace.server.ui import audit_pages

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
DOORBELL = "who is on the doorbell camera"
MISSING = "find a missing person"


@dataclass
class Scenario:
    engine: Engine
    keys: dict[str, str]
    case_a: int
    case_b: int
    searches_a: list[int]
    biden_faces: int
    suppressed: int
    data: Path


def _blank_jpeg() -> bytes:
    ok, encoded = cv2.imencode(".jpg", np.full((240, 320, 3), 128, dtype=np.uint8))
    assert ok
    return encoded.tobytes()


@pytest.fixture(scope="module")
def scenario(small_gallery: SmallGallery, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    """Known counts: 5 searches (3 for DOORBELL: 2 with hits, 1 failed; 1 for MISSING, with hits; 1 from the command
    line without a purpose, failed), 1 candidate
    confirmed and 1 rejected, 3 erasure requests (biden previewed then erased, rose_leslie previewed only, one face
    of kit_harington erased without a preview), biden's photos ingested again (suppressed), one purge."""
    engine = open_engine(tmp_path_factory.mktemp("audit-tools") / "data", workers=1)
    assert engine.ingest.run(manifests=[small_gallery.manifest]).errors == 0
    hasher = Argon2Hasher()
    keys = {}
    for name, role in [("root", "admin"), ("ivan", "investigator"), ("rita", "reviewer"), ("olga", "auditor")]:
        keys[name] = engine.users.add_user(name, role, "cli:test", password=PASSWORD, hasher=hasher).api_key
    root, ivan, rita = (engine.users.user(name) for name in ("root", "ivan", "rita"))
    case_a = engine.cases.open_case(ivan, "Burglary 17", "identify the suspect", "warrant 17").case_id
    case_b = engine.cases.open_case(ivan, "Missing 3", "find a person", "court order 3").case_id
    engine.cases.add_member(root, case_a, "rita")
    probe = small_gallery.probe.read_bytes()
    searches_a = [engine.search.in_case(ivan, case_a, DOORBELL, probe, "door.jpg")[0].search_id for _ in range(2)]
    with pytest.raises(NoFaceError):
        engine.search.in_case(ivan, case_a, DOORBELL, _blank_jpeg(), "blank.jpg")
    engine.search.in_case(ivan, case_b, MISSING, small_gallery.other_probe.read_bytes(), "park.jpg")
    blank = tmp_path_factory.mktemp("probes") / "blank.jpg"
    blank.write_bytes(_blank_jpeg())
    with pytest.raises(NoFaceError):
        engine.search.file(blank, actor="cli:operator")  # the operator's own search, no purpose stated
    hits = engine.cases.search(searches_a[0]).hits
    engine.cases.review(rita, searches_a[0], hits[0].face_id, ReviewDecision.CONFIRMED, "same person")
    engine.cases.review(rita, searches_a[0], hits[1].face_id, ReviewDecision.REJECTED, "not him")
    preview = engine.erasure.preview_person(root.name, "biden")
    engine.erasure.erase_person(root.name, "biden", "request 1", face_ids=preview.face_ids)
    engine.erasure.preview_person(root.name, "rose_leslie")
    kit = engine.catalog.face_ids_labelled("kit_harington")
    engine.erasure.erase_faces(root.name, kit[:1], "request 3")
    again = engine.ingest.run(small_gallery.paths_of("biden"))
    suppressed = again.source_counts.get("suppressed_faces", 0)
    assert suppressed >= 2, again  # both of biden's photos met again, not stored
    engine.retention.purge(root.name)
    yield Scenario(engine, keys, case_a, case_b, searches_a, len(preview.face_ids), suppressed, engine.settings.data)
    engine.close()


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def _signed_in(client: TestClient, name: str) -> str:
    page = client.get("/ui/login")
    token = _CSRF.search(page.text)
    assert token
    signed = client.post(
        "/ui/login", data={"username": name, "password": PASSWORD, "csrf_token": token.group(1), "next": "/ui/"}
    )
    assert signed.status_code == 303, signed.text
    return token.group(1)


@pytest.fixture(scope="module")
def auditor(scenario: Scenario) -> Iterator[TestClient]:
    with TestClient(create_app(scenario.engine), raise_server_exceptions=False, follow_redirects=False) as client:
        _signed_in(client, "olga")
        yield client


# -- the transparency report -------------------------------------------------------------------------------------


def test_the_transparency_report_counts_the_scenario(scenario: Scenario) -> None:
    today = datetime.now(UTC).date()
    report = scenario.engine.transparency.report(today, today)
    doorbell, missing = report.searches[DOORBELL], report.searches[MISSING]
    assert (doorbell.with_hits, doorbell.without_hits, doorbell.failed) == (2, 0, 1)
    assert (missing.with_hits, missing.without_hits, missing.failed) == (1, 0, 0)
    unstated = report.searches[NO_PURPOSE]
    assert (unstated.with_hits, unstated.without_hits, unstated.failed) == (0, 0, 1)
    assert list(report.searches) == [DOORBELL, MISSING, NO_PURPOSE]  # most searched first, then by purpose
    assert (report.confirmed, report.rejected) == (1, 1)
    erasure = report.erasure
    assert (erasure.requests, erasure.erased, erasure.pending, erasure.timed) == (3, 2, 1, 1)
    assert erasure.faces_erased == scenario.biden_faces + 1
    assert erasure.median_s is not None and erasure.max_s is not None
    assert 0 <= erasure.median_s == erasure.max_s < 600  # previewed and erased within this test
    assert (report.suppressed_faces, report.ingest_runs) == (scenario.suppressed, 2)
    assert (report.purges, report.purged_faces) == (1, 0)
    assert {"root", "ivan", "rita", "cli:test", "cli:operator"} <= set(report.active_users)
    assert "olga" not in report.active_users or report.active_users["olga"] > 0
    assert report.audit_entries == sum(report.active_users.values())
    # A period before any of it: nothing; a period that ends before it starts: refused.
    empty = scenario.engine.transparency.report(today - timedelta(days=30), today - timedelta(days=1))
    assert empty.searches == {} and empty.audit_entries == 0 and empty.erasure.requests == 0
    with pytest.raises(Exception, match=r"ends .* before it starts"):
        scenario.engine.transparency.report(today, today - timedelta(days=1))


def test_the_cli_prints_the_same_figures(scenario: Scenario) -> None:
    runner = CliRunner()
    args = ["report", "transparency", "--from", _today(), "--to", _today(), "--data", str(scenario.data)]
    result = runner.invoke(cli_app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["searches"]["total"] == 5 and figures["searches"]["failed"] == 2
    assert figures["searches"]["by_purpose"][0] == {
        "purpose": DOORBELL,
        "total": 3,
        "with_hits": 2,
        "without_hits": 0,
        "failed": 1,
    }
    assert figures["reviews"] == {"confirmed": 1, "rejected": 1}
    assert (figures["erasure"]["requests"], figures["erasure"]["pending"]) == (3, 1)
    assert figures["suppressed_reingests"]["faces"] == scenario.suppressed
    assert figures["retention_purges"]["purges"] == 1
    plain = runner.invoke(cli_app, args)
    assert plain.exit_code == 0 and "Searches: 5 (3 with hits, 0 without, 2 failed)" in plain.stdout
    assert "Erasure: 3 requests, 2 erasures" in plain.stdout and "1 pending" in plain.stdout
    bad = runner.invoke(cli_app, ["report", "transparency", "--from", "2026-13-01", "--to", _today(), "--json"])
    assert bad.exit_code == 2 and json.loads(bad.stdout)["error"]["code"] == "usage"


def test_the_transparency_page_and_api(scenario: Scenario, auditor: TestClient) -> None:
    page = auditor.get(f"/ui/audit/transparency?from={_today()}&to={_today()}")
    assert page.status_code == 200, page.text
    assert re.search(r'<tr id="search-totals"><th>all purposes</th><th>5</th><th>3</th><th>0</th><th>2</th>', page.text)
    assert '<dd id="confirmed">1</dd>' in page.text and '<dd id="erasure-requests">3</dd>' in page.text
    assert f'<dd id="suppressed-faces">{scenario.suppressed}</dd>' in page.text
    default = auditor.get("/ui/audit/transparency")  # the last 30 days
    assert default.status_code == 200 and '<dd id="erasure-requests">3</dd>' in default.text
    wrong = auditor.get("/ui/audit/transparency?from=2026-12-06&to=2026-12-01")
    assert wrong.status_code == 422 and "before it starts" in wrong.text
    api = auditor.get(
        f"/api/v1/audit/transparency?from={_today()}&to={_today()}", headers={"X-API-Key": scenario.keys["olga"]}
    )
    assert api.status_code == 200 and api.json()["searches"]["total"] == 5 and api.json()["from"] == _today()
    refused = auditor.get(
        f"/api/v1/audit/transparency?from={_today()}&to={_today()}", headers={"X-API-Key": scenario.keys["ivan"]}
    )
    assert refused.status_code == 403
    reads = scenario.engine.audit.find(AuditQuery(actor="olga", actions=(AuditAction.READ_AUDIT,)))
    assert any(entry.target == "audit:transparency" for entry in reads)


# -- filters, folding and the export ---------------------------------------------------------------------------------


def test_the_api_filters_by_actor_action_case_and_period(scenario: Scenario, auditor: TestClient) -> None:
    headers = {"X-API-Key": scenario.keys["olga"]}

    def listed(**params: object) -> list[dict[str, object]]:
        response = auditor.get("/api/v1/audit", params={"limit": 1000, **params}, headers=headers)
        assert response.status_code == 200, response.text
        entries: list[dict[str, object]] = response.json()
        return entries

    rita = listed(actor="rita")
    assert [entry["action"] for entry in rita] == ["review", "review"]
    searches = listed(action=["search", "search_failed"])
    assert sorted(str(entry["action"]) for entry in searches) == ["search"] * 3 + ["search_failed"] * 2
    in_case = listed(case_id=scenario.case_a)
    actions = {str(entry["action"]) for entry in in_case}
    assert {"open_case", "add_case_member", "search", "search_failed", "review"} <= actions
    assert all(
        entry["target"] == f"case:{scenario.case_a}" or entry["details"].get("case_id") == scenario.case_a  # type: ignore[union-attr]
        for entry in in_case
    )
    assert not [entry for entry in listed(case_id=scenario.case_b) if entry["action"] == "review"]
    assert len(listed(**{"from": _today(), "to": _today()})) >= len(in_case)
    assert listed(**{"to": "2000-01-01"}) == []
    assert auditor.get("/api/v1/audit", params={"action": "no_such"}, headers=headers).status_code == 422
    backwards = auditor.get("/api/v1/audit", params={"from": "2026-02-02", "to": "2026-02-01"}, headers=headers)
    assert backwards.status_code == 422 and "before it starts" in backwards.text


def test_the_page_filters_and_folds_repeated_views(scenario: Scenario, auditor: TestClient) -> None:
    viewer = TestClient(auditor.app, raise_server_exceptions=False, follow_redirects=False)
    _signed_in(viewer, "ivan")
    search_id = scenario.searches_a[0]
    hits = [hit.face_id for hit in scenario.engine.cases.search(search_id).hits]
    faces = sorted(scenario.engine.catalog.faces_by_id(hits))  # those not erased since
    assert len(faces) >= 2
    for _ in range(3):  # the report page shows every face: each thumbnail is its own audited view
        for face_id in faces:
            assert viewer.get(f"/ui/faces/{face_id}/thumbnail?search_id={search_id}").status_code == 200
    page = auditor.get("/ui/audit", params={"actor": "ivan", "action": "view_thumbnail"})
    assert page.status_code == 200, page.text
    rows = re.findall(r'<tr class="audit-entry folded action-view_thumbnail">(.*?)</tr>', page.text, re.S)
    assert len(rows) == 1, page.text  # 3 x len(faces) views in one line
    assert f"×{3 * len(faces)}" in rows[0] and f"{len(faces)} targets in case:{scenario.case_a}" in rows[0]
    unfolded = auditor.get("/ui/audit", params={"actor": "rita"})
    assert unfolded.text.count('class="audit-entry action-review"') == 2
    for_case = auditor.get("/ui/audit", params={"case_id": str(scenario.case_b)})
    assert "action-search" in for_case.text and "action-review" not in for_case.text
    bad = auditor.get("/ui/audit", params={"case_id": "three", "from": "yesterday"})
    assert bad.status_code == 422 and "a case id is a whole number" in bad.text
    nothing = auditor.get("/ui/audit", params={"to": "2000-01-01"})
    assert "No entries match this filter." in nothing.text
    # Each filter read is its own audit entry, with the filter in it.
    filtered = scenario.engine.audit.find(AuditQuery(actor="olga", actions=(AuditAction.READ_AUDIT,)))
    assert any(entry.details.get("filter") == {"case_id": scenario.case_b} for entry in filtered)


def test_the_csv_export_holds_the_filtered_log_and_is_audited(scenario: Scenario, auditor: TestClient) -> None:
    before = scenario.engine.audit.length()
    response = auditor.get("/ui/audit.csv", params={"case_id": str(scenario.case_a), "action": "review"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["action"] for row in rows] == ["review", "review"]
    assert {json.loads(row["details"])["decision"] for row in rows} == {"confirmed", "rejected"}
    stored = {entry.seq: entry for entry in scenario.engine.audit.find(AuditQuery(actions=("review",)))}
    for row in rows:
        entry = stored[int(row["seq"])]
        assert (row["actor"], row["target"], row["hash"]) == (entry.actor, entry.target, entry.hash)
    export = scenario.engine.audit.find(AuditQuery(actor="olga", actions=(AuditAction.EXPORT,)), limit=1)[0]
    assert export.seq > before and export.target == "audit"
    assert export.details == {
        "format": "csv",
        "filter": {"actions": ["review"], "case_id": scenario.case_a},
        "up_to_seq": before,
    }
    everything = auditor.get("/ui/audit.csv")
    lines = list(csv.DictReader(io.StringIO(everything.text)))
    assert [int(row["seq"]) for row in lines] == list(range(1, len(lines) + 1))  # the whole log up to the export
    assert int(lines[-1]["seq"]) < scenario.engine.audit.length()
    assert scenario.engine.audit.verify().ok
    # A cell a spreadsheet would run as a formula is exported as text.
    scenario.engine.audit.record("cli:test", AuditAction.VIEW_PERSON, '=HYPERLINK("http://x.example","y")')
    formula = auditor.get("/ui/audit.csv", params={"action": "view_person"})
    (row,) = csv.DictReader(io.StringIO(formula.text))
    assert row["target"] == '\'=HYPERLINK("http://x.example","y")' and row["actor"] == "cli:test"


def test_older_entries_page_back_through_the_filter(
    scenario: Scenario, auditor: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_pages, "AUDIT_PAGE_SIZE", 2)
    wanted = [entry.seq for entry in scenario.engine.audit.find(AuditQuery(actor="ivan", actions=("search",)))]
    assert len(wanted) == 3
    seen: list[int] = []
    url = "/ui/audit?actor=ivan&action=search"
    for _ in range(len(wanted)):
        page = auditor.get(url)
        assert page.status_code == 200
        seen += [int(seq) for seq in re.findall(r'<tr class="audit-entry[^"]*"><td>(\d+)</td>', page.text)]
        older = re.search(r'<a id="older" href="([^"]+)"', page.text)
        if older is None:
            break
        url = older.group(1).replace("&amp;", "&")
        assert "actor=ivan" in url and "action=search" in url
    assert seen == wanted  # each of ivan's searches once, newest first, on two pages, and nothing else
