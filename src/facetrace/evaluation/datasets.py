"""Readers for evaluation datasets: verification pairs and labelled image manifests.

Both are CSV files with a header whose image paths are relative to a root folder (the dataset's folder), e.g.
../shared/datasets/lfw/pairs_resolved.csv (path_a,path_b,same,fold) and manifest.csv (path,identity).
A malformed line raises DatasetFormatError naming the file and the line, before any image is read.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from facetrace.core.errors import ManifestError

PAIRS_COLUMNS = ("path_a", "path_b", "same", "fold")
MANIFEST_COLUMNS = ("path", "identity")

_TRUE_WORDS = frozenset({"1", "true", "yes", "same"})
_FALSE_WORDS = frozenset({"0", "false", "no", "different"})


class DatasetFormatError(ManifestError):
    """An evaluation CSV is malformed; the message names the file and line."""

    def __init__(self, path: Path | str, line: int | None, reason: str) -> None:
        where = f"{path}, line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}")
        self.path = str(path)
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class VerificationPair:
    """Two images that show the same person (same=True) or two different people; fold numbers the LFW split."""

    path_a: str
    path_b: str
    same: bool
    fold: int


@dataclass(frozen=True)
class LabeledImage:
    path: str
    identity: str


def _rows(csv_path: Path, columns: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) for each data row, after checking the header names every required column."""
    try:
        handle = csv_path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise DatasetFormatError(csv_path, None, f"cannot open: {exc.strerror or exc}") from exc
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise DatasetFormatError(csv_path, 1, f"empty file; expected a header {','.join(columns)}") from None
        except csv.Error as exc:
            raise DatasetFormatError(csv_path, 1, f"not valid CSV: {exc}") from exc
        names = [name.strip() for name in header]
        missing = [name for name in columns if name not in names]
        if missing:
            raise DatasetFormatError(
                csv_path, 1, f"header {','.join(names)!r} lacks {','.join(missing)}; expected {','.join(columns)}"
            )
        positions = {name: names.index(name) for name in columns}
        try:
            for record in reader:
                line = reader.line_num
                if not record or all(not cell.strip() for cell in record):
                    continue  # blank lines are harmless (e.g. a trailing newline)
                if len(record) != len(names):
                    raise DatasetFormatError(
                        csv_path, line, f"expected {len(names)} fields ({','.join(names)}), found {len(record)}"
                    )
                yield line, {name: record[position].strip() for name, position in positions.items()}
        except csv.Error as exc:
            raise DatasetFormatError(csv_path, reader.line_num, f"not valid CSV: {exc}") from exc


def _relative_path(value: str, csv_path: Path, line: int, column: str) -> str:
    if not value:
        raise DatasetFormatError(csv_path, line, f"{column} is empty")
    posix = PurePosixPath(value.replace("\\", "/"))
    # Paths must stay inside the dataset root: an absolute path or .. would make a result depend on where it ran.
    if posix.is_absolute() or Path(value).is_absolute() or ".." in posix.parts:
        raise DatasetFormatError(csv_path, line, f"{column} {value!r} must be relative to the dataset root")
    return posix.as_posix()


def read_pairs(csv_path: Path | str) -> tuple[VerificationPair, ...]:
    """Verification pairs from a CSV with columns path_a,path_b,same,fold."""
    path = Path(csv_path)
    pairs: list[VerificationPair] = []
    for line, row in _rows(path, PAIRS_COLUMNS):
        same_word = row["same"].lower()
        if same_word in _TRUE_WORDS:
            same = True
        elif same_word in _FALSE_WORDS:
            same = False
        else:
            raise DatasetFormatError(path, line, f"same must be 1 or 0, found {row['same']!r}")
        try:
            fold = int(row["fold"])
        except ValueError:
            raise DatasetFormatError(path, line, f"fold must be an integer, found {row['fold']!r}") from None
        if fold < 0:
            raise DatasetFormatError(path, line, f"fold must not be negative, found {fold}")
        pairs.append(
            VerificationPair(
                path_a=_relative_path(row["path_a"], path, line, "path_a"),
                path_b=_relative_path(row["path_b"], path, line, "path_b"),
                same=same,
                fold=fold,
            )
        )
    if not pairs:
        raise DatasetFormatError(path, None, "no pairs after the header")
    return tuple(pairs)


def read_manifest(csv_path: Path | str) -> tuple[LabeledImage, ...]:
    """Labelled images from a CSV with columns path,identity. A path listed twice is an error (ambiguous label)."""
    path = Path(csv_path)
    images: list[LabeledImage] = []
    first_line: dict[str, int] = {}
    for line, row in _rows(path, MANIFEST_COLUMNS):
        image_path = _relative_path(row["path"], path, line, "path")
        if not row["identity"]:
            raise DatasetFormatError(path, line, "identity is empty")
        if image_path in first_line:
            raise DatasetFormatError(path, line, f"{image_path} is already listed on line {first_line[image_path]}")
        first_line[image_path] = line
        images.append(LabeledImage(path=image_path, identity=row["identity"]))
    if not images:
        raise DatasetFormatError(path, None, "no images after the header")
    return tuple(images)


def resolve(root: Path | str, relative_path: str) -> Path:
    return Path(root) / relative_path


def missing_files(relative_paths: Sequence[str], root: Path | str) -> list[str]:
    """Which of these paths do not exist under root (checked up front so a 10-minute run does not die at the end)."""
    return [path for path in dict.fromkeys(relative_paths) if not resolve(root, path).is_file()]


def require_files(relative_paths: Sequence[str], root: Path | str) -> None:
    missing = missing_files(relative_paths, root)
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DatasetFormatError(root, None, f"{len(missing)} listed image(s) not found under this root: {shown}")
