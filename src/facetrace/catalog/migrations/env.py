"""Alembic entry point: migrate the connection facetrace.catalog.schema hands over."""

from __future__ import annotations

from alembic import context

from facetrace.catalog.tables import metadata
from facetrace.core.errors import CatalogError

connection = context.config.attributes.get("connection")
if connection is None:
    raise CatalogError("catalog migrations run through facetrace.catalog.schema.upgrade_to_head(), not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
