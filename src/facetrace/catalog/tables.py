"""The catalog schema as SQLAlchemy Core tables: the shape the code reads and writes.

Migrations (catalog/migrations/versions) create and evolve the real schema; a test checks the two agree.
Timestamps are timezone-aware UTC on every backend (UtcDateTime); embeddings and landmarks are little-endian
float32 blobs (catalog/blobs.py) so they round-trip bit for bit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """A datetime stored as UTC and read back timezone-aware, also on SQLite (which has no time zones).

    A naive datetime is refused rather than guessed to be UTC or local time.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"timestamp {value.isoformat()} has no time zone; the catalog stores UTC instants only")
        value = value.astimezone(UTC)
        # SQLite stores the text as given; dropping the (always UTC) offset keeps its values sortable as strings.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_literal_param(self, value: Any, dialect: Dialect) -> str:
        return repr(value)

    @property
    def python_type(self) -> type[datetime]:
        return datetime


# 64-bit ids on PostgreSQL; SQLite's INTEGER PRIMARY KEY is already 64-bit and only that exact type auto-increments.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData(
    # Named constraints let later migrations drop or alter them, also through SQLite's batch mode.
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

sources = sa.Table(
    "sources",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("legal_basis", sa.Text),
    sa.Column("retention_days", sa.Integer),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

ingest_runs = sa.Table(
    "ingest_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("finished_at", UtcDateTime),
    sa.Column("status", sa.String(32), nullable=False),  # running, finished, interrupted or failed
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("model_id", sa.String(255), nullable=False),
    sa.Column("stats", sa.JSON),
    # Which process runs it: a run left 'running' by a process that no longer exists was interrupted.
    sa.Column("host", sa.String(255)),
    sa.Column("pid", sa.Integer),
)

assets = sa.Table(
    "assets",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("uri", sa.Text, nullable=False),
    sa.Column("source_page", sa.Text),
    sa.Column("captured_at", UtcDateTime),
    sa.Column("ingested_at", UtcDateTime, nullable=False),
    sa.Column("source_id", sa.Integer, sa.ForeignKey("sources.id", ondelete="SET NULL")),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("ingest_runs.id", ondelete="SET NULL")),
    sa.Column("label", sa.Text),
    sa.Column("width", sa.Integer),
    sa.Column("height", sa.Integer),
    sa.Column("extra", sa.JSON),
    sa.Index(None, "sha256", unique=True),
)

people = sa.Table(
    "people",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

faces = sa.Table(
    "faces",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("asset_id", BigId, sa.ForeignKey("assets.id", ondelete="CASCADE"), nullable=False),
    sa.Column("x1", sa.Float, nullable=False),
    sa.Column("y1", sa.Float, nullable=False),
    sa.Column("x2", sa.Float, nullable=False),
    sa.Column("y2", sa.Float, nullable=False),
    sa.Column("landmarks", sa.LargeBinary, nullable=False),  # (5, 2) float32 little-endian
    sa.Column("detection_score", sa.Float, nullable=False),
    sa.Column("quality_score", sa.Float, nullable=False),
    sa.Column("quality_flags", sa.Text, nullable=False, default=""),  # comma-separated names
    sa.Column("model_id", sa.String(255), nullable=False),
    sa.Column("embedding", sa.LargeBinary, nullable=False),  # (dim,) float32 little-endian
    sa.Column("dim", sa.Integer, nullable=False),
    sa.Column("thumbnail_path", sa.Text),
    sa.Column("person_id", sa.Integer, sa.ForeignKey("people.id", ondelete="SET NULL")),
    sa.Index(None, "model_id"),
    sa.Index(None, "asset_id"),
    sa.Index(None, "person_id"),
)

ingest_errors = sa.Table(
    "ingest_errors",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("ingest_runs.id", ondelete="CASCADE")),
    sa.Column("uri", sa.Text, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Index(None, "run_id"),
)
