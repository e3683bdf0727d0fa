"""Metrics (pytrec_eval), the evaluation runner, benchmarks and reports."""
