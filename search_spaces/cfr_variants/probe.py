"""The behavioural fingerprint of a cfr_variants candidate (for the selector's ε-net).

The candidate's rules are run with NumPy on a fixed synthetic problem: six information
sets with four action slots (one set with a single legal action, others with illegal
slots), a fixed own-reach vector (one zero), and seven iterations t = 1, 2, 3, 10, 100,
600, 1000 of seeded instantaneous regrets with mixed signs and magnitudes from 0.01 to 5.
Each step calls the rules in the engine's order (update_regret → update_average →
derive_policy), so state and history matter. The fingerprint is, per step, the policy
returned by derive_policy and the normalised cumulative policy (the average policy),
flattened: 7 × 2 × 6 × 4 = 336 numbers.

Only behaviour enters: raw cumulative regrets and the scale of the cumulative policy are
left out, so two programs that differ by a constant rescaling of their sums (which regret
matching and normalisation ignore) share a fingerprint, as do renamed or reformatted copies.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

PROBE_SEED = 20260218
PROBE_TIMES = (1.0, 2.0, 3.0, 10.0, 100.0, 600.0, 1000.0)
PROBE_SCALES = (1.0, 0.5, 5.0, 0.01, 1.0, 2.0, 0.1)
PROBE_LEGAL = np.array([
    [1, 1, 1, 1],
    [1, 1, 0, 0],
    [1, 0, 1, 1],
    [0, 1, 1, 0],
    [1, 0, 0, 0],
    [1, 1, 1, 0],
], dtype=np.float64)
PROBE_REACH = np.array([1.0, 0.5, 0.25, 0.0, 0.8, 0.1])

RULE_NAMES = ("init_state", "update_regret", "derive_policy", "update_average")


def probe_inputs() -> list[tuple[float, np.ndarray]]:
    """The fixed (t, instantaneous regret [6, 4]) sequence; zero on illegal actions."""
    rng = np.random.default_rng(PROBE_SEED)
    steps = []
    for t, scale in zip(PROBE_TIMES, PROBE_SCALES):
        regret = rng.standard_normal(PROBE_LEGAL.shape) * scale * PROBE_LEGAL
        steps.append((t, regret))
    return steps


def _array(name: str, out: Any, shape: tuple[int, ...]) -> tuple[np.ndarray, Any]:
    if not (isinstance(out, tuple) and len(out) == 2):
        raise ValueError(f"{name} must return a pair (array, state), got {type(out).__name__}.")
    value, state = out
    try:
        value = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} returned something that is not a numeric array ({e}).") from None
    if value.shape != shape:
        raise ValueError(f"{name} returned shape {value.shape} on the probe inputs, expected {shape}.")
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{name} returned NaN or infinite values on the probe inputs.")
    if not isinstance(state, Mapping):
        raise ValueError(f"{name} returned a state of type {type(state).__name__}, expected a dict.")
    return value, state


def _normalise(cum_policy: np.ndarray, legal: np.ndarray) -> np.ndarray:
    mass = cum_policy * legal
    total = mass.sum(axis=1, keepdims=True)
    uniform = legal / legal.sum(axis=1, keepdims=True)
    return np.where(total > 0.0, mass / np.where(total > 0.0, total, 1.0), uniform)


def fingerprint(namespace: Mapping[str, Any]) -> np.ndarray:
    """The candidate's outputs on the probe inputs as a flat float64 vector.

    Args:
      namespace: the candidate module's globals (must define the four rule functions).

    Raises:
      ValueError: a function is missing, or an output has the wrong shape or is not finite.
    """
    missing = [n for n in RULE_NAMES if not callable(namespace.get(n))]
    if missing:
        raise ValueError(f"the candidate does not define {', '.join(missing)}.")
    legal = PROBE_LEGAL.copy()
    shape = legal.shape
    with np.errstate(all="ignore"):
        state = namespace["init_state"](shape[0], shape[1], np)
        if not isinstance(state, Mapping):
            raise ValueError(f"init_state returned {type(state).__name__}, expected a dict.")
        cum_regret = np.zeros(shape)
        cum_policy = np.zeros(shape)
        policy = legal / legal.sum(axis=1, keepdims=True)
        outputs = []
        for t, regret in probe_inputs():
            cum_regret, state = _array(
                "update_regret", namespace["update_regret"](cum_regret, regret.copy(), t, state, np), shape)
            cum_policy, state = _array(
                "update_average",
                namespace["update_average"](cum_policy, policy.copy(), PROBE_REACH.copy(), t, state, np), shape)
            policy, state = _array(
                "derive_policy",
                namespace["derive_policy"](cum_regret, regret.copy(), legal.copy(), t, state, np), shape)
            outputs.append(policy.ravel())
            outputs.append(_normalise(cum_policy, legal).ravel())
    return np.concatenate(outputs)
