"""Choosing among several models: a UCB1 bandit on score improvement per dollar.

With ``--llm a,b,c`` each proposal is one pull of one arm (model). A pull's outcome is the
improvement of the child over its parent (``max(0, child - parent)``; 0 for a child that
failed or was never made) and its cost (all calls it took, repairs included). An arm's
value is its improvement per dollar,

    value_m = Σ improvement / (Σ cost + cost_floor · outcomes),

where ``cost_floor`` stands for the time a call takes, so that a free local model is not
worth infinitely much. The arm played next maximises the UCB1 index (Auer, Cesa-Bianchi,
Fischer, "Finite-time Analysis of the Multiarmed Bandit Problem", Machine Learning 2002)

    value_m / max_j value_j  +  c · sqrt(2 ln N / n_m),

with values normalised by the best arm so the index lies on UCB1's [0, 1] reward scale
whatever the space's score units. An arm never played is played first. Ties (and the order
of first plays) are broken by the caller's seeded ``random.Random``, so choices are
deterministic given the seed and the order of outcomes.

Pulls count when chosen, not when their outcome arrives: with proposals made in parallel
and evaluated later, the exploration bonus of an arm already busy shrinks at once.
"""

from __future__ import annotations

import dataclasses
import math
import random
import threading
from typing import Sequence


@dataclasses.dataclass
class _Arm:
    pulls: int = 0          # proposals asked of this model
    outcomes: int = 0       # pulls whose outcome is known
    calls: int = 0          # LLM calls (attempts, repairs, reflections)
    failed_calls: int = 0   # calls that errored or timed out
    proposals: int = 0      # pulls that produced a child
    valid: int = 0          # children that evaluated to a finite score
    improvements: int = 0   # children that beat their parent
    improvement: float = 0.0
    cost_usd: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ModelBandit:
    """UCB1 over models on improvement per dollar; thread-safe.

    Args:
      models: the arms, e.g. ``("openai/gpt-4o-mini", "ollama/qwen2.5-coder")``.
      exploration: ``c`` in the UCB1 index (1 is UCB1's own constant).
      cost_floor_usd: cost charged per outcome on top of the money spent.
    """

    def __init__(self, models: Sequence[str], exploration: float = 1.0, cost_floor_usd: float = 1e-4):
        models = tuple(models)
        if not models:
            raise ValueError("a model bandit needs at least one model.")
        if len(set(models)) != len(models):
            raise ValueError(f"models must be distinct, got {', '.join(models)}.")
        if exploration < 0 or cost_floor_usd <= 0:
            raise ValueError("exploration must be >= 0 and cost_floor_usd > 0.")
        self.models = models
        self.exploration = float(exploration)
        self.cost_floor_usd = float(cost_floor_usd)
        self._arms = {m: _Arm() for m in models}
        self._lock = threading.Lock()

    def _value(self, arm: _Arm) -> float:
        if arm.outcomes == 0:
            return 0.0
        return arm.improvement / (arm.cost_usd + self.cost_floor_usd * arm.outcomes)

    def indices(self) -> dict[str, float]:
        """The UCB1 index of every arm (``inf`` for an arm never played)."""
        with self._lock:
            return self._indices()

    def _indices(self) -> dict[str, float]:
        total = sum(a.pulls for a in self._arms.values())
        best = max(self._value(a) for a in self._arms.values())
        out = {}
        for m, arm in self._arms.items():
            if arm.pulls == 0:
                out[m] = math.inf
                continue
            mean = self._value(arm) / best if best > 0 else 0.0
            out[m] = mean + self.exploration * math.sqrt(2.0 * math.log(total) / arm.pulls)
        return out

    def choose(self, rng: random.Random) -> str:
        """The model for the next proposal (counted as a pull at once)."""
        with self._lock:
            if len(self.models) == 1:
                model = self.models[0]
            else:
                idx = self._indices()
                top = max(idx.values())
                ties = [m for m in self.models if idx[m] == top or (math.isfinite(top) and top - idx[m] <= 1e-12)]
                model = ties[rng.randrange(len(ties))]
            self._arms[model].pulls += 1
            return model

    def record_call(self, model: str, cost_usd: float, prompt_tokens: int | None,
                    completion_tokens: int | None, ok: bool) -> None:
        """Counts one LLM call of ``model`` (money and tokens)."""
        with self._lock:
            arm = self._arm(model)
            arm.calls += 1
            arm.failed_calls += 0 if ok else 1
            arm.cost_usd += float(cost_usd)
            arm.prompt_tokens += int(prompt_tokens or 0)
            arm.completion_tokens += int(completion_tokens or 0)

    def record_proposal(self, model: str) -> None:
        """Counts a pull of ``model`` that produced a child (its outcome comes later)."""
        with self._lock:
            self._arm(model).proposals += 1

    def record_outcome(self, model: str, parent_score: float | None, score: float | None) -> None:
        """The outcome of one pull: the child's score (None or non-finite when it failed or
        was never made) against its parent's."""
        valid = score is not None and math.isfinite(score)
        gain = 0.0
        if valid and parent_score is not None and math.isfinite(parent_score):
            gain = max(0.0, float(score) - float(parent_score))
        with self._lock:
            arm = self._arm(model)
            arm.outcomes += 1
            arm.valid += int(valid)
            arm.improvements += int(gain > 0)
            arm.improvement += gain

    def _arm(self, model: str) -> _Arm:
        try:
            return self._arms[model]
        except KeyError:
            raise ValueError(f"unknown model {model!r}; the bandit has {', '.join(self.models)}.") from None

    def stats(self) -> dict[str, dict[str, float]]:
        """Per-model statistics, JSON-ready: pulls, calls, failed_calls, proposals, valid,
        valid_rate (valid / outcomes), improvements, mean_improvement (per outcome),
        cost_usd, tokens, improvement_per_usd and the current UCB index."""
        with self._lock:
            idx = self._indices()
            out = {}
            for m, a in self._arms.items():
                out[m] = {
                    "pulls": a.pulls, "calls": a.calls, "failed_calls": a.failed_calls,
                    "proposals": a.proposals, "outcomes": a.outcomes, "valid": a.valid,
                    "valid_rate": a.valid / a.outcomes if a.outcomes else 0.0,
                    "improvements": a.improvements,
                    "mean_improvement": a.improvement / a.outcomes if a.outcomes else 0.0,
                    "cost_usd": a.cost_usd, "prompt_tokens": a.prompt_tokens,
                    "completion_tokens": a.completion_tokens,
                    "improvement_per_usd": self._value(a),
                    "ucb": idx[m] if math.isfinite(idx[m]) else None,
                }
            return out
