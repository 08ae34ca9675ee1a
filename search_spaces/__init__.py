"""Search spaces shipped with discover, one package per space.

Each package exposes a module-level ``SPACE`` (a ``discover.space.Space``) and is registered
under the ``discover.spaces`` entry point in ``pyproject.toml``.
"""
