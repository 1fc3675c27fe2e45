"""`wlf play`: the week in the terminal.  You are Arjun; pick 1/2/3 or type the reply you would
send (decoded to an action, judged, and confirmed before it applies).

Works in a rich terminal (colours, status bars, a rubric chart) and with piped input (plain
text, no prompts repeated forever: end of input leaves cleanly).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

import jax
import numpy as np

from wlf_jax import WorkWeek, presets
from wlf_jax.params import COMPONENT_NAMES

QUIT_WORDS = {"q", "quit", "exit"}


class _Quit(Exception):
    pass


def _bar(value: float, width: int = 20) -> str:
    n = int(round(max(0.0, min(1.0, value)) * width))
    return "█" * n + "·" * (width - n)


def _load_text_tools():
    """The default decoder and judge, when the text side is installed."""
    try:
        from llm_bridge import decode, judge
    except ImportError:
        return None
    jud = getattr(judge, "judge", None) or getattr(judge, "judge_v2", None)
    if jud is None:
        return None
    return decode.get_decoder(), jud


def play(
    preset: str = "week_v2",
    seed: int = 0,
    read: Callable[[str], str] | None = None,
    out: TextIO | None = None,
    color: bool | None = None,
) -> dict:
    """Play one week interactively; returns the final ``describe()`` dict (``None`` if quit).

    ``read(prompt)`` returns a line or raises ``EOFError``; defaults to ``input``.
    """
    from rich.console import Console

    out = out or sys.stdout
    console = Console(
        file=out, force_terminal=color, no_color=color is False, highlight=False, width=100
    )
    read = read or input
    params = presets.get(preset)
    env = WorkWeek()
    step = jax.jit(lambda s, a, q: env.step_env(None, s, a, params, q))
    _, state = env.reset(jax.random.key(seed), params)
    tools = _load_text_tools()

    console.print(
        f"[bold]Work-Life Firewall[/bold] — rule book [cyan]{preset}[/cyan], week {seed}. "
        "You are Arjun, senior engineer in Bangalore. Protect Friday."
    )
    console.print(
        "Pick 1, 2 or 3" + (", or type the reply you would send" if tools else "") + "; q quits.\n"
    )
    try:
        while not bool(state.done):
            d = env.describe(state, params)
            _show_status(console, d)
            ev = d["event"]
            console.print(
                f"\n[bold yellow]{d['day']}[/bold yellow] · [bold]{ev['sender']}[/bold] "
                f"via {ev['channel']}: [bold]{ev['title']}[/bold]"
            )
            console.print(ev["body"], markup=False)
            for a in ev["actions"]:
                console.print(f"  [cyan]{a['index'] + 1}[/cyan] {a['name']}: {a['meaning']}")
            action, quality = _ask(console, read, ev, tools)
            before = d
            _, state, reward, _, info = step(state, np.int32(action), np.float32(quality))
            _show_consequences(
                console,
                before,
                env.describe(state, params),
                float(reward),
                bool(info["alt_outcome"]),
            )
    except _Quit:
        console.print("\nYou left the week. Nothing was saved.")
        return None
    final = env.describe(state, params)
    _show_rubric(console, final)
    return final


def _ask(console, read, event, tools) -> tuple[int, float]:
    while True:
        try:
            line = read("your move> ").strip()
        except (EOFError, KeyboardInterrupt):
            raise _Quit from None
        if line.lower() in QUIT_WORDS:
            raise _Quit
        if line in {"1", "2", "3"}:
            return int(line) - 1, -1.0
        if not line or line.isdigit():
            console.print("[red]Type 1, 2 or 3 (or q to quit).[/red]")
            continue
        if tools is None:
            console.print(
                "[red]Free-text replies need the text side (llm_bridge); type 1, 2 or 3.[/red]"
            )
            continue
        decoder, judge = tools
        decoded = decoder.decode(event["id"], line)
        if decoded.unreadable:
            console.print(
                f"  [red]unreadable ({decoded.reason}): the reply commits to no decision; "
                "rephrase, or pick 1, 2 or 3.[/red]"
            )
            continue
        action, confidence = decoded.action, decoded.confidence
        quality = float(judge(event["id"], line))
        name = event["actions"][action]["name"]
        console.print(
            f"  read as [bold]{name}[/bold] (confidence {confidence:.2f}), "
            f"message quality {quality:.2f}"
        )
        try:
            ok = read("apply? [Y/n]> ").strip().lower()
        except (EOFError, KeyboardInterrupt):
            raise _Quit from None
        if ok in ("", "y", "yes"):
            return action, quality
        console.print("Then pick 1, 2 or 3, or rephrase.")


def _show_status(console, d) -> None:
    s = d["status"]
    console.rule(f"[bold]{d['day']}[/bold] · decision {d['decisions'] + 1}")
    console.print(
        f"energy  {_bar(s['energy'])} {s['energy']:.2f}    "
        f"sprint  {_bar(s['sprint_health'])} {s['sprint_health']:.2f}"
    )
    trust = "  ".join(f"{k} {v:.2f}" for k, v in s["trust"].items())
    console.print(f"trust   {trust}")
    flags = f"staging {s['staging']} · leave {s['leave']} · appraisal {s['appraisal']}"
    if d["pending"]:
        flags += f" · [red]coming: {', '.join(d['pending'])}[/red]"
    console.print(flags)
    if d["history"]:
        console.print("[dim]so far: " + " → ".join(h["action"] for h in d["history"]) + "[/dim]")


def _show_consequences(console, before, after, reward, alt) -> None:
    b, a = before["status"], after["status"]
    parts = []
    for key, label in (("energy", "energy"), ("sprint_health", "sprint")):
        delta = a[key] - b[key]
        if abs(delta) > 1e-9:
            colour = "green" if delta > 0 else "red"
            parts.append(f"[{colour}]{label} {delta:+.2f}[/{colour}]")
    for who, v in a["trust"].items():
        delta = v - b["trust"][who]
        if abs(delta) > 1e-9:
            colour = "green" if delta > 0 else "red"
            parts.append(f"[{colour}]{who} {delta:+.2f}[/{colour}]")
    console.print(
        "  → "
        + (", ".join(parts) if parts else "no visible change")
        + f"   (reward {reward:+.4f})"
        + ("   [magenta]luck turned[/magenta]" if alt else "")
    )
    new = set(after["pending"]) - set(before["pending"])
    for ev in sorted(new):
        console.print(f"  [red]⚠ this will come back: {ev}[/red]")
    if after["day"] != before["day"] and not after["done"]:
        console.print(f"  [dim]night falls: energy now {a['energy']:.2f}[/dim]")


def _show_rubric(console, d) -> None:
    console.rule("[bold]Friday[/bold]")
    if d["early_end"]:
        console.print("[red]You ran out of energy before the week was over.[/red]")
    for name in COMPONENT_NAMES:
        v = d["rubric"][name]
        console.print(f"{name:28s} {_bar(v, 30)} {v:.2f}")
    console.print(f"[bold]week score {d['score']:.3f}[/bold]")
    console.print("your week: " + "; ".join(f"{h['event']} → {h['action']}" for h in d["history"]))
