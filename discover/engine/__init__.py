"""The engine: the discovery loop and what it is made of.

- ``loop``: the thin orchestrator of one run (``Discovery``), live and on resume alike;
- ``selector``: the POLCA-style priority queue and the behavioural ε-net (a pure policy);
- ``evaluation``: the one path from a program to its stored, scored evaluations;
- ``probe``: behavioural fingerprints, computed in the isolated executor;
- ``limits``: per-evaluation time limits derived from the space's reference program;
- ``runner``: ``discover run`` — wiring a space, store, executor and mutator, progress,
  and the closing comparison with every seed;
- ``progress``: what a running discovery shows.
"""
