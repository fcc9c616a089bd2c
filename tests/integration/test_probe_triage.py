"""Seeing the probe and triaging its leads, on a real engine over the small gallery plus an unlabelled group photo
(obama_and_biden.jpg: face 0 obama, 1 biden, 2 a girl in profile, in detector order), which is also the probe:

- a probe with several faces is kept and shown (numbered boxes, flags) before anything is searched; only its
  uploader, in its case, reaches it; only the faces picked are searched, stored and audited;
- the search page puts leads first, folds weak hits away, filters by strength (UI and API), shows the probe's own
  photo as such (never as a strong lead);
- a candidate's whole photo is served only within its case, and each look is audited;
- the CLI's --min-strength and --annotate.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from conftest import SmallGallery
from facetrace.cli.main import app as cli
from facetrace.core.types import SearchRecord
from facetrace.core.vocabulary import AuditAction, SameImage
from facetrace.engine import Engine, open_engine
from facetrace.server.app import create_app
from facetrace.server.passwords import Argon2Hasher
from facetrace.server.ui.probes import PendingProbes

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple"
GROUP = "examples/knn_examples/test/obama_and_biden.jpg"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_PENDING = re.compile(r"^/ui/cases/(\d+)/probes/([\w-]+)$")


@dataclass
class World:
    engine: Engine
    clients: dict[str, TestClient]
    case_id: int
    group: Path
    last_token: str = ""  # of the upload search() searched

    def csrf(self, name: str) -> str:
        match = _CSRF.search(self.clients[name].get("/ui/cases").text)
        assert match
        return match.group(1)

    def upload(self, name: str = "ines") -> str:
        """Upload the group photo to the case's search form: the overview's path."""
        response = self.clients[name].post(
            f"/ui/cases/{self.case_id}/searches",
            files={"probe": (self.group.name, self.group.read_bytes(), "image/jpeg")},
            data={"purpose": "who is beside the senator", "top_k": "6", "csrf_token": self.csrf(name)},
        )
        assert response.status_code == 303, response.text
        return str(response.headers["location"])

    def search(self, faces: list[str]) -> SearchRecord:
        token = self.last_token = self.upload().rsplit("/", 1)[1]
        response = self.clients["ines"].post(
            f"/ui/cases/{self.case_id}/searches",
            data={
                "probe_token": token,
                "faces": faces,
                "purpose": "who is beside the senator",
                "top_k": "6",
                "csrf_token": self.csrf("ines"),
            },
        )
        assert response.status_code == 303, response.text
        return self.engine.cases.search(int(response.headers["location"].rsplit("/", 1)[1]))

    def entries(self, action: AuditAction) -> list[dict[str, object]]:
        chain = self.engine.audit.verify()
        return [
            {"target": e.target, **e.details} for e in self.engine.audit.entries(0, chain.entries) if e.action == action
        ]


@pytest.fixture(scope="module")
def world(small_gallery: SmallGallery, fr_examples: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    # Many searches in a minute: past a user's search budget, whose own tests are in tests/security.
    engine = open_engine(
        tmp_path_factory.mktemp("triage") / "data", workers=1, api_requests_per_minute=0, search_requests_per_minute=0
    )
    group = fr_examples / GROUP
    assert engine.ingest.run([group], manifests=[small_gallery.manifest]).errors == 0
    hasher = Argon2Hasher()
    users = [("ines", "investigator"), ("olaf", "investigator"), ("ravi", "reviewer"), ("aude", "auditor")]
    for name, role in users:
        engine.users.add_user(name, role, "cli:test", password=PASSWORD, hasher=hasher)
    case = engine.cases.open_case(engine.users.user("ines"), "Rally", "identify a companion", "warrant 12")
    app = create_app(engine)
    clients = {}
    for name, _role in users:
        client = TestClient(app, raise_server_exceptions=False, follow_redirects=False)
        token = _CSRF.search(client.get("/ui/login").text)
        assert token
        signed = client.post(
            "/ui/login",
            data={"username": name, "password": PASSWORD, "csrf_token": token.group(1), "next": "/ui/cases"},
        )
        assert signed.status_code == 303
        clients[name] = client
    yield World(engine, clients, case.case_id, group)
    for client in clients.values():
        client.close()
    engine.close()


def test_a_group_photo_is_shown_with_numbered_faces_before_any_search(world: World) -> None:
    searches_before = len(world.engine.cases.searches(world.case_id))
    audited_before = len(world.entries(AuditAction.SEARCH))
    overview = world.upload()
    assert _PENDING.match(overview)
    page = world.clients["ines"].get(overview)
    assert page.status_code == 200
    assert [int(n) for n in re.findall(r'id="probe-face-(\d+)"', page.text)] == [0, 1, 2]
    assert "weak: profile" in page.text  # face 2's flag
    assert "No face clearly dominates" in page.text and " checked" not in page.text  # nothing picked for them
    photo = world.clients["ines"].get(overview + "/photo")
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(photo.content)) as image:
        assert max(image.size) == 1024  # 2000 x 1428, downscaled
    # Nothing was searched, stored or audited as a search yet.
    assert len(world.engine.cases.searches(world.case_id)) == searches_before
    assert len(world.entries(AuditAction.SEARCH)) == audited_before
    # Another investigator (not in the case) gets 404; a reviewer may not run searches at all.
    assert world.clients["olaf"].get(overview).status_code == 404
    assert world.clients["olaf"].get(overview + "/photo").status_code == 404
    assert world.clients["ravi"].get(overview).status_code == 403


def test_only_the_picked_face_is_searched_stored_and_audited(world: World) -> None:
    record = world.search(["2"])
    assert record.hits and {hit.probe_face_index for hit in record.hits} == {2}
    entry = world.entries(AuditAction.SEARCH)[-1]
    assert entry["target"] == f"search:{record.search_id}"
    assert entry["hit_face_ids"] == [hit.face_id for hit in record.hits]
    # The uploaded photo is gone once searched; the crop of the searched face only is kept.
    assert world.last_token not in PendingProbes(world.engine.settings.data).tokens()
    assert world.clients["ines"].get(f"/ui/cases/{world.case_id}/probes/{world.last_token}").status_code == 404
    assert world.clients["ines"].get(f"/ui/searches/{record.search_id}/probe-faces/2").status_code == 200
    assert world.clients["ines"].get(f"/ui/searches/{record.search_id}/probe-faces/0").status_code == 404


def test_picking_no_face_or_a_face_not_there_is_refused_and_loses_nothing(world: World) -> None:
    overview = world.upload()
    token = overview.rsplit("/", 1)[1]
    refused = world.clients["ines"].post(
        f"/ui/cases/{world.case_id}/searches",
        data={"probe_token": token, "purpose": "p", "csrf_token": world.csrf("ines")},
    )
    assert refused.status_code == 422 and "pick at least one face" in refused.text
    beyond = world.clients["ines"].post(
        f"/ui/cases/{world.case_id}/searches",
        data={"probe_token": token, "faces": ["7"], "purpose": "p", "csrf_token": world.csrf("ines")},
    )
    assert beyond.status_code == 422 and "face 7 asked for" in beyond.text
    assert world.clients["ines"].get(overview).status_code == 200  # still there to pick from
    world.engine.settings.data.joinpath("case_probes", "pending", f"{token}.json").unlink()


def test_leads_come_first_and_weak_hits_are_folded(world: World) -> None:
    record = world.search(["1", "2"])
    page = world.clients["ines"].get(f"/ui/searches/{record.search_id}").text
    sections = page.split('<section class="panel probe-face"')[1:]
    assert len(sections) == 2
    biden, girl = sections
    # Every face of the probe's own photo (the gallery holds it too) is marked, and shown apart after the leads as
    # the same image, never as a strong lead, though its similarity is 1.
    own = [hit for hit in record.hits if hit.same_image is SameImage.IDENTICAL]
    assert {hit.probe_face_index for hit in own} == {1, 2}
    itself = next(hit for hit in own if hit.probe_face_index == 1 and hit.rank == 1)
    assert itself.evidence.strength.value == "strong"
    card = biden.split(f'id="face-{itself.face_id}"', 1)[1].split("</article>", 1)[0]
    assert "same image as the probe" in card and 'class="strength strong"' not in card
    leads, rest = biden.split('<h3 class="own-photo">', 1)
    assert 'class="grid leads"' in leads and "biden" in leads and f'id="face-{itself.face_id}"' in rest
    # Face 2 (not in the gallery): no lead, and its weak candidates folded away behind one summary.
    weak = [hit for hit in record.hits if hit.probe_face_index == 2 and hit.same_image is SameImage.NONE]
    assert weak and all(hit.evidence.strength.value == "weak" for hit in weak)
    assert "No strong or moderate lead" in girl
    assert f"Show {len(weak)} weak candidates" in girl
    folded = girl.split('<details class="weak-hits">', 1)[1]
    assert all(f'id="face-{hit.face_id}"' in folded for hit in weak)


def test_the_strength_filter_leaves_weak_hits_out_and_unviewed(world: World) -> None:
    record = world.search(["1", "2"])
    views_before = len(world.entries(AuditAction.VIEW_FACE))
    page = world.clients["ines"].get(f"/ui/searches/{record.search_id}?min_strength=moderate")
    assert page.status_code == 200
    shown = {int(n) for n in re.findall(r'<article class="card [a-z]+" id="face-(\d+)"', page.text)}
    kept = {hit.face_id for hit in record.hits if hit.evidence.strength.value in ("strong", "moderate")}
    assert shown == kept and len(shown) < len(record.hits)
    assert f"{len(record.hits) - len(kept)} weaker candidates not shown" in page.text
    # Only the faces shown were viewed (audited); the others were not looked at.
    assert len(world.entries(AuditAction.VIEW_FACE)) - views_before == len(kept)
    assert world.clients["ines"].get(f"/ui/searches/{record.search_id}?min_strength=nope").status_code == 422


def test_a_candidates_whole_photo_is_shown_within_its_case_and_audited(world: World) -> None:
    record = world.search(["1"])
    face_id = next(hit.face_id for hit in record.hits if hit.same_image is SameImage.NONE)
    url = f"/ui/searches/{record.search_id}/photos/{face_id}"
    looks = len(world.entries(AuditAction.VIEW_PHOTO))
    photo = world.clients["ines"].get(url)
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    Image.open(io.BytesIO(photo.content)).verify()
    entries = world.entries(AuditAction.VIEW_PHOTO)
    assert len(entries) == looks + 1
    assert entries[-1]["target"] == f"face:{face_id}" and entries[-1]["case_id"] == world.case_id
    # Not in the case: 404, and nothing viewed. Not a candidate of this search: 404. Auditors see no faces: 403.
    assert world.clients["olaf"].get(url).status_code == 404
    assert world.clients["ines"].get(f"/ui/searches/{record.search_id}/photos/999999").status_code == 404
    assert world.clients["aude"].get(url).status_code == 403
    assert len(world.entries(AuditAction.VIEW_PHOTO)) == looks + 1


def test_the_api_filters_by_strength_and_keeps_the_same_image_mark(world: World) -> None:
    api = TestClient(world.clients["ines"].app, raise_server_exceptions=False)
    response = api.post(
        f"/api/v1/cases/{world.case_id}/searches",
        auth=("ines", PASSWORD),
        files={"probe": (world.group.name, world.group.read_bytes(), "image/jpeg")},
        data={"purpose": "who is beside the senator", "face_index": "1", "min_strength": "strong"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    (result,) = body["results"]
    assert result["hits"] and all(hit["evidence"]["strength"] == "strong" for hit in result["hits"])
    assert result["below_min_strength"] > 0
    assert result["hits"][0]["evidence"]["detail"].startswith("Similarity ")
    search_id = body["search"]["search_id"]
    stored = world.engine.cases.search(search_id)
    assert len(stored.hits) == len(result["hits"]) + result["below_min_strength"]  # the case keeps every hit
    again = api.get(f"/api/v1/searches/{search_id}", auth=("ines", PASSWORD)).json()
    assert len(again["hits"]) == len(stored.hits)
    marked = {h["face_id"] for h in again["hits"] if h["same_image"] == "identical"}
    assert marked == {hit.face_id for hit in stored.hits if hit.same_image is SameImage.IDENTICAL} != set()
    assert again["hits"][0]["same_image"] == "identical"  # the face itself, at rank 1
    strong = api.get(f"/api/v1/searches/{search_id}?min_strength=strong", auth=("ines", PASSWORD)).json()
    assert [h["face_id"] for h in strong["hits"]] == [h["face"]["face_id"] for h in result["hits"]]


def test_the_cli_filters_by_strength_and_draws_the_probe(fr_examples: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    data = str(tmp_path / "data")
    train = fr_examples / "examples" / "knn_examples" / "train"
    assert runner.invoke(cli, ["ingest", str(train), "--data", data, "--json"]).exit_code == 0
    drawn = tmp_path / "probe.jpg"
    args = ["search", f"{fr_examples / GROUP}#1", "--data", data, "-k", "5"]
    result = runner.invoke(cli, [*args, "--min-strength", "strong", "--annotate", str(drawn), "--json"])
    assert result.exit_code == 0, result.output
    (found,) = json.loads(result.stdout)["results"]
    assert found["probe_face_index"] == 1 and found["hits"]
    assert all(hit["evidence"]["strength"] == "strong" for hit in found["hits"])
    assert found["below_min_strength"] == 5 - len(found["hits"])
    with Image.open(drawn) as image:
        assert image.format == "JPEG" and max(image.size) == 1024
        # Face 1 (searched) is boxed in yellow; face 0 (not searched) in grey.
        pixels = image.convert("RGB")
        colours = {pixels.getpixel((x, y)) for x in range(image.width) for y in range(0, image.height, 7)}
        assert any(r > 230 and 180 < g < 220 and b < 40 for r, g, b in colours)
    human = runner.invoke(cli, [*args, "--min-strength", "strong"])
    assert "weaker candidate(s) not shown (--min-strength)" in human.stdout
    both = runner.invoke(
        cli,
        [
            "search",
            str(fr_examples / GROUP),
            str(train / "obama" / "obama.jpg"),
            "--data",
            data,
            "--annotate",
            str(drawn),
        ],
    )
    assert both.exit_code != 0 and "one probe" in both.output


def test_an_unreadable_upload_is_refused_and_counted_as_a_failed_search(world: World) -> None:
    """The UI analyses an upload before any face is picked: a probe it cannot read is audited as search_failed
    under the case (the transparency report counts it), as a search the engine refuses is."""
    failed_before = len(world.entries(AuditAction.SEARCH_FAILED))
    response = world.clients["ines"].post(
        f"/ui/cases/{world.case_id}/searches",
        files={"probe": ("broken.jpg", b"\xff\xd8\xff\xe0 not a whole jpeg", "image/jpeg")},
        data={"purpose": "who is beside the senator", "top_k": "6", "csrf_token": world.csrf("ines")},
    )
    assert response.status_code == 422, response.text
    failed = world.entries(AuditAction.SEARCH_FAILED)
    assert len(failed) == failed_before + 1
    assert failed[-1]["target"] == f"case:{world.case_id}" and failed[-1]["case_id"] == world.case_id
