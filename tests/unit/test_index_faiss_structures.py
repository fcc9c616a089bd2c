"""The FAISS backend's structures: exact below a size, IVF codes with exact re-ranking above, and the switch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from facetrace.core.errors import VectorIndexError
from facetrace.index import ExactMemoryIndex, open_index
from facetrace.index.faiss import sizing, stores
from facetrace.index.faiss.backend import FaissIndex
from facetrace.index.faiss.files import meta_path_for, row_ids_path_for, vectors_path_for
from facetrace.index.faiss.sizing import structure_for_size

MODEL = "model-a"
DIM = 16


def unit_vectors(count: int, seed: int = 0) -> npt.NDArray[np.float32]:
    vectors = np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)
    normalised: npt.NDArray[np.float32] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return normalised


def forced_ivf(path: Path) -> FaissIndex:
    """4 lists, all probed, every candidate re-ranked: approximate machinery, exact answers (trains at 160)."""
    return FaissIndex(path, MODEL, DIM, structure="ivf", nlist=4, nprobe=4, rerank=1000)


# The approximate structure re-ranks with float16 copies of the vectors: similarities within about 1e-4 here.
FLOAT16_ATOL = 1e-3


def assert_matches_oracle(index: FaissIndex, ids: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> None:
    """The oracle's top 5, up to float16 rounding: similarities within FLOAT16_ATOL, and every id found scores (in
    float32) what the oracle's hit at that rank scores, so a differing id can only be a near-tie swapped by rounding."""
    oracle = ExactMemoryIndex(MODEL, DIM)
    oracle.add(ids, vectors)
    queries = unit_vectors(15, seed=99)
    similarities, found = index.search(queries, 5)
    expected_similarities, expected_ids = oracle.search(queries, 5)
    np.testing.assert_allclose(similarities, expected_similarities, atol=FLOAT16_ATOL)
    by_id = dict(zip(ids.tolist(), vectors, strict=True))
    rescored = np.array(
        [[float(query @ by_id[int(i)]) for i in row] for query, row in zip(queries, found, strict=True)]
    )
    np.testing.assert_allclose(rescored, expected_similarities, atol=FLOAT16_ATOL)
    assert (found == expected_ids).mean() >= 0.95
    np.testing.assert_array_equal(index.ids(), np.sort(ids))


def test_structure_follows_size_and_dimension() -> None:
    assert structure_for_size(1_000, 512).kind == "exact"
    assert structure_for_size(199_999, 128).kind == "exact"
    large = structure_for_size(1_000_000, 512)
    assert (large.kind, large.nlist, large.code) == ("ivf", 4000, "PQ64x4fs")
    assert (large.nprobe, large.rerank) == (500, 100)
    assert structure_for_size(1_000_000, 128).code == "SQ8"
    # nlist stops at 4096: at 10M, longer lists scanned with fast-scan PQ (see docs/backends.md).
    assert structure_for_size(10_000_000, 512).describe() == "IVF4096,PQ64x4fs,nprobe=512,rerank=100"
    assert structure_for_size(1_000_000, 200).code == "PQ25x4fs"


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
    monkeypatch.setattr(sizing, "APPROXIMATE_FROM", 300)
    monkeypatch.setattr(sizing, "EXACT_BELOW", 150)
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
    monkeypatch.setattr(sizing, "APPROXIMATE_FROM", 300)
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


def test_vectors_are_stored_as_float16_in_format_2(tmp_path: Path) -> None:
    path = tmp_path / "f.faiss"
    index = forced_ivf(path)
    vectors = unit_vectors(300, seed=10)
    index.add(np.arange(300, dtype=np.int64), vectors)
    index.save()
    meta = json.loads(meta_path_for(path).read_text())
    assert (meta["format_version"], meta["vectors_dtype"]) == (2, "float16")
    stored = np.load(vectors_path_for(path))
    assert stored.dtype == np.float16 and stored.shape == (300, DIM)
    # Half the bytes of float32 (plus the .npy header), and the float16 rounding of what was added.
    assert vectors_path_for(path).stat().st_size < 300 * DIM * 4 * 0.6
    np.testing.assert_array_equal(stored, vectors.astype(np.float16))
    similarities, found = FaissIndex(path, MODEL, DIM).search(vectors[:3], 1)
    np.testing.assert_array_equal(found[:, 0], [0, 1, 2])
    assert np.abs(similarities[:, 0] - 1.0).max() < FLOAT16_ATOL


def write_format_1(path: Path, vectors: npt.NDArray[np.float32]) -> None:
    """Turn a saved format-2 approximate index into what facetrace wrote before float16: float32 vectors, format 1."""
    with vectors_path_for(path).open("wb") as handle:
        np.save(handle, vectors)
    meta_path = meta_path_for(path)
    meta = json.loads(meta_path.read_text())
    meta["format_version"] = 1
    del meta["vectors_dtype"]
    del meta["checksums"]  # format 1 recorded none
    meta["vectors_file_bytes"] = vectors_path_for(path).stat().st_size
    meta_path.write_text(json.dumps(meta))


def test_format_1_float32_vectors_still_open_and_become_float16_at_the_next_save(tmp_path: Path) -> None:
    path = tmp_path / "f.faiss"
    vectors = unit_vectors(300, seed=11)
    ids = np.arange(300, dtype=np.int64)
    index = forced_ivf(path)
    index.add(ids, vectors)
    index.save()
    write_format_1(path, vectors)

    old = FaissIndex(path, MODEL, DIM)
    assert old.trained and len(old) == 300
    # Served from the float32 file: the oracle's ids and similarities exactly.
    oracle = ExactMemoryIndex(MODEL, DIM)
    oracle.add(ids, vectors)
    queries = unit_vectors(15, seed=99)
    similarities, found = old.search(queries, 5)
    expected_similarities, expected_ids = oracle.search(queries, 5)
    np.testing.assert_array_equal(found, expected_ids)
    np.testing.assert_allclose(similarities, expected_similarities, atol=1e-6)

    old.save()  # nothing changed, but the float32 file is rewritten as float16
    meta = json.loads(meta_path_for(path).read_text())
    assert (meta["format_version"], meta["vectors_dtype"]) == (2, "float16")
    assert np.load(vectors_path_for(path), mmap_mode="r").dtype == np.float16
    assert_matches_oracle(FaissIndex(path, MODEL, DIM), ids, vectors)


def test_format_1_sidecar_with_float16_vectors_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "f.faiss"
    index = forced_ivf(path)
    index.add(np.arange(200, dtype=np.int64), unit_vectors(200, seed=12))
    index.save()
    meta = json.loads(meta_path_for(path).read_text())
    meta["format_version"] = 1
    meta_path_for(path).write_text(json.dumps(meta))
    with pytest.raises(VectorIndexError, match="not float32 vectors"):
        FaissIndex(path, MODEL, DIM)


def test_adding_in_many_batches_grows_without_copying_everything_each_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small blocks so that batches straddle block boundaries, as 100k batches do with the real 65,536-row blocks.
    monkeypatch.setattr(stores, "ROW_BLOCK", 64)
    path = tmp_path / "f.faiss"
    index = forced_ivf(path)
    vectors = unit_vectors(3000, seed=13)
    ids = np.arange(3000, dtype=np.int64) * 2
    capacities = set()
    for start in range(0, 3000, 37):
        index.add(ids[start : start + 37], vectors[start : start + 37])
        capacities.add(index._store._ids_buffer.shape[0])  # type: ignore[union-attr]
    # The row-id array doubles (1024, 2048, 4096), so its copies total O(n); the vectors sit in 64-row blocks.
    assert sorted(capacities) == [1024, 2048, 4096]
    assert index._store._extra.count == 3000  # type: ignore[union-attr]
    assert_matches_oracle(index, ids, vectors)
    # An upsert of an id below the largest one, and a new id in between, after the blocks have filled up.
    replacement = unit_vectors(2, seed=14)
    index.add(np.array([10, 11], dtype=np.int64), replacement)
    expected_ids = np.concatenate([ids, [11]])
    expected_vectors = np.vstack([vectors[:5], replacement[:1], vectors[6:], replacement[1:]])
    assert len(index) == 3001
    assert_matches_oracle(index, expected_ids, expected_vectors)
    index.save()
    assert_matches_oracle(FaissIndex(path, MODEL, DIM), expected_ids, expected_vectors)


def test_fast_scan_pq_supports_upsert_remove_compaction_and_reopen(tmp_path: Path) -> None:
    """The code dims above 128 get (4-bit fast-scan PQ), forced here at dim 16: IVF labels are rows, removal and the
    reset-and-re-add of compaction go through its block-packed lists."""
    path = tmp_path / "f.faiss"
    index = FaissIndex(path, MODEL, DIM, structure="ivf", nlist=4, nprobe=4, rerank=1000, code="PQ4x4fs")
    vectors = unit_vectors(400, seed=15)
    ids = np.arange(400, dtype=np.int64)
    index.add(ids, vectors)
    assert index.trained and index.structure.factory == "IVF4,PQ4x4fs"
    assert_matches_oracle(index, ids, vectors)
    replacement = unit_vectors(3, seed=16)
    index.add(ids[:3], replacement)
    assert index.remove(np.arange(100, 250, dtype=np.int64)) == 150
    expected_ids = np.concatenate([ids[:100], ids[250:]])
    expected_vectors = np.vstack([replacement, vectors[3:100], vectors[250:]])
    assert_matches_oracle(index, expected_ids, expected_vectors)
    # 153 of 403 rows are dead: the save compacts (resets the fast-scan IVF and re-adds the live rows).
    index.save()
    meta = json.loads(meta_path_for(path).read_text())
    assert (meta["rows"], meta["code"]) == (250, "PQ4x4fs")
    reopened = FaissIndex(path, MODEL, DIM)
    assert reopened.structure.code == "PQ4x4fs"
    assert 0 < reopened.memory_bytes() < 250 * DIM * 4
    assert_matches_oracle(reopened, expected_ids, expected_vectors)


def test_unknown_code_is_refused_up_front(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a faiss IVF code"):
        FaissIndex(tmp_path / "f.faiss", MODEL, DIM, structure="ivf", code="PQ5x4fs")


def test_a_background_restructure_keeps_serving_and_replays_what_changed_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Searches, adds and removes go on against the exact structure while the IVF trains; the IVF that takes over
    holds exactly what the index holds at the swap."""
    import threading

    path = tmp_path / "f.faiss"
    index = FaissIndex(path, MODEL, DIM, nlist=4, nprobe=4, rerank=1000, background_restructure=True)
    vectors = unit_vectors(500, seed=11)
    ids = np.arange(500, dtype=np.int64)
    index.add(ids[:400], vectors[:400])
    index.save()

    training, release = threading.Event(), threading.Event()
    real_train = stores.IvfStore.train

    def gated_train(store: object) -> None:
        training.set()
        assert release.wait(30), "the test never released the build"
        real_train(store)  # type: ignore[arg-type]

    monkeypatch.setattr(stores.IvfStore, "train", gated_train)
    assert index.restructure("ivf", background=True).kind == "ivf"
    assert training.wait(30)
    assert index.restructuring and index.structure.kind == "exact"
    # While it trains: the exact structure answers, takes new faces, loses erased ones, and saves.
    _, found = index.search(vectors[:3], 1)
    np.testing.assert_array_equal(found[:, 0], ids[:3])
    index.add(ids[400:], vectors[400:])
    assert index.remove(ids[:50]) == 50
    index.add(ids[60:70], vectors[60:70])  # an upsert of faces already there
    index.save()
    assert json.loads(meta_path_for(path).read_text())["layout"] == "exact"
    assert not index.settle(timeout=0.05)
    release.set()
    assert index.settle(timeout=60)
    assert not index.restructuring and index.structure.kind == "ivf" and index.trained
    assert_matches_oracle(index, ids[50:], vectors[50:])
    index.save()
    assert_matches_oracle(FaissIndex(path, MODEL, DIM, nprobe=4, rerank=1000), ids[50:], vectors[50:])


def test_auto_switch_runs_in_the_background_and_close_settles_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sizing, "APPROXIMATE_FROM", 300)
    path = tmp_path / "f.faiss"
    index = open_index(path, MODEL, DIM)  # what the engine opens: background switching on
    assert isinstance(index, FaissIndex)
    vectors = unit_vectors(400, seed=12)
    index.add(np.arange(400, dtype=np.int64), vectors)
    index.save()  # starts the switch; the file written now is still the exact one
    assert index.settle(timeout=60)
    assert index.structure.kind == "ivf"
    index.save()
    assert json.loads(meta_path_for(path).read_text())["layout"] == "ivf"


def test_a_failed_background_restructure_leaves_the_index_serving_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = FaissIndex(tmp_path / "f.faiss", MODEL, DIM, nlist=4, background_restructure=True)
    vectors = unit_vectors(300, seed=13)
    index.add(np.arange(300, dtype=np.int64), vectors)

    def broken_train(store: object) -> None:
        raise MemoryError("no room to train")

    monkeypatch.setattr(stores.IvfStore, "train", broken_train)
    index.restructure("ivf", background=True)
    with pytest.raises(VectorIndexError, match="background restructure failed"):
        index.settle(timeout=60)
    assert index.settle() and index.structure.kind == "exact"
    _, found = index.search(vectors[:2], 1)
    np.testing.assert_array_equal(found[:, 0], [0, 1])
