"""Linear CFR — iteration t's regret and policy both weighted by t.

Brown & Sandholm, "Solving Imperfect-Information Games via Discounted Regret Minimization"
(AAAI 2019, arXiv:1809.04040), Section "Linear CFR".

1. Cumulative regret adds iteration t's instantaneous regret with weight t
   (equivalently: the old sum is multiplied by t/(t+1) every iteration), so early, poor
   iterations fade linearly.
2. The next policy is proportional to the positive cumulative regrets (uniform if none);
   negative regrets are kept, not floored.
3. The average policy weights iteration t's policy by t times the player's own reach.
The paper's LCFR is DCFR(1, 1, 1); OpenSpiel's ``LCFRSolver`` computes the same iterates
(it rescales the sums by t/(t+1) instead of weighting by t, which regret matching ignores).
"""

# EVOLVE-BLOCK-START
def init_state(num_infosets, num_actions, xp):
    return {}


def update_regret(cum_regret, inst_regret, t, state, xp):
    return cum_regret + t * inst_regret, state


def derive_policy(cum_regret, inst_regret, legal, t, state, xp):
    positive = xp.maximum(cum_regret, 0.0) * legal
    total = xp.sum(positive, axis=1, keepdims=True)
    uniform = legal / xp.sum(legal, axis=1, keepdims=True)
    safe_total = xp.where(total > 0.0, total, 1.0)
    return xp.where(total > 0.0, positive / safe_total, uniform), state


def update_average(cum_policy, policy, reach, t, state, xp):
    return cum_policy + t * reach[:, None] * policy, state
# EVOLVE-BLOCK-END
