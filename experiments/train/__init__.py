"""Training runs of the learners (`wlf train`): many seeds at once, chunked, checkpointed,
resumable, evaluated exactly against the optimum.

A run trains ``seeds`` seeds together (one ``jit(vmap(chunk))`` program) in ``n_chunks``
chunks.  After each chunk the greedy-policy parameters are saved (``snapshots/``) and then the
whole training state of every seed is written atomically to ``checkpoint.msgpack`` together with
the run's settings and progress, so ``run_training(resume=out)`` continues a killed run after
its last chunk and ends with exactly the parameters of an uninterrupted run.  After training
(outside ``wall_s``) the snapshots are valued exactly with the solver (the learning curve), and
the final greedy policies are valued exactly and on fresh sampled weeks.

Files in ``out``: ``checkpoint.msgpack``, ``snapshots/``, ``result.json``, ``curve.json``,
``curve.csv``, ``curve.png``.  :func:`load_trained` turns such a folder back into a policy.

Modules: ``config`` (learners, tuned settings), ``checkpoints`` (checkpoint and snapshot
files), ``evaluation`` (exact and sampled values, curves, finished runs as policies),
``runner`` (the compiled trainer, :func:`run_training`, :func:`resume`).
"""

from .checkpoints import CHECKPOINT, read_checkpoint, restore_carry, save_checkpoint
from .config import default_config, seed_keys
from .evaluation import (
    PolicyValuer,
    load_policy_params,
    load_trained,
    make_act_batch,
    policy_valuer,
    read_finished_run,
    seed_slice,
    summary_text,
    trained_name,
)
from .runner import compiled_trainer, resume, run_training

__all__ = [
    "CHECKPOINT",
    "default_config",
    "seed_keys",
    "read_checkpoint",
    "save_checkpoint",
    "restore_carry",
    "compiled_trainer",
    "run_training",
    "resume",
    "PolicyValuer",
    "policy_valuer",
    "make_act_batch",
    "seed_slice",
    "read_finished_run",
    "trained_name",
    "load_policy_params",
    "load_trained",
    "summary_text",
]
