"""PPO with a clipping range annealed linearly to zero over training.

Schulman et al., "Proximal Policy Optimization Algorithms" (2017, arXiv:1707.06347),
Atari experiments (Table 5): ε = 0.1·α with α annealed linearly from 1 to 0 over training.
Written as a drift of the training progress p = n/N (Jackson et al., "Discovering
Temporally-Aware Reinforcement Learning Algorithms", ICLR 2024, motivate such schedules):

    ε(p) = ε₀·(1 − p),   D(r, A, p) = ReLU((r − clip(r, 1−ε(p), 1+ε(p)))·A)

so the trust region shrinks as the policy converges.
"""

import jax
import jax.numpy as jnp

# EVOLVE-BLOCK-START
EPSILON_START = 0.2


def drift(ratio, advantage, progress, horizon):
    epsilon = EPSILON_START * (1.0 - progress)
    clipped = jnp.clip(ratio, 1.0 - epsilon, 1.0 + epsilon)
    return jax.nn.relu((ratio - clipped) * advantage)
# EVOLVE-BLOCK-END
