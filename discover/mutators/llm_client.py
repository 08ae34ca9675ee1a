"""Talking to a language model through litellm: settings, the record of every call, errors
and their classes, model access checks and prices. ``discover.mutators.llm`` builds the
mutator on it.

litellm is imported on first use (it takes seconds), with its bundled price table (no
download at import).
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
from typing import Any, Iterable, Sequence

# Providers served from the user's own machine or network: no API key is needed.
LOCAL_PROVIDERS = frozenset({"ollama", "ollama_chat", "hosted_vllm", "vllm", "lm_studio", "llamafile",
                             "openai_like", "xinference", "oobabooga"})

# Statuses of a recorded call (the store keeps at most 16 characters).
OK = "ok"                      # the answer applied and became a proposal (or a reflection was written)
INVALID_DIFF = "invalid_diff"  # the answer had code that did not apply; repaired if attempts remain
MALFORMED = "malformed"        # the answer had no code at all
RATE_LIMITED = "rate_limited"  # 429 (retried while attempts remain)
SERVER_ERROR = "server_error"  # 5xx or connection failure (retried while attempts remain)
TIMEOUT = "timeout"            # no answer within timeout_s (not retried)
ERROR = "error"                # any other failure (bad request, authentication, ...)

MUTATE, REPAIR, REFLECT, SUMMARIZE = "mutate", "repair", "reflect", "summarize"


class LLMConfigError(ValueError):
    """The model cannot be used as configured (missing key, unknown provider, rejected key)."""


class MutatorStopped(RuntimeError):
    """The mutator cannot go on; the loop should stop cleanly (keeping what was evaluated)."""


class BudgetExhausted(MutatorStopped):
    """``max_cost`` is spent: the mutator makes no further call."""


class LLMUnavailable(MutatorStopped):
    """``max_consecutive_failures`` calls in a row brought no answer (server down, model
    overloaded): going on would only spin."""


@dataclasses.dataclass(frozen=True)
class LLMCall:
    """One call to a model, for the store's ``llm_calls`` table.

    Attributes:
      model: the litellm model string.
      prompt: the conversation sent, rendered as text (``prompts.render``).
      response: the answer text (None when no answer came).
      prompt_tokens / completion_tokens: the provider's usage counts (None when unknown).
      cost_usd: from litellm's price table; 0 for unpriced (e.g. local) models and failures.
      latency_s: wall time of the call.
      status: one of ``ok``, ``invalid_diff``, ``malformed``, ``rate_limited``,
        ``server_error``, ``timeout``, ``error``.
      error: why the call or its answer failed, one paragraph (None when ``ok``).
      purpose: ``mutate``, ``repair``, ``reflect`` or ``summarize``.
      parent_id: the program being mutated (None for reflections).
      key: the proposal this call belongs to: equals ``Proposal.meta["call_key"]`` of the
        proposal it produced, so the loop can attach it to the child program (None for
        reflections).
    """

    model: str
    prompt: str
    response: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float
    latency_s: float
    status: str
    error: str | None
    purpose: str
    parent_id: int | None = None
    key: str | None = None


@dataclasses.dataclass(frozen=True)
class LLMConfig:
    """Settings of the LLM mutator.

    Attributes:
      models: litellm model strings; several form a bandit ensemble.
      api_base: base URL of a local or self-hosted server (e.g. ``http://localhost:11434``
        for Ollama, ``http://localhost:8000/v1`` for vLLM); None for the provider's own.
      api_key: a key to use instead of the provider's environment variable.
      max_cost: dollars to spend at most over the mutator's life (None: no limit).
      timeout_s: seconds one call may take; a call past it is recorded as a timeout.
      max_retries: retries of a call after 429/5xx/connection errors (0: none).
      backoff_s / backoff_max_s: the first retry waits ``backoff_s``, doubling up to
        ``backoff_max_s`` (a server's ``retry-after`` is honoured within that cap).
      max_repair: how many times an answer that does not apply is sent back with the error.
      temperature / max_tokens: sampling settings of mutation calls.
      max_inspirations: inspirations shown in a prompt at most.
      reflection_model: the model writing reflections (default: the first of ``models``).
      exploration / cost_floor_usd: the bandit's UCB constant and per-outcome cost floor.
      max_consecutive_failures: calls in a row with no answer (after their retries) before
        ``LLMUnavailable`` is raised; any answer resets the count.
    """

    models: tuple[str, ...]
    api_base: str | None = None
    api_key: str | None = None
    max_cost: float | None = None
    timeout_s: float = 120.0
    max_retries: int = 3
    backoff_s: float = 2.0
    backoff_max_s: float = 60.0
    max_repair: int = 2
    temperature: float = 0.8
    max_tokens: int = 4096
    max_inspirations: int = 4
    reflection_model: str | None = None
    exploration: float = 1.0
    cost_floor_usd: float = 1e-4
    max_consecutive_failures: int = 10

    def __post_init__(self):
        models = parse_models(self.models) if isinstance(self.models, str) else tuple(self.models)
        object.__setattr__(self, "models", models)
        if not models or any(not m.strip() for m in models):
            raise ValueError("LLMConfig.models needs at least one non-empty model name.")
        if self.max_cost is not None and not self.max_cost > 0:
            raise ValueError(f"max_cost must be positive dollars, got {self.max_cost}.")
        if self.timeout_s <= 0 or self.max_retries < 0 or self.max_repair < 0:
            raise ValueError("timeout_s must be > 0 and max_retries, max_repair >= 0.")
        if self.backoff_s < 0 or self.backoff_max_s < self.backoff_s:
            raise ValueError("backoff_s must be >= 0 and backoff_max_s >= backoff_s.")
        if self.max_inspirations < 0 or self.max_tokens <= 0 or self.max_consecutive_failures < 1:
            raise ValueError("max_inspirations must be >= 0, max_tokens > 0 and max_consecutive_failures >= 1.")


def parse_models(spec: str | Iterable[str]) -> tuple[str, ...]:
    """``"a,b , c"`` → ``("a", "b", "c")``; duplicates are dropped, order kept."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    models = tuple(dict.fromkeys(m.strip() for m in items if m.strip()))
    if not models:
        raise ValueError(f"no model named in {spec!r}; give a litellm model such as openai/gpt-4o-mini.")
    return models


_LITELLM = None
_IMPORT_LOCK = threading.Lock()


def _litellm():
    """litellm, imported on first use with its bundled price table (no download at import)."""
    global _LITELLM
    with _IMPORT_LOCK:
        if _LITELLM is None:
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            import litellm

            litellm.suppress_debug_info = True  # no provider-list banners on stdout
            _LITELLM = litellm
        return _LITELLM


def provider_of(model: str, api_base: str | None = None) -> str:
    """The litellm provider of ``model`` (``openai`` for ``gpt-4o-mini``).

    Raises:
      LLMConfigError: litellm knows no provider for it.
    """
    litellm = _litellm()
    try:
        return litellm.get_llm_provider(model=model, api_base=api_base)[1]
    except Exception:
        raise LLMConfigError(f"unknown model {model!r}: name it with its provider, e.g. openai/gpt-4o-mini, "
                             "anthropic/claude-3-5-sonnet-latest, ollama/qwen2.5-coder") from None


def check_model_access(models: str | Sequence[str], api_base: str | None = None,
                       api_key: str | None = None) -> None:
    """Checks, before a run starts, that every model can be called: its provider is known
    and its key is set. Local providers (Ollama, vLLM, LM Studio, ...) and any model with
    ``api_base`` (or an explicit ``api_key``) need no key. Makes no network call.

    Raises:
      LLMConfigError: with one line naming the first problem, e.g.
        "OPENAI_API_KEY is not set (needed for openai/gpt-4o-mini)".
    """
    litellm = _litellm()
    for model in parse_models(models):
        provider = provider_of(model, api_base)
        if api_base or api_key or provider in LOCAL_PROVIDERS:
            continue
        missing = list(litellm.validate_environment(model=model).get("missing_keys") or [])
        if not missing:
            continue
        if provider == "gemini":  # either of Google's two variables will do
            raise LLMConfigError(f"GEMINI_API_KEY (or GOOGLE_API_KEY) is not set (needed for {model})")
        names = missing[0] if len(missing) == 1 else ", ".join(missing[:-1]) + " and " + missing[-1]
        raise LLMConfigError(f"{names} {'is' if len(missing) == 1 else 'are'} not set (needed for {model})")


def call_cost(model: str, prompt_tokens: int | None, completion_tokens: int | None) -> float:
    """Dollars for the tokens at litellm's prices for ``model``; 0 where it has no price."""
    if not prompt_tokens and not completion_tokens:
        return 0.0
    try:
        p, c = _litellm().cost_per_token(model=model, prompt_tokens=int(prompt_tokens or 0),
                                         completion_tokens=int(completion_tokens or 0))
        cost = float(p) + float(c)
    except Exception:  # not in the price table: a local or self-hosted model
        return 0.0
    return cost if math.isfinite(cost) and cost > 0 else 0.0


@dataclasses.dataclass(frozen=True)
class _Reply:
    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float
    latency_s: float


def _status_code(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None)
    return code if isinstance(code, int) else None


def _retry_after(exc: BaseException) -> float | None:
    """The server's ``retry-after`` in seconds, where it sent one as a number."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    try:
        value = headers.get("retry-after") if headers is not None else None
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:2000]
