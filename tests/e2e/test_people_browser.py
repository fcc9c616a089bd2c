"""The people view in headless Chromium over a small LFW gallery (five people, four photos each, labelled, clustered):
a reviewer opens it from a case with a purpose, opens a person, renames them, splits two faces off and merges them
back from the grid; an admin opens a person, ticks two faces, reads the erasure preview (faces with thumbnails,
photos, counts) and confirms it, and exactly those faces are gone.

Screenshots go to tmp_path, and with FACETRACE_UI_SHOTS=docs/ui to docs/ui (people-grid, person-page,
erasure-preview).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from browsing import click_and_load, screenshot, serving, sign_in, sign_out

from facetrace.engine import Engine, open_engine

pytestmark = pytest.mark.slow

PEOPLE = ("Serena_Williams", "Hugo_Chavez", "Jacques_Chirac", "Junichiro_Koizumi", "Jean_Chretien")
PHOTOS_EACH = 4


@dataclass
class Served:
    url: str
    engine: Engine
    case_id: int

    def cluster_of(self, label: str) -> int:
        labelled = set(self.engine.catalog.face_ids_labelled(label))
        return max(self.engine.clusters.saved(), key=lambda c: len(labelled & set(c.face_ids))).cluster_id

    def faces_of(self, cluster_id: int) -> tuple[int, ...]:
        return self.engine.clusters.show(cluster_id)[0].face_ids


@pytest.fixture(scope="module")
def served(lfw: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("people-browser")
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
    engine.clusters.save(actor="cli:test")
    users = [("ines", "investigator"), ("ravi", "reviewer"), ("adam", "admin")]
    with serving(engine, users) as url:
        case = engine.cases.open_case(engine.users.user("ines"), "Rally", "identify the crowd", "warrant 2026/9")
        engine.cases.add_member(engine.users.user("adam"), case.case_id, "ravi")
        yield Served(url, engine, case.case_id)


def _tick(driver: Any, face_ids: list[int] | tuple[int, ...]) -> None:
    from selenium.webdriver.common.by import By

    for face_id in face_ids:
        driver.find_element(By.ID, f"tick-{face_id}").click()


def _images_loaded(driver: Any, selector: str) -> int:
    from selenium.webdriver.common.by import By

    images = driver.find_elements(By.CSS_SELECTOR, selector)
    assert images and all(driver.execute_script("return arguments[0].naturalWidth", i) > 0 for i in images)
    return len(images)


def test_people_rename_merge_then_erase(browser: Any, served: Served, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    driver, engine = browser, served.engine
    serena = served.cluster_of("Serena_Williams")

    # The reviewer opens the people view from the case, with a purpose.
    sign_in(driver, served.url, "ravi")
    driver.get(f"{served.url}/ui/cases/{served.case_id}")
    driver.find_element(By.ID, "people-purpose").send_keys("who else is at the rally")
    click_and_load(driver, driver.find_element(By.ID, "open-people"))
    assert "who else is at the rally" in driver.find_element(By.ID, "browse-context").text
    tiles = driver.find_elements(By.CSS_SELECTOR, "#people-grid .person-tile")
    assert len(tiles) == sum(len(c.face_ids) >= 2 for c in engine.clusters.saved())  # single faces: on request
    assert _images_loaded(driver, "#people-grid img") == len(tiles)
    screenshot(driver, tmp_path / "people-grid.png", docs_name="people-grid")

    # A person's page: their faces, photos and provenance.
    tile = driver.find_element(By.ID, f"cluster-{serena}")
    click_and_load(driver, tile.find_element(By.CSS_SELECTOR, ".name a"))
    assert driver.find_element(By.ID, "person-name").text == f"Unnamed person {serena}"
    faces = served.faces_of(serena)
    assert _images_loaded(driver, "#faces img") == len(faces)
    assert "https://example.org/Serena_Williams/1" in driver.find_element(By.ID, "photos").text

    # Rename.
    driver.find_element(By.ID, "rename-name").send_keys("Serena Williams")
    driver.find_element(By.ID, "rename-reason").send_keys("her ID card in the case file")
    click_and_load(driver, driver.find_element(By.ID, "rename"))
    assert driver.find_element(By.ID, "person-name").text == "Serena Williams"
    screenshot(driver, tmp_path / "person-page.png", docs_name="person-page")

    # Split two faces off (a new person), then merge the two back from the grid.
    _tick(driver, faces[:2])
    driver.find_element(By.ID, "faces-reason").send_keys("two photos look like someone else")
    click_and_load(driver, driver.find_element(By.ID, "split"))
    assert "Split" in driver.find_element(By.ID, "person-notice").text
    new_person = int(driver.find_element(By.ID, "person-name").text.rsplit(" ", 1)[1])
    assert served.faces_of(new_person) == faces[:2]
    click_and_load(driver, driver.find_element(By.ID, "back-to-people"))
    for cluster_id in (serena, new_person):
        driver.find_element(By.ID, f"cluster-{cluster_id}").find_element(By.NAME, "cluster_id").click()
    driver.find_element(By.ID, "merge-reason").send_keys("the same person after all")
    click_and_load(driver, driver.find_element(By.ID, "merge-selected"))
    assert driver.find_element(By.ID, "person-name").text == "Serena Williams"
    assert "Merged" in driver.find_element(By.ID, "person-notice").text
    assert served.faces_of(serena) == faces
    actions = [(e.actor, e.action) for e in engine.audit.entries()]
    for action in ("cluster_rename", "cluster_split", "cluster_merge"):
        assert ("ravi", action) in actions
    sign_out(driver)

    # The admin erases two faces of a person: preview first, then confirm.
    chirac = served.cluster_of("Jacques_Chirac")
    before = served.faces_of(chirac)
    sign_in(driver, served.url, "adam")
    click_and_load(driver, driver.find_element(By.LINK_TEXT, "People"))
    driver.find_element(By.ID, "people-purpose").send_keys("erasure request 2026-12")
    click_and_load(driver, driver.find_element(By.ID, "open-people"))
    click_and_load(driver, driver.find_element(By.ID, f"cluster-{chirac}").find_element(By.CSS_SELECTOR, ".name a"))
    _tick(driver, before[:2])
    driver.find_element(By.ID, "faces-reason").send_keys("erasure request 2026-12")
    click_and_load(driver, driver.find_element(By.ID, "erase-ticked"))
    assert "Nothing has been erased yet" in driver.find_element(By.ID, "erasure-preview").text
    assert "2 faces in 2 photos" in driver.find_element(By.ID, "erasure-counts").text
    assert _images_loaded(driver, "#erasure-candidates img") == 2
    assert served.faces_of(chirac) == before  # the preview changed nothing
    screenshot(driver, tmp_path / "erasure-preview.png", docs_name="erasure-preview")
    click_and_load(driver, driver.find_element(By.ID, "confirm-erasure"))
    receipt = driver.find_element(By.ID, "receipt-faces").text
    assert receipt.startswith("2:") and all(str(face_id) in receipt for face_id in before[:2])
    assert served.faces_of(chirac) == before[2:]
    assert not engine.catalog.faces_by_id(list(before[:2]))
    sign_out(driver)
