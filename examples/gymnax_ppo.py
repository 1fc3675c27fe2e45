"""PPO written against the gymnax 1.0 contract only, trained on the work week.

Nothing below knows about Work-Life Firewall except the one line that calls ``make``: the
trainer reads the action and observation spaces, wraps the environment in gymnax's own
``FlattenObservationWrapper`` and ``LogWrapper``, and steps it with gymnax's
``(obs, state, reward, terminated, truncated, info)``. The same code trains on any gymnax
environment with a discrete action space:

    python examples/gymnax_ppo.py                      # week_v2 (default)
    python examples/gymnax_ppo.py --env seed_v1
    python examples/gymnax_ppo.py --env CartPole-v1    # a gymnax environment, same trainer

It prints the mean return of finished training episodes, early and late, and the mean return
of the final greedy and of a uniformly random policy, as JSON.
"""

from __future__ import annotations

import argparse
import json
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from gymnax.wrappers.purerl import FlattenObservationWrapper, LogWrapper


class ActorCritic(nn.Module):
    num_actions: int

    @nn.compact
    def __call__(self, x):
        h = nn.tanh(nn.Dense(64)(x))
        h = nn.tanh(nn.Dense(64)(h))
        logits = nn.Dense(self.num_actions)(h)
        value = nn.Dense(1)(nn.tanh(nn.Dense(64)(x)))[..., 0]
        return logits, value


class Config(NamedTuple):
    num_envs: int = 64
    num_steps: int = 16
    num_updates: int = 150
    update_epochs: int = 4
    num_minibatches: int = 4
    lr: float = 2.5e-3
    gamma: float = 1.0
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5


def make_ppo_train(env, env_params, config: Config):
    """A pure ``train(key) -> (network params, returns of finished episodes per update)``."""
    env = LogWrapper(FlattenObservationWrapper(env))
    n_actions = env.action_space(env_params).n
    obs_shape = env.observation_space(env_params).shape
    net = ActorCritic(n_actions)
    tx = optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm), optax.adam(config.lr, eps=1e-5)
    )
    batch = config.num_envs * config.num_steps
    vreset = jax.vmap(env.reset, in_axes=(0, None))
    vstep = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def train(key):
        key, k_net, k_env = jax.random.split(key, 3)
        params = net.init(k_net, jnp.zeros(obs_shape))
        opt_state = tx.init(params)
        obs, state = vreset(jax.random.split(k_env, config.num_envs), env_params)

        def env_step(carry, _):
            params, state, obs, key = carry
            key, k_act, k_step = jax.random.split(key, 3)
            logits, value = net.apply(params, obs)
            action = jax.random.categorical(k_act, logits)
            logp = jax.nn.log_softmax(logits)[jnp.arange(config.num_envs), action]
            obs2, state, reward, terminated, truncated, info = vstep(
                jax.random.split(k_step, config.num_envs), state, action, env_params
            )
            done = terminated | truncated
            step = (
                obs,
                action,
                logp,
                value,
                reward,
                done,
                info["returned_episode_returns"],
                info["returned_episode"],
            )
            return (params, state, obs2, key), step

        def update(carry, _):
            params, opt_state, state, obs, key = carry
            (_, state, obs, key), traj = jax.lax.scan(
                env_step, (params, state, obs, key), None, config.num_steps
            )
            t_obs, t_act, t_logp, t_val, t_rew, t_done, ep_ret, ep_end = traj
            _, last_value = net.apply(params, obs)

            def gae(next_, x):
                adv, next_value = next_
                r, v, d = x
                delta = r + config.gamma * next_value * (1 - d) - v
                adv = delta + config.gamma * config.gae_lambda * (1 - d) * adv
                return (adv, v), adv

            _, adv = jax.lax.scan(
                gae,
                (jnp.zeros_like(last_value), last_value),
                (t_rew, t_val, t_done.astype(jnp.float32)),
                reverse=True,
            )
            ret = adv + t_val
            data = jax.tree.map(
                lambda x: x.reshape((batch,) + x.shape[2:]), (t_obs, t_act, t_logp, t_val, adv, ret)
            )

            def loss_fn(params, mb):
                o, a, old_logp, old_v, adv, ret = mb
                logits, v = net.apply(params, o)
                logp_all = jax.nn.log_softmax(logits)
                logp = jnp.take_along_axis(logp_all, a[:, None], -1)[:, 0]
                ratio = jnp.exp(logp - old_logp)
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                actor = -jnp.minimum(
                    ratio * adv, jnp.clip(ratio, 1 - config.clip_eps, 1 + config.clip_eps) * adv
                ).mean()
                v_clip = old_v + jnp.clip(v - old_v, -config.clip_eps, config.clip_eps)
                critic = 0.5 * jnp.maximum((v - ret) ** 2, (v_clip - ret) ** 2).mean()
                entropy = -(jnp.exp(logp_all) * logp_all).sum(-1).mean()
                return actor + config.vf_coef * critic - config.ent_coef * entropy

            def epoch(carry, k):
                params, opt_state = carry
                perm = jax.random.permutation(k, batch)
                mbs = jax.tree.map(
                    lambda x: x[perm].reshape((config.num_minibatches, -1) + x.shape[1:]), data
                )

                def minibatch(carry, mb):
                    params, opt_state = carry
                    grads = jax.grad(loss_fn)(params, mb)
                    updates, opt_state = tx.update(grads, opt_state, params)
                    return (optax.apply_updates(params, updates), opt_state), None

                return jax.lax.scan(minibatch, (params, opt_state), mbs)[0], None

            key, k_ep = jax.random.split(key)
            (params, opt_state), _ = jax.lax.scan(
                epoch, (params, opt_state), jax.random.split(k_ep, config.update_epochs)
            )
            finished = jnp.sum(ep_end)
            mean_return = jnp.sum(jnp.where(ep_end, ep_ret, 0.0)) / jnp.maximum(finished, 1)
            return (params, opt_state, state, obs, key), mean_return

        (params, *_), returns = jax.lax.scan(
            update, (params, opt_state, state, obs, key), None, config.num_updates
        )
        return params, returns

    return net, train


def first_episode_return(env, env_params, policy, key, n_episodes: int, max_steps: int):
    """Mean return of the first episode of ``n_episodes`` parallel runs of ``policy(obs, key)``
    through gymnax's ``step`` (steps after an episode's end are not counted)."""
    env = FlattenObservationWrapper(env)

    def one(key):
        k_reset, k_run = jax.random.split(key)
        obs, state = env.reset(k_reset, env_params)

        def body(carry, k):
            obs, state, total, alive = carry
            k_act, k_step = jax.random.split(k)
            action = policy(obs, k_act)
            obs, state, reward, terminated, truncated, _ = env.step(
                k_step, state, action, env_params
            )
            total = total + jnp.where(alive, reward, 0.0)
            return (obs, state, total, alive & ~(terminated | truncated)), None

        (_, _, total, _), _ = jax.lax.scan(
            body, (obs, state, 0.0, True), jax.random.split(k_run, max_steps)
        )
        return total

    return jnp.mean(jax.vmap(one)(jax.random.split(key, n_episodes)))


def run(env, env_params, config: Config, seed: int = 0, eval_steps: int = 500) -> dict:
    """Train, then measure the greedy and a random policy on 1024 fresh episodes."""
    net, train = make_ppo_train(env, env_params, config)
    params, returns = jax.jit(train)(jax.random.key(seed))
    n_actions = env.action_space(env_params).n
    greedy = lambda obs, k: jnp.argmax(net.apply(params, obs)[0])  # noqa: E731
    random = lambda obs, k: jax.random.randint(k, (), 0, n_actions)  # noqa: E731
    k_eval = jax.random.key(seed + 1)

    def evaluate(policy):
        return jax.jit(
            lambda k: first_episode_return(env, env_params, policy, k, 1024, eval_steps)
        )(k_eval)

    returns = np.asarray(returns)
    tenth = max(1, len(returns) // 10)
    return {
        "train_return_first_tenth": float(returns[:tenth].mean()),
        "train_return_last_tenth": float(returns[-tenth:].mean()),
        "greedy_return": float(evaluate(greedy)),
        "random_return": float(evaluate(random)),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--env", default="week_v2", help="a Work-Life Firewall preset or a gymnax environment id"
    )
    parser.add_argument("--updates", type=int, default=Config().num_updates)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.env in ("week_v2", "seed_v1"):
        import wlf_jax

        env, env_params = wlf_jax.make(args.env)
        eval_steps = env.max_steps
    else:
        import gymnax

        env, env_params = gymnax.make(args.env)
        eval_steps = 500
    out = run(env, env_params, Config(num_updates=args.updates), args.seed, eval_steps)
    print(json.dumps({"env": args.env, **out}, indent=2))


if __name__ == "__main__":
    main()
