"""The discovery loop: a thin orchestrator over the selector, mutator, executor and store.

One generation:
  1. the selector picks parents (and inspirations) from everything evaluated so far;
  2. the mutator proposes one child per parent;
  3. cheap checks run in this process on the text alone (parses, defines the required
     functions, no forbidden names), then the child's behavioural fingerprint is computed in
     the isolated executor (it runs candidate code) and the ε-net drops children too close
     to a known point;
  4. the executor evaluates the survivors on every train task;
  5. the store records programs, parent edges, evaluations and rejections as they happen,
     and the selector is told the scores in proposal order (so runs are reproducible).

Everything is written to the store before the next step relies on it, so a run killed at any
moment resumes from the store alone: finished evaluations are kept, half-evaluated programs
get their missing tasks, and the budget counts what was done.

Resume is the live path replayed, so a resumed run makes the choices an uninterrupted one
makes. The selector is told each program's score and fingerprint in id order, as it was live;
a parent's expansion count is, live and on resume alike, the number of stored children
(programs and rejections) it has as first parent — picks that left no record (a proposal
identical to an earlier rejection) are taken back once a generation is admitted. The last
generation with any record may have been cut short (during its probes, its admission or its
evaluations), so resume restores the generations before it and runs that generation again:
its proposals are the same (the random streams are functions of the run seed and the
generation), what was stored already is found again by code hash (programs, rejections and
evaluations are idempotent), and only what is missing is evaluated.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Sequence

import numpy as np

from discover.engine import evaluation
from discover.checks import static_check
from discover.config import RunConfig
from discover.isolation.executor import Executor, Job
from discover.mutators.base import MutationContext, Mutator, Parent, Proposal
from discover.engine.progress import Progress
from discover.mutators.llm import MutatorStopped
from discover.mutators.reflection import EditOutcome, statistical_reflection
from discover.engine.selector import EpsilonNet, Selector
from discover.space import Space, TaskResult

TRAIN, HELD_OUT = evaluation.TRAIN, evaluation.HELD_OUT


def _rng_seed(*parts: Any) -> int:
    h = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(h[:8], "little")


class Discovery:
    """Runs (or resumes) one discovery run recorded in `store` under `run`."""

    def __init__(self, space: Space, store, executor: Executor, mutator: Mutator,
                 config: RunConfig, run, on_progress: Callable[[Progress], None] | None = None):
        self.space = space
        self.store = store
        self.executor = executor
        self.mutator = mutator
        self.config = config
        self.run = run
        self.selector = Selector(stochastic=space.stochastic)
        self.net = EpsilonNet(config.epsilon)
        self.progress = Progress(budget=config.budget)
        self._on_progress = on_progress or (lambda p: None)
        self._hashes: set[str] = set()
        self._rejected: set[str] = set()   # code hashes with a stored rejection
        self._programs: dict[int, Any] = {}
        self._generation = 0
        self._outcomes: list[EditOutcome] = []
        self._stop_reason: str | None = None
        self.long_every = 5
        # Seconds the loop spent in generations, and blocked on train evaluations within
        # them: the difference is the loop's own overhead (benchmarks/loop_overhead.py).
        self.timings: dict[str, float] = {"generations": 0.0, "evaluation_wait": 0.0}
        self.max_barren_generations = 20
        self._barren = 0

    # ------------------------------------------------------------------ state from store
    def _restore(self) -> list:
        """Rebuilds selector, ε-net and counters from the store, up to the last generation
        with a record, which the loop runs again (module docstring); returns the pending
        programs of earlier generations."""
        pending = []
        programs = sorted(self.store.programs(self.run.id), key=lambda p: p.id)
        evaluation.check_harness(self.store, self.space, self.run, self.config.eval_options, programs)
        rejections = self.store.rejections(self.run.id)
        replay = max([p.generation for p in programs] + [r.generation for r in rejections], default=0)
        self._generation = max(0, replay - 1)
        for p in programs:
            if replay and p.generation == replay:
                continue
            self._programs[p.id] = p
            self._hashes.add(p.code_hash)
            for parent in self.store.parents(p.id):
                if parent.role == "parent" and parent.parent_id in self._programs:
                    self.selector.expanded(parent.parent_id)
            fp = np.asarray(p.fingerprint) if p.fingerprint is not None else None
            if fp is not None:
                self.net.admit(p.id, fp)
            if p.status == "pending":
                pending.append(p)
            else:
                self._count(p.status, p.score, p)
                seed_scores = self._seed_scores(p.id) if self.space.stochastic and p.status == "evaluated" else []
                if len(seed_scores) > 1:
                    for sc in seed_scores:
                        self.selector.tell(p.id, sc, fp)
                else:
                    self.selector.tell(p.id, p.score if p.score is not None else -math.inf, fp)
        for r in rejections:
            if replay and r.generation == replay:
                continue
            self._hashes.add(r.code_hash)
            self._rejected.add(r.code_hash)
            self.progress.rejected += 1
            if r.parent_ids and r.parent_ids[0] in self._programs:
                self.selector.expanded(r.parent_ids[0])
        self.progress.evaluated_at_start = self.progress.evaluated
        return pending

    def _count(self, status: str, score: float | None, program) -> None:
        self.progress.evaluated += 1
        if status == "evaluated" and score is not None and math.isfinite(score):
            self.progress.valid += 1
            if score > self.progress.best_score:
                self.progress.best_score = score
                self.progress.best_id = program.id
                self.progress.best_edit = program.edit or ""
        else:
            self.progress.invalid += 1

    # ------------------------------------------------------------------ evaluation
    def _waited(self, seconds: float) -> None:
        self.timings["evaluation_wait"] += seconds

    def _submit_train(self, program, seed: int = 0) -> dict[str, Future]:
        """The program's train jobs of ``seed``, leaving out tasks whose results are stored
        (a resumed run, or a generation run again after one)."""
        return evaluation.submit(self.executor, self.config.space, program.source, self.space.train_tasks, seed,
                                 self.config.eval_options, tag=program.id,
                                 skip=evaluation.done_tasks(self.store, program.id, TRAIN, seed))

    def _finish(self, program, futures: dict[str, Future]) -> None:
        evaluation.collect(self.store, program.id, TRAIN, 0, futures, waited=self._waited)
        program = evaluation.conclude(self.store, self.space, program.id)
        self._programs[program.id] = program
        score = program.score if program.score is not None else -math.inf
        # With its fingerprint, as on resume: inspirations are chosen by behaviour.
        fp = np.asarray(program.fingerprint) if program.fingerprint is not None else None
        self.selector.tell(program.id, score, fp)
        self._count(program.status, program.score, program)
        self._on_progress(self.progress)

    def _seed_scores(self, program_id: int) -> list[float]:
        """The program's score on each evaluation seed whose train tasks are all done."""
        by_seed: dict[int, dict[str, TaskResult]] = {}
        for e in self.store.evaluations(program_id):
            if e.split == TRAIN:
                by_seed.setdefault(e.seed, {})[e.task] = e.result
        return [self.space.score([tasks[t] for t in self.space.train_tasks])
                for seed, tasks in sorted(by_seed.items())
                if all(t in tasks for t in self.space.train_tasks)]

    def _reevaluate(self) -> None:
        """Stochastic spaces: the selector's top programs with too few evaluations are
        evaluated once more, each on the next seed (1, 2, ...), all at once. Each seed's
        score is told to the selector, and the stored score becomes the mean over seeds,
        so a lucky first evaluation cannot keep a program on top. Repeated until the top
        programs all have enough seeds. Re-evaluations do not count against the budget of
        programs."""
        for _ in range(self.selector.config.min_evaluations * self.selector.config.reevaluate_top):
            wanted = self.selector.needs_reevaluation()
            if not wanted:
                return
            self._reevaluate_once(wanted)

    def _reevaluate_once(self, wanted: Sequence[int]) -> None:
        self.progress.phase = f"re-evaluating {len(wanted)} top program(s) on new seeds"
        self._on_progress(self.progress)
        jobs = []
        for pid in wanted:
            seed = 1 + max((e.seed for e in self.store.evaluations(pid) if e.split == TRAIN), default=0)
            jobs.append((pid, seed, self._submit_train(self._programs[pid], seed)))
        for pid, seed, futs in jobs:
            evaluation.collect(self.store, pid, TRAIN, seed, futs, waited=self._waited)
            self.selector.tell(pid, evaluation.stored_score(self.store, self.space, pid, TRAIN, seed))
            mean = self.selector.mean(pid)
            if math.isfinite(mean):
                self._programs[pid] = self.store.set_program_status(pid, "evaluated", score=mean)
            else:
                self._programs[pid] = self.store.set_program_status(pid, "invalid", score=None)
        self._recount_best()

    def _recount_best(self) -> None:
        """The best program by stored (mean) score, after re-evaluations changed scores."""
        best = max((p for p in self._programs.values() if p.status == "evaluated" and p.score is not None),
                   key=lambda p: (p.score, -p.id), default=None)
        if best is not None:
            self.progress.best_score, self.progress.best_id = best.score, best.id
            self.progress.best_edit = best.edit or ""

    def _probe(self, sources: Sequence[str]) -> list[TaskResult]:
        futs = [self.executor.submit(Job(space=self.config.space, source=s, task="", kind="probe", tag=i))
                for i, s in enumerate(sources)]
        return [f.result() for f in futs]

    # ------------------------------------------------------------------ phases
    def _seed_sources(self) -> dict[str, tuple[str, str]]:
        """The configured seeds as name → (source, edit): the space's own seed files first,
        then algorithms installed under the ``discover.algorithms`` entry point."""
        seeds = self.space.seeds()
        names = list(self.config.seeds) or list(seeds)
        out = {}
        for name in names:
            if name in seeds:
                out[name] = (seeds[name], f"seed: {name}")
                continue
            from discover.algorithms import UnknownAlgorithm, load_algorithm
            try:
                algo = load_algorithm(name)
            except UnknownAlgorithm:
                raise ValueError(f"unknown seed {name!r} for space {self.space.name!r}; available: "
                                 f"{', '.join(seeds)} or an installed algorithm") from None
            if algo.space != self.space.name:
                raise ValueError(f"installed algorithm {name!r} was evolved in space {algo.space!r}, "
                                 f"not {self.space.name!r}")
            out[name] = (algo.source, f"seed: {name} (installed algorithm)")
        return out

    def _evaluate_seeds(self) -> None:
        new = []
        for name, (src, edit) in self._seed_sources().items():
            p = self.store.add_program(self.run.id, src, generation=0, edit=edit,
                                       parents=[], mutator="seed")
            if p.code_hash in self._hashes:
                continue
            self._hashes.add(p.code_hash)
            self._programs[p.id] = p
            new.append(p)
        if not new:
            return
        self.progress.phase = "evaluating seeds"
        probes = self._probe([p.source for p in new])
        for p, pr in zip(new, probes):
            if pr.ok:
                fp = np.asarray(pr.curve[0], dtype=np.float64)
                self.store.set_fingerprint(p.id, fp.tolist())
                self.net.admit(p.id, fp)
        self._evaluate_programs(new)

    def _evaluate_programs(self, programs: Sequence) -> None:
        budget_left = self.config.budget - self.progress.evaluated
        programs = list(programs)[: max(0, budget_left)]
        submitted = [(p, self._submit_train(p)) for p in programs]
        for p, futs in submitted:
            self._finish(p, futs)

    def _resume_pending(self, pending: Sequence) -> None:
        if not pending:
            return
        self.progress.phase = "resuming"
        unprobed = [p for p in pending if p.fingerprint is None]    # killed before its probe was stored
        for p, pr in zip(unprobed, self._probe([p.source for p in unprobed])):
            if pr.ok:
                fp = np.asarray(pr.curve[0], dtype=np.float64)
                self.store.set_fingerprint(p.id, fp.tolist())
                self.net.admit(p.id, fp)
                self._programs[p.id] = self.store.program(p.id)
        pending = [self._programs.get(p.id, p) for p in pending]
        self._evaluate_programs(pending)

    def _parent(self, pid: int) -> Parent:
        p = self._programs[pid]
        metrics = {e.task: dict(e.result.metrics) for e in self.store.evaluations(pid) if e.split == TRAIN}
        return Parent(id=pid, source=p.source, score=p.score, metrics=metrics)

    def _reflections(self) -> list[str]:
        """The latest long-term summary and the latest short note, oldest first."""
        out = []
        for kind in ("long", "short"):
            rs = self.store.reflections(self.run.id, kind=kind)
            if rs:
                out.append(rs[-1].text)
        return out

    def _propose(self, g: int, n: int) -> list[Proposal]:
        """Selects parents and asks the mutator for one child each. A mutator that talks to
        a model (``concurrent = True``) is asked for all parents at once, on threads."""
        rng = random.Random(_rng_seed(self.config.seed, "select", g))
        picks = self.selector.ask(n, rng)
        if not picks:
            raise RuntimeError("no viable program to breed from: every seed failed its evaluation")
        reflections = self._reflections()
        contexts = [MutationContext(space=self.space, parent=self._parent(parent_id),
                                    inspirations=[self._parent(j) for j in insp], reflections=reflections,
                                    generation=g, rng_seed=_rng_seed(self.config.seed, "mutate", g, i))
                    for i, (parent_id, insp) in enumerate(picks)]
        if self.mutator.concurrent and len(contexts) > 1:
            with ThreadPoolExecutor(max_workers=len(contexts)) as pool:
                batches = list(pool.map(lambda c: self._propose_safely(c), contexts))
        else:
            batches = [self._propose_safely(c) for c in contexts]
        return [prop for batch in batches for prop in batch]

    def _propose_safely(self, ctx: MutationContext) -> list[Proposal]:
        try:
            return list(self.mutator.propose(ctx, 1))
        except MutatorStopped as e:
            self._stop_reason = str(e) or type(e).__name__
            return []

    def _admit(self, proposals: Sequence[Proposal], g: int) -> list[tuple[Any, Proposal]]:
        """Text checks, then the isolated probe and the ε-net; stores the survivors. Picks
        whose proposal left no new record are taken back from the selector's counts."""
        from discover.program import code_hash
        checked: list[Proposal] = []
        for prop in proposals:
            h = code_hash(prop.source)
            reason = None
            if h in self._hashes:
                reason = "duplicate: the same code is already in this run"
            else:
                chk = static_check(prop.source, self.space)
                if not chk.ok:
                    reason = f"static check: {chk.reason}"
            self._hashes.add(h)
            if reason:
                self._reject(prop, g, reason)
            else:
                checked.append(prop)
        probes = self._probe([p.source for p in checked])
        admitted = []
        for prop, pr in zip(checked, probes):
            if not pr.ok:
                last = (pr.error or "").strip().splitlines()[-1:] or [""]
                self._reject(prop, g, f"probe {pr.status}: {last[0]}")
                continue
            fp = np.asarray(pr.curve[0], dtype=np.float64)
            nearest, d = self.net.nearest(fp)
            if nearest is not None and d <= self.net.epsilon:
                self._reject(prop, g, f"ε-net: behaves like program {nearest} (distance {d:.3g} ≤ ε={self.net.epsilon:g})")
                continue
            model = (prop.meta or {}).get("model") or self.mutator.model
            p = self.store.add_program(self.run.id, prop.source, generation=g, edit=prop.edit,
                                       parents=list(prop.parents), mutator=self.mutator.name, model=model,
                                       fingerprint=fp.tolist())
            self.net.admit(p.id, fp)
            self._programs[p.id] = p
            admitted.append((p, prop))
        self._record_llm_calls({(prop.meta or {}).get("call_key"): p.id for p, prop in admitted})
        return admitted

    def _record_llm_calls(self, program_by_key: dict) -> None:
        """Writes the model calls made since the last drain. Drained only once a batch's
        children are stored (and at the end), so every mutation call finds its program even
        when the next batch is proposed while this one is evaluated."""
        for c in self.mutator.drain_calls():
            self.store.record_llm_call(
                self.run.id, c.model, c.prompt, c.response, prompt_tokens=c.prompt_tokens,
                completion_tokens=c.completion_tokens, cost_usd=c.cost_usd, latency_s=c.latency_s,
                status=c.status, error=c.error, program_id=program_by_key.get(c.key))
        self.progress.cost = float(self.mutator.total_cost)

    def _submit(self, admitted: Sequence[tuple[Any, Proposal]]) -> list:
        return [(p, prop, self._submit_train(p)) for p, prop in admitted]

    def _collect(self, submitted: Sequence, g: int) -> None:
        """Waits for a generation's evaluations (in proposal order), tells the selector and
        the mutator, and writes the generation's reflection."""
        outcomes = []
        for p, prop, futs in submitted:
            self._finish(p, futs)
            score = self._programs[p.id].score
            self.mutator.record_outcome(prop, score)
            parent = self._programs.get(prop.parents[0]) if prop.parents else None
            outcomes.append(EditOutcome(kind=prop.kind, parent_score=parent.score if parent else None, score=score))
        self._outcomes.extend(outcomes)
        self._reflect(g, submitted)

    def _reflect(self, g: int, submitted: Sequence) -> None:
        """A short note after each evaluated batch; every `long_every` batches a long-term
        summary replaces the previous one. With a model the model writes them; offline (or
        when the model call fails) they are statistics over the edits made so far."""
        if not submitted or any(r.generation == g for r in self.store.reflections(self.run.id, kind="short")):
            return          # none, or written before a resume ran this generation again
        note = ""
        batch = [(self._parent(p.id), self._programs[p.id].score) for p, _, _ in submitted]
        try:
            note = self.mutator.reflect(batch, self.space.name)
        except MutatorStopped as e:
            self._stop_reason = str(e) or type(e).__name__
        note = note or statistical_reflection(self._outcomes[-len(submitted):])
        self.store.add_reflection(self.run.id, g, "short", note)
        if g % self.long_every == 0:
            summary = ""
            shorts = [r.text for r in self.store.reflections(self.run.id, kind="short")][-self.long_every:]
            try:
                summary = self.mutator.summarize(shorts, self.space.name)
            except MutatorStopped as e:
                self._stop_reason = str(e) or type(e).__name__
            summary = summary or statistical_reflection(self._outcomes)
            self.store.add_reflection(self.run.id, g, "long", summary)

    def _in_flight(self, submitted) -> int:
        return len(submitted) if submitted else 0

    def _generations(self) -> None:
        """Generation after generation until the budget is spent. With a concurrent
        mutator the next generation is proposed while the current one is evaluated, so the
        workers are not idle while a model thinks; otherwise generations are strictly
        sequential, which makes offline runs reproducible."""
        overlap = self.mutator.concurrent
        submitted, submitted_gen = None, 0
        while self._stop_reason is None:
            remaining = self.config.budget - self.progress.evaluated - self._in_flight(submitted)
            if remaining <= 0:
                break
            self._generation += 1
            g = self._generation
            self.progress.generation = g
            self.progress.phase = f"generation {g}"
            self._on_progress(self.progress)
            proposals = self._propose(g, min(self.config.effective_batch_size, remaining))
            if submitted is not None:
                self._collect(submitted, submitted_gen)
                submitted = None
                self._reevaluate()
            admitted = self._admit(proposals, g)
            self._barren = 0 if admitted else self._barren + 1
            if self._barren >= self.max_barren_generations and self._stop_reason is None:
                self._stop_reason = (f"no new program in {self._barren} generations in a row: "
                                     "every proposal was a duplicate or was rejected")
            remaining = self.config.budget - self.progress.evaluated
            submitted, submitted_gen = self._submit(admitted[: max(0, remaining)]), g
            if not overlap:
                self._collect(submitted, g)
                submitted = None
                self._reevaluate()
            self._on_progress(self.progress)
        if submitted is not None:
            self._collect(submitted, submitted_gen)

    def _reject(self, prop: Proposal, generation: int, reason: str) -> None:
        from discover.program import code_hash
        h = code_hash(prop.source)
        if h in self._rejected and prop.parents and prop.parents[0] in self._programs:
            # record_rejection keeps the first rejection of a code: this pick leaves no record.
            self.selector.expanded(prop.parents[0], -1)
        self.store.record_rejection(self.run.id, prop.source, reason, list(prop.parents), generation,
                                    edit=prop.edit, mutator=self.mutator.name)
        self._rejected.add(h)
        self.progress.rejected += 1
        self.mutator.record_outcome(prop, None)

    # ------------------------------------------------------------------ held out
    def evaluate_held_out(self, program_ids: Sequence[int]) -> dict[int, float]:
        """Evaluates programs on the held-out tasks (skipping what the store has), records
        each program's held-out score, and shows each result as it arrives."""
        def report(done: int, total: int, pid: int, task: str, result: TaskResult) -> None:
            self.progress.phase = (f"held-out evaluation {done}/{total}: program {pid} on "
                                   f"{self.space.task_label(task)} {result.status}")
            self._on_progress(self.progress)
        return evaluation.held_out(self.store, self.space, self.executor, self.config.space, program_ids,
                                   self.config.eval_options, report)

    # ------------------------------------------------------------------ main
    def execute(self) -> None:
        pending = self._restore()
        self._on_progress(self.progress)
        self._resume_pending(pending)
        self._evaluate_seeds()
        t0 = time.perf_counter()
        wait0 = self.timings["evaluation_wait"]
        self._generations()
        self.timings["generations"] += time.perf_counter() - t0
        self.timings["generation_evaluation_wait"] = self.timings["evaluation_wait"] - wait0
        self._record_llm_calls({})  # the last reflections' calls
        self.progress.stop_reason = self._stop_reason
        self.progress.phase = "held-out evaluation"
        self._on_progress(self.progress)
        top = [pid for pid in self.selector.ranked()[: self.config.held_out_top]]
        seeds = [p.id for p in self._programs.values() if p.generation == 0 and p.status == "evaluated"]
        self.evaluate_held_out(list(dict.fromkeys(top + seeds)))
        self.progress.phase = "done"
        self._on_progress(self.progress)
