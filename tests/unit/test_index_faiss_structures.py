"""The FAISS backend's structures: exact below a size, IVF codes with exact re-ranking above, and the switch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from facetrace.core.errors import VectorIndexError
from facetrace.index import ExactMemoryIndex, faiss_backend, open_index
from facetrace.index.faiss_backend import (
    FaissIndex,
    meta_path_for,
    row_ids_path_for,
    structure_for_size,
    vectors_path_for,
)

MODEL = "model-a"
DIM = 16


def unit_vectors(count: int, seed: int = 0) -> npt.NDArray[np.float32]:
    vectors = np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)
    normalised: npt.NDArray[np.float32] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return normalised


def forced_ivf(path: Path) -> FaissIndex:
    """4 lists, all probed, every candidate re-ranked: approximate machinery, exact answers (trains at 160)."""
    return FaissIndex(path, MODEL, DIM, structure="ivf", nlist=4, nprobe=4, rerank=1000)


def assert_matches_oracle(index: FaissIndex, ids: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> None:
    oracle = ExactMemoryIndex(MODEL, DIM)
    oracle.add(ids, vectors)
    queries = unit_vectors(15, seed=99)
    similarities, found = index.search(queries, 5)
    expected_similarities, expected_ids = oracle.search(queries, 5)
    np.testing.assert_array_equal(found, expected_ids)
    np.testing.assert_allclose(similarities, expected_similarities, atol=1e-5)
    np.testing.assert_array_equal(index.ids(), np.sort(ids))


def test_structure_follows_size_and_dimension() -> None:
    assert structure_for_size(1_000, 512).kind == "exact"
    assert structure_for_size(199_999, 128).kind == "exact"
    large = structure_for_size(1_000_000, 512)
    assert (large.kind, large.nlist, large.code) == ("ivf", 4000, "PQ64")
    assert large.nprobe >= 8 and large.rerank >= 10
    assert structure_for_size(1_000_000, 128).code == "SQ8"
    assert structure_for_size(10_000_000, 512).describe().startswith("IVF12649,PQ64")


def test_forced_ivf_searches_exactly_until_trained_then_through_the_ivf(tmp_path: Path) -> None:
    index = forced_ivf(tmp_path / "f.faiss")
    vectors = unit_vectors(300, seed=1)
    ids = np.arange(1000, 1300, dtype=np.int64)
    index.add(ids[:100], vectors[:100])
    assert not index.trained
    assert_matches_oracle(index, ids[:100], vectors[:100])
    index.add(ids[100:], vectors[100:])
    assert index.trained and index.structure.factory == "IVF4,SQ8"
    assert_matches_oracle(index, ids, vectors)


def test_trained_index_survives_save_and_reopen_with_vectors_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "f.faiss"
    index = forced_ivf(path)
    vectors = unit_vectors(300, seed=2)
    ids = np.arange(300, dtype=np.int64)
    index.add(ids, vectors)
    in_ram = index.memory_bytes()
    index.save()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "f.faiss",
        "f.faiss.ids.npy",
        "f.faiss.meta.json",
        "f.faiss.vectors.npy",
    ]
    meta = json.loads(meta_path_for(path).read_text())
    assert (meta["layout"], meta["trained"], meta["nlist"], meta["count"]) == ("ivf", True, 4, 300)
    assert meta["structure"] == "IVF4,SQ8,nprobe=4,rerank=1000"
    assert meta["vectors_file_bytes"] == vectors_path_for(path).stat().st_size

    reopened = FaissIndex(path, MODEL, DIM)
    assert reopened.trained and reopened.structure == index.structure
    # Before the save the full vectors were in RAM; reopened, they stay in the memory-mapped file.
    assert reopened.memory_bytes() < in_ram - vectors.nbytes
    assert_matches_oracle(reopened, ids, vectors)


def test_upsert_add_and_remove_after_reopen_then_save_again(tmp_path: Path) -> None:
    path = tmp_path / "f.faiss"
    index = forced_ivf(path)
    vectors = unit_vectors(300, seed=3)
    index.add(np.arange(300, dtype=np.int64), vectors)
    index.save()

    reopened = forced_ivf(path)
    replacement = unit_vectors(5, seed=4)
    reopened.add(np.arange(5, dtype=np.int64), replacement)  # upsert into rows of the memory-mapped file
    extra = unit_vectors(20, seed=5)
    reopened.add(np.arange(300, 320, dtype=np.int64), extra)
    assert reopened.remove(np.array([10, 11, 12, 5000], dtype=np.int64)) == 3
    expected_vectors = np.vstack([replacement, vectors[5:10], vectors[13:], extra])
    expected_ids = np.concatenate([np.arange(10), np.arange(13, 320)]).astype(np.int64)
    assert len(reopened) == 317
    assert_matches_oracle(reopened, expected_ids, expected_vectors)
    reopened.save()
    assert_matches_oracle(FaissIndex(path, MODEL, DIM), expected_ids, expected_vectors)


def test_save_compacts_when_many_rows_are_dead(tmp_path: Path) -> None:
    path = tmp_path / "f.faiss"
    index = forced_ivf(path)
    vectors = unit_vectors(400, seed=6)
    index.add(np.arange(400, dtype=np.int64), vectors)
    index.remove(np.arange(0, 400, 2, dtype=np.int64))
    index.save()
    assert json.loads(meta_path_for(path).read_text())["rows"] == 200
    assert_matches_oracle(FaissIndex(path, MODEL, DIM), np.arange(1, 400, 2, dtype=np.int64), vectors[1::2])


def test_auto_structure_switches_at_save_as_the_gallery_grows_and_shrinks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faiss_backend, "APPROXIMATE_FROM", 300)
    monkeypatch.setattr(faiss_backend, "EXACT_BELOW", 150)
    path = tmp_path / "f.faiss"
    index = FaissIndex(path, MODEL, DIM, nlist=4)
    vectors = unit_vectors(400, seed=7)
    ids = np.arange(400, dtype=np.int64)
    index.add(ids, vectors)
    assert index.structure.kind == "exact"
    index.save()
    assert index.structure.kind == "ivf" and index.trained
    assert json.loads(meta_path_for(path).read_text())["layout"] == "ivf"
    reopened = FaissIndex(path, MODEL, DIM, rerank=1000, nprobe=4)
    assert_matches_oracle(reopened, ids, vectors)

    reopened.remove(ids[:300])
    reopened.save()
    assert reopened.structure.kind == "exact"
    assert not vectors_path_for(path).exists() and not row_ids_path_for(path).exists()
    assert_matches_oracle(FaissIndex(path, MODEL, DIM), ids[300:], vectors[300:])


def test_expected_count_picks_the_structure_of_a_fresh_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faiss_backend, "APPROXIMATE_FROM", 300)
    index = open_index(tmp_path / "f.faiss", MODEL, DIM, fresh=True, expected_count=1_000)
    assert isinstance(index, FaissIndex)
    assert (index.structure.kind, index.structure.nlist) == ("ivf", 126)
    small = open_index(tmp_path / "g.faiss", MODEL, DIM, fresh=True, expected_count=100)
    assert isinstance(small, FaissIndex) and small.structure.kind == "exact"


def test_restructure_moves_every_vector(tmp_path: Path) -> None:
    index = forced_ivf(tmp_path / "f.faiss")
    vectors = unit_vectors(250, seed=8)
    ids = np.arange(250, dtype=np.int64) * 3
    index.add(ids, vectors)
    assert index.restructure("exact").kind == "exact"
    assert_matches_oracle(index, ids, vectors)
    assert index.restructure("ivf").kind == "ivf" and index.trained
    index.tune(nprobe=4, rerank=1000)
    assert_matches_oracle(index, ids, vectors)


@pytest.mark.parametrize("damage", ["truncate-vectors", "drop-ids"])
def test_damaged_side_files_say_how_to_fix_it(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "f.faiss"
    index = forced_ivf(path)
    index.add(np.arange(200, dtype=np.int64), unit_vectors(200, seed=9))
    index.save()
    if damage == "truncate-vectors":
        data = vectors_path_for(path).read_bytes()
        vectors_path_for(path).write_bytes(data[: len(data) // 2])
    else:
        row_ids_path_for(path).unlink()
    with pytest.raises(VectorIndexError, match="facetrace index rebuild"):
        FaissIndex(path, MODEL, DIM)
    fresh = FaissIndex(path, MODEL, DIM, fresh=True)
    assert len(fresh) == 0


def test_unknown_structure_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="structure must be one of"):
        FaissIndex(tmp_path / "f.faiss", MODEL, DIM, structure="hnsw")
