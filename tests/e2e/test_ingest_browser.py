"""Ingest jobs and closing cases in headless Chromium: an admin uploads photos on the Ingest page and watches the job
finish (the page reloads itself, no scripts); an investigator then finds the uploaded person, downloads nothing but
sees the PDF link, and closes the case, after which it offers no search. Same browser and skip rules as
test_ui_browser.py (conftest.py and browsing.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browsing import click_and_load, screenshot, serving, sign_in, sign_out

from facetrace.engine import open_engine

pytestmark = pytest.mark.slow

PERSON = "Colin_Powell"
JOB_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def served(fr_examples: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    engine = open_engine(tmp_path_factory.mktemp("ingest-browser") / "data", workers=1)
    # A small gallery of other people, so that the uploaded person has strangers to be told apart from.
    assert engine.ingest.run([fr_examples / "examples" / "knn_examples" / "train"]).errors == 0
    with serving(engine, [("adam", "admin"), ("ines", "investigator")]) as url:
        yield url


def test_upload_watch_the_job_find_the_person_close_the_case(
    browser: Any,
    served: str,
    lfw: Path,
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser
    photos = [lfw / "lfw-deepfunneled" / PERSON / f"{PERSON}_{n:04d}.jpg" for n in (1, 2, 3)]

    sign_in(driver, served, "adam")
    driver.get(f"{served}/ui/ingest")
    driver.find_element(By.ID, "photos").send_keys("\n".join(str(p) for p in photos))
    driver.find_element(By.ID, "label").send_keys(PERSON)
    driver.find_element(By.ID, "legal_basis").send_keys("press licence 5")
    click_and_load(driver, driver.find_element(By.ID, "start-ingest"))
    assert driver.current_url.endswith("/ui/ingest")
    job = driver.find_element(By.CSS_SELECTOR, "#jobs tr.job")
    assert PERSON in job.text and "adam" in job.text
    # No script runs: the page reloads itself until the job is done.
    WebDriverWait(driver, JOB_TIMEOUT_S, poll_frequency=1).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "#jobs tr.job .job-status").text.startswith("done")
    )
    row = driver.find_element(By.CSS_SELECTOR, "#jobs tr.job").text
    assert "3 image(s), 3 face(s)" in row and "100%" in row
    assert not driver.find_elements(By.CSS_SELECTOR, 'meta[http-equiv="refresh"]')
    screenshot(driver, tmp_path / "01-admin-ingest.png")
    sign_out(driver)

    sign_in(driver, served, "ines")
    driver.find_element(By.ID, "title").send_keys("Embassy visitor")
    driver.find_element(By.ID, "purpose").send_keys("identify the visitor")
    driver.find_element(By.ID, "legal_basis").send_keys("warrant 2026/77")
    click_and_load(driver, driver.find_element(By.ID, "open-case"))
    case_url = driver.current_url
    probe = lfw / "lfw-deepfunneled" / PERSON / f"{PERSON}_0004.jpg"
    driver.find_element(By.ID, "probe").send_keys(str(probe))
    driver.find_element(By.ID, "search-purpose").send_keys("who is at the gate")
    click_and_load(driver, driver.find_element(By.ID, "run-search"))
    first = driver.find_element(By.CSS_SELECTOR, 'article.card[data-rank="1"]')
    assert first.find_element(By.CSS_SELECTOR, ".candidate-label").text == PERSON

    driver.get(case_url)
    assert driver.find_element(By.ID, "report-pdf-link").get_attribute("href").endswith("/report.pdf")
    driver.find_element(By.ID, "close-reason").send_keys("visitor identified")
    click_and_load(driver, driver.find_element(By.ID, "close-case"))
    assert "closed" in driver.find_element(By.CSS_SELECTOR, "dl.meta").text
    assert not driver.find_elements(By.ID, "run-search") and not driver.find_elements(By.ID, "close-case")
    screenshot(driver, tmp_path / "02-investigator-closed-case.png")
    sign_out(driver)
