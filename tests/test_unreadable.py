"""Unreadable replies: each kind is caught, real messages are not, and the consequence in the
simulator is never worth more than the worst legible action."""

from __future__ import annotations

import random

import pytest

from llm_bridge import decode as D
from llm_bridge.consequence import get_solver, read_reply, worst_action
from llm_bridge.judge import get_judge
from llm_bridge.unreadable import MAX_REPLY_CHARS, UNREADABLE_KINDS, unreadable_reason
from llm_bridge.writers import SCRIPTS
from wlf_jax.events import EVENT_IDS, EVENTS

E = EVENT_IDS.index


def reason(event: str, text: str, prompt: str | None = None) -> str | None:
    return D.get_decoder().decode(event, text, prompt).reason


# ---- every kind, constructed -------------------------------------------------------------


@pytest.mark.parametrize(
    "event,text",
    [
        ("E1_staging", ""),
        ("E2_slack", "   \n\t "),
        ("E3_client_email", "**Subject:**\n\n---\n\n**Reply:**"),
        ("E7_standup", "### Response\n\n<|im_end|>"),
        ("E5_appraisal", "🙈 🙉"),
    ],
)
def test_empty_and_markup_only(event, text):
    assert reason(event, text) == "empty"


@pytest.mark.parametrize(
    "event,text",
    [
        ("E1_staging", "I'm here to help you with your project. " * 6),
        (
            "E6_oncall",
            "I'm sure you'll be fine. I'm sure you'll be fine. I'm sure you'll be fine. Thanks",
        ),
        ("E2_slack", "ok ok ok ok ok ok ok ok ok ok ok ok ok ok ok ok ok"),
    ],
)
def test_repetition_loops(event, text):
    assert reason(event, text) == "repetition"


def test_echo_of_the_option_list_and_of_the_message():
    opts = "\n".join(f"- {a.meaning}" for a in EVENTS[E("E1_staging")].actions)
    assert reason("E1_staging", opts) == "echo"
    # the message itself copied back (the leave notification, word for word)
    assert reason("E4_leave", EVENTS[E("E4_leave")].body[:300]) == "echo"
    # the status lines of the prompt
    assert (
        reason(
            "E5_appraisal", "Energy: 0.62 (okay)\nSprint health: 0.71\nStatus: staging is broken"
        )
        == "echo"
    )
    # with the prompt given, a copied sentence of it is caught too
    prompt = "Tuesday; energy 0.55 (okay); sprint 0.70. Coming back later: a re-escalation from the client."
    assert (
        reason(
            "E7_standup",
            "Tuesday; energy 0.55 (okay); sprint 0.70. Coming back later: a re-escalation",
            prompt,
        )
        == "echo"
    )


@pytest.mark.parametrize(
    "event,text",
    [
        (
            "E3_client_email",
            "Hi Arjun,\n\nAny update on the dashboard? The VP is asking.\n\nBest,\nDavid",
        ),
        ("E2_slack", "Priya: hey can you hop on a call?\nRahul: +1 need you on the spec"),
        ("E4_leave", "Dear Arjun, your leave request has been approved.\n\nRegards,\nSundar"),
        ("E7_standup", "Thanks for joining, see you at 10:30.\n- David"),
    ],
)
def test_someone_elses_message(event, text):
    assert reason(event, text) == "other_voice"


def test_the_teammate_named_arjun_may_be_greeted():
    # E6's sender is Arjun the teammate: "Hi Arjun" is the right greeting there
    assert (
        reason("E6_oncall", "Hi Arjun, I can't cover Wednesday this time, I need the night.")
        is None
    )


@pytest.mark.parametrize(
    "event,text",
    [
        (
            "E7_standup",
            "I'll attend the call tonight. I won't attend, I'll send notes instead. Rahul can go for me.",
        ),
        ("E6_oncall", "Sure, I'll cover Wednesday. Sorry, I can't cover Wednesday this time."),
        ("E4_leave", "I'll cancel the leave. Sundar, please approve my leave today."),
    ],
)
def test_contradictory_decisions(event, text):
    assert reason(event, text) == "contradictory"


@pytest.mark.parametrize(
    "event,text",
    [
        # two sentences, two decisions
        ("E5_appraisal", "I'll block Wednesday 3-4 for it. I'll also rush it tonight after work."),
        # two clauses each all but certain, though the whole reads as one of them (0.96)
        ("E7_standup", "Hi David, I'll join tonight but I'll ask Priya to cover before 10:30."),
        (
            "S3_client_reescalation",
            "Hi David, I'll hand the thread to Sundar, I'll promise the fix by tomorrow.",
        ),
        # the coarse split still counts: the finer one leaves "Sure" too short to commit
        (
            "E6_oncall",
            "I can't take Wednesday night. Sure, I'll take this one and cover Wednesday.",
        ),
        # one "I" and two verbs joined by "and", each verb an option of its own
        ("E5_appraisal", "I'll reserve an hour on Wednesday and finish it tonight anyway."),
        ("E5_appraisal", "I'll block Wednesday 3-4 PM and ask HR for an extension."),
    ],
)
def test_two_options_in_one_reply_are_contradictory(event, text):
    assert reason(event, text) == "contradictory"


@pytest.mark.parametrize(
    "event,text,action",
    [
        # the second verb carries out the same option
        ("E5_appraisal", "I'll finish the appraisal tonight and send it to HR before bed.", 1),
        ("E1_staging", "I'll clear the logs myself and restart the service.", 0),
        ("E7_standup", "I'll skip tonight's standup and post a written update.", 0),
    ],
)
def test_two_verbs_of_one_option_joined_by_and_are_one_decision(event, text, action):
    assert D.decode(event, text)[0] == action


def test_a_counter_offer_that_opens_with_a_decline_is_one_decision():
    # the finer split reads a decline (0.94) and a swap (0.99): not both all but certain, and
    # the coarse split sees one sentence, so the swap stands
    text = (
        "Sorry, I can't do a third one, I'll take one of your shifts if you cover mine next week."
    )
    assert D.decode("E6_oncall", text)[0] == 2  # counter_offer


@pytest.mark.parametrize(
    "event,text,unreadable",
    [
        ("E4_leave", "Hi Sundar, I'll approve my Thursday leave request today. Thanks!", True),
        (
            "E4_leave",
            "Hi Sundar, I'll reach out today to approve your Thursday leave request.",
            True,
        ),
        ("S4_leave_conflict", "Sure, I will approve the Thursday leave, enjoy the function.", True),
        ("E4_leave", "Sundar, could you approve my Thursday leave today? Thanks!", False),
        ("E4_leave", "I'll ping Sundar today to approve my Thursday leave.", False),
        ("E4_leave", "Sundar, I\u2019ll ping you today to approve my leave.", False),
        (
            "S4_leave_conflict",
            "I'll keep Thursday off; I'll approve the handover doc tonight.",
            False,
        ),
        ("S4_leave_conflict", "I'll sign off on the handover plan before I go.", False),
        ("E4_leave", "Hi Sundar, I\u2019ll approve my Thursday leave request today.", True),
        ("E5_appraisal", "I'll approve my own calendar slot for Wednesday 3-4 PM.", False),
    ],
)
def test_approving_his_own_leave_is_the_approvers_voice(event, text, unreadable):
    """Arjun asks for his leave to be approved; a reply in which he approves the leave or the
    request is written as the approver (9 of the 51 unreadable replies of the dev set).  Asking
    for approval (the ping_sundar action itself), or approving something else, is Arjun's own
    voice; other events are not affected."""
    assert (reason(event, text) == "other_voice") is unreadable


def test_taking_one_option_in_the_prompts_words_is_not_an_echo():
    """The options line is left out of the prompt's copied text: a reply that takes one option
    in the prompt's own words has chosen.  Two options copied back are still an echo."""
    import json

    row = next(
        json.loads(line)
        for line in (D.DATA_DIR / "smollm2_dev_options.jsonl").read_text().splitlines()
        if json.loads(line)["text"] == "I'll put a fixed slot on the calendar for them."
    )
    assert "You could:" in row["prompt"] and "put a fixed slot on the calendar" in row["prompt"]
    assert reason(row["event"], row["text"], row["prompt"]) is None
    two = "I'll own the miss and put a fixed slot on the calendar. I'll spend the afternoon on calls with both of them."
    assert reason(row["event"], two, row["prompt"]) == "echo"


def test_the_dev_set_of_real_replies_shares_no_state_with_the_test_sets():
    """``smollm2_dev_options.jsonl`` fits the gate; the labelled test sets of real replies must
    never share a prompt (a state) with it, or their scores would be in-sample."""
    from pathlib import Path

    dev = {r.prompt for r in D.load_labelled(D.DATA_DIR / "smollm2_dev_options.jsonl")}
    # 40 states; two of them differ only in what the compact prompt leaves out
    assert len(dev) == 39 and None not in dev
    # every labelled test set of real replies, so that a new one is checked without being listed
    names = sorted((Path(__file__).parent / "data").glob("smollm2*_test.jsonl"))
    assert len(names) >= 9, names
    for path in names:
        test = {r.prompt for r in D.load_labelled(path)}
        assert not dev & test, path.name


def test_too_long_is_refused_before_any_work():
    text = "Declining tonight, written notes by 9 PM. " * (MAX_REPLY_CHARS // 20)
    assert len(text) > MAX_REPLY_CHARS
    assert unreadable_reason(E("E7_standup"), text) == "too_long"
    assert reason("E7_standup", text) == "too_long"


def test_every_kind_is_documented():
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[1] / "docs" / "llm_bridge.md").read_text()
    assert set(UNREADABLE_KINDS) == {
        "empty",
        "too_long",
        "repetition",
        "echo",
        "other_voice",
        "contradictory",
        "no_decision",
    }
    missing = [k for k in UNREADABLE_KINDS if f"`{k}`" not in docs]
    assert not missing, f"docs/llm_bridge.md does not describe {missing}"


# ---- the decision gate: fluent text that commits to nothing --------------------------------


@pytest.mark.parametrize(
    "event,text",
    [
        # what a reward-hacking GRPO run wrote: confident actions for the classifier, no message
        (
            "E1_staging",
            "Hi everyone in the 2.14 slot today, happy to have you all in my space today today with the "
            "45 minutes in 15 minutes in 15 minutes today? Hey everyone in the 45 slot, happy to have",
        ),
        (
            "E7_standup",
            "Hi David, happy to have Priya by the 15 minute slot today today in the 10-minute slot today "
            "with the 15 minute slot in the 15 minutes slot? Priya, hello in the 15 minutes today",
        ),
        # base-model rambles that never answer
        (
            "E5_appraisal",
            "I'm sorry for the misunderstanding, but as a seasoned AI, I'm not equipped to provide "
            "personalized advice. However, I can certainly assist you in any way I can.",
        ),
        (
            "E3_client_email",
            "Bangalore, the global center of advanced technology, is a city where innovation and "
            "creativity thrive. Today is a day that I will never forget.\n\nI just had the",
        ),
    ],
)
def test_the_gate_reads_text_without_a_decision_as_unreadable(event, text):
    d = D.get_decoder().decode(event, text)
    assert d.unreadable, (d, text)


def test_the_gate_keeps_short_human_messages():
    dec = D.get_decoder()
    for event, text in [
        ("E6_oncall", "Sorry Arjun, can't this time, I've covered the last two."),
        ("E7_standup", "Won't make 10:30 tonight, I'll send the latency notes by 9."),
        ("E1_staging", "Rahul, staging disk is full again, can you take it? Runbook is linked."),
        ("E4_leave", "Sundar, could you approve LV-2291 today? Thursday is a family function."),
    ]:
        d = dec.decode(event, text)
        assert not d.unreadable and d.action == D.get_decoder().legible(event, text).action, (
            text,
            d,
        )


def test_the_gate_needs_both_kinds_to_fit():
    from llm_bridge.gate import fit_gate

    rows = D.load_labelled(D.TRAIN_FILE)[:20]
    with pytest.raises(ValueError, match="both kinds"):
        fit_gate(D.get_decoder(), rows, D.UNREADABLE)


def test_real_smollm2_replies_held_out_from_the_fit():
    """The test half of the hand-labelled SmolLM2 replies (base, warm-up and a reward-hacked GRPO
    model at temperatures 0.3-1.0) never fits the gate.  Measured: unreadable 0.886 (117 of 132;
    0.924 before the gate was refitted with replies to the current prompts, which made it softer
    on these older prompts' rambles), legible 0.833 (n=48); bounds sit two or three replies
    below."""
    from pathlib import Path

    from llm_bridge.decode_eval import evaluate_decoder

    rows = D.load_labelled(Path(__file__).parent / "data" / "smollm2_test.jsonl")
    assert len(rows) == 180 and all(r.prompt for r in rows)
    res = evaluate_decoder(rows)
    assert res["per_class"]["unreadable"] >= 115 / 132
    assert res["per_class"]["legible"] >= 0.78


def test_real_smollm2_replies_to_the_prompts_with_options():
    """Replies to the prompts that list the options (40 states x temperatures 0.3/0.7/1.0 per
    set): the base model, two warm-up models and the GRPO model of the stages experiment, each
    labelled by a reader who never saw the decoder's output; no part of this set fits anything.
    Measured: legible 0.809 (241 of 298), unreadable 0.769 (140 of 182); before the gate was
    refitted on ``smollm2_dev_options.jsonl``: 0.802 (239) and 0.802 (146).  The gate misses fluent
    replies that say nothing usable ("Sure, go ahead and cover my shift.") and flags short or
    hedged legible ones it has no cue for ("I'll put it on the calendar."; 30 of the GRPO
    model's 95 legible replies).  Both are under the 0.95 target; the bounds sit two replies
    below the measured numbers, so a decoder that gets worse fails.  The first 120 rows (the
    first warm-up: legible 0.929, unreadable 0.273, 6 of 22; 0.918 and 0.409 before the refit)
    keep their own bounds."""
    from pathlib import Path

    from llm_bridge.decode_eval import evaluate_decoder

    rows = D.load_labelled(Path(__file__).parent / "data" / "smollm2_v3_test.jsonl")
    assert len(rows) == 480 and all(r.prompt for r in rows)
    res = evaluate_decoder(rows)
    assert res["per_class"]["legible"] >= 239 / 298
    assert res["per_class"]["unreadable"] >= 138 / 182
    first = evaluate_decoder(rows[:120])
    assert first["per_class"]["legible"] >= 0.89
    assert first["per_class"]["unreadable"] >= 4 / 22


# Replies of three GRPO models of the stages experiments (40 states x temperatures
# 0.3/0.7/1.0 each), labelled by a reader who never saw the decoder's output; no part fits
# anything.  Measured: 80 steps: legible 0.914 (96 of 105), unreadable 0.333 (5 of 15); misses
# include a clear decline read as a yes ("Ok, I'll say no, my family comes first.").  200 steps
# (the committed adapter): legible 0.849 (79 of 93), unreadable 0.259 (7 of 27); most of the
# unreadable replies pass, e.g. replies naming two options at once.  Before the approver's-voice
# rule, the finer clause split and the gate's refit on replies to the current prompts
# (``smollm2_dev_options.jsonl``): 94/105, 8/15, 79/93 and 6/27.  The GRPO model rewarded
# through the refitted decoder (v6): legible 0.859 (67 of 78), unreadable 0.357 (15 of 42);
# 42 of its 120 sampled replies are unreadable to the reader (18 of them on-call replies, mostly
# garbled or without a yes or a no), against 27 for the committed 200-step model.  The GRPO
# model rewarded with the gate penalty (v7): legible 0.960 (97 of 101), unreadable 0.211 (4 of
# 19); 19 of its 120 replies are unreadable to the reader, 9 of them appraisal replies (7 that
# block Wednesday and also write tonight).  With the "and" rule (two verbs of one "I", each an
# option of its own, are contradictory): v4 unreadable 6 of 15, v7 9 of 19.  The model trained
# with that rule and the gate penalty (v8): legible 0.948 (109 of 115); the reader finds 5 of
# its 120 replies unreadable and the decoder catches none of them (no bound: 0 of 5 is all it
# reaches).  The same recipe with GRPO seed 1 (v8s1): legible 0.952 (100 of 105), unreadable 2 of
# 15 (no bound), most of the missed ones on-call replies with the roles reversed.  Seed 2 (v8s2):
# legible 0.928 (103 of 111), unreadable 3 of 9.  Bounds sit two replies below the measured
# numbers.
@pytest.mark.parametrize(
    ("name", "n_unreadable", "legible", "unreadable"),
    [
        ("smollm2_v4_grpo_test.jsonl", 15, 94 / 105, 4 / 15),
        ("smollm2_v5_grpo_test.jsonl", 27, 77 / 93, 5 / 27),
        ("smollm2_v6_grpo_test.jsonl", 42, 65 / 78, 13 / 42),
        ("smollm2_v7_grpo_test.jsonl", 19, 95 / 101, 7 / 19),
        ("smollm2_v8_grpo_test.jsonl", 5, 107 / 115, None),
        ("smollm2_v8s1_grpo_test.jsonl", 15, 98 / 105, None),
        ("smollm2_v8s2_grpo_test.jsonl", 9, 101 / 111, 1 / 9),
    ],
)
def test_real_smollm2_replies_of_the_grpo_models(name, n_unreadable, legible, unreadable):
    from pathlib import Path

    from llm_bridge.decode_eval import evaluate_decoder

    rows = D.load_labelled(Path(__file__).parent / "data" / name)
    assert len(rows) == 120 and all(r.prompt for r in rows)
    assert sum(r.action == D.UNREADABLE for r in rows) == n_unreadable
    res = evaluate_decoder(rows)
    assert res["per_class"]["legible"] >= legible
    if unreadable is not None:
        assert res["per_class"]["unreadable"] >= unreadable


@pytest.mark.parametrize("name", ["replies_styles_test.jsonl", "replies_blind.jsonl"])
def test_the_gate_flags_few_human_replies(name):
    from pathlib import Path

    dec = D.get_decoder()
    rows = D.load_labelled(Path(__file__).parent / "data" / name)
    flagged = [r.text for r in rows if dec.decode(r.event, r.text).reason == "no_decision"]
    assert len(flagged) <= 0.02 * len(rows), flagged


# ---- real messages stay legible ----------------------------------------------------------


def test_written_messages_are_not_unreadable():
    dec = D.get_decoder()
    for persona, events in SCRIPTS.items():
        for event, texts in events.items():
            for text in texts:
                if text.strip():  # the stonewaller's silence is empty, hence unreadable
                    assert not dec.decode(event, text).unreadable, (persona, event, text)
    rows = [r for r in D.load_labelled(D.TRAIN_FILE) if r.action != D.UNREADABLE]
    flagged = [r.text for r in rows if dec.decode(r.event, r.text).unreadable]
    assert not flagged, flagged[:5]


def test_a_brief_that_quotes_the_runbook_is_one_decision():
    text = (
        "Rahul, you're on call this week - can you take INC-4417? Runbook is wiki/staging-disk-full: "
        "clear /var/log/app and restart. Ping me if stuck."
    )
    assert D.decode("E1_staging", text)[0] == 1  # delegate_oncall


# ---- the consequence ---------------------------------------------------------------------


def _states(preset: str, n: int, seed: int):
    from llm_bridge.grpo import visit_states

    rng = random.Random(seed)
    states = visit_states(preset, 40, seed=seed)
    return [w for _, w in rng.sample(states, min(n, len(states)))]


@pytest.mark.parametrize("preset", ["week_v2", "seed_v1"])
def test_unreadable_is_never_worth_more_than_the_worst_legible_action(preset):
    """Q*(s, unreadable) <= min_a Q*(s, a): the worst action, played with message quality 0,
    then optimal play - checked exactly over many visited states."""
    solver = get_solver(preset)
    ref = solver.ref
    dec, jud = D.get_decoder(), get_judge()
    checked = 0
    for w in _states(preset, 150, seed=3):
        e = w.slot_event[w.slot]
        read = read_reply(dec, jud, e, "", w, preset)
        assert read.decoded.unreadable and read.quality == 0.0
        qs = solver.q(w)
        assert read.action == worst_action(w, preset) and qs[read.action] == min(qs)
        value = 0.0
        for alt, p in (
            (False, 1.0 - ref.alt_probability(w, read.action)),
            (True, ref.alt_probability(w, read.action)),
        ):
            if p <= 0.0:
                continue
            w2, reward = ref.apply(w, read.action, alt, 0.0)
            for p2, w3 in solver._reveal(w2):
                value += p * p2 * (reward + (0.0 if w3.done else max(solver.q(w3))))
        assert value <= min(qs) + 1e-9, (value, qs)
        checked += 1
    assert checked >= 100


def test_unreadable_counts_in_the_week_table():
    from llm_bridge.llm_policy import format_summary, play_weeks
    from llm_bridge.writers import ScriptedWriter

    res = play_weeks(
        ScriptedWriter("stonewaller", seed=0),
        preset="week_v2",
        n_weeks=6,
        seed=0,
        transcript_weeks=6,
    )
    s = res.summary
    # the stonewaller sometimes sends nothing to Slack: exactly those replies are unreadable
    silent = sum(not row["reply"].strip() for row in res.transcript)
    assert silent >= 1 and s["unreadable"] == silent and s["unreadable_kinds"] == {"empty": silent}
    assert s["unreadable_rate"] == pytest.approx(s["unreadable"] / s["replies"])
    assert "unreadable" in format_summary(s)
    assert any(row["action"] == "unreadable" for row in res.transcript)


def test_free_text_states_are_read_in_their_grid_twin_without_growing_the_solver():
    """A week played with free-text replies has its own quality sum; the worst action is read in
    its grid twin (template qualities), a memo look-up that adds nothing to the solver."""
    solver = get_solver("week_v2")
    states = _states("week_v2", 30, seed=5)
    for w in states:  # on the grid, the twin is the state itself
        assert solver.on_grid(w) == w or abs(solver.on_grid(w).quality_sum - w.quality_sum) < 1e-5
    solver.q(states[0])
    size = len(solver._qmemo), len(solver._trans)
    rng = random.Random(1)
    for w in states:
        free = w._replace(quality_sum=w.quality_sum * rng.uniform(0.3, 1.0))
        qs = solver.q(solver.on_grid(w))
        assert worst_action(free, "week_v2") == min(range(3), key=lambda a: (qs[a], a))
    assert (len(solver._qmemo), len(solver._trans)) == size
