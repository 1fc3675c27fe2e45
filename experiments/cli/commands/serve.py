"""`wlf serve`: the week as an OpenEnv HTTP/WebSocket environment."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the week as an OpenEnv environment (HTTP + WebSocket sessions)",
        description="Serve the week with OpenEnv: text replies in, observation and reward out. "
        "Each WebSocket session (/ws, what EnvClient uses) plays its own week; plain HTTP /reset "
        "and /step are stateless. Binds 127.0.0.1 unless --host says otherwise. See docs/serve.md.",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--preset", default="week_v2", help="rule book used when a reset names none")
    p.add_argument(
        "--max-sessions", type=int, default=64, help="concurrent WebSocket sessions (default 64)"
    )
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=300.0,
        help="seconds before an idle session is closed (0 = never, refused with "
        "--allow-session-routes; default 300)",
    )
    p.add_argument(
        "--allow-session-routes",
        action="store_true",
        help="allow OpenEnv's session create/close over HTTP /mcp and attaching with "
        "/ws?session_id= (off: a session belongs to its WebSocket connection)",
    )
    p.add_argument("--log-level", default="warning", help="uvicorn log level (default warning)")
    p.set_defaults(func=run)


def run(args) -> int:
    from llm_bridge.serve import run_server

    # only what the flags add; the preset, --max-sessions and --allow-session-routes without an
    # idle timeout are checked by create_week_app, before any warm-up
    if not 0 < args.port < 65536:
        raise ValueError("--port must be in 1..65535")
    if args.idle_timeout < 0:
        raise ValueError("--idle-timeout must be >= 0 (0 = never)")
    idle = args.idle_timeout if args.idle_timeout > 0 else None

    def ready(url: str) -> None:
        print(
            f"wlf serve: {url} (preset {args.preset}, up to {args.max_sessions} sessions, "
            f"idle timeout {'none' if idle is None else f'{idle:g} s'})",
            flush=True,
        )

    run_server(
        args.host,
        args.port,
        args.preset,
        args.max_sessions,
        idle,
        args.log_level,
        ready,
        allow_session_routes=args.allow_session_routes,
    )
    return 0
