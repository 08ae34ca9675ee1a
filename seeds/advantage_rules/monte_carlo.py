"""Monte Carlo returns with a value baseline (REINFORCE with baseline).

Williams, "Simple Statistical Gradient-Following Algorithms for Connectionist Reinforcement
Learning" (Machine Learning, 1992); Sutton & Barto, "Reinforcement Learning: An
Introduction" (2nd ed., 2018), section 13.4:

    G_t = r_t + γ·(1 − d_t)·G_{t+1},   Â_t = G_t − V(s_t)

The discounted return is summed to the end of each episode inside the rollout; an episode
the rollout cuts off is bootstrapped once, with the critic's value of the observation after
the last step (G_T = V(s_T)). This is GAE with λ = 1; the λ argument is ignored.
"""

import jax
import jax.numpy as jnp

# EVOLVE-BLOCK-START
def advantages(rewards, values, dones, last_value, gamma, lam):
    def step(next_return, x):
        reward, done = x
        ret = reward + gamma * (1.0 - done) * next_return
        return ret, ret

    _, returns = jax.lax.scan(step, last_value, (rewards, dones), reverse=True)
    return returns - values, returns
# EVOLVE-BLOCK-END
