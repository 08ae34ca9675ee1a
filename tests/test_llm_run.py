"""`discover run --llm` end to end against a local server speaking the OpenAI API."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("litellm")

from discover.engine.runner import run_discovery  # noqa: E402
from discover.store import Store  # noqa: E402
from tests.llm_server import FakeLLMServer, Reply  # noqa: E402

FIT = "tests.fit_space:SPACE"


def rewrite(a: float, b: float, c: float) -> Reply:
    return Reply(f"IDEA: parabola with A={a}, B={b}, C={c}\n```python\nA = {a}\nB = {b}\nC = {c}\n\n\n"
                 f"def f(x):\n    return A * x * x + B * x + C\n```\n", prompt_tokens=1000, completion_tokens=200)


def replies(n: int) -> list[Reply]:
    return [rewrite(round(1.0 + 0.03 * i, 3), round(-0.2 - 0.05 * i, 3), round(0.6 - 0.03 * i, 3)) for i in range(n)]


def test_llm_run_records_calls_prompts_reflections_and_programs(tmp_path):
    db = f"sqlite:///{tmp_path / 'llm.db'}"
    with FakeLLMServer(replies(40)) as server:
        run_discovery({"space": FIT, "budget": 8, "workers": 1, "llm": "openai/scripted-model",
                       "api_base": server.url, "seed": 1}, db=db, run_name="llm")
    store = Store.open(db)
    run = store.get_run("llm")
    assert run.status == "finished"
    children = [p for p in store.programs(run.id) if p.generation > 0]
    assert children and all(p.mutator == "llm" and p.model == "openai/scripted-model" for p in children)
    calls = store.llm_calls(run.id)
    assert len(calls) == len(server.requests)
    mutate = [c for c in calls if c.program_id is not None]
    assert {c.program_id for c in mutate} == {p.id for p in children}
    # The prompt holds the parent's code and scores; later prompts hold the reflections.
    first = mutate[0]
    parent = store.program(next(e.parent_id for e in store.parents(first.program_id) if e.role == "parent"))
    assert "def f(x)" in first.prompt and f"{parent.score:.4f}"[:5] in first.prompt
    notes = store.reflections(run.id, kind="short")
    assert notes
    # Proposals overlap with evaluation, so the note of batch 1 reaches the prompts of batch 3.
    assert any(notes[0].text.strip().splitlines()[0][:40] in c.prompt for c in mutate)
    assert all(c.prompt_tokens == 1000 and c.completion_tokens == 200 for c in calls if c.status == "ok")


def test_max_cost_stops_the_run_cleanly_and_spend_matches_the_price_table(tmp_path):
    import litellm
    price = litellm.model_cost["gpt-4o-mini"]
    per_call = 1000 * price["input_cost_per_token"] + 200 * price["output_cost_per_token"]
    db = f"sqlite:///{tmp_path / 'cost.db'}"
    with FakeLLMServer(replies(60)) as server:
        run_discovery({"space": FIT, "budget": 50, "workers": 1, "batch_size": 1, "llm": "openai/gpt-4o-mini",
                       "api_base": server.url, "max_cost": 2.5 * per_call}, db=db, run_name="cost")
    store = Store.open(db)
    run = store.get_run("cost")
    calls = store.llm_calls(run.id)
    spent = store.total_cost(run.id)
    assert spent == pytest.approx(sum(c.cost_usd for c in calls))
    # Every answered call is paid for, whether or not its answer was usable.
    answered = [c for c in calls if c.response is not None]
    assert all((c.prompt_tokens, c.completion_tokens) == (1000, 200) for c in answered)
    assert spent == pytest.approx(per_call * len(answered), rel=1e-9)
    # It stopped at the limit (one call in flight may cross it), well before the budget.
    assert 2.5 * per_call <= spent <= 3.5 * per_call + 1e-12
    assert len([p for p in store.programs(run.id) if p.status != "pending"]) < 50
    assert run.status == "finished"


def test_missing_key_is_one_clear_error_before_the_run(tmp_path, monkeypatch):
    from discover.engine.runner import RunError
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(RunError, match="OPENAI_API_KEY"):
        run_discovery({"space": FIT, "budget": 3, "llm": "openai/gpt-4o-mini"}, db=f"sqlite:///{tmp_path / 'k.db'}")
