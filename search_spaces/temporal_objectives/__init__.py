"""temporal_objectives: evolve PPO's drift with the training progress as an input.

Temporally-aware LPO (Jackson, Lu, Kirsch, Lange, Whiteson, Foerster, "Discovering
Temporally-Aware Reinforcement Learning Algorithms", ICLR 2024): the drift of mirror
learning (Kuba et al. 2022; Lu et al. 2022) also sees how far training has come, so an
objective can, e.g., explore early and tighten its trust region late. The evaluator is
``evaluators.ppo`` through ``search_spaces.policy_objectives``.
"""

from __future__ import annotations

from pathlib import Path

from discover.space import MEAN_FITNESS_DOC

from search_spaces.policy_adapter import drift_export
from search_spaces.policy_objectives import DriftSpace, PROBE_PROGRESS, function

DOC = '''\
Write the policy objective of PPO as a *drift* function that may change over training.
PPO trains a policy π by repeatedly collecting experience with the current policy π_old and
then taking several gradient steps on a surrogate objective. For a sampled state-action pair

  r = π(a|s) / π_old(a|s)   the probability ratio (r > 0; r = 1 before the first step)
  A                        the advantage of the action (standardised per minibatch: mean 0, std 1)
  progress = n / N         the fraction of training done: n is the index of the current
                           update (0, 1, ..., N-1), N the number of updates of the run
  horizon = N              the number of updates of the run (about 1000 on CartPole)

The trainer maximises the mean over a minibatch of   r·A − D(r, A, progress, horizon).
The drift D is the price of moving the policy away from π_old; it decides how far and how
fast the policy moves, and here it may depend on the stage of training.

Define one function, elementwise over the minibatch:

  def drift(ratio, advantage, progress, horizon):
      """ratio, advantage: float32 arrays [B]; progress, horizon: float32 scalars.
      Returns D, shape [B]."""

Use jax.numpy (import jax; import jax.numpy as jnp) and no Python `if` on array values
(use jnp.where); the function is traced and differentiated by JAX.

A valid drift (checked before any training on a grid of r in [0.3, 3], A in [-3, 3] and
progress in [0, 0.99]; a candidate that fails is rejected), at every progress:
  1. D >= 0 everywhere;
  2. D(1, A) = 0 for every A;
  3. dD/dr = 0 at r = 1 for every A.
The output must be finite and have the shape of the inputs.

Known drifts:
  PPO clip:        D = relu((r - clip(r, 1-eps, 1+eps)) * A), eps = 0.2
  annealed clip:   the same with eps = 0.2 * (1 - progress)
  DPO:             D = relu((r-1)A - 2 tanh((r-1)A/2)) if A >= 0 else relu(log(r)A - 0.6 tanh(log(r)A/0.6))

Scoring: PPO is trained with your drift (GAE advantages, purejaxrl hyperparameters) on
CartPole-v1, Acrobot-v1 and Breakout-MinAtar, several seeds at once; the final policy is
evaluated on fresh episodes. A task's score is (R - R_random) / (R_PPO - R_random): 1 matches
PPO with the clip objective, 0 is the random policy; higher is better. Held-out tasks are
other MinAtar games (SpaceInvaders, Asterix, Freeway).
'''
DOC += MEAN_FITNESS_DOC + "\n"

MECHANISMS = {
    "ppo_clip": '''\
import jax
import jax.numpy as jnp

EPSILON = 0.2


def drift(ratio, advantage, progress, horizon):
    clipped = jnp.clip(ratio, 1.0 - EPSILON, 1.0 + EPSILON)
    return jax.nn.relu((ratio - clipped) * advantage)
''',
    "annealed_clip": '''\
import jax
import jax.numpy as jnp

EPSILON_START = 0.2


def drift(ratio, advantage, progress, horizon):
    epsilon = EPSILON_START * (1.0 - progress)
    clipped = jnp.clip(ratio, 1.0 - epsilon, 1.0 + epsilon)
    return jax.nn.relu((ratio - clipped) * advantage)
''',
    "dpo": '''\
import jax
import jax.numpy as jnp

ALPHA = 2.0
BETA = 0.6


def drift(ratio, advantage, progress, horizon):
    change = (ratio - 1.0) * advantage
    positive = jax.nn.relu(change - ALPHA * jnp.tanh(change / ALPHA))
    log_change = jnp.log(ratio) * advantage
    negative = jax.nn.relu(log_change - BETA * jnp.tanh(log_change / BETA))
    return jnp.where(advantage >= 0.0, positive, negative)
''',
    "kl_growing": '''\
import jax.numpy as jnp

KL_START = 0.5
KL_END = 4.0


def drift(ratio, advantage, progress, horizon):
    coef = KL_START + (KL_END - KL_START) * progress
    return coef * (ratio * jnp.log(ratio) - ratio + 1.0)
''',
    "dpo_annealed": '''\
import jax
import jax.numpy as jnp

ALPHA = 2.0
BETA = 0.6
FLOOR = 0.1


def drift(ratio, advantage, progress, horizon):
    scale = FLOOR + (1.0 - FLOOR) * (1.0 - progress)
    alpha = ALPHA * scale
    beta = BETA * scale
    change = (ratio - 1.0) * advantage
    positive = jax.nn.relu(change - alpha * jnp.tanh(change / alpha))
    log_change = jnp.log(ratio) * advantage
    negative = jax.nn.relu(log_change - beta * jnp.tanh(log_change / beta))
    return jnp.where(advantage >= 0.0, positive, negative)
''',
}


class TemporalObjectivesSpace(DriftSpace):
    name = "temporal_objectives"
    doc = DOC
    seeds_dir = Path(__file__).resolve().parents[2] / "seeds" / "temporal_objectives"
    reference_seed = "ppo_clip"   # its evaluation time sets each task's time limit
    signatures = {"drift": "def drift(ratio: Array[B], advantage: Array[B], progress: float, horizon: float) "
                           "-> Array[B]"}
    export_adapter = drift_export(Path(__file__).resolve().parent, "temporal")
    temporal = True               # the drift reads the training progress
    mechanisms = MECHANISMS
    progresses = PROBE_PROGRESS

    def drift4(self, namespace):
        return function(namespace, "drift")


SPACE = TemporalObjectivesSpace()
