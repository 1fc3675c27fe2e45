"""Files of a training run: atomic writes, the resumable checkpoint (settings, progress and
the whole seed-batched training state) and the per-chunk greedy-policy snapshots.

Large mostly-zero arrays (Q-tables) are packed sparsely; everything is msgpack, zlib-compressed.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

CHECKPOINT = "checkpoint.msgpack"
FORMAT_VERSION = 1


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, fsync, rename.
    A failed write raises and leaves no temporary file behind."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _pack_leaf(x: np.ndarray):
    """Large arrays that are mostly zeros (Q-tables) are stored sparsely."""
    x = np.asarray(x)
    if x.size >= 65_536 and x.dtype.kind in "fiu":
        nz = np.flatnonzero(x)
        if nz.size < x.size // 4:
            return {
                "__sparse__": np.asarray(x.shape, np.int64),
                "dtype": x.dtype.str,
                "index": nz.astype(np.int32 if x.size < 2**31 else np.int64),
                "value": x.reshape(-1)[nz],
            }
    return x


def _unpack_leaf(x):
    if isinstance(x, dict) and "__sparse__" in x:
        shape = tuple(int(v) for v in np.asarray(x["__sparse__"]))
        out = np.zeros(int(np.prod(shape)), np.dtype(x["dtype"]))
        out[np.asarray(x["index"])] = np.asarray(x["value"])
        return out.reshape(shape)
    return x


def _map_state(fn, state):
    if isinstance(state, dict) and "__sparse__" not in state:
        return {k: _map_state(fn, v) for k, v in state.items()}
    return fn(state)


def save_checkpoint(path: Path, meta: dict[str, Any], carry) -> None:
    """Atomically write the run settings/progress ``meta`` and the batched training ``carry``."""
    state = serialization.to_state_dict(jax.device_get(carry))
    payload = {
        "format": FORMAT_VERSION,
        "meta": json.dumps(meta),
        "carry": _map_state(_pack_leaf, state),
    }
    atomic_write(path, zlib.compress(serialization.msgpack_serialize(payload), 1))


def read_checkpoint(path: Path) -> tuple[dict[str, Any], dict]:
    """``(meta, carry state dict)`` of a checkpoint file."""
    payload = serialization.msgpack_restore(zlib.decompress(Path(path).read_bytes()))
    if int(payload.get("format", -1)) != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported checkpoint format {payload.get('format')}")
    return json.loads(payload["meta"]), _map_state(_unpack_leaf, payload["carry"])


def _zeros(template):
    """Host zeros with the shapes and dtypes of ``template``: a structure to restore into."""
    return jax.tree_util.tree_map(lambda x: np.zeros(x.shape, x.dtype), template)


def restore_carry(template, state: dict):
    """Rebuild a carry with the structure of ``template`` (arrays or ``jax.eval_shape``'s
    shapes) from a checkpoint's state dict."""
    restored = serialization.from_state_dict(_zeros(template), state)
    return jax.tree_util.tree_map(jnp.asarray, restored)


def snapshot_path(out: Path, index: int) -> Path:
    """File of the greedy-policy parameters after ``index`` chunks (0 = untrained)."""
    return Path(out) / "snapshots" / f"policy_{index:03d}.msgpack"


def save_snapshot(out: Path, index: int, policy_params) -> None:
    """Atomically store the (seed-batched) policy parameters after ``index`` chunks; the
    learning curve is valued from these after training, so training time is not spent on it."""
    path = snapshot_path(out, index)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = _map_state(_pack_leaf, serialization.to_state_dict(jax.device_get(policy_params)))
    atomic_write(path, zlib.compress(serialization.msgpack_serialize(state), 1))


def load_snapshot(out: Path, index: int, template):
    """Policy parameters saved by :func:`save_snapshot`, with the structure of ``template``
    (arrays or ``jax.eval_shape``'s shapes)."""
    state = serialization.msgpack_restore(zlib.decompress(snapshot_path(out, index).read_bytes()))
    return serialization.from_state_dict(_zeros(template), _map_state(_unpack_leaf, state))
