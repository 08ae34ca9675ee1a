"""PPO's clipped surrogate objective, written as a drift.

Schulman, Wolski, Dhariwal, Radford, Klimov, "Proximal Policy Optimization Algorithms"
(2017, arXiv:1707.06347). The drift form is from mirror learning (Kuba et al., ICML 2022)
as used by LPO (Lu et al., "Discovered Policy Optimisation", NeurIPS 2022):

    min(r·A, clip(r, 1−ε, 1+ε)·A) = r·A − ReLU((r − clip(r, 1−ε, 1+ε))·A)

so the drift is D(r, A) = ReLU((r − clip(r, 1−ε, 1+ε))·A): zero inside the trust region
[1−ε, 1+ε] and wherever leaving it lowers the surrogate, linear in r beyond it otherwise.
"""

import jax
import jax.numpy as jnp

# EVOLVE-BLOCK-START
EPSILON = 0.2


def drift(ratio, advantage):
    clipped = jnp.clip(ratio, 1.0 - EPSILON, 1.0 + EPSILON)
    return jax.nn.relu((ratio - clipped) * advantage)
# EVOLVE-BLOCK-END
