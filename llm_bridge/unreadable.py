"""Replies that commit to no decision: the ``unreadable`` class.

A small real model does not always write a message.  It echoes the prompt or its option list,
loops on one sentence, writes someone else's message, emits headers with no content, or
commits to two different things at once.  Read with a classifier that must pick one of three
actions, such text would still become a confident action; :func:`unreadable_reason` catches it
first.  The kinds (``UNREADABLE_KINDS``):

* ``empty``: no words once markup, headers and chat-template debris are removed;
* ``too_long``: more than :data:`MAX_REPLY_CHARS` characters (the documented cap of the bridge:
  a message is a few sentences; the cap also bounds the memory any client can make it use);
* ``repetition``: a loop: most of the text repeats a few lines or word sequences;
* ``echo``: the prompt copied back: two or more of the event's options, or long runs of the
  event's own message or the status lines;
* ``other_voice``: a message written *to* Arjun or signed by somebody else;
* ``contradictory``: sentences that each commit, confidently, to different actions;
* ``no_decision``: fluent text that commits to nothing (a ramble, a disclaimer, garbled words),
  caught by the fitted decision gate of :mod:`llm_bridge.gate` after every rule above.

The consequence in the simulator is :func:`llm_bridge.consequence.unreadable_action`: the
recipient reads the reply in the worst way.
"""

from __future__ import annotations

import re
from functools import lru_cache

from wlf_jax.events import EVENTS

MAX_REPLY_CHARS = 4000
"""Longest reply the bridge reads (characters, after stripping).  Longer is ``too_long``."""

UNREADABLE_KINDS: tuple[str, ...] = (
    "empty",
    "too_long",
    "repetition",
    "echo",
    "other_voice",
    "contradictory",
    "no_decision",
)

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_TEMPLATE_DEBRIS = re.compile(r"<\|[^|>]*\|>|</?s>|\[/?INST\]|<\|?endoftext\|?>", re.I)
_HEADER_LINE = re.compile(
    r"^\s*(?:#+.*|[-=*_]{3,}|\**\s*(?:subject|re|to|from|cc|date|title|reply|response|message|answer|"
    r"option\s*\d*|assistant|user|system)\s*:?\s*\**\s*:?\s*)$",
    re.I,
)
_STOP = frozenset(
    """a an the and or but to of in on at for with from by is are be am i you we it this that my
your our me us he she they them his her their as if so not no yes will would can could do did have has
had just now then there here what when how all any some""".split()
)

_SIGN_OFF = re.compile(
    r"(?:^|\n)\s*(?:best|regards|best regards|kind regards|warm regards|thanks|thank you|"
    r"cheers|sincerely|yours|talk soon)\s*,?\s*\n+\s*[-–—]?\s*([A-Z][a-z]+)",
    re.M,
)
_SIGNED_DASH = re.compile(r"(?:^|\n)\s*[-–—]\s*([A-Z][a-z]+)\s*$")
_TO_ARJUN = re.compile(
    r"^\W*(?:hi|hey|hello|dear|good (?:morning|evening|afternoon))\W+arjun\b", re.I
)
_SPEAKER = re.compile(
    r"^\s*\**(david(?: chen)?|sundar|priya|rahul|hr|pagerduty|calendar)\**\s*:", re.I | re.M
)
# senders whose messages Arjun answers; a reply signed with one of these names is not his
_OTHER_NAMES = frozenset({"david", "sundar", "priya", "rahul", "hr"})
# Arjun asks for his leave to be approved; he cannot approve it himself.  A reply to a leave event
# in which he does ("I'll approve your Thursday leave request today") is written in the approver's
# voice, and its recipient cannot tell what Arjun decided.
_APPROVER_EVENTS = frozenset({"E4_leave", "S4_leave_conflict"})
_APPROVER_VERB = (
    r"(?:\bi(?:'ll| will|'m going to| am going to| can| shall)?\s+(?:just\s+|also\s+|now\s+)?"
    r"(?:approve|sign off on)|\bi(?:'m| am)\s+approving|\bto approve(?=\s+your\b))"
)
# the approver's verb in the first person (or "to approve your ..."), with the leave or the request
# as its object within a few words, or "approve it myself"
_SELF_APPROVAL = re.compile(
    _APPROVER_VERB
    + r"\s+(?:my|your|his|the|this|that)\b(?:\W+\w+){0,3}?\W+(?:leave|request)\b"
    + r"|\bi(?:'ll| will| can| shall)?\s+approve\s+it\s+myself\b",
    re.I,
)


def words(text: str) -> list[str]:
    """Lower-case word tokens of ``text``."""
    return _WORD.findall(text.lower())


def content_lines(text: str) -> list[str]:
    """Lines of ``text`` with chat-template debris and header-only lines removed."""
    text = _TEMPLATE_DEBRIS.sub(" ", text)
    return [ln for ln in text.splitlines() if ln.strip() and not _HEADER_LINE.match(ln)]


def _content(ws: list[str]) -> list[str]:
    return [w for w in ws if w not in _STOP and len(w) > 1]


def repetition_share(ws: list[str], n: int = 4) -> float:
    """Share of the word ``n``-grams of ``ws`` that repeat an earlier one (0 for short texts)."""
    if len(ws) < 3 * n:
        return 0.0
    grams = [tuple(ws[i : i + n]) for i in range(len(ws) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams)


def _event_text_uncached(
    event: int,
) -> tuple[frozenset[tuple[str, ...]], tuple[frozenset[str], ...]]:
    """The event's own message as a set of word 5-grams, and each option's content words."""
    spec = EVENTS[event]
    body = words(spec.title + " . " + spec.body)
    grams = frozenset(tuple(body[i : i + 5]) for i in range(len(body) - 4))
    options = tuple(frozenset(_content(words(a.meaning))) for a in spec.actions)
    return grams, options


_event_text = lru_cache(maxsize=64)(_event_text_uncached)  # wrapped, not decorated: see textnorm

_OPTIONS_LINE = re.compile(r"^[ \t]*you could:.*$", re.I | re.M)

_STATUS_ECHO = re.compile(
    r"\b(?:energy|sprint health|trust|status|decision \d+ of the week|it is (?:monday|"
    r"tuesday|wednesday|thursday|friday))\s*[:.]",
    re.I,
)


def echo_kind(event: int, text: str, ws: list[str], prompt: str | None = None) -> bool:
    """Whether ``text`` copies the prompt back: two or more of the event's options (a line
    holding most of an option's content words), long runs of the event's message, or status
    lines."""
    grams, options = _event_text(event)
    hit_options = set()
    for line in re.split(r"\n|(?<=[.;])\s+", text):
        lw = set(_content(words(line)))
        if len(lw) < 2:
            continue
        for i, opt in enumerate(options):
            if opt and len(opt & lw) >= max(2, 0.6 * len(opt)):
                hit_options.add(i)
    if len(hit_options) >= 2:
        return True
    if len(_STATUS_ECHO.findall(text)) >= 2:
        return True
    if len(ws) >= 5:
        mine = [tuple(ws[i : i + 5]) for i in range(len(ws) - 4)]
        source = grams
        if prompt:
            # the options line is left out: a message that takes one option in the prompt's own
            # words ("I'll put a fixed slot on the calendar") has chosen, not echoed (two options
            # are caught above)
            pw = words(_OPTIONS_LINE.sub(" ", prompt))
            source = source | frozenset(tuple(pw[i : i + 5]) for i in range(len(pw) - 4))
        copied = sum(g in source for g in mine)
        if copied >= 3 and copied / len(mine) >= 0.4:
            return True
    return False


def other_voice(event: int, text: str) -> bool:
    """Whether ``text`` is somebody else's message: addressed to Arjun (except where the sender is
    his teammate Arjun), signed with another person's name, a script of other speakers, or (on a
    leave event) Arjun approving the leave himself, in the approver's voice."""
    spec = EVENTS[event]
    if _TO_ARJUN.search(text) and "Arjun" not in spec.sender:
        return True
    if spec.id in _APPROVER_EVENTS and _SELF_APPROVAL.search(text.replace("\u2019", "'")):
        return True
    for rx in (_SIGN_OFF, _SIGNED_DASH):
        for m in rx.finditer(text):
            if m.group(1).lower() in _OTHER_NAMES:
                return True
    if len(_SPEAKER.findall(text)) >= 2:
        return True
    return False


def unreadable_reason(
    event: int, text: str, prompt: str | None = None, contradictory: bool = False
) -> str | None:
    """The kind of unreadable reply ``text`` is (one of ``UNREADABLE_KINDS``), or ``None`` when
    it reads as a message.  ``event`` is an event index; ``prompt`` (optional) is the prompt the
    reply answered, for echo detection beyond the event's own text; ``contradictory`` is the
    caller's verdict on conflicting decisions (the decoder computes it)."""
    raw = (text or "").strip()
    if len(raw) > MAX_REPLY_CHARS:
        return "too_long"
    body = "\n".join(content_lines(raw))
    ws = words(body)
    if not any(w.isalpha() for w in ws):
        return "empty"
    if repetition_share(ws) >= 0.5 or _repeated_lines(body):
        return "repetition"
    if echo_kind(event, body, ws, prompt):
        return "echo"
    if other_voice(event, body):
        return "other_voice"
    if contradictory:
        return "contradictory"
    return None


def _repeated_lines(body: str) -> bool:
    """Three or more copies of one sentence or line of 3+ words."""
    seen: dict[str, int] = {}
    for seg in re.split(r"\n|(?<=[.!?])\s+", body):
        key = " ".join(words(seg))
        if len(key.split()) >= 3:
            seen[key] = seen.get(key, 0) + 1
            if seen[key] >= 3:
                return True
    return False
