"""Using a policy-objective program outside discover: the drift, a drop-in JAX policy loss,
the advantage rule.

These are what ``discover export`` packages of the drift and advantage spaces offer and
what ``discover.load_algorithm(name)`` objects of those spaces provide (each space
declares its ``ExportAdapter``, built here)::

    loss = load_algorithm("my_objective").policy_loss()
    loss(log_prob, old_log_prob, advantages)         # -mean(r·Â − D(r, Â)), a scalar
    rule = load_algorithm("my_advantages").advantage_fn()
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from discover.space import ExportAdapter

TEMPLATES = Path(__file__).resolve().parent    # the spaces' folders, each holding its templates


def _space_of(algorithm):
    from discover.spaces import get_space
    return get_space(algorithm.space)


def drift(algorithm) -> Callable:
    """The program's drift as it defines it: ``drift(ratio, advantage)``, or
    ``drift(ratio, advantage, progress, horizon)`` in a temporally aware space
    (docs/spaces/policy_objectives.md). JAX-traceable."""
    return algorithm.functions(("drift",))["drift"]


def policy_loss(algorithm) -> Callable:
    """A drop-in JAX policy loss with the program's drift (``drift_policy_loss``)::

        loss(log_prob, old_log_prob, advantages, *, progress=None, horizon=None,
             normalize=True) -> scalar

    ``-mean(r·Â − D(r, Â[, progress, horizon]))`` with ``r = exp(log_prob − old_log_prob)``
    and ``Â`` the advantages standardised over the batch (unless ``normalize=False``),
    exactly as ``evaluators.ppo``'s trainer computes its policy loss. ``progress`` (n/N)
    and ``horizon`` (N) are required by temporally aware objectives and ignored otherwise.
    """
    space = _space_of(algorithm)
    drift4 = space.drift4(algorithm.namespace())
    temporal = bool(getattr(space, "temporal", False))
    name = algorithm.name

    def loss(log_prob, old_log_prob, advantages, *, progress=None, horizon=None, normalize=True):
        if temporal and (progress is None or horizon is None):
            raise ValueError(f"algorithm {name!r} is a temporally aware objective: pass progress "
                             "(n/N, the fraction of training done) and horizon (N, the number of updates)")
        return drift_policy_loss(drift4, log_prob, old_log_prob, advantages,
                                 progress=0.0 if progress is None else progress,
                                 horizon=1.0 if horizon is None else horizon, normalize=normalize)

    loss.__doc__ = f"The policy loss of algorithm {name!r} (search_spaces.policy_adapter.policy_loss)."
    return loss


def advantage_fn(algorithm) -> Callable:
    """The program's advantage rule,
    ``advantages(rewards, values, dones, last_value, gamma, lam) -> (advantages, targets)``
    on time-major ``[T, E]`` arrays (``last_value`` ``[E]``); JAX-traceable, with ``gamma``
    and ``lam`` Python floats (docs/spaces/policy_objectives.md)."""
    return algorithm.functions(("advantages",))["advantages"]


def drift_policy_loss(drift4: Callable, log_prob, old_log_prob, advantages, *, progress=0.0, horizon=1.0,
                      normalize: bool = True):
    """Mirror learning's policy loss with drift ``drift4`` (Kuba et al., ICML 2022; Lu et
    al., "Discovered Policy Optimisation", NeurIPS 2022), as ``evaluators.ppo``'s trainer
    computes it in ``make_train``'s ``loss_fn``::

        r = exp(log_prob − old_log_prob)
        Â = (A − mean(A)) / (std(A) + 1e-8)           (if normalize)
        L = −mean(r·Â − D(r, Â, progress, horizon))

    Args:
      drift4: ``D(ratio, advantage, progress, horizon)``, elementwise, JAX-traceable.
      log_prob: ``log π(a|s)`` of the sampled actions under the policy being trained, any
        shape (e.g. ``[B]``); gradients flow through it.
      old_log_prob: ``log π_old(a|s)`` from the rollout, same shape.
      advantages: same shape; used as data (stop their gradient yourself if they depend on
        parameters). Standardised over all their elements when ``normalize``.
      progress, horizon: ``n/N`` and ``N``, float32 scalars as in the trainer (only
        temporally aware drifts read them).

    Returns:
      A scalar. PPO's clipped surrogate ``−mean(min(r·Â, clip(r, 1−ε, 1+ε)·Â))`` is the
      drift ``ReLU((r − clip(r, 1−ε, 1+ε))·Â)``.

    Raises:
      ValueError: the three arrays differ in shape.
    """
    import jax.numpy as jnp

    log_prob, old_log_prob, advantages = (jnp.asarray(x) for x in (log_prob, old_log_prob, advantages))
    if not (log_prob.shape == old_log_prob.shape == advantages.shape):
        raise ValueError(f"log_prob, old_log_prob and advantages must have one shape, got {log_prob.shape}, "
                         f"{old_log_prob.shape} and {advantages.shape}")
    from evaluators.ppo import drift_policy_loss as trainer_loss

    loss, _, _ = trainer_loss(drift4, log_prob, old_log_prob, advantages, jnp.asarray(progress, jnp.float32),
                              jnp.asarray(horizon, jnp.float32), normalize)
    return loss


_DRIFT_NOTE = (" For policy objectives, a task's score is (R − R_random) / (R_PPO − R_random): 1 matches "
               "PPO (clip 0.2, GAE) trained the same way, 0 the uniform random policy.")


def drift_export(usage: Path, prefix: str) -> ExportAdapter:
    """The adapter of a drift space; its usage texts are ``usage/<prefix>_usage.{txt,md}.tmpl``."""
    return ExportAdapter(code=TEMPLATES / "ppo_objectives" / "drift_adapter.py.tmpl",
                         tests=TEMPLATES / "ppo_objectives" / "test_drift.py.tmpl",
                         doc_usage=usage / f"{prefix}_usage.txt.tmpl", readme_usage=usage / f"{prefix}_usage.md.tmpl",
                         score_note=_DRIFT_NOTE, methods={"drift": drift, "policy_loss": policy_loss})


ADVANTAGE_EXPORT = ExportAdapter(
    code=TEMPLATES / "advantage_rules" / "advantage_adapter.py.tmpl",
    tests=TEMPLATES / "advantage_rules" / "test_advantages.py.tmpl",
    doc_usage=TEMPLATES / "advantage_rules" / "advantage_usage.txt.tmpl",
    readme_usage=TEMPLATES / "advantage_rules" / "advantage_usage.md.tmpl",
    score_note=_DRIFT_NOTE.replace("PPO (clip 0.2, GAE)", "PPO with GAE"), methods={"advantage_fn": advantage_fn})
