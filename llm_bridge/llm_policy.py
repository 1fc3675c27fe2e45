"""Play full weeks with a writer of free text: a local Hugging Face causal LM, or a scripted
persona.  Each reply is decoded into an action and judged for quality; both go to the
simulator (``step_env(None, state, action, params, quality)``).

Weeks are played side by side: the simulator state has a leading batch axis (``vmap``-ed
``reset`` / ``step_env``, jitted) and, at every decision, the prompts of all unfinished weeks go
to the model as one batch of generations.

    from llm_bridge.llm_policy import play_weeks
    from llm_bridge.writers import HFWriter
    result = play_weeks(HFWriter("/path/to/model"), preset="week_v2", n_weeks=32)

The writers are in :mod:`.writers`; torch and transformers are imported only by
:class:`~llm_bridge.writers.HFWriter`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from wlf_jax.events import ACTION_NAMES, EVENT_IDS

from .decode import get_decoder
from .judge import get_judge
from .prompts import build_messages
from .writers import Writer

# ---- playing weeks ----------------------------------------------------------------------


@dataclass
class WeekResults:
    """Outcome of :func:`play_weeks`: per-week arrays and the transcript of a few weeks."""

    summary: dict[str, Any]
    transcript: list[dict[str, Any]] = field(default_factory=list)


@lru_cache(maxsize=1)
def _batched_env():
    """WorkWeek with ``reset``/``step_env`` vmapped over weeks and jitted (compiled once)."""
    import jax

    from wlf_jax import WorkWeek

    env = WorkWeek()
    reset = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))
    step = jax.jit(
        jax.vmap(lambda s, a, q, p: env.step_env(None, s, a, p, q), in_axes=(0, 0, 0, None))
    )
    return env, reset, step


def play_weeks(
    writer: Writer,
    preset: str = "week_v2",
    n_weeks: int = 16,
    seed: int = 0,
    decoder: Any = "default",
    judge: str = "default",
    transcript_weeks: int = 3,
    show_options: bool = True,
    progress: Callable[[int, int], None] | None = None,
    compact: bool | None = None,
) -> WeekResults:
    """Play ``n_weeks`` weeks with ``writer``; every reply is decoded and judged.  ``decoder`` is
    a decoder's name or a decoder object (``decode(event, text, prompt)``).

    Returns a :class:`WeekResults` whose ``summary`` has the shape of
    ``wlf_jax.rollout.summarize`` (score mean and 95% CI, components, energy by day, ...) plus
    ``action_freq`` {event: [fraction per action]}, ``mean_quality``, ``mean_confidence`` and
    ``replies``; ``transcript`` lists the first ``transcript_weeks`` weeks step by step
    (prompt, reply, decoded action, confidence, quality, reward).
    """
    import jax
    import jax.numpy as jnp

    from wlf_jax import presets
    from wlf_jax.convert import week_from_state
    from wlf_jax.params import MAX_STEPS
    from wlf_jax.reward import components, rubric_total
    from wlf_jax.rollout import summarize

    from .consequence import read_reply
    from .decode import UNREADABLE_NAME

    params = presets.get(preset)
    if compact is None:
        compact = bool(getattr(writer, "compact", False))
    env, reset, step = _batched_env()
    dec = get_decoder(decoder) if isinstance(decoder, str) else decoder
    jud = get_judge(judge)
    keys = jax.random.split(jax.random.key(seed), n_weeks)
    _, state = reset(keys, params)
    returns = np.zeros(n_weeks)
    transcript: list[dict[str, Any]] = []
    qualities, confidences = [], []
    write_s = 0.0
    counts = {eid: np.zeros(3, np.int64) for eid in EVENT_IDS}
    unreadable = {eid: 0 for eid in EVENT_IDS}
    unreadable_kinds: dict[str, int] = {}
    for t in range(MAX_STEPS):
        host = jax.tree_util.tree_map(np.asarray, state)
        active = [i for i in range(n_weeks) if not bool(host.done[i])]
        if not active:
            break
        descs = [env.describe(jax.tree_util.tree_map(lambda x: x[i], host), params) for i in active]
        msgs = [build_messages(d, show_options=show_options, compact=compact) for d in descs]
        t_write = time.perf_counter()
        replies = writer.write(descs, msgs)
        write_s += time.perf_counter() - t_write
        actions = np.zeros(n_weeks, np.int32)
        quality = np.full(n_weeks, -1.0, np.float32)
        decoded = {}
        for i, d, m, reply in zip(active, descs, msgs, replies):
            ev = d["event"]["index"]

            def week_i(i=i, host=host):
                return week_from_state(jax.tree_util.tree_map(lambda x: x[i], host), params)

            read = read_reply(dec, jud, ev, reply, week_i, preset, prompt=m[-1]["content"])
            out, q = read.decoded, read.quality
            actions[i], quality[i] = read.action, q
            decoded[i] = (out, q)
            if out.unreadable:
                unreadable[d["event"]["id"]] += 1
                unreadable_kinds[out.reason] = unreadable_kinds.get(out.reason, 0) + 1
            else:
                counts[d["event"]["id"]][out.action] += 1
            qualities.append(q)
            confidences.append(out.confidence)
        _, state, reward, _, _ = step(state, jnp.asarray(actions), jnp.asarray(quality), params)
        reward = np.asarray(reward)
        returns += np.where([bool(not host.done[i]) for i in range(n_weeks)], reward, 0.0)
        for i, d, m, reply in zip(active, descs, msgs, replies):
            if i < transcript_weeks:
                out, q = decoded[i]
                transcript.append(
                    {
                        "week": i,
                        "step": t,
                        "day": d["day"],
                        "event": d["event"]["id"],
                        "prompt": m[-1]["content"],
                        "reply": reply,
                        "action": (
                            UNREADABLE_NAME
                            if out.unreadable
                            else ACTION_NAMES[d["event"]["index"]][out.action]
                        ),
                        "unreadable": out.reason,
                        "confidence": round(out.confidence, 4),
                        "quality": q,
                        "reward": float(reward[i]),
                    }
                )
        if progress:
            progress(t + 1, MAX_STEPS)
    final = state
    out = {
        "score": np.asarray(_over_weeks(rubric_total)(final, params)),
        "return": returns,
        "components": np.asarray(_over_weeks(components)(final, params)),
        "energy_by_day": np.asarray(final.energy_by_day, np.float32) / 100.0,
        "early_end": np.asarray(final.early_end),
        "decisions": np.asarray(final.count),
    }
    summary = summarize(out)
    summary.update(
        {
            # the headline keys of `wlf eval-llm --json`
            "week_score": summary["mean_score"],
            "week_score_ci": summary["ci95_score"],
            "agent": writer.name,
            "preset": preset,
            "decoder": getattr(dec, "name", decoder),
            "judge": judge if judge != "default" else "judge_v2",
            "replies": len(qualities),
            "unreadable": int(sum(unreadable.values())),
            "unreadable_rate": float(sum(unreadable.values()) / len(qualities))
            if qualities
            else 0.0,
            "unreadable_kinds": dict(sorted(unreadable_kinds.items())),
            "unreadable_by_event": {eid: n for eid, n in unreadable.items() if n},
            "mean_quality": float(np.mean(qualities)) if qualities else 0.0,
            "judged_quality": float(np.mean(qualities)) if qualities else 0.0,
            "mean_confidence": float(np.mean(confidences)) if confidences else 0.0,
            "write_s": round(write_s, 3),
            "replies_per_s": len(qualities) / write_s if write_s > 0 else float("inf"),
            # same shape as `wlf baselines`: {event id: [p(action 0), p(action 1), p(action 2)]} over
            # the legible replies (unreadable ones are counted apart, in "unreadable_by_event")
            "action_freq": {
                eid: [float(x) for x in c / c.sum()] for eid, c in counts.items() if c.sum()
            },
        }
    )
    summary["prompt"] = "compact" if compact else "full"
    if getattr(writer, "model_path", None):
        summary["model"] = writer.model_path
        summary["adapter"] = getattr(writer, "adapter", None)
    if getattr(writer, "dtype", None) is not None:
        # greedy replies differ between fp32 and bf16, so a score is tied to the dtype it was
        # played in (``--dtype auto`` picks bf16 only on CPUs with native bf16)
        summary["dtype"] = str(writer.dtype).removeprefix("torch.")
    return WeekResults(summary, transcript)


@cache
def _over_weeks(fn):
    """``fn(state, params)`` vmapped over weeks and jitted, once per process (the vmapped rubric
    run op by op compiled dozens of small programs, seconds per call)."""
    import jax

    return jax.jit(jax.vmap(fn, in_axes=(0, None)))


def format_summary(summary: Mapping[str, Any]) -> str:
    """The table printed by ``wlf eval-llm``."""
    from wlf_jax.params import COMPONENT_NAMES

    lines = [
        f"agent {summary['agent']} on {summary['preset']}: {summary['weeks']} weeks, {summary['replies']} replies"
        + (f", written in {summary['dtype']}" if summary.get("dtype") else ""),
        f"  week score      {summary['mean_score']:.4f} ± {summary['ci95_score']:.4f} (95% CI)",
        f"  return          {summary['mean_return']:.4f} ± {summary['ci95_return']:.4f}",
        f"  message quality {summary['mean_quality']:.3f} ({summary['judge']}), decoder confidence "
        f"{summary['mean_confidence']:.3f} ({summary['decoder']})",
        f"  unreadable      {summary.get('unreadable', 0)} of {summary['replies']} replies "
        f"({summary.get('unreadable_rate', 0.0):.1%})"
        + (
            ": " + ", ".join(f"{k} {v}" for k, v in summary.get("unreadable_kinds", {}).items())
            if summary.get("unreadable_kinds")
            else ""
        ),
        f"  early end rate  {summary['early_end_rate']:.3f}, decisions per week {summary['mean_decisions']:.2f}",
        "  components      "
        + ", ".join(f"{k} {summary['components'][k]:.3f}" for k in COMPONENT_NAMES),
        "  energy by day   "
        + " ".join(
            f"{d[:3]} {v:.2f}"
            for d, v in zip(
                ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday"), summary["energy_by_day"]
            )
        ),
        "  actions:",
    ]
    for eid, freq in summary["action_freq"].items():
        names = ACTION_NAMES[EVENT_IDS.index(eid)]
        lines.append(f"    {eid:<24} " + "  ".join(f"{a} {f:.2f}" for a, f in zip(names, freq)))
    return "\n".join(lines)


def write_transcript(transcript: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Write a transcript as JSON Lines (one decision per line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in transcript:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path
