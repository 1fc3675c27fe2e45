"""PPO (clipped objective, GAE) with a Flax actor-critic, the whole training loop under ``jit``.

PureJaxRL style: :func:`make_ppo_train` returns a pure ``train(key)``; ``jax.jit(jax.vmap(train))``
trains many seeds at once.  One update collects ``num_steps`` decisions in each of ``num_envs``
parallel weeks with ``env.step`` (auto-reset) inside ``lax.scan``, computes GAE advantages and
runs ``update_epochs`` epochs of ``num_minibatches`` minibatch steps of Adam.  Weeks are at most
14 decisions, so the discount defaults to 1: the objective is the undiscounted week return,
which in ``week_v2`` is the final rubric score minus a constant.

For checkpoints the same code is exposed in chunks (:func:`make_trainer`): ``chunk`` runs
``updates_per_chunk`` updates; ``make_ppo_train`` scans ``n_chunks`` chunks.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import optax
from flax import struct

from wlf_jax.env import OBS_SIZE
from wlf_jax.params import EnvParams

from . import vec_env
from .networks import ActorCritic
from .vec_env import Trainer, reset_batch, step_batch

NAME = "ppo"


@dataclasses.dataclass(frozen=True)
class Config:
    """Hyper-parameters of PPO (``budget_steps`` counts decisions per seed)."""

    budget_steps: int = 600_000
    num_envs: int = 128
    num_steps: int = 16
    n_chunks: int = 10
    update_epochs: int = 8
    num_minibatches: int = 4
    lr: float = 1e-3
    anneal_lr: bool = True
    gamma: float = 1.0
    gae_lambda: float = 1.0
    clip_eps: float = 0.2
    ent_coef: float = 0.5
    ent_coef_end: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden: tuple[int, ...] = (32, 32)
    activation: str = "tanh"

    @property
    def updates_per_chunk(self) -> int:
        return max(
            1, math.ceil(self.budget_steps / (self.num_envs * self.num_steps * self.n_chunks))
        )

    @property
    def updates(self) -> int:
        return self.n_chunks * self.updates_per_chunk


@struct.dataclass
class Carry:
    """Training state of one seed."""

    params: object
    opt_state: object
    env_state: object
    obs: jnp.ndarray  # (num_envs, OBS_SIZE)
    key: jnp.ndarray
    update: jnp.ndarray  # () int32 updates done


def network(config: Config) -> ActorCritic:
    """The actor-critic module of this configuration."""
    return ActorCritic(hidden=tuple(config.hidden), activation=config.activation)


def optimizer(config: Config) -> optax.GradientTransformation:
    """Adam with gradient clipping and (optionally) a linearly annealed learning rate."""
    steps_per_update = config.update_epochs * config.num_minibatches
    lr = (
        optax.linear_schedule(config.lr, 0.0, config.updates * steps_per_update)
        if config.anneal_lr
        else config.lr
    )
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(lr, eps=1e-5))


def gae(reward, value, done, last_value, gamma: float, lam: float):
    """Generalised advantage estimates over a rollout (time-major ``(T, N)`` arrays).

    ``done[t]`` marks that the week ended with step ``t`` (the next observation is a fresh
    week), so nothing is bootstrapped across it.  Returns ``(advantages, returns)``.
    """

    def back(carry, x):
        next_adv, next_value = carry
        r, v, d = x
        delta = r + gamma * next_value * (1.0 - d) - v
        adv = delta + gamma * lam * (1.0 - d) * next_adv
        return (adv, v), adv

    _, adv = jax.lax.scan(
        back,
        (jnp.zeros_like(last_value), last_value),
        (reward, value, done.astype(jnp.float32)),
        reverse=True,
    )
    return adv, adv + value


def ppo_loss(params, apply_fn, batch, clip_eps: float, vf_coef: float, ent_coef):
    """Clipped surrogate + clipped value loss - entropy bonus, on one minibatch dict."""
    logits, value = apply_fn(params, batch["obs"])
    logp_all = jax.nn.log_softmax(logits)
    logp = jnp.take_along_axis(logp_all, batch["action"][:, None], axis=-1)[:, 0]
    ratio = jnp.exp(logp - batch["logp"])
    adv = (batch["adv"] - batch["adv"].mean()) / (batch["adv"].std() + 1e-8)
    actor = -jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - clip_eps, 1 + clip_eps) * adv).mean()
    v_clipped = batch["value"] + jnp.clip(value - batch["value"], -clip_eps, clip_eps)
    critic = 0.5 * jnp.maximum((value - batch["ret"]) ** 2, (v_clipped - batch["ret"]) ** 2).mean()
    entropy = -(jnp.exp(logp_all) * logp_all).sum(-1).mean()
    return actor + vf_coef * critic - ent_coef * entropy, (actor, critic, entropy)


def make_trainer(config: Config, params: EnvParams) -> Trainer:
    """Pure per-seed ``init``/``chunk`` functions of PPO (see ``agents.vec_env``)."""
    net = network(config)
    tx = optimizer(config)
    n, t_len = config.num_envs, config.num_steps
    batch_size = n * t_len
    mb_size = batch_size // config.num_minibatches

    def ent_coef(update):
        frac = jnp.clip(update / max(1, config.updates), 0.0, 1.0)
        return config.ent_coef + (config.ent_coef_end - config.ent_coef) * frac

    def init(key):
        k_net, k_env, k_run = jax.random.split(key, 3)
        net_params = net.init(k_net, jnp.zeros((1, OBS_SIZE), jnp.float32))
        obs, states = reset_batch(k_env, n, params)
        return Carry(
            params=net_params,
            opt_state=tx.init(net_params),
            env_state=states,
            obs=obs,
            key=k_run,
            update=jnp.int32(0),
        )

    def env_step(carry, _):
        net_params, states, obs, key = carry
        key, k_act, k_step = jax.random.split(key, 3)
        logits, value = net.apply(net_params, obs)
        action = jax.random.categorical(k_act, logits)
        logp = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], -1)[:, 0]
        obs2, states2, reward, done, score = step_batch(k_step, states, action, params)
        step = {
            "obs": obs,
            "action": action,
            "logp": logp,
            "value": value,
            "reward": reward,
            "done": done,
            "score": score,
        }
        return (net_params, states2, obs2, key), step

    def one_update(carry: Carry, _):
        (_, states, obs, key), traj = jax.lax.scan(
            env_step, (carry.params, carry.env_state, carry.obs, carry.key), None, length=t_len
        )
        _, last_value = net.apply(carry.params, obs)
        adv, ret = gae(
            traj["reward"], traj["value"], traj["done"], last_value, config.gamma, config.gae_lambda
        )
        data = {
            "obs": traj["obs"],
            "action": traj["action"],
            "logp": traj["logp"],
            "value": traj["value"],
            "adv": adv,
            "ret": ret,
        }
        data = jax.tree_util.tree_map(lambda x: x.reshape((batch_size,) + x.shape[2:]), data)
        ent = ent_coef(carry.update)

        def epoch(state, k):
            net_params, opt_state = state
            perm = jax.random.permutation(k, batch_size)
            mbs = jax.tree_util.tree_map(
                lambda x: x[perm].reshape((config.num_minibatches, mb_size) + x.shape[1:]), data
            )

            def minibatch(state, mb):
                net_params, opt_state = state
                grads, aux = jax.grad(ppo_loss, has_aux=True)(
                    net_params, net.apply, mb, config.clip_eps, config.vf_coef, ent
                )
                updates, opt_state = tx.update(grads, opt_state, net_params)
                return (optax.apply_updates(net_params, updates), opt_state), aux

            return jax.lax.scan(minibatch, (net_params, opt_state), mbs)

        key, k_epochs = jax.random.split(key)
        (net_params, opt_state), (actor, critic, entropy) = jax.lax.scan(
            epoch, (carry.params, carry.opt_state), jax.random.split(k_epochs, config.update_epochs)
        )
        nxt = Carry(
            params=net_params,
            opt_state=opt_state,
            env_state=states,
            obs=obs,
            key=key,
            update=carry.update + 1,
        )
        stats = (
            jnp.sum(traj["score"]),
            jnp.sum(traj["done"]),
            actor.mean(),
            critic.mean(),
            entropy.mean(),
        )
        return nxt, stats

    def chunk(carry: Carry):
        carry, (score_sum, finished, actor, critic, entropy) = jax.lax.scan(
            one_update, carry, None, length=config.updates_per_chunk
        )
        metrics = {
            "train_score": jnp.sum(score_sum) / jnp.maximum(jnp.sum(finished), 1),
            "actor_loss": actor[-1],
            "value_loss": critic[-1],
            "entropy": entropy[-1],
        }
        return carry, metrics

    def greedy(net_params, obs):
        return jnp.argmax(net.apply(net_params, obs)[0], axis=-1).astype(jnp.int32)

    return Trainer(
        init=init,
        chunk=chunk,
        greedy=greedy,
        policy_params=lambda c: c.params,
        n_chunks=config.n_chunks,
        steps_per_chunk=config.updates_per_chunk * batch_size,
    )


def make_ppo_train(config: Config, params: EnvParams | None = None, preset: str = "week_v2"):
    """A pure ``train(key) -> (final carry, metrics per chunk)``; jit it and vmap it over seeds.

    ``params`` defaults to the rule book of ``preset``.
    """
    if params is None:
        from wlf_jax import presets

        params = presets.get(preset)
    return vec_env.scan_chunks(make_trainer(config, params))


__all__ = [
    "Carry",
    "Config",
    "NAME",
    "gae",
    "make_ppo_train",
    "make_trainer",
    "network",
    "ppo_loss",
]
