"""Memory soak of `wlf serve`: thousands of unique maximum-length replies across sessions.

Starts ``wlf serve`` in a subprocess, plays one warm-up week (so the decoder, the judge and the
exact solver behind unreadable replies are built), then plays weeks on ``--sessions`` WebSocket
connections at once, each reply a unique text of ``MAX_REPLY_CHARS`` characters (every
``--long-every``-th one of 16 KB, the transport limit, which the bridge reads as ``too_long``),
and closes them.  The server's resident memory (VmRSS) is read at each stage:

    python -m experiments.serve_soak --replies 2000 --json soak.json

A client that could grow the server by the size of what it sends would show here: before the
caches were bounded, each unique 16 KB reply kept about 1.1 MB.

:class:`ServerProcess` (`wlf serve` in a subprocess on a free loopback port) is also what
tests/test_serve.py starts its server with.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

WORDS = (
    "staging",
    "disk",
    "logs",
    "rotation",
    "runbook",
    "tonight",
    "tomorrow",
    "notes",
    "client",
    "latency",
    "sprint",
    "family",
    "rota",
    "cover",
    "swap",
    "appraisal",
    "sections",
    "written",
    "update",
    "Friday",
    "handing",
    "Rahul",
    "Priya",
    "Sundar",
    "David",
    "ticket",
    "infra",
    "sleep",
    "energy",
    "calendar",
)


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def unique_reply(rng: random.Random, n_chars: int, serial: int) -> str:
    """A unique reply of exactly ``n_chars`` characters: a decision, then words and a serial."""
    head = f"Declining the 10:30 tonight, written notes by 9 ({serial}-{rng.getrandbits(64):x}). "
    body = []
    size = len(head)
    while size < n_chars:
        w = rng.choice(WORDS) + f"{rng.randrange(10**6)}"
        body.append(w)
        size += len(w) + 1
    return (head + " ".join(body))[:n_chars]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`wlf serve` (``python -m experiments.cli serve``) in a subprocess on a free loopback port,
    with ``args`` as extra flags; its output goes to a temporary file.  ``kill`` is SIGKILL;
    ``start`` again restarts it on the same port.

        with ServerProcess("--max-sessions", "8") as server:
            server.start().wait_ready()
            ...  # server.url, server.proc.pid
    """

    def __init__(self, *args: str):
        self.port, self.args = free_port(), list(args)
        self.proc: subprocess.Popen | None = None
        self.log = tempfile.TemporaryFile()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        cmd = [
            sys.executable,
            "-m",
            "experiments.cli",
            "serve",
            "--port",
            str(self.port),
            *self.args,
        ]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self

    def wait_ready(self, timeout: float = 150.0) -> ServerProcess:
        """Poll ``/health`` until it answers 200; raises if the server exits or ``timeout`` s
        pass (with the end of its output)."""
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"server not ready after {timeout} s:\n{self.output()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def output(self) -> str:
        """The last 4,000 characters the server wrote."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    def close(self) -> None:
        """Kill the server and drop its output."""
        self.kill()
        self.log.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def play(
    ws_url: str,
    replies: int,
    rng: random.Random,
    serial0: int,
    long_every: int,
    max_chars: int,
    long_bytes: int,
) -> int:
    """Send ``replies`` unique replies on one WebSocket session (resetting when a week ends)."""
    from websockets.sync.client import connect

    sent = 0
    with connect(ws_url, max_size=None) as ws:

        def ask(frame: dict[str, Any]) -> dict[str, Any]:
            ws.send(json.dumps(frame))
            return json.loads(ws.recv(timeout=120))

        reply = ask({"type": "reset", "data": {"seed": rng.randrange(2**32)}})
        while sent < replies:
            n = serial0 + sent
            size = long_bytes if long_every and n % long_every == long_every - 1 else max_chars
            reply = ask({"type": "step", "data": {"message": unique_reply(rng, size, n)}})
            if reply["type"] != "observation":
                raise RuntimeError(f"reply {n}: {reply}")
            sent += 1
            if reply["data"]["done"]:
                ask({"type": "reset", "data": {"seed": rng.randrange(2**32)}})
    return sent


def soak(
    replies: int = 2000,
    sessions: int = 8,
    long_every: int = 10,
    seed: int = 0,
    settle_s: float = 3.0,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the soak against a fresh ``wlf serve``; returns RSS at each stage and the growth."""
    from llm_bridge.serve.environment import MAX_TEXT_BYTES
    from llm_bridge.unreadable import MAX_REPLY_CHARS

    with ServerProcess("--max-sessions", str(max(sessions, 1) + 1)) as server:
        server.start().wait_ready(timeout=300)
        pid, ws_url = server.proc.pid, server.url.replace("http://", "ws://") + "/ws"
        out: dict[str, Any] = {"rss_mb": {"booted": round(rss_mb(pid), 1)}}
        rng = random.Random(seed)
        # warm-up: a legible, a too-long and an unreadable reply build every lazy structure once
        play(ws_url, 12, rng, -100, 3, MAX_REPLY_CHARS, MAX_TEXT_BYTES)
        time.sleep(settle_s)
        start = rss_mb(pid)
        out["rss_mb"]["after_warm_up"] = round(start, 1)
        peak = [start]
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                peak.append(rss_mb(pid))
                time.sleep(0.2)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        per = [replies // sessions + (i < replies % sessions) for i in range(sessions)]
        counts = [0] * sessions
        t0 = time.perf_counter()

        def worker(i: int) -> None:
            counts[i] = play(
                ws_url,
                per[i],
                random.Random(seed * 1000 + i),
                sum(per[:i]),
                long_every,
                MAX_REPLY_CHARS,
                MAX_TEXT_BYTES,
            )

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(sessions)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            time.sleep(2)
            if progress:
                print(
                    f"\rsoak: {sum(counts)}/{replies} replies (sessions still open), "
                    f"RSS {rss_mb(pid):.0f} MB",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        during = rss_mb(pid)
        time.sleep(settle_s)
        stop.set()
        watcher.join()
        end = rss_mb(pid)
        if progress:
            print(file=sys.stderr)
        sent = sum(counts)
        if sent != replies:
            raise RuntimeError(f"sent {sent} of {replies} replies")
        out["rss_mb"].update(
            before_close=round(during, 1), peak=round(max(peak), 1), after_close=round(end, 1)
        )
        out.update(
            replies=sent,
            sessions=sessions,
            reply_chars=MAX_REPLY_CHARS,
            long_every=long_every,
            long_bytes=MAX_TEXT_BYTES,
            wall_s=round(wall, 1),
            replies_per_s=round(sent / wall, 1),
            growth_peak_mb=round(max(peak) - start, 1),
            growth_after_close_mb=round(end - start, 1),
        )
        return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m experiments.serve_soak",
        description=(
            __doc__.split("\n\n")[0]
            + " Prints (and with --json writes) the server's RSS after boot, "
            "after a warm-up week, at its peak, before and after the sessions close, and the growth "
            "over the warm-up figure."
        ),
    )
    p.add_argument(
        "--replies", type=int, default=2000, help="unique replies to send in all (default 2000)"
    )
    p.add_argument("--sessions", type=int, default=8, help="WebSocket sessions at once (default 8)")
    p.add_argument(
        "--long-every",
        type=int,
        default=10,
        help="every N-th reply is 16 KB (read as too_long); 0 = never (default 10)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the reply texts and weeks")
    p.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    args = p.parse_args(argv)
    if args.replies < 1 or args.sessions < 1 or args.long_every < 0:
        p.error("--replies and --sessions must be >= 1, --long-every >= 0")
    res = soak(args.replies, args.sessions, args.long_every, args.seed)
    print(json.dumps(res, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
