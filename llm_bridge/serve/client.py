"""Client side of `wlf serve`: the OpenEnv ``EnvClient`` of the week, a scripted writer, and a
load harness that plays many weeks at once and measures requests per second and latency.

    async with WeekClient(base_url="http://127.0.0.1:8000") as env:
        result = await env.reset(seed=7, preset="week_v2")
        while not result.done:
            result = await env.step(WeekAction(message="..."))

    with WeekClient(base_url=url).sync() as env:     # the same, synchronously
        result = env.reset(seed=7)
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from openenv.core.client_types import StepResult
from openenv.core.env_client import EnvClient

from .environment import WeekAction, WeekObservation, WeekState

PERSONAS = ("strategic", "people_pleaser", "stonewaller")


class WeekClient(EnvClient[WeekAction, WeekObservation, WeekState]):
    """OpenEnv client of the week: one WebSocket session, one week at a time."""

    def _step_payload(self, action: WeekAction) -> dict[str, Any]:
        return action.model_dump(exclude_none=True)

    def _parse_result(self, payload: dict[str, Any]) -> StepResult[WeekObservation]:
        data = dict(payload.get("observation", {}))
        data.update(reward=payload.get("reward"), done=payload.get("done", False))
        obs = WeekObservation.model_validate(data)
        return StepResult(
            observation=obs,
            reward=payload.get("reward"),
            done=obs.done,
            metadata=payload.get("metadata"),
        )

    def _parse_state(self, payload: dict[str, Any]) -> WeekState:
        return WeekState.model_validate(payload)


# ---- a scripted writer ----------------------------------------------------------------------


def persona_for(seed: int) -> str:
    """The scripted persona that plays week ``seed`` in demos and load tests."""
    return PERSONAS[seed % len(PERSONAS)]


def scripted_reply(event_id: str, seed: int, decision: int, persona: str | None = None) -> str:
    """A canned reply of ``persona`` (default :func:`persona_for`) to ``event_id``; the phrasing
    alternates with ``seed + decision`` so a week is reproducible."""
    from llm_bridge.writers import SCRIPTS

    options = SCRIPTS[persona or persona_for(seed)][event_id]
    return options[(seed + decision) % len(options)]


def scripted_action(
    event_id: str, seed: int, decision: int, structured_every: int = 5
) -> WeekAction:
    """The action the load harness sends: the scripted reply, and for one seed in
    ``structured_every`` also a structured action index (``decision % 3``)."""
    text = scripted_reply(event_id, seed, decision)
    structured = structured_every and seed % structured_every == structured_every - 1
    index = decision % 3 if structured else None
    return WeekAction(message=text, action_index=index)


# ---- playing weeks --------------------------------------------------------------------------


@dataclass
class WeekResult:
    """One week played over the wire: rewards per step, final rubric and score."""

    seed: int
    preset: str
    rewards: list[float] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    rubric: dict[str, float] = field(default_factory=dict)
    score: float | None = None
    week_return: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds per request, reset included


async def play_week(
    base_url: str,
    seed: int,
    preset: str = "week_v2",
    act: Callable[[str, int, int], WeekAction] = scripted_action,
    timeout_s: float = 60.0,
) -> WeekResult:
    """Play week ``seed`` on the server with ``act(event_id, seed, decision)``; returns its
    result."""
    result = WeekResult(seed, preset)
    async with WeekClient(base_url=base_url, message_timeout_s=timeout_s) as env:
        t0 = time.perf_counter()
        step = await env.reset(seed=seed, preset=preset)
        result.latencies.append(time.perf_counter() - t0)
        decision = 0
        while not step.done:
            action = act(step.observation.event["id"], seed, decision)
            t0 = time.perf_counter()
            step = await env.step(action)
            result.latencies.append(time.perf_counter() - t0)
            result.rewards.append(float(step.reward))
            result.actions.append(step.observation.last["action"])
            decision += 1
        obs = step.observation
        result.rubric, result.score = dict(obs.rubric), obs.score
        result.week_return = obs.week_return
    return result


def latency_summary(latencies: list[float], seconds: float) -> dict[str, float]:
    """Requests, requests per second and p50/p99/max latency (ms) of a run that took ``seconds``."""
    ordered = sorted(latencies)
    if not ordered:
        return {
            "requests": 0,
            "seconds": seconds,
            "requests_per_s": 0.0,
            "p50_ms": 0.0,
            "p99_ms": 0.0,
            "max_ms": 0.0,
        }

    def pct(q: float) -> float:
        return 1000 * ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    return {
        "requests": len(ordered),
        "seconds": round(seconds, 3),
        "requests_per_s": round(len(ordered) / seconds, 1) if seconds > 0 else 0.0,
        "p50_ms": round(pct(0.50), 2),
        "p99_ms": round(pct(0.99), 2),
        "max_ms": round(1000 * ordered[-1], 2),
        "mean_ms": round(1000 * statistics.fmean(ordered), 2),
    }


async def play_many(
    base_url: str,
    seeds: list[int],
    presets: list[str] | None = None,
    concurrency: int = 50,
    deadline_s: float = 120.0,
) -> tuple[list[WeekResult], dict[str, float]]:
    """Play ``seeds`` concurrently (at most ``concurrency`` sessions at once) within ``deadline_s``.

    Returns the results (in the order of ``seeds``) and the latency summary of all requests.
    """
    presets = presets or ["week_v2"] * len(seeds)
    gate = asyncio.Semaphore(concurrency)

    async def one(seed: int, preset: str) -> WeekResult:
        async with gate:
            return await play_week(base_url, seed, preset)

    t0 = time.perf_counter()
    weeks = asyncio.gather(*(one(s, p) for s, p in zip(seeds, presets)))
    results = await asyncio.wait_for(weeks, deadline_s)
    seconds = time.perf_counter() - t0
    return list(results), latency_summary([x for r in results for x in r.latencies], seconds)


def bench(
    base_url: str,
    n_clients: int = 50,
    preset: str = "week_v2",
    first_seed: int = 0,
    deadline_s: float = 300.0,
    warmup: bool = True,
) -> dict[str, Any]:
    """Load benchmark: ``n_clients`` concurrent clients each play one full week.

    ``warmup`` first plays one week alone (not measured): a fresh client process pays one-off
    costs on its first connection that would otherwise show up as a second of latency.
    Returns the latency summary plus ``weeks``, ``clients``, ``preset`` and ``mean_score``.
    """
    seeds = list(range(first_seed, first_seed + n_clients))

    async def run():
        if warmup:
            await play_week(base_url, first_seed + n_clients, preset)
        return await play_many(base_url, seeds, [preset] * n_clients, n_clients, deadline_s)

    results, summary = asyncio.run(run())
    summary.update(
        weeks=len(results),
        clients=n_clients,
        preset=preset,
        mean_score=round(statistics.fmean(r.score for r in results), 4),
    )
    return summary


def format_bench(summary: dict[str, Any]) -> str:
    """One paragraph of benchmark numbers."""
    return (
        f"{summary['weeks']} weeks by {summary['clients']} concurrent clients "
        f"({summary['preset']}): {summary['requests']} requests in {summary['seconds']:.2f} s "
        f"= {summary['requests_per_s']:.1f} req/s; latency p50 {summary['p50_ms']:.1f} ms, "
        f"p99 {summary['p99_ms']:.1f} ms, max {summary['max_ms']:.1f} ms; "
        f"mean week score {summary['mean_score']:.4f}"
    )


def demo_week(
    base_url: str,
    seed: int = 0,
    preset: str = "week_v2",
    persona: str = "strategic",
    out: Callable[[str], None] = print,
) -> WeekResult:
    """Play one week synchronously with a scripted ``persona``, printing each exchange."""
    result = WeekResult(seed, preset)
    with WeekClient(base_url=base_url).sync() as env:
        step = env.reset(seed=seed, preset=preset)
        out(f"week {seed} of {preset}, played by the scripted {persona} writer\n")
        decision = 0
        while not step.done:
            obs = step.observation
            reply = scripted_reply(obs.event["id"], seed, decision, persona)
            out(f"[{obs.day}] {obs.event['sender']}: {obs.event['title']}")
            out(f"  reply: {reply or '(no reply)'}")
            step = env.step(WeekAction(message=reply))
            last = step.observation.last
            out(
                f"  read as {last['action']} (confidence {last['confidence']:.2f}), quality "
                f"{last['quality']:.2f}, reward {step.reward:+.4f}"
            )
            result.rewards.append(float(step.reward))
            result.actions.append(last["action"])
            decision += 1
        obs = step.observation
        out("\n" + obs.situation)
        result.rubric, result.score = dict(obs.rubric), obs.score
        result.week_return = obs.week_return
    return result
