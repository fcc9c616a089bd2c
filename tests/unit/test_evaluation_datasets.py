from __future__ import annotations

from pathlib import Path

import pytest

from facetrace.core.errors import ManifestError
from facetrace.evaluation.datasets import (
    DatasetFormatError,
    LabeledImage,
    VerificationPair,
    missing_files,
    read_manifest,
    read_pairs,
    require_files,
)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_read_pairs(tmp_path: Path) -> None:
    csv_path = _write(tmp_path / "pairs.csv", "path_a,path_b,same,fold\na/1.jpg,a/2.jpg,1,1\na/1.jpg,b/1.jpg,0,2\n\n")
    assert read_pairs(csv_path) == (
        VerificationPair("a/1.jpg", "a/2.jpg", True, 1),
        VerificationPair("a/1.jpg", "b/1.jpg", False, 2),
    )


def test_read_pairs_accepts_reordered_columns_and_words(tmp_path: Path) -> None:
    csv_path = _write(tmp_path / "pairs.csv", "fold,same,path_b,path_a\n3,true,y.jpg,x.jpg\n")
    assert read_pairs(csv_path) == (VerificationPair("x.jpg", "y.jpg", True, 3),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("path_a,path_b,same\na,b,1\n", "line 1: header 'path_a,path_b,same' lacks fold"),
        ("path_a,path_b,same,fold\na,b,maybe,1\n", "line 2: same must be 1 or 0, found 'maybe'"),
        ("path_a,path_b,same,fold\na,b,1,one\n", "line 2: fold must be an integer, found 'one'"),
        ("path_a,path_b,same,fold\na,b,1,1\na,b,1\n", "line 3: expected 4 fields"),
        ("path_a,path_b,same,fold\n/etc/passwd,b,1,1\n", "line 2: path_a '/etc/passwd' must be relative"),
        ("path_a,path_b,same,fold\na,../b,1,1\n", "line 2: path_b '../b' must be relative"),
        ("path_a,path_b,same,fold\n,b,1,1\n", "line 2: path_a is empty"),
        ("path_a,path_b,same,fold\n", "no pairs after the header"),
        ("", "line 1: empty file"),
    ],
)
def test_read_pairs_names_the_bad_line(tmp_path: Path, text: str, message: str) -> None:
    csv_path = _write(tmp_path / "pairs.csv", text)
    with pytest.raises(DatasetFormatError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        read_pairs(csv_path)
    assert str(csv_path) in str(caught.value)
    assert isinstance(caught.value, ManifestError)


def test_read_pairs_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match="cannot open"):
        read_pairs(tmp_path / "absent.csv")


def test_read_manifest(tmp_path: Path) -> None:
    csv_path = _write(tmp_path / "manifest.csv", "path,identity\na/1.jpg,A\nb/1.jpg,B\n")
    assert read_manifest(csv_path) == (LabeledImage("a/1.jpg", "A"), LabeledImage("b/1.jpg", "B"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("path,name\na,A\n", "lacks identity"),
        ("path,identity\na,\n", "line 2: identity is empty"),
        ("path,identity\na,A\nb,B\na,C\n", "line 4: a is already listed on line 2"),
    ],
)
def test_read_manifest_names_the_bad_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DatasetFormatError, match=message):
        read_manifest(_write(tmp_path / "manifest.csv", text))


def test_require_files_lists_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "here.jpg").write_bytes(b"x")
    assert missing_files(["here.jpg", "gone.jpg", "gone.jpg"], tmp_path) == ["gone.jpg"]
    require_files(["here.jpg"], tmp_path)
    with pytest.raises(DatasetFormatError, match="1 listed image"):
        require_files(["here.jpg", "gone.jpg"], tmp_path)
