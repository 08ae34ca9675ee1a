"""The LPO drift network (evaluators/lpo.py) and `discover meta-train` (discover/studies/meta_train.py).

References are independent of the code under test: PPO's clipped drift written out by
formula here; the space's own drift checks; the space's own evaluation of the published
PPO seed program (the same computation as the network at zero output layer); the store
read back through its public API.
"""

import argparse
import json

import jax
import numpy as np
import pytest

from tests.pg import fresh_schema_url

from discover.checks import static_check
from discover.studies.meta_train import MetaTrainConfig, generation_seed, meta_train
from discover.store import Store
from evaluators import lpo
from search_spaces import policy_objectives
from search_spaces.ppo_objectives import SPACE
from search_spaces.temporal_objectives import SPACE as TEMPORAL_SPACE

TINY_EVAL = dict(total_timesteps=2048, num_seeds=1, eval_episodes=4)
# Two updates of CartPole's 4 × 128 rollout per run: the machinery, not learning.
TINY_META = dict(generations=2, popsize=4, sigma=0.5, learning_rate=0.1, tasks=("CartPole-v1",),
                 total_timesteps=1024, num_seeds=1, seed=3)


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory):
    """One on-disk reference cache for the module, away from the user's runs/."""
    mp = pytest.MonkeyPatch()
    mp.setenv("DISCOVER_CACHE", str(tmp_path_factory.mktemp("discover_cache")))
    yield
    mp.undo()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path_factory):
    """A URL of an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'discover.db'}"
        return
    with fresh_schema_url() as url:
        yield url


@pytest.fixture(scope="module")
def tiny_run(db_url):
    """One tiny meta-train per database, shared by the tests that read it:
    ``(store, result, progress reports)``."""
    store = Store.open(db_url)
    seen = []
    result = meta_train(store, run_name="lpo-tiny", progress=seen.append, **TINY_META)
    yield store, result, seen
    store.close()


def _random_params(seed: int, scale: float, temporal: bool = False) -> np.ndarray:
    return (np.random.default_rng(seed).normal(size=lpo.num_params(temporal)) * scale).astype(np.float32)


def _with_zero_output_layer(flat: np.ndarray) -> np.ndarray:
    p = lpo.unflatten(flat)
    return lpo.flatten(lpo.LPOParams(p.w1, p.b1, np.zeros_like(p.w2), np.zeros_like(p.b2)))


def _rendered_drift(flat, temporal=False):
    source = lpo.render_program(flat, generation=0, temporal=temporal)
    return policy_objectives.load_namespace(source)["drift"]


# ----------------------------------------------------------------------------- the network
@pytest.mark.parametrize("hidden_seed", [0, 1])
def test_zero_output_layer_is_exactly_ppo_clip_on_a_grid(hidden_seed):
    flat = _with_zero_output_layer(_random_params(hidden_seed, 2.0))
    r, a = np.meshgrid(np.linspace(0.05, 5.0, 120, dtype=np.float32), np.linspace(-5, 5, 41, dtype=np.float32))
    r, a = r.ravel(), a.ravel()
    # PPO's clipped surrogate as a drift (Schulman et al. 2017; Lu et al. 2022):
    # min(rA, clip(r)A) = rA − max((r − clip(r, 0.8, 1.2))A, 0), computed in float32 here.
    expected = np.maximum((r - np.clip(r, np.float32(0.8), np.float32(1.2))) * a, np.float32(0.0))
    with jax.enable_x64(False):
        got = np.asarray(jax.jit(_rendered_drift(flat))(r, a))
        direct = np.asarray(jax.jit(lpo.drift_from_params(flat))(r, a))
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(direct, expected)
    # The ES's starting point is this PPO network.
    assert not lpo.unflatten(lpo.initial_params(0)).w2.any()


@pytest.mark.parametrize("seed,scale", [(10, 0.3), (11, 1.0), (12, 3.0)])
def test_random_parameter_vectors_are_valid_drifts(seed, scale):
    flat = _random_params(seed, scale)
    source = lpo.render_program(flat, generation=7, note="random")
    assert static_check(source, SPACE).ok
    policy_objectives.check_drift(SPACE.drift4(policy_objectives.load_namespace(source)))   # raises if invalid


def test_random_temporal_parameter_vector_is_valid_at_every_progress():
    flat = _random_params(20, 1.0, temporal=True)
    source = lpo.render_program(flat, generation=1, temporal=True)
    assert static_check(source, TEMPORAL_SPACE).ok
    policy_objectives.check_drift(TEMPORAL_SPACE.drift4(policy_objectives.load_namespace(source)), TEMPORAL_SPACE.progresses)


def test_render_and_read_back_are_bit_exact_and_compute_drift_from_params():
    flat = _random_params(30, 1.0)
    flat[:6] = [np.float32(1e-45), -0.0, np.float32(3.4028235e38), np.float32(-1.1754944e-38), 0.1, 1 / 3]
    source = lpo.render_program(flat, generation=4, note="openes generation 4")
    back = lpo.params_from_program(source)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back.view(np.uint32), flat.view(np.uint32))
    temporal = _random_params(31, 1.0, temporal=True)
    back_t = lpo.params_from_program(lpo.render_program(temporal, generation=0, temporal=True))
    np.testing.assert_array_equal(back_t.view(np.uint32), temporal.view(np.uint32))
    # The rendered module computes what drift_from_params computes, to the bit.
    flat = _random_params(32, 1.0)
    r, a = policy_objectives.probe_grid()
    with jax.enable_x64(False):
        np.testing.assert_array_equal(np.asarray(jax.jit(_rendered_drift(flat))(r, a)),
                                      np.asarray(jax.jit(lpo.drift_from_params(flat))(r, a)))


def test_bad_programs_and_vectors_are_clear_errors():
    with pytest.raises(ValueError, match="defines no LPO weights"):
        lpo.params_from_program(SPACE.seeds()["ppo_clip"])
    source = lpo.render_program(lpo.initial_params(0), generation=0)
    with pytest.raises(ValueError, match="W2 has shape"):
        lpo.params_from_program(source.replace("W2 = [", "W2 = [[0.0, 0.0],", 1))
    with pytest.raises(ValueError, match=r"has shape \(258,\)"):
        lpo.drift_from_params(np.zeros(10, np.float32))


@pytest.mark.slow
def test_rendered_ppo_network_trains_exactly_like_the_ppo_clip_seed():
    flat = _with_zero_output_layer(_random_params(40, 1.0))
    rendered = SPACE.evaluate(lpo.render_program(flat, generation=0), "CartPole-v1", seed=5, **TINY_EVAL)
    seed = SPACE.evaluate(SPACE.seeds()["ppo_clip"], "CartPole-v1", seed=5, **TINY_EVAL)
    assert rendered.ok and seed.ok
    assert rendered.metrics["mean_return"] == seed.metrics["mean_return"]
    assert rendered.metrics["min_seed_return"] == seed.metrics["min_seed_return"]
    assert rendered.curve == seed.curve


# ----------------------------------------------------------------------------- meta-train
def test_tiny_meta_train_stores_the_lineage(tiny_run):
    store, result, seen = tiny_run
    gens = TINY_META["generations"]
    programs = [store.program(i) for i in result.program_ids]
    assert [p.generation for p in programs] == list(range(gens + 1))
    assert [r.generation for r in seen] == list(range(gens + 1)) and seen[-1].final
    run = store.get_run("lpo-tiny")
    assert run.space == "ppo_objectives" and run.status == "finished" and run.mutator == "openes"
    assert run.config["method"] == "openes" and run.config["popsize"] == 4 and run.config["tasks"] == ["CartPole-v1"]
    assert run.config["eval_options"] == {"total_timesteps": 1024, "num_seeds": 1}
    # Parent chain: each mean was made from the previous generation's mean.
    assert store.parents(programs[0].id) == []
    for child, parent in zip(programs[1:], programs[:-1]):
        edges = store.parents(child.id)
        assert [(e.parent_id, e.role) for e in edges] == [(parent.id, "parent")]
        assert child.edit.startswith(f"openes generation {child.generation} (σ=0.5, lr=0.1, pop=4)")
    # One train evaluation per task, its score is the program's score, like the loop's.
    for p, report in zip(programs, seen):
        evals = store.evaluations(p.id)
        assert [(e.task, e.split, e.status, e.seed) for e in evals] == [
            ("CartPole-v1", "train", "ok", generation_seed(3, p.generation))]
        assert p.status == "evaluated" and p.score == evals[0].result.metrics["score"] == report.mean_score
        assert set(evals[0].result.metrics) >= {"score", "mean_return", "ppo_return", "random_return"}
        assert p.fingerprint is not None and static_check(p.source, SPACE).ok
    # Generation 0 is PPO; the ES moved the mean afterwards.
    assert not lpo.unflatten(lpo.params_from_program(programs[0].source)).w2.any()
    assert lpo.unflatten(lpo.params_from_program(programs[-1].source)).w2.any()
    np.testing.assert_array_equal(result.final_params, lpo.params_from_program(programs[-1].source))
    # `discover top` lists them like any run's programs.
    assert {p.id for p in store.top(run.id, n=10)} == set(result.program_ids)


@pytest.mark.slow
def test_stored_ppo_generation_matches_the_space_evaluating_the_ppo_clip_seed(tiny_run):
    """Generation 0 (PPO, trained inside the population's batch on generation 0's keys)
    against the space's own evaluation of the published seed program with that seed.
    Equal here because two updates leave no room for the float rounding of batched matrix
    products to flip a sampled action; over hundreds of updates it can (docs/meta_train.md)."""
    store, result, _ = tiny_run
    stored = store.evaluations(result.program_ids[0])[0].result
    reference = SPACE.evaluate(SPACE.seeds()["ppo_clip"], "CartPole-v1", seed=generation_seed(3, 0),
                               total_timesteps=TINY_META["total_timesteps"], num_seeds=1)
    assert stored.metrics["mean_return"] == reference.metrics["mean_return"]
    assert stored.metrics["score"] == reference.metrics["score"]
    assert [list(p) for p in stored.curve] == [list(p) for p in reference.curve]


@pytest.mark.slow
def test_resumed_meta_train_computes_what_an_uninterrupted_one_does(tmp_path):
    whole = Store.open(f"sqlite:///{tmp_path / 'whole.db'}")
    meta_train(whole, run_name="r", **TINY_META)
    parts = Store.open(f"sqlite:///{tmp_path / 'parts.db'}")
    meta_train(parts, run_name="r", **{**TINY_META, "generations": 1})
    resumed = meta_train(parts, run_name="r", **TINY_META)
    assert resumed.resumed_from == 1 and [r.generation for r in resumed.reports] == [1, 2]
    hashes = lambda s: [p.code_hash for p in s.programs(s.get_run("r").id)]
    assert hashes(parts) == hashes(whole) and len(hashes(whole)) == 3
    scores = lambda s: [p.score for p in s.programs(s.get_run("r").id)]
    assert scores(parts) == scores(whole)
    # Once finished, the same call has nothing left to do.
    again = meta_train(parts, run_name="r", **TINY_META)
    assert again.reports == () and again.program_ids == resumed.program_ids


def test_bad_settings_are_clear_value_errors(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'd.db'}")
    with pytest.raises(ValueError, match="meta-train learns drift networks; space 'cfr_variants' has no drift"):
        meta_train(store, space="cfr_variants")
    with pytest.raises(ValueError, match="unknown meta-train method 'cma'"):
        meta_train(store, method="cma")
    with pytest.raises(ValueError, match="popsize must be even"):
        meta_train(store, popsize=5)
    with pytest.raises(ValueError, match="unknown environment 'Pong'"):
        meta_train(store, tasks=("Pong",))
    with pytest.raises(ValueError, match="sigma must be a positive number"):
        meta_train(store, sigma=0.0)
    assert store.list_runs() == []   # nothing was created for bad input
    store.create_run("taken", "ppo_objectives", config={}, seed=0, budget=1, mutator="offline", versions={})
    with pytest.raises(ValueError, match="not a meta-train run"):
        meta_train(store, run_name="taken", **TINY_META)
    # A meta-train run continued with other settings is refused before any training.
    store.create_run("mt", "ppo_objectives", config=MetaTrainConfig(**{**TINY_META, "sigma": 0.1}).to_json(),
                     seed=3, budget=3, mutator="openes", versions={})
    with pytest.raises(ValueError, match=r"other settings: sigma 0.1 \(now 0.5\)"):
        meta_train(store, run_name="mt", **TINY_META)


def _cli(argv):
    """`discover meta-train` through its own register(), as discover.cli wires it."""
    from discover.cli import CliError
    from discover.cli.meta_train import register
    parser = argparse.ArgumentParser(prog="discover")
    sub = parser.add_subparsers(dest="command")
    register(sub, lambda name, help, example: sub.add_parser(name, help=help, description=help,
                                                             epilog=f"example:\n  {example}"))
    args = parser.parse_args(argv)
    try:
        return args.func(args), None
    except CliError as e:
        return 2, str(e)


def test_cli_rejects_other_spaces_in_one_line(tmp_path, capsys):
    code, message = _cli(["meta-train", "--space", "cfr_variants", "--db", f"sqlite:///{tmp_path / 'd.db'}"])
    assert code == 2 and message.startswith("meta-train learns drift networks; space 'cfr_variants'")
    code, message = _cli(["meta-train", "--popsize", "3", "--db", f"sqlite:///{tmp_path / 'd.db'}"])
    assert code == 2 and "popsize must be even" in message


@pytest.mark.slow
def test_cli_prints_a_line_per_generation_and_json(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'd.db'}"
    flags = ["--generations", "1", "--popsize", "2", "--timesteps", "1024", "--num-seeds", "1", "--seed", "3"]
    code, _ = _cli(["meta-train", *flags, "--db", db, "--run-name", "cli"])
    out = capsys.readouterr().out
    assert code == 0 and "gen 0/1  population mean" in out and "gen 1/1" in out and "final mean" in out
    code, _ = _cli(["meta-train", *flags, "--db", db, "--run-name", "cli", "--json"])
    data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and data["run"] == "cli" and data["generations"] == [] and len(data["programs"]) == 2
