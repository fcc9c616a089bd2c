"""The catalog: the source of truth for assets, faces, embeddings, provenance and runs (SQLite or PostgreSQL).

catalog = open_catalog("sqlite:///data/catalog.db")          # or "postgresql://user@host/facetrace"
"""

from facetrace.catalog.records import CatalogStats, IngestErrorRecord, RunRecord
from facetrace.catalog.sql_catalog import SqlCatalog, open_catalog

__all__ = ["CatalogStats", "IngestErrorRecord", "RunRecord", "SqlCatalog", "open_catalog"]
