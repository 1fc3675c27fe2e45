"""Exact solutions of a week: no sampling anywhere.

* :mod:`.host` — :class:`ExactSolver`, expectimax over every chance outcome on the plain-Python
  dynamics (any preset): V*, Q*(state, action), and the exact :class:`Evaluation` of any
  stochastic host policy; :func:`solver_for` is the process-wide cache of one solver per preset.
* :mod:`.patterns` — the exact expected score of many state-independent maps at once (JAX), by
  enumerating every order and outcome pattern with its probability.
* :mod:`.observe` — observations of host decision states, so networks are evaluated exactly.
* :mod:`.tree` + :mod:`.induction` — a fixed-shape solver that ``vmap``s over rule books
  (fixed-schedule presets): the tree of histories (host, once per structure), then backward
  induction in JAX.
* :mod:`.policy_scorer` — the exact score of any JAX observation policy, vmappable over rule
  books.
"""

from agents.exact.host import (
    Evaluation,
    ExactSolver,
    HostPolicy,
    deterministic,
    fixed_map_policy,
    solver_for,
    state_key,
    uniform_policy,
)
from agents.exact.observe import obs_policy, weeks_to_obs
from agents.exact.patterns import (
    PatternSet,
    chance_patterns,
    exact_scores,
    pattern_probability,
    pattern_scenarios,
    pattern_weights,
    relevant_maps,
)

__all__ = [
    "Evaluation",
    "ExactSolver",
    "HostPolicy",
    "PatternSet",
    "chance_patterns",
    "deterministic",
    "exact_scores",
    "fixed_map_policy",
    "obs_policy",
    "pattern_probability",
    "pattern_scenarios",
    "pattern_weights",
    "relevant_maps",
    "solver_for",
    "state_key",
    "uniform_policy",
    "weeks_to_obs",
]
