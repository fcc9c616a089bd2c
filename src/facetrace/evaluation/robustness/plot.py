"""The robustness report as a PNG: one panel per degradation (matplotlib, the eval extra)."""

from __future__ import annotations

from pathlib import Path

from facetrace.evaluation.robustness.protocol import CLEAN, PROFILE
from facetrace.evaluation.robustness.report import RobustnessReport


def plot_report(report: RobustnessReport, path: Path | str) -> None:
    """One panel per degradation: accuracy and TAR at the calibrated threshold against strength; clean as a line."""
    # matplotlib (the eval extra) is imported lazily: only the plot needs it.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clean = next(row for row in report.results if row.condition == CLEAN)
    names = list(dict.fromkeys(row.condition for row in report.results if row.condition not in (CLEAN, PROFILE)))
    columns = 4
    rows = max(1, -(-len(names) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
    for axis, name in zip(axes.flat, names, strict=False):
        points = [row for row in report.results if row.condition == name]
        labels = [f"{row.strength:g}" for row in points]
        positions = list(range(len(points)))
        axis.plot(positions, [row.accuracy * 100 for row in points], "o-", label="accuracy")
        axis.plot(positions, [row.tar_at_fmr * 100 for row in points], "s-", label="TAR@FMR 1e-3")
        axis.plot(positions, [row.failure_to_detect * 100 for row in points], "x:", label="failed to detect")
        axis.axhline(clean.accuracy * 100, color="grey", linestyle="--", linewidth=0.8)
        axis.set_xticks(positions, labels)
        axis.set_title(name)
        axis.set_xlabel(points[0].unit)
        axis.set_ylim(0, 101)
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(names) :]:
        axis.axis("off")
    axes.flat[0].set_ylabel("%")
    axes.flat[0].legend(fontsize=7, loc="lower left")
    figure.suptitle(
        f"{report.model_id}: {report.pairs} LFW pairs, degraded probe vs clean photo (dashed: clean accuracy)"
    )
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
