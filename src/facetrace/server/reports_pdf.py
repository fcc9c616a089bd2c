"""The case report as a PDF, generated on the server with fpdf2 (pure Python; the only module that imports it).

The same content as the printable HTML report: the case (purpose, legal basis, review rule, status), what the scores
mean, and for each search its probe face crops and candidates, each with its thumbnail, similarity, the evidence
sentence and false-match rates stored with the search, provenance (image uri, source page, captured and ingested
dates, legal basis, sha256) and the reviewers' decisions with who and when. The footer of every page names the
export's audit seq and time, so a printout can be matched to the audit log.

The built-in PDF fonts cover Latin-1 only: other characters are replaced by their nearest ASCII spelling or "?"
(names in other scripts print as "?"; the HTML report shows them).
"""

from __future__ import annotations

import io
import math
import unicodedata
from datetime import datetime

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from facetrace.core.evidence import describe
from facetrace.core.types import FaceRecord
from facetrace.server.case_report import CaseReport, ReportCandidate, ReportProbe, ReportSearch

FONT = "Helvetica"
LINE_MM = 4.6
THUMB_MM = 26.0  # a gallery thumbnail: large enough to compare faces by eye on paper
CROP_MM = THUMB_MM
TEXT_INDENT_MM = THUMB_MM + 4.0
# Keep a candidate's block together: start a new page when less than this is left.
MIN_BLOCK_MM = 55.0
SCORES_MEANING = (
    "Similarity is the cosine of two face embeddings (-1 to 1); it is not a probability. Each candidate's verdict "
    "translates it into a false-match rate: how often a face of a different person scores at least this high, "
    "measured on a labelled benchmark for this model. Over a gallery of N faces the chance that some stranger "
    "scores this high is larger, and is stated too. 'Strong lead' and 'moderate lead' describe that gallery-wide "
    "chance; neither is an identification. Low-quality faces (small, blurred, turned, badly lit) are flagged: rates "
    "measured on good photos may understate their risk. Only a person's confirmation, recorded below, turns a "
    "candidate into a finding."
)
_ASCII = str.maketrans(
    {"—": "-", "–": "-", "−": "-", "…": "...", "“": '"', "”": '"', "‘": "'", "’": "'", "≥": ">=", "≤": "<="}
)


def latin1(text: str) -> str:
    """Text the built-in fonts can draw: common typography to ASCII, accents kept, anything else '?'."""
    text = unicodedata.normalize("NFC", text.translate(_ASCII))
    return text.encode("latin-1", errors="replace").decode("latin-1")


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def _rate(value: float) -> str:
    if not math.isfinite(value):
        return "unknown (uncalibrated pack)"
    if value <= 0:
        return "0"
    return f"{value:.2g} (1 in {1 / value:,.0f})" if value < 0.5 else f"{value:.2g}"


class _ReportPdf(FPDF):
    def __init__(self, footer_text: str) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self._footer_text = footer_text
        self.set_auto_page_break(auto=True, margin=15)
        self.set_margins(15, 15, 15)

    def footer(self) -> None:
        self.set_y(-11)
        self.set_font(FONT, size=7)
        self.cell(0, 4, latin1(f"{self._footer_text} - page {self.page_no()}/{{nb}}"), align="C")


def render_pdf(report: CaseReport, *, compress: bool = True) -> bytes:
    """The report as PDF bytes; compress=False leaves page text readable in the file (for tests and diffing)."""
    case = report.case
    exported = f"exported {_when(report.exported_at)} - audit seq {report.audit_seq}"
    pdf = _ReportPdf(f"facetrace case {case.case_id} - {exported}")
    pdf.set_compression(compress)
    pdf.set_title(latin1(f"Case report: {case.title}"))
    pdf.set_creator("facetrace")
    pdf.set_creation_date(report.exported_at)
    pdf.add_page()
    pdf.set_font(FONT, style="B", size=15)
    _para(pdf, f"Case report: {case.title} (case {case.case_id})", height=7)
    pdf.ln(2)
    _fields(
        pdf,
        [
            ("Purpose", case.purpose),
            ("Legal basis", case.legal_basis),
            ("Opened", f"{_when(case.created_at)} by {case.created_by}"),
            ("Status", case.status),
            (
                "Review rule",
                "independent review (four eyes)" if case.requires_independent_review else "any reviewer",
            ),
            ("Exported", f"{_when(report.exported_at)} by {report.exported_by} (audit entry {report.audit_seq})"),
        ],
    )
    _heading(pdf, "What the scores mean")
    pdf.set_font(FONT, size=9)
    _para(pdf, SCORES_MEANING)
    if not report.searches:
        _heading(pdf, "No searches in this case.")
    for search in report.searches:
        _search(pdf, search)
    return bytes(pdf.output())


def _search(pdf: FPDF, search: ReportSearch) -> None:
    record = search.record
    _heading(pdf, f"Search {record.search_id}")
    _fields(
        pdf,
        [
            ("Run", f"{_when(record.at)} by {record.user}"),
            ("Purpose", record.purpose),
            ("Probe", f"{record.probe_name} (sha256 {record.probe_sha256})"),
            ("Model", record.model_id),
            ("Candidates", str(len(record.hits))),
        ],
    )
    for probe in search.probes:
        _probe(pdf, probe)


def _probe(pdf: FPDF, probe: ReportProbe) -> None:
    _room(pdf, CROP_MM + 10)
    pdf.ln(2)
    top = pdf.get_y()
    if probe.crop:
        pdf.image(io.BytesIO(probe.crop), x=pdf.l_margin, y=top, w=CROP_MM, h=CROP_MM)
    pdf.set_xy(pdf.l_margin + CROP_MM + 4, top)
    pdf.set_font(FONT, style="B", size=11)
    name = "Probe face" if probe.face_index is None else f"Probe face {probe.face_index}"
    _para(pdf, name, indent=True)
    pdf.set_font(FONT, size=9)
    if probe.quality_flags:
        _para(pdf, "Weak probe: " + ", ".join(probe.quality_flags), indent=True)
    pdf.set_y(max(pdf.get_y(), top + (CROP_MM if probe.crop else 0)) + 2)
    for candidate in probe.candidates:
        _candidate(pdf, candidate)


def _candidate(pdf: FPDF, candidate: ReportCandidate) -> None:
    _room(pdf, MIN_BLOCK_MM)
    hit, face = candidate.hit, candidate.face
    top = pdf.get_y()
    if candidate.thumbnail:
        pdf.image(io.BytesIO(candidate.thumbnail), x=pdf.l_margin, y=top, w=THUMB_MM, h=THUMB_MM)
    pdf.set_xy(pdf.l_margin + TEXT_INDENT_MM, top)
    pdf.set_font(FONT, style="B", size=10)
    who = (face.shown_as or "unlabelled") if face else "face erased since the search"
    _para(pdf, f"#{hit.rank}  face {hit.face_id}: {who}", indent=True)
    pdf.set_font(FONT, size=9)
    evidence = hit.evidence
    _para(pdf, f"Verdict: {describe(evidence)}", indent=True)
    _para(
        pdf,
        f"Similarity {evidence.similarity:.3f} (cosine; not a probability). False-match rate of this score: "
        f"{_rate(evidence.false_match_rate)}; chance some stranger in this gallery of {evidence.gallery_size:,} faces "
        f"scores this high: {_rate(evidence.gallery_false_match_probability)}.",
        indent=True,
    )
    if face is not None:
        if face.quality_flags:
            _para(pdf, "Weak candidate: " + ", ".join(face.quality_flags), indent=True)
        for line in _provenance(face):
            _para(pdf, line, indent=True)
    if candidate.reviews:
        for review in candidate.reviews:
            note = f': "{review.note}"' if review.note else ""
            _para(pdf, f"Decision: {review.decision} by {review.reviewer} at {_when(review.at)}{note}", indent=True)
    else:
        _para(pdf, "Decision: not reviewed", indent=True)
    pdf.set_y(max(pdf.get_y(), top + (THUMB_MM if candidate.thumbnail else 0)) + 3)


def _provenance(face: FaceRecord) -> list[str]:
    return [
        f"Image: {face.asset_uri}",
        f"Source page: {face.source_page or '-'}",
        f"Captured: {_when(face.captured_at)}. Ingested: {_when(face.ingested_at)}.",
        f"Legal basis: {face.legal_basis or 'not stated'}",
        f"Image sha256: {face.asset_sha256}",
    ]


def _heading(pdf: FPDF, text: str) -> None:
    _room(pdf, 20)
    pdf.ln(3)
    pdf.set_font(FONT, style="B", size=12)
    _para(pdf, text, height=6)
    pdf.set_font(FONT, size=9)


def _fields(pdf: FPDF, fields: list[tuple[str, str]]) -> None:
    for name, value in fields:
        pdf.set_font(FONT, style="B", size=9)
        pdf.cell(28, LINE_MM, latin1(name))
        pdf.set_font(FONT, size=9)
        pdf.multi_cell(0, LINE_MM, latin1(value), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _para(pdf: FPDF, text: str, *, height: float = LINE_MM, indent: bool = False) -> None:
    """A wrapped paragraph; indented ones sit right of a picture and wrap back to the same left edge."""
    x = pdf.l_margin + (TEXT_INDENT_MM if indent else 0.0)
    pdf.set_x(x)
    width = pdf.w - pdf.r_margin - x
    drawn = latin1(text)
    if pdf.get_string_width(drawn) < width - 2 * pdf.c_margin:
        # fpdf2's line breaking measures each line once per character; a line that fits needs none of it.
        pdf.cell(width, height, drawn, align="L", new_x=XPos.LEFT, new_y=YPos.NEXT)
    else:
        pdf.multi_cell(width, height, drawn, align="L", new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_x(x)


def _room(pdf: FPDF, needed_mm: float) -> None:
    if pdf.get_y() + needed_mm > pdf.h - pdf.b_margin:
        pdf.add_page()
