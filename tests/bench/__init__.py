"""Benchmarks: engine cost per request, end-to-end throughput, session store, worst cases.

Run `python -m tests.bench` from the repository root (`--smoke` for a seconds-long check, `--out` for
the JSON file). Not part of the default test run.
"""
