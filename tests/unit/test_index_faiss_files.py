"""The FAISS backend's files: atomic saves, the sidecar, and clear errors for anything unusable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from facetrace.core.errors import ModelMismatchError, VectorIndexError
from facetrace.index.faiss.backend import FaissIndex
from facetrace.index.faiss.files import FORMAT_VERSION, meta_path_for, vectors_path_for

MODEL = "model-a"
DIM = 16


def unit_vectors(count: int, seed: int = 0) -> npt.NDArray[np.float32]:
    vectors = np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)
    normalised: npt.NDArray[np.float32] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return normalised


@pytest.fixture
def saved_index(tmp_path: Path) -> Path:
    path = tmp_path / "faces.faiss"
    index = FaissIndex(path, MODEL, DIM)
    index.add(np.arange(20, dtype=np.int64), unit_vectors(20))
    index.save()
    return path


def test_nothing_is_written_until_save(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "faces.faiss"
    index = FaissIndex(path, MODEL, DIM)
    index.add(np.arange(2, dtype=np.int64), unit_vectors(2))
    assert not path.parent.exists()
    index.save()
    assert sorted(p.name for p in path.parent.iterdir()) == ["faces.faiss", "faces.faiss.meta.json"]


def test_sidecar_describes_the_index(saved_index: Path) -> None:
    meta = json.loads(meta_path_for(saved_index).read_text())
    assert meta["model_id"] == MODEL
    assert meta["dim"] == DIM
    assert meta["count"] == 20
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["file_bytes"] == saved_index.stat().st_size
    assert meta["catalog_fingerprint"] is None


def test_save_leaves_no_temporary_files(saved_index: Path) -> None:
    index = FaissIndex(saved_index, MODEL, DIM)
    index.add(np.arange(20, 30, dtype=np.int64), unit_vectors(10, seed=1))
    index.save()
    assert sorted(p.name for p in saved_index.parent.iterdir()) == ["faces.faiss", "faces.faiss.meta.json"]


def test_failed_save_keeps_the_previous_files(saved_index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = saved_index.read_bytes()
    index = FaissIndex(saved_index, MODEL, DIM)
    index.add(np.arange(20, 30, dtype=np.int64), unit_vectors(10, seed=1))

    def fail(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("facetrace.index.faiss.files._fsync_file", fail)
    with pytest.raises(OSError, match="disk full"):
        index.save()
    assert saved_index.read_bytes() == before
    assert sorted(p.name for p in saved_index.parent.iterdir()) == ["faces.faiss", "faces.faiss.meta.json"]
    assert len(FaissIndex(saved_index, MODEL, DIM)) == 20


def test_model_mismatch_names_both_models_and_the_file(saved_index: Path) -> None:
    with pytest.raises(ModelMismatchError, match=rf"{saved_index}.*'model-a'.*'model-b'"):
        FaissIndex(saved_index, "model-b", DIM)


def test_dimension_mismatch_is_refused(saved_index: Path) -> None:
    with pytest.raises(VectorIndexError, match="16-dimensional vectors, not 8"):
        FaissIndex(saved_index, MODEL, 8)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: b"garbage!" * (len(data) // 8) + data[: len(data) % 8], id="garbage-same-size"),
    ],
)
def test_damaged_index_file_says_how_to_fix_it(saved_index: Path, damage: object) -> None:
    saved_index.write_bytes(damage(saved_index.read_bytes()))  # type: ignore[operator]
    with pytest.raises(VectorIndexError, match="facetrace index rebuild") as raised:
        FaissIndex(saved_index, MODEL, DIM)
    assert str(saved_index) in str(raised.value)


def test_truncation_that_faiss_cannot_notice_is_caught_by_the_recorded_size(saved_index: Path) -> None:
    # Count in the sidecar and count in the file agree but the byte size does not: refuse rather than trust it.
    meta_path = meta_path_for(saved_index)
    meta = json.loads(meta_path.read_text())
    meta["file_bytes"] += 1
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(VectorIndexError, match="truncated or replaced"):
        FaissIndex(saved_index, MODEL, DIM)


def test_missing_sidecar_is_refused(saved_index: Path) -> None:
    meta_path_for(saved_index).unlink()
    with pytest.raises(VectorIndexError, match=r"sidecar .* is missing.*facetrace index rebuild"):
        FaissIndex(saved_index, MODEL, DIM)


def test_unreadable_sidecar_is_refused(saved_index: Path) -> None:
    meta_path_for(saved_index).write_text("{not json")
    with pytest.raises(VectorIndexError, match="sidecar is unreadable"):
        FaissIndex(saved_index, MODEL, DIM)


def test_sidecar_without_index_file_is_refused(saved_index: Path) -> None:
    saved_index.unlink()
    with pytest.raises(VectorIndexError, match="index file is missing"):
        FaissIndex(saved_index, MODEL, DIM)


def test_count_disagreeing_with_sidecar_is_refused(saved_index: Path) -> None:
    meta_path = meta_path_for(saved_index)
    meta = json.loads(meta_path.read_text())
    meta["count"] = 21
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(VectorIndexError, match="holds 20 vectors but its sidecar says 21"):
        FaissIndex(saved_index, MODEL, DIM)


def test_other_format_version_is_refused(saved_index: Path) -> None:
    meta_path = meta_path_for(saved_index)
    meta = json.loads(meta_path.read_text())
    meta["format_version"] = FORMAT_VERSION + 1
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(VectorIndexError, match="format version"):
        FaissIndex(saved_index, MODEL, DIM)


def test_upsert_of_only_new_ids_does_not_touch_existing_vectors(tmp_path: Path) -> None:
    index = FaissIndex(tmp_path / "f.faiss", MODEL, DIM)
    vectors = unit_vectors(40, seed=2)
    index.add(np.arange(20, dtype=np.int64), vectors[:20])
    index.add(np.arange(20, 40, dtype=np.int64), vectors[20:])
    similarities, found = index.search(vectors, 1)
    np.testing.assert_array_equal(found[:, 0], np.arange(40))
    np.testing.assert_allclose(similarities[:, 0], 1.0, atol=1e-5)


@pytest.mark.parametrize("damage", ["corrupt", "other-model"])
def test_fresh_start_replaces_an_unusable_or_foreign_index(saved_index: Path, damage: str) -> None:
    if damage == "corrupt":
        saved_index.write_bytes(b"not an index")
    model = "model-b" if damage == "other-model" else MODEL
    index = FaissIndex(saved_index, model, DIM, fresh=True)
    assert len(index) == 0
    index.add(np.arange(3, dtype=np.int64), unit_vectors(3, seed=3))
    index.save()
    reopened = FaissIndex(saved_index, model, DIM)
    assert (reopened.model_id, len(reopened)) == (model, 3)


def _damage_inside(path: Path, offset_fraction: float = 0.5, length: int = 4096) -> None:
    """Random bytes written inside the file at the same size: what a bad sector or a stray write leaves."""
    data = bytearray(path.read_bytes())
    start = int(len(data) * offset_fraction)
    end = min(len(data), start + length)
    data[start:end] = np.random.default_rng(7).integers(0, 256, end - start, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def test_bytes_damaged_inside_the_index_file_fail_the_checksum(tmp_path: Path) -> None:
    # Large enough that 4 KB of random bytes land in the vectors, where FAISS itself notices nothing.
    path = tmp_path / "faces.faiss"
    index = FaissIndex(path, MODEL, DIM)
    index.add(np.arange(2000, dtype=np.int64), unit_vectors(2000))
    index.save()
    meta = json.loads(meta_path_for(path).read_text())
    assert set(meta["checksums"]) == {"index"} and len(meta["checksums"]["index"]) == 32
    size = path.stat().st_size
    _damage_inside(path)
    assert path.stat().st_size == size
    with pytest.raises(VectorIndexError, match=r"checksum.*facetrace index rebuild"):
        FaissIndex(path, MODEL, DIM)


def test_an_approximate_index_checks_its_vectors_and_ids_files_too(tmp_path: Path) -> None:
    path = tmp_path / "faces.faiss"
    index = FaissIndex(path, MODEL, DIM, structure="ivf", nlist=4)
    index.add(np.arange(300, dtype=np.int64), unit_vectors(300))
    index.save()
    checksums = json.loads(meta_path_for(path).read_text())["checksums"]
    assert set(checksums) == {"index", "ids", "vectors"}
    # Saving again without new vectors keeps the vectors file and its recorded checksum.
    index.remove(np.asarray([0], dtype=np.int64))
    index.save()
    assert json.loads(meta_path_for(path).read_text())["checksums"]["vectors"] == checksums["vectors"]
    FaissIndex(path, MODEL, DIM)  # still opens
    _damage_inside(vectors_path_for(path), offset_fraction=0.7, length=64)
    with pytest.raises(VectorIndexError, match=r"vectors\.npy: its contents do not match the checksum"):
        FaissIndex(path, MODEL, DIM)


def test_an_index_saved_before_checksums_opens_and_gains_them_at_its_next_save(saved_index: Path) -> None:
    meta_path = meta_path_for(saved_index)
    meta = json.loads(meta_path.read_text())
    del meta["checksums"]
    meta_path.write_text(json.dumps(meta))
    index = FaissIndex(saved_index, MODEL, DIM)
    index.add(np.asarray([99], dtype=np.int64), unit_vectors(1, seed=3))
    index.save()
    assert "index" in json.loads(meta_path.read_text())["checksums"]
