"""The week as an OpenEnv environment: text in, observation and reward out, many sessions.

Built from the ``openenv`` package's own pieces: :class:`WeekEnvironment` is an
``Environment`` whose pydantic :class:`WeekAction` is a reply (free text, optionally with a
structured action index) and whose :class:`WeekObservation` carries the rendered situation,
status, history, the allowed actions' meanings, the simulator's reward and ``done``, and the
five rubric components when the week is over (scored by a ``WeightedSum`` rubric of the rule
book's weights).  :func:`create_week_app` wraps it with ``create_app`` (HTTP + WebSocket,
``max_concurrent_envs`` sessions, idle sessions reaped) and adds clear JSON errors.

Each reply is decoded into an action (``llm_bridge.decode``) and judged for quality
(``llm_bridge.judge``); both go to the simulator (``WorkWeek.step_env``), jitted once per
rule book at start-up and shared by all sessions.

    app = create_week_app(default_preset="week_v2", max_sessions=64, idle_timeout_s=300)
    uvicorn experiments.serve:app          # the same app with default settings

Plain HTTP ``/reset`` and ``/step`` are stateless in OpenEnv (a fresh environment per
request); a week lives on a WebSocket session (``/ws``, what ``EnvClient`` uses).
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Optional

from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import Action, EnvironmentMetadata, Observation, State
from openenv.core.rubrics import Rubric, WeightedSum
from pydantic import Field, StrictInt, StrictStr, field_validator
from pydantic_core import PydanticCustomError

ENV_NAME = "work_life_firewall"
MAX_TEXT_BYTES = 16 * 1024
"""Largest reply accepted, in bytes of UTF-8."""
MAX_BODY_BYTES = 256 * 1024
"""Largest HTTP body or WebSocket frame (a 16 KB reply can grow sixfold as escaped JSON)."""
SEED_LIMIT = 2**32
"""Seeds are 0 <= seed < 2**32 (JAX keys hold 32 bits; larger seeds would wrap silently)."""
MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects accepted in a frame or body (a reply needs 3)."""
MAX_INT_DIGITS = 32
"""Longest integer literal accepted in a frame or body (a seed needs 10 digits)."""
SESSION_ROUTES = ("openenv/session/create", "openenv/session/close")
"""OpenEnv's session methods over MCP; off unless ``allow_session_routes`` (see docs/serve.md)."""
RESET_FIELDS = ("seed", "preset", "episode_id")
SESSION_CLOSED = "session_closed"
SESSION_CLOSED_MARK = f'"message":"{SESSION_CLOSED}:'
"""How an error frame of a closed session starts (openenv writes compact JSON)."""

log = logging.getLogger("wlf.serve")


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
    action_index: Optional[StrictInt] = Field(
        default=None, ge=0, le=2, description="optional structured action: 0, 1 or 2")

    @field_validator("message")
    @classmethod
    def _fits(cls, text: str) -> str:
        size = len(text.encode("utf-8", errors="surrogatepass"))
        if size > MAX_TEXT_BYTES:
            # PydanticCustomError keeps the error JSON-serialisable (no exception object in ctx)
            raise PydanticCustomError("text_too_large", "message is {size} bytes of UTF-8; the limit is {limit}",
                                      {"size": size, "limit": MAX_TEXT_BYTES})
        return text


class WeekObservation(Observation):
    """What the writer sees after a reset or a reply (``reward`` and ``done`` from the simulator)."""

    preset: str = Field(default="", description="rule book of this week")
    seed: int = Field(default=0, description="the week's seed (order of events and luck)")
    system_prompt: str = Field(default="", description="who Arjun is; sent with the reset only")
    situation: str = Field(default="", description="the rendered situation (prompt for a writer), "
                           "or the end-of-week summary")
    day: str = Field(default="", description="Monday..Friday")
    decisions: int = Field(default=0, description="decisions made so far")
    event: Optional[dict[str, Any]] = Field(default=None, description="current message: id, title, "
                                            "sender, channel, stakeholder, body (None once the week is over)")
    actions: list[dict[str, Any]] = Field(default_factory=list, description="allowed actions: index, name, meaning")
    status: dict[str, Any] = Field(default_factory=dict, description="energy, sprint health, trust, flags")
    pending: list[str] = Field(default_factory=list, description="consequences coming back later")
    history: list[dict[str, str]] = Field(default_factory=list, description="decisions so far")
    last: Optional[dict[str, Any]] = Field(default=None, description="how the last reply was read: "
                                           "action, source, confidence, quality, alt_outcome, reward")
    rubric: dict[str, float] = Field(default_factory=dict, description="the five rubric components "
                                     "(filled when the week is over)")
    score: Optional[float] = Field(default=None, description="the week's score (when over)")
    week_return: float = Field(default=0.0, description="sum of the rewards so far")
    early_end: bool = Field(default=False, description="the week ended because energy ran out")


class WeekState(State):
    """Session state: the OpenEnv episode id and step count plus the week's identity."""

    preset: str = ""
    seed: int = 0
    done: bool = False
    score: Optional[float] = None
    week_return: float = 0.0


# ---- simulators: one jitted pair per rule book, shared by every session ---------------------

@dataclass(frozen=True)
class Simulator:
    """A rule book with its compiled functions.

    ``start(seed uint32) -> (state, components (5,), score)``;
    ``advance(state, action int32, quality float32) -> (state, reward, done, info)``.
    """

    name: str
    params: Any
    start: Callable
    advance: Callable
    weights: tuple[float, ...]


def build_simulator(preset: str) -> Simulator:
    """Jit ``reset`` and ``step_env`` of ``preset`` and compile them (one call each)."""
    import jax
    import numpy as np

    from wlf_jax import WorkWeek, presets
    from wlf_jax.params import to_python
    from wlf_jax.reward import components, rubric_total

    params = presets.get(preset)
    env = WorkWeek()

    @jax.jit
    def start(seed):
        _, state = env.reset(jax.random.key(seed), params)
        return state, components(state, params), rubric_total(state, params)

    @jax.jit
    def advance(state, action, quality):
        _, nxt, reward, done, info = env.step_env(None, state, action, params, quality)
        return nxt, reward, done, info

    state, _, _ = start(np.uint32(0))
    jax.block_until_ready(advance(state, np.int32(0), np.float32(-1.0)))
    weights = tuple(float(w) for w in to_python(params)["rubric_weights"])
    return Simulator(preset, params, start, advance, weights)


_SIMULATORS: dict[str, Simulator] = {}
_SIM_LOCK = threading.Lock()


def known_presets() -> tuple[str, ...]:
    """Names of the rule books a reset may ask for."""
    from wlf_jax import presets

    return tuple(presets.PRESETS)


def get_simulator(preset: str) -> Simulator:
    """The compiled simulator of ``preset`` (built on first use, then shared)."""
    sim = _SIMULATORS.get(preset)
    if sim is None:
        with _SIM_LOCK:
            sim = _SIMULATORS.get(preset)
            if sim is None:
                sim = _SIMULATORS[preset] = build_simulator(preset)
    return sim


def warm_up(preset_names: tuple[str, ...] | None = None) -> None:
    """Compile every rule book and train the decoder now, so no request pays for it."""
    from llm_bridge.decode import get_decoder
    from llm_bridge.judge import get_judge

    for name in preset_names or known_presets():
        get_simulator(name)
    get_decoder("default").decode("E1_staging", "on it")
    get_judge("default")("E1_staging", "on it")


# ---- host-side view of a state ----------------------------------------------------------------

def describe_host(s, params, comps, score) -> dict[str, Any]:
    """``WorkWeek.describe`` of a host (numpy) copy of a state with its rubric already computed
    on the device (``comps`` shape (5,), ``score``), so no JAX dispatch happens per request."""
    from wlf_jax import WorkWeek

    return WorkWeek().describe(s, params, rubric=(comps, score))


def closing_text(desc: dict[str, Any], week_return: float) -> str:
    """The end-of-week summary shown as the final situation."""
    lines = ["The week is over." + (" You ran out of energy before Friday." if desc["early_end"] else ""),
             f"Week score {desc['score']:.4f} (return {week_return:+.4f}).",
             *(f"- {name}: {value:.3f}" for name, value in desc["rubric"].items())]
    return "\n".join(lines)


def observation_from(desc: dict[str, Any], seed: int, reward: float | None, week_return: float,
                     last: dict[str, Any] | None = None, system_prompt: str = "") -> WeekObservation:
    """Build the wire observation from a ``describe`` dict (rubric and score only at the end)."""
    from llm_bridge.prompts import event_prompt

    ev = desc["event"]
    done = bool(desc["done"])
    return WeekObservation(
        preset=desc["preset"], seed=seed, system_prompt=system_prompt,
        situation=closing_text(desc, week_return) if done else event_prompt(desc),
        day=desc["day"], decisions=desc["decisions"],
        event=None if ev is None else {k: v for k, v in ev.items() if k != "actions"},
        actions=[] if ev is None else list(ev["actions"]),
        status=desc["status"], pending=list(desc["pending"]), history=list(desc["history"]),
        last=last, rubric=dict(desc["rubric"]) if done else {},
        score=float(desc["score"]) if done else None, week_return=float(week_return),
        early_end=bool(desc["early_end"]), done=done, reward=reward,
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


# ---- the environment --------------------------------------------------------------------------

def check_seed(seed: Any) -> int:
    """A valid seed (0 <= seed < 2**32), or a fresh random one for ``None``."""
    if seed is None:
        return secrets.randbelow(SEED_LIMIT)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise WeekError("invalid_seed", f"seed must be an integer with 0 <= seed < 2**32, got {seed!r}")
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
        raise WeekError("invalid_episode_id", "episode_id must be a string of at most 255 characters")
    return episode_id


class WeekEnvironment(Environment[WeekAction, WeekObservation, WeekState]):
    """One session's week.  ``reset(seed, preset)`` starts a week; ``step(WeekAction)`` sends a
    reply.  Every session has its own state; the compiled simulators are shared."""

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self, default_preset: str = "week_v2", decoder: str = "default", judge: str = "default"):
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
    def reset(self, seed: Optional[int] = None, episode_id: Optional[str] = None,
              preset: Optional[str] = None, **kwargs: Any) -> WeekObservation:
        """Start the week ``seed`` of rule book ``preset``; returns Monday morning."""
        import jax
        import numpy as np

        from llm_bridge.prompts import system_prompt

        self._check_open()
        if self._touch is not None:
            self._touch(self)
        if kwargs:
            raise WeekError("unknown_field", f"unknown reset field(s) {sorted(kwargs)}; known: {', '.join(RESET_FIELDS)}")
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

    def step(self, action: WeekAction, timeout_s: Optional[float] = None, **kwargs: Any) -> WeekObservation:
        """Send one reply: decode, judge, apply; returns the next situation (or the week's end)."""
        import jax
        import numpy as np

        self._check_open()
        if self._state is None:
            raise WeekError("no_week", "no week in progress: reset first. Plain HTTP /step is stateless; "
                            "play a week on a WebSocket session (/ws, e.g. EnvClient)", 409)
        if self._desc["done"]:
            raise WeekError("week_over", "the week is over; reset to start another", 409)
        if not isinstance(action, WeekAction):
            raise WeekError("invalid_action", f"expected a WeekAction, got {type(action).__name__}")
        ev = self._desc["event"]
        choice, source, confidence, quality = self._read(ev, action)
        unreadable = source.startswith("unreadable")
        nxt, reward, done, info = self._sim.advance(self._state, np.int32(choice), np.float32(quality))
        host, reward, info = jax.device_get((nxt, reward, info))
        reward = float(reward)
        self._state, self._return = nxt, self._return + reward
        self._desc = describe_host(host, self._sim.params, info["components"], info["score"])
        last = {"event": ev["id"], "action_index": choice, "action": ev["actions"][choice]["name"],
                "source": "decoded" if unreadable else source, "unreadable": source[11:] if unreadable else None,
                "confidence": round(confidence, 4), "quality": round(float(info["quality"]), 4),
                "alt_outcome": bool(info["alt_outcome"]), "reward": reward}
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
            self._touch(self)  # a state request is activity: the idle reaper leaves the session alone
        return self._info

    def get_metadata(self) -> EnvironmentMetadata:
        return EnvironmentMetadata(
            name=ENV_NAME, version="0.1.0",
            description="Work-Life Firewall: one hard work week, Monday to Friday. You are Arjun; reply "
                        "to each message in your own words. Replies are decoded into actions and judged "
                        "for quality; the week is scored on five rubric components.",
        )

    def close(self) -> None:
        """End the session (also called when an idle session is reaped)."""
        self._closed = True
        self._state = None

    # -- helpers ------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise WeekError(SESSION_CLOSED, "this session has ended (idle too long or closed); "
                            "open a new session", 410)

    def _read(self, event: dict[str, Any], action: WeekAction) -> tuple[int, str, float, float]:
        """(action index, "index" | "decoded" | "unreadable:<kind>", confidence, quality) of a reply
        to ``event``.  An unreadable reply is played as the worst action in this state with quality
        0 (``llm_bridge.consequence``; the first one builds the rule book's exact solver)."""
        import jax

        from agents.exact import week_from_state
        from llm_bridge.consequence import read_reply
        from llm_bridge.decode import get_decoder
        from llm_bridge.judge import get_judge

        text = action.message
        judge = get_judge(self.judge_name)
        if action.action_index is not None:
            quality = float(judge(event["index"], text)) if text.strip() else -1.0
            return int(action.action_index), "index", 1.0, quality
        sim = self._sim
        read = read_reply(get_decoder(self.decoder_name), judge, event["index"], text,
                          lambda: week_from_state(jax.device_get(self._state), sim.params), sim.name)
        source = f"unreadable:{read.decoded.reason}" if read.decoded.unreadable else "decoded"
        return int(read.action), source, float(read.decoded.confidence), read.quality


# ---- the app ------------------------------------------------------------------------------------

def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of every error this server writes itself."""
    return {"error": code, "detail": message, **extra}


def _plain_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validation errors without the echoed input (which can be 16 KB) or exception objects."""
    return [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in errors]


HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 409: "conflict",
              413: "body_too_large", 422: "invalid_request", 501: "not_implemented"}


def install_error_handlers(app) -> None:
    """JSON errors ``{"error": code, "detail": message}`` for every failure: WeekError -> its
    status, schema violations -> 422, HTTP errors -> their status, anything else -> 500 with no
    traceback (logged on the server)."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    async def week_error(request, exc: WeekError):
        return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status)

    async def invalid(request, exc: RequestValidationError):
        return JSONResponse(error_body("invalid_request", "the request does not match the schema",
                                       errors=_plain_errors(exc.errors())), status_code=422)

    async def http_error(request, exc: StarletteHTTPException):
        if isinstance(exc.detail, list):  # openenv's 422 for an action that fails WeekAction
            return JSONResponse(error_body("invalid_action", "the action does not match WeekAction",
                                           errors=_plain_errors(exc.detail)), status_code=exc.status_code)
        code = HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    async def unexpected(request, exc: Exception):
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse(error_body("internal_error", "unexpected server error (logged)"), status_code=500)

    app.add_exception_handler(WeekError, week_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


async def _send_json(send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


class FrameProblem(ValueError):
    """A JSON text this server refuses before any handler sees it (code, message)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise FrameProblem("bad_request", f"an integer of {len(digits)} digits; the limit is {MAX_INT_DIGITS}")
    return int(digits)


def json_depth(value: Any) -> int:
    """Nesting depth of arrays and objects in a parsed JSON value (a scalar is 0); iterative."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        items = v.values() if isinstance(v, dict) else v if isinstance(v, list) else None
        if items is None:
            continue
        deepest = max(deepest, d)
        if d > MAX_JSON_DEPTH:
            return d
        stack.extend((x, d + 1) for x in items)
    return deepest


def parse_json(text: str | bytes) -> Any:
    """Parse a frame or body with the server's limits: raises :class:`FrameProblem`
    (``bad_request``) for nesting deeper than :data:`MAX_JSON_DEPTH` or an integer longer than
    :data:`MAX_INT_DIGITS` digits, and ``json.JSONDecodeError`` for malformed JSON."""
    try:
        value = json.loads(text, parse_int=_bounded_int)
    except RecursionError:
        raise FrameProblem("bad_request", f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except FrameProblem:
        raise
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # e.g. invalid surrogates; never a session's end
        raise FrameProblem("bad_request", f"unreadable JSON ({str(exc)[:120]})") from None
    if json_depth(value) > MAX_JSON_DEPTH:
        raise FrameProblem("bad_request", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def session_route(value: Any) -> str | None:
    """The OpenEnv session method (create/close) a JSON-RPC request calls, or None."""
    if isinstance(value, dict) and value.get("method") in SESSION_ROUTES:
        return value["method"]
    return None


def http_body_problem(path: str, body: bytes, allow_session_routes: bool = False) -> tuple[int, dict[str, Any]] | None:
    """An HTTP request refused before the OpenEnv routes see it, as (status, JSON error).

    * nesting deeper than :data:`MAX_JSON_DEPTH` or an integer longer than :data:`MAX_INT_DIGITS`
      digits: 400 ``bad_request``;
    * ``/mcp`` session create/close while ``allow_session_routes`` is off: 403
      ``session_routes_disabled`` (a session belongs to its WebSocket connection);
    * ``/reset`` with a seed that is not an integer in range (``true`` would become seed 1): 400
      ``invalid_seed``, as on a WebSocket;
    * ``/step`` with an ``action.type`` that is not hashable (openenv's action deserialiser
      raises ``TypeError`` before any validation): 422.
    """
    if not body.strip():
        return None
    try:
        data = parse_json(body)
    except FrameProblem as exc:
        return 400, error_body(exc.code, str(exc))
    except ValueError:
        return None  # FastAPI answers malformed JSON itself
    if path == "/mcp" and not allow_session_routes:
        calls = data if isinstance(data, list) else [data]
        for call in calls:
            method = session_route(call)
            if method:
                return 403, error_body("session_routes_disabled", f"{method} is off on this server: a session "
                                       "belongs to its WebSocket connection (/ws); start the server with "
                                       "--allow-session-routes to enable it")
    if path == "/reset" and isinstance(data, dict) and "seed" in data:
        try:
            check_seed(data["seed"])
        except WeekError as exc:
            return exc.status, error_body(exc.code, exc.message)
    if path == "/step" and isinstance(data, dict):
        action = data.get("action")
        if isinstance(action, dict) and isinstance(action.get("type"), (list, dict)):
            return 422, error_body("invalid_action", "the action does not match WeekAction", errors=[
                {"loc": ["type"], "msg": "Extra inputs are not permitted", "type": "extra_forbidden"}])
    return None


class RequestGuard:
    """ASGI middleware for HTTP requests: a body over ``limit`` bytes gets 413, and a body that
    :func:`http_body_problem` flags gets its JSON error; both before the app sees them.

    The body is read here (at most ``limit`` bytes are kept) and replayed to the app.
    """

    def __init__(self, app, limit: int = MAX_BODY_BYTES, allow_session_routes: bool = False):
        self.app, self.limit, self.allow_session_routes = app, limit, allow_session_routes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return await _send_json(send, 413, error_body(
                    "body_too_large", f"request body over {self.limit} bytes"))
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False
        problem = (http_body_problem(scope.get("path", ""), body, self.allow_session_routes)
                   if scope.get("method") == "POST" else None)
        if problem is not None:
            return await _send_json(send, *problem)

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


def ws_frame_problem(message: dict[str, Any], allow_session_routes: bool = False) -> tuple[str, str] | None:
    """Why a received WebSocket frame cannot be a session message, as (code, message); None when
    it may be (malformed JSON is left to the session, which answers ``INVALID_JSON``)."""
    if message.get("type") != "websocket.receive":
        return None
    text = message.get("text")
    if text is None:
        return "INVALID_JSON", "binary frames are not supported; send JSON text"
    try:
        value = parse_json(text)
    except FrameProblem as exc:
        return "BAD_REQUEST", str(exc)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return "INVALID_JSON", "a message must be a JSON object such as {\"type\": \"step\", \"data\": {...}}"
    if value.get("type") == "mcp" and not allow_session_routes and session_route(value.get("data")):
        return "SESSION_ROUTES_DISABLED", "session create/close over MCP is off on this server"
    return None


MAX_ERROR_CHARS = 300
"""Longest message an error frame carries; validation errors never echo the input."""


def bounded_error_frame(text: str) -> str:
    """An outgoing error frame with its echoed input removed and its message cut to
    :data:`MAX_ERROR_CHARS` (other frames are returned as they are)."""
    if '"type":"error"' not in text[:40]:
        return text
    try:
        frame = json.loads(text)
    except ValueError:
        return text
    data = frame.get("data") if isinstance(frame, dict) else None
    if not isinstance(data, dict):
        return text
    long_message = isinstance(data.get("message"), str) and len(data["message"]) > MAX_ERROR_CHARS
    if not long_message and not isinstance(data.get("errors"), list):
        return text
    if long_message:
        data["message"] = data["message"][:MAX_ERROR_CHARS] + "..."
    if isinstance(data.get("errors"), list):
        data["errors"] = _plain_errors([e for e in data["errors"] if isinstance(e, dict)])[:20]
    return json.dumps(frame, separators=(",", ":"))  # compact, as openenv writes it


class WebSocketGuard:
    """ASGI middleware for WebSocket sessions.

    * Frames that are not JSON objects (binary frames, arrays, numbers...), nest deeper than
      :data:`MAX_JSON_DEPTH`, hold integers longer than :data:`MAX_INT_DIGITS` digits, or call
      the session routes get an error frame and the session goes on, instead of ending it.
    * Error frames never echo the input (:func:`bounded_error_frame`).
    * ``/ws?session_id=...`` (attaching to another session) is refused unless
      ``allow_session_routes``.
    * Once a session has been closed for idleness (its environment answers ``session_closed``),
      the connection is closed after that answer, so a client reconnects to a fresh session.
    """

    def __init__(self, app, allow_session_routes: bool = False):
        self.app, self.allow_session_routes = app, allow_session_routes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        if not self.allow_session_routes and b"session_id=" in scope.get("query_string", b""):
            return await self._refuse(receive, send, "SESSION_ROUTES_DISABLED", "attaching to a session by id is "
                                      "off on this server: every WebSocket connection plays its own week")
        closed = False

        async def guarded_receive():
            while True:
                if closed:
                    return {"type": "websocket.disconnect", "code": 1001}
                message = await receive()
                problem = ws_frame_problem(message, self.allow_session_routes)
                if problem is None:
                    return message
                await send({"type": "websocket.send", "text": json.dumps(
                    {"type": "error", "data": {"message": problem[1], "code": problem[0]}})})

        async def guarded_send(message):
            nonlocal closed
            if closed:
                return  # the connection is gone; the app's own close is a no-op
            if message.get("type") == "websocket.send" and message.get("text"):
                message = dict(message, text=bounded_error_frame(message["text"]))
            await send(message)
            if message.get("type") == "websocket.send" and SESSION_CLOSED_MARK in (message.get("text") or ""):
                closed = True
                await send({"type": "websocket.close", "code": 1001, "reason": "session closed"})

        return await self.app(scope, guarded_receive, guarded_send)

    @staticmethod
    async def _refuse(receive, send, code: str, message: str) -> None:
        """Accept the handshake, send one error frame and close (policy violation)."""
        first = await receive()
        if first.get("type") != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps({"type": "error", "data": {"message": message,
                                                                                           "code": code}})})
        await send({"type": "websocket.close", "code": 1008, "reason": code.lower()})


def _env_server(app):
    """The ``HTTPEnvServer`` behind an app made by ``create_app`` (its routes close over it)."""
    from openenv.core.env_server.http_server import HTTPEnvServer

    for route in app.routes:
        for cell in getattr(getattr(route, "endpoint", None), "__closure__", None) or ():
            try:
                value = cell.cell_contents
            except ValueError:
                continue
            if isinstance(value, HTTPEnvServer):
                return value
    return None


def _activity_hook(server) -> Callable[[WeekEnvironment], None]:
    """``touch(env)``: mark the session holding ``env`` active (a ``state`` request is activity)."""
    def touch(env) -> None:
        for sid, held in list(server._sessions.items()):
            if held is env:
                server._update_session_activity(sid)
                return
    return touch


def create_week_app(default_preset: str = "week_v2", max_sessions: int = 64,
                    idle_timeout_s: float | None = 300.0, max_body_bytes: int = MAX_BODY_BYTES,
                    warm: bool = True, allow_session_routes: bool = False):
    """The FastAPI app: OpenEnv's ``create_app`` around :class:`WeekEnvironment`, with
    ``max_sessions`` concurrent WebSocket sessions, idle ones reaped after ``idle_timeout_s``
    (None: never), JSON errors, a body limit and the WebSocket frame guard.

    ``warm`` compiles every rule book and trains the decoder before returning.
    ``allow_session_routes`` turns on OpenEnv's session create/close over ``/mcp`` and attaching
    with ``/ws?session_id=``; off, a session belongs to its WebSocket connection.  Those sessions
    share the pool and live until the idle reaper takes them, so the flag needs an idle timeout.
    """
    from openenv.core.env_server.http_server import create_app
    from openenv.core.env_server.types import ConcurrencyConfig

    check_preset(default_preset, default_preset)
    if max_sessions < 1:
        raise ValueError("max_sessions must be at least 1")
    if idle_timeout_s is not None and idle_timeout_s <= 0:
        raise ValueError("idle_timeout_s must be positive, or None for never")
    if allow_session_routes and idle_timeout_s is None:
        raise ValueError("session routes need an idle timeout: HTTP-created sessions hold no connection, "
                         "and only the idle reaper frees them")
    if warm:
        warm_up()
    config = ConcurrencyConfig(max_concurrent_envs=max_sessions, session_timeout=idle_timeout_s)
    hook: list[Callable[[WeekEnvironment], None]] = []

    def factory() -> WeekEnvironment:
        env = WeekEnvironment(default_preset=default_preset)
        env._touch = hook[0] if hook else None
        return env

    app = create_app(factory, WeekAction, WeekObservation, env_name=ENV_NAME,
                     concurrency_config=config, state_cls=WeekState)
    server = _env_server(app)
    if server is not None:
        hook.append(_activity_hook(server))
    install_error_handlers(app)
    app.add_middleware(WebSocketGuard, allow_session_routes=allow_session_routes)
    app.add_middleware(RequestGuard, limit=max_body_bytes, allow_session_routes=allow_session_routes)
    return app


def run_server(host: str = "127.0.0.1", port: int = 8000, default_preset: str = "week_v2",
               max_sessions: int = 64, idle_timeout_s: float | None = 300.0,
               log_level: str = "warning", ready: Callable[[str], None] | None = None,
               allow_session_routes: bool = False) -> None:
    """Serve until interrupted (uvicorn).  ``ready(url)`` is called once the app is built."""
    import uvicorn

    app = create_week_app(default_preset, max_sessions, idle_timeout_s, allow_session_routes=allow_session_routes)
    url = f"http://{host}:{port}"
    if ready:
        ready(url)
    uvicorn.run(app, host=host, port=port, log_level=log_level, ws_max_size=MAX_BODY_BYTES,
                timeout_graceful_shutdown=2)


def __getattr__(name: str):
    """``experiments.serve:app``: the app with default settings, built on first access."""
    if name == "app":
        app = create_week_app()
        globals()["app"] = app
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
