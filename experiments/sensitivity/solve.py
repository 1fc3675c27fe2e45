"""Exact scores of many rule books, sharded over devices, saved chunk by chunk.

Every sampled rule book is solved *exactly* by :mod:`agents.exact.induction` -- the optimal policy's
expected week score and every fixed agent's -- in chunks of stacked rule books, sharded across
all devices (of all processes, in a multi-host run) with :mod:`jax.sharding`.
:class:`ChunkStore` keeps each chunk on disk so an interrupted sweep resumes; the persistent
compilation cache lets a rerun skip the compile.  JAX is imported inside the functions, so
:func:`maybe_initialize_distributed` can run before any other JAX call.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from wlf_jax.params import EnvParams

from .design import apply_groups, slice_fields, stack_params
from .groups import RuleGroup


def maybe_initialize_distributed() -> bool:
    """Join a multi-host run when one is configured (``JAX_COORDINATOR_ADDRESS`` or a cluster
    that :func:`jax.distributed.initialize` detects by itself, flagged by ``WLF_DISTRIBUTED=1``).
    Returns whether it initialised.  Call before any other JAX call."""
    import jax

    if os.environ.get("JAX_COORDINATOR_ADDRESS") or os.environ.get("WLF_DISTRIBUTED") == "1":
        jax.distributed.initialize()
        return True
    return False


def use_compilation_cache(directory: str | os.PathLike) -> None:
    """Keep compiled programs on disk, so a resumed or repeated sweep skips the compile."""
    import jax

    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def device_mesh(devices: Sequence | None = None):
    """A 1-D :class:`jax.sharding.Mesh` named ``rulebooks`` over ``devices`` (default: all
    devices of all processes)."""
    import jax
    from jax.sharding import Mesh

    return Mesh(np.asarray(jax.devices() if devices is None else list(devices)), ("rulebooks",))


_EVALUATORS: dict = {}


def cached_evaluator(structure, action_maps: np.ndarray, mesh=None) -> Evaluator:
    """An :class:`Evaluator`, reused across calls with the same structure, maps and devices
    (so a process compiles each program once)."""
    mesh = device_mesh() if mesh is None else mesh
    key = (
        structure,
        np.asarray(action_maps, np.int32).tobytes(),
        tuple(d.id for d in mesh.devices.flat),
    )
    if key not in _EVALUATORS:
        _EVALUATORS[key] = Evaluator(structure, action_maps, mesh)
    return _EVALUATORS[key]


class Evaluator:
    """Exact scores of stacked rule books of one structure, sharded along the batch axis.

    ``run(fields)`` takes stacked fields with a multiple of ``len(mesh.devices)`` rows and
    returns numpy ``optimal`` (n,), ``maps`` (n, M), ``arrival`` (n, E).  Each device solves its
    own slice (``shard_map``: no communication); the same code runs on one CPU, 8 GPUs or a
    multi-host slice (every process passes the same full chunk and gets it all back).
    """

    def __init__(self, structure, action_maps: np.ndarray, mesh=None):
        import jax
        from jax.sharding import NamedSharding, PartitionSpec

        from agents.exact.induction import build_tree, solve

        self.mesh = device_mesh() if mesh is None else mesh
        self.devices = int(self.mesh.devices.size)
        tree = build_tree(structure)
        maps = np.asarray(action_maps, np.int32)
        spec = PartitionSpec("rulebooks")
        self.sharding = NamedSharding(self.mesh, spec)

        def local(params):
            out = solve(params, tree, maps)
            return out["optimal_score"], out["map_scores"], out["arrival_actions"]

        shard_map = getattr(jax, "shard_map", None)
        if shard_map is None:  # older jax
            from jax.experimental.shard_map import shard_map
        mapped = shard_map(local, mesh=self.mesh, in_specs=(spec,), out_specs=(spec, spec, spec))
        self._fn = jax.jit(
            mapped, in_shardings=(self.sharding,), out_shardings=(self.sharding,) * 3
        )

    def _put(self, x: np.ndarray):
        import jax

        return jax.make_array_from_callback(x.shape, self.sharding, lambda idx: x[idx])

    @staticmethod
    def _get(x) -> np.ndarray:
        import jax

        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    def run(self, fields: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Solve every rule book of ``fields`` (rows a multiple of the device count)."""
        n = len(next(iter(fields.values())))
        if n % self.devices:
            raise ValueError(f"{n} rule books do not split over {self.devices} devices")
        params = EnvParams(name="sweep", **{f: self._put(v) for f, v in fields.items()})
        optimal, maps, arrival = self._fn(params)
        return {
            "optimal": self._get(optimal),
            "maps": self._get(maps),
            "arrival": self._get(arrival),
        }


class ChunkStore:
    """Per-chunk results on disk so an interrupted sweep resumes where it stopped.

    ``DIR/run.json`` holds the run's fingerprint; ``DIR/chunks/NNNNN.npz`` one chunk each,
    written atomically.  A directory holding another run is refused unless ``fresh``.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        fingerprint: dict,
        fresh: bool = False,
        writer: bool = True,
    ):
        self.dir = Path(directory)
        self.chunks = self.dir / "chunks"
        self.writer = writer
        meta = self.dir / "run.json"
        digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()
        if meta.exists() and not fresh:
            old = json.loads(meta.read_text()).get("digest")
            if old != digest:
                raise ValueError(
                    f"{self.dir} holds the partial results of a different sweep; "
                    "use another --out or --fresh to discard them"
                )
        elif writer:
            if self.chunks.exists():
                for p in self.chunks.glob("*.npz"):
                    p.unlink()
        if writer:
            self.chunks.mkdir(parents=True, exist_ok=True)
            _atomic_write(
                meta, json.dumps({"digest": digest, "fingerprint": fingerprint}, indent=1)
            )

    def path(self, i: int) -> Path:
        """File of chunk ``i``."""
        return self.chunks / f"{i:05d}.npz"

    def load(self, i: int) -> dict[str, np.ndarray] | None:
        """Chunk ``i`` if it was saved, else None."""
        try:
            with np.load(self.path(i)) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError):
            return None

    def save(self, i: int, arrays: dict[str, np.ndarray]) -> None:
        """Write chunk ``i`` atomically."""
        if not self.writer:
            return
        tmp = self.path(i).with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, self.path(i))


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _everyone_has(flag: bool) -> bool:
    """Whether every process has a chunk (the solve is collective across processes, so either
    all skip it or all compute it)."""
    import jax

    if jax.process_count() == 1:
        return flag
    from jax.experimental import multihost_utils

    return bool(np.all(multihost_utils.process_allgather(np.asarray(flag))))


def evaluate_design(
    base: dict[str, np.ndarray],
    groups: Sequence[RuleGroup],
    X: np.ndarray,
    evaluator: Evaluator,
    chunk: int,
    store: ChunkStore | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Exact results for every row of ``X``, ``chunk`` rule books per device per compiled call;
    chunks found in ``store`` are not recomputed."""
    chunk = max(1, chunk) * evaluator.devices
    parts = []
    for i, start in enumerate(range(0, len(X), chunk)):
        stop = min(start + chunk, len(X))
        got = store.load(i) if store is not None else None
        if got is not None and len(got["optimal"]) != stop - start:
            got = None
        if not _everyone_has(got is not None):
            fields = slice_fields(apply_groups(base, groups, X[start:stop]), 0, stop - start, chunk)
            stack_params(fields)  # host-side validation of every sampled rule book
            res = evaluator.run(fields)
            got = {k: v[: stop - start] for k, v in res.items()}
            if store is not None:
                store.save(i, got)
        parts.append(got)
        if progress:
            progress(stop - start)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
