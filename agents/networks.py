"""Flax modules shared by the neural learners: an MLP torso, a Q-network, an actor-critic."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from wlf_jax.events import N_ACTIONS


def _gain_init(gain: float):
    """Truncated-normal kernels with variance gain**2 / fan_in."""
    return nn.initializers.variance_scaling(gain**2, "fan_in", "truncated_normal")


class MLP(nn.Module):
    """Dense layers with a nonlinearity between them; the last layer is linear.

    ``features`` lists the widths, the last one being the output size.  Hidden layers are
    initialised with variance 2 / fan_in (gain sqrt(2)); the output layer with gain
    ``out_scale``.  (Not orthogonal: its QR decomposition inside a ``jit(vmap(...))`` together
    with the environment's reset was seen to hang the CPU runtime.)
    """

    features: Sequence[int]
    activation: str = "tanh"
    out_scale: float = 1.0

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        act = {"tanh": nn.tanh, "relu": nn.relu}[self.activation]
        for width in self.features[:-1]:
            x = act(nn.Dense(width, kernel_init=_gain_init(np.sqrt(2.0)))(x))
        return nn.Dense(self.features[-1], kernel_init=_gain_init(self.out_scale))(x)


class QNetwork(nn.Module):
    """Q(obs, ·): obs (..., OBS_SIZE) -> action values (..., N_ACTIONS)."""

    hidden: Sequence[int] = (128, 128)
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs: jnp.ndarray) -> jnp.ndarray:
        return MLP((*self.hidden, N_ACTIONS), self.activation, out_scale=1.0)(obs)


class ActorCritic(nn.Module):
    """Separate actor and critic MLPs: obs (..., OBS_SIZE) -> (logits (..., N_ACTIONS), value (...))."""

    hidden: Sequence[int] = (64, 64)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, obs: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        logits = MLP((*self.hidden, N_ACTIONS), self.activation, out_scale=0.01)(obs)
        value = MLP((*self.hidden, 1), self.activation, out_scale=1.0)(obs)
        return logits, value[..., 0]
