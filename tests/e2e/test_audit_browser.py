"""The auditor's and the admin's tools in headless Chromium: an admin ingests photos with a manifest giving each its
label and source page; an investigator searches; an auditor filters the log to that investigator (the thumbnails
the search page showed fold into one line), exports the filtered log as CSV (a real download, itself in the log), and
reads the transparency report. Same browser and skip rules as test_ui_browser.py (conftest.py and browsing.py)."""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browsing import click_and_load, screenshot, serving, sign_in, sign_out

from facetrace.engine import open_engine

pytestmark = pytest.mark.slow

PERSON = "Colin_Powell"
JOB_TIMEOUT_S = 240
DOWNLOAD_TIMEOUT_S = 30


@pytest.fixture(scope="module")
def served(fr_examples: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    engine = open_engine(tmp_path_factory.mktemp("audit-browser") / "data", workers=1)
    assert engine.ingest.run([fr_examples / "examples" / "knn_examples" / "train"]).errors == 0
    with serving(engine, [("adam", "admin"), ("ines", "investigator"), ("olga", "auditor")]) as url:
        yield url


def test_admin_ingests_a_manifest_auditor_filters_exports_and_reads_the_transparency_report(
    browser: Any, served: str, lfw: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver = browser
    photos = [lfw / "lfw-deepfunneled" / PERSON / f"{PERSON}_{n:04d}.jpg" for n in (1, 2)]
    manifest = tmp_path / "powell.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uri", "label", "source_page", "captured_at", "legal_basis"])
        for number, photo in enumerate(photos, start=1):
            writer.writerow([photo.name, "Colin Powell", f"https://example.org/powell/{number}", "2003-02-05", "PD"])

    # The admin: photos and their manifest, one job; the job row names the manifest first.
    sign_in(driver, served, "adam")
    driver.get(f"{served}/ui/ingest")
    driver.find_element(By.ID, "photos").send_keys("\n".join(str(p) for p in photos))
    driver.find_element(By.ID, "manifest").send_keys(str(manifest))
    click_and_load(driver, driver.find_element(By.ID, "start-ingest"))
    assert driver.current_url.endswith("/ui/ingest"), driver.find_element(By.TAG_NAME, "main").text
    WebDriverWait(driver, JOB_TIMEOUT_S, poll_frequency=1).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "#jobs tr.job .job-status").text.startswith("done")
    )
    row = driver.find_element(By.CSS_SELECTOR, "#jobs tr.job").text
    assert "manifest: powell.csv" in row and "2 image(s), 2 face(s)" in row, row
    screenshot(driver, tmp_path / "01-admin-ingest.png", docs_name="admin-ingest")
    sign_out(driver)

    # The investigator: one search, whose page shows (and audits) each candidate's thumbnail.
    sign_in(driver, served, "ines")
    driver.find_element(By.ID, "title").send_keys("Embassy visitor")
    driver.find_element(By.ID, "purpose").send_keys("identify the visitor")
    driver.find_element(By.ID, "legal_basis").send_keys("warrant 2026/77")
    click_and_load(driver, driver.find_element(By.ID, "open-case"))
    driver.find_element(By.ID, "probe").send_keys(str(lfw / "lfw-deepfunneled" / PERSON / f"{PERSON}_0004.jpg"))
    driver.find_element(By.ID, "search-purpose").send_keys("who is at the gate")
    click_and_load(driver, driver.find_element(By.ID, "run-search"))
    first = driver.find_element(By.CSS_SELECTOR, 'article.card[data-rank="1"]')
    assert first.find_element(By.CSS_SELECTOR, ".candidate-label").text == "Colin Powell"
    driver.refresh()  # the same thumbnails again: more views to fold
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
    sign_out(driver)

    # The auditor: the log filtered to the investigator, her thumbnail views folded into one line.
    sign_in(driver, served, "olga")
    driver.get(f"{served}/ui/audit")
    driver.find_element(By.ID, "actor").send_keys("ines")
    click_and_load(driver, driver.find_element(By.ID, "apply-filter"))
    assert "actor=ines" in driver.current_url
    actors = {
        cell.text for cell in driver.find_elements(By.CSS_SELECTOR, "#audit-entries tr.audit-entry td:nth-child(3)")
    }
    assert actors == {"ines"}
    folded = driver.find_element(By.CSS_SELECTOR, "#audit-entries tr.folded.action-view_thumbnail")
    views = int(folded.find_element(By.CSS_SELECTOR, ".fold-count").text.lstrip("×"))
    assert views >= 4, folded.text
    assert driver.find_elements(By.CSS_SELECTOR, "#audit-entries tr.action-search")
    screenshot(driver, tmp_path / "02-audit.png", docs_name="audit")

    # Narrowed to her searches, exported: a real download holding exactly the rows the filter selects.
    Select(driver.find_element(By.ID, "action")).select_by_value("search")
    click_and_load(driver, driver.find_element(By.ID, "apply-filter"))
    shown = driver.find_elements(By.CSS_SELECTOR, "#audit-entries tr.audit-entry")
    assert len(shown) == 1
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.find_element(By.ID, "export-csv").click()
    deadline = time.monotonic() + DOWNLOAD_TIMEOUT_S
    while not list(downloads.glob("*.csv")) and time.monotonic() < deadline:
        time.sleep(0.2)
    (exported,) = downloads.glob("*.csv")
    rows = list(csv.DictReader(exported.open(newline="")))
    assert [(row["actor"], row["action"]) for row in rows] == [("ines", "search")]
    assert "who is at the gate" in rows[0]["details"]

    # The export is in the log, with its filter.
    driver.get(f"{served}/ui/audit?actor=olga&action=export")
    export = driver.find_element(By.CSS_SELECTOR, "#audit-entries tr.action-export").text
    assert "format=csv" in export and "'actor': 'ines'" in export and "'actions': ['search']" in export

    # The transparency report for the last 30 days: the one search, and who was active.
    driver.get(f"{served}/ui/audit")
    click_and_load(driver, driver.find_element(By.ID, "transparency-link"))
    purposes = driver.find_elements(By.CSS_SELECTOR, "#searches tr.purpose")
    assert [p.text for p in purposes] == ["who is at the gate 1 1 0 0"]
    users = driver.find_element(By.ID, "active-users").text
    assert all(name in users for name in ("adam", "ines", "olga"))
    screenshot(driver, tmp_path / "03-transparency.png", docs_name="transparency")
    sign_out(driver)
