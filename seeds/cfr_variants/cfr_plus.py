"""CFR+ — regret matching+ with linear averaging and alternating updates.

Tammelin, "Solving Large Imperfect Information Games Using CFR+" (2014, arXiv:1407.5042);
Tammelin, Burch, Johanson, Bowling, "Solving Heads-up Limit Texas Hold'em" (IJCAI 2015).

1. Cumulative regrets are floored at zero after every update (regret matching+).
2. The next policy is proportional to the positive cumulative regrets (uniform if none).
3. The average policy weights iteration t's policy by t times the player's own reach.
Written as a candidate, this reproduces OpenSpiel's ``CFRPlusSolver``.
"""

# EVOLVE-BLOCK-START
def init_state(num_infosets, num_actions, xp):
    return {}


def update_regret(cum_regret, inst_regret, t, state, xp):
    return xp.maximum(cum_regret + inst_regret, 0.0), state


def derive_policy(cum_regret, inst_regret, legal, t, state, xp):
    positive = xp.maximum(cum_regret, 0.0) * legal
    total = xp.sum(positive, axis=1, keepdims=True)
    uniform = legal / xp.sum(legal, axis=1, keepdims=True)
    safe_total = xp.where(total > 0.0, total, 1.0)
    return xp.where(total > 0.0, positive / safe_total, uniform), state


def update_average(cum_policy, policy, reach, t, state, xp):
    return cum_policy + t * reach[:, None] * policy, state
# EVOLVE-BLOCK-END
