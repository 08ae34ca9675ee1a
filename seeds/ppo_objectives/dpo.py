"""Discovered Policy Optimisation (DPO): the closed form of the drift meta-learned by LPO.

Lu, Kuba, Letcher, Metz, Schroeder de Witt, Foerster, "Discovered Policy Optimisation"
(NeurIPS 2022, arXiv:2210.05639), equation (7):

    D(r, A) = ReLU((r−1)·A − α·tanh((r−1)·A / α))        if A ≥ 0
    D(r, A) = ReLU(log(r)·A − β·tanh(log(r)·A / β))      if A < 0

with α = 2, β = 0.6. Near r = 1 the drift grows like the cube of the change, so small steps
are free; beyond that it grows linearly, a soft trust region that is asymmetric in the sign of
the advantage (log r penalises shrinking the probability of bad actions less).
"""

import jax
import jax.numpy as jnp

# EVOLVE-BLOCK-START
ALPHA = 2.0
BETA = 0.6


def drift(ratio, advantage):
    change = (ratio - 1.0) * advantage
    positive = jax.nn.relu(change - ALPHA * jnp.tanh(change / ALPHA))
    log_change = jnp.log(ratio) * advantage
    negative = jax.nn.relu(log_change - BETA * jnp.tanh(log_change / BETA))
    return jnp.where(advantage >= 0.0, positive, negative)
# EVOLVE-BLOCK-END
