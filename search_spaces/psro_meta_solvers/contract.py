"""The text a mutator (and a human) reads about the psro_meta_solvers space."""

from search_spaces.game_space import TRAIN_GAME_NAMES, balanced_fitness_doc

FITNESS_DOC = balanced_fitness_doc(TRAIN_GAME_NAMES, "the uniform solvers (fictitious play)")

DOC = """\
# Evolving PSRO meta-strategy solvers (space: psro_meta_solvers)

PSRO (policy-space response oracles) solves a game by growing a population of policies
for every player. Each iteration, a meta-strategy solver looks at the payoff table between
the population's policies and picks, for every player, a mixture (a probability
distribution) over that player's policies; every player then adds the exact best response
to the other players' mixtures to its population. A candidate is a Python module defining
two such solvers at top level; everything else (the game, the payoffs, the best responses,
the exploitability) is fixed and exact, so only the solvers decide how fast PSRO gets
close to a Nash equilibrium.

```python
def train_meta_solver(payoffs, iteration, state) -> (mixtures, state):
    # The mixtures the next best responses answer (training time).

def eval_meta_solver(payoffs, iteration, state) -> (mixtures, state):
    # The mixtures that are measured (evaluation time): PSRO's output after this iteration.
```

Inputs:
- `payoffs`: a float64 numpy array of shape [n_1, ..., n_P, P] for a P-player game
  (P = payoffs.shape[-1] = payoffs.ndim - 1; 2, 3 or 4 here). payoffs[j_1, ..., j_P, q]
  is player q's exact expected payoff when every player p plays its j_p-th policy. All
  players have the same population size n (n_1 = ... = n_P). The games here are zero-sum
  (the P payoffs of an entry sum to 0). Policy 0 of every player is the uniform random
  policy; policy j >= 1 is the best response added at iteration j. The array is your own
  copy.
- `iteration`: the PSRO iteration t = 1, 2, ..., T (a Python int).
- `state`: a dict the solver owns: {} at its first call, then whatever the same solver
  returned at its previous call (the two solvers have separate states). Keep anything
  there (numbers, numpy arrays of any shape, e.g. regrets to warm-start from).

Output: a pair (mixtures, state). `mixtures` is a list of P 1-D arrays (or lists), one
per player; mixtures[p] has length n_p, entries >= 0, summing to 1 (tolerance 1e-6).

Order of calls, with T the game's iteration budget:
```
population = [uniform policy] for every player           # n = 1
for t = 1, ..., T:
    mixtures, train_state = train_meta_solver(payoffs over n = t policies, t, train_state)
    every player p adds its best response to the other players' mixtures  # n = t + 1
    payoffs are extended to the new policies (exactly)
    if t is a checkpoint (1, 2, 3, 6, 10, 18, 32, 56, 100 for T = 100; always T):
        mixtures, eval_state = eval_meta_solver(payoffs over n = t + 1 policies, t, eval_state)
        exploitability of these mixtures is recorded for iteration t
```
So `train_meta_solver` is called at every iteration with n = t; `eval_meta_solver` only
at the checkpoints, with n = t + 1 (it already sees the policies added at iteration t).

A mixture is played as one policy: a player following mixture x picks its policy j with
probability x[j] at the start of the game and plays it throughout. The best response
answers the other players' training mixtures and, where several actions are equally good,
splits its probability evenly between them. Exploitability = NashConv / P = the average
over players of what a player would gain by switching to its best response against the
others' evaluation mixtures; 0 exactly at a Nash equilibrium.

The uniform solvers, the reference every score is relative to (this is fictitious play):
```python
import numpy as np

def train_meta_solver(payoffs, iteration, state):
    return [np.full(n, 1.0 / n) for n in payoffs.shape[:-1]], state

def eval_meta_solver(payoffs, iteration, state):
    return [np.full(n, 1.0 / n) for n in payoffs.shape[:-1]], state
```
Player p's expected payoff of each of its policies against the others' mixtures, for any P:
```python
values = np.moveaxis(payoffs[..., p], p, 0)        # p's own policies first
for other in reversed(range(P)):
    if other != p:
        values = values @ mixtures[other]           # contracts the last axis
```
For P = 2 this is payoffs[:, :, 0] @ mixtures[1] (player 0) and mixtures[0] @ payoffs[:, :, 1]
(player 1).

## How a candidate is scored
On each game PSRO runs for T iterations: 30 on 3-player Kuhn poker (its payoff table has
n^3 entries), 100 on Leduc poker, 4-card imperfect-information Goofspiel (turn-based) and
Liar's Dice with one 5-sided die. At the log-spaced checkpoints from iteration 5 on (for
T = 100: 6, 10, 18, 32, 56, 100; for T = 30: 6, 10, 18, 30) the exploitability e(c) of the
evaluation mixtures is measured, and the same for the uniform solvers, e_ref(c). The game's
score is

    score = mean over checkpoints c of log10( max(e_ref(c), 1e-15) / max(e(c), 1e-15) )

so 0 = as good as uniform (fictitious play), +1 = ten times less exploitable (geometric
mean over the checkpoints), negative = worse. Early checkpoints count as much as late ones.
Reaching exploitability 0 (an exact equilibrium, possible in small games) scores up to 15
per checkpoint.

{fitness}

Held-out games (4-player Kuhn poker with T = 12, 5-card Goofspiel and Liar's Dice with one
6-sided die with T = 100) check that an improvement generalises.

## What makes a candidate invalid (its fitness is then -infinity)
- a missing function, or one that raises (on any game, at any iteration);
- a return value that is not a pair (mixtures, dict); a wrong number of mixtures; a mixture
  of the wrong length; NaN or infinite entries; an entry below -1e-9; a sum off 1 by more
  than 1e-6 (tiny negative rounding is set to 0 and every mixture renormalised);
- running past the evaluation's time limit.

## Tips
- Time is the budget: the training solver runs T times per game and the evaluation solver
  at up to 9 checkpoints, on tables of up to 101 x 101 (two players), 31^3 (three players)
  or 13^4 (four players). An inner loop of a few thousand numpy steps per call is fine;
  100,000 is not. Make each player's table contiguous once per call
  (np.ascontiguousarray) before a loop.
- Imports: numpy, math, functools, jax and scipy (e.g. `from scipy.optimize import linprog`
  for an exact zero-sum Nash equilibrium of a two-player table); put them at the top.
- The training and evaluation solvers may differ: what makes good new best responses
  (exploration, diversity) is not what makes the least exploitable output (an accurate
  equilibrium of the current table). The iteration number allows schedules (anneal from
  exploring to exploiting), the state allows warm starts across iterations.
- Known meta-solvers: uniform (fictitious play); Nash by linear programming (double
  oracle; two players only); regret matching and projected replicator dynamics (average
  over an inner loop); softmax over payoffs against the current mixtures (smoothed best
  response); SHOR-PSRO's blend of optimistic regret matching with such a softmax, annealed
  over iterations, averaging at training time and the last iterate at evaluation time.
- Payoff scales differ between games (Leduc poker's payoffs reach ±13, Goofspiel's and
  Liar's Dice's ±1): normalise step sizes (e.g. by the largest absolute gain) rather than
  tuning them to one game.
"""

DOC = DOC.replace("{fitness}", FITNESS_DOC)
