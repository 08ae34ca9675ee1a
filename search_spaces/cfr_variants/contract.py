"""The text a mutator (and a human) reads about the cfr_variants space."""

from search_spaces.game_space import TRAIN_GAME_NAMES, balanced_fitness_doc

FITNESS_DOC = balanced_fitness_doc(TRAIN_GAME_NAMES, "CFR+")

DOC = """\
# Evolving CFR update rules (space: cfr_variants)

A candidate is a Python module defining four functions at top level. They are the rules of a
counterfactual regret minimisation (CFR) solver; the solver itself (tree traversal,
counterfactual values, exploitability) is fixed and not part of the candidate. The solver
calls the rules for ALL information sets of one player at once, on arrays shaped [I, A]:
I = that player's number of information sets, A = the game's maximum number of actions
(action slots beyond an information set's legal actions are padding).

`xp` is the array module: `jax.numpy` on the compiled path, `numpy` on the other (the
evaluator picks whichever is faster for the game, so the same code must run on both).
Use only `xp` functions common to both (xp.maximum, xp.where, xp.sum, xp.abs, ...), Python arithmetic and
the `math` module on plain numbers. `t` is the iteration number as a float: 1.0, 2.0, ...

```python
def init_state(num_infosets: int, num_actions: int, xp) -> dict:
    # The per-player state the rules own: a dict of arrays with FIXED shapes (e.g.
    # xp.zeros((num_infosets,)) or xp.zeros(())). Return {} if no state is needed.

def update_regret(cum_regret, inst_regret, t, state, xp) -> (cum_regret, state):
    # New cumulative regret [I, A] from the old one [I, A] and this iteration's
    # instantaneous counterfactual regret inst_regret [I, A]
    # (inst_regret[i, a] = sum over histories h in i of (others' and chance's reach of h)
    #  * (value of taking a at h - value of the current policy at h); 0 on illegal actions).

def derive_policy(cum_regret, inst_regret, legal, t, state, xp) -> (policy, state):
    # The next current policy [I, A]: every entry >= 0, exactly 0 on illegal actions, rows
    # summing to 1. legal is a 0/1 float mask [I, A] (every row has >= 1 legal action).
    # inst_regret is this iteration's instantaneous regret (predictive/optimistic variants
    # use it as a prediction of the next one).

def update_average(cum_policy, policy, reach, t, state, xp) -> (cum_policy, state):
    # Add the policy just played, policy [I, A], into the average-policy numerator
    # cum_policy [I, A] (entries must stay >= 0). reach [I] is the player's own
    # probability of reaching each information set under that policy. The solver's output
    # is cum_policy normalised per row (uniform over legal actions where a row sums to 0).
```

Order of calls in iteration t, for each player p in turn (alternating updates):
1. traverse the game with the current policies (p's policy of iteration t, the other
   players' latest ones) and compute p's inst_regret and reach;
2. cum_regret, state = update_regret(cum_regret, inst_regret, t, state, xp)
3. cum_policy, state = update_average(cum_policy, policy_t, reach, t, state, xp)
4. policy_{t+1}, state = derive_policy(cum_regret, inst_regret, legal, t, state, xp)
The first policy is uniform over legal actions; cum_regret and cum_policy start at zero;
state starts as init_state(...). Each player has its own cum_regret, cum_policy and state.
`state` returned by a function is passed to the next one, so a rule can stash values for a
later rule of the same iteration (e.g. update_regret stores something update_average reads).

Each function returns a pair (array, state). The state must keep exactly the keys and shapes
init_state gave it (use `dict(state, key=new_value)` to update one entry).

CFR+ as a candidate (the reference the score compares against):
```python
def init_state(num_infosets, num_actions, xp):
    return {}

def update_regret(cum_regret, inst_regret, t, state, xp):
    return xp.maximum(cum_regret + inst_regret, 0.0), state

def derive_policy(cum_regret, inst_regret, legal, t, state, xp):
    positive = xp.maximum(cum_regret, 0.0) * legal
    total = xp.sum(positive, axis=1, keepdims=True)
    uniform = legal / xp.sum(legal, axis=1, keepdims=True)
    return xp.where(total > 0.0, positive / xp.where(total > 0.0, total, 1.0), uniform), state

def update_average(cum_policy, policy, reach, t, state, xp):
    return cum_policy + t * reach[:, None] * policy, state
```

## How a candidate is scored
On each game the rules run for 1000 iterations. At the log-spaced checkpoints
10, 18, 32, 56, 100, 178, 316, 562 and 1000 the exploitability e(c) of the average policy
(NashConv divided by the number of players; 0 at a Nash equilibrium) is measured, and the
same for CFR+, e_ref(c). The game's score is

    score = mean over checkpoints c of log10( max(e_ref(c), 1e-15) / max(e(c), 1e-15) )

so 0 = as good as CFR+, +1 = ten times less exploitable than CFR+ (geometric mean over the
checkpoints), negative = worse. Early checkpoints count as much as late ones: being good at
every budget (anytime performance) matters, not only at iteration 1000.

{fitness}

Held-out games (larger: 4-player Kuhn, 5-card Goofspiel, 6-sided Liar's Dice, 3-player
Leduc) check that an improvement generalises.

## What makes a candidate invalid (its fitness is then -infinity)
- a missing function, or one that raises;
- a return value that is not a pair (array, state), an array of the wrong shape, or a
  state whose keys or shapes differ from init_state's;
- a policy with NaN/inf, negative entries, mass on illegal actions, or rows not summing to
  1 (tolerance 1e-6); a cum_policy with NaN/inf or negative entries.
These are checked at every iteration of every game.

## Tips
- Write rules with xp.where / xp.maximum instead of Python `if` on arrays or on `t`; then
  the whole 1000-iteration loop is compiled with JAX and runs fast. Code that cannot be
  traced still works, on the slower NumPy path.
- Guard divisions: compute `safe = xp.where(total > 0, total, 1.0)` before dividing, and
  fall back to the uniform policy `legal / xp.sum(legal, axis=1, keepdims=True)`.
- Multiply by `legal` to keep mass off illegal actions; powers of negative numbers give NaN
  (clip with xp.maximum(x, 0.0) first).
- Arrays are float64. Weights like t**5 are fine up to t = 1000; for larger exponents
  write them as a discount of the running sum, cum * ((t - 1) / t) ** g + new.
- Known ideas that help: flooring regrets at 0 (RM+), discounting old regrets (DCFR:
  positive ones by t^1.5/(t^1.5+1), negative ones faster), predictive/optimistic policies
  (regret matching on cum_regret + inst_regret, PCFR+), weighting later iterations more in
  the average (t, t^2, ... averaging), and starting the average late (warm start). A warm
  start that leaves the average uniform until a late iteration costs score at the early
  checkpoints.
- Regret matching is invariant to scaling a row of cum_regret by a positive number, and the
  average policy to scaling cum_policy per row; only relative weights matter.
"""

DOC = DOC.replace("{fitness}", FITNESS_DOC)
