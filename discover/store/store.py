"""The lineage store: a repository over the run database that returns frozen records.

Every write is one transaction, committed before the method returns: a process killed at
any moment (even by SIGKILL) loses nothing the store has already returned. Writes that a
resumed or concurrent run may repeat are idempotent on their natural key:

  * ``add_program``       on (run, code hash): the stored program is returned;
  * ``record_evaluation`` on (program, task, seed, split): the stored evaluation is returned;
  * ``record_rejection``  on (run, code hash).

Several processes may share one database (SQLite file in WAL mode, or PostgreSQL).
Malformed arguments raise ``ValueError``; a database that cannot be reached or used raises
``StoreError``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import uuid
import weakref
from typing import Any, Iterator, Mapping, Sequence

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from discover.space import STATUSES as EVALUATION_STATUSES
from discover.space import TaskResult
from discover.store import _db
from discover.store._models import Evaluation, LLMCall, Program, ProgramParent, Reflection, Rejection, Run
from discover.store.records import (EVALUATED, PARENT, PARENT_ROLES, PENDING, PROGRAM_STATUSES,
                                    REFLECTION_KINDS, RUN_RUNNING, RUN_STATUSES, SPLITS, EvaluationRecord,
                                    LLMCallRecord, ParentEdge, ProgramRecord, ReflectionRecord, RejectionRecord,
                                    RunRecord, code_hash)
from discover.store._db import StoreError
from discover.store._convert import (_check_budget, _check_choice, _dumps, _edge, _evaluation_record, _get, _int, _llm_record, _now, _pack_fingerprint, _program_record, _reflection_record, _rejection_record, _require_text, _run_record, _score)

_UTC = dt.timezone.utc


class Store:
    """Repository of runs, programs, their lineage, evaluations, rejections, LLM calls and
    reflections. Create with ``Store.open(url)``; safe to share between threads.

    Example::

        store = Store.open("sqlite:///runs/discover.db")
        run = store.create_run("vad-hunt", "cfr_variants", config={}, seed=0, budget=100,
                               mutator="offline", versions={"open_spiel": "2.0.2"})
        seed = store.add_program(run.id, source, generation=0, edit="seed: cfr", parents=[])
        store.record_evaluation(seed.id, "leduc_poker", 0, "train", result, device="cpu")
        store.set_program_status(seed.id, "evaluated", score=0.31)
        best = store.top(run.id, n=5)
    """

    def __init__(self, reader, writer, url: str) -> None:
        # Use Store.open: it creates the engines and upgrades the schema.
        self._reader = reader
        self._writer = writer
        self._url = url
        # A forked child (a worker pool) must not reuse the parent's pooled connections:
        # two processes talking over one socket or SQLite handle corrupt each other's state.
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _forget_connections(ref))

    @classmethod
    def open(cls, url: str | None = None) -> "Store":
        """Opens (creating if needed) the database at SQLAlchemy ``url`` and upgrades its
        schema to the newest revision.

        Args:
          url: e.g. ``sqlite:///runs/discover.db`` or ``postgresql+psycopg://user:pw@host/db``;
            ``None`` means ``$DISCOVER_DB``, else ``sqlite:///runs/discover.db``. The folder
            of a SQLite file is created if missing.

        Raises:
          StoreError: the server is unreachable, the file is not a database, the URL is
            malformed, or the schema is newer than this version of the package knows.
        """
        url = url or _db.default_url()
        reader, writer = _db.open_engines(url)
        return cls(reader, writer, url)

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return _db.display_url(self._url)

    @property
    def connection_url(self) -> str:
        """The database URL with its password, for another client of the same database
        (the Optuna study of ``discover tune``). Never print it."""
        return self._url

    def close(self) -> None:
        """Closes the pooled connections (the store reconnects if used again)."""
        self._reader.dispose()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    @contextlib.contextmanager
    def _session(self, write: bool = False) -> Iterator[Session]:
        """One transaction: committed if the block succeeds, rolled back if it raises."""
        session = Session(self._writer if write else self._reader, expire_on_commit=False)
        try:
            yield session
            session.commit()
        except (OperationalError, InterfaceError) as e:
            session.rollback()
            raise StoreError(f"database {self.url!r} failed: {_db.reason(e)}") from e
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    # ------------------------------------------------------------------------ runs
    def create_run(self, name: str | None, space: str, config: Mapping[str, Any], seed: int,
                   budget: int | None, mutator: str | None, versions: Mapping[str, str],
                   model: str | None = None) -> RunRecord:
        """Records a new run, status "running". ``name=None`` makes a unique one from the
        space and the time. Raises ValueError if a run of that name exists already."""
        _require_text(space, "space")
        if name is None:
            name = f"{space}-{dt.datetime.now(_UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
        _require_text(name, "run name")
        _check_budget(budget)
        row = Run(name=name, space=space, config=_dumps(dict(config), "run config"),
                  versions=_dumps(dict(versions), "library versions"), mutator=mutator, model=model,
                  seed=_int(seed, "seed"), budget=budget, status=RUN_RUNNING, created_at=_now(), finished_at=None)
        try:
            with self._session(write=True) as s:
                if s.scalar(select(Run.id).where(Run.name == name)) is not None:
                    raise ValueError(f"a run named {name!r} exists already")
                s.add(row)
                s.flush()
                return _run_record(row)
        except IntegrityError:
            raise ValueError(f"a run named {name!r} exists already") from None

    def get_run(self, name_or_id: int | str) -> RunRecord | None:
        """The run with this id (int) or name (str; a string of digits that names no run
        is read as an id); ``None`` if there is none."""
        with self._session() as s:
            row = None
            if isinstance(name_or_id, str):
                row = s.scalar(select(Run).where(Run.name == name_or_id))
                if row is None and name_or_id.isdigit():
                    row = s.get(Run, int(name_or_id))
            else:
                row = s.get(Run, _int(name_or_id, "run id"))
            return _run_record(row) if row is not None else None

    def latest_run(self, space: str | None = None) -> RunRecord | None:
        """The most recently created run (of ``space``, if given); ``None`` if there is none."""
        q = select(Run).order_by(Run.id.desc()).limit(1)
        if space is not None:
            q = q.where(Run.space == space)
        with self._session() as s:
            row = s.scalar(q)
            return _run_record(row) if row is not None else None

    def list_runs(self, space: str | None = None) -> list[RunRecord]:
        """All runs (of ``space``, if given), oldest first."""
        q = select(Run).order_by(Run.id)
        if space is not None:
            q = q.where(Run.space == space)
        with self._session() as s:
            return [_run_record(r) for r in s.scalars(q)]

    def set_run_status(self, run_id: int, status: str) -> RunRecord:
        """Sets a run's status (``RUN_STATUSES``); leaving "running" stamps ``finished_at``,
        returning to it (a resume) clears it."""
        _check_choice(status, RUN_STATUSES, "run status")
        with self._session(write=True) as s:
            row = _get(s, Run, run_id, "run")
            row.status = status
            row.finished_at = None if status == RUN_RUNNING else _now()
            return _run_record(row)

    def set_run_budget(self, run_id: int, budget: int | None) -> RunRecord:
        """Changes a run's evaluation budget (e.g. when a resumed run is given more)."""
        _check_budget(budget)
        with self._session(write=True) as s:
            row = _get(s, Run, run_id, "run")
            row.budget = budget
            return _run_record(row)

    # ------------------------------------------------------------------------ programs
    def add_program(self, run_id: int, source: str, generation: int, edit: str | None,
                    parents: Sequence[int] = (), mutator: str | None = None, model: str | None = None,
                    roles: Sequence[str] | None = None,
                    fingerprint: Sequence[float] | None = None) -> ProgramRecord:
        """Stores a candidate program of a run, status "pending", with its parent edges.

        Idempotent: if the run already holds a program with the same source (same code
        hash), that program is returned unchanged and ``parents``, ``edit`` etc. are ignored.

        Args:
          parents: ids of the programs it was made from, in order.
          roles: one of ``PARENT_ROLES`` per parent; default: the first is "parent" (the
            program that was mutated), the others "inspiration".
          fingerprint: its behavioural fingerprint, if already measured.
        """
        _require_text(source, "program source")
        generation = _int(generation, "generation")
        parents = [_int(p, "parent id") for p in parents]
        if roles is None:
            roles = [PARENT if i == 0 else "inspiration" for i in range(len(parents))]
        roles = list(roles)
        if len(roles) != len(parents):
            raise ValueError(f"got {len(roles)} roles for {len(parents)} parents; give one role per parent")
        for r in roles:
            _check_choice(r, PARENT_ROLES, "parent role")
        packed = _pack_fingerprint(fingerprint)
        h = code_hash(source)
        try:
            with self._session(write=True) as s:
                found = self._program_by_hash(s, run_id, h)
                if found is not None:
                    return _program_record(found)
                run = _get(s, Run, run_id, "run")
                if parents:
                    known = set(s.scalars(select(Program.id).where(Program.id.in_(set(parents)))))
                    missing = sorted(set(parents) - known)
                    if missing:
                        raise ValueError(f"unknown parent program id(s) {missing}")
                row = Program(run_id=run.id, source=source, code_hash=h, space=run.space, generation=generation,
                              edit=edit, mutator=mutator, model=model, status=PENDING, score=None,
                              held_out_score=None, fingerprint=packed, created_at=_now())
                s.add(row)
                s.flush()
                for i, (pid, role) in enumerate(zip(parents, roles)):
                    s.add(ProgramParent(child_id=row.id, parent_id=pid, role=role, ordinal=i))
                s.flush()
                return _program_record(row)
        except IntegrityError:
            # Another process stored the same program between our read and our insert.
            with self._session() as s:
                found = self._program_by_hash(s, run_id, h)
                if found is None:
                    raise
                return _program_record(found)

    @staticmethod
    def _program_by_hash(s: Session, run_id: int, h: str) -> Program | None:
        return s.scalar(select(Program).where(Program.run_id == run_id, Program.code_hash == h))

    def program(self, program_id: int) -> ProgramRecord | None:
        """The program with this id, or ``None``."""
        with self._session() as s:
            row = s.get(Program, _int(program_id, "program id"))
            return _program_record(row) if row is not None else None

    def programs(self, run_id: int, status: str | None = None) -> list[ProgramRecord]:
        """A run's programs (with ``status``, if given), in the order they were stored."""
        q = select(Program).where(Program.run_id == run_id).order_by(Program.id)
        if status is not None:
            _check_choice(status, PROGRAM_STATUSES, "program status")
            q = q.where(Program.status == status)
        with self._session() as s:
            return [_program_record(r) for r in s.scalars(q)]

    def parents(self, program_id: int) -> list[ParentEdge]:
        """The edges to a program's parents, in order (first: the mutated parent)."""
        q = select(ProgramParent).where(ProgramParent.child_id == program_id).order_by(ProgramParent.ordinal)
        with self._session() as s:
            return [_edge(r) for r in s.scalars(q)]

    def children(self, program_id: int) -> list[ParentEdge]:
        """The edges from a program to the programs made from it (any role), oldest first."""
        q = (select(ProgramParent).where(ProgramParent.parent_id == program_id)
             .order_by(ProgramParent.child_id, ProgramParent.ordinal))
        with self._session() as s:
            return [_edge(r) for r in s.scalars(q)]

    def set_program_status(self, program_id: int, status: str, score: float | None = None) -> ProgramRecord:
        """Sets a program's status (``PROGRAM_STATUSES``) and its train score (``None``
        clears it: an invalid program has no score)."""
        _check_choice(status, PROGRAM_STATUSES, "program status")
        score = _score(score, "score")
        with self._session(write=True) as s:
            row = _get(s, Program, program_id, "program")
            row.status = status
            row.score = score
            return _program_record(row)

    def set_held_out_score(self, program_id: int, score: float | None) -> ProgramRecord:
        """Records a program's score on the held-out tasks (``None``: failed there)."""
        score = _score(score, "held-out score")
        with self._session(write=True) as s:
            row = _get(s, Program, program_id, "program")
            row.held_out_score = score
            return _program_record(row)

    def set_fingerprint(self, program_id: int, fingerprint: Sequence[float] | None) -> ProgramRecord:
        """Records a program's behavioural fingerprint (a 1-D sequence of floats)."""
        packed = _pack_fingerprint(fingerprint)
        with self._session(write=True) as s:
            row = _get(s, Program, program_id, "program")
            row.fingerprint = packed
            return _program_record(row)

    def top(self, run_id: int | None = None, n: int = 10) -> list[ProgramRecord]:
        """The ``n`` best evaluated programs (of one run, or of all runs), best score first;
        ties go to the older program."""
        n = _int(n, "n")
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        q = (select(Program).where(Program.status == EVALUATED, Program.score.is_not(None))
             .order_by(Program.score.desc(), Program.id).limit(n))
        if run_id is not None:
            q = q.where(Program.run_id == run_id)
        with self._session() as s:
            return [_program_record(r) for r in s.scalars(q)]

    def counts(self, run_id: int) -> dict[str, int]:
        """Numbers of a run's programs by status, plus ``"rejected"``: candidates dropped
        before evaluation. Every key is present."""
        out = {status: 0 for status in PROGRAM_STATUSES}
        with self._session() as s:
            q = select(Program.status, func.count()).where(Program.run_id == run_id).group_by(Program.status)
            for status, k in s.execute(q):
                out[status] = out.get(status, 0) + k
            out["rejected"] = s.scalar(select(func.count()).select_from(Rejection).where(Rejection.run_id == run_id))
        return out

    # ------------------------------------------------------------------------ evaluations
    def record_evaluation(self, program_id: int, task: str, seed: int, split: str, result: TaskResult,
                          device: str | None = None) -> EvaluationRecord:
        """Stores one evaluation of a program. Idempotent on (program, task, seed, split):
        if it is stored already, the stored one is returned and ``result`` is ignored.
        ``device`` defaults to the one the result reports (``TaskResult.device``); the harness
        version is the result's (``TaskResult.harness``, set by the executor)."""
        _require_text(task, "task")
        seed = _int(seed, "seed")
        _check_choice(split, SPLITS, "split")
        if not isinstance(result, TaskResult):
            raise ValueError(f"result must be a discover.space.TaskResult, got {type(result).__name__}")
        _check_choice(result.status, EVALUATION_STATUSES, "evaluation status")
        row = Evaluation(program_id=program_id, task=task, seed=seed, split=split, status=result.status,
                         metrics=_dumps(dict(result.metrics), "metrics"),
                         curve=_dumps([list(p) for p in result.curve], "curve"), error=result.error,
                         wall_time=float(result.wall_time),
                         device=device if device is not None else result.device, harness=result.harness,
                         created_at=_now())
        key = (Evaluation.program_id == program_id, Evaluation.task == task, Evaluation.seed == seed,
               Evaluation.split == split)
        try:
            with self._session(write=True) as s:
                found = s.scalar(select(Evaluation).where(*key))
                if found is not None:
                    return _evaluation_record(found)
                _get(s, Program, program_id, "program")
                s.add(row)
                s.flush()
                return _evaluation_record(row)
        except IntegrityError:
            with self._session() as s:
                found = s.scalar(select(Evaluation).where(*key))
                if found is None:
                    raise
                return _evaluation_record(found)

    def evaluations(self, program_id: int, split: str | None = None) -> list[EvaluationRecord]:
        """A program's evaluations (of ``split``, if given), in the order they were stored."""
        q = select(Evaluation).where(Evaluation.program_id == program_id).order_by(Evaluation.id)
        if split is not None:
            _check_choice(split, SPLITS, "split")
            q = q.where(Evaluation.split == split)
        with self._session() as s:
            return [_evaluation_record(r) for r in s.scalars(q)]

    def count_evaluations(self, run_id: int, split: str | None = None) -> int:
        """Number of evaluations recorded for a run's programs (of ``split``, if given)."""
        q = select(func.count()).select_from(Evaluation).join(Program).where(Program.run_id == run_id)
        if split is not None:
            _check_choice(split, SPLITS, "split")
            q = q.where(Evaluation.split == split)
        with self._session() as s:
            return int(s.scalar(q))

    # ------------------------------------------------------------------------ rejections
    def record_rejection(self, run_id: int, source: str, reason: str, parents: Sequence[int] = (),
                         generation: int = 0, edit: str | None = None,
                         mutator: str | None = None) -> RejectionRecord:
        """Records a candidate dropped before evaluation and why. Idempotent on (run, code
        hash): the same source rejected again returns the first record."""
        _require_text(reason, "rejection reason")
        parents = [_int(p, "parent id") for p in parents]
        h = code_hash(source)
        row = Rejection(run_id=run_id, source=source, code_hash=h, reason=reason, parent_ids=json.dumps(parents),
                        generation=_int(generation, "generation"), edit=edit, mutator=mutator, created_at=_now())
        where = (Rejection.run_id == run_id, Rejection.code_hash == h)
        try:
            with self._session(write=True) as s:
                found = s.scalar(select(Rejection).where(*where))
                if found is not None:
                    return _rejection_record(found)
                _get(s, Run, run_id, "run")
                s.add(row)
                s.flush()
                return _rejection_record(row)
        except IntegrityError:
            with self._session() as s:
                found = s.scalar(select(Rejection).where(*where))
                if found is None:
                    raise
                return _rejection_record(found)

    def rejections(self, run_id: int) -> list[RejectionRecord]:
        """A run's rejected candidates, in the order they were recorded."""
        q = select(Rejection).where(Rejection.run_id == run_id).order_by(Rejection.id)
        with self._session() as s:
            return [_rejection_record(r) for r in s.scalars(q)]

    # ------------------------------------------------------------------------ LLM calls
    def record_llm_call(self, run_id: int, model: str, prompt: str, response: str | None, *,
                        prompt_tokens: int | None = None, completion_tokens: int | None = None,
                        cost_usd: float | None = None, latency_s: float | None = None, status: str = "ok",
                        error: str | None = None, program_id: int | None = None) -> LLMCallRecord:
        """Records one call to a language model. ``status`` is "ok" or a short failure word
        (e.g. "error", "timeout") with the reason in ``error``; ``program_id`` links the
        call to the program it produced, if any."""
        _require_text(model, "model")
        _require_text(status, "status")
        if len(status) > 16:
            raise ValueError(f"status must be a short word (at most 16 characters), got {status!r}")
        row = LLMCall(run_id=run_id, program_id=program_id, model=model, prompt=prompt, response=response,
                      prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost_usd=cost_usd,
                      latency_s=latency_s, status=status, error=error, created_at=_now())
        with self._session(write=True) as s:
            _get(s, Run, run_id, "run")
            if program_id is not None:
                _get(s, Program, program_id, "program")
            s.add(row)
            s.flush()
            return _llm_record(row)

    def llm_calls(self, run_id: int) -> list[LLMCallRecord]:
        """A run's LLM calls, in the order they were made."""
        q = select(LLMCall).where(LLMCall.run_id == run_id).order_by(LLMCall.id)
        with self._session() as s:
            return [_llm_record(r) for r in s.scalars(q)]

    def total_cost(self, run_id: int | None = None) -> float:
        """Total cost in US dollars of a run's LLM calls (of all runs if ``run_id`` is None)."""
        q = select(func.coalesce(func.sum(LLMCall.cost_usd), 0.0))
        if run_id is not None:
            q = q.where(LLMCall.run_id == run_id)
        with self._session() as s:
            return float(s.scalar(q))

    # ------------------------------------------------------------------------ reflections
    def add_reflection(self, run_id: int, generation: int, kind: str, text: str) -> ReflectionRecord:
        """Records a reflection: ``kind`` "short" (after a batch) or "long" (a summary that
        supersedes the previous long one)."""
        _check_choice(kind, REFLECTION_KINDS, "reflection kind")
        if not isinstance(text, str):
            raise ValueError(f"reflection text must be a string, got {type(text).__name__}")
        row = Reflection(run_id=run_id, generation=_int(generation, "generation"), kind=kind, text=text,
                         created_at=_now())
        with self._session(write=True) as s:
            _get(s, Run, run_id, "run")
            s.add(row)
            s.flush()
            return _reflection_record(row)

    def reflections(self, run_id: int, kind: str | None = None) -> list[ReflectionRecord]:
        """A run's reflections (of ``kind``, if given), oldest first."""
        q: Select = select(Reflection).where(Reflection.run_id == run_id).order_by(Reflection.id)
        if kind is not None:
            _check_choice(kind, REFLECTION_KINDS, "reflection kind")
            q = q.where(Reflection.kind == kind)
        with self._session() as s:
            return [_reflection_record(r) for r in s.scalars(q)]


def _forget_connections(ref: "weakref.ref[Store]") -> None:
    store = ref()
    if store is not None:
        store._reader.dispose(close=False)
