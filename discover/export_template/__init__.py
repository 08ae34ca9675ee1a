"""Templates of the package `discover export` writes (``string.Template`` syntax: ``$name``).

- ``pyproject.toml.tmpl``: the distribution ``discover-algo-<name>`` and its entry point;
- ``module_init.py.tmpl``: the package's ``__init__`` with the ``ALGORITHM`` object, followed
  by the space's adapter code (``discover.export.ADAPTERS`` names the files of each space):
  ``cfr_adapter.py.tmpl`` (an OpenSpiel-style ``Solver``), ``psro_adapter.py.tmpl``
  (``MetaSolver``), ``drift_adapter.py.tmpl`` (``loss`` and ``drift``, for
  ``ppo_objectives`` and ``temporal_objectives``), ``advantage_adapter.py.tmpl``
  (``advantages``), or ``generic_adapter.py.tmpl`` for other spaces;
- ``<kind>_usage.txt.tmpl`` / ``<kind>_usage.md.tmpl``: how to call the adapter, for the
  module docstring and the README (``$module`` substituted);
- ``test_algorithm.py.tmpl`` plus the adapter's ``test_<kind>.py.tmpl``: the package's tests;
- ``README.md.tmpl``: results and lineage.
"""
