"""The review queue and the report in headless Chromium: an investigator's search waits in the reviewer's queue; the
reviewer confirms the strongest candidate with a note and rejects the rest; the report leads with that finding; the
server-made PDF's first finding is the same one; printing the report leaves out the navigation and the Sign-out
button. Screenshots "review-queue" and "report" (docs/ui, with FACETRACE_UI_SHOTS).

Browser, skip rules and page helpers: conftest.py and browsing.py.
"""

from __future__ import annotations

import base64
import csv
import io
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from browsing import click_and_load, screenshot, serving, sign_in

from facetrace.engine import Engine, open_engine
from facetrace.server.case_report import SECTIONS
from facetrace.server.ui.probes import ProbeStore

pytestmark = pytest.mark.slow

GALLERY = [
    ("examples/knn_examples/train/obama/obama.jpg", "obama"),
    ("examples/knn_examples/train/obama/obama2.jpg", "obama"),
    ("examples/knn_examples/train/biden/biden.jpg", "biden"),
    ("examples/knn_examples/train/biden/biden2.jpg", "biden"),
    ("examples/knn_examples/train/kit_harington/john1.jpeg", "kit_harington"),
    ("examples/knn_examples/train/rose_leslie/img1.jpg", "rose_leslie"),
    ("examples/knn_examples/train/alex_lacamoire/img1.jpg", "alex_lacamoire"),
]
PROBE = "examples/knn_examples/test/obama1.jpg"


@dataclass(frozen=True)
class Served:
    url: str
    engine: Engine
    case_id: int
    search_id: int


@pytest.fixture(scope="module")
def served(fr_examples: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("review-browser")
    manifest = root / "gallery.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uri", "label", "source_page", "captured_at"])
        for path, identity in GALLERY:
            writer.writerow([fr_examples / path, identity, f"https://example.org/{identity}", "2020-05-01"])
    engine = open_engine(root / "data", workers=1)
    assert engine.ingest.run(manifests=[manifest]).errors == 0
    with serving(engine, [("ines", "investigator"), ("ravi", "reviewer"), ("adam", "admin")]) as url:
        # The investigator's search, through the engine as the API and the UI run it.
        ines = engine.users.user("ines")
        case = engine.cases.open_case(ines, "Doorbell burglary", "identify the person at the door", "warrant 2026/41")
        engine.cases.add_member(engine.users.user("adam"), case.case_id, "ravi")
        probe = fr_examples / PROBE
        data = probe.read_bytes()
        record, results = engine.search.in_case(ines, case.case_id, "who rang the doorbell", data, probe.name, top_k=6)
        ProbeStore(engine.settings.data, engine.settings.max_image_pixels).save(
            record.search_id, data, probe.name, results
        )
        yield Served(url, engine, case.case_id, record.search_id)


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader

    return " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages).split())


def _positions(text: str, phrases: list[str]) -> list[int]:
    return [text.find(phrase) for phrase in phrases]


def test_review_from_the_queue_then_the_report_leads_with_the_finding(
    browser: Any, served: Served, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    sign_in(driver, served.url, "ravi")
    nav = driver.find_element(By.ID, "nav-review")
    assert nav.find_element(By.CSS_SELECTOR, ".count").text == "6"  # six candidates await him
    click_and_load(driver, nav)
    assert driver.find_element(By.TAG_NAME, "h1").text == "Review queue"
    search = driver.find_element(By.ID, f"search-{served.search_id}")
    cards = search.find_elements(By.CSS_SELECTOR, "article.queue-card")
    first = cards[0]
    assert first.is_displayed() and first.find_element(By.CSS_SELECTOR, ".candidate-label").text == "obama"
    pictures = first.find_elements(By.CSS_SELECTOR, ".pair img")
    assert len(pictures) == 2 and all(
        driver.execute_script("return arguments[0].naturalWidth", p) > 0 for p in pictures
    )
    weak = search.find_elements(By.CSS_SELECTOR, "details.weak-candidates")
    assert weak and not weak[0].get_attribute("open")  # weak hits start collapsed
    assert not weak[0].find_element(By.CSS_SELECTOR, "article.queue-card").is_displayed()
    screenshot(driver, tmp_path / "review-queue.png", docs_name="review-queue")

    # Confirm the strongest with a note; it leaves the queue.
    face_id = first.get_attribute("data-face")
    first.find_element(By.NAME, "note").send_keys("ears and hairline match")
    click_and_load(driver, first.find_element(By.CSS_SELECTOR, "button.confirm"))
    search = driver.find_element(By.ID, f"search-{served.search_id}")
    left = [card.get_attribute("data-face") for card in search.find_elements(By.CSS_SELECTOR, "article.queue-card")]
    assert face_id not in left and len(left) == 5
    assert driver.find_element(By.CSS_SELECTOR, "#nav-review .count").text == "5"

    # Reject the rest, with a note: the queue is empty.
    search.find_element(By.CSS_SELECTOR, ".reject-rest input[name=note]").send_keys("other people")
    click_and_load(driver, search.find_element(By.CSS_SELECTOR, ".reject-rest button"))
    assert "Nothing awaits your review" in driver.find_element(By.ID, "queue-summary").text
    assert not driver.find_elements(By.CSS_SELECTOR, "#nav-review .count")
    decisions = {(r.face_id, r.decision, r.note) for r in served.engine.cases.reviews(served.search_id)}
    assert (int(face_id), "confirmed", "ears and hairline match") in decisions
    assert sorted(f for f, d, n in decisions if d == "rejected" and n == "other people") == sorted(map(int, left))

    # The report leads with the confirmed finding.
    driver.get(f"{served.url}/ui/cases/{served.case_id}/report")
    headings = [h.text for h in driver.find_elements(By.CSS_SELECTOR, "section.report-section > h2")]
    assert headings == list(SECTIONS)
    finding = driver.find_element(By.CSS_SELECTOR, "#confirmed article.finding")
    assert finding.get_attribute("id") == f"report-face-{face_id}"
    assert "obama" in finding.text and "confirmed by ravi" in finding.text
    assert "ears and hairline match" in finding.text and "https://example.org/obama" in finding.text
    assert "5 candidates rejected" in driver.find_element(By.ID, "rejected").text
    screenshot(driver, tmp_path / "report.png", docs_name="report")

    # Printed from the browser: the findings, without the navigation or the Sign-out button.
    printed = _pdf_text(base64.b64decode(driver.print_page()))
    assert "Sign out" not in printed and "Review queue" not in printed and "Download as PDF" not in printed
    assert f"Finding 1: face {face_id}, obama" in printed

    # The server-made PDF: the same sections in the same order, and its first finding is the confirmed one.
    cookies = "; ".join(f"{c['name']}={c['value']}" for c in driver.get_cookies())
    request = urllib.request.Request(f"{served.url}/ui/cases/{served.case_id}/report.pdf", headers={"Cookie": cookies})
    with urllib.request.urlopen(request, timeout=60) as response:
        pdf = response.read()
    (tmp_path / "report.pdf").write_bytes(pdf)
    text = _pdf_text(pdf)
    at = _positions(text, [*SECTIONS])
    assert -1 not in at and at == sorted(at), at
    first_finding = text.find("Finding 1: ")
    assert text.startswith(f"Finding 1: face {face_id}, obama", first_finding)
    assert "Confirmed by ravi" in text and "ears and hairline match" in text
