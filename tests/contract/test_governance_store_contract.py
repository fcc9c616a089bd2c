"""The governance store (users, keys, cases, searches, reviews, audit chain, suppressions, receipts) and the
catalog's erasure methods, on SQLite and on PostgreSQL (same fixtures as the catalog contract)."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from alembic import command
from catalog_samples import DIM, MODEL, make_asset, make_face, unit_vector

from facetrace.catalog import SqlCatalog, open_catalog
from facetrace.catalog.governance_store import SqlGovernanceStore
from facetrace.catalog.schema import alembic_config
from facetrace.core.errors import (
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from facetrace.core.types import AuditQuery, ErasureReceipt, Evidence, StoredHit, Strength, User
from facetrace.core.vocabulary import IndependentReview, ReviewDecision, Role
from facetrace.governance.audit import AuditLog
from facetrace.governance.cases import CaseService
from facetrace.governance.users import UserService, key_sha256


@pytest.fixture
def store(catalog: SqlCatalog) -> Iterator[SqlGovernanceStore]:
    yield catalog.governance_store()


def _evidence(similarity: float, fmr: float = 1e-5) -> Evidence:
    strength = Strength.UNCALIBRATED if math.isnan(fmr) else Strength.MODERATE
    return Evidence(similarity, strength, fmr, 10, fmr * 10, 0.5, weak_probe=False, weak_candidate=False)


def _hit(face_id: int, rank: int, similarity: float, fmr: float = 1e-5) -> StoredHit:
    return StoredHit(0, rank, face_id, _evidence(similarity, fmr))


def test_users_and_keys(store: SqlGovernanceStore) -> None:
    users = UserService(store, AuditLog(store))
    issued = users.create_admin("alice", "cli:root")
    assert issued.api_key.startswith("ft_") and len(issued.api_key) > 40
    assert users.authenticate_key(issued.api_key).name == "alice"
    assert store.user_by_key(key_sha256("ft_wrong")) is None
    with pytest.raises(ConflictError):
        users.add_user("alice", "auditor", "alice")
    bob = users.add_user("bob", "investigator", "alice", password="p" * 12, hasher=_PlainHasher())
    assert store.password_hash("bob") == "plain:" + "p" * 12
    assert [(u.name, u.role) for u in store.users()] == [("alice", "admin"), ("bob", "investigator")]
    assert users.authenticate_password("bob", "p" * 12, _PlainHasher()).user_id == bob.user.user_id
    second = users.issue_key("bob", "alice")
    assert users.authenticate_key(second.api_key).name == "bob"
    # Only hashes are stored.
    with store._read() as connection:
        stored = connection.exec_driver_sql("SELECT key_sha256 FROM api_keys").scalars().all()
    assert issued.api_key not in stored and key_sha256(issued.api_key) in stored
    assert users.deactivate("bob", "alice").active is False
    with pytest.raises(AuthenticationError):
        users.authenticate_key(second.api_key)
    with pytest.raises(AuthenticationError):
        users.authenticate_password("bob", "p" * 12, _PlainHasher())
    assert store.deactivate_user("nobody") == 0


def test_one_key_is_revoked_and_a_password_set(store: SqlGovernanceStore) -> None:
    users = UserService(store, AuditLog(store))
    first = users.create_admin("alice", "cli:root")
    second = users.issue_key("alice", "cli:root")
    keys = users.api_keys("alice")
    assert [k.prefix for k in keys] == [first.api_key[:10], second.api_key[:10]] and all(k.active for k in keys)
    revoked = users.revoke_key("alice", keys[1].key_id, "cli:root")
    assert revoked.key_id == keys[1].key_id and revoked.revoked_at is not None and not revoked.active
    with pytest.raises(AuthenticationError):
        users.authenticate_key(second.api_key)
    assert users.authenticate_key(first.api_key).name == "alice"
    with pytest.raises(ConflictError):
        users.revoke_key("alice", keys[1].key_id, "cli:root")
    bob = users.add_user("bob", "auditor", "alice")
    with pytest.raises(NotFoundError):
        users.revoke_key("bob", keys[0].key_id, "alice")  # alice's key, not bob's
    assert store.revoke_api_key(bob.user.user_id, keys[0].key_id) is False
    with pytest.raises(InvalidRequestError):
        users.set_password("bob", "p" * 11, "alice", _PlainHasher())
    users.set_password("bob", "q" * 12, "alice", _PlainHasher())
    assert users.authenticate_password("bob", "q" * 12, _PlainHasher()).name == "bob"
    actions = [(e.actor, e.action, e.target) for e in AuditLog(store).entries(0)]
    assert ("cli:root", "revoke_api_key", "user:alice") in actions and ("alice", "set_password", "user:bob") in actions


class _PlainHasher:
    def hash(self, password: str) -> str:
        return "plain:" + password

    def verify(self, encoded: str, password: str) -> bool:
        return encoded == "plain:" + password


def test_audit_chain_survives_the_database_and_catches_an_edit(
    store: SqlGovernanceStore,
    raw_engine: sa.Engine,
) -> None:
    log = AuditLog(store)
    for number in range(5):
        log.record("alice", "view_face", f"face:{number}", note="é", ratio=number / 3)
    report = log.verify()
    assert report.ok and report.entries == 5
    assert [e.seq for e in log.entries(2, 2)] == [3, 4]
    with raw_engine.begin() as connection:
        connection.execute(sa.text("UPDATE audit_log SET target = 'face:99' WHERE seq = 3"))
    report = log.verify()
    assert report.first_bad_seq == 3
    with raw_engine.begin() as connection:
        connection.execute(sa.text("UPDATE audit_log SET target = 'face:2' WHERE seq = 3"))
        connection.execute(sa.text("DELETE FROM audit_log WHERE seq = 2"))
    assert log.verify().first_bad_seq == 3


def test_audit_entries_are_found_by_actor_action_case_and_period(store: SqlGovernanceStore) -> None:
    log = AuditLog(store)
    log.record("ivan", "open_case", "case:1", title="t")
    log.record("ivan", "search", "search:1", case_id=1, purpose="p")
    time.sleep(0.01)  # entry 3 is later than entry 2 at any clock resolution: the period bound falls between them
    log.record("ivan", "view_face", "face:7", case_id=12, purpose="p")  # case 12, not case 1
    log.record("rita", "review", "search:1", case_id=1, decision="confirmed")
    log.record("rita", "view_case", "case:12")
    log.record("olga", "read_audit", "audit", note='"case_id":1,')  # the text, not the key: not case 1

    def seqs(query: AuditQuery, **options: object) -> list[int]:
        return [entry.seq for entry in log.find(query, **options)]  # type: ignore[arg-type]

    assert seqs(AuditQuery()) == [6, 5, 4, 3, 2, 1]
    assert seqs(AuditQuery(actor="rita")) == [5, 4]
    assert seqs(AuditQuery(actions=("search", "review"))) == [4, 2]
    assert seqs(AuditQuery(case_id=1)) == [4, 2, 1]
    assert seqs(AuditQuery(case_id=12)) == [5, 3]
    assert seqs(AuditQuery(actor="ivan", case_id=1), newest_first=False) == [1, 2]
    assert seqs(AuditQuery(), before_seq=5, limit=2) == [4, 3]
    assert seqs(AuditQuery(), after_seq=4, newest_first=False) == [5, 6]
    at = log.entries(2, 1)[0].at
    assert seqs(AuditQuery(since=at)) == [6, 5, 4, 3]
    assert seqs(AuditQuery(until=at)) == [2, 1]
    assert seqs(AuditQuery(since=datetime(2000, 1, 1, tzinfo=UTC), until=datetime(2000, 1, 2, tzinfo=UTC))) == []


def test_cases_searches_reviews_and_repeats(store: SqlGovernanceStore) -> None:
    log = AuditLog(store)
    # Four eyes left to the investigator by policy (optional), so case B can go without it.
    cases = CaseService(store, log, repeat_similarity=0.9, independent_review=IndependentReview.OPTIONAL)
    investigator = User(1, "ivan", "investigator", datetime.now(UTC))
    reviewer = User(2, "rita", "reviewer", datetime.now(UTC))
    store.add_user("rita", Role.REVIEWER)
    first = cases.open_case(investigator, "Case A", "find the thief", "warrant 12", requires_independent_review=True)
    second = cases.open_case(investigator, "Case B", "missing person", "consent", requires_independent_review=False)
    probe = unit_vector(1)
    record = cases.record_search(investigator, first, "who is this", "a" * 64, "probe.jpg", MODEL, probe, [])
    store_hits = [_hit(7, 1, 0.71), _hit(8, 2, 0.2, math.nan)]
    stored = store.add_search(second.case_id, "ivan", "again", "b" * 64, "other.jpg", MODEL, probe * 1.0, store_hits)
    again = store.search(stored.search_id)
    assert again is not None and again.hits[0] == store_hits[0]
    assert math.isnan(again.hits[1].evidence.false_match_rate) and again.probe_embedding is not None
    assert not again.hits[1].evidence.calibrated
    np.testing.assert_array_equal(again.probe_embedding, probe)
    assert [s.search_id for s in cases.searches(first.case_id)] == [record.search_id]
    # Four eyes: case A requires independent review, case B does not. Rita reviews once an admin adds her.
    store.add_search(first.case_id, "ivan", "more", "c" * 64, "c.jpg", MODEL, None, [_hit(7, 1, 0.7)])
    searches_a = cases.searches(first.case_id)
    admin = User(3, "ada", Role.ADMIN, datetime.now(UTC))
    with pytest.raises(NotFoundError, match=f"^no search {searches_a[-1].search_id}$"):
        cases.review(reviewer, searches_a[-1].search_id, 7, "confirmed")
    cases.add_member(admin, first.case_id, "rita")
    cases.add_member(admin, second.case_id, "rita")
    with pytest.raises(PermissionDeniedError):
        cases.review(investigator, searches_a[-1].search_id, 7, "confirmed")
    review = cases.review(reviewer, searches_a[-1].search_id, 7, "rejected", " not him ")
    assert review.note == "not him" and cases.reviews(searches_a[-1].search_id) == [review]
    assert cases.review(investigator, stored.search_id, 7, "confirmed").reviewer == "ivan"
    with pytest.raises(NotFoundError):
        cases.review(reviewer, stored.search_id, 999, "confirmed")
    repeats = cases.repeated_probes()
    assert [(r.earlier_search_id, r.later_search_id, r.same_photo) for r in repeats] == [
        (record.search_id, stored.search_id, False)
    ]
    assert repeats[0].similarity == pytest.approx(1.0)
    assert log.verify().ok


def test_awaiting_review_lists_and_counts_the_unreviewed_candidates(store: SqlGovernanceStore) -> None:
    """Candidates without a review, by search (only those hits) and counted by case and searcher, each face once
    per search (a face can be a hit of two probe faces); other cases are left out."""
    a, b, c = (store.add_case(f"case {n}", "p", "l", True, "ivan") for n in "abc")
    twice = [_hit(7, 1, 0.8), _hit(8, 2, 0.6), _hit(9, 3, 0.4), StoredHit(1, 1, 7, _evidence(0.5))]
    a1 = store.add_search(a.case_id, "ivan", "p", "a" * 64, "a.jpg", MODEL, None, twice)
    a2 = store.add_search(a.case_id, "rita", "p", "b" * 64, "b.jpg", MODEL, None, [_hit(7, 1, 0.9)])
    b1 = store.add_search(b.case_id, "mia", "p", "c" * 64, "c.jpg", MODEL, None, [_hit(10, 1, 0.7), _hit(11, 2, 0.6)])
    store.add_search(c.case_id, "ivan", "p", "d" * 64, "d.jpg", MODEL, None, [_hit(12, 1, 0.7)])
    store.add_review(a1.search_id, 8, "rita", ReviewDecision.REJECTED, "")
    store.add_review(b1.search_id, 10, "rita", ReviewDecision.CONFIRMED, "")
    store.add_review(b1.search_id, 10, "olga", ReviewDecision.REJECTED, "")  # a second review changes nothing here
    waiting = store.awaiting_review([a.case_id, b.case_id])
    assert [(w.search_id, w.user, [(h.probe_face_index, h.face_id) for h in w.hits]) for w in waiting] == [
        (a1.search_id, "ivan", [(0, 7), (0, 9), (1, 7)]),
        (a2.search_id, "rita", [(0, 7)]),
        (b1.search_id, "mia", [(0, 11)]),
    ]
    assert waiting[0].hits[0] == twice[0] and waiting[0].purpose == "p"
    assert store.awaiting_review_counts([a.case_id, b.case_id]) == {
        (a.case_id, "ivan"): 2,
        (a.case_id, "rita"): 1,
        (b.case_id, "mia"): 1,
    }
    assert store.awaiting_review([]) == [] and store.awaiting_review_counts([]) == {}


def test_suppressions_and_receipts(store: SqlGovernanceStore) -> None:
    assert store.suppressed_vectors(MODEL).shape == (0, 0)
    vectors = np.vstack([unit_vector(1), unit_vector(2)])
    assert store.add_suppressions(MODEL, vectors, "er_1") == 2
    np.testing.assert_array_equal(store.suppressed_vectors(MODEL), vectors)
    assert store.suppressed_vectors("other").shape == (0, 0)
    receipt = ErasureReceipt("er_1", datetime.now(UTC), "alice", "person", "bob", "request 5", (1, 2), (3,),
                             ("/p/3.jpg",), 2, 2, 17)  # fmt: skip
    store.add_receipt(receipt)
    assert store.receipt("er_1") == receipt
    assert store.receipt("er_2") is None
    later = ErasureReceipt("er_3", datetime.now(UTC), "alice", "faces", "4", "request 6", (4,), (), (), 0, 1, 18)
    store.add_receipt(later)
    assert store.receipts(10) == [later, receipt]  # newest first
    assert store.receipts(1) == [later]


def test_delete_faces_removes_faces_and_emptied_assets(catalog: SqlCatalog) -> None:
    run = catalog.start_run("test", MODEL)
    _, solo = catalog.add_asset_with_faces(run, make_asset(1, label="bob"), [make_face(1)], MODEL,
                                           thumbnail_paths=["ab/1_0.jpg"])  # fmt: skip
    _, group = catalog.add_asset_with_faces(run, make_asset(2, label="team"), [make_face(2), make_face(3)], MODEL)
    assert catalog.face_ids_labelled("bob") == solo
    assert catalog.face_ids_labelled("team") == []  # two faces, neither dominant: the label names none (issue 10)
    deleted = catalog.delete_faces([solo[0], group[0], 12345])
    assert deleted.face_ids == (solo[0], group[0])
    assert len(deleted.asset_ids) == 1  # the group photo keeps a face
    assert deleted.asset_uris == ("/photos/1.jpg",)
    assert deleted.thumbnail_paths == ("ab/1_0.jpg",)
    assert deleted.embeddings.shape == (2, DIM)
    np.testing.assert_array_equal(deleted.embeddings[0], unit_vector(1))
    assert catalog.count_faces() == 1 and catalog.known_sha256([f"{1:064x}", f"{2:064x}"]) == {f"{2:064x}"}
    assert catalog.delete_faces([]).face_ids == ()


def test_case_members_migration_keeps_access_for_whoever_worked_in_a_case(
    catalog_uri: str, raw_engine: sa.Engine
) -> None:
    """0009 on a catalog with cases: the users who searched or reviewed in a case (but its owner) become members;
    nobody else does."""
    if raw_engine.dialect.name == "sqlite" and raw_engine.url.database:
        Path(raw_engine.url.database).parent.mkdir(parents=True, exist_ok=True)
    at = datetime(2026, 12, 1, tzinfo=UTC)
    with raw_engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0008")
        for case_id, owner in [(1, "olga"), (2, "ivan")]:
            connection.execute(
                sa.text(
                    "INSERT INTO cases (id, title, purpose, legal_basis, requires_independent_review, created_by, "
                    "created_at, status) VALUES (:id, 't', 'p', 'l', true, :owner, :at, 'open')"
                ),
                {"id": case_id, "owner": owner, "at": at},
            )
        for search_id, case_id, user in [(10, 1, "olga"), (11, 1, "mike"), (12, 2, "ivan")]:
            connection.execute(
                sa.text(
                    "INSERT INTO searches (id, case_id, user_name, purpose, probe_sha256, probe_name, model_id, at) "
                    "VALUES (:id, :case_id, :user, 'p', :sha, 'p.jpg', 'm', :at)"
                ),
                {"id": search_id, "case_id": case_id, "user": user, "sha": "a" * 64, "at": at},
            )
        connection.execute(
            sa.text(
                "INSERT INTO reviews (search_id, face_id, reviewer, decision, note, at) "
                "VALUES (10, 7, 'rita', 'confirmed', '', :at), (10, 7, 'mike', 'rejected', '', :at)"
            ),
            {"at": at},
        )
    with open_catalog(catalog_uri) as upgraded:
        store = upgraded.governance_store()
        assert [(m.user_name, m.added_by) for m in store.case_members(1)] == [
            ("mike", "migration:0009"),
            ("rita", "migration:0009"),
        ]
        assert store.case_members(2) == []  # its owner alone worked in it
        assert [case.case_id for case in store.cases_of("rita")] == [1]
        assert [case.case_id for case in store.cases_of("ivan")] == [2]
        assert store.case_members(1)[0].added_at.tzinfo is not None


def test_a_search_and_its_audit_entry_are_one_transaction(store: SqlGovernanceStore) -> None:
    """record_search stores the search and appends its audit entry in one transaction: both, or neither."""
    log = AuditLog(store)
    cases = CaseService(store, log, repeat_similarity=0.9, independent_review=IndependentReview.OPTIONAL)
    ivan = User(1, "ivan", "investigator", datetime.now(UTC))
    case = cases.open_case(ivan, "Case A", "find the thief", "warrant 12")
    before = log.length()
    record = cases.record_search(ivan, case, "who is this", "a" * 64, "p.jpg", MODEL, None, [])
    (entry,) = log.entries(after_seq=before)
    assert entry.target == f"search:{record.search_id}" and entry.action == "search"
    assert entry.details == {
        "case_id": case.case_id,
        "purpose": "who is this",
        "probe_sha256": "a" * 64,
        "hit_face_ids": [],
    }
    assert log.verify().ok

    def failing_seal(target: str) -> object:
        def seal(seq: int, at: datetime, prev_hash: str) -> str:
            raise RuntimeError("the audit entry cannot be sealed")

        return seal

    draft = dataclasses.replace(log.draft("ivan", "search", lambda row: f"search:{row}"), sealer=failing_seal)
    searches_before = len(store.searches(case.case_id))
    with pytest.raises(RuntimeError, match="cannot be sealed"):
        store.add_search(case.case_id, "ivan", "why", "b" * 64, "q.jpg", MODEL, None, [_hit(8, 1, 0.7)], draft)
    assert len(store.searches(case.case_id)) == searches_before  # the search went with its entry
    assert log.length() == before + 1
