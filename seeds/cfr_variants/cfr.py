"""Vanilla CFR — counterfactual regret minimisation with regret matching.

Zinkevich, Johanson, Bowling, Piccione, "Regret Minimization in Games with Incomplete
Information" (NeurIPS 2007).

1. Cumulative regret is the plain sum of instantaneous counterfactual regrets.
2. The next policy is proportional to the positive cumulative regrets (uniform if none).
3. The average policy weights each iteration's policy by the player's own reach.
Written as a candidate with alternating updates, this reproduces OpenSpiel's ``CFRSolver``.
"""

# EVOLVE-BLOCK-START
def init_state(num_infosets, num_actions, xp):
    return {}


def update_regret(cum_regret, inst_regret, t, state, xp):
    return cum_regret + inst_regret, state


def derive_policy(cum_regret, inst_regret, legal, t, state, xp):
    positive = xp.maximum(cum_regret, 0.0) * legal
    total = xp.sum(positive, axis=1, keepdims=True)
    uniform = legal / xp.sum(legal, axis=1, keepdims=True)
    safe_total = xp.where(total > 0.0, total, 1.0)
    return xp.where(total > 0.0, positive / safe_total, uniform), state


def update_average(cum_policy, policy, reach, t, state, xp):
    return cum_policy + reach[:, None] * policy, state
# EVOLVE-BLOCK-END
