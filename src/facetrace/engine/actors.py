"""Who an audit entry names when no signed-in user acts."""

from __future__ import annotations

import getpass


def cli_actor() -> str:
    """A command run on the host (trusted as the operator of the data directory)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"
