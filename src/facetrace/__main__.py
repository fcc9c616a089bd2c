"""The `facetrace` command (and `python -m facetrace`).

The console script imports this module, not the command line itself: worker processes started with multiprocessing's
spawn method re-import the parent's main script, and importing the whole command line there (the catalog, the
server's and the accounts' modules) cost each ingest worker about a second of start-up for nothing it uses.
"""

from __future__ import annotations


def main() -> None:
    from facetrace.cli.main import app

    app()


if __name__ == "__main__":
    main()
