"""The offline mutator: syntax-tree edits inside the evolve block, no network, no model.

``OfflineMutator.propose`` makes children of a parent program with six kinds of edit, each
confined to the evolve block and each described in one line:

- ``perturb``: multiply a numeric constant by a log-normal factor (a named top-level
  constant such as ``GAMMA = 2.0``, a literal inside a rule, or the implicit exponent 1 of
  the iteration counter, ``t → t ** 1.3``). Signs are kept; integers that are exponents or
  thresholds stay integers; 0 and ±1 inside expressions are structural and left alone
  (almost always), as are axes, indices and shapes.
- ``power``: change how a rule depends on the iteration counter or on a non-negative
  quantity: ``t ↔ t ** k``, ``t ** k → t ** k'``, weight the new term of a running sum by
  ``t ** k`` (CFR → linear / quadratic averaging, the weighting of Linear CFR and DCFR,
  Brown & Sandholm 2019), or raise a clipped regret to a power (power regret matching).
- ``swap``: swap a function for a neighbour with the same domain (``sqrt → log1p``,
  ``tanh ↔ arctan``, ``abs ↔ square``), or a multiplication by a positive weight for a
  division. Swaps that usually destroy a rule (``maximum ↔ minimum``, ``+ ↔ −`` in an
  accumulation) are not offered.
- ``floor``: add or remove ``xp.maximum(·, 0.0)`` around the value a rule returns (the
  difference between CFR and CFR+'s regret matching+, Tammelin 2014).
- ``splice``: replace rule functions with a mechanism from ``space.mechanisms`` (complete
  function definitions); its constants and helpers come along (renamed where they clash)
  and its ``init_state`` keys are merged into the parent's, so spliced rules find their state.
- ``crossover``: take some rule functions from an inspiration and the rest from the
  parent, with the same merging.

Each child is re-checked with ``discover.checks.static_check``; an edit that gives an
invalid child, or one whose normalised code equals the parent's (or an earlier child's),
is retried a bounded number of times. Functions the edit did not touch keep their text
(comments included), so a child's diff shows only the edit.
"""

from __future__ import annotations

import ast
import random

import numpy as np

from discover.checks import static_check
from discover.mutators._edits import (  # noqa: F401  (KINDS and the config are the mutator's API)
    KINDS, OfflineMutatorConfig, _Edit, _site_edit)
from discover.mutators._syntax import Program, child_source, parse_program, parse_units, reachable, same, splice
from discover.mutators.base import MutationContext, Mutator, Proposal
from discover.program import normalized_code

# ----------------------------------------------------------------------------------------
# Splice and crossover: replace whole functions, carry their dependencies, merge state.

def _splice_edit(program: Program, context: MutationContext, config: OfflineMutatorConfig,
                 rng: random.Random, used: set[str]) -> _Edit | None:
    """Splices a mechanism not in ``used`` (each gives one child per batch) and adds it there."""
    mechanisms = dict(getattr(context.space, "mechanisms", None) or {})
    required = tuple(context.space.required_functions)
    parent_norm = normalized_code(context.parent.source)
    names = sorted(set(mechanisms) - used)
    rng.shuffle(names)
    for name in names:
        used.add(name)
        try:
            units, _ = parse_units(mechanisms[name])
        except SyntaxError:
            continue  # a broken library entry must not stop the others
        rules = [u.name for u in units if isinstance(u, ast.FunctionDef)
                 and u.name in required and u.name != config.state_init]
        result = splice(program, units, rules, required, config.state_init)
        if result is None or normalized_code(child_source(program, result.body)) == parent_norm:
            continue
        description = f"splice {name}: {', '.join(result.replaced) or config.state_init}"
        if result.state_keys:
            description += f"; state keys added: {', '.join(result.state_keys)}"
        return _Edit(result.body, description,
                     meta={"mechanism": name, "functions": result.replaced, "state_keys": result.state_keys})
    return None


def _crossover_edit(program: Program, context: MutationContext, config: OfflineMutatorConfig,
                    rng: random.Random) -> _Edit | None:
    parent = context.parent
    required = tuple(context.space.required_functions)
    rules = [r for r in required if r != config.state_init]
    ours = {s.name: s for s in program.body if isinstance(s, ast.FunctionDef)}
    partners = list(context.inspirations)
    rng.shuffle(partners)
    for partner in partners:
        try:
            other = parse_program(partner.source)
        except ValueError:
            continue
        theirs = {s.name: s for s in other.body if isinstance(s, ast.FunctionDef)}
        differing = [r for r in rules if r in ours and r in theirs and not same(ours[r], theirs[r])]
        if not differing:
            continue
        k = 1 if len(differing) == 1 else rng.randint(1, len(differing) - 1)
        taken = sorted(rng.sample(differing, k), key=rules.index)
        roots = taken + ([config.state_init] if config.state_init in theirs else [])
        needed = sorted(reachable(other.body, roots))
        units = [other.body[i] for i in needed]
        result = splice(program, units, taken, required, config.state_init)
        if result is None:
            continue
        kept = [r for r in rules if r not in taken]
        description = (f"crossover with #{partner.id}: {', '.join(taken)} from #{partner.id}"
                       + (f", {', '.join(kept)} from #{parent.id}" if kept else ""))
        if result.state_keys:
            description += f"; state keys added: {', '.join(result.state_keys)}"
        return _Edit(result.body, description, parents=(parent.id, partner.id),
                     meta={"from_inspiration": taken, "inspiration": partner.id,
                           "state_keys": result.state_keys})
    return None


# ----------------------------------------------------------------------------------------
# The mutator.

class OfflineMutator(Mutator):
    """Syntax-tree mutator needing no network: see the module docstring for the edits.

    Deterministic: the proposals are a function of ``seed``, ``config`` and the context
    (its ``rng_seed`` in particular); no global random state is read or changed.

    Example::

        mutator = OfflineMutator(seed=0)
        context = MutationContext(space, Parent(1, source, score=None), rng_seed=7)
        for p in mutator.propose(context, n=8):
            print(p.kind, p.edit)
    """

    name = "offline"

    def __init__(self, seed: int = 0, config: OfflineMutatorConfig | None = None):
        self.seed = int(seed)
        self.config = config or OfflineMutatorConfig()

    def _rng(self, context: MutationContext) -> random.Random:
        mask = (1 << 64) - 1
        entropy = np.random.SeedSequence(
            [self.seed & mask, int(context.rng_seed) & mask, int(context.parent.id) & mask])
        return random.Random(int(entropy.generate_state(1, dtype=np.uint64)[0]))

    def propose(self, context: MutationContext, n: int) -> list[Proposal]:
        """Up to ``n`` distinct children of ``context.parent`` that pass ``static_check``.

        Raises:
          ValueError: ``n`` is negative or the parent's evolve block does not parse.
        """
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}.")
        program = parse_program(context.parent.source)
        rng = self._rng(context)
        config = self.config
        required = tuple(context.space.required_functions)
        roots = required or tuple(s.name for s in program.body if isinstance(s, ast.FunctionDef))
        weights = {k: config.weights.get(k, 0.0) for k in KINDS}
        if not context.inspirations:
            weights["crossover"] = 0.0
        if not getattr(context.space, "mechanisms", None):
            weights["splice"] = 0.0
        seen = {normalized_code(context.parent.source)}
        spliced: set[str] = set()
        proposals: list[Proposal] = []
        for _ in range(n):
            for _attempt in range(config.max_attempts):
                kinds = [k for k in KINDS if weights[k] > 0]
                if not kinds:
                    return proposals
                kind = rng.choices(kinds, weights=[weights[k] for k in kinds])[0]
                if kind == "splice":
                    edit = _splice_edit(program, context, config, rng, spliced)
                elif kind == "crossover":
                    edit = _crossover_edit(program, context, config, rng)
                else:
                    edit = _site_edit(kind, program, roots, config, rng)
                if edit is None:  # no site for this kind in this parent
                    weights[kind] = 0.0
                    continue
                source = child_source(program, edit.body)
                key = normalized_code(source)
                if key in seen or not static_check(source, context.space).ok:
                    continue
                seen.add(key)
                proposals.append(Proposal(source=source, edit=edit.description,
                                          parents=edit.parents or (context.parent.id,),
                                          kind=kind, meta=dict(edit.meta)))
                break
        return proposals
