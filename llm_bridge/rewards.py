"""The GRPO reward: what a reply does in the simulator, as TRL reward functions.

Single turn: a dataset row carries its decision state (``state_json``, the
:func:`wlf_jax.reference.week_to_json` of a plain-Python :class:`Week`) and its ``preset``;
TRL passes those columns to the reward functions as keyword arguments, which restore the
state and score the completion:

    reward = Q*(state, decoded action) normalised in that state (optimal -> 1, worst -> 0)
           + judge_weight * judge quality
           - format penalties (empty, over length, several contradictory decisions,
                              illegible text: word salad, repetition, keyword lists)

The three terms are the module-level functions :func:`q_value`, :func:`judge_quality` and
:func:`format_penalty` (TRL's ``f(prompts, completions, **columns) -> list[float]``), combined by
``reward_weights`` ``[1, judge_weight, 1]``, so TRL logs each as ``rewards/<name>/mean``.  They
share one memo of scored replies, so each completion is decoded and judged once a step.
:func:`reward_funcs` gives them for a :class:`RewardConfig` (the module functions themselves
for the default one).

Multi turn: :func:`week_score`, the final rubric score of the week a completion played.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wlf_jax.reference import Week

from .consequence import get_solver, read_reply


@dataclass(frozen=True)
class RewardConfig:
    """Weights and limits of the single-turn reward."""

    judge_weight: float = 0.3
    empty_penalty: float = 1.0
    over_length_penalty: float = 0.5
    unreadable_penalty: float = 0.5
    """On top of the unreadable consequence (the worst action's value, quality 0): a reply that
    commits to no decision (echo, loop, someone else's message, contradictory decisions)."""
    max_chars: int = 700
    decoder: str = "default"
    judge: str = "default"
    illegible_penalty: float = 1.5
    """Times (1 - legibility): word salad, repetition, keyword lists, junk or text aimed at a grader
    would otherwise earn the value of whatever action the decoder reads into it."""
    gate_weight: float = 0.0
    """Times the decision gate's probability that a reply the decoder reads as legible commits to
    no decision (``llm_bridge.gate``; 0 for replies under its ``MIN_WORDS``): a reply just under
    the gate's threshold then earns less than a clear one, so GRPO is not paid for writing at the
    edge of what the decoder can see.  0 (the default) leaves the penalty out."""


DEFAULT_REWARD = RewardConfig()


def completion_text(completion: Any) -> str:
    """The text of a TRL completion: a string, or conversational ``[{"role", "content"}]``."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        return str(completion.get("content") or "")
    if isinstance(completion, Sequence):
        return "".join(
            completion_text(m)
            for m in completion
            if not isinstance(m, Mapping) or m.get("role", "assistant") == "assistant"
        )
    return str(completion)


def normalised_q(qs: Sequence[float], action: int) -> float:
    """Q*(s, a) rescaled within the state: the best action -> 1, the worst -> 0 (1 when all
    actions are worth the same)."""
    lo, hi = min(qs), max(qs)
    if hi - lo < 1e-12:
        return 1.0
    return (qs[action] - lo) / (hi - lo)


LEGIBILITY_GATES: tuple[str, ...] = ("stuffing", "repetition", "injection", "junk")


def legibility(event: int | str, text: str) -> float:
    """How much ``text`` reads as a message, in [0, 1]: the product of the default judge's
    anti-gaming gates (keyword stuffing, repetition, grader-directed text, junk; not topic
    relevance, so a terse "No." stays legible).  At least 0.5 for 99.9% of the labelled replies;
    1 for an empty reply (emptiness has its own penalty)."""
    from .judge import judge_details

    gates = judge_details(event, text or "").gates
    out = 1.0
    for k in LEGIBILITY_GATES:
        out *= gates.get(k, 1.0)
    return out


def format_penalties(
    event: int | str, text: str, cfg: RewardConfig = DEFAULT_REWARD, unreadable: bool | None = None
) -> dict[str, float]:
    """The format penalties of a reply (each >= 0): ``empty``, ``over_length``, ``unreadable``
    (the decoder's verdict: a reply that commits to no decision; decoded here unless given),
    ``illegible`` (``illegible_penalty * (1 - legibility)``) and, when ``cfg.gate_weight`` is
    set, ``uncertain`` (``gate_weight`` times :func:`gate_probability` for a legible reply)."""
    from .decode import get_decoder

    stripped = (text or "").strip()
    if unreadable is None:
        unreadable = get_decoder(cfg.decoder).decode(event, stripped).unreadable
    out = {
        "empty": cfg.empty_penalty if not stripped else 0.0,
        "over_length": cfg.over_length_penalty if len(stripped) > cfg.max_chars else 0.0,
        "unreadable": cfg.unreadable_penalty if unreadable else 0.0,
        "illegible": cfg.illegible_penalty * (1.0 - legibility(event, stripped)),
    }
    if cfg.gate_weight:
        out["uncertain"] = (
            0.0 if unreadable else cfg.gate_weight * gate_probability(event, stripped, cfg.decoder)
        )
    return out


def gate_probability(event: int | str, text: str, decoder: str = "default") -> float:
    """The decision gate's probability that ``text`` commits to no decision (0 for a decoder
    without a gate, and for replies under the gate's ``MIN_WORDS``, which it never flags)."""
    from .decode import event_idx, get_decoder
    from .gate import MIN_WORDS
    from .unreadable import words

    dec = get_decoder(decoder)
    gate = getattr(dec, "gate", None)
    if gate is None or len(words(text)) < MIN_WORDS:
        return 0.0
    return gate.probability(dec, event_idx(event), text)


@dataclass(frozen=True)
class ScoredReply:
    """Everything the reward knows about one completion in one state."""

    action: int
    confidence: float
    optimal: bool
    q: tuple[float, float, float]
    q_norm: float
    quality: float
    penalties: dict[str, float]
    unreadable: str | None = None
    """The kind of unreadable reply (``action`` is then the worst action it is read as)."""

    @property
    def penalty(self) -> float:
        return sum(self.penalties.values())

    def total(self, cfg: RewardConfig = DEFAULT_REWARD) -> float:
        """The scalar reward: ``q_norm + judge_weight * quality - penalties``."""
        return self.q_norm + cfg.judge_weight * self.quality - self.penalty


def score_reply(w: Week, preset: str, text: str, cfg: RewardConfig = DEFAULT_REWARD) -> ScoredReply:
    """Decode and judge ``text`` written in decision state ``w`` and look up Q* of its action."""
    from .decode import get_decoder
    from .judge import get_judge

    solver = get_solver(preset)
    e = w.slot_event[w.slot]
    read = read_reply(get_decoder(cfg.decoder), get_judge(cfg.judge), e, text or "", w, preset)
    d = read.decoded
    qs = solver.q(w)
    return ScoredReply(
        action=read.action,
        confidence=float(d.confidence),
        optimal=not d.unreadable and read.action == solver.optimal_action(w),
        q=tuple(qs),
        q_norm=normalised_q(qs, read.action),
        quality=read.quality,
        penalties=format_penalties(e, text, cfg, unreadable=d.unreadable),
        unreadable=d.reason,
    )


_SCORED: dict[tuple[str, str, str, RewardConfig], ScoredReply] = {}
"""Memo shared by the three reward functions (each completion is scored once per step)."""


def score_row(
    state_json: str, preset: str, text: str, cfg: RewardConfig = DEFAULT_REWARD
) -> ScoredReply:
    """:func:`score_reply` of ``text`` in a row's state (its ``state_json`` and ``preset``
    columns), memoised (the memo is cleared past 50,000 entries)."""
    key = (state_json, preset, text, cfg)
    hit = _SCORED.get(key)
    if hit is None:
        # imported here: llm_bridge.grpo imports this module
        from .grpo.data import restore_week

        if len(_SCORED) > 50_000:
            _SCORED.clear()
        hit = _SCORED[key] = score_reply(restore_week(state_json), preset, text, cfg)
    return hit


def _scored(completions, state_json, preset, cfg: RewardConfig) -> list[ScoredReply]:
    return [
        score_row(s, p, completion_text(c), cfg) for c, s, p in zip(completions, state_json, preset)
    ]


# ---- TRL reward functions: f(prompts, completions, **columns) -> list[float] -------------------


def q_value(
    prompts, completions, state_json, preset, *, reward_config: RewardConfig = DEFAULT_REWARD, **kw
) -> list[float]:
    """Normalised Q* of the decoded action, in [0, 1]; logs ``optimal_rate`` and
    ``decoder_confidence`` through TRL's ``log_metric`` when given."""
    scored = _scored(completions, state_json, preset, reward_config)
    log = kw.get("log_metric")
    if log and scored:
        log("optimal_rate", sum(s.optimal for s in scored) / len(scored))
        log("decoder_confidence", sum(s.confidence for s in scored) / len(scored))
    return [s.q_norm for s in scored]


def judge_quality(
    prompts, completions, state_json, preset, *, reward_config: RewardConfig = DEFAULT_REWARD, **kw
) -> list[float]:
    """The judge's quality of the reply, in [0, 1] (0 for an unreadable reply)."""
    return [s.quality for s in _scored(completions, state_json, preset, reward_config)]


def format_penalty(
    prompts, completions, state_json, preset, *, reward_config: RewardConfig = DEFAULT_REWARD, **kw
) -> list[float]:
    """Minus the sum of the format penalties (<= 0)."""
    return [-s.penalty for s in _scored(completions, state_json, preset, reward_config)]


def total_reward(
    prompts, completions, state_json, preset, *, reward_config: RewardConfig = DEFAULT_REWARD, **kw
) -> list[float]:
    """The weighted sum of the three in one call (for evaluation outside TRL)."""
    return [s.total(reward_config) for s in _scored(completions, state_json, preset, reward_config)]


def _with_config(func: Callable[..., list[float]], cfg: RewardConfig) -> Callable[..., list[float]]:
    """``func`` with ``reward_config=cfg``, under ``func``'s name (what TRL logs)."""

    def bound(prompts, completions, **columns) -> list[float]:
        return func(prompts, completions, reward_config=cfg, **columns)

    bound.__name__ = bound.__qualname__ = func.__name__
    bound.__doc__ = func.__doc__
    return bound


def reward_funcs(cfg: RewardConfig = DEFAULT_REWARD) -> list[Callable[..., list[float]]]:
    """``[q_value, judge_quality, format_penalty]`` for ``cfg``: the module functions themselves
    when ``cfg`` scores like the default, else the same functions bound to ``cfg``."""
    funcs = [q_value, judge_quality, format_penalty]
    # judge_weight only enters reward_weights, not the functions
    if cfg == RewardConfig(judge_weight=cfg.judge_weight):
        return funcs
    return [_with_config(f, cfg) for f in funcs]


def reward_weights(cfg: RewardConfig = DEFAULT_REWARD) -> list[float]:
    """TRL's ``reward_weights`` matching :func:`reward_funcs`: ``[1, judge_weight, 1]``."""
    return [1.0, cfg.judge_weight, 1.0]


def week_score(prompts, completions, week_score, **kw) -> list[float]:
    """Multi-turn reward: the final rubric score of the week the completion played (logs the
    decoded-action optimality rate, mean judged quality and early-end rate too)."""
    log = kw.get("log_metric")
    if log and week_score:
        for name in ("week_optimal_rate", "week_quality", "week_early_end"):
            if name in kw:
                log(name, sum(kw[name]) / len(kw[name]))
    return [float(s) for s in week_score]
