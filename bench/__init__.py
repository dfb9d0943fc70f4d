"""Benchmarks: `bash scripts/bench [--quick] [names...]` or `.venv/bin/python -m bench`. Not part of the test run."""
