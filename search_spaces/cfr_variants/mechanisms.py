"""Known CFR mechanisms, for the offline mutator to splice into a candidate.

``MECHANISMS`` maps a name to Python source: complete definitions of one or more rule
functions (``update_regret``, ``derive_policy``, ``update_average``) written against the
contract, with any constants and helpers they need, and an ``init_state`` when they keep
state (its keys are merged into the parent's). Splicing an entry replaces the parent's
functions of the same names and leaves the others alone. Names of constants, helpers and
state keys are prefixed per mechanism so that two spliced mechanisms do not collide.

Sources: RM+ and linear averaging (Tammelin 2014, CFR+); linear / discounted regrets and
t^γ averaging (Brown & Sandholm 2019, LCFR and DCFR); predictive regret matching (Farina,
Kroer & Sandholm 2021, PCFR+) and its discounted form (Xu et al. 2024, PDCFR+); power
regret matching; warm start, volatility-adaptive discounting and instantaneous boosting
(Li, Schultz, Hennes & Lanctot 2026, VAD-CFR).
"""

from __future__ import annotations

_REGRET_MATCHING = '''
def derive_policy(cum_regret, inst_regret, legal, t, state, xp):
    positive = xp.maximum(cum_regret, 0.0) * legal
    total = xp.sum(positive, axis=1, keepdims=True)
    uniform = legal / xp.sum(legal, axis=1, keepdims=True)
    safe_total = xp.where(total > 0.0, total, 1.0)
    return xp.where(total > 0.0, positive / safe_total, uniform), state
'''

MECHANISMS: dict[str, str] = {
    # ---- regret accumulation -------------------------------------------------------------
    "plain_regret_sum": '''
def update_regret(cum_regret, inst_regret, t, state, xp):
    return cum_regret + inst_regret, state
''',
    "regret_matching_plus": '''
def update_regret(cum_regret, inst_regret, t, state, xp):
    return xp.maximum(cum_regret + inst_regret, 0.0), state
''',
    "linear_regret_weights": '''
def update_regret(cum_regret, inst_regret, t, state, xp):
    return cum_regret + t * inst_regret, state
''',
    "dcfr_discounting": '''
DCFR_ALPHA = 1.5
DCFR_BETA = 0.0


def update_regret(cum_regret, inst_regret, t, state, xp):
    summed = cum_regret + inst_regret
    positive_discount = t ** DCFR_ALPHA / (t ** DCFR_ALPHA + 1.0)
    negative_discount = t ** DCFR_BETA / (t ** DCFR_BETA + 1.0)
    return xp.where(summed >= 0.0, summed * positive_discount, summed * negative_discount), state
''',
    "discounted_regret_matching_plus": '''
PDCFR_ALPHA = 2.3


def update_regret(cum_regret, inst_regret, t, state, xp):
    previous = t - 1.0
    discount = previous ** PDCFR_ALPHA / (previous ** PDCFR_ALPHA + 1.0)
    return xp.maximum(cum_regret * discount + inst_regret, 0.0), state
''',
    "positive_regret_boost": '''
BOOST_FACTOR = 1.1


def update_regret(cum_regret, inst_regret, t, state, xp):
    boosted = xp.where(inst_regret > 0.0, inst_regret * BOOST_FACTOR, inst_regret)
    return xp.maximum(cum_regret + boosted, 0.0), state
''',
    "volatility_adaptive_discount": '''
VAD_EWMA_DECAY = 0.1
VAD_MAX_REGRET = 2.0
VAD_BASE_ALPHA = 1.5
VAD_BASE_BETA = -0.1
VAD_SENSITIVITY = 0.5
VAD_NEGATIVE_CAP = -20.0


def init_state(num_infosets, num_actions, xp):
    return {"vad_ewma": xp.zeros((num_infosets,))}


def update_regret(cum_regret, inst_regret, t, state, xp):
    magnitude = xp.max(xp.abs(inst_regret), axis=1)
    ewma = xp.where(t <= 1.0, magnitude,
                    VAD_EWMA_DECAY * magnitude + (1.0 - VAD_EWMA_DECAY) * state["vad_ewma"])
    volatility = xp.minimum(1.0, ewma / VAD_MAX_REGRET)
    alpha = xp.maximum(0.1, VAD_BASE_ALPHA - VAD_SENSITIVITY * volatility)
    beta = xp.minimum(alpha, VAD_BASE_BETA - VAD_SENSITIVITY * volatility)
    discount_pos = (t ** alpha / (t ** alpha + 1.0))[:, None]
    discount_neg = (t ** beta / (t ** beta + 1.0))[:, None]
    discounted = xp.where(cum_regret >= 0.0, cum_regret * discount_pos, cum_regret * discount_neg)
    return xp.maximum(VAD_NEGATIVE_CAP, discounted + inst_regret), dict(state, vad_ewma=ewma)
''',
    # ---- policy derivation ---------------------------------------------------------------
    "regret_matching": _REGRET_MATCHING,
    "predictive_regret_matching": '''
def derive_policy(cum_regret, inst_regret, legal, t, state, xp):
    predicted = xp.maximum(cum_regret + inst_regret, 0.0) * legal
    total = xp.sum(predicted, axis=1, keepdims=True)
    uniform = legal / xp.sum(legal, axis=1, keepdims=True)
    safe_total = xp.where(total > 0.0, total, 1.0)
    return xp.where(total > 0.0, predicted / safe_total, uniform), state
''',
    "discounted_prediction": '''
PREDICTION_ALPHA = 2.3


def derive_policy(cum_regret, inst_regret, legal, t, state, xp):
    discount = t ** PREDICTION_ALPHA / (t ** PREDICTION_ALPHA + 1.0)
    predicted = xp.maximum(cum_regret * discount + inst_regret, 0.0) * legal
    total = xp.sum(predicted, axis=1, keepdims=True)
    uniform = legal / xp.sum(legal, axis=1, keepdims=True)
    safe_total = xp.where(total > 0.0, total, 1.0)
    return xp.where(total > 0.0, predicted / safe_total, uniform), state
''',
    "decaying_optimism": '''
OPTIMISM_HALF_LIFE = 100.0


def derive_policy(cum_regret, inst_regret, legal, t, state, xp):
    optimism = 1.0 / (1.0 + (t - 1.0) / OPTIMISM_HALF_LIFE)
    predicted = xp.maximum(cum_regret + optimism * inst_regret, 0.0) * legal
    total = xp.sum(predicted, axis=1, keepdims=True)
    uniform = legal / xp.sum(legal, axis=1, keepdims=True)
    safe_total = xp.where(total > 0.0, total, 1.0)
    return xp.where(total > 0.0, predicted / safe_total, uniform), state
''',
    "power_regret_matching": '''
POLICY_POWER = 1.5


def derive_policy(cum_regret, inst_regret, legal, t, state, xp):
    weights = xp.maximum(cum_regret, 0.0) ** POLICY_POWER * legal
    total = xp.sum(weights, axis=1, keepdims=True)
    uniform = legal / xp.sum(legal, axis=1, keepdims=True)
    safe_total = xp.where(total > 0.0, total, 1.0)
    return xp.where(total > 0.0, weights / safe_total, uniform), state
''',
    # ---- average-policy accumulation -----------------------------------------------------
    "uniform_averaging": '''
def update_average(cum_policy, policy, reach, t, state, xp):
    return cum_policy + reach[:, None] * policy, state
''',
    "linear_averaging": '''
def update_average(cum_policy, policy, reach, t, state, xp):
    return cum_policy + t * reach[:, None] * policy, state
''',
    "quadratic_averaging": '''
def update_average(cum_policy, policy, reach, t, state, xp):
    return cum_policy + t ** 2.0 * reach[:, None] * policy, state
''',
    "power_averaging": '''
AVERAGING_GAMMA = 5.0


def update_average(cum_policy, policy, reach, t, state, xp):
    # Weight t**GAMMA, written as a discount of the running sum to keep it bounded.
    return cum_policy * ((t - 1.0) / t) ** AVERAGING_GAMMA + reach[:, None] * policy, state
''',
    "warm_start_averaging": '''
WARM_START_ITERATION = 100.0


def update_average(cum_policy, policy, reach, t, state, xp):
    weight = xp.where(t > WARM_START_ITERATION, t ** 2.0, 0.0)
    return cum_policy + weight * reach[:, None] * policy, state
''',
}
