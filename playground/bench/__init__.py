"""Benchmarks that need no model: synthetic data, wall-clock figures (`python -m playground.bench.retrieval`)."""
