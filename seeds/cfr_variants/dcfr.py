"""Discounted CFR, DCFR(α=1.5, β=0, γ=2).

Brown & Sandholm, "Solving Imperfect-Information Games via Discounted Regret Minimization"
(AAAI 2019, arXiv:1809.04040). The paper's recommended parameters α=3/2, β=0, γ=2.

1. Add iteration t's instantaneous regret to the cumulative regret.
2. Multiply the positive cumulative regrets by t^α / (t^α + 1) and the negative ones by
   t^β / (t^β + 1) (= 1/2 for β = 0): old positive regret fades slowly, negative regret
   fast, so an action that turns good is picked up again quickly.
3. The next policy is proportional to the positive cumulative regrets (uniform if none).
4. The average policy weights iteration t's policy by t^γ times the player's own reach.
This is the order of OpenSpiel's ``DCFRSolver`` (discount after adding), which it
reproduces; discounting before adding, with the factor of t − 1, gives the same policies.
"""

# EVOLVE-BLOCK-START
ALPHA = 1.5
BETA = 0.0
GAMMA = 2.0


def init_state(num_infosets, num_actions, xp):
    return {}


def update_regret(cum_regret, inst_regret, t, state, xp):
    summed = cum_regret + inst_regret
    positive_discount = t ** ALPHA / (t ** ALPHA + 1.0)
    negative_discount = t ** BETA / (t ** BETA + 1.0)
    return xp.where(summed >= 0.0, summed * positive_discount, summed * negative_discount), state


def derive_policy(cum_regret, inst_regret, legal, t, state, xp):
    positive = xp.maximum(cum_regret, 0.0) * legal
    total = xp.sum(positive, axis=1, keepdims=True)
    uniform = legal / xp.sum(legal, axis=1, keepdims=True)
    safe_total = xp.where(total > 0.0, total, 1.0)
    return xp.where(total > 0.0, positive / safe_total, uniform), state


def update_average(cum_policy, policy, reach, t, state, xp):
    return cum_policy + t ** GAMMA * reach[:, None] * policy, state
# EVOLVE-BLOCK-END
