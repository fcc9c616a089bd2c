"""What the service's jobs, people and case-closing routes need from the catalog, on SQLite and on PostgreSQL:
labels with face counts (paged), a stated legal basis kept without a named source, and closing a case once."""

from __future__ import annotations

import pytest
from catalog_samples import MODEL, make_asset, make_face

from facetrace.catalog import SqlCatalog
from facetrace.core.errors import ConflictError
from facetrace.governance.audit import AuditLog
from facetrace.governance.cases import CaseService


def _store(catalog: SqlCatalog, number: int, label: str | None, faces: int, **fields: object) -> list[int]:
    run_id = catalog.start_run("contract", MODEL)
    _, face_ids = catalog.add_asset_with_faces(
        run_id, make_asset(number, label=label, **fields), [make_face(number * 10 + i) for i in range(faces)], MODEL
    )
    catalog.finish_run(run_id, "finished", {})
    return face_ids


def test_labels_are_counted_by_the_faces_carrying_them_and_paged(catalog: SqlCatalog) -> None:
    _store(catalog, 1, "bea", 1)
    _store(catalog, 2, "bea", 1)
    _store(catalog, 3, "al", 1)
    # Three faces on one photo labelled with one name, none dominant: no face carries the label (issue 10 changed
    # this: the photo's label used to count for all three).
    group = _store(catalog, 4, "group", 3)
    _store(catalog, 5, None, 2)  # unlabelled: not listed
    everyone, total = catalog.labels(MODEL, 0, 100)
    assert everyone == [("al", 1), ("bea", 2)] and total == 2
    assert catalog.labels(MODEL, 1, 1) == ([("bea", 2)], 2)
    assert catalog.labels("other-model", 0, 100) == ([], 0)
    assert catalog.face_ids_labelled("group") == []
    # A face assigned to a person is counted under that person's name, as erasure by label would take it.
    catalog.assign_person(group[:1], catalog.get_or_create_person("cy"))
    assert catalog.labels(MODEL, 0, 100)[0] == [("al", 1), ("bea", 2), ("cy", 1)]
    assert catalog.face_ids_labelled("cy") == group[:1]


def test_a_legal_basis_without_a_named_source_is_kept(catalog: SqlCatalog) -> None:
    [stated] = _store(catalog, 6, "dee", 1, legal_basis="consent form 12")
    [sourced] = _store(catalog, 7, "dee", 1, legal_basis="licence B", source_name="press agency")
    [unstated] = _store(catalog, 8, "dee", 1)
    records = catalog.faces_by_id([stated, sourced, unstated])
    assert records[stated].legal_basis == "consent form 12"
    assert records[sourced].legal_basis == "licence B"
    assert records[unstated].legal_basis is None


def test_a_case_closes_once(catalog: SqlCatalog) -> None:
    store = catalog.governance_store()
    audit = AuditLog(store)
    cases = CaseService(store, audit, repeat_similarity=0.9)
    user = store.add_user("ivy", "investigator")
    case = cases.open_case(user, "t", "p", "l")
    closed = cases.close_case(user, case.case_id, "charged")
    assert closed.status == "closed" and cases.case(case.case_id).status == "closed"
    with pytest.raises(ConflictError):
        cases.close_case(user, case.case_id, "again")
    with pytest.raises(ConflictError):
        cases.check_search_allowed(user, case.case_id, "a search")
    assert [e.action for e in audit.entries(0, 100)][-1] == "close_case"
