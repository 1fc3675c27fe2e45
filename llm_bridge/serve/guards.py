"""What every HTTP body and WebSocket frame of the served week passes before OpenEnv sees it:
transport limits (body size, JSON depth, integer length), refusals as JSON errors, error frames
that never echo their input, and the two ASGI middlewares that apply them
(:class:`RequestGuard` for HTTP, :class:`WebSocketGuard` for sessions).

:func:`llm_bridge.serve.app.create_week_app` installs both; they are plain ASGI (no fastapi).
"""

from __future__ import annotations

import json
from typing import Any

from .environment import SESSION_CLOSED, WeekError, check_seed

MAX_BODY_BYTES = 256 * 1024
"""Largest HTTP body or WebSocket frame (a 16 KB reply can grow sixfold as escaped JSON)."""
MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects accepted in a frame or body (a reply needs 3)."""
MAX_INT_DIGITS = 32
"""Longest integer literal accepted in a frame or body (a seed needs 10 digits)."""
MAX_ERROR_CHARS = 300
"""Longest message an error frame carries; validation errors never echo the input."""
SESSION_ROUTES = ("openenv/session/create", "openenv/session/close")
"""OpenEnv's session methods over MCP; off unless ``allow_session_routes`` (see docs/serve.md)."""
SESSION_CLOSED_MARK = f'"message":"{SESSION_CLOSED}:'
"""How an error frame of a closed session starts (openenv writes compact JSON)."""


# ---- JSON errors ------------------------------------------------------------------------------


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of every error this server writes itself."""
    return {"error": code, "detail": message, **extra}


def plain_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validation errors without the echoed input (which can be 16 KB) or exception objects."""
    return [
        {
            "loc": list(e.get("loc", ())),
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in errors
    ]


async def _send_json(send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


# ---- JSON with limits ------------------------------------------------------------------------


class FrameProblem(ValueError):
    """A JSON text this server refuses before any handler sees it (code, message)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise FrameProblem(
            "bad_request", f"an integer of {len(digits)} digits; the limit is {MAX_INT_DIGITS}"
        )
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
        raise FrameProblem(
            "bad_request", f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
        ) from None
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


# ---- HTTP ------------------------------------------------------------------------------------


def http_body_problem(
    path: str, body: bytes, allow_session_routes: bool = False
) -> tuple[int, dict[str, Any]] | None:
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
                return 403, error_body(
                    "session_routes_disabled",
                    f"{method} is off on this server: a session "
                    "belongs to its WebSocket connection (/ws); start the server with "
                    "--allow-session-routes to enable it",
                )
    if path == "/reset" and isinstance(data, dict) and "seed" in data:
        try:
            check_seed(data["seed"])
        except WeekError as exc:
            return exc.status, error_body(exc.code, exc.message)
    if path == "/step" and isinstance(data, dict):
        action = data.get("action")
        if isinstance(action, dict) and isinstance(action.get("type"), (list, dict)):
            extra = {
                "loc": ["type"],
                "msg": "Extra inputs are not permitted",
                "type": "extra_forbidden",
            }
            return 422, error_body(
                "invalid_action", "the action does not match WeekAction", errors=[extra]
            )
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
                return await _send_json(
                    send, 413, error_body("body_too_large", f"request body over {self.limit} bytes")
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False
        problem = (
            http_body_problem(scope.get("path", ""), body, self.allow_session_routes)
            if scope.get("method") == "POST"
            else None
        )
        if problem is not None:
            return await _send_json(send, *problem)

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


# ---- WebSocket -------------------------------------------------------------------------------


def ws_frame_problem(
    message: dict[str, Any], allow_session_routes: bool = False
) -> tuple[str, str] | None:
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
        return (
            "INVALID_JSON",
            'a message must be a JSON object such as {"type": "step", "data": {...}}',
        )
    if value.get("type") == "mcp" and not allow_session_routes and session_route(value.get("data")):
        return "SESSION_ROUTES_DISABLED", "session create/close over MCP is off on this server"
    return None


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
        data["errors"] = plain_errors([e for e in data["errors"] if isinstance(e, dict)])[:20]
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
            return await self._refuse(
                receive,
                send,
                "SESSION_ROUTES_DISABLED",
                "attaching to a session by id is off on this server: every "
                "WebSocket connection plays its own week",
            )
        closed = False

        async def guarded_receive():
            while True:
                if closed:
                    return {"type": "websocket.disconnect", "code": 1001}
                message = await receive()
                problem = ws_frame_problem(message, self.allow_session_routes)
                if problem is None:
                    return message
                await send(
                    {
                        "type": "websocket.send",
                        "text": json.dumps(
                            {"type": "error", "data": {"message": problem[1], "code": problem[0]}}
                        ),
                    }
                )

        async def guarded_send(message):
            nonlocal closed
            if closed:
                return  # the connection is gone; the app's own close is a no-op
            if message.get("type") == "websocket.send" and message.get("text"):
                message = dict(message, text=bounded_error_frame(message["text"]))
            await send(message)
            if message.get("type") == "websocket.send" and SESSION_CLOSED_MARK in (
                message.get("text") or ""
            ):
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
        frame = {"type": "error", "data": {"message": message, "code": code}}
        await send({"type": "websocket.send", "text": json.dumps(frame)})
        await send({"type": "websocket.close", "code": 1008, "reason": code.lower()})
