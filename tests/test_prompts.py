"""Prompts: the system prompt, per-event messages with live status, chat rendering."""

from __future__ import annotations

import jax
import pytest

from llm_bridge import prompts as P
from wlf_jax import WorkWeek, presets
from wlf_jax.events import EVENTS


@pytest.fixture(scope="module")
def week():
    env, params = WorkWeek(), presets.seed_v1()
    _, state = env.reset(jax.random.key(7), params)
    return env, params, state


def test_system_prompt_says_who_and_what():
    s = P.system_prompt()
    for word in (
        "Arjun",
        "Bangalore",
        "David Chen",
        "Sundar",
        "Priya",
        "Rahul",
        "on-call",
        "10:30 PM",
        "leave",
        "appraisal",
        "staging",
    ):
        assert word in s, word
    assert "write only the message" in s.lower()


def test_event_prompt_has_live_status(week):
    env, params, state = week
    desc = env.describe(state, params)
    msgs = P.build_messages(desc)
    assert [m["role"] for m in msgs] == ["system", "user"]
    user = msgs[1]["content"]
    assert "It is Monday. Decision 1 of the week." in user
    assert "Energy: 0.87 (fresh)" in user and "Sprint health: 0.80" in user
    assert "David (client) 0.75" in user and "Sundar (manager) 0.80" in user
    assert "staging is broken" in user and "leave still pending" in user and "not done" in user
    assert desc["event"]["body"] in user
    for a in desc["event"]["actions"]:
        assert a["meaning"] in user
    assert "So far this week" not in user  # nothing happened yet


def test_prompt_follows_the_week(week):
    env, params, state = week
    _, state, *_ = env.step_env(None, state, 0, params)  # E1: fix staging directly
    _, state, *_ = env.step_env(None, state, 1, params)
    desc = env.describe(state, params)
    user = P.event_prompt(desc)
    assert "Decision 3 of the week." in user
    assert "staging is fixed" in user
    assert "So far this week:" in user and "sSH in".lower() in user.lower()
    assert desc["event"]["title"] in user
    assert P.messages_for_state(state, params)[1]["content"] == user


def test_pending_consequences_are_listed():
    desc = {
        "day": "Tuesday",
        "decisions": 3,
        "status": {"energy": 0.4, "sprint_health": 0.6},
        "pending": ["S5_night_incident", "E7_standup"],
        "history": [{"event": "E6_oncall", "action": "yes_people_pleaser"}],
        "event": _event_dict(EVENTS[6]),
    }
    user = P.event_prompt(desc)
    assert "Coming back later this week" in user and EVENTS[11].title in user
    assert "Energy: 0.40 (tired)" in user
    assert "say yes again" in user  # history in words


@pytest.mark.parametrize("spec", EVENTS, ids=[e.id for e in EVENTS])
def test_every_event_renders(spec):
    desc = {
        "day": "Wednesday",
        "decisions": 5,
        "status": {},
        "pending": [],
        "history": [],
        "event": _event_dict(spec),
    }
    user = P.event_prompt(desc, show_options=False)
    assert spec.body in user and spec.title in user
    assert spec.actions[0].meaning not in user
    assert user.rstrip().endswith(".")


@pytest.mark.parametrize("spec", EVENTS, ids=[e.id for e in EVENTS])
def test_compact_prompt_keeps_the_state_and_the_options(spec):
    desc = {
        "day": "Thursday",
        "decisions": 6,
        "status": {
            "energy": 0.22,
            "sprint_health": 0.61,
            "leave": "approved",
            "oncall": "accepted",
        },
        "pending": ["S5_night_incident"],
        "history": [],
        "event": _event_dict(spec),
    }
    user = P.compact_prompt(desc)
    head = user.splitlines()[0]
    assert head.startswith("Thursday; energy 0.22 (exhausted); sprint 0.61;")
    assert "leave approved" in head and "covering Wed on-call" in head
    if spec.id != "S5_night_incident":
        assert "Coming back later: " + EVENTS[11].title in user
    assert spec.title in user and spec.body in user
    options = [ln for ln in user.splitlines() if ln.startswith("You could: ")]
    assert len(options) == 1
    for i, a in enumerate(spec.actions, 1):
        acronym = a.meaning.split()[0].isupper() and len(a.meaning.split()[0]) > 1
        first = a.meaning[:1] if acronym else a.meaning[:1].lower()
        assert f"{i}) {first}{a.meaning[1:]}" in options[0]
    if spec.id == "E1_staging":  # an acronym keeps its capitals
        assert "1) SSH in" in options[0] and "sSH" not in user
    bare = P.compact_prompt(desc, show_options=False)
    assert "You could" not in bare and bare.replace("\n", "") in user.replace("\n", "").replace(
        options[0], ""
    )
    assert P.build_messages(desc, compact=True, show_options=False)[1]["content"] == bare


def test_week_over_is_an_error():
    with pytest.raises(ValueError, match="week is over"):
        P.event_prompt({"event": None})


class _NoTemplate:
    chat_template = None


class _SystemRejecting:
    chat_template = "x"

    def apply_chat_template(self, msgs, tokenize=False, add_generation_prompt=True):
        if msgs[0]["role"] == "system":
            raise RuntimeError("System role not supported")
        return "|".join(m["role"] + ":" + m["content"] for m in msgs)


def test_render_chat_fallbacks():
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    assert (
        P.render_chat(_NoTemplate(), msgs)
        == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    )
    assert P.render_chat(_SystemRejecting(), msgs) == "user:S\n\nU"


def _event_dict(spec):
    return {
        "id": spec.id,
        "title": spec.title,
        "sender": spec.sender,
        "channel": spec.channel,
        "stakeholder": spec.stakeholder,
        "body": spec.body,
        "actions": [
            {"index": i, "name": a.name, "meaning": a.meaning} for i, a in enumerate(spec.actions)
        ],
    }
