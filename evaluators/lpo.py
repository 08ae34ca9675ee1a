"""An LPO-style drift network: a small MLP whose every parameter vector is a valid drift.

Learned Policy Optimisation (Lu, Kuba, Letcher, Metz, Schroeder de Witt, Foerster,
"Discovered Policy Optimisation", NeurIPS 2022, arXiv:2210.05639) meta-learns the drift
``D(r, A)`` of mirror learning (Kuba et al., ICML 2022) as a neural network trained by an
evolution strategy, then reads DPO's closed form off the result. This module is the
network, written so that the ES can never leave the space of valid drifts:

    D(r, A) = exp(k(r, A)) · ReLU((r − clip(r, 1−ε, 1+ε))·A)  +  (r − 1)² · g(r, A)²,   ε = 0.2
    [k, g]  = W₂ · tanh(W₁ · φ(r, A) + b₁) + b₂                 (one hidden layer, 32 tanh units)

Why every parameter vector is valid (r > 0, any A; k and g are finite, smooth in r):
1. D ≥ 0: both terms are products of non-negative factors.
2. D(1, A) = 0: r − clip(r) = 0 and (r − 1)² = 0 at r = 1.
3. ∂D/∂r(1, A) = 0: on [1−ε, 1+ε] the clipped term is identically 0, so its derivative
   there (whatever the factor exp(k)) is 0; the derivative of (r−1)²·g² is
   2(r−1)·g² + (r−1)²·∂(g²)/∂r, which is 0 at r = 1.
And zero output-layer parameters (W₂ = 0, b₂ = 0) give k = g = 0 exactly, so
D = 1·ReLU(...) + (r−1)²·0, PPO's clipped drift bit for bit. The first term lets the ES
scale PPO's penalty for leaving the trust region up or down (exp(k) ∈ (0, ∞)); the second
adds a smooth penalty of any shape inside and outside it, asymmetric in A if it pays.

Features φ(r, A) (``FEATURES``), with r̃ = clip(r, 1/10, 10) so that they stay bounded
where training rarely goes (the network's output is bounded anyway: |k|, |g| ≤
Σ|W₂| + |b₂| since tanh ≤ 1):

    r̃ − 1,  log r̃,  A,  (r̃ − 1)·A,  log(r̃)·A          (+ progress n/N in the temporal variant)

r − 1 and log r are the two ratio measures DPO's closed form uses (for A ≥ 0 and A < 0);
their products with A give the network the sign and size of the advantage directly, as
both PPO's and DPO's drifts depend on (r − 1)·A or log(r)·A. The temporal variant
(Jackson et al., "Discovering Temporally-Aware Reinforcement Learning Algorithms",
ICLR 2024) appends the training progress n/N as a sixth feature.

Parameters travel as one flat float32 vector (what an ES samples), laid out as
``W₁ [F, H]`` row-major, ``b₁ [H]``, ``W₂ [H, 2]`` row-major, ``b₂ [2]`` (column 0 of
the output is k, column 1 is g). ``render_program`` writes a vector as a complete
candidate module of the ``ppo_objectives`` (or ``temporal_objectives``) space, weights as
literal lists, and ``params_from_program`` reads them back bit for bit.
"""

from __future__ import annotations

import ast
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

EPSILON = 0.2       # PPO's clip range, the fixed part of the drift
HIDDEN = 32         # tanh units of the hidden layer
OUTPUTS = 2         # k (log-scale of PPO's term) and g (extra quadratic penalty)
RATIO_RANGE = 10.0  # features see r clipped to [1/RATIO_RANGE, RATIO_RANGE]
FEATURES = ("r - 1", "log r", "A", "(r - 1)*A", "log(r)*A")
TEMPORAL_FEATURES = FEATURES + ("progress",)
WEIGHT_NAMES = ("W1", "B1", "W2", "B2")


class LPOParams(NamedTuple):
    """The network's parameters. F features, H = ``HIDDEN`` hidden units."""

    w1: jax.Array  # [F, H]
    b1: jax.Array  # [H]
    w2: jax.Array  # [H, 2]
    b2: jax.Array  # [2]


def num_features(temporal: bool = False) -> int:
    return len(TEMPORAL_FEATURES if temporal else FEATURES)


def num_params(temporal: bool = False) -> int:
    """Length of the flat parameter vector: F·H + H + H·2 + 2 (258, or 290 temporal)."""
    f = num_features(temporal)
    return f * HIDDEN + HIDDEN + HIDDEN * OUTPUTS + OUTPUTS


def _shapes(temporal: bool) -> tuple[tuple[int, ...], ...]:
    return ((num_features(temporal), HIDDEN), (HIDDEN,), (HIDDEN, OUTPUTS), (OUTPUTS,))


def unflatten(flat, temporal: bool = False) -> LPOParams:
    """Flat vector ``[num_params(temporal)]`` (NumPy or JAX, traced or not) → ``LPOParams``."""
    n = num_params(temporal)
    if tuple(np.shape(flat)) != (n,):
        kind = "temporal " if temporal else ""
        raise ValueError(f"a {kind}LPO parameter vector has shape ({n},), got {tuple(np.shape(flat))}")
    parts, start = [], 0
    for shape in _shapes(temporal):
        size = int(np.prod(shape))
        parts.append(jnp.reshape(flat[start:start + size], shape))
        start += size
    return LPOParams(*parts)


def flatten(params: LPOParams) -> np.ndarray:
    """``LPOParams`` → flat float32 NumPy vector (the layout documented in the module)."""
    return np.concatenate([np.asarray(p, np.float32).reshape(-1) for p in params])


def initial_params(seed: int = 0, temporal: bool = False) -> np.ndarray:
    """The ES's starting point: PPO. Hidden layer from a LeCun-normal draw (std 1/√F, zero
    biases) so that the hidden units already differ from one another; output layer zero, so
    the drift is exactly PPO's clip drift. Float32, ``[num_params(temporal)]``."""
    rng = np.random.default_rng(int(seed))
    f = num_features(temporal)
    w1 = rng.normal(0.0, 1.0 / np.sqrt(f), size=(f, HIDDEN)).astype(np.float32)
    zeros = lambda *s: np.zeros(s, np.float32)
    return flatten(LPOParams(w1, zeros(HIDDEN), zeros(HIDDEN, OUTPUTS), zeros(OUTPUTS)))


# ----------------------------------------------------------------------------- the drift
def drift_value(params: LPOParams, ratio, advantage, progress=None):
    """D(r, A) of the module docstring, elementwise: ratio, advantage ``[B]`` → ``[B]``.
    ``progress`` (a scalar n/N) is required by, and only used by, a temporal network.

    The rendered program (``render_program``) spells out the same operations in the same
    order, so both compile to the same computation.
    """
    r = jnp.clip(ratio, 1.0 / RATIO_RANGE, RATIO_RANGE)
    log_r = jnp.log(r)
    columns = [r - 1.0, log_r, advantage, (r - 1.0) * advantage, log_r * advantage]
    if params.w1.shape[0] == len(TEMPORAL_FEATURES):
        if progress is None:
            raise ValueError("a temporal LPO network needs the training progress n/N")
        columns.append(progress * jnp.ones_like(ratio))
    features = jnp.stack(columns, axis=-1)
    hidden = jnp.tanh(features @ params.w1 + params.b1)
    out = hidden @ params.w2 + params.b2
    clipped = jnp.clip(ratio, 1.0 - EPSILON, 1.0 + EPSILON)
    ppo_term = jax.nn.relu((ratio - clipped) * advantage)
    return jnp.exp(out[..., 0]) * ppo_term + jnp.square(ratio - 1.0) * jnp.square(out[..., 1])


def drift_from_params(flat, temporal: bool = False) -> Callable:
    """``drift(ratio, advantage, progress=None, horizon=None) -> D`` for a flat vector.

    Usable as ``evaluators.ppo.Objective(drift=...)`` (which passes progress and horizon)
    and as a ``ppo_objectives`` drift (two arguments). ``flat`` may be a traced array, so a
    population of drifts can be trained under ``vmap``.
    """
    params = unflatten(jnp.asarray(flat, jnp.float32), temporal)

    def drift(ratio, advantage, progress=None, horizon=None):
        return drift_value(params, ratio, advantage, progress if temporal else None)
    return drift


# ----------------------------------------------------------------------------- programs
_PROGRAM = '''\
"""LPO-style drift network{title}.

A drift D(r, A{progress_doc}) for PPO (mirror learning, Kuba et al., ICML 2022) given by a
small MLP, as in Learned Policy Optimisation (Lu et al., "Discovered Policy Optimisation",
NeurIPS 2022), meta-learned by an evolution strategy (evaluators/lpo.py, discover meta-train):

    D = exp(k) * relu((r - clip(r, 1 - EPSILON, 1 + EPSILON)) * A) + (r - 1)^2 * g^2
    [k, g] = tanh(phi @ W1 + B1) @ W2 + B2,   phi = {features}

with r clipped to [1/RATIO_RANGE, RATIO_RANGE] inside phi. Every choice of weights gives a
valid drift (D >= 0, D(1, A) = 0, dD/dr(1, A) = 0), and W2 = B2 = 0 gives PPO's clip drift
exactly.{note}
"""

import jax
import jax.numpy as jnp

# EVOLVE-BLOCK-START
EPSILON = {epsilon!r}
RATIO_RANGE = {ratio_range!r}
{weights}

def drift({signature}):
    r = jnp.clip(ratio, 1.0 / RATIO_RANGE, RATIO_RANGE)
    log_r = jnp.log(r)
    columns = [r - 1.0, log_r, advantage, (r - 1.0) * advantage, log_r * advantage]{progress_column}
    features = jnp.stack(columns, axis=-1)
    hidden = jnp.tanh(features @ jnp.asarray(W1, jnp.float32) + jnp.asarray(B1, jnp.float32))
    out = hidden @ jnp.asarray(W2, jnp.float32) + jnp.asarray(B2, jnp.float32)
    clipped = jnp.clip(ratio, 1.0 - EPSILON, 1.0 + EPSILON)
    ppo_term = jax.nn.relu((ratio - clipped) * advantage)
    return jnp.exp(out[..., 0]) * ppo_term + jnp.square(ratio - 1.0) * jnp.square(out[..., 1])
# EVOLVE-BLOCK-END
'''


def _literal(array: np.ndarray, indent: str = "") -> str:
    """A float32 array as nested Python lists of ``repr(float(x))``: the shortest decimal
    that reads back to the same double, hence to the same float32. Four numbers a line."""
    if array.ndim == 1:
        numbers = [repr(float(x)) for x in array]
        if len(numbers) <= 4:
            return "[" + ", ".join(numbers) + "]"
        lines = [", ".join(numbers[i:i + 4]) for i in range(0, len(numbers), 4)]
        inner = indent + "    "
        return "[\n" + ",\n".join(inner + line for line in lines) + ",\n" + indent + "]"
    inner = indent + "    "
    rows = ",\n".join(inner + _literal(row, inner) for row in array)
    return "[\n" + rows + ",\n" + indent + "]"


def render_program(flat, *, generation: int, note: str = "", temporal: bool = False) -> str:
    """A complete, self-contained candidate module for the ``ppo_objectives`` space
    (``temporal_objectives`` with ``temporal=True``) computing ``drift_from_params(flat)``.

    It imports only ``jax`` and ``jax.numpy``; the weights are literal lists inside the
    ``# EVOLVE-BLOCK-START`` / ``END`` block, so the space evaluates it like any program
    and the mutators can keep editing it. ``generation`` and ``note`` go in its docstring.
    """
    flat = np.asarray(flat, np.float32)
    params = unflatten(flat, temporal)
    weights = "\n".join(f"{name} = {_literal(np.asarray(p, np.float32))}"
                        for name, p in zip(WEIGHT_NAMES, params))
    title = f", meta-learned generation {int(generation)}"
    note_text = " ".join(str(note).split())
    return _PROGRAM.format(
        title=title,
        progress_doc=", n/N" if temporal else "",
        features=", ".join(TEMPORAL_FEATURES if temporal else FEATURES),
        note=f"\n\n{note_text}" if note_text else "",
        epsilon=EPSILON, ratio_range=RATIO_RANGE, weights=weights,
        signature="ratio, advantage, progress, horizon" if temporal else "ratio, advantage",
        progress_column="\n    columns.append(progress * jnp.ones_like(ratio))" if temporal else "",
    )


def params_from_program(source: str) -> np.ndarray:
    """The flat float32 parameter vector of a program written by ``render_program`` (or
    edited later, as long as ``W1``, ``B1``, ``W2``, ``B2`` are still literal lists at top
    level with the network's shapes). Raises ``ValueError`` otherwise."""
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise ValueError(f"the program does not parse: {e.msg} (line {e.lineno})") from None
    found: dict[str, np.ndarray] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in WEIGHT_NAMES:
                try:
                    found[name] = np.asarray(ast.literal_eval(node.value), np.float32)
                except (ValueError, TypeError, SyntaxError):
                    raise ValueError(f"{name} is not a literal list of numbers") from None
    missing = [n for n in WEIGHT_NAMES if n not in found]
    if missing:
        raise ValueError(f"the program defines no LPO weights {', '.join(missing)} at top level")
    temporal = found["W1"].ndim == 2 and found["W1"].shape[0] == len(TEMPORAL_FEATURES)
    for name, shape in zip(WEIGHT_NAMES, _shapes(temporal)):
        if found[name].shape != shape:
            raise ValueError(f"{name} has shape {found[name].shape}, expected {shape}")
    return flatten(LPOParams(*(found[n] for n in WEIGHT_NAMES)))


def is_temporal(flat) -> bool:
    """Whether a flat vector belongs to the temporal network (by its length)."""
    n = int(np.size(flat))
    if n not in (num_params(False), num_params(True)):
        raise ValueError(f"an LPO parameter vector has {num_params(False)} or {num_params(True)} "
                         f"entries, got {n}")
    return n == num_params(True)
