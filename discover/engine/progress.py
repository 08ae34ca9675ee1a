"""What a running discovery shows: one mutable record the loop updates and displays read."""

from __future__ import annotations

import dataclasses
import math
import time


@dataclasses.dataclass
class Progress:
    """What the live display shows; updated by the loop."""

    budget: int
    evaluated: int = 0
    valid: int = 0
    invalid: int = 0
    rejected: int = 0
    best_score: float = -math.inf
    best_id: int | None = None
    best_edit: str = ""
    generation: int = 0
    started: float = dataclasses.field(default_factory=time.monotonic)
    evaluated_at_start: int = 0
    phase: str = "starting"
    cost: float = 0.0
    stop_reason: str | None = None

    @property
    def per_minute(self) -> float:
        minutes = (time.monotonic() - self.started) / 60.0
        done = self.evaluated - self.evaluated_at_start
        return done / minutes if minutes > 0 else 0.0
