"""advantage_rules: evolve how PPO turns rewards and value estimates into advantages.

The candidate replaces generalised advantage estimation (Schulman et al., ICLR 2016) inside
``evaluators.ppo`` (purejaxrl-style PPO on gymnax, clip objective), evaluated through
``search_spaces.policy_objectives``.
"""

from __future__ import annotations

from pathlib import Path

from discover.space import MEAN_FITNESS_DOC

import numpy as np

from evaluators import ppo
from search_spaces.policy_adapter import ADVANTAGE_EXPORT
from search_spaces.policy_objectives import (PolicyObjectiveSpace, advantage_probe_inputs, function,
                                 run_advantage_rule)

DOC = '''\
Write the rule that turns a rollout into advantages and value targets for PPO.
PPO collects T = num_steps steps from E parallel environments with the current policy, then
asks your rule how good each action was (the advantage, which weights the policy gradient)
and what the critic should predict (the target of the value regression). Arrays are
time-major, float32:

  rewards    [T, E]  reward received after the action at step t
  values     [T, E]  the critic's value estimate V(s_t) of the state the action was taken in
  dones      [T, E]  1.0 where the episode ended at step t (the state at t+1 starts a new
                     episode and must not be bootstrapped from), else 0.0
  last_value [E]     the critic's value of the state after the last step (for bootstrapping
                     episodes the rollout cuts off)
  gamma      float   discount factor (0.99)
  lam        float   GAE's lambda (0.95); you may ignore it

Define one function:

  def advantages(rewards, values, dones, last_value, gamma, lam):
      """Returns (advantages [T, E], targets [T, E])."""

Use jax.numpy / jax.lax (import jax; import jax.numpy as jnp); the function is traced by
JAX, so loop over time with jax.lax.scan(step, init, xs, reverse=True) rather than a Python
loop over array values. Outputs must be finite with shape [T, E] (checked on a fixed probe
rollout before training). Advantages are standardised per minibatch by the trainer before
the policy loss; targets are used unscaled by a clipped squared-error value loss.

Known rules:
  GAE:          delta_t = r_t + gamma (1-d_t) V_{t+1} - V_t;  A_t = delta_t + gamma lam (1-d_t) A_{t+1};
                targets = A + V
  Monte Carlo:  G_t = r_t + gamma (1-d_t) G_{t+1} (G_T = last_value);  A = G - V;  targets = G

Scoring: PPO (clip objective, purejaxrl hyperparameters) is trained with your rule on
CartPole-v1, Acrobot-v1 and Breakout-MinAtar, several seeds at once; the final policy is
evaluated on fresh episodes. A task's score is (R - R_random) / (R_PPO - R_random): 1 matches
PPO with GAE, 0 is the random policy; higher is better. Held-out tasks are other MinAtar
games (SpaceInvaders, Asterix, Freeway).
'''
DOC += MEAN_FITNESS_DOC + "\n"

MECHANISMS = {
    "gae": '''\
import jax
import jax.numpy as jnp


def advantages(rewards, values, dones, last_value, gamma, lam):
    def step(carry, x):
        next_advantage, next_value = carry
        reward, value, done = x
        not_done = 1.0 - done
        delta = reward + gamma * next_value * not_done - value
        advantage = delta + gamma * lam * not_done * next_advantage
        return (advantage, value), advantage

    init = (jnp.zeros_like(last_value), last_value)
    _, adv = jax.lax.scan(step, init, (rewards, values, dones), reverse=True)
    return adv, adv + values
''',
    "monte_carlo": '''\
import jax


def advantages(rewards, values, dones, last_value, gamma, lam):
    def step(next_return, x):
        reward, done = x
        ret = reward + gamma * (1.0 - done) * next_return
        return ret, ret

    _, returns = jax.lax.scan(step, last_value, (rewards, dones), reverse=True)
    return returns - values, returns
''',
    "td_residual": '''\
import jax.numpy as jnp


def advantages(rewards, values, dones, last_value, gamma, lam):
    next_values = jnp.concatenate([values[1:], last_value[None]], axis=0)
    delta = rewards + gamma * (1.0 - dones) * next_values - values
    return delta, delta + values
''',
}


class AdvantageRulesSpace(PolicyObjectiveSpace):
    name = "advantage_rules"
    doc = DOC
    required_functions = ("advantages",)
    seeds_dir = Path(__file__).resolve().parents[2] / "seeds" / "advantage_rules"
    reference_seed = "gae"   # its evaluation time sets each task's time limit
    signatures = {"advantages": "def advantages(rewards: Array[T, E], values: Array[T, E], dones: Array[T, E], "
                                "last_value: Array[E], gamma: float, lam: float) -> tuple[Array[T, E], Array[T, E]]"}
    export_adapter = ADVANTAGE_EXPORT
    mechanisms = MECHANISMS

    def objective(self, namespace):
        return ppo.Objective(drift=ppo.clip_drift(0.2), advantages=function(namespace, "advantages"))

    def check(self, namespace, config):
        rule = function(namespace, "advantages")
        for inputs in advantage_probe_inputs():
            run_advantage_rule(rule, *inputs)

    def probe(self, namespace):
        rule = function(namespace, "advantages")
        parts = []
        for inputs in advantage_probe_inputs():
            adv, targets = run_advantage_rule(rule, *inputs)
            parts += [adv.ravel(), targets.ravel()]
        return np.concatenate(parts)


SPACE = AdvantageRulesSpace()
