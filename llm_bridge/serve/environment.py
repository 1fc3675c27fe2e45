"""The week as an OpenEnv ``Environment``: wire models, request validation and one session.

:class:`WeekEnvironment` is an ``Environment`` whose pydantic :class:`WeekAction` is a reply
(free text, optionally with a structured action index) and whose :class:`WeekObservation`
carries the rendered situation, status, history, the allowed actions' meanings, the simulator's
reward and ``done``, and the five rubric components when the week is over (scored by a
``WeightedSum`` rubric of the rule book's weights).

Each reply is decoded into an action (``llm_bridge.decode``) and judged for quality
(``llm_bridge.judge``); both go to the simulator (:mod:`llm_bridge.serve.simulator`), jitted
once per rule book and shared by all sessions.  The HTTP/WebSocket app around it is
:mod:`llm_bridge.serve.app`.

Longer than 400 lines on purpose: one OpenEnv environment class and the models of its
messages, which a client reads together.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from typing import Any

from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import Action, EnvironmentMetadata, Observation, State
from openenv.core.rubrics import Rubric, WeightedSum
from pydantic import Field, StrictInt, StrictStr, field_validator
from pydantic_core import PydanticCustomError

from .simulator import Simulator, describe_host, get_simulator, known_presets

ENV_NAME = "work_life_firewall"
MAX_TEXT_BYTES = 16 * 1024
"""Largest reply accepted, in bytes of UTF-8."""
SEED_LIMIT = 2**32
"""Seeds are 0 <= seed < 2**32 (JAX keys hold 32 bits; larger seeds would wrap silently)."""
RESET_FIELDS = ("seed", "preset", "episode_id")
SESSION_CLOSED = "session_closed"


# ---- errors ---------------------------------------------------------------------------------


class WeekError(ValueError):
    """A request the week cannot serve.  ``code`` is machine-readable, ``status`` the HTTP
    status it maps to; ``str()`` reads ``"<code>: <message>"``."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


# ---- wire models ----------------------------------------------------------------------------


class WeekAction(Action):
    """A reply to the current message of the week.

    ``message`` is the text Arjun sends (decoded into an action and judged for quality);
    ``action_index`` (0, 1 or 2), when given, picks the action directly and the text is only
    judged (an empty text then uses the rule book's template quality).
    """

    message: StrictStr = Field(default="", description="the reply, at most 16 KB of UTF-8")
    action_index: StrictInt | None = Field(
        default=None, ge=0, le=2, description="optional structured action: 0, 1 or 2"
    )

    @field_validator("message")
    @classmethod
    def _fits(cls, text: str) -> str:
        size = len(text.encode("utf-8", errors="surrogatepass"))
        if size > MAX_TEXT_BYTES:
            # PydanticCustomError keeps the error JSON-serialisable (no exception object in ctx)
            raise PydanticCustomError(
                "text_too_large",
                "message is {size} bytes of UTF-8; the limit is {limit}",
                {"size": size, "limit": MAX_TEXT_BYTES},
            )
        return text


# the docstring stays on one line: it is the description /schema publishes for this model
class WeekObservation(Observation):
    """What the writer sees after a reset or a reply (``reward`` and ``done`` from the simulator)."""  # noqa: E501

    preset: str = Field(default="", description="rule book of this week")
    seed: int = Field(default=0, description="the week's seed (order of events and luck)")
    system_prompt: str = Field(default="", description="who Arjun is; sent with the reset only")
    situation: str = Field(
        default="",
        description="the rendered situation (prompt for a writer), or the end-of-week summary",
    )
    day: str = Field(default="", description="Monday..Friday")
    decisions: int = Field(default=0, description="decisions made so far")
    event: dict[str, Any] | None = Field(
        default=None,
        description="current message: id, title, sender, channel, stakeholder, "
        "body (None once the week is over)",
    )
    actions: list[dict[str, Any]] = Field(
        default_factory=list, description="allowed actions: index, name, meaning"
    )
    status: dict[str, Any] = Field(
        default_factory=dict, description="energy, sprint health, trust, flags"
    )
    pending: list[str] = Field(default_factory=list, description="consequences coming back later")
    history: list[dict[str, str]] = Field(default_factory=list, description="decisions so far")
    last: dict[str, Any] | None = Field(
        default=None,
        description="how the last reply was read: "
        "action, source, confidence, quality, alt_outcome, reward",
    )
    rubric: dict[str, float] = Field(
        default_factory=dict,
        description="the five rubric components (filled when the week is over)",
    )
    score: float | None = Field(default=None, description="the week's score (when over)")
    week_return: float = Field(default=0.0, description="sum of the rewards so far")
    early_end: bool = Field(default=False, description="the week ended because energy ran out")


class WeekState(State):
    """Session state: the OpenEnv episode id and step count plus the week's identity."""

    preset: str = ""
    seed: int = 0
    done: bool = False
    score: float | None = None
    week_return: float = 0.0


# ---- observations ---------------------------------------------------------------------------


def closing_text(desc: dict[str, Any], week_return: float) -> str:
    """The end-of-week summary shown as the final situation."""
    ran_out = " You ran out of energy before Friday." if desc["early_end"] else ""
    lines = [
        "The week is over." + ran_out,
        f"Week score {desc['score']:.4f} (return {week_return:+.4f}).",
        *(f"- {name}: {value:.3f}" for name, value in desc["rubric"].items()),
    ]
    return "\n".join(lines)


def observation_from(
    desc: dict[str, Any],
    seed: int,
    reward: float | None,
    week_return: float,
    last: dict[str, Any] | None = None,
    system_prompt: str = "",
) -> WeekObservation:
    """Build the wire observation from a ``describe`` dict (rubric and score only at the end)."""
    from llm_bridge.prompts import event_prompt

    ev = desc["event"]
    done = bool(desc["done"])
    return WeekObservation(
        preset=desc["preset"],
        seed=seed,
        system_prompt=system_prompt,
        situation=closing_text(desc, week_return) if done else event_prompt(desc),
        day=desc["day"],
        decisions=desc["decisions"],
        event=None if ev is None else {k: v for k, v in ev.items() if k != "actions"},
        actions=[] if ev is None else list(ev["actions"]),
        status=desc["status"],
        pending=list(desc["pending"]),
        history=list(desc["history"]),
        last=last,
        rubric=dict(desc["rubric"]) if done else {},
        score=float(desc["score"]) if done else None,
        week_return=float(week_return),
        early_end=bool(desc["early_end"]),
        done=done,
        reward=reward,
    )


# ---- rubric -----------------------------------------------------------------------------------


class ComponentRubric(Rubric):
    """One of the five rubric components, as the simulator computed it for the observation."""

    def __init__(self, component: str):
        super().__init__()
        self.component = component

    def forward(self, action, observation) -> float:
        return float(observation.rubric.get(self.component, 0.0))


def week_rubric(weights: tuple[float, ...]) -> WeightedSum:
    """The week's rubric: ``WeightedSum`` of the five components with the rule book's weights
    (children in ``COMPONENT_NAMES`` order; each child's ``last_score`` is its component)."""
    from wlf_jax.params import COMPONENT_NAMES

    return WeightedSum([ComponentRubric(n) for n in COMPONENT_NAMES], list(weights))


def rubric_scores(rubric: WeightedSum) -> dict[str, float | None]:
    """``{component: last score}`` of a :func:`week_rubric` after it scored a finished week."""
    return {child.component: child.last_score for child in rubric.children()}


# ---- validation -------------------------------------------------------------------------------


def check_seed(seed: Any) -> int:
    """A valid seed (0 <= seed < 2**32), or a fresh random one for ``None``."""
    if seed is None:
        return secrets.randbelow(SEED_LIMIT)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise WeekError(
            "invalid_seed", f"seed must be an integer with 0 <= seed < 2**32, got {seed!r}"
        )
    return seed


def check_preset(preset: Any, default: str) -> str:
    """A known preset name (``None`` means the server's default)."""
    if preset is None:
        return default
    names = known_presets()
    if not isinstance(preset, str) or preset not in names:
        raise WeekError("unknown_preset", f"unknown preset {preset!r}; known: {', '.join(names)}")
    return preset


def check_episode_id(episode_id: Any) -> str:
    """A caller's episode id (a string of at most 255 characters) or a fresh one."""
    if episode_id is None:
        return str(uuid.uuid4())
    if not isinstance(episode_id, str) or len(episode_id) > 255:
        raise WeekError(
            "invalid_episode_id", "episode_id must be a string of at most 255 characters"
        )
    return episode_id


# ---- the environment --------------------------------------------------------------------------


class WeekEnvironment(Environment[WeekAction, WeekObservation, WeekState]):
    """One session's week.  ``reset(seed, preset)`` starts a week; ``step(WeekAction)`` sends a
    reply.  Every session has its own state; the compiled simulators are shared."""

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(
        self, default_preset: str = "week_v2", decoder: str = "default", judge: str = "default"
    ):
        super().__init__()
        self.default_preset = check_preset(default_preset, default_preset)
        self.decoder_name, self.judge_name = decoder, judge
        self._sim: Simulator | None = None
        self._state = None  # device EnvState of the week in progress
        self._desc: dict[str, Any] | None = None
        self._seed = 0
        self._return = 0.0
        self._closed = False
        self._info = WeekState()
        self._touch: Callable[[WeekEnvironment], None] | None = None  # set by create_week_app

    # -- OpenEnv API --------------------------------------------------------------------------
    def reset(
        self,
        seed: int | None = None,
        episode_id: str | None = None,
        preset: str | None = None,
        **kwargs: Any,
    ) -> WeekObservation:
        """Start the week ``seed`` of rule book ``preset``; returns Monday morning."""
        import jax
        import numpy as np

        from llm_bridge.prompts import system_prompt

        self._check_open()
        if self._touch is not None:
            self._touch(self)
        if kwargs:
            raise WeekError(
                "unknown_field",
                f"unknown reset field(s) {sorted(kwargs)}; known: {', '.join(RESET_FIELDS)}",
            )
        seed = check_seed(seed)
        name = check_preset(preset, self.default_preset)
        episode_id = check_episode_id(episode_id)
        sim = get_simulator(name)
        state, comps, score = sim.start(np.uint32(seed))
        host, comps, score = jax.device_get((state, comps, score))
        self._sim, self._state, self._seed, self._return = sim, state, seed, 0.0
        self._desc = describe_host(host, sim.params, comps, score)
        self.rubric = week_rubric(sim.weights)
        self._info = WeekState(episode_id=episode_id, step_count=0, preset=name, seed=seed)
        return observation_from(self._desc, seed, None, 0.0, system_prompt=system_prompt())

    def step(
        self, action: WeekAction, timeout_s: float | None = None, **kwargs: Any
    ) -> WeekObservation:
        """Send one reply: decode, judge, apply; returns the next situation (or the week's end)."""
        import jax
        import numpy as np

        self._check_open()
        if self._state is None:
            raise WeekError(
                "no_week",
                "no week in progress: reset first. Plain HTTP /step is "
                "stateless; play a week on a WebSocket session (/ws, e.g. EnvClient)",
                409,
            )
        if self._desc["done"]:
            raise WeekError("week_over", "the week is over; reset to start another", 409)
        if not isinstance(action, WeekAction):
            raise WeekError("invalid_action", f"expected a WeekAction, got {type(action).__name__}")
        ev = self._desc["event"]
        choice, source, confidence, quality = self._read(ev, action)
        unreadable = source.startswith("unreadable")
        nxt, reward, done, info = self._sim.advance(
            self._state, np.int32(choice), np.float32(quality)
        )
        host, reward, info = jax.device_get((nxt, reward, info))
        reward = float(reward)
        self._state, self._return = nxt, self._return + reward
        self._desc = describe_host(host, self._sim.params, info["components"], info["score"])
        last = {
            "event": ev["id"],
            "action_index": choice,
            "action": ev["actions"][choice]["name"],
            "source": "decoded" if unreadable else source,
            "unreadable": source[11:] if unreadable else None,
            "confidence": round(confidence, 4),
            "quality": round(float(info["quality"]), 4),
            "alt_outcome": bool(info["alt_outcome"]),
            "reward": reward,
        }
        obs = observation_from(self._desc, self._seed, reward, self._return, last)
        self._info.step_count += 1
        if obs.done:
            self._apply_rubric(action, obs)
            self._info.done, self._info.score = True, obs.score
        self._info.week_return = self._return
        return obs

    @property
    def state(self) -> WeekState:
        self._check_open()
        if self._touch is not None:
            self._touch(self)  # a state request is activity: the idle reaper leaves it alone
        return self._info

    def get_metadata(self) -> EnvironmentMetadata:
        return EnvironmentMetadata(
            name=ENV_NAME,
            version="0.1.0",
            description="Work-Life Firewall: one hard work week, Monday to Friday. You are Arjun; "
            "reply to each message in your own words. Replies are decoded into actions "
            "and judged for quality; the week is scored on five rubric components.",
        )

    def close(self) -> None:
        """End the session (also called when an idle session is reaped)."""
        self._closed = True
        self._state = None

    # -- helpers ------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise WeekError(
                SESSION_CLOSED,
                "this session has ended (idle too long or closed); open a new session",
                410,
            )

    def _read(self, event: dict[str, Any], action: WeekAction) -> tuple[int, str, float, float]:
        """(action index, "index" | "decoded" | "unreadable:<kind>", confidence, quality) of a
        reply to ``event``.  An unreadable reply is played as the worst action in this state with
        quality 0 (``llm_bridge.consequence``; the first one builds the rule book's exact
        solver)."""
        import jax

        from llm_bridge.consequence import read_reply
        from llm_bridge.decode import get_decoder
        from llm_bridge.judge import get_judge
        from wlf_jax.convert import week_from_state

        text = action.message
        judge = get_judge(self.judge_name)
        if action.action_index is not None:
            quality = float(judge(event["index"], text)) if text.strip() else -1.0
            return int(action.action_index), "index", 1.0, quality
        sim = self._sim
        read = read_reply(
            get_decoder(self.decoder_name),
            judge,
            event["index"],
            text,
            lambda: week_from_state(jax.device_get(self._state), sim.params),
            sim.name,
        )
        source = f"unreadable:{read.decoded.reason}" if read.decoded.unreadable else "decoded"
        return int(read.action), source, float(read.decoded.confidence), read.quality
