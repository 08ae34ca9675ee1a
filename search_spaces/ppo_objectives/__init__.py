"""ppo_objectives: evolve the policy objective of PPO, written as a drift function.

The candidate is the drift D(r, A) of mirror learning (Kuba et al., ICML 2022) that LPO
meta-learned (Lu et al., "Discovered Policy Optimisation", NeurIPS 2022); the evaluator is
``evaluators.ppo`` (purejaxrl-style PPO on gymnax) through ``search_spaces.policy_objectives``.
"""

from __future__ import annotations

from pathlib import Path

from discover.space import MEAN_FITNESS_DOC

from search_spaces.policy_adapter import drift_export
from search_spaces.policy_objectives import DriftSpace, function

DOC = '''\
Write the policy objective of PPO as a *drift* function. PPO trains a policy π by
repeatedly collecting experience with the current policy π_old and then taking several
gradient steps on a surrogate objective. For a sampled state-action pair let

  r = π(a|s) / π_old(a|s)   the probability ratio (r > 0; r = 1 before the first step)
  A                        the advantage of the action (standardised per minibatch: mean 0, std 1)

The trainer maximises the mean over a minibatch of   r·A − D(r, A).
r·A alone pushes the policy as far as it can go; the drift D(r, A) is the price of moving
the policy away from π_old, so it decides how far and how fast the policy moves.

Define one function, elementwise over the minibatch:

  def drift(ratio, advantage):
      """ratio, advantage: float32 arrays of shape [B]. Returns D, shape [B]."""

Use jax.numpy (import jax; import jax.numpy as jnp) and no Python `if` on array values
(use jnp.where); the function is traced and differentiated by JAX.

A valid drift (checked on a grid of r in [0.3, 3] and A in [-3, 3] before any training;
a candidate that fails is rejected):
  1. D(r, A) >= 0 everywhere;
  2. D(1, A) = 0 for every A (no cost for not moving);
  3. dD/dr = 0 at r = 1 for every A (the first gradient step is the plain policy gradient).
The output must be finite and have the shape of the inputs.

Known drifts:
  PPO clip:  D = relu((r - clip(r, 1-eps, 1+eps)) * A), eps = 0.2
  DPO:       D = relu((r-1)A - 2 tanh((r-1)A/2)) if A >= 0 else relu(log(r)A - 0.6 tanh(log(r)A/0.6))
  KL (MDPO): D = c * (r log r - r + 1)

Scoring: PPO is trained with your drift (GAE advantages, purejaxrl hyperparameters) on
CartPole-v1, Acrobot-v1 and Breakout-MinAtar, several seeds at once; the final policy is
evaluated on fresh episodes. A task's score is (R - R_random) / (R_PPO - R_random): 1 matches
PPO with the clip objective, 0 is the random policy; higher is better. Held-out tasks are
other MinAtar games (SpaceInvaders, Asterix, Freeway).
'''
DOC += MEAN_FITNESS_DOC + "\n"

# Complete drift definitions the offline mutator may splice in.
MECHANISMS = {
    "ppo_clip": '''\
import jax
import jax.numpy as jnp

EPSILON = 0.2


def drift(ratio, advantage):
    clipped = jnp.clip(ratio, 1.0 - EPSILON, 1.0 + EPSILON)
    return jax.nn.relu((ratio - clipped) * advantage)
''',
    "dpo": '''\
import jax
import jax.numpy as jnp

ALPHA = 2.0
BETA = 0.6


def drift(ratio, advantage):
    change = (ratio - 1.0) * advantage
    positive = jax.nn.relu(change - ALPHA * jnp.tanh(change / ALPHA))
    log_change = jnp.log(ratio) * advantage
    negative = jax.nn.relu(log_change - BETA * jnp.tanh(log_change / BETA))
    return jnp.where(advantage >= 0.0, positive, negative)
''',
    "kl_forward": '''\
import jax.numpy as jnp

KL_COEF = 1.0


def drift(ratio, advantage):
    return KL_COEF * (ratio * jnp.log(ratio) - ratio + 1.0)
''',
    "kl_reverse": '''\
import jax.numpy as jnp

KL_COEF = 1.0


def drift(ratio, advantage):
    return KL_COEF * (ratio - 1.0 - jnp.log(ratio))
''',
    "spo_quadratic": '''\
import jax.numpy as jnp

EPSILON = 0.2


def drift(ratio, advantage):
    return jnp.abs(advantage) / (2.0 * EPSILON) * jnp.square(ratio - 1.0)
''',
    "log_ratio_clip": '''\
import jax
import jax.numpy as jnp

EPSILON = 0.2


def drift(ratio, advantage):
    log_ratio = jnp.log(ratio)
    return jax.nn.relu((log_ratio - jnp.clip(log_ratio, -EPSILON, EPSILON)) * advantage)
''',
}


class PPOObjectivesSpace(DriftSpace):
    name = "ppo_objectives"
    doc = DOC
    seeds_dir = Path(__file__).resolve().parents[2] / "seeds" / "ppo_objectives"
    reference_seed = "ppo_clip"   # its evaluation time sets each task's time limit
    signatures = {"drift": "def drift(ratio: Array[B], advantage: Array[B]) -> Array[B]"}
    export_adapter = drift_export(Path(__file__).resolve().parent, "drift")
    mechanisms = MECHANISMS

    def drift4(self, namespace):
        drift = function(namespace, "drift")
        return lambda ratio, advantage, progress, horizon: drift(ratio, advantage)


SPACE = PPOObjectivesSpace()
