"""The HTTP/WebSocket app of the served week: OpenEnv's ``create_app`` around
:class:`~llm_bridge.serve.environment.WeekEnvironment` (``max_concurrent_envs`` sessions, idle
ones reaped), with JSON errors and the guards of :mod:`llm_bridge.serve.guards`.

    app = create_week_app(default_preset="week_v2", max_sessions=64, idle_timeout_s=300)
    uvicorn llm_bridge.serve.app:app       # the same app with default settings

Plain HTTP ``/reset`` and ``/step`` are stateless in OpenEnv (a fresh environment per
request); a week lives on a WebSocket session (``/ws``, what ``EnvClient`` uses).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .environment import (
    ENV_NAME,
    WeekAction,
    WeekEnvironment,
    WeekError,
    WeekObservation,
    WeekState,
    check_preset,
)
from .guards import MAX_BODY_BYTES, RequestGuard, WebSocketGuard, error_body, plain_errors
from .simulator import warm_up

log = logging.getLogger("wlf.serve")


# ---- JSON errors ------------------------------------------------------------------------------

HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    422: "invalid_request",
    501: "not_implemented",
}


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
        return JSONResponse(
            error_body(
                "invalid_request",
                "the request does not match the schema",
                errors=plain_errors(exc.errors()),
            ),
            status_code=422,
        )

    async def http_error(request, exc: StarletteHTTPException):
        if isinstance(exc.detail, list):  # openenv's 422 for an action that fails WeekAction
            return JSONResponse(
                error_body(
                    "invalid_action",
                    "the action does not match WeekAction",
                    errors=plain_errors(exc.detail),
                ),
                status_code=exc.status_code,
            )
        code = HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return JSONResponse(
            error_body(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    async def unexpected(request, exc: Exception):
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse(
            error_body("internal_error", "unexpected server error (logged)"), status_code=500
        )

    app.add_exception_handler(WeekError, week_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


# ---- the app ---------------------------------------------------------------------------------


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


def create_week_app(
    default_preset: str = "week_v2",
    max_sessions: int = 64,
    idle_timeout_s: float | None = 300.0,
    max_body_bytes: int = MAX_BODY_BYTES,
    warm: bool = True,
    allow_session_routes: bool = False,
):
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
        raise ValueError(
            "session routes need an idle timeout: HTTP-created sessions hold no "
            "connection, and only the idle reaper frees them"
        )
    if warm:
        warm_up()
    config = ConcurrencyConfig(max_concurrent_envs=max_sessions, session_timeout=idle_timeout_s)
    hook: list[Callable[[WeekEnvironment], None]] = []

    def factory() -> WeekEnvironment:
        env = WeekEnvironment(default_preset=default_preset)
        env._touch = hook[0] if hook else None
        return env

    app = create_app(
        factory,
        WeekAction,
        WeekObservation,
        env_name=ENV_NAME,
        concurrency_config=config,
        state_cls=WeekState,
    )
    server = _env_server(app)
    if server is not None:
        hook.append(_activity_hook(server))
    install_error_handlers(app)
    app.add_middleware(WebSocketGuard, allow_session_routes=allow_session_routes)
    app.add_middleware(
        RequestGuard, limit=max_body_bytes, allow_session_routes=allow_session_routes
    )
    return app


def run_server(
    host: str = "127.0.0.1",
    port: int = 8000,
    default_preset: str = "week_v2",
    max_sessions: int = 64,
    idle_timeout_s: float | None = 300.0,
    log_level: str = "warning",
    ready: Callable[[str], None] | None = None,
    allow_session_routes: bool = False,
) -> None:
    """Serve until interrupted (uvicorn).  ``ready(url)`` is called once the app is built."""
    import uvicorn

    app = create_week_app(
        default_preset, max_sessions, idle_timeout_s, allow_session_routes=allow_session_routes
    )
    url = f"http://{host}:{port}"
    if ready:
        ready(url)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        ws_max_size=MAX_BODY_BYTES,
        timeout_graceful_shutdown=2,
    )


def __getattr__(name: str):
    """``llm_bridge.serve.app:app`` (uvicorn, openenv.yaml): the app with default settings,
    built on first access."""
    if name == "app":
        app = create_week_app()
        globals()["app"] = app
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
