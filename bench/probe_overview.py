"""What the probe overview costs: analysing a group photo (detect, assess, align, embed every face) and drawing it
with its numbered faces (vision/annotate.py), on the group photos of the shared datasets.

    python bench/probe_overview.py [--datasets DIR] [--repeats 10] [--json]

The overview analyses an upload once (the search of its picked faces reuses that analysis in the same process) and
draws the picture each time the page is shown. Medians of --repeats runs, one thread, no gallery needed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from facetrace.engine import open_engine
from facetrace.vision.annotate import MarkedFace, annotate

PHOTOS = (
    "deepface_testset/images/selfie-many-people.jpg",
    "group_photos/insightface_t1.jpg",
    "face_recognition_examples/examples/knn_examples/test/obama_and_biden.jpg",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "datasets")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as data, open_engine(Path(data) / "data", create=True, workers=1) as engine:
        for name in PHOTOS:
            raw = (args.datasets / name).read_bytes()
            analyse, draw = [], []
            for _ in range(args.repeats):
                start = time.perf_counter()
                image = engine.search.analyze(raw, name)
                analyse.append(time.perf_counter() - start)
                marks = [MarkedFace(str(n), f.detection.box, f.quality.flags) for n, f in enumerate(image.faces)]
                start = time.perf_counter()
                annotate(raw, name, marks)
                draw.append(time.perf_counter() - start)
            rows.append(
                {
                    "photo": Path(name).name,
                    "size": f"{image.width}x{image.height}",
                    "faces": len(image.faces),
                    "analyse_ms": round(statistics.median(analyse) * 1000),
                    "annotate_ms": round(statistics.median(draw) * 1000),
                }
            )
    load = os.getloadavg()[0]
    if args.json:
        print(json.dumps({"load_average_1m": load, "photos": rows}, indent=2))
        return
    for row in rows:
        print(
            f"{row['photo']} {row['size']}, {row['faces']} faces: analyse {row['analyse_ms']} ms, "
            f"annotate {row['annotate_ms']} ms (medians)"
        )
    print(f"load average (1 min) {load:.1f}")


if __name__ == "__main__":
    main()
