"""The catalog: the source of truth for assets, faces, embeddings, provenance and runs (SQLite or PostgreSQL).

catalog = open_catalog("sqlite:///data/catalog.db")          # or "postgresql://user@host/facetrace"
"""

from facetrace.catalog.sql_catalog import SqlCatalog, open_catalog

__all__ = ["SqlCatalog", "open_catalog"]
