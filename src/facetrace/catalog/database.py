"""From a catalog URI to a configured SQLAlchemy engine, on SQLite or PostgreSQL."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.pool import StaticPool

from facetrace.core.errors import CatalogError, StorageFullError, is_out_of_space

logger = logging.getLogger(__name__)

# How long a SQLite writer waits for another process's write to finish before giving up ("database is locked").
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Execution option that makes a SQLite transaction take the write lock at BEGIN (see _begin_sqlite).
WRITE_TRANSACTION = "facetrace_write"
_POSTGRES_DRIVERS = {"postgresql", "postgres", "postgresql+psycopg"}
_DUPLICATE_DATABASE = "42P04"
_DISK_FULL = "53100"  # PostgreSQL: the server could not extend a file


def catalog_url(uri: str) -> URL:
    """Parse a catalog URI, choosing the psycopg 3 driver for plain postgresql:// (SQLAlchemy's default is psycopg2)."""
    try:
        url = make_url(uri)
    except ArgumentError as exc:
        raise CatalogError(f"{uri!r} is not a catalog URI; use sqlite:///path/catalog.db or postgresql://...") from exc
    if url.drivername in _POSTGRES_DRIVERS:
        return url.set(drivername="postgresql+psycopg")
    if url.drivername in {"sqlite", "sqlite+pysqlite"}:
        return url.set(drivername="sqlite+pysqlite")
    raise CatalogError(
        f"catalog URI scheme {url.drivername!r} is not supported; use sqlite:///path/catalog.db or postgresql://..."
    )


def describe(url: URL) -> str:
    """The URL without its password, for messages and logs."""
    return url.render_as_string(hide_password=True)


def create_catalog_engine(uri: str) -> Engine:
    """An engine for the catalog at uri, creating the SQLite file or the PostgreSQL database if missing."""
    url = catalog_url(uri)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return _postgres_engine(url)


def _sqlite_engine(url: URL) -> Engine:
    in_memory = url.database in (None, "", ":memory:")
    options: dict[str, Any] = {}
    if in_memory:
        # One shared connection: each new connection to :memory: would see its own empty database.
        options.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        Path(str(url.database)).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, **options)
    sa.event.listen(engine, "connect", _configure_sqlite_connection)
    sa.event.listen(engine, "begin", _begin_sqlite)
    return engine


def _configure_sqlite_connection(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    # Take over BEGIN from the sqlite3 module (which defers it and breaks transactional DDL); see _begin_sqlite.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets searches read while an ingest writes; foreign keys are off by default in SQLite.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable at every checkpoint in WAL mode, and much faster
    finally:
        cursor.close()


def _begin_sqlite(connection: Connection) -> None:
    # A deferred transaction that reads and then writes cannot wait for the lock (SQLite returns SQLITE_BUSY at
    # once to avoid deadlock), so writers announce themselves and take the lock up front, where busy_timeout applies.
    if connection.get_execution_options().get(WRITE_TRANSACTION):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.exec_driver_sql("BEGIN")


def _postgres_engine(url: URL) -> Engine:
    engine = sa.create_engine(url, pool_pre_ping=True)
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        # psycopg reports a missing database without a SQLSTATE, so ask the server instead of parsing the message.
        if not _create_postgres_database_if_missing(url):
            engine.dispose()
            raise CatalogError(f"cannot connect to the catalog at {describe(url)}: {exc.orig}") from exc
    return engine


def _create_postgres_database_if_missing(url: URL) -> bool:
    """Create the database url names if the server lacks it; False when it exists or the server cannot be asked."""
    name = url.database
    if not name:
        return False
    # CREATE DATABASE cannot run in a transaction, nor while connected to the database being created.
    maintenance = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with maintenance.connect() as connection:
            exists = connection.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).first()
            if exists is not None:
                return False
            quoted = connection.dialect.identifier_preparer.quote(name)
            try:
                connection.exec_driver_sql(f"CREATE DATABASE {quoted}")
            except sa.exc.ProgrammingError as exc:
                if getattr(exc.orig, "sqlstate", None) != _DUPLICATE_DATABASE:
                    raise CatalogError(
                        f"cannot create the catalog database {name!r} at {describe(url)}: {exc.orig}"
                    ) from exc
                return True  # another process created it meanwhile: just as good
    except OperationalError:
        return False
    finally:
        maintenance.dispose()
    logger.info("created PostgreSQL database %s", name)
    return True


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection for reads; database failures become a CatalogError naming the catalog."""
    with operational_errors(engine), engine.connect() as connection:
        yield connection


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """One write transaction (on SQLite it takes the write lock when it begins, so writers queue, never deadlock)."""
    with (
        operational_errors(engine),
        engine.connect().execution_options(**{WRITE_TRANSACTION: True}) as connection,
        connection.begin(),
    ):
        yield connection


@contextmanager
def operational_errors(engine: Engine) -> Iterator[None]:
    """Report a database that is down, locked for too long or out of space as a CatalogError naming it."""
    try:
        yield
    except OperationalError as exc:
        full = storage_full(engine, exc)
        if full is not None:
            raise full from exc
        raise CatalogError(f"the catalog at {describe(engine.url)} failed: {exc.orig}") from exc


def storage_full(engine: Engine, exc: BaseException) -> StorageFullError | None:
    """The StorageFullError naming where the catalog lives, when exc says its disk is full (SQLite's SQLITE_FULL,
    "database or disk is full"; PostgreSQL's disk_full, SQLSTATE 53100); else None."""
    orig = getattr(exc, "orig", exc)
    if getattr(orig, "sqlstate", None) == _DISK_FULL:
        return StorageFullError(f"the catalog's database server ({describe(engine.url)})", "the catalog")
    if getattr(orig, "sqlite_errorcode", None) != sqlite3.SQLITE_FULL and not is_out_of_space(orig):
        return None
    database = engine.url.database
    if engine.url.get_backend_name() == "sqlite" and database and database != ":memory:":
        path = Path(database).resolve()
        return StorageFullError(str(path.parent), path.name)
    return StorageFullError(describe(engine.url), "the catalog")
