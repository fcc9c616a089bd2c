"""The governance ports on the catalog's database: users and keys, cases and searches, the audit chain,
suppressions and erasure receipts (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import IntegrityError

from facetrace.catalog import blobs, changes
from facetrace.catalog.database import reading, writing
from facetrace.catalog.tables import (
    api_keys,
    audit_log,
    case_members,
    cases,
    ended_sessions,
    erasure_receipts,
    reviews,
    search_hits,
    searches,
    suppressions,
    users,
)
from facetrace.core.errors import CatalogError, ConflictError
from facetrace.core.evidence import TABLE_NAMES, describe, headline
from facetrace.core.ports import AuditDraft, AuditSeal
from facetrace.core.types import (
    CLEAN_CONDITION,
    QUALITY_CONDITIONS,
    ApiKey,
    AuditEntry,
    AuditQuery,
    Case,
    CaseMember,
    ChangeCounters,
    ErasureReceipt,
    Evidence,
    FloatArray,
    QualityCondition,
    Review,
    SearchRecord,
    StoredHit,
    Strength,
    User,
)
from facetrace.core.vocabulary import CaseStatus, ErasureMode, ReviewDecision, Role, SameImage

# Serialises audit appenders on PostgreSQL (SQLite writers are serialised by BEGIN IMMEDIATE already).
_AUDIT_LOCK = 0x61756469_745F6C6F & 0x7FFF_FFFF_FFFF_FFFF
# Statements every search runs (its row, its audit entry), built once and given their values as parameters: building
# an insert with .values() each time cost more than running it.
_INSERT_SEARCH = sa.insert(searches).returning(searches.c.id)
_LAST_AUDIT_ENTRY = sa.select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
_INSERT_AUDIT_ENTRY = sa.insert(audit_log)


class SqlGovernanceStore:
    """Implements GovernanceStore. Shares the catalog's engine: get it from SqlCatalog.governance_store()."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # Users and keys

    def add_user(self, name: str, role: Role, password_hash: str | None = None) -> User:
        now = _now()
        try:
            with self._write() as connection:
                user_id = connection.execute(
                    sa.insert(users)
                    .values(name=name, role=role, password_hash=password_hash, active=True, created_at=now)
                    .returning(users.c.id)
                ).scalar_one()
        except IntegrityError as exc:
            raise ConflictError(f"a user named {name!r} already exists") from exc
        return User(int(user_id), name, Role(role), now, True)

    def user(self, name: str) -> User | None:
        with self._read() as connection:
            row = connection.execute(sa.select(users).where(users.c.name == name)).first()
        return None if row is None else _user(row)

    def users(self) -> list[User]:
        with self._read() as connection:
            return [_user(row) for row in connection.execute(sa.select(users).order_by(users.c.id))]

    def password_hash(self, name: str) -> str | None:
        with self._read() as connection:
            found = connection.execute(sa.select(users.c.password_hash).where(users.c.name == name)).scalar()
        return None if found is None else str(found)

    def add_api_key(self, user_id: int, key_sha256: str, prefix: str) -> None:
        with self._write() as connection:
            connection.execute(
                sa.insert(api_keys).values(user_id=user_id, key_sha256=key_sha256, prefix=prefix, created_at=_now())
            )

    def user_by_key(self, key_sha256: str) -> User | None:
        query = (
            sa.select(users)
            .join(api_keys, api_keys.c.user_id == users.c.id)
            .where(api_keys.c.key_sha256 == key_sha256, api_keys.c.revoked_at.is_(None))
        )
        with self._read() as connection:
            row = connection.execute(query).first()
        return None if row is None else _user(row)

    def deactivate_user(self, name: str) -> int:
        now = _now()
        with self._write() as connection:
            user_id = connection.execute(sa.select(users.c.id).where(users.c.name == name)).scalar_one_or_none()
            if user_id is None:
                return 0
            connection.execute(
                sa.update(users).where(users.c.id == user_id).values(active=False, sessions_valid_after=now)
            )
            revoked = connection.execute(
                sa.update(api_keys)
                .where(api_keys.c.user_id == user_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now)
            ).rowcount
        return int(revoked)

    def set_password_hash(self, name: str, password_hash: str) -> None:
        """The new hash; every web session issued before now ends with the old password."""
        with self._write() as connection:
            connection.execute(
                sa.update(users)
                .where(users.c.name == name)
                .values(password_hash=password_hash, sessions_valid_after=_now())
            )

    def end_session(self, token_sha256: str, forget_before: datetime) -> None:
        with self._write() as connection:
            connection.execute(sa.delete(ended_sessions).where(ended_sessions.c.ended_at < forget_before))
            exists = connection.execute(
                sa.select(ended_sessions.c.token_sha256).where(ended_sessions.c.token_sha256 == token_sha256)
            ).first()
            if exists is None:
                connection.execute(sa.insert(ended_sessions).values(token_sha256=token_sha256, ended_at=_now()))

    def session_ended(self, token_sha256: str) -> bool:
        with self._read() as connection:
            found = connection.execute(
                sa.select(ended_sessions.c.token_sha256).where(ended_sessions.c.token_sha256 == token_sha256)
            ).first()
        return found is not None

    def api_keys(self, user_id: int) -> list[ApiKey]:
        query = sa.select(api_keys).where(api_keys.c.user_id == user_id).order_by(api_keys.c.id)
        with self._read() as connection:
            return [
                ApiKey(int(row.id), int(row.user_id), row.prefix, row.created_at, row.revoked_at)
                for row in connection.execute(query)
            ]

    def revoke_api_key(self, user_id: int, key_id: int) -> bool:
        with self._write() as connection:
            revoked = connection.execute(
                sa.update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.user_id == user_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=_now())
            ).rowcount
        return bool(revoked)

    # Audit

    def append_audit(
        self, actor: str, action: str, target: str, details: dict[str, object], seal: AuditSeal
    ) -> AuditEntry:
        with self._write() as connection:
            return _append_audit(connection, actor, action, target, details, seal)

    def audit_entries(self, after_seq: int = 0, limit: int | None = None) -> list[AuditEntry]:
        query = sa.select(audit_log).where(audit_log.c.seq > after_seq).order_by(audit_log.c.seq)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as connection:
            return [_audit_entry(row) for row in connection.execute(query)]

    def audit_length(self) -> int:
        with self._read() as connection:
            return int(connection.execute(sa.select(sa.func.coalesce(sa.func.max(audit_log.c.seq), 0))).scalar_one())

    def find_audit(
        self,
        query: AuditQuery,
        *,
        after_seq: int = 0,
        before_seq: int | None = None,
        limit: int | None = None,
        newest_first: bool = True,
    ) -> list[AuditEntry]:
        select = sa.select(audit_log).where(audit_log.c.seq > after_seq, *_audit_conditions(query))
        if before_seq is not None:
            select = select.where(audit_log.c.seq < before_seq)
        select = select.order_by(audit_log.c.seq.desc() if newest_first else audit_log.c.seq)
        if limit is not None:
            select = select.limit(limit)
        with self._read() as connection:
            return [_audit_entry(row) for row in connection.execute(select)]

    # Cases, searches, reviews

    def add_case(
        self, title: str, purpose: str, legal_basis: str, requires_independent_review: bool, created_by: str
    ) -> Case:
        now = _now()
        with self._write() as connection:
            case_id = connection.execute(
                sa.insert(cases)
                .values(
                    title=title,
                    purpose=purpose,
                    legal_basis=legal_basis,
                    requires_independent_review=requires_independent_review,
                    created_by=created_by,
                    created_at=now,
                    status=CaseStatus.OPEN,
                )
                .returning(cases.c.id)
            ).scalar_one()
        return Case(int(case_id), title, purpose, legal_basis, requires_independent_review, created_by, now)

    def case(self, case_id: int) -> Case | None:
        with self._read() as connection:
            row = connection.execute(sa.select(cases).where(cases.c.id == case_id)).first()
        return None if row is None else _case(row)

    def cases(self) -> list[Case]:
        with self._read() as connection:
            return [_case(row) for row in connection.execute(sa.select(cases).order_by(cases.c.id))]

    def set_case_status(self, case_id: int, status: CaseStatus, expected: CaseStatus) -> bool:
        """Move a case from status expected to status; False if it was not in expected (compare-and-set, so two
        closers cannot both succeed)."""
        with self._write() as connection:
            result = connection.execute(
                sa.update(cases).where(cases.c.id == case_id, cases.c.status == expected).values(status=status)
            )
        return bool(result.rowcount)

    def add_case_member(self, case_id: int, user_name: str, added_by: str) -> CaseMember | None:
        now = _now()
        with self._write() as connection:
            exists = connection.execute(
                sa.select(case_members.c.case_id).where(
                    case_members.c.case_id == case_id, case_members.c.user_name == user_name
                )
            ).first()
            if exists is not None:
                return None
            connection.execute(
                sa.insert(case_members).values(case_id=case_id, user_name=user_name, added_by=added_by, added_at=now)
            )
        return CaseMember(case_id, user_name, added_by, now)

    def remove_case_member(self, case_id: int, user_name: str) -> bool:
        with self._write() as connection:
            result = connection.execute(
                sa.delete(case_members).where(case_members.c.case_id == case_id, case_members.c.user_name == user_name)
            )
        return bool(result.rowcount)

    def case_members(self, case_id: int) -> list[CaseMember]:
        with self._read() as connection:
            rows = connection.execute(
                sa.select(case_members).where(case_members.c.case_id == case_id).order_by(case_members.c.user_name)
            )
            return [CaseMember(int(r.case_id), r.user_name, r.added_by, r.added_at) for r in rows]

    def cases_of(self, user_name: str) -> list[Case]:
        member_of = sa.select(case_members.c.case_id).where(case_members.c.user_name == user_name)
        query = (
            sa.select(cases)
            .where(sa.or_(cases.c.created_by == user_name, cases.c.id.in_(member_of)))
            .order_by(cases.c.id)
        )
        with self._read() as connection:
            return [_case(row) for row in connection.execute(query)]

    def add_search(
        self,
        case_id: int,
        user: str,
        purpose: str,
        probe_sha256: str,
        probe_name: str,
        model_id: str,
        probe_embedding: FloatArray | None,
        hits: Sequence[StoredHit],
        audit: AuditDraft | None = None,
    ) -> SearchRecord:
        now = _now()
        embedding = None if probe_embedding is None else np.asarray(probe_embedding, dtype=np.float32)
        entry: AuditEntry | None = None
        with self._write() as connection:
            search_id = int(
                connection.execute(
                    _INSERT_SEARCH,
                    {
                        "case_id": case_id,
                        "user_name": user,
                        "purpose": purpose,
                        "probe_sha256": probe_sha256,
                        "probe_name": probe_name,
                        "model_id": model_id,
                        "probe_embedding": None if embedding is None else blobs.encode_floats(embedding),
                        "dim": None if embedding is None else int(embedding.shape[0]),
                        "at": now,
                    },
                ).scalar_one()
            )
            if hits:
                connection.execute(sa.insert(search_hits), [_hit_row(search_id, hit) for hit in hits])
            if audit is not None:
                target = audit.target(search_id)
                entry = _append_audit(
                    connection, audit.actor, audit.action, target, audit.details, audit.sealer(target)
                )
        if audit is not None and entry is not None:
            audit.recorded(entry)
        return SearchRecord(
            search_id, case_id, user, purpose, probe_sha256, probe_name, now, model_id, embedding, tuple(hits)
        )

    def search(self, search_id: int) -> SearchRecord | None:
        found = self._searches(searches.c.id == search_id)
        return found[0] if found else None

    def searches(self, case_id: int | None = None, *, with_hits: bool = True) -> list[SearchRecord]:
        return self._searches(None if case_id is None else searches.c.case_id == case_id, with_hits=with_hits)

    def _searches(self, where: sa.ColumnElement[bool] | None, *, with_hits: bool = True) -> list[SearchRecord]:
        query = sa.select(searches).order_by(searches.c.id)
        if where is not None:
            query = query.where(where)
        with self._read() as connection:
            rows = connection.execute(query).all()
            ids = [int(row.id) for row in rows]
            hits: dict[int, list[StoredHit]] = {search_id: [] for search_id in ids}
            for start in range(0, len(ids) if with_hits else 0, 500):
                chunk = ids[start : start + 500]
                for hit in connection.execute(
                    sa.select(search_hits)
                    .where(search_hits.c.search_id.in_(chunk))
                    .order_by(search_hits.c.search_id, search_hits.c.id)
                ):
                    hits[int(hit.search_id)].append(_stored_hit(hit))
        return [_search_record(row, tuple(hits[int(row.id)])) for row in rows]

    def add_review(self, search_id: int, face_id: int, reviewer: str, decision: ReviewDecision, note: str) -> Review:
        now = _now()
        with self._write() as connection:
            review_id = connection.execute(
                sa.insert(reviews)
                .values(search_id=search_id, face_id=face_id, reviewer=reviewer, decision=decision, note=note, at=now)
                .returning(reviews.c.id)
            ).scalar_one()
        return Review(int(review_id), search_id, face_id, reviewer, ReviewDecision(decision), note, now)

    def reviews(self, search_id: int) -> list[Review]:
        with self._read() as connection:
            rows = connection.execute(
                sa.select(reviews).where(reviews.c.search_id == search_id).order_by(reviews.c.id)
            ).all()
        return [_review(row) for row in rows]

    def awaiting_review(self, case_ids: Sequence[int]) -> list[SearchRecord]:
        if not case_ids:
            return []
        query = (
            sa.select(search_hits)
            .join(searches, searches.c.id == search_hits.c.search_id)
            .where(searches.c.case_id.in_(sorted(set(case_ids))), ~sa.exists(_a_review_of_the_hit()))
            .order_by(search_hits.c.search_id, search_hits.c.id)
        )
        with self._read() as connection:
            hits: dict[int, list[StoredHit]] = {}
            for row in connection.execute(query):
                hits.setdefault(int(row.search_id), []).append(_stored_hit(row))
            ids = sorted(hits)
            rows = [
                row
                for start in range(0, len(ids), 500)
                for row in connection.execute(
                    sa.select(searches).where(searches.c.id.in_(ids[start : start + 500])).order_by(searches.c.id)
                )
            ]
        return [_search_record(row, tuple(hits[int(row.id)])) for row in rows]

    def awaiting_review_counts(self, case_ids: Sequence[int]) -> dict[tuple[int, str], int]:
        if not case_ids:
            return {}
        pairs = (
            sa.select(searches.c.case_id, searches.c.user_name, search_hits.c.search_id, search_hits.c.face_id)
            .join(searches, searches.c.id == search_hits.c.search_id)
            .where(searches.c.case_id.in_(sorted(set(case_ids))), ~sa.exists(_a_review_of_the_hit()))
            .distinct()
            .subquery()
        )
        query = sa.select(pairs.c.case_id, pairs.c.user_name, sa.func.count()).group_by(
            pairs.c.case_id, pairs.c.user_name
        )
        with self._read() as connection:
            return {(int(case_id), str(user)): int(n) for case_id, user, n in connection.execute(query)}

    # Suppressions and receipts

    def change_counters(self) -> ChangeCounters:
        with reading(self._engine) as connection:
            return changes.read(connection)

    def add_suppressions(self, model_id: str, vectors: FloatArray, receipt_id: str) -> int:
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.ndim != 2:
            raise CatalogError(f"suppressed embeddings must be an (n, dim) matrix, got shape {matrix.shape}")
        if matrix.shape[0] == 0:
            return 0
        now = _now()
        rows = [
            {
                "model_id": model_id,
                "dim": int(matrix.shape[1]),
                "embedding": blobs.encode_floats(vector),
                "receipt_id": receipt_id,
                "created_at": now,
            }
            for vector in matrix
        ]
        with self._write() as connection:
            connection.execute(sa.insert(suppressions), rows)
            changes.bump(connection, changes.SUPPRESSIONS)
        return len(rows)

    def suppressed_vectors(self, model_id: str) -> FloatArray:
        with self._read() as connection:
            rows = connection.execute(
                sa.select(suppressions.c.embedding, suppressions.c.dim)
                .where(suppressions.c.model_id == model_id)
                .order_by(suppressions.c.id)
            ).all()
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        dims = {int(row.dim) for row in rows}
        if len(dims) != 1:
            raise CatalogError(f"suppressed embeddings of model {model_id!r} have dimensions {sorted(dims)}")
        return blobs.decode_matrix([bytes(row.embedding) for row in rows], dims.pop())

    def add_receipt(self, receipt: ErasureReceipt) -> None:
        body = {
            "face_ids": list(receipt.face_ids),
            "asset_ids": list(receipt.asset_ids),
            "asset_uris": list(receipt.asset_uris),
            "thumbnails_removed": receipt.thumbnails_removed,
            "suppressed_embeddings": receipt.suppressed_embeddings,
        }
        with self._write() as connection:
            connection.execute(
                sa.insert(erasure_receipts).values(
                    receipt_id=receipt.receipt_id,
                    at=receipt.at,
                    requested_by=receipt.requested_by,
                    mode=receipt.mode,
                    subject=receipt.subject,
                    reason=receipt.reason,
                    body=body,
                    audit_seq=receipt.audit_seq,
                )
            )

    def receipt(self, receipt_id: str) -> ErasureReceipt | None:
        with self._read() as connection:
            row = connection.execute(
                sa.select(erasure_receipts).where(erasure_receipts.c.receipt_id == receipt_id)
            ).first()
        return None if row is None else _receipt(row)

    def receipts(self, limit: int) -> list[ErasureReceipt]:
        query = sa.select(erasure_receipts).order_by(erasure_receipts.c.audit_seq.desc()).limit(limit)
        with self._read() as connection:
            return [_receipt(row) for row in connection.execute(query)]

    # Internals

    def _read(self) -> AbstractContextManager[Connection]:
        return reading(self._engine)

    def _write(self) -> AbstractContextManager[Connection]:
        return writing(self._engine)


def _append_audit(
    connection: Connection, actor: str, action: str, target: str, details: dict[str, object], seal: AuditSeal
) -> AuditEntry:
    """Append one audit entry after the last, in the caller's write transaction."""
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _AUDIT_LOCK})
    last = connection.execute(_LAST_AUDIT_ENTRY).first()
    seq = 1 if last is None else int(last.seq) + 1
    prev_hash = "0" * 64 if last is None else str(last.hash)
    at = _now()
    entry_hash = seal(seq, at, prev_hash)
    connection.execute(
        _INSERT_AUDIT_ENTRY,
        {
            "seq": seq,
            "at": at,
            "actor": actor,
            "action": action,
            "target": target,
            "details": json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
            "prev_hash": prev_hash,
            "hash": entry_hash,
        },
    )
    return AuditEntry(seq, at, actor, action, target, dict(details), prev_hash, entry_hash)


def _now() -> datetime:
    return datetime.now(UTC)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _receipt(row: Row[Any]) -> ErasureReceipt:
    body = dict(row.body)
    return ErasureReceipt(
        receipt_id=row.receipt_id,
        at=row.at,
        requested_by=row.requested_by,
        mode=ErasureMode(row.mode),
        subject=row.subject,
        reason=row.reason,
        face_ids=tuple(int(i) for i in body.get("face_ids", [])),
        asset_ids=tuple(int(i) for i in body.get("asset_ids", [])),
        asset_uris=tuple(str(u) for u in body.get("asset_uris", [])),
        thumbnails_removed=int(body.get("thumbnails_removed", 0)),
        suppressed_embeddings=int(body.get("suppressed_embeddings", 0)),
        audit_seq=int(row.audit_seq),
    )


def _user(row: Row[Any]) -> User:
    return User(int(row.id), row.name, Role(row.role), row.created_at, bool(row.active), row.sessions_valid_after)


def _case(row: Row[Any]) -> Case:
    return Case(
        case_id=int(row.id),
        title=row.title,
        purpose=row.purpose,
        legal_basis=row.legal_basis,
        requires_independent_review=bool(row.requires_independent_review),
        created_by=row.created_by,
        created_at=row.created_at,
        status=CaseStatus(row.status),
    )


def _a_review_of_the_hit() -> sa.Select[tuple[int]]:
    """A review of the search hit's face in its search (for EXISTS): reviews are per search and face."""
    return sa.select(reviews.c.id).where(
        reviews.c.search_id == search_hits.c.search_id, reviews.c.face_id == search_hits.c.face_id
    )


def _review(row: Row[Any]) -> Review:
    return Review(
        int(row.id), int(row.search_id), int(row.face_id), row.reviewer, ReviewDecision(row.decision), row.note, row.at
    )


def _audit_conditions(query: AuditQuery) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if query.actor is not None:
        conditions.append(audit_log.c.actor == query.actor)
    if query.actions:
        conditions.append(audit_log.c.action.in_(query.actions))
    if query.case_id is not None:
        # details are canonical JSON (sorted keys, no spaces), so a case_id key reads `"case_id":N` then , or }.
        key = f'"case_id":{int(query.case_id)}'
        conditions.append(
            sa.or_(
                audit_log.c.target == f"case:{int(query.case_id)}",
                audit_log.c.details.like(f"%{key},%"),
                audit_log.c.details.like(f"%{key}}}%"),
            )
        )
    if query.since is not None:
        conditions.append(audit_log.c.at >= query.since)
    if query.until is not None:
        conditions.append(audit_log.c.at < query.until)
    return conditions


def _audit_entry(row: Row[Any]) -> AuditEntry:
    try:
        details = json.loads(row.details)
    except ValueError:
        details = {"unreadable": str(row.details)}  # an edited row: the verifier reports its hash mismatch
    if not isinstance(details, dict):
        details = {"unreadable": str(row.details)}
    return AuditEntry(int(row.seq), row.at, row.actor, row.action, row.target, details, row.prev_hash, row.hash)


def _hit_row(search_id: int, hit: StoredHit) -> dict[str, Any]:
    evidence = hit.evidence
    return {
        "search_id": search_id,
        "probe_face_index": hit.probe_face_index,
        "rank": hit.rank,
        "face_id": hit.face_id,
        "similarity": evidence.similarity,
        "false_match_rate": _finite_or_none(evidence.false_match_rate),
        "gallery_false_match_probability": _finite_or_none(evidence.gallery_false_match_probability),
        "gallery_size": evidence.gallery_size,
        "verdict": describe(evidence),  # the sentence as shown, for anyone reading the table itself
        "strength": evidence.strength.value,
        "false_match_rate_is_upper_bound": evidence.false_match_rate_is_upper_bound,
        "probe_quality": _finite_or_none(evidence.probe_quality),
        "weak_probe": evidence.weak_probe,
        "weak_candidate": evidence.weak_candidate,
        "quality_condition": evidence.quality_condition,
        "condition_table_measured": evidence.condition_table_measured,
        "same_image": hit.same_image.value,
    }


def _stored_hit(row: Row[Any]) -> StoredHit:
    if row.strength is None:
        evidence = _legacy_evidence(row)
    else:
        evidence = Evidence(
            similarity=float(row.similarity),
            strength=Strength(row.strength),
            false_match_rate=_or_nan(row.false_match_rate),
            gallery_size=int(row.gallery_size),
            gallery_false_match_probability=_or_nan(row.gallery_false_match_probability),
            probe_quality=_or_nan(row.probe_quality),
            weak_probe=bool(row.weak_probe),
            weak_candidate=bool(row.weak_candidate),
            false_match_rate_is_upper_bound=bool(row.false_match_rate_is_upper_bound),
            quality_condition=_condition(row.quality_condition),
            condition_table_measured=bool(row.condition_table_measured),
        )
    return StoredHit(
        probe_face_index=row.probe_face_index,
        rank=int(row.rank),
        face_id=int(row.face_id),
        evidence=evidence,
        same_image=SameImage(row.same_image) if row.same_image else SameImage.NONE,
    )


def _condition(value: str | None) -> QualityCondition:
    for condition in QUALITY_CONDITIONS:
        if value == condition:
            return condition
    raise CatalogError(f"search_hits.quality_condition {value!r} is none of {', '.join(QUALITY_CONDITIONS)}")


_LEGACY_STRENGTHS = {headline(strength): strength for strength in Strength}


def _legacy_evidence(row: Row[Any]) -> Evidence:
    """A hit stored before revision 0005 kept its rates and its verdict sentence only: the rest is read back from
    the sentence, here and nowhere else. Those sentences are in the wording of their day ("a stranger scores this high
    1 in ... comparisons", tests/contract/test_evidence_contract.py keeps examples): its head names the strength,
    "high below" an upper bound, "low-quality probe and candidate face" the weak faces, and the table it names the one
    the rate came from. The probe's quality score was not kept (NaN)."""
    sentence: str = row.verdict
    fmr = _or_nan(row.false_match_rate)
    strength = _LEGACY_STRENGTHS.get(sentence.split(":", 1)[0])
    if strength is None:  # not a sentence facetrace wrote: claim no lead
        strength = Strength.UNCALIBRATED if math.isnan(fmr) else Strength.WEAK
    weak_faces = (
        sentence.split("; low-quality ", 1)[1].split(" face:", 1)[0].split(" and ")
        if "; low-quality " in sentence
        else []
    )
    table: QualityCondition = CLEAN_CONDITION
    for condition in QUALITY_CONDITIONS:
        if condition in TABLE_NAMES and f"rate from {TABLE_NAMES[condition]}" in sentence:
            table = condition
    return Evidence(
        similarity=float(row.similarity),
        strength=strength,
        false_match_rate=fmr,
        gallery_size=int(row.gallery_size),
        gallery_false_match_probability=_or_nan(row.gallery_false_match_probability),
        probe_quality=math.nan,
        weak_probe="probe" in weak_faces,
        weak_candidate="candidate" in weak_faces,
        false_match_rate_is_upper_bound="scores this high below " in sentence,
        quality_condition=table,
        condition_table_measured=table != CLEAN_CONDITION or "rate from the clean table, which is higher" in sentence,
    )


def _search_record(row: Row[Any], hits: tuple[StoredHit, ...]) -> SearchRecord:
    embedding = None
    if row.probe_embedding is not None and row.dim is not None:
        embedding = blobs.decode_vector(bytes(row.probe_embedding), int(row.dim))
    return SearchRecord(
        search_id=int(row.id),
        case_id=int(row.case_id),
        user=row.user_name,
        purpose=row.purpose,
        probe_sha256=row.probe_sha256,
        probe_name=row.probe_name,
        at=row.at,
        model_id=row.model_id,
        probe_embedding=embedding,
        hits=hits,
    )
