"""Tickmark's load generator and benchmark suite (``python -m bench``).

See ``docs/performance.md`` for the method and the latest figures.
"""
