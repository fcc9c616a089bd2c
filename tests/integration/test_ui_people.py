"""The people view with the TestClient on a real engine over a small LFW gallery (four people, four photos each,
ingested with labels and provenance): who may look (a case and a purpose, admins a purpose) and who may change
people, the labels before clustering, an admin clustering from the page, rename / merge / split / hide each audited
with the case and purpose, and erasure from a person's page (the preview changes nothing; the confirmation erases
exactly the previewed faces).

The tests run in order on one gallery: clustering, then changes, then erasure last.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from facetrace.core.types import StoredCluster
from facetrace.engine import Engine, open_engine
from facetrace.server.app import create_app
from facetrace.server.passwords import Argon2Hasher

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple"
PEOPLE = ("Serena_Williams", "Hugo_Chavez", "Jacques_Chirac", "Junichiro_Koizumi")
PHOTOS_EACH = 4
PURPOSE = "who else appears with the suspect"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_PREVIEW_ID = re.compile(r'name="preview_id" value="([^"]+)"')
_LISTED = re.compile(r'name="face_id" value="(\d+)" id="face-')


@dataclass
class People:
    engine: Engine
    clients: dict[str, TestClient]
    anonymous: TestClient
    case_id: int

    def csrf(self, name: str) -> str:
        match = _CSRF.search(self.clients[name].get("/ui/people").text)
        assert match
        return match.group(1)

    def query(self, name: str, /, **more: object) -> str:
        within: dict[str, object] = {"purpose": PURPOSE} if name == "admin" else {"case_id": self.case_id}
        return urlencode({**within, "purpose": PURPOSE, **more})

    def form(self, name: str, /, **fields: object) -> dict[str, Any]:
        within: dict[str, Any] = {"purpose": PURPOSE, "csrf_token": self.csrf(name)}
        if name != "admin":
            within["case_id"] = str(self.case_id)
        return {**within, **fields}

    def cluster_of(self, label: str) -> StoredCluster:
        """The saved cluster holding most of this label's faces."""
        labelled = set(self.engine.catalog.face_ids_labelled(label))
        return max(self.engine.clusters.saved(), key=lambda c: len(labelled & set(c.face_ids)))


def _sign_in(client: TestClient, name: str) -> None:
    page = client.get("/ui/login")
    token = _CSRF.search(page.text)
    assert token
    signed = client.post(
        "/ui/login", data={"username": name, "password": PASSWORD, "csrf_token": token.group(1), "next": "/ui/"}
    )
    assert signed.status_code == 303, signed.text


@pytest.fixture(scope="module")
def people(lfw: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[People]:
    root = tmp_path_factory.mktemp("people")
    manifest = root / "gallery.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uri", "label", "source_page", "captured_at", "legal_basis"])
        for name in PEOPLE:
            for number in range(1, PHOTOS_EACH + 1):
                path = lfw / "lfw-deepfunneled" / name / f"{name}_{number:04d}.jpg"
                writer.writerow([path, name, f"https://example.org/{name}/{number}", "2003-05-01", "press archive"])
    engine = open_engine(root / "data", workers=1)
    assert engine.ingest.run(manifests=[manifest]).errors == 0
    hasher = Argon2Hasher()
    users = [("admin", "admin"), ("investigator", "investigator"), ("reviewer", "reviewer"), ("auditor", "auditor")]
    for name, role in [*users, ("outsider", "investigator")]:
        engine.users.add_user(name, role, "cli:test", password=PASSWORD, hasher=hasher)
    case = engine.cases.open_case(engine.users.user("investigator"), "Rally", "identify the crowd", "warrant 2026/9")
    engine.cases.add_member(engine.users.user("admin"), case.case_id, "reviewer")
    app = create_app(engine)
    clients = {}
    for name in ("admin", "investigator", "reviewer", "auditor", "outsider"):
        clients[name] = TestClient(app, raise_server_exceptions=False, follow_redirects=False)
        _sign_in(clients[name], name)
    anonymous = TestClient(app, raise_server_exceptions=False, follow_redirects=False)
    yield People(engine, clients, anonymous, case.case_id)
    for client in [*clients.values(), anonymous]:
        client.close()
    engine.close()


def _last(engine: Engine, action: str) -> Any:
    return next(e for e in reversed(engine.audit.entries()) if e.action == action)


def test_looking_at_people_needs_a_case_and_a_purpose(people: People) -> None:
    assert people.anonymous.get("/ui/people").headers["location"].startswith("/ui/login?next=")
    assert people.clients["auditor"].get("/ui/people").status_code == 403
    start = people.clients["investigator"].get("/ui/people")
    assert start.status_code == 200 and 'id="people-start"' in start.text
    assert f'<option value="{people.case_id}"' in start.text  # the open case they work in is offered
    no_purpose = people.clients["investigator"].get(f"/ui/people?case_id={people.case_id}")
    assert 'id="people-start"' in no_purpose.text and 'id="people-grid"' not in no_purpose.text
    lonely = people.clients["outsider"].get("/ui/people")
    assert 'id="no-open-case"' in lonely.text
    before = len(people.engine.audit.entries())
    other_case = people.clients["outsider"].get(f"/ui/people?{people.query('outsider')}")
    assert other_case.status_code == 404  # not their case: as if it did not exist
    assert [e.action for e in people.engine.audit.entries()[before:]] == []
    admin = people.clients["admin"].get(f"/ui/people?{people.query('admin')}")
    assert admin.status_code == 200 and 'id="people-grid"' in admin.text  # admins: a purpose, no case
    for page in (0, 100_001, 2**70):
        assert people.clients["admin"].get(f"/ui/people?{people.query('admin', page=page)}").status_code == 422


def test_before_clustering_the_labels_are_the_people(people: People) -> None:
    engine = people.engine
    page = people.clients["investigator"].get(f"/ui/people?{people.query('investigator')}")
    assert page.status_code == 200
    assert 'id="not-clustered"' in page.text and "facetrace cluster --save" in page.text
    assert 'id="cluster-gallery"' not in page.text  # only admins get the button
    for name in PEOPLE:
        assert f">{name}</a>" in page.text
    assert page.text.count(f"{PHOTOS_EACH} faces") == len(PEOPLE)
    assert page.text.count('src="data:image/jpeg;base64,') == len(PEOPLE)
    listed = _last(engine, "list_people")
    assert (listed.actor, listed.details["case_id"], listed.details["purpose"]) == (
        "investigator",
        people.case_id,
        PURPOSE,
    )
    assert sorted(listed.details["labels"]) == sorted(PEOPLE)
    shown = _last(engine, "view_thumbnail")
    assert shown.target == "people" and len(shown.details["face_ids"]) == len(PEOPLE)
    # A labelled person's page: faces, photos, provenance; nothing to change before clustering.
    person = people.clients["reviewer"].get(f"/ui/people/label?{people.query('reviewer', label='Hugo_Chavez')}")
    assert person.status_code == 200
    assert person.text.count('class="face-card"') == PHOTOS_EACH
    assert "https://example.org/Hugo_Chavez/1" in person.text and "press archive" in person.text
    assert "2003-05-01" in person.text
    assert 'id="rename"' not in person.text and 'id="erase-person"' not in person.text
    viewed = _last(engine, "view_person")
    assert viewed.target == "person:Hugo_Chavez" and viewed.details["case_id"] == people.case_id


def test_an_admin_clusters_the_gallery_from_the_people_view(people: People) -> None:
    engine = people.engine
    refused = people.clients["reviewer"].post("/ui/people/cluster", data=people.form("reviewer"))
    assert refused.status_code == 403 and not engine.clusters.saved()
    admin_page = people.clients["admin"].get(f"/ui/people?{people.query('admin')}")
    assert 'id="cluster-gallery"' in admin_page.text
    done = people.clients["admin"].post("/ui/people/cluster", data=people.form("admin"))
    assert done.status_code == 303 and "notice=clustered" in done.headers["location"]
    saved = engine.clusters.saved()
    assert sum(len(c.face_ids) for c in saved) == engine.catalog.count_faces(engine.model_id)
    assert _last(engine, "cluster_save").actor == "admin"
    grid = people.clients["investigator"].get(f"/ui/people?{people.query('investigator', singles='true')}")
    assert 'id="not-clustered"' not in grid.text
    for cluster in saved:
        assert f'id="cluster-{cluster.cluster_id}" data-faces="{len(cluster.face_ids)}"' in grid.text
    assert 'name="cluster_id"' not in grid.text  # investigators look, they do not change people
    serena = people.cluster_of("Serena_Williams")
    assert len(serena.face_ids) >= 3  # clustering found most of her photos


def test_rename_split_merge_and_hide_are_audited_with_the_case(people: People) -> None:
    engine, reviewer = people.engine, people.clients["reviewer"]
    serena = people.cluster_of("Serena_Williams")
    at = f"/ui/people/clusters/{serena.cluster_id}"
    page = reviewer.get(f"{at}?{people.query('reviewer')}")
    assert page.status_code == 200 and 'id="rename"' in page.text and 'id="split"' in page.text
    assert 'id="erase-person"' not in page.text  # erasure is the admin's
    assert (
        people.clients["investigator"].post(f"{at}/rename", data=people.form("investigator", name="x")).status_code
        == 403
    )

    # Rename: a reason is required; with one, the name is stored and audited with the case and purpose.
    blank = reviewer.post(f"{at}/rename", data=people.form("reviewer", name="Serena Williams", reason=" "))
    assert blank.status_code == 422 and "states its reason" in blank.text
    assert engine.clusters.show(serena.cluster_id)[0].name is None
    too_long = reviewer.post(f"{at}/rename", data=people.form("reviewer", name="x" * 201, reason="r"))
    assert too_long.status_code == 422 and "at most 200 characters" in too_long.text
    forged = reviewer.post(f"{at}/rename", data={**people.form("reviewer", name="X", reason="r"), "csrf_token": "no"})
    assert forged.status_code == 403 and engine.clusters.show(serena.cluster_id)[0].name is None
    renamed = reviewer.post(f"{at}/rename", data=people.form("reviewer", name="Serena Williams", reason="ID card"))
    assert renamed.status_code == 303 and "notice=renamed" in renamed.headers["location"]
    assert engine.clusters.show(serena.cluster_id)[0].name == "Serena Williams"
    entry = _last(engine, "cluster_rename")
    assert (entry.actor, entry.target, entry.details["reason"]) == (
        "reviewer",
        f"cluster:{serena.cluster_id}",
        "ID card",
    )
    assert (entry.details["case_id"], entry.details["purpose"]) == (people.case_id, PURPOSE)
    assert "Serena Williams" in reviewer.get(renamed.headers["location"]).text

    # Split two faces off: they are a new person, whose page follows.
    moved = list(serena.face_ids[:2])
    split = reviewer.post(
        f"{at}/split", data=people.form("reviewer", face_id=[str(f) for f in moved], reason="two photos of another")
    )
    assert split.status_code == 303, split.text
    new_id = int(re.search(r"/people/clusters/(\d+)", split.headers["location"]).group(1))  # type: ignore[union-attr]
    assert engine.clusters.show(new_id)[0].face_ids == tuple(sorted(moved))
    assert set(engine.clusters.show(serena.cluster_id)[0].face_ids) == set(serena.face_ids) - set(moved)
    assert _last(engine, "cluster_split").details["face_ids"] == sorted(moved)

    # Merge them back from the grid: the named person keeps its number; two names are refused.
    merged = reviewer.post(
        "/ui/people/merge",
        data=people.form("reviewer", cluster_id=[str(new_id), str(serena.cluster_id)], reason="same person"),
    )
    assert merged.status_code == 303 and f"/people/clusters/{serena.cluster_id}?" in merged.headers["location"]
    assert set(engine.clusters.show(serena.cluster_id)[0].face_ids) == set(serena.face_ids)
    entry = _last(engine, "cluster_merge")
    assert (entry.details["other_cluster_id"], entry.details["case_id"]) == (new_id, people.case_id)
    hugo = people.cluster_of("Hugo_Chavez")
    reviewer.post(
        f"/ui/people/clusters/{hugo.cluster_id}/rename", data=people.form("reviewer", name="Hugo Chavez", reason="r")
    )
    two_names = reviewer.post(
        "/ui/people/merge",
        data=people.form("reviewer", cluster_id=[str(hugo.cluster_id), str(serena.cluster_id)], reason="r"),
    )
    assert two_names.status_code == 422 and "different names" in two_names.text
    assert engine.clusters.show(hugo.cluster_id)[0].face_ids == hugo.face_ids

    # Split again, then merge into the person from their page by number.
    split = reviewer.post(f"{at}/split", data=people.form("reviewer", face_id=[str(moved[0])], reason="check"))
    again = int(re.search(r"/people/clusters/(\d+)", split.headers["location"]).group(1))  # type: ignore[union-attr]
    # A single face is left out of the grid (not named) until asked for.
    grid = reviewer.get(f"/ui/people?{people.query('reviewer')}").text
    assert f'id="cluster-{again}"' not in grid and 'id="show-singles"' in grid
    assert f'id="cluster-{again}"' in reviewer.get(f"/ui/people?{people.query('reviewer', singles='true')}").text
    into = reviewer.post(f"{at}/merge", data=people.form("reviewer", other=str(again), reason="same person"))
    assert into.status_code == 303 and set(engine.clusters.show(serena.cluster_id)[0].face_ids) == set(serena.face_ids)

    # Hide: gone from the grid (not from the gallery), listed again with show hidden; then shown again.
    hidden = reviewer.post(f"/ui/people/clusters/{hugo.cluster_id}/hide", data=people.form("reviewer", reason="done"))
    assert hidden.status_code == 303 and engine.clusters.show(hugo.cluster_id)[0].hidden
    assert _last(engine, "cluster_hide").details["case_id"] == people.case_id
    grid = reviewer.get(f"/ui/people?{people.query('reviewer')}").text
    assert f'id="cluster-{hugo.cluster_id}"' not in grid and 'id="show-hidden"' in grid
    shown = reviewer.get(f"/ui/people?{people.query('reviewer', hidden='true')}").text
    assert f'id="cluster-{hugo.cluster_id}"' in shown
    twice = reviewer.post(f"/ui/people/clusters/{hugo.cluster_id}/hide", data=people.form("reviewer", reason="x"))
    assert twice.status_code == 422 and "hidden already" in twice.text
    unhidden = reviewer.post(
        f"/ui/people/clusters/{hugo.cluster_id}/hide", data=people.form("reviewer", hidden="0", reason="needed")
    )
    assert unhidden.status_code == 303 and not engine.clusters.show(hugo.cluster_id)[0].hidden
    assert _last(engine, "cluster_unhide").actor == "reviewer"
    history = reviewer.get(f"/ui/people/clusters/{hugo.cluster_id}?{people.query('reviewer')}").text
    assert "unhide" in history and "needed" in history


def test_erasure_from_a_person_page_erases_exactly_the_preview(people: People) -> None:
    """Last: it erases faces. The preview lists the ticked faces with their thumbnails and changes nothing; the
    confirmation erases exactly them."""
    engine, admin = people.engine, people.clients["admin"]
    chirac = people.cluster_of("Jacques_Chirac")
    at = f"/ui/people/clusters/{chirac.cluster_id}"
    page = admin.get(f"{at}?{people.query('admin')}")
    assert 'id="erase-ticked"' in page.text and 'id="erase-person"' in page.text
    refused = people.clients["reviewer"].post(
        f"{at}/erase", data=people.form("reviewer", face_id=[str(chirac.face_ids[0])])
    )
    assert refused.status_code == 403

    ticked = list(chirac.face_ids[:2])
    faces_before = engine.catalog.count_faces(engine.model_id)
    preview = admin.post(f"{at}/erase", data=people.form("admin", face_id=[str(f) for f in ticked], reason="req 4"))
    assert preview.status_code == 200 and "Nothing has been erased yet" in preview.text
    assert sorted(int(f) for f in _LISTED.findall(preview.text)) == sorted(ticked)
    assert preview.text.count('class="erase-thumb" src="data:image/jpeg;base64,') == len(ticked)
    assert "2 faces</strong> in <strong>2 photos" in preview.text
    assert f'href="/ui/people/clusters/{chirac.cluster_id}?' in preview.text  # Cancel leads back to the person
    assert engine.catalog.count_faces(engine.model_id) == faces_before  # a preview erases nothing
    assert engine.clusters.show(chirac.cluster_id)[0].face_ids == chirac.face_ids
    assert _last(engine, "erase_preview").details["face_ids"] == sorted(ticked)

    preview_id = _PREVIEW_ID.search(preview.text)
    assert preview_id
    confirmed = admin.post(
        "/ui/admin/erasures/confirm",
        data={"preview_id": preview_id.group(1), "face_id": [str(f) for f in ticked], "reason": "req 4",
              "csrf_token": people.csrf("admin")},
    )  # fmt: skip
    assert confirmed.status_code == 303, confirmed.text
    receipt = engine.erasure.receipt(confirmed.headers["location"].rsplit("/", 1)[1])
    assert sorted(receipt.face_ids) == sorted(ticked)
    assert engine.catalog.count_faces(engine.model_id) == faces_before - len(ticked)
    assert not set(engine.catalog.faces_by_id(ticked))
    assert set(engine.clusters.show(chirac.cluster_id)[0].face_ids) == set(chirac.face_ids) - set(ticked)

    # The whole of a labelled person, from the label's page: the preview lists every face shown with the label.
    koizumi = engine.catalog.face_ids_labelled("Junichiro_Koizumi")
    whole = admin.post(
        "/ui/people/label/erase", data=people.form("admin", label="Junichiro_Koizumi", everyone="1", reason="req 5")
    )
    assert sorted(int(f) for f in _LISTED.findall(whole.text)) == sorted(koizumi)
    assert set(engine.catalog.faces_by_id(koizumi)) == set(koizumi)
    preview_id = _PREVIEW_ID.search(whole.text)
    assert preview_id
    erased = admin.post(
        "/ui/admin/erasures/confirm",
        data={"preview_id": preview_id.group(1), "face_id": [str(f) for f in koizumi], "reason": "req 5",
              "csrf_token": people.csrf("admin")},
    )  # fmt: skip
    assert erased.status_code == 303
    assert engine.catalog.face_ids_labelled("Junichiro_Koizumi") == []
