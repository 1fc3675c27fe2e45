"""The week as an OpenEnv environment over HTTP/WebSocket (`wlf serve`), and its client.

    environment.py  WeekEnvironment (one session's week), WeekAction/WeekObservation/WeekState
                    (the wire models) and the validation of resets
    simulator.py    the jitted simulators shared by every session (no OpenEnv)
    guards.py       transport limits and the ASGI guards on every HTTP body and WebSocket frame
    app.py          create_week_app (OpenEnv's create_app + JSON errors + guards), run_server;
                    ``llm_bridge.serve.app:app`` is the app with default settings (openenv.yaml)
    client.py       WeekClient (OpenEnv EnvClient), a scripted writer, the load harness
    trl.py          TRL's GRPOTrainer(environment_factory=...) over a running server

Importing this package imports openenv (which brings pydantic, fastapi and uvicorn along), so
nothing outside it does at module level: ``import llm_bridge`` stays light.  See docs/serve.md.
"""

from .app import create_week_app, run_server
from .client import WeekClient
from .environment import WeekAction, WeekEnvironment, WeekError, WeekObservation, WeekState

__all__ = [
    "WeekAction",
    "WeekClient",
    "WeekEnvironment",
    "WeekError",
    "WeekObservation",
    "WeekState",
    "create_week_app",
    "run_server",
]
