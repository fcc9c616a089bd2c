"""Worker processes die with the ingest that started them, however it ends (docs/reliability.md)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc (Linux)")]
FACETRACE = [sys.executable, "-m", "facetrace"]
WORKERS = 2


def _children(pid: int) -> set[int]:
    """Every process whose parent is pid, and theirs in turn."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_workers_end_when_the_ingest_is_killed(how: signal.Signals, lfw: Path, tmp_path: Path) -> None:
    with (lfw / "manifest.csv").open(newline="") as handle:
        photos = [str(lfw / row["path"]) for _, row in zip(range(2000), csv.DictReader(handle), strict=False)]
    listing = tmp_path / "photos.txt"
    listing.write_text("\n".join(photos) + "\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith("FACETRACE_")}
    ingest = subprocess.Popen(
        [*FACETRACE, "ingest", "--data", str(tmp_path / "data"), "--workers", str(WORKERS), f"@{listing}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(workers) < WORKERS + 1:  # the workers and the resource tracker
            workers = _alive(_children(ingest.pid))
            time.sleep(0.2)
        assert len(workers) >= WORKERS, "the ingest never started its worker processes"
        ingest.send_signal(how)
        ingest.wait(30)
        deadline = time.monotonic() + 10
        while _alive(workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(workers), f"still running after the ingest ended: {sorted(_alive(workers))}"
    finally:
        if ingest.poll() is None:
            ingest.kill()
        for pid in _alive(workers | _children(ingest.pid)):  # never leave orphans behind, even when the test fails
            os.kill(pid, signal.SIGKILL)
