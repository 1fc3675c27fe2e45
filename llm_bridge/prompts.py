"""Prompts: who Arjun is and what the week holds (system), and one message per decision with
the live status of the week (user), as chat messages rendered through a tokenizer's template.

The per-event prompt is built from ``WorkWeek.describe(state, params)``, a plain dict, so the
prompt never needs the simulator's arrays::

    desc = WorkWeek().describe(state, params)
    messages = build_messages(desc)                 # [{"role": "system", ...}, {"role": "user", ...}]
    text = render_chat(tokenizer, messages)         # the model's input string
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from wlf_jax.events import EVENT_IDS, EVENTS

SYSTEM_PROMPT = """\
You are Arjun, a senior backend engineer at a software services company in Bangalore. Your \
team builds and runs a fleet-analytics platform for a US client. You reply to the messages \
of one hard work week, Monday to Friday, one message at a time.

The people:
- David Chen - the client's Director of Operations Engineering, in the US (10.5 hours behind \
you). Polite, under pressure from his VP, and tired of vague answers. Write to him as you \
would in a client email: greeting, whole sentences, a date you can keep.
- Sundar - your engineering manager. Approves your leave, owns release planning. Busy, fair, \
prefers a clear ask.
- Priya and Rahul - peers on your team. Rahul is the primary on-call engineer this week.
- Arjun (the other one) - a teammate who keeps asking you to cover his on-call shifts.
- HR - reminders from the HR portal.

The week ahead: a staging outage blocking the release on Monday morning, Slack pings asking \
for calls right now, David chasing the dashboard latency fix again, your Thursday leave that \
has been pending for three months, a self-appraisal due Friday, a third request to cover \
Wednesday's on-call, and an "optional" client call at 10:30 PM. Some choices come back later \
in the week.

What you know from experience:
- Saying yes to everything is how weeks like this end with you burnt out by Thursday. A \
clear, kind no with an alternative usually keeps the relationship.
- Covering a night on-call means a night without sleep and a wrecked next day.
- Late-night calls cost sleep, and the next day pays for it.
- Unanswered Slack messages do not go away; they come back through your manager.
- Promising a client "as fast as possible" buys one day of calm and a worse escalation later. \
A realistic date and a next update beat an apology.
- A leave request nobody nudges does not get approved, and it turns into a clash later.
- A fix you hand off half-understood can come back, bigger.
- Blocking time for work that matters is how it gets done well.

How to answer: write only the message you would actually send (or, for an alert or a note to \
yourself, what you do, in a line or two). First person, in your own words, in the tone the \
recipient and the channel call for. No preamble, no list of options, no explanation of your \
reasoning."""

_CHANNEL_WORDS = {
    "pagerduty": "PagerDuty alert",
    "slack": "Slack message",
    "email": "email",
    "hr": "HR portal notification",
    "calendar": "calendar invitation",
    "self": "situation",
}
_ROLES = {
    "david_chen": "David (client)",
    "sundar": "Sundar (manager)",
    "priya": "Priya",
    "rahul": "Rahul",
    "arjun": "Arjun (teammate)",
}
_STATUS_WORDS = {
    "staging": {"broken": "staging is broken", "fixed": "staging is fixed"},
    "leave": {
        "pending": "Thursday leave still pending",
        "approved": "Thursday leave approved",
        "cancelled": "Thursday leave cancelled",
    },
    "appraisal": {
        "not_done": "self-appraisal not done",
        "done": "self-appraisal done",
        "extended": "self-appraisal deadline extended",
    },
    "oncall": {
        "not_accepted": "not covering anyone's on-call",
        "accepted": "you agreed to cover Wednesday night's on-call",
    },
    "sleep_debt": {"rested": "rested", "sleep_debt": "short on sleep"},
}


COMPACT_SYSTEM_PROMPT = """\
You are Arjun, a senior engineer in Bangalore with a US client. Reply to each message of a \
hard work week with the one message you would send: first person, one to three sentences, \
one clear decision. Protect your energy, keep people's trust, no lists."""
"""A short system prompt for small models on the CPU (``compact=True``): a tenth of the tokens."""

_COMPACT_STATUS = {
    "staging": {"broken": "staging down", "fixed": "staging fixed"},
    "leave": {
        "pending": "leave pending",
        "approved": "leave approved",
        "cancelled": "leave cancelled",
    },
    "appraisal": {
        "not_done": "appraisal due",
        "done": "appraisal done",
        "extended": "appraisal extended",
    },
    "oncall": {"not_accepted": "", "accepted": "covering Wed on-call"},
    "sleep_debt": {"rested": "", "sleep_debt": "short on sleep"},
}


def _lower_first(text: str) -> str:
    """``text`` with its first letter lowered to continue a sentence, unless the first word is
    an acronym ("SSH in" stays, "Hand it" -> "hand it")."""
    first = text.split(" ", 1)[0]
    if len(first) > 1 and first[:2].isupper():
        return text
    return text[:1].lower() + text[1:]


def compact_prompt(desc: Mapping[str, Any], show_options: bool = True) -> str:
    """The per-decision user message in a few lines: day, energy and sprint health, the status
    flags, consequences still waiting, the incoming message with its sender and, when
    ``show_options``, the three courses of action on one line.  It carries every quantity a
    decision depends on except trust, which the week's events imply."""
    ev = desc.get("event")
    if not ev:
        raise ValueError("the week is over: there is no current event to prompt for")
    st = desc.get("status", {})
    head = [str(desc.get("day", "Monday"))]
    if "energy" in st:
        head.append(f"energy {st['energy']:.2f} ({energy_words(st['energy'])})")
    if "sprint_health" in st:
        head.append(f"sprint {st['sprint_health']:.2f}")
    head += [w for k, table in _COMPACT_STATUS.items() if k in st and (w := table.get(st[k], ""))]
    lines = ["; ".join(head) + "."]
    pending = [p for p in desc.get("pending", []) if p != ev.get("id")]
    if pending:
        lines.append("Coming back later: " + "; ".join(_title(p) for p in pending) + ".")
    channel = _CHANNEL_WORDS.get(ev.get("channel", ""), ev.get("channel", "message"))
    lines.append(f"{channel} from {ev['sender']}: {ev['title']}\n{ev['body']}")
    if show_options and ev.get("actions"):
        opts = "; ".join(
            f"{i}) {_lower_first(a['meaning'])}" for i, a in enumerate(ev["actions"], 1)
        )
        lines.append(f"You could: {opts}. Pick one; write the message, not the option.")
    who = ev["sender"].split(" (")[0]
    lines.append(
        "What do you do? One line."
        if ev.get("channel") in ("pagerduty", "self")
        else f"Your reply to {who}:"
    )
    return "\n".join(lines)


def system_prompt() -> str:
    """The system prompt: who Arjun is, the people, the week ahead, lessons from experience."""
    return SYSTEM_PROMPT


def energy_words(energy: float) -> str:
    """How an energy level in [0, 1] feels."""
    if energy >= 0.75:
        return "fresh"
    if energy >= 0.5:
        return "okay"
    if energy >= 0.3:
        return "tired"
    if energy > 0.05:
        return "exhausted"
    return "running on empty"


def status_lines(desc: Mapping[str, Any]) -> list[str]:
    """Human-readable status lines from a ``describe()`` dict."""
    st = desc.get("status", {})
    lines = []
    if "energy" in st:
        lines.append(f"Energy: {st['energy']:.2f} ({energy_words(st['energy'])})")
    if "sprint_health" in st:
        lines.append(f"Sprint health: {st['sprint_health']:.2f}")
    trust = st.get("trust", {})
    if trust:
        lines.append("Trust: " + ", ".join(f"{_ROLES.get(k, k)} {v:.2f}" for k, v in trust.items()))
    flags = [_STATUS_WORDS[k].get(st[k], f"{k}: {st[k]}") for k in _STATUS_WORDS if k in st]
    if flags:
        lines.append("Status: " + "; ".join(flags))
    return lines


def _title(event_id: str) -> str:
    try:
        return EVENTS[EVENT_IDS.index(event_id)].title
    except ValueError:
        return event_id


def _meaning(event_id: str, action: str) -> str:
    try:
        spec = EVENTS[EVENT_IDS.index(event_id)]
    except ValueError:
        return action
    for a in spec.actions:
        if a.name == action:
            return a.meaning
    return action


def history_lines(desc: Mapping[str, Any], limit: int = 14) -> list[str]:
    """One line per decision so far: the event's title and what Arjun did."""
    out = []
    for h in list(desc.get("history", []))[-limit:]:
        meaning = _meaning(h["event"], h["action"])
        out.append(f"- {_title(h['event'])}: {meaning[:1].lower() + meaning[1:]}")
    return out


def event_prompt(desc: Mapping[str, Any], show_options: bool = True) -> str:
    """The user message for the current decision of a ``describe()`` dict.

    Contains the day and decision number, the live status, consequences still waiting,
    what happened so far, the incoming message (channel, sender, title, body) and, when
    ``show_options``, the three courses of action being weighed.  Raises ``ValueError`` when
    the week is over (no current event).
    """
    ev = desc.get("event")
    if not ev:
        raise ValueError("the week is over: there is no current event to prompt for")
    head = f"It is {desc.get('day', 'Monday')}. Decision {int(desc.get('decisions', 0)) + 1} of the week."
    parts = ["\n".join([head] + status_lines(desc))]
    pending = [p for p in desc.get("pending", []) if p != ev.get("id")]
    if pending:
        parts.append(
            "Coming back later this week because of earlier choices: "
            + "; ".join(_title(p) for p in pending)
        )
    hist = history_lines(desc)
    if hist:
        parts.append("So far this week:\n" + "\n".join(hist))
    channel = _CHANNEL_WORDS.get(ev.get("channel", ""), ev.get("channel", "message"))
    parts.append(f"New {channel} from {ev['sender']}: {ev['title']}\n\n{ev['body']}")
    if show_options:
        opts = "\n".join(f"- {a['meaning']}" for a in ev["actions"])
        parts.append("What you could do (write the message, not the option):\n" + opts)
    who = ev["sender"].split(" (")[0]
    if ev.get("channel") in ("pagerduty", "self"):
        parts.append("Write what you do or post about it, in a line or two.")
    else:
        parts.append(f"Write your reply to {who}.")
    return "\n\n".join(parts)


def build_messages(
    desc: Mapping[str, Any],
    show_options: bool = True,
    include_system: bool = True,
    compact: bool = False,
) -> list[dict[str, str]]:
    """Chat messages ``[{"role", "content"}, ...]`` for the current decision of ``desc``.
    ``compact`` uses :data:`COMPACT_SYSTEM_PROMPT` and :func:`compact_prompt`."""
    msgs = []
    if include_system:
        msgs.append(
            {"role": "system", "content": COMPACT_SYSTEM_PROMPT if compact else system_prompt()}
        )
    text = (
        compact_prompt(desc, show_options=show_options)
        if compact
        else event_prompt(desc, show_options=show_options)
    )
    msgs.append({"role": "user", "content": text})
    return msgs


def messages_for_state(state, params, show_options: bool = True) -> list[dict[str, str]]:
    """Chat messages for a simulator state (calls ``WorkWeek().describe``; host side)."""
    from wlf_jax.env import WorkWeek

    return build_messages(WorkWeek().describe(state, params), show_options=show_options)


def plain_chat_format(
    messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True
) -> str:
    """ChatML rendering for tokenizers without a chat template."""
    out = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return out + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def render_chat(
    tokenizer, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True
) -> str:
    """Render chat messages to the model's input string with ``tokenizer.apply_chat_template``.

    Falls back to ChatML when the tokenizer has no chat template; models whose template
    rejects a system role get the system prompt folded into the first user message.
    """
    msgs = [dict(m) for m in messages]
    if getattr(tokenizer, "chat_template", None) is None:
        return plain_chat_format(msgs, add_generation_prompt)
    try:
        return tokenizer.apply_chat_template(
            msgs, tokenize=False, add_generation_prompt=add_generation_prompt
        )
    except Exception as exc:  # noqa: BLE001 - templates raise TemplateError on a system role
        if msgs and msgs[0]["role"] == "system" and len(msgs) > 1:
            merged = [
                {"role": "user", "content": msgs[0]["content"] + "\n\n" + msgs[1]["content"]}
            ] + msgs[2:]
            return tokenizer.apply_chat_template(
                merged, tokenize=False, add_generation_prompt=add_generation_prompt
            )
        raise ValueError(f"cannot render chat messages with this tokenizer: {exc}") from exc
