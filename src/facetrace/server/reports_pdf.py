"""The case report as a PDF, generated on the server with fpdf2 (pure Python; the only module that imports it).

The same sections as the HTML report, in the same order (server/case_report.py SECTIONS): the case (purpose, legal
basis, review rule, status), then the confirmed identifications, each with the probe face and the candidate's face
side by side, its evidence in words with the rates stored with the search, every reviewer's decision (who, when, the
note) and the face's provenance (image uri, source page, captured and ingested dates, legal basis, sha256); then the
rejected candidates counted, the unreviewed candidates (listed when asked for, else counted), the searches run, and
what the scores mean. The footer of every page names the export's audit seq and time, so a printout can be matched
to the audit log.

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
from facetrace.server.case_report import (
    CONFIRMED,
    REJECTED,
    SCORES,
    SCORES_MEANING,
    SEARCHES,
    UNREVIEWED,
    CaseReport,
    ReportCandidate,
)

FONT = "Helvetica"
LINE_MM = 4.6
THUMB_MM = 26.0  # a gallery thumbnail: large enough to compare faces by eye on paper
TEXT_INDENT_MM = THUMB_MM + 4.0
# Keep a candidate's block together: start a new page when less than this is left.
MIN_BLOCK_MM = 55.0
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

    _heading(pdf, CONFIRMED)
    if not report.confirmed:
        _para(pdf, "No candidate has been confirmed.")
    for number, candidate in enumerate(report.confirmed, 1):
        _finding(pdf, number, candidate)

    _heading(pdf, REJECTED)
    _para(pdf, report.rejected_summary())

    _heading(pdf, UNREVIEWED)
    if not report.include_unreviewed or not report.unreviewed:
        _para(pdf, report.unreviewed_summary())
    else:
        for number, candidate in enumerate(report.unreviewed, 1):
            _candidate(pdf, f"Unreviewed {number}", candidate)

    _heading(pdf, SEARCHES)
    if not report.searches:
        _para(pdf, "No searches in this case.")
    for summary in report.searches:
        record = summary.record
        _room(pdf, 5 * LINE_MM)
        pdf.set_font(FONT, style="B", size=9)
        _para(pdf, f"Search {record.search_id}")
        pdf.set_font(FONT, size=9)
        _fields(
            pdf,
            [
                ("Run", f"{_when(record.at)} by {record.user}"),
                ("Purpose", record.purpose),
                ("Probe", f"{record.probe_name} (sha256 {record.probe_sha256})"),
                ("Model", record.model_id),
                (
                    "Candidates",
                    f"{summary.confirmed} confirmed, {summary.rejected} rejected, {summary.unreviewed} unreviewed",
                ),
            ],
        )
        pdf.ln(1)

    _heading(pdf, SCORES)
    _para(pdf, SCORES_MEANING)
    return bytes(pdf.output())


def _finding(pdf: FPDF, number: int, candidate: ReportCandidate) -> None:
    """A confirmed identification: the probe face and the candidate's face side by side, then what they mean."""
    _room(pdf, MIN_BLOCK_MM + 10)
    pdf.ln(1)
    top = pdf.get_y()
    x = pdf.l_margin
    for picture, caption in ((candidate.probe_crop, "probe face"), (candidate.thumbnail, "candidate face")):
        if picture:
            pdf.image(io.BytesIO(picture), x=x, y=top, w=THUMB_MM, h=THUMB_MM)
            pdf.set_xy(x, top + THUMB_MM)
            pdf.set_font(FONT, size=7)
            pdf.cell(THUMB_MM, 3.5, caption, align="C")
        x += THUMB_MM + 3
    pdf.set_xy(x, top)
    _lines(pdf, x, _finding_head(number, candidate), _describe(candidate))
    pdf.set_y(max(pdf.get_y(), top + THUMB_MM + 4) + 3)


def _candidate(pdf: FPDF, title: str, candidate: ReportCandidate) -> None:
    _room(pdf, MIN_BLOCK_MM)
    top = pdf.get_y()
    if candidate.thumbnail:
        pdf.image(io.BytesIO(candidate.thumbnail), x=pdf.l_margin, y=top, w=THUMB_MM, h=THUMB_MM)
    x = pdf.l_margin + TEXT_INDENT_MM
    pdf.set_xy(x, top)
    _lines(pdf, x, _finding_head(title, candidate), _describe(candidate))
    pdf.set_y(max(pdf.get_y(), top + (THUMB_MM if candidate.thumbnail else 0)) + 3)


def _finding_head(number: int | str, candidate: ReportCandidate) -> str:
    face = candidate.face
    who = (face.shown_as or "unlabelled") if face else "face erased since the search"
    name = f"Finding {number}" if isinstance(number, int) else number
    return f"{name}: face {candidate.hit.face_id}, {who}"


def _describe(candidate: ReportCandidate) -> list[str]:
    hit, face, record = candidate.hit, candidate.face, candidate.search
    evidence = hit.evidence
    probe = "" if hit.probe_face_index is None else f", probe face {hit.probe_face_index}"
    lines = [
        f"Search {record.search_id} ({record.probe_name}{probe}), run {_when(record.at)} by {record.user}; "
        f"rank {hit.rank}.",
        f"Evidence: {describe(evidence)}.",
        f"Similarity {evidence.similarity:.3f} (cosine; not a probability). False-match rate of this score: "
        f"{_rate(evidence.false_match_rate)}; chance some stranger in this gallery of {evidence.gallery_size:,} faces "
        f"scores this high: {_rate(evidence.gallery_false_match_probability)}.",
    ]
    if candidate.probe is not None and candidate.probe.weak:
        lines.append("Weak probe: " + ", ".join(candidate.probe.quality_flags))
    if face is not None and face.quality_flags:
        lines.append("Weak candidate: " + ", ".join(face.quality_flags))
    for review in candidate.reviews:
        note = f': "{review.note}"' if review.note else " (no note)"
        lines.append(f"{review.decision.capitalize()} by {review.reviewer} at {_when(review.at)}{note}")
    if not candidate.reviews:
        lines.append("Decision: not reviewed")
    if face is not None:
        lines.extend(_provenance(face))
    return lines


def _lines(pdf: FPDF, x: float, head: str, lines: list[str]) -> None:
    pdf.set_font(FONT, style="B", size=10)
    _para(pdf, head, x=x)
    pdf.set_font(FONT, size=9)
    for line in lines:
        _para(pdf, line, x=x)


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


def _para(pdf: FPDF, text: str, *, height: float = LINE_MM, x: float | None = None) -> None:
    """A wrapped paragraph from x (the left margin by default); text beside a picture wraps back to the same x."""
    x = pdf.l_margin if x is None else x
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
