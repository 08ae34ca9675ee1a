"""Parent selection: a POLCA-style priority queue with an ε-net over behaviour.

The selector is a pure policy over records: it is told scores and fingerprints and asked
for parents; it never touches the store, the mutator or the executor, so a resumed run
rebuilds it exactly by replaying the store's records.

Priority of a program (higher is expanded first):
  mean score over its evaluations
  + c_explore * sqrt(ln(1 + total expansions) / (1 + expansions of this program))
  + (for stochastic spaces) c_ucb * std / sqrt(n evaluations)
The expansion bonus is the bandit term of POLCA's queue: a program that has produced
children many times without being overtaken yields its turn to less-explored ones.

The ε-net keeps the population diverse: a candidate's fingerprint is its outputs on the
space's fixed probe inputs, so two programs that compute the same function are one point;
a candidate within ε (relative distance) of a known point is rejected before evaluation.
"""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Sequence

import numpy as np


def relative_distance(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / (1 + max(|a|, |b|)) elementwise; inf for fingerprints of different sizes.

    Scale-aware but well defined at zero: outputs that agree to ~1e-12 are the same point.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return math.inf
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / (1.0 + np.maximum(np.abs(a), np.abs(b)))))


class EpsilonNet:
    """A set of behavioural points; `admit` adds a point unless one is within ε."""

    def __init__(self, epsilon: float = 1e-9):
        if epsilon < 0:
            raise ValueError(f"epsilon must be non-negative, got {epsilon}")
        self.epsilon = epsilon
        self._points: list[tuple[int, np.ndarray]] = []

    def nearest(self, fingerprint: np.ndarray) -> tuple[int | None, float]:
        best_id, best = None, math.inf
        for pid, point in self._points:
            d = relative_distance(fingerprint, point)
            if d < best:
                best_id, best = pid, d
        return best_id, best

    def admit(self, program_id: int, fingerprint: np.ndarray) -> tuple[bool, int | None, float]:
        """Adds the point if it is novel. Returns (admitted, nearest id, distance)."""
        nearest, d = self.nearest(fingerprint)
        if nearest is not None and d <= self.epsilon:
            return False, nearest, d
        self._points.append((program_id, np.asarray(fingerprint, dtype=np.float64)))
        return True, nearest, d

    def __len__(self) -> int:
        return len(self._points)


@dataclasses.dataclass
class _Entry:
    program_id: int
    scores: list[float]
    fingerprint: np.ndarray | None
    expansions: int = 0


@dataclasses.dataclass(frozen=True)
class SelectorConfig:
    """Settings of the priority queue.

    Attributes:
      c_explore: weight of the expansion bonus (in score units; CFR scores are log10 ratios).
      c_ucb: weight of the uncertainty bonus for stochastic spaces.
      reevaluate_top: in stochastic spaces, the top-k programs are re-evaluated on fresh
        seeds until they have `min_evaluations` before they may breed again.
      min_evaluations: see above.
      inspirations: how many inspirations accompany each parent (AlphaEvolve-style).
    """

    c_explore: float = 0.05
    c_ucb: float = 1.0
    reevaluate_top: int = 3
    min_evaluations: int = 3
    inspirations: int = 3


class Selector:
    def __init__(self, config: SelectorConfig = SelectorConfig(), stochastic: bool = False):
        self.config = config
        self.stochastic = stochastic
        self._entries: dict[int, _Entry] = {}
        self._total_expansions = 0

    # -- told ---------------------------------------------------------------------------
    def tell(self, program_id: int, score: float, fingerprint: np.ndarray | None = None) -> None:
        """Records one evaluation score of a program (-inf for a failed program)."""
        e = self._entries.get(program_id)
        if e is None:
            e = self._entries[program_id] = _Entry(program_id, [], fingerprint)
        e.scores.append(float(score))
        if fingerprint is not None:
            e.fingerprint = fingerprint

    def expanded(self, program_id: int, count: int = 1) -> None:
        """Counts ``count`` uses of a program as a parent (negative to take picks back)."""
        self._entries[program_id].expansions += count
        self._total_expansions += count

    # -- asked --------------------------------------------------------------------------
    def fingerprint(self, program_id: int) -> np.ndarray | None:
        """The behavioural fingerprint the selector was told for a program, if any."""
        return self._entries[program_id].fingerprint

    def expansions(self, program_id: int) -> int:
        """How often a program has been used as a parent."""
        return self._entries[program_id].expansions

    def mean(self, program_id: int) -> float:
        s = self._entries[program_id].scores
        return sum(s) / len(s) if s else -math.inf

    def priority(self, program_id: int) -> float:
        e = self._entries[program_id]
        m = self.mean(program_id)
        if not math.isfinite(m):
            return -math.inf
        bonus = self.config.c_explore * math.sqrt(
            math.log(1.0 + self._total_expansions) / (1.0 + e.expansions))
        if self.stochastic and len(e.scores) > 1:
            bonus += self.config.c_ucb * float(np.std(e.scores, ddof=1)) / math.sqrt(len(e.scores))
        return m + bonus

    def viable(self) -> list[int]:
        return [pid for pid in self._entries if math.isfinite(self.mean(pid))]

    def ranked(self) -> list[int]:
        """Viable programs, best mean first (ties: older first)."""
        return sorted(self.viable(), key=lambda pid: (-self.mean(pid), pid))

    def needs_reevaluation(self) -> list[int]:
        """Stochastic spaces: top programs with too few evaluations to trust."""
        if not self.stochastic:
            return []
        top = self.ranked()[: self.config.reevaluate_top]
        return [pid for pid in top if len(self._entries[pid].scores) < self.config.min_evaluations]

    def ask(self, n: int, rng: random.Random) -> list[tuple[int, list[int]]]:
        """Picks n (parent, inspirations) pairs, marking each parent as expanded."""
        picks: list[tuple[int, list[int]]] = []
        for _ in range(n):
            viable = self.viable()
            if not viable:
                break
            # Tiny seeded jitter breaks exact ties without favouring ids.
            parent = max(viable, key=lambda pid: (self.priority(pid) + 1e-9 * rng.random(), -pid))
            self.expanded(parent)
            picks.append((parent, self._inspirations(parent, rng)))
        return picks

    def _inspirations(self, parent: int, rng: random.Random) -> list[int]:
        """Good and diverse: from the top half by score, greedily the farthest in behaviour
        from the parent and from each other (code-only programs count as far)."""
        k = self.config.inspirations
        pool = [pid for pid in self.ranked() if pid != parent]
        pool = pool[: max(2 * k, len(pool) // 2)]
        chosen: list[int] = []
        while pool and len(chosen) < k:
            def spread(pid: int) -> float:
                ref = [parent] + chosen
                fp = self._entries[pid].fingerprint
                ds = []
                for r in ref:
                    rfp = self._entries[r].fingerprint
                    ds.append(1.0 if fp is None or rfp is None else min(1.0, relative_distance(fp, rfp)))
                return min(ds) + 0.1 * rng.random()
            best = max(pool, key=spread)
            chosen.append(best)
            pool.remove(best)
        return chosen
