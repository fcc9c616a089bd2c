"""Saved clusters on real LFW photos: cluster --save, incremental placement at ingest, a person's merge and split
(recorded and audited), and erasure taking faces out of their clusters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facetrace.cli.main import app
from facetrace.engine import Engine, open_engine

pytestmark = pytest.mark.slow
runner = CliRunner()

PEOPLE = ("Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder", "Serena_Williams")
NEWCOMER = "Hugo_Chavez"
FIRST_PHOTOS = (1, 2, 3)
LATER_PHOTO = 4


def _photo(lfw: Path, person: str, number: int) -> Path:
    return lfw / "lfw-deepfunneled" / person / f"{person}_{number:04d}.jpg"


def _main_faces(engine: Engine, run_id: int) -> dict[str, int]:
    """Photo path -> the id of its largest face, for the faces one run stored."""
    records = engine.catalog.faces_by_id(engine.catalog.face_ids_of_run(run_id).tolist())
    largest: dict[str, tuple[float, int]] = {}
    for record in records.values():
        area = record.box.area
        if record.asset_uri not in largest or area > largest[record.asset_uri][0]:
            largest[record.asset_uri] = (area, record.face_id)
    return {uri: face_id for uri, (_, face_id) in largest.items()}


def _cli(*args: str) -> dict[str, object]:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    loaded: dict[str, object] = json.loads(result.stdout)
    return loaded


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("saved-clusters") / "data"


def test_saved_clusters_grow_at_ingest_and_record_every_change(data_dir: Path, lfw: Path) -> None:
    with open_engine(data_dir, workers=1) as engine:
        first = engine.ingest.run([_photo(lfw, p, n) for p in PEOPLE for n in FIRST_PHOTOS])
        # No clusters are saved yet: ingest places nothing.
        assert "clusters_joined" not in first.source_counts

    saved = _cli("cluster", "--save", "--data", str(data_dir))
    assert saved["faces_assigned"] == 0 and saved["faces_considered"] == first.faces_added
    with open_engine(data_dir, workers=1) as engine:
        mains = _main_faces(engine, first.run_id)
        store = engine.catalog.cluster_store()
        cluster_of = store.clusters_of_faces(list(mains.values()))
        # Every face is in exactly one cluster, and each person's photos share one cluster of their own.
        assert store.unclustered_face_ids(engine.model_id).size == 0
        by_person = {p: {cluster_of[mains[str(_photo(lfw, p, n))]] for n in FIRST_PHOTOS} for p in PEOPLE}
        assert all(len(clusters) == 1 for clusters in by_person.values()), by_person
        person_cluster = {p: next(iter(c)) for p, c in by_person.items()}
        assert len(set(person_cluster.values())) == len(PEOPLE)
        batch_events = store.cluster_events(person_cluster[PEOPLE[0]])
        assert [e.kind for e in batch_events] == ["create", "merge", "merge"]
        assert all(e.evidence["average_similarity"] >= 0.4 for e in batch_events[1:])  # type: ignore[operator]
        before = {c.cluster_id: c.face_ids for c in engine.clusters.saved()}

        # Saving again changes nothing: the ids of clusters and of their faces are stable.
        again = engine.clusters.save()
        assert (again.faces_considered, again.faces_assigned, again.clusters_created) == (0, 0, ())
        assert {c.cluster_id: c.face_ids for c in engine.clusters.saved()} == before

        # More photos of the same people join their clusters at ingest; a newcomer starts a cluster of their own.
        later = [_photo(lfw, p, LATER_PHOTO) for p in PEOPLE] + [_photo(lfw, NEWCOMER, n) for n in (1, 2, 3)]
        second = engine.ingest.run(later)
        assert second.source_counts["clusters_joined"] >= len(PEOPLE)
        new_mains = _main_faces(engine, second.run_id)
        placed = store.clusters_of_faces(list(new_mains.values()))
        assert len(placed) == len(new_mains)
        for person in PEOPLE:
            assert placed[new_mains[str(_photo(lfw, person, LATER_PHOTO))]] == person_cluster[person], person
        newcomer = {placed[new_mains[str(_photo(lfw, NEWCOMER, n))]] for n in (1, 2, 3)}
        assert len(newcomer) == 1 and not newcomer & set(before)
        assign = [e for e in store.cluster_events(person_cluster[PEOPLE[0]]) if e.kind == "assign"]
        assert assign and assign[0].actor == f"ingest:run {second.run_id}"
        assert assign[0].evidence["min_similarity"] >= engine.clustering_thresholds().min_link_similarity  # type: ignore[operator]
        run_cluster = _cli("cluster", "--run", str(second.run_id), "--data", str(data_dir))
        assert run_cluster["faces"] == engine.catalog.face_ids_of_run(second.run_id).size

    # With placement at ingest turned off, new faces wait in no cluster until the next --save places them.
    with open_engine(data_dir, workers=1, cluster_at_ingest=False) as engine:
        third = engine.ingest.run([_photo(lfw, PEOPLE[2], 5)])
        waiting = _main_faces(engine, third.run_id)[str(_photo(lfw, PEOPLE[2], 5))]
        assert "clusters_joined" not in third.source_counts
        assert waiting in engine.catalog.cluster_store().unclustered_face_ids(engine.model_id).tolist()
        update = engine.clusters.save(run_id=third.run_id)
        assert update.faces_assigned >= 1
        assert engine.catalog.cluster_store().clusters_of_faces([waiting]) == {waiting: person_cluster[PEOPLE[2]]}

    # A person merges two people the rules keep apart (recorded with the rules' evidence) and splits them again.
    kept, absorbed = person_cluster[PEOPLE[0]], person_cluster[PEOPLE[1]]
    merged = _cli(
        "clusters", "merge", str(kept), str(absorbed), "--reason", "test: wrong on purpose", "--data", str(data_dir)
    )
    evidence = merged["evidence"]
    assert isinstance(evidence, dict) and evidence["rules_would_merge"] is False
    assert merged["other_cluster_id"] == absorbed
    moved = merged["face_ids"]
    assert isinstance(moved, list) and moved
    split = _cli(
        "clusters",
        "split",
        str(kept),
        "--faces",
        ",".join(map(str, moved)),
        "--reason",
        "undo",
        "--data",
        str(data_dir),
    )
    assert split["face_ids"] == sorted(moved) and split["other_cluster_id"] not in (kept, absorbed)
    shown = _cli("clusters", "show", str(kept), "--data", str(data_dir))
    assert [e["kind"] for e in shown["events"]][-2:] == ["merge", "split"]  # type: ignore[index]
    listed = _cli("clusters", "list", "--limit", "0", "--data", str(data_dir))
    assert absorbed not in [c["cluster_id"] for c in listed["clusters"]]  # type: ignore[union-attr]

    # Hidden from the people view and shown again: stored, recorded, audited; hiding twice is refused.
    hidden = _cli("clusters", "hide", str(kept), "--reason", "not of interest", "--data", str(data_dir))
    assert (hidden["kind"], hidden["cluster_id"]) == ("hide", kept)
    listed = _cli("clusters", "list", "--limit", "0", "--data", str(data_dir))
    flags = {c["cluster_id"]: c["hidden"] for c in listed["clusters"]}  # type: ignore[union-attr]
    assert flags[kept] is True and sum(flags.values()) == 1
    again = runner.invoke(app, ["clusters", "hide", str(kept), "--reason", "again", "--data", str(data_dir), "--json"])
    assert again.exit_code != 0 and json.loads(again.stdout)["error"]["code"] == "conflict"
    assert _cli("clusters", "unhide", str(kept), "--reason", "needed", "--data", str(data_dir))["kind"] == "unhide"
    assert _cli("clusters", "show", str(kept), "--data", str(data_dir))["cluster"]["hidden"] is False  # type: ignore[index]

    with open_engine(data_dir, workers=1) as engine:
        actions = [e.action for e in engine.audit.entries()]
        assert actions.count("cluster_merge") == 1 and actions.count("cluster_split") == 1
        assert actions.count("cluster_hide") == 1 and actions.count("cluster_unhide") == 1
        assert "cluster_save" in actions
        assert engine.audit.verify().ok

        # Erasing a face takes it out of its cluster; erasing a cluster's last face deletes the cluster.
        newcomer_cluster = next(iter(newcomer))
        faces = engine.catalog.cluster_store().cluster_members([newcomer_cluster])[newcomer_cluster]
        receipt = engine.erasure.erase_faces("cli:tester", faces, "test erasure")
        assert engine.catalog.cluster_store().cluster(newcomer_cluster) is None
        (entry,) = [e for e in engine.audit.entries() if e.seq == receipt.audit_seq]
        assert entry.details["clusters_deleted"] == [newcomer_cluster]
        events = engine.catalog.cluster_store().cluster_events(newcomer_cluster)
        assert events[-1].kind == "erase" and set(events[-1].face_ids) == set(faces)
