"""Global sensitivity of the week score to the rule book: which consequence rules decide the week.

A *rule group* is a named set of entries of :class:`~wlf_jax.params.EnvParams` moved together by
one factor: scaled (``scale``), shifted (``shift``) or set (``set``) within an interval.  SALib
draws designs over the groups (Sobol' with Saltelli's scheme, or Morris elementary effects);
every sampled rule book is solved *exactly* by :mod:`agents.exact.induction` -- the optimal policy's
expected week score and every fixed agent's -- in chunks of stacked rule books, sharded across
all devices with :mod:`jax.sharding`.  A one-at-a-time sweep of each group from the default
rule book gives the policy-switch map: how often the optimal action of each event (where it
first arrives) differs from the default's.

Modules: ``groups`` (rule groups, group files), ``design`` (SALib designs, rule books from
factor values), ``solve`` (sharded exact evaluation, resumable chunks), ``indices`` (Sobol',
Morris, policy switch), ``sweep`` (:func:`run_sensitivity`, trained policies), ``figures``.

Pipeline (each step a small function, used by ``wlf sensitivity``)::

    groups = default_groups(params)            # or load_groups(path, params)
    X = sample_design(groups, "sobol", 128, seed)
    fields = apply_groups(base_fields(params), groups, X)     # valid, stacked rule books
    out = Evaluator(structure, action_maps).run(fields)       # exact scores, sharded
    sobol_indices(groups, out["optimal"], seed)
"""

from .design import apply_groups, base_fields, identity_row, one_at_a_time, sample_design
from .figures import save_figures
from .groups import GroupFileError, RuleGroup, Target, default_groups, load_groups, parse_groups
from .indices import morris_indices, policy_switch, sobol_indices
from .solve import ChunkStore, Evaluator, maybe_initialize_distributed, use_compilation_cache
from .sweep import SweepConfig, run_sensitivity, sweep_groups

__all__ = [
    "GroupFileError",
    "RuleGroup",
    "Target",
    "SweepConfig",
    "Evaluator",
    "ChunkStore",
    "default_groups",
    "load_groups",
    "parse_groups",
    "sample_design",
    "base_fields",
    "apply_groups",
    "one_at_a_time",
    "identity_row",
    "sobol_indices",
    "morris_indices",
    "policy_switch",
    "sweep_groups",
    "run_sensitivity",
    "save_figures",
    "maybe_initialize_distributed",
    "use_compilation_cache",
]
