"""The tamper-evident audit log: a hash chain over canonical JSON.

Each entry's hash is sha256(prev_hash + canonical JSON of {seq, at, actor, action, target, details}), where the
first entry's prev_hash is GENESIS_HASH. Editing, deleting or reordering any stored row breaks the chain from that
row on, which verify_chain reports by seq. (Deleting the newest rows leaves a shorter valid chain: compare the head
hash with one kept elsewhere, e.g. printed by `facetrace audit verify`, to catch that.)
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from facetrace.core.ports import AuditStore
from facetrace.core.types import AuditEntry
from facetrace.core.vocabulary import AuditAction

log = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64


def canonical_json(value: object) -> str:
    """One spelling for one value: sorted keys, no spaces, UTF-8 kept, NaN refused."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(
    prev_hash: str, seq: int, at: datetime, actor: str, action: str, target: str, details: dict[str, object]
) -> str:
    body = canonical_json(
        {"seq": seq, "at": canonical_time(at), "actor": actor, "action": action, "target": target, "details": details}
    )
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    entries: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.first_bad_seq is None


def verify_chain(entries: Iterable[AuditEntry]) -> ChainReport:
    """Recompute the chain; the first entry whose seq, link or hash is wrong is named."""
    prev_hash = GENESIS_HASH
    expected_seq = 1
    count = 0
    for entry in entries:
        count += 1
        if entry.seq != expected_seq:
            return ChainReport(
                count - 1,
                prev_hash,
                entry.seq,
                f"entry {entry.seq} follows {expected_seq - 1}: rows were deleted or reordered",
            )
        if entry.prev_hash != prev_hash:
            return ChainReport(count - 1, prev_hash, entry.seq, f"entry {entry.seq} does not link to the entry before")
        recomputed = entry_hash(prev_hash, entry.seq, entry.at, entry.actor, entry.action, entry.target, entry.details)
        if recomputed != entry.hash:
            problem = f"entry {entry.seq} was edited: its hash does not match"
            return ChainReport(count - 1, prev_hash, entry.seq, problem)
        prev_hash = entry.hash
        expected_seq += 1
    return ChainReport(count, prev_hash)


class AuditLog:
    """Appends entries to a store, sealing each with the chain hash."""

    def __init__(self, store: AuditStore) -> None:
        self._store = store

    def record(self, actor: str, action: AuditAction | str, target: str, **details: object) -> AuditEntry:
        """Append an entry; action is one of AuditAction (a plain string is checked against it: ValueError if not)."""
        action = AuditAction(action)
        # Round-trip through canonical JSON now, so what is hashed is exactly what a verifier will read back.
        clean: dict[str, object] = json.loads(canonical_json(details))

        def seal(seq: int, at: datetime, prev_hash: str) -> str:
            return entry_hash(prev_hash, seq, at, actor, action, target, clean)

        entry = self._store.append_audit(actor, action, target, clean, seal)
        log.info("audit %d: %s %s %s", entry.seq, actor, action, target)
        return entry

    def entries(self, after_seq: int = 0, limit: int | None = None) -> list[AuditEntry]:
        return self._store.audit_entries(after_seq, limit)

    def verify(self) -> ChainReport:
        return verify_chain(self._iter_all())

    def _iter_all(self, page: int = 5_000) -> Iterable[AuditEntry]:
        after = 0
        while True:
            batch = self._store.audit_entries(after, page)
            if not batch:
                return
            yield from batch
            after = batch[-1].seq
