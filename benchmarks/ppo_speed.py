"""Environment steps per second of ``evaluators.ppo`` at 1, 4 and 16 vmapped seeds, side by
side with a purejaxrl-style reference loop in the same process.

The reference below is written in purejaxrl's layout (Lu et al. 2022): a config dict, one
``rng`` threaded through ``rng, _rng = split(rng)``, gymnax's ``FlattenObservationWrapper``
and ``LogWrapper``, the whole run under ``lax.scan``; same hyperparameters, network sizes and
amount of work as ours (its final evaluation excepted: ours also runs
``eval_episodes`` evaluation episodes per seed after training, which this counts against it).

Both are compiled with the same XLA options and timed after compilation; each figure is the
median of ``--repeats`` runs of the compiled call on the same keys, ours and the reference
alternating. Steps per second count training environment steps of all seeds together, per
wall-clock second and per second of process CPU time (steadier on a shared machine).

    python benchmarks/ppo_speed.py                      # CartPole-v1, 5e5 steps, seeds 1,4,16
    python benchmarks/ppo_speed.py --env Breakout-MinAtar --timesteps 2e5 --seeds 1,4
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time

import flax.linen as nn
import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from gymnax.wrappers.purerl import FlattenObservationWrapper, LogWrapper

from evaluators import ppo


# ----------------------------------------------------------------------------- reference
class _RefActorCritic(nn.Module):
    action_dim: int
    activation: str = "tanh"

    @nn.compact
    def __call__(self, x):
        act = nn.relu if self.activation == "relu" else nn.tanh
        # purejaxrl uses flax's orthogonal init; its LAPACK QR deadlocks jaxlib on the CPU when
        # batched over 16 vmapped seeds, so both trainers use the same LAPACK-free version
        # (same matrices to 1e-6).
        init = ppo.orthogonal_init
        a = act(nn.Dense(64, kernel_init=init(np.sqrt(2)))(x))
        a = act(nn.Dense(64, kernel_init=init(np.sqrt(2)))(a))
        logits = nn.Dense(self.action_dim, kernel_init=init(0.01))(a)
        c = act(nn.Dense(64, kernel_init=init(np.sqrt(2)))(x))
        c = act(nn.Dense(64, kernel_init=init(np.sqrt(2)))(c))
        return logits, jnp.squeeze(nn.Dense(1, kernel_init=init(1.0))(c), -1)


def make_reference_train(cfg: dict):
    """purejaxrl-style PPO: ``train(rng) -> {"params", "returned_episode_returns"}``."""
    cfg = dict(cfg)
    cfg["NUM_UPDATES"] = cfg["TOTAL_TIMESTEPS"] // cfg["NUM_STEPS"] // cfg["NUM_ENVS"]
    cfg["MINIBATCH_SIZE"] = cfg["NUM_ENVS"] * cfg["NUM_STEPS"] // cfg["NUM_MINIBATCHES"]
    env, env_params = gymnax.make(cfg["ENV_NAME"])
    env = LogWrapper(FlattenObservationWrapper(env))

    def schedule(count):
        frac = 1.0 - (count // (cfg["NUM_MINIBATCHES"] * cfg["UPDATE_EPOCHS"])) / cfg["NUM_UPDATES"]
        return cfg["LR"] * frac

    def train(rng):
        network = _RefActorCritic(env.action_space(env_params).n, cfg["ACTIVATION"])
        rng, _rng = jax.random.split(rng)
        params = network.init(_rng, jnp.zeros(env.observation_space(env_params).shape))
        tx = optax.chain(optax.clip_by_global_norm(cfg["MAX_GRAD_NORM"]), optax.adam(schedule, eps=1e-5))
        opt_state = tx.init(params)
        rng, _rng = jax.random.split(rng)
        obsv, env_state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(_rng, cfg["NUM_ENVS"]), env_params)

        def _update_step(runner_state, unused):
            def _env_step(runner_state, unused):
                params, opt_state, env_state, last_obs, rng = runner_state
                rng, _rng = jax.random.split(rng)
                logits, value = network.apply(params, last_obs)
                action = jax.random.categorical(_rng, logits)
                log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], -1)[:, 0]
                rng, _rng = jax.random.split(rng)
                obsv, env_state, reward, terminated, truncated, info = jax.vmap(
                    env.step, in_axes=(0, 0, 0, None))(jax.random.split(_rng, cfg["NUM_ENVS"]), env_state, action,
                                                       env_params)
                done = jnp.logical_or(terminated, truncated).astype(jnp.float32)
                transition = (done, action, value, reward, log_prob, last_obs, info["returned_episode_returns"],
                              info["returned_episode"])
                return (params, opt_state, env_state, obsv, rng), transition

            runner_state, traj = jax.lax.scan(_env_step, runner_state, None, cfg["NUM_STEPS"])
            params, opt_state, env_state, last_obs, rng = runner_state
            done, action, value, reward, log_prob, obs, ep_ret, ep_done = traj
            _, last_val = network.apply(params, last_obs)

            def _gae(carry, x):
                gae, next_value = carry
                d, v, r = x
                delta = r + cfg["GAMMA"] * next_value * (1 - d) - v
                gae = delta + cfg["GAMMA"] * cfg["GAE_LAMBDA"] * (1 - d) * gae
                return (gae, v), gae

            _, advantages = jax.lax.scan(_gae, (jnp.zeros_like(last_val), last_val), (done, value, reward),
                                         reverse=True)
            targets = advantages + value

            def _update_epoch(update_state, unused):
                def _update_minibatch(state, batch):
                    params, opt_state = state
                    b_obs, b_act, b_logp, b_val, b_adv, b_tgt = batch

                    def _loss(params):
                        logits, v = network.apply(params, b_obs)
                        logp_all = jax.nn.log_softmax(logits)
                        logp = jnp.take_along_axis(logp_all, b_act[:, None], -1)[:, 0]
                        v_clip = b_val + (v - b_val).clip(-cfg["CLIP_EPS"], cfg["CLIP_EPS"])
                        v_loss = 0.5 * jnp.maximum(jnp.square(v - b_tgt), jnp.square(v_clip - b_tgt)).mean()
                        ratio = jnp.exp(logp - b_logp)
                        adv = (b_adv - b_adv.mean()) / (b_adv.std() + 1e-8)
                        pg = -jnp.minimum(ratio * adv,
                                          jnp.clip(ratio, 1 - cfg["CLIP_EPS"], 1 + cfg["CLIP_EPS"]) * adv).mean()
                        ent = -(jnp.exp(logp_all) * logp_all).sum(-1).mean()
                        return pg + cfg["VF_COEF"] * v_loss - cfg["ENT_COEF"] * ent

                    grads = jax.grad(_loss)(params)
                    updates, opt_state = tx.update(grads, opt_state, params)
                    return (optax.apply_updates(params, updates), opt_state), None

                params, opt_state, rng = update_state
                rng, _rng = jax.random.split(rng)
                batch_size = cfg["MINIBATCH_SIZE"] * cfg["NUM_MINIBATCHES"]
                perm = jax.random.permutation(_rng, batch_size)
                batch = (obs, action, log_prob, value, advantages, targets)
                batch = jax.tree.map(lambda x: x.reshape((batch_size,) + x.shape[2:]), batch)
                batch = jax.tree.map(lambda x: jnp.take(x, perm, axis=0).reshape(
                    (cfg["NUM_MINIBATCHES"], -1) + x.shape[1:]), batch)
                (params, opt_state), _ = jax.lax.scan(_update_minibatch, (params, opt_state), batch)
                return (params, opt_state, rng), None

            (params, opt_state, rng), _ = jax.lax.scan(_update_epoch, (params, opt_state, rng), None,
                                                       cfg["UPDATE_EPOCHS"])
            metric = (ep_ret * ep_done).sum() / jnp.maximum(ep_done.sum(), 1)
            return (params, opt_state, env_state, last_obs, rng), metric

        rng, _rng = jax.random.split(rng)
        runner_state, metric = jax.lax.scan(_update_step, (params, opt_state, env_state, obsv, _rng), None,
                                            cfg["NUM_UPDATES"])
        return {"params": runner_state[0], "returned_episode_returns": metric}

    return train


def reference_config(c: ppo.PPOConfig) -> dict:
    return {"ENV_NAME": c.env_name, "TOTAL_TIMESTEPS": c.total_timesteps, "NUM_ENVS": c.num_envs,
            "NUM_STEPS": c.num_steps, "UPDATE_EPOCHS": c.update_epochs, "NUM_MINIBATCHES": c.num_minibatches,
            "LR": c.lr, "GAMMA": c.gamma, "GAE_LAMBDA": c.gae_lambda, "CLIP_EPS": c.value_clip,
            "ENT_COEF": c.ent_coef, "VF_COEF": c.vf_coef, "MAX_GRAD_NORM": c.max_grad_norm,
            "ACTIVATION": c.activation}


# ----------------------------------------------------------------------------- timing
def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _compile(train, keys, compiler_options):
    start = time.perf_counter()
    compiled = jax.jit(jax.vmap(train), compiler_options=compiler_options).lower(keys).compile()
    return compiled, time.perf_counter() - start


def _run(compiled, keys) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one run of a compiled trainer."""
    wall, cpu = time.perf_counter(), _cpu_seconds()
    jax.block_until_ready(compiled(keys))
    return time.perf_counter() - wall, _cpu_seconds() - cpu


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="example: python benchmarks/ppo_speed.py --seeds 1,4 --repeats 3")
    parser.add_argument("--env", default="CartPole-v1", choices=ppo.ENVS)
    parser.add_argument("--timesteps", type=float, default=5e5, help="environment steps per seed")
    parser.add_argument("--seeds", default="1,4,16", help="comma-separated numbers of vmapped seeds")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting (the median is shown)")
    parser.add_argument("--default-xla", action="store_true",
                        help="compile with XLA's default options instead of evaluators.ppo.COMPILER_OPTIONS")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    config = ppo.PPOConfig.for_env(args.env, total_timesteps=int(args.timesteps))
    options = {} if args.default_xla else dict(ppo.COMPILER_OPTIONS)
    steps = config.num_updates * config.batch_size
    print(f"{args.env}: {steps} steps per seed, {config.num_envs} envs x {config.num_steps} steps, "
          f"XLA options {options or 'default'}, median of {args.repeats}, {jax.devices()[0].platform}, "
          f"{os.cpu_count()} CPUs")
    rows = []
    with jax.enable_x64(False):
        for n in seeds:
            keys = jax.random.split(jax.random.PRNGKey(0), n)
            ours, ours_compile = _compile(ppo.make_train(config), keys, options)
            ref, ref_compile = _compile(make_reference_train(reference_config(config)), keys, options)
            timings = {"ours": [], "ref": []}
            for _ in range(args.repeats):  # alternate, so load changes hit both alike
                timings["ours"].append(_run(ours, keys))
                timings["ref"].append(_run(ref, keys))
            med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
                   for k, v in timings.items()}
            rows.append((n, ours_compile, med["ours"], ref_compile, med["ref"]))
            print(f"  {n} seeds done", flush=True)
    n0, _, (o0, _), _, (r0, _) = rows[0]
    print(f"\n{'seeds':>5} | {'ours: compile s':>15} {'steps/s':>9} {'steps/cpu-s':>11} {'scaling':>7} | "
          f"{'ref: compile s':>14} {'steps/s':>9} {'steps/cpu-s':>11} {'scaling':>7} | {'ours/ref':>8}")
    print("-" * 112)
    for n, oc, (ow, ocpu), rc, (rw, rcpu) in rows:
        work = n * steps
        print(f"{n:>5} | {oc:>15.1f} {work / ow:>9,.0f} {work / ocpu:>11,.0f} {(work / ow) / (n0 * steps / o0):>6.2f}x | "
              f"{rc:>14.1f} {work / rw:>9,.0f} {work / rcpu:>11,.0f} {(work / rw) / (n0 * steps / r0):>6.2f}x | "
              f"{rw / ow:>8.2f}")
    print("\nsteps/s: training environment steps of all seeds per wall-clock second; steps/cpu-s: per second of\n"
          "process CPU time (all threads), steadier on a shared machine; scaling: steps/s relative to the first row.")


if __name__ == "__main__":
    main()
