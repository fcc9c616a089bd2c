"""The tamper-evident audit log: a hash chain over canonical JSON, keyed with a secret kept outside the catalog.

Each entry's hash is computed over prev_hash + canonical JSON of {seq, at, actor, action, target, details}, where
the first entry's prev_hash is GENESIS_HASH. Editing, deleting or reordering any stored row breaks the chain from
that row on, which verify_chain reports by seq.

A plain sha256 chain can be re-sealed by anyone who can write the catalog: edit a row and recompute every later
hash. So from the AuditKey's `keyed_from` seq on, each hash is an HMAC-SHA256 under a key that lives outside the
catalog (a file the engine keeps, docs/security.md); entries before it (written before the key existed) keep their
sha256. Without the key no one can produce a valid later hash, and the key records the seq it took over at, so a
chain cut back below it, or rewritten as if never keyed, fails too. Deleting the newest rows still leaves a shorter
valid chain: export the head (`facetrace audit head`) and keep it elsewhere; `audit verify --head FILE` checks that
the chain still holds that entry with that hash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from facetrace.core.ports import AuditDraft, AuditSeal, AuditStore
from facetrace.core.types import AuditEntry, AuditQuery
from facetrace.core.vocabulary import AuditAction

log = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64


def canonical_json(value: object) -> str:
    """One spelling for one value: sorted keys, no spaces, UTF-8 kept, NaN refused."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class AuditKey:
    """The secret that seals entries from seq keyed_from on (HMAC-SHA256); kept outside the catalog."""

    secret: bytes = field(repr=False)
    keyed_from: int

    @property
    def fingerprint(self) -> str:
        """Names the key without revealing it (for reports and the exported head)."""
        return hashlib.sha256(b"facetrace-audit-key:" + self.secret).hexdigest()[:16]


@dataclass(frozen=True)
class AuditHead:
    """The newest entry as exported to keep elsewhere: the chain must still hold it, unchanged."""

    seq: int
    hash: str
    at: datetime | None = None


def head_mac(key: AuditKey, seq: int, hash_: str) -> str:
    """Seals a recorded head (seq and hash of the newest entry) so that it cannot be moved back without the key."""
    return hmac.new(key.secret, f"head:{seq}:{hash_}".encode(), hashlib.sha256).hexdigest()


class HeadRecord(Protocol):
    """Where the newest entry's (seq, hash) is recorded after every append, outside the catalog (engine: a file
    beside the key): verify checks the chain still holds it, so deleting the newest entries is caught without an
    exported head."""

    def record(self, entry: AuditEntry) -> None: ...

    def load(self) -> tuple[AuditHead, str] | None:
        """The recorded head and its mac, or None if nothing was recorded."""
        ...


def entry_hash(
    prev_hash: str,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    details: dict[str, object],
    key: AuditKey | None = None,
) -> str:
    """sha256 of prev_hash + the entry's canonical JSON; an HMAC under key when the entry is at or after the seq the
    key took over at."""
    body = canonical_json(
        {"seq": seq, "at": canonical_time(at), "actor": actor, "action": action, "target": target, "details": details}
    )
    message = (prev_hash + body).encode("utf-8")
    if key is not None and seq >= key.keyed_from:
        return hmac.new(key.secret, message, hashlib.sha256).hexdigest()
    return hashlib.sha256(message).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    entries: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str = ""
    keyed_from: int | None = None  # entries from this seq on are sealed with the key (None: no key)
    key_fingerprint: str | None = None

    @property
    def ok(self) -> bool:
        return self.first_bad_seq is None and not self.problem


def verify_chain(
    entries: Iterable[AuditEntry], key: AuditKey | None = None, head: AuditHead | None = None, head_is: str = "exported"
) -> ChainReport:
    """Recompute the chain (with key: the keyed part as HMACs); the first entry whose seq, link or hash is wrong is
    named. A chain shorter than the key's keyed_from, or without the exported head's entry, fails too."""
    links = _verify_links(entries, key)
    keyed_from = key.keyed_from if key is not None else None
    fingerprint = key.fingerprint if key is not None else None

    def report(first_bad_seq: int | None = None, problem: str = "") -> ChainReport:
        return ChainReport(links.entries, links.head_hash, first_bad_seq, problem, keyed_from, fingerprint)

    if not links.ok:
        return report(links.first_bad_seq, links.problem)
    if key is not None and links.entries < key.keyed_from - 1:
        return report(
            links.entries + 1,
            f"the log ends at seq {links.entries}, but the audit key took over at seq {key.keyed_from}: entries "
            "were deleted",
        )
    if head is not None and head.seq > links.entries:
        return report(
            links.entries + 1,
            f"the {head_is} head is seq {head.seq}, the log ends at {links.entries}: the newest were deleted",
        )
    if head is not None and head.seq > 0 and links.hashes.get(head.seq) != head.hash:
        return report(head.seq, f"entry {head.seq} no longer has the hash the {head_is} head holds: rewritten")
    return report()


@dataclass(frozen=True)
class _Links:
    entries: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str = ""
    hashes: dict[int, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.first_bad_seq is None


def _verify_links(entries: Iterable[AuditEntry], key: AuditKey | None) -> _Links:
    prev_hash = GENESIS_HASH
    expected_seq = 1
    count = 0
    hashes: dict[int, str] = {}
    for entry in entries:
        count += 1
        if entry.seq != expected_seq:
            return _Links(
                count - 1,
                prev_hash,
                entry.seq,
                f"entry {entry.seq} follows {expected_seq - 1}: rows were deleted or reordered",
            )
        if entry.prev_hash != prev_hash:
            return _Links(count - 1, prev_hash, entry.seq, f"entry {entry.seq} does not link to the entry before")
        recomputed = entry_hash(
            prev_hash, entry.seq, entry.at, entry.actor, entry.action, entry.target, entry.details, key
        )
        if recomputed != entry.hash:
            sealed = " (it is sealed with the audit key)" if key is not None and entry.seq >= key.keyed_from else ""
            return _Links(
                count - 1, prev_hash, entry.seq, f"entry {entry.seq} was edited: its hash does not match{sealed}"
            )
        hashes[entry.seq] = entry.hash
        prev_hash = entry.hash
        expected_seq += 1
    return _Links(count, prev_hash, hashes=hashes)


class AuditLog:
    """Appends entries to a store, sealing each with the chain hash."""

    def __init__(self, store: AuditStore, key: AuditKey | None = None, heads: HeadRecord | None = None) -> None:
        self._store = store
        self.key = key
        self.heads = heads

    def record(self, actor: str, action: AuditAction | str, target: str, **details: object) -> AuditEntry:
        """Append an entry; action is one of AuditAction (a plain string is checked against it: ValueError if not)."""
        draft = self.draft(actor, action, lambda _row: target, **details)
        entry = self._store.append_audit(actor, draft.action, target, draft.details, draft.sealer(target))
        self._recorded(entry)
        return entry

    def draft(
        self, actor: str, action: AuditAction | str, target: Callable[[int], str], **details: object
    ) -> AuditDraft:
        """An entry for a store to append in the transaction of the row it records (target(row id) names it)."""
        action = AuditAction(action)
        # Round-trip through canonical JSON now, so what is hashed is exactly what a verifier will read back.
        clean: dict[str, object] = json.loads(canonical_json(details))

        def sealer(target_text: str) -> AuditSeal:
            def seal(seq: int, at: datetime, prev_hash: str) -> str:
                return entry_hash(prev_hash, seq, at, actor, action, target_text, clean, self.key)

            return seal

        return AuditDraft(actor, action, clean, target, sealer, self._recorded)

    def _recorded(self, entry: AuditEntry) -> None:
        if self.heads is not None:
            self.heads.record(entry)
        log.info("audit %d: %s %s %s", entry.seq, entry.actor, entry.action, entry.target)

    def entries(self, after_seq: int = 0, limit: int | None = None) -> list[AuditEntry]:
        return self._store.audit_entries(after_seq, limit)

    def find(
        self,
        query: AuditQuery,
        *,
        after_seq: int = 0,
        before_seq: int | None = None,
        limit: int | None = None,
        newest_first: bool = True,
    ) -> list[AuditEntry]:
        """The entries the query selects with after_seq < seq < before_seq, newest first unless newest_first is
        False."""
        return self._store.find_audit(
            query, after_seq=after_seq, before_seq=before_seq, limit=limit, newest_first=newest_first
        )

    def verify(self, head: AuditHead | None = None) -> ChainReport:
        """Recompute the chain; check it still holds head (exported earlier) and the head recorded after the last
        append (when this log records one)."""
        report = verify_chain(self._iter_all(), self.key, head)
        recorded = self.heads.load() if self.heads is not None and self.key is not None else None
        if not report.ok or recorded is None or self.key is None:
            return report
        last, mac = recorded
        if not hmac.compare_digest(mac, head_mac(self.key, last.seq, last.hash)):
            return dataclasses.replace(
                report, first_bad_seq=last.seq, problem="the recorded head was altered (its seal does not match)"
            )
        return verify_chain(self._iter_all(), self.key, last, head_is="recorded") if last.seq else report

    def head(self) -> AuditHead:
        """The newest entry, to export and keep elsewhere (GENESIS_HASH at seq 0 for an empty log)."""
        length = self.length()
        newest = self._store.audit_entries(length - 1, 1) if length else []
        if not newest:
            return AuditHead(0, GENESIS_HASH)
        return AuditHead(newest[0].seq, newest[0].hash, newest[0].at)

    def length(self) -> int:
        """How many entries the log holds (its newest seq)."""
        return self._store.audit_length()

    def _iter_all(self, page: int = 5_000) -> Iterable[AuditEntry]:
        after = 0
        while True:
            batch = self._store.audit_entries(after, page)
            if not batch:
                return
            yield from batch
            after = batch[-1].seq
