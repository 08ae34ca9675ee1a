import math
import random

import numpy as np
import pytest

from discover.engine.selector import EpsilonNet, Selector, SelectorConfig, relative_distance


def test_relative_distance_is_zero_for_equal_and_scale_aware():
    a = np.array([0.0, 1.0, 1e6])
    assert relative_distance(a, a.copy()) == 0.0
    # An absolute difference of 1 matters at 0 but not at 1e6.
    assert relative_distance(np.array([0.0]), np.array([1.0])) == pytest.approx(0.5)
    assert relative_distance(np.array([1e6]), np.array([1e6 + 1])) < 1e-5
    assert relative_distance(np.zeros(2), np.zeros(3)) == math.inf


def test_epsilon_net_rejects_same_behaviour_and_admits_new():
    net = EpsilonNet(1e-9)
    assert net.admit(1, np.array([0.5, 0.5]))[0]
    ok, nearest, d = net.admit(2, np.array([0.5, 0.5 + 1e-13]))
    assert not ok and nearest == 1 and d < 1e-9
    assert net.admit(3, np.array([0.4, 0.6]))[0]
    assert len(net) == 2
    with pytest.raises(ValueError):
        EpsilonNet(-1.0)


def test_best_program_is_expanded_first_and_bonus_rotates_parents():
    sel = Selector(SelectorConfig(c_explore=0.5, inspirations=1))
    sel.tell(1, 0.0)
    sel.tell(2, 0.3)
    sel.tell(3, -math.inf)  # a failed program never breeds
    rng = random.Random(0)
    picks = [p for p, _ in sel.ask(6, rng)]
    assert picks[0] == 2
    assert 3 not in picks
    # With a large exploration weight the runner-up gets turns too.
    assert 1 in picks


def test_ask_is_deterministic_given_the_rng_and_inspirations_exclude_parent():
    def run():
        sel = Selector()
        for i, s in enumerate([0.1, 0.2, 0.3, 0.15, 0.05]):
            sel.tell(i, s, np.array([s, -s]))
        return sel.ask(4, random.Random(42))
    a, b = run(), run()
    assert a == b
    for parent, insp in a:
        assert parent not in insp and len(insp) == 3


def test_stochastic_space_reevaluates_top_before_trusting_it():
    sel = Selector(SelectorConfig(reevaluate_top=2, min_evaluations=3), stochastic=True)
    sel.tell(1, 0.9)
    sel.tell(2, 0.1)
    sel.tell(2, 0.2)
    sel.tell(2, 0.15)
    assert sel.needs_reevaluation() == [1]
    sel.tell(1, 0.5)
    sel.tell(1, 0.6)
    assert sel.needs_reevaluation() == []
    assert sel.mean(1) == pytest.approx((0.9 + 0.5 + 0.6) / 3)


def test_code_text_fallback_fingerprint_merges_formatting_only_differences():
    from discover.engine.probe import code_fingerprint
    a = "# EVOLVE-BLOCK-START\ndef f(x):\n    return x * 2  # double\n# EVOLVE-BLOCK-END\n"
    b = "# EVOLVE-BLOCK-START\ndef f(x):\n\n    return x*2\n# EVOLVE-BLOCK-END\n"
    c = "# EVOLVE-BLOCK-START\ndef f(x):\n    return x * 3\n# EVOLVE-BLOCK-END\n"
    assert relative_distance(np.array(code_fingerprint(a)), np.array(code_fingerprint(b))) == 0.0
    assert relative_distance(np.array(code_fingerprint(a)), np.array(code_fingerprint(c))) > 1e-3
