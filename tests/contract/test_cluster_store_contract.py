"""The persisted clusters (clusters, members, events) and erasure's effect on them, on SQLite and on PostgreSQL
(same fixtures as the catalog contract)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from catalog_samples import MODEL, make_asset, make_face

from facetrace.catalog import SqlCatalog, open_catalog
from facetrace.catalog.cluster_store import SqlClusterStore
from facetrace.catalog.database import catalog_url
from facetrace.catalog.schema import alembic_config
from facetrace.core.errors import CatalogError, ConflictError, InvalidRequestError, NotFoundError
from facetrace.core.types import ClusterAssignment, NewCluster


def _faces(catalog: SqlCatalog, count: int, *, model_id: str = MODEL, start: int = 1) -> list[int]:
    run_id = catalog.start_run("", model_id)
    ids: list[int] = []
    for number in range(start, start + count):
        _, face_ids = catalog.add_asset_with_faces(run_id, make_asset(number), [make_face(number, model_id)], model_id)
        ids.extend(face_ids)
    return ids


def test_the_cluster_tables_exist(catalog: SqlCatalog, raw_engine: sa.Engine) -> None:
    assert {"clusters", "cluster_members", "cluster_events"} <= set(sa.inspect(raw_engine).get_table_names())


def test_created_clusters_keep_members_and_events(catalog: SqlCatalog, catalog_uri: str) -> None:
    store = catalog.cluster_store()
    a, b, c, d = _faces(catalog, 4)
    merge = {"kept_face_id": a, "absorbed_face_id": b, "average_similarity": 0.61}
    first, second = store.create_clusters(
        MODEL,
        [NewCluster((a, b), "batch", {"thresholds": {"edge": 0.43}}, (merge,)), NewCluster((c,), "batch")],
        "cli:tester",
        "cluster --save",
    )
    assert store.count_clusters(MODEL) == 2 and store.count_clusters("other-model") == 0
    assert [(x.cluster_id, x.face_ids) for x in store.clusters(MODEL)] == [(first, (a, b)), (second, (c,))]
    assert store.clusters_of_faces([a, b, c, d]) == {a: first, b: first, c: second}
    assert store.unclustered_face_ids(MODEL).tolist() == [d]
    events = store.cluster_events(first)
    assert [(e.kind, e.actor, e.reason) for e in events] == [
        ("create", "cli:tester", "cluster --save"),
        ("merge", "cli:tester", "cluster --save"),
    ]
    assert events[0].face_ids == (a, b) and events[1].evidence == merge
    assert events[0].at.tzinfo is not None
    # A face is in one cluster at most; faces must exist and be of the cluster's model.
    with pytest.raises(ConflictError):
        store.create_clusters(MODEL, [NewCluster((a, d), "batch")], "x", "again")
    assert store.unclustered_face_ids(MODEL).tolist() == [d]  # the refused transaction changed nothing
    with pytest.raises(CatalogError, match="no face 999999"):
        store.create_clusters(MODEL, [NewCluster((999_999,), "batch")], "x", "y")
    (other,) = _faces(catalog, 1, model_id="other-model", start=50)
    with pytest.raises(CatalogError, match="not of model"):
        store.create_clusters(MODEL, [NewCluster((other,), "batch")], "x", "y")
    with pytest.raises(InvalidRequestError):
        store.create_clusters(MODEL, [NewCluster((d,), "guessed")], "x", "y")
    # Stored, not cached: another connection sees the same.
    with open_catalog(catalog_uri) as again:
        assert again.cluster_store().clusters_of_faces([a, c]) == {a: first, c: second}


def test_assign_merge_split_rename_are_recorded(catalog: SqlCatalog) -> None:
    store = catalog.cluster_store()
    a, b, c, d, e = _faces(catalog, 5)
    first, second = store.create_clusters(MODEL, [NewCluster((a,), "batch"), NewCluster((b,), "batch")], "s", "r")
    assert store.assign_faces([ClusterAssignment(c, first, {"average_similarity": 0.7})], "ingest:run 2", "ingest") == 1
    with pytest.raises(NotFoundError):
        store.assign_faces([ClusterAssignment(d, 424242)], "x", "y")
    with pytest.raises(ConflictError):
        store.assign_faces([ClusterAssignment(c, second)], "x", "y")

    merged = store.merge_clusters(first, second, "cli:alice", "same person, checked", {"rules_would_merge": False})
    assert (merged.kind, merged.cluster_id, merged.other_cluster_id, merged.face_ids) == ("merge", first, second, (b,))
    assert store.cluster(second) is None
    assert store.cluster_members([first]) == {first: [a, b, c]}
    with pytest.raises(NotFoundError):
        store.merge_clusters(first, second, "x", "y", {})
    with pytest.raises(InvalidRequestError):
        store.merge_clusters(first, first, "x", "y", {})

    split = store.split_cluster(first, [c, a], "cli:bob", "two people", {"average_similarity": 0.2})
    new_id = split.other_cluster_id
    assert new_id is not None and split.face_ids == (a, c)
    assert store.cluster_members([first, new_id]) == {first: [b], new_id: [a, c]}
    with pytest.raises(InvalidRequestError, match="not in cluster"):
        store.split_cluster(first, [e], "x", "y", {})
    with pytest.raises(InvalidRequestError, match="empty"):
        store.split_cluster(first, [b], "x", "y", {})

    renamed = store.rename_cluster(new_id, " Ada ", "cli:bob", "confirmed by the case file")
    found = store.cluster(new_id)
    assert found is not None and found.name == "Ada" and renamed.evidence == {"previous_name": None, "name": "Ada"}
    assert found.updated_at >= found.created_at
    # The history of the absorbed cluster outlives it; every event names its actor and reason.
    assert [e.kind for e in store.cluster_events(second)] == ["create", "merge"]
    assert [e.kind for e in store.cluster_events(first)] == ["create", "assign", "merge", "split"]
    assert [e.kind for e in store.cluster_events(new_id)] == ["split", "rename"]
    assert new_id not in (first, second)  # a deleted cluster's id is never handed out again


def test_erased_faces_leave_their_clusters(catalog: SqlCatalog) -> None:
    store: SqlClusterStore = catalog.cluster_store()
    a, b, c = _faces(catalog, 3)
    pair, single = store.create_clusters(MODEL, [NewCluster((a, b), "batch"), NewCluster((c,), "batch")], "s", "r")
    deleted = catalog.delete_faces([a, c], actor="cli:dpo", reason="erasure er_1: request 7")
    assert deleted.cluster_ids == (pair, single) and deleted.clusters_deleted == (single,)
    assert store.cluster_members([pair, single]) == {pair: [b]}
    assert store.cluster(single) is None
    erase_events = [e for e in store.cluster_events() if e.kind == "erase"]
    assert [(e.cluster_id, e.face_ids, e.actor, e.evidence) for e in erase_events] == [
        (pair, (a,), "cli:dpo", {"cluster_deleted": False}),
        (single, (c,), "cli:dpo", {"cluster_deleted": True}),
    ]
    # Faces in no cluster are deleted as before, with nothing to record.
    (d,) = _faces(catalog, 1, start=10)
    assert catalog.delete_faces([d]).cluster_ids == ()


def test_a_cluster_is_hidden_and_shown_again_with_an_event_each(catalog: SqlCatalog) -> None:
    store = catalog.cluster_store()
    a, b = _faces(catalog, 2)
    (cluster_id,) = store.create_clusters(MODEL, [NewCluster((a, b), "batch")], "s", "r")
    found = store.cluster(cluster_id)
    assert found is not None and found.hidden is False
    hidden = store.set_cluster_hidden(cluster_id, True, "ui:rita", "not of interest to anyone")
    assert (hidden.kind, hidden.actor, hidden.face_ids) == ("hide", "ui:rita", ())
    assert [c.hidden for c in store.clusters(MODEL)] == [True] and store.cluster_members([cluster_id])[cluster_id]
    with pytest.raises(ConflictError, match="hidden already"):
        store.set_cluster_hidden(cluster_id, True, "ui:rita", "again")
    store.set_cluster_hidden(cluster_id, False, "ui:rita", "needed after all")
    assert store.cluster(cluster_id).hidden is False  # type: ignore[union-attr]
    assert [e.kind for e in store.cluster_events(cluster_id)] == ["create", "hide", "unhide"]
    with pytest.raises(NotFoundError):
        store.set_cluster_hidden(cluster_id + 99, True, "ui:rita", "r")


def test_faces_of_a_run(catalog: SqlCatalog) -> None:
    first = _faces(catalog, 2)
    second = _faces(catalog, 3, start=20)
    runs = sorted(run.run_id for run in catalog.runs())
    assert catalog.face_ids_of_run(runs[0]).tolist() == first
    assert catalog.face_ids_of_run(runs[1], MODEL).tolist() == second
    assert catalog.face_ids_of_run(runs[1], "other-model").tolist() == []


def test_a_catalog_from_before_clusters_upgrades_with_its_faces(catalog_uri: str, catalog: SqlCatalog) -> None:
    face_ids = _faces(catalog, 3)
    catalog.close()
    engine = sa.create_engine(catalog_url(catalog_uri))
    try:
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "0002")
            assert "clusters" not in sa.inspect(connection).get_table_names()
    finally:
        engine.dispose()
    with open_catalog(catalog_uri) as upgraded:
        store = upgraded.cluster_store()
        assert store.unclustered_face_ids(MODEL).tolist() == face_ids
        (created,) = store.create_clusters(MODEL, [NewCluster(tuple(face_ids), "batch")], "s", "r")
        assert store.clusters_of_faces(face_ids) == dict.fromkeys(face_ids, created)
