"""Seeing the probe and triaging its leads in headless Chromium: an investigator uploads a group photo (deepface's
selfie-many-people.jpg, six faces, none dominant), sees it with numbered boxes, picks face 2 (the one the gallery
knows), searches; the leads come first and the weak hits are folded away until asked for; the whole photo of the top
candidate opens with its box drawn. Only face 2 was searched and audited; the photo view was audited under the case.

Screenshots (docs_name, for docs/ui/probe-and-triage.md): probe-overview, search-results, candidate-photo.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browsing import click_and_load, screenshot, serving, sign_in

from facetrace.core.vocabulary import AuditAction
from facetrace.engine import Engine, open_engine

pytestmark = pytest.mark.slow

PROBE = "images/selfie-many-people.jpg"
PICKED = 2  # angelina_jolie, in detector order
# A small labelled gallery: the picked face's person, and two others (img62's second face is a bystander).
PEOPLE = ("angelina_jolie", "deepface_person_01", "deepface_person_04")


@pytest.fixture(scope="module")
def site(datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Engine, Path]]:
    root = datasets / "deepface_testset"
    if not (root / PROBE).exists():
        pytest.skip(f"deepface's test set not found under {root}")
    folder = tmp_path_factory.mktemp("probe-browser")
    manifest = folder / "gallery.csv"
    with (root / "manifest.csv").open(newline="") as source, manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uri", "label", "source_page"])
        for row in csv.DictReader(source):
            if row["identity"] in PEOPLE:
                writer.writerow([root / row["path"], row["identity"], f"https://example.org/{row['identity']}"])
    engine = open_engine(folder / "data", workers=1)
    assert engine.ingest.run(manifests=[manifest]).errors == 0
    with serving(engine, [("ines", "investigator")]) as url:
        yield url, engine, root / PROBE


def test_group_probe_pick_a_face_triage_and_open_the_whole_photo(
    browser: Any, site: tuple[str, Engine, Path], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    base_url, engine, probe = site
    driver = browser
    sign_in(driver, base_url, "ines")
    driver.find_element(By.ID, "title").send_keys("Festival pickpocket")
    driver.find_element(By.ID, "purpose").send_keys("identify the woman in the selfie")
    driver.find_element(By.ID, "legal_basis").send_keys("warrant 2026/77")
    click_and_load(driver, driver.find_element(By.ID, "open-case"))
    case_url = driver.current_url

    # Upload: a photo of six faces is shown first, numbered, and nothing is searched yet.
    driver.find_element(By.ID, "probe").send_keys(str(probe))
    driver.find_element(By.ID, "search-purpose").send_keys("who took the wallet")
    top_k = driver.find_element(By.ID, "top_k")
    top_k.clear()
    top_k.send_keys("50")  # more than the gallery holds: every face is a candidate, the bystander among them
    click_and_load(driver, driver.find_element(By.ID, "run-search"))
    assert driver.find_element(By.TAG_NAME, "h1").text == "Pick the faces to search"
    rows = driver.find_elements(By.CSS_SELECTOR, "#probe-faces tbody tr")
    assert [r.get_attribute("id") for r in rows] == [f"probe-face-{n}" for n in range(6)]
    assert not [box for box in driver.find_elements(By.NAME, "faces") if box.is_selected()]  # no dominant face
    photo = driver.find_element(By.ID, "probe-photo")
    assert driver.execute_script("return arguments[0].naturalWidth", photo) == 600  # 600 x 604: not enlarged
    assert not engine.cases.searches()
    screenshot(driver, tmp_path / "probe-overview.png", docs_name="probe-overview")

    # Pick face 2 and search it alone.
    driver.find_element(By.ID, f"pick-{PICKED}").click()
    click_and_load(driver, driver.find_element(By.ID, "search-faces"))
    assert driver.find_element(By.TAG_NAME, "h1").text.startswith("Search ")
    (record,) = engine.cases.searches()
    assert {hit.probe_face_index for hit in record.hits} == {PICKED}
    sections = driver.find_elements(By.CSS_SELECTOR, "section.probe-face")
    assert [s.get_attribute("id") for s in sections] == [f"probe-{PICKED}"]

    # Leads first: the gallery's angelina_jolie, strong; the weak hits folded away behind one summary.
    leads = driver.find_elements(By.CSS_SELECTOR, ".grid.leads article.card")
    assert leads and leads[0].find_element(By.CSS_SELECTOR, ".candidate-label").text == "angelina_jolie"
    assert leads[0].find_element(By.CSS_SELECTOR, ".strength").text == "STRONG LEAD"
    assert "strangers score this high" in leads[0].find_element(By.CSS_SELECTOR, ".verdict").text
    weak = driver.find_element(By.CSS_SELECTOR, "details.weak-hits")
    folded = weak.find_elements(By.CSS_SELECTOR, "article.card")
    assert folded and not weak.get_attribute("open") and not any(card.is_displayed() for card in folded)
    summary = weak.find_element(By.TAG_NAME, "summary")
    assert summary.text.startswith(f"Show {len(folded)} weak candidate")
    # The whole page in the picture: the leads and the fold under them.
    driver.set_window_size(1280, 1900)
    driver.execute_script("document.body.style.zoom = '0.7'")
    screenshot(driver, tmp_path / "search-results.png", docs_name="search-results")
    driver.execute_script("document.body.style.zoom = ''")
    driver.set_window_size(1280, 1100)
    summary.click()
    assert all(card.is_displayed() for card in folded)
    # img62's second face is a bystander in a photo of deepface_person_04: it says so, and is badged.
    bystanders = [
        c for c in folded if "bystander in a photo of" in c.find_element(By.CSS_SELECTOR, ".candidate-label").text
    ]
    assert bystanders and all(c.find_elements(By.CSS_SELECTOR, ".flag.bystander") for c in bystanders)

    # The top lead's whole photo, with its box drawn; the look is audited under the case.
    face_id = int(leads[0].get_attribute("id").removeprefix("face-"))
    click_and_load(driver, leads[0].find_element(By.CSS_SELECTOR, "a.whole-photo"))
    assert driver.current_url.endswith(f"/ui/searches/{record.search_id}/photos/{face_id}")
    image = driver.find_element(By.TAG_NAME, "img")
    assert driver.execute_script("return arguments[0].naturalWidth", image) > 200
    screenshot(driver, tmp_path / "candidate-photo.png", docs_name="candidate-photo")
    chain = engine.audit.verify()
    entries = engine.audit.entries(0, chain.entries)
    searched = [e for e in entries if e.action == AuditAction.SEARCH]
    assert len(searched) == 1 and searched[0].details["hit_face_ids"] == [h.face_id for h in record.hits]
    looks = [e for e in entries if e.action == AuditAction.VIEW_PHOTO]
    assert [(e.target, e.details["case_id"]) for e in looks] == [(f"face:{face_id}", record.case_id)]
    driver.get(case_url)
