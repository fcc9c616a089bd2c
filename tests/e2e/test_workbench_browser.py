"""A new user's session in headless Chromium, with no CLI or API step: an admin ingests a labelled collection (photos
with a manifest of labels and source pages); an investigator opens a case, uploads a group photo, picks face 2 and
searches it; the weak hits are folded away; the investigator opens the top lead's whole photo; the admin adds a
reviewer to the case; the reviewer confirms the lead from the review queue and rejects the rest; the case report and
its PDF lead with the confirmed finding.

Screenshot (docs_name, for docs/ui.md): case-access. The other pages' pictures come from the tests of each page.
"""

from __future__ import annotations

import csv
import io
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browsing import click_and_load, screenshot, serving, sign_in, sign_out

from facetrace.engine import Engine, open_engine

pytestmark = pytest.mark.slow

GROUP = "images/selfie-many-people.jpg"
PICKED = 2  # angelina_jolie, in detector order
PEOPLE = ("angelina_jolie", "deepface_person_01", "deepface_person_04")
JOB_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def site(datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Engine, Path, Path]]:
    root = datasets / "deepface_testset"
    if not (root / GROUP).exists():
        pytest.skip(f"deepface's test set not found under {root}")
    folder = tmp_path_factory.mktemp("workbench")
    # The collection as an operator holds it: a folder of photos and a manifest naming each by its file name.
    photos = folder / "collection"
    photos.mkdir()
    with (root / "manifest.csv").open(newline="") as source, (folder / "collection.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["uri", "label", "source_page", "legal_basis"])
        for row in csv.DictReader(source):
            if row["identity"] in PEOPLE:
                name = Path(row["path"]).name
                shutil.copy(root / row["path"], photos / name)
                writer.writerow([name, row["identity"], f"https://example.org/{row['identity']}", "press archive"])
    engine = open_engine(folder / "data", workers=1)
    users = [("adam", "admin"), ("ines", "investigator"), ("ravi", "reviewer")]
    with serving(engine, users) as url:
        yield url, engine, folder, root / GROUP


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader

    return " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages).split())


def test_a_new_users_session_from_ingest_to_report_needs_no_cli(
    browser: Any, site: tuple[str, Engine, Path, Path], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    url, engine, folder, group = site
    driver = browser

    # The admin ingests the labelled collection: photos and their manifest, one background job.
    sign_in(driver, url, "adam")
    driver.get(f"{url}/ui/ingest")
    photos = sorted((folder / "collection").iterdir())
    driver.find_element(By.ID, "photos").send_keys("\n".join(str(p) for p in photos))
    driver.find_element(By.ID, "manifest").send_keys(str(folder / "collection.csv"))
    click_and_load(driver, driver.find_element(By.ID, "start-ingest"))
    WebDriverWait(driver, JOB_TIMEOUT_S, poll_frequency=1).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "#jobs tr.job .job-status").text.startswith("done")
    )
    assert engine.catalog.stats().faces >= len(photos)
    sign_out(driver)

    # The investigator: a case, a group photo, face 2 picked, searched.
    sign_in(driver, url, "ines")
    driver.find_element(By.ID, "title").send_keys("Festival pickpocket")
    driver.find_element(By.ID, "purpose").send_keys("identify the woman in the selfie")
    driver.find_element(By.ID, "legal_basis").send_keys("warrant 2026/77")
    click_and_load(driver, driver.find_element(By.ID, "open-case"))
    case_id = int(driver.current_url.rstrip("/").rsplit("/", 1)[1])
    driver.find_element(By.ID, "probe").send_keys(str(group))
    driver.find_element(By.ID, "search-purpose").send_keys("who took the wallet")
    top_k = driver.find_element(By.ID, "top_k")
    top_k.clear()
    top_k.send_keys("30")
    click_and_load(driver, driver.find_element(By.ID, "run-search"))
    assert driver.find_element(By.TAG_NAME, "h1").text == "Pick the faces to search"
    driver.find_element(By.ID, f"pick-{PICKED}").click()
    click_and_load(driver, driver.find_element(By.ID, "search-faces"))
    (record,) = engine.cases.searches(case_id)
    assert {hit.probe_face_index for hit in record.hits} == {PICKED}
    leads = driver.find_elements(By.CSS_SELECTOR, ".grid.leads article.card")
    assert leads and leads[0].find_element(By.CSS_SELECTOR, ".candidate-label").text == "angelina_jolie"
    weak = driver.find_element(By.CSS_SELECTOR, "details.weak-hits")
    assert not weak.get_attribute("open") and not any(
        c.is_displayed() for c in weak.find_elements(By.TAG_NAME, "article")
    )
    lead_face = int(leads[0].get_attribute("id").removeprefix("face-"))
    click_and_load(driver, leads[0].find_element(By.CSS_SELECTOR, "a.whole-photo"))
    image = driver.find_element(By.TAG_NAME, "img")
    assert driver.execute_script("return arguments[0].naturalWidth", image) > 200
    driver.get(f"{url}/ui/cases/{case_id}")
    sign_out(driver)

    # The admin gives the reviewer the case.
    sign_in(driver, url, "adam")
    click_and_load(driver, driver.find_element(By.ID, "nav-case-access"))
    Select(driver.find_element(By.ID, f"add-{case_id}")).select_by_value("ravi")
    click_and_load(driver, driver.find_element(By.ID, f"add-member-{case_id}"))
    assert driver.find_element(By.ID, f"member-{case_id}-ravi").is_displayed()
    screenshot(driver, tmp_path / "case-access.png", docs_name="case-access")
    sign_out(driver)

    # The reviewer confirms the lead from the queue and rejects the rest.
    sign_in(driver, url, "ravi")
    click_and_load(driver, driver.find_element(By.ID, "nav-review"))
    search = driver.find_element(By.ID, f"search-{record.search_id}")
    first = search.find_elements(By.CSS_SELECTOR, "article.queue-card")[0]
    assert int(first.get_attribute("data-face")) == lead_face
    first.find_element(By.NAME, "note").send_keys("same scar above the left eyebrow")
    click_and_load(driver, first.find_element(By.CSS_SELECTOR, "button.confirm"))
    search = driver.find_element(By.ID, f"search-{record.search_id}")
    click_and_load(driver, search.find_element(By.CSS_SELECTOR, ".reject-rest button"))
    assert "Nothing awaits your review" in driver.find_element(By.ID, "queue-summary").text
    sign_out(driver)

    # The investigator's report, in the page and as the server's PDF, leads with the confirmed finding.
    sign_in(driver, url, "ines")
    driver.get(f"{url}/ui/cases/{case_id}/report")
    finding = driver.find_element(By.CSS_SELECTOR, "#confirmed article.finding")
    assert finding.get_attribute("id") == f"report-face-{lead_face}"
    assert "angelina_jolie" in finding.text and "confirmed by ravi" in finding.text
    cookies = "; ".join(f"{c['name']}={c['value']}" for c in driver.get_cookies())
    request = urllib.request.Request(f"{url}/ui/cases/{case_id}/report.pdf", headers={"Cookie": cookies})
    with urllib.request.urlopen(request, timeout=60) as response:
        text = _pdf_text(response.read())
    first_finding = text.find("Finding 1: ")
    assert first_finding >= 0 and text.startswith(f"Finding 1: face {lead_face}, angelina_jolie", first_finding)
    assert "same scar above the left eyebrow" in text
