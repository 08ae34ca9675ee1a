"""Benchmark harnesses that score candidates.

- ``evaluators.games``: OpenSpiel games walked once into NumPy arrays (cached on disk).
- ``evaluators.best_response``: exact best responses, NashConv and exploitability.
- ``evaluators.cfr``: the vectorised CFR engine that runs cfr_variants candidates
  (``run_cfr``), compiled with JAX or run in NumPy.

Submodules are imported on demand, so importing one harness never pulls in another's
dependencies.
"""
