"""The README's code runs as written: its Python example saved as a script, and the facetrace commands of its Quick
start, in a scratch folder laid out as the README assumes (the shared datasets at ../shared/datasets).

The Quick start's ingest reads deepface_testset/manifest.csv: here the scratch ../shared/datasets/deepface_testset
holds the real images and a manifest of the real one's first rows (all 62 photos take minutes on two shared cores),
so the command lines run letter for letter on a smaller input.
"""

from __future__ import annotations

import csv
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]

README = REPO_ROOT / "README.md"
QUICK_START_ROWS = 3  # rows of deepface_testset/manifest.csv the scratch copy keeps: img1.jpg (searched) and two more


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)


def _facetrace() -> str:
    found = shutil.which("facetrace", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("the facetrace console script is not installed beside this Python")
    return found


def _run(command: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """A command in a fresh process that imports this tree's facetrace, as an installed one would. Without the
    __main__ guard the example's spawned workers run the script again and wait for the writer lock its parent holds:
    the timeout turns that hang into a failure."""
    environment = os.environ | env | {"PYTHONPATH": str(REPO_ROOT / "src")}
    # A session of its own, so that a timeout ends the worker processes too (not only the script).
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        stderr += "\n(killed after 300 s)"
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def test_the_python_example_runs_as_a_script(tmp_path: Path, fr_examples: Path) -> None:
    (example,) = _blocks("python")
    assert 'if __name__ == "__main__":' in example, "ingest spawns worker processes, which import the script again"
    train = fr_examples / "examples" / "knn_examples" / "train"
    photos = tmp_path / "photos"
    photos.mkdir()
    for person, name in [("obama", "obama.jpg"), ("biden", "biden.jpg"), ("rose_leslie", "img1.jpg")]:
        (photos / f"{person}_{name}").symlink_to(train / person / name)
    (tmp_path / "probe.jpg").symlink_to(train / "obama" / "obama2.jpg")
    script = tmp_path / "example.py"
    script.write_text(example, encoding="utf-8")
    # Two workers, whatever this machine's core count: the example must survive spawned worker processes.
    ran = _run([sys.executable, str(script)], tmp_path, FACETRACE_WORKERS="2")
    assert ran.returncode == 0, ran.stderr[-3000:]
    lines = ran.stdout.strip().splitlines()
    assert len(lines) == 3, ran.stdout  # one line per gallery face: the probe's one face against three
    similarity, uri, verdict = lines[0].split(" ", 2)
    assert float(similarity) > 0.5 and uri.endswith("/obama/obama.jpg") and verdict.startswith("strong lead")
    assert (tmp_path / "demo-data" / "facetrace.json").is_file()


def test_the_quick_start_commands_run_as_written(tmp_path: Path, datasets: Path) -> None:
    quick_start = next(block for block in _blocks("sh") if "facetrace ingest" in block)
    commands = [part.strip() for part in quick_start.split("&&") if part.strip().startswith("facetrace ")]
    assert [shlex.split(c)[1] for c in commands] == ["ingest", "search"], quick_start
    # The layout the README assumes: the repository (the working directory) beside shared/datasets.
    repo, shared = tmp_path / "repo", tmp_path / "shared" / "datasets"
    repo.mkdir()
    shared.mkdir(parents=True)
    for folder in datasets.iterdir():
        if folder.name != "deepface_testset":
            (shared / folder.name).symlink_to(folder)
    deepface = shared / "deepface_testset"
    deepface.mkdir()
    (deepface / "images").symlink_to(datasets / "deepface_testset" / "images")
    with (datasets / "deepface_testset" / "manifest.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))[: 1 + QUICK_START_ROWS]
    with (deepface / "manifest.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    assert rows[1][0] == "images/img1.jpg"

    executable = _facetrace()
    ingest, search = ([executable, *shlex.split(c)[1:]] for c in commands)
    ingested = _run(ingest, repo, FACETRACE_WORKERS="1")
    assert ingested.returncode == 0, ingested.stderr[-3000:]
    assert f"{QUICK_START_ROWS} images seen, {QUICK_START_ROWS} added" in ingested.stdout
    searched = _run(search, repo, FACETRACE_WORKERS="1")
    assert searched.returncode == 0, searched.stderr[-3000:]
    obama, img1 = searched.stdout.split("\n\n")
    assert "obama1.jpg, face 0" in obama.splitlines()[0]
    first_hit = img1.splitlines()[2]
    assert "img1.jpg, face 0" in img1.splitlines()[0] and "angelina_jolie" in first_hit, searched.stdout
