"""The Milvus backend beyond the shared contract: URIs, collection layout, rebuilds, paging and error translation.

Runs on Milvus Lite in tmp_path; skipped without the milvus extra unless FACETRACE_REQUIRE_MILVUS=1 (CI).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from facetrace.core.errors import ModelMismatchError, VectorIndexError
from facetrace.index import open_index

if os.environ.get("FACETRACE_REQUIRE_MILVUS") != "1":
    pytest.importorskip("pymilvus", reason="pymilvus not installed: pip install 'facetrace[milvus]'")
    pytest.importorskip("milvus_lite", reason="milvus-lite not installed: pip install 'facetrace[milvus]'")

from facetrace.index import milvus_backend
from facetrace.index.milvus_backend import (
    MilvusIndex,
    MilvusLocation,
    collection_name_for,
    parse_milvus_uri,
)

MODEL = "sface-2021dec"
DIM = 16


def unit_vectors(count: int, dim: int = DIM, seed: int = 0) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((count, dim)).astype(np.float32)
    normalised: npt.NDArray[np.float32] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return normalised


@pytest.fixture
def lite_uri(tmp_path: Path) -> str:
    return f"milvus://{tmp_path / 'faces.db'}"


def open_milvus(uri: str, model_id: str = MODEL, dim: int = DIM, *, fresh: bool = False) -> MilvusIndex:
    index = open_index(uri, model_id, dim, fresh=fresh)
    assert isinstance(index, MilvusIndex)
    return index


# -- URIs ---------------------------------------------------------------------------------------------------------


def test_absolute_lite_uri(tmp_path: Path) -> None:
    location = parse_milvus_uri(f"milvus://{tmp_path}/faces.db")
    assert location == MilvusLocation(client_uri=f"{tmp_path}/faces.db", display=f"milvus://{tmp_path}/faces.db")
    assert location.is_lite


def test_relative_lite_uri_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_milvus_uri("milvus://data/faces.db").client_uri == str(tmp_path / "data" / "faces.db")


@pytest.mark.parametrize(
    ("uri", "client_uri", "db_name", "display"),
    [
        ("milvus://milvus.internal", "http://milvus.internal:19530", "", "milvus://milvus.internal:19530"),
        ("milvus://10.0.0.5:29530", "http://10.0.0.5:29530", "", "milvus://10.0.0.5:29530"),
        ("milvus://host:19530/faces", "http://host:19530", "faces", "milvus://host:19530/faces"),
        ("milvus+http://host", "http://host:19530", "", "milvus+http://host:19530"),
        ("milvus+https://db.example.com:443", "https://db.example.com:443", "", "milvus+https://db.example.com:443"),
        ("MILVUS://[::1]:19530", "http://[::1]:19530", "", "milvus://[::1]:19530"),
    ],
)
def test_server_uris(uri: str, client_uri: str, db_name: str, display: str) -> None:
    location = parse_milvus_uri(uri)
    assert (location.client_uri, location.db_name, location.display, location.token) == (
        client_uri,
        db_name,
        display,
        "",
    )
    assert not location.is_lite


def test_credentials_become_the_token_and_stay_out_of_messages() -> None:
    location = parse_milvus_uri("milvus://facetrace:s%40cret@host:19530")
    assert location.token == "facetrace:s@cret"
    assert "cret" not in location.display and "cret" not in repr(location.display)


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("milvus://", "needs a file"),
        ("milvus:///data/faces.sqlite", "must end in .db"),
        ("milvus://host:port", "port is not a number"),
        ("milvus://host:19530/a/b", "single database name"),
        ("milvus+https:///x.db", "names no host"),
    ],
)
def test_malformed_uris_are_refused(uri: str, message: str) -> None:
    with pytest.raises(VectorIndexError, match=message):
        open_index(uri, MODEL, DIM)


def test_an_unreachable_server_is_a_vector_index_error() -> None:
    with pytest.raises(VectorIndexError, match=r"milvus://127\.0\.0\.1:1: cannot open the Milvus index"):
        open_index("milvus://127.0.0.1:1", MODEL, DIM)


def test_without_the_extra_open_index_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "facetrace.index.milvus_backend", None)
    with pytest.raises(VectorIndexError, match=r"pip install 'facetrace\[milvus\]'"):
        open_index("milvus:///tmp/never-created.db", MODEL, DIM)


def test_importing_the_index_package_does_not_load_pymilvus() -> None:
    code = "import sys, facetrace.index; print('pymilvus' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# -- layout -------------------------------------------------------------------------------------------------------


def test_one_collection_per_model_named_by_a_hash(lite_uri: str, tmp_path: Path) -> None:
    index = open_milvus(lite_uri)
    assert index.collection_name == collection_name_for(MODEL)
    assert index.collection_name.startswith("facetrace_faces_") and len(index.collection_name) == 24
    assert collection_name_for("another/model:v2") != index.collection_name
    # The directory is created on demand, like the faiss backend's parent directory.
    nested = open_milvus(f"milvus://{tmp_path / 'a' / 'b' / 'faces.db'}")
    assert len(nested) == 0


def test_reopening_with_another_dimension_names_both(lite_uri: str) -> None:
    open_milvus(lite_uri).add(np.arange(2, dtype=np.int64), unit_vectors(2))
    with pytest.raises(VectorIndexError, match=rf"holds {DIM}-dimensional vectors, not {DIM * 2}.*index rebuild"):
        open_milvus(lite_uri, dim=DIM * 2)


def test_search_can_be_restricted_by_a_filter_expression(lite_uri: str) -> None:
    gallery = unit_vectors(20, seed=1)
    index = open_milvus(lite_uri)
    index.add(np.arange(20, dtype=np.int64), gallery)
    _, found = index.search(gallery[:1], 5, filter_expr="id >= 10")
    assert (found[0] >= 10).all()
    _, unrestricted = index.search(gallery[:1], 1)
    assert unrestricted[0, 0] == 0


def test_read_your_writes_across_handles(lite_uri: str) -> None:
    writer, reader = open_milvus(lite_uri), open_milvus(lite_uri)
    vectors = unit_vectors(3, seed=2)
    writer.add(np.array([7, 8, 9], dtype=np.int64), vectors)
    assert len(reader) == 3
    assert reader.search(vectors[1:2], 1)[1][0, 0] == 8
    writer.remove(np.array([8], dtype=np.int64))
    assert 8 not in reader.ids()


# -- rebuilds -----------------------------------------------------------------------------------------------------


def test_fresh_index_replaces_the_live_one_only_at_save(lite_uri: str) -> None:
    old = unit_vectors(4, seed=3)
    open_milvus(lite_uri).add(np.arange(4, dtype=np.int64), old)
    rebuilt = open_milvus(lite_uri, fresh=True)
    assert len(rebuilt) == 0
    rebuilt.add(np.arange(100, 103, dtype=np.int64), unit_vectors(3, seed=4))
    # Until save(), everyone else still sees the old contents.
    np.testing.assert_array_equal(open_milvus(lite_uri).ids(), np.arange(4))
    rebuilt.save()
    np.testing.assert_array_equal(open_milvus(lite_uri).ids(), np.arange(100, 103))
    assert rebuilt.collection_name == collection_name_for(MODEL)
    rebuilt.add(np.array([200], dtype=np.int64), unit_vectors(1, seed=5))
    assert len(open_milvus(lite_uri)) == 4


def test_rebuilding_for_a_new_model_drops_the_old_models_vectors(lite_uri: str) -> None:
    open_milvus(lite_uri, "old-model").add(np.arange(3, dtype=np.int64), unit_vectors(3))
    with pytest.raises(ModelMismatchError):
        open_milvus(lite_uri, "new-model")
    rebuilt = open_milvus(lite_uri, "new-model", fresh=True)
    rebuilt.add(np.arange(2, dtype=np.int64), unit_vectors(2, seed=6))
    rebuilt.save()
    assert len(open_milvus(lite_uri, "new-model")) == 2
    with pytest.raises(ModelMismatchError, match="new-model"):
        open_milvus(lite_uri, "old-model")


def test_an_abandoned_rebuild_is_ignored_then_discarded(lite_uri: str) -> None:
    open_milvus(lite_uri).add(np.arange(3, dtype=np.int64), unit_vectors(3))
    abandoned = open_milvus(lite_uri, fresh=True)
    abandoned.add(np.arange(50, 60, dtype=np.int64), unit_vectors(10, seed=7))
    abandoned.close()
    assert len(open_milvus(lite_uri)) == 3
    assert len(open_milvus(lite_uri, fresh=True)) == 0


# -- limits Milvus imposes ----------------------------------------------------------------------------------------


def test_large_batches_and_listings_are_split(lite_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(milvus_backend, "MAX_WRITE_BYTES", DIM * 4 * 7)
    monkeypatch.setattr(milvus_backend, "ID_PAGE_SIZE", 9)
    monkeypatch.setattr(milvus_backend, "MAX_IDS_PER_REQUEST", 5)
    monkeypatch.setattr(milvus_backend, "MAX_QUERIES_PER_REQUEST", 4)
    gallery = unit_vectors(50, seed=8)
    index = open_milvus(lite_uri)
    index.add(np.arange(50, dtype=np.int64) * 3, gallery)
    np.testing.assert_array_equal(index.ids(), np.arange(50) * 3)
    assert index.remove(np.arange(0, 30, dtype=np.int64)) == 10
    assert len(index) == 40
    _, found = index.search(gallery[10:20], 1)
    np.testing.assert_array_equal(found[:, 0], np.arange(10, 20) * 3)


def test_batch_searches_are_cut_by_work_against_a_large_collection(
    lite_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Queries x stored vectors per request stays near COMPARISONS_PER_REQUEST, so a batch against a large FLAT
    collection cannot run past the request timeout; the results are those of one request."""
    gallery = unit_vectors(50, seed=10)
    index = open_milvus(lite_uri)
    index.add(np.arange(50, dtype=np.int64), gallery)
    whole = index.search(gallery[:20], 3)
    monkeypatch.setattr(milvus_backend, "COMPARISONS_PER_REQUEST", 50 * 6)
    monkeypatch.setattr(milvus_backend, "MIN_QUERIES_PER_REQUEST", 2)
    requests: list[int] = []
    send = index._client.search
    monkeypatch.setattr(index._client, "search", lambda *a, **kw: requests.append(len(kw["data"])) or send(*a, **kw))
    cut = index.search(gallery[:20], 3)
    assert requests == [6, 6, 6, 2]
    np.testing.assert_array_equal(cut[1], whole[1])
    # The same scores, up to float32 rounding: Milvus Lite's kernel may sum a batch of 6 in another order than one of
    # 20 (a fresh CI machine saw 16 of 60 scores differ by one unit in the last place).
    np.testing.assert_allclose(cut[0], whole[0], rtol=0, atol=1e-6)
    requests.clear()
    index.search(gallery[:2], 3)  # a small batch goes whole, without counting the collection
    assert requests == [2]


def test_k_beyond_the_milvus_limit(lite_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(milvus_backend, "MAX_TOP_K", 4)
    gallery = unit_vectors(6, seed=9)
    index = open_milvus(lite_uri)
    assert (index.search(gallery[:1], 10)[1] == -1).all()
    index.add(np.arange(3, dtype=np.int64), gallery[:3])
    similarities, found = index.search(gallery[:1], 10)
    assert sorted(found[0, :3].tolist()) == [0, 1, 2] and (found[0, 3:] == -1).all()
    assert np.isneginf(similarities[0, 3:]).all()
    index.add(np.arange(3, 6, dtype=np.int64), gallery[3:])
    with pytest.raises(VectorIndexError, match="at most 4 results per query"):
        index.search(gallery[:1], 10)


def test_milvus_failures_become_vector_index_errors(lite_uri: str) -> None:
    index = open_milvus(lite_uri)
    with pytest.raises(VectorIndexError, match="Milvus search failed"):
        index.search(unit_vectors(1), 1, filter_expr="no_such_field > 1")


def test_a_lite_store_open_in_another_process_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "faces.db"
    holder = textwrap.dedent(
        f"""
        import sys
        from facetrace.index import open_index
        index = open_index("milvus://{path}", "{MODEL}", {DIM})
        print("ready", flush=True)
        sys.stdin.read()
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == b"ready"
        with pytest.raises(VectorIndexError, match="in use by another process"):
            open_index(f"milvus://{path}", MODEL, DIM)
    finally:
        process.communicate(timeout=30)
