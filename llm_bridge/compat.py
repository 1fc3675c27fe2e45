"""The original environment's text rules, reproduced exactly (SPEC §3.2).

``keyword_v1`` (decoder), ``judge_v1`` (message-quality heuristic) and the two message flags.
They are easy to game and misread negations; they exist for parity with the original and as a
baseline beside the project's default decoder and judge.  Everything here is pure Python.
"""

from __future__ import annotations

from wlf_jax.events import ACTION_NAMES, EVENT_IDS

# Per event: (keyword, action name) walked in order; the first keyword found as a substring of
# the lower-cased text decides.  Events without a list (the spawned ones) always give action 0.
KEYWORDS_V1: dict[str, tuple[tuple[str, str], ...]] = {
    "E1_staging": (
        ("ssh", "fix_directly"),
        ("restart", "fix_directly"),
        ("delegate", "delegate_oncall"),
        ("infra", "escalate_infra"),
    ),
    "E2_slack": (
        ("async", "async_boundary"),
        ("later", "async_boundary"),
        ("call now", "both_calls_now"),
        ("ignore", "ignore_slack"),
    ),
    "E3_client_email": (
        ("thanks", "acknowledge_timeline"),
        ("thursday", "acknowledge_timeline"),
        ("sorry", "full_apology"),
        ("cc", "cc_manager"),
    ),
    "E4_leave": (
        ("approve", "ping_sundar"),
        ("today", "ping_sundar"),
        ("wait", "wait_hope"),
        ("cancel", "cancel_leave"),
    ),
    "E5_appraisal": (
        ("block", "block_wednesday"),
        ("calendar", "block_wednesday"),
        ("tonight", "rush_tonight"),
        ("extension", "ask_extension"),
    ),
    "E6_oncall": (
        ("can't", "no_clearly_kindly"),
        ("cannot", "no_clearly_kindly"),
        ("swap", "counter_offer"),
        ("yes", "yes_people_pleaser"),
        ("sure", "yes_people_pleaser"),
    ),
    "E7_standup": (
        ("async", "decline_async"),
        ("skip", "decline_async"),
        ("attend", "attend_sacrifice"),
        ("delegate", "delegate_teammate"),
    ),
}

JUDGE_V1_THANKS = ("thanks", "thank you", "appreciate")
JUDGE_V1_TIME = ("by", "today", "tomorrow", "thursday", "pm", "am")
JUDGE_V1_BAD = ("sorry sorry", "whatever", "later maybe")
JUDGE_V1_TECH = ("ssh", "restart", "logs", "runbook")
BOUNDARY_MARKERS = ("can't", "cannot", "skip", "decline", "not join")
ALTERNATIVE_MARKERS = ("instead", "can do", "by ", "async", "swap")


def _event_id(event: int | str) -> str:
    if isinstance(event, str):
        if event not in EVENT_IDS:
            raise KeyError(f"unknown event {event!r}; known: {', '.join(EVENT_IDS)}")
        return event
    if not 0 <= int(event) < len(EVENT_IDS):
        raise KeyError(f"event index {event} out of range 0..{len(EVENT_IDS) - 1}")
    return EVENT_IDS[int(event)]


def keyword_v1(event: int | str, text: str) -> int:
    """The original keyword decoder: index (0, 1, 2) of the action chosen for ``text``.

    Lower-cases the text and walks the event's keyword list in order; the first keyword that
    occurs anywhere as a substring picks the action; none (or an event without a list) gives 0.
    """
    eid = _event_id(event)
    low = (text or "").lower()
    for keyword, action in KEYWORDS_V1.get(eid, ()):
        if keyword in low:
            return ACTION_NAMES[EVENT_IDS.index(eid)].index(action)
    return 0


def judge_v1(event: int | str, text: str) -> float:
    """The original message-quality heuristic, float for float (SPEC §3.2).

    Empty after stripping gives 0.  Otherwise 0.35, +0.20 with >= 20 words, +0.10 for thanks,
    +0.15 for a time word (substring), -0.20 for dismissive phrases, +0.15 on E1 for technical
    words; clipped to [0, 1].  The additions happen in this order so the floats match exactly.
    """
    eid = _event_id(event)
    text = text or ""
    if not text.strip():
        return 0.0
    low = text.lower()
    score = 0.35
    if len(text.split()) >= 20:
        score += 0.20
    if any(k in low for k in JUDGE_V1_THANKS):
        score += 0.10
    if any(k in low for k in JUDGE_V1_TIME):
        score += 0.15
    if any(k in low for k in JUDGE_V1_BAD):
        score -= 0.20
    if eid == "E1_staging" and any(k in low for k in JUDGE_V1_TECH):
        score += 0.15
    return max(0.0, min(1.0, score))


def contains_boundary(text: str) -> bool:
    """The original flag: the message sets a boundary (can't, cannot, skip, decline, not join)."""
    low = (text or "").lower()
    return any(k in low for k in BOUNDARY_MARKERS)


def contains_alternative(text: str) -> bool:
    """The original flag: the message offers an alternative (instead, can do, "by ", async, swap)."""
    low = (text or "").lower()
    return any(k in low for k in ALTERNATIVE_MARKERS)
