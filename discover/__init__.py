"""discover: evolve the source of RL algorithm components and keep what works."""

__version__ = "0.1.0"

from discover.algorithms import load_algorithm  # noqa: E402,F401
