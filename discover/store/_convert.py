"""The store's private helpers: argument checks with their one-line ``ValueError``s, JSON and
fingerprint encodings, and the conversion of ORM rows into the frozen records the store
returns (ORM rows never leave the store)."""

from __future__ import annotations

import datetime as dt
import json
import math
import struct
from typing import Any, Sequence

from sqlalchemy.orm import Session

from discover.store._models import Evaluation, LLMCall, Program, ProgramParent, Reflection, Rejection, Run
from discover.store.records import (EvaluationRecord, LLMCallRecord, ParentEdge, ProgramRecord, ReflectionRecord,
                                    RejectionRecord, RunRecord)

_UTC = dt.timezone.utc


def _now() -> dt.datetime:
    return dt.datetime.now(_UTC)


def _utc(t: dt.datetime | None) -> dt.datetime | None:
    # SQLite hands back the naive UTC time the store wrote; PostgreSQL an aware one.
    if t is None:
        return None
    return t.replace(tzinfo=_UTC) if t.tzinfo is None else t.astimezone(_UTC)


def _get(s: Session, model, key: int, what: str):
    row = s.get(model, _int(key, f"{what} id"))
    if row is None:
        raise ValueError(f"no {what} with id {key}")
    return row


def _int(x: Any, what: str) -> int:
    if isinstance(x, bool) or not hasattr(x, "__index__"):
        raise ValueError(f"{what} must be an integer, got {x!r}")
    return int(x.__index__())


def _require_text(x: Any, what: str) -> None:
    if not isinstance(x, str) or not x:
        raise ValueError(f"{what} must be a non-empty string, got {x!r}")


def _check_choice(x: Any, choices: Sequence[str], what: str) -> None:
    if x not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}; got {x!r}")


def _check_budget(budget: int | None) -> None:
    if budget is not None and (_int(budget, "budget") < 0):
        raise ValueError(f"budget must be >= 0 or None, got {budget}")


def _score(x: float | None, what: str) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number or None, got {x!r}") from None
    # NaN sorts above every number in PostgreSQL and becomes NULL in SQLite: refuse it.
    if math.isnan(v):
        raise ValueError(f"{what} must not be NaN; record a failed program with score None")
    return v


def _json_default(o: Any) -> Any:
    # NumPy scalars and arrays (metrics often are) become plain Python numbers and lists.
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not a JSON type")


def _dumps(value: Any, what: str) -> str:
    try:
        return json.dumps(value, default=_json_default)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} cannot be stored as JSON: {e}") from None


def _pack_fingerprint(fp: Sequence[float] | None) -> bytes | None:
    """Float64 little-endian bytes: exact, compact, and the same on every backend."""
    if fp is None:
        return None
    try:
        values = [float(v) for v in fp]
    except (TypeError, ValueError):
        raise ValueError("fingerprint must be a 1-D sequence of numbers") from None
    return struct.pack(f"<{len(values)}d", *values)


def _unpack_fingerprint(b: bytes | None) -> tuple[float, ...] | None:
    if b is None:
        return None
    b = bytes(b)
    return struct.unpack(f"<{len(b) // 8}d", b)


def _run_record(r: Run) -> RunRecord:
    return RunRecord(id=r.id, name=r.name, space=r.space, config=json.loads(r.config), versions=json.loads(r.versions),
                     mutator=r.mutator, model=r.model, seed=r.seed, budget=r.budget, status=r.status,
                     created_at=_utc(r.created_at), finished_at=_utc(r.finished_at))


def _program_record(r: Program) -> ProgramRecord:
    return ProgramRecord(id=r.id, run_id=r.run_id, source=r.source, code_hash=r.code_hash, space=r.space,
                         generation=r.generation, edit=r.edit, mutator=r.mutator, model=r.model, status=r.status,
                         score=r.score, held_out_score=r.held_out_score,
                         fingerprint=_unpack_fingerprint(r.fingerprint), created_at=_utc(r.created_at))


def _edge(r: ProgramParent) -> ParentEdge:
    return ParentEdge(child_id=r.child_id, parent_id=r.parent_id, role=r.role, ordinal=r.ordinal)


def _evaluation_record(r: Evaluation) -> EvaluationRecord:
    return EvaluationRecord(id=r.id, program_id=r.program_id, task=r.task, seed=r.seed, split=r.split,
                            status=r.status, metrics=json.loads(r.metrics),
                            curve=tuple(tuple(p) for p in json.loads(r.curve)), error=r.error,
                            wall_time=r.wall_time, device=r.device, created_at=_utc(r.created_at),
                            harness=r.harness)


def _rejection_record(r: Rejection) -> RejectionRecord:
    return RejectionRecord(id=r.id, run_id=r.run_id, source=r.source, code_hash=r.code_hash, reason=r.reason,
                           parent_ids=tuple(json.loads(r.parent_ids)), generation=r.generation, edit=r.edit,
                           mutator=r.mutator, created_at=_utc(r.created_at))


def _llm_record(r: LLMCall) -> LLMCallRecord:
    return LLMCallRecord(id=r.id, run_id=r.run_id, program_id=r.program_id, model=r.model, prompt=r.prompt,
                         response=r.response, prompt_tokens=r.prompt_tokens, completion_tokens=r.completion_tokens,
                         cost_usd=r.cost_usd, latency_s=r.latency_s, status=r.status, error=r.error,
                         created_at=_utc(r.created_at))


def _reflection_record(r: Reflection) -> ReflectionRecord:
    return ReflectionRecord(id=r.id, run_id=r.run_id, generation=r.generation, kind=r.kind, text=r.text,
                            created_at=_utc(r.created_at))
