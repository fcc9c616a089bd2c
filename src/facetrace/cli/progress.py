"""Ingest progress on a terminal: images done of the total (when the sources can be counted up front), the rate and
the time left, on one line that the summary never shares (rich's progress bar, on stderr)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from facetrace.ingest.runner import IngestProgress
from facetrace.ingest.sources import iter_manifest, iter_paths

# Counting walks the folders and reads the manifests once more before the run: worth it for a total and an ETA up
# to this many images; past it the bar shows what is done and the rate.
MAX_COUNTED = 1_000_000


def count_inputs(paths: Sequence[Path], manifests: Sequence[Path], warcs: Sequence[Path]) -> int | None:
    """How many images the sources will yield, or None when that is not known up front (a WARC archive, more than
    MAX_COUNTED, or a source that cannot be read now: the run reports it)."""
    if warcs:
        return None
    try:
        items = (
            item for source in (iter_paths(list(paths)), *(iter_manifest(m) for m in manifests)) for item in source
        )
        counted = sum(1 for _ in islice(items, MAX_COUNTED + 1))
    except Exception:  # the run itself says what is wrong with a source
        return None
    return counted if counted <= MAX_COUNTED else None


class RateColumn(ProgressColumn):
    """Images per second, once there is a rate to show."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.1f} img/s" if task.speed else "")


class IngestBar:
    """The progress callback of an ingest: images seen of the total, with added, known, faces and errors."""

    def __init__(self, progress: Progress, total: int | None) -> None:
        self._progress = progress
        self._task = progress.add_task("ingest", total=total, counts="")

    def __call__(self, state: IngestProgress) -> None:
        counts = (
            f"{state.images_added} added, {state.images_skipped} known, {state.faces_added} faces, "
            f"{state.errors} errors"
        )
        self._progress.update(self._task, completed=state.images_seen, counts=counts)


@contextmanager
def ingest_bar(
    total: int | None, file: IO[str] | None = None, force_terminal: bool | None = None
) -> Iterator[IngestBar]:
    """A progress bar on stderr (or file) for the length of the block; it is finished on a line of its own."""
    console = Console(file=file, stderr=file is None, force_terminal=force_terminal)
    columns = [
        TextColumn("[bold]ingest"),
        BarColumn(),
        MofNCompleteColumn() if total is not None else TextColumn("{task.completed} images"),
        TaskProgressColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[counts]}"),
    ]
    with Progress(*columns, console=console, transient=False) as progress:
        yield IngestBar(progress, total)
