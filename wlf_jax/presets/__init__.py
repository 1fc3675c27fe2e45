"""Rule books by name: ``week_v2`` (the default) and ``seed_v1`` (the original, exactly).

Each rule book is one module of rows (``week_v2_rules``, ``seed_v1_rules``) built into an
:class:`~wlf_jax.params.EnvParams` by :mod:`.rows`; this registry names them. Every number of
``week_v2`` is explained in ``docs/rulebook.md``.
"""

from __future__ import annotations

from collections.abc import Callable

from ..params import EnvParams
from . import seed_v1_rules, week_v2_rules
from .rows import Outcome, Row, build, schedule


def seed_v1() -> EnvParams:
    """The original hackathon rule book, reproduced exactly (SPEC §3.2)."""
    return seed_v1_rules.params()


def week_v2() -> EnvParams:
    """The default rule book: spawned consequences, days with recovery, chance, shaped rubric."""
    return week_v2_rules.params()


PRESETS: dict[str, Callable[[], EnvParams]] = {"week_v2": week_v2, "seed_v1": seed_v1}


def get(name: str) -> EnvParams:
    """The preset called ``name``; raises ``KeyError`` listing the known presets."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]()


__all__ = ["PRESETS", "Outcome", "Row", "build", "get", "schedule", "seed_v1", "week_v2"]
