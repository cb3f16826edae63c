"""Benchmark scripts of jaxrec, run from the repository root as modules.

  python -m benchmarks.<name> --help

Shared pieces (command line of a run, machine description, result files,
Markdown tables) live in `benchmarks.common`; jaxrec itself is imported as
the installed package (`pip install -e .`).
"""
