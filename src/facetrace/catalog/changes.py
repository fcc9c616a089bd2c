"""Change counters (table change_counters, migration 0006): bumped in the transaction that changes faces or
suppressions, read by processes that hold state derived from them (see engine/locking.py)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from facetrace.catalog.tables import change_counters
from facetrace.core.types import ChangeCounters

FACES_ADDED = "faces_added"
FACES_REMOVED = "faces_removed"
SUPPRESSIONS = "suppressions"
# Read before every search (twice: the index's and the suppression list's catch-up checks): built once.
_READ_ALL = sa.select(change_counters.c.name, change_counters.c.value)


def bump(connection: Connection, name: str) -> None:
    """Count one change of this kind, inside the caller's write transaction."""
    connection.execute(
        sa.update(change_counters).where(change_counters.c.name == name).values(value=change_counters.c.value + 1)
    )


def read(connection: Connection) -> ChangeCounters:
    values = {str(name): int(value) for name, value in connection.execute(_READ_ALL)}
    return ChangeCounters(
        faces_added=values.get(FACES_ADDED, 0),
        faces_removed=values.get(FACES_REMOVED, 0),
        suppressions=values.get(SUPPRESSIONS, 0),
    )
