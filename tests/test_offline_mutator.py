"""The offline mutator: determinism, confinement to the evolve block, each edit kind,
splicing with state merging, crossover, and the validity rate of its children executed on
the cfr_variants contract (docs/cfr_candidate_api.md).

Why one file: one mutator, each of its edit kinds checked on the same contract.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from discover.checks import load_candidate, static_check
from discover.mutators import (MutationContext, Mutator, OfflineMutator, OfflineMutatorConfig,
                               Parent, Proposal)
from discover.mutators.offline import KINDS
from discover.program import normalized_code, split_evolve_block
from discover.space import Space
from search_spaces.cfr_variants import SPACE

SEEDS = SPACE.seeds()
CFR_PLUS = SEEDS["cfr_plus"]


def contract_failure(source: str, iterations: int = 60, seed: int = 0,
                     infosets: int = 7, actions: int = 4) -> str | None:
    """Runs the candidate's rules as docs/cfr_candidate_api.md orders them, on random
    regrets consistent with the policy played; None when every output honours the contract
    (shapes [I, A]; finite; cumulative policy >= 0; policies non-negative, zero on illegal
    actions, rows summing to 1), else the first violation."""
    try:
        rules = load_candidate(source)
        rng = np.random.default_rng(seed)
        legal = (rng.random((infosets, actions)) < 0.6).astype(float)
        legal[:, 0] = 1.0
        legal[1] = 1.0
        shape = legal.shape
        state = rules["init_state"](infosets, actions, np)
        cum_regret, cum_policy = np.zeros(shape), np.zeros(shape)
        policy = legal / legal.sum(axis=1, keepdims=True)
        for it in range(1, iterations + 1):
            t = float(it)
            q = rng.normal(0.0, 3.0, shape)
            inst = (q - np.sum(policy * q, axis=1, keepdims=True)) * legal
            reach = rng.random(infosets) * (rng.random(infosets) < 0.9)
            cum_regret, state = rules["update_regret"](cum_regret, inst, t, state, np)
            if np.shape(cum_regret) != shape or not np.all(np.isfinite(cum_regret)):
                return f"update_regret at t={it}"
            cum_policy, state = rules["update_average"](cum_policy, policy, reach, t, state, np)
            if (np.shape(cum_policy) != shape or not np.all(np.isfinite(cum_policy))
                    or np.any(cum_policy < -1e-12)):
                return f"update_average at t={it}"
            policy, state = rules["derive_policy"](cum_regret, inst, legal, t, state, np)
            if (np.shape(policy) != shape or not np.all(np.isfinite(policy)) or np.any(policy < -1e-12)
                    or np.any(np.abs(policy * (1.0 - legal)) > 1e-12)
                    or np.any(np.abs(policy.sum(axis=1) - 1.0) > 1e-6)):
                return f"derive_policy at t={it}"
    except Exception as e:  # noqa: BLE001 - any failure is what is measured
        return f"{type(e).__name__}: {e}"
    return None


def probe_failure(source: str) -> str | None:
    try:
        SPACE.probe(load_candidate(source))
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {e}"
    return None


def context(source: str = CFR_PLUS, *, parent_id: int = 1, inspirations=(), rng_seed: int = 0,
            space: Space = SPACE) -> MutationContext:
    return MutationContext(space, Parent(parent_id, source, score=None), inspirations=tuple(inspirations),
                           rng_seed=rng_seed)


def only(kind: str) -> OfflineMutator:
    return OfflineMutator(0, OfflineMutatorConfig(weights={kind: 1.0}))


def functions(source: str) -> dict[str, str]:
    """ast.dump of each top-level function of the evolve block."""
    tree = ast.parse(split_evolve_block(source)[1])
    return {s.name: ast.dump(s) for s in tree.body if isinstance(s, ast.FunctionDef)}


def others(name: str) -> list[Parent]:
    return [Parent(100 + i, SEEDS[o]) for i, o in enumerate(sorted(SEEDS)) if o != name]


# ---------------------------------------------------------------------------------------

def test_it_is_a_mutator():
    assert isinstance(OfflineMutator(0), Mutator)
    assert OfflineMutator(0).name == "offline"


def test_same_seed_same_proposals_other_seed_other_proposals():
    ctx = context(inspirations=others("cfr_plus"), rng_seed=7)
    first = OfflineMutator(3).propose(ctx, 8)
    again = OfflineMutator(3).propose(ctx, 8)
    assert len(first) == 8 and first == again
    assert OfflineMutator(3).propose(dataclasses.replace(ctx, rng_seed=8), 8) != first
    assert OfflineMutator(4).propose(ctx, 8) != first


def test_no_global_random_state_is_used():
    import random
    ctx = context(inspirations=others("cfr_plus"), rng_seed=1)
    random.seed(0)
    np.random.seed(0)
    first = OfflineMutator(0).propose(ctx, 6)
    random.seed(99)
    np.random.seed(99)
    assert OfflineMutator(0).propose(ctx, 6) == first


def test_edits_stay_inside_the_evolve_block():
    for name, source in SEEDS.items():
        prefix, _, suffix = split_evolve_block(source)
        for p in OfflineMutator(0).propose(context(source, inspirations=others(name)), 12):
            child_prefix, _, child_suffix = split_evolve_block(p.source)
            assert child_prefix == prefix and child_suffix == suffix, (name, p.edit)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_makes_a_different_valid_child_of_cfr_plus(kind):
    proposals = only(kind).propose(context(inspirations=[Parent(2, SEEDS["dcfr"])]), 4)
    assert proposals, kind
    for p in proposals:
        assert isinstance(p, Proposal) and p.kind == kind and p.edit
        ast.parse(p.source)
        assert normalized_code(p.source) != normalized_code(CFR_PLUS)
        assert static_check(p.source, SPACE).ok
        assert contract_failure(p.source) is None, p.edit
        assert probe_failure(p.source) is None, p.edit
        assert p.parents == ((1, 2) if kind == "crossover" else (1,))
    assert len({normalized_code(p.source) for p in proposals}) == len(proposals)


def test_untouched_functions_keep_their_text_and_comments():
    source = CFR_PLUS.replace("def derive_policy(", "# regret matching, kept verbatim\ndef derive_policy(")
    prefix, block, _ = split_evolve_block(source)
    derive = block[block.index("# regret matching"):block.index("def update_average")].rstrip()
    for p in only("perturb").propose(context(source), 4):
        assert "update_average" in p.edit
        assert derive in p.source


def test_perturb_keeps_signs_integer_thresholds_and_structural_literals():
    vad = SEEDS["vad_cfr"]
    structural = ("axis=1", "keepdims=True", "[:, None]", "xp.zeros((num_infosets,))")
    for p in OfflineMutator(0, OfflineMutatorConfig(weights={"perturb": 1.0}, unit_constant_prob=0.0)).propose(
            context(vad), 40):
        namespace = load_candidate(p.source)
        assert isinstance(namespace["WARMUP_ITERATIONS"], int) and namespace["WARMUP_ITERATIONS"] > 0
        assert isinstance(namespace["EWMA_HORIZON"], int)
        assert namespace["BASE_BETA"] < 0 < namespace["BASE_ALPHA"]
        assert namespace["NEGATIVE_REGRET_CAP"] < 0
        for text in structural:
            assert p.source.count(text) == vad.count(text), (p.edit, text)
        assert " → " in p.edit


def test_perturb_description_names_the_constant_and_both_values():
    p = only("perturb").propose(context(SEEDS["dcfr"]), 1)[0]
    name, change = p.edit.split(": ", 1)
    assert name in ("ALPHA", "BETA", "GAMMA", "update_regret", "update_average")
    before, after = change.replace("constant ", "").split(" → ")
    assert before != after


def test_power_reaches_linear_and_quadratic_averaging_from_cfr():
    edits = {p.edit for rng_seed in range(3)
             for p in only("power").propose(context(SEEDS["cfr"], rng_seed=rng_seed), 10)}
    assert "update_average: new term weighted by t" in edits
    assert "update_average: new term weighted by t ** 2" in edits


def test_floor_turns_cfr_regrets_into_regret_matching_plus():
    proposals = only("floor").propose(context(SEEDS["cfr"]), 4)
    child = next(p for p in proposals if p.edit.startswith("update_regret"))
    rules = load_candidate(child.source)
    regret, _ = rules["update_regret"](np.array([[1.0, -1.0]]), np.array([[-3.0, 0.5]]), 1.0, {}, np)
    np.testing.assert_array_equal(regret, [[0.0, 0.0]])  # max(1 - 3, 0), max(-1 + 0.5, 0)


# ---------------------------------------------------------------------------------------
# splice

class ToySpace(Space):
    """The cfr_variants contract with a small mechanism library of its own."""

    name = "toy_cfr"
    required_functions = ("init_state", "update_regret", "derive_policy", "update_average")
    seeds_dir = SPACE.seeds_dir

    def __init__(self, mechanisms):
        self.mechanisms = mechanisms


EWMA_MECHANISM = '''
DECAY = 0.9


def init_state(num_infosets, num_actions, xp):
    return {"ewma": xp.ones((num_infosets, 1))}


def update_regret(cum_regret, inst_regret, t, state, xp):
    magnitude = xp.max(xp.abs(inst_regret), axis=1, keepdims=True)
    ewma = DECAY * state["ewma"] + (1.0 - DECAY) * magnitude
    return xp.maximum(cum_regret + inst_regret / (1.0 + ewma), 0.0), dict(state, ewma=ewma)
'''

STATEFUL_PARENT = CFR_PLUS.replace(
    "def init_state(num_infosets, num_actions, xp):\n    return {}",
    "def init_state(num_infosets, num_actions, xp):\n    return {\"previous\": xp.zeros((num_infosets, num_actions))}",
).replace(
    "def derive_policy(cum_regret, inst_regret, legal, t, state, xp):\n    positive = xp.maximum(cum_regret, 0.0) * legal",
    "def derive_policy(cum_regret, inst_regret, legal, t, state, xp):\n"
    "    positive = xp.maximum(cum_regret + 0.5 * state[\"previous\"], 0.0) * legal\n"
    "    state = dict(state, previous=inst_regret)",
)


def test_splice_merges_the_state_initialisation_and_the_child_runs():
    assert contract_failure(STATEFUL_PARENT) is None
    space = ToySpace({"ewma": EWMA_MECHANISM})
    [child] = only("splice").propose(context(STATEFUL_PARENT, space=space), 1)
    assert child.edit == "splice ewma: update_regret; state keys added: ewma"
    assert child.meta["mechanism"] == "ewma" and child.meta["state_keys"] == ["ewma"]
    rules = load_candidate(child.source)
    state = rules["init_state"](3, 2, np)
    assert set(state) == {"previous", "ewma"}  # the parent's key is kept, the mechanism's added
    assert state["ewma"].shape == (3, 1)
    assert "DECAY = 0.9" in child.source
    assert functions(child.source)["derive_policy"] == functions(STATEFUL_PARENT)["derive_policy"]
    assert contract_failure(child.source) is None
    assert probe_failure(child.source) is None


def test_splice_merges_into_an_initialiser_that_is_not_a_plain_dict():
    parent = STATEFUL_PARENT.replace(
        "    return {\"previous\": xp.zeros((num_infosets, num_actions))}",
        "    if num_actions > 0:\n        return {\"previous\": xp.zeros((num_infosets, num_actions))}\n"
        "    return {\"previous\": xp.zeros((num_infosets, 1))}")
    assert contract_failure(parent) is None
    [child] = only("splice").propose(context(parent, space=ToySpace({"ewma": EWMA_MECHANISM})), 1)
    assert set(load_candidate(child.source)["init_state"](3, 2, np)) == {"previous", "ewma"}
    assert contract_failure(child.source) is None


def test_splice_merges_state_of_a_real_mechanism_into_vad_cfr():
    space = ToySpace({"vad": SPACE.mechanisms["volatility_adaptive_discount"]})
    [child] = only("splice").propose(context(SEEDS["vad_cfr"], space=space), 1)
    state = load_candidate(child.source)["init_state"](5, 3, np)
    parent_state = load_candidate(SEEDS["vad_cfr"])["init_state"](5, 3, np)
    assert set(state) == set(parent_state) | {"vad_ewma"}
    assert contract_failure(child.source) is None and probe_failure(child.source) is None


def test_splice_renames_a_constant_that_clashes_with_the_parent():
    mechanism = EWMA_MECHANISM.replace("DECAY", "ALPHA")
    [child] = only("splice").propose(context(SEEDS["pdcfr_plus"], space=ToySpace({"m": mechanism})), 1)
    rules = load_candidate(child.source)
    assert rules["ALPHA"] == 2.3 and rules["ALPHA_2"] == 0.9  # the parent's derive_policy still reads ALPHA
    assert "ALPHA_2 * state" in child.source
    assert functions(child.source)["derive_policy"] == functions(SEEDS["pdcfr_plus"])["derive_policy"]
    assert contract_failure(child.source) is None


def test_splice_drops_what_only_the_replaced_function_used():
    space = ToySpace({"rm_plus": SPACE.mechanisms["regret_matching_plus"]})
    [child] = only("splice").propose(context(SEEDS["dcfr"], space=space), 1)
    rules = load_candidate(child.source)
    assert "ALPHA" not in rules and "BETA" not in rules  # only DCFR's update_regret used them
    assert rules["GAMMA"] == 2.0                        # update_average still does


def test_splice_skips_mechanisms_the_parent_already_has():
    space = ToySpace({"rm_plus": SPACE.mechanisms["regret_matching_plus"],
                      "linear": SPACE.mechanisms["linear_averaging"]})
    assert only("splice").propose(context(CFR_PLUS, space=space), 3) == []


def test_every_mechanism_of_the_space_splices_into_every_seed():
    for name, source in SEEDS.items():
        proposals = only("splice").propose(context(source), len(SPACE.mechanisms))
        assert len(proposals) >= len(SPACE.mechanisms) - 4, name  # a few equal the seed's own rules
        for p in proposals:
            assert probe_failure(p.source) is None, (name, p.edit)


# ---------------------------------------------------------------------------------------
# crossover

def test_crossover_takes_functions_from_both_parents():
    parent, partner = SEEDS["pcfr_plus"], SEEDS["dcfr"]
    ours, theirs = functions(parent), functions(partner)
    proposals = only("crossover").propose(context(parent, inspirations=[Parent(9, partner)]), 6)
    assert proposals
    for p in proposals:
        child = functions(p.source)
        rules = ("update_regret", "derive_policy", "update_average")
        from_partner = {r for r in rules if child[r] == theirs[r] != ours[r]}
        from_parent = {r for r in rules if child[r] == ours[r] != theirs[r]}
        assert from_partner and from_parent, p.edit
        assert from_partner | from_parent | {r for r in rules if ours[r] == theirs[r]} == set(rules)
        assert set(p.meta["from_inspiration"]) == from_partner
        assert p.parents == (1, 9) and "#9" in p.edit
        assert contract_failure(p.source) is None


def test_crossover_carries_the_partners_constants_under_new_names_where_they_clash():
    # PCFR+'s GAMMA is 2; PDCFR+'s update_average needs its own GAMMA = 5.
    ctx = context(SEEDS["pcfr_plus"], inspirations=[Parent(9, SEEDS["pdcfr_plus"])])
    children = [p for p in only("crossover").propose(ctx, 6) if "update_average" in p.meta["from_inspiration"]]
    assert children
    for p in children:
        rules = load_candidate(p.source)
        assert rules["GAMMA_2"] == 5.0
        if "GAMMA" in rules:
            assert rules["GAMMA"] == 2.0


# ---------------------------------------------------------------------------------------
# errors and the validity rate

def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="non-negative"):
        OfflineMutator(0).propose(context(), -1)
    with pytest.raises(ValueError, match="does not parse"):
        OfflineMutator(0).propose(context(CFR_PLUS.replace("return {}", "return {")), 1)
    with pytest.raises(ValueError, match="unknown edit kinds"):
        OfflineMutatorConfig(weights={"mutate": 1.0})
    with pytest.raises(ValueError, match="at least one positive"):
        OfflineMutatorConfig(weights={"perturb": 0.0})
    assert OfflineMutator(0).propose(context(), 0) == []


def test_most_children_of_the_cfr_seeds_are_valid():
    """Default settings, every seed as parent, the others as crossover partners, the
    space's mechanism library: at least 80% of the children must run correctly."""
    mutator = OfflineMutator(0)
    total, valid = 0, 0
    kinds = set()
    for rng_seed in range(4):
        for name, source in sorted(SEEDS.items()):
            for p in mutator.propose(context(source, inspirations=others(name), rng_seed=rng_seed), 12):
                total += 1
                kinds.add(p.kind)
                valid += contract_failure(p.source, seed=rng_seed) is None and probe_failure(p.source) is None
    assert total >= 300
    assert kinds == set(KINDS)
    assert valid / total >= 0.8, f"{valid}/{total}"


def test_propose_and_static_check_are_safe_on_several_threads():
    """CPython 3.11 corrupts its syntax-tree depth counter when a thread switch (here forced
    by garbage with finalizers) happens inside another thread's ast.parse (cpython#106905);
    the mutator and the checks parse under one lock, so threads get the serial results."""
    import sys
    import threading

    class Finalized:
        def __del__(self):
            sum(range(20))

    ctx = context(SEEDS["vad_cfr"], inspirations=others("vad_cfr"), rng_seed=5)
    expected = OfflineMutator(0).propose(ctx, 6)
    results, errors = [], []

    def work():
        try:
            for _ in range(3):
                garbage = [Finalized() for _ in range(200)]
                for g in garbage:
                    g.cycle = g  # freed by the cyclic collector, at any allocation
                del garbage
                results.append(OfflineMutator(0).propose(ctx, 6))
                assert all(static_check(p.source, SPACE).ok for p in results[-1])
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(repr(e))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        sys.setswitchinterval(interval)
    assert not errors
    assert results == [expected] * 12


def test_a_program_without_markers_is_all_evolve_block():
    _, block, _ = split_evolve_block(SEEDS["dcfr"])
    proposals = OfflineMutator(0).propose(context(block, inspirations=others("dcfr")), 6)
    assert len(proposals) == 6
    for p in proposals:
        assert static_check(p.source, SPACE).ok and contract_failure(p.source) is None


def test_perturbations_are_large_enough_to_matter():
    config = OfflineMutatorConfig(weights={"perturb": 1.0}, min_relative_change=0.1)
    proposals = OfflineMutator(0, config).propose(context(SEEDS["pdcfr_plus"]), 20)
    assert len(proposals) == 20
    for p in proposals:
        constant = re.search(r"constant (\S+) → (\S+)$", p.edit)
        exponent = re.search(r"(\w+) → \1 \*\* (\S+)$", p.edit)  # t → t ** k: the exponent 1 moved
        before, after = (float(constant[1]), float(constant[2])) if constant else (1.0, float(exponent[2]))
        assert abs(after / before - 1.0) >= 0.1 - 1e-9, p.edit
