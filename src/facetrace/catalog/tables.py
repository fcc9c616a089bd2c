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
    # Revision 0004: when retention ends for this asset and its faces (NULL: kept until erased).
    sa.Column("retain_until", UtcDateTime),
    # Revision 0007: how the face the label names was decided (a SubjectAttribution; NULL for an unlabelled photo).
    # The subject face carries the label as its person (faces.person_id); the photo's other faces do not.
    sa.Column("attribution", sa.String(16)),
    sa.Index(None, "sha256", unique=True),
    sa.Index(None, "retain_until"),
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

# Governance (revision 0002): users and keys, cases and their searches, reviews, the audit chain, erasure.

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("password_hash", sa.Text),  # argon2 (or bcrypt) encoded hash; NULL for key-only users
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    # Revision 0008: web sessions issued before this moment are refused (password change, deactivation).
    sa.Column("sessions_valid_after", UtcDateTime),
)

ended_sessions = sa.Table(
    "ended_sessions",
    metadata,
    # Web sessions signed out one by one (sha256 of the session's token), kept until they would have expired anyway.
    sa.Column("token_sha256", sa.String(64), primary_key=True),
    sa.Column("ended_at", UtcDateTime, nullable=False),
    sa.Index(None, "ended_at"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("key_sha256", sa.String(64), nullable=False),  # keys are random and long: a plain hash is enough
    sa.Column("prefix", sa.String(16), nullable=False),  # shown in listings to tell keys apart
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("revoked_at", UtcDateTime),
    sa.Index(None, "key_sha256", unique=True),
)

cases = sa.Table(
    "cases",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("purpose", sa.Text, nullable=False),
    sa.Column("legal_basis", sa.Text, nullable=False),
    sa.Column("requires_independent_review", sa.Boolean, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
)

# Revision 0009: who may work in a case besides its owner (cases.created_by), added and removed by an admin.
case_members = sa.Table(
    "case_members",
    metadata,
    sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_name", sa.String(255), primary_key=True),
    sa.Column("added_by", sa.String(255), nullable=False),
    sa.Column("added_at", UtcDateTime, nullable=False),
    sa.Index(None, "user_name"),
)

searches = sa.Table(
    "searches",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
    sa.Column("user_name", sa.String(255), nullable=False),
    sa.Column("purpose", sa.Text, nullable=False),
    sa.Column("probe_sha256", sa.String(64), nullable=False),
    sa.Column("probe_name", sa.Text, nullable=False),
    sa.Column("model_id", sa.String(255), nullable=False),
    sa.Column("probe_embedding", sa.LargeBinary),  # float32 little-endian, the main probe face
    sa.Column("dim", sa.Integer),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Index(None, "case_id"),
    sa.Index(None, "probe_sha256"),
)

search_hits = sa.Table(
    "search_hits",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("search_id", BigId, sa.ForeignKey("searches.id", ondelete="CASCADE"), nullable=False),
    sa.Column("probe_face_index", sa.Integer),
    sa.Column("rank", sa.Integer, nullable=False),
    # No foreign key: the record of what was seen outlives an erased face.
    sa.Column("face_id", sa.BigInteger, nullable=False),
    sa.Column("similarity", sa.Float, nullable=False),
    sa.Column("false_match_rate", sa.Float),  # NULL when the pack is uncalibrated
    sa.Column("gallery_false_match_probability", sa.Float),
    sa.Column("gallery_size", sa.Integer, nullable=False),
    sa.Column("verdict", sa.Text, nullable=False),  # the sentence as shown (rendered from the fields below)
    # Revision 0005: the typed evidence. NULL in rows stored before it (read back from their verdict sentence).
    sa.Column("strength", sa.String(16)),  # strong, moderate, weak or uncalibrated
    sa.Column("false_match_rate_is_upper_bound", sa.Boolean),
    sa.Column("probe_quality", sa.Float),
    sa.Column("weak_probe", sa.Boolean),
    sa.Column("weak_candidate", sa.Boolean),
    sa.Column("quality_condition", sa.String(16)),  # the impostor table the rate was read from
    sa.Column("condition_table_measured", sa.Boolean),
    # Revision 0011: the probe's own photo (identical) or a copy of it (near_duplicate); NULL before it (none).
    sa.Column("same_image", sa.String(16)),
    sa.Index(None, "search_id"),
)

reviews = sa.Table(
    "reviews",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("search_id", BigId, sa.ForeignKey("searches.id", ondelete="CASCADE"), nullable=False),
    sa.Column("face_id", sa.BigInteger, nullable=False),
    sa.Column("reviewer", sa.String(255), nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Index(None, "search_id"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("details", sa.Text, nullable=False),  # canonical JSON, hashed as stored
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("model_id", sa.String(255), nullable=False),
    sa.Column("dim", sa.Integer, nullable=False),
    sa.Column("embedding", sa.LargeBinary, nullable=False),  # embeddings only: never a photo
    sa.Column("receipt_id", sa.String(64), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Index(None, "model_id"),
)

erasure_receipts = sa.Table(
    "erasure_receipts",
    metadata,
    sa.Column("receipt_id", sa.String(64), primary_key=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("requested_by", sa.String(255), nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("body", sa.JSON, nullable=False),  # face and asset ids, uris, counts
    sa.Column("audit_seq", sa.BigInteger, nullable=False),
)

# Clusters (revision 0003): groups of faces persisted as identities, their members, and every change to them.

clusters = sa.Table(
    "clusters",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("model_id", sa.String(255), nullable=False),
    sa.Column("name", sa.Text),  # a reviewer's confirmed label
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    # Revision 0010: left out of the people view by default (a reviewer's or admin's choice, with an event).
    sa.Column("hidden", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index(None, "model_id"),
    # Ids are never reused (SQLite would hand out a deleted maximum again): events name clusters by id for good.
    sqlite_autoincrement=True,
)

cluster_members = sa.Table(
    "cluster_members",
    metadata,
    # One cluster per face; erasing the face takes its membership with it.
    sa.Column("face_id", BigId, sa.ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("cluster_id", sa.Integer, sa.ForeignKey("clusters.id", ondelete="CASCADE"), nullable=False),
    sa.Column("assigned_by", sa.String(16), nullable=False),  # batch, incremental or manual
    sa.Column("assigned_at", UtcDateTime, nullable=False),
    sa.Index(None, "cluster_id"),
)

cluster_events = sa.Table(
    "cluster_events",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    # No foreign keys: the history of a merged-away or emptied cluster outlives it.
    sa.Column("cluster_id", sa.Integer, nullable=False),
    sa.Column("other_cluster_id", sa.Integer),
    sa.Column("kind", sa.String(16), nullable=False),  # create, merge, split, assign, rename, erase, hide, unhide
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("face_ids", sa.JSON, nullable=False),
    sa.Column("evidence", sa.JSON, nullable=False),  # similarities and thresholds behind the change
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Index(None, "cluster_id"),
    sa.Index(None, "other_cluster_id"),
)

change_counters = sa.Table(
    "change_counters",
    metadata,
    # One row per kind of change ('faces_added', 'faces_removed', 'suppressions'), bumped in the transaction that
    # makes the change: another process reads them to learn that its in-memory index or suppression list is behind.
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)
