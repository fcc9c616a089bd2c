"""A data directory whose index is a real Milvus server (milvus://host:19530/<database>): real photos are ingested,
searched from the engine and the CLI, checked, erased, and found again after the directory is reopened.

Needs a Milvus server (tests/milvus_server.py: skipped when none answers, a failure under
FACETRACE_REQUIRE_MILVUS_SERVER=1). The database is this test's own, named but not created beforehand, so facetrace
creates it on first use; it is dropped at the end.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import GALLERY, SmallGallery
from facetrace.cli.main import app
from facetrace.core.ports import VectorIndex
from facetrace.engine import Engine, open_engine
from facetrace.index import open_index
from milvus_server import MilvusTestDatabase, server_database

pytestmark = pytest.mark.slow


@pytest.fixture
def milvus_database() -> Iterator[MilvusTestDatabase]:
    with server_database(create=False) as database:
        yield database


def _stored_in_milvus(database: MilvusTestDatabase) -> list[int]:
    """The face ids in the server's collection, read with pymilvus directly rather than through facetrace."""
    (collection,) = database.client.list_collections()
    rows = database.client.query(collection, filter="id >= 0", output_fields=["id"], consistency_level="Strong")
    return sorted(int(row["id"]) for row in rows)


def _faces_labelled(engine: Engine, label: str) -> list[int]:
    records = engine.catalog.faces_by_id(engine.catalog.face_ids(engine.model_id).tolist())
    return sorted(face_id for face_id, record in records.items() if record.label == label)


def test_ingest_search_erase_and_reopen_on_a_milvus_server(
    milvus_database: MilvusTestDatabase, small_gallery: SmallGallery, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    engine = open_engine(data, workers=1, index_uri=milvus_database.uri)
    try:
        summary = engine.ingest.run(manifests=[small_gallery.manifest])
        assert summary.errors == 0, summary.error_messages
        assert summary.images_added == len(GALLERY) and summary.faces_added >= len(GALLERY)
        face_ids = engine.catalog.face_ids(engine.model_id).tolist()
        # facetrace created the database and one collection in it, holding exactly the catalog's faces.
        assert _stored_in_milvus(milvus_database) == sorted(face_ids)
        assert engine.stats()["index_uri"] == milvus_database.uri

        (outcome,) = engine.search.file(small_gallery.probe, top_k=5)
        assert outcome.hits[0].face.label == "obama"
        assert outcome.hits[0].evidence.gallery_size == len(face_ids)
        assert engine.index.check().consistent

        biden = _faces_labelled(engine, "biden")
        assert len(biden) == 2
        receipt = engine.erasure.erase_person("admin", "biden", "request 12")
        assert sorted(receipt.face_ids) == biden
        assert _stored_in_milvus(milvus_database) == sorted(set(face_ids) - set(biden))
        (again,) = engine.search.file(small_gallery.paths_of("biden")[0], top_k=5)
        assert not {hit.face.face_id for hit in again.hits} & set(biden)
    finally:
        engine.close()

    # Reopened from the data directory alone (it recorded the index URI): the vectors are on the server, not here.
    assert not list(data.glob("*.faiss*"))
    runner = CliRunner()
    searched = runner.invoke(app, ["search", str(small_gallery.probe), "--top-k", "3", "--data", str(data), "--json"])
    assert searched.exit_code == 0, searched.output
    (probe_result,) = json.loads(searched.output)["results"]
    assert probe_result["hits"][0]["face"]["label"] == "obama"
    checked = runner.invoke(app, ["check", "--data", str(data), "--json"])
    assert checked.exit_code == 0, checked.output
    report = json.loads(checked.output)
    assert report["consistent"] and report["index_entries"] == len(face_ids) - len(biden)
    assert np.isin(biden, _stored_in_milvus(milvus_database)).sum() == 0


def test_replicas_starting_at_once_share_one_new_database(milvus_database: MilvusTestDatabase) -> None:
    """Several processes opening a database that does not exist yet (serve replicas starting together) all get it:
    whoever loses the race to create it uses the one the winner made."""
    vectors = np.eye(4, 8, dtype=np.float32)

    def open_and_add(face_id: int) -> VectorIndex:
        index = open_index(milvus_database.uri, "race-model", 8)
        index.add(np.array([face_id], dtype=np.int64), vectors[face_id : face_id + 1])
        return index

    with ThreadPoolExecutor(max_workers=4) as pool:
        indexes = list(pool.map(open_and_add, range(4)))
    assert milvus_database.client.list_collections() == [indexes[0].collection_name]  # type: ignore[attr-defined]
    for index in indexes:
        np.testing.assert_array_equal(index.ids(), np.arange(4))
        index.close()  # type: ignore[attr-defined]


def test_a_search_right_after_a_remove_does_not_return_the_removed_face(milvus_database: MilvusTestDatabase) -> None:
    """Searches are Session-consistent (no wait for the server's next time tick), yet read this process's removes at
    once: pymilvus does not record a delete's timestamp, so the adapter makes the first search after one Strong."""
    vectors = np.eye(8, dtype=np.float32)
    index = open_index(milvus_database.uri, "session-model", 8)
    index.add(np.arange(8, dtype=np.int64), vectors)
    assert index.search(vectors[:1], 1)[1][0, 0] == 0
    for face_id in range(4):
        assert index.remove(np.array([face_id], dtype=np.int64)) == 1
        found = index.search(vectors[face_id : face_id + 1], 8)[1][0]
        assert face_id not in found and sorted(found[found >= 0]) == list(range(face_id + 1, 8))
    index.close()  # type: ignore[attr-defined]
