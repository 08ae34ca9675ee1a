"""Predictive CFR+ (PCFR+) — predictive regret matching+ with quadratic averaging.

Farina, Kroer, Sandholm, "Faster Game Solving via Predictive Blackwell Approachability:
Connecting Regret Matching and Mirror Descent" (AAAI 2021, arXiv:2007.14358).

1. Cumulative regret is floored at zero after adding iteration t's instantaneous regret
   (regret matching+): R^t = [R^{t-1} + r^t]^+.
2. The next policy is regret matching on the *predicted* regret [R^t + m^{t+1}]^+, with the
   prediction m^{t+1} = r^t (the regret just observed); uniform if it is all zero.
3. The average policy weights iteration t's policy by t² times the player's own reach
   (quadratic averaging, as in the paper's experiments and in Xu et al. 2024's PCFR+).
"""

# EVOLVE-BLOCK-START
GAMMA = 2.0


def init_state(num_infosets, num_actions, xp):
    return {}


def update_regret(cum_regret, inst_regret, t, state, xp):
    return xp.maximum(cum_regret + inst_regret, 0.0), state


def derive_policy(cum_regret, inst_regret, legal, t, state, xp):
    predicted = xp.maximum(cum_regret + inst_regret, 0.0) * legal
    total = xp.sum(predicted, axis=1, keepdims=True)
    uniform = legal / xp.sum(legal, axis=1, keepdims=True)
    safe_total = xp.where(total > 0.0, total, 1.0)
    return xp.where(total > 0.0, predicted / safe_total, uniform), state


def update_average(cum_policy, policy, reach, t, state, xp):
    return cum_policy + t ** GAMMA * reach[:, None] * policy, state
# EVOLVE-BLOCK-END
