"""discover: evolve the source of RL algorithm components and keep what works."""

__version__ = "0.1.0"
