"""PPO's clipped surrogate objective as a drift that ignores the training progress.

Schulman et al., "Proximal Policy Optimization Algorithms" (2017, arXiv:1707.06347); drift
form from mirror learning (Kuba et al., ICML 2022) and LPO (Lu et al., NeurIPS 2022):
D(r, A) = ReLU((r − clip(r, 1−ε, 1+ε))·A). The temporal space also hands the drift the
training progress n/N and the horizon N (Jackson et al., "Discovering Temporally-Aware
Reinforcement Learning Algorithms", ICLR 2024); PPO does not use them.
"""

import jax
import jax.numpy as jnp

# EVOLVE-BLOCK-START
EPSILON = 0.2


def drift(ratio, advantage, progress, horizon):
    clipped = jnp.clip(ratio, 1.0 - EPSILON, 1.0 + EPSILON)
    return jax.nn.relu((ratio - clipped) * advantage)
# EVOLVE-BLOCK-END
