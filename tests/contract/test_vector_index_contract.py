"""One contract for every VectorIndex backend, checked against the exact numpy oracle on seeded unit vectors."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from facetrace.core.errors import ModelMismatchError, VectorIndexError
from facetrace.core.ports import VectorIndex
from facetrace.index import ExactMemoryIndex, VectorShapeError, open_index
from facetrace.index.faiss.backend import FaissIndex
from milvus_server import MilvusTestDatabase, server_database

MODEL = "test-model-v1"
DIM = 32

IndexFactory = Callable[..., VectorIndex]

# Backends whose every write is durable at once (save() only flushes); the others persist nothing until save().
PERSISTS_ON_WRITE = {"milvus", "milvus-server"}


def milvus_backend() -> object:
    """The milvus parametrisation (Milvus Lite): skipped without the optional extra, unless FACETRACE_REQUIRE_MILVUS=1
    (CI). The milvus-server one is skipped, or failed under FACETRACE_REQUIRE_MILVUS_SERVER=1, by its fixture below
    when no server answers (tests/milvus_server.py)."""
    missing = [name for name in ("pymilvus", "milvus_lite") if importlib.util.find_spec(name) is None]
    if missing and os.environ.get("FACETRACE_REQUIRE_MILVUS") != "1":
        reason = f"{' and '.join(missing)} not installed: pip install 'facetrace[milvus]'"
        return pytest.param("milvus", marks=pytest.mark.skip(reason=reason))
    return "milvus"


@pytest.fixture(scope="session")
def milvus_session_database() -> Iterator[MilvusTestDatabase]:
    with server_database() as database:
        yield database


@pytest.fixture
def milvus_server_uri(milvus_session_database: MilvusTestDatabase) -> Iterator[str]:
    """The session's database on the Milvus server, emptied after each test so every test starts from nothing (the
    collection of MODEL is emptied rather than dropped: the first test creates it, the others reuse it)."""
    from facetrace.index.milvus_backend import collection_name_for  # pymilvus is an optional extra

    try:
        yield milvus_session_database.uri
    finally:
        milvus_session_database.reset(keep=collection_name_for(MODEL))


def unit_vectors(count: int, dim: int = DIM, seed: int = 0) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((count, dim)).astype(np.float32)
    normalised: npt.NDArray[np.float32] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return normalised


# faiss-ivf forces the approximate structure at contract sizes: 4 lists, all probed, so that training (after 160
# vectors), the compressed shortlist and its exact re-ranking must together reproduce the oracle.
@pytest.fixture(params=["memory", "faiss", "faiss-ivf", milvus_backend(), "milvus-server"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def atol(backend: str) -> float:
    """How far a backend's similarities may be from the float32 oracle's: faiss-ivf re-ranks with the float16 copies
    of the vectors (index format 2), so its similarities are within about 1e-4 at these dimensions, not bit-exact."""
    return 1e-3 if backend == "faiss-ivf" else 1e-5


@pytest.fixture
def make_index(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> IndexFactory:
    """Opens the backend under test; for faiss and milvus (Milvus Lite or server), the same store every call so
    reopening is testable."""
    uris = {
        "memory": "memory://",
        "faiss": f"faiss://{tmp_path / 'faces.faiss'}",
        "milvus": f"milvus://{tmp_path / 'faces.db'}",
    }
    if backend == "milvus-server":
        uris[backend] = str(request.getfixturevalue("milvus_server_uri"))

    def make(model_id: str = MODEL, dim: int = DIM) -> VectorIndex:
        if backend == "faiss-ivf":
            return FaissIndex(tmp_path / "faces.faiss", model_id, dim, structure="ivf", nlist=4, nprobe=4, rerank=50)
        return open_index(uris[backend], model_id, dim)

    return make


def test_reports_model_dim_and_size(make_index: IndexFactory) -> None:
    index = make_index()
    assert (index.model_id, index.dim, len(index)) == (MODEL, DIM, 0)
    index.add(np.arange(10, dtype=np.int64), unit_vectors(10))
    assert len(index) == 10
    np.testing.assert_array_equal(index.ids(), np.arange(10))


def test_top_k_matches_exact_oracle(make_index: IndexFactory, atol: float) -> None:
    gallery = unit_vectors(500, seed=1)
    ids = np.arange(1000, 1500, dtype=np.int64)
    queries = unit_vectors(20, seed=2)
    index = make_index()
    index.add(ids, gallery)
    oracle = ExactMemoryIndex(MODEL, DIM)
    oracle.add(ids, gallery)

    similarities, found = index.search(queries, 10)
    expected_similarities, expected_ids = oracle.search(queries, 10)

    assert similarities.shape == found.shape == (20, 10)
    assert similarities.dtype == np.float32 and found.dtype == np.int64
    np.testing.assert_array_equal(found, expected_ids)
    np.testing.assert_allclose(similarities, expected_similarities, atol=atol)
    # The oracle itself: brute-force cosine, best first.
    brute = queries @ gallery.T
    np.testing.assert_array_equal(expected_ids[:, 0], ids[brute.argmax(axis=1)])
    assert np.all(np.diff(similarities, axis=1) <= 1e-6)


def test_a_stored_vector_finds_itself_first(make_index: IndexFactory, atol: float) -> None:
    gallery = unit_vectors(100, seed=3)
    index = make_index()
    index.add(np.arange(100, dtype=np.int64), gallery)
    similarities, found = index.search(gallery[[7, 42]], 1)
    np.testing.assert_array_equal(found[:, 0], [7, 42])
    np.testing.assert_allclose(similarities[:, 0], 1.0, atol=atol)


def test_adding_an_existing_id_replaces_its_vector(make_index: IndexFactory, atol: float) -> None:
    first, second = unit_vectors(2, seed=4)
    index = make_index()
    index.add(np.array([5], dtype=np.int64), first[None, :])
    index.add(np.array([5], dtype=np.int64), first[None, :])
    assert len(index) == 1
    index.add(np.array([5], dtype=np.int64), second[None, :])
    assert len(index) == 1
    similarities, found = index.search(second[None, :], 1)
    assert found[0, 0] == 5
    assert similarities[0, 0] == pytest.approx(1.0, abs=atol)


def test_repeated_id_within_one_batch_keeps_the_last_vector(make_index: IndexFactory, atol: float) -> None:
    vectors = unit_vectors(3, seed=5)
    index = make_index()
    index.add(np.array([1, 2, 1], dtype=np.int64), vectors)
    assert len(index) == 2
    similarities, found = index.search(vectors[2:3], 1)
    assert found[0, 0] == 1
    assert similarities[0, 0] == pytest.approx(1.0, abs=atol)


def test_remove_drops_ids_and_counts_only_present_ones(make_index: IndexFactory) -> None:
    gallery = unit_vectors(50, seed=6)
    index = make_index()
    index.add(np.arange(50, dtype=np.int64), gallery)
    assert index.remove(np.array([3, 4, 999], dtype=np.int64)) == 2
    assert len(index) == 48
    assert not np.isin([3, 4], index.ids()).any()
    _, found = index.search(gallery[[3]], 48)
    assert 3 not in found and 4 not in found
    assert index.remove(np.array([], dtype=np.int64)) == 0


def test_empty_index_search_returns_missing_ids(make_index: IndexFactory) -> None:
    similarities, found = make_index().search(unit_vectors(3), 4)
    assert found.shape == (3, 4)
    assert (found == -1).all()
    assert np.isneginf(similarities).all()


def test_k_larger_than_the_index_pads_with_missing_ids(make_index: IndexFactory) -> None:
    index = make_index()
    index.add(np.array([10, 20], dtype=np.int64), unit_vectors(2, seed=7))
    similarities, found = index.search(unit_vectors(1, seed=8), 5)
    assert sorted(found[0, :2].tolist()) == [10, 20]
    assert (found[0, 2:] == -1).all() and np.isneginf(similarities[0, 2:]).all()


@pytest.mark.parametrize(
    "vectors",
    [
        pytest.param(np.zeros((2, DIM + 1), dtype=np.float32), id="wrong-dim"),
        pytest.param(np.zeros((2, DIM), dtype=np.float64), id="float64"),
        pytest.param(np.zeros(DIM, dtype=np.float32), id="one-dimensional"),
        pytest.param(np.full((2, DIM), np.nan, dtype=np.float32), id="nan"),
    ],
)
def test_malformed_vectors_are_refused(make_index: IndexFactory, vectors: npt.NDArray[np.generic]) -> None:
    index = make_index()
    count = vectors.shape[0] if vectors.ndim == 2 else 1
    with pytest.raises(VectorShapeError):
        index.add(np.arange(count, dtype=np.int64), vectors)  # type: ignore[arg-type]
    with pytest.raises(VectorShapeError):
        index.search(vectors, 1)  # type: ignore[arg-type]
    assert len(index) == 0


def test_wrong_dim_error_names_both_dimensions(make_index: IndexFactory) -> None:
    with pytest.raises(VectorIndexError, match=rf"dimension {DIM + 1}.*dimension {DIM}"):
        make_index().add(np.arange(1, dtype=np.int64), unit_vectors(1, dim=DIM + 1))


def test_ids_must_match_vectors_and_be_non_negative(make_index: IndexFactory) -> None:
    index = make_index()
    with pytest.raises(VectorShapeError, match="2 ids for 3 vectors"):
        index.add(np.arange(2, dtype=np.int64), unit_vectors(3))
    with pytest.raises(VectorShapeError, match="non-negative"):
        index.add(np.array([-1], dtype=np.int64), unit_vectors(1))
    with pytest.raises(VectorShapeError, match="k must be"):
        index.search(unit_vectors(1), 0)


def test_contents_survive_save_and_reopen(make_index: IndexFactory, backend: str) -> None:
    if backend == "memory":
        pytest.skip("the memory backend persists nothing by design")
    gallery = unit_vectors(64, seed=9)
    index = make_index()
    index.add(np.arange(100, 164, dtype=np.int64), gallery)
    index.save()
    reopened = make_index()
    assert len(reopened) == 64
    np.testing.assert_array_equal(reopened.ids(), np.arange(100, 164))
    np.testing.assert_array_equal(reopened.search(gallery[:5], 3)[1], index.search(gallery[:5], 3)[1])


def test_unsaved_changes_persist_only_where_writes_are_durable(make_index: IndexFactory, backend: str) -> None:
    if backend == "memory":
        pytest.skip("the memory backend persists nothing by design")
    index = make_index()
    index.add(np.arange(3, dtype=np.int64), unit_vectors(3))
    index.save()
    index.add(np.arange(3, 6, dtype=np.int64), unit_vectors(3, seed=10))
    assert len(make_index()) == (6 if backend in PERSISTS_ON_WRITE else 3)


def test_opening_with_another_model_raises(make_index: IndexFactory, backend: str) -> None:
    if backend == "memory":
        pytest.skip("a memory index starts empty each time, so there is no stored model to disagree with")
    index = make_index()
    index.add(np.arange(3, dtype=np.int64), unit_vectors(3))
    index.save()
    with pytest.raises(ModelMismatchError, match="other-model") as raised:
        make_index(model_id="other-model")
    assert (raised.value.expected, raised.value.actual) == (MODEL, "other-model")


def test_save_is_harmless_on_every_backend(make_index: IndexFactory) -> None:
    index = make_index()
    index.save()
    index.add(np.arange(2, dtype=np.int64), unit_vectors(2))
    index.save()
    assert len(index) == 2
