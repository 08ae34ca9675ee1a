"""Generalised advantage estimation (GAE).

Schulman, Moritz, Levine, Jordan, Abbeel, "High-Dimensional Continuous Control Using
Generalized Advantage Estimation" (ICLR 2016, arXiv:1506.02438), equation (16):

    δ_t = r_t + γ·(1 − d_t)·V(s_{t+1}) − V(s_t)
    Â_t = δ_t + γλ·(1 − d_t)·Â_{t+1}

computed backwards over the rollout with a reverse scan; the value targets are Â_t + V(s_t)
(the λ-return). d_t = 1 where the episode ended at step t, so nothing is bootstrapped across
an episode boundary; after the last step the critic's value of the next observation is used.
"""

import jax
import jax.numpy as jnp

# EVOLVE-BLOCK-START
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
# EVOLVE-BLOCK-END
