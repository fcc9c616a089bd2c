"""The saved-clusters benchmark's subset and split (the measurements themselves need real models and run by hand)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from repo_files import load_module


def _bench() -> ModuleType:
    return load_module("bench/saved_clusters.py")


def test_subset_takes_whole_people_and_splits_their_photos_by_number(tmp_path: Path) -> None:
    rows = ["path,identity"]
    for person, count in (("Ann", 3), ("Bob", 1), ("Cy", 4), ("Di", 2)):
        rows += [f"lfw-deepfunneled/{person}/{person}_{n:04d}.jpg,{person}" for n in range(1, count + 1)]
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    first, second, truth = _bench().subset(tmp_path, 5, seed=0)
    people = set(truth.values())
    # Whole identities until at least 5 photos; never a part of one person's photos.
    assert len(truth) >= 5 and all(sum(1 for p in truth.values() if p == who) == n for who, n in _counts(people))
    assert sorted(map(str, first + second)) == sorted(truth)
    assert all(p.name.endswith(("_0001.jpg", "_0003.jpg")) for p in first)
    assert all(p.name.endswith(("_0002.jpg", "_0004.jpg")) for p in second)


def _counts(people: set[str]) -> list[tuple[str, int]]:
    sizes = {"Ann": 3, "Bob": 1, "Cy": 4, "Di": 2}
    return [(who, sizes[who]) for who in people]
