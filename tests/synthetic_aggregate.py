"""Kept for benchmarks/bench_figures.py only, which imports ``synthetic_aggregate`` from here;
the builder is tests/synthetic.py (remove this file once the benchmark imports from there)."""

from synthetic import synthetic_aggregate

__all__ = ["synthetic_aggregate"]
