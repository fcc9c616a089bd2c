"""A case hit's evidence as data (revision 0005), on SQLite and on PostgreSQL: every field a search computed is
stored and read back equal, and hits stored before the revision (their sentence, in the earlier wording, and rates
only) read back as the same evidence, shown in today's words."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from catalog_samples import MODEL

from facetrace.catalog import SqlCatalog, open_catalog
from facetrace.catalog.schema import alembic_config
from facetrace.catalog.tables import metadata
from facetrace.core.evidence import describe
from facetrace.core.types import Evidence, ScoreCalibration, StoredHit, Strength
from facetrace.core.vocabulary import SameImage
from facetrace.search.calibration import ScoreCalibrator

CLEAN = ScoreCalibration("m", (0.0, 0.2, 0.4, 0.6), (0.5, 1e-2, 1e-4, 1e-6), 10_000_000, "synthetic")
BOTH = ScoreCalibration("m", (0.0, 0.3, 0.6), (0.5, 1e-2, 1e-3), 1_000_000, "degraded alike")
ONE = ScoreCalibration("m", (0.0, 0.15, 0.4, 0.6), (0.6, 0.1, 1e-5, 1e-7), 1_000_000, "degraded vs clean")
CONDITIONED = ScoreCalibrator(dataclasses.replace(CLEAN, conditioned=(("one_flagged", ONE), ("both_flagged", BOTH))))
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _evidence() -> list[Evidence]:
    """One of each kind of sentence: strong, bounded, moderate, weak, each table case for flagged faces, and none."""

    def of(cal: ScoreCalibrator, similarity: float, size: int, probe: bool = False, cand: bool = False) -> Evidence:
        return cal.evidence(similarity, size, probe_quality=0.375, weak_probe=probe, weak_candidate=cand)

    clean = ScoreCalibrator(CLEAN)
    return [
        of(clean, 0.6, 1000),  # strong lead
        of(clean, 0.9, 12_345),  # beyond the table: an upper bound
        of(clean, 0.45, 1000),  # moderate lead
        of(clean, 0.2, 1_000_000),  # weak
        of(CONDITIONED, 0.6, 1000, probe=True, cand=True),  # rate from the both_flagged table
        of(CONDITIONED, 0.1, 10, probe=True),  # rate from the one_flagged table
        of(CONDITIONED, 0.4, 10, cand=True),  # the clean table is higher than one_flagged here
        of(clean, 0.6, 1000, probe=True),  # no table for the condition: the old warning
        of(ScoreCalibrator(None), 0.9, 10),  # uncalibrated
    ]


# What the verdict said for each of _evidence()'s hits before it was worded in plain counts (before issue 12): rows
# stored before revision 0005 hold these sentences only, and their fields are read back from them.
EARLIER_SENTENCES = [
    "strong lead: a stranger scores this high 1 in 1,000,000 comparisons; in this gallery of 1,000 faces, chance "
    "that some stranger does: 0.001",
    "strong lead: a stranger scores this high below 1 in 10,000,000 comparisons; in this gallery of 12,345 faces, "
    "chance that some stranger does: below 0.0012",
    "moderate lead: a stranger scores this high 1 in 31,623 comparisons; in this gallery of 1,000 faces, chance that "
    "some stranger does: 0.031",
    "weak: strangers this similar are expected: a stranger scores this high 1 in 100 comparisons; in this gallery of "
    "1,000,000 faces, chance that some stranger does: 1",
    "weak: strangers this similar are expected: a stranger scores this high 1 in 1,000 comparisons; in this gallery "
    "of 1,000 faces, chance that some stranger does: 0.63; low-quality probe and candidate face: rate from the table "
    "of impostor pairs with both faces low-quality (higher than the clean table's)",
    "weak: strangers this similar are expected: a stranger scores this high 1 in 6 comparisons; in this gallery of 10 "
    "faces, chance that some stranger does: 0.87; low-quality probe face: rate from the table of impostor pairs with "
    "one low-quality face (higher than the clean table's)",
    "moderate lead: a stranger scores this high 1 in 10,000 comparisons; in this gallery of 10 faces, chance that "
    "some stranger does: 0.001; low-quality candidate face: rate from the clean table, which is higher here than the "
    "table of impostor pairs with one low-quality face",
    "strong lead: a stranger scores this high 1 in 1,000,000 comparisons; in this gallery of 1,000 faces, chance "
    "that some stranger does: 0.001; low-quality probe face: rates measured on good photos may understate the risk",
    "uncalibrated model pack: this score has no measured false-match rate; treat as a lead only",
]


def _plain(evidence: Evidence) -> dict[str, object]:
    """The fields with NaN as None, so that unknown rates compare equal."""
    return {
        name: None if isinstance(value, float) and math.isnan(value) else value
        for name, value in dataclasses.asdict(evidence).items()
    }


def _verdicts(raw_engine: sa.Engine) -> list[str]:
    hits = metadata.tables["search_hits"]
    with raw_engine.connect() as connection:
        return list(connection.execute(sa.select(hits.c.verdict).order_by(hits.c.id)).scalars())


def test_every_evidence_field_is_stored_and_read_back(catalog: SqlCatalog, raw_engine: sa.Engine) -> None:
    store = catalog.governance_store()
    evidence = _evidence()
    assert {e.strength for e in evidence} == set(Strength)
    case = store.add_case("Case", "find", "warrant", True, "ivan")
    hits = [StoredHit(0, rank, 100 + rank, e) for rank, e in enumerate(evidence, start=1)]
    record = store.add_search(case.case_id, "ivan", "why", "a" * 64, "probe.jpg", MODEL, None, hits)
    again = store.search(record.search_id)
    assert again is not None
    assert [(h.probe_face_index, h.rank, h.face_id) for h in again.hits] == [(0, h.rank, h.face_id) for h in hits]
    assert [_plain(h.evidence) for h in again.hits] == [_plain(e) for e in evidence]
    assert all(type(h.evidence.strength) is Strength for h in again.hits)
    # Calibrated hits are equal outright (no NaN in them), rates to the last bit.
    assert again.hits[:-1] == tuple(hits[:-1])
    assert again.hits[0].evidence.false_match_rate == evidence[0].false_match_rate > 0
    # The table keeps the sentence as shown, for anyone reading it directly.
    assert _verdicts(raw_engine) == [describe(e) for e in evidence]


def test_hits_stored_before_0005_are_read_back_from_their_sentence(catalog_uri: str, raw_engine: sa.Engine) -> None:
    """A row of revision 0004 has the rates and the sentence (in the wording of its day) only: the evidence is derived
    from them, the probe's quality is unknown, and it is shown again in today's words."""
    if raw_engine.dialect.name == "sqlite" and raw_engine.url.database:
        Path(raw_engine.url.database).parent.mkdir(parents=True, exist_ok=True)
    evidence = _evidence()
    odd = "verdict written by hand"  # not a facetrace sentence: read back as no lead
    with raw_engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0004")
        connection.execute(
            sa.text(
                "INSERT INTO cases (id, title, purpose, legal_basis, requires_independent_review, created_by, "
                "created_at, status) VALUES (1, 'Old case', 'find', 'warrant', :yes, 'ivan', :at, 'open')"
            ),
            {"yes": True, "at": NOW},
        )
        connection.execute(
            sa.text(
                "INSERT INTO searches (id, case_id, user_name, purpose, probe_sha256, probe_name, model_id, at) "
                "VALUES (5, 1, 'ivan', 'why', :sha, 'old.jpg', :model, :at)"
            ),
            {"sha": "b" * 64, "model": MODEL, "at": NOW},
        )
        rows = [
            {
                "rank": rank,
                "face_id": 100 + rank,
                "similarity": e.similarity,
                "fmr": None if math.isnan(e.false_match_rate) else e.false_match_rate,
                "gfmp": None if math.isnan(e.gallery_false_match_probability) else e.gallery_false_match_probability,
                "size": e.gallery_size,
                "verdict": sentence,
            }
            for rank, (e, sentence) in enumerate(zip(evidence, EARLIER_SENTENCES, strict=True), start=1)
        ]
        rows.append(rows[0] | {"rank": len(rows) + 1, "verdict": odd})
        connection.execute(
            sa.text(
                "INSERT INTO search_hits (search_id, probe_face_index, rank, face_id, similarity, false_match_rate, "
                "gallery_false_match_probability, gallery_size, verdict) "
                "VALUES (5, 0, :rank, :face_id, :similarity, :fmr, :gfmp, :size, :verdict)"
            ),
            rows,
        )
    with open_catalog(catalog_uri) as upgraded:
        again = upgraded.governance_store().search(5)
    assert again is not None and len(again.hits) == len(evidence) + 1
    expected = [dataclasses.replace(e, probe_quality=math.nan) for e in evidence]
    assert [_plain(h.evidence) for h in again.hits[:-1]] == [_plain(e) for e in expected]
    # Shown again in today's words, rendered from the fields read back (the same words as a hit stored today).
    assert [describe(h.evidence) for h in again.hits[:-1]] == [describe(e) for e in evidence]
    assert again.hits[-1].evidence.strength is Strength.WEAK
    assert not again.hits[-1].evidence.weak_probe and not again.hits[-1].evidence.weak_candidate


def test_the_0005_columns_go_with_a_downgrade_and_come_back(
    catalog_uri: str, catalog: SqlCatalog, raw_engine: sa.Engine
) -> None:
    store = catalog.governance_store()
    case = store.add_case("Case", "find", "warrant", True, "ivan")
    evidence = _evidence()[0]
    record = store.add_search(
        case.case_id, "ivan", "why", "a" * 64, "p.jpg", MODEL, None, [StoredHit(0, 1, 9, evidence)]
    )
    catalog.close()
    with raw_engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0004")
        columns = {column["name"] for column in sa.inspect(connection).get_columns("search_hits")}
    assert "strength" not in columns and "verdict" in columns
    with open_catalog(catalog_uri) as upgraded:
        again = upgraded.governance_store().search(record.search_id)
    assert again is not None
    # Back at the head, the row reads as one stored before 0005: the same evidence but the probe's quality.
    assert again.hits[0].evidence == dataclasses.replace(evidence, probe_quality=again.hits[0].evidence.probe_quality)
    assert math.isnan(again.hits[0].evidence.probe_quality)


def test_a_hits_same_image_mark_is_kept_and_goes_with_a_downgrade(
    catalog_uri: str, catalog: SqlCatalog, raw_engine: sa.Engine
) -> None:
    """Revision 0011: each hit keeps whether it is the probe's own photo or a copy; rows without the column (stored
    before it, or after a downgrade and upgrade) read back as none."""
    store = catalog.governance_store()
    case = store.add_case("Case", "find", "warrant", True, "ivan")
    evidence = _evidence()[0]
    marks = list(SameImage)
    hits = [StoredHit(0, rank, 10 + rank, evidence, mark) for rank, mark in enumerate(marks, start=1)]
    record = store.add_search(case.case_id, "ivan", "why", "a" * 64, "p.jpg", MODEL, None, hits)
    again = store.search(record.search_id)
    assert again is not None and [h.same_image for h in again.hits] == marks
    catalog.close()
    with raw_engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0010")
        columns = {column["name"] for column in sa.inspect(connection).get_columns("search_hits")}
    assert "same_image" not in columns and "strength" in columns
    with open_catalog(catalog_uri) as upgraded:
        back = upgraded.governance_store().search(record.search_id)
    assert back is not None and {h.same_image for h in back.hits} == {SameImage.NONE}
