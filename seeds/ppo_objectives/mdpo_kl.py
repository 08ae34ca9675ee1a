"""Mirror Descent Policy Optimisation (MDPO), its KL proximity term written as a drift.

Tomar, Shani, Efroni, Ghavamzadeh, "Mirror Descent Policy Optimization" (ICLR 2022,
arXiv:2005.09814): on-policy MDPO maximises E[r·A] − (1/t)·KL(π ‖ π_old). With actions
sampled from π_old, KL(π ‖ π_old) = E[r·log r], and E[r − 1] = 0, so the per-sample drift

    D(r, A) = (1/t)·(r·log r − r + 1)

has the same expectation. Adding −(r − 1) makes it a valid drift (Kuba et al., Mirror
Learning, ICML 2022): r·log r − r + 1 ≥ 0 with equality and zero slope at r = 1. Unlike the
clip, the price of moving does not depend on the advantage. MDPO anneals its step size t
over training; here 1/t is a constant (the temporal space can anneal it).
"""

import jax.numpy as jnp

# EVOLVE-BLOCK-START
KL_COEF = 1.0  # 1/t


def drift(ratio, advantage):
    return KL_COEF * (ratio * jnp.log(ratio) - ratio + 1.0)
# EVOLVE-BLOCK-END
