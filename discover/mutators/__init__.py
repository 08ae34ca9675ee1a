"""Mutators: turn a parent program into child programs (``discover.mutators.base``)."""

from discover.mutators.base import MutationContext, Mutator, Parent, Proposal
from discover.mutators.offline import OfflineMutator, OfflineMutatorConfig

__all__ = ["MutationContext", "Mutator", "OfflineMutator", "OfflineMutatorConfig", "Parent", "Proposal"]
