"""Robustness benchmark: verification and identification on LFW under controlled degradations, and whether the
quality flags mark the faces that produce high-scoring impostors (`facetrace eval robustness`, docs/robustness.md).

- protocol: which pairs, probes and gallery photos, which degradations at which strengths, and the constants;
- observations: what the analyzer saw of each clean and degraded photo (its subject face), cached on disk;
- scoring: every figure of one condition from those observations;
- report: the report, its Markdown tables and the side-by-side table of several runs;
- benchmark: running it all (evaluate_robustness), and the preparation the quality calibration shares;
- plot: the PNG plot (matplotlib).
"""
