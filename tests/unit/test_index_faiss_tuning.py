"""An approximate FAISS index tunes its own search depth (nprobe, re-ranking depth) to its recall target and its
single-query thread count to the faster one when it is trained, again when it has grown, and records them."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt
import pytest
from pydantic import ValidationError

from facetrace.config import Settings
from facetrace.index import open_index
from facetrace.index.faiss.backend import FaissIndex
from facetrace.index.faiss.files import meta_path_for
from facetrace.index.faiss.sizing import nprobe_for
from facetrace.index.faiss.stores import ALL_THREADS, IvfStore, omp_threads
from facetrace.index.faiss.tuning import (
    REFINE_BISECTIONS,
    RERANK_DEPTHS,
    SAME_PERSON_COSINE,
    Sample,
    Tuning,
    candidate_nprobes,
    choose_depth,
    fastest,
    noisy_copies,
)
from facetrace.index.threads import set_query_threads

MODEL = "model-t"
DIM = 64
COUNT = 6000
NLIST = 128  # trains at 40 * 128 = 5120 vectors; the default nprobe is 16
DEFAULT_NPROBE = nprobe_for(NLIST)


def normalised(vectors: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def hard_vectors(seed: int = 0) -> npt.NDArray[np.float32]:
    """Spread evenly over the sphere: a query's nearest neighbour is often in a list the default nprobe skips."""
    return normalised(np.random.default_rng(seed).standard_normal((COUNT, DIM)))


def easy_vectors(seed: int = 0) -> npt.NDArray[np.float32]:
    """32 tight, well-separated clusters: a query's nearest neighbour lies in the lists nearest to it."""
    rng = np.random.default_rng(seed)
    centres = normalised(rng.standard_normal((32, DIM)))
    spread = 0.1 / np.sqrt(DIM) * rng.standard_normal((COUNT, DIM))
    return normalised(centres[rng.integers(0, 32, COUNT)] + spread)


def filled(path: Path, vectors: npt.NDArray[np.float32], **options: object) -> FaissIndex:
    index = FaissIndex(path, MODEL, DIM, structure="ivf", nlist=NLIST, **options)  # type: ignore[arg-type]
    index.add(np.arange(vectors.shape[0], dtype=np.int64), vectors)
    assert index.trained
    return index


def test_queries_are_noisy_copies_at_the_same_person_cosine() -> None:
    vectors = hard_vectors()[:50]
    queries = noisy_copies(vectors)
    np.testing.assert_allclose(np.linalg.norm(queries, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.sum(queries * vectors, axis=1), SAME_PERSON_COSINE, atol=1e-5)


def test_candidates_grow_by_root_two_from_the_default_up_to_every_list() -> None:
    assert candidate_nprobes(128) == [16, 23, 32, 45, 64, 91, 128]
    assert candidate_nprobes(4000) == [500, 707, 1000, 1414, 2000, 2828, 4000]
    assert candidate_nprobes(8) == [8]


def _sample(count: int) -> Sample:
    return Sample(np.zeros((count, 2), np.float32), np.arange(count, dtype=np.int64), np.ones(count, np.float32))


def _recall_table(count: int, found_within: Callable[[int], int]) -> tuple[list[tuple[int, int]], Any, Any]:
    """A table of recalls by (nprobe, depth): every query's answer is found at position found_within(nprobe) of the
    shortlist (the rows stand for 'found at this depth'). Returns the (nprobe, depth) pairs asked for and the two
    callables choose_depth takes."""
    asked: list[tuple[int, int]] = []

    def shortlist_at(nprobe: int, depth: int) -> npt.NDArray[np.int64]:
        asked.append((nprobe, depth))
        rows = np.full((count, depth), -1, dtype=np.int64)
        position = found_within(nprobe)
        if position < depth:
            rows[:, position] = np.arange(count)
        return rows

    def rerank_top1(rows: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        hit = (rows >= 0).any(axis=1)
        return np.where(hit, 1.0, 0.0).astype(np.float32), np.where(hit, np.arange(count), -1)

    return asked, shortlist_at, rerank_top1


def test_the_smallest_nprobe_then_the_smallest_rerank_that_meets_the_target_is_chosen() -> None:
    count = 100
    deepest = max(RERANK_DEPTHS)
    # Below nprobe 21 no depth is enough; from 21 depth 200 is (100 is not); from 32 depth 50 is.
    asked, shortlist_at, rerank_top1 = _recall_table(count, lambda nprobe: 10_000 if nprobe < 21 else 150)
    depth = choose_depth(128, Tuning(0.99), _sample(count), shortlist_at, rerank_top1)
    # The root-two steps reach the target at 23 (16 falls short); bisecting 16..23 finds 21, never a deeper step.
    assert (depth.nprobe, depth.rerank, depth.recall) == (21, 200, 1.0)
    assert asked == [(16, deepest), (23, deepest), (19, deepest), (21, deepest), (20, deepest)]
    # A caller's depth is kept (and measured) even when it misses the target, and not bisected.
    asked.clear()
    given = choose_depth(128, Tuning(0.99, nprobe=23, rerank=100), _sample(count), shortlist_at, rerank_top1)
    assert (given.nprobe, given.rerank, given.recall) == (23, 100, 0.0) and asked == [(23, 100)]


def test_bisection_narrows_the_root_two_step_to_an_eighth() -> None:
    count = 100
    # The smallest sufficient nprobe is 1,100: the steps from 500 fall short at 707 and 1,000 and reach it at 1,414.
    asked, shortlist_at, rerank_top1 = _recall_table(count, lambda nprobe: 0 if nprobe >= 1_100 else 10_000)
    depth = choose_depth(4000, Tuning(0.99), _sample(count), shortlist_at, rerank_top1)
    assert [nprobe for nprobe, _ in asked] == [500, 707, 1000, 1414, 1207, 1103, 1051]
    assert (depth.nprobe, depth.rerank) == (1103, RERANK_DEPTHS[0]) and REFINE_BISECTIONS == 3
    # When the first step (the default) already reaches the target there is nothing below it to bisect.
    first = choose_depth(4000, Tuning(0.99), _sample(count), *_recall_table(count, lambda nprobe: 0)[1:])
    assert first.nprobe == 500


def test_the_faster_thread_count_wins_and_a_tie_goes_to_fewer() -> None:
    assert fastest({1: 2.0, 2: 1.5}) == 2
    assert fastest({1: 1.2, 2: 1.5}) == 1
    assert fastest({1: 1.5, 2: 1.5}) == 1


def test_omp_threads_sets_the_count_for_the_calling_thread_only() -> None:
    seen: list[int] = []
    inside = threading.Event()
    release = threading.Event()

    def other() -> None:
        inside.wait()
        seen.append(faiss.omp_get_max_threads())
        release.set()

    thread = threading.Thread(target=other)
    thread.start()
    before = faiss.omp_get_max_threads()
    with omp_threads(1):
        assert faiss.omp_get_max_threads() == 1
        inside.set()
        release.wait()
    thread.join()
    assert faiss.omp_get_max_threads() == before and seen == [ALL_THREADS]


def test_hard_data_gets_a_larger_nprobe_that_meets_the_target(tmp_path: Path) -> None:
    index = filled(tmp_path / "f.faiss", hard_vectors())
    point = index.describe()["operating_point"]
    assert point["source"] == "measured" and point["given"] == [] and point["queries"] == 300
    assert point["nprobe"] > DEFAULT_NPROBE and point["recall_at_1"] >= 0.99 == point["target_recall"]
    assert index.structure.nprobe == point["nprobe"] and index.structure.rerank == point["rerank"] in RERANK_DEPTHS
    assert point["count"] == len(index) and point["p50_ms"] == point["p50_ms_by_threads"][str(point["threads"])] > 0
    # The default depth really misses the target here (measured on the same sample, kept as the caller's).
    index.tune(nprobe=DEFAULT_NPROBE)
    default = index.describe()["operating_point"]
    assert default["source"] == "given" and default["nprobe"] == DEFAULT_NPROBE == index.structure.nprobe
    assert default["recall_at_1"] < 0.99


def test_easy_data_keeps_the_default_nprobe_and_the_shallowest_rerank(tmp_path: Path) -> None:
    index = filled(tmp_path / "f.faiss", easy_vectors())
    point = index.describe()["operating_point"]
    assert point["nprobe"] == DEFAULT_NPROBE == index.structure.nprobe and point["recall_at_1"] >= 0.99
    assert point["rerank"] == RERANK_DEPTHS[0] == index.structure.rerank


def test_single_queries_run_on_the_measured_thread_count_and_batches_on_all(tmp_path: Path) -> None:
    index = filled(tmp_path / "f.faiss", easy_vectors())
    point = index.describe()["operating_point"]
    assert set(point["p50_ms_by_threads"]) == {str(count) for count in {1, ALL_THREADS}}
    assert index.single_query_threads == point["threads"] in {1, ALL_THREADS}
    store = index._store
    assert isinstance(store, IvfStore)
    # What faiss's thread count was while the IVF searched: a spy in front of the real IVF.
    seen: list[int] = []
    real = store._ivf

    class Spy:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def search(self, queries: npt.NDArray[np.float32], k: int) -> Any:
            seen.append(faiss.omp_get_max_threads())
            return real.search(queries, k)

    store._ivf = Spy()
    store.operating_point = dict(point, threads=1)
    vectors = easy_vectors(1)[:4]
    index.search(vectors[:1], 5)
    index.search(vectors, 5)
    assert seen == [1, ALL_THREADS] and faiss.omp_get_max_threads() == ALL_THREADS


def test_a_lower_target_needs_fewer_probes(tmp_path: Path) -> None:
    strict = filled(tmp_path / "a.faiss", hard_vectors(), target_recall=0.99)
    loose = filled(tmp_path / "b.faiss", hard_vectors(), target_recall=0.5)
    assert loose.structure.nprobe < strict.structure.nprobe
    assert loose.describe()["operating_point"]["recall_at_1"] >= 0.5


def test_the_operating_point_survives_save_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "f.faiss"
    index = filled(path, hard_vectors())
    point = index.describe()["operating_point"]
    index.save()
    assert json.loads(meta_path_for(path).read_text())["operating_point"] == point
    reopened = FaissIndex(path, MODEL, DIM)
    assert reopened.describe()["operating_point"] == point
    assert reopened.structure.nprobe == point["nprobe"]


def test_a_callers_nprobe_is_kept_and_measured(tmp_path: Path) -> None:
    path = tmp_path / "f.faiss"
    index = filled(path, hard_vectors(), nprobe=8)
    point = index.describe()["operating_point"]
    assert index.structure.nprobe == 8 and point["nprobe"] == 8 and point["source"] == "given"
    assert point["given"] == ["nprobe"] and point["rerank"] in RERANK_DEPTHS
    assert point["recall_at_1"] is not None and point["recall_at_1"] < 0.99
    # A restructure keeps it, and so does one after a save and reopen.
    index.restructure("ivf")
    assert index.structure.nprobe == 8
    index.save()
    reopened = FaissIndex(path, MODEL, DIM, nlist=NLIST)
    reopened.restructure("ivf")
    assert reopened.structure.nprobe == 8 and reopened.describe()["operating_point"]["source"] == "given"


def test_a_restructure_tunes_the_new_structure(tmp_path: Path) -> None:
    index = FaissIndex(tmp_path / "f.faiss", MODEL, DIM, structure="exact", nlist=NLIST)
    index.add(np.arange(COUNT, dtype=np.int64), hard_vectors())
    assert index.describe()["operating_point"] is None
    index.restructure("ivf")
    point = index.describe()["operating_point"]
    assert point["source"] == "measured" and point["recall_at_1"] >= 0.99
    assert index.structure.nprobe == point["nprobe"]


def test_open_index_passes_the_target_and_settings_bound_it(tmp_path: Path) -> None:
    index = open_index(tmp_path / "f.faiss", MODEL, DIM, target_recall=0.95)
    assert isinstance(index, FaissIndex) and index.target_recall == 0.95
    assert Settings(target_recall=0.9).target_recall == 0.9
    assert Settings().target_recall == 0.99
    with pytest.raises(ValidationError):
        Settings(target_recall=0.4)
    with pytest.raises(ValueError, match="target_recall"):
        FaissIndex(tmp_path / "g.faiss", MODEL, DIM, target_recall=0.0)


def test_stats_show_the_faiss_index_and_its_operating_point(tmp_path: Path) -> None:
    from facetrace.engine import open_engine

    with open_engine(tmp_path / "gallery", target_recall=0.95) as engine:
        described = engine.stats()["index"]
    assert described["backend"] == "faiss" and described["structure"] == "IDMap2,Flat"
    assert described["target_recall"] == 0.95 and described["operating_point"] is None


def test_a_callers_rerank_is_kept_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "f.faiss"
    index = filled(path, hard_vectors(), rerank=30)
    point = index.describe()["operating_point"]
    assert index.structure.rerank == 30 == point["rerank"] and point["given"] == ["rerank"]
    assert point["nprobe"] > DEFAULT_NPROBE  # the nprobe is still tuned
    index.save()
    reopened = FaissIndex(path, MODEL, DIM, nlist=NLIST)
    reopened.restructure("ivf")
    assert reopened.structure.rerank == 30 and reopened.describe()["operating_point"]["given"] == ["rerank"]


def test_a_gallery_grown_to_twice_its_tuned_size_is_tuned_again_at_save(tmp_path: Path) -> None:
    """nlist 16 trains at 640 faces: added 700 at a time, the index trains and tunes at 700 of 6,000."""
    path = tmp_path / "f.faiss"
    vectors = hard_vectors()
    index = FaissIndex(path, MODEL, DIM, structure="ivf", nlist=16)
    index.add(np.arange(700, dtype=np.int64), vectors[:700])
    assert index.describe()["operating_point"]["count"] == 700
    index.add(np.arange(700, 1300, dtype=np.int64), vectors[700:1300])
    index.save()  # 1,300 < 2 x 700: not yet
    assert index.describe()["operating_point"]["count"] == 700
    index.add(np.arange(1300, COUNT, dtype=np.int64), vectors[1300:])
    index.save()
    point = index.describe()["operating_point"]
    assert point["count"] == COUNT and point["recall_at_1"] >= 0.99
    assert json.loads(meta_path_for(path).read_text())["operating_point"] == point
    index.save()  # no growth since: the same point
    assert index.describe()["operating_point"] == point


def test_an_index_tuned_before_the_size_was_recorded_is_tuned_again_and_keeps_a_given_nprobe(tmp_path: Path) -> None:
    path = tmp_path / "f.faiss"
    index = filled(path, hard_vectors(), nprobe=8)
    index.save()
    meta = json.loads(meta_path_for(path).read_text())
    for name in ("count", "given", "rerank", "threads", "p50_ms_by_threads"):
        del meta["operating_point"][name]
    meta_path_for(path).write_text(json.dumps(meta))
    reopened = FaissIndex(path, MODEL, DIM)
    reopened.save()
    point = reopened.describe()["operating_point"]
    assert point["count"] == COUNT and point["nprobe"] == 8 == reopened.structure.nprobe
    assert point["given"] == ["nprobe"] and point["recall_at_1"] < 0.99


def test_check_shows_the_index_and_its_operating_point(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from facetrace.cli.gallery import _index_line
    from facetrace.cli.main import app
    from facetrace.engine import open_engine

    with open_engine(tmp_path / "gallery"):
        pass  # an empty gallery, exact
    result = CliRunner().invoke(app, ["check", "--data", str(tmp_path / "gallery")])
    assert result.exit_code == 0 and "index: IDMap2,Flat" in result.stdout
    index = filled(tmp_path / "f.faiss", easy_vectors())
    point = index.describe()["operating_point"]
    line = _index_line(index.describe())
    assert line.startswith(f"index: {index.structure.describe()}; operating point (measured, at {COUNT} faces)")
    assert f"nprobe {point['nprobe']}, rerank {point['rerank']}, recall@1 {point['recall_at_1']}" in line
    assert f"on {point['threads']} thread(s)" in line


def test_a_serving_workers_cap_bounds_the_measured_thread_count() -> None:
    """A probe pool worker queries on one thread (index/threads.py): an index that measured two threads faster for a
    lone query does not raise it, while a thread without a cap gets the measured count."""
    counts: dict[str, int] = {}

    def capped() -> None:
        set_query_threads(1)
        with omp_threads(2):
            counts["capped"] = faiss.omp_get_max_threads()

    def free() -> None:
        with omp_threads(2):
            counts["free"] = faiss.omp_get_max_threads()

    for name, target in (("capped", capped), ("free", free)):
        thread = threading.Thread(target=target, name=name)
        thread.start()
        thread.join()
    assert counts == {"capped": 1, "free": 2}


@pytest.mark.skipif(ALL_THREADS < 2, reason="one thread: nothing to spread")
@pytest.mark.parametrize(("code", "spread", "mode"), [("SQ8", 1, "parallel_mode"), ("PQ16x4fs", 15, "implem")])
def test_a_single_query_on_several_threads_spreads_the_lists_over_them(
    tmp_path: Path, code: str, spread: int, mode: str
) -> None:
    """faiss scans one query's lists on one thread unless told to spread them (parallel_mode 1, or fast-scan
    implementation 15 for a shortlist deeper than 20); a batch spreads its queries. Both shortlists score alike (which
    of two candidates tied at the cut-off comes first may differ)."""
    index = filled(tmp_path / "f.faiss", hard_vectors(), code=code)
    store = index._store
    assert isinstance(store, IvfStore) and store._ivf is not None
    depth = store.structure.rerank
    assert depth > 20
    queries = hard_vectors(1)[:20]
    store.search(queries, 5)
    assert getattr(store._ivf, mode) == 0
    batch_scores, _ = store._ivf.search(queries, depth)
    for row in range(queries.shape[0]):
        store.search(queries[row : row + 1], 5, threads=2)
        assert getattr(store._ivf, mode) == spread
        with omp_threads(2):
            scores, _ = store._ivf.search(queries[row : row + 1], depth)
        np.testing.assert_array_equal(np.sort(scores[0]), np.sort(batch_scores[row]))
    store.search(queries[:1], 5, threads=1)
    assert getattr(store._ivf, mode) == 0
