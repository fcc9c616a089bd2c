"""The audit hash chain, pure: sealing, verifying, and catching edits, deletions and reordering."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from facetrace.core.ports import AuditSeal
from facetrace.core.types import AuditEntry, ChangeCounters
from facetrace.governance.audit import GENESIS_HASH, AuditLog, canonical_json, entry_hash, verify_chain
from facetrace.governance.erasure import SuppressionList


class MemoryAuditStore:
    def __init__(self) -> None:
        self.rows: list[AuditEntry] = []
        self.clock = datetime(2026, 1, 1, tzinfo=UTC)

    def append_audit(
        self, actor: str, action: str, target: str, details: dict[str, object], seal: AuditSeal
    ) -> AuditEntry:
        seq = len(self.rows) + 1
        prev = self.rows[-1].hash if self.rows else GENESIS_HASH
        self.clock += timedelta(seconds=1, microseconds=7)
        entry = AuditEntry(seq, self.clock, actor, action, target, details, prev, seal(seq, self.clock, prev))
        self.rows.append(entry)
        return entry

    def audit_entries(self, after_seq: int = 0, limit: int | None = None) -> list[AuditEntry]:
        found = [row for row in self.rows if row.seq > after_seq]
        return found[:limit] if limit is not None else found

    def audit_length(self) -> int:
        return len(self.rows)


@pytest.fixture
def log_and_store() -> tuple[AuditLog, MemoryAuditStore]:
    store = MemoryAuditStore()
    log = AuditLog(store)
    log.record("alice", "add_user", "user:bob", role="investigator")
    log.record("bob", "search", "search:1", case_id=1, hit_face_ids=[3, 1, 2], purpose="théft")
    log.record("bob", "view_face", "face:3")
    log.record("carol", "review", "search:1", decision="confirmed", similarity=0.123456)
    return log, store


def test_canonical_json_is_one_spelling() -> None:
    assert canonical_json({"b": 1, "a": [1, 2], "é": "ü"}) == '{"a":[1,2],"b":1,"é":"ü"}'
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_entry_hash_links_to_the_previous_one() -> None:
    at = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    first = entry_hash(GENESIS_HASH, 1, at, "a", "act", "t", {"k": 1})
    assert first == entry_hash(GENESIS_HASH, 1, at, "a", "act", "t", {"k": 1})
    assert first != entry_hash("f" * 64, 1, at, "a", "act", "t", {"k": 1})
    assert first != entry_hash(GENESIS_HASH, 1, at + timedelta(microseconds=1), "a", "act", "t", {"k": 1})
    assert first != entry_hash(GENESIS_HASH, 1, at, "a", "act", "t", {"k": 2})


def test_an_untouched_chain_verifies(log_and_store: tuple[AuditLog, MemoryAuditStore]) -> None:
    log, store = log_and_store
    report = log.verify()
    assert report.ok and report.entries == 4 and report.head_hash == store.rows[-1].hash


def test_an_edited_entry_is_named(log_and_store: tuple[AuditLog, MemoryAuditStore]) -> None:
    log, store = log_and_store
    store.rows[1] = dataclasses.replace(store.rows[1], details={**store.rows[1].details, "purpose": "other"})
    report = log.verify()
    assert not report.ok and report.first_bad_seq == 2 and "edited" in report.problem


def test_a_rewritten_hash_breaks_the_next_link(log_and_store: tuple[AuditLog, MemoryAuditStore]) -> None:
    log, store = log_and_store
    row = store.rows[2]
    forged = dataclasses.replace(row, actor="mallory")
    forged = dataclasses.replace(
        forged,
        hash=entry_hash(row.prev_hash, row.seq, row.at, "mallory", row.action, row.target, row.details),
    )
    store.rows[2] = forged
    report = log.verify()
    assert report.first_bad_seq == 4 and "link" in report.problem


def test_a_deleted_entry_is_named(log_and_store: tuple[AuditLog, MemoryAuditStore]) -> None:
    _, store = log_and_store
    del store.rows[1]
    report = verify_chain(store.rows)
    assert report.first_bad_seq == 3 and "deleted or reordered" in report.problem


def test_reordered_entries_are_named(log_and_store: tuple[AuditLog, MemoryAuditStore]) -> None:
    _, store = log_and_store
    rows = store.rows
    # Swap the contents of rows 2 and 3 but keep their seq numbers, as an UPDATE would.
    second, third = rows[1], rows[2]
    rows[1] = dataclasses.replace(third, seq=2)
    rows[2] = dataclasses.replace(second, seq=3)
    assert verify_chain(rows).first_bad_seq == 2


class MemorySuppressions:
    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors
        self.version = 0
        self.reads = 0

    def change_counters(self) -> ChangeCounters:
        return ChangeCounters(faces_added=0, faces_removed=0, suppressions=self.version)

    def suppressed_vectors(self, model_id: str) -> np.ndarray:
        self.reads += 1
        return self.vectors


def test_suppression_flags_faces_at_or_above_the_threshold() -> None:
    erased = np.eye(4, dtype=np.float32)[:1]
    close = np.array([0.8, 0.6, 0.0, 0.0], dtype=np.float32)
    far = np.array([0.5, 0.0, 0.866, 0.0], dtype=np.float32)
    check = SuppressionList(MemorySuppressions(erased), "m", min_similarity=0.7)  # type: ignore[arg-type]
    assert check.suppressed(np.vstack([close, far])).tolist() == [True, False]
    empty = SuppressionList(MemorySuppressions(np.zeros((0, 0), np.float32)), "m", 0.7)  # type: ignore[arg-type]
    assert empty.suppressed(np.vstack([close])).tolist() == [False]


def test_suppression_list_reads_the_erased_embeddings_once_per_change() -> None:
    store = MemorySuppressions(np.zeros((0, 0), np.float32))
    check = SuppressionList(store, "m", min_similarity=0.7)  # type: ignore[arg-type]
    face = np.array([[1.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    for _ in range(5):
        assert check.suppressed(face).tolist() == [False]
    assert not check.active()  # nobody erased: a search skips reading its candidates' embeddings
    assert store.reads == 1
    store.vectors, store.version = np.eye(4, dtype=np.float32)[:1], 1  # an erasure, by any process
    assert check.active()
    assert check.suppressed(face).tolist() == [True]
    assert check.suppressed(face).tolist() == [True]
    assert store.reads == 2
