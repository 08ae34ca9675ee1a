"""Typed run configuration: one frozen record, every field documented and read.

A config file (``--config FILE``, TOML) sets any of these fields at top level; command-line
flags override the file; the file overrides the defaults.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path
from typing import Any, Mapping


class ConfigError(ValueError):
    """A malformed or inconsistent configuration."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything a discovery run depends on.

    Attributes:
      space: the search space's name (``discover spaces`` lists them); empty for the
        registry's default (``discover.spaces.default_space_name``), resolved when a run starts.
      budget: how many programs are evaluated in the run (seeds included; candidates
        rejected before evaluation do not count).
      llm: "offline" for the syntax-tree mutator, or a model name for the LLM mutator.
      workers: evaluation processes.
      seed: seeds every random choice of the run (mutations, selection ties).
      seeds: names of the seed programs to start from; empty means all of the space's.
      batch_size: programs proposed per generation; 0 means twice the workers.
      time_limit: wall-time limit of one evaluation (one program on one task), seconds; 0
        derives it per task from the space's reference program (``discover.engine.limits``).
      memory_limit_mb: memory limit of one evaluation process.
      epsilon: ε of the behavioural ε-net (relative distance); 0 rejects only exact duplicates.
      held_out_top: how many of the best programs are evaluated on the held-out tasks at the end.
      eval_options: keyword options passed to the space's evaluate (e.g. iterations).
      api_base: base URL of a local or self-hosted model server (Ollama, vLLM); empty for the
        provider's own endpoint.
      max_cost: dollars the model calls may spend in the run; 0 for no limit.
    """

    space: str = ""
    budget: int = 60
    llm: str = "offline"
    workers: int = dataclasses.field(default_factory=lambda: max(1, os.cpu_count() or 1))
    seed: int = 0
    seeds: tuple[str, ...] = ()
    batch_size: int = 0
    time_limit: float = 0.0
    memory_limit_mb: int = 6144
    epsilon: float = 1e-9
    held_out_top: int = 3
    eval_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    api_base: str = ""
    max_cost: float = 0.0

    def __post_init__(self):
        if self.budget < 1:
            raise ConfigError(f"budget must be at least 1, got {self.budget}")
        if self.workers < 1:
            raise ConfigError(f"workers must be at least 1, got {self.workers}")
        if self.batch_size < 0:
            raise ConfigError(f"batch_size must be non-negative, got {self.batch_size}")
        if self.time_limit < 0 or self.memory_limit_mb <= 0:
            raise ConfigError("time_limit must be non-negative (0 derives it) and memory_limit_mb positive")
        if self.max_cost < 0:
            raise ConfigError(f"max_cost must be non-negative, got {self.max_cost}")
        if self.epsilon < 0:
            raise ConfigError(f"epsilon must be non-negative, got {self.epsilon}")

    @property
    def effective_batch_size(self) -> int:
        return self.batch_size or 2 * self.workers

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["seeds"] = list(self.seeds)
        d["eval_options"] = dict(self.eval_options)
        return d

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "config") -> "RunConfig":
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ConfigError(f"{source}: unknown setting(s) {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(fields))}")
        kwargs = dict(values)
        if "seeds" in kwargs:
            seeds = kwargs["seeds"]
            if isinstance(seeds, str):
                seeds = [s for s in seeds.split(",") if s]
            kwargs["seeds"] = tuple(seeds)
        for name, typ in (("budget", int), ("workers", int), ("seed", int), ("batch_size", int),
                          ("held_out_top", int), ("memory_limit_mb", int),
                          ("time_limit", float), ("epsilon", float), ("max_cost", float)):
            if name in kwargs:
                v = kwargs[name]
                if isinstance(v, bool) or not isinstance(v, (int, float)) or (typ is int and isinstance(v, float) and not v.is_integer()):
                    raise ConfigError(f"{source}: {name} must be a number, got {v!r}")
                kwargs[name] = typ(v)
        if "eval_options" in kwargs and not isinstance(kwargs["eval_options"], Mapping):
            raise ConfigError(f"{source}: eval_options must be a table")
        try:
            return cls(**kwargs)
        except TypeError as e:  # pragma: no cover - guarded above
            raise ConfigError(f"{source}: {e}") from None


def load_config_file(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config file {str(p)!r}: {e.strerror}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {str(p)!r} is not valid TOML: {e}") from None
