"""The LLM mutator driven through litellm against a real local HTTP server.

``tests/llm_server.py`` speaks the OpenAI chat-completions API on 127.0.0.1; litellm reaches
it as ``openai/<name>`` with ``api_base``. Nothing leaves the machine. Costs are checked
against litellm's own price table, read independently in the test.

Why one file: one mutator against one local server; the tests share its scripted replies.
"""

from __future__ import annotations

import importlib.util
import math
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from discover.mutators.bandit import ModelBandit  # noqa: E402
from discover.mutators.base import MutationContext, Parent  # noqa: E402
from discover.mutators.llm import (BudgetExhausted, LLMConfig, LLMConfigError, LLMMutator,  # noqa: E402
                                   LLMUnavailable, MutatorStopped, check_model_access, edit_outcomes,
                                   parse_models)
from discover.mutators.reflection import EditOutcome, edit_statistics, statistical_reflection  # noqa: E402
from discover.program import split_evolve_block  # noqa: E402
from discover.space import Space  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from llm_server import FakeLLMServer, Reply  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SEED = (ROOT / "seeds" / "cfr_variants" / "cfr_plus.py").read_text()
CFR = (ROOT / "seeds" / "cfr_variants" / "cfr.py").read_text()
REGRET_LINE = "    return xp.maximum(cum_regret + inst_regret, 0.0), state\n"
DISCOUNTED = "    return xp.maximum(0.9 * cum_regret + inst_regret, 0.0), state\n"
needs_litellm = pytest.mark.skipif(importlib.util.find_spec("litellm") is None,
                                   reason="litellm is not installed: pip install -e '.[llm]'")
PRICED = "openai/gpt-4o-mini"  # in litellm's price table; served locally through api_base


class CfrSpace(Space):
    name = "cfr_variants"
    doc = (ROOT / "docs" / "cfr_candidate_api.md").read_text()
    required_functions = ("init_state", "update_regret", "derive_policy", "update_average")


SPACE = CfrSpace()
PARENT = Parent(id=7, source=SEED, score=0.3125,
                metrics={"leduc_poker": {"score": 0.3125, "final_exploitability": 2.571516e-4},
                         "kuhn_poker(players=3)": {"score": 0.5, "final_exploitability": 1.07e-5}})
INSPIRATIONS = (
    Parent(id=3, source=CFR, score=0.1875, metrics={"leduc_poker": {"score": 0.1875}}),
    Parent(id=11, source=SEED.replace("t * reach", "t * t * reach"), score=0.4375,
           metrics={"leduc_poker": {"score": 0.4375}}),
    Parent(id=12, source=SEED.replace("0.0)", "1e-9)"), score=0.25, metrics={}),
)
REFLECTIONS = ("- Discounting old regret helped on Leduc.", "- Quadratic averaging broke nothing.")


def context(parent: Parent = PARENT, seed: int = 1) -> MutationContext:
    return MutationContext(space=SPACE, parent=parent, inspirations=INSPIRATIONS, reflections=REFLECTIONS,
                           generation=2, rng_seed=seed)


def sr(search: str, replace: str) -> str:
    return f"IDEA: discount the old regret\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"


GOOD = sr(REGRET_LINE, DISCOUNTED)
BAD = sr("    return xp.maximum(cum_regret - inst_regret, 0.0), state\n", DISCOUNTED)


def mutator(server: FakeLLMServer, models=(PRICED,), **kw) -> LLMMutator:
    kw.setdefault("backoff_s", 0.01)
    kw.setdefault("backoff_max_s", 0.05)
    kw.setdefault("timeout_s", 10.0)
    return LLMMutator(LLMConfig(models=tuple(models), api_base=server.url, api_key="test", **kw), seed=0)


def user_prompt(server: FakeLLMServer, i: int = 0) -> str:
    return "\n".join(m["content"] for m in server.requests[i]["messages"] if m["role"] == "user")


# ---------------------------------------------------------------------------- proposals
@needs_litellm
def test_search_replace_answer_becomes_a_proposal_inside_the_block():
    with FakeLLMServer([Reply(GOOD, prompt_tokens=1200, completion_tokens=80)]) as server:
        m = mutator(server)
        props = m.propose(context(), 1)
    assert len(props) == 1
    p = props[0]
    assert p.source == SEED.replace(REGRET_LINE, DISCOUNTED)
    assert split_evolve_block(p.source)[0] == split_evolve_block(SEED)[0]
    assert split_evolve_block(p.source)[2] == split_evolve_block(SEED)[2]
    assert (p.parents, p.kind, p.edit) == ((7,), "llm_diff", "discount the old regret")
    assert p.meta["model"] == PRICED and p.meta["attempts"] == 1 and p.meta["parent_score"] == 0.3125
    assert p.meta["inspirations"] == (3, 11, 12)
    [call] = m.drain_calls()
    assert m.drain_calls() == []
    assert (call.status, call.purpose, call.parent_id, call.key) == ("ok", "mutate", 7, p.meta["call_key"])
    assert (call.prompt_tokens, call.completion_tokens, call.response) == (1200, 80, GOOD)
    assert call.error is None and call.latency_s > 0
    assert server.requests[0]["model"] == "gpt-4o-mini"


@needs_litellm
def test_prompt_holds_contract_parent_results_inspirations_and_reflections():
    with FakeLLMServer([Reply(GOOD)]) as server:
        mutator(server).propose(context(), 1)
        prompt = user_prompt(server)
    assert SEED.strip() in prompt                                   # the parent's whole code
    assert "score 0.3125" in prompt                                 # its score
    assert "leduc_poker: score=0.3125, final_exploitability=0.0002572" in prompt  # per-task results
    assert "kuhn_poker(players=3): score=0.5, final_exploitability=1.07e-05" in prompt
    for insp in INSPIRATIONS:                                       # inspirations: code and score
        assert split_evolve_block(insp.source)[1].strip() in prompt
        assert f"(id {insp.id}, score {insp.score:.4g})" in prompt
    for note in REFLECTIONS:
        assert note in prompt
    assert "def update_regret(cum_regret, inst_regret, t, state, xp)" in prompt  # signatures
    assert "xp.maximum" in prompt and "Order in iteration t" in prompt           # the space's doc
    assert "<<<<<<< SEARCH" in prompt and ">>>>>>> REPLACE" in prompt and "```python" in prompt


@needs_litellm
def test_full_rewrite_replaces_the_block():
    block = split_evolve_block(SEED)[1].replace("t * reach", "t ** 2 * reach")
    with FakeLLMServer([Reply("IDEA: quadratic weights\n```python\n" + block + "```")]) as server:
        [p] = mutator(server).propose(context(), 1)
    assert p.source == SEED.replace("t * reach", "t ** 2 * reach")
    assert p.kind == "llm_rewrite"


@needs_litellm
def test_diff_that_does_not_apply_is_repaired():
    with FakeLLMServer([Reply(BAD), Reply(GOOD)]) as server:
        m = mutator(server)
        [p] = m.propose(context(), 1)
        repair = server.requests[1]["messages"]
    assert p.source == SEED.replace(REGRET_LINE, DISCOUNTED) and p.meta["attempts"] == 2
    bad, good = m.drain_calls()
    assert (bad.status, bad.purpose, good.status, good.purpose) == ("invalid_diff", "mutate", "ok", "repair")
    assert "does not match the evolve block" in bad.error
    assert bad.key == good.key == p.meta["call_key"]
    # The model saw its own answer and the error.
    assert repair[-2] == {"role": "assistant", "content": BAD}
    assert bad.error in repair[-1]["content"]


@needs_litellm
def test_repairs_are_bounded():
    with FakeLLMServer([Reply(BAD)] * 3) as server:
        m = mutator(server, max_repair=2)
        assert m.propose(context(), 1) == []
        assert len(server.requests) == 3
    assert [c.status for c in m.drain_calls()] == ["invalid_diff"] * 3


@needs_litellm
def test_prose_without_code_is_recorded_and_skipped():
    with FakeLLMServer([Reply("Discounting regrets tends to help."), Reply(GOOD)]) as server:
        m = mutator(server)
        props = m.propose(context(), 2)
    assert len(props) == 1 and len(server.requests) == 2           # no repair for prose
    malformed, ok = m.drain_calls()
    assert (malformed.status, ok.status) == ("malformed", "ok")
    assert malformed.response == "Discounting regrets tends to help."


# ---------------------------------------------------------------------------- cost and budget
def litellm_price(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    import litellm

    entry = litellm.model_cost[model]
    return prompt_tokens * entry["input_cost_per_token"] + completion_tokens * entry["output_cost_per_token"]


@needs_litellm
def test_cost_follows_litellm_price_table_and_local_models_are_free():
    with FakeLLMServer([Reply(GOOD, prompt_tokens=1234, completion_tokens=567),
                        Reply(GOOD, prompt_tokens=1234, completion_tokens=567)]) as server:
        priced = mutator(server)
        [p] = priced.propose(context(), 1)
        local = mutator(server, models=("openai/my-local-coder",))
        local.propose(context(), 1)
    expected = litellm_price("gpt-4o-mini", 1234, 567)
    assert expected > 0
    [call] = priced.drain_calls()
    assert call.cost_usd == pytest.approx(expected, rel=1e-12)
    assert priced.total_cost == pytest.approx(expected, rel=1e-12) == p.meta["cost_usd"]
    assert local.drain_calls()[0].cost_usd == 0.0 and local.total_cost == 0.0


@needs_litellm
def test_max_cost_stops_calls_at_the_limit():
    tokens = dict(prompt_tokens=10_000, completion_tokens=1_000)
    one = litellm_price("gpt-4o-mini", **tokens)
    with FakeLLMServer([Reply(GOOD, **tokens)] * 5) as server:
        m = mutator(server, max_cost=1.5 * one)
        props = m.propose(context(), 5)       # the 2nd call crosses the limit: no 3rd
        assert len(props) == 2 and len(server.requests) == 2
        with pytest.raises(BudgetExhausted, match="budget is spent"):
            m.propose(context(), 1)
        assert len(server.requests) == 2
    assert m.total_cost == pytest.approx(2 * one) and m.budget_left == 0.0


# ---------------------------------------------------------------------------- robustness
@needs_litellm
def test_rate_limit_is_retried_with_backoff():
    with FakeLLMServer([Reply(status=429), Reply(status=503), Reply(GOOD)]) as server:
        m = mutator(server, backoff_s=0.05, backoff_max_s=1.0)
        [p] = m.propose(context(), 1)
        gaps = [b - a for a, b in zip(server.request_times, server.request_times[1:])]
    assert p.source == SEED.replace(REGRET_LINE, DISCOUNTED)
    assert [c.status for c in m.drain_calls()] == ["rate_limited", "server_error", "ok"]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1                       # 0.05 · 2^attempt


@needs_litellm
def test_retries_are_bounded():
    with FakeLLMServer([Reply(status=429)] * 2) as server:
        m = mutator(server, max_retries=1)
        assert m.propose(context(), 1) == []
        assert len(server.requests) == 2
    assert [c.status for c in m.drain_calls()] == ["rate_limited", "rate_limited"]


@needs_litellm
def test_timeout_is_recorded_and_propose_returns_nothing():
    with FakeLLMServer([Reply(GOOD, delay_s=30.0)]) as server:
        m = mutator(server, timeout_s=0.5)
        start = time.monotonic()
        assert m.propose(context(), 1) == []
        elapsed = time.monotonic() - start
        assert len(server.requests) == 1                            # timeouts are not retried
    assert elapsed < 5.0
    [call] = m.drain_calls()
    assert call.status == "timeout" and "timed out" in call.error.lower() and call.response is None


@needs_litellm
def test_a_server_that_never_answers_stops_the_mutator():
    with FakeLLMServer([Reply(status=500), Reply(GOOD), Reply(status=500), Reply(status=500),
                        Reply(status=500), Reply(GOOD)]) as server:
        m = mutator(server, max_retries=0, max_consecutive_failures=3)
        assert len(m.propose(context(), 5)) == 1    # 500, ok (resets the count), 500, 500, 500 → stop
        assert len(server.requests) == 5
        with pytest.raises(LLMUnavailable, match="no answer in the last 3 calls; last error: openai/gpt-4o-mini: InternalServerError"):
            m.propose(context(), 1)
        assert len(server.requests) == 5
    assert issubclass(LLMUnavailable, MutatorStopped) and issubclass(BudgetExhausted, MutatorStopped)


@needs_litellm
def test_rejected_key_is_a_config_error():
    with FakeLLMServer([Reply(status=401)]) as server:
        with pytest.raises(LLMConfigError, match="rejected the API key"):
            mutator(server).propose(context(), 1)


@needs_litellm
def test_propose_is_thread_safe():
    replies = [Reply(GOOD, prompt_tokens=100 + i, completion_tokens=10) for i in range(6)]
    with FakeLLMServer(replies) as server:
        m = mutator(server)
        results: list = []
        errors: list = []

        def work(seed):
            try:
                results.extend(m.propose(context(seed=seed), 2))
            except Exception as exc:  # surfaced by the assertion below
                errors.append(repr(exc))

        threads = [threading.Thread(target=work, args=(s,)) for s in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    calls = m.drain_calls()
    assert not errors
    assert len(results) == 6 and len(calls) == 6, [(c.status, c.error) for c in calls]
    assert len({p.meta["call_key"] for p in results}) == 6
    expected = sum(litellm_price("gpt-4o-mini", 100 + i, 10) for i in range(6))
    assert m.total_cost == pytest.approx(expected, rel=1e-9)


# ---------------------------------------------------------------------------- configuration
@needs_litellm
def test_check_model_access(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(LLMConfigError) as info:
        check_model_access(["openai/gpt-4o-mini"])
    assert str(info.value) == "OPENAI_API_KEY is not set (needed for openai/gpt-4o-mini)"
    with pytest.raises(LLMConfigError, match=r"^ANTHROPIC_API_KEY is not set \(needed for anthropic/claude-3-5-sonnet-20240620\)$"):
        check_model_access("ollama/qwen2.5-coder,anthropic/claude-3-5-sonnet-20240620")
    for var in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(LLMConfigError, match=r"^GEMINI_API_KEY \(or GOOGLE_API_KEY\) is not set"):
        check_model_access("gemini/gemini-1.5-pro")
    with pytest.raises(LLMConfigError, match="^AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set"):
        check_model_access("bedrock/anthropic.claude-3-sonnet")
    with pytest.raises(LLMConfigError, match="unknown model 'qwen-coder'"):
        check_model_access("qwen-coder")
    check_model_access(["ollama/qwen2.5-coder", "hosted_vllm/Qwen/Qwen2.5-Coder-7B"])  # local: no key
    check_model_access(["openai/gpt-4o-mini"], api_base="http://127.0.0.1:8000/v1")   # own server
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    check_model_access("openai/gpt-4o-mini")


def test_config_validation_and_model_lists():
    assert parse_models(" a/x, b/y ,a/x,") == ("a/x", "b/y")
    assert LLMConfig(models="a/x,b/y").models == ("a/x", "b/y")
    with pytest.raises(ValueError, match="max_cost"):
        LLMConfig(models=("a/x",), max_cost=0)
    with pytest.raises(ValueError, match="no model"):
        parse_models(" , ")


def test_importing_the_mutator_does_not_import_litellm():
    code = "import sys, discover.mutators.llm; print('litellm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


# ---------------------------------------------------------------------------- ensembles
def test_bandit_tries_every_model_then_prefers_improvement_per_dollar():
    b = ModelBandit(["dear", "cheap", "useless"], exploration=0.1, cost_floor_usd=1e-4)
    rng = random.Random(0)
    first = [b.choose(rng) for _ in range(3)]
    assert sorted(first) == ["cheap", "dear", "useless"]
    for model, cost, gain in [("dear", 0.01, 0.2), ("cheap", 0.0001, 0.1), ("useless", 0.0, 0.0)]:
        b.record_call(model, cost, 100, 10, ok=True)
        b.record_outcome(model, 0.5, 0.5 + gain)
    # cheap: 0.1 / (1e-4 + 1e-4) = 500 per dollar; dear: 0.2 / (0.01 + 1e-4) ≈ 19.8.
    picks = [b.choose(rng) for _ in range(20)]
    assert picks.count("cheap") >= 15
    s = b.stats()
    assert s["cheap"]["improvement_per_usd"] == pytest.approx(0.1 / 2e-4)
    assert s["dear"]["improvement_per_usd"] == pytest.approx(0.2 / 0.0101)
    assert (s["useless"]["valid_rate"], s["useless"]["improvements"]) == (1.0, 0)


def test_bandit_choices_are_deterministic_given_the_seed():
    def run(seed):
        b = ModelBandit(["a", "b", "c"])
        rng = random.Random(seed)
        out = []
        for i in range(30):
            m = b.choose(rng)
            b.record_outcome(m, 0.0, 0.01 * (i % 3) if m == "b" else None)
            out.append(m)
        return out
    assert run(3) == run(3)
    assert len({tuple(run(s)) for s in range(8)}) > 1


@needs_litellm
def test_ensemble_calls_the_chosen_model_and_keeps_statistics():
    with FakeLLMServer([Reply(GOOD, prompt_tokens=1000, completion_tokens=100)] * 4) as server:
        m = mutator(server, models=(PRICED, "openai/local-coder"))
        props = [p for s in range(4) for p in m.propose(context(seed=s), 1)]
        served = [r["model"] for r in server.requests]
    assert [p.meta["model"].split("/")[1] for p in props] == served
    assert set(served) == {"gpt-4o-mini", "local-coder"}             # both tried first
    for p, score in zip(props, [0.5, None, 0.3, 0.4]):
        m.record_outcome(p, score)
    stats = m.model_stats()
    assert sum(s["calls"] for s in stats.values()) == 4
    assert sum(s["cost_usd"] for s in stats.values()) == pytest.approx(m.total_cost)
    priced_calls = served.count("gpt-4o-mini")
    assert stats[PRICED]["cost_usd"] == pytest.approx(priced_calls * litellm_price("gpt-4o-mini", 1000, 100))
    assert stats["openai/local-coder"]["cost_usd"] == 0.0
    assert sum(s["outcomes"] for s in stats.values()) == 4
    assert sum(s["improvements"] for s in stats.values()) == 2       # 0.5 and 0.4 beat 0.3125


# ---------------------------------------------------------------------------- reflections
@needs_litellm
def test_reflect_shows_best_and_worst_and_returns_the_note():
    batch = [(Parent(id=20 + i, source=SEED.replace("0.0)", f"{i}.0)"), score=s, metrics={"leduc_poker": {"score": s}}), s)
             for i, s in enumerate([0.9, 0.1, 0.5, -math.inf, 0.7])]
    with FakeLLMServer([Reply("- Discounting helps.\n- Large floors break programs."),
                        Reply("- Long-term: discount.")]) as server:
        m = mutator(server)
        note = m.reflect(batch, space_name="cfr_variants")
        summary = m.summarize([note, "- Averaging by t^2 was neutral."])
        reflection_prompt, summary_prompt = user_prompt(server, 0), user_prompt(server, 1)
    assert note == "- Discounting helps.\n- Large floors break programs."
    assert summary == "- Long-term: discount."
    best, worst = reflection_prompt.index("## Best"), reflection_prompt.index("## Worst")
    assert best < reflection_prompt.index("Program 20: score 0.9") < reflection_prompt.index("Program 24: score 0.7") < worst
    assert reflection_prompt.index("Program 23: score failed") > worst
    assert "Program 22" not in reflection_prompt                     # the middle is left out
    assert note in summary_prompt and "Averaging by t^2 was neutral." in summary_prompt
    assert [c.purpose for c in m.drain_calls()] == ["reflect", "summarize"]


def test_statistical_reflection_counts_improvements_per_kind():
    records = [EditOutcome("splice", 0.5, 0.7), EditOutcome("splice", 0.5, 0.4), EditOutcome("splice", 0.5, None),
               EditOutcome("perturb", 0.2, 0.25), EditOutcome("perturb", 0.2, 0.3),
               EditOutcome("swap", 0.3, -math.inf)]
    stats = {s.kind: s for s in edit_statistics(records)}
    assert (stats["splice"].count, stats["splice"].valid, stats["splice"].improved) == (3, 2, 1)
    assert stats["splice"].mean_improvement == pytest.approx((0.2 - 0.1) / 2)
    assert stats["perturb"].mean_improvement == pytest.approx(0.075)
    assert stats["perturb"].share_improved == 1.0 and math.isnan(stats["swap"].mean_improvement)
    text = statistical_reflection(records)
    lines = text.splitlines()
    assert lines[1] == "- perturb: 2 tried, 2 valid, mean change vs parent +0.075, improved 2/2 (100%)"
    assert lines[2] == "- splice: 3 tried, 2 valid, mean change vs parent +0.05, improved 1/3 (33%)"
    assert lines[3] == "- swap: 1 tried, 0 valid, mean change vs parent n/a, improved 0/1 (0%)"
    assert "Never improved: swap." in text
    assert statistical_reflection([]) == ""


@needs_litellm
def test_edit_outcomes_from_proposals():
    with FakeLLMServer([Reply(GOOD)]) as server:
        [p] = mutator(server).propose(context(), 1)
    assert edit_outcomes([(p, 0.4)]) == [EditOutcome("llm_diff", 0.3125, 0.4)]
