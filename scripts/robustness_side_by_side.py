"""Print a Markdown table of several `facetrace eval robustness --json` reports side by side (docs/robustness.md).

    python scripts/robustness_side_by_side.py plain=/tmp/rb-off/report.json +fallback=/tmp/rb-auto/report.json ...

The first LABEL=FILE is the reference: its rows set the order. The runs must share model, pairs, seed and threshold.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from facetrace.evaluation.robustness.report import side_by_side_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reports", nargs="+", help="LABEL=report.json")
    args = parser.parse_args(argv)
    reports = []
    for item in args.reports:
        label, sep, path = item.partition("=")
        if not sep:
            parser.error(f"{item!r}: expected LABEL=FILE")
        reports.append((label, json.loads(Path(path).read_text(encoding="utf-8"))))
    sys.stdout.write(side_by_side_table(reports) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
