"""The vocabulary's enums (core/vocabulary.py) hold exactly the words the catalog stores and the services and API
accept, and a member is its word wherever it goes (JSON, f-strings, SQL parameters on SQLite and PostgreSQL)."""

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import pytest
import sqlalchemy as sa
from catalog_samples import MODEL

import facetrace
from facetrace.catalog import SqlCatalog
from facetrace.core.errors import CatalogError, InvalidRequestError
from facetrace.core.types import Evidence, StoredHit, Strength, User
from facetrace.core.vocabulary import (
    AuditAction,
    CaseStatus,
    ClusterAssignedBy,
    ClusterEventKind,
    ErasureMode,
    IndependentReview,
    JobKind,
    JobStatus,
    PhotoRole,
    ReviewDecision,
    Role,
    RunStatus,
    SameImage,
    SubjectAttribution,
    WalkSkip,
    WithheldReason,
)
from facetrace.governance.audit import AuditLog
from facetrace.governance.cases import CaseService
from facetrace.governance.users import UserService
from facetrace.server.schemas import FaceOut, IngestJobOut, NewUserIn, ReceiptOut, ReviewIn, ReviewOut, UserOut

# The words as the catalog holds them and the API documents them, written out here so that a change to an enum
# (which would need a migration of stored rows and breaks API clients) is a change to this test too.
WORDS: dict[type[StrEnum], tuple[str, ...]] = {
    Role: ("admin", "investigator", "reviewer", "auditor"),
    CaseStatus: ("open", "closed"),
    # Not stored: the setting independent_review (docs/configuration.md).
    IndependentReview: ("required", "optional"),
    ReviewDecision: ("confirmed", "rejected"),
    ErasureMode: ("faces", "person", "probe"),
    JobKind: ("upload", "path", "manifest"),
    JobStatus: ("queued", "running", "done", "failed"),
    RunStatus: ("running", "finished", "interrupted", "failed"),
    SubjectAttribution: ("only_face", "dominant", "face_index", "face_box", "ambiguous", "not_found", "no_face"),
    PhotoRole: ("subject", "bystander", "unattributed"),
    ClusterAssignedBy: ("batch", "incremental", "manual"),
    ClusterEventKind: ("create", "merge", "split", "assign", "rename", "erase", "hide", "unhide"),
    # Not stored, but in every search's JSON (CLI and API): a hit's same_image, a result's withheld reasons.
    SameImage: ("none", "identical", "near_duplicate"),
    WithheldReason: ("erased_person", "no_catalog_row", "impossible_similarity"),
    # Not stored: an ingest summary's source_counts keys (skipped_<word>), in its JSON.
    WalkSkip: ("not_an_image", "unsupported_format", "hidden", "broken_link", "link_loop", "unreadable"),
}
SOURCE = Path(facetrace.__file__).parent


@pytest.mark.parametrize("vocabulary", list(WORDS), ids=lambda enum: enum.__name__)
def test_each_enum_spells_the_stored_words(vocabulary: type[StrEnum]) -> None:
    assert tuple(member.value for member in vocabulary) == WORDS[vocabulary]
    for member in vocabulary:
        assert member == member.value and f"{member}" == str(member) == member.value
        assert json.dumps({member: member}) == json.dumps({member.value: member.value})
        assert hash(member) == hash(member.value) and vocabulary(member.value) is member


def test_audit_actions_are_exactly_those_the_code_records() -> None:
    """Every action passed to an audit log as a literal is an AuditAction, and every
    AuditAction is recorded somewhere."""
    literal: set[str] = set()
    named: set[str] = set()
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "AuditAction":
                named.add(AuditAction[node.attr].value)
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and len(node.args) > 1):
                continue
            receiver = ast.unparse(node.func.value)
            audits = node.func.attr == "record" and "audit" in receiver
            if (audits or node.func.attr == "_audit_event") and isinstance(node.args[1], ast.Constant):
                literal.add(node.args[1].value)
    assert literal <= {action.value for action in AuditAction}, literal - set(AuditAction)
    assert literal | named == {action.value for action in AuditAction}


def test_roles_are_accepted_stored_and_read_back(catalog: SqlCatalog, raw_engine: sa.Engine) -> None:
    store = catalog.governance_store()
    users = UserService(store, AuditLog(store))
    users.create_admin("root", "cli:test")
    for role in WORDS[Role][1:]:
        users.add_user(f"a-{role}", role, "root")
    refused = r"^role 'boss' is not one of admin, investigator, reviewer, auditor$"
    with pytest.raises(InvalidRequestError, match=refused):
        users.add_user("boss", "boss", "root")
    read = store.users()
    assert [user.role for user in read] == list(Role) and all(type(user.role) is Role for user in read)
    with raw_engine.connect() as connection:
        stored = connection.execute(sa.text("SELECT role FROM users ORDER BY id")).scalars().all()
    assert stored == list(WORDS[Role])
    # What the API documents: the roles a new user may have, and a user's role in responses.
    assert NewUserIn.model_fields["role"].description == "admin, investigator, reviewer or auditor"
    assert UserOut.model_json_schema()["$defs"]["Role"]["enum"] == list(WORDS[Role])
    entry = AuditLog(store).entries(1, 1)[0]
    assert (entry.action, entry.details["role"]) == ("add_user", "investigator")


def test_case_statuses_and_review_decisions(catalog: SqlCatalog, raw_engine: sa.Engine) -> None:
    store = catalog.governance_store()
    cases = CaseService(store, AuditLog(store), repeat_similarity=0.9)
    ivan = User(1, "ivan", Role.INVESTIGATOR, datetime.now(UTC))
    rita = User(2, "rita", Role.REVIEWER, datetime.now(UTC))
    store.add_user("rita", Role.REVIEWER)
    case = cases.open_case(ivan, "Case", "purpose", "warrant")
    cases.add_member(User(3, "ada", Role.ADMIN, datetime.now(UTC)), case.case_id, "rita")
    assert case.status is CaseStatus.OPEN and cases.case(case.case_id).status is CaseStatus.OPEN
    evidence = Evidence(0.7, Strength.MODERATE, 1e-5, 10, 1e-4, 0.5, weak_probe=False, weak_candidate=False)
    hit = StoredHit(0, 1, 7, evidence)
    search = store.add_search(case.case_id, "ivan", "why", "a" * 64, "p.jpg", MODEL, None, [hit])
    for decision in WORDS[ReviewDecision]:
        assert cases.review(rita, search.search_id, 7, decision).decision is ReviewDecision(decision)
    with pytest.raises(InvalidRequestError, match=r"^a decision is one of confirmed, rejected, not 'maybe'$"):
        cases.review(rita, search.search_id, 7, "maybe")
    assert [type(review.decision) for review in cases.reviews(search.search_id)] == [ReviewDecision] * 2
    assert cases.close_case(ivan, case.case_id, "done").status is CaseStatus.CLOSED
    assert cases.case(case.case_id).status is CaseStatus.CLOSED
    with raw_engine.connect() as connection:
        assert connection.execute(sa.text("SELECT status FROM cases")).scalar_one() == "closed"
        assert connection.execute(sa.text("SELECT decision FROM reviews ORDER BY id")).scalars().all() == list(
            WORDS[ReviewDecision]
        )
    assert ReviewIn.model_fields["decision"].description == "confirmed or rejected"
    assert ReviewOut.model_json_schema()["$defs"]["ReviewDecision"]["enum"] == list(WORDS[ReviewDecision])


def test_run_statuses(catalog: SqlCatalog) -> None:
    for status in RunStatus:
        run_id = catalog.start_run(f"run {status}", MODEL)
        if status is RunStatus.RUNNING:
            with pytest.raises(CatalogError, match=r"one of \['failed', 'finished', 'interrupted'\], not 'running'"):
                catalog.finish_run(run_id, status, {})
        else:
            catalog.finish_run(run_id, RunStatus(status.value), {})
    runs = catalog.runs()
    assert [run.status for run in reversed(runs)] == list(RunStatus) and all(type(r.status) is RunStatus for r in runs)
    assert catalog.runs(status=RunStatus.FINISHED)[0].description == "run finished"
    assert catalog.stats().runs_by_status == dict.fromkeys(WORDS[RunStatus], 1)


def test_the_api_lists_the_other_words() -> None:
    receipt = ReceiptOut.model_json_schema()["$defs"]["ErasureMode"]["enum"]
    job = IngestJobOut.model_json_schema()["$defs"]
    assert (receipt, job["JobKind"]["enum"], job["JobStatus"]["enum"]) == (
        list(WORDS[ErasureMode]),
        list(WORDS[JobKind]),
        list(WORDS[JobStatus]),
    )
    assert FaceOut.model_json_schema()["$defs"]["PhotoRole"]["enum"] == list(WORDS[PhotoRole])
