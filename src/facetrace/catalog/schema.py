"""Bring a catalog database to the schema this code knows, with Alembic driven from code (no alembic.ini).

To write the next migration, from a checkout:
    python -c "from alembic import command; from facetrace.catalog.schema import alembic_config; \
command.revision(alembic_config(), message='what changes', rev_id='0002')"
then edit the new file in catalog/migrations/versions/ and update catalog/tables.py to match.
"""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from facetrace.catalog.database import WRITE_TRANSACTION, describe
from facetrace.core.errors import CatalogError

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Arbitrary constant shared by every facetrace process: serialises concurrent first opens of one PostgreSQL catalog.
_POSTGRES_MIGRATION_LOCK = 0x66616365_74726163 & 0x7FFF_FFFF_FFFF_FFFF


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    # Config values go through configparser interpolation, where % is special.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise CatalogError(f"no migrations found in {MIGRATIONS_DIR}; the facetrace installation is incomplete")
    return head


def current_revisions(connection: Connection) -> tuple[str, ...]:
    return tuple(MigrationContext.configure(connection).get_current_heads())


def upgrade_to_head(engine: Engine) -> None:
    """Apply every migration the database lacks, in one transaction; refuse a schema newer than this code."""
    config = alembic_config()
    script = ScriptDirectory.from_config(config)
    known = {revision.revision for revision in script.walk_revisions()}
    with engine.connect().execution_options(**{WRITE_TRANSACTION: True}) as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _POSTGRES_MIGRATION_LOCK})
        current = current_revisions(connection)
        unknown = [revision for revision in current if revision not in known]
        if unknown:
            raise CatalogError(
                f"the catalog at {describe(engine.url)} has schema revision {', '.join(unknown)}, newer than this "
                f"facetrace knows (latest {script.get_current_head()}); upgrade facetrace to open it"
            )
        if current and set(current) == set(script.get_heads()):
            return
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        logger.info(
            "catalog schema at %s upgraded from %s to %s",
            describe(engine.url),
            current or "empty",
            script.get_current_head(),
        )
