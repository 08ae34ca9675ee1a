"""Templates of the package `discover export` writes (``string.Template`` syntax: ``$name``).

- ``pyproject.toml.tmpl``: the distribution ``discover-algo-<name>`` and its entry point;
- ``module_init.py.tmpl``: the package's ``__init__`` with the ``ALGORITHM`` object, followed
  by the space's adapter code: the files its ``discover.space.ExportAdapter`` names (kept
  beside the space, e.g. an OpenSpiel-style ``Solver`` for CFR variants), or
  ``generic_adapter.py.tmpl`` for a space that declares none;
- the adapter's usage texts, for the module docstring and the README (``$module``
  substituted), and its tests, appended to ``test_algorithm.py.tmpl``;
- ``README.md.tmpl``: results and lineage.
"""
