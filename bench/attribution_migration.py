"""How long revision 0007 (labels belong to faces) takes to re-attribute an existing catalog.

    python bench/attribution_migration.py [--photos 100000] [--faces 2] [--uri postgresql://...] [--json]

Builds a catalog at revision 0006 (SQLite in a temporary folder, or the empty database at --uri) holding --photos
labelled photos of --faces faces each (random boxes in a 640x480 photo, 128-dimensional embeddings), then opens it
with the current code, which upgrades it to the head, and reports the seconds the upgrade took and how the photos were
attributed. Synthetic rows: the boxes decide the outcome, the figures are about time.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from alembic import command

from facetrace.catalog import blobs, open_catalog
from facetrace.catalog.database import catalog_url
from facetrace.catalog.schema import alembic_config
from facetrace.catalog.tables import metadata

MODEL = "bench-model"
DIM = 128
CHUNK = 5000


def build_at_0006(uri: str, photos: int, faces: int, seed: int = 0) -> None:
    engine = sa.create_engine(catalog_url(uri))
    rng = random.Random(seed)
    now = datetime.now(UTC)
    landmarks = blobs.encode_floats(np.zeros((5, 2), np.float32))
    vector = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    embedding = blobs.encode_floats(vector / np.linalg.norm(vector))
    t = metadata.tables
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0006")
            connection.execute(
                sa.insert(t["ingest_runs"]).values(
                    id=1, started_at=now, status="finished", description="bench", model_id=MODEL
                )
            )
            for start in range(0, photos, CHUNK):
                ids = range(start + 1, min(start + CHUNK, photos) + 1)
                connection.execute(
                    sa.insert(t["assets"]),
                    [
                        {
                            "id": i,
                            "sha256": f"{i:064x}",
                            "uri": f"/photos/{i}.jpg",
                            "ingested_at": now,
                            "run_id": 1,
                            "label": f"person {i % 1000}",
                            "width": 640,
                            "height": 480,
                        }
                        for i in ids
                    ],
                )
                rows = []
                for i in ids:
                    for _ in range(faces):
                        x, y, size = rng.uniform(0, 560), rng.uniform(0, 400), rng.uniform(20, 200)
                        rows.append(
                            {
                                "asset_id": i,
                                "x1": x,
                                "y1": y,
                                "x2": x + size,
                                "y2": y + size * 1.2,
                                "landmarks": landmarks,
                                "detection_score": 0.9,
                                "quality_score": 0.8,
                                "quality_flags": "",
                                "model_id": MODEL,
                                "embedding": embedding,
                                "dim": DIM,
                            }
                        )
                connection.execute(sa.insert(t["faces"]), rows)
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=100_000, help="labelled photos in the catalog")
    parser.add_argument("--faces", type=int, default=2, help="faces per photo")
    parser.add_argument("--uri", default=None, help="an empty PostgreSQL database (default: SQLite in a temp folder)")
    parser.add_argument("--json", action="store_true", help="print one JSON record")
    args = parser.parse_args(argv)
    if args.photos < 1 or args.faces < 1:
        parser.error("--photos and --faces must be at least 1")
    with tempfile.TemporaryDirectory() as folder:
        uri = args.uri or f"sqlite:///{Path(folder) / 'catalog.db'}"
        started = time.perf_counter()
        build_at_0006(uri, args.photos, args.faces)
        built = time.perf_counter() - started
        started = time.perf_counter()
        with open_catalog(uri) as catalog:
            upgraded = time.perf_counter() - started
            with sa.create_engine(catalog_url(uri)).connect() as connection:
                assets = metadata.tables["assets"]
                outcome = Counter(
                    dict(
                        connection.execute(
                            sa.select(assets.c.attribution, sa.func.count()).group_by(assets.c.attribution)
                        ).all()
                    )
                )
            faces = catalog.count_faces()
    record = {
        "backend": uri.split(":", 1)[0],
        "photos": args.photos,
        "faces": faces,
        "build_s": round(built, 1),
        "upgrade_s": round(upgraded, 1),
        "photos_per_s": round(args.photos / upgraded),
        "attribution": dict(outcome),
    }
    if args.json:
        print(json.dumps(record))
    else:
        print(
            f"{record['backend']}: {args.photos} labelled photos, {faces} faces; revision 0007 took "
            f"{upgraded:.1f} s ({record['photos_per_s']} photos/s); attribution {dict(outcome)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
