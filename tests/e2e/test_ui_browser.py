"""The web UI in headless Chromium, served by uvicorn on a free local port: an investigator signs in, opens a case,
searches with a probe photo and sees the right person first; a reviewer (someone else) confirms the candidate; the
report shows the confirmed candidate; an auditor finds the search in the audit log; an admin adds a user on the users
screen, who then signs in. Screenshots go to tmp_path.

Browser, skip rules and page helpers: conftest.py and browsing.py.
"""

from __future__ import annotations

import base64
import csv
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browsing import PASSWORD, click_and_load, screenshot, serving, sign_in, sign_out

from facetrace.engine import open_engine

pytestmark = pytest.mark.slow

GALLERY = [
    ("examples/knn_examples/train/obama/obama.jpg", "obama"),
    ("examples/knn_examples/train/obama/obama2.jpg", "obama"),
    ("examples/knn_examples/train/biden/biden.jpg", "biden"),
    ("examples/knn_examples/train/kit_harington/john1.jpeg", "kit_harington"),
    ("examples/knn_examples/train/rose_leslie/img1.jpg", "rose_leslie"),
]
PROBE = "examples/knn_examples/test/obama1.jpg"


@pytest.fixture(scope="module")
def base_url(fr_examples: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("ui-browser")
    manifest = root / "gallery.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uri", "label", "source_page", "captured_at"])
        for path, identity in GALLERY:
            writer.writerow([fr_examples / path, identity, f"https://example.org/{identity}", "2020-05-01"])
    engine = open_engine(root / "data", workers=1)
    assert engine.ingest.run(manifests=[manifest]).errors == 0
    users = [("ines", "investigator"), ("ravi", "reviewer"), ("aude", "auditor"), ("adam", "admin")]
    with serving(engine, users) as url:
        yield url


def _add_member(base_url: str, case_id: int, name: str) -> None:
    basic = base64.b64encode(f"adam:{PASSWORD}".encode()).decode()
    request = urllib.request.Request(
        f"{base_url}/api/v1/cases/{case_id}/members",
        data=json.dumps({"user": name}).encode(),
        headers={"Authorization": f"Basic {basic}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201


def test_investigate_review_report_audit(browser: Any, base_url: str, fr_examples: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(f"{base_url}/ui/cases")
    assert "/ui/login" in driver.current_url  # signed out: sent to sign in

    # The investigator opens a case and searches with a probe photo.
    sign_in(driver, base_url, "ines")
    driver.find_element(By.ID, "title").send_keys("Doorbell burglary")
    driver.find_element(By.ID, "purpose").send_keys("identify the person at the door")
    driver.find_element(By.ID, "legal_basis").send_keys("warrant 2026/41")
    click_and_load(driver, driver.find_element(By.ID, "open-case"))
    assert "Case 1: Doorbell burglary" in driver.find_element(By.TAG_NAME, "h1").text
    _add_member(base_url, 1, "ravi")  # access by case: the admin adds the reviewer (API only; no UI screen yet)
    driver.find_element(By.ID, "probe").send_keys(str(fr_examples / PROBE))
    driver.find_element(By.ID, "search-purpose").send_keys("who rang the doorbell")
    click_and_load(driver, driver.find_element(By.ID, "run-search"))
    assert driver.find_element(By.TAG_NAME, "h1").text.startswith("Search ")
    search_url = driver.current_url
    first = driver.find_element(By.CSS_SELECTOR, 'article.card[data-rank="1"]')
    assert first.find_element(By.CSS_SELECTOR, ".candidate-label").text == "obama"
    assert "in a gallery of" in first.find_element(By.CSS_SELECTOR, ".verdict").text
    assert "https://example.org/obama" in first.text
    assert driver.execute_script("return arguments[0].naturalWidth", first.find_element(By.TAG_NAME, "img")) > 0
    assert driver.find_elements(By.ID, "no-review"), "the searcher must not be offered review in a four-eyes case"
    screenshot(driver, tmp_path / "01-investigator-search.png")
    sign_out(driver)

    # A reviewer compares side by side, then confirms the top candidate.
    sign_in(driver, base_url, "ravi")
    driver.get(search_url)
    first = driver.find_element(By.CSS_SELECTOR, 'article.card[data-rank="1"]')
    face_id = first.get_attribute("id").removeprefix("face-")
    click_and_load(driver, first.find_element(By.LINK_TEXT, "Compare side by side"))
    images = driver.find_elements(By.CSS_SELECTOR, ".side-by-side img")
    assert len(images) == 2 and all(driver.execute_script("return arguments[0].naturalWidth", i) > 0 for i in images)
    screenshot(driver, tmp_path / "02-reviewer-compare.png")
    driver.get(search_url)
    first = driver.find_element(By.CSS_SELECTOR, 'article.card[data-rank="1"]')
    first.find_element(By.NAME, "note").send_keys("ears and hairline match")
    click_and_load(driver, first.find_element(By.CSS_SELECTOR, "button.confirm"))
    decided = driver.find_element(By.ID, f"face-{face_id}").find_element(By.CSS_SELECTOR, ".decisions").text
    assert "confirmed by ravi" in decided

    # The report shows the confirmed candidate; it prints to PDF.
    driver.get(f"{base_url}/ui/cases/1/report")
    row = driver.find_element(By.ID, f"report-face-{face_id}")
    assert "obama" in row.text and "confirmed by ravi" in row.text and "https://example.org/obama" in row.text
    assert "What the scores mean" in driver.page_source
    screenshot(driver, tmp_path / "03-report.png")
    pdf = base64.b64decode(driver.print_page())
    assert pdf[:5] == b"%PDF-" and len(pdf) > 10_000
    (tmp_path / "03-report.pdf").write_bytes(pdf)
    sign_out(driver)

    # The auditor sees the search, the review and the export in a verified chain; faces are not theirs to view.
    sign_in(driver, base_url, "aude")
    driver.get(f"{base_url}/ui/audit")
    assert "Chain verified" in driver.find_element(By.ID, "chain-status").text
    table = driver.find_element(By.ID, "audit-entries").text
    assert "ines search search:1" in table and "ravi review search:1" in table and "ravi export case:1" in table
    screenshot(driver, tmp_path / "04-auditor-audit.png")
    driver.get(f"{base_url}/ui/cases/1/report")
    assert "Not allowed" in driver.find_element(By.TAG_NAME, "h1").text
    sign_out(driver)


def test_an_admin_adds_a_user_who_then_signs_in(browser: Any, base_url: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver = browser
    sign_in(driver, base_url, "adam")
    click_and_load(driver, driver.find_element(By.LINK_TEXT, "Users"))
    driver.find_element(By.CSS_SELECTOR, "details summary").click()
    driver.find_element(By.ID, "new-name").send_keys("nora")
    Select(driver.find_element(By.ID, "new-role")).select_by_value("reviewer")
    driver.find_element(By.ID, "new-password").send_keys(PASSWORD)
    click_and_load(driver, driver.find_element(By.ID, "add-user"))
    key = driver.find_element(By.ID, "issued-key-value").text
    assert key.startswith("ft_") and len(key) > 40
    assert "reviewer" in driver.find_element(By.ID, "user-nora").text
    screenshot(driver, tmp_path / "05-admin-users.png")
    driver.get(f"{base_url}/ui/admin/users")
    assert key not in driver.page_source  # shown once
    sign_out(driver)
    sign_in(driver, base_url, "nora")
    assert "/ui/cases" in driver.current_url
    sign_out(driver)
