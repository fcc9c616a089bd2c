"""A disk that fills up during an ingest, for real: a tmpfs of a few MB holds the data directory (docs/reliability.md).

Before: a 131-line traceback burying "database or disk is full", the run left `running`, `check` and `stats`
crashing while the disk was full, and temporary thumbnail files that survived the resume. Now: one line naming the
disk and the file, the run recorded interrupted, `check` and `stats` working on the full disk, and after the resume
on a bigger disk every photo stored once, no temporary file anywhere and `check` clean.

Mounting needs root (CI runs as root); elsewhere the test is skipped saying so.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from facetrace.catalog.database import storage_full
from facetrace.core.errors import StorageFullError, is_out_of_space

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mounts a tmpfs")]
FACETRACE = [sys.executable, "-m", "facetrace"]
PHOTOS = 400  # about 5 MB of thumbnails, catalog and index: well over the small disk
SMALL_DISK = "3m"
BIG_DISK = "64m"


def _mount(point: Path, size: str, *, remount: bool = False) -> subprocess.CompletedProcess[str]:
    options = f"remount,size={size}" if remount else f"size={size}"
    command = ["mount", "-o", options, str(point)] if remount else ["mount", "-t", "tmpfs", "-o", options, "tmpfs"]
    return subprocess.run(command if remount else [*command, str(point)], capture_output=True, text=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    point = tmp_path / "disk"
    point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    mounted = _mount(point, SMALL_DISK)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def _facetrace(*args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("FACETRACE_")}
    return subprocess.run([*FACETRACE, *args], env=env, capture_output=True, text=True, timeout=600)


def _temporary_files(data: Path) -> list[Path]:
    return sorted(p for p in data.rglob("*") if p.name.endswith(".tmp") or p.name == ".space-reserve")


def _runs(data: Path) -> list[tuple[int, str]]:
    """The runs as the catalog file holds them (read-only: not what a process reports, what was written)."""
    with sqlite3.connect(f"file:{data / 'catalog.db'}?mode=ro", uri=True) as connection:
        return [(int(i), str(s)) for i, s in connection.execute("SELECT id, status FROM ingest_runs ORDER BY id")]


def test_a_full_disk_stops_the_ingest_in_one_line_and_the_resume_on_a_bigger_disk_finishes_it(
    small_disk: Path, lfw: Path, tmp_path: Path
) -> None:
    with (lfw / "manifest.csv").open(newline="") as handle:
        photos = [str(lfw / row["path"]) for _, row in zip(range(PHOTOS), csv.DictReader(handle), strict=False)]
    listing = tmp_path / "photos.txt"
    listing.write_text("\n".join(photos) + "\n")
    data = small_disk / "data"

    full = _facetrace("ingest", "--data", str(data), "--workers", "1", f"@{listing}")
    assert full.returncode == 2, full.stderr
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1, full.stderr
    assert re.fullmatch(
        rf"error: the disk holding {re.escape(str(data))}(/thumbnails)? is full "
        r"\((catalog\.db|face thumbnails|faces\.faiss)\): "
        "free space and run the same command again; images already stored are skipped",
        lines[0],
    ), lines[0]
    assert _runs(data) == [(1, "interrupted")]
    assert _temporary_files(data) == []

    # Read-only commands work on the full disk (what the failed run freed on its way out is taken again).
    _fill(small_disk / "ballast")
    assert os.statvfs(small_disk).f_bavail == 0
    stats = _facetrace("stats", "--data", str(data), "--json")
    assert stats.returncode == 0, stats.stderr
    counts = json.loads(stats.stdout)["catalog"]
    assert counts["runs_by_status"] == {"interrupted": 1}
    stored_before = counts["assets"]
    assert 0 < stored_before < PHOTOS
    check = _facetrace("check", "--data", str(data))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "0 missing from index, 0 orphaned" in check.stdout

    (small_disk / "ballast").unlink()
    grown = _mount(small_disk, BIG_DISK, remount=True)
    assert grown.returncode == 0, grown.stderr
    # What a process killed mid-write leaves: temporary siblings of a thumbnail and of the index (written once there
    # is room again: on the full disk the test itself could not write them).
    folder = next(p for p in (data / "thumbnails").iterdir() if p.is_dir())
    stale = [folder / f".{'0' * 64}_0.jpg.999999999.tmp", data / ".faces.faiss.k1ll3d00.tmp"]
    for path in stale:
        path.write_bytes(b"partial")
    resumed = _facetrace("ingest", "--data", str(data), "--workers", "1", f"@{listing}")
    assert resumed.returncode == 0, resumed.stderr
    assert f"{PHOTOS} images seen" in resumed.stdout and "0 errors" in resumed.stdout
    assert f"{stored_before} already known" in resumed.stdout
    assert _runs(data) == [(1, "interrupted"), (2, "finished")]
    assert _temporary_files(data) == []
    after = _facetrace("check", "--data", str(data), "--json")
    assert after.returncode == 0, after.stdout + after.stderr
    stats = json.loads(_facetrace("stats", "--data", str(data), "--json").stdout)
    assert stats["catalog"]["assets"] == len(set(photos)) - _duplicates(photos)


def _fill(path: Path) -> None:
    """Take every free byte of path's disk."""
    with path.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(bytes(64 * 1024))
        except OSError:
            pass
        try:
            while True:
                handle.write(b"\0")
        except OSError:
            pass


def _duplicates(photos: list[str]) -> int:
    """Photos whose content another photo of the list already has (skipped as known, not stored twice)."""
    seen: set[str] = set()
    repeated = 0
    for photo in photos:
        digest = hashlib.sha256(Path(photo).read_bytes()).hexdigest()
        repeated += digest in seen
        seen.add(digest)
    return repeated


def test_out_of_space_is_recognised_however_the_library_says_it() -> None:
    """The shapes a full disk takes on the way up (the tmpfs test above meets SQLite's and the OS's for real)."""
    faiss_says = RuntimeError("write error in /d/.faces.faiss.x.tmp: 4014 != 41472 (No space left on device)")
    assert is_out_of_space(OSError(errno.ENOSPC, "No space left on device"))
    assert is_out_of_space(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert is_out_of_space(faiss_says)
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("saving failed") from inner
    except RuntimeError as outer:
        assert is_out_of_space(outer)
    assert not is_out_of_space(OSError(errno.EACCES, "Permission denied"))
    assert not is_out_of_space(RuntimeError("database is locked"))


def test_postgresql_disk_full_names_the_server(tmp_path: Path) -> None:
    class DiskFull(Exception):  # what psycopg raises: SQLSTATE 53100, "could not extend file"
        sqlstate = "53100"

    engine = sa.create_engine("postgresql+psycopg://facetrace@db.example/gallery")
    full = storage_full(engine, sa.exc.OperationalError("INSERT", {}, DiskFull("could not extend file")))
    assert isinstance(full, StorageFullError)
    assert str(full) == (
        "the disk holding the catalog's database server (postgresql+psycopg://facetrace@db.example/gallery) is full "
        "(the catalog): free space and run the same command again"
    )
    sqlite = sa.create_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    locked = sa.exc.OperationalError("UPDATE", {}, sqlite3.OperationalError("database is locked"))
    assert storage_full(sqlite, locked) is None
