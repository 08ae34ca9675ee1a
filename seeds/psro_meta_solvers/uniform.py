"""Uniform meta-strategies: PSRO becomes (extensive-form) fictitious play.

Lanctot et al., "A Unified Game-Theoretic Approach to Multiagent Reinforcement Learning"
(NeurIPS 2017, arXiv:1711.00832): with the uniform mixture over each population, the best
response of iteration t answers the average of all earlier responses, which is fictitious
play (Brown 1951); with exact best responses and realisation-equivalent mixing it is the
full-width extensive-form fictitious play of Heinrich, Lanctot & Silver, "Fictitious
Self-Play in Extensive-Form Games" (ICML 2015). Li, Schultz, Hennes & Lanctot,
"Discovering Multiagent Learning Algorithms with Large Language Models" (2026,
arXiv:2602.16928) start both evolved solvers from it.

Both solvers return 1/n for each of a player's n policies.
"""

import numpy as np

# EVOLVE-BLOCK-START
def train_meta_solver(payoffs, iteration, state):
    return [np.full(n, 1.0 / n) for n in payoffs.shape[:-1]], state


def eval_meta_solver(payoffs, iteration, state):
    return [np.full(n, 1.0 / n) for n in payoffs.shape[:-1]], state
# EVOLVE-BLOCK-END
