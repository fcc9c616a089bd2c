"""The audit key's start is a fact outside the catalog: a log cut back below the seq where its key took over fails
verification without any exported head (governance/audit.py)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from facetrace.core.ports import AuditSeal
from facetrace.core.types import AuditEntry
from facetrace.core.vocabulary import AuditAction
from facetrace.engine import open_engine
from facetrace.governance.audit import GENESIS_HASH, AuditKey, AuditLog, entry_hash


class MemoryAuditStore:
    def __init__(self) -> None:
        self.rows: list[AuditEntry] = []
        self.clock = datetime(2026, 1, 1, tzinfo=UTC)

    def append_audit(
        self, actor: str, action: str, target: str, details: dict[str, object], seal: AuditSeal
    ) -> AuditEntry:
        seq = len(self.rows) + 1
        prev = self.rows[-1].hash if self.rows else GENESIS_HASH
        self.clock += timedelta(seconds=1)
        entry = AuditEntry(seq, self.clock, actor, action, target, details, prev, seal(seq, self.clock, prev))
        self.rows.append(entry)
        return entry

    def audit_entries(self, after_seq: int = 0, limit: int | None = None) -> list[AuditEntry]:
        found = [row for row in self.rows if row.seq > after_seq]
        return found[:limit] if limit is not None else found

    def audit_length(self) -> int:
        return len(self.rows)


def test_a_log_cut_back_below_where_its_key_took_over_fails() -> None:
    store = MemoryAuditStore()
    plain = AuditLog(store)
    plain.record("a", "search", "t")
    plain.record("a", "search", "t")  # two entries sealed with sha256, before the key existed
    key = AuditKey(b"k" * 32, keyed_from=3)
    keyed = AuditLog(store, key)
    keyed.record("a", "search", "t")
    assert keyed.verify().ok and keyed.verify().keyed_from == 3
    assert store.rows[2].hash != entry_hash(
        store.rows[1].hash, 3, store.rows[2].at, "a", "search", "t", {}
    )  # an HMAC, not the sha256 anyone could recompute
    del store.rows[1:]
    report = keyed.verify()
    assert not report.ok and "audit key took over at seq 3" in report.problem


def test_threads_appending_at_once_leave_a_verified_chain_and_the_newest_head(tmp_path: Path) -> None:
    """A server appends from request threads and ingest jobs at once: each recording of the head is its own file."""
    with open_engine(tmp_path / "data", workers=1) as engine:

        def append(worker: int) -> None:
            for number in range(15):
                engine.audit.record("tester", AuditAction.SEARCH, f"probes:{worker}-{number}")

        threads = [threading.Thread(target=append, args=(worker,)) for worker in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        report = engine.audit.verify()
        assert report.ok and report.entries == 8 * 15
        recorded = engine.audit.heads.load() if engine.audit.heads is not None else None
        assert recorded is not None and recorded[0].seq == 8 * 15
    assert not list((tmp_path / "data").glob(".audit.head.*"))  # no temporary file left behind
