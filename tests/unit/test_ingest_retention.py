"""Retention at ingest: a manifest's retain_days column, checked, and the instant it becomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from facetrace.core.errors import ManifestError
from facetrace.ingest.runner import retain_until
from facetrace.ingest.sources import iter_manifest


def test_retain_days_is_read_and_not_kept_as_extra(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("uri,retain_days,camera\na.jpg,30,X\nb.jpg,,Y\n")
    first, second = iter_manifest(manifest)
    assert (first.retain_days, first.extra) == (30, {"camera": "X"})
    assert second.retain_days is None


@pytest.mark.parametrize(("value", "problem"), [("soon", "whole number"), ("-1", "negative"), ("1.5", "whole")])
def test_bad_retain_days_name_the_line(tmp_path: Path, value: str, problem: str) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(f'{{"uri": "a.jpg", "retain_days": "{value}"}}\n')
    with pytest.raises(ManifestError, match=rf"m\.jsonl:1: .*{problem}"):
        list(iter_manifest(manifest))


def test_retain_until_counts_days_from_ingest() -> None:
    now = datetime(2026, 1, 31, 8, 0, tzinfo=UTC)
    assert retain_until(None, now) is None
    assert retain_until(0, now) == now
    assert retain_until(30, now) == now + timedelta(days=30)
