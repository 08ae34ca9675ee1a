"""The LLM mutator: a language model proposes edits to the evolve block, through litellm.

Any litellm model string works (``openai/gpt-4o-mini``, ``anthropic/claude-...``,
``ollama/qwen2.5-coder``, ``hosted_vllm/...``), with ``api_base`` for a local server; keys
come from the providers' usual environment variables. Several models (``--llm a,b,c``)
form an ensemble chosen per proposal by a bandit on improvement per dollar
(``discover.mutators.bandit``).

One proposal:
  1. the bandit picks a model; the prompt shows the space's contract, the parent and its
     per-task results, a few inspirations and the current reflections (``prompts``);
  2. the answer is parsed and applied inside the evolve block (``diffs``); an answer that
     does not apply goes back to the model with the error, at most ``max_repair`` times;
  3. an answer with no code at all, a timeout, or an error left after the bounded retries
     (429 and 5xx, with exponential backoff) is recorded and skipped: ``propose`` returns
     fewer proposals rather than raising.

Every call — retries and repairs included — becomes an ``LLMCall`` record with its tokens,
cost (litellm's price table; 0 for models it does not price, such as local ones), latency
and status; the loop drains them with ``drain_calls()`` and writes them to the store. Once
``max_cost`` dollars are spent no further call is made: ``BudgetExhausted`` is raised; after
``max_consecutive_failures`` calls in a row without an answer, ``LLMUnavailable``. Both are
``MutatorStopped``: the loop turns them into a clean stop.

``propose``, ``reflect`` and ``summarize`` are blocking and thread-safe: the loop may run
several of them in a thread pool while evaluations run. The model client (settings, call
records, errors, prices, litellm imported on first use) is ``discover.mutators.llm_client``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import random
import threading
import time
from typing import Any, Iterable, Sequence

from discover.mutators.bandit import ModelBandit
from discover.mutators.base import MutationContext, Mutator, Parent, Proposal
from discover.mutators.diffs import DiffError, NoCodeError, apply_answer, parse_answer
from discover.mutators.llm_client import (  # noqa: F401  (the client's names are the mutator's API too)
    BudgetExhausted, ERROR, INVALID_DIFF, LLMCall, LLMConfig, LLMConfigError, LLMUnavailable,
    LOCAL_PROVIDERS, MALFORMED, MUTATE, MutatorStopped, OK, RATE_LIMITED, REFLECT, REPAIR,
    SERVER_ERROR, SUMMARIZE, TIMEOUT, call_cost, check_model_access, parse_models, provider_of,
    _Reply, _litellm, _one_line, _retry_after, _status_code)
from discover.mutators.prompts import (Message, mutation_messages, reflection_messages, render,
                                       repair_messages, summary_messages)
from discover.mutators.reflection import EditOutcome, statistical_reflection  # noqa: F401  (re-exported)

class LLMMutator(Mutator):
    """Proposes children by asking language models for edits to the evolve block.

    Args:
      config: an ``LLMConfig``; a model string (or comma-separated list) is accepted as a
        shorthand for ``LLMConfig(models=...)``.
      seed: seeds the ensemble's tie-breaking (choices are reproducible given the seed and
        the order of outcomes).

    Thread-safety: all methods may be called from several threads at once.
    """

    name = "llm"
    # propose() blocks on the network and is thread-safe: the loop asks for all of a
    # generation's children at once and overlaps proposing with evaluating.
    concurrent = True

    def __init__(self, config: LLMConfig | str | Sequence[str], seed: int = 0):
        if not isinstance(config, LLMConfig):
            config = LLMConfig(models=parse_models(config))
        self.config = config
        self.seed = int(seed)
        self.bandit = ModelBandit(config.models, exploration=config.exploration,
                                  cost_floor_usd=config.cost_floor_usd)
        self._lock = threading.Lock()
        self._calls: list[LLMCall] = []
        self._total_cost = 0.0
        self._keys = itertools.count(1)
        self._space_name = ""
        self._failures_in_a_row = 0
        self._last_failure = ""

    # ------------------------------------------------------------------ accounting
    @property
    def model(self) -> str:
        """The model string (comma-joined for an ensemble); each proposal names its own in
        ``meta["model"]``."""
        return ",".join(self.config.models)

    @property
    def total_cost(self) -> float:
        """Dollars spent so far by every call of this mutator."""
        with self._lock:
            return self._total_cost

    @property
    def budget_left(self) -> float | None:
        """Dollars left under ``max_cost`` (None: no limit)."""
        if self.config.max_cost is None:
            return None
        return max(0.0, self.config.max_cost - self.total_cost)

    def drain_calls(self) -> list[LLMCall]:
        """The calls made since the last drain, oldest first (each returned once)."""
        with self._lock:
            calls, self._calls = self._calls, []
            return calls

    def model_stats(self) -> dict[str, dict[str, Any]]:
        """Per-model statistics (calls, valid rate, improvements, cost, ...), JSON-ready;
        see ``ModelBandit.stats``."""
        return self.bandit.stats()

    def record_outcome(self, proposal: Proposal, score: float | None) -> None:
        """Tells the ensemble how a proposal of this mutator turned out: the child's score,
        or None when it was rejected (static check, duplicate, ε-net) or failed. Call it
        once per proposal; proposals of other mutators are ignored."""
        model = proposal.meta.get("model") if proposal.meta else None
        if model not in self.bandit.models:
            return
        self.bandit.record_outcome(model, proposal.meta.get("parent_score"), score)

    def _record(self, call: LLMCall) -> None:
        with self._lock:
            self._calls.append(call)
            self._total_cost += call.cost_usd
        self.bandit.record_call(call.model, call.cost_usd, call.prompt_tokens, call.completion_tokens,
                                ok=call.status in (OK, INVALID_DIFF, MALFORMED))

    def _check_can_call(self) -> None:
        """Raises ``BudgetExhausted`` once ``max_cost`` is spent, and ``LLMUnavailable`` once
        ``max_consecutive_failures`` calls in a row failed: both stay raised for good."""
        limit = self.config.max_cost
        with self._lock:
            spent, failures, last = self._total_cost, self._failures_in_a_row, self._last_failure
        if limit is not None and spent >= limit:
            raise BudgetExhausted(f"the LLM budget is spent: ${spent:.4f} of max_cost ${limit:.4f}")
        if failures >= self.config.max_consecutive_failures:
            raise LLMUnavailable(f"no answer in the last {failures} calls; last error: {last}")

    # ------------------------------------------------------------------ one call
    def _complete(self, model: str, messages: list[Message], purpose: str, rng: random.Random,
                  parent_id: int | None = None, key: str | None = None,
                  temperature: float | None = None) -> _Reply | None:
        """One answer from ``model``, retrying 429/5xx/connection errors with exponential
        backoff. Failed attempts are recorded here; the successful reply is returned for the
        caller to record with the status of its content. None when no answer came.

        Raises:
          BudgetExhausted: before a call, when ``max_cost`` is spent.
          LLMConfigError: the provider rejected the key or does not know the model.
        """
        litellm = _litellm()
        cfg = self.config
        prompt = render(messages)
        for attempt in range(cfg.max_retries + 1):
            self._check_can_call()
            start = time.monotonic()
            try:
                response = litellm.completion(
                    model=model, messages=messages, api_base=cfg.api_base, api_key=cfg.api_key,
                    timeout=cfg.timeout_s, max_retries=0, num_retries=0,  # retries are ours, and recorded
                    temperature=cfg.temperature if temperature is None else temperature,
                    max_tokens=cfg.max_tokens, drop_params=True)
            except Exception as exc:  # litellm maps every provider's failure onto its exceptions
                latency = time.monotonic() - start
                status, retry = self._classify(exc, litellm)
                last = attempt == cfg.max_retries
                self._record(LLMCall(model=model, prompt=prompt, response=None, prompt_tokens=None,
                                     completion_tokens=None, cost_usd=0.0, latency_s=latency,
                                     status=status, error=_one_line(exc), purpose=purpose,
                                     parent_id=parent_id, key=key))
                if isinstance(exc, (litellm.AuthenticationError, litellm.PermissionDeniedError)):
                    raise LLMConfigError(f"{model} rejected the API key: {_one_line(exc)}") from None
                if isinstance(exc, litellm.NotFoundError):
                    raise LLMConfigError(f"{model} was not found at the provider: {_one_line(exc)}") from None
                if not retry or last:
                    self._no_answer(model, exc)
                    return None
                wait = min(cfg.backoff_max_s, cfg.backoff_s * 2 ** attempt * (1.0 + 0.25 * rng.random()))
                hint = _retry_after(exc)
                time.sleep(min(cfg.backoff_max_s, max(wait, hint)) if hint is not None else wait)
                continue
            latency = time.monotonic() - start
            with self._lock:
                self._failures_in_a_row = 0
            return self._reply(model, messages, response, latency)
        return None

    def _no_answer(self, model: str, exc: BaseException) -> None:
        with self._lock:
            self._failures_in_a_row += 1
            self._last_failure = f"{model}: {_one_line(exc)}"
        self._check_can_call()

    @staticmethod
    def _classify(exc: BaseException, litellm) -> tuple[str, bool]:
        """(status, retry?) of a failed call. Timeouts are not retried: a model that was too
        slow once is likely to be again, and a retry would double the wall time."""
        if isinstance(exc, litellm.Timeout):
            return TIMEOUT, False
        code = _status_code(exc)
        if isinstance(exc, litellm.RateLimitError) or code == 429:
            return RATE_LIMITED, True
        if code is not None and code >= 500 or isinstance(exc, (litellm.InternalServerError,
                                                                 litellm.ServiceUnavailableError,
                                                                 litellm.BadGatewayError)):
            return SERVER_ERROR, True
        if isinstance(exc, litellm.APIConnectionError) and code is None:
            return SERVER_ERROR, True
        return ERROR, False

    def _reply(self, model: str, messages: list[Message], response, latency: float) -> _Reply:
        try:
            text = response.choices[0].message.content or ""
        except (AttributeError, IndexError, KeyError):
            text = ""
        usage = getattr(response, "usage", None)
        pt = getattr(usage, "prompt_tokens", None)
        ct = getattr(usage, "completion_tokens", None)
        if pt is None or ct is None:  # a server that reports no usage: count the tokens ourselves
            litellm = _litellm()
            try:
                pt = pt if pt is not None else litellm.token_counter(model=model, messages=messages)
                ct = ct if ct is not None else litellm.token_counter(model=model, text=text)
            except Exception:
                pass
        return _Reply(text=text, prompt_tokens=pt, completion_tokens=ct,
                      cost_usd=call_cost(model, pt, ct), latency_s=latency)

    def _record_reply(self, model: str, messages: list[Message], reply: _Reply, status: str,
                      error: str | None, purpose: str, parent_id: int | None, key: str | None) -> None:
        self._record(LLMCall(model=model, prompt=render(messages), response=reply.text,
                             prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
                             cost_usd=reply.cost_usd, latency_s=reply.latency_s, status=status,
                             error=error, purpose=purpose, parent_id=parent_id, key=key))

    # ------------------------------------------------------------------ mutation
    def propose(self, context: MutationContext, n: int) -> list[Proposal]:
        """Up to ``n`` children of ``context.parent``, one model answer (plus repairs) each.

        Blocking and thread-safe. Returns fewer than ``n`` when answers are malformed, do
        not apply after ``max_repair`` repairs, or calls fail (all recorded as ``LLMCall``s).

        Raises:
          BudgetExhausted: ``max_cost`` was spent before the first proposal could be made
            (when some were made, they are returned and the next call raises).
          LLMUnavailable: ``max_consecutive_failures`` calls in a row brought no answer
            (same rule for proposals already made).
          LLMConfigError: the provider rejected the key or does not know the model.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}.")
        self._space_name = context.space.name
        rng = random.Random(f"{self.seed}:{context.rng_seed}")
        out: list[Proposal] = []
        for _ in range(n):
            try:
                proposal = self._propose_one(context, rng)
            except MutatorStopped:
                if out:  # keep what was made; the next call raises again
                    return out
                raise
            if proposal is not None:
                out.append(proposal)
        return out

    def _propose_one(self, context: MutationContext, rng: random.Random) -> Proposal | None:
        parent = context.parent
        model = self.bandit.choose(rng)
        key = f"g{context.generation}-p{parent.id}-{next(self._keys)}"
        messages = mutation_messages(context, self.config.max_inspirations)
        cost = 0.0
        resolved = False
        try:
            for attempt in range(self.config.max_repair + 1):
                purpose = MUTATE if attempt == 0 else REPAIR
                reply = self._complete(model, messages, purpose, rng, parent.id, key)
                if reply is None:
                    return None
                cost += reply.cost_usd
                try:
                    answer = parse_answer(reply.text)
                    source = apply_answer(parent.source, answer)
                except NoCodeError as exc:
                    self._record_reply(model, messages, reply, MALFORMED, str(exc), purpose, parent.id, key)
                    return None
                except DiffError as exc:
                    self._record_reply(model, messages, reply, INVALID_DIFF, str(exc), purpose, parent.id, key)
                    messages = repair_messages(messages, reply.text, str(exc))
                    continue
                self._record_reply(model, messages, reply, OK, None, purpose, parent.id, key)
                self.bandit.record_proposal(model)
                resolved = True
                return self._proposal(context, source, answer, model, key, cost, attempt + 1)
            return None
        finally:
            if not resolved:  # no child: the pull's outcome is known now (nothing gained)
                self.bandit.record_outcome(model, parent.score, None)

    def _proposal(self, context: MutationContext, source: str, answer, model: str, key: str,
                  cost: float, attempts: int) -> Proposal:
        parent = context.parent
        if answer.idea:
            edit = answer.idea
        elif answer.kind == "diff":
            edit = f"{len(answer.blocks)} SEARCH/REPLACE block{'s' if len(answer.blocks) != 1 else ''}"
        else:
            edit = "rewrite of the evolve block"
        return Proposal(
            source=source, edit=edit[:300], parents=(parent.id,), kind=f"llm_{answer.kind}",
            meta={"model": model, "call_key": key, "cost_usd": cost, "attempts": attempts,
                  "answer_kind": answer.kind, "idea": answer.idea, "parent_score": parent.score,
                  "inspirations": tuple(p.id for p in context.inspirations[: self.config.max_inspirations])})

    # ------------------------------------------------------------------ reflection
    def _write(self, messages: list[Message], purpose: str) -> str:
        model = self.config.reflection_model or self.config.models[0]
        rng = random.Random(f"{self.seed}:{purpose}")
        reply = self._complete(model, messages, purpose, rng, temperature=0.3)
        if reply is None:
            return ""
        text = reply.text.strip()
        self._record_reply(model, messages, reply, OK if text else MALFORMED,
                           None if text else "empty answer", purpose, None, None)
        return text

    def reflect(self, batch: Sequence[tuple[Parent | Any, float | None]], space_name: str | None = None) -> str:
        """A short note on one evaluated batch, from its best and worst programs.

        Args:
          batch: ``(program, score)`` pairs; a program is ``Parent``-like (``id``,
            ``source``, ``metrics``; ``edit`` and ``error`` are shown where present).
          space_name: named in the prompt (default: the space of the last proposal).

        Returns:
          The note, or "" when the call failed (recorded); fall back to
          ``statistical_reflection`` then. Raises ``MutatorStopped`` and
          ``LLMConfigError`` like ``propose``.
        """
        if not batch:
            return ""
        return self._write(reflection_messages(space_name or self._space_name, list(batch)), REFLECT)

    def summarize(self, notes: Sequence[str], space_name: str | None = None) -> str:
        """One long-term summary replacing many short notes ("" when the call failed)."""
        notes = [n for n in notes if n and n.strip()]
        if not notes:
            return ""
        return self._write(summary_messages(space_name or self._space_name, notes), SUMMARIZE)


def edit_outcomes(pairs: Iterable[tuple[Proposal, float | None]]) -> list[EditOutcome]:
    """``EditOutcome`` records for ``statistical_reflection`` from proposals and the scores
    their children got (``meta["parent_score"]`` where the mutator set it)."""
    return [EditOutcome(kind=p.kind, parent_score=(p.meta or {}).get("parent_score"), score=s)
            for p, s in pairs]

