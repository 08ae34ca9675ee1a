"""The lineage views and their commands: `discover runs | show | lineage | diff | plot`.

The store is filled, through its public API, with a small real run of the cfr_variants
space: seeds and programs edited from them (with parent, inspiration and crossover edges),
each evaluated for real by the space's evaluator (20 CFR iterations, NumPy engine) on two
small training games. Expected values are computed in the tests from those results
(running maxima, score differences, difflib-free line checks), never read back from the
views under test.

``small_run`` and ``cli_main`` are shared with test_web.py and test_export.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import struct
from pathlib import Path

import pytest

from discover.space import TaskResult
from discover.store import Store

ITERATIONS = 20
TASKS = ("kuhn_poker(players=3)",
         "turn_based_simultaneous_game(game=goofspiel(imp_info=True,num_cards=4,points_order=descending))")
HELD_OUT_TASK = "kuhn_poker(players=4)"
DOCS = Path(__file__).resolve().parents[1] / "docs"

# Edits of the seeds, as (old text, new text): each must occur in the source it edits.
QUADRATIC_AVERAGE = ("return cum_policy + t * reach[:, None] * policy, state",
                     "return cum_policy + t ** 2 * reach[:, None] * policy, state")
PREDICTIVE = ("positive = xp.maximum(cum_regret, 0.0) * legal",
              "positive = xp.maximum(cum_regret + inst_regret, 0.0) * legal")
NEGATIVE_POLICY = ("return xp.where(total > 0.0, positive / safe_total, uniform), state",
                   "return -xp.where(total > 0.0, positive / safe_total, uniform), state")
PLAIN_REGRETS = ("return xp.maximum(cum_regret + inst_regret, 0.0), state",
                 "return cum_regret + inst_regret, state")


def edited(source: str, *edits: tuple[str, str]) -> str:
    for old, new in edits:
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    return source


@dataclasses.dataclass
class SmallRun:
    """The ids and the expected values of the small run (computed here, not by the views)."""

    url: str
    run_id: int
    run_name: str
    ids: dict[str, int]
    sources: dict[str, str]
    scores: dict[str, float | None]
    results: dict[str, dict[str, TaskResult]]
    order: list[str]
    empty_run: str
    cost: float


def _evaluate(space, source: str, task: str) -> TaskResult:
    return space.evaluate(source, task, iterations=ITERATIONS, backend="numpy")


def build_small_run(url: str) -> SmallRun:
    """A finished run of 6 programs (2 seeds, 3 mutants, 1 invalid) and an empty run."""
    from discover.config import RunConfig
    from discover.engine.runner import library_versions
    from search_spaces.cfr_variants import SPACE

    store = Store.open(url)
    config = RunConfig(space="cfr_variants", budget=8, workers=1, seeds=("cfr", "cfr_plus"),
                       eval_options={"iterations": ITERATIONS})
    run = store.create_run("small", "cfr_variants", config=config.to_json(), seed=0, budget=8,
                           mutator="offline", versions=library_versions())
    seeds = SPACE.seeds()
    sources = {"cfr": seeds["cfr"], "cfr_plus": seeds["cfr_plus"]}
    sources["quadratic"] = edited(sources["cfr_plus"], QUADRATIC_AVERAGE)
    sources["predictive"] = edited(sources["quadratic"], PREDICTIVE)
    sources["broken"] = edited(sources["cfr_plus"], NEGATIVE_POLICY)
    sources["crossed"] = edited(sources["predictive"], PLAIN_REGRETS)
    plan = [  # name, generation, edit, parents (names), roles
        ("cfr", 0, "seed: cfr", [], None),
        ("cfr_plus", 0, "seed: cfr_plus", [], None),
        ("quadratic", 1, "update_average: weight t -> t ** 2", ["cfr_plus"], None),
        ("broken", 1, "derive_policy: negate the policy", ["cfr_plus"], None),
        ("predictive", 2, "derive_policy: predictive regret matching", ["quadratic", "cfr"], ["parent", "inspiration"]),
        ("crossed", 3, "crossover: regrets of cfr, the rest of predictive", ["predictive", "cfr"],
         ["crossover", "crossover"]),
    ]
    ids: dict[str, int] = {}
    scores: dict[str, float | None] = {}
    results: dict[str, dict[str, TaskResult]] = {}
    for name, gen, edit, parents, roles in plan:
        p = store.add_program(run.id, sources[name], generation=gen, edit=edit,
                              parents=[ids[q] for q in parents], roles=roles,
                              mutator="seed" if gen == 0 else "offline")
        ids[name] = p.id
        results[name] = {t: _evaluate(SPACE, sources[name], t) for t in TASKS}
        for t, r in results[name].items():
            store.record_evaluation(p.id, t, 0, "train", r, device="cpu")
        s = SPACE.score(list(results[name].values()))
        scores[name] = s if math.isfinite(s) else None
        store.set_program_status(p.id, "evaluated" if scores[name] is not None else "invalid", score=scores[name])
    best = max((n for n in scores if scores[n] is not None), key=lambda n: scores[n])
    held = _evaluate(SPACE, sources[best], HELD_OUT_TASK)
    store.record_evaluation(ids[best], HELD_OUT_TASK, 0, "held_out", held, device="cpu")
    store.set_held_out_score(ids[best], held.metrics["score"])
    store.record_llm_call(run.id, "test-model", "improve derive_policy", "<<<<<<< SEARCH ...", prompt_tokens=1200,
                          completion_tokens=300, cost_usd=0.0123, latency_s=2.5, program_id=ids["predictive"])
    store.set_run_status(run.id, "finished")
    empty = store.create_run("empty", "cfr_variants", config={}, seed=0, budget=4, mutator="offline", versions={})
    store.close()
    return SmallRun(url=url, run_id=run.id, run_name=run.name, ids=ids, sources=sources, scores=scores,
                    results=results, order=[n for n, *_ in plan], empty_run=empty.name, cost=0.0123)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> SmallRun:
    path = tmp_path_factory.mktemp("lineage") / "discover.db"
    return build_small_run(f"sqlite:///{path}")


# ----------------------------------------------------------------------------- CLI in-process
from discover import cli as _cli  # noqa: E402

_BUILD_PARSER = _cli.build_parser


def _wired_parser():
    """discover.cli.build_parser, with the lineage commands added if cli.py does not yet."""
    from discover.cli import lineage as cli_lineage

    parser = _BUILD_PARSER()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "runs" in sub.choices:
        return parser

    def command(name, help, example):
        return sub.add_parser(name, help=help, description=help, epilog=f"example:\n  {example}",
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    cli_lineage.register(sub, command)
    return parser


@pytest.fixture
def cli_main(monkeypatch, capsys):
    """Runs ``discover.cli.main(argv)`` in-process; returns (exit code, stdout, stderr)."""
    from discover import cli

    monkeypatch.setattr(cli, "build_parser", _wired_parser)

    def run(*argv: str):
        code = cli.main(list(argv))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def one_error_line(code: int, err: str) -> str:
    assert code != 0
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("discover: error: ")
    return lines[0]


# ----------------------------------------------------------------------------- views
def test_runs_summary_counts_budget_best_and_cost(small_run, cli_main):
    code, out, _ = cli_main("runs", "--db", small_run.url, "--json")
    assert code == 0
    runs = {r["name"]: r for r in json.loads(out)}
    r = runs["small"]
    valid = {n: s for n, s in small_run.scores.items() if s is not None}
    best = max(valid, key=valid.get)
    assert (r["evaluated"], r["valid"], r["invalid"], r["budget"]) == (6, len(valid), 6 - len(valid), 8)
    assert r["best_id"] == small_run.ids[best]
    assert r["best_score"] == pytest.approx(valid[best], abs=1e-12)
    assert r["cost_usd"] == pytest.approx(small_run.cost)
    assert (r["space"], r["mutator"], r["status"]) == ("cfr_variants", "offline", "finished")
    assert runs["empty"]["evaluated"] == 0 and runs["empty"]["best_score"] is None
    code, out, _ = cli_main("runs", "--db", small_run.url)
    assert code == 0 and "small" in out and "6 / 8" in out and "$0.01" in out


def test_the_broken_program_is_invalid_for_real(small_run):
    # derive_policy returned negative probabilities: the evaluator itself says so.
    r = small_run.results["broken"][TASKS[0]]
    assert r.status == "invalid" and "negative" in r.error
    assert small_run.scores["broken"] is None


def test_progress_is_the_running_maximum(small_run):
    from discover.ui import views

    store = Store.open(small_run.url)
    points = views.progress(store, views.resolve_run(store, small_run.run_name))
    expected, best = [], None
    for name in small_run.order:
        s = small_run.scores[name]
        if s is not None:
            best = s if best is None else max(best, s)
        expected.append(best)
    assert [p["n"] for p in points] == list(range(1, 7))
    assert [p["program"] for p in points] == [small_run.ids[n] for n in small_run.order]
    assert [p["best"] for p in points] == pytest.approx(expected, abs=1e-12)


def test_show_json_has_source_diff_curves_and_llm_call(small_run, cli_main):
    pid = small_run.ids["predictive"]
    code, out, _ = cli_main("show", str(pid), "--db", small_run.url, "--json")
    assert code == 0
    view = json.loads(out)
    assert view["source"] == small_run.sources["predictive"]
    assert view["parent"] == small_run.ids["quadratic"]
    assert [(p["id"], p["role"]) for p in view["parents"]] == [(small_run.ids["quadratic"], "parent"),
                                                               (small_run.ids["cfr"], "inspiration")]
    assert view["gain"] == pytest.approx(small_run.scores["predictive"] - small_run.scores["quadratic"], abs=1e-12)
    changed = [line for line in view["diff"].splitlines()
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert changed == ["-    " + PREDICTIVE[0], "+    " + PREDICTIVE[1]]
    train = {e["task"]: e for e in view["evaluations"] if e["split"] == "train"}
    for task in TASKS:
        expected = small_run.results["predictive"][task]
        assert [tuple(p) for p in train[task]["curve"]] == [tuple(p) for p in expected.curve]
        assert train[task]["metrics"]["score"] == pytest.approx(expected.metrics["score"], abs=1e-15)
    assert [c["model"] for c in view["llm_calls"]] == ["test-model"]


def test_show_prints_source_diff_and_curve_table(small_run, cli_main):
    code, out, _ = cli_main("show", str(small_run.ids["quadratic"]), "--diff", "--db", small_run.url)
    assert code == 0
    assert "def update_average" in out                        # the source
    assert "t ** 2 * reach" in out and "diff against parent" in out
    assert "kuhn_poker(players=3)" in out and "20: " in out   # the curve's last point
    assert any(ch in out for ch in "▁▂▃▄▅▆▇█")                  # its sparkline


def test_lineage_up_follows_parents_and_crossovers_with_gains(small_run, cli_main):
    ids, scores = small_run.ids, small_run.scores
    code, out, _ = cli_main("lineage", str(ids["crossed"]), "--db", small_run.url, "--json")
    assert code == 0
    tree = json.loads(out)
    assert tree["id"] == ids["crossed"]
    assert [(c["id"], c["role"]) for c in tree["children"]] == [(ids["predictive"], "crossover"),
                                                                (ids["cfr"], "crossover")]
    pred = tree["children"][0]
    # The inspiration edge (cfr) is not lineage: predictive descends from quadratic only.
    assert [c["id"] for c in pred["children"]] == [ids["quadratic"]]
    quad = pred["children"][0]
    assert [c["id"] for c in quad["children"]] == [ids["cfr_plus"]]
    assert tree["gain"] == pytest.approx(scores["crossed"] - scores["predictive"], abs=1e-12)
    assert pred["gain"] == pytest.approx(scores["predictive"] - scores["quadratic"], abs=1e-12)
    assert quad["gain"] == pytest.approx(scores["quadratic"] - scores["cfr_plus"], abs=1e-12)
    assert quad["children"][0]["gain"] is None                  # a seed
    code, out, _ = cli_main("lineage", str(ids["crossed"]), "--db", small_run.url)
    assert code == 0 and "[crossover]" in out and "seed: cfr_plus" in out


def test_lineage_down_lists_descendants(small_run, cli_main):
    ids, scores = small_run.ids, small_run.scores
    code, out, _ = cli_main("lineage", str(ids["cfr_plus"]), "--down", "--db", small_run.url, "--json")
    assert code == 0
    tree = json.loads(out)
    assert sorted(c["id"] for c in tree["children"]) == sorted([ids["quadratic"], ids["broken"]])
    quad = next(c for c in tree["children"] if c["id"] == ids["quadratic"])
    assert [c["id"] for c in quad["children"]] == [ids["predictive"]]
    assert [c["id"] for c in quad["children"][0]["children"]] == [ids["crossed"]]
    assert quad["gain"] == pytest.approx(scores["quadratic"] - scores["cfr_plus"], abs=1e-12)
    broken = next(c for c in tree["children"] if c["id"] == ids["broken"])
    assert broken["status"] == "invalid" and broken["gain"] is None


def test_diff_of_two_programs(small_run, cli_main):
    a, b = small_run.ids["cfr_plus"], small_run.ids["predictive"]
    code, out, _ = cli_main("diff", str(a), str(b), "--db", small_run.url, "--json")
    assert code == 0
    d = json.loads(out)
    changed = sorted(line for line in d["diff"].splitlines()
                     if line[:1] in "+-" and not line.startswith(("+++", "---")))
    assert changed == sorted(["-    " + QUADRATIC_AVERAGE[0], "+    " + QUADRATIC_AVERAGE[1],
                              "-    " + PREDICTIVE[0], "+    " + PREDICTIVE[1]])
    code, out, _ = cli_main("diff", str(a), str(a), "--db", small_run.url)
    assert code == 0 and "same source" in out


def test_sparkline():
    from discover.ui.views import sparkline

    assert sparkline([1.0, 10.0, 100.0]) == "▁▅█"          # log scale: evenly spaced decades
    assert sparkline([0.0, 0.5, 1.0], log=False) == "▁▅█"
    assert sparkline([3.0, 3.0]) == "▁▁"
    assert sparkline([1.0, float("nan"), 100.0]) == "▁ █"


# ----------------------------------------------------------------------------- plot
def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_plot_writes_a_png_of_progress_and_curves(small_run, cli_main, tmp_path):
    out = tmp_path / "plots" / "small.png"
    code, stdout, _ = cli_main("plot", small_run.run_name, "--out", str(out), "--db", small_run.url, "--json")
    assert code == 0
    width, height = _png_size(out)
    assert width > 400 and height > 300
    data = json.loads(stdout)
    assert {t["task"] for t in data["tasks"]} == set(TASKS) | {HELD_OUT_TASK}
    kuhn = next(t for t in data["tasks"] if t["task"] == TASKS[0])
    ids = small_run.ids
    seeds = {s["program"] for s in kuhn["series"] if s["seed"]}
    assert seeds == {ids["cfr"], ids["cfr_plus"]}
    valid = sorted((n for n in small_run.scores if small_run.scores[n] is not None and n not in ("cfr", "cfr_plus")),
                   key=lambda n: -small_run.scores[n])
    assert [s["program"] for s in kuhn["series"] if not s["seed"]] == [ids[n] for n in valid[:3]]
    assert data["metric"] == "exploitability"


def test_plot_needs_a_png_and_a_run_with_programs(small_run, cli_main, tmp_path):
    line = one_error_line(*cli_main("plot", small_run.empty_run, "--out", str(tmp_path / "x.png"),
                                    "--db", small_run.url)[::2])
    assert "has no programs yet" in line
    line = one_error_line(*cli_main("plot", "nope", "--out", str(tmp_path / "x.png"), "--db", small_run.url)[::2])
    assert "no run named or numbered 'nope'" in line
    line = one_error_line(*cli_main("plot", small_run.run_name, "--out", str(tmp_path / "x.pdf"),
                                    "--db", small_run.url)[::2])
    assert ".png" in line


# ----------------------------------------------------------------------------- errors, help, docs
@pytest.mark.parametrize("argv", [("show", "999"), ("lineage", "999"), ("lineage", "999", "--down"),
                                  ("diff", "1", "999"), ("show", "abc")])
def test_unknown_program_is_one_clear_line(small_run, cli_main, argv):
    line = one_error_line(*cli_main(*argv, "--db", small_run.url)[::2])
    assert "program id" in line or "no program with id 999" in line


def test_ui_on_a_port_in_use_is_one_clear_error(small_run, cli_main):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_error_line(*cli_main("ui", "--port", str(port), "--db", small_run.url)[::2])
    assert f"cannot listen on 127.0.0.1:{port}" in line


def _commands() -> list[str]:
    parser = _wired_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(sub.choices)


@pytest.mark.parametrize("command", ["runs", "show", "lineage", "diff", "plot", "ui", "export"])
def test_every_lineage_command_has_help_with_an_example(cli_main, command):
    with pytest.raises(SystemExit) as e:
        cli_main(command, "--help")
    assert e.value.code == 0


def test_help_texts_carry_examples(capsys):
    parser = _wired_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        text = p.format_help()
        assert "example:" in text and f"discover {name}" in text, name


def test_every_command_is_documented():
    text = (DOCS / "commands.md").read_text()
    commands = _commands()
    assert {"run", "spaces", "top", "eval", "runs", "show", "lineage", "diff", "plot", "ui", "export"} <= set(commands)
    for name in commands:
        assert f"## `discover {name}`" in text, f"docs/commands.md does not document `discover {name}`"
