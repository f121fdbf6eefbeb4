"""Benchmarks of jointsearch: every figure the README quotes comes from a script here.

Run them as modules from the repository root (``python -m bench.optimizers --quick``) so that
``bench.problems`` is importable, in the driver and in every Ray worker.
"""
