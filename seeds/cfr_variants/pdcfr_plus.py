"""Predictive Discounted CFR+ (PDCFR+), α=2.3, γ=5.

Xu, Li, Liu, Fu, Fu, Xing, Cheng, "Minimizing Weighted Counterfactual Regret with
Optimistic Online Mirror Descent" (IJCAI 2024, arXiv:2404.13891); parameters from the paper.

1. Implicit regret: discount the old cumulative regret by d(t−1), add iteration t's
   instantaneous regret, floor at zero: R^t = [d(t−1)·R^{t−1} + r^t]^+,
   with d(s) = s^α / (s^α + 1) (so d(0) = 0).
2. The next policy is regret matching on the optimistic (explicit) regret
   [d(t)·R^t + m^{t+1}]^+ with the prediction m^{t+1} = r^t; uniform if it is all zero.
3. The average policy weights iteration t's policy by t^γ (written as the running sum
   multiplied by ((t−1)/t)^γ before adding, which keeps its magnitude bounded).
"""

# EVOLVE-BLOCK-START
ALPHA = 2.3
GAMMA = 5.0


def init_state(num_infosets, num_actions, xp):
    return {}


def update_regret(cum_regret, inst_regret, t, state, xp):
    previous = t - 1.0
    discount = previous ** ALPHA / (previous ** ALPHA + 1.0)
    return xp.maximum(cum_regret * discount + inst_regret, 0.0), state


def derive_policy(cum_regret, inst_regret, legal, t, state, xp):
    discount = t ** ALPHA / (t ** ALPHA + 1.0)
    predicted = xp.maximum(cum_regret * discount + inst_regret, 0.0) * legal
    total = xp.sum(predicted, axis=1, keepdims=True)
    uniform = legal / xp.sum(legal, axis=1, keepdims=True)
    safe_total = xp.where(total > 0.0, total, 1.0)
    return xp.where(total > 0.0, predicted / safe_total, uniform), state


def update_average(cum_policy, policy, reach, t, state, xp):
    return cum_policy * ((t - 1.0) / t) ** GAMMA + reach[:, None] * policy, state
# EVOLVE-BLOCK-END
