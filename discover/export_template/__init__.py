"""Templates of the package `discover export` writes (``string.Template`` syntax: ``$name``).

- ``pyproject.toml.tmpl``: the distribution ``discover-algo-<name>`` and its entry point;
- ``module_init.py.tmpl``: the package's ``__init__`` with the ``ALGORITHM`` object, plus
  ``cfr_adapter.py.tmpl`` (an OpenSpiel-style ``Solver``) for CFR variants or
  ``generic_adapter.py.tmpl`` otherwise;
- ``test_algorithm.py.tmpl`` (plus ``test_cfr.py.tmpl`` for CFR variants): the package's tests;
- ``README.md.tmpl``: results and lineage.
"""
