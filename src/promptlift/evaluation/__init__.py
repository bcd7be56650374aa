"""Evaluation: generate-and-score runs, pairwise win rates with intervals, reports, exporters."""
