"""Alembic environment for the catalog schema; run through facetrace.catalog.schema, never an alembic.ini."""
