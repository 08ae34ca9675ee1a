"""VAD-CFR — Volatility-Adaptive Discounted CFR.

Li, Schultz, Hennes, Lanctot, "Discovering Multiagent Learning Algorithms with Large Language
Models" (2026, arXiv:2602.16928), Listing 5 (the evolved source) and Section 4.2.1. Constants
are the published ones.

In iteration t (t = 1, 2, ...; the paper's 0-based ``iteration_number`` is t − 1), for each
information set of the updating player:
1. Volatility. m = max_a |r^t(a)|, the instantaneous regret's magnitude. A running EWMA e
   (decay 0.1) tracks it: e ← m in the first iteration, else e ← 0.1·m + 0.9·e. The
   normalised volatility is v = min(1, e / 2).
2. Volatility-adaptive discounting. α = max(0.1, 1.5 − 0.5·v), β = min(α, −0.1 − 0.5·v);
   d⁺ = t^α / (t^α + 1), d⁻ = t^β / (t^β + 1): in volatile phases history is forgotten faster.
3. Asymmetric instantaneous boosting: positive instantaneous regrets are multiplied by 1.1.
4. Regret update: R ← d·R + boost(r) with d = d⁺ where R ≥ 0 and d⁻ where R < 0, then
   R ← max(R, −20). Regrets stay signed (no RM+ floor); the cap prevents lock-in.
5. Consistency-enforced optimism. The next policy comes from a projection of the regret one
   update ahead with the same discounts, P = d·R + o·boost(r), where the optimism
   o = (1 / (1 + (t − 1)/100)) · max(0, 1 − 0.5·v) decays with t and shrinks when volatile.
   The policy is ∝ max(P, 0)^1.5 (uniform if that is all zero).
6. Hard warm start: the average policy ignores iterations t ≤ 500 (it stays uniform until
   then). Afterwards iteration t adds weight · reach · policy, weight = t^γ · 1/(1 + m^1.5)
   · max(0.1, (1 + m/2)^0.5) with γ = min(4, 2 + 1.5·min(1, m/2)): later iterations, and
   those with informative regrets, dominate.

How the published code maps onto the vectorised contract (docs/cfr_candidate_api.md):
- The published EWMA is one scalar per component object, advanced at every information-set
  update, so it runs across information sets in the order the harness visits them. Here it
  is one running value per player (state ``"last"``), advanced across the player's
  information sets in the engine's order (a causal exponential filter, a convolution with
  0.1·0.9^k truncated where 0.9^k < 1e-18), then carried to the next iteration. Deviations:
  the published scalar is also shared between the players, and the engine's order (breadth
  first) is not OpenSpiel's (depth first). With OpenSpiel's order and a shared scalar, a
  per-information-set harness gives 1.86e-5 on Leduc at 1000 iterations (the published
  ≈1.9e-5); this file gives ≈2.5e-5; a separate EWMA per information set would give 3.3e-5.
- The published policy component keeps its own copy of the EWMA, fed the same inputs and
  hence equal to the regret component's; here update_regret stores v, d⁺, d⁻ and m in
  ``state`` and derive_policy / update_average read them back: the same arithmetic.
- The regrets the rules see are the information set's counterfactual regrets summed over
  its histories, as in OpenSpiel's solvers.
"""

# EVOLVE-BLOCK-START
BASE_ALPHA = 1.5
BASE_BETA = -0.1
VOLATILITY_SENSITIVITY = 0.5
MAX_EXPECTED_REGRET = 2.0
BOOST = 1.1
EWMA_DECAY = 0.1
NEGATIVE_REGRET_CAP = -20.0
OPTIMISM_DECAY = 100.0
POLICY_EXPONENT = 1.5
BASE_GAMMA = 2.0
GAMMA_MAX = 4.0
GAMMA_SENSITIVITY = 1.5
WARMUP_ITERATIONS = 500
EWMA_HORIZON = 400  # 0.9**400 < 1e-18: older terms are below float64 resolution
STABILITY_EXPONENT = 1.5
MAGNITUDE_EXPONENT = 0.5


def init_state(num_infosets, num_actions, xp):
    zeros = xp.zeros((num_infosets,))
    return {
        "last": xp.zeros(()),    # the running EWMA after the last information set
        "volatility": zeros,     # normalised volatility v of this iteration
        "magnitude": zeros,      # max_a |r^t(a)| of this iteration
        "discount_pos": zeros,   # d+ of this iteration
        "discount_neg": zeros,   # d- of this iteration
    }


def _boost(inst_regret, xp):
    return xp.where(inst_regret > 0.0, inst_regret * BOOST, inst_regret)


def update_regret(cum_regret, inst_regret, t, state, xp):
    magnitude = xp.max(xp.abs(inst_regret), axis=1)
    # The running EWMA advanced across information sets 0, 1, ..., I-1 in turn:
    # e_k = 0.1 m_k + 0.9 e_{k-1}, starting from the value the last one left behind.
    count = magnitude.shape[0]
    lags = xp.arange(min(count, EWMA_HORIZON))
    smoothed = xp.convolve(magnitude, EWMA_DECAY * (1.0 - EWMA_DECAY) ** lags)[:count]
    carried = (1.0 - EWMA_DECAY) ** (xp.arange(count) + 1.0) * state["last"]
    ewma = xp.where(t <= 1.0, magnitude, smoothed + carried)
    volatility = xp.minimum(1.0, ewma / MAX_EXPECTED_REGRET)
    alpha = xp.maximum(0.1, BASE_ALPHA - VOLATILITY_SENSITIVITY * volatility)
    beta = xp.minimum(alpha, BASE_BETA - VOLATILITY_SENSITIVITY * volatility)
    discount_pos = t ** alpha / (t ** alpha + 1.0)
    discount_neg = t ** beta / (t ** beta + 1.0)
    discounted = xp.where(cum_regret >= 0.0, cum_regret * discount_pos[:, None],
                          cum_regret * discount_neg[:, None])
    new_regret = xp.maximum(NEGATIVE_REGRET_CAP, discounted + _boost(inst_regret, xp))
    state = dict(state, last=ewma[-1], volatility=volatility, magnitude=magnitude,
                 discount_pos=discount_pos, discount_neg=discount_neg)
    return new_regret, state


def derive_policy(cum_regret, inst_regret, legal, t, state, xp):
    volatility = state["volatility"]
    base_optimism = 1.0 / (1.0 + (t - 1.0) / OPTIMISM_DECAY)
    optimism = base_optimism * xp.maximum(0.0, 1.0 - VOLATILITY_SENSITIVITY * volatility)
    discounted = xp.where(cum_regret >= 0.0, cum_regret * state["discount_pos"][:, None],
                          cum_regret * state["discount_neg"][:, None])
    projected = discounted + optimism[:, None] * _boost(inst_regret, xp)
    scaled = xp.maximum(projected, 0.0) ** POLICY_EXPONENT * legal
    total = xp.sum(scaled, axis=1, keepdims=True)
    uniform = legal / xp.sum(legal, axis=1, keepdims=True)
    safe_total = xp.where(total > 0.0, total, 1.0)
    return xp.where(total > 0.0, scaled / safe_total, uniform), state


def update_average(cum_policy, policy, reach, t, state, xp):
    magnitude = state["magnitude"]
    volatility = xp.minimum(1.0, magnitude / MAX_EXPECTED_REGRET)
    gamma = xp.minimum(GAMMA_MAX, BASE_GAMMA + GAMMA_SENSITIVITY * volatility)
    temporal = t ** gamma
    stability = 1.0 / (1.0 + magnitude ** STABILITY_EXPONENT)
    emphasis = xp.maximum(0.1, (1.0 + magnitude / MAX_EXPECTED_REGRET) ** MAGNITUDE_EXPONENT)
    weight = xp.where(t > WARMUP_ITERATIONS, temporal * stability * emphasis, 0.0)
    return cum_policy + (weight * reach)[:, None] * policy, state
# EVOLVE-BLOCK-END
