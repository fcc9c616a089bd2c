"""The catalog backends every contract suite in this folder runs on: SQLite, and PostgreSQL when a server answers.

PostgreSQL comes from FACETRACE_TEST_POSTGRES_URL (default: trust auth on 127.0.0.1:5432, database `test`). The
suite creates its own database for the session and a fresh schema per test, and drops both. If the server is
unreachable the PostgreSQL cases are skipped, unless FACETRACE_REQUIRE_POSTGRES=1 (CI), which makes that a failure.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from facetrace.catalog import SqlCatalog, open_catalog
from facetrace.catalog.database import catalog_url, describe

POSTGRES_URL = os.environ.get("FACETRACE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_POSTGRES = os.environ.get("FACETRACE_REQUIRE_POSTGRES") == "1"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[sa.Engine]:
    """An autocommit engine on the server's default database, or a skip (a failure in CI) if there is no server."""
    base = catalog_url(POSTGRES_URL)
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with admin.connect():
            pass
    except OperationalError as exc:
        admin.dispose()
        reason = f"PostgreSQL unreachable at {describe(base)} ({exc.orig}); set FACETRACE_TEST_POSTGRES_URL"
        if REQUIRE_POSTGRES:
            pytest.fail(f"{reason}; FACETRACE_REQUIRE_POSTGRES=1 makes this a failure")
        pytest.skip(reason)
    try:
        yield admin
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_database(postgres_server: sa.Engine) -> Iterator[sa.Engine]:
    """An autocommit engine on a database of this test session's own, dropped at the end."""
    name = f"facetrace_test_{secrets.token_hex(6)}"
    with postgres_server.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine = sa.create_engine(postgres_server.url.set(database=name), isolation_level="AUTOCOMMIT")
    try:
        yield engine
    finally:
        engine.dispose()
        with postgres_server.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_uri(postgres_database: sa.Engine) -> Iterator[str]:
    """A fresh schema per test (cheaper than a database), made the default through the connection's search_path."""
    schema = f"t_{secrets.token_hex(6)}"
    with postgres_database.connect() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        url = postgres_database.url.update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with postgres_database.connect() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def catalog_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'catalog.db'}"
    return str(request.getfixturevalue("postgres_uri"))


@pytest.fixture
def catalog(catalog_uri: str) -> Iterator[SqlCatalog]:
    opened = open_catalog(catalog_uri)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def raw_engine(catalog_uri: str) -> Iterator[sa.Engine]:
    """Direct SQL access, for checks and for damage the catalog's API would never do."""
    engine = sa.create_engine(catalog_url(catalog_uri))
    try:
        yield engine
    finally:
        engine.dispose()
